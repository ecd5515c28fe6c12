/**
 * The replicated history: `_baton_history(node, seq, at_ms, record)`, the cluster's record of role
 * changes, elections, failovers and operator actions (the node layer's `history.ts` says what is
 * recorded and `history-replication.ts` how records get here).
 *
 * A row is one record of node `node`, numbered `seq` by that node (its own increasing sequence), made
 * at `at_ms` by its clock; `record` is the record as JSON text, at most `historyRecordBytesMax`
 * bytes. Rows are written only by a leader batch (inside its session, so they reach replicas in its
 * changeset like any row), never by a client (the statement guard refuses writes to `_baton_*`).
 *
 * Invariants:
 * - Idempotent: a row is keyed by (node, seq) and inserted only when absent, so a record proposed
 *   twice (a lost acknowledgement, a new leader) is stored once and never changed.
 * - Bounded: the same batch that inserts deletes the oldest rows (by `at_ms`, then node and seq)
 *   beyond `historyRowsMax`, so every replica keeps exactly the same newest rows.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { internalStatement } from "./internal-statements.ts";

export const historyTableName = "_baton_history";
/** The index that finds the oldest rows (retention) and the newest (reads). */
export const historyTimeIndexName = "_baton_history_by_time";
/** Rows the table keeps; a batch that inserts deletes the oldest beyond it. */
export const historyRowsMax = 10_000;
/** Bytes of one record's JSON text. */
export const historyRecordBytesMax = 4_096;
/** Rows one batch may insert (the node layer proposes fewer, see `historyBatchRecordsMax`). */
export const historyRowsPerBatchMax = 256;

/** One history record as the table holds it. */
export type HistoryRow = {
  readonly node: string;
  readonly seq: number;
  readonly atMs: number;
  /** The record as JSON text. */
  readonly record: string;
};

export function ensureHistoryTable(db: DatabaseSync): void {
  assert(!db.isTransaction, "the history table is created outside a transaction");
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${historyTableName}(node TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY(node, seq)) WITHOUT ROWID`,
  );
  db.exec(`CREATE INDEX IF NOT EXISTS ${historyTimeIndexName} ON ${historyTableName}(at_ms, node, seq)`);
}

function checkRow(row: HistoryRow): void {
  assert(
    row.node.length > 0 && Number.isSafeInteger(row.seq) && row.seq >= 0 && Number.isSafeInteger(row.atMs),
    `a history row has a node, a sequence and a time (${row.node}:${row.seq})`,
  );
  assert(
    Buffer.byteLength(row.record, "utf8") <= historyRecordBytesMax,
    `history record ${row.node}:${row.seq} is within ${historyRecordBytesMax} bytes`,
  );
}

/**
 * Inserts the rows not yet present and deletes the oldest beyond `rowsMax`; inside a leader batch
 * while its session records. Returns how many rows were inserted.
 */
export function insertHistory(
  db: DatabaseSync,
  rows: readonly HistoryRow[],
  rowsMax: number = historyRowsMax,
): number {
  assert(db.isTransaction, "history rows are written inside a batch");
  assert(rows.length <= historyRowsPerBatchMax, `at most ${historyRowsPerBatchMax} history rows a batch`);
  assert(Number.isSafeInteger(rowsMax) && rowsMax >= 1, "the history keeps at least one row");
  const insert = internalStatement(
    db,
    `INSERT INTO ${historyTableName}(node, seq, at_ms, record) VALUES (?, ?, ?, ?) ON CONFLICT(node, seq) DO NOTHING`,
  );
  let inserted = 0;
  for (const row of rows) {
    checkRow(row);
    inserted += Number(insert.run(row.node, row.seq, row.atMs, row.record).changes);
  }
  if (inserted === 0) return 0;
  internalStatement(
    db,
    `DELETE FROM ${historyTableName} WHERE (node, seq) IN (SELECT node, seq FROM ${historyTableName} ORDER BY at_ms, node, seq LIMIT max(0, (SELECT count(*) FROM ${historyTableName}) - ?))`,
  ).run(rowsMax);
  return inserted;
}

/** The newest rows, newest first, at most `limit`. */
export function readHistory(db: DatabaseSync, limit: number): HistoryRow[] {
  assert(Number.isSafeInteger(limit) && limit >= 1, "a history read has a positive limit");
  return internalStatement(
    db,
    `SELECT node, seq, at_ms, record FROM ${historyTableName} ORDER BY at_ms DESC, node DESC, seq DESC LIMIT ?`,
  )
    .all(limit)
    .map((row) => {
      assert(
        typeof row.node === "string" &&
          typeof row.seq === "bigint" &&
          typeof row.at_ms === "bigint" &&
          typeof row.record === "string",
        "history rows are (text, integer, integer, text)",
      );
      return { node: row.node, seq: Number(row.seq), atMs: Number(row.at_ms), record: row.record };
    });
}

/** The highest sequence of `node` in the table, or null when it holds none of its records. */
export function historyThrough(db: DatabaseSync, node: string): number | null {
  const row = internalStatement(db, `SELECT max(seq) AS through FROM ${historyTableName} WHERE node = ?`).get(
    node,
  );
  const through = row?.through;
  assert(through === null || typeof through === "bigint", "a sequence is an integer");
  return through === null || through === undefined ? null : Number(through);
}

/** Reads of the committed history, on a store's read connection. */
export type HistoryReads = {
  /** The newest rows, newest first, at most `limit`. */
  readonly recent: (limit: number) => HistoryRow[];
  /** The highest sequence of `node` in the table, or null when it holds none of its records. */
  readonly through: (node: string) => number | null;
};

export function historyReads(db: DatabaseSync): HistoryReads {
  return { recent: (limit) => readHistory(db, limit), through: (node) => historyThrough(db, node) };
}
