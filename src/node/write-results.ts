/** A write's results as the HTTP API answers them (integers beyond 2^53 as decimal strings). */
import type { ExecuteResponse } from "../api/api-types.ts";
import { jsonSafe } from "../api/json-encoding.ts";
import type { ExecuteStatementResult } from "../store/types.ts";

export function encodeResults(results: readonly ExecuteStatementResult[]): ExecuteResponse["results"] {
  return results.map((r) => ({
    rowsAffected: r.rowsAffected,
    lastInsertRowid: jsonSafe(r.lastInsertRowid) as number | string,
    ...(r.columns === undefined
      ? {}
      : { columns: r.columns, rows: (r.rows ?? []).map((row) => row.map(jsonSafe)) as never }),
  }));
}
