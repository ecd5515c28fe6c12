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

/**
 * Where the log was compacted, with the cluster configuration as of that index (the consensus
 * core's canonical text, opaque to the log). Kept in the same atomic file as the position, so the
 * configuration a restarted node starts from always belongs to its compaction point.
 */
export type CompactionPoint = Position & { readonly config?: string };

export interface LogStore {
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly durableIndex: LogIndex;
  /** Index and term of the last entry covered by a snapshot (0, 0 when none), and the configuration there. */
  readonly compactionPoint: CompactionPoint;
  readonly hardState: HardState;
  append(entries: readonly LogEntry[]): Promise<void>;
  saveHardState(state: HardState): Promise<void>;
  truncateAfter(index: LogIndex): Promise<void>;
  /** Drops entries through `index`; `config` is the configuration as of `index` (see `CompactionPoint`). */
  compact(index: LogIndex, entryTerm: Term, config?: string): Promise<void>;
  resetToSnapshot(index: LogIndex, snapshotTerm: Term, config?: string): Promise<void>;
  termAt(index: LogIndex): Term | null;
  entries(from: LogIndex, toExclusive: LogIndex): LogEntry[];
  onDurable(listener: (index: LogIndex) => void): void;
  close(): Promise<void>;
}
