/**
 * Applies committed entries to the SQLite state machine, in index order, exactly once.
 *
 * An entry after the applied index is either one of this leader's open speculative batches (then
 * the whole open transaction commits once the commit index covers its last batch) or is applied
 * from the log (`Store.apply`, which records the applied index in the same transaction, so replay
 * after a crash is exactly-once). After progress, the core hears `applied` and waiters for an
 * index wake up.
 *
 * While the leader's write sandbox runs a batch it may hold SQLite's write lock on the same file
 * (`write-path.ts`); applying then would wait on that lock with the event loop blocked, so nothing
 * is applied until the batch is done (`holdApplies`), and the write path resumes applying after it.
 *
 * A committed entry that does not apply (STORE_DIVERGED, a corrupt payload, an I/O error) means
 * this replica can no longer follow the log: the error propagates to the replica loop, whose
 * fatal path stops the node rather than let it serve wrong data.
 */
import type { RaftCore } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import type { Store } from "../store/store.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { LeaderSpeculation } from "./leader-speculation.ts";
import type { LoopObserver } from "./runtime.ts";

/** Entries applied in one call: bounds the time one step spends in SQLite (the rest follows next step). */
export const applyBatchEntriesMax = 1_000;

export class CommittedApplier {
  private readonly store: Store;
  private readonly core: RaftCore;
  private readonly speculation: LeaderSpeculation;
  private readonly applied: IndexWaiters;
  private readonly observer: LoopObserver | undefined;
  private readonly reportApplied: (index: LogIndex) => void;
  private readonly holdApplies: () => boolean;

  constructor(parts: {
    store: Store;
    core: RaftCore;
    speculation: LeaderSpeculation;
    applied: IndexWaiters;
    observer: LoopObserver | undefined;
    reportApplied: (index: LogIndex) => void;
    /** True while applying must wait (the write sandbox runs a batch). */
    holdApplies: () => boolean;
  }) {
    this.store = parts.store;
    this.core = parts.core;
    this.speculation = parts.speculation;
    this.applied = parts.applied;
    this.observer = parts.observer;
    this.reportApplied = parts.reportApplied;
    this.holdApplies = parts.holdApplies;
  }

  applyCommitted(through: LogIndex): void {
    if (this.holdApplies()) return;
    const before = this.store.appliedIndex;
    const target = Math.min(through, before + applyBatchEntriesMax);
    while (this.store.appliedIndex < target) {
      if (this.speculation.count > 0) {
        if (!this.speculation.commitCovered(through)) break;
        continue;
      }
      // Committed entries go into SQLite together, in one transaction (bounded by the target).
      const batch: { index: LogIndex; payload: Uint8Array }[] = [];
      for (let next = this.store.appliedIndex + 1; next <= target; next++) {
        const entry = this.core.entryAt(next);
        assert(entry !== undefined, `committed entry ${next} is in the core's log`);
        batch.push({
          index: logIndex(next),
          payload: entry.kind === EntryKind.command ? entry.data : new Uint8Array(0),
        });
      }
      this.store.applyBatch(batch);
    }
    const after = this.store.appliedIndex;
    if (after === before) return;
    assert(after > before, `the applied index went back from ${before} to ${after}`);
    this.applied.advance(after);
    this.observer?.applied(after);
    this.reportApplied(after);
  }
}
