/**
 * One simulation run from one seed, in two phases (after TigerBeetle's VOPR), on a cluster of
 * production nodes (`cluster.ts`) whose schema was created while the network was quiet:
 *
 *  1. Safety phase: random client load with random faults (crashes with loss of unpersisted
 *     state, symmetric and one-way partitions, process pauses, message drops, duplicates, delays
 *     and reordering, slow fsyncs) and the operator's membership episodes (`member-operator.ts`:
 *     removals, demotions, promotions, a read replica joining, wiped disks rejoining). The
 *     checkers run throughout.
 *  2. Liveness phase: every fault stops. A leader recognised by all members must appear within
 *     `electionBoundTicks`; the operator must finish its episode within `memberFinishBoundTicks`;
 *     then a few writes to the leader must all be acknowledged, and every member, learners
 *     included, must converge on the same applied state and content, every member's history
 *     records replicated. Finally the clients' history is checked at the SQL level (`finalCheck`),
 *     and the replicated history against what each node was told it holds (`history-checker.ts`);
 *     losses of `local` and `one` writes are counted.
 *
 * Any exception (a checker's `SimViolation` or an assertion inside the core) fails the run; the
 * result names the seed so that `npm run sim -- --seed N` replays it exactly.
 */

import { SimViolation } from "./checkers.ts";
import { type FaultKind, SimCluster } from "./cluster.ts";
import type { FailoverEventCounts } from "./failover-checker.ts";
import { type FailoverOperatorStats, operatorBoundTicks } from "./failover-operator.ts";
import { checkHistoryReplicated, historyPending, historyReplicatedBoundTicks } from "./history-checker.ts";
import { checkListAppend, type ListAppendLossCounts } from "./list-append-checker.ts";
import type { OperatorStats } from "./member-operator.ts";
import {
  automaticFailover,
  electionBoundTicks,
  electionTimeoutTicksOf,
  optionsFromSeed,
  type SimOptions,
  wipeAfterCrashTicks,
} from "./options.ts";
import { schemaStatements } from "./workload.ts";

export type RunResult = {
  readonly seed: number;
  readonly options: SimOptions;
  readonly ok: boolean;
  /** The violation or error, prefixed `SEED=n`. */
  readonly failure: string | null;
  readonly failureKind: string | null;
  readonly ticks: number;
  readonly elections: number;
  readonly faults: Record<FaultKind, number>;
  readonly messagesSent: number;
  readonly messagesDropped: number;
  /** Ticks from the end of faults until a leader all nodes recognise. */
  readonly ticksToElectAfterHeal: number | null;
  readonly losses: ListAppendLossCounts | null;
  readonly reads: number;
  readonly discardedEntries: number;
  readonly storageEvents: Readonly<Record<string, number>>;
  /** The operator's membership episodes, requests and wipes. */
  readonly membership: OperatorStats;
  /** The failover operator's requests and what the core reported about failover. */
  readonly failover: { readonly operator: FailoverOperatorStats; readonly events: FailoverEventCounts };
  /** Configuration entries committed (each membership change is one; a join is two). */
  readonly configEntriesCommitted: number;
  readonly trace: string[] | null;
};

/** Ticks allowed, after the leader is known, for the liveness writes and for every node to catch up. */
function convergenceBoundTicks(cluster: SimCluster): number {
  const o = cluster.options;
  const roundTripTicks = 2 * o.delayTicksMax + o.fsyncTicksMax + o.heartbeatTicks;
  const lastIndex = Math.max(...cluster.nodes.map((node) => node.core?.summary().lastIndex ?? 0));
  const batchesBehind = Math.ceil(lastIndex / (o.appendEntriesBatchEntriesMax * o.appendEntriesInflightMax));
  return (
    (batchesBehind + 50) * roundTripTicks +
    electionBoundTicks(o) +
    o.proposalTimeoutTicks +
    historyReplicatedBoundTicks
  );
}

/**
 * Ticks allowed, once a leader is known after the heal, for the operator to finish its episode:
 * each step left may take two attempts of a whole request timeout and a retry pause (the first may
 * meet a leader change, or a learner still catching up), a wipe waits its delay, and a node that
 * joined may need the whole convergence bound to catch up before it is promoted.
 */
function memberFinishBoundTicks(cluster: SimCluster): number {
  const o = cluster.options;
  const attemptTicks = o.memberRequestTimeoutTicks + electionTimeoutTicksOf(o).base;
  return (
    cluster.operator.stepsLeft * 2 * attemptTicks + wipeAfterCrashTicks(o) + convergenceBoundTicks(cluster)
  );
}

/**
 * Every member of the leader's configuration, learners included, applied all the leader holds, and
 * every member's history records are replicated.
 */
function converged(cluster: SimCluster): boolean {
  const leader = cluster.stableLeader();
  const members = cluster.members();
  if (leader === null || leader.core === null || members === null) return false;
  const { commitIndex, lastIndex } = leader.core.summary();
  if (commitIndex !== lastIndex) return false;
  if (cluster.options.checkHistory && historyPending(members) !== null) return false;
  // A node whose database was damaged has converged once it has healed: its database verified again.
  return members.every(
    (node) => node.store?.appliedIndex === commitIndex && node.node?.status().storage.verified === true,
  );
}

/** Before any fault: elect a leader and create the schema, as an application would at install time. */
export async function setupPhase(cluster: SimCluster): Promise<void> {
  const bound = electionBoundTicks(cluster.options);
  if ((await cluster.runUntil(() => cluster.stableLeader() !== null, bound)) === null)
    throw new SimViolation("liveness", `no initial leader within ${bound} ticks`);
  await cluster.failoverOperator.setup();
  if ((await cluster.runUntil(() => cluster.stableLeader() !== null, bound)) === null)
    throw new SimViolation("liveness", `no leader within ${bound} ticks after the failover settings`);
  // Priorities may move the leader right after the settings: an attempt that meets a leader change
  // is sent again, with its request id, to the leader of the moment.
  let done = false;
  let inFlight = false;
  const created = (): boolean => {
    const leader = cluster.stableLeader();
    if (done || inFlight || leader?.node === null || leader?.node === undefined) return done;
    inFlight = true;
    leader.node
      .execute({
        statements: schemaStatements.map((sql) => ({ sql, params: [] })),
        durability: "majority",
        requestId: "schema",
        expectedTerm: null,
        timeoutMs: bound * 10,
      })
      .then(
        () => {
          done = true;
        },
        () => {
          inFlight = false;
        },
      );
    return false;
  };
  // Beyond the hand-over bound: a witness that keeps the office it was marked in is that checker's.
  if ((await cluster.runUntil(created, bound + cluster.handOverBoundTicks())) === null)
    throw new SimViolation("liveness", "the schema was not created on a quiet cluster");
}

/** Phase 2: stop every fault, then demand a leader, committed writes and convergence within bounds. */
export async function livenessPhase(cluster: SimCluster): Promise<{ ticksToElect: number }> {
  const o = cluster.options;
  const operatorNeeded = o.failoverMode !== "auto" || o.pauseEpisodeRate > 0 || o.modeSwitchRate > 0;
  const bound = electionBoundTicks(o) + (operatorNeeded ? operatorBoundTicks(o) : 0);
  await cluster.healAll();
  const ticksToElect = await cluster.runUntil(() => cluster.stableLeader() !== null, bound, {
    failover: "finish",
  });
  if (ticksToElect === null)
    throw new SimViolation("liveness", `no leader recognised by all nodes within ${bound} ticks after heal`);
  const finishBound = memberFinishBoundTicks(cluster);
  const stepsLeft = cluster.operator.stepsLeft;
  const finished = await cluster.runUntil(() => cluster.operator.idle, finishBound, {
    retries: true,
    members: "finish",
    failover: "finish",
  });
  if (finished === null)
    throw new SimViolation(
      "liveness",
      `the operator did not finish its episode (${stepsLeft} steps) within ${finishBound} ticks after the heal`,
    );
  // The backlog of the safety phase may be long on a slow configuration: give these writes the whole
  // bound. Writes that fail are retried by the workload with their request id, as a client would.
  const convergence = convergenceBoundTicks(cluster);
  const values: number[] = [];
  const acknowledgedValues = new Set<number>();
  const progressed = (): boolean => {
    const leader = cluster.stableLeader();
    if (leader !== null && values.length < cluster.options.livenessWrites) {
      cluster.workload.leaderHint = leader.id;
      values.push(cluster.workload.append(leader, "majority").value);
    }
    for (const op of cluster.workload.history)
      if (op.kind === "append" && op.outcome === "ok" && values.includes(op.value))
        acknowledgedValues.add(op.value);
    // A client keeps trying a write it needs: once its retries ran out, it starts over at the leader.
    for (const value of values) {
      if (leader === null || acknowledgedValues.has(value) || cluster.workload.pending(value)) continue;
      cluster.workload.append(leader, "majority", 1, value);
    }
    const acknowledged = acknowledgedValues.size;
    return (
      acknowledged >= cluster.options.livenessWrites && cluster.workload.inFlight === 0 && converged(cluster)
    );
  };
  const convergenceTicks = { load: false, retries: true, failover: "finish" } as const;
  if ((await cluster.runUntil(progressed, convergence, convergenceTicks)) === null) {
    throw new SimViolation(
      "liveness",
      `no convergence within ${convergence} ticks after the leader appeared (liveness writes ${values.join(",")}, acknowledged ${[...acknowledgedValues].join(",")}; in flight ${cluster.workload.inFlight}; converged ${converged(cluster)}; history not replicated: ${historyPending(cluster.members() ?? []) ?? "none"})`,
    );
  }
  cluster.deepCheck();
  return { ticksToElect };
}

/**
 * After convergence: no AUTOINCREMENT id was acknowledged for two rows, every node holds the same content, and the clients' history checks out
 * (acknowledged `majority`/`all` values kept, reads prefixes of the final lists, linearizable reads
 * in real-time order, retried writes applied once). Returns the losses per durability level.
 */
export async function finalCheck(
  cluster: SimCluster,
): Promise<{ losses: ListAppendLossCounts; reads: number }> {
  const conflicts = cluster.workload.idConflicts;
  if (conflicts.length > 0) throw new SimViolation("id-reused", conflicts.slice(0, 3).join("; "));
  checkMembersConverged(cluster);
  const leader = cluster.stableLeader();
  const store = leader?.store;
  if (leader === null || store === null || store === undefined)
    throw new SimViolation("liveness", "no leader at the end");
  if (cluster.options.checkHistory) checkHistoryReplicated(leader, cluster.members() ?? []);
  const rows = store.query([{ sql: "SELECT key, items FROM lists" }]).results[0]?.rows ?? [];
  const finalLists = new Map<number, number[]>();
  for (const [key, items] of rows) finalLists.set(Number(key), String(items).split(",").map(Number));
  const result = checkListAppend(cluster.workload.history, finalLists);
  if (result.violations.length > 0) {
    const first = result.violations.slice(0, 5).map((v) => `${v.kind}: ${v.message}`);
    throw new SimViolation(result.violations[0]?.kind ?? "list-append", first.join("; "));
  }
  return { losses: result.lost, reads: result.reads };
}

/**
 * The end state of the configuration: every live node is a member of the leader's configuration
 * and every member (voters and learners: read replicas, rejoined nodes) is live, at the leader's
 * commit index, with the same content hash. A removed node's state is not required to converge:
 * the operator re-added every node it removed before the end.
 */
function checkMembersConverged(cluster: SimCluster): void {
  const members = cluster.members();
  const leader = cluster.stableLeader();
  if (members === null || leader?.core === null || leader?.core === undefined)
    throw new SimViolation("liveness", "no leader at the end");
  const strays = cluster.nodes.filter((node) => node.alive && !members.includes(node));
  const down = members.filter((node) => !node.alive);
  if (strays.length > 0 || down.length > 0)
    throw new SimViolation(
      "membership",
      `at the end, live nodes outside the configuration [${strays.map((node) => node.id).join(",")}], members down [${down.map((node) => node.id).join(",")}]`,
    );
  const { commitIndex, clusterConfig } = leader.core.summary();
  const byHash = new Map<string, string[]>();
  for (const node of members) {
    // A witness holds no data: only its applied index counts.
    if (node.node?.isWitness() === true) {
      if (node.store?.appliedIndex !== commitIndex)
        throw new SimViolation(
          "convergence",
          `witness ${node.id} applied ${node.store?.appliedIndex}, the leader committed ${commitIndex}`,
        );
      continue;
    }
    const hash = node.store?.contentHash() ?? "none";
    const role = clusterConfig.learners.includes(node.id) ? "learner" : "voter";
    const label = `${node.id} (${role}, applied ${node.store?.appliedIndex})`;
    byHash.set(hash, [...(byHash.get(hash) ?? []), label]);
    if (node.store?.appliedIndex !== commitIndex)
      throw new SimViolation("convergence", `${label} at the end, the leader committed ${commitIndex}`);
  }
  if (byHash.size !== 1)
    throw new SimViolation(
      "state-machine-safety",
      `members hold different content at the end: ${[...byHash.values()].map((labels) => labels.join(", ")).join(" | ")}`,
    );
}

/** Options with every random fault and the random client load switched off, for scripted scenarios. */
export function quietOverrides(): Partial<SimOptions> {
  return {
    dropRate: 0,
    duplicateRate: 0,
    crashRate: 0,
    leaderCrashRate: 0,
    leaderIsolateRate: 0,
    partitionRate: 0,
    pauseRate: 0,
    proposeRate: 0,
    memberEpisodeRate: 0,
    ...automaticFailover,
  };
}

export async function runSeed(
  seed: number,
  overrides: Partial<SimOptions> = {},
  trace = false,
): Promise<RunResult> {
  const options = optionsFromSeed(seed, overrides);
  const cluster = new SimCluster(options);
  if (trace) cluster.trace = [];
  let failure: string | null = null;
  let failureKind: string | null = null;
  let ticksToElect: number | null = null;
  let final: { losses: ListAppendLossCounts; reads: number } | null = null;
  try {
    await cluster.start();
    await setupPhase(cluster);
    await cluster.run(options.safetyTicks, {
      load: true,
      faults: true,
      members: "schedule",
      failover: "schedule",
    });
    ticksToElect = (await livenessPhase(cluster)).ticksToElect;
    final = await finalCheck(cluster);
  } catch (error) {
    failureKind =
      error instanceof SimViolation ? error.kind : error instanceof Error ? error.name : "unknown";
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failure = `SEED=${seed} at tick ${cluster.nowTick}: ${text}`;
  } finally {
    await cluster.dispose();
  }
  return {
    seed,
    options,
    ok: failure === null,
    failure,
    failureKind,
    ticks: cluster.nowTick,
    elections: cluster.elections,
    faults: { ...cluster.faults },
    messagesSent: cluster.network.stats.sent,
    messagesDropped: cluster.network.stats.dropped + cluster.network.stats.partitionDropped,
    ticksToElectAfterHeal: ticksToElect,
    losses: final?.losses ?? null,
    reads: final?.reads ?? 0,
    discardedEntries: cluster.discarded.length,
    storageEvents: { ...cluster.storageEvents },
    membership: structuredClone(cluster.operator.stats),
    failover: {
      operator: structuredClone(cluster.failoverOperator.stats),
      events: { ...cluster.failoverChecker.counts },
    },
    configEntriesCommitted: cluster.checker.configEntriesCommitted,
    trace: cluster.trace,
  };
}
