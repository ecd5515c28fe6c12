/**
 * The write sandbox: one killable process (`write-sandbox-process.ts`) in which a leader runs the
 * write batches it cannot prove short (`statement-cost.ts`).
 *
 * Why a process: a batch runs synchronously inside SQLite, and node:sqlite offers neither a
 * progress handler nor an interrupt; a worker thread stuck in a statement cannot be terminated
 * either (and keeps its process from exiting). A runaway statement on the leader's event loop
 * stops heartbeats and costs the cluster its leader. In the sandbox it costs one process, killed
 * (SIGKILL, by pid) when the batch passes its bound; the batch was never committed there, so
 * killing it loses nothing.
 *
 * The write lock: the sandbox writes (and rolls back) on the node's own database file, so while a
 * batch runs it holds SQLite's write lock and the node must not write. `run` therefore settles only
 * once the process holds no lock: after its reply (sent after the rollback) or, when it was killed,
 * after it has exited. The node runs one batch at a time here and applies nothing meanwhile.
 *
 * Lifetime: a process runs only while the sandbox is warm (`warm`, which a node calls when it
 * becomes leader; `run` warms it too). `rest` stops the process and any batch in it (a node that
 * stops leading needs none). A process that dies while warm is replaced.
 *
 * Bounds: one batch at a time (a second `run` while one runs is a bug); a batch waits for a ready
 * process (a replacement may be starting) at most its `timeoutMs` (then `OVERLOADED`: it never ran)
 * and runs for at most what is left of it, capped by `executeMsMax` (then `QUERY_TIMEOUT`); a killed
 * process is waited for at most `exitWaitMsMax`.
 */
import { type ChildProcess, fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { positiveBounds, type StoreHelperOptions, waitForExit } from "./helper-process.ts";
import type { QueryPoolLog } from "./query-process-pool.ts";
import { forwardStderr } from "./query-process-pool.ts";
import { replyError } from "./query-process-protocol.ts";
import type { ExecuteResult } from "./types.ts";
import {
  replyFilePattern,
  type SandboxMessage,
  type SandboxReply,
  type SandboxRequest,
  type SandboxSettings,
} from "./write-sandbox-protocol.ts";

export const writeSandboxDefaults = {
  /** The longest a sandboxed batch may run, whatever `timeoutMs` it asks for. */
  executeMsMax: 5_000,
  /**
   * How long `start` waits for the process to open the database. A process loads the store's modules
   * first: on 2 cores at load average 25 that took more than 10 s, and the node failed to start.
   */
  startMsMax: 30_000,
  /** Before replacing a process that died before it was ready, so one that cannot start does not spin. */
  respawnDelayMs: 1_000,
  /** How long a killed process is waited for before the lock is taken as released (and it is logged). */
  exitWaitMsMax: 5_000,
  watchdogPollMs: 250,
} as const;

type Bounds = { readonly [K in keyof typeof writeSandboxDefaults]: number };

export type WriteSandboxOptions = StoreHelperOptions<typeof writeSandboxDefaults>;

/** What the node needs of a sandbox; the simulator and unit tests run without one. */
export interface BatchSandbox {
  /**
   * Runs `request` as the batch for `request.index` on the committed state at
   * `request.appliedIndex` and discards it; resolves with what `Store.execute` returned there.
   * Settles only once the sandbox holds no lock on the database.
   */
  run(request: SandboxRequest, timeoutMs: number): Promise<ExecuteResult>;
  /** Stops the running batch, if any (its `run` rejects `QUERY_ABORTED`). */
  cancel(reason: string): void;
  /** Starts a process (if none runs), so that the first batch need not wait for one. */
  warm(): void;
  /** Stops the process and any batch in it (`QUERY_ABORTED`); the next `warm` or `run` starts one. */
  rest(reason: string): void;
  close(): Promise<void>;
}

const entryFile = new URL("./write-sandbox-process.ts", import.meta.url);
const compileCache = path.join(os.tmpdir(), "node-compile-cache");

type Job = {
  readonly id: number;
  readonly request: SandboxRequest;
  readonly timeoutMs: number;
  readonly calledAtMs: number;
  /** The bound it runs under once sent: what is left of `timeoutMs`, capped by `executeMsMax`. */
  runMs: number;
  readonly settled: PromiseWithResolvers<ExecuteResult>;
  /** Set when the job is decided (reply, timeout, cancel): the error to reject with once the lock is free. */
  outcome: { result: ExecuteResult } | { error: Error } | null;
  timer: NodeJS.Timeout | null;
  sent: boolean;
};

type Sandbox = {
  readonly child: ChildProcess;
  readonly pid: number;
  state: "starting" | "idle" | "busy" | "stopped";
  readonly ready: PromiseWithResolvers<void>;
  readonly exited: PromiseWithResolvers<void>;
};

export class WriteSandbox implements BatchSandbox {
  readonly #bounds: Bounds;
  readonly #settings: SandboxSettings;
  readonly #log: QueryPoolLog;
  /** The current process; null while resting. */
  #process: Sandbox | null = null;
  #warm = false;
  #job: Job | null = null;
  #nextJobId = 1;
  #closed = false;
  #respawnTimer: NodeJS.Timeout | null = null;
  readonly #killOnExit = (): void => {
    this.#process?.child.kill("SIGKILL");
  };

  private constructor(options: WriteSandboxOptions) {
    this.#bounds = positiveBounds("write sandbox", writeSandboxDefaults, options);
    this.#log = options.log;
    removeStaleReplies(path.dirname(options.path), this.#log);
    this.#settings = {
      path: options.path,
      limits: options.limits,
      watchdogPollMs: this.#bounds.watchdogPollMs,
    };
    process.on("exit", this.#killOnExit);
  }

  /**
   * A resting sandbox: no process runs until `warm` or `run`. A node creates its sandbox this way
   * and warms it when it becomes leader (a batch that arrives before the process is ready waits for
   * it within its own time bound).
   */
  static create(options: WriteSandboxOptions): WriteSandbox {
    return new WriteSandbox(options);
  }

  /** Starts the sandbox's process and waits until it has opened the database. */
  static async start(options: WriteSandboxOptions): Promise<WriteSandbox> {
    const sandbox = new WriteSandbox(options);
    sandbox.warm();
    assert(sandbox.#process !== null, "a warm sandbox has a process");
    const startMsMax = sandbox.#bounds.startMsMax;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not ready within ${startMsMax} ms`)), startMsMax);
    });
    try {
      await Promise.race([sandbox.#process.ready.promise, late]);
    } catch (error) {
      await sandbox.close();
      const message = `the write sandbox for ${options.path} did not start: ${(error as Error).message}`;
      throw new BatonError(ErrorCode.PROCESS_START_FAILED, message, { path: options.path }, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    return sandbox;
  }

  /** The pid of the sandbox's current process, or null while resting. */
  get pid(): number | null {
    return this.#process?.pid ?? null;
  }

  warm(): void {
    if (this.#closed) return;
    this.#warm = true;
    if (this.#process === null && this.#respawnTimer === null) this.#process = this.#spawn();
  }

  rest(reason: string): void {
    this.#warm = false;
    this.cancel(reason);
    if (this.#respawnTimer !== null) clearTimeout(this.#respawnTimer);
    this.#respawnTimer = null;
    const sandbox = this.#process;
    if (sandbox === null || this.#job !== null) return; // A cancelled batch's process is being stopped.
    this.#process = null;
    this.#stop(sandbox);
  }

  run(request: SandboxRequest, timeoutMs: number): Promise<ExecuteResult> {
    if (this.#closed) return Promise.reject(shuttingDown());
    assert(this.#job === null, "the write sandbox runs one batch at a time");
    assert(Number.isFinite(timeoutMs), "a sandboxed batch's timeoutMs is a number");
    const job: Job = {
      id: this.#nextJobId++,
      request,
      timeoutMs: Math.max(1, timeoutMs),
      calledAtMs: performance.now(),
      runMs: 0,
      settled: Promise.withResolvers<ExecuteResult>(),
      outcome: null,
      timer: null,
      sent: false,
    };
    this.#job = job;
    job.timer = setTimeout(() => this.#ranTooLong(job), job.timeoutMs);
    this.warm();
    this.#dispatch();
    return job.settled.promise;
  }

  cancel(reason: string): void {
    const job = this.#job;
    if (job === null || job.outcome !== null) return;
    const message = `the batch was stopped before it finished (${reason}); nothing was applied`;
    this.#decide(job, { error: new BatonError(ErrorCode.QUERY_ABORTED, message, { reason }) });
  }

  /** Kills the process (by pid) and waits, bounded, until it has exited; a running batch fails. */
  async close(): Promise<void> {
    this.#closed = true;
    process.off("exit", this.#killOnExit);
    if (this.#respawnTimer !== null) clearTimeout(this.#respawnTimer);
    const job = this.#job;
    if (job !== null && job.outcome === null) this.#decide(job, { error: shuttingDown() });
    const sandbox = this.#process;
    if (sandbox === null) return;
    this.#stop(sandbox);
    await this.#exitOf(sandbox);
  }

  #spawn(): Sandbox {
    const child = fork(entryFile, [JSON.stringify(this.#settings)], {
      execPath: process.execPath,
      execArgv: [],
      env: { NODE_COMPILE_CACHE: compileCache, ...process.env },
      serialization: "advanced",
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const sandbox: Sandbox = {
      child,
      pid: child.pid ?? -1,
      state: "starting",
      ready: Promise.withResolvers<void>(),
      exited: Promise.withResolvers<void>(),
    };
    sandbox.ready.promise.catch(() => {});
    child.on("message", (reply: SandboxReply) => this.#onReply(sandbox, reply));
    child.once("close", (code, signal) => this.#onExit(sandbox, `code ${code}, signal ${signal}`));
    child.on("error", (error) => {
      this.#log("error", "write-sandbox.error", { pid: sandbox.pid, error: error.message });
      if (child.pid === undefined) this.#onExit(sandbox, error.message);
      else child.kill("SIGKILL");
    });
    forwardStderr(child, (line) => this.#log("warn", "write-sandbox.stderr", { pid: sandbox.pid, line }));
    return sandbox;
  }

  /** Sends the waiting batch once the process is ready. */
  #dispatch(): void {
    const job = this.#job;
    const sandbox = this.#process;
    if (job === null || job.sent || job.outcome !== null || sandbox?.state !== "idle") return;
    const message: SandboxMessage = { type: "batch", id: job.id, ...job.request };
    try {
      sandbox.child.send(message);
    } catch (error) {
      const text = `the batch cannot be sent to the write sandbox: ${(error as Error).message}`;
      this.#decide(job, { error: new BatonError(ErrorCode.BAD_REQUEST, text) });
      return;
    }
    job.sent = true;
    sandbox.state = "busy";
    if (job.timer !== null) clearTimeout(job.timer);
    const leftMs = job.timeoutMs - (performance.now() - job.calledAtMs);
    job.runMs = Math.max(1, Math.round(Math.min(leftMs, this.#bounds.executeMsMax)));
    job.timer = setTimeout(() => this.#ranTooLong(job), job.runMs);
  }

  #onReply(sandbox: Sandbox, reply: SandboxReply): void {
    if (sandbox.state === "stopped") return; // A reply that raced with the kill: its batch is decided.
    if (reply.type === "ready") {
      assert(sandbox.state === "starting", `write sandbox ${sandbox.pid} reported ready twice`);
      sandbox.state = "idle";
      sandbox.ready.resolve();
      this.#dispatch();
      return;
    }
    const job = this.#job;
    assert(job !== null && job.id === reply.id && sandbox.state === "busy", "a reply names the batch sent");
    sandbox.state = "idle";
    if (reply.type === "result") this.#decide(job, { result: reply.result });
    else if (reply.type === "result-file") void this.#readReply(job, reply.file, sandbox.pid);
    else this.#decide(job, { error: replyError(reply, sandbox.pid) });
  }

  /**
   * Reads a reply the process left in a file (off the event loop), deletes the file and decides
   * the batch. The process holds no lock by then; its time bound no longer runs.
   */
  async #readReply(job: Job, file: string, pid: number): Promise<void> {
    if (job.timer !== null) clearTimeout(job.timer);
    job.timer = null;
    let outcome: NonNullable<Job["outcome"]>;
    try {
      outcome = { result: v8.deserialize(await fs.promises.readFile(file)) as ExecuteResult };
    } catch (error) {
      const message = `the write sandbox's reply could not be read: ${(error as Error).message}`;
      outcome = { error: new BatonError(ErrorCode.QUERY_ABORTED, message, { pid }) };
    } finally {
      await fs.promises.rm(file, { force: true });
    }
    if (this.#job === job && job.outcome === null) this.#decide(job, outcome);
  }

  #ranTooLong(job: Job): void {
    if (job.outcome !== null) return;
    if (!job.sent) {
      const message = `the write sandbox was not ready within ${job.timeoutMs} ms; the batch never ran, retry shortly`;
      this.#decide(job, {
        error: new BatonError(ErrorCode.OVERLOADED, message, { timeoutMs: job.timeoutMs }),
      });
      return;
    }
    const timeoutMs = job.runMs;
    this.#log("warn", "write-sandbox.timeout", { pid: this.pid, timeoutMs });
    const message = `the batch did not finish within ${timeoutMs} ms and was stopped; nothing was applied. Change the statements rather than retry them`;
    this.#decide(job, { error: new BatonError(ErrorCode.QUERY_TIMEOUT, message, { timeoutMs }) });
  }

  /**
   * Records the batch's outcome and settles `run` once no lock can be held: at once when the
   * process is idle or never got the batch, after its exit when it must be killed first.
   */
  #decide(job: Job, outcome: NonNullable<Job["outcome"]>): void {
    assert(job.outcome === null && this.#job === job, "a batch is decided once");
    job.outcome = outcome;
    if (job.timer !== null) clearTimeout(job.timer);
    const sandbox = this.#process;
    if (sandbox === null || !job.sent || sandbox.state !== "busy") {
      this.#finish(job);
      return;
    }
    this.#stop(sandbox);
    void this.#exitOf(sandbox).then(() => this.#finish(job));
    this.#process = !this.#closed && this.#warm ? this.#spawn() : null;
  }

  #finish(job: Job): void {
    assert(this.#job === job && job.outcome !== null, "the decided batch finishes");
    this.#job = null;
    if ("result" in job.outcome) job.settled.resolve(job.outcome.result);
    else job.settled.reject(job.outcome.error);
  }

  #stop(sandbox: Sandbox): void {
    if (sandbox.state === "stopped") return;
    sandbox.state = "stopped";
    sandbox.ready.reject(new Error(`write sandbox ${sandbox.pid} was stopped`));
    sandbox.child.kill("SIGKILL");
  }

  /** Resolves when the process has exited, or after `exitWaitMsMax` (logged: the lock may still be held). */
  #exitOf(sandbox: Sandbox): Promise<void> {
    const waitMs = this.#bounds.exitWaitMsMax;
    return waitForExit(sandbox.exited.promise, waitMs, () =>
      this.#log("error", "write-sandbox.exit-wait-passed", { pid: sandbox.pid, waitMs }),
    );
  }

  #onExit(sandbox: Sandbox, how: string): void {
    sandbox.exited.resolve();
    if (sandbox.state === "stopped") return;
    const wasReady = sandbox.state !== "starting";
    this.#log("warn", "write-sandbox.exited", { pid: sandbox.pid, how, wasReady });
    const wasBusy = sandbox.state === "busy";
    sandbox.state = "stopped";
    sandbox.ready.reject(new Error(`write sandbox ${sandbox.pid} exited (${how})`));
    const job = this.#job;
    if (wasBusy && job?.sent === true && job.outcome === null) {
      const message = `the write sandbox died before answering (${how}); nothing was applied`;
      job.outcome = { error: new BatonError(ErrorCode.QUERY_ABORTED, message, { pid: sandbox.pid }) };
      if (job.timer !== null) clearTimeout(job.timer);
      this.#finish(job);
    }
    if (sandbox !== this.#process) return;
    this.#process = null;
    if (this.#closed || !this.#warm) return;
    const respawn = (): void => {
      this.#respawnTimer = null;
      if (this.#closed || !this.#warm) return;
      this.#process = this.#spawn();
    };
    if (wasReady) respawn();
    else this.#respawnTimer = setTimeout(respawn, this.#bounds.respawnDelayMs);
  }
}

/** Reply files a previous node process left behind (it stopped between a reply and its read). */
function removeStaleReplies(directory: string, log: QueryPoolLog): void {
  for (const name of fs.readdirSync(directory).filter((entry) => replyFilePattern.test(entry))) {
    fs.rmSync(path.join(directory, name), { force: true });
    log("info", "write-sandbox.stale-reply-removed", { file: name });
  }
}

function shuttingDown(): BatonError {
  return new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping its write sandbox");
}
