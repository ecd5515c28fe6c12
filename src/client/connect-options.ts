/**
 * Options of `connect` and of each call, their defaults, and their validation.
 *
 * Every bound the client applies is here with its default, so the whole retry budget can be read in
 * one place: a call lasts at most `timeoutMs`, makes at most `retry.attemptsMax` requests, each
 * bounded by `attemptTimeoutMs`, and waits between them within [backoffMsMin, backoffMsMax] (or the
 * server's `Retry-After`, at most `retryAfterMsMax`). Invalid options fail `connect` with `BAD_CONFIG`.
 */
import type { Consistency, Durability } from "../api/api-types.ts";
import { BatonClientError } from "./client-error.ts";
import type { FetchLike } from "./http-exchange.ts";
import { nodesKnownMax, normalizeNodeUrl } from "./node-directory.ts";
import { checkRetryOptions, type RetryOptions, retryOptionsDefault } from "./retry-policy.ts";

export type ConnectOptions = {
  /** Base URLs of some or all nodes (`http://127.0.0.1:4001`); the rest are learned from status. */
  readonly nodes: readonly string[];
  /** Deadline for one call, all attempts and waits included. Default 10 000 ms. */
  readonly timeoutMs?: number;
  /** Deadline for one request to one node. Default half of `timeoutMs`, so a failover always fits. */
  readonly attemptTimeoutMs?: number;
  /** Retry budget; missing fields take their defaults (8 attempts, 25 ms to 1 000 ms backoff). */
  readonly retry?: Partial<RetryOptions>;
  /** Default durability of writes; when unset the server's default applies. */
  readonly durability?: Durability;
  /** Default consistency of reads; when unset the server's default applies and reads go to the leader. */
  readonly consistency?: Consistency;
  /** The `fetch` to use; default the global one (undici in Node, with keep-alive). */
  readonly fetch?: FetchLike;
  /** Re-check who leads, in the background, when the belief is older than this. Default 10 000 ms. */
  readonly leaderCheckIntervalMs?: number;
};

/** Per-call overrides shared by every operation. */
export type CallOptions = {
  readonly timeoutMs?: number;
  readonly attemptTimeoutMs?: number;
  /** Aborts the call (error code `ABORTED`); a write already sent may still be applied. */
  readonly signal?: AbortSignal;
};

export type ExecuteOptions = CallOptions & {
  readonly durability?: Durability;
  /**
   * Idempotency key. Leave unset and the client makes a random UUID per call. Set it only to retry a
   * write whose outcome is unknown (`error.details.requestId`), so the server applies it at most once.
   */
  readonly requestId?: string;
  /**
   * Fencing: apply only if leadership is still in this term (from an earlier answer's `term`);
   * otherwise the write fails `TERM_CHANGED` and nothing was applied.
   */
  readonly expectedTerm?: number;
};

export type QueryOptions = CallOptions & {
  readonly consistency?: Consistency;
  /** Serve only from a node that has applied at least this index. */
  readonly minIndex?: number;
  /** Refuse to serve from a node lagging the leader by more than this. */
  readonly maxLagMs?: number;
};

export type StatusOptions = CallOptions & {
  /** Ask this node (a base URL) rather than whichever answers first. */
  readonly node?: string;
};

export const timeoutMsDefault = 10_000;
export const leaderCheckIntervalMsDefault = 10_000;

/** Options after defaults and validation. */
export type ResolvedOptions = {
  readonly nodes: readonly string[];
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly retry: RetryOptions;
  readonly durability: Durability | undefined;
  readonly consistency: Consistency | undefined;
  readonly fetch: FetchLike;
  readonly leaderCheckIntervalMs: number;
};

/** Bad options fail `connect` with `BAD_CONFIG` and a call with `BAD_REQUEST`. */
type OptionsErrorCode = "BAD_CONFIG" | "BAD_REQUEST";

function badConfig(message: string, code: OptionsErrorCode = "BAD_CONFIG"): BatonClientError {
  return new BatonClientError(code, message);
}

/** Throws `BAD_CONFIG` unless `value` is a positive duration (or undefined). */
export function checkDurationMs(name: string, value: number | undefined, code?: OptionsErrorCode): void {
  if (value === undefined) return;
  if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
    throw badConfig(`${name} must be a positive number of milliseconds, got ${String(value)}`, code);
  }
}

const durabilities: readonly string[] = ["local", "one", "majority", "all"] satisfies Durability[];
const consistencies: readonly string[] = ["linearizable", "leader", "any"] satisfies Consistency[];

/** Throws `BAD_CONFIG` for a durability or consistency level the API does not define. */
export function checkLevels(durability: unknown, consistency: unknown, code?: OptionsErrorCode): void {
  if (durability !== undefined && !durabilities.includes(durability as string)) {
    throw badConfig(`durability must be one of ${durabilities.join(", ")}, got ${String(durability)}`, code);
  }
  if (consistency !== undefined && !consistencies.includes(consistency as string)) {
    throw badConfig(
      `consistency must be one of ${consistencies.join(", ")}, got ${String(consistency)}`,
      code,
    );
  }
}

export function resolveOptions(options: ConnectOptions): ResolvedOptions {
  if (!Array.isArray(options.nodes) || options.nodes.length === 0)
    throw badConfig("nodes must list at least one URL");
  if (options.nodes.length > nodesKnownMax) throw badConfig(`at most ${nodesKnownMax} nodes are supported`);
  const nodes = options.nodes.map((text) => {
    const url = typeof text === "string" ? normalizeNodeUrl(text) : undefined;
    if (url === undefined) throw badConfig(`not a node URL: ${JSON.stringify(text)}`);
    return url;
  });
  checkDurationMs("timeoutMs", options.timeoutMs);
  checkDurationMs("attemptTimeoutMs", options.attemptTimeoutMs);
  checkDurationMs("leaderCheckIntervalMs", options.leaderCheckIntervalMs);
  checkLevels(options.durability, options.consistency);
  const retry: RetryOptions = { ...retryOptionsDefault, ...options.retry };
  const retryProblem = checkRetryOptions(retry);
  if (retryProblem !== undefined) throw badConfig(retryProblem);
  if (options.fetch === undefined && typeof globalThis.fetch !== "function") {
    throw badConfig("no global fetch in this runtime: pass options.fetch");
  }
  const timeoutMs = options.timeoutMs ?? timeoutMsDefault;
  return {
    nodes: [...new Set(nodes)],
    timeoutMs,
    attemptTimeoutMs: Math.min(options.attemptTimeoutMs ?? timeoutMs / 2, timeoutMs),
    retry,
    durability: options.durability,
    consistency: options.consistency,
    fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    leaderCheckIntervalMs: options.leaderCheckIntervalMs ?? leaderCheckIntervalMsDefault,
  };
}
