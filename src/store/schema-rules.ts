/**
 * Schema rules checked on the leader right after a DDL statement runs, inside the batch's savepoint
 * (a violation throws `FORBIDDEN_STATEMENT` and the batch rolls back, leaving no trace).
 *
 * Each rule closes a way for a replica to silently miss data (DESIGN.md §2):
 * - A table without a PRIMARY KEY is ignored by sessions: its rows would never replicate. `CREATE
 *   TABLE … AS SELECT` always makes such a table.
 * - In a rowid table whose key is not the rowid (anything but `INTEGER PRIMARY KEY`), a key column may
 *   hold NULL unless declared NOT NULL; sessions skip rows with a NULL key.
 * - A deferred foreign key is checked only at COMMIT; the leader's speculative transaction commits
 *   after Raft has committed the entry, when refusing the batch is no longer possible.
 * - Names starting with `_baton_` belong to the store (a RENAME could otherwise reach one).
 */

import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import { historyTableName, historyTimeIndexName } from "./history-table.ts";
import { reservationTableName } from "./id-reservations.ts";
import { internalStatement } from "./internal-statements.ts";
import { metaTableName } from "./meta.ts";
import { requestTableName } from "./request-log.ts";
import { hasDeferredForeignKey } from "./sql-text.ts";
import { reservedPrefix } from "./statement-guard.ts";

function forbidden(message: string, statementIndex: number, table: string): BatonError {
  return new BatonError("FORBIDDEN_STATEMENT", `statement ${statementIndex}: ${message}`, {
    statementIndex,
    table,
  });
}

type TableShape = { readonly type: string; readonly withoutRowid: boolean; readonly sql: string };

function tableShape(db: DatabaseSync, table: string): TableShape | null {
  const listed = db
    .prepare("SELECT type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?")
    .get(table);
  if (listed === undefined) return null;
  const schema = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?").get(table);
  return {
    type: String(listed.type),
    withoutRowid: listed.wr === 1n,
    sql: typeof schema?.sql === "string" ? schema.sql : "",
  };
}

/** Checks one table the statement created or altered. A table that no longer exists (renamed) passes. */
export function checkReplicableTable(db: DatabaseSync, table: string, statementIndex: number): void {
  const shape = tableShape(db, table);
  if (shape === null) return;
  assert(shape.type === "table", `guard lets only ordinary tables be created, got ${shape.type}`);
  const keyColumns = db
    .prepare('SELECT name, "notnull" AS required FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk')
    .all(table);
  if (keyColumns.length === 0) {
    throw forbidden(
      `table ${table} has no PRIMARY KEY; sessions do not record such tables, so its rows would not replicate ` +
        "(CREATE TABLE … AS SELECT always makes one); declare INTEGER PRIMARY KEY or a NOT NULL PRIMARY KEY",
      statementIndex,
      table,
    );
  }
  if (!shape.withoutRowid) {
    // A key that is not the rowid alias has its own unique index, listed with origin 'pk'.
    const keyIndex = db.prepare("SELECT 1 AS found FROM pragma_index_list(?) WHERE origin = 'pk'").get(table);
    const nullable = keyColumns.find((column) => column.required !== 1n);
    if (keyIndex !== undefined && nullable !== undefined) {
      throw forbidden(
        `PRIMARY KEY column ${String(nullable.name)} of table ${table} may hold NULL and sessions skip rows ` +
          "whose key is NULL; declare it NOT NULL (or use INTEGER PRIMARY KEY)",
        statementIndex,
        table,
      );
    }
  }
  if (hasDeferredForeignKey(shape.sql)) {
    throw forbidden(
      `table ${table} declares a DEFERRABLE INITIALLY DEFERRED foreign key; deferred constraints are checked ` +
        "only at COMMIT, after the batch is already committed in the log, so they are not supported",
      statementIndex,
      table,
    );
  }
}

/** Refuses a statement that left an object with a reserved name (for example through RENAME). */
export function checkReservedNames(db: DatabaseSync, statementIndex: number): void {
  const row = db
    .prepare(
      "SELECT name FROM sqlite_schema WHERE substr(lower(name), 1, ?) = ? AND name NOT IN (?, ?, ?, ?, ?, ?) LIMIT 1",
    )
    .get(
      reservedPrefix.length,
      reservedPrefix,
      metaTableName,
      requestTableName,
      `${requestTableName}_by_index`,
      reservationTableName,
      historyTableName,
      historyTimeIndexName,
    );
  if (row !== undefined) {
    throw forbidden(
      `names starting with ${reservedPrefix} belong to the store`,
      statementIndex,
      String(row.name),
    );
  }
}

/** Column names and primary-key positions (1-based, 0 if not in the key) of a table. */
export type TableColumns = { columns: string[]; primaryKey: number[] };

/** The shape of `table` as `db` sees it; null if there is no such table. */
export function describeTable(db: DatabaseSync, table: string): TableColumns | null {
  const rows = internalStatement(db, "SELECT name, pk FROM pragma_table_info(?) ORDER BY cid").all(table);
  if (rows.length === 0) return null;
  return { columns: rows.map((row) => String(row.name)), primaryKey: rows.map((row) => Number(row.pk)) };
}
