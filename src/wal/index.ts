/** The write-ahead log: see README.md in this directory. */

export type { CompactionPoint, LogStore } from "./log-store.ts";
export { MemoryLog } from "./memory-log.ts";
export type { RecoveredLog } from "./recovery.ts";
export { Wal, type WalOptions } from "./wal.ts";
