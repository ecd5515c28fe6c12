/**
 * A bounded pool of query processes (`query-process.ts`): the query executor of a real node.
 *
 * Why processes: a client query runs synchronously in SQLite, and node:sqlite offers neither a
 * progress handler nor an interrupt; a worker thread stuck in a statement cannot be terminated
 * either. A query that runs on the node's event loop for ever stops the node from heartbeating,
 * voting and answering. Run in a child process, such a query costs that process, which is killed
 * (SIGKILL, by pid) when the query passes its bound and replaced, while the node serves on.
 *
 * Bounds: at most `queryProcessesMax` processes run queries, one query each; at most
 * `queuedQueriesMax` queries wait for a free process (more are `OVERLOADED` at once), each for at
 * most `queueWaitMsMax` or its own time bound, whichever is less (then `OVERLOADED`: it never ran,
 * so a later try may succeed); a query runs for at most its `timeoutMs`, capped by
 * `queryMsMax`, counted from when it was queued (then `QUERY_TIMEOUT`, and its process is killed).
 *
 * Failures: a process that dies on its own answers its query `QUERY_ABORTED` and is replaced (after
 * `respawnDelayMs` when it died before it was ready, so a process that cannot start does not spin);
 * its stderr goes to the node's log line by line. `close` kills every process and waits for each to
 * exit; a node that exits without closing kills them on the way out (`process.on("exit")`), and a
 * query process whose node died kills itself (its watchdog).
 */
import { type ChildProcess, fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { positiveBounds } from "./helper-process.ts";
import type { QueryExecutor, QueryRunOptions } from "./query-executor.ts";
import { type QueryProcessSettings, type QueryReply, replyError } from "./query-process-protocol.ts";
import type { QueryOptions, QueryResult, Statement } from "./types.ts";
import type { StatementLimits } from "./values.ts";

export type QueryPoolLog = (
  level: "debug" | "info" | "warn" | "error",
  event: string,
  fields: Record<string, unknown>,
) => void;

export const queryPoolDefaults = {
  queryProcessesMax: 2,
  /** The longest any query may run, whatever `timeoutMs` it asks for. */
  queryMsMax: 5_000,
  queuedQueriesMax: 256,
  queueWaitMsMax: 1_000,
  busyTimeoutMs: 5_000,
  /**
   * How long `start` waits for the processes to open the database. A process loads the store's modules
   * first: on 2 cores at load average 25 that took more than 10 s, and the node failed to start.
   */
  startMsMax: 30_000,
  respawnDelayMs: 1_000,
  /** How long `close` waits for killed processes to exit before it gives up (and logs). */
  exitWaitMsMax: 5_000,
  watchdogPollMs: 250,
} as const;

type Bounds = { readonly [K in keyof typeof queryPoolDefaults]: number };

export type QueryPoolOptions = Partial<Bounds> & {
  /** The store's database file; the store must have it open (in WAL mode) while the pool runs. */
  readonly path: string;
  readonly limits: StatementLimits;
  readonly log: QueryPoolLog;
};

/** Longest stderr line kept for the log; the rest of the line is cut. */
const stderrLineCharsMax = 4_096;

const entryFile = new URL("./query-process.ts", import.meta.url);

/**
 * Node's compile cache for query processes (where `module.enableCompileCache()` puts it, unless
 * the environment names another): it keeps the stripped and compiled modules, which cuts loading
 * the store's modules from about 0.8 s to 0.3–0.4 s on a busy 2-core machine; a replacement's start
 * is time the pool runs one process short.
 */
const defaultCompileCache = path.join(os.tmpdir(), "node-compile-cache");

type Job = {
  readonly id: number;
  readonly statements: readonly Statement[];
  readonly options: QueryOptions;
  readonly timeoutMs: number;
  readonly queuedAtMs: number;
  readonly resolve: (result: QueryResult) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | null;
  runner: Runner | null;
};

type Runner = {
  readonly child: ChildProcess;
  readonly pid: number;
  state: "starting" | "idle" | "busy" | "stopped";
  job: Job | null;
  readonly ready: PromiseWithResolvers<void>;
  readonly exited: PromiseWithResolvers<void>;
};

export class QueryProcessPool implements QueryExecutor {
  readonly #bounds: Bounds;
  readonly #settings: QueryProcessSettings;
  readonly #log: QueryPoolLog;
  /** Every process not yet seen to exit, including killed ones. */
  readonly #live = new Set<Runner>();
  readonly #queue: Job[] = [];
  readonly #respawnTimers = new Set<NodeJS.Timeout>();
  #nextJobId = 1;
  #closed = false;
  readonly #killAllOnExit = (): void => {
    for (const runner of this.#live) runner.child.kill("SIGKILL");
  };

  private constructor(options: QueryPoolOptions) {
    this.#bounds = positiveBounds("query pool", queryPoolDefaults, options);
    this.#log = options.log;
    this.#settings = {
      path: options.path,
      busyTimeoutMs: this.#bounds.busyTimeoutMs,
      limits: options.limits,
      watchdogPollMs: this.#bounds.watchdogPollMs,
    };
    process.on("exit", this.#killAllOnExit);
  }

  /** Starts the pool's processes and waits until each has opened the database. */
  static async start(options: QueryPoolOptions): Promise<QueryProcessPool> {
    const pool = new QueryProcessPool(options);
    const runners = Array.from({ length: pool.#bounds.queryProcessesMax }, () => pool.#spawn());
    let timer: NodeJS.Timeout | undefined;
    const startMsMax = pool.#bounds.startMsMax;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not ready within ${startMsMax} ms`)), startMsMax);
    });
    try {
      await Promise.race([Promise.all(runners.map((runner) => runner.ready.promise)), late]);
    } catch (error) {
      await pool.close();
      const message = `query processes for ${options.path} did not start: ${(error as Error).message}`;
      throw new BatonError(ErrorCode.PROCESS_START_FAILED, message, { path: options.path }, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    return pool;
  }

  /** The pids of the processes running now (killed ones that have not exited yet included). */
  get pids(): number[] {
    return [...this.#live].map((runner) => runner.pid);
  }

  /** Processes that have opened the database and are alive (idle or running a query). */
  get readyProcesses(): number {
    return [...this.#live].filter((runner) => runner.state === "idle" || runner.state === "busy").length;
  }

  get queueLength(): number {
    return this.#queue.length;
  }

  query(statements: readonly Statement[], options: QueryRunOptions): Promise<QueryResult> {
    if (this.#closed) return Promise.reject(shuttingDown());
    const { queuedQueriesMax, queryMsMax } = this.#bounds;
    if (this.#queue.length >= queuedQueriesMax) {
      const message = `${this.#queue.length} queries wait for a query process; at most ${queuedQueriesMax}`;
      return Promise.reject(new BatonError(ErrorCode.OVERLOADED, message, { queuedQueriesMax }));
    }
    assert(Number.isFinite(options.timeoutMs), "a query's timeoutMs is a number");
    const { timeoutMs: requestedMs, ...queryOptions } = options;
    const timeoutMs = Math.max(1, Math.min(requestedMs, queryMsMax));
    const { promise, resolve, reject } = Promise.withResolvers<QueryResult>();
    const job: Job = {
      id: this.#nextJobId++,
      statements,
      options: queryOptions,
      timeoutMs,
      queuedAtMs: performance.now(),
      resolve,
      reject,
      timer: null,
      runner: null,
    };
    const waitMs = Math.min(timeoutMs, this.#bounds.queueWaitMsMax);
    job.timer = setTimeout(() => this.#waitedTooLong(job), waitMs);
    this.#queue.push(job);
    this.#dispatch();
    return promise;
  }

  /** Kills every process (by pid) and waits, bounded, until each has exited. */
  async close(): Promise<void> {
    this.#closed = true;
    process.off("exit", this.#killAllOnExit);
    for (const timer of this.#respawnTimers) clearTimeout(timer);
    this.#respawnTimers.clear();
    for (const job of this.#queue.splice(0)) settle(job, null, shuttingDown());
    const exits = [...this.#live].map((runner) => {
      if (runner.job !== null) settle(runner.job, null, shuttingDown());
      this.#stop(runner);
      return runner.exited.promise;
    });
    let timer: NodeJS.Timeout | undefined;
    const waitMs = this.#bounds.exitWaitMsMax;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), waitMs);
    });
    const outcome = await Promise.race([Promise.all(exits), late]);
    clearTimeout(timer);
    if (outcome === "late") this.#log("error", "query-pool.exit-wait-passed", { pids: this.pids, waitMs });
  }

  #spawn(): Runner {
    const child = fork(entryFile, [JSON.stringify(this.#settings)], {
      execPath: process.execPath,
      execArgv: [],
      env: { NODE_COMPILE_CACHE: defaultCompileCache, ...process.env },
      serialization: "advanced",
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const runner: Runner = {
      child,
      pid: child.pid ?? -1,
      state: "starting",
      job: null,
      ready: Promise.withResolvers<void>(),
      exited: Promise.withResolvers<void>(),
    };
    runner.ready.promise.catch(() => {});
    this.#live.add(runner);
    child.on("message", (reply: QueryReply) => this.#onReply(runner, reply));
    // "close" rather than "exit": it comes once stderr is drained, so the log holds a dying
    // process's last words before its exit is reported.
    child.once("close", (code, signal) => this.#onExit(runner, `code ${code}, signal ${signal}`));
    child.on("error", (error) => {
      // No process (spawn failed) is as good as an exited one; any other failure ends the process.
      this.#log("error", "query-process.error", { pid: runner.pid, error: error.message });
      if (child.pid === undefined) this.#onExit(runner, error.message);
      else child.kill("SIGKILL");
    });
    forwardStderr(child, (line) => this.#log("warn", "query-process.stderr", { pid: runner.pid, line }));
    return runner;
  }

  /** Gives free processes the oldest waiting queries. */
  #dispatch(): void {
    for (const runner of this.#live) {
      if (this.#queue.length === 0) return;
      if (runner.state !== "idle") continue;
      const job = this.#queue.shift()!;
      clearTimeout(job.timer ?? undefined);
      const leftMs = Math.max(0, job.timeoutMs - (performance.now() - job.queuedAtMs));
      runner.state = "busy";
      runner.job = job;
      job.runner = runner;
      job.timer = setTimeout(() => this.#ranTooLong(job), leftMs);
      const request = {
        type: "query",
        id: job.id,
        statements: job.statements,
        options: job.options,
      } as const;
      try {
        runner.child.send(request);
      } catch (error) {
        // Values the structured clone cannot carry (no JSON request holds one): the caller's mistake.
        runner.state = "idle";
        runner.job = null;
        const message = `the statements cannot be sent to a query process: ${(error as Error).message}`;
        settle(job, null, new BatonError(ErrorCode.BAD_REQUEST, message));
      }
    }
  }

  #onReply(runner: Runner, reply: QueryReply): void {
    if (runner.state === "stopped") return; // A reply that raced with the kill: its query is answered.
    if (reply.type === "ready") {
      assert(runner.state === "starting", `query process ${runner.pid} reported ready twice`);
      runner.state = "idle";
      runner.ready.resolve();
      this.#dispatch();
      return;
    }
    const job = runner.job;
    assert(
      job !== null && job.id === reply.id,
      `query process ${runner.pid} answered a query it was not given`,
    );
    runner.job = null;
    runner.state = "idle";
    if (reply.type === "result") settle(job, reply.result, null);
    else settle(job, null, replyError(reply, runner.pid));
    this.#dispatch();
  }

  #waitedTooLong(job: Job): void {
    const at = this.#queue.indexOf(job);
    assert(at !== -1 && job.runner === null, "a query's queue timer fires only while it waits");
    this.#queue.splice(at, 1);
    // The query never ran: the node lacked capacity in time, which a later try may find (not
    // QUERY_TIMEOUT, which says the query itself is too slow and must not be retried).
    const waitedMs = Math.round(performance.now() - job.queuedAtMs);
    const message = `no query process was free within ${waitedMs} ms; retry shortly`;
    const { queueWaitMsMax } = this.#bounds;
    settle(job, null, new BatonError(ErrorCode.OVERLOADED, message, { waitedMs, queueWaitMsMax }));
  }

  #ranTooLong(job: Job): void {
    const runner = job.runner;
    assert(runner !== null && runner.job === job, "a query's run timer fires only while it runs");
    this.#log("warn", "query.timeout", { pid: runner.pid, timeoutMs: job.timeoutMs });
    settle(job, null, queryTimeout(job));
    this.#stop(runner);
    this.#replace(0);
  }

  /** Kills a process by pid; the pool forgets it at once, and its exit is awaited by `close`. */
  #stop(runner: Runner): void {
    if (runner.state === "stopped") return;
    runner.state = "stopped";
    runner.job = null;
    runner.ready.reject(new Error(`query process ${runner.pid} was stopped`));
    runner.child.kill("SIGKILL");
  }

  #onExit(runner: Runner, how: string): void {
    if (!this.#live.delete(runner)) return;
    runner.exited.resolve();
    if (runner.state === "stopped") return;
    const wasReady = runner.state !== "starting";
    this.#log("warn", "query-process.exited", { pid: runner.pid, how, wasReady });
    const job = runner.job;
    runner.state = "stopped";
    runner.job = null;
    runner.ready.reject(new Error(`query process ${runner.pid} exited (${how})`));
    if (job !== null) {
      const message = `the process running the query died before answering (${how})`;
      settle(job, null, new BatonError(ErrorCode.QUERY_ABORTED, message, { pid: runner.pid }));
    }
    if (!this.#closed) this.#replace(wasReady ? 0 : this.#bounds.respawnDelayMs);
  }

  /** Starts a process in place of one that is gone, now or after `delayMs`. */
  #replace(delayMs: number): void {
    if (delayMs === 0) {
      this.#spawn();
      return;
    }
    const timer = setTimeout(() => {
      this.#respawnTimers.delete(timer);
      if (!this.#closed) this.#spawn();
    }, delayMs);
    this.#respawnTimers.add(timer);
  }
}

function settle(job: Job, result: QueryResult | null, error: Error | null): void {
  clearTimeout(job.timer ?? undefined);
  job.timer = null;
  if (error !== null) job.reject(error);
  else job.resolve(result!);
}

function shuttingDown(): BatonError {
  return new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping its query processes");
}

function queryTimeout(job: Job): BatonError {
  const message = `the query did not finish within ${job.timeoutMs} ms and was stopped; change the query rather than retry it`;
  return new BatonError(ErrorCode.QUERY_TIMEOUT, message, { timeoutMs: job.timeoutMs });
}

/** Calls `line` for every line the child writes to stderr, each cut to `stderrLineCharsMax`. */
export function forwardStderr(child: ChildProcess, line: (text: string) => void): void {
  let partial = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = (lines.pop() ?? "").slice(0, stderrLineCharsMax);
    for (const text of lines) if (text.trim() !== "") line(text.slice(0, stderrLineCharsMax));
  });
  child.stderr?.on("end", () => {
    if (partial.trim() !== "") line(partial);
  });
}
