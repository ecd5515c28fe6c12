/**
 * Statement input and row output: checking what the caller passes, shaping what the server returns.
 *
 * Rule for arguments: an array is always a LIST of statements, never one statement in tuple form, so
 * `execute(["INSERT … VALUES (?)", "x"])` is two statements, not one with a parameter. Write one
 * statement with parameters as `[["INSERT … VALUES (?)", "x"]]` or `{sql, params}`. There is no
 * guessing from the values, because no guess is right for `["SELECT ?", "SELECT 1"]`.
 *
 * Checks here are the cheap, certain ones (shape and JSON-ability), so that an obvious mistake fails
 * at once with `BAD_REQUEST` instead of after a round trip; the server remains the judge of the SQL.
 */
import type {
  QueryStatementResult,
  ResultValue,
  SqlValue,
  Statement,
  StatementObject,
} from "../api/api-types.ts";
import { requestLimits } from "../api/request-limits.ts";
import { assert } from "../lib/assert.ts";
import { BatonClientError } from "./client-error.ts";

/**
 * Statements in one call, at most: the server's own bound on a batch, checked here so that an
 * oversized call fails at once with `BAD_REQUEST` instead of after a round trip.
 */
export const statementsPerCallMax = requestLimits.statementsPerBatchMax;

/** One statement (string or object form) or a list of statements in any form. */
export type StatementsInput = string | StatementObject | readonly Statement[];

function badRequest(message: string): BatonClientError {
  return new BatonClientError("BAD_REQUEST", message, { status: undefined });
}

function checkValue(value: unknown, where: string): asserts value is SqlValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return;
    throw badRequest(`${where} is ${value}, which JSON cannot carry`);
  }
  if (typeof value === "bigint") {
    throw badRequest(`${where} is a bigint: pass integers beyond 2^53 as decimal strings`);
  }
  throw badRequest(`${where} must be null, a boolean, a number or a string, got ${typeof value}`);
}

/** Checks one statement in any form; throws `BAD_REQUEST` naming the statement. */
export function checkStatement(statement: unknown, position: number): asserts statement is Statement {
  const where = `statement ${position}`;
  if (typeof statement === "string") {
    if (statement.trim() === "") throw badRequest(`${where} is empty`);
    return;
  }
  if (Array.isArray(statement)) {
    const [sql, ...params] = statement as unknown[];
    if (typeof sql !== "string" || sql.trim() === "")
      throw badRequest(`${where} must start with its SQL text`);
    for (const [index, value] of params.entries()) checkValue(value, `${where} parameter ${index + 1}`);
    return;
  }
  if (typeof statement === "object" && statement !== null) {
    const { sql, params } = statement as { sql?: unknown; params?: unknown };
    if (typeof sql !== "string" || sql.trim() === "") throw badRequest(`${where} needs a non-empty "sql"`);
    if (params === undefined) return;
    if (Array.isArray(params)) {
      for (const [index, value] of params.entries()) checkValue(value, `${where} parameter ${index + 1}`);
    } else if (typeof params === "object" && params !== null) {
      for (const [name, value] of Object.entries(params)) checkValue(value, `${where} parameter ${name}`);
    } else {
      throw badRequest(`${where} "params" must be an array or an object`);
    }
    return;
  }
  throw badRequest(`${where} must be a string, an array or {sql, params}`);
}

/** Turns the caller's argument into the list sent on the wire, checking every statement. */
export function statementList(input: StatementsInput): readonly Statement[] {
  const list: readonly Statement[] = Array.isArray(input) ? input : [input as string | StatementObject];
  if (list.length === 0) throw badRequest("no statements to send");
  if (list.length > statementsPerCallMax) {
    throw badRequest(
      `${list.length} statements in one call; the client sends at most ${statementsPerCallMax}`,
    );
  }
  for (const [index, statement] of list.entries()) checkStatement(statement, index + 1);
  assert(list.length > 0 && list.length <= statementsPerCallMax, "statement count escaped its bounds");
  return list;
}

/**
 * Converts row arrays to objects keyed by column name. When two columns share a name (a join's
 * `a.id, b.id`) the later one wins; use the raw form, or aliases, to keep both. Keys are defined
 * as own data properties, so a column named `__proto__` is an ordinary key. Key order follows
 * JavaScript's rules (integer-like names such as "0" come first); `columns` keeps the SQL order.
 */
export function rowsAsObjects<Row>(result: QueryStatementResult): Row[] {
  const { columns, rows } = result;
  return rows.map((row, rowIndex) => {
    assert(
      row.length === columns.length,
      `row ${rowIndex} has ${row.length} cells for ${columns.length} columns`,
    );
    const entries = columns.map((column, index): [string, ResultValue] => [column, row[index] ?? null]);
    return Object.fromEntries(entries) as Row;
  });
}
