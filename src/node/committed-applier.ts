/**
 * Applies committed entries to the SQLite state machine, in index order, exactly once.
 *
 * An entry after the applied index is either one of this leader's open speculative batches (then
 * the whole open transaction commits once the commit index covers its last batch) or is applied
 * from the log (`Store.apply`, which records the applied index in the same transaction, so replay
 * after a crash is exactly-once). After progress, the core hears `applied` and waiters for an
 * index wake up.
 *
 * A node whose database is damaged applies nothing until a leader's snapshot replaces it
 * (`storage-heal.ts`): applying to it is no use, a change to a damaged row would not apply, and the
 * snapshot must not fall behind what it is to replace. A consistency check may hold the applier at an index (`consistency-check.ts`): it applies up to
 * it and no further until the check has begun hashing the state there, which it does before the
 * next step (the leader's open speculative batches commit together and are never held).
 * While the leader's write sandbox runs a batch it may hold SQLite's write lock on the same file
 * (`write-path.ts`); applying then would wait on that lock with the event loop blocked, so nothing
 * is applied until the batch is done (`holdApplies`), and the write path resumes applying after it.
 *
 * An entry whose payload is large (`EntryApplier.payloadBytesMin`) is applied by the runtime's entry
 * applier in a process of its own (`entry-applier.ts`), when it has one: the entries before it are
 * applied first, then nothing more until that process is done, after which applying resumes. The
 * simulator and unit tests have none and apply every entry here.
 *
 * A committed entry that does not apply (STORE_DIVERGED, a corrupt payload, an I/O error) means
 * this replica can no longer follow the log: the error propagates to the replica loop, whose
 * fatal path stops the node rather than let it serve wrong data. One exception: on a node whose
 * database has not been verified since it opened (`storage-heal.ts`), STORE_DIVERGED is taken as
 * damage to that database, which is then replaced by a verified leader's snapshot.
 */
import type { RaftCore } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { type BatonError, ErrorCode, isBatonError } from "../lib/errors.ts";
import type { EntryApplier } from "../store/entry-applier.ts";
import type { Store } from "../store/store.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { LeaderSpeculation } from "./leader-speculation.ts";
import type { LoopObserver } from "./runtime.ts";

/** Entries applied in one call: bounds the time one step spends in SQLite (the rest follows next step). */
export const applyBatchEntriesMax = 1_000;
/**
 * Payload bytes applied in one call, beyond its first entry: an entry may hold many client batches
 * (write groups), so the entry count alone no longer bounds a step's time.
 */
export const applyBatchBytesMax = 1 << 20;
/**
 * The time one apply step should take at most. Bytes do not bound time on their own: a node that
 * restarted has a cold page cache, and each changed row may cost a page read (a soak measured a
 * 1 MiB step stopping a restarted follower's loop for 900 ms). After a step slower than this the
 * byte bound shrinks in proportion; after fast full steps it doubles back, up to `applyBatchBytesMax`.
 * It starts at `applyStepBytesMin`: a node's first steps after a start find the cache coldest, and
 * starting at the top let the first step stop the loop for 500 ms in a soak.
 */
export const applyStepMsMax = 50;
/** The adaptive byte bound never goes below this (a step still takes at least one entry). */
export const applyStepBytesMin = 16 * 1024;

export class CommittedApplier {
  private readonly store: Store;
  private readonly core: RaftCore;
  private readonly speculation: LeaderSpeculation;
  private readonly applied: IndexWaiters;
  private readonly observer: LoopObserver | undefined;
  private readonly reportApplied: (index: LogIndex) => void;
  /** A witness keeps the log but holds no data: it applies every entry as an empty one. */
  private readonly isWitness: () => boolean;
  private readonly holdIndex: () => LogIndex | null;
  private readonly paused: () => boolean;
  private readonly diverged: (error: BatonError) => boolean;
  private readonly holdApplies: () => boolean;
  private readonly entryApplier: EntryApplier | undefined;
  private readonly fail: (error: Error) => void;
  /** The entry the entry applier is applying, or null. */
  private elsewhere: LogIndex | null = null;
  private readonly clock: { monotonicMs(): number } | undefined;
  /** The payload bytes a step takes now (see `applyStepMsMax`). */
  private stepBytes: number;

  constructor(parts: {
    store: Store;
    core: RaftCore;
    speculation: LeaderSpeculation;
    applied: IndexWaiters;
    observer: LoopObserver | undefined;
    /** Hears the new applied index (and continues applying), or that the node cannot go on. */
    loop: { reportApplied(index: LogIndex): void; fail(error: Error): void };
    isWitness: () => boolean;
    /** An index not to apply past for now (a consistency check hashes the state there), or null. */
    holdIndex?: () => LogIndex | null;
    /** While true nothing is applied: the database is damaged and waits for a leader's snapshot. */
    paused?: () => boolean;
    /** A committed entry did not apply (STORE_DIVERGED): true when that is taken as this node's damage. */
    diverged?: (error: BatonError) => boolean;
    /** True while applying must wait (the write sandbox runs a batch). */
    holdApplies: () => boolean;
    /** Applies large entries off the event loop; left out, every entry is applied here. */
    entryApplier?: EntryApplier;
    /** Times the steps, to fit their bytes to `applyStepMsMax`; left out, only the byte bound holds. */
    clock?: { monotonicMs(): number };
  }) {
    this.clock = parts.clock;
    this.stepBytes = parts.clock === undefined ? applyBatchBytesMax : applyStepBytesMin;
    this.isWitness = parts.isWitness;
    this.store = parts.store;
    this.core = parts.core;
    this.speculation = parts.speculation;
    this.applied = parts.applied;
    this.observer = parts.observer;
    this.reportApplied = (index) => parts.loop.reportApplied(index);
    this.holdIndex = parts.holdIndex ?? (() => null);
    this.paused = parts.paused ?? (() => false);
    this.diverged = parts.diverged ?? (() => false);
    this.holdApplies = parts.holdApplies;
    this.entryApplier = parts.entryApplier;
    this.fail = (error) => parts.loop.fail(error);
  }

  /** An entry is being applied by the entry applier: nothing else is applied, and the store writes nothing. */
  get applyingElsewhere(): LogIndex | null {
    return this.elsewhere;
  }

  applyCommitted(through: LogIndex): void {
    if (this.paused() || this.holdApplies() || this.elsewhere !== null) return;
    const before = this.store.appliedIndex;
    const hold = this.holdIndex();
    const held = hold !== null && hold >= before ? hold : Number.POSITIVE_INFINITY;
    const target = Math.min(through, before + applyBatchEntriesMax, held);
    let bytes = 0;
    let full = false;
    while (this.store.appliedIndex < target && !full) {
      if (this.speculation.count > 0) {
        if (!this.speculation.commitCovered(through)) break;
        continue;
      }
      // Committed entries go into SQLite together, in one transaction (bounded by the target).
      const batch: { index: LogIndex; payload: Uint8Array }[] = [];
      const witness = this.isWitness();
      const large = this.entryApplier?.payloadBytesMin ?? Number.POSITIVE_INFINITY;
      for (let next = this.store.appliedIndex + 1; next <= target; next++) {
        const entry = this.core.entryAt(next);
        assert(entry !== undefined, `committed entry ${next} is in the core's log`);
        const payload = entry.kind === EntryKind.command && !witness ? entry.data : new Uint8Array(0);
        if (payload.byteLength >= large) {
          if (batch.length === 0) this.applyElsewhere(logIndex(next), payload, before);
          break;
        }
        full = bytes > 0 && bytes + payload.byteLength > this.stepBytes;
        if (full) break;
        bytes += payload.byteLength;
        batch.push({ index: logIndex(next), payload });
      }
      if (batch.length === 0) break;
      const clock = this.clock;
      const startedMs = clock?.monotonicMs() ?? 0;
      try {
        this.store.applyBatch(batch);
      } catch (error) {
        if (isBatonError(error, ErrorCode.STORE_DIVERGED) && this.diverged(error)) break;
        throw error;
      }
      if (clock !== undefined) this.fitStep(clock.monotonicMs() - startedMs, full);
    }
    this.progressed(before);
  }

  /** Fits the next step's bytes to `applyStepMsMax` after one that took `elapsedMs` (`full`: cut by the bound). */
  private fitStep(elapsedMs: number, full: boolean): void {
    if (elapsedMs > applyStepMsMax)
      this.stepBytes = Math.max(applyStepBytesMin, Math.floor((this.stepBytes * applyStepMsMax) / elapsedMs));
    else if (full && elapsedMs < applyStepMsMax / 4)
      this.stepBytes = Math.min(applyBatchBytesMax, this.stepBytes * 2);
  }

  /** Starts the entry applier on entry `index`; applying resumes when it is done. */
  private applyElsewhere(index: LogIndex, payload: Uint8Array, before: LogIndex): void {
    const applier = this.entryApplier;
    assert(applier !== undefined && this.elsewhere === null, "one entry is applied elsewhere at a time");
    this.elsewhere = index;
    applier.apply(this.store, index, payload).then(
      () => {
        this.elsewhere = null;
        this.progressed(before);
      },
      (error: unknown) => {
        this.elsewhere = null;
        this.progressed(before);
        if (isBatonError(error, ErrorCode.SHUTTING_DOWN)) return; // the node stops; the entry applies after a restart
        if (isBatonError(error, ErrorCode.STORE_DIVERGED) && this.diverged(error)) return;
        this.fail(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  /** After applying from `before`: waiters, the observer and the core hear of the new applied index. */
  private progressed(before: LogIndex): void {
    const after = this.store.appliedIndex;
    if (after === before) return;
    assert(after > before, `the applied index went back from ${before} to ${after}`);
    this.applied.advance(after);
    this.observer?.applied(after);
    this.reportApplied(after);
  }
}
