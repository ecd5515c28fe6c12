/**
 * Keeps triggers from firing while a replica applies changesets.
 *
 * The leader's changeset already holds every row its triggers wrote, so a trigger firing again on a
 * replica would apply those effects twice (a duplicate-key conflict for a trigger's INSERT; a second,
 * different `random()` or `datetime('now')` for others). node:sqlite exposes neither
 * SQLITE_DBCONFIG_ENABLE_TRIGGER nor a session flag for this, and an authorizer answer of IGNORE does
 * not stop a trigger's DELETE, so inside the apply transaction the store drops the triggers, applies,
 * and recreates them from the exact SQL text SQLite stored. The whole exchange is inside the one
 * transaction that also records the applied index: readers never see a database without its triggers,
 * and a crash rolls everything back together.
 *
 * Invariants: triggers are restored before any DDL op runs (a RENAME rewrites trigger text, a DROP
 * TABLE drops its triggers) and before the transaction commits; the cached trigger list is dropped
 * after any DDL or rollback, so it never describes a schema other than the current one. With no
 * triggers in the schema this costs one cached lookup.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { quoteIdentifier } from "./sql-text.ts";

type TriggerDefinition = { readonly name: string; readonly sql: string };

export class TriggerSuspension {
  #known: readonly TriggerDefinition[] | null = null;
  #suspended: readonly TriggerDefinition[] | null = null;

  get isSuspended(): boolean {
    return this.#suspended !== null;
  }

  /** Forgets the cached list; call after any schema change or rollback. */
  invalidate(): void {
    assert(this.#suspended === null, "trigger list invalidated while triggers are suspended");
    this.#known = null;
  }

  /** Forgets suspension after the transaction that dropped the triggers rolled back. */
  forgetAfterRollback(): void {
    this.#suspended = null;
    this.#known = null;
  }

  #list(db: DatabaseSync): readonly TriggerDefinition[] {
    if (this.#known === null) {
      const rows = db
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name")
        .all();
      this.#known = rows.map((row) => {
        assert(
          typeof row.name === "string" && typeof row.sql === "string",
          "a trigger has a name and SQL text",
        );
        return { name: row.name, sql: row.sql };
      });
    }
    return this.#known;
  }

  /** Drops every trigger, remembering its SQL; a no-op when already suspended or none exist. */
  suspend(db: DatabaseSync): void {
    assert(db.isTransaction, "triggers are suspended only inside the apply transaction");
    if (this.#suspended !== null) return;
    const triggers = this.#list(db);
    if (triggers.length === 0) return;
    for (const trigger of triggers) db.exec(`DROP TRIGGER ${quoteIdentifier(trigger.name)}`);
    this.#suspended = triggers;
  }

  /** Recreates the suspended triggers exactly as they were. */
  resume(db: DatabaseSync): void {
    assert(db.isTransaction, "triggers are resumed inside the apply transaction");
    const suspended = this.#suspended;
    if (suspended === null) return;
    for (const trigger of suspended) db.exec(trigger.sql);
    this.#suspended = null;
  }
}
