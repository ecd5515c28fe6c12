/**
 * AUTOINCREMENT counters (`sqlite_sequence`), carried in the payload because sessions cannot.
 *
 * `sqlite_sequence` has no PRIMARY KEY, so no changeset records it. A replica's counter follows the
 * rows it applies, which is not the leader's: a batch that inserts and then deletes a row leaves the
 * leader's counter past the replica's, and after a failover the replica would hand the deleted id out
 * again. So the leader reads the counters before and after each batch and, when they differ, the
 * payload ends with a `sequence` op holding the final value of every counter that changed (or null
 * for one whose row disappeared); the replica writes exactly those values.
 *
 * Invariants: after applying a payload, every counter equals the leader's after the same batch. The
 * existence of `sqlite_sequence` is cached and the cache is dropped after any DDL or rollback.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { SequenceEntry } from "./payload.ts";

export type Counters = ReadonlyMap<string, bigint>;

export class SequenceCounters {
  #tableExists: boolean | null = null;

  invalidate(): void {
    this.#tableExists = null;
  }

  /** The counters now, or an empty map when no AUTOINCREMENT table was ever created. */
  read(db: DatabaseSync): Counters {
    this.#tableExists ??=
      db
        .prepare("SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'")
        .get() !== undefined;
    if (!this.#tableExists) return new Map();
    const counters = new Map<string, bigint>();
    for (const row of db.prepare("SELECT name, seq FROM sqlite_sequence").all()) {
      assert(typeof row.name === "string", "sqlite_sequence names are text");
      // SQLite itself writes integers here; clients may not write this table.
      counters.set(row.name, typeof row.seq === "bigint" ? row.seq : BigInt(Number(row.seq)));
    }
    return counters;
  }

  /** The counters that changed from `before` to `after`, sorted by name; null marks a deleted counter. */
  static changes(before: Counters, after: Counters): SequenceEntry[] {
    const entries: SequenceEntry[] = [];
    for (const [name, value] of after) if (before.get(name) !== value) entries.push({ name, value });
    for (const name of before.keys()) if (!after.has(name)) entries.push({ name, value: null });
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Writes the leader's final counter values; runs inside the apply transaction. */
  write(db: DatabaseSync, entries: readonly SequenceEntry[]): void {
    assert(db.isTransaction, "counters are written inside the apply transaction");
    const update = db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = ?");
    const insert = db.prepare("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)");
    const remove = db.prepare("DELETE FROM sqlite_sequence WHERE name = ?");
    for (const entry of entries) {
      if (entry.value === null) {
        remove.run(entry.name);
      } else if (Number(update.run(entry.value, entry.name).changes) === 0) {
        insert.run(entry.name, entry.value);
      }
    }
    this.#tableExists = null;
  }
}
