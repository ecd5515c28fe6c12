/**
 * The entry applier: applies a committed log entry with a large payload in a process of its own
 * (`entry-apply-process.ts`), so that no node's event loop spends the seconds SQLite needs to
 * apply a changeset of tens of MB. Measured on this project's 2-core machine: a 34 MB changeset of
 * 300,000 rows took about a second to apply; applied on the event loop of a leader and of both
 * followers at once, it cost the cluster three elections and held one node's `/healthz` 2.4 s.
 *
 * How: the node writes the payload to a file beside its database (off the event loop), forks the
 * process, which opens the database, applies the entry through the same replica path as the node
 * (`Store.apply`: one transaction that also records the applied index) and exits. Meanwhile the
 * node's store writes nothing (`Store.applyElsewhere`): the process holds SQLite's write lock, and a
 * write on the event loop would wait on it, blocked. Readers go on reading the committed state.
 *
 * Crash safety is the replica path's: the entry is in the log; a process killed before its commit
 * leaves the state before the entry, which the node applies again after a restart.
 *
 * Bounds: one entry at a time; a process gets `applyMsMax` (start included) before it is killed and
 * the node told; a killed process is waited for at most `exitWaitMsMax`.
 */
import { type ChildProcess, fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { LogIndex } from "../types/ids.ts";
import {
  type EntryApplyJob,
  type EntryApplyReply,
  payloadFileName,
  payloadFilePattern,
} from "./entry-apply-protocol.ts";
import { positiveBounds, type StoreHelperOptions, waitForExit } from "./helper-process.ts";
import type { QueryPoolLog } from "./query-process-pool.ts";
import { forwardStderr } from "./query-process-pool.ts";
import { replyError } from "./query-process-protocol.ts";
import type { Store } from "./store.ts";

export const entryApplierDefaults = {
  /** Entries whose payload has at least this many bytes are applied in the process. */
  payloadBytesMin: 1 << 20,
  /**
   * The longest one entry's apply may take, the process's start included (a process loads the
   * store's modules first: seconds on a busy 2-core machine). Past it the process is killed and
   * the apply fails, which stops the node: it cannot follow the log without that entry.
   */
  applyMsMax: 300_000,
  exitWaitMsMax: 5_000,
  watchdogPollMs: 250,
} as const;

type Bounds = { readonly [K in keyof typeof entryApplierDefaults]: number };

export type EntryApplierOptions = StoreHelperOptions<typeof entryApplierDefaults>;

/** What the node needs of an entry applier; the simulator and unit tests apply every entry in process. */
export interface EntryApplier {
  /** Entries whose payload has at least this many bytes go to `apply`. */
  readonly payloadBytesMin: number;
  /** Applies committed entry `index` (the next after `store`'s applied index) to `store`'s file. */
  apply(store: Store, index: LogIndex, payload: Uint8Array): Promise<void>;
  /** Kills a running apply (which then fails) and waits, bounded, until its process has exited. */
  close(): Promise<void>;
}

const entryFile = new URL("./entry-apply-process.ts", import.meta.url);
const compileCache = path.join(os.tmpdir(), "node-compile-cache");

type Running = { readonly child: ChildProcess; readonly exited: Promise<void> };

export class ProcessEntryApplier implements EntryApplier {
  readonly payloadBytesMin: number;
  readonly #bounds: Bounds;
  readonly #options: EntryApplierOptions;
  #running: Running | null = null;
  #closed = false;
  readonly #killOnExit = (): void => {
    this.#running?.child.kill("SIGKILL");
  };

  constructor(options: EntryApplierOptions) {
    this.#bounds = positiveBounds("entry applier", entryApplierDefaults, options);
    this.payloadBytesMin = this.#bounds.payloadBytesMin;
    this.#options = options;
    removeStalePayloads(path.dirname(options.path), options.log);
    process.on("exit", this.#killOnExit);
  }

  apply(store: Store, index: LogIndex, payload: Uint8Array): Promise<void> {
    assert(path.resolve(store.path) === path.resolve(this.#options.path), "the applier's store");
    return store.applyElsewhere(index, () => this.#run(index, payload));
  }

  async close(): Promise<void> {
    this.#closed = true;
    process.off("exit", this.#killOnExit);
    const running = this.#running;
    if (running === null) return;
    running.child.kill("SIGKILL");
    await this.#exitOf(running);
  }

  /** Runs the process for one entry; resolves with its error, or null once it applied the entry and exited. */
  async #run(index: LogIndex, payload: Uint8Array): Promise<Error | null> {
    if (this.#closed) return shuttingDown();
    assert(this.#running === null, "the entry applier applies one entry at a time");
    const directory = path.dirname(this.#options.path);
    const payloadFile = path.join(directory, payloadFileName(process.pid, index));
    try {
      await fs.promises.writeFile(payloadFile, payload);
      if (this.#closed) return shuttingDown();
      const job: EntryApplyJob = {
        path: this.#options.path,
        limits: this.#options.limits,
        index,
        payloadFile,
        payloadBytes: payload.byteLength,
        watchdogPollMs: this.#bounds.watchdogPollMs,
      };
      return await this.#fork(job);
    } finally {
      await fs.promises.rm(payloadFile, { force: true });
    }
  }

  async #fork(job: EntryApplyJob): Promise<Error | null> {
    const started = performance.now();
    const child = fork(entryFile, [JSON.stringify(job)], {
      execPath: process.execPath,
      execArgv: [],
      env: { NODE_COMPILE_CACHE: compileCache, ...process.env },
      serialization: "advanced",
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const log = this.#options.log;
    forwardStderr(child, (line) => log("warn", "entry-applier.stderr", { pid: child.pid, line }));
    const exit = Promise.withResolvers<string>();
    child.once("close", (code, signal) => exit.resolve(`code ${code}, signal ${signal}`));
    child.on("error", (error) => {
      log("error", "entry-applier.error", { pid: child.pid, error: error.message });
      if (child.pid === undefined) exit.resolve(error.message);
      else child.kill("SIGKILL");
    });
    let reply: EntryApplyReply | null = null;
    child.on("message", (message: EntryApplyReply) => {
      reply = message;
    });
    const running: Running = { child, exited: exit.promise.then(() => {}) };
    this.#running = running;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), this.#bounds.applyMsMax);
    });
    try {
      const how = await Promise.race([exit.promise, late]);
      if (how === "late") {
        child.kill("SIGKILL");
        await this.#exitOf(running);
        const message = `the entry at ${job.index} was not applied within ${this.#bounds.applyMsMax} ms`;
        return new Error(message);
      }
      const answer = reply as EntryApplyReply | null;
      const ms = Math.round(performance.now() - started);
      log("info", "entry-applier.done", { index: job.index, bytes: job.payloadBytes, ms, how });
      if (answer?.type === "applied") return null;
      if (answer === null)
        return this.#closed ? shuttingDown() : new Error(`the entry applier exited (${how})`);
      return replyError({ ...answer, id: 0 }, child.pid ?? -1);
    } finally {
      clearTimeout(timer);
      this.#running = null;
    }
  }

  /** Resolves when the process has exited, or after `exitWaitMsMax` (logged: the lock may still be held). */
  #exitOf(running: Running): Promise<void> {
    const waitMs = this.#bounds.exitWaitMsMax;
    return waitForExit(running.exited, waitMs, () =>
      this.#options.log("error", "entry-applier.exit-wait-passed", { pid: running.child.pid, waitMs }),
    );
  }
}

/** Payload files a previous node process left behind (it stopped while an entry was applied). */
function removeStalePayloads(directory: string, log: QueryPoolLog): void {
  for (const name of fs.readdirSync(directory).filter((entry) => payloadFilePattern.test(entry))) {
    fs.rmSync(path.join(directory, name), { force: true });
    log("info", "entry-applier.stale-payload-removed", { file: name });
  }
}

function shuttingDown(): BatonError {
  return new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping its entry applier");
}
