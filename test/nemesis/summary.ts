/**
 * The figures of one campaign, computed from its history and fault records, and their text form.
 *
 * - Operations by outcome: per kind (append, read) and client mode (library, raw).
 * - Time to recover after a fault: from its heal to the first acknowledgement of an append after it;
 *   and the longest stretch without any acknowledged append, from the injection to that one (for a
 *   leader kill, about the failover time).
 * - Write availability: the run's time cut into one-second windows; a window is available when at
 *   least one append was acknowledged in it. The share of available windows.
 */
import type { ListAppendLossCounts } from "../sim/list-append-checker.ts";
import type { Anomaly, FaultRecord } from "./faults.ts";
import type { CampaignOptions, FaultKind } from "./options.ts";
import type { RecordedOp } from "./workload.ts";

const availabilityWindowUs = 1_000_000;

export type CampaignSummary = {
  readonly seed: number;
  readonly nodes: number;
  readonly durationMs: number;
  readonly durability: string;
  readonly reads: readonly string[];
  readonly network: "namespaces" | "loopback";
  readonly operations: Record<string, Record<string, number>>;
  readonly faults: Record<string, number>;
  readonly skipped: Record<string, string>;
  readonly recoverMs: {
    readonly kind: FaultKind;
    readonly targets: string;
    readonly recoverMs: number | null;
    readonly writeGapMs: number | null;
    readonly notes: string;
  }[];
  readonly writeAvailability: number;
  readonly lost: ListAppendLossCounts | null;
  readonly anomalies: readonly Anomaly[];
  readonly finalListLengths: readonly number[];
};

export function fillRecovery(faults: FaultRecord[], history: readonly RecordedOp[]): void {
  const acknowledgedAt = history
    .filter((op) => op.kind === "append" && op.outcome === "ok" && op.completedAt !== null)
    .map((op) => op.completedAt!)
    .sort((a, b) => a - b);
  for (const fault of faults) {
    const after = acknowledgedAt.find((at) => at >= fault.healUs);
    fault.recoverMs = after === undefined ? null : Math.round((after - fault.healUs) / 1000);
    // The longest stretch without an acknowledged append, from the injection to the first one after the heal.
    let previous = fault.startUs;
    let gapUs = 0;
    for (const at of acknowledgedAt) {
      if (at < fault.startUs) continue;
      if (after !== undefined && at > after) break;
      gapUs = Math.max(gapUs, at - previous);
      previous = at;
    }
    fault.writeGapMs = after === undefined ? null : Math.round(gapUs / 1000);
  }
}

export function writeAvailability(history: readonly RecordedOp[], fromUs: number, toUs: number): number {
  const windows = Math.max(1, Math.floor((toUs - fromUs) / availabilityWindowUs));
  const available = new Set<number>();
  for (const op of history) {
    if (op.kind !== "append" || op.outcome !== "ok" || op.completedAt === null) continue;
    const window = Math.floor((op.completedAt - fromUs) / availabilityWindowUs);
    if (window >= 0 && window < windows) available.add(window);
  }
  return available.size / windows;
}

export function operationCounts(history: readonly RecordedOp[]): Record<string, Record<string, number>> {
  const counts: Record<string, Record<string, number>> = {};
  for (const op of history) {
    const row = `${op.kind} ${op.mode}`;
    counts[row] ??= { ok: 0, failed: 0, unknown: 0 };
    counts[row]![op.outcome] = (counts[row]![op.outcome] ?? 0) + 1;
  }
  return counts;
}

export function faultCounts(faults: readonly FaultRecord[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const fault of faults) counts[fault.kind] = (counts[fault.kind] ?? 0) + 1;
  return counts;
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : Math.round((sorted[middle - 1]! + sorted[middle]!) / 2);
}

export function summaryText(summary: CampaignSummary, options: CampaignOptions): string {
  const lines: string[] = [];
  lines.push(
    `nemesis SEED=${summary.seed}: ${summary.nodes} nodes, ${(summary.durationMs / 1000).toFixed(0)} s, durability ${summary.durability}, reads ${summary.reads.join("/")}, network ${summary.network}`,
  );
  lines.push("operations (ok / failed / unknown):");
  for (const [row, counts] of Object.entries(summary.operations).sort())
    lines.push(`  ${row.padEnd(16)} ${counts.ok} / ${counts.failed} / ${counts.unknown}`);
  const faultLine = Object.entries(summary.faults)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  lines.push(`faults injected: ${faultLine === "" ? "none" : faultLine}`);
  for (const [kind, why] of Object.entries(summary.skipped)) lines.push(`  skipped ${kind}: ${why}`);
  const byKind = new Map<string, { recover: number[]; gap: number[] }>();
  for (const r of summary.recoverMs) {
    if (r.recoverMs === null || r.writeGapMs === null) continue;
    const figures = byKind.get(r.kind) ?? { recover: [], gap: [] };
    figures.recover.push(r.recoverMs);
    figures.gap.push(r.writeGapMs);
    byKind.set(r.kind, figures);
  }
  if (byKind.size > 0) {
    lines.push(
      "per fault kind, ms: recovery after heal (median / max) · longest write gap from injection (median / max)",
    );
    for (const [kind, { recover, gap }] of byKind)
      lines.push(
        `  ${kind.padEnd(18)} ${median(recover)} / ${Math.max(...recover)} · ${median(gap)} / ${Math.max(...gap)}  (${recover.length})`,
      );
  }
  if (!options.quiet)
    for (const r of summary.recoverMs)
      lines.push(
        `  - ${r.kind} ${r.targets}: recovered ${r.recoverMs ?? "?"} ms after heal, longest write gap ${r.writeGapMs ?? "?"} ms${r.notes === "" ? "" : `; ${r.notes}`}`,
      );
  lines.push(
    `write availability: ${(summary.writeAvailability * 100).toFixed(1)}% of 1-second windows had an acknowledged append`,
  );
  if (summary.lost !== null) {
    const lost = Object.entries(summary.lost)
      .filter(([, v]) => v.acknowledged > 0)
      .map(([level, v]) => `${level} ${v.lost} of ${v.acknowledged}`)
      .join(", ");
    lines.push(`acknowledged appends lost: ${lost === "" ? "none acknowledged" : lost}`);
  }
  lines.push(`final list lengths: ${summary.finalListLengths.join(", ")}`);
  lines.push(`anomalies: ${summary.anomalies.length}`);
  for (const anomaly of summary.anomalies.slice(0, 40)) lines.push(`  [${anomaly.kind}] ${anomaly.message}`);
  if (summary.anomalies.length > 40) lines.push(`  … ${summary.anomalies.length - 40} more in summary.json`);
  return lines.join("\n");
}
