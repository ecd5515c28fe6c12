/**
 * Every option of a simulation run, derived from one seed.
 *
 * The same seed always yields the same options and (the simulation being deterministic) the same
 * run, so a failure is replayed with `npm run sim -- --seed N`. Ranges are chosen so that the
 * network round trip and fsync stay well below the election timeout: the liveness bound is only
 * meaningful when a heartbeat can arrive before followers give up on the leader.
 */
import type { Durability, UnsafeTestBugs } from "../../src/consensus/config.ts";
import type { ApprovePolicy, FailoverMode } from "../../src/consensus/failover-config.ts";
import { Prng } from "../../src/lib/prng.ts";
import { nodeDefaults, type UnsafeNodeBugs } from "../../src/node/node-config.ts";
import { type NodeId, nodeId } from "../../src/types/ids.ts";

export const simTickMs = 10;
/** The shortest election timeout a run may draw, in ticks. */
const electionTimeoutTicksMin = 10;

export type FaultProfile = "calm" | "normal" | "storm";

/**
 * The operator's membership episodes (`member-operator.ts`): a voter removed, stopped, started again
 * with its disk and added back as a learner then promoted; a voter demoted and promoted; a new node
 * joining as a read replica; a member crashed, its disk wiped, and joined again as `baton start
 * --join` does (promoted again if it was a voter).
 */
export type MemberEpisodeKind = "remove-readd" | "demote-promote" | "add-replica" | "wipe-rejoin";

/**
 * The failover settings a run starts with (`src/consensus/failover-config.ts`), set by the operator
 * through the leader before the schema is created, and what the failover operator
 * (`failover-operator.ts`) does during the run.
 */
export type SimFailoverOptions = {
  readonly failoverMode: FailoverMode;
  /** Mode approve: the approval wait, in ticks, and what happens when it passes. */
  readonly approveTimeoutTicks: number;
  readonly approvePolicy: ApprovePolicy;
  /** Mode approve: the chance that the operator approves a pending failover rather than wait for the policy. */
  readonly approveChance: number;
  /** How long a node must have had no leader before the operator promotes one (or approves). */
  readonly operatorDelayTicks: number;
  /** Per tick while the failover operator is idle in the safety phase: pause failover for a while (0 in most runs). */
  readonly pauseEpisodeRate: number;
  /** Per tick while idle: switch the mode to another one, and back after a while (0 in most runs). */
  readonly modeSwitchRate: number;
  /** How long a pause or a switched mode lasts before the operator undoes it. */
  readonly failoverDwellTicksMax: number;
  /** Member priorities (`priority`), by node id; members not named keep 0. */
  readonly priorities: Readonly<Record<string, number>>;
  /** A voter marked `neverPromote`, or none. */
  readonly neverPromoteNode: NodeId | null;
  /**
   * A voter marked `witness` (votes, keeps the log, holds no data), or none; `initial-leader` marks
   * whichever node leads when the settings are made (it must hand its office over at once).
   */
  readonly witnessNode: NodeId | "initial-leader" | null;
};

export type SimOptions = {
  readonly seed: number;
  readonly profile: FaultProfile;
  readonly nodeCount: 3 | 5;
  readonly heartbeatTicks: number;
  readonly missedHeartbeats: number;
  readonly electionJitter: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendEntriesInflightMax: number;
  /** New proposals go out at once only to followers with fewer AppendEntries in flight than this. */
  readonly appendEntriesEagerInflightMax: number;
  readonly appendEntriesBatchEntriesMax: number;
  readonly appendEntriesBatchBytesMax: number;
  readonly proposalTimeoutTicks: number;
  readonly delayTicksMin: number;
  readonly delayTicksMax: number;
  readonly fsyncTicksMax: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly crashRate: number;
  /** Per tick: crash whichever node is leader (Jepsen's "kill the leader" nemesis). */
  readonly leaderCrashRate: number;
  /** Per tick (when no partition is active): cut the leader off from everyone, in flight messages included. */
  readonly leaderIsolateRate: number;
  readonly downTicksMax: number;
  readonly partitionRate: number;
  readonly partitionTicksMax: number;
  readonly oneWayPartitionChance: number;
  readonly pauseRate: number;
  readonly pauseTicksMax: number;
  /**
   * Per restart in the safety phase: a committed row of the node's database is changed while it is
   * down (damage no SQLite check sees); it must find it and heal (`src/node/consistency-check.ts`).
   * Drawn from a generator of its own, so the other options and the fault schedule stay as they were.
   */
  readonly dbDamageRate: number;
  readonly proposeRate: number;
  readonly durabilityWeights: Readonly<Record<Durability, number>>;
  /** The leader commits its speculative SQLite transaction at least this often (the node's drain). */
  readonly speculationAgeTicksMax: number;
  readonly safetyTicks: number;
  /** Writes proposed to the stable leader in the liveness phase; all must be acknowledged. */
  readonly livenessWrites: number;
  /**
   * The liveness phase waits for every member's history to be replicated and the final check holds
   * it against the table (`history-checker.ts`). Off only where history replication is turned off on
   * purpose: the core-bug hunts, whose interleavings its traffic makes rare.
   */
  readonly checkHistory: boolean;
  readonly unsafeTestBugs: UnsafeTestBugs;
  readonly unsafeNodeBugs: UnsafeNodeBugs;
  /** Snapshots and compaction: small, so that runs take many and followers need transfers. */
  readonly snapshotEntries: number;
  readonly compactionTrailEntries: number;
  /** Bytes of applied entry data each node's log keeps in memory (`NodeConfig.logMemoryBytes`). */
  readonly logMemoryBytes: number;
  readonly snapshotChunkBytes: number;
  readonly snapshotWindowChunks: number;
  readonly snapshotAckTimeoutTicks: number;
  /** Per tick while the operator is idle in the safety phase: start a membership episode (0 in some runs). */
  readonly memberEpisodeRate: number;
  readonly memberEpisodeWeights: Readonly<Record<MemberEpisodeKind, number>>;
  /** Chance that an episode's target is the leader itself (when the leader may be its target). */
  readonly memberTargetLeaderChance: number;
  /** How long a removed voter stays stopped, or a demoted voter a learner, before it comes back. */
  readonly memberDwellTicksMax: number;
  /** The `timeoutMs` of every membership request, in ticks. */
  readonly memberRequestTimeoutTicks: number;
} & SimFailoverOptions;

function pickFloat(prng: Prng, min: number, max: number): number {
  return Math.round((min + prng.nextFloat() * (max - min)) * 1000) / 1000;
}

/** Derives every option from `seed`. `overrides` pin options for hand-written scenarios and tests. */
export function optionsFromSeed(seed: number, overrides: Partial<SimOptions> = {}): SimOptions {
  const prng = new Prng(seed);
  const heartbeatTicks = prng.intBetween(1, 4);
  // At least 10 ticks of election timeout, so that jitter spreads timeouts over several tick values.
  const missedHeartbeats = Math.max(
    prng.intBetween(3, 10),
    Math.ceil(electionTimeoutTicksMin / heartbeatTicks),
  );
  const electionTimeoutTicks = heartbeatTicks * missedHeartbeats;
  const delayTicksMax = prng.intBetween(1, Math.max(1, Math.floor(electionTimeoutTicks / 6)));
  // Fault profile: a tenth of runs are calm (a baseline), a third are storms of leader crashes with
  // short downtimes, slow fsyncs and tiny batches: the conditions of Raft figure 8.
  // A hunt may pin the profile; the draw still happens, so that the options after it are the seed's.
  const drawnProfile = prng.chance(0.1) ? "calm" : prng.chance(0.35) ? "storm" : "normal";
  const profile = overrides.profile ?? drawnProfile;
  const faulty = profile !== "calm";
  const storm = profile === "storm";
  const options: Omit<
    SimOptions,
    keyof SimFailoverOptions | "logMemoryBytes" | "appendEntriesEagerInflightMax"
  > = {
    seed,
    profile,
    nodeCount: prng.chance(0.6) ? 3 : 5,
    heartbeatTicks,
    missedHeartbeats,
    electionJitter: pickFloat(prng, 0.3, 1),
    preVote: prng.chance(0.85),
    checkQuorum: prng.chance(0.85),
    appendEntriesInflightMax: storm ? prng.intBetween(1, 2) : prng.intBetween(1, 8),
    appendEntriesBatchEntriesMax: storm ? prng.pick([1, 2]) : prng.pick([1, 2, 4, 16, 64]),
    appendEntriesBatchBytesMax: prng.pick([64, 1 << 20]),
    proposalTimeoutTicks: electionTimeoutTicks * prng.intBetween(3, 10),
    delayTicksMin: 1,
    delayTicksMax,
    fsyncTicksMax: prng.intBetween(0, Math.max(0, Math.floor(electionTimeoutTicks / (storm ? 4 : 8)))),
    dropRate: storm ? pickFloat(prng, 0.05, 0.3) : faulty ? pickFloat(prng, 0, 0.15) : 0,
    duplicateRate: faulty ? pickFloat(prng, 0, 0.05) : 0,
    crashRate: storm ? pickFloat(prng, 0.005, 0.03) : faulty ? pickFloat(prng, 0, 0.01) : 0,
    leaderCrashRate: storm ? pickFloat(prng, 0.02, 0.25) : faulty ? pickFloat(prng, 0, 0.003) : 0,
    leaderIsolateRate: storm ? pickFloat(prng, 0.02, 0.2) : faulty ? pickFloat(prng, 0, 0.003) : 0,
    downTicksMax: storm ? prng.intBetween(5, 3 * electionTimeoutTicks) : prng.intBetween(10, 200),
    partitionRate: faulty ? pickFloat(prng, 0, 0.02) : 0,
    partitionTicksMax: prng.intBetween(10, 300),
    oneWayPartitionChance: pickFloat(prng, 0, 0.5),
    pauseRate: faulty ? pickFloat(prng, 0, 0.005) : 0,
    pauseTicksMax: electionTimeoutTicks * 2,
    proposeRate: pickFloat(prng, 0.05, 0.5),
    durabilityWeights: {
      local: prng.intBetween(0, 3),
      one: prng.intBetween(0, 3),
      majority: prng.intBetween(1, 4),
      all: prng.intBetween(0, 3),
    },
    speculationAgeTicksMax: prng.intBetween(1, 5),
    safetyTicks: prng.intBetween(500, 1500),
    livenessWrites: 5,
    checkHistory: true,
    unsafeTestBugs: {},
    unsafeNodeBugs: {},
    snapshotEntries: prng.intBetween(10, 300),
    compactionTrailEntries: prng.pick([0, 1, 5, 30]),
    snapshotChunkBytes: prng.pick([4096, 16384, 65536]),
    snapshotWindowChunks: prng.intBetween(2, 4),
    snapshotAckTimeoutTicks: electionTimeoutTicks,
    // Drawn last, so that every option above keeps the value it had for this seed before membership
    // changes joined the schedule.
    memberEpisodeRate: prng.chance(0.15) ? 0 : pickFloat(prng, 0.003, 0.02),
    memberEpisodeWeights: {
      "remove-readd": prng.intBetween(1, 3),
      "demote-promote": prng.intBetween(0, 2),
      "add-replica": prng.intBetween(1, 3),
      "wipe-rejoin": prng.intBetween(1, 3),
    },
    memberTargetLeaderChance: pickFloat(prng, 0.1, 0.5),
    memberDwellTicksMax: prng.intBetween(10, 300),
    memberRequestTimeoutTicks: electionTimeoutTicks * prng.intBetween(5, 15),
    dbDamageRate: faulty ? pickFloat(new Prng(seed ^ 0xdb), 0, 0.5) : 0,
  };
  // Drawn after everything above, so that a seed's other options are what they were before.
  const failover = drawFailover(prng, options.nodeCount, electionTimeoutTicks);
  // Drawn after the failover options, for the same reason: most runs read released entries back.
  const logMemoryBytes = prng.pick([0, 0, 256, 4096, nodeDefaults.logMemoryBytes]);
  // Drawn last, for the same reason: from the default (one in flight, the rest batched on answers)
  // to sending every proposal at once.
  const appendEntriesEagerInflightMax = prng.intBetween(1, options.appendEntriesInflightMax);
  return { ...options, ...failover, logMemoryBytes, appendEntriesEagerInflightMax, ...overrides };
}

/**
 * The failover part of a run: most runs keep mode auto with default attributes (and then run as
 * before), a quarter run manual, a fifth approve; some pause failover or switch modes for a while;
 * some give members priorities, mark a voter never-promote, or make one a witness (a 3-voter cluster
 * of two data nodes and a witness, or 5 with one witness). Never more than one voter that may not
 * lead in a cluster of 3, so that the membership operator can always take one voter out.
 */
function drawFailover(prng: Prng, nodeCount: number, electionTimeoutTicks: number): SimFailoverOptions {
  const roll = prng.nextFloat();
  const failoverMode: FailoverMode = roll < 0.55 ? "auto" : roll < 0.8 ? "manual" : "approve";
  const ids = Array.from({ length: nodeCount }, (_, i) => nodeId(`n${i + 1}`));
  const priorities: Record<string, number> = {};
  if (prng.chance(0.3)) for (const id of ids) if (prng.chance(0.6)) priorities[id] = prng.intBetween(0, 100);
  const witnessNode = prng.chance(0.2) ? prng.pick(ids) : null;
  const others = ids.filter((id) => id !== witnessNode);
  const neverPromoteAllowed = witnessNode === null || nodeCount === 5;
  const neverPromoteNode = neverPromoteAllowed && prng.chance(0.15) ? prng.pick(others) : null;
  return {
    failoverMode,
    approveTimeoutTicks: electionTimeoutTicks * prng.intBetween(2, 10),
    approvePolicy: prng.chance(0.5) ? "promote" : "stay-leaderless",
    approveChance: pickFloat(prng, 0, 1),
    operatorDelayTicks: electionTimeoutTicks * prng.intBetween(1, 4),
    pauseEpisodeRate: prng.chance(0.2) ? pickFloat(prng, 0.001, 0.01) : 0,
    modeSwitchRate: prng.chance(0.15) ? pickFloat(prng, 0.001, 0.01) : 0,
    failoverDwellTicksMax: prng.intBetween(20, 300),
    priorities,
    neverPromoteNode,
    witnessNode,
  };
}

/** Failover as it was before the schedule covered it: mode auto, default attributes, no operator episodes. */
export const automaticFailover: SimFailoverOptions = {
  failoverMode: "auto",
  approveTimeoutTicks: 1000,
  approvePolicy: "stay-leaderless",
  approveChance: 0,
  operatorDelayTicks: 10,
  pauseEpisodeRate: 0,
  modeSwitchRate: 0,
  failoverDwellTicksMax: 20,
  priorities: {},
  neverPromoteNode: null,
  witnessNode: null,
};

/** Whether a run's failover differs from the defaults (it then needs the failover operator's setup). */
export function failoverConfigured(o: SimOptions): boolean {
  return (
    o.failoverMode !== "auto" ||
    Object.keys(o.priorities).length > 0 ||
    o.neverPromoteNode !== null ||
    o.witnessNode !== null
  );
}

/** Election timeout bounds in ticks for these options (mirrors the core's derivation). */
export function electionTimeoutTicksOf(options: SimOptions): { base: number; max: number } {
  const base = options.heartbeatTicks * options.missedHeartbeats;
  return { base, max: base + Math.ceil(base * options.electionJitter) };
}

/**
 * The liveness bound: after the faults stop, a leader recognised by every node must exist within
 * this many ticks. Derivation: a restarted or partitioned node may need one full randomized timeout
 * to campaign, each attempt costs two round trips plus two fsyncs (pre-vote, vote), and we allow up
 * to 10 attempts for split votes and for disruption by nodes that come back with a higher term.
 */
export function electionBoundTicks(options: SimOptions): number {
  const { max } = electionTimeoutTicksOf(options);
  const attemptTicks = max + 4 * options.delayTicksMax + 2 * options.fsyncTicksMax;
  return 10 * attemptTicks;
}

/**
 * How long the operator waits between crashing a node and wiping its disk, as minutes pass between
 * a crash and a disk replacement on a real cluster: longer than any message of the dead incarnation
 * can be in flight or held back at a paused receiver, and than the fsync that could make a leader
 * count the node's last acknowledgements. (Whatever is still in flight then is dropped with it.)
 */
export function wipeAfterCrashTicks(options: SimOptions): number {
  return options.pauseTicksMax + options.fsyncTicksMax + 2 * options.delayTicksMax + 1;
}

export function describeOptions(options: SimOptions): string {
  return Object.entries(options)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : String(value)}`)
    .join(" ");
}
