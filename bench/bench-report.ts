/**
 * Options and printed tables shared by `npm run bench` and `npm run bench:compare`. Every figure in
 * a table is the median over runs of that workload; a ratio is the ratio of two such medians.
 */
import { median } from "./stats.ts";
import { defaultWorkloads, type Measurement } from "./workloads.ts";

export type BenchOptions = {
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly workloads: string;
  readonly runs: number;
  readonly profileDirectory: string | null;
  /** Extra `NODE_OPTIONS` of the node processes (for example `--perf-basic-prof` for `perf`). */
  readonly nodeOptions: string;
  /** Extra `baton start` flags of every node (for example `--tick-ms 50`). */
  readonly batonArgs: readonly string[];
  /** Slices of the window with their own p50 in each measurement's line (`--slice S`), or null. */
  readonly sliceMs: number | null;
};

export const optionsHelp = [
  "  --duration S     measured seconds per workload (default 8)",
  "  --warmup S       seconds of load before the measured window (default 1)",
  `  --workloads L    comma-separated: wN writers, rN readers, bN 100-row batch writers (default ${defaultWorkloads})`,
  "  --runs N         fresh cluster and measurement per workload and run; figures are medians (default 3)",
  '  --baton-args S   extra `baton start` flags of every node, e.g. "--tick-ms 50"',
  "  --slice S        also print each run's p50 per S-second slice of the window (JIT warm-up shows there)",
].join("\n");

export function parseOptions(argv: readonly string[]): BenchOptions {
  const value = (flag: string): string | undefined => {
    const at = argv.indexOf(`--${flag}`);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const positive = (flag: string, fallback: number): number => {
    const parsed = Number(value(flag) ?? fallback);
    if (!(parsed > 0)) throw new Error(`--${flag} must be a positive number`);
    return parsed;
  };
  return {
    durationMs: positive("duration", 8) * 1000,
    warmupMs: Number(value("warmup") ?? 1) * 1000,
    workloads: value("workloads") ?? defaultWorkloads,
    runs: Math.round(positive("runs", 3)),
    profileDirectory: value("profile") ?? null,
    nodeOptions: value("node-options") ?? "",
    batonArgs: (value("baton-args") ?? "").split(" ").filter((arg) => arg !== ""),
    sliceMs: value("slice") === undefined ? null : positive("slice", 1) * 1000,
  };
}

/** One line per measurement, printed as it finishes. */
export function measurementLine(m: Measurement): string {
  const cpu = m.cpu.map(
    (p) => `${p.role === "client" ? "load" : p.name}(${p.role[0]}) ${p.cpuUsPerOperation.toFixed(0)}`,
  );
  const errors = m.errors > 0 ? `  errors ${m.errors} (first: ${m.firstError})` : "";
  const slices =
    m.sliceP50Ms.length > 0 ? `  p50 by slice ${m.sliceP50Ms.map((p) => p.toFixed(2)).join(" ")}` : "";
  return (
    `run ${m.run} ${m.system.padEnd(5)} ${m.workload.padEnd(4)} ${fixed(m.opsPerSecond, 0, 7)} ops/s ` +
    `${fixed(m.rowsPerSecond, 0, 7)} rows/s  p50 ${fixed(m.p50Ms, 2, 6)} ms  p99 ${fixed(m.p99Ms, 2, 6)} ms  ` +
    `CPU µs/op ${cpu.join(" ")}${slices}${errors}`
  );
}

function fixed(value: number, digits: number, width: number): string {
  return value.toFixed(digits).padStart(width);
}

export type Summary = {
  readonly opsPerSecond: number;
  readonly rowsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** Median CPU µs per operation: leader, follower, follower (by name), load generator, servers' sum. */
  readonly cpu: { leader: number; followerA: number; followerB: number; client: number; servers: number };
};

export function summarize(measurements: readonly Measurement[]): Summary {
  const of = (pick: (m: Measurement) => number): number => median(measurements.map(pick));
  const cpuAt = (m: Measurement, i: number): number => m.cpu[i]?.cpuUsPerOperation ?? Number.NaN;
  const servers = (m: Measurement): number =>
    m.cpu.filter((p) => p.role !== "client").reduce((sum, p) => sum + p.cpuUsPerOperation, 0);
  return {
    opsPerSecond: of((m) => m.opsPerSecond),
    rowsPerSecond: of((m) => m.rowsPerSecond),
    p50Ms: of((m) => m.p50Ms),
    p99Ms: of((m) => m.p99Ms),
    errors: measurements.reduce((sum, m) => sum + m.errors, 0),
    cpu: {
      leader: of((m) => cpuAt(m, 0)),
      followerA: of((m) => cpuAt(m, 1)),
      followerB: of((m) => cpuAt(m, 2)),
      client: of((m) => cpuAt(m, 3)),
      servers: of(servers),
    },
  };
}

export const thousands = (value: number): string => Math.round(value).toLocaleString("en-US");
export const ms = (value: number): string => value.toFixed(2);

/** Throughput: ops/s, or rows/s for batch workloads. */
export function rate(workload: string, summary: Summary): string {
  return workload.startsWith("b")
    ? `${thousands(summary.rowsPerSecond)} rows/s`
    : `${thousands(summary.opsPerSecond)}`;
}

export function cpuCells(summary: Summary): string {
  const { leader, followerA, followerB, client, servers } = summary.cpu;
  return [leader, followerA, followerB, client, servers].map((v) => v.toFixed(0)).join(" / ");
}
