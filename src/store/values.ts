/**
 * Checking what callers bind and shaping what SQLite returns.
 *
 * Invariants: every bound value is one SQLite can store exactly (null, a finite number, a 64-bit
 * integer, text, bytes; booleans become 0 and 1); anything else is `BAD_REQUEST` naming the statement
 * and parameter, never a silent NULL. Every integer read back is exact: a number within ±(2^53 - 1),
 * a bigint beyond (connections read with `readBigInts`, so SQLite never hands us a rounded double).
 */
import type { SQLInputValue, SQLOutputValue } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import type { SqlValue, Statement } from "./types.ts";

const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

export type Binding = {
  readonly named: Readonly<Record<string, SQLInputValue>> | null;
  readonly positional: readonly SQLInputValue[];
};

export type StatementLimits = { readonly statementsMax: number; readonly sqlBytesMax: number };

function badRequest(message: string, details: Record<string, unknown>): BatonError {
  return new BatonError("BAD_REQUEST", message, details);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** One parameter value as SQLite will bind it; throws `BAD_REQUEST` for anything it cannot store exactly. */
export function sqlInputValue(value: unknown, statementIndex: number, parameter: string): SQLInputValue {
  if (value === null || typeof value === "string") return value;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
  } else if (typeof value === "bigint") {
    if (value >= int64Min && value <= int64Max) return value;
  } else if (value instanceof Uint8Array) {
    return value;
  }
  const shown = typeof value === "number" || typeof value === "bigint" ? String(value) : typeof value;
  throw badRequest(
    `statement ${statementIndex} parameter ${parameter}: ${shown} cannot be bound; use null, a boolean, a finite number, a 64-bit integer, a string or bytes`,
    { statementIndex, parameter },
  );
}

/** The checked binding for one statement's `params`. */
export function bindingOf(params: unknown, statementIndex: number): Binding {
  if (params === undefined) return { named: null, positional: [] };
  if (Array.isArray(params)) {
    return {
      named: null,
      positional: params.map((value, i) => sqlInputValue(value, statementIndex, String(i + 1))),
    };
  }
  if (isPlainObject(params)) {
    const named: Record<string, SQLInputValue> = {};
    for (const [name, value] of Object.entries(params))
      named[name] = sqlInputValue(value, statementIndex, name);
    return { named, positional: [] };
  }
  throw badRequest(`statement ${statementIndex}: params must be an array or an object`, { statementIndex });
}

/** Checks the shape and bounds of a batch; returns it typed. */
export function checkStatements(statements: unknown, limits: StatementLimits): readonly Statement[] {
  if (!Array.isArray(statements)) throw badRequest("statements must be an array", {});
  if (statements.length > limits.statementsMax) {
    throw badRequest(`${statements.length} statements in one batch; at most ${limits.statementsMax}`, {
      statementsMax: limits.statementsMax,
    });
  }
  for (const [statementIndex, statement] of statements.entries()) {
    if (!isPlainObject(statement) || typeof statement.sql !== "string") {
      throw badRequest(`statement ${statementIndex} must be an object with a string "sql"`, {
        statementIndex,
      });
    }
    const sqlBytes = Buffer.byteLength(statement.sql, "utf8");
    if (sqlBytes > limits.sqlBytesMax) {
      throw badRequest(
        `statement ${statementIndex} has ${sqlBytes} bytes of SQL; at most ${limits.sqlBytesMax}`,
        {
          statementIndex,
        },
      );
    }
  }
  return statements as readonly Statement[];
}

/** An integer as the store returns it: a number when exact, a bigint otherwise. */
export function exactInteger(value: number | bigint): number | bigint {
  if (typeof value === "number") return value;
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

/** A value read with `readBigInts`, returned to the caller. */
export function resultValue(value: SQLOutputValue): SqlValue {
  return typeof value === "bigint" ? exactInteger(value) : value;
}

/** A row read with `returnArrays`, returned to the caller. */
export function resultRow(row: unknown): SqlValue[] {
  assert(Array.isArray(row), "statements that return rows are read as arrays");
  return (row as SQLOutputValue[]).map(resultValue);
}
