/**
 * The one validator of API request bodies, run up front, before anything reaches the node.
 *
 * Every malformed request gets `BAD_REQUEST` with a message that names the offending field; no
 * unknown field is silently ignored (a typo such as `durabilty` must not downgrade a payment to the
 * default durability). The output is a normalized request the node can trust: statements as
 * `{sql, params}`, enums checked, numbers bounded by `requestLimits`, the bounds the store applies too.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { Consistency, Durability, SqlValue } from "./api-types.ts";
import { requestLimits } from "./request-limits.ts";

export type NormalizedStatement = {
  readonly sql: string;
  readonly params: readonly SqlValue[] | Readonly<Record<string, SqlValue>>;
};

export type NormalizedExecute = {
  readonly statements: readonly NormalizedStatement[];
  readonly durability: Durability | null;
  readonly requestId: string | null;
  /** Run only while the leader is in exactly this term (fencing); null: any term. */
  readonly expectedTerm: number | null;
  readonly timeoutMs: number | null;
};

export type NormalizedQuery = {
  readonly statements: readonly NormalizedStatement[];
  readonly consistency: Consistency;
  readonly minIndex: number | null;
  readonly maxLagMs: number | null;
  readonly timeoutMs: number | null;
};

const durabilities: readonly Durability[] = ["local", "one", "majority", "all"];
const consistencies: readonly Consistency[] = ["linearizable", "leader", "any"];

function badRequest(message: string): BatonError {
  return new BatonError(ErrorCode.BAD_REQUEST, message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKnownFields(body: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key))
      throw badRequest(`unknown field ${JSON.stringify(key)} in ${where}; allowed: ${allowed.join(", ")}`);
  }
}

function checkValue(value: unknown, where: string): SqlValue {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  throw badRequest(`${where} must be null, a boolean, a finite number or a string`);
}

function normalizeParams(params: unknown, where: string): NormalizedStatement["params"] {
  if (params === undefined) return [];
  const count = Array.isArray(params)
    ? params.length
    : isPlainObject(params)
      ? Object.keys(params).length
      : 0;
  if (count > requestLimits.paramsPerStatementMax)
    throw badRequest(`${where} has more than ${requestLimits.paramsPerStatementMax} parameters`);
  if (Array.isArray(params)) return params.map((value, i) => checkValue(value, `${where}[${i}]`));
  if (isPlainObject(params)) {
    const named: Record<string, SqlValue> = {};
    for (const [name, value] of Object.entries(params)) {
      if (!/^[:@$]?[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        throw badRequest(`${where} has a bad parameter name ${JSON.stringify(name)}`);
      named[name] = checkValue(value, `${where}.${name}`);
    }
    return named;
  }
  throw badRequest(`${where} must be an array or an object`);
}

function normalizeSql(sql: unknown, where: string): string {
  if (typeof sql !== "string") throw badRequest(`${where} must be a string of SQL`);
  if (sql.trim() === "") throw badRequest(`${where} is empty`);
  if (Buffer.byteLength(sql) > requestLimits.sqlBytesMax)
    throw badRequest(`${where} exceeds ${requestLimits.sqlBytesMax} bytes`);
  return sql;
}

function normalizeStatement(statement: unknown, i: number): NormalizedStatement {
  const where = `statements[${i}]`;
  if (typeof statement === "string") return { sql: normalizeSql(statement, where), params: [] };
  if (Array.isArray(statement)) {
    if (statement.length === 0) throw badRequest(`${where} is an empty array; expected ["sql", ...params]`);
    const [sql, ...params] = statement;
    return { sql: normalizeSql(sql, `${where}[0]`), params: normalizeParams(params, `${where} parameters`) };
  }
  if (isPlainObject(statement)) {
    checkKnownFields(statement, ["sql", "params"], where);
    return {
      sql: normalizeSql(statement.sql, `${where}.sql`),
      params: normalizeParams(statement.params, `${where}.params`),
    };
  }
  throw badRequest(`${where} must be "sql", ["sql", ...params] or {sql, params}`);
}

function normalizeStatements(value: unknown): NormalizedStatement[] {
  if (!Array.isArray(value)) throw badRequest("statements must be an array");
  if (value.length === 0) throw badRequest("statements is empty: a batch needs at least one statement");
  if (value.length > requestLimits.statementsPerBatchMax)
    throw badRequest(`statements has more than ${requestLimits.statementsPerBatchMax} entries`);
  return value.map(normalizeStatement);
}

function optionalInteger(value: unknown, field: string, min: number, max: number): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw badRequest(`${field} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function optionalEnum<T extends string>(value: unknown, field: string, allowed: readonly T[]): T | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw badRequest(`${field} must be one of ${allowed.join(", ")}`);
  }
  return value as T;
}

export function normalizeExecute(body: unknown): NormalizedExecute {
  if (!isPlainObject(body)) throw badRequest("the body must be a JSON object");
  checkKnownFields(
    body,
    ["statements", "durability", "requestId", "expectedTerm", "timeoutMs"],
    "the execute request",
  );
  const requestId = body.requestId;
  if (requestId !== undefined && requestId !== null) {
    if (
      typeof requestId !== "string" ||
      requestId.length === 0 ||
      requestId.length > requestLimits.requestIdLengthMax
    ) {
      throw badRequest(
        `requestId must be a non-empty string of at most ${requestLimits.requestIdLengthMax} characters`,
      );
    }
  }
  return {
    statements: normalizeStatements(body.statements),
    durability: optionalEnum(body.durability, "durability", durabilities),
    requestId: typeof requestId === "string" ? requestId : null,
    expectedTerm: optionalInteger(body.expectedTerm, "expectedTerm", 1, Number.MAX_SAFE_INTEGER),
    timeoutMs: optionalInteger(body.timeoutMs, "timeoutMs", 1, requestLimits.timeoutMsMax),
  };
}

export function normalizeQuery(body: unknown): NormalizedQuery {
  if (!isPlainObject(body)) throw badRequest("the body must be a JSON object");
  checkKnownFields(
    body,
    ["statements", "consistency", "minIndex", "maxLagMs", "timeoutMs"],
    "the query request",
  );
  return {
    statements: normalizeStatements(body.statements),
    consistency: optionalEnum(body.consistency, "consistency", consistencies) ?? "linearizable",
    minIndex: optionalInteger(body.minIndex, "minIndex", 0, Number.MAX_SAFE_INTEGER),
    maxLagMs: optionalInteger(body.maxLagMs, "maxLagMs", 0, requestLimits.timeoutMsMax),
    timeoutMs: optionalInteger(body.timeoutMs, "timeoutMs", 1, requestLimits.timeoutMsMax),
  };
}
