/**
 * One simulation run from one seed, in two phases (after TigerBeetle's VOPR):
 *
 *  1. Safety phase: random client load with random faults (crashes with loss of unpersisted
 *     state, symmetric and one-way partitions, process pauses, message drops, duplicates, delays
 *     and reordering, slow fsyncs). The checkers run throughout.
 *  2. Liveness phase: every fault stops. A leader recognised by all nodes must appear within
 *     `electionBoundTicks`; then a few writes to it must all be acknowledged, and every node must
 *     converge on the same applied state. Finally no write acknowledged at `majority` or `all` may be
 *     missing anywhere; losses of `local` and `one` writes are counted.
 *
 * Any exception (a checker's `SimViolation` or an assertion inside the core) fails the run; the
 * result names the seed so that `npm run sim -- --seed N` replays it exactly.
 */
import { type LossCounts, SimViolation } from "./checkers.ts";
import { type FaultKind, SimCluster } from "./cluster.ts";
import { electionBoundTicks, optionsFromSeed, type SimOptions } from "./options.ts";
import type { WriteRecord } from "./workload.ts";

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
  readonly losses: LossCounts | null;
  readonly discardedEntries: number;
  readonly trace: string[] | null;
};

/** Ticks allowed, after the leader is known, for the liveness writes and for every node to catch up. */
function convergenceBoundTicks(cluster: SimCluster): number {
  const o = cluster.options;
  const roundTripTicks = 2 * o.delayTicksMax + o.fsyncTicksMax + o.heartbeatTicks;
  const lastIndex = Math.max(...cluster.nodes.map((node) => node.core?.status().lastIndex ?? 0));
  const batchesBehind = Math.ceil(lastIndex / (o.appendEntriesBatchEntriesMax * o.appendEntriesInflightMax));
  return (batchesBehind + 50) * roundTripTicks + electionBoundTicks(o);
}

function converged(cluster: SimCluster): boolean {
  const leader = cluster.stableLeader();
  if (leader === null || leader.core === null) return false;
  const { commitIndex, lastIndex } = leader.core.status();
  if (commitIndex !== lastIndex) return false;
  return cluster.nodes.every((node) => node.stateMachine.appliedIndex === commitIndex);
}

/** Phase 2: stop every fault, then demand a leader, committed writes and convergence within bounds. */
export function livenessPhase(cluster: SimCluster): { ticksToElect: number } {
  const bound = electionBoundTicks(cluster.options);
  cluster.healAll();
  const ticksToElect = cluster.runUntil(() => cluster.stableLeader() !== null, bound);
  if (ticksToElect === null)
    throw new SimViolation("liveness", `no leader recognised by all nodes within ${bound} ticks after heal`);
  // The backlog of the safety phase may be long on a slow configuration: give these writes the whole
  // bound. A write whose entry is overwritten by a later leader is retried, as a client would.
  const convergence = convergenceBoundTicks(cluster);
  const pending: WriteRecord[] = [];
  let acknowledged = 0;
  const progressed = (): boolean => {
    for (const write of pending.splice(0)) {
      if (write.state === "acknowledged") acknowledged++;
      else if (write.state === "accepted" || write.state === "proposed") pending.push(write);
    }
    const leader = cluster.stableLeader();
    while (leader !== null && acknowledged + pending.length < cluster.options.livenessWrites) {
      pending.push(cluster.propose(leader.id, "majority", convergence));
    }
    return acknowledged >= cluster.options.livenessWrites && converged(cluster);
  };
  if (cluster.runUntil(progressed, convergence) === null) {
    const states = pending.map((write) => `${write.writeId}:${write.state}`).join(" ");
    throw new SimViolation(
      "liveness",
      `no convergence within ${convergence} ticks after the leader appeared (${acknowledged} writes acknowledged; pending ${states})`,
    );
  }
  cluster.checker.checkLogMatching(cluster.nodes);
  return { ticksToElect };
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

export function runSeed(seed: number, overrides: Partial<SimOptions> = {}, trace = false): RunResult {
  const options = optionsFromSeed(seed, overrides);
  const cluster = new SimCluster(options);
  if (trace) cluster.trace = [];
  let failure: string | null = null;
  let failureKind: string | null = null;
  let ticksToElect: number | null = null;
  let losses: LossCounts | null = null;
  try {
    cluster.run(options.safetyTicks, { load: true, faults: true });
    ticksToElect = livenessPhase(cluster).ticksToElect;
    losses = cluster.checker.checkFinal(cluster.nodes);
  } catch (error) {
    failureKind =
      error instanceof SimViolation ? error.kind : error instanceof Error ? error.name : "unknown";
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failure = `SEED=${seed} at tick ${cluster.nowTick}: ${text}`;
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
    losses,
    discardedEntries: cluster.discarded.length,
    trace: cluster.trace,
  };
}
