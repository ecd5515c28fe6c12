/**
 * The node's runtime: the one seam through which time, timers, randomness, the durable log, the
 * SQLite store, the network and the review file reach the node (DESIGN.md §1).
 *
 * `launch.ts` builds the system runtime (wall clock, Node's timers, a random seed, the WAL on disk,
 * TCP); the simulator builds one from simulated time, a simulated network and a log store that
 * loses what was not synced on a crash. Everything under `src/node` takes time and timers from here
 * and never from `Date`, `setTimeout` or `randomInt` directly, so the same node code runs on both;
 * the tidy test holds the node to that.
 */
import { randomInt } from "node:crypto";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Effects, Input } from "../consensus/index.ts";
import type { EntryApplier } from "../store/entry-applier.ts";
import type { OrphanQuarantine } from "../store/orphan-quarantine.ts";
import type { QueryExecutor } from "../store/query-executor.ts";
import type { Store } from "../store/store.ts";
import type { BatchSandbox } from "../store/write-sandbox.ts";
import type { Transport, TransportHandlers } from "../transport/transport.ts";
import type { LogIndex } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import type { CompactionPoint, LogStore } from "../wal/log-store.ts";
import type { HistorySink } from "./history.ts";

/** Cancels a timer; calling it twice, or after the timer fired, is harmless. */
export type Cancel = () => void;

export interface Clock {
  /** Milliseconds on a monotonic-enough scale; only differences are meaningful. */
  nowMs(): number;
  /**
   * Milliseconds that never go back or jump with the wall clock (since the process started): what
   * a lease measures with. A wall clock stepped back would stretch one.
   */
  monotonicMs(): number;
}

export interface Timers {
  /** Runs `run` once, `delayMs` from now. */
  after(delayMs: number, run: () => void): Cancel;
  /** Runs `run` every `periodMs` until cancelled. */
  every(periodMs: number, run: () => void): Cancel;
  /**
   * Runs `run` once, as soon as the input already received has been handled (Node's `setImmediate`:
   * after this turn's I/O callbacks, before any timer of a later turn).
   */
  soon(run: () => void): Cancel;
}

export type NodeLogLevel = "debug" | "info" | "warn" | "error";
export type NodeLog = (level: NodeLogLevel, event: string, fields: Record<string, unknown>) => void;

/**
 * What the log held when the node opened it: the core is built from this. Handed over: the replica
 * loop gives `entries` to the core and empties the list (`entries` must not be shared with anything
 * else), so that the runtime does not keep every recovered entry alive after the core compacted it.
 */
export type RecoveredLog = {
  readonly entries: LogEntry[];
  readonly hardState: HardState;
  readonly compactionPoint: CompactionPoint;
};

/** Where entries of a deposed leader's overwritten suffix go, for an operator to review. */
export interface ReviewSink {
  keepDiscarded(entries: readonly LogEntry[], atMs: number): void;
}

/** Sees every step of the replica loop; the simulator's checkers attach here. Never set in production. */
export interface LoopObserver {
  stepped(input: Input, effects: Effects): void;
  /** The state machine now holds every entry through `index` (applied from the log or committed speculatively). */
  applied(through: LogIndex): void;
}

export type NodeRuntime = {
  readonly clock: Clock;
  readonly timers: Timers;
  /** Seeds the consensus core's generator (election jitter). */
  readonly randomSeed: number;
  readonly log: LogStore;
  readonly recovered: RecoveredLog;
  readonly store: Store;
  /**
   * Where client queries run. `launch.ts` passes a pool of killable query processes, so no query
   * can hold the event loop; left out (the simulator, unit tests) queries run in process on
   * `store`, synchronously and without a time bound, which keeps the simulator deterministic.
   */
  readonly queryExecutor?: QueryExecutor;
  /**
   * Where a leader runs write batches that are not provably short (`write-path.ts`). `launch.ts`
   * passes a killable process on the store's file, so no write can hold the event loop; left out
   * (the simulator, unit tests) every batch runs in process on `store`.
   */
  readonly writeSandbox?: BatchSandbox;
  /**
   * Applies committed entries with large payloads in a process of its own (`entry-applier.ts`), so
   * that none holds the event loop; left out (the simulator, unit tests) every entry is applied here.
   */
  readonly entryApplier?: EntryApplier;
  readonly transport: (handlers: TransportHandlers) => Transport;
  readonly review: ReviewSink;
  /** Orphaned entries kept for an operator (`orphans.ts`); the review sink fills it. */
  readonly orphans: OrphanQuarantine;
  readonly logger: NodeLog;
  /** Called once when the node stops on a bug or a storage failure; the process should exit non-zero. */
  readonly onFatal: (error: Error) => void;
  /** Where snapshot files live (`snapshot-keeper.ts`): the node's own and those received from a leader. */
  readonly snapshotDirectory: string;
  /**
   * Runs asynchronous file work (taking, reading, receiving and preparing snapshots). Production
   * runs it as it is; the simulator hands the result back at a deterministic point of simulated time.
   */
  readonly io: BackgroundIo;
  readonly observer?: LoopObserver;
  /** Where role changes, elections and operator actions are recorded (`history.ts`). Default: in memory. */
  readonly history?: HistorySink;
  /**
   * How late the event loop runs lately (`systemLoopDelay`); admission sheds new client work past
   * a threshold (`admission.ts`). Left out (the simulator, unit tests), nothing is shed for it.
   */
  readonly loopDelay?: LoopDelay;
};

export interface LoopDelay {
  /** How late the event loop has run throughout the last few windows, in ms; null before they end. */
  recentMs(): number | null;
  /**
   * CPU time the event loop's own thread has used so far, in ms (user and system). Over a stall,
   * its rise tells a loop kept busy (JavaScript, a collection, a long native call on the CPU) from
   * one that waited (a blocking system call, a lock, the machine's other work): `loop-stall.ts`.
   */
  threadCpuMs(): number;
  stop(): void;
}

/** The window over which the event loop's delay is summarized. */
export const loopDelayWindowMs = 200;
/** How many consecutive windows the loop must have been late in (together `loopDelayWindowMs` × this). */
export const loopDelayWindows = 3;
/** How often the delay is sampled within a window (the histogram's timer period). */
const loopDelayResolutionMs = 10;

/**
 * The event loop's delay as Node's histogram measures it (a libuv timer every
 * `loopDelayResolutionMs`), summarized every `loopDelayWindowMs` as the window's median, and
 * reported as the smallest median of the last `loopDelayWindows` windows: the loop must have run
 * late for that long. A loop kept busy by load is late at nearly every sample of every window; a
 * lone pause (a collection, one large apply, the machine running other work for a moment) fills at
 * most a window or two, and is not what shedding can help with.
 */
export function systemLoopDelay(): LoopDelay {
  const histogram = monitorEventLoopDelay({ resolution: loopDelayResolutionMs });
  histogram.enable();
  const medians: number[] = [];
  const timer = setInterval(() => {
    medians.push(histogram.count === 0 ? 0 : histogram.percentile(50) / 1e6);
    if (medians.length > loopDelayWindows) medians.shift();
    histogram.reset();
  }, loopDelayWindowMs);
  timer.unref();
  return {
    recentMs: () => (medians.length < loopDelayWindows ? null : Math.min(...medians)),
    threadCpuMs: () => {
      const { user, system } = process.threadCpuUsage();
      return (user + system) / 1000;
    },
    stop: () => {
      clearInterval(timer);
      histogram.disable();
    },
  };
}

export type BackgroundIo = <T>(work: () => Promise<T>) => Promise<T>;

export const systemIo: BackgroundIo = (work) => work();

export const systemClock: Clock = { nowMs: () => Date.now(), monotonicMs: () => performance.now() };

export const systemTimers: Timers = {
  after(delayMs, run) {
    const timer = setTimeout(run, delayMs);
    return () => clearTimeout(timer);
  },
  every(periodMs, run) {
    const timer = setInterval(run, periodMs);
    return () => clearInterval(timer);
  },
  soon(run) {
    const immediate = setImmediate(run);
    return () => clearImmediate(immediate);
  },
};

/** A seed for the core's generator in production; the simulator passes its own. */
export function systemRandomSeed(): number {
  return randomInt(0, 2 ** 47);
}
