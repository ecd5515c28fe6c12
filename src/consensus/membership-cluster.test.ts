/**
 * Randomized safety test of membership changes over a seeded cluster of cores.
 *
 * Five cores share a lossy, reordering network. Nodes 1–3 start as the voters; 4 and 5 start
 * outside the configuration (each knows itself as a learner-to-be). Every step the seeded generator
 * picks one action: deliver or drop a message, tick a node, read, propose a write, ask a would-be
 * leader for a random membership change (add learner, promote, demote, remove, of any node, the
 * leader included), transfer leadership, force a campaign, cut or heal a link, restart a node from
 * its durable state, or compact a node's log.
 * The host is the simplest correct one: every Effects is durable at once, committed entries are
 * applied at once, a snapshot is "sent" as its header.
 *
 * Reads go through the read index, on the leader and (when the seed turns `followerReadIndex` on)
 * through it on followers and learners.
 *
 * Checkers, after every step:
 *  - election safety (Raft §5.2): never two leaders in one term;
 *  - committed-prefix agreement (§5.4.3): every node's entries up to its commit index agree with
 *    every other node's;
 *  - leader completeness (§5.4): a node that becomes leader holds every entry committed so far;
 *  - §4.2.2: a leader is a voter of its configuration unless that configuration is uncommitted;
 *  - read linearizability (thesis §6.4): a read is never ready at an index below an entry that was
 *    committed anywhere before the read was asked.
 * The core's own assertions run too. A failure prints `SEED=…`; run with that environment variable
 * to replay one seed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Prng } from "../lib/prng.ts";
import { type LogIndex, logIndex, type NodeId, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { isVoter, type MembershipChange, membershipChangeKinds } from "./cluster-config.ts";
import type { Effects } from "./effects.ts";
import type { Message } from "./messages.ts";
import { RaftCore } from "./raft-core.ts";

const ids = ["1", "2", "3", "4", "5"].map(nodeId);
const bootstrapVoters = ids.slice(0, 3);
/** Seeds run by default; each is a whole, independent cluster history. */
const seedCount = Number(process.env.MEMBERSHIP_SEEDS ?? 240);
/** Actions per seed. */
const stepsPerSeed = 700;
/** Messages in flight beyond which the oldest are dropped (a bound on the simulated network). */
const inflightMessagesMax = 400;

type Options = {
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly followerReadIndex: boolean;
};

class Cluster {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly network: Message[] = [];
  readonly blocked = new Set<string>();
  /** Entry (term and data) committed at each index, as first seen committed anywhere. */
  readonly committed = new Map<number, string>();
  readonly leaders = new Map<number, NodeId>();
  readonly random: Prng;
  readonly options: Options;
  proposals = 0;
  changesAccepted = 0;
  readsReady = 0;
  /** Per read: the highest index committed anywhere when it was asked. */
  readonly readFloors = new Map<string, number>();

  constructor(seed: number) {
    this.random = new Prng(seed);
    this.options = {
      preVote: this.random.chance(0.7),
      checkQuorum: this.random.chance(0.7),
      followerReadIndex: this.random.chance(0.5),
    };
    for (const id of ids) this.cores.set(id, this.create(id, null));
  }

  core(id: NodeId): RaftCore {
    const core = this.cores.get(id);
    assert.ok(core !== undefined);
    return core;
  }

  private create(id: NodeId, from: RaftCore | null): RaftCore {
    const learners = bootstrapVoters.includes(id) ? [] : [id];
    const config = {
      id,
      voters: bootstrapVoters,
      learners,
      tickMs: 1,
      heartbeatIntervalMs: 1,
      missedHeartbeats: 5,
      electionJitter: 1,
      ...this.options,
      prng: new Prng(this.random.nextUint32()),
    };
    if (from === null) {
      return new RaftCore(config, {
        hardState: { term: term(0), votedFor: null },
        entries: [],
        snapshotIndex: logIndex(0),
        snapshotTerm: term(0),
        appliedIndex: logIndex(0),
      });
    }
    // Everything the old core held was durable (this host persists each Effects at once).
    const status = from.status();
    const entries: LogEntry[] = [];
    for (let index = status.snapshotIndex + 1; index <= status.lastIndex; index++) {
      const entry: LogEntry | undefined = from.entryAt(index);
      assert.ok(entry !== undefined);
      entries.push(entry);
    }
    return new RaftCore(config, {
      hardState: from.hardState(),
      entries,
      snapshotIndex: status.snapshotIndex,
      snapshotTerm: status.snapshotTerm,
      appliedIndex: status.appliedIndex,
      snapshotConfig: status.snapshotConfig,
    });
  }

  step(id: NodeId, input: Parameters<RaftCore["step"]>[0]): void {
    const core = this.core(id);
    const wasLeader = core.summary().role === "leader";
    const effects = core.step(input);
    this.carryOut(id, effects);
    if (!wasLeader && core.summary().role === "leader") this.checkNewLeader(id);
  }

  private carryOut(id: NodeId, effects: Effects): void {
    const core = this.core(id);
    for (const { message } of effects.messages) this.post(message);
    for (const needed of effects.snapshotNeeded) this.post(needed.message);
    for (const outcome of effects.proposals)
      if (outcome.accepted && outcome.proposalId.startsWith("c")) this.changesAccepted++;
    for (const ready of effects.readReady) {
      const floor = this.readFloors.get(ready.requestId);
      assert.ok(floor !== undefined, `unknown read ${ready.requestId}`);
      assert.ok(
        ready.index >= floor,
        `read ${ready.requestId} at ${ready.index} misses entry ${floor} committed before it`,
      );
      this.readFloors.delete(ready.requestId);
      this.readsReady++;
    }
    for (const rejected of effects.readRejected) this.readFloors.delete(rejected.requestId);
    const last = effects.entries.at(-1);
    if (last !== undefined) this.step(id, { type: "persisted", index: last.index, term: last.term });
    const { applyThrough, appliedIndex } = core.summary();
    if (applyThrough > appliedIndex) this.step(id, { type: "applied", index: applyThrough });
  }

  private post(message: Message): void {
    this.network.push(message);
    if (this.network.length > inflightMessagesMax) this.network.shift();
  }

  deliverOne(): void {
    if (this.network.length === 0) return;
    const at = this.random.intBetween(0, this.network.length - 1);
    const [message] = this.network.splice(at, 1);
    if (message === undefined) return;
    const lost = this.blocked.has(`${message.from}>${message.to}`) || this.random.chance(0.05);
    if (message.type === "installSnapshot") {
      this.step(
        message.from,
        lost ? { type: "snapshotFailed", peer: message.to } : { type: "message", message },
      );
      if (!lost) {
        this.step(message.to, { type: "message", message });
        const { snapshotIndex: index, snapshotTerm } = message;
        this.step(message.from, { type: "snapshotSent", peer: message.to, index, term: snapshotTerm });
      }
      return;
    }
    if (!lost) this.step(message.to, { type: "message", message });
  }

  randomChange(): MembershipChange {
    return { kind: this.random.pick(membershipChangeKinds), node: this.random.pick(ids) };
  }

  read(id: NodeId): void {
    const requestId = `r${++this.proposals}`;
    this.readFloors.set(requestId, Math.max(0, ...this.committed.keys()));
    this.step(id, { type: "readIndex", requestId });
  }

  restart(id: NodeId): void {
    this.cores.set(id, this.create(id, this.core(id)));
    // Messages in flight to a restarted node are as good as lost.
    for (let i = this.network.length - 1; i >= 0; i--)
      if (this.network[i]?.to === id) this.network.splice(i, 1);
  }

  compact(id: NodeId): void {
    const core = this.core(id);
    const { appliedIndex } = core.summary();
    const snapshotIndex = core.status().snapshotIndex;
    if (appliedIndex <= snapshotIndex || !this.random.chance(0.5)) return;
    const at = logIndex(this.random.intBetween(snapshotIndex + 1, appliedIndex));
    const atTerm = core.termAt(at);
    assert.ok(atTerm !== undefined);
    this.step(id, { type: "compact", index: at, term: atTerm });
  }

  check(): void {
    for (const [id, core] of this.cores) {
      const status = core.status();
      if (status.role === "leader") {
        const known = this.leaders.get(status.term);
        assert.ok(
          known === undefined || known === id,
          `two leaders in term ${status.term}: ${known} and ${id}`,
        );
        this.leaders.set(status.term, id);
        assert.ok(
          isVoter(status.clusterConfig, id) || status.clusterConfigIndex > status.commitIndex,
          `leader ${id} outside its committed configuration`,
        );
      }
      for (let index = status.snapshotIndex + 1; index <= status.commitIndex; index++)
        this.agree(id, logIndex(index), core.entryAt(index));
    }
  }

  private agree(id: NodeId, index: LogIndex, entry: LogEntry | undefined): void {
    assert.ok(entry !== undefined, `node ${id} lacks its committed entry ${index}`);
    const key = `${entry.term}:${entry.kind}:${Buffer.from(entry.data).toString("hex")}`;
    const known = this.committed.get(index);
    if (known === undefined) this.committed.set(index, key);
    else assert.equal(key, known, `node ${id} disagrees on committed entry ${index}`);
  }

  /** Leader completeness (Raft §5.4): a new leader holds every entry committed before it took office. */
  private checkNewLeader(id: NodeId): void {
    const core = this.core(id);
    const { snapshotIndex, lastIndex } = core.status();
    for (const [index, key] of this.committed) {
      assert.ok(index <= lastIndex, `new leader ${id} lacks committed entry ${index}`);
      if (index <= snapshotIndex) continue;
      const entry = core.entryAt(index);
      assert.ok(entry !== undefined);
      const own = `${entry.term}:${entry.kind}:${Buffer.from(entry.data).toString("hex")}`;
      assert.equal(own, key, `new leader ${id} holds a different entry at committed index ${index}`);
    }
  }
}

function leaderOr(cluster: Cluster, fallback: NodeId): NodeId {
  return ids.find((candidate) => cluster.core(candidate).summary().role === "leader") ?? fallback;
}

/** The actions and their weights; `id` is a node drawn for the step. */
const actions: readonly (readonly [number, (cluster: Cluster, id: NodeId) => void])[] = [
  [45, (cluster) => cluster.deliverOne()],
  [25, (cluster, id) => cluster.step(id, { type: "tick" })],
  [5, (cluster, id) => cluster.read(cluster.random.chance(0.5) ? leaderOr(cluster, id) : id)],
  [
    10,
    (cluster, id) => {
      const data = new TextEncoder().encode(`w${++cluster.proposals}`);
      const proposalId = `p${cluster.proposals}`;
      cluster.step(leaderOr(cluster, id), { type: "propose", proposalId, kind: EntryKind.command, data });
    },
  ],
  [
    7,
    (cluster, id) => {
      const proposalId = `c${++cluster.proposals}`;
      cluster.step(leaderOr(cluster, id), {
        type: "changeMembership",
        proposalId,
        change: cluster.randomChange(),
      });
    },
  ],
  [2, (cluster, id) => cluster.step(leaderOr(cluster, id), { type: "transferLeadership", target: id })],
  [1, (cluster, id) => cluster.step(id, { type: "campaign" })],
  [
    3,
    (cluster, id) => {
      const other = cluster.random.pick(ids);
      const link = `${id}>${other}`;
      if (cluster.blocked.has(link)) cluster.blocked.delete(link);
      else if (id !== other) cluster.blocked.add(link);
    },
  ],
  [1, (cluster, id) => cluster.restart(id)],
  [1, (cluster, id) => cluster.compact(id)],
];
const actionWeightTotal = actions.reduce((total, [weight]) => total + weight, 0);

function act(cluster: Cluster): void {
  const id = cluster.random.pick(ids);
  let roll = cluster.random.intBetween(0, actionWeightTotal - 1);
  for (const [weight, action] of actions) {
    if (roll < weight) {
      action(cluster, id);
      return;
    }
    roll -= weight;
  }
}

function runSeed(seed: number): Cluster {
  const cluster = new Cluster(seed);
  for (let step = 0; step < stepsPerSeed; step++) {
    try {
      act(cluster);
      cluster.check();
    } catch (error) {
      throw new Error(`SEED=${seed} step ${step}: ${(error as Error).message}`, { cause: error });
    }
  }
  return cluster;
}

test("membership changes keep election safety, committed-prefix agreement and leader completeness", () => {
  const only = process.env.SEED;
  const seeds = only === undefined ? Array.from({ length: seedCount }, (_, i) => i + 1) : [Number(only)];
  let commits = 0;
  let changes = 0;
  let leaderTerms = 0;
  let reads = 0;
  for (const seed of seeds) {
    const cluster = runSeed(seed);
    commits += cluster.committed.size;
    changes += cluster.changesAccepted;
    leaderTerms += cluster.leaders.size;
    reads += cluster.readsReady;
  }
  if (process.env.MEMBERSHIP_STATS === "1")
    console.log({ commits, changes, leaderTerms, reads, seeds: seeds.length });
  // The histories must not be vacuous: leaders come and go, changes and writes commit.
  if (only === undefined) {
    assert.ok(leaderTerms > seeds.length, `only ${leaderTerms} leader terms`);
    assert.ok(changes > seeds.length, `only ${changes} membership changes accepted`);
    assert.ok(commits > seeds.length * 10, `only ${commits} committed entries`);
    assert.ok(reads > seeds.length, `only ${reads} reads served`);
  }
});
