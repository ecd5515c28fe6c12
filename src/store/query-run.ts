/**
 * Running a client query on a read connection: the one implementation, used by the store's own read
 * connection (`Store.query`) and by a query process (`query-process.ts`), so a query meets the same
 * checks, guard, bounds and error mapping wherever it runs.
 *
 * Invariants: every statement of a query runs in one read transaction, which is always ended; the
 * applied index reported is read in that transaction, so it names exactly the state the query read;
 * results stay within `resultRowsMax` rows per statement and `resultBytesMax` bytes per query.
 */
import { assert } from "../lib/assert.ts";
import { columnNames, compileStatement, type ResultBudget, runWithRows } from "./client-statement.ts";
import type { ReadSide } from "./connections.ts";
import { internalStatement } from "./internal-statements.ts";
import type { ReadState, SharedRead } from "./read-turn.ts";
import type { QueryOptions, QueryResult, Statement } from "./types.ts";
import { checkStatements, type StatementLimits } from "./values.ts";

/** Rows one statement may return when the caller sets no bound. */
export const resultRowsMaxDefault = 100_000;

/** Bytes (text and blob bytes, 8 per number) one request's results may hold when the caller sets no bound. */
export const resultBytesMaxDefault = 16 << 20;

/** The budget of one request's results, from the caller's bounds or the defaults. */
export function resultBudget(options: QueryOptions): ResultBudget {
  const bytesMax = options.resultBytesMax ?? resultBytesMaxDefault;
  return { rowsMax: options.resultRowsMax ?? resultRowsMaxDefault, bytesMax, bytesLeft: bytesMax };
}

/** Runs read-only statements on the committed state the connection sees, all in one read transaction. */
export function runQuery(
  side: ReadSide,
  statements: readonly Statement[],
  limits: StatementLimits,
  options: QueryOptions,
): QueryResult {
  const result = runChecked(side, statements, limits, options, null, null);
  assert(result !== null, "a query without a gate always runs");
  return result;
}

/**
 * Decides, inside the query's read transaction and before any client statement runs, whether the
 * query runs here: given the schema version that transaction reads, true to run it, false to end the
 * transaction and return null.
 */
export type QueryGate = (schemaVersion: bigint, statements: readonly { readonly sql: string }[]) => boolean;

/**
 * As `runQuery`, but returns null, having run no client statement, when `gate` says no. With
 * `shared`, the query runs in the turn's shared read transaction when it may, and leaves the
 * transaction open (read-turn.ts).
 */
export function runQueryIf(
  side: ReadSide,
  statements: readonly Statement[],
  limits: StatementLimits,
  options: QueryOptions,
  gate: QueryGate,
  shared: SharedRead | null = null,
): QueryResult | null {
  return runChecked(side, statements, limits, options, gate, shared);
}

/** Begins a read transaction and reads the state it shows. */
function beginRead(side: ReadSide): ReadState {
  const { read, readMeta } = side;
  assert(!read.isTransaction, "a query starts outside a read transaction");
  internalStatement(read, "BEGIN").run();
  const appliedIndex = readMeta.readAppliedIndex();
  // The write connection changes the schema; this connection learns of it from the version.
  const schemaVersion = internalStatement(read, "PRAGMA schema_version").get()?.schema_version;
  assert(typeof schemaVersion === "bigint", "PRAGMA schema_version reads an integer");
  return { appliedIndex, schemaVersion };
}

function runChecked(
  side: ReadSide,
  statements: readonly Statement[],
  limits: StatementLimits,
  options: QueryOptions,
  gate: QueryGate | null,
  shared: SharedRead | null,
): QueryResult | null {
  const { read, readGuard, readStatements } = side;
  const checked = checkStatements(statements, limits);
  const budget = resultBudget(options);
  let state = shared?.reuse() ?? null;
  if (state === null) {
    state = beginRead(side);
    shared?.opened(state);
  }
  try {
    const { appliedIndex, schemaVersion } = state;
    readStatements.useSchemaVersion(schemaVersion);
    if (gate !== null && !gate(schemaVersion, checked)) return null;
    const results = checked.map(({ sql, params }, index) => {
      const compiled = compileStatement(read, readGuard, readStatements, index, sql, params);
      return { columns: columnNames(compiled), rows: runWithRows(readGuard, compiled, budget) };
    });
    return { results, appliedIndex };
  } finally {
    if (shared === null && read.isTransaction) internalStatement(read, "ROLLBACK").run();
  }
}
