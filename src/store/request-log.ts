/**
 * Remembered client requests: `_baton_requests` maps a write's `requestId` to its log index and its
 * original response, so a retry of the same write (after a failover, a timeout, a dropped
 * connection) is answered from here instead of being applied twice.
 *
 * The row is written by the leader inside the batch itself, while the batch's session records, so
 * it reaches every replica in the same changeset as the data: whichever node leads next knows the
 * request exactly when it knows the write.
 *
 * The window: a request is remembered for `windowEntries` log indexes. Every batch that remembers a
 * request also deletes, in the same changeset, every row at or below `index - windowEntries`. Rows
 * are added only by such batches, one per batch at its own index, so right after any batch every row
 * lies within the last `windowEntries` indexes: the table never holds more than `windowEntries` rows,
 * and every replica holds exactly the leader's rows, because the deletions travel in the changeset
 * rather than being decided anew on each node. Pruning at every remembering batch (rather than
 * every so many indexes) is what makes the bound hold whatever indexes requests happen to land on;
 * it deletes the same rows in total, spread evenly, through the index on `entry_index`.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { LogIndex } from "../types/ids.ts";
import { internalStatement } from "./internal-statements.ts";

export const requestTableName = "_baton_requests";

/** The default window: a retry is recognised within this many later log indexes. */
export const requestWindowEntriesDefault = 1_000_000;

export type RememberedRequest = { readonly index: LogIndex; readonly response: string };

export type RequestRecord = {
  readonly requestId: string;
  /** The log index of the batch that carries the write. */
  readonly index: LogIndex;
  readonly response: string;
  readonly windowEntries: number;
};

/** Creates the table when missing; identical local DDL on every node, run at open. */
export function ensureRequestTable(db: DatabaseSync): void {
  assert(!db.isTransaction, "the request table is created outside a transaction");
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${requestTableName}(request_id TEXT PRIMARY KEY NOT NULL, entry_index INTEGER NOT NULL, response TEXT NOT NULL) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS ${requestTableName}_by_index ON ${requestTableName}(entry_index)`,
  );
}

/**
 * Records a request for the batch at `record.index` and drops the requests that fell out of the
 * window; runs inside the batch while its session records, so both reach replicas in its changeset.
 */
export function rememberRequest(db: DatabaseSync, record: RequestRecord): void {
  const { requestId, index, response, windowEntries } = record;
  assert(db.isTransaction, "a request is remembered inside its batch");
  assert(Number.isSafeInteger(windowEntries) && windowEntries > 0, "the request window is positive");
  internalStatement(db, `DELETE FROM ${requestTableName} WHERE entry_index <= ?`).run(index - windowEntries);
  internalStatement(
    db,
    `INSERT INTO ${requestTableName}(request_id, entry_index, response) VALUES (?, ?, ?)`,
  ).run(requestId, index, response);
}

export function lookupRequest(db: DatabaseSync, requestId: string): RememberedRequest | null {
  const row = internalStatement(
    db,
    `SELECT entry_index, response FROM ${requestTableName} WHERE request_id = ?`,
  ).get(requestId);
  if (row === undefined) return null;
  return { index: Number(row.entry_index) as LogIndex, response: String(row.response) };
}
