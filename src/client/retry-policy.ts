/**
 * When to retry, and how long to wait first.
 *
 * Which codes are retried, and how, is not decided here: `retryByCode` in `src/lib/errors.ts` holds
 * the rule for every server code, and the HTTP layer sends `Retry-After` from the same table. In
 * short, only failures that say "try again, possibly elsewhere" are retried — an unreachable node, a
 * node without a leader, shutting down, overloaded, transferring leadership, a timeout, a stale read,
 * a redirect. Everything else (bad SQL, a bad request, a forbidden statement, a write that did not
 * reach its durability level) surfaces at once: retrying cannot change the answer, and for
 * `NOT_CONFIRMED` the write is already in the log. Waits grow exponentially from `backoffMsMin`,
 * are capped at `backoffMsMax`, are jittered so that many clients do not retry in lock step, and are
 * never shorter than the server's `Retry-After`.
 */
import { assert } from "../lib/assert.ts";
import { type ErrorCode, type RetryKind, retryByCode } from "../lib/errors.ts";
import { ClientErrorCode } from "./client-error.ts";

export type RetryOptions = {
  /** Requests made for one call, at most; the first try counts. */
  readonly attemptsMax: number;
  /** The shortest wait between attempts. */
  readonly backoffMsMin: number;
  /** The longest wait between attempts, before `Retry-After` is applied. */
  readonly backoffMsMax: number;
};

export const retryOptionsDefault: RetryOptions = { attemptsMax: 8, backoffMsMin: 25, backoffMsMax: 1_000 };

/** A `Retry-After` longer than this is treated as this: a bound on any single wait. */
export const retryAfterMsMax = 60_000;

/** The exponent stops growing here, which keeps `2 ** exponent` exact and far above any sane cap. */
const backoffExponentMax = 30;

/**
 * How a server code is handled: the server's own rule from `retryByCode`, the one table the HTTP
 * layer also reads for `Retry-After`. `UNAVAILABLE` (no node reachable, or a gateway's 502/503/504
 * without our JSON body) is the client's own code: find the leader again and retry. Unknown codes
 * are never retried: retrying a failure the client does not understand could repeat a write, and
 * the safe default for the unknown is to report it.
 */
export function codeHandling(code: string): RetryKind {
  if (code === ClientErrorCode.UNAVAILABLE) return "rediscover";
  return isServerCode(code) ? retryByCode[code].retry : "never";
}

/**
 * Whether an answer with this code proves that the attempt did not apply the write. Unknown codes
 * and client codes do not: the safe answer is "it may have been applied".
 */
export function provesNotApplied(code: string): boolean {
  return isServerCode(code) && retryByCode[code].writeOutcome === "not-applied";
}

function isServerCode(code: string): code is ErrorCode {
  return Object.hasOwn(retryByCode, code);
}

/** Checks user-supplied retry options; throws a descriptive message for the caller to wrap. */
export function checkRetryOptions(options: RetryOptions): string | undefined {
  if (!Number.isSafeInteger(options.attemptsMax) || options.attemptsMax < 1) {
    return `retry.attemptsMax must be a positive integer, got ${options.attemptsMax}`;
  }
  if (!Number.isFinite(options.backoffMsMin) || options.backoffMsMin < 0) {
    return `retry.backoffMsMin must be a non-negative number, got ${options.backoffMsMin}`;
  }
  if (!Number.isFinite(options.backoffMsMax) || options.backoffMsMax < options.backoffMsMin) {
    return `retry.backoffMsMax must be at least backoffMsMin, got ${options.backoffMsMax}`;
  }
  return undefined;
}

/**
 * The wait before retry number `retryNumber` (1 for the first retry): uniform in
 * [backoffMsMin, ceiling] where the ceiling doubles per retry from backoffMsMin up to backoffMsMax.
 * `random` returns a number in [0, 1).
 */
export function backoffDelayMs(options: RetryOptions, retryNumber: number, random: () => number): number {
  assert(
    Number.isSafeInteger(retryNumber) && retryNumber >= 1,
    `retry number must be >= 1, got ${retryNumber}`,
  );
  const exponent = Math.min(retryNumber, backoffExponentMax);
  const ceilingMs = Math.min(options.backoffMsMax, Math.max(options.backoffMsMin, 1) * 2 ** exponent);
  const draw = random();
  assert(draw >= 0 && draw < 1, `random() must return a number in [0, 1), got ${draw}`);
  const delayMs = options.backoffMsMin + draw * (ceilingMs - options.backoffMsMin);
  assert(delayMs >= options.backoffMsMin && delayMs <= options.backoffMsMax, "backoff escaped its bounds");
  return delayMs;
}

/**
 * Parses a `Retry-After` header: delay-seconds (fractions tolerated) or an HTTP date. Returns the
 * wait in milliseconds, capped at `retryAfterMsMax`, or `undefined` when absent or unreadable.
 */
export function parseRetryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (text === "") return undefined;
  let waitMs: number;
  if (/^\d+(\.\d+)?$/.test(text)) {
    waitMs = Number(text) * 1_000;
  } else if (/^[A-Za-z]{3}, /.test(text)) {
    // An IMF-fixdate such as "Wed, 21 Oct 2015 07:28:00 GMT"; anything else is not a Retry-After.
    const dateMs = Date.parse(text);
    if (Number.isNaN(dateMs)) return undefined;
    waitMs = Math.max(0, dateMs - nowMs);
  } else {
    return undefined;
  }
  const cappedMs = Math.min(waitMs, retryAfterMsMax);
  assert(cappedMs >= 0 && cappedMs <= retryAfterMsMax, "Retry-After escaped its bounds");
  return cappedMs;
}
