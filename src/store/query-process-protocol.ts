/**
 * The messages between a node and its query processes (`query-process-pool.ts` and
 * `query-process.ts`), sent over the IPC channel with Node's "advanced" serialization (the
 * structured clone), so bigints and byte arrays cross it exactly as the store returns them.
 *
 * A query process answers every query with exactly one reply naming the query's id, in order: it
 * runs one query at a time. An operating error travels as its code, message and details and is
 * rebuilt as the same `BatonError`; anything else thrown while a query ran is a bug and travels as
 * `bug`, which the node treats as any bug of its own.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { QueryOptions, QueryResult, Statement } from "./types.ts";
import type { StatementLimits } from "./values.ts";

/** What a query process is started with (one JSON argument). */
export type QueryProcessSettings = {
  readonly path: string;
  readonly busyTimeoutMs: number;
  readonly limits: StatementLimits;
  /** How often the process checks that the node that started it still lives. */
  readonly watchdogPollMs: number;
};

export type QueryRequest = {
  readonly type: "query";
  readonly id: number;
  readonly statements: readonly Statement[];
  readonly options: QueryOptions;
};

export type SentError = {
  readonly code: string;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
};

export type QueryReply =
  | { readonly type: "ready" }
  | { readonly type: "result"; readonly id: number; readonly result: QueryResult }
  | { readonly type: "error"; readonly id: number; readonly error: SentError }
  | { readonly type: "bug"; readonly id: number; readonly message: string };

/** The reply for a query that threw `error`. */
export function errorReply(id: number, error: unknown): QueryReply {
  if (error instanceof BatonError)
    return { type: "error", id, error: { code: error.code, message: error.message, details: error.details } };
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { type: "bug", id, message };
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ErrorCode, code);
}

/** The error a reply carries, as the node raises it: the same `BatonError`, or an `Error` for a bug. */
export function replyError(reply: QueryReply & { type: "error" | "bug" }, pid: number): Error {
  if (reply.type === "bug") return new Error(`query process ${pid} failed: ${reply.message}`);
  const { code, message, details } = reply.error;
  if (!isErrorCode(code))
    return new Error(`query process ${pid} answered an unknown code ${code}: ${message}`);
  return new BatonError(code, message, { ...details });
}
