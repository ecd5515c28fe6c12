import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import {
  type DecodeResult,
  encodeFrame,
  type Frame,
  FrameDecoder,
  type FrameError,
  FrameType,
  frameHeaderBytes,
  frameMagic,
  MessageAssembler,
  type PartFrameType,
  partLengthBytes,
  protocolVersion,
} from "./frame.ts";

const frameBytesMax = 4096;
const frameTypes = Object.values(FrameType);

const frameArbitrary: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...frameTypes),
  body: fc.uint8Array({ maxLength: 300 }),
});

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Splits `bytes` at the given (unsorted, possibly repeated) cut points. */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

type Outcome = { frames: Frame[]; error: FrameError | null };

/** Feeds every chunk, then signals end of stream; the decoder must never throw. */
function decodeAll(chunks: readonly Uint8Array[], max = frameBytesMax): Outcome {
  const decoder = new FrameDecoder(max);
  const frames: Frame[] = [];
  let result: DecodeResult = { frames: [], error: null };
  for (const chunk of chunks) {
    result = decoder.push(chunk);
    frames.push(...result.frames);
    if (result.error !== null) return { frames, error: result.error };
  }
  return { frames, error: decoder.finish() };
}

function plain(frame: Frame): { type: number; body: number[] } {
  return { type: frame.type, body: [...frame.body] };
}

function header(overrides: {
  magic?: number;
  version?: number;
  type?: number;
  flags?: number;
  length?: number;
}) {
  const bytes = new Uint8Array(frameHeaderBytes);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, overrides.magic ?? frameMagic);
  view.setUint8(4, overrides.version ?? protocolVersion);
  view.setUint8(5, overrides.type ?? FrameType.message);
  view.setUint16(6, overrides.flags ?? 0);
  view.setUint32(8, overrides.length ?? 0);
  return bytes;
}

describe("frame codec", () => {
  test("any sequence of frames decodes to itself however the stream is chunked", () => {
    fc.assert(
      fc.property(
        fc.array(frameArbitrary, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, cuts) => {
          const stream = concat(frames.map((f) => encodeFrame(f.type, f.body)));
          const outcome = decodeAll(split(stream, cuts));
          assert.equal(outcome.error, null);
          assert.deepEqual(outcome.frames.map(plain), frames.map(plain));
        },
      ),
    );
  });

  test("fuzz: random bytes never throw and never yield an impossible frame", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        const outcome = decodeAll(split(bytes, cuts), 512);
        for (const frame of outcome.frames) {
          assert.ok(frameTypes.includes(frame.type));
          assert.ok(frameHeaderBytes + frame.body.length <= 512);
        }
      }),
    );
  });

  test("fuzz: random bytes with a valid header prefix never throw", () => {
    const validHeader = fc.record({ type: fc.constantFrom(...frameTypes), length: fc.nat({ max: 600 }) });
    fc.assert(
      fc.property(validHeader, fc.uint8Array({ maxLength: 700 }), (h, rest) => {
        const outcome = decodeAll([header({ type: h.type, length: h.length }), rest], 512);
        // Only a checksum collision (probability 2^-32) could yield a frame from random bytes.
        assert.ok(outcome.error !== null || outcome.frames.length <= 1);
      }),
    );
  });

  // Cutting out exactly one whole frame leaves a valid stream that no per-frame check can flag
  // (TCP never does that inside a connection), so the property is: every decoded frame is one that
  // was sent, byte for byte and in order; nothing is invented; and any other damage is reported.
  test("fuzz: a corrupted stream yields only frames that were sent, exactly, or reports an error", () => {
    const corruption = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 20 }),
      }),
      fc.record({
        kind: fc.constant("delete" as const),
        at: fc.nat(),
        count: fc.integer({ min: 1, max: 20 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(frameArbitrary, { minLength: 1, maxLength: 5 }),
        fc.array(corruption, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (frames, corruptions, cuts) => {
          const original = concat(frames.map((f) => encodeFrame(f.type, f.body)));
          let damaged: Buffer = Buffer.from(original);
          for (const c of corruptions) damaged = corrupt(damaged, c);
          const outcome = decodeAll(split(new Uint8Array(damaged), cuts));
          assert.ok(
            isSubsequence(outcome.frames.map(plain), frames.map(plain)),
            "decoded a frame never sent",
          );
          if (outcome.error === null) {
            // Every byte of the damaged stream became a frame: re-encoding reproduces it exactly.
            const reencoded = concat(outcome.frames.map((f) => encodeFrame(f.type, f.body)));
            assert.ok(Buffer.from(reencoded).equals(damaged));
            if (!damaged.equals(original))
              assert.ok(outcome.frames.length < frames.length, "damage unnoticed");
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  test("each malformed header is reported with its reason", () => {
    const cases: [Uint8Array, string][] = [
      [header({ magic: 0x47455420 }), "bad-magic"],
      [header({ version: protocolVersion + 1 }), "unsupported-version"],
      [header({ type: 99 }), "unknown-frame-type"],
      [header({ flags: 1 }), "reserved-bits-set"],
      [header({ length: frameBytesMax }), "oversized"],
    ];
    for (const [bytes, reason] of cases) {
      assert.equal(new FrameDecoder(frameBytesMax).push(bytes).error?.reason, reason);
    }
  });

  test("an oversized length is refused from the header alone, before any body byte arrives", () => {
    const decoder = new FrameDecoder(frameBytesMax);
    const result = decoder.push(header({ length: 0xffff_ffff }));
    assert.equal(result.error?.reason, "oversized");
    assert.equal(decoder.bufferedBytes, 0);
  });

  test("the largest allowed frame passes and one byte more does not", () => {
    const largest = new Uint8Array(frameBytesMax - frameHeaderBytes).fill(7);
    assert.equal(decodeAll([encodeFrame(FrameType.message, largest)]).frames[0]?.body.length, largest.length);
    const tooLarge = encodeFrame(FrameType.message, new Uint8Array(largest.length + 1));
    assert.equal(decodeAll([tooLarge]).error?.reason, "oversized");
  });

  test("a flipped body bit, type or length is caught by the checksum", () => {
    const frame = encodeFrame(FrameType.message, new Uint8Array([1, 2, 3, 4, 5]));
    for (const offset of [5, frameHeaderBytes + 2]) {
      const damaged = frame.slice();
      damaged[offset]! ^= offset === 5 ? 0b11 : 1; // message (2) -> hello (1) for the type byte
      assert.equal(decodeAll([damaged]).error?.reason, "bad-checksum");
    }
    const shorter = frame.slice();
    shorter[11] = 4; // body length 5 -> 4
    assert.equal(decodeAll([shorter]).error?.reason, "bad-checksum");
  });

  test("a stream cut inside a frame reports truncation at end of stream", () => {
    const frame = encodeFrame(FrameType.message, new Uint8Array(100));
    assert.equal(decodeAll([frame.subarray(0, 50)]).error?.reason, "truncated");
    assert.equal(decodeAll([frame.subarray(0, 5)]).error?.reason, "truncated");
  });

  test("after an error the decoder stays failed and yields no further frames", () => {
    const decoder = new FrameDecoder(frameBytesMax);
    assert.equal(decoder.push(header({ magic: 1 })).error?.reason, "bad-magic");
    const again = decoder.push(encodeFrame(FrameType.message, new Uint8Array(3)));
    assert.equal(again.error?.reason, "bad-magic");
    assert.deepEqual(again.frames, []);
  });

  test("decoded bodies own their memory: reusing the input buffer does not change them", () => {
    const chunk = Buffer.from(encodeFrame(FrameType.message, new Uint8Array([9, 9, 9])));
    const body = new FrameDecoder(frameBytesMax).push(chunk).frames[0]!.body;
    chunk.fill(0);
    assert.deepEqual([...body], [9, 9, 9]);
    assert.equal(body.byteLength, body.buffer.byteLength);
  });
});

/** Whether `items` appear in `within` in the same order (not necessarily adjacent). */
function isSubsequence<T>(items: readonly T[], within: readonly T[]): boolean {
  let next = 0;
  for (const candidate of within) {
    if (next < items.length && isDeepStrictEqual(candidate, items[next])) next += 1;
  }
  return next === items.length;
}

type Corruption =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number };

function corrupt(bytes: Buffer, c: Corruption): Buffer {
  if (bytes.length === 0) return bytes;
  const at = c.at % bytes.length;
  const copy = Buffer.from(bytes);
  switch (c.kind) {
    case "flip":
      copy[at]! ^= 1 << c.bit;
      return copy;
    case "set":
      copy[at] = c.value;
      return copy;
    case "truncate":
      return copy.subarray(0, at);
    case "insert":
      return Buffer.concat([copy.subarray(0, at), c.bytes, copy.subarray(at)]);
    case "delete":
      return Buffer.concat([copy.subarray(0, at), copy.subarray(at + c.count)]);
  }
}

describe("MessageAssembler", () => {
  const first = (length: number, ...bytes: number[]): Uint8Array => {
    const piece = new Uint8Array(partLengthBytes + bytes.length);
    new DataView(piece.buffer).setUint32(0, length);
    piece.set(bytes, partLengthBytes);
    return piece;
  };

  test("joins pieces into the message of the length its first piece names, after the last piece", () => {
    const assembler = new MessageAssembler(10);
    assert.deepEqual(assembler.add(FrameType.part, first(5, 1, 2)), { message: null, error: null });
    assert.deepEqual(assembler.add(FrameType.part, Uint8Array.of(3)), { message: null, error: null });
    assert.equal(assembler.bufferedBytes, 3);
    const done = assembler.add(FrameType.lastPart, Uint8Array.of(4, 5));
    assert.deepEqual(done, { message: Uint8Array.of(1, 2, 3, 4, 5), error: null });
    assert.equal(assembler.bufferedBytes, 0);
    assert.equal(done.message?.byteOffset, 0, "the message owns its memory");
    assert.equal(done.message?.buffer.byteLength, 5);
    assert.equal(assembler.add(FrameType.part, first(2, 7)).error, null, "the next message starts afresh");
    assert.deepEqual(assembler.add(FrameType.lastPart, Uint8Array.of(8)).message, Uint8Array.of(7, 8));
  });

  test("a message named longer than the bound fails at its first piece, and the assembler stays failed", () => {
    const assembler = new MessageAssembler(10);
    const failed = assembler.add(FrameType.part, first(11, 1));
    assert.equal(failed.error?.reason, "oversized");
    assert.equal(failed.message, null);
    assert.equal(assembler.bufferedBytes, 0);
    assert.equal(assembler.add(FrameType.part, first(2, 1)).error?.reason, "oversized");
    const exact = new MessageAssembler(10);
    exact.add(FrameType.part, first(10, 0, 1, 2, 3, 4, 5));
    assert.equal(
      exact.add(FrameType.lastPart, Uint8Array.of(6, 7, 8, 9)).message?.length,
      10,
      "the bound fits",
    );
  });

  test("pieces that disagree with the named length, or a last piece alone, fail with bad-part", () => {
    const cases: [string, [PartFrameType, Uint8Array][]][] = [
      [
        "past the length",
        [
          [FrameType.part, first(3, 1, 2)],
          [FrameType.lastPart, Uint8Array.of(3, 4)],
        ],
      ],
      [
        "short of it",
        [
          [FrameType.part, first(4, 1, 2)],
          [FrameType.lastPart, Uint8Array.of(3)],
        ],
      ],
      ["a last piece alone", [[FrameType.lastPart, first(1, 1)]]],
      ["a first piece without its length", [[FrameType.part, Uint8Array.of(0, 0, 1)]]],
    ];
    for (const [what, pieces] of cases) {
      const assembler = new MessageAssembler(10);
      const results = pieces.map(([type, piece]) => assembler.add(type, piece));
      assert.equal(results.at(-1)?.error?.reason, "bad-part", what);
      assert.ok(
        results.every((r) => r.message === null),
        `${what}: nothing delivered`,
      );
    }
  });
});
