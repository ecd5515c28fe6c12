/**
 * The interface between a node and its durable log, with the contract every implementation keeps.
 *
 * Contract:
 * - `append` continues the log at `lastIndex + 1`; its promise resolves once those entries are
 *   durable. A node reports "persisted up to (index, term)" to the consensus core only after that,
 *   and the core checks the term, because a later `truncateAfter` may have removed the entries.
 * - Operations take effect in call order. `lastIndex`/`lastTerm` reflect calls already made,
 *   `durableIndex` what is on disk.
 * - After any I/O failure every call rejects with `WAL_IO`; nothing more is reported durable.
 */
import type { LogIndex, Position, Term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";

export interface LogStore {
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly durableIndex: LogIndex;
  /** Index and term of the last entry covered by a snapshot (0, 0 when none). */
  readonly compactionPoint: Position;
  readonly hardState: HardState;
  append(entries: readonly LogEntry[]): Promise<void>;
  saveHardState(state: HardState): Promise<void>;
  truncateAfter(index: LogIndex): Promise<void>;
  compact(index: LogIndex, entryTerm: Term): Promise<void>;
  resetToSnapshot(index: LogIndex, snapshotTerm: Term): Promise<void>;
  termAt(index: LogIndex): Term | null;
  entries(from: LogIndex, toExclusive: LogIndex): LogEntry[];
  onDurable(listener: (index: LogIndex) => void): void;
  close(): Promise<void>;
}
