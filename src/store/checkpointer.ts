/**
 * Checkpoints a store's SQLite WAL on a thread of its own, so that copying pages into the database
 * file and fsyncing it never holds the node's event loop.
 *
 * Why: SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold (1,000 pages),
 * on the committing connection, which is the node's write connection on the event loop. It writes
 * the WAL's pages into the database file and fsyncs it: about 50 ms for an 8 MB batch and 300 ms for
 * 30 MB on this project's 2-core test machine, time taken from heartbeats and every request.
 *
 * How: the store turns the automatic checkpoint off on its write connection (`wal_autocheckpoint=0`)
 * and this thread opens a connection of its own on the same file, which every `intervalMs` runs
 * `PRAGMA wal_checkpoint(PASSIVE)`: it copies what no reader still needs and waits for no lock, so
 * it never blocks the writer, readers, or a snapshot being copied. The writer restarts the WAL
 * file once a checkpoint has caught up and no reader uses it (and cuts it back to
 * `journal_size_limit`), as with automatic checkpoints.
 *
 * The catch-up: the writer restarts the WAL only if, when it begins a transaction, the checkpoint
 * has copied every frame. A leader under load commits every few milliseconds, so a checkpoint that
 * runs elsewhere almost never ends in that gap, and the WAL would grow without bound (measured: 377
 * MB in 30 s). So once the WAL passes `walFramesCatchUpAt` (by the length the thread published
 * at its latest pass, or by the file's own length) the store's write connection runs one PASSIVE
 * checkpoint itself right after a commit (`afterCommit`): it copies only what the thread has not,
 * and the next transaction restarts the WAL, as an automatic checkpoint would have. Not while the
 * thread's latest pass found many frames pinned by a reader (`catchUpPinnedFramesMax`): after a
 * long read transaction (a content hash, a snapshot copy) tens of MB wait, and copying and fsyncing
 * them on the event loop stopped it for hundreds of ms; the thread's next pass copies them instead.
 *
 * Keeping the catch-up short: SQLite fsyncs the database file only in a checkpoint that copies every
 * frame, which is the writer's catch-up, so that fsync flushed every page the thread had copied
 * since the last one (27 ms per catch-up on an idle machine, a 16 MiB WAL of random updates). The
 * thread therefore fsyncs the database file itself after each pass that copied frames. And a
 * catch-up first asks the thread for a pass (`requestPass`) and runs after one that began later, so
 * it copies only what was written meanwhile. Both measured by `bench/checkpoint.bench.ts` (300
 * commits a second): the slowest commit 36.6 ms with 22 of 20 ms or more, now 4.4-5.9 ms and none.
 *
 * Stopping is synchronous (`close`), because the store replaces its database file synchronously
 * (`Store.installRestore`): the thread must have closed its connection before the file is swapped.
 * A shared word carries the request and the thread's answer; `close` waits for it at most
 * `checkpointCloseWaitMsMax` (one checkpoint in progress) and treats a longer wait as a bug.
 *
 * A checkpoint that fails (an I/O error, a full disk) is a storage failure: `onFailure` receives it,
 * and the node stops, as for a failed fsync of its log.
 */
import fs from "node:fs";
import type { DatabaseSync } from "node:sqlite";
import { Worker } from "node:worker_threads";
import { BatonError, ErrorCode } from "../lib/errors.ts";

/** How often the thread checkpoints. */
export const checkpointIntervalMs = 100;
/** WAL frames (pages) past which the writer catches the checkpoint up after a commit: 16 MiB of 4 KiB pages. */
export const walFramesCatchUpAt = 4096;
/** A WAL frame: a 4 KiB page and its 24-byte header. */
const walFrameBytes = 4096 + 24;
/** After a catch-up that could not complete, frames the WAL grows by before the writer tries again. */
export const walFramesRetryAfter = 1024;
/**
 * Frames a reader kept the thread's latest checkpoint from copying, past which the writer runs no
 * catch-up: 8 MiB. A read transaction held long (a consistency check's content hash, a snapshot
 * copy) pins what was written meanwhile; once it ends, the thread's next pass copies it. Copied and
 * fsynced by the writer instead, on the event loop, it stopped a node's loop for 240-470 ms in the
 * soak; while the reader lasts, the catch-up could not copy it either.
 */
export const catchUpPinnedFramesMax = 2048;
/** The longest `close` waits for the thread to finish a checkpoint and close its connection. */
export const checkpointCloseWaitMsMax = 30_000;

/**
 * Control words: [request, state, WAL frames and frames left uncopied at the thread's latest
 * checkpoint, passes the thread finished].
 */
const request = { run: 0, close: 1 } as const;
const state = { open: 0, closed: 1 } as const;

const workerSource = `
const { workerData, parentPort } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const fs = require("node:fs");
const control = new Int32Array(workerData.control);
// A pending Atomics.waitAsync does not keep a thread alive; this timer does, until finish.
const keepAlive = setInterval(() => {}, 1 << 30);
function finish(db, dbFd) {
  clearInterval(keepAlive);
  try { db?.close(); } catch {}
  try { if (dbFd !== null) fs.closeSync(dbFd); } catch {}
  Atomics.store(control, 1, ${state.closed});
  Atomics.notify(control, 1);
}
async function run() {
  if (Atomics.load(control, 0) === ${request.close}) return finish(null, null);
  let db = null;
  let dbFd = null;
  try {
    db = new DatabaseSync(workerData.path, { timeout: workerData.busyTimeoutMs });
    db.exec("PRAGMA cache_size = -256");
    const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
    dbFd = fs.openSync(workerData.path, "r");
    let copiedSynced = 0;
    for (;;) {
      const wait = Atomics.waitAsync(control, 0, ${request.run}, workerData.intervalMs);
      if (wait.async) await wait.value;
      if (Atomics.load(control, 0) === ${request.close}) break;
      const done = checkpoint.get();
      // -1 when it could not run at all (the writer held the checkpoint lock): nothing learned.
      if (Number(done.log) >= 0) {
        Atomics.store(control, 2, Number(done.log));
        Atomics.store(control, 3, Math.max(0, Number(done.log) - Number(done.checkpointed)));
      }
      // SQLite syncs the database file only when a checkpoint copies every frame, which the writer's
      // catch-up does: it would flush all this thread copied since on the event loop. Sync it here.
      const copied = Number(done.checkpointed);
      if (copied > 0 && copied !== copiedSynced) {
        fs.fdatasyncSync(dbFd);
        copiedSynced = copied;
      }
      Atomics.add(control, 4, 1);
    }
  } catch (error) {
    parentPort.postMessage({ failure: String(error?.message ?? error) });
  }
  finish(db, dbFd);
}
run();
`;

export class Checkpointer {
  readonly #control: Int32Array;
  readonly #worker: Worker;
  #closed = false;
  /** The thread ended (it acknowledged a close, or failed): `close` need not wait for it. */
  #exited = false;

  private constructor(control: Int32Array, worker: Worker) {
    this.#control = control;
    this.#worker = worker;
  }

  /** Starts checkpointing `path` (a database in WAL mode) every `intervalMs`. */
  static start(
    path: string,
    busyTimeoutMs: number,
    onFailure: (error: BatonError) => void,
    intervalMs = checkpointIntervalMs,
  ): Checkpointer {
    const control = new Int32Array(new SharedArrayBuffer(20));
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { path, busyTimeoutMs, intervalMs, control: control.buffer },
    });
    const checkpointer = new Checkpointer(control, worker);
    let reported = false;
    const fail = (message: string) => {
      if (checkpointer.#closed || reported) return;
      reported = true;
      const text = `checkpoint of ${path} failed: ${message}`;
      onFailure(new BatonError(ErrorCode.STORE_CHECKPOINT_FAILED, text, { path }));
    };
    worker.on("message", (message: { failure: string }) => fail(message.failure));
    worker.on("error", (error) => fail(String(error)));
    worker.on("exit", () => {
      checkpointer.#exited = true;
      fail("the checkpoint thread stopped");
    });
    worker.unref();
    return checkpointer;
  }

  /** The WAL's length in frames at the thread's latest checkpoint (0 after `caughtUp`). */
  get walFrames(): number {
    return Atomics.load(this.#control, 2);
  }

  /** The WAL frames a reader kept the thread's latest checkpoint from copying (0 after `caughtUp`). */
  get pinnedFrames(): number {
    return Atomics.load(this.#control, 3);
  }

  /** Checkpoints the thread has finished (it counts on; `requestPass` asks for the next one now). */
  get passesDone(): number {
    return Atomics.load(this.#control, 4);
  }

  /** Wakes the thread for a checkpoint now instead of at the end of its interval. */
  requestPass(): void {
    Atomics.notify(this.#control, 0);
  }

  /** The writer checkpointed: the figures published by the thread are old news. */
  caughtUp(): void {
    Atomics.store(this.#control, 2, 0);
    Atomics.store(this.#control, 3, 0);
  }

  /** Stops the thread and waits (bounded) until its connection is closed. Closing twice is harmless. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#control, 0, request.close);
    Atomics.notify(this.#control, 0);
    if (this.#exited) return;
    const answer = Atomics.wait(this.#control, 1, state.open, checkpointCloseWaitMsMax);
    if (answer === "timed-out")
      throw new Error(
        `the checkpoint thread did not close its connection within ${checkpointCloseWaitMsMax} ms`,
      );
    void this.#worker.terminate();
  }
}

/**
 * A store's background checkpoints across the connections it opens: `attach` turns the automatic
 * checkpoint off on a write connection and starts a thread; `detach` stops the thread (before the
 * connections close or the file is replaced).
 */
export class BackgroundCheckpoints {
  readonly #path: string;
  readonly #busyTimeoutMs: number;
  readonly #onFailure: (error: BatonError) => void;
  #checkpointer: Checkpointer | null = null;
  /** After a catch-up that could not finish, the WAL length at which the writer tries again. */
  #retryAtFrames = 0;
  /** A catch-up is due: the thread's finished passes and the WAL's length when it was asked for one. */
  #asked: { passes: number; frames: number } | null = null;
  /** Snapshot copies under way (`whileCopying`): no catch-up meanwhile. */
  #copies = 0;
  /** Catch-ups the writer ran (for tests and status). */
  catchUps = 0;
  /** What the thread had reported pinned when the writer's latest catch-up ran (for tests). */
  lastCatchUpPinnedFrames = 0;
  /** Commits that would have caught up but left what a reader pinned (`catchUpPinnedFramesMax`) to the thread. */
  catchUpsLeftToThread = 0;

  /** Starts with the store's current write connection. */
  constructor(
    path: string,
    busyTimeoutMs: number,
    onFailure: (error: BatonError) => void,
    write: DatabaseSync,
  ) {
    this.#path = path;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#onFailure = onFailure;
    this.attach(write);
  }

  attach(write: DatabaseSync): void {
    this.detach();
    write.exec("PRAGMA wal_autocheckpoint=0");
    this.#checkpointer = Checkpointer.start(this.#path, this.#busyTimeoutMs, this.#onFailure);
  }

  /** What a reader kept the thread's latest pass from copying, in frames (`Checkpointer.pinnedFrames`). */
  get pinnedFrames(): number {
    return this.#checkpointer?.pinnedFrames ?? 0;
  }

  detach(): void {
    this.#checkpointer?.close();
    this.#checkpointer = null;
  }

  /**
   * Runs a snapshot copy; until it ends, the writer runs no catch-up. The copy's read transaction
   * pins the WAL, so a catch-up could not restart it anyway, and each one fsyncs the WAL and the
   * database on the event loop while the copy loads the disk: in the 30-minute soak, three takes at
   * once made those fsyncs slow enough that a leader heard no follower for an election timeout
   * (check-quorum-lost, three times). The WAL grows by what is written during the copy; the next
   * commit after it catches up.
   */
  async whileCopying<T>(copy: () => Promise<T>): Promise<T> {
    this.#copies++;
    try {
      return await copy();
    } finally {
      this.#copies--;
    }
  }

  /**
   * After a commit on `write`: when the WAL grew long, checkpoint what the thread has not yet. A
   * catch-up that could not finish (the thread held the checkpoint lock, a reader pins older pages)
   * is tried again once the WAL grew by `walFramesRetryAfter`, not after every commit. While the
   * thread's latest pass left over `catchUpPinnedFramesMax` frames pinned by a reader, none runs.
   *
   * `endOwnReads` ends the store's own read transaction, if one is open, before a catch-up: short
   * queries share one for up to `readTurnHoldMs` (read-turn.ts), and under reads back to back one is
   * open nearly all the time. It would pin the frames it sees, no catch-up could complete, and the
   * WAL would grow without bound (measured: 165 MB of 160 MB written).
   */
  afterCommit(write: DatabaseSync, endOwnReads: () => void = () => {}): void {
    const checkpointer = this.#checkpointer;
    if (checkpointer === null || this.#copies > 0) return;
    // The thread publishes after each pass; a writer committing fast outruns it, so the file's own
    // length counts too (a restart cuts it back to 16 MiB, so a longer file holds that many frames).
    const fileBytes = fs.statSync(`${this.#path}-wal`, { throwIfNoEntry: false })?.size ?? 0;
    const frames = Math.max(checkpointer.walFrames, Math.floor(fileBytes / walFrameBytes));
    if (frames < walFramesCatchUpAt || frames < this.#retryAtFrames) return;
    const pinned = checkpointer.pinnedFrames;
    if (pinned > catchUpPinnedFramesMax) {
      this.catchUpsLeftToThread++;
      return;
    }
    if (!this.#threadPassedSinceAsked(checkpointer, frames)) return;
    this.catchUps++;
    this.lastCatchUpPinnedFrames = pinned;
    endOwnReads();
    const done = write.prepare("PRAGMA wal_checkpoint(PASSIVE)").get();
    const [busy, log, copied] = [done?.busy, done?.log, done?.checkpointed].map(Number);
    this.#asked = null;
    if (busy === 0 && log === copied) {
      checkpointer.caughtUp();
      this.#retryAtFrames = 0;
    } else {
      this.#retryAtFrames = (log ?? frames) + walFramesRetryAfter;
    }
  }

  /**
   * Whether a whole pass of the thread began after the writer asked for one (it asks now, if it has
   * not yet): then nearly every frame is copied and synced, and the catch-up has only what was
   * written since. Also true once the WAL grew by `walFramesRetryAfter` frames while waiting.
   */
  #threadPassedSinceAsked(checkpointer: Checkpointer, frames: number): boolean {
    if (this.#asked === null) {
      this.#asked = { passes: checkpointer.passesDone, frames };
      checkpointer.requestPass();
      return false;
    }
    // The pass under way when asked (if one was) may have begun before: wait for the one after.
    return (
      checkpointer.passesDone >= this.#asked.passes + 2 || frames >= this.#asked.frames + walFramesRetryAfter
    );
  }
}
