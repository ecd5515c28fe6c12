/**
 * Applying a decoded payload on a replica (or on a leader replaying committed entries).
 *
 * The caller opens one transaction with foreign keys OFF and CHECK constraints ignored (both set
 * outside the transaction), runs this, records the applied index and commits. Why those settings:
 * the leader's changesets already contain the effects of its foreign-key actions (a cascade applied
 * again would find its rows gone), and every row in them passed the leader's CHECK constraints, which
 * may call `random()` or read the clock and so could fail here. Triggers are suspended around
 * changesets for the same reason (trigger-suspension.ts).
 *
 * Invariants: ops run in payload order; a DDL op runs with the triggers in place; any conflict while
 * applying a changeset means this replica's data is not the leader's, which is never papered over:
 * it throws `STORE_DIVERGED` and the caller rolls the whole entry back.
 */
import { constants, type DatabaseSync } from "node:sqlite";
import { BatonError } from "../lib/errors.ts";
import type { LogIndex } from "../types/ids.ts";
import { internalStatement } from "./internal-statements.ts";
import type { PayloadOp } from "./payload.ts";
import type { SequenceCounters } from "./sequence-counters.ts";
import { sqlRemainderIsBlank } from "./sql-text.ts";
import type { TriggerSuspension } from "./trigger-suspension.ts";

export type ReplicaContext = {
  readonly db: DatabaseSync;
  readonly triggers: TriggerSuspension;
  readonly counters: SequenceCounters;
  /** Drops every cache derived from the schema. */
  readonly schemaChanged: () => void;
};

/** SQLite's conflict types (SQLITE_CHANGESET_DATA … _FOREIGN_KEY, 1 to 5; not all are in @types/node). */
const conflictNames: Readonly<Record<number, string>> = {
  1: "data",
  2: "not-found",
  3: "conflict",
  4: "constraint",
  5: "foreign-key",
};

function diverged(message: string, details: Record<string, unknown>, cause?: unknown): BatonError {
  return new BatonError("STORE_DIVERGED", message, details, cause === undefined ? undefined : { cause });
}

function applyDdl(context: ReplicaContext, sql: string, opIndex: number): void {
  const { db, triggers } = context;
  triggers.resume(db);
  try {
    const statement = db.prepare(sql);
    // The payload's checksum vouches for its bytes, not for a leader bug: run exactly one statement.
    if (!sql.startsWith(statement.sourceSQL) || !sqlRemainderIsBlank(sql.slice(statement.sourceSQL.length))) {
      throw diverged(`ddl op ${opIndex} holds more than one statement`, { opIndex });
    }
    statement.run();
  } catch (error) {
    if (error instanceof BatonError) throw error;
    throw diverged(
      `ddl op ${opIndex} failed here although it succeeded on the leader: ${String(error)}`,
      { opIndex, sql },
      error,
    );
  } finally {
    context.schemaChanged();
  }
}

function applyChangeset(context: ReplicaContext, changeset: Uint8Array, opIndex: number): void {
  const { db, triggers } = context;
  triggers.suspend(db);
  const conflicts: string[] = [];
  let applied: boolean;
  try {
    applied = db.applyChangeset(changeset, {
      onConflict: (conflictType) => {
        conflicts.push(conflictNames[conflictType] ?? String(conflictType));
        return constants.SQLITE_CHANGESET_ABORT;
      },
    });
  } catch (error) {
    throw diverged(
      `changeset op ${opIndex} could not be applied: ${String(error)}`,
      { opIndex, conflicts },
      error,
    );
  }
  if (!applied || conflicts.length > 0) {
    throw diverged(`changeset op ${opIndex} conflicts with this replica's data (${conflicts.join(", ")})`, {
      opIndex,
      conflicts,
    });
  }
}

/** Applies `ops` in order inside the caller's transaction. */
export function applyOps(context: ReplicaContext, ops: readonly PayloadOp[]): void {
  const { db, triggers, counters } = context;
  for (const [opIndex, op] of ops.entries()) {
    if (op.kind === "ddl") {
      applyDdl(context, op.sql, opIndex);
    } else if (op.kind === "changeset") {
      applyChangeset(context, op.changeset, opIndex);
    } else {
      try {
        counters.replace(db, op.entries);
      } catch (error) {
        throw diverged(`sequence op ${opIndex} could not be written: ${String(error)}`, { opIndex }, error);
      }
    }
  }
  triggers.resume(db);
}

/**
 * Applies committed entries' ops (decoded, in order) and records `lastIndex` as the applied index,
 * in one transaction; on an error it rolls back and forgets what the rollback undid.
 */
export function applyInTransaction(
  context: ReplicaContext,
  meta: { writeAppliedIndex(index: LogIndex): void },
  decoded: readonly (readonly PayloadOp[])[],
  lastIndex: LogIndex,
): void {
  const { db } = context;
  internalStatement(db, "BEGIN IMMEDIATE").run();
  try {
    for (const ops of decoded) if (ops.length > 0) applyOps(context, ops);
    meta.writeAppliedIndex(lastIndex);
    internalStatement(db, "COMMIT").run();
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    context.triggers.forgetAfterRollback();
    context.counters.invalidate();
    throw error;
  }
}
