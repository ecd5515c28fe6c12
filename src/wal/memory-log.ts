/**
 * In-memory `LogStore` double for tests of the layers above the log. Everything is "durable" at
 * once (after a microtask, so callers still see the asynchrony), and `crash()` returns what a
 * restart would recover, which here is everything.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type Term, term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import type { CompactionPoint, LogStore } from "./log-store.ts";

export class MemoryLog implements LogStore {
  private log: LogEntry[] = [];
  private point: CompactionPoint = { index: logIndex(0), term: term(0) };
  private state: HardState = { term: term(0), votedFor: null };
  private readonly listeners: ((index: LogIndex) => void)[] = [];

  get firstIndex(): LogIndex {
    return logIndex(this.point.index + 1);
  }
  get lastIndex(): LogIndex {
    return this.log.at(-1)?.index ?? this.point.index;
  }
  get lastTerm(): Term {
    return this.log.at(-1)?.term ?? this.point.term;
  }
  get durableIndex(): LogIndex {
    return this.lastIndex;
  }
  get compactionPoint(): CompactionPoint {
    return this.point;
  }
  get hardState(): HardState {
    return this.state;
  }

  async append(entries: readonly LogEntry[]): Promise<void> {
    for (const entry of entries) {
      assert(entry.index === this.lastIndex + 1, "append continues the log");
      assert(entry.term >= this.lastTerm, "terms never decrease along the log");
      this.log.push(entry);
    }
    await Promise.resolve();
    for (const listener of this.listeners) listener(this.lastIndex);
  }

  async saveHardState(state: HardState): Promise<void> {
    assert(state.term >= this.state.term, "hard state term never decreases");
    this.state = state;
  }

  async truncateAfter(index: LogIndex): Promise<void> {
    assert(index >= this.point.index, "truncate above the compaction point");
    this.log = this.log.filter((entry) => entry.index <= index);
  }

  async compact(index: LogIndex, entryTerm: Term, config?: string): Promise<void> {
    if (index <= this.point.index) return;
    assert(this.termAt(index) === entryTerm, "compaction term matches the entry");
    this.log = this.log.filter((entry) => entry.index > index);
    this.point = config === undefined ? { index, term: entryTerm } : { index, term: entryTerm, config };
  }

  async resetToSnapshot(index: LogIndex, snapshotTerm: Term, config?: string): Promise<void> {
    this.log = [];
    this.point = config === undefined ? { index, term: snapshotTerm } : { index, term: snapshotTerm, config };
  }

  termAt(index: LogIndex): Term | null {
    if (index === this.point.index) return this.point.term;
    return this.log[index - this.point.index - 1]?.term ?? null;
  }

  entries(from: LogIndex, toExclusive: LogIndex): LogEntry[] {
    assert(from > this.point.index && toExclusive <= this.lastIndex + 1, "entries inside the log");
    return this.log.slice(from - this.point.index - 1, toExclusive - this.point.index - 1);
  }

  onDurable(listener: (index: LogIndex) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {}
}
