/**
 * The store's public interface: the SQLite state machine a node drives (see README.md).
 */

export { ContentHashJob, checkDatabaseStructure } from "./database-check.ts";
export {
  type HistoryReads,
  type HistoryRow,
  historyRecordBytesMax,
  historyRowsMax,
  historyRowsPerBatchMax,
} from "./history-table.ts";
export {
  checkPayloadInSteps,
  decodePayload,
  encodePayload,
  type PayloadOp,
  payloadFormatVersion,
  type SequenceEntry,
} from "./payload.ts";
export type { PreparedRestore } from "./snapshot-file.ts";
export type { StatementCacheStats } from "./statement-cache.ts";
export { resultRowsMaxDefault, Store, storeDefaults } from "./store.ts";
export { removeDatabase, restoreDatabase, verifySnapshot } from "./store-files.ts";
export type {
  ApplyOutcome,
  DiscardedBatch,
  ExecuteOptions,
  ExecuteResult,
  ExecuteStatementResult,
  QueryOptions,
  QueryResult,
  QueryStatementResult,
  SnapshotInfo,
  SqlParamValue,
  SqlValue,
  Statement,
  StatementParams,
  StoreOptions,
} from "./types.ts";
