import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { BatonError, isBatonError } from "../lib/errors.ts";
import {
  checkPayloadInSteps,
  decodePayload,
  encodePayload,
  type PayloadOp,
  payloadCheckStepBytes,
} from "./payload.ts";

const opArbitrary: fc.Arbitrary<PayloadOp> = fc.oneof(
  fc.record(
    { kind: fc.constant("ddl" as const), sql: fc.string({ minLength: 1, unit: "grapheme" }) },
    { noNullPrototype: true },
  ),
  fc.record(
    { kind: fc.constant("changeset" as const), changeset: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      kind: fc.constant("sequence" as const),
      entries: fc.array(
        fc.record(
          {
            name: fc.string({ unit: "grapheme" }),
            value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
          },
          { noNullPrototype: true },
        ),
        { maxLength: 4 },
      ),
    },
    { noNullPrototype: true },
  ),
);

/** Recomputes the trailing checksum so that a mutation reaches the structural checks. */
function withValidChecksum(payload: Uint8Array): Uint8Array {
  const copy = payload.slice();
  new DataView(copy.buffer).setUint32(copy.length - 4, crc32(copy.subarray(0, copy.length - 4)));
  return copy;
}

function decodesOrRefuses(bytes: Uint8Array): void {
  try {
    decodePayload(bytes);
  } catch (error) {
    assert.ok(error instanceof BatonError, `garbage must throw a BatonError, got ${String(error)}`);
    assert.ok(error.code === "PAYLOAD_CORRUPT" || error.code === "STORE_VERSION_UNSUPPORTED");
  }
}

describe("payload codec", () => {
  test("decode(encode(ops)) is ops", () => {
    fc.assert(
      fc.property(fc.array(opArbitrary, { maxLength: 8 }), (ops) => {
        assert.deepEqual(decodePayload(encodePayload(ops)), ops);
      }),
    );
  });

  test("an empty payload is the empty op list (no-op entries carry no data)", () => {
    assert.deepEqual(decodePayload(new Uint8Array(0)), []);
    assert.deepEqual(decodePayload(encodePayload([])), []);
  });

  test("any flipped bit or truncation is caught by the checksum", () => {
    fc.assert(
      fc.property(
        fc.array(opArbitrary, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (ops, at, bit) => {
          const payload = encodePayload(ops);
          const flipped = payload.slice();
          flipped[at % flipped.length]! ^= 1 << bit;
          assert.throws(
            () => decodePayload(flipped),
            (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
          );
          assert.throws(
            () => decodePayload(payload.subarray(0, at % payload.length || 1)),
            (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
          );
        },
      ),
    );
  });

  test("structurally bad bodies with a valid checksum still throw, never misdecode", () => {
    fc.assert(
      fc.property(
        fc.array(opArbitrary, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.nat({ max: 255 }),
        (ops, at, value) => {
          const payload = encodePayload(ops);
          const mutated = payload.slice();
          mutated[at % (payload.length - 4)] = value;
          decodesOrRefuses(withValidChecksum(mutated));
        },
      ),
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => decodesOrRefuses(bytes)));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 9, maxLength: 64 }), (bytes) =>
        decodesOrRefuses(withValidChecksum(bytes)),
      ),
    );
  });

  test("an unknown version is STORE_VERSION_UNSUPPORTED, not corruption", () => {
    const payload = encodePayload([{ kind: "ddl", sql: "CREATE TABLE t(id INTEGER PRIMARY KEY)" }]);
    const future = payload.slice();
    future[0] = 2;
    assert.throws(
      () => decodePayload(withValidChecksum(future)),
      (e) => isBatonError(e, "STORE_VERSION_UNSUPPORTED"),
    );
  });

  test("a huge op or entry count in a short payload is refused before allocating", () => {
    const payload = encodePayload([{ kind: "sequence", entries: [] }]);
    const mutated = payload.slice();
    new DataView(mutated.buffer).setUint32(1, 0xffff_fff0);
    assert.throws(
      () => decodePayload(withValidChecksum(mutated)),
      (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
    );
    const entries = payload.slice();
    new DataView(entries.buffer).setUint32(6, 0xffff_fff0);
    assert.throws(
      () => decodePayload(withValidChecksum(entries)),
      (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
    );
  });
});

describe("checking a payload in steps", () => {
  const ops: PayloadOp[] = [
    { kind: "changeset", changeset: new Uint8Array(3 * payloadCheckStepBytes).fill(7) },
  ];

  test("a sound payload passes, a step per turn of the event loop", async () => {
    const payload = encodePayload(ops);
    let turns = 0;
    const counting = setInterval(() => turns++, 0);
    try {
      await checkPayloadInSteps(payload);
    } finally {
      clearInterval(counting);
    }
    assert.ok(turns >= 2, `other work ran between the steps (${turns} timer turns)`);
    assert.deepEqual(decodePayload(payload, true), ops);
  });

  test("a flipped byte anywhere is PAYLOAD_CORRUPT; decodePayload told it was checked skips only the checksum", async () => {
    const payload = encodePayload(ops);
    for (const at of [0, payloadCheckStepBytes + 5, payload.length - 5]) {
      const damaged = payload.slice();
      damaged[at]! ^= 0x10;
      await assert.rejects(
        checkPayloadInSteps(damaged),
        (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
        `byte ${at}`,
      );
    }
    const badChecksum = payload.slice();
    badChecksum[payload.length - 1]! ^= 1;
    assert.deepEqual(decodePayload(badChecksum, true), ops);
    assert.throws(
      () => decodePayload(badChecksum),
      (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
    );
  });
});
