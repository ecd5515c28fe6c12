/**
 * AUTOINCREMENT counters (`sqlite_sequence`), carried in the payload because sessions cannot.
 *
 * `sqlite_sequence` has no PRIMARY KEY, so no changeset records it, and a replica's counters drift
 * from the leader's in both directions:
 * - behind: a batch that inserts and then deletes a row leaves the leader's counter past the
 *   replica's, and after a failover the replica would hand the deleted id out again;
 * - ahead: an UPDATE that moves a row to a larger id does not touch the leader's counter, but the
 *   changeset records it as DELETE + INSERT, and the replica's INSERT raises its counter.
 * So the payload of every batch that changed the counters, or that changed any row while counters
 * exist, ends with a `sequence` op holding the complete contents of `sqlite_sequence`; the replica
 * replaces its own with exactly those rows after applying the batch's changesets.
 *
 * Invariants: after applying a payload, `sqlite_sequence` equals the leader's after the same batch.
 * The existence of the table is cached and the cache is dropped after any DDL or rollback.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { PayloadOp, SequenceEntry } from "./payload.ts";

export type Counters = readonly SequenceEntry[];

function sameCounters(before: Counters, after: Counters): boolean {
  return (
    before.length === after.length &&
    before.every((entry, i) => entry.name === after[i]!.name && entry.value === after[i]!.value)
  );
}

export class SequenceCounters {
  #tableExists: boolean | null = null;

  invalidate(): void {
    this.#tableExists = null;
  }

  #exists(db: DatabaseSync): boolean {
    this.#tableExists ??=
      db
        .prepare("SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'")
        .get() !== undefined;
    return this.#tableExists;
  }

  /** The counters now, sorted by name; empty when no AUTOINCREMENT table was ever created. */
  read(db: DatabaseSync): Counters {
    if (!this.#exists(db)) return [];
    return db
      .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
      .all()
      .map((row) => {
        // SQLite itself writes these rows; clients may not write this table.
        assert(
          typeof row.name === "string" && typeof row.seq === "bigint",
          "sqlite_sequence holds (text, integer) rows",
        );
        return { name: row.name, value: row.seq };
      });
  }

  /** The op that ends a batch, or null when replicas' counters will match without one. */
  static opFor(before: Counters, after: Counters, ops: readonly PayloadOp[]): PayloadOp | null {
    const rowsChanged = ops.some((op) => op.kind === "changeset");
    if (sameCounters(before, after) && !(rowsChanged && after.length > 0)) return null;
    return { kind: "sequence", entries: after };
  }

  /** Replaces the replica's counters with the leader's; runs inside the apply transaction. */
  replace(db: DatabaseSync, entries: readonly SequenceEntry[]): void {
    assert(db.isTransaction, "counters are written inside the apply transaction");
    if (!this.#exists(db)) {
      assert(entries.length === 0, "counters arrive only for a schema with AUTOINCREMENT tables");
      return;
    }
    db.exec("DELETE FROM sqlite_sequence");
    const insert = db.prepare("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)");
    for (const entry of entries) insert.run(entry.name, entry.value);
  }
}
