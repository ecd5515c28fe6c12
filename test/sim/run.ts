/**
 * One simulation run from one seed, in two phases (after TigerBeetle's VOPR), on a cluster of
 * production nodes (`cluster.ts`) whose schema was created while the network was quiet:
 *
 *  1. Safety phase: random client load with random faults (crashes with loss of unpersisted
 *     state, symmetric and one-way partitions, process pauses, message drops, duplicates, delays
 *     and reordering, slow fsyncs). The checkers run throughout.
 *  2. Liveness phase: every fault stops. A leader recognised by all nodes must appear within
 *     `electionBoundTicks`; then a few writes to it must all be acknowledged, and every node must
 *     converge on the same applied state and content. Finally the clients' history is checked at
 *     the SQL level (`finalCheck`); losses of `local` and `one` writes are counted.
 *
 * Any exception (a checker's `SimViolation` or an assertion inside the core) fails the run; the
 * result names the seed so that `npm run sim -- --seed N` replays it exactly.
 */

import { SimViolation } from "./checkers.ts";
import { type FaultKind, SimCluster } from "./cluster.ts";
import { checkListAppend, type ListAppendLossCounts } from "./list-append-checker.ts";
import { electionBoundTicks, optionsFromSeed, type SimOptions } from "./options.ts";
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
  readonly trace: string[] | null;
};

/** Ticks allowed, after the leader is known, for the liveness writes and for every node to catch up. */
function convergenceBoundTicks(cluster: SimCluster): number {
  const o = cluster.options;
  const roundTripTicks = 2 * o.delayTicksMax + o.fsyncTicksMax + o.heartbeatTicks;
  const lastIndex = Math.max(...cluster.nodes.map((node) => node.core?.summary().lastIndex ?? 0));
  const batchesBehind = Math.ceil(lastIndex / (o.appendEntriesBatchEntriesMax * o.appendEntriesInflightMax));
  return (batchesBehind + 50) * roundTripTicks + electionBoundTicks(o) + o.proposalTimeoutTicks;
}

function converged(cluster: SimCluster): boolean {
  const leader = cluster.stableLeader();
  if (leader === null || leader.core === null) return false;
  const { commitIndex, lastIndex } = leader.core.summary();
  if (commitIndex !== lastIndex) return false;
  // A node whose database was damaged has converged once it has healed: its database verified again.
  return cluster.nodes.every(
    (node) => node.store?.appliedIndex === commitIndex && node.node?.status().storage.verified === true,
  );
}

/** Before any fault: elect a leader and create the schema, as an application would at install time. */
export async function setupPhase(cluster: SimCluster): Promise<void> {
  const bound = electionBoundTicks(cluster.options);
  if ((await cluster.runUntil(() => cluster.stableLeader() !== null, bound)) === null)
    throw new SimViolation("liveness", `no initial leader within ${bound} ticks`);
  const leader = cluster.stableLeader();
  let done = false;
  leader?.node
    ?.execute({
      statements: schemaStatements.map((sql) => ({ sql, params: [] })),
      durability: "majority",
      requestId: "schema",
      expectedTerm: null,
      timeoutMs: bound * 10,
    })
    .then(() => {
      done = true;
    });
  if ((await cluster.runUntil(() => done, bound)) === null)
    throw new SimViolation("liveness", "the schema was not created on a quiet cluster");
}

/** Phase 2: stop every fault, then demand a leader, committed writes and convergence within bounds. */
export async function livenessPhase(cluster: SimCluster): Promise<{ ticksToElect: number }> {
  const bound = electionBoundTicks(cluster.options);
  await cluster.healAll();
  const ticksToElect = await cluster.runUntil(() => cluster.stableLeader() !== null, bound);
  if (ticksToElect === null)
    throw new SimViolation("liveness", `no leader recognised by all nodes within ${bound} ticks after heal`);
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
  if ((await cluster.runUntil(progressed, convergence, { load: false, retries: true })) === null) {
    throw new SimViolation(
      "liveness",
      `no convergence within ${convergence} ticks after the leader appeared (liveness writes ${values.join(",")}, acknowledged ${[...acknowledgedValues].join(",")}; in flight ${cluster.workload.inFlight}; converged ${converged(cluster)})`,
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
  const hashes = new Set(cluster.nodes.map((node) => node.store?.contentHash()));
  if (hashes.size !== 1)
    throw new SimViolation("state-machine-safety", "replicas hold different content at the end");
  const leader = cluster.stableLeader();
  const store = leader?.store;
  if (store === null || store === undefined) throw new SimViolation("liveness", "no leader at the end");
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
    await cluster.run(options.safetyTicks, { load: true, faults: true });
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
    trace: cluster.trace,
  };
}
