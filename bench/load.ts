/**
 * A closed-loop HTTP load generator: `concurrency` workers, each with one keep-alive connection
 * (`node:http`, not `fetch`, whose per-request cost on this machine exceeds the servers' work),
 * each sending its next request as soon as the previous answer arrived.
 *
 * Only requests that complete inside the measured window (after the warm-up, before the end) are
 * counted; `onWindowStart` and `onWindowEnd` run exactly at the window's edges so that callers can
 * read process CPU times there. A failed request is counted as an error and its worker pauses
 * `errorPauseMs` so that a refusing server is not spun against.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import { percentile } from "./stats.ts";

export type LoadTarget = { readonly host: string; readonly port: number };
export type LoadRequest = { readonly path: string; readonly body: string };

export type LoadOptions = {
  readonly target: LoadTarget;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The request of the i-th operation (i counts across all workers). */
  readonly request: (i: number) => LoadRequest;
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
  /** When set, the window is also cut into slices of this many ms, each with its own p50. */
  readonly sliceMs?: number;
};

export type LoadResult = {
  readonly okCount: number;
  readonly errorCount: number;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p50 of each slice of the window, in order (empty unless `sliceMs` was given). */
  readonly sliceP50Ms: readonly number[];
  /** The first failed answer seen, for the report (status and start of the body). */
  readonly firstError: string | null;
};

const requestTimeoutMs = 10_000;
const errorPauseMs = 5;

export type Answer = { readonly status: number; readonly body: string };

/** One POST of a JSON body; never rejects (status 0 on a transport error or timeout). */
export function post(agent: http.Agent, target: LoadTarget, request: LoadRequest): Promise<Answer> {
  return new Promise((resolve) => {
    const outgoing = http.request(
      {
        host: target.host,
        port: target.port,
        path: request.path,
        method: "POST",
        agent,
        timeout: requestTimeoutMs,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(request.body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        response.on("error", (error) => resolve({ status: 0, body: String(error) }));
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error("timeout")));
    outgoing.on("error", (error) => resolve({ status: 0, body: String(error) }));
    outgoing.end(request.body);
  });
}

export async function runClosedLoop(options: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const latenciesMs: number[] = [];
  // At most `durationMs / sliceMs` slices (rounded up), together holding what `latenciesMs` holds.
  const slices: number[][] = [];
  let errorCount = 0;
  let firstError: string | null = null;
  let next = 0;
  const windowStart = performance.now() + options.warmupMs;
  const windowEnd = windowStart + options.durationMs;
  // Each edge runs once: on its timer, or when the workers stop first (the last answer may arrive
  // after the window's end in the same turn, before the timer's).
  // An edge's callback that throws (a node that died: its /proc entry is gone) fails the run after
  // the workers stop, instead of crashing this process in a timer and leaving the nodes running.
  const edges = { started: false, ended: false, error: null as unknown };
  const runEdge = (edge: (() => void) | undefined): void => {
    try {
      edge?.();
    } catch (error) {
      edges.error ??= error;
    }
  };
  const startEdge = (): void => {
    if (!edges.started) runEdge(options.onWindowStart);
    edges.started = true;
  };
  const endEdge = (): void => {
    startEdge();
    if (!edges.ended) runEdge(options.onWindowEnd);
    edges.ended = true;
  };
  const startTimer = setTimeout(startEdge, options.warmupMs);
  const endTimer = setTimeout(endEdge, options.warmupMs + options.durationMs);
  const worker = async (): Promise<void> => {
    while (performance.now() < windowEnd) {
      const started = performance.now();
      const answer = await post(agent, options.target, options.request(next++));
      const finished = performance.now();
      const counted = finished >= windowStart && finished <= windowEnd;
      if (answer.status === 200) {
        if (counted) latenciesMs.push(finished - started);
        if (counted && options.sliceMs !== undefined)
          (slices[Math.floor((finished - windowStart) / options.sliceMs)] ??= []).push(finished - started);
        continue;
      }
      if (counted) errorCount++;
      firstError ??= `${answer.status} ${answer.body.slice(0, 200)}`;
      await new Promise((resolve) => setTimeout(resolve, errorPauseMs));
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    endEdge();
    if (edges.error !== null) throw edges.error;
  } finally {
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    agent.destroy();
  }
  latenciesMs.sort((a, b) => a - b);
  return {
    okCount: latenciesMs.length,
    errorCount,
    seconds: options.durationMs / 1000,
    p50Ms: percentile(latenciesMs, 50),
    p99Ms: percentile(latenciesMs, 99),
    sliceP50Ms: Array.from(slices, (slice) =>
      percentile(
        (slice ?? []).sort((a, b) => a - b),
        50,
      ),
    ),
    firstError,
  };
}

/** What the main thread of a process has had so far: CPU time, and how often it was preempted. */
export type MainThreadUse = { readonly cpuMs: number; readonly preempted: number };

/**
 * The main thread's CPU time (`/proc/<pid>/task/<pid>/stat`, fields 14 and 15) and its involuntary
 * context switches (`nonvoluntary_ctxt_switches` of its `status`): the times the scheduler took the
 * CPU from it while it could still run, usually for a process it had just woken.
 */
export function mainThreadUse(pid: number): MainThreadUse {
  const task = `/proc/${pid}/task/${pid}`;
  const stat = readFileSync(`${task}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
  const status = readFileSync(`${task}/status`, "utf8");
  const preempted = Number(/^nonvoluntary_ctxt_switches:\s*(\d+)$/m.exec(status)?.[1] ?? Number.NaN);
  return { cpuMs, preempted };
}

/** `getconf CLK_TCK`: 100 on every Linux the project runs on (the kernel's USER_HZ). */
const clockTicksPerSecond = 100;

/**
 * CPU time (user + system, all threads) a process has used so far, in milliseconds, from
 * `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
 */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / clockTicksPerSecond;
}
