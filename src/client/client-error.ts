/**
 * The one error type the client throws for operating failures, and the client's own error codes.
 *
 * `code` is either a server code (`NOT_LEADER`, `SQL_ERROR`, … from `src/lib/errors.ts`, imported as a
 * type only, so the client carries no server code at run time) or one of the client-side codes below.
 * Codes are permanent and callers match on them; messages may change. Codes a newer server adds pass
 * through unchanged, which is why the type stays open to any string.
 */
import type { ErrorCode } from "../lib/errors.ts";

/** Failures the client itself detects; they never come from a server. */
export const ClientErrorCode = {
  /** No node answered within the deadline or the attempt budget (refused, reset, unreachable). */
  UNAVAILABLE: "UNAVAILABLE",
  /** The client was closed before or while the call ran. */
  CLIENT_CLOSED: "CLIENT_CLOSED",
  /** The caller's `signal` aborted the call. */
  ABORTED: "ABORTED",
  /** A node answered something that is not the documented API (not JSON, missing fields). */
  BAD_RESPONSE: "BAD_RESPONSE",
} as const;

export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Every code a `BatonClientError` may carry; open-ended so that codes added to the server pass through. */
export type BatonClientErrorCode = ErrorCode | ClientErrorCode | (string & {});

export type BatonClientErrorInit = {
  readonly status?: number | undefined;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly node?: string | undefined;
  readonly cause?: unknown;
};

export class BatonClientError extends Error {
  override name = "BatonClientError";
  /** The server's stable code, or a client-side code from `ClientErrorCode`. */
  readonly code: BatonClientErrorCode;
  /** The HTTP status of the answer, or `undefined` when no node answered. */
  readonly status: number | undefined;
  /**
   * Structured detail: the server's `details`, plus what the client adds — `attempts` (how many
   * requests it made), `requestId` and `maybeApplied` for writes (true when some attempt may have
   * reached the leader, so the outcome is unknown and a retry must reuse `requestId`).
   */
  readonly details: Readonly<Record<string, unknown>>;
  /** The base URL of the node that answered, or of the last node tried. */
  readonly node: string | undefined;

  constructor(code: BatonClientErrorCode, message: string, init: BatonClientErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.status = init.status;
    this.details = init.details ?? {};
    this.node = init.node;
  }

  /** A copy carrying extra details, used to stamp the attempt count and request id on the final error. */
  withDetails(extra: Readonly<Record<string, unknown>>): BatonClientError {
    const copy = new BatonClientError(this.code, this.message, {
      status: this.status,
      details: { ...this.details, ...extra },
      node: this.node,
      cause: this.cause,
    });
    copy.stack = this.stack;
    return copy;
  }
}

export function isBatonClientError(error: unknown, code?: BatonClientErrorCode): error is BatonClientError {
  return error instanceof BatonClientError && (code === undefined || error.code === code);
}
