/**
 * The workloads of the Baton/etcd comparison (issue 12) and one measurement of one of them against
 * a fresh cluster: throughput, latency, and the CPU every process used per operation inside the
 * measured window (the servers' from `/proc/<pid>/stat`, the load generator's own likewise).
 *
 * Workload names: `wN` N writers of a single-row upsert at `majority`; `rN` N readers of a point
 * `SELECT` at `linearizable`; `bN` N clients writing 100-row transactions at `majority`.
 */
import fs from "node:fs";
import path from "node:path";
import { type MainThreadUse, mainThreadUse, processCpuMs, runClosedLoop } from "./load.ts";
import { keysMax, prefill, type RunningCluster, sleep } from "./system-under-test.ts";

export type Workload = {
  readonly name: string;
  readonly kind: "write" | "read" | "batch";
  readonly concurrency: number;
  readonly rowsPerOperation: number;
};

export const defaultWorkloads = "w1,w16,w64,r16,b16";
export const batchRows = 100;
/** Pause between two measurements so that the previous cluster's exit settles. */
const settleMs = 500;

export function parseWorkloads(list: string): Workload[] {
  return list.split(",").map((name) => {
    const match = /^([wrb])(\d+)$/.exec(name.trim());
    if (match === null)
      throw new Error(`unknown workload "${name}" (expected wN, rN or bN, e.g. ${defaultWorkloads})`);
    const kind = ({ w: "write", r: "read", b: "batch" } as const)[match[1] as "w" | "r" | "b"];
    const rowsPerOperation = kind === "batch" ? batchRows : 1;
    return { name: name.trim(), kind, concurrency: Number(match[2]), rowsPerOperation };
  });
}

export function describeWorkload(workload: Workload): string {
  const who = `${workload.concurrency} ${workload.kind === "read" ? "reader" : "writer"}${workload.concurrency > 1 ? "s" : ""}`;
  if (workload.kind === "write") return `${who}, 1-row upsert, majority`;
  if (workload.kind === "read") return `${who}, point read, linearizable`;
  return `${who}, ${batchRows}-row txn, majority`;
}

export type ProcessCpu = { readonly role: string; readonly name: string; readonly cpuUsPerOperation: number };

export type Measurement = {
  readonly system: string;
  readonly workload: string;
  readonly run: number;
  readonly opsPerSecond: number;
  readonly rowsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p50 of each `sliceMs` slice of the window (empty unless slicing was asked for). */
  readonly sliceP50Ms: readonly number[];
  readonly errors: number;
  readonly firstError: string | null;
  /** Leader first, then followers by name, then the load generator (`client`). */
  readonly cpu: readonly ProcessCpu[];
};

export type MeasureOptions = {
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly run: number;
  /** When set, the window is also cut into slices of this many ms (`bench --slice`). */
  readonly sliceMs?: number | null;
  /** When set, the window's edges (monotonic µs, as in V8 profiles) are written to this file. */
  readonly windowFile?: string;
};

export async function measure(
  start: () => Promise<RunningCluster>,
  workload: Workload,
  options: MeasureOptions,
): Promise<Measurement> {
  const cluster = await start();
  try {
    if (workload.kind === "read") await prefill(cluster);
    const watched = [
      ...cluster.processes.toSorted((a, b) =>
        a.role === b.role ? a.name.localeCompare(b.name) : a.role === "leader" ? -1 : 1,
      ),
      { role: "client", name: "load", pid: process.pid },
    ];
    let before: number[] = [];
    let after: number[] = [];
    let mainBefore: MainThreadUse[] = [];
    let mainAfter: MainThreadUse[] = [];
    const window = { startUs: 0, endUs: 0 };
    const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
    const result = await runClosedLoop({
      target: cluster.leader,
      concurrency: workload.concurrency,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      ...(options.sliceMs === undefined || options.sliceMs === null ? {} : { sliceMs: options.sliceMs }),
      request: requestOf(cluster, workload),
      onWindowStart: () => {
        window.startUs = nowUs();
        before = watched.map((p) => processCpuMs(p.pid));
        mainBefore = watched.map((p) => mainThreadUse(p.pid));
      },
      onWindowEnd: () => {
        window.endUs = nowUs();
        after = watched.map((p) => processCpuMs(p.pid));
        mainAfter = watched.map((p) => mainThreadUse(p.pid));
      },
    });
    const operations = Math.max(1, result.okCount);
    const measurement: Measurement = {
      system: cluster.system,
      workload: workload.name,
      run: options.run,
      opsPerSecond: result.okCount / result.seconds,
      rowsPerSecond: (result.okCount * workload.rowsPerOperation) / result.seconds,
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
      sliceP50Ms: result.sliceP50Ms,
      errors: result.errorCount,
      firstError: result.firstError,
      cpu: watched.map((p, i) => ({
        role: p.role,
        name: p.name,
        cpuUsPerOperation: (((after[i] ?? 0) - (before[i] ?? 0)) * 1000) / operations,
      })),
    };
    if (options.windowFile !== undefined) {
      const roles = Object.fromEntries(cluster.processes.map((p) => [p.name, p.role]));
      const cpuMs = Object.fromEntries(watched.map((p, i) => [p.name, (after[i] ?? 0) - (before[i] ?? 0)]));
      const mainThread = Object.fromEntries(
        watched.map((p, i) => [
          p.name,
          {
            cpuMs: mainAfter[i]!.cpuMs - mainBefore[i]!.cpuMs,
            preempted: mainAfter[i]!.preempted - mainBefore[i]!.preempted,
          },
        ]),
      );
      fs.mkdirSync(path.dirname(options.windowFile), { recursive: true });
      fs.writeFileSync(
        options.windowFile,
        JSON.stringify({ ...measurement, ...window, roles, cpuMs, mainThread }),
      );
    }
    return measurement;
  } finally {
    await cluster.stop();
    await sleep(settleMs);
  }
}

function requestOf(cluster: RunningCluster, workload: Workload) {
  if (workload.kind === "write") return (i: number) => cluster.writeRequest(i % keysMax);
  if (workload.kind === "read") return (i: number) => cluster.readRequest((i * 7919) % keysMax);
  // Consecutive 100-key ranges that never wrap: the keys of one transaction are distinct.
  return (i: number) => cluster.batchRequest((i * batchRows) % keysMax, batchRows);
}
