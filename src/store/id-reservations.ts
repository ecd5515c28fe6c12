/**
 * AUTOINCREMENT id reservations: replicated state that lets a new leader start every counter above
 * any id an old leader may have handed out (`src/node/id-guard.ts` holds the policy).
 *
 * `_baton_id_reservations(name, high)`: for AUTOINCREMENT table `name`, a leader may have handed out
 * ids up to `high`. Rows are written by a leader batch (inside its session, so they reach replicas
 * in its changeset like any row) and only ever raised. At the first batch of a term the leader
 * raises each `sqlite_sequence` counter to at least its reservation, inside that batch, so the
 * batch's counter op carries the raised values to replicas and content stays equal everywhere.
 *
 * Why it is enough: a write acknowledged below `majority` may be lost in a failover, and with it the
 * counter value that handed its id out. The node acknowledges such a write only once a *committed*
 * reservation covers its ids; every later leader holds that reservation (Leader Completeness) and
 * starts above it, so no acknowledged id is handed to another row.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { internalStatement } from "./internal-statements.ts";
import type { SequenceEntry } from "./payload.ts";

export const reservationTableName = "_baton_id_reservations";

export function ensureReservationTable(db: DatabaseSync): void {
  assert(!db.isTransaction, "the reservation table is created outside a transaction");
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${reservationTableName}(name TEXT PRIMARY KEY NOT NULL, high INTEGER NOT NULL) WITHOUT ROWID`,
  );
}

/** The reservations as this connection sees them, sorted by name. */
export function readReservations(db: DatabaseSync): SequenceEntry[] {
  return internalStatement(db, `SELECT name, high FROM ${reservationTableName} ORDER BY name`)
    .all()
    .map((row) => {
      assert(
        typeof row.name === "string" && typeof row.high === "bigint",
        "reservation rows are (text, integer)",
      );
      return { name: row.name, value: row.high };
    });
}

/** Raises reservations to at least `entries`; inside a leader batch while its session records. */
export function raiseReservations(db: DatabaseSync, entries: readonly SequenceEntry[]): void {
  assert(db.isTransaction, "reservations are written inside a batch");
  const upsert = internalStatement(
    db,
    `INSERT INTO ${reservationTableName}(name, high) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET high = max(high, excluded.high)`,
  );
  for (const entry of entries) upsert.run(entry.name, entry.value);
}

/**
 * Raises each AUTOINCREMENT counter to at least its reservation (a counter without a row gets one,
 * as SQLite itself would on the first insert). Returns the reservations read.
 */
export function raiseCountersToReservations(db: DatabaseSync, sequenceExists: boolean): SequenceEntry[] {
  assert(db.isTransaction, "counters are raised inside a batch");
  const reservations = readReservations(db);
  if (!sequenceExists || reservations.length === 0) return reservations;
  const raise = internalStatement(db, "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?");
  const exists = internalStatement(db, "SELECT 1 AS found FROM sqlite_sequence WHERE name = ?");
  const insert = internalStatement(db, "INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)");
  const tableExists = internalStatement(
    db,
    "SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = ?",
  );
  for (const { name, value } of reservations) {
    if (tableExists.get(name) === undefined) continue; // dropped since: nothing to protect
    if (exists.get(name) === undefined) insert.run(name, value);
    else raise.run(value, name, value);
  }
  return reservations;
}
