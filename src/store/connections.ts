/**
 * The two SQLite connections a store holds on its database file, configured alike.
 *
 * - The write connection runs the leader's speculative transaction, replica applies and the store's
 *   bookkeeping. It is the only writer of the file.
 * - The read connection is opened read-only and serves queries, the content hash and nothing else.
 *   In WAL mode it reads the last committed state while the write connection holds its transaction
 *   open, which is exactly why leader reads never see speculative (uncommitted) batches.
 *
 * Both use `readBigInts` (no integer is ever rounded), keep extensions disabled and run in SQLite's
 * defensive mode; each has its own statement guard installed as its authorizer and its own cache of
 * prepared client statements (which goes with the connection). Journal mode is WAL
 * with `synchronous=NORMAL`: the Raft log is the durable truth, so a commit lost to power failure is
 * re-applied from the log (the applied index rolls back with the data).
 */
import { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import { ensureHistoryTable } from "./history-table.ts";
import { ensureReservationTable } from "./id-reservations.ts";
import { initializeMeta, MetaAccess } from "./meta.ts";
import { ensureRequestTable } from "./request-log.ts";
import { StatementCache } from "./statement-cache.ts";
import { StatementGuard } from "./statement-guard.ts";

export type Connections = {
  readonly write: DatabaseSync;
  readonly read: DatabaseSync;
  readonly writeGuard: StatementGuard;
  readonly readGuard: StatementGuard;
  /** Client statements of execute batches (write connection) and of queries (read connection). */
  readonly writeStatements: StatementCache;
  readonly readStatements: StatementCache;
  readonly writeMeta: MetaAccess;
  readonly readMeta: MetaAccess;
};

/**
 * The largest string or blob a query may produce (SQLite's length limit on the read connection):
 * `SELECT zeroblob(900000000)` is refused before SQLite allocates it, instead of growing the node's
 * memory by the size a client asked for. Written values are bounded by the log payload bound
 * (`payloadBytesMax`) once a batch ends; the write connection keeps SQLite's default limit so that
 * internal writes (the request log's remembered responses) never meet a smaller one.
 */
export const queryValueBytesMax = 64 << 20;

/**
 * SQLite's page cache per connection, in KiB (`PRAGMA cache_size = -N`). Set on every connection
 * rather than left to the build's default: a node holds several (write, read, a snapshot's source and
 * copy) and each query process one more, so the node's SQLite memory is this times their number.
 * File pages beyond it are read again from the operating system's cache.
 */
export const pageCacheKibPerConnection = 2_048;

/**
 * No memory-mapped reads (`PRAGMA mmap_size = 0`): a mapped database counts in the process's resident
 * memory up to the file's size, so a growing database would grow the node with it.
 */
export const mmapBytesMax = 0;

/**
 * The `-wal` file is cut back to this size when a checkpoint restarts it (`journal_size_limit`).
 * It grows past it only while a reader holds an old state (a snapshot being copied, a long query),
 * and without the limit it would keep its largest size on disk for ever.
 */
export const walFileBytesKept = 16 << 20;

/**
 * The memory settings every store connection runs with (the write connection also sets the limit).
 * `held` receives the statement it prepares, for a caller that must keep it reachable
 * (`copyDatabase` in `snapshot-file.ts`).
 */
export function boundConnectionMemory(db: DatabaseSync, held: object[] = []): void {
  db.exec(`PRAGMA cache_size = -${pageCacheKibPerConnection}; PRAGMA mmap_size = ${mmapBytesMax}`);
  const check = db.prepare("PRAGMA cache_size");
  held.push(check);
  assert(check.get()?.cache_size === BigInt(-pageCacheKibPerConnection), "cache_size set");
}

function openDatabase(path: string, readOnly: boolean, busyTimeoutMs: number): DatabaseSync {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, {
      ...(readOnly ? { limits: { length: queryValueBytesMax } } : {}),
      readOnly,
      timeout: busyTimeoutMs,
      readBigInts: true,
      enableForeignKeyConstraints: true,
      enableDoubleQuotedStringLiterals: false,
      allowExtension: false,
      defensive: true,
    });
  } catch (error) {
    throw new BatonError(
      "BAD_CONFIG",
      `cannot open store database ${path}: ${String(error)}`,
      { path },
      { cause: error },
    );
  }
  boundConnectionMemory(db);
  return db;
}

/** What serves queries: the read connection, its guard, its statement cache and its meta access. */
export type ReadSide = Pick<Connections, "read" | "readGuard" | "readStatements" | "readMeta">;

/**
 * Opens a read connection on an existing store database, configured exactly as the store's own:
 * read-only, the length limit, the guard as its authorizer. A query process opens its connection
 * here too, so a query meets the same rules in a child process as in the node's.
 */
export function openReadSide(path: string, busyTimeoutMs: number): ReadSide {
  const read = openDatabase(path, true, busyTimeoutMs);
  const readGuard = new StatementGuard();
  read.setAuthorizer(readGuard.authorize);
  return {
    read,
    readGuard,
    readStatements: new StatementCache("query"),
    readMeta: new MetaAccess(read, false),
  };
}

/** Opens (creating if needed) the store database at `path` and both connections. */
export function openConnections(path: string, busyTimeoutMs: number): Connections {
  const write = openDatabase(path, false, busyTimeoutMs);
  try {
    const journal = write.prepare("PRAGMA journal_mode=WAL").get();
    assert(journal?.journal_mode === "wal", `store database ${path} must run in WAL mode`);
    write.exec(`PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=${walFileBytesKept}`);
    initializeMeta(write, path);
    ensureRequestTable(write);
    ensureReservationTable(write);
    ensureHistoryTable(write);
    const writeGuard = new StatementGuard();
    write.setAuthorizer(writeGuard.authorize);
    return {
      write,
      writeGuard,
      writeStatements: new StatementCache("execute"),
      writeMeta: new MetaAccess(write, true),
      ...openReadSide(path, busyTimeoutMs),
    };
  } catch (error) {
    write.close();
    throw error;
  }
}

/** Closes both connections; the write connection's open transaction, if any, rolls back. */
export function closeConnections(connections: Connections): void {
  try {
    if (connections.write.isTransaction) connections.write.exec("ROLLBACK");
  } finally {
    connections.read.close();
    connections.write.close();
  }
}
