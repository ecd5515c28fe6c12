/**
 * The unit of replication, as the write-ahead log stores it and the consensus core moves it.
 *
 * `kind` tells the core what the entry is for; `data` is opaque to the log and to the core:
 * for `command` entries it is the store's encoded payload (ordered DDL text and changesets).
 */
import type { LogIndex, NodeId, Position, Term } from "./ids.ts";

export const EntryKind = {
  /** A client write: `data` is a store payload. */
  command: 1,
  /** Appended by each new leader at the start of its term (Raft §8); `data` is empty. */
  noop: 2,
  /** A membership change; `data` is the encoded configuration. */
  config: 3,
} as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export type LogEntry = {
  readonly index: LogIndex;
  readonly term: Term;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
};

/** Durable vote state (Raft figure 2: currentTerm, votedFor). */
export type HardState = {
  readonly term: Term;
  readonly votedFor: NodeId | null;
  /**
   * Set when the log lost entries to storage damage (`src/wal/recovery.ts`): an upper bound of the
   * log position this node may have acknowledged or voted on before the loss. Until its durable log
   * again reaches it, the node neither campaigns nor votes for a candidate whose log is behind it
   * (`src/consensus/lost-entries.ts`). Absent on a node that never lost entries.
   */
  readonly promised?: Position;
};
