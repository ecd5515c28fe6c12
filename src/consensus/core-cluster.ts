/**
 * A seeded cluster of cores for the randomized safety tests (`membership-cluster.test.ts`,
 * `failover-cluster.test.ts`): a lossy, reordering network, restarts from durable state, log
 * compaction, and the checkers of `cluster-checkers.ts` run on every step. Pure: everything comes
 * from the seed, so a failing seed replays exactly.
 *
 * The host is the simplest correct one: every Effects is durable at once, committed entries are
 * applied at once, a snapshot is "sent" as its header (the harness has no state machine).
 */
import { assert } from "../lib/assert.ts";
import { Prng } from "../lib/prng.ts";
import { logIndex, type NodeId, term } from "../types/ids.ts";
import type { LogEntry } from "../types/log-entry.ts";
import { ClusterCheckers } from "./cluster-checkers.ts";
import { type ClusterConfig, isVoter, mayLead } from "./cluster-config.ts";
import type { UnsafeTestBugs } from "./config.ts";
import type { Effects } from "./effects.ts";
import type { Input } from "./inputs.ts";
import type { Message } from "./messages.ts";
import { RaftCore } from "./raft-core.ts";

/** Messages in flight beyond which the oldest are dropped (a bound on the simulated network). */
export const inflightMessagesMax = 400;

export type ClusterSetup = {
  readonly ids: readonly NodeId[];
  /** The bootstrap voters; every other id starts as a learner-to-be that knows only itself. */
  readonly bootstrapVoters: readonly NodeId[];
  readonly bugs?: UnsafeTestBugs;
  /**
   * The failover settings and member attributes the cluster starts with (default none): the
   * configuration at index 0, as if the nodes had been installed from a snapshot holding it.
   */
  readonly initialFailover?: Pick<ClusterConfig, "failover" | "members">;
  /** Heartbeats (one per tick) a follower misses before its election timer fires. Default 5. */
  readonly missedHeartbeats?: number;
  /** Called with every input stepped and its Effects, for reading a replayed seed. */
  readonly trace?: (id: NodeId, input: Input, effects: Effects) => void;
};

type Options = {
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly followerReadIndex: boolean;
};

export class CoreCluster {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly network: Message[] = [];
  readonly blocked = new Set<string>();
  readonly random: Prng;
  readonly options: Options;
  readonly setup: ClusterSetup;
  readonly checkers: ClusterCheckers;
  /** How many times each event type occurred (handoffs also by reason): the histories must not be vacuous. */
  readonly eventCounts = new Map<string, number>();
  proposals = 0;
  changesAccepted = 0;
  readsReady = 0;
  /** Steps after which some node led (a history with no leader most of the time tests little). */
  stepsWithLeader = 0;

  constructor(seed: number, setup: ClusterSetup) {
    this.setup = setup;
    this.random = new Prng(seed);
    this.options = {
      preVote: this.random.chance(0.7),
      checkQuorum: this.random.chance(0.7),
      followerReadIndex: this.random.chance(0.5),
    };
    this.checkers = new ClusterCheckers(this.initialConfig(null));
    for (const id of setup.ids) this.cores.set(id, this.create(id, null));
  }

  core(id: NodeId): RaftCore {
    const core = this.cores.get(id);
    assert(core !== undefined, `no core ${id}`);
    return core;
  }

  /** The current leader (the first found), else `fallback`. */
  leaderOr(fallback: NodeId): NodeId {
    return this.setup.ids.find((id) => this.core(id).summary().role === "leader") ?? fallback;
  }

  /** The configuration a new node starts from: the bootstrap voters, itself a learner when not one of them. */
  private initialConfig(id: NodeId | null): ClusterConfig {
    const { bootstrapVoters, initialFailover } = this.setup;
    const learners = id === null || bootstrapVoters.includes(id) ? [] : [id];
    const known = [...bootstrapVoters, ...learners];
    const members = (initialFailover?.members ?? []).filter((entry) => known.includes(entry.id));
    const failover = initialFailover?.failover;
    return { voters: bootstrapVoters, learners, ...(failover === undefined ? {} : { failover }), members };
  }

  private create(id: NodeId, from: RaftCore | null): RaftCore {
    const { bootstrapVoters, bugs } = this.setup;
    const config = {
      id,
      voters: bootstrapVoters,
      learners: bootstrapVoters.includes(id) ? [] : [id],
      tickMs: 1,
      heartbeatIntervalMs: 1,
      missedHeartbeats: this.setup.missedHeartbeats ?? 5,
      electionJitter: 1,
      ...this.options,
      prng: new Prng(this.random.nextUint32()),
      ...(bugs === undefined ? {} : { unsafeTestBugs: bugs }),
    };
    if (from === null) {
      return new RaftCore(config, {
        hardState: { term: term(0), votedFor: null },
        entries: [],
        snapshotIndex: logIndex(0),
        snapshotTerm: term(0),
        appliedIndex: logIndex(0),
        snapshotConfig: this.initialConfig(id),
      });
    }
    // Everything the old core held was durable (this host persists each Effects at once).
    const status = from.status();
    const entries: LogEntry[] = [];
    for (let index = status.snapshotIndex + 1; index <= status.lastIndex; index++) {
      const entry = from.entryAt(index);
      assert(entry !== undefined, `log hole at ${index}`);
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

  /** Steps one input and carries out its Effects, keeping the operator rule's bookkeeping. */
  step(id: NodeId, input: Input): void {
    const core = this.core(id);
    const checkers = this.checkers;
    const before = core.summary();
    if (input.type === "transferLeadership" && before.role === "leader")
      checkers.transferRequests.add(`${id}@${before.term}`);
    if (input.type === "campaign") checkers.authorized.add(id);
    if (input.type === "message" && checkers.authorizedMessages.has(input.message))
      checkers.authorized.add(id);
    if (input.type === "propose") checkers.clientProposals.add(input.proposalId);
    const effects = core.step(input);
    this.setup.trace?.(id, input, effects);
    if (effects.promotions.some((outcome) => outcome.started)) checkers.authorized.add(id);
    this.carryOut(id, effects);
    // An authorization lasts one campaign: it ends when the node takes office or is a follower again
    // (inner steps such as `persisted` run before this point and never change the role to leader).
    const after = core.summary();
    if (before.role !== "leader" && after.role === "leader") {
      checkers.checkNewLeader(id, core);
      checkers.authorized.delete(id);
    } else if (after.role === "follower") {
      checkers.authorized.delete(id);
    }
  }

  private count(name: string): void {
    this.eventCounts.set(name, (this.eventCounts.get(name) ?? 0) + 1);
  }

  private carryOut(id: NodeId, effects: Effects): void {
    const core = this.core(id);
    this.checkers.checkEffects(id, core, effects);
    const { term: ownTerm, clusterConfig } = core.summary();
    const handingOver = isVoter(clusterConfig, id) && !mayLead(clusterConfig, id);
    for (const { message } of effects.messages) {
      const requested = this.checkers.transferRequests.has(`${id}@${ownTerm}`);
      if (message.type === "timeoutNow" && (requested || handingOver))
        this.checkers.authorizedMessages.add(message);
      this.post(message);
    }
    for (const needed of effects.snapshotNeeded) this.post(needed.message);
    for (const outcome of effects.proposals)
      if (outcome.accepted && !this.checkers.clientProposals.has(outcome.proposalId)) this.changesAccepted++;
    this.readsReady += effects.readReady.length;
    for (const event of effects.events) {
      this.count(event.type);
      if (event.type === "handoff-started") this.count(`handoff-started:${event.reason}`);
    }
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

  read(id: NodeId): void {
    const requestId = `r${++this.proposals}`;
    this.checkers.readFloors.set(requestId, Math.max(0, ...this.checkers.committed.keys()));
    this.step(id, { type: "readIndex", requestId });
  }

  restart(id: NodeId): void {
    this.cores.set(id, this.create(id, this.core(id)));
    this.checkers.authorized.delete(id);
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
    assert(atTerm !== undefined, `no term at ${at}`);
    this.step(id, { type: "compact", index: at, term: atTerm });
  }

  /** Cuts the link `id>other` when it is open, opens it when it is cut. */
  toggleLink(id: NodeId, other: NodeId): void {
    const link = `${id}>${other}`;
    if (this.blocked.has(link)) this.blocked.delete(link);
    else if (id !== other) this.blocked.add(link);
  }

  check(): void {
    let leaders = 0;
    for (const [id, core] of this.cores) {
      this.checkers.checkCore(id, core);
      if (core.summary().role === "leader") leaders++;
    }
    if (leaders > 0) this.stepsWithLeader++;
  }

  /** Runs `steps` actions drawn from `act`, checking after each; a failure names the seed and step. */
  run(seed: number, steps: number, act: (cluster: CoreCluster) => void): this {
    for (let step = 0; step < steps; step++) {
      try {
        act(this);
        this.check();
      } catch (error) {
        throw new Error(`SEED=${seed} step ${step}: ${(error as Error).message}`, { cause: error });
      }
    }
    return this;
  }
}

/** A weighted table of actions: each step picks a node, then an action by weight. */
export function weightedActor(
  actions: readonly (readonly [number, (cluster: CoreCluster, id: NodeId) => void])[],
): (cluster: CoreCluster) => void {
  const total = actions.reduce((sum, [weight]) => sum + weight, 0);
  return (cluster) => {
    const id = cluster.random.pick(cluster.setup.ids);
    let roll = cluster.random.intBetween(0, total - 1);
    for (const [weight, action] of actions) {
      if (roll < weight) {
        action(cluster, id);
        return;
      }
      roll -= weight;
    }
  };
}
