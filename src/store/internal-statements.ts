/**
 * The store's own statements on the hot path (request log, AUTOINCREMENT counters, result counts,
 * and the BEGIN, SAVEPOINT, RELEASE, COMMIT and ROLLBACK of every query, batch and apply step),
 * prepared once per connection instead of once per use: `exec` compiles its text every time, with a
 * call of the connection's authorizer per action.
 *
 * Reuse is safe here without the care client statements need (statement-cache.ts): the texts are
 * constants of the store, they run outside the guard's judging (internal mode, nothing to classify),
 * SQLite re-prepares them by itself after a schema change, and they run with `run`, `get` or `all`,
 * which reset the statement even when it fails.
 *
 * Bound: the texts are fixed in the code, so each connection holds at most `internalStatementsMax`;
 * the map goes with its connection (a weak key), so a closed and dropped connection frees them.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";

/** Distinct internal texts per connection; more means a text is built from data, which is a bug. */
export const internalStatementsMax = 32;

const byConnection = new WeakMap<DatabaseSync, Map<string, StatementSync>>();

/** The statement for `sql` on `db`, prepared on first use. `sql` must be a constant text. */
export function internalStatement(db: DatabaseSync, sql: string): StatementSync {
  let statements = byConnection.get(db);
  if (statements === undefined) {
    statements = new Map();
    byConnection.set(db, statements);
  }
  let statement = statements.get(sql);
  if (statement === undefined) {
    assert(statements.size < internalStatementsMax, `more than ${internalStatementsMax} internal statements`);
    statement = db.prepare(sql);
    assert(statement.sourceSQL === sql, "an internal statement is exactly one statement");
    statements.set(sql, statement);
  }
  assert(statements.size <= internalStatementsMax, "internal statements stay within their bound");
  return statement;
}
