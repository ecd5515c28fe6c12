/**
 * Aggregates a campaign of runs into the figures the CLI prints: runs and failures, faults by
 * kind, elections per run, time to elect after heal (max and p99, in ticks and milliseconds),
 * writes acknowledged and lost per durability level, and the operator's membership changes,
 * rejoins and snapshot installs, and the failover figures (runs per mode, promotions, approvals,
 * approve timeouts, hand-overs).
 */
import type { Durability } from "../../src/consensus/config.ts";
import type { FaultKind } from "./cluster.ts";
import type { OperatorStats } from "./member-operator.ts";
import { electionBoundTicks, simTickMs } from "./options.ts";
import type { RunResult } from "./run.ts";

/** The failover figures of a campaign (`failover-operator.ts`, `failover-checker.ts`). */
export type FailoverSummary = {
  runsByMode: Record<string, number>;
  runsWithWitness: number;
  runsWithNeverPromote: number;
  runsWithPriorities: number;
  pauses: number;
  modeSwitches: number;
  promotions: number;
  approvals: number;
  refusals: Record<string, number>;
  approveTimeouts: number;
  ineligibleHandoffs: number;
  priorityHandoffs: number;
  operatorRuleChecks: number;
};

export type CampaignSummary = {
  runs: number;
  failures: number;
  failureKinds: Record<string, number>;
  faults: Record<FaultKind, number>;
  messagesSent: number;
  messagesDropped: number;
  electionsPerRunMean: number;
  electionsPerRunMax: number;
  ticksToElectMax: number;
  ticksToElectP99: number;
  ticksToElectMean: number;
  /** The largest share of its liveness bound any run used to elect after heal. */
  ticksToElectBoundShareMax: number;
  writes: Record<Durability, { acknowledged: number; lost: number }>;
  discardedEntries: number;
  reads: number;
  storageEvents: Record<string, number>;
  membership: {
    /** Runs in which the operator made at least one change. */
    runsWithChanges: number;
    episodes: Record<string, number>;
    changes: Record<string, number>;
    requests: number;
    wipes: number;
    rejoins: number;
    configEntriesCommitted: number;
    configEntriesPerRunMax: number;
    rejoinsPerRunMax: number;
  };
  failover: FailoverSummary;
};

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0;
}

export function summarize(results: readonly RunResult[]): CampaignSummary {
  const summary: CampaignSummary = {
    runs: results.length,
    failures: 0,
    failureKinds: {},
    faults: {
      crash: 0,
      "leader-crash": 0,
      partition: 0,
      "leader-isolation": 0,
      "one-way-partition": 0,
      pause: 0,
      "db-damage": 0,
    },
    messagesSent: 0,
    messagesDropped: 0,
    electionsPerRunMean: 0,
    electionsPerRunMax: 0,
    ticksToElectMax: 0,
    ticksToElectP99: 0,
    ticksToElectMean: 0,
    ticksToElectBoundShareMax: 0,
    writes: {
      local: { acknowledged: 0, lost: 0 },
      one: { acknowledged: 0, lost: 0 },
      majority: { acknowledged: 0, lost: 0 },
      all: { acknowledged: 0, lost: 0 },
    },
    discardedEntries: 0,
    reads: 0,
    storageEvents: {},
    membership: {
      runsWithChanges: 0,
      episodes: {},
      changes: {},
      requests: 0,
      wipes: 0,
      rejoins: 0,
      configEntriesCommitted: 0,
      configEntriesPerRunMax: 0,
      rejoinsPerRunMax: 0,
    },
    failover: {
      runsByMode: {},
      runsWithWitness: 0,
      runsWithNeverPromote: 0,
      runsWithPriorities: 0,
      pauses: 0,
      modeSwitches: 0,
      promotions: 0,
      approvals: 0,
      refusals: {},
      approveTimeouts: 0,
      ineligibleHandoffs: 0,
      priorityHandoffs: 0,
      operatorRuleChecks: 0,
    },
  };
  const electTimes: number[] = [];
  let elections = 0;
  for (const result of results) {
    if (!result.ok) {
      summary.failures++;
      const kind = result.failureKind ?? "unknown";
      summary.failureKinds[kind] = (summary.failureKinds[kind] ?? 0) + 1;
    }
    for (const kind of Object.keys(summary.faults) as FaultKind[])
      summary.faults[kind] += result.faults[kind];
    summary.messagesSent += result.messagesSent;
    for (const [event, count] of Object.entries(result.storageEvents))
      summary.storageEvents[event] = (summary.storageEvents[event] ?? 0) + count;
    summary.messagesDropped += result.messagesDropped;
    elections += result.elections;
    summary.electionsPerRunMax = Math.max(summary.electionsPerRunMax, result.elections);
    if (result.ticksToElectAfterHeal !== null) {
      electTimes.push(result.ticksToElectAfterHeal);
      const share = result.ticksToElectAfterHeal / electionBoundTicks(result.options);
      summary.ticksToElectBoundShareMax = Math.max(summary.ticksToElectBoundShareMax, share);
    }
    for (const level of ["local", "one", "majority", "all"] as const) {
      summary.writes[level].acknowledged += result.losses?.[level].acknowledged ?? 0;
      summary.writes[level].lost += result.losses?.[level].lost ?? 0;
    }
    summary.discardedEntries += result.discardedEntries;
    summary.reads += result.reads;
    addMembership(summary.membership, result.membership, result.configEntriesCommitted);
    addFailover(summary.failover, result);
  }
  electTimes.sort((a, b) => a - b);
  summary.electionsPerRunMean = results.length === 0 ? 0 : elections / results.length;
  summary.ticksToElectMax = electTimes.at(-1) ?? 0;
  summary.ticksToElectP99 = percentile(electTimes, 0.99);
  summary.ticksToElectMean =
    electTimes.length === 0 ? 0 : electTimes.reduce((a, b) => a + b, 0) / electTimes.length;
  return summary;
}

function addMembership(
  total: CampaignSummary["membership"],
  run: OperatorStats,
  configEntries: number,
): void {
  for (const [kind, count] of Object.entries(run.episodes))
    total.episodes[kind] = (total.episodes[kind] ?? 0) + count;
  let changes = 0;
  for (const [kind, count] of Object.entries(run.changes)) {
    total.changes[kind] = (total.changes[kind] ?? 0) + count;
    changes += count;
  }
  if (changes > 0) total.runsWithChanges++;
  total.requests += run.requests;
  total.wipes += run.wipes;
  total.rejoins += run.rejoins;
  total.configEntriesCommitted += configEntries;
  total.configEntriesPerRunMax = Math.max(total.configEntriesPerRunMax, configEntries);
  total.rejoinsPerRunMax = Math.max(total.rejoinsPerRunMax, run.rejoins);
}

function addFailover(total: FailoverSummary, result: RunResult): void {
  const o = result.options;
  const { operator, events } = result.failover;
  total.runsByMode[o.failoverMode] = (total.runsByMode[o.failoverMode] ?? 0) + 1;
  if (o.witnessNode !== null) total.runsWithWitness++;
  if (o.neverPromoteNode !== null) total.runsWithNeverPromote++;
  if (Object.keys(o.priorities).length > 0) total.runsWithPriorities++;
  total.pauses += operator.pauses;
  total.modeSwitches += operator.modeSwitches;
  total.promotions += operator.promotions;
  total.approvals += operator.approvals;
  for (const [reason, count] of Object.entries(operator.refusals))
    total.refusals[reason] = (total.refusals[reason] ?? 0) + count;
  total.approveTimeouts += events.approveTimeouts;
  total.ineligibleHandoffs += events.ineligibleHandoffs;
  total.priorityHandoffs += events.priorityHandoffs;
  total.operatorRuleChecks += events.operatorRuleChecks;
}

export function formatSummary(summary: CampaignSummary, elapsedMs: number): string {
  const ms = (ticks: number): string => `${ticks} ticks (${ticks * simTickMs} ms)`;
  const lines = [
    `runs ${summary.runs}, failures ${summary.failures} ${JSON.stringify(summary.failureKinds)}, ${Math.round(elapsedMs / 1000)} s`,
    `faults injected: ${Object.entries(summary.faults)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(", ")}; messages sent ${summary.messagesSent}, dropped ${summary.messagesDropped}`,
    `elections per run: mean ${summary.electionsPerRunMean.toFixed(2)}, max ${summary.electionsPerRunMax}`,
    `time to elect after heal: mean ${summary.ticksToElectMean.toFixed(1)} ticks, p99 ${ms(summary.ticksToElectP99)}, max ${ms(summary.ticksToElectMax)}; at most ${(100 * summary.ticksToElectBoundShareMax).toFixed(0)}% of a run's liveness bound`,
    "writes acknowledged / lost by durability level:",
    ...(["local", "one", "majority", "all"] as const).map(
      (level) => `  ${level.padEnd(8)} ${summary.writes[level].acknowledged} / ${summary.writes[level].lost}`,
    ),
    `divergent entries discarded by followers: ${summary.discardedEntries}`,
    `snapshot and storage events: ${JSON.stringify(summary.storageEvents)}`,
    ...formatMembership(summary),
    ...formatFailover(summary.failover),
    `client reads checked against the final lists (linearizable ones also in real-time order): ${summary.reads}`,
  ];
  return lines.join("\n");
}

function formatMembership(summary: CampaignSummary): string[] {
  const m = summary.membership;
  const perRun = (count: number): string => (summary.runs === 0 ? "0" : (count / summary.runs).toFixed(2));
  return [
    `membership: runs with changes ${m.runsWithChanges} of ${summary.runs}; configuration entries committed ${m.configEntriesCommitted} (per run mean ${perRun(m.configEntriesCommitted)}, max ${m.configEntriesPerRunMax})`,
    `  episodes completed ${JSON.stringify(m.episodes)}`,
    `  requests ${m.requests}, acknowledged ${JSON.stringify(m.changes)}`,
    `  disks wiped ${m.wipes}, rejoined ${m.rejoins} (per run mean ${perRun(m.rejoins)}, max ${m.rejoinsPerRunMax}); snapshots installed ${summary.storageEvents["snapshot.installed"] ?? 0} (per run ${perRun(summary.storageEvents["snapshot.installed"] ?? 0)})`,
  ];
}

function formatFailover(f: FailoverSummary): string[] {
  return [
    `failover: runs by mode ${JSON.stringify(f.runsByMode)}; with a witness ${f.runsWithWitness}, a never-promote voter ${f.runsWithNeverPromote}, priorities ${f.runsWithPriorities}; pauses ${f.pauses}, mode switches ${f.modeSwitches}`,
    `  operator promotions ${f.promotions}, approvals ${f.approvals}, not carried out ${JSON.stringify(f.refusals)}; approve timeouts ${f.approveTimeouts} (node events); hand-overs by a witness or never-promote leader ${f.ineligibleHandoffs}, for priority ${f.priorityHandoffs}; leader changes judged by the operator rule ${f.operatorRuleChecks}`,
  ];
}
