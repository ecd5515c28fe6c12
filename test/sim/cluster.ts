/**
 * A deterministic simulated cluster: nodes (hosts around cores), the network, simulated time, the
 * client workload and the safety checkers, all driven by one seeded generator.
 *
 * One `tick` of simulated time: complete due fsyncs, deliver due packets, tick every running node,
 * apply committed entries, let clients propose, and (in the safety phase) inject faults. Scripted
 * scenarios call the same methods (partition, crash, propose, transfer) instead of random faults.
 */

import { type Durability, quorumSize } from "../../src/consensus/config.ts";
import type { Effects } from "../../src/consensus/effects.ts";
import { formatEffects } from "../../src/consensus/golden-format.ts";
import type { Input } from "../../src/consensus/inputs.ts";
import type { Message } from "../../src/consensus/messages.ts";
import { assert } from "../../src/lib/assert.ts";
import { Prng } from "../../src/lib/prng.ts";
import { type NodeId, nodeId, type Term } from "../../src/types/ids.ts";
import { EntryKind } from "../../src/types/log-entry.ts";
import { SafetyChecker } from "./checkers.ts";
import { SimNetwork } from "./network.ts";
import { type SimOptions, simTickMs } from "./options.ts";
import { type NodeObserver, SimNode } from "./sim-node.ts";
import { encodeWriteId } from "./state-machine.ts";
import { proposalIdOf, Workload, type WriteRecord } from "./workload.ts";

export type FaultKind =
  | "crash"
  | "leader-crash"
  | "partition"
  | "leader-isolation"
  | "one-way-partition"
  | "pause";

type SnapshotTransfer = {
  readonly leader: NodeId;
  readonly leaderIncarnation: number;
  readonly peer: NodeId;
  readonly index: number;
  /** The leader's term when it asked for the snapshot: the installSnapshot header carries it. */
  readonly leaderTerm: Term;
  readonly dueTick: number;
  readonly ok: boolean;
};

/** Every this many ticks the pairwise log-matching check runs (it is the one costly checker). */
const logMatchingEveryTicks = 50;

export class SimCluster {
  readonly options: SimOptions;
  readonly prng: Prng;
  readonly nodes: SimNode[] = [];
  readonly network: SimNetwork;
  readonly workload: Workload;
  readonly checker: SafetyChecker;
  readonly faults: Record<FaultKind, number> = {
    crash: 0,
    "leader-crash": 0,
    partition: 0,
    "leader-isolation": 0,
    "one-way-partition": 0,
    pause: 0,
  };
  readonly discarded: { node: NodeId; index: number; term: number }[] = [];
  nowTick = 0;
  elections = 0;
  /** Real elections started (candidacies), pre-vote rounds excluded. */
  votingRounds = 0;
  /** Verbose trace lines (for `--seed N` replays); null when not tracing. */
  trace: string[] | null = null;
  private readonly restartAt = new Map<NodeId, number>();
  private partitionHealAt: number | null = null;
  private snapshotTransfers: SnapshotTransfer[] = [];

  constructor(options: SimOptions) {
    this.options = options;
    this.prng = new Prng(options.seed ^ 0x5eed);
    this.network = new SimNetwork(this.prng, {
      dropRate: options.dropRate,
      duplicateRate: options.duplicateRate,
      delayTicksMin: options.delayTicksMin,
      delayTicksMax: options.delayTicksMax,
    });
    this.workload = new Workload(this.prng, options.durabilityWeights);
    this.checker = new SafetyChecker(this.workload);
    const voters = Array.from({ length: options.nodeCount }, (_, i) => nodeId(`n${i + 1}`));
    for (const id of voters) this.nodes.push(this.createNode(id, voters));
  }

  private createNode(id: NodeId, voters: NodeId[]): SimNode {
    const o = this.options;
    return new SimNode(
      {
        config: {
          id,
          voters,
          tickMs: simTickMs,
          heartbeatIntervalMs: o.heartbeatTicks * simTickMs,
          missedHeartbeats: o.missedHeartbeats,
          electionJitter: o.electionJitter,
          preVote: o.preVote,
          checkQuorum: o.checkQuorum,
          appendEntriesInflightMax: o.appendEntriesInflightMax,
          appendEntriesBatchEntriesMax: o.appendEntriesBatchEntriesMax,
          appendEntriesBatchBytesMax: o.appendEntriesBatchBytesMax,
          proposalTimeoutMs: o.proposalTimeoutTicks * simTickMs,
          unsafeTestBugs: o.unsafeTestBugs,
        },
        fsyncTicksMax: o.fsyncTicksMax,
        compactEveryEntries: o.compactEveryEntries,
      },
      this.prng,
      this.observer,
    );
  }

  private readonly observer: NodeObserver = {
    effects: (node, input, effects) => this.onEffects(node, input, effects),
    send: (node, message) => {
      assert(message.from === node.id, "a node sends as itself");
      this.network.send({ kind: "message", message }, this.nowTick);
    },
    applied: (node, entry) => this.checker.onApplied(node, entry),
  };

  private onEffects(node: SimNode, input: Input, effects: Effects): void {
    if (this.trace !== null) {
      const lines = formatEffects(effects);
      if (lines.length > 0 || input.type !== "tick") {
        this.trace.push(
          `[${this.nowTick}] ${node.id} ${describeInput(input)}`,
          ...lines.map((line) => `    ${line}`),
        );
      }
    }
    this.checker.onEffects(node, effects);
    this.workload.observe(node.id, effects, this.nowTick);
    for (const event of effects.events) {
      if (event.type === "election-won" && !event.preVote) this.elections++;
      if (event.type === "election-started" && !event.preVote) this.votingRounds++;
    }
    for (const entry of effects.discarded)
      this.discarded.push({ node: node.id, index: entry.index, term: entry.term });
    for (const need of effects.snapshotNeeded) this.startSnapshotTransfer(node, need.peer, need.message.term);
  }

  node(id: string): SimNode {
    const found = this.nodes.find((node) => node.id === id);
    assert(found !== undefined, `no node ${id}`);
    return found;
  }

  get ids(): NodeId[] {
    return this.nodes.map((node) => node.id);
  }

  running(): SimNode[] {
    return this.nodes.filter((node) => node.alive && node.pausedUntilTick <= this.nowTick);
  }

  /** Advances simulated time by one tick. */
  tick(): void {
    this.nowTick++;
    for (const node of this.running()) node.completePersists(this.nowTick);
    this.deliverPackets();
    this.deliverSnapshots();
    for (const node of this.running()) node.step({ type: "tick" }, this.nowTick);
    for (const node of this.running()) node.apply(this.nowTick);
    if (this.nowTick % logMatchingEveryTicks === 0) this.checker.checkLogMatching(this.nodes);
  }

  private deliverPackets(): void {
    for (const packet of this.network.takeDue(this.nowTick)) {
      const target = this.node(packet.message.to);
      if (!target.alive) continue;
      if (target.pausedUntilTick > this.nowTick) {
        this.network.postpone(packet, target.pausedUntilTick);
        continue;
      }
      target.step({ type: "message", message: packet.message }, this.nowTick);
    }
  }

  private startSnapshotTransfer(leader: SimNode, peer: NodeId, leaderTerm: Term): void {
    const snapshot = leader.durable.snapshot;
    assert(snapshot !== null, "a leader asked for a snapshot it does not have");
    const ok = !this.network.isBlocked(leader.id, peer) && !this.prng.chance(this.network.faults.dropRate);
    const delay = this.prng.intBetween(this.options.delayTicksMin, this.options.delayTicksMax * 2);
    this.snapshotTransfers.push({
      leader: leader.id,
      leaderIncarnation: leader.incarnation,
      peer,
      index: snapshot.index,
      leaderTerm,
      dueTick: this.nowTick + delay,
      ok,
    });
  }

  private deliverSnapshots(): void {
    const due = this.snapshotTransfers.filter((transfer) => transfer.dueTick <= this.nowTick);
    if (due.length === 0) return;
    this.snapshotTransfers = this.snapshotTransfers.filter((transfer) => transfer.dueTick > this.nowTick);
    for (const transfer of due) {
      const leader = this.node(transfer.leader);
      const peer = this.node(transfer.peer);
      const leaderCore = leader.incarnation === transfer.leaderIncarnation ? leader.core : null;
      const snapshot = leader.durable.snapshot;
      const delivered =
        transfer.ok &&
        peer.alive &&
        snapshot !== null &&
        snapshot.index === transfer.index &&
        leaderCore !== null;
      if (delivered) {
        const message: Message = {
          type: "installSnapshot",
          from: leader.id,
          to: peer.id,
          term: transfer.leaderTerm,
          snapshotIndex: snapshot.index,
          snapshotTerm: snapshot.term,
        };
        peer.receiveSnapshot(snapshot, message, this.nowTick);
      }
      if (leaderCore === null) continue;
      const input: Input = delivered
        ? { type: "snapshotSent", peer: peer.id, index: snapshot.index, term: snapshot.term }
        : { type: "snapshotFailed", peer: peer.id };
      leader.step(input, this.nowTick);
    }
  }

  /** A client write of `durability` to `target`; returns its record. */
  propose(
    target: NodeId,
    durability: Durability,
    timeoutTicks = this.options.proposalTimeoutTicks,
  ): WriteRecord {
    const record = this.workload.begin(target, durability, this.nowTick);
    const input: Input = {
      type: "propose",
      proposalId: proposalIdOf(record.writeId),
      kind: EntryKind.command,
      data: encodeWriteId(record.writeId),
      durability,
      timeoutTicks,
    };
    if (this.node(target).step(input, this.nowTick) === null) record.state = "rejected";
    return record;
  }

  /** The random client load of one tick. */
  clientLoad(): void {
    if (!this.prng.chance(this.options.proposeRate)) return;
    const target = this.workload.chooseTarget(this.running().map((node) => node.id));
    if (target !== null) this.propose(target, this.workload.chooseDurability());
  }

  /** The random faults of one tick (safety phase only). */
  injectFaults(): void {
    const o = this.options;
    for (const [id, at] of this.restartAt) {
      if (at > this.nowTick) continue;
      this.restartAt.delete(id);
      this.restart(id);
    }
    if (this.partitionHealAt !== null && this.partitionHealAt <= this.nowTick) this.healPartitions();
    if (this.prng.chance(o.crashRate)) {
      const alive = this.nodes.filter((node) => node.alive);
      if (alive.length > 0)
        this.crash(this.prng.pick(alive).id, this.nowTick + this.prng.intBetween(1, o.downTicksMax));
    }
    if (this.prng.chance(o.leaderCrashRate)) {
      const leader = this.nodes.find((node) => node.core?.status().role === "leader");
      if (leader !== undefined) {
        this.crash(leader.id, this.nowTick + this.prng.intBetween(1, o.downTicksMax));
        this.faults.crash--;
        this.faults["leader-crash"]++;
      }
    }
    if (this.partitionHealAt === null && this.prng.chance(o.leaderIsolateRate)) {
      const leader = this.nodes.find((node) => node.core?.status().role === "leader");
      if (leader !== undefined) {
        this.network.isolate(leader.id, this.ids);
        this.partitionHealAt = this.nowTick + this.prng.intBetween(1, this.options.partitionTicksMax);
        this.faults["leader-isolation"]++;
      }
    }
    if (this.partitionHealAt === null && this.prng.chance(o.partitionRate)) this.randomPartition();
    if (this.prng.chance(o.pauseRate)) {
      const node = this.prng.pick(this.nodes);
      node.pausedUntilTick = this.nowTick + this.prng.intBetween(1, o.pauseTicksMax);
      this.faults.pause++;
    }
  }

  private randomPartition(): void {
    const ids = this.ids;
    const until = this.nowTick + this.prng.intBetween(1, this.options.partitionTicksMax);
    if (this.prng.chance(this.options.oneWayPartitionChance)) {
      const cuts = this.prng.intBetween(1, ids.length);
      for (let i = 0; i < cuts; i++) {
        const from = this.prng.pick(ids);
        const to = this.prng.pick(ids.filter((id) => id !== from));
        this.network.cut(from, to);
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
    this.faults.crash++;
    this.trace?.push(`[${this.nowTick}] ${id} CRASH`);
    if (restartAtTick !== null) this.restartAt.set(id, restartAtTick);
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.alive) return;
    node.restart();
    this.trace?.push(`[${this.nowTick}] ${id} RESTART`);
  }

  healPartitions(): void {
    this.network.healPartitions();
    this.partitionHealAt = null;
    this.trace?.push(`[${this.nowTick}] HEAL partitions`);
  }

  /** Ends every fault: restarts crashed nodes, resumes paused ones, heals partitions, stops drops. */
  healAll(): void {
    for (const node of this.nodes) {
      if (!node.alive) this.restart(node.id);
      node.pausedUntilTick = 0;
    }
    this.restartAt.clear();
    this.healPartitions();
    this.network.faults = { ...this.network.faults, dropRate: 0, duplicateRate: 0 };
  }

  /**
   * The leader every node recognises in one term, or null while there is none. A leader only counts
   * once it works: it heard from a majority within an election timeout and committed an entry of its
   * term (a deposed leader whose followers have not yet noticed does not count).
   */
  stableLeader(): SimNode | null {
    const leader = this.nodes.find((node) => node.core?.status().role === "leader");
    const core = leader?.core;
    if (leader === undefined || core === undefined || core === null) return null;
    const status = core.status();
    const agreed = this.nodes.every((node) => {
      const other = node.core?.status();
      return other !== undefined && other.term === status.term && other.leaderId === leader.id;
    });
    if (!agreed || core.termAt(status.commitIndex) !== status.term) return null;
    const timeout = core.config.electionTimeoutTicks;
    const heard = status.members.filter((member) => member.lastHeardTicksAgo <= timeout).length + 1;
    return heard >= quorumSize(this.nodes.length) ? leader : null;
  }

  /** Runs `ticks` ticks (with client load and faults when asked). */
  run(ticks: number, options: { load?: boolean; faults?: boolean } = {}): void {
    for (let i = 0; i < ticks; i++) {
      this.tick();
      if (options.faults === true) this.injectFaults();
      if (options.load === true) this.clientLoad();
    }
  }

  /** Ticks until `condition` holds, at most `ticksMax`; returns the ticks taken or null on timeout. */
  runUntil(condition: () => boolean, ticksMax: number, options: { load?: boolean } = {}): number | null {
    for (let ticks = 0; ticks <= ticksMax; ticks++) {
      if (condition()) return ticks;
      this.tick();
      if (options.load === true) this.clientLoad();
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
