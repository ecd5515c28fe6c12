import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { joinParts, partsBytes, sliceParts } from "./byte-parts.ts";

test("sliceParts: any range of parts taken as one sequence, as views", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 8 }),
      fc.nat(),
      fc.nat(),
      (parts, a, b) => {
        const whole = Buffer.concat(parts);
        const start = whole.length === 0 ? 0 : a % (whole.length + 1);
        const end = start + (whole.length === start ? 0 : b % (whole.length - start + 1));
        const slices = sliceParts(parts, start, end);
        assert.deepEqual(Buffer.concat(slices), whole.subarray(start, end));
        assert.ok(
          slices.every((slice) => parts.some((part) => part.buffer === slice.buffer)),
          "views, not copies",
        );
      },
    ),
  );
});

test("joinParts and partsBytes: one part is itself, several are copied in order", () => {
  const one = Uint8Array.of(1, 2);
  assert.equal(joinParts([one]), one);
  assert.deepEqual(joinParts([one, new Uint8Array(0), Uint8Array.of(3)]), Uint8Array.of(1, 2, 3));
  assert.equal(partsBytes([one, Uint8Array.of(3)]), 3);
  assert.equal(partsBytes([]), 0);
});
