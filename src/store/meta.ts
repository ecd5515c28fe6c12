/**
 * The store's bookkeeping table, `_baton_meta`: the store format version and the applied index.
 *
 * Invariants: the applied index is written in the same SQLite transaction as the data it covers, so
 * after a crash the database holds exactly the entries up to it (replay is exactly-once). Clients can
 * neither write nor create `_baton_*` objects (the statement guard refuses), and the content hash
 * leaves the table out: two replicas with equal data are equal whatever their bookkeeping.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";

/** The on-disk format this build writes; a file with a larger number is refused. */
export const storeFormatVersion = 1;

export const metaTableName = "_baton_meta";

const formatVersionKey = "format_version";
const appliedIndexKey = "applied_index";

function readKey(db: DatabaseSync, key: string): bigint | null {
  const row = db.prepare(`SELECT value FROM ${metaTableName} WHERE key = ?`).get(key);
  if (row === undefined) return null;
  const value = row.value;
  if (typeof value !== "bigint")
    throw new BatonError("STORE_CORRUPT", `${metaTableName}.${key} is not an integer`);
  return value;
}

/**
 * Creates the table in a new database, or checks the format of an existing one. Runs on the write
 * connection outside any transaction.
 */
export function initializeMeta(db: DatabaseSync, path: string): void {
  assert(!db.isTransaction, "meta is initialized outside a transaction");
  const exists = db
    .prepare("SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = ?")
    .get(metaTableName);
  if (exists === undefined) {
    const objects = db.prepare("SELECT count(*) AS objects FROM sqlite_schema").get();
    if (objects?.objects !== 0n) {
      throw new BatonError(
        "STORE_CORRUPT",
        `${path} holds tables but no ${metaTableName}: not a Baton store`,
        { path },
      );
    }
    db.exec("BEGIN IMMEDIATE");
    db.exec(
      `CREATE TABLE ${metaTableName}(key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID`,
    );
    const insert = db.prepare(`INSERT INTO ${metaTableName}(key, value) VALUES (?, ?)`);
    insert.run(formatVersionKey, storeFormatVersion);
    insert.run(appliedIndexKey, 0);
    db.exec("COMMIT");
  }
  checkFormat(db, path);
}

/** Refuses a store written by a newer (or unknown) format. */
export function checkFormat(db: DatabaseSync, path: string): void {
  const version = readKey(db, formatVersionKey);
  if (version === null)
    throw new BatonError("STORE_CORRUPT", `${path}: ${metaTableName} has no format version`, { path });
  if (version > BigInt(storeFormatVersion)) {
    throw new BatonError(
      "STORE_VERSION_UNSUPPORTED",
      `${path} was written by store format ${version}; this build reads format ${storeFormatVersion}`,
      { path, version: Number(version), supported: storeFormatVersion },
    );
  }
  if (version !== BigInt(storeFormatVersion)) {
    throw new BatonError("STORE_CORRUPT", `${path}: unknown store format ${version}`, { path });
  }
}

/** Reads and writes the applied index through statements prepared once per connection. */
export class MetaAccess {
  readonly #read: StatementSync;
  readonly #write: StatementSync | null;

  constructor(db: DatabaseSync, writable: boolean) {
    this.#read = db.prepare(`SELECT value FROM ${metaTableName} WHERE key = '${appliedIndexKey}'`);
    this.#write = writable
      ? db.prepare(`UPDATE ${metaTableName} SET value = ? WHERE key = '${appliedIndexKey}'`)
      : null;
  }

  readAppliedIndex(): LogIndex {
    const row = this.#read.get();
    if (row === undefined || typeof row.value !== "bigint") {
      throw new BatonError("STORE_CORRUPT", `${metaTableName} has no applied index`);
    }
    assert(
      row.value >= 0n && row.value <= BigInt(Number.MAX_SAFE_INTEGER),
      `applied index ${row.value} out of range`,
    );
    return logIndex(Number(row.value));
  }

  /** Must run inside the transaction that holds the data the index covers. */
  writeAppliedIndex(index: LogIndex): void {
    assert(this.#write !== null, "applied index written through a read-only connection");
    const result = this.#write.run(index);
    assert(Number(result.changes) === 1, "the applied index row exists");
  }
}
