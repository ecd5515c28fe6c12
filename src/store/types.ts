/**
 * Public types of the store: statements in, results out, and the options with their bounds.
 *
 * Values: SQLite INTEGERs come back as JavaScript numbers when they lie within ±(2^53 - 1) and as
 * `bigint` beyond, so no integer is ever rounded; the HTTP layer turns such bigints into decimal
 * strings. REALs are numbers, TEXT strings, BLOBs `Uint8Array`s, NULL `null`.
 */

import type { LogIndex } from "../types/ids.ts";
import type { HistoryRow } from "./history-table.ts";
import type { SequenceEntry } from "./payload.ts";

/** A value as SQLite stores it and the store returns it. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/**
 * What a caller may bind: SQL values and booleans (bound as 0 or 1). A `Buffer` is a `Uint8Array`.
 * Anything else (undefined, objects, NaN, infinities, integers beyond 64 bits) is `BAD_REQUEST`.
 */
export type SqlParamValue = SqlValue | boolean;

/** Positional parameters (`?`, `?NNN`) or named ones (`:name`, `@name`, `$name`; the prefix may be left out). */
export type StatementParams = readonly SqlParamValue[] | Readonly<Record<string, SqlParamValue>>;

/** One SQL statement. A string holding more than one statement is refused, never silently cut. */
export type Statement = { readonly sql: string; readonly params?: StatementParams };

/** The outcome of one statement of an execute batch. */
export type ExecuteStatementResult = {
  /** Rows the statement itself inserted, updated or deleted (SQLite's `changes()`); 0 for reads and DDL. */
  readonly rowsAffected: number;
  /** SQLite's `last_insert_rowid()` after a writing statement, 0 after reads and DDL. */
  readonly lastInsertRowid: number | bigint;
  /** Present for statements that return rows (SELECT, `RETURNING`, read-only PRAGMAs). */
  readonly columns?: readonly string[];
  readonly rows?: readonly (readonly SqlValue[])[];
};

export type ExecuteResult = {
  readonly results: readonly ExecuteStatementResult[];
  /** The encoded entry payload that reproduces this batch on a replica (see payload.ts). */
  readonly payload: Uint8Array;
  /** The AUTOINCREMENT counters after the batch, sorted by table name. */
  readonly counters: readonly SequenceEntry[];
  /** The id reservations read when `raiseCountersToReservations` was set, else null. */
  readonly reservations: readonly SequenceEntry[] | null;
};

/** One client batch of a group that shares a log entry (`Store.executeGroup`). */
export type GroupedBatch = {
  readonly statements: readonly Statement[];
  readonly options?: Pick<ExecuteOptions, "request" | "resultRowsMax" | "resultBytesMax">;
};

/** What the group as a whole does besides its batches' statements (see `ExecuteOptions`). */
export type GroupOptions = Pick<ExecuteOptions, "raiseCountersToReservations" | "reserveIds" | "historyRows">;

/** What became of one batch of a group. */
export type BatchResult =
  | { readonly kind: "done"; readonly results: readonly ExecuteStatementResult[] }
  | { readonly kind: "failed"; readonly error: unknown }
  /** It left no trace: run it again, in an entry of its own when `alone`. */
  | { readonly kind: "again"; readonly alone: boolean };

export type GroupResult = {
  /** One per batch, in order. */
  readonly batches: readonly BatchResult[];
  /** The entry's payload; null when nothing is to be proposed (no batch ran). */
  readonly payload: Uint8Array | null;
  /** The AUTOINCREMENT counters after the group, sorted by table name. */
  readonly counters: readonly SequenceEntry[];
  /** The id reservations read when `raiseCountersToReservations` was set, else null. */
  readonly reservations: readonly SequenceEntry[] | null;
};

/**
 * How a batch from the write sandbox is adopted (`Store.adoptBatch`). `applyElsewhere`: only its
 * payload is made (the request's record added), nothing is applied or left open; the entry is applied
 * once committed, by the entry applier (`entry-applier.ts`), as on every replica.
 */
export type AdoptOptions = Pick<ExecuteOptions, "request"> & { readonly applyElsewhere?: boolean };

export type AdoptedBatch = {
  readonly payload: Uint8Array;
  readonly results: readonly ExecuteStatementResult[];
  /** The payload's checksum was checked already (`checkPayloadInSteps`), so adopting skips it. */
  readonly checksumChecked?: boolean;
};

export type QueryStatementResult = {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly SqlValue[])[];
};

export type QueryResult = {
  readonly results: readonly QueryStatementResult[];
  /** The applied index of the committed state every statement of the query read. */
  readonly appliedIndex: LogIndex;
};

export type ExecuteOptions = {
  /** Remember this write under a client request id, with the response `response` builds from the results. */
  readonly request?: {
    readonly id: string;
    readonly response: (results: readonly ExecuteStatementResult[]) => string;
    /** The leader's clock when it runs the batch (epoch milliseconds): the age bound counts from it. */
    readonly loggedAtMs: number;
  };
  /** Rows one statement may return (SELECT or RETURNING); more is `RESULT_TOO_LARGE`. */
  readonly resultRowsMax?: number;
  /** Bytes the batch's results may hold together; more is `RESULT_TOO_LARGE`. */
  readonly resultBytesMax?: number;
  /** Before the statements, raise every AUTOINCREMENT counter to its id reservation (id-reservations.ts). */
  readonly raiseCountersToReservations?: boolean;
  /** After the statements, raise these id reservations (replicated with the batch). */
  readonly reserveIds?: readonly SequenceEntry[];
  /** After the statements, insert these history records when absent (history-table.ts). */
  readonly historyRows?: readonly HistoryRow[];
};

export type QueryOptions = {
  /** Rows one statement may return; more is `RESULT_TOO_LARGE`. */
  readonly resultRowsMax?: number;
  /** Bytes the query's results may hold together; more is `RESULT_TOO_LARGE`. */
  readonly resultBytesMax?: number;
};

export type StoreOptions = {
  /** The database file. A real file: the leader writes on one connection and reads on another. */
  readonly path: string;
  /** Batches the leader may hold executed but uncommitted; more is `OVERLOADED`. */
  readonly speculativeBatchesMax?: number;
  /** Statements in one batch or query; more is `BAD_REQUEST`. */
  readonly statementsPerBatchMax?: number;
  /** Bytes of SQL text in one statement; more is `BAD_REQUEST`. */
  readonly sqlBytesMax?: number;
  /** Bytes of one encoded payload; a batch whose changes encode larger is `PAYLOAD_TOO_LARGE`. */
  readonly payloadBytesMax?: number;
  /** How long a connection waits on a lock held by another connection before failing. */
  readonly busyTimeoutMs?: number;
  /**
   * How many log indexes back a write's `requestId` is remembered (see request-log.ts). The leader
   * prunes as it writes, in the replicated batch, so replicas follow whatever the leader used.
   */
  readonly requestWindowEntries?: number;
  /** ...and for how long, by the leaders' clocks: a request is forgotten past either bound. */
  readonly requestWindowMs?: number;
};

export type SnapshotInfo = {
  /** The applied index of the state the snapshot holds. */
  readonly appliedIndex: LogIndex;
  readonly path: string;
  /** Size of the snapshot file, header included. */
  readonly bytes: number;
};

/** A speculative batch discarded by `rollbackSpeculative`. */
export type DiscardedBatch = { readonly index: LogIndex };

/** What `apply` did: applied the entry, or nothing because the index was applied before (replay). */
export type ApplyOutcome = "applied" | "already-applied";
