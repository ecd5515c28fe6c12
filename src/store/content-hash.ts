/**
 * A canonical digest of the replicated content: equal hashes if and only if equal data and schema.
 *
 * Covered, in this order: the user schema (every object in sqlite_schema except SQLite's own
 * `sqlite_*` objects and the store's `_baton_*` ones, sorted by type and name: type, name, table and
 * SQL text); then every user table, sorted by name, its column names and its rows in primary-key
 * order; then the AUTOINCREMENT counters sorted by name; then the remembered requests
 * (`_baton_requests`, request-log.ts) in request-id order, the id reservations
 * (`_baton_id_reservations`, id-reservations.ts) by name and the history (`_baton_history`,
 * history-table.ts) by node and sequence, which are replicated state too: a node that took over
 * would answer retries from them, start its counters above them and serve the history from it. Not covered: the applied index, physical layout
 * (page numbers, rowids of rows whose key is not the rowid) and anything node-local.
 *
 * Every value is framed with its storage class, so INTEGER 1, REAL 1.0, TEXT '1' and BLOB x'31'
 * hash differently; every variable-length item carries its length, so no two sequences of items
 * share an encoding. The caller runs this inside one read transaction so it sees one state.
 *
 * `contentHashSteps` computes the same digest a bounded number of rows at a time (a generator that
 * yields between steps), so a node can hash a large database without holding its event loop: the
 * read transaction stays open between steps, so every step reads the same state.
 */
import { createHash, type Hash } from "node:crypto";
import type { DatabaseSync, SQLOutputValue } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { historyTableName } from "./history-table.ts";
import { reservationTableName } from "./id-reservations.ts";
import { requestTableName } from "./request-log.ts";
import { quoteIdentifier } from "./sql-text.ts";
import { isReservedName } from "./statement-guard.ts";

const tag = { null: 0, integer: 1, real: 2, text: 3, blob: 4, section: 0x10, row: 0x11, end: 0x12 } as const;
const encoder = new TextEncoder();

/** Bytes framed into one `update` of the digest: one call per value cost more than the hashing. */
const hashChunkBytes = 64 * 1024;

/** Frames items into a chunk and hashes the chunk when full: the digest of the same byte stream. */
class CanonicalHash {
  readonly #hash: Hash = createHash("sha256");
  readonly #chunk = new Uint8Array(hashChunkBytes);
  readonly #view = new DataView(this.#chunk.buffer);
  #used = 0;

  #room(bytes: number): void {
    if (this.#used + bytes > hashChunkBytes) this.#flush();
  }

  #flush(): void {
    if (this.#used > 0) this.#hash.update(this.#chunk.subarray(0, this.#used));
    this.#used = 0;
  }

  #tagged(code: number, bytes: Uint8Array): void {
    this.#room(5);
    this.#view.setUint8(this.#used, code);
    this.#view.setUint32(this.#used + 1, bytes.length);
    this.#used += 5;
    if (bytes.length > hashChunkBytes - this.#used) {
      this.#flush();
      this.#hash.update(bytes);
      return;
    }
    this.#chunk.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  #text(value: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit; a longer string is encoded on its own.
    if (5 + 3 * value.length > hashChunkBytes) {
      this.#tagged(tag.text, encoder.encode(value));
      return;
    }
    this.#room(5 + 3 * value.length);
    const { written } = encoder.encodeInto(value, this.#chunk.subarray(this.#used + 5));
    this.#view.setUint8(this.#used, tag.text);
    this.#view.setUint32(this.#used + 1, written);
    this.#used += 5 + written;
  }

  marker(code: number): void {
    this.#room(1);
    this.#chunk[this.#used++] = code;
  }

  section(name: string): void {
    this.#tagged(tag.section, encoder.encode(name));
  }

  value(value: SQLOutputValue): void {
    if (value === null) {
      this.marker(tag.null);
    } else if (typeof value === "bigint") {
      this.#room(9);
      this.#view.setUint8(this.#used, tag.integer);
      this.#view.setBigInt64(this.#used + 1, value);
      this.#used += 9;
    } else if (typeof value === "number") {
      this.#room(9);
      this.#view.setUint8(this.#used, tag.real);
      this.#view.setFloat64(this.#used + 1, value);
      this.#used += 9;
    } else if (typeof value === "string") {
      this.#text(value);
    } else {
      this.#tagged(tag.blob, value);
    }
  }

  digest(): string {
    this.#flush();
    return this.#hash.digest("hex");
  }
}

function isInternal(name: string): boolean {
  return name.toLowerCase().startsWith("sqlite_") || isReservedName(name);
}

/** The ORDER BY list that puts a table's rows in primary-key order. */
function keyOrder(db: DatabaseSync, table: string): string {
  const keys = db.prepare("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk").all(table);
  // Every user table has a key (schema rules); all columns is a total order for one that somehow has not.
  const columns =
    keys.length > 0 ? keys : db.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid").all(table);
  assert(columns.length > 0, `table ${table} has columns`);
  return columns.map((column) => quoteIdentifier(String(column.name))).join(", ");
}

/**
 * Most bytes of values a step hashes (strings counted by length, numbers as 8), whatever
 * `rowsPerStep` says: 1,000 rows of 1 MB blobs took a turn of several hundred ms.
 */
export const contentHashStepBytesMax = 1024 * 1024;

/** Rows and value bytes hashed since the last yield; yields once either bound is reached. */
type StepBudget = { rows: number; bytes: number; readonly rowsPerStep: number };

function valueBytes(value: SQLOutputValue): number {
  if (typeof value === "string") return value.length;
  if (value instanceof Uint8Array) return value.byteLength;
  return 8;
}

function* hashTable(
  db: DatabaseSync,
  hash: CanonicalHash,
  table: string,
  budget: StepBudget,
): Generator<void> {
  hash.section(`table ${table}`);
  const statement = db.prepare(`SELECT * FROM ${quoteIdentifier(table)} ORDER BY ${keyOrder(db, table)}`, {
    returnArrays: true,
    readBigInts: true,
  });
  for (const column of statement.columns()) hash.value(column.name);
  for (const row of statement.iterate()) {
    hash.marker(tag.row);
    for (const value of row as unknown as SQLOutputValue[]) {
      hash.value(value);
      budget.bytes += valueBytes(value);
    }
    if (++budget.rows >= budget.rowsPerStep || budget.bytes >= contentHashStepBytesMax) {
      budget.rows = 0;
      budget.bytes = 0;
      yield;
    }
  }
  hash.marker(tag.end);
}

/**
 * The hex SHA-256 of the content of `db` (see the module comment for what is covered), read in one
 * transaction of its own.
 */
export function computeContentHash(db: DatabaseSync): string {
  db.exec("BEGIN");
  try {
    const steps = contentHashSteps(db, Number.POSITIVE_INFINITY);
    for (;;) {
      const step = steps.next();
      if (step.done === true) return step.value;
    }
  } finally {
    if (db.isTransaction) db.exec("ROLLBACK");
  }
}

/**
 * The digest of `computeContentHash`, computed in steps of at most `rowsPerStep` table rows and
 * about `contentHashStepBytesMax` bytes of values (a step ends after the row that reaches it): the
 * generator yields after each step and returns the hex digest. `db` must stay in one read
 * transaction until it is done.
 */
export function* contentHashSteps(db: DatabaseSync, rowsPerStep: number): Generator<void, string> {
  assert(rowsPerStep >= 1, "a step hashes at least one row");
  const budget: StepBudget = { rows: 0, bytes: 0, rowsPerStep };
  assert(db.isTransaction, "the content hash reads inside one transaction");
  const hash = new CanonicalHash();
  hash.section("schema");
  const objects = db
    .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name", { readBigInts: true })
    .all()
    .filter((object) => !isInternal(String(object.name)));
  for (const object of objects) {
    hash.marker(tag.row);
    hash.value(object.type as SQLOutputValue);
    hash.value(object.name as SQLOutputValue);
    hash.value(object.tbl_name as SQLOutputValue);
    hash.value(object.sql as SQLOutputValue);
  }
  hash.marker(tag.end);
  for (const object of objects)
    if (object.type === "table") yield* hashTable(db, hash, String(object.name), budget);
  hash.section("sqlite_sequence");
  const sequenceExists =
    db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").get() !== undefined;
  if (sequenceExists) {
    for (const row of db.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name").all()) {
      hash.marker(tag.row);
      hash.value(row.name as SQLOutputValue);
      hash.value(row.seq as SQLOutputValue);
    }
  }
  hash.marker(tag.end);
  yield* hashTable(db, hash, requestTableName, budget);
  yield* hashTable(db, hash, reservationTableName, budget);
  yield* hashTable(db, hash, historyTableName, budget);
  assert(db.isTransaction, "the content hash read one state");
  return hash.digest();
}
