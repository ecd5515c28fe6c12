import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { reconnectDelayMs } from "./backoff.ts";

const boundsArbitrary = fc
  .tuple(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }))
  .map(([delayMsMin, extra]) => ({ delayMsMin, delayMsMax: delayMsMin + extra }));
const drawArbitrary = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

test("every delay lies within [delayMsMin, delayMsMax]", () => {
  fc.assert(
    fc.property(boundsArbitrary, fc.nat({ max: 1000 }), drawArbitrary, (bounds, attempt, draw) => {
      const delayMs = reconnectDelayMs(attempt, bounds, () => draw);
      assert.ok(delayMs >= bounds.delayMsMin && delayMs <= bounds.delayMsMax);
    }),
  );
});

test("the ceiling doubles per attempt until the cap", () => {
  const bounds = { delayMsMin: 100, delayMsMax: 1000 };
  const almostOne = 1 - 2 ** -40;
  const ceilings = [0, 1, 2, 3, 4, 10].map((attempt) => reconnectDelayMs(attempt, bounds, () => almostOne));
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1000, 1000]);
});

test("jitter spreads the delay: the same attempt gives different delays for different draws", () => {
  const bounds = { delayMsMin: 50, delayMsMax: 5000 };
  assert.equal(
    reconnectDelayMs(5, bounds, () => 0),
    50,
  );
  assert.ok(reconnectDelayMs(5, bounds, () => 0.5) > 50);
  fc.assert(
    fc.property(fc.nat({ max: 40 }), drawArbitrary, drawArbitrary, (attempt, a, b) => {
      fc.pre(a < b);
      assert.ok(reconnectDelayMs(attempt, bounds, () => a) <= reconnectDelayMs(attempt, bounds, () => b));
    }),
  );
});
