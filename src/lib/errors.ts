/**
 * Operating errors with permanent codes.
 *
 * Callers match on `.code`, never on the message: codes are part of the public contract and are
 * never renamed or reused; messages may change. Every code has exactly one HTTP status in
 * `httpStatusByCode`, an exhaustive table, so the HTTP layer never guesses.
 */

export const ErrorCode = {
  // Request and SQL errors.
  BAD_REQUEST: "BAD_REQUEST",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  SQL_ERROR: "SQL_ERROR",
  FORBIDDEN_STATEMENT: "FORBIDDEN_STATEMENT",
  NOT_A_QUERY: "NOT_A_QUERY",
  NOT_FOUND: "NOT_FOUND",
  METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
  // Cluster state.
  NOT_LEADER: "NOT_LEADER",
  NO_LEADER: "NO_LEADER",
  LEADERSHIP_TRANSFER: "LEADERSHIP_TRANSFER",
  /** The leader has not yet committed an entry of its term, so it cannot serve linearizable reads (thesis §6.4). */
  LEADER_NOT_READY: "LEADER_NOT_READY",
  TIMEOUT: "TIMEOUT",
  NOT_CONFIRMED: "NOT_CONFIRMED",
  STALE_READ: "STALE_READ",
  OVERLOADED: "OVERLOADED",
  SHUTTING_DOWN: "SHUTTING_DOWN",
  /** A write's leader lost leadership before its durability level was confirmed: outcome unknown, retry with the same requestId. */
  LEADERSHIP_LOST: "LEADERSHIP_LOST",
  /** A peer message that does not decode; the node drops it. */
  BAD_MESSAGE: "BAD_MESSAGE",
  // Storage.
  WAL_CORRUPT: "WAL_CORRUPT",
  WAL_CLOSED: "WAL_CLOSED",
  WAL_IO: "WAL_IO",
  SNAPSHOT_CORRUPT: "SNAPSHOT_CORRUPT",
  STORE_CORRUPT: "STORE_CORRUPT",
  /** A log entry's store payload fails its checksum or does not decode: never applied. */
  PAYLOAD_CORRUPT: "PAYLOAD_CORRUPT",
  /** A store file or payload written by a newer format version than this build understands. */
  STORE_VERSION_UNSUPPORTED: "STORE_VERSION_UNSUPPORTED",
  /** A replica could not apply a committed payload exactly: its data differs from the leader's. */
  STORE_DIVERGED: "STORE_DIVERGED",
  // Peer transport.
  TRANSPORT_LISTEN_FAILED: "TRANSPORT_LISTEN_FAILED",
  // Configuration.
  BAD_CONFIG: "BAD_CONFIG",
  INTERNAL: "INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The one mapping from error code to HTTP status. Exhaustive: adding a code without a status fails type-checking. */
export const httpStatusByCode: { readonly [K in ErrorCode]: number } = {
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  SQL_ERROR: 400,
  FORBIDDEN_STATEMENT: 400,
  NOT_A_QUERY: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_LEADER: 409,
  NO_LEADER: 503,
  LEADERSHIP_TRANSFER: 503,
  LEADER_NOT_READY: 503,
  TIMEOUT: 504,
  NOT_CONFIRMED: 504,
  STALE_READ: 503,
  OVERLOADED: 503,
  SHUTTING_DOWN: 503,
  LEADERSHIP_LOST: 503,
  BAD_MESSAGE: 400,
  WAL_CORRUPT: 500,
  WAL_CLOSED: 503,
  WAL_IO: 500,
  SNAPSHOT_CORRUPT: 500,
  STORE_CORRUPT: 500,
  PAYLOAD_CORRUPT: 500,
  STORE_VERSION_UNSUPPORTED: 500,
  STORE_DIVERGED: 500,
  TRANSPORT_LISTEN_FAILED: 500,
  BAD_CONFIG: 400,
  INTERNAL: 500,
};

export class BatonError extends Error {
  override name = "BatonError";
  readonly code: ErrorCode;
  /** Structured, JSON-safe detail for the caller (for example which statement failed). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

export function isBatonError(error: unknown, code?: ErrorCode): error is BatonError {
  return error instanceof BatonError && (code === undefined || error.code === code);
}
