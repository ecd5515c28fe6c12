/**
 * The in-memory Raft log: every entry after the last snapshot, plus the snapshot's position.
 *
 * Indexes start at 1; position (0, 0) is the empty log. After compaction the log remembers the
 * snapshot's index and term so that it can still answer "what term is at snapshotIndex?" for the
 * AppendEntries consistency check (Raft §5.3, §7).
 *
 * Invariants: entries are contiguous from `snapshotIndex + 1`; terms never decrease along the log;
 * the first entry's term is at least `snapshotTerm`. This module does not know which entries are
 * committed or durable: the callers guard truncation (never at or below the commit index).
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type Term, term } from "../types/ids.ts";
import type { LogEntry } from "../types/log-entry.ts";

/** Bytes charged per entry on top of its data when sizing a batch (index, term, kind, framing). */
export const entryOverheadBytes = 24;

export class RaftLog {
  private entries: LogEntry[];
  private snapshotIndexValue: LogIndex;
  private snapshotTermValue: Term;

  constructor(snapshotIndex: LogIndex, snapshotTerm: Term, entries: readonly LogEntry[]) {
    assert(snapshotIndex >= 0 && snapshotTerm >= 0, "snapshot position must be non-negative");
    assert(snapshotIndex > 0 || snapshotTerm === 0, "the empty snapshot has term 0");
    this.snapshotIndexValue = snapshotIndex;
    this.snapshotTermValue = snapshotTerm;
    this.entries = [];
    for (const entry of entries) this.append(entry);
  }

  get snapshotIndex(): LogIndex {
    return this.snapshotIndexValue;
  }

  get snapshotTerm(): Term {
    return this.snapshotTermValue;
  }

  get firstIndex(): LogIndex {
    return logIndex(this.snapshotIndexValue + 1);
  }

  get lastIndex(): LogIndex {
    return logIndex(this.snapshotIndexValue + this.entries.length);
  }

  get lastTerm(): Term {
    return this.entries.at(-1)?.term ?? this.snapshotTermValue;
  }

  /** The term at `index`, or undefined when `index` is compacted away (below the snapshot) or beyond the end. */
  termAt(index: number): Term | undefined {
    if (index === this.snapshotIndexValue) return this.snapshotTermValue;
    return this.entryAt(index)?.term;
  }

  entryAt(index: number): LogEntry | undefined {
    if (index <= this.snapshotIndexValue || index > this.lastIndex) return undefined;
    const entry = this.entries[index - this.snapshotIndexValue - 1];
    assert(entry !== undefined && entry.index === index, `log entry ${index} misplaced`);
    return entry;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up-to-date as this one? */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  append(entry: LogEntry): void {
    assert(entry.index === this.lastIndex + 1, `append of index ${entry.index} after ${this.lastIndex}`);
    assert(entry.term >= this.lastTerm, `append of term ${entry.term} after term ${this.lastTerm}`);
    this.entries.push(entry);
  }

  /** Drops every entry after `index` and returns them. The caller guarantees none is committed. */
  truncateAfter(index: LogIndex): LogEntry[] {
    assert(
      index >= this.snapshotIndexValue,
      `truncation at ${index} below the snapshot ${this.snapshotIndexValue}`,
    );
    assert(index < this.lastIndex, `truncation at ${index} drops nothing (last ${this.lastIndex})`);
    const dropped = this.entries.splice(index - this.snapshotIndexValue);
    assert(this.lastIndex === index, "truncation left the wrong last index");
    return dropped;
  }

  /**
   * Entries in [from, through], stopping early at `entriesMax` entries or once `bytesMax` would be
   * exceeded; at least one entry when any is available, so an oversized entry still moves.
   */
  slice(from: LogIndex, through: LogIndex, entriesMax: number, bytesMax: number): LogEntry[] {
    assert(from > this.snapshotIndexValue, `slice from ${from} reaches into the snapshot`);
    assert(entriesMax >= 1 && bytesMax >= 1, "slice bounds must be positive");
    const result: LogEntry[] = [];
    let bytes = 0;
    for (let index = from; index <= through && result.length < entriesMax; index++) {
      const entry = this.entryAt(index);
      assert(entry !== undefined, `slice past the end at ${index}`);
      bytes += entry.data.byteLength + entryOverheadBytes;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** The last index holding `entryTerm` at or below `atOrBelow`, or undefined if none is in memory. */
  lastIndexOfTerm(entryTerm: Term, atOrBelow: LogIndex): LogIndex | undefined {
    for (let index = Math.min(atOrBelow, this.lastIndex); index >= this.snapshotIndexValue; index--) {
      const found = this.termAt(index);
      assert(found !== undefined, "log hole while scanning terms");
      if (found === entryTerm) return logIndex(index);
      if (found < entryTerm) return undefined;
    }
    return undefined;
  }

  /** The first index of the run of `entryTerm` that contains `index`, not going below `floor`. */
  firstIndexOfTermRun(index: LogIndex, floor: LogIndex): LogIndex {
    const runTerm = this.termAt(index);
    assert(runTerm !== undefined, `no entry at ${index}`);
    let first = index;
    while (first - 1 > floor && first - 1 > this.snapshotIndexValue && this.termAt(first - 1) === runTerm)
      first--;
    return logIndex(first);
  }

  /** Forgets entries up to `index` after the host took a snapshot there (Raft §7). */
  compact(index: LogIndex, snapshotTerm: Term): void {
    assert(index > this.snapshotIndexValue && index <= this.lastIndex, `compaction at ${index} out of range`);
    assert(this.termAt(index) === snapshotTerm, `compaction term mismatch at ${index}`);
    this.entries.splice(0, index - this.snapshotIndexValue);
    this.snapshotIndexValue = index;
    this.snapshotTermValue = snapshotTerm;
  }

  /** Replaces the whole log by a snapshot position (the follower installed a snapshot its log cannot join). */
  resetToSnapshot(index: LogIndex, snapshotTerm: Term): void {
    assert(index > 0 && snapshotTerm > 0, "reset to an empty snapshot");
    this.entries = [];
    this.snapshotIndexValue = index;
    this.snapshotTermValue = term(snapshotTerm);
  }
}
