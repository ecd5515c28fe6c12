/**
 * The bounds on one API request, in one place (DESIGN.md §1: nothing a client sends may starve the
 * replica loop).
 *
 * `request-validation.ts` enforces them at the HTTP edge, the client checks the ones it can before
 * sending, and the node passes `statementsPerBatchMax` and `sqlBytesMax` to the store, so a batch the
 * HTTP layer accepts is never refused deeper down for its size, and the reverse.
 */
export const requestLimits = {
  /** Statements in one execute or query batch. */
  statementsPerBatchMax: 1000,
  /** UTF-8 bytes of SQL text in one statement (1 MiB). */
  sqlBytesMax: 1 << 20,
  /** Parameters bound to one statement: SQLite's own limit (`SQLITE_MAX_VARIABLE_NUMBER`). */
  paramsPerStatementMax: 32_766,
  /** Characters in a `requestId`. */
  requestIdLengthMax: 128,
  /** The longest `timeoutMs` or `maxLagMs` a request may ask for (10 minutes). */
  timeoutMsMax: 10 * 60 * 1000,
} as const;

export type RequestLimits = typeof requestLimits;
