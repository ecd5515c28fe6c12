/**
 * Remembered client requests: `_baton_requests` maps a write's `requestId` to its log index and its
 * original response, so a retry of the same write (after a failover, a timeout, a dropped
 * connection) is answered from here instead of being applied twice.
 *
 * The row is written by the leader inside the batch itself, while the batch's session records, so
 * it reaches every replica in the same changeset as the data: whichever node leads next knows the
 * request exactly when it knows the write.
 *
 * The window has two bounds, and a request is forgotten once it is past either:
 * - `entries` log indexes (a count): a request remembered at index i is dropped by the first
 *   remembering batch at an index >= i + entries. Rows are added only by remembering batches, one
 *   per batch at its own index, so the table never holds more than `entries` rows. This bounds the
 *   table's size (and every snapshot's share of it) whatever the write rate.
 * - `ms` milliseconds (an age), by the clock of the leader that remembers: each row carries the time
 *   its leader ran the batch (`logged_at_ms`), and a remembering batch at time t drops the rows
 *   logged at or before t - ms. Rows are dropped in index order: a row is dropped by age only with
 *   every row before it, so a later leader whose clock is behind keeps rows longer, never shorter.
 *   This bounds how long a quiet cluster holds requests nobody will retry.
 * Both prunings run at every remembering batch, inside it, so the deletions travel in its changeset
 * and every replica holds exactly the leader's rows; replicas decide nothing. Pruning at every
 * remembering batch (rather than every so many indexes) is what makes the count bound hold whatever
 * indexes requests happen to land on; it deletes the same rows in total, spread evenly, through the
 * index on `entry_index`.
 *
 * What a client gets: a retry that reaches the leader while its row is held is answered with the
 * original response. A row is held at least while both bounds hold (it may stay longer, until the
 * next remembering batch prunes). A retry after that is not recognised: it runs as a new write.
 *
 * Databases from before the age bound have no `logged_at_ms`; the column is added at open (the same
 * local DDL on every node, so replicas stay equal) and their rows keep a NULL time, which the age
 * bound never drops: they leave through the count bound.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { LogIndex } from "../types/ids.ts";
import { internalStatement } from "./internal-statements.ts";
import type { ExecuteOptions, ExecuteStatementResult } from "./types.ts";

export const requestTableName = "_baton_requests";

/**
 * The default count bound: a retry is recognised within this many later log indexes. At 1 KB per
 * remembered response (a 20-statement batch's results) that is about 100 MB of database, and it
 * covers `requestWindowMsDefault` up to about 110 remembering writes per second.
 */
export const requestWindowEntriesDefault = 100_000;

/**
 * The default age bound: 15 minutes. The client library retries one call for at most its
 * `timeoutMs` (10 s by default, at most `requestLimits.timeoutMsMax`, 10 minutes), so every retry it
 * makes by itself arrives within 10 minutes of the first attempt; the other 5 minutes cover the
 * clocks of successive leaders disagreeing and an application that retries a `maybeApplied` write
 * with the same id soon after the call failed.
 */
export const requestWindowMsDefault = 15 * 60_000;

/** How long a request is remembered: both bounds apply. */
export type RequestWindow = { readonly entries: number; readonly ms: number };

export type RememberedRequest = { readonly index: LogIndex; readonly response: string };

export type RequestRecord = {
  readonly requestId: string;
  /** The log index of the batch that carries the write. */
  readonly index: LogIndex;
  readonly response: string;
  /** When the leader ran the batch, by its clock (epoch milliseconds). */
  readonly loggedAtMs: number;
  readonly window: RequestWindow;
};

/**
 * Creates the table when missing, and adds `logged_at_ms` to a table from before the age bound;
 * identical local DDL on every node, run at open.
 */
export function ensureRequestTable(db: DatabaseSync): void {
  assert(!db.isTransaction, "the request table is created outside a transaction");
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${requestTableName}(request_id TEXT PRIMARY KEY NOT NULL, entry_index INTEGER NOT NULL, response TEXT NOT NULL, logged_at_ms INTEGER) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS ${requestTableName}_by_index ON ${requestTableName}(entry_index)`,
  );
  const columns = db.prepare(`SELECT name FROM pragma_table_info('${requestTableName}')`).all();
  if (!columns.some((column) => column.name === "logged_at_ms"))
    db.exec(`ALTER TABLE ${requestTableName} ADD COLUMN logged_at_ms INTEGER`);
  assert(
    db.prepare(`SELECT count(*) AS n FROM pragma_table_info('${requestTableName}')`).get()?.n === 4n,
    "the request table has its four columns",
  );
}

/**
 * Drops, in index order, every row past the count bound or past the age bound: every row at or
 * below `?1` (index - entries), and every row before the first one logged after `?2` (now - ms) or
 * of unknown time; when there is no such row, every row before `?3` (this batch's index).
 */
const pruneSql = `DELETE FROM ${requestTableName} WHERE entry_index <= max(?1, coalesce(
  (SELECT entry_index FROM ${requestTableName} WHERE logged_at_ms IS NULL OR logged_at_ms > ?2 ORDER BY entry_index LIMIT 1),
  ?3) - 1)`;

/**
 * Records a request for the batch at `record.index` and drops the requests that fell out of the
 * window; runs inside the batch while its session records, so both reach replicas in its changeset.
 */
export function rememberRequest(db: DatabaseSync, record: RequestRecord): void {
  const { requestId, index, response, loggedAtMs, window } = record;
  assert(db.isTransaction, "a request is remembered inside its batch");
  assert(
    Number.isSafeInteger(window.entries) && window.entries > 0,
    "the request window's count is positive",
  );
  assert(Number.isSafeInteger(window.ms) && window.ms > 0, "the request window's age is positive");
  assert(Number.isSafeInteger(loggedAtMs) && loggedAtMs >= 0, "a request's time is whole milliseconds");
  internalStatement(db, pruneSql).run(index - window.entries, loggedAtMs - window.ms, index);
  internalStatement(
    db,
    `INSERT INTO ${requestTableName}(request_id, entry_index, response, logged_at_ms) VALUES (?, ?, ?, ?)`,
  ).run(requestId, index, response, loggedAtMs);
}

/**
 * What a leader batch at `index` runs after its statements to remember `request` (nothing without
 * one): the request with the response its results make.
 */
export function rememberStep(
  db: DatabaseSync,
  request: ExecuteOptions["request"],
  index: LogIndex,
  window: RequestRecord["window"],
): ((results: readonly ExecuteStatementResult[]) => void) | undefined {
  if (request === undefined) return undefined;
  return (results) =>
    rememberRequest(db, {
      requestId: request.id,
      index,
      response: request.response(results),
      loggedAtMs: request.loggedAtMs,
      window,
    });
}

export function lookupRequest(db: DatabaseSync, requestId: string): RememberedRequest | null {
  const row = internalStatement(
    db,
    `SELECT entry_index, response FROM ${requestTableName} WHERE request_id = ?`,
  ).get(requestId);
  if (row === undefined) return null;
  return { index: Number(row.entry_index) as LogIndex, response: String(row.response) };
}
