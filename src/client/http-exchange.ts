/**
 * One HTTP request to one node, turned into an `Answer` value: the retry loop decides what to do.
 *
 * This module never throws for anything a network or a server can do; it classifies. It tells apart
 * a connection that was refused (the request certainly never reached the node, so even a write can
 * be sent elsewhere without doubt) from one that broke after the request was sent (the node may have
 * acted on it: a write must only be retried with its same request id). Connections are reused by the
 * `fetch` in use (undici keeps them alive by default in Node).
 */

import type { ErrorBody } from "../api/api-types.ts";
import { assert } from "../lib/assert.ts";
import { parseRetryAfterMs } from "./retry-policy.ts";

/** The subset of `fetch` the client needs; inject one for tests or custom agents. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export type ExchangeRequest = {
  readonly url: string;
  readonly method: "GET" | "POST";
  /** The JSON body, already serialised. */
  readonly body: string | undefined;
  /** Give up on this node after this long. */
  readonly timeoutMs: number;
  /** Aborts on client close or caller abort. */
  readonly signal: AbortSignal;
};

export type Answer =
  | { readonly kind: "success"; readonly status: number; readonly body: unknown }
  | {
      readonly kind: "server-error";
      readonly status: number;
      readonly error: ErrorBody;
      readonly retryAfterMs: number | undefined;
    }
  /** No usable answer; `maybeReceived` is false only when the node certainly never saw the request. */
  | { readonly kind: "unreachable"; readonly maybeReceived: boolean; readonly cause: unknown }
  | { readonly kind: "timed-out" }
  | { readonly kind: "aborted" }
  | { readonly kind: "bad-response"; readonly status: number; readonly message: string };

/** Connection errors after which the request certainly did not reach the node. */
const notSentCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** How deep to look through `cause` chains and aggregate errors for a system error code. */
const causeDepthMax = 8;

/** Collects the `code`s of an error, its causes and aggregated errors, to a bounded depth. */
export function errorCodesOf(error: unknown, depth = 0): string[] {
  if (depth >= causeDepthMax || typeof error !== "object" || error === null) return [];
  const codes: string[] = [];
  const { code, cause, errors } = error as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === "string") codes.push(code);
  codes.push(...errorCodesOf(cause, depth + 1));
  if (Array.isArray(errors)) for (const inner of errors) codes.push(...errorCodesOf(inner, depth + 1));
  return codes;
}

export async function exchange(fetchFn: FetchLike, request: ExchangeRequest): Promise<Answer> {
  assert(request.timeoutMs > 0, `an exchange needs a positive timeout, got ${request.timeoutMs}`);
  assert(request.method === "GET" || request.body !== undefined, "a POST needs a body");
  const timeoutSignal = AbortSignal.timeout(Math.ceil(request.timeoutMs));
  const signal = AbortSignal.any([timeoutSignal, request.signal]);
  const headers: Record<string, string> = { accept: "application/json" };
  if (request.body !== undefined) headers["content-type"] = "application/json";
  let status = 0;
  try {
    const response = await fetchFn(request.url, {
      method: request.method,
      headers,
      body: request.body ?? null,
      signal,
    });
    status = response.status;
    const text = await response.text();
    return interpret(status, text, response.headers.get("retry-after"));
  } catch (error) {
    if (request.signal.aborted) return { kind: "aborted" };
    if (timeoutSignal.aborted) return { kind: "timed-out" };
    const codes = errorCodesOf(error);
    // Headers arrived but the body broke off: the node acted on the request.
    const maybeReceived = status !== 0 || !codes.some((code) => notSentCodes.has(code));
    return { kind: "unreachable", maybeReceived, cause: error };
  }
}

/** Reads a complete answer: our JSON on success, our error body on failure, or a gateway's page. */
function interpret(status: number, text: string, retryAfter: string | null): Answer {
  let body: unknown;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (status >= 200 && status < 300) {
    if (body === undefined) return { kind: "bad-response", status, message: "the answer is not JSON" };
    return { kind: "success", status, body };
  }
  const retryAfterMs = parseRetryAfterMs(retryAfter, Date.now());
  const error = errorBodyOf(body);
  if (error !== undefined) return { kind: "server-error", status, error, retryAfterMs };
  if (status === 502 || status === 503 || status === 504) {
    // A proxy or load balancer answered for a node it could not reach.
    const gateway: ErrorBody = { code: "UNAVAILABLE", message: `the node's gateway answered ${status}` };
    return { kind: "server-error", status, error: gateway, retryAfterMs };
  }
  return { kind: "bad-response", status, message: `HTTP ${status} without an error body` };
}

/** Validates `{error: {code, message, leader?, details?}}`; returns `undefined` when it is not that shape. */
function errorBodyOf(body: unknown): ErrorBody | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return undefined;
  const { code, message, leader, details } = error as Record<string, unknown>;
  if (typeof code !== "string" || code === "") return undefined;
  const leaderValid =
    typeof leader === "object" &&
    leader !== null &&
    typeof (leader as { id?: unknown }).id === "string" &&
    typeof (leader as { http?: unknown }).http === "string";
  return {
    code,
    message: typeof message === "string" ? message : code,
    ...(leaderValid ? { leader: leader as ErrorBody["leader"] } : {}),
    ...(typeof details === "object" && details !== null ? { details: details as ErrorBody["details"] } : {}),
  };
}
