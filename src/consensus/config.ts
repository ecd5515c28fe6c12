/**
 * Configuration of the consensus core: what the operator sets, the defaults, validation, and the
 * derived timings in ticks.
 *
 * Failure detection is expressed the way an operator thinks of it: a leader sends a heartbeat every
 * `heartbeatIntervalMs`; a follower that misses `missedHeartbeats` of them in a row suspects the
 * leader, so the base election timeout is `heartbeatIntervalMs × missedHeartbeats`. Each follower
 * waits a randomized timeout drawn uniformly from [T, T × (1 + electionJitter)] so that followers
 * rarely time out together and split the vote (Raft §5.2).
 *
 * Invariants established here (and relied on everywhere else): every duration is a whole, positive
 * number of ticks; the election timeout is at least two heartbeat intervals; the bootstrap
 * configuration (`voters`, `learners`) is valid and includes this node; every bound is a positive
 * integer.
 *
 * `voters` and `learners` are only the configuration a node starts from when its snapshot names none
 * (`InitialState.snapshotConfig`); after that the replicated configuration in the log rules (see
 * `cluster-config.ts`).
 */
import { BatonError } from "../lib/errors.ts";
import type { Prng } from "../lib/prng.ts";
import type { NodeId } from "../types/ids.ts";
import {
  type ClusterConfig,
  clusterConfigProblem,
  learnersMax,
  normalizeClusterConfig,
  votersMax,
} from "./cluster-config.ts";

/** How durable a write must be before its proposal is acknowledged. */
export type Durability = "local" | "one" | "majority" | "all";
export const durabilityLevels: readonly Durability[] = ["local", "one", "majority", "all"];

/**
 * Deliberate bugs for the simulator's self-test ("does the checker catch a broken core?").
 * Never set these outside tests: each one breaks a safety rule on purpose.
 */
export type UnsafeTestBugs = {
  /** Commit an entry of an older term once it is on a majority, ignoring Raft §5.4.2 (figure 8). */
  readonly commitOldTermByCounting?: boolean;
  /** Grant votes without the up-to-date log check of Raft §5.4.1. */
  readonly voteWithoutLogCheck?: boolean;
  /** Grant a vote in a term already voted in (breaks Raft §5.2's one vote per term). */
  readonly voteTwiceInTerm?: boolean;
  /** Campaign when the election timer fires whatever the failover mode (ignores manual, approve and pause). */
  readonly campaignWhenNotAutomatic?: boolean;
  /** A witness or never-promote leader keeps office and serves clients instead of handing over. */
  readonly ineligibleLeaderKeepsOffice?: boolean;
  /** A leader serves a linearizable read without confirming it still leads (thesis §6.4). */
  readonly readWithoutRound?: boolean;
  /** A leader whose removal committed keeps leading (dissertation §4.2.2). */
  readonly removedLeaderStays?: boolean;
  /** A follower appends entries after a previous entry whose term differs from the leader's (no Raft §5.3 check). */
  readonly appendWithoutLogCheck?: boolean;
  /** Vote and campaign as if no entries were lost, ignoring `HardState.promised` (`lost-entries.ts`). */
  readonly ignoreLostEntries?: boolean;
};

/** What the host passes to `new RaftCore(config, initial)`. Optional fields have the documented defaults. */
export type RaftConfig = {
  /** This node's id; must be one of `voters` or `learners`. */
  readonly id: NodeId;
  /**
   * The voters of the bootstrap configuration: the configuration at the snapshot index when the
   * initial state names none (`InitialState.snapshotConfig`). The replicated configuration in the log
   * takes over from there.
   */
  readonly voters: readonly NodeId[];
  /** The learners of the bootstrap configuration (non-voting members). Default none. */
  readonly learners?: readonly NodeId[];
  /** Members' addresses in the bootstrap configuration (`ClusterConfig.addresses`). Default none. */
  readonly addresses?: ClusterConfig["addresses"];
  /** The host's tick period: one `{type:'tick'}` input every `tickMs`. Default 10. */
  readonly tickMs?: number;
  /** How often the leader sends heartbeats; a multiple of `tickMs`. Default 100. */
  readonly heartbeatIntervalMs?: number;
  /** Heartbeats a follower may miss before it campaigns; the base election timeout is their product. Default 10. */
  readonly missedHeartbeats?: number;
  /** Fraction of the election timeout added at random, in [0, 1]. Default 0.5. */
  readonly electionJitter?: number;
  /** Run a pre-vote round before a real election (Ongaro thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /** Leader steps down when it has not heard from a majority within an election timeout (thesis §6.2). Default true. */
  readonly checkQuorum?: boolean;
  /** AppendEntries messages in flight per follower in the replicate state. Default 8. */
  readonly appendEntriesInflightMax?: number;
  /**
   * A new proposal is sent at once only to followers with fewer AppendEntries in flight than this;
   * the others get it, with everything proposed meanwhile, when an answer arrives. Default 1, at
   * most `appendEntriesInflightMax`.
   */
  readonly appendEntriesEagerInflightMax?: number;
  /** Payload bytes per AppendEntries (at least one entry is always sent). Default 1 MiB. */
  readonly appendEntriesBatchBytesMax?: number;
  /** Entries per AppendEntries. Default 256. */
  readonly appendEntriesBatchEntriesMax?: number;
  /**
   * When the commit index moves, commit news alone (an empty AppendEntries to a follower that holds
   * the whole log) is left for the host to send with a `commitNews` input (`Effects.commitNewsDue`),
   * unless an AppendEntries with entries carries it first. Sent at once while an `all` proposal
   * waits for applied reports. Default false: sent at once.
   */
  readonly deferCommitNews?: boolean;
  /** Durability used when a proposal names none. Default 'majority'. */
  readonly defaultDurability?: Durability;
  /** How long a proposal may wait for its durability level before `notConfirmed`. Default 10000. */
  readonly proposalTimeoutMs?: number;
  /** Proposals accepted but not yet acknowledged or failed; beyond it proposals are rejected OVERLOADED. Default 10000. */
  readonly proposalsPendingMax?: number;
  /** Entries the leader may hold beyond the commit index; beyond it proposals are rejected OVERLOADED. Default 10000. */
  readonly uncommittedEntriesMax?: number;
  /** Linearizable reads waiting for their heartbeat round; beyond it reads are rejected OVERLOADED. Default 1024. */
  readonly readsPendingMax?: number;
  /**
   * A follower or learner stepping `readIndex` asks its leader for the read index (thesis §6.4.1)
   * instead of rejecting the read NOT_LEADER. Default false (the node layer forwards reads itself).
   */
  readonly followerReadIndex?: boolean;
  /** The seeded generator for election jitter: the core draws no randomness of its own. */
  readonly prng: Prng;
  /** Test-only deliberate bugs; see `UnsafeTestBugs`. */
  readonly unsafeTestBugs?: UnsafeTestBugs;
};

/** The configuration after defaults and validation, with every duration converted to ticks. */
export type ResolvedConfig = {
  readonly id: NodeId;
  /** The bootstrap configuration's voters and learners (see `RaftConfig.voters`). */
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly addresses?: ClusterConfig["addresses"];
  readonly tickMs: number;
  readonly heartbeatIntervalMs: number;
  readonly missedHeartbeats: number;
  readonly electionJitter: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendEntriesInflightMax: number;
  readonly appendEntriesEagerInflightMax: number;
  readonly appendEntriesBatchBytesMax: number;
  readonly appendEntriesBatchEntriesMax: number;
  readonly deferCommitNews: boolean;
  readonly defaultDurability: Durability;
  readonly proposalTimeoutTicks: number;
  readonly proposalsPendingMax: number;
  readonly uncommittedEntriesMax: number;
  readonly readsPendingMax: number;
  readonly followerReadIndex: boolean;
  readonly heartbeatIntervalTicks: number;
  /** Base election timeout: `heartbeatIntervalTicks × missedHeartbeats`. */
  readonly electionTimeoutTicks: number;
  /** Upper end of the randomized election timeout: `electionTimeoutTicks + jitterTicksMax`. */
  readonly electionTimeoutTicksMax: number;
  readonly unsafeTestBugs: UnsafeTestBugs;
};

export const configDefaults = {
  tickMs: 10,
  heartbeatIntervalMs: 100,
  missedHeartbeats: 10,
  electionJitter: 0.5,
  preVote: true,
  checkQuorum: true,
  appendEntriesInflightMax: 8,
  appendEntriesEagerInflightMax: 1,
  appendEntriesBatchBytesMax: 1024 * 1024,
  appendEntriesBatchEntriesMax: 256,
  defaultDurability: "majority" as Durability,
  proposalTimeoutMs: 10_000,
  proposalsPendingMax: 10_000,
  uncommittedEntriesMax: 10_000,
  readsPendingMax: 1024,
} as const;

export { learnersMax, votersMax };

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new BatonError("BAD_CONFIG", message, details);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    bad(`${name} must be a positive integer, got ${value}`, { [name]: value });
  return value;
}

type BoundName =
  | "appendEntriesInflightMax"
  | "appendEntriesEagerInflightMax"
  | "appendEntriesBatchBytesMax"
  | "appendEntriesBatchEntriesMax"
  | "proposalsPendingMax"
  | "uncommittedEntriesMax"
  | "readsPendingMax";

/** A positive-integer setting, defaulted. */
function bound(config: RaftConfig, name: BoundName): number {
  return positiveInteger(name, config[name] ?? configDefaults[name]);
}

function resolveMembers(config: RaftConfig): ClusterConfig {
  const voters = [...config.voters];
  const learners = [...(config.learners ?? [])];
  if (voters.length === 0 || voters.length > votersMax)
    bad(`voters must list 1 to ${votersMax} nodes`, { voters });
  if (learners.length > learnersMax) bad(`learners must list at most ${learnersMax} nodes`, { learners });
  if (new Set([...voters, ...learners]).size !== voters.length + learners.length)
    bad("voters and learners must be distinct", { voters, learners });
  const members = normalizeClusterConfig(
    config.addresses === undefined ? { voters, learners } : { voters, learners, addresses: config.addresses },
  );
  const problem = clusterConfigProblem(
    config.addresses === undefined ? members : { voters, learners, addresses: config.addresses },
  );
  if (problem !== null) bad(`bad members: ${problem}`, { voters, learners });
  if (!voters.includes(config.id) && !learners.includes(config.id))
    bad(`voters or learners must include this node ${config.id}`, { voters, learners, id: config.id });
  return members;
}

/** The timing settings, validated and converted to ticks. */
function resolveTimings(config: RaftConfig) {
  const tickMs = positiveInteger("tickMs", config.tickMs ?? configDefaults.tickMs);
  const heartbeatIntervalMs = positiveInteger(
    "heartbeatIntervalMs",
    config.heartbeatIntervalMs ?? configDefaults.heartbeatIntervalMs,
  );
  if (heartbeatIntervalMs % tickMs !== 0)
    bad("heartbeatIntervalMs must be a multiple of tickMs", { tickMs, heartbeatIntervalMs });
  const missedHeartbeats = positiveInteger(
    "missedHeartbeats",
    config.missedHeartbeats ?? configDefaults.missedHeartbeats,
  );
  if (missedHeartbeats < 2) bad("missedHeartbeats must be at least 2", { missedHeartbeats });
  const electionJitter = config.electionJitter ?? configDefaults.electionJitter;
  if (!(electionJitter >= 0 && electionJitter <= 1))
    bad("electionJitter must be in [0, 1]", { electionJitter });
  const proposalTimeoutMs = positiveInteger(
    "proposalTimeoutMs",
    config.proposalTimeoutMs ?? configDefaults.proposalTimeoutMs,
  );
  const heartbeatIntervalTicks = heartbeatIntervalMs / tickMs;
  const electionTimeoutTicks = heartbeatIntervalTicks * missedHeartbeats;
  return {
    tickMs,
    heartbeatIntervalMs,
    missedHeartbeats,
    electionJitter,
    heartbeatIntervalTicks,
    electionTimeoutTicks,
    // Rounded up so that any non-zero jitter spreads timeouts over at least two tick values.
    electionTimeoutTicksMax: electionTimeoutTicks + Math.ceil(electionTimeoutTicks * electionJitter),
    proposalTimeoutTicks: Math.max(1, Math.ceil(proposalTimeoutMs / tickMs)),
  };
}

/** Applies defaults, validates, and derives tick counts. Throws `BatonError('BAD_CONFIG')` on invalid settings. */
export function resolveConfig(config: RaftConfig): ResolvedConfig {
  const defaultDurability = config.defaultDurability ?? configDefaults.defaultDurability;
  if (!durabilityLevels.includes(defaultDurability)) bad(`unknown durability ${defaultDurability}`);
  return {
    id: config.id,
    ...resolveMembers(config),
    ...resolveTimings(config),
    preVote: config.preVote ?? configDefaults.preVote,
    checkQuorum: config.checkQuorum ?? configDefaults.checkQuorum,
    appendEntriesInflightMax: bound(config, "appendEntriesInflightMax"),
    appendEntriesEagerInflightMax: Math.min(
      bound(config, "appendEntriesEagerInflightMax"),
      bound(config, "appendEntriesInflightMax"),
    ),
    appendEntriesBatchBytesMax: bound(config, "appendEntriesBatchBytesMax"),
    appendEntriesBatchEntriesMax: bound(config, "appendEntriesBatchEntriesMax"),
    deferCommitNews: config.deferCommitNews ?? false,
    defaultDurability,
    proposalsPendingMax: bound(config, "proposalsPendingMax"),
    uncommittedEntriesMax: bound(config, "uncommittedEntriesMax"),
    readsPendingMax: bound(config, "readsPendingMax"),
    followerReadIndex: config.followerReadIndex ?? false,
    unsafeTestBugs: config.unsafeTestBugs ?? {},
  };
}

/** The number of voters that forms a majority of `voterCount` (Raft §5.2). */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}
