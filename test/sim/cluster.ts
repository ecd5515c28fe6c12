/**
 * A deterministic simulated cluster of production nodes: `BatonNode`s on simulated time, the
 * simulated network and simulated disks, with real SQLite stores in a temporary directory, the SQL
 * clients of `workload.ts` and the safety checkers, all driven by one seeded generator.
 *
 * One tick of simulated time (`tick`, async because the node is): complete due fsyncs, deliver due
 * packets, fire due timers (the nodes' ticks, request deadlines), start client operations, and
 * settle every promise those started before the next tick (`settle` runs the microtask queue dry
 * through one `setImmediate`; nothing in the node waits on real I/O in the simulator, so that is
 * everything). Scripted scenarios call the same methods (partition, crash, transfer) instead of
 * random faults.
 *
 * Membership: the operator (`member-operator.ts`) changes the configuration during the run. The
 * nodes it holds down (a removed voter it stopped, a crashed node whose disk it wipes, a new node
 * before its join is answered) are never restarted by the fault schedule or the heal; the cluster's
 * members are those of the leader's configuration, which a working leader, convergence and the
 * final check are judged by.
 */
import fs from "node:fs";
import path from "node:path";
import type { ClusterConfig } from "../../src/consensus/cluster-config.ts";
import { quorumSize } from "../../src/consensus/config.ts";
import type { Effects } from "../../src/consensus/effects.ts";
import { formatEffects } from "../../src/consensus/golden-format.ts";
import type { Input } from "../../src/consensus/inputs.ts";
import { assert } from "../../src/lib/assert.ts";
import { Prng } from "../../src/lib/prng.ts";
import { listSnapshots } from "../../src/node/snapshot-files.ts";
import { type NodeId, nodeId } from "../../src/types/ids.ts";
import { SafetyChecker, SimViolation } from "./checkers.ts";
import { FailoverChecker } from "./failover-checker.ts";
import { FailoverOperator } from "./failover-operator.ts";
import { MemberOperator } from "./member-operator.ts";
import { SimNetwork } from "./network.ts";
import { electionBoundTicks, type SimOptions, simTickMs } from "./options.ts";
import type { DurableImage } from "./quorum-checker.ts";
import { createRunDirectory } from "./run-directory.ts";
import { type HostObserver, SimNodeHost, simAddress, simNodeConfig } from "./sim-node.ts";
import { Workload } from "./workload.ts";

export type FaultKind =
  | "crash"
  | "leader-crash"
  | "partition"
  | "leader-isolation"
  | "one-way-partition"
  | "pause"
  | "db-damage";

/**
 * `load`: random client operations and their retries; `retries` alone: only retries; `faults`:
 * random faults; `members`: the operator's membership episodes (`schedule` starts new ones,
 * `finish` only completes the current one); `failover`: the failover operator's.
 */
export type TickOptions = {
  readonly load?: boolean;
  readonly retries?: boolean;
  readonly faults?: boolean;
  readonly members?: "schedule" | "finish";
  /** The failover operator (`failover-operator.ts`): `schedule` also starts pause and mode episodes. */
  readonly failover?: "schedule" | "finish";
};

/** Rounds of `soon` callbacks within one settle of a tick (`settleAll`). */
const soonRoundsMax = 100;

/** Every this many ticks the pairwise log-matching check and the content-hash sample run. */
const deepCheckEveryTicks = 50;

export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class SimCluster {
  readonly options: SimOptions;
  readonly prng: Prng;
  /** Decides storage damage only, so that adding it left every other draw of a seed as it was. */
  private readonly damagePrng: Prng;
  readonly nodes: SimNodeHost[] = [];
  readonly network: SimNetwork;
  readonly workload: Workload;
  readonly checker: SafetyChecker;
  readonly operator: MemberOperator;
  readonly failoverOperator: FailoverOperator;
  readonly failoverChecker: FailoverChecker;
  /** The id of the node that may join as a read replica (one past the initial voters). */
  readonly spareId: NodeId;
  /** Nodes the operator holds down: never restarted by the fault schedule or the heal. */
  readonly held = new Set<NodeId>();
  readonly faults: Record<FaultKind, number> = {
    crash: 0,
    "leader-crash": 0,
    partition: 0,
    "leader-isolation": 0,
    "one-way-partition": 0,
    pause: 0,
    "db-damage": 0,
  };
  readonly discarded: { node: NodeId; index: number; term: number }[] = [];
  /** Snapshot events logged by the nodes (taken, installed, sent, refused …), by name. */
  readonly storageEvents: Record<string, number> = {};
  readonly directory: string;
  nowTick = 0;
  elections = 0;
  /** Real elections started (candidacies), pre-vote rounds excluded. */
  votingRounds = 0;
  /** Verbose trace lines (for `--seed N` replays); null when not tracing. */
  trace: string[] | null = null;
  /** The first violation seen inside a step, or a node that stopped on its fatal path (always a violation here). */
  fatal: SimViolation | null = null;
  private readonly restartAt = new Map<NodeId, number>();
  private partitionHealAt: number | null = null;

  constructor(options: SimOptions) {
    this.options = options;
    this.prng = new Prng(options.seed ^ 0x5eed);
    this.damagePrng = new Prng(options.seed ^ 0xdb);
    this.network = new SimNetwork(this.prng, {
      dropRate: options.dropRate,
      duplicateRate: options.duplicateRate,
      delayTicksMin: options.delayTicksMin,
      delayTicksMax: options.delayTicksMax,
    });
    const timeoutMs = options.proposalTimeoutTicks * simTickMs;
    this.workload = new Workload(
      this.prng,
      options.durabilityWeights,
      { nowTick: () => this.nowTick },
      timeoutMs,
    );
    this.directory = createRunDirectory(options.seed);
    const voters = Array.from({ length: options.nodeCount }, (_, i) => nodeId(`n${i + 1}`));
    const bootstrap: ClusterConfig = {
      voters,
      learners: [],
      addresses: Object.fromEntries(voters.map((id) => [id, simAddress(id)])),
    };
    for (const id of voters) this.nodes.push(this.createNode(id, bootstrap));
    this.spareId = nodeId(`n${options.nodeCount + 1}`);
    this.checker = new SafetyChecker((id) => this.durableImage(id));
    this.operator = new MemberOperator(this, new Prng(options.seed ^ 0x6e6d62));
    this.failoverChecker = new FailoverChecker(bootstrap);
    this.failoverOperator = new FailoverOperator(this, new Prng(options.seed ^ 0xfa11));
    this.workload.onServed = (sentTo, servedBy, refusal) => {
      try {
        const isWitness = (id: string) => this.host(id)?.node?.isWitness() === true;
        this.failoverChecker.onServed(sentTo, servedBy, refusal, isWitness);
      } catch (error) {
        if (!(error instanceof SimViolation)) throw error;
        this.fatal ??= error;
      }
    };
  }

  /** Boots every node; call once before the first tick. */
  async start(): Promise<void> {
    for (const node of this.nodes) await node.boot();
    await settle();
  }

  /** Closes every store and removes the run's files. */
  async dispose(): Promise<void> {
    for (const node of this.nodes) await node.dispose();
    fs.rmSync(this.directory, { recursive: true, force: true });
  }

  private createNode(id: NodeId, bootstrap: ClusterConfig): SimNodeHost {
    return new SimNodeHost({
      config: simNodeConfig(this.options, id, bootstrap),
      directory: path.join(this.directory, id),
      prng: this.prng,
      fsyncTicksMax: this.options.fsyncTicksMax,
      network: this.network,
      clock: { nowTick: () => this.nowTick, nowMs: () => this.nowTick * simTickMs },
      hooks: this.hooks,
    });
  }

  /** What a node holds durably, dead or alive: its simulated disk and its complete snapshot files. */
  private durableImage(id: string): DurableImage | null {
    const host = this.host(id);
    if (host === undefined) return null;
    const disk = host.disk;
    return {
      entries: disk.entries,
      compactedThrough: disk.point.index,
      snapshotIndex: () => listSnapshots(host.snapshotDirectory).at(-1)?.index ?? 0,
    };
  }

  private readonly hooks: HostObserver = {
    observer: (host) => ({
      stepped: (input, effects) => this.onEffects(host, input, effects),
      applied: () => {},
    }),
    discarded: (host, entries) => {
      for (const entry of entries)
        this.discarded.push({ node: host.id, index: entry.index, term: entry.term });
    },
    logged: (_host, event) => {
      if (/^(snapshot|consistency|store|wal)\./.test(event))
        this.storageEvents[event] = (this.storageEvents[event] ?? 0) + 1;
    },
    fatal: (host, error) => {
      this.fatal ??= new SimViolation(
        "node-fatal",
        `node ${host.id} stopped: ${error.stack ?? error.message}`,
      );
    },
  };

  private onEffects(node: SimNodeHost, input: Input, effects: Effects): void {
    if (this.trace !== null) {
      const lines = formatEffects(effects);
      if (lines.length > 0 || input.type !== "tick")
        this.trace.push(
          `[${this.nowTick}] ${node.id} ${describeInput(input)}`,
          ...lines.map((line) => `    ${line}`),
        );
    }
    // A violation is the run's failure, not the node's: record it for `tick` to throw, rather than
    // let it reach the node's own fatal path through the observer.
    try {
      this.checker.onEffects(node, effects);
      this.failoverChecker.onStep(node, input, effects);
    } catch (error) {
      if (!(error instanceof SimViolation)) throw error;
      this.fatal ??= error;
    }
    for (const event of effects.events) {
      if (event.type === "election-won" && !event.preVote) this.elections++;
      if (event.type === "election-started" && !event.preVote) this.votingRounds++;
    }
  }

  node(id: string): SimNodeHost {
    const found = this.host(id);
    assert(found !== undefined, `no node ${id}`);
    return found;
  }

  host(id: string): SimNodeHost | undefined {
    return this.nodes.find((node) => node.id === id);
  }

  get ids(): NodeId[] {
    return this.nodes.map((node) => node.id);
  }

  running(): SimNodeHost[] {
    return this.nodes.filter((node) => node.alive && node.pausedUntilTick <= this.nowTick);
  }

  /**
   * Settles every promise, then runs the running nodes' `soon` callbacks and settles again, until
   * none asks for more (at most `soonRoundsMax` rounds: more is a node that never lets a turn end).
   */
  private async settleAll(): Promise<void> {
    await settle();
    for (let round = 0; this.running().filter((node) => node.fireSoon()).length > 0; round++) {
      if (round >= soonRoundsMax) throw new Error(`soon callbacks still asked for after ${round} rounds`);
      await settle();
    }
  }

  /** Advances simulated time by one tick (see the module header). */
  async tick(options: TickOptions = {}): Promise<void> {
    this.nowTick++;
    for (const node of this.running()) node.completePersists(this.nowTick);
    await this.settleAll();
    // Background file work: wait for the real work of every machine, then hand results back in
    // machine order, synchronously, so no real timing decides which continuation runs first.
    await Promise.all(this.running().map((node) => node.io.ready()));
    for (const node of this.running()) node.io.handBack();
    await this.settleAll();
    this.deliverPackets();
    for (const node of this.running()) node.fireTimers();
    await this.settleAll();
    if (options.faults === true) await this.injectFaults();
    if (options.members !== undefined) await this.operator.tick(options.members);
    if (options.failover !== undefined) await this.failoverOperator.tick(options.failover);
    if (options.load === true) this.clientLoad();
    else if (options.retries === true) this.workload.startRetries(this.running());
    await this.settleAll();
    if (this.fatal !== null) throw this.fatal;
    this.failoverChecker.checkHandOver(this.nodes, this.couldHandOver(), this.handOverBoundTicks());
    if (this.nowTick % deepCheckEveryTicks === 0) this.deepCheck();
  }

  /** A tick in which a leader that may not lead could hand over: no partition, every node running and none held. */
  private couldHandOver(): boolean {
    // A node the operator holds down counts as down: the target may need it (a witness sends no
    // snapshot, so a voter behind its compaction point is caught up only by a data node's).
    return (
      this.partitionHealAt === null &&
      this.held.size === 0 &&
      this.nodes.every((node) => node.alive && node.pausedUntilTick <= this.nowTick)
    );
  }

  /**
   * How long a leader that may not lead may keep office while it could hand over: the target may
   * need the whole backlog before the transfer's `timeoutNow`, and a few transfers may time out on a
   * lossy network before one succeeds.
   */
  handOverBoundTicks(): number {
    const o = this.options;
    const roundTripTicks = 2 * o.delayTicksMax + o.fsyncTicksMax + o.heartbeatTicks;
    const lastIndex = Math.max(...this.nodes.map((node) => node.core?.summary().lastIndex ?? 0));
    const batchesBehind = Math.ceil(
      lastIndex / (o.appendEntriesBatchEntriesMax * o.appendEntriesInflightMax),
    );
    return 2 * electionBoundTicks(o) + (batchesBehind + 20) * roundTripTicks;
  }

  /** The costly checks: log matching across nodes, and content hashes at equal applied indexes. */
  deepCheck(): void {
    for (const id of this.checker.damagedOnPurpose) {
      if (this.node(id).node?.status().storage.verified === true) this.checker.damagedOnPurpose.delete(id);
    }
    this.checker.checkLogMatching(this.nodes);
    for (const node of this.nodes) if (node.alive) this.checker.checkContent(node);
  }

  private deliverPackets(): void {
    for (const packet of this.network.takeDue(this.nowTick)) {
      const target = this.node(packet.to);
      if (!target.alive) continue;
      if (target.pausedUntilTick > this.nowTick) {
        this.network.postpone(packet, target.pausedUntilTick);
        continue;
      }
      target.deliver(packet.from, packet.body);
    }
  }

  /** The random client load of one tick, and the retries due. */
  clientLoad(): void {
    const live = this.running();
    this.workload.startRetries(live);
    if (this.prng.chance(this.options.proposeRate)) this.workload.startRandom(live, this.readReplicas(live));
  }

  /** Live nodes that are learners of their own configuration: read replicas. */
  private readReplicas(live: readonly SimNodeHost[]): SimNodeHost[] {
    return live.filter((node) => node.core?.summary().clusterConfig.learners.includes(node.id) === true);
  }

  /** Whether every running node's configuration has at least `count` voters. */
  private votersEverywhereAtLeast(count: number): boolean {
    return this.nodes.every((n) => n.core === null || n.core.summary().clusterConfig.voters.length >= count);
  }

  /** The random faults of one tick (safety phase only). */
  async injectFaults(): Promise<void> {
    const o = this.options;
    for (const [id, at] of this.restartAt) {
      if (at > this.nowTick) continue;
      this.restartAt.delete(id);
      // One damaged node at a time: with more, no majority need hold an intact copy. Nor with a
      // witness among 3 voters: of two copies, neither could be found the majority's. Nor with
      // fewer than three voters, or while a membership episode has a member out (wiped, removed):
      // each would be a second fault.
      const dataCopies = o.nodeCount - (o.witnessNode === null ? 0 : 1);
      if (
        this.checker.damagedOnPurpose.size === 0 &&
        dataCopies >= 3 &&
        this.damagePrng.chance(o.dbDamageRate) &&
        this.votersEverywhereAtLeast(3) &&
        this.operator.idle
      )
        this.damageWhileDown(id);
      await this.restart(id);
    }
    if (this.partitionHealAt !== null && this.partitionHealAt <= this.nowTick) this.healPartitions();
    if (this.prng.chance(o.crashRate)) {
      const alive = this.nodes.filter((node) => node.alive);
      if (alive.length > 0)
        this.crash(this.prng.pick(alive).id, this.nowTick + this.prng.intBetween(1, o.downTicksMax));
    }
    const leader = this.currentLeader();
    if (this.prng.chance(o.leaderCrashRate) && leader !== null) {
      this.crash(leader.id, this.nowTick + this.prng.intBetween(1, o.downTicksMax));
      this.faults.crash--;
      this.faults["leader-crash"]++;
    }
    if (this.partitionHealAt === null && this.prng.chance(o.leaderIsolateRate) && leader?.alive === true) {
      this.network.isolate(leader.id, this.ids);
      this.partitionHealAt = this.nowTick + this.prng.intBetween(1, this.options.partitionTicksMax);
      this.faults["leader-isolation"]++;
    }
    if (this.partitionHealAt === null && this.prng.chance(o.partitionRate)) this.randomPartition();
    if (this.prng.chance(o.pauseRate)) {
      const node = this.prng.pick(this.nodes);
      node.pausedUntilTick = this.nowTick + this.prng.intBetween(1, o.pauseTicksMax);
      this.faults.pause++;
    }
  }

  /** Changes a row of a stopped node's database; the checker leaves it alone until it is verified again. */
  damageWhileDown(id: NodeId): void {
    const node = this.node(id);
    // Damage differs from one event to the next, as independent faults do.
    const table = this.damagePrng.chance(0.5) ? "events" : "lists";
    if (!node.changeRowSilently(this.damagePrng.intBetween(1_000_000, 2_000_000), table)) return;
    this.checker.damagedOnPurpose.add(id);
    this.faults["db-damage"]++;
    this.trace?.push(`[${this.nowTick}] ${id} DB-DAMAGE`);
  }

  /** The node that leads in the highest term (a deposed leader may not know it yet). */
  private currentLeader(): SimNodeHost | null {
    let best: SimNodeHost | null = null;
    for (const node of this.nodes) {
      const summary = node.core?.summary();
      if (summary?.role !== "leader") continue;
      if (best === null || (best.core?.summary().term ?? 0) < summary.term) best = node;
    }
    return best;
  }

  private randomPartition(): void {
    const ids = this.ids;
    const until = this.nowTick + this.prng.intBetween(1, this.options.partitionTicksMax);
    if (this.prng.chance(this.options.oneWayPartitionChance)) {
      const cuts = this.prng.intBetween(1, ids.length);
      for (let i = 0; i < cuts; i++) {
        const from = this.prng.pick(ids);
        this.network.cut(from, this.prng.pick(ids.filter((id) => id !== from)));
      }
      this.faults["one-way-partition"]++;
    } else {
      const shuffled = [...ids];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = this.prng.intBetween(0, i);
        [shuffled[i], shuffled[j]] = [shuffled[j] as NodeId, shuffled[i] as NodeId];
      }
      const size = this.prng.intBetween(1, ids.length - 1);
      this.network.partition(shuffled.slice(0, size), shuffled.slice(size));
      this.faults.partition++;
    }
    this.partitionHealAt = until;
  }

  crash(id: NodeId, restartAtTick: number | null = null): void {
    const node = this.node(id);
    if (!node.alive) return;
    node.crash();
    this.workload.nodeCrashed(id);
    this.faults.crash++;
    this.trace?.push(`[${this.nowTick}] ${id} CRASH`);
    if (restartAtTick !== null) this.restartAt.set(id, restartAtTick);
  }

  async restart(id: NodeId): Promise<void> {
    const node = this.node(id);
    if (node.alive || this.held.has(id)) return;
    await node.boot();
    this.trace?.push(`[${this.nowTick}] ${id} RESTART`);
  }

  /** The operator stops a node (or keeps a crashed one down) until `release` or `bootJoined`. */
  hold(id: NodeId): void {
    const node = this.node(id);
    this.held.add(id);
    this.restartAt.delete(id);
    if (!node.alive) return;
    node.crash();
    this.workload.nodeCrashed(id);
    this.trace?.push(`[${this.nowTick}] ${id} STOP (operator)`);
  }

  /** The operator starts a node it held down, from what its disk holds. */
  async release(id: NodeId): Promise<void> {
    this.held.delete(id);
    await this.restart(id);
  }

  /**
   * The operator wipes a held node's disk: what it held is remembered for the commit oracle, and
   * anything it sent that is still in flight is dropped (its connections died long ago).
   */
  async wipe(id: NodeId): Promise<void> {
    assert(this.held.has(id), `wipe of ${id}, which the operator does not hold down`);
    const image = this.durableImage(id);
    if (image !== null) this.checker.quorum.rememberWiped(id, image);
    this.network.dropFrom(id);
    await this.node(id).wipe();
    this.trace?.push(`[${this.nowTick}] ${id} WIPED`);
  }

  /** A new host for a node about to join (held down until its join is answered). */
  addHost(id: NodeId): SimNodeHost {
    assert(this.host(id) === undefined, `${id} exists`);
    const host = this.createNode(id, { voters: [], learners: [id] });
    this.nodes.push(host);
    this.held.add(id);
    return host;
  }

  /** A joined node starts, empty, from the configuration its join answer named. */
  async bootJoined(id: NodeId, config: ClusterConfig): Promise<void> {
    const host = this.node(id);
    assert(!host.alive && this.held.has(id), `${id} joins while down and held`);
    host.reconfigure(simNodeConfig(this.options, id, config));
    this.trace?.push(`[${this.nowTick}] ${id} JOINED as ${config.voters.includes(id) ? "voter" : "learner"}`);
    await this.release(id);
  }

  healPartitions(): void {
    this.network.healPartitions();
    this.partitionHealAt = null;
    this.trace?.push(`[${this.nowTick}] HEAL partitions`);
  }

  /** Ends every fault: restarts crashed nodes, resumes paused ones, heals partitions, stops drops. */
  async healAll(): Promise<void> {
    for (const node of this.nodes) {
      if (!node.alive && !this.held.has(node.id)) await this.restart(node.id);
      node.pausedUntilTick = 0;
    }
    this.restartAt.clear();
    this.healPartitions();
    this.network.faults = { ...this.network.faults, dropRate: 0, duplicateRate: 0 };
  }

  /**
   * The leader every member recognises in one term, or null while there is none. The members are
   * those of the leader's configuration, less the nodes the operator holds down. A leader only
   * counts once it works: it is a voter, heard from a majority of the voters within an election
   * timeout, and committed an entry of its term (a deposed leader whose followers have not yet
   * noticed does not count).
   */
  stableLeader(): SimNodeHost | null {
    const leader = this.currentLeader();
    const core = leader?.core;
    if (leader === null || core === null || core === undefined) return null;
    const status = core.status();
    const { voters, learners } = status.clusterConfig;
    if (!voters.includes(leader.id)) return null;
    const agreed = [...voters, ...learners].every((id) => {
      if (this.held.has(id)) return true;
      const other = this.host(id)?.core?.summary();
      return other !== undefined && other.term === status.term && other.leaderId === leader.id;
    });
    if (!agreed || core.termAt(status.commitIndex) !== status.term) return null;
    const timeout = core.config.electionTimeoutTicks;
    const heard =
      status.members.filter((member) => member.role === "voter" && member.lastHeardTicksAgo <= timeout)
        .length + 1;
    return heard >= quorumSize(voters.length) ? leader : null;
  }

  /** The members of the stable leader's configuration (voters and learners), or null without one. */
  members(): SimNodeHost[] | null {
    const config = this.stableLeader()?.core?.summary().clusterConfig;
    if (config === undefined) return null;
    return [...config.voters, ...config.learners].map((id) => this.node(id));
  }

  /** Runs `ticks` ticks (with client load and faults when asked). */
  async run(ticks: number, options: TickOptions = {}): Promise<void> {
    for (let i = 0; i < ticks; i++) await this.tick(options);
  }

  /** Ticks until `condition` holds, at most `ticksMax`; returns the ticks taken or null on timeout. */
  async runUntil(
    condition: () => boolean,
    ticksMax: number,
    options: TickOptions = {},
  ): Promise<number | null> {
    for (let ticks = 0; ticks <= ticksMax; ticks++) {
      if (condition()) return ticks;
      await this.tick(options);
    }
    return null;
  }
}

function describeInput(input: Input): string {
  switch (input.type) {
    case "message":
      return `receive ${input.message.type} from ${input.message.from} term=${input.message.term}`;
    case "propose":
      return `propose ${input.proposalId} ${input.durability ?? "default"}`;
    case "persisted":
      return `persisted ${input.index}/${input.term}`;
    case "applied":
      return `applied ${input.index}`;
    default:
      return input.type;
  }
}
