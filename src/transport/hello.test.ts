import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { decodeHello, encodeHello, type Hello } from "./hello.ts";

const idText = fc.string({ minLength: 1, maxLength: 60 }).filter((s) => {
  const bytes = Buffer.byteLength(s, "utf8");
  // Lone surrogates do not survive UTF-8; real ids are ASCII.
  return bytes >= 1 && bytes <= 255 && Buffer.from(s, "utf8").toString("utf8") === s;
});

const helloArbitrary: fc.Arbitrary<Hello> = fc.record({
  protocolVersion: fc.nat({ max: 0xffff }),
  incarnation: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString("hex")),
  clusterId: idText,
  nodeId: idText,
});

test("a hello decodes to itself", () => {
  fc.assert(
    fc.property(helloArbitrary, (hello) => {
      assert.deepEqual(decodeHello(encodeHello(hello)), { ok: true, hello: { ...hello } });
    }),
  );
});

test("random bytes never throw: they decode or are reported as malformed", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const result = decodeHello(bytes);
      if (result.ok) assert.ok(result.hello.clusterId.length > 0 && result.hello.nodeId.length > 0);
      else assert.equal(typeof result.detail, "string");
    }),
  );
});

test("a hello cut short or with trailing bytes is malformed", () => {
  const body = encodeHello({
    protocolVersion: 1,
    incarnation: "0123456789abcdef",
    clusterId: "c1",
    nodeId: "n1",
  });
  for (let length = 0; length < body.length; length++)
    assert.equal(decodeHello(body.subarray(0, length)).ok, false);
  assert.equal(decodeHello(new Uint8Array([...body, 0])).ok, false);
});
