/**
 * Prepared client statements kept for reuse, one bounded LRU per connection, keyed by SQL text.
 *
 * Compiling a statement is most of the cost of a small batch, and clients send the same texts over
 * and over. What compiling decided must stay true for as long as an entry is reused, so:
 * - An entry holds the statement with the classification the guard made while it compiled (DDL or
 *   not, writes or not). That classification depends only on the SQL text and the schema, so every
 *   entry is dropped when the schema may have changed: the store clears the write connection's
 *   cache after any DDL, rollback or apply, and the read connection's cache whenever the committed
 *   `schema_version` it reads differs from the one its entries were compiled under.
 * - Checks that depend on more than text and schema are never skipped: parameters are checked on
 *   every use, and a statement runs under the guard on every use, so what the authorizer hears while
 *   it runs (pragma table functions, SQLite re-preparing it) is judged as before.
 * - Only statements whose compilation the guard saw and approved are kept. DDL is not kept (it ends
 *   by clearing the cache anyway), nor statements the authorizer never heard of (their no-op verdict
 *   depends on the schema in ways the classification does not record), nor very long texts.
 * - A statement that failed while running is dropped: node:sqlite leaves a statement whose
 *   `iterate` failed unreset, and its next use would report the old error again.
 *
 * Bounds: `preparedStatementsMax` entries per connection, each at most `preparedStatementSqlCharsMax`
 * characters of SQL; the least recently used entry goes first.
 *
 * Recency is a use counter stamped on the entry, and eviction looks for the smallest stamp (at most
 * `preparedStatementsMax` entries, on a miss, which compiles anyway). Moving a hit to the end of the
 * map instead (delete, then set) made V8 shrink and rebuild the map's table on every use when it held
 * few entries: 2.7% of the leader's main thread under 100-statement batches (`perf`, `b16`).
 */
import type { StatementSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { GuardMode, StatementClass } from "./statement-guard.ts";

/** Statements kept per connection. */
export const preparedStatementsMax = 256;

/** Longer SQL texts are compiled for every use: keys this long would make the cache large in bytes. */
export const preparedStatementSqlCharsMax = 16 * 1024;

export type ClientMode = Exclude<GuardMode, "internal">;

/** A statement as compiled, with the guard's classification of that compilation. */
export type PreparedStatement = {
  readonly statement: StatementSync;
  readonly statementClass: Readonly<StatementClass>;
};

export type StatementCacheStats = {
  readonly hits: number;
  readonly misses: number;
  readonly entries: number;
};

/** A copy of a classification, so that what a run adds to it never leaks into the cached one. */
export function copyStatementClass(source: Readonly<StatementClass>): StatementClass {
  return {
    callbacks: source.callbacks,
    ddl: source.ddl,
    writes: source.writes,
    createdTables: [...source.createdTables],
    droppedTables: [...source.droppedTables],
    alteredTables: [...source.alteredTables],
    denial: source.denial,
  };
}

export class StatementCache {
  /** The guard mode every statement of this connection compiles and runs in. */
  readonly mode: ClientMode;
  readonly #entriesMax: number;
  readonly #entries = new Map<string, { readonly prepared: PreparedStatement; used: number }>();
  /** Uses so far: an entry's `used` is the count at its latest use. */
  #uses = 0;
  #schemaVersion: bigint | null = null;
  #hits = 0;
  #misses = 0;

  constructor(mode: ClientMode, entriesMax: number = preparedStatementsMax) {
    assert(
      Number.isSafeInteger(entriesMax) && entriesMax > 0,
      "the statement cache holds at least one entry",
    );
    this.mode = mode;
    this.#entriesMax = entriesMax;
  }

  get stats(): StatementCacheStats {
    return { hits: this.#hits, misses: this.#misses, entries: this.#entries.size };
  }

  /** The statement compiled for `sql`, made the most recently used; undefined when not kept. */
  get(sql: string): PreparedStatement | undefined {
    const entry = this.#entries.get(sql);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    entry.used = ++this.#uses;
    return entry.prepared;
  }

  /** Whether a statement with this text and classification may be kept (see the module comment). */
  static isCacheable(sql: string, statementClass: Readonly<StatementClass>): boolean {
    return (
      sql.length <= preparedStatementSqlCharsMax &&
      statementClass.callbacks > 0 &&
      !statementClass.ddl &&
      statementClass.denial === null
    );
  }

  /** Keeps a freshly compiled statement, evicting the least recently used one beyond the bound. */
  set(sql: string, entry: PreparedStatement): void {
    assert(StatementCache.isCacheable(sql, entry.statementClass), "only cacheable statements are kept");
    const prepared = { statement: entry.statement, statementClass: copyStatementClass(entry.statementClass) };
    this.#entries.set(sql, { prepared, used: ++this.#uses });
    if (this.#entries.size > this.#entriesMax) this.#entries.delete(this.#leastRecentlyUsed());
    assert(this.#entries.size <= this.#entriesMax, "the statement cache stays within its bound");
  }

  /** Drops the entry for `sql` if it still holds `statement` (a run of it failed). */
  forget(sql: string, statement: StatementSync): void {
    if (this.#entries.get(sql)?.prepared.statement === statement) this.#entries.delete(sql);
  }

  #leastRecentlyUsed(): string {
    let oldest: string | undefined;
    let oldestUse = Number.POSITIVE_INFINITY;
    for (const [sql, { used }] of this.#entries) {
      if (used < oldestUse) [oldest, oldestUse] = [sql, used];
    }
    assert(oldest !== undefined, "a full cache has a least recently used entry");
    return oldest;
  }

  /** Drops every entry: the schema may have changed. */
  clear(): void {
    this.#entries.clear();
  }

  /**
   * Drops every entry when `schemaVersion` (SQLite's `PRAGMA schema_version`, read in the caller's
   * transaction) differs from the version the entries were compiled under.
   */
  useSchemaVersion(schemaVersion: bigint): void {
    if (this.#schemaVersion !== schemaVersion) this.clear();
    this.#schemaVersion = schemaVersion;
    assert(this.#schemaVersion === schemaVersion, "the cache records the schema it serves");
  }
}
