/**
 * The peer wire format: length-prefixed, versioned, checksummed frames, and a streaming decoder.
 *
 * Every frame is a fixed 16-byte header followed by the body (layout in README.md):
 * magic, protocol version, frame type, reserved flags (zero), body length, and a CRC32 computed over
 * the first 12 header bytes and then the body. Covering the header as well as the body means a
 * corrupted type or length is caught too, not only a corrupted body.
 *
 * Invariants of `FrameDecoder`: it never throws on any input (every malformed input becomes a
 * `FrameError` value), it buffers at most one frame plus one incoming chunk (the body length is
 * checked against `frameBytesMax` before any body byte is awaited), and once it reports an error it
 * stays failed: a byte stream cannot be resynchronised safely, so the connection must be closed.
 */
import { crc32 } from "node:zlib";
import { assert } from "../lib/assert.ts";
import { type ByteParts, partsBytes } from "../lib/byte-parts.ts";

/** "BATN" in ASCII, big-endian. */
export const frameMagic = 0x4241544e;
/**
 * 2 added the part frames (types 4 and 5); 3 the `reportApplied` bit of an append's flags byte,
 * which a node of version 2 would drop as a bad message. Nodes of different versions refuse each
 * other at the handshake.
 */
export const protocolVersion = 3;
export const frameHeaderBytes = 16;
/** The smallest and largest `frameBytesMax` a transport accepts (header included). */
export const frameBytesMaxLowest = 1024;
export const frameBytesMaxHighest = 1024 * 1024 * 1024;

export const FrameType = {
  /** First frame on every connection, in both directions: cluster id, node id, version. */
  hello: 1,
  /** An opaque message body for the layer above. */
  message: 2,
  /** Sent before closing a connection that was refused; the body is a UTF-8 reason. */
  refuse: 3,
  /**
   * A piece of a message too large for one write; more pieces follow. The first piece of a message
   * begins with the message's length (u32). Other frames may come between the pieces of a message
   * (see `MessageAssembler`).
   */
  part: 4,
  /** The last piece of a message sent in pieces: the receiver joins them and delivers the message. */
  lastPart: 5,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export type Frame = { readonly type: FrameType; readonly body: Uint8Array };

export type FrameErrorReason =
  | "bad-magic"
  | "unsupported-version"
  | "unknown-frame-type"
  | "reserved-bits-set"
  | "oversized"
  | "bad-checksum"
  | "bad-part"
  | "truncated";

export type FrameError = { readonly reason: FrameErrorReason; readonly detail: string };

const frameTypes: ReadonlySet<number> = new Set(Object.values(FrameType));

/** Writes the 16-byte header for `body` (one buffer, or its parts in order) into `target` at `offset`. */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  type: FrameType,
  body: Uint8Array | ByteParts,
): void {
  assert(offset >= 0 && offset + frameHeaderBytes <= target.length, "frame header does not fit the target");
  const parts = body instanceof Uint8Array ? [body] : body;
  const bodyBytes = partsBytes(parts);
  assert(bodyBytes <= 0xffff_ffff, "frame body longer than a 32-bit length");
  const view = new DataView(target.buffer, target.byteOffset + offset, frameHeaderBytes);
  view.setUint32(0, frameMagic);
  view.setUint8(4, protocolVersion);
  view.setUint8(5, type);
  view.setUint16(6, 0);
  view.setUint32(8, bodyBytes);
  let checksum = crc32(target.subarray(offset, offset + 12));
  for (const part of parts) checksum = crc32(part, checksum);
  view.setUint32(12, checksum);
}

/** Encodes one frame into a fresh buffer (header and body together). */
export function encodeFrame(type: FrameType, body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(frameHeaderBytes + body.length);
  writeFrameHeader(frame, 0, type, body);
  frame.set(body, frameHeaderBytes);
  assert(frame.length === frameHeaderBytes + body.length, "encoded frame has the wrong length");
  return frame;
}

/** What `FrameDecoder.push` found: the complete frames in order, then at most one error. */
export type DecodeResult = { readonly frames: Frame[]; readonly error: FrameError | null };

/**
 * Incremental decoder for one connection's byte stream.
 *
 * Chunks are kept in a list and joined only once a whole frame is present, so a large frame
 * arriving in many small chunks costs one copy, not one per chunk. Every returned body owns its
 * memory (never a view into a larger socket buffer), so the receiver may keep it.
 */
export class FrameDecoder {
  readonly #frameBytesMax: number;
  readonly #chunks: Uint8Array[] = [];
  #bufferedBytes = 0;
  #failed: FrameError | null = null;

  constructor(frameBytesMax: number) {
    assert(Number.isSafeInteger(frameBytesMax), "frameBytesMax must be an integer");
    assert(frameBytesMax >= frameHeaderBytes, "frameBytesMax must hold at least a header");
    this.#frameBytesMax = frameBytesMax;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  get failed(): FrameError | null {
    return this.#failed;
  }

  /** Adds received bytes and returns every frame they complete, or the first error found. */
  push(chunk: Uint8Array): DecodeResult {
    const frames: Frame[] = [];
    if (this.#failed !== null) return { frames, error: this.#failed };
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#bufferedBytes += chunk.length;
    }
    // Each iteration consumes one frame, so the loop is bounded by the bytes buffered.
    while (this.#bufferedBytes >= frameHeaderBytes) {
      const header = this.#peek(frameHeaderBytes);
      const headerError = this.#checkHeader(header);
      if (headerError !== null) return { frames, error: this.#fail(headerError) };
      const view = new DataView(header.buffer, header.byteOffset, frameHeaderBytes);
      const bodyBytes = view.getUint32(8);
      if (this.#bufferedBytes < frameHeaderBytes + bodyBytes) break;
      this.#discard(frameHeaderBytes);
      const type = view.getUint8(5) as FrameType;
      // A piece is copied into its message by the assembler, so it may stay a view.
      const body = this.#consume(bodyBytes, type !== FrameType.part && type !== FrameType.lastPart);
      const expected = view.getUint32(12);
      const actual = crc32(body, crc32(header.subarray(0, 12)));
      if (actual !== expected) {
        return {
          frames,
          error: this.#fail({ reason: "bad-checksum", detail: `crc32 ${actual} != ${expected}` }),
        };
      }
      frames.push({ type, body });
    }
    return { frames, error: null };
  }

  /** Called at end of stream: bytes left over mean the last frame was cut short. */
  finish(): FrameError | null {
    if (this.#failed !== null) return this.#failed;
    if (this.#bufferedBytes === 0) return null;
    return this.#fail({ reason: "truncated", detail: `${this.#bufferedBytes} bytes of an incomplete frame` });
  }

  #checkHeader(header: Uint8Array): FrameError | null {
    assert(header.length === frameHeaderBytes, "header peek has the wrong length");
    const view = new DataView(header.buffer, header.byteOffset, frameHeaderBytes);
    const magic = view.getUint32(0);
    if (magic !== frameMagic) return { reason: "bad-magic", detail: `magic 0x${magic.toString(16)}` };
    const version = view.getUint8(4);
    if (version !== protocolVersion) {
      return { reason: "unsupported-version", detail: `version ${version}, expected ${protocolVersion}` };
    }
    const type = view.getUint8(5);
    if (!frameTypes.has(type)) return { reason: "unknown-frame-type", detail: `type ${type}` };
    const flags = view.getUint16(6);
    if (flags !== 0) return { reason: "reserved-bits-set", detail: `flags 0x${flags.toString(16)}` };
    const bodyBytes = view.getUint32(8);
    if (frameHeaderBytes + bodyBytes > this.#frameBytesMax) {
      return { reason: "oversized", detail: `body ${bodyBytes} bytes, frameBytesMax ${this.#frameBytesMax}` };
    }
    return null;
  }

  #fail(error: FrameError): FrameError {
    this.#failed = error;
    this.#chunks.length = 0;
    this.#bufferedBytes = 0;
    return error;
  }

  /** The first `count` buffered bytes without consuming them; joins leading chunks if needed. */
  #peek(count: number): Uint8Array {
    assert(count <= this.#bufferedBytes, "peek beyond the buffered bytes");
    const first = this.#chunks[0];
    assert(first !== undefined, "buffered bytes without a chunk");
    if (first.length >= count) return first.subarray(0, count);
    let joinedBytes = 0;
    let chunkCount = 0;
    while (joinedBytes < count) joinedBytes += this.#chunks[chunkCount++]!.length;
    const joined = concatOwned(this.#chunks.slice(0, chunkCount), joinedBytes);
    this.#chunks.splice(0, chunkCount, joined);
    return joined.subarray(0, count);
  }

  /** Drops the first `count` bytes (a header already read through `#peek`). */
  #discard(count: number): void {
    const first = this.#chunks[0];
    assert(first !== undefined && first.length >= count, "discard must stay within the first chunk");
    if (first.length === count) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(count);
    this.#bufferedBytes -= count;
  }

  /**
   * Removes and returns the first `count` bytes: as a buffer that owns its memory, or, unless
   * `owned`, as a view into a received chunk when they lie within one.
   */
  #consume(count: number, owned: boolean): Uint8Array {
    assert(count <= this.#bufferedBytes, "consume beyond the buffered bytes");
    const first = this.#chunks[0];
    if (!owned && first !== undefined && first.length >= count) {
      if (first.length === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
      this.#bufferedBytes -= count;
      return first.subarray(0, count);
    }
    const parts: Uint8Array[] = [];
    let remaining = count;
    while (remaining > 0) {
      const chunk = this.#chunks[0]!;
      if (chunk.length <= remaining) {
        parts.push(chunk);
        this.#chunks.shift();
        remaining -= chunk.length;
      } else {
        parts.push(chunk.subarray(0, remaining));
        this.#chunks[0] = chunk.subarray(remaining);
        remaining = 0;
      }
    }
    this.#bufferedBytes -= count;
    assert(this.#bufferedBytes >= 0, "buffered byte count went negative");
    return concatOwned(parts, count);
  }
}

/** Copies `parts` into one new `Uint8Array` of exactly `totalBytes` (never a pooled Buffer slab). */
function concatOwned(parts: readonly Uint8Array[], totalBytes: number): Uint8Array {
  const joined = new Uint8Array(totalBytes);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  assert(offset === totalBytes, "concatenated parts do not add up");
  return joined;
}

export type PartFrameType = typeof FrameType.part | typeof FrameType.lastPart;
export type AssembleResult = { readonly message: Uint8Array | null; readonly error: FrameError | null };
/** The message length at the start of a message's first piece. */
export const partLengthBytes = 4;

/**
 * Joins the pieces of a message sent as `part` frames ending in a `lastPart` frame.
 *
 * One connection carries at most one message in pieces at a time in each direction (the sender
 * finishes one before starting the next), so the pieces received all belong to the message in
 * progress. Its first piece names its length, checked against `messageBytesMax` before anything is
 * kept; the message is allocated once and each piece copied in as it arrives, so no turn of the
 * event loop copies a whole large message. A piece past the named length, a last piece short of it,
 * or a last piece with no message in progress fails the assembler (`bad-part`, `oversized`), which,
 * like the decoder, stays failed: the connection must be closed. A connection's assembler is
 * discarded with it, so a message cut short by a lost connection is never delivered.
 */
export class MessageAssembler {
  readonly #messageBytesMax: number;
  #message: Uint8Array | null = null;
  #filled = 0;
  #failed: FrameError | null = null;

  constructor(messageBytesMax: number) {
    assert(
      Number.isSafeInteger(messageBytesMax) && messageBytesMax >= 0,
      "messageBytesMax must be an integer",
    );
    this.#messageBytesMax = messageBytesMax;
  }

  /** Bytes of the message in progress received so far. */
  get bufferedBytes(): number {
    return this.#filled;
  }

  /**
   * Adds the body of a `part` or `lastPart` frame. `message` is the whole message after its last
   * piece (null while pieces are missing); `error` is set once the assembler has failed.
   */
  add(type: PartFrameType, body: Uint8Array): AssembleResult {
    if (this.#failed !== null) return { message: null, error: this.#failed };
    let piece = body;
    if (this.#message === null) {
      if (type === FrameType.lastPart)
        return this.#fail("bad-part", "a last piece with no message in progress");
      if (body.length < partLengthBytes) return this.#fail("bad-part", "a first piece without its length");
      const total = new DataView(body.buffer, body.byteOffset, partLengthBytes).getUint32(0);
      if (total > this.#messageBytesMax) {
        return this.#fail(
          "oversized",
          `message of ${total} bytes in pieces, at most ${this.#messageBytesMax}`,
        );
      }
      this.#message = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
      this.#filled = 0;
      piece = body.subarray(partLengthBytes);
    }
    const message = this.#message;
    if (this.#filled + piece.length > message.length) {
      return this.#fail("bad-part", `pieces run past the message's ${message.length} bytes`);
    }
    message.set(piece, this.#filled);
    this.#filled += piece.length;
    if (type === FrameType.part) return { message: null, error: null };
    if (this.#filled !== message.length) {
      return this.#fail("bad-part", `last piece at ${this.#filled} of the message's ${message.length} bytes`);
    }
    this.#message = null;
    this.#filled = 0;
    return { message, error: null };
  }

  #fail(reason: FrameErrorReason, detail: string): AssembleResult {
    this.#failed = { reason, detail };
    this.#message = null;
    this.#filled = 0;
    return { message: null, error: this.#failed };
  }
}
