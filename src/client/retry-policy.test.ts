/**
 * Backoff bounds, `Retry-After` parsing and which codes are retried.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  backoffDelayMs,
  codeHandling,
  parseRetryAfterMs,
  provesNotApplied,
  retryAfterMsMax,
} from "./retry-policy.ts";

const retryOptions = fc
  .record({
    attemptsMax: fc.integer({ min: 1, max: 100 }),
    backoffMsMin: fc.nat(1_000),
    spread: fc.nat(60_000),
  })
  .map(({ attemptsMax, backoffMsMin, spread }) => ({
    attemptsMax,
    backoffMsMin,
    backoffMsMax: backoffMsMin + spread,
  }));
const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe("backoff", () => {
  test("every wait lies within [backoffMsMin, backoffMsMax], whatever the retry number", () => {
    fc.assert(
      fc.property(retryOptions, fc.integer({ min: 1, max: 10_000 }), unit, (options, retryNumber, draw) => {
        const delayMs = backoffDelayMs(options, retryNumber, () => draw);
        assert.ok(delayMs >= options.backoffMsMin && delayMs <= options.backoffMsMax);
      }),
    );
  });

  test("the ceiling doubles per retry until the cap: the highest draw never shrinks as retries go on", () => {
    fc.assert(
      fc.property(retryOptions, fc.integer({ min: 1, max: 60 }), (options, retryNumber) => {
        const highest = () => 0.999_999;
        const now = backoffDelayMs(options, retryNumber, highest);
        const next = backoffDelayMs(options, retryNumber + 1, highest);
        assert.ok(next >= now);
        if (options.backoffMsMin >= 1 && now < options.backoffMsMax / 2) assert.ok(next > now);
      }),
    );
  });
});

describe("Retry-After", () => {
  test("delay-seconds, fractions, HTTP dates, absence and garbage", () => {
    const nowMs = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(parseRetryAfterMs("1", nowMs), 1_000);
    assert.equal(parseRetryAfterMs("0", nowMs), 0);
    assert.equal(parseRetryAfterMs(" 2.5 ", nowMs), 2_500);
    assert.equal(parseRetryAfterMs("Thu, 01 Jan 2026 00:00:03 GMT", nowMs), 3_000);
    assert.equal(parseRetryAfterMs("Wed, 31 Dec 2025 23:59:00 GMT", nowMs), 0, "a past date means now");
    assert.equal(parseRetryAfterMs(null, nowMs), undefined);
    assert.equal(parseRetryAfterMs("soon", nowMs), undefined);
    assert.equal(parseRetryAfterMs("-1", nowMs), undefined);
    assert.equal(parseRetryAfterMs("86400", nowMs), retryAfterMsMax, "one wait is bounded");
  });
});

describe("which codes are retried", () => {
  test("failures that depend on the request itself are never retried, nor unknown codes", () => {
    for (const code of [
      "SQL_ERROR",
      "BAD_REQUEST",
      "FORBIDDEN_STATEMENT",
      "NOT_CONFIRMED",
      "INTERNAL",
      "NEW_CODE",
      "toString",
    ]) {
      assert.equal(codeHandling(code), "never", code);
    }
  });

  test("failures of the cluster's state are retried", () => {
    for (const code of [
      "NO_LEADER",
      "SHUTTING_DOWN",
      "LEADERSHIP_TRANSFER",
      "LEADERSHIP_LOST",
      "TIMEOUT",
      "WAL_CLOSED",
      "UNAVAILABLE",
    ]) {
      assert.equal(codeHandling(code), "rediscover", code);
    }
    assert.equal(codeHandling("NOT_LEADER"), "redirect");
    assert.equal(codeHandling("OVERLOADED"), "backoff");
    assert.equal(codeHandling("LEADER_NOT_READY"), "backoff");
    assert.equal(codeHandling("STALE_READ"), "elsewhere");
  });

  test("only codes the server documents as refusals prove a write was not applied", () => {
    for (const code of ["NOT_LEADER", "NO_LEADER", "OVERLOADED", "BAD_REQUEST", "STALE_READ"])
      assert.equal(provesNotApplied(code), true, code);
    for (const code of ["TIMEOUT", "LEADERSHIP_LOST", "NOT_CONFIRMED", "UNAVAILABLE", "NEW_CODE", "toString"])
      assert.equal(provesNotApplied(code), false, code);
  });
});
