/**
 * In-memory double of the durable log (the WAL): hard state, snapshot point and entries after it.
 *
 * It holds only what the simulated host made durable: a batch is written here when the simulator
 * decides its fsync completed, so a crash loses exactly the batches still pending. It applies each
 * batch in the host's documented order (snapshot point, truncation, append, hard state) and checks
 * the invariants a real WAL would: contiguous indexes, non-decreasing terms, no truncation into the
 * snapshot.
 */
import { assert } from "../../src/lib/assert.ts";
import type { Position } from "../../src/types/ids.ts";
import { type LogIndex, logIndex, type Term, term } from "../../src/types/ids.ts";
import type { HardState, LogEntry } from "../../src/types/log-entry.ts";
import type { StateMachineSnapshot } from "./state-machine.ts";

export type DurableBatch = {
  readonly snapshotRestored?: Position | undefined;
  readonly truncateAfter?: LogIndex | undefined;
  readonly entries: readonly LogEntry[];
  readonly hardState?: HardState | undefined;
};

export class MemoryLog {
  hardState: HardState = { term: term(0), votedFor: null };
  snapshot: StateMachineSnapshot | null = null;
  private entries: LogEntry[] = [];

  get snapshotIndex(): LogIndex {
    return this.snapshot?.index ?? logIndex(0);
  }

  get snapshotTerm(): Term {
    return this.snapshot?.term ?? term(0);
  }

  get lastIndex(): LogIndex {
    return logIndex(this.snapshotIndex + this.entries.length);
  }

  entryAt(index: number): LogEntry | undefined {
    if (index <= this.snapshotIndex) return undefined;
    return this.entries[index - this.snapshotIndex - 1];
  }

  termAt(index: number): Term | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    return this.entryAt(index)?.term;
  }

  entriesAfterSnapshot(): readonly LogEntry[] {
    return this.entries;
  }

  write(batch: DurableBatch): void {
    if (batch.snapshotRestored !== undefined) {
      // The data was restored (and made durable) before the core saw it; this only confirms the point.
      assert(
        this.snapshotIndex >= batch.snapshotRestored.index,
        "log reset to a snapshot that was not restored",
      );
    }
    if (batch.truncateAfter !== undefined && batch.truncateAfter < this.lastIndex) {
      assert(batch.truncateAfter >= this.snapshotIndex, "truncation into the snapshot");
      this.entries.length = batch.truncateAfter - this.snapshotIndex;
    }
    for (const entry of batch.entries) this.append(entry);
    if (batch.hardState !== undefined) {
      assert(batch.hardState.term >= this.hardState.term, "durable term went backwards");
      this.hardState = batch.hardState;
    }
  }

  private append(entry: LogEntry): void {
    if (entry.index <= this.snapshotIndex) return;
    if (entry.index <= this.lastIndex) {
      // A rewrite of an entry we hold must be identical (same index and term means same entry).
      assert(
        this.termAt(entry.index) === entry.term,
        `durable append over a different entry at ${entry.index}`,
      );
      return;
    }
    assert(entry.index === this.lastIndex + 1, `durable append of ${entry.index} after ${this.lastIndex}`);
    assert(entry.term >= (this.termAt(this.lastIndex) ?? 0), "durable log terms went backwards");
    this.entries.push(entry);
  }

  /** The host took a snapshot at or below its applied index: drop the entries it covers. */
  compact(snapshot: StateMachineSnapshot): void {
    assert(
      snapshot.index > this.snapshotIndex && snapshot.index <= this.lastIndex,
      "compaction out of range",
    );
    assert(this.termAt(snapshot.index) === snapshot.term, "compaction term mismatch");
    this.entries.splice(0, snapshot.index - this.snapshotIndex);
    this.snapshot = snapshot;
  }

  /** A snapshot received from the leader: keep our suffix only if it continues the snapshot. */
  installSnapshot(snapshot: StateMachineSnapshot): void {
    assert(snapshot.index > this.snapshotIndex, "installing an older snapshot");
    if (this.termAt(snapshot.index) === snapshot.term)
      this.entries.splice(0, snapshot.index - this.snapshotIndex);
    else this.entries = [];
    this.snapshot = snapshot;
  }
}
