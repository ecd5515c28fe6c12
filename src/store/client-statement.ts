/**
 * Compiling and running one client statement under the statement guard, and naming its failures.
 *
 * Invariants: a client statement compiles and runs only while the guard judges it (so the guard sees
 * every action, including those a PRAGMA table function takes while running); a string holding more
 * than one statement, or a statement the authorizer never saw (VACUUM), is refused before it runs;
 * every failure becomes a `BatonError` naming the statement by its 0-based index, with SQLite's own
 * message in `details.sqliteMessage` for SQL errors. A statement the connection's cache holds is
 * reused (statement-cache.ts says why that is safe); its parameters are checked, and it runs under
 * the guard, on every use exactly as a freshly compiled one.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import { sqlRemainderIsBlank } from "./sql-text.ts";
import { type ClientMode, copyStatementClass, StatementCache } from "./statement-cache.ts";
import type { StatementClass, StatementGuard } from "./statement-guard.ts";
import type { SqlValue } from "./types.ts";
import { type Binding, bindingOf, resultRow } from "./values.ts";

/** A client statement compiled under the guard, with what the guard learned about it. */
export type CompiledStatement = {
  readonly index: number;
  readonly sql: string;
  readonly statement: StatementSync;
  readonly binding: Binding;
  /** This use's classification: a fresh copy when the statement came from the cache. */
  readonly statementClass: StatementClass;
  readonly mode: ClientMode;
  /** The cache that may hold the statement; a failed run drops it from there. */
  readonly cache: StatementCache;
};

const sqliteRangeError = 25;
/** SQLITE_TOOBIG: a string or blob passed the connection's length limit. */
const sqliteTooBig = 18;

/** node:sqlite's codes for a caller's mistake: SQLITE_RANGE binding, unknown names, no statement. */
const badRequestCodes = new Set([
  "ERR_SQLITE_ERROR",
  "ERR_INVALID_STATE",
  "ERR_INVALID_ARG_TYPE",
  "ERR_INVALID_ARG_VALUE",
]);

/** The `BatonError` for a failure of statement `index`, preferring the guard's reason when it denied. */
export function statementError(
  error: unknown,
  index: number,
  statementClass: StatementClass | null,
): BatonError {
  const denial = statementClass?.denial ?? null;
  if (denial !== null) {
    return new BatonError(
      denial.code,
      `statement ${index}: ${denial.message}`,
      { statementIndex: index },
      { cause: error },
    );
  }
  if (error instanceof BatonError) return error;
  const failure = error as { code?: unknown; errcode?: unknown; message?: unknown };
  const message = typeof failure.message === "string" ? failure.message : String(error);
  if (failure.code === "ERR_SQLITE_ERROR" && failure.errcode === sqliteTooBig) {
    return new BatonError(
      "VALUE_TOO_LARGE",
      `statement ${index}: a string or blob passes the node's bound (${message})`,
      { statementIndex: index },
      { cause: error },
    );
  }
  if (failure.code === "ERR_SQLITE_ERROR" && failure.errcode !== sqliteRangeError) {
    return new BatonError(
      "SQL_ERROR",
      `statement ${index}: ${message}`,
      { statementIndex: index, sqliteMessage: message, sqliteCode: failure.errcode },
      { cause: error },
    );
  }
  if (badRequestCodes.has(String(failure.code))) {
    // Binding problems (more positional values than placeholders, an unknown named parameter) and
    // text without any statement in it.
    return new BatonError(
      "BAD_REQUEST",
      `statement ${index}: ${message}`,
      { statementIndex: index },
      { cause: error },
    );
  }
  throw error;
}

/**
 * The compiled statement `index` of a batch or query: from the connection's cache when it holds
 * `sql`, otherwise compiled under the guard (refusing multi-statement strings and unclassifiable
 * statements) and kept when the cache may keep it.
 */
export function compileStatement(
  db: DatabaseSync,
  guard: StatementGuard,
  cache: StatementCache,
  index: number,
  sql: string,
  params: unknown,
): CompiledStatement {
  const binding = bindingOf(params, index);
  const mode = cache.mode;
  const cached = cache.get(sql);
  if (cached !== undefined) {
    assert(cached.statementClass.denial === null, "a cached statement was approved by the guard");
    const statementClass = copyStatementClass(cached.statementClass);
    return { index, sql, statement: cached.statement, binding, statementClass, mode, cache };
  }
  const statementClass = guard.newClass();
  let statement: StatementSync;
  try {
    statement = guard.judging(mode, statementClass, () => db.prepare(sql));
  } catch (error) {
    throw statementError(error, index, statementClass);
  }
  const source = statement.sourceSQL;
  if (!sql.startsWith(source)) {
    throw new BatonError("BAD_REQUEST", `statement ${index}: SQL text is not valid Unicode`, {
      statementIndex: index,
    });
  }
  if (!sqlRemainderIsBlank(sql.slice(source.length))) {
    throw new BatonError(
      "BAD_REQUEST",
      `statement ${index} holds more than one SQL statement; send each as its own entry of the batch`,
      { statementIndex: index },
    );
  }
  if (statementClass.callbacks === 0) refuseUnlessNoOp(db, mode, index, source);
  if (StatementCache.isCacheable(sql, statementClass)) cache.set(sql, { statement, statementClass });
  return { index, sql, statement, binding, statementClass, mode, cache };
}

/** Opcodes of a program that changes nothing (`JournalMode` only when it merely reads the mode). */
const noOpOpcodes = new Set(["Init", "Halt", "Goto", "Transaction", "Noop"]);

/**
 * A statement the authorizer never saw is either a no-op (`DROP TABLE IF EXISTS` of a missing table,
 * `CREATE INDEX IF NOT EXISTS` of an existing one) or something SQLite does not authorize at all
 * (VACUUM). SQLite's own compiled program tells them apart: only a program of no-op instructions
 * may run, and only in a batch (a no-op DDL statement is no query).
 */
function refuseUnlessNoOp(db: DatabaseSync, mode: ClientMode, index: number, source: string): void {
  assert(source.length > 0, "a compiled statement has source text");
  if (mode === "query") {
    throw new BatonError("NOT_A_QUERY", `statement ${index} is not a query; send it as an execute`, {
      statementIndex: index,
    });
  }
  let program: Record<string, unknown>[];
  try {
    program = db.prepare(`EXPLAIN ${source}`).all();
  } catch {
    program = [{ opcode: "unknown" }]; // EXPLAIN EXPLAIN … does not compile: not a no-op we can vouch for.
  }
  const changesNothing = program.every(
    (instruction) =>
      noOpOpcodes.has(String(instruction.opcode)) ||
      (instruction.opcode === "JournalMode" && instruction.p3 === -1n),
  );
  if (!changesNothing) {
    throw new BatonError(
      "FORBIDDEN_STATEMENT",
      `statement ${index}: statements the authorizer cannot classify (VACUUM and the like) are not allowed`,
      { statementIndex: index },
    );
  }
}

function withBinding<T>(compiled: CompiledStatement, call: (...args: never[]) => T): T {
  const { named, positional } = compiled.binding;
  const invoke = call as unknown as (...args: unknown[]) => T;
  return named === null ? invoke(...positional) : invoke(named, ...positional);
}

/** Runs a statement that returns no rows; returns SQLite's change count and last rowid. */
export function runWithoutRows(
  guard: StatementGuard,
  compiled: CompiledStatement,
): { changes: bigint; lastInsertRowid: bigint } {
  try {
    const result = guard.judging(compiled.mode, compiled.statementClass, () =>
      withBinding(compiled, compiled.statement.run.bind(compiled.statement)),
    );
    return { changes: BigInt(result.changes), lastInsertRowid: BigInt(result.lastInsertRowid) };
  } catch (error) {
    compiled.cache.forget(compiled.sql, compiled.statement);
    throw statementError(error, compiled.index, compiled.statementClass);
  }
}

/** What one request's results may still take: shared by its statements, spent as rows arrive. */
export type ResultBudget = { readonly rowsMax: number; bytesLeft: number; readonly bytesMax: number };

/** An estimate of a value's size in a response: text and blob bytes, 8 for a number. */
function valueBytes(value: SqlValue): number {
  if (typeof value === "string") return value.length;
  if (value instanceof Uint8Array) return value.byteLength;
  return 8;
}

/**
 * Runs a statement that returns rows, at most `budget.rowsMax` of them and within the request's
 * remaining bytes; past either the answer is `RESULT_TOO_LARGE`, as soon as the row that crosses it
 * arrives (a hostile query cannot grow the node's memory past the bound first).
 */
export function runWithRows(
  guard: StatementGuard,
  compiled: CompiledStatement,
  budget: ResultBudget,
): SqlValue[][] {
  const rowsMax = budget.rowsMax;
  assert(Number.isSafeInteger(rowsMax) && rowsMax >= 0, "rowsMax is a non-negative integer");
  const { statement, statementClass, index } = compiled;
  statement.setReturnArrays(true);
  statement.setReadBigInts(true);
  const rows: SqlValue[][] = [];
  try {
    guard.judging(compiled.mode, statementClass, () => {
      for (const row of withBinding(compiled, statement.iterate.bind(statement))) {
        if (rows.length === rowsMax) {
          throw new BatonError("RESULT_TOO_LARGE", `statement ${index} returns more than ${rowsMax} rows`, {
            statementIndex: index,
            rowsMax,
          });
        }
        const values = resultRow(row);
        for (const value of values) budget.bytesLeft -= valueBytes(value);
        if (budget.bytesLeft < 0) {
          throw new BatonError(
            "RESULT_TOO_LARGE",
            `the results pass ${budget.bytesMax} bytes at statement ${index}, row ${rows.length}`,
            { statementIndex: index, resultBytesMax: budget.bytesMax },
          );
        }
        rows.push(values);
      }
    });
  } catch (error) {
    // node:sqlite does not reset a statement whose `iterate` failed; its next use would fail again.
    compiled.cache.forget(compiled.sql, statement);
    throw statementError(error, index, statementClass);
  }
  return rows;
}

/**
 * Column names by statement. A cached statement is reused only while the schema it was compiled
 * under stands (statement-cache.ts), and its names cannot change before it is dropped, so they are
 * read from SQLite once per statement; entries go with their statements.
 */
const namesByStatement = new WeakMap<CompiledStatement["statement"], readonly string[]>();

/** The result column names of a compiled statement; empty for statements that return no rows. */
export function columnNames(compiled: CompiledStatement): readonly string[] {
  const known = namesByStatement.get(compiled.statement);
  if (known !== undefined) return known;
  const names = Object.freeze(compiled.statement.columns().map((column) => column.name));
  namesByStatement.set(compiled.statement, names);
  return names;
}
