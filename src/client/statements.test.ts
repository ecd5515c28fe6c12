/**
 * Statement arguments (an array is always a list) and rows as objects.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { rowsAsObjects, statementList } from "./statements.ts";

describe("statement arguments", () => {
  test("an array is a list of statements; a string or an object is one statement", () => {
    assert.deepEqual(statementList("SELECT 1"), ["SELECT 1"]);
    assert.deepEqual(statementList({ sql: "SELECT ?", params: [1] }), [{ sql: "SELECT ?", params: [1] }]);
    assert.deepEqual(statementList(["SELECT ?", "SELECT 1"]), ["SELECT ?", "SELECT 1"]);
    assert.deepEqual(statementList([["INSERT INTO t VALUES (?)", "x"]]), [["INSERT INTO t VALUES (?)", "x"]]);
  });

  test("values JSON cannot carry, and empty statements, fail with BAD_REQUEST before any request", () => {
    const bad: unknown[] = [
      [],
      "  ",
      [["INSERT ?", 10n]],
      [["INSERT ?", Number.NaN]],
      [["INSERT ?", undefined]],
      [{ sql: "INSERT ?", params: [new Uint8Array(1)] }],
      [{ sql: "INSERT :a", params: { a: Number.POSITIVE_INFINITY } }],
      [{ sql: "" }],
      [42],
      [[1, 2]],
    ];
    for (const input of bad) {
      assert.throws(
        () => statementList(input as string),
        { code: "BAD_REQUEST" },
        JSON.stringify(String(input)),
      );
    }
  });
});

describe("rows as objects", () => {
  test("each row becomes an object with one key per column holding its cell", () => {
    const columns = fc.uniqueArray(fc.string(), { minLength: 1, maxLength: 6 });
    const cell = fc.oneof(fc.constant(null), fc.string(), fc.integer(), fc.boolean());
    const table = columns.chain((names) =>
      fc.record({
        columns: fc.constant(names),
        rows: fc.array(fc.array(cell, { minLength: names.length, maxLength: names.length }), {
          maxLength: 5,
        }),
      }),
    );
    fc.assert(
      fc.property(table, (result) => {
        const objects = rowsAsObjects<Record<string, unknown>>(result);
        assert.equal(objects.length, result.rows.length);
        objects.forEach((object, i) => {
          // Key order follows JavaScript's rules (integer-like names first); `columns` keeps the order.
          assert.deepEqual(Object.keys(object).sort(), [...result.columns].sort());
          for (const [j, column] of result.columns.entries())
            assert.equal(object[column], result.rows[i]?.[j]);
        });
      }),
    );
  });

  test("a column named __proto__ is an ordinary key and a repeated name keeps the last value", () => {
    const [row] = rowsAsObjects<Record<string, unknown>>({
      columns: ["__proto__", "id", "id"],
      rows: [[1, 2, 3]],
    });
    assert.ok(row);
    assert.equal(Object.getPrototypeOf(row), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(row, "__proto__")?.value, 1);
    assert.equal(row.id, 3);
  });
});
