import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { jsonSafe, toJson } from "./json-encoding.ts";

test("toJson writes what JSON.stringify writes, bigints anywhere as jsonSafe makes them", () => {
  assert.equal(toJson({ a: [1, "x", null], b: { c: true } }), '{"a":[1,"x",null],"b":{"c":true}}');
  assert.equal(toJson({ small: 7n, big: [2n ** 60n] }), `{"small":7,"big":["${2n ** 60n}"]}`);
  fc.assert(
    fc.property(fc.jsonValue(), fc.bigInt(), (value, big) => {
      assert.equal(toJson(value), JSON.stringify(value));
      const withBig = { value, big };
      assert.deepEqual(JSON.parse(toJson(withBig)), {
        value: JSON.parse(JSON.stringify(value) ?? "null"),
        big: jsonSafe(big),
      });
    }),
  );
});

test("toJson still refuses a circular value", () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  assert.throws(() => toJson(circular), TypeError);
});
