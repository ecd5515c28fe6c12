/**
 * The campaign judges its history with `test/sim/list-append-checker.ts`. These hand-made
 * histories, in the campaign's own units (microseconds, integer; invocations rounded down,
 * completions rounded up; unknown outcomes without a completion), show that it catches what the
 * campaign relies on it for — a stale read, a lost acknowledged append, a duplicate, a read that is
 * not a prefix of the final list — and that it does not flag what the campaign's clients legitimately
 * produce: an unknown append that did or did not take effect, a library retry under one request id,
 * and a `local` append lost across a failover.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type AppendOp,
  checkListAppend,
  type ListAppendOp,
  type ReadOp,
} from "../sim/list-append-checker.ts";

function append(
  value: number,
  invokedAt: number,
  completedAt: number | null,
  outcome: AppendOp["outcome"] = "ok",
  durability: AppendOp["durability"] = "majority",
): AppendOp {
  return { kind: "append", client: value, key: 1, value, durability, invokedAt, completedAt, outcome };
}

function read(values: number[], invokedAt: number, completedAt: number): ReadOp {
  return {
    kind: "read",
    client: 99,
    key: 1,
    consistency: "linearizable",
    node: "n1",
    invokedAt,
    completedAt,
    outcome: "ok",
    values,
  };
}

function kinds(history: ListAppendOp[], final: number[]): string[] {
  return checkListAppend(history, new Map([[1, final]])).violations.map((v) => v.kind);
}

describe("the list-append checker on hand-made campaign histories", () => {
  test("a clean history passes, with unknown appends applied or not", () => {
    const history = [
      append(1, 1_000, 2_000),
      append(2, 2_500, null, "unknown"),
      append(3, 2_600, null, "unknown"),
      read([1], 3_000, 4_000),
      append(4, 4_100, 5_000),
      read([1, 2, 4], 5_100, 6_000),
    ];
    assert.deepEqual(kinds(history, [1, 2, 4]), []);
  });

  test("a stale read: a linearizable read misses a value an earlier read returned", () => {
    const history = [
      append(1, 1_000, 2_000),
      append(2, 1_000, null, "unknown"),
      read([1, 2], 3_000, 4_000),
      read([1], 4_500, 5_000),
    ];
    assert.deepEqual(kinds(history, [1, 2]), ["stale-read"]);
  });

  test("a stale read: a linearizable read misses an append acknowledged before it began", () => {
    const history = [append(1, 1_000, 2_000), append(2, 2_100, 3_000), read([1], 3_001, 4_000)];
    assert.deepEqual(kinds(history, [1, 2]), ["missed-write"]);
  });

  test("overlapping operations have no order: a read concurrent with an append may miss it", () => {
    const history = [append(1, 1_000, 2_000), append(2, 2_100, 3_000), read([1], 3_000, 4_000)];
    assert.deepEqual(kinds(history, [1, 2]), []);
  });

  test("a lost append: acknowledged at majority, missing from the final list", () => {
    const history = [append(1, 1_000, 2_000), append(2, 2_100, 3_000)];
    const result = checkListAppend(history, new Map([[1, [1]]]));
    assert.deepEqual(
      result.violations.map((v) => v.kind),
      ["lost-write"],
    );
    assert.equal(result.lost.majority.lost, 1);
  });

  test("a local append lost across a failover is counted, not flagged", () => {
    const history = [append(1, 1_000, 2_000), append(2, 2_100, 3_000, "ok", "local")];
    const result = checkListAppend(history, new Map([[1, [1]]]));
    assert.deepEqual(result.violations, []);
    assert.deepEqual(result.lost.local, { acknowledged: 1, lost: 1 });
  });

  test("a duplicate: one value applied twice, even when its attempts were retries under one request id", () => {
    const history = [append(1, 1_000, null, "unknown"), append(1, 3_000, 4_000), read([1, 1], 5_000, 6_000)];
    assert.deepEqual(kinds(history, [1, 1]), ["duplicate"]);
    assert.deepEqual(kinds([append(1, 1_000, null, "unknown"), append(1, 3_000, 4_000)], [1]), []);
  });

  test("a read that is not a prefix of the final list, and a value nobody appended", () => {
    assert.deepEqual(
      kinds([append(1, 1_000, 2_000), append(2, 1_000, 2_000), read([2], 1_500, 4_000)], [1, 2]),
      ["not-prefix"],
    );
    assert.deepEqual(kinds([append(1, 1_000, 2_000), append(2, 1_000, 2_000, "failed")], [1, 2]), [
      "phantom",
    ]);
  });
});
