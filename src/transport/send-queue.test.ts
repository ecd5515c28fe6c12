import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SendQueue } from "./send-queue.ts";

type Op =
  | { kind: "push"; bytes: number; advanceMs: number }
  | { kind: "shift" }
  | { kind: "expire"; ageMs: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("push" as const),
    bytes: fc.nat({ max: 300 }),
    advanceMs: fc.nat({ max: 20 }),
  }),
  fc.record({ kind: fc.constant("shift" as const) }),
  fc.record({ kind: fc.constant("expire" as const), ageMs: fc.nat({ max: 100 }) }),
);

test("the queue behaves like a bounded FIFO model and never exceeds its bounds", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 2000 }),
      fc.array(opArbitrary, { maxLength: 300 }),
      (messagesMax, bytesMax, ops) => {
        const queue = new SendQueue({ messagesMax, bytesMax });
        const model: { size: number; id: number; atMs: number }[] = [];
        let nowMs = 0;
        let nextId = 0;
        for (const op of ops) {
          if (op.kind === "push") {
            nowMs += op.advanceMs;
            const modelBytes = model.reduce((sum, m) => sum + m.size, 0);
            const fits = model.length < messagesMax && modelBytes + op.bytes <= bytesMax;
            const body = new Uint8Array(op.bytes).fill(nextId % 256);
            assert.equal(queue.push(body, nowMs), fits);
            if (fits) model.push({ size: op.bytes, id: nextId, atMs: nowMs });
            nextId += 1;
          } else if (op.kind === "shift") {
            const expected = model.shift();
            const actual = queue.shift();
            assert.equal(actual?.bytes, expected?.size);
            assert.equal(actual?.queuedAtMs, expected?.atMs);
          } else {
            const cutoff = nowMs - op.ageMs;
            let expired = 0;
            while (model.length > 0 && model[0]!.atMs < cutoff) {
              model.shift();
              expired += 1;
            }
            assert.equal(queue.expire(cutoff).messages, expired);
          }
          assert.equal(queue.length, model.length);
          assert.equal(
            queue.bytes,
            model.reduce((sum, m) => sum + m.size, 0),
          );
          assert.ok(queue.length <= messagesMax && queue.bytes <= bytesMax);
        }
      },
    ),
  );
});

test("clear discards everything and reports what it discarded", () => {
  const queue = new SendQueue({ messagesMax: 10, bytesMax: 1000 });
  queue.push(new Uint8Array(10), 0);
  queue.push(new Uint8Array(20), 1);
  assert.deepEqual(queue.clear(), { messages: 2, bytes: 30 });
  assert.equal(queue.length, 0);
  assert.equal(queue.bytes, 0);
  assert.equal(queue.shift(), undefined);
});
