/**
 * Remembered client requests: `_baton_requests` maps a write's `requestId` to its log index and its
 * original response, so a retry of the same write (after a failover, a timeout, a dropped
 * connection) is answered from here instead of being applied twice.
 *
 * The row is written by the leader inside the batch itself, while the batch's session records, so
 * it reaches every replica in the same changeset as the data: whichever node leads next knows the
 * request exactly when it knows the write. The window is bounded: every `pruneEveryEntries` indexes
 * the batch also deletes rows older than `windowEntries` indexes (in the same changeset, so every
 * replica prunes identically). A retry is recognised within `windowEntries` later writes.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { LogIndex } from "../types/ids.ts";

export const requestTableName = "_baton_requests";
export const requestWindow = { windowEntries: 1_000_000, pruneEveryEntries: 4096 } as const;

export type RememberedRequest = { readonly index: LogIndex; readonly response: string };

/** Creates the table when missing; identical local DDL on every node, run at open. */
export function ensureRequestTable(db: DatabaseSync): void {
  assert(!db.isTransaction, "the request table is created outside a transaction");
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${requestTableName}(request_id TEXT PRIMARY KEY NOT NULL, entry_index INTEGER NOT NULL, response TEXT NOT NULL) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS ${requestTableName}_by_index ON ${requestTableName}(entry_index)`,
  );
}

/** Records `requestId` for the batch at `index`; runs inside the batch while its session records. */
export function rememberRequest(
  db: DatabaseSync,
  requestId: string,
  index: LogIndex,
  response: string,
): void {
  assert(db.isTransaction, "a request is remembered inside its batch");
  db.prepare(`INSERT INTO ${requestTableName}(request_id, entry_index, response) VALUES (?, ?, ?)`).run(
    requestId,
    index,
    response,
  );
  if (index % requestWindow.pruneEveryEntries === 0) {
    db.prepare(`DELETE FROM ${requestTableName} WHERE entry_index <= ?`).run(
      index - requestWindow.windowEntries,
    );
  }
}

export function lookupRequest(db: DatabaseSync, requestId: string): RememberedRequest | null {
  const row = db
    .prepare(`SELECT entry_index, response FROM ${requestTableName} WHERE request_id = ?`)
    .get(requestId);
  if (row === undefined) return null;
  return { index: Number(row.entry_index) as LogIndex, response: String(row.response) };
}
