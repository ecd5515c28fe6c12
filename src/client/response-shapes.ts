/**
 * Checks that an answer has the documented shape before the client hands it to the caller.
 *
 * A node is outside the client's control (another version, a proxy, a bug), so a malformed answer is
 * an operating error (`BAD_RESPONSE`), not an assertion failure. The checks cover what the client and
 * its callers rely on: field types, one result per statement, one cell per column.
 */
import type { ExecuteResponse, NodeAddress, QueryResponse, StatusResponse } from "../api/api-types.ts";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isNodeAddress(value: unknown): value is NodeAddress {
  return isRecord(value) && typeof value.id === "string" && typeof value.http === "string";
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/** Rows must be arrays of exactly `width` cells. */
function isRowsOfWidth(value: unknown, width: number): boolean {
  return Array.isArray(value) && value.every((row) => Array.isArray(row) && row.length === width);
}

export function isStatusResponse(body: unknown): body is StatusResponse {
  return (
    isRecord(body) &&
    typeof body.id === "string" &&
    typeof body.role === "string" &&
    isCount(body.term) &&
    (body.leader === null || isNodeAddress(body.leader)) &&
    Array.isArray(body.members)
  );
}

export function isExecuteResponse(body: unknown, statementCount: number): body is ExecuteResponse {
  if (!isRecord(body) || !Array.isArray(body.results) || body.results.length !== statementCount) return false;
  if (!isRecord(body.position) || !isCount(body.position.index) || !isCount(body.position.term)) return false;
  return body.results.every((result: unknown) => {
    if (!isRecord(result) || typeof result.rowsAffected !== "number") return false;
    if (typeof result.lastInsertRowid !== "number" && typeof result.lastInsertRowid !== "string")
      return false;
    if (result.columns === undefined && result.rows === undefined) return true;
    return isStringArray(result.columns) && isRowsOfWidth(result.rows, result.columns.length);
  });
}

export function isQueryResponse(body: unknown, statementCount: number): body is QueryResponse {
  if (!isRecord(body) || !Array.isArray(body.results) || body.results.length !== statementCount) return false;
  if (!isRecord(body.position) || !isCount(body.position.index) || typeof body.node !== "string")
    return false;
  return body.results.every(
    (result: unknown) =>
      isRecord(result) && isStringArray(result.columns) && isRowsOfWidth(result.rows, result.columns.length),
  );
}
