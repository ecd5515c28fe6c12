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
 * The leader reads the table once per batch, at its end: the counters after one batch are the
 * counters before the next, as long as nothing else touched the write transaction in between. So
 * that reading is kept, and dropped (with the cached existence of the table) after any DDL, rollback
 * or apply, each of which may change the counters without a leader batch.
 *
 * Invariants: after applying a payload, `sqlite_sequence` equals the leader's after the same batch;
 * a kept reading equals what reading the table now would return (sequence-counters.test.ts fails
 * when a rollback or failed batch does not drop it).
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { internalStatement } from "./internal-statements.ts";
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
  /** The counters as the last leader batch left them; null when unknown. */
  #afterLastBatch: Counters | null = null;

  /** Forgets everything cached; call after any DDL, rollback or apply. */
  invalidate(): void {
    this.#tableExists = null;
    this.#afterLastBatch = null;
  }

  /** Whether `sqlite_sequence` exists (some AUTOINCREMENT table was created). */
  exists(db: DatabaseSync): boolean {
    return this.#exists(db);
  }

  #exists(db: DatabaseSync): boolean {
    this.#tableExists ??=
      internalStatement(
        db,
        "SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'",
      ).get() !== undefined;
    return this.#tableExists;
  }

  /** The counters now, sorted by name; empty when no AUTOINCREMENT table was ever created. */
  read(db: DatabaseSync): Counters {
    if (!this.#exists(db)) return [];
    return internalStatement(db, "SELECT name, seq FROM sqlite_sequence ORDER BY name")
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

  /** The counters at the start of a leader batch: the previous batch's reading when still valid. */
  beforeBatch(db: DatabaseSync): Counters {
    assert(db.isTransaction, "a leader batch reads its counters inside the speculative transaction");
    return this.#afterLastBatch ?? this.read(db);
  }

  /** The counters at the end of a leader batch, kept as the next batch's starting point. */
  afterBatch(db: DatabaseSync): Counters {
    assert(db.isTransaction, "a leader batch reads its counters inside the speculative transaction");
    const counters = this.read(db);
    this.#afterLastBatch = counters;
    return counters;
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
    this.#afterLastBatch = null;
    internalStatement(db, "DELETE FROM sqlite_sequence").run();
    const insert = internalStatement(db, "INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)");
    for (const entry of entries) insert.run(entry.name, entry.value);
  }
}
