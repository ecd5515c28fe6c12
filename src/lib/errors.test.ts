/**
 * The error tables agree with each other, and `notLeaderError` gives the one NOT_LEADER shape.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BatonError, ErrorCode, httpStatusByCode, leaderOf, notLeaderError, retryByCode } from "./errors.ts";

describe("error tables", () => {
  const codes = Object.values(ErrorCode);

  test("a code that is never retried, or that redirects, carries no Retry-After", () => {
    for (const code of codes) {
      const { retry, retryAfterSeconds } = retryByCode[code];
      if (retry === "never" || retry === "redirect") assert.equal(retryAfterSeconds, null, code);
      else if (retryAfterSeconds !== null)
        assert.ok(Number.isSafeInteger(retryAfterSeconds) && retryAfterSeconds > 0, code);
    }
  });

  test("a Retry-After goes only with a 503, the status whose meaning it qualifies", () => {
    for (const code of codes) {
      if (retryByCode[code].retryAfterSeconds !== null) assert.equal(httpStatusByCode[code], 503, code);
    }
  });

  test("client errors (4xx) other than NOT_LEADER are never retried", () => {
    for (const code of codes) {
      const status = httpStatusByCode[code];
      if (status >= 400 && status < 500 && code !== ErrorCode.NOT_LEADER)
        assert.equal(retryByCode[code].retry, "never", code);
    }
  });
});

describe("notLeaderError", () => {
  test("a known leader gives NOT_LEADER with {leader: {id, http}}, which leaderOf reads back", () => {
    const error = notLeaderError({ id: "n2", http: "127.0.0.1:4002" });
    assert.equal(error.code, ErrorCode.NOT_LEADER);
    assert.deepEqual(error.details, { leader: { id: "n2", http: "127.0.0.1:4002" } });
    assert.deepEqual(leaderOf(error), { id: "n2", http: "127.0.0.1:4002" });
  });

  test("an unknown leader gives NO_LEADER, which names no leader", () => {
    const error = notLeaderError(null);
    assert.equal(error.code, ErrorCode.NO_LEADER);
    assert.deepEqual(error.details, {});
    assert.equal(leaderOf(error), null);
  });

  test("leaderOf names no leader for other codes or for a NOT_LEADER without an address", () => {
    const leader = { id: "n2", http: "127.0.0.1:4002" };
    assert.equal(leaderOf(new BatonError(ErrorCode.TIMEOUT, "t", { leader })), null);
    assert.equal(
      leaderOf(new BatonError(ErrorCode.NOT_LEADER, "n", { leader: { id: "n2", http: "" } })),
      null,
    );
    assert.equal(leaderOf(new BatonError(ErrorCode.NOT_LEADER, "n", {})), null);
    assert.equal(leaderOf(new Error("plain")), null);
  });
});
