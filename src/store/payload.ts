/**
 * The entry payload: the ordered ops that reproduce one leader batch on a replica.
 *
 * Layout (integers big-endian):
 *
 *   u8  format version (1)
 *   u32 op count
 *   ops, each: u8 kind, then
 *     1 ddl        u32 byte length, UTF-8 SQL text of one DDL statement
 *     2 changeset  u32 byte length, SQLite session changeset bytes
 *     3 sequence   u32 entry count, entries: u32 name length, UTF-8 table name, i64 value:
 *                  the complete contents of sqlite_sequence after the batch
 *   u32 CRC-32 of every byte before it
 *
 * Invariants: ops keep statement order (DDL is not in changesets, so the interleaving is the only
 * record of which rows changed under which schema); `decodePayload(encodePayload(ops))` equals ops;
 * decoding checks the checksum first, then every length against the bytes that remain, so garbage
 * throws `PAYLOAD_CORRUPT` (an unknown version `STORE_VERSION_UNSUPPORTED`) and is never applied. A
 * zero-length payload is the empty op list: the log's no-op entries carry no data.
 */
import { crc32 } from "node:zlib";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";

export const payloadFormatVersion = 1;

/** Ops in one payload, at most: a batch has at most one changeset and one DDL op per statement. */
export const payloadOpsMax = 1_000_000;

/** One AUTOINCREMENT counter (a row of sqlite_sequence) after the batch. */
export type SequenceEntry = { readonly name: string; readonly value: bigint };

export type PayloadOp =
  | { readonly kind: "ddl"; readonly sql: string }
  | { readonly kind: "changeset"; readonly changeset: Uint8Array }
  | { readonly kind: "sequence"; readonly entries: readonly SequenceEntry[] };

const opKindCode = { ddl: 1, changeset: 2, sequence: 3 } as const;
const headerBytes = 5;
const trailerBytes = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

type EncodedOp = {
  readonly kind: PayloadOp["kind"];
  readonly parts: readonly Uint8Array[];
  readonly bytes: number;
};

function encodeSequence(entries: readonly SequenceEntry[]): Uint8Array[] {
  const parts: Uint8Array[] = [u32(entries.length)];
  for (const entry of entries) {
    const name = encoder.encode(entry.name);
    const value = new Uint8Array(8);
    new DataView(value.buffer).setBigInt64(0, entry.value);
    parts.push(u32(name.length), name, value);
  }
  return parts;
}

function u32(value: number): Uint8Array {
  assert(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, `u32 out of range: ${value}`);
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

function encodeOp(op: PayloadOp): EncodedOp {
  let parts: Uint8Array[];
  if (op.kind === "ddl") {
    const sql = encoder.encode(op.sql);
    parts = [u32(sql.length), sql];
  } else if (op.kind === "changeset") {
    parts = [u32(op.changeset.length), op.changeset];
  } else {
    parts = encodeSequence(op.entries);
  }
  return { kind: op.kind, parts, bytes: 1 + parts.reduce((sum, part) => sum + part.length, 0) };
}

export function encodePayload(ops: readonly PayloadOp[]): Uint8Array {
  assert(ops.length <= payloadOpsMax, `payload of ${ops.length} ops exceeds ${payloadOpsMax}`);
  const encoded = ops.map(encodeOp);
  const total = headerBytes + encoded.reduce((sum, op) => sum + op.bytes, 0) + trailerBytes;
  const payload = new Uint8Array(total);
  const view = new DataView(payload.buffer);
  payload[0] = payloadFormatVersion;
  view.setUint32(1, ops.length);
  let offset = headerBytes;
  for (const op of encoded) {
    payload[offset++] = opKindCode[op.kind];
    for (const part of op.parts) {
      payload.set(part, offset);
      offset += part.length;
    }
  }
  assert(offset === total - trailerBytes, "payload encoding filled exactly the computed size");
  view.setUint32(offset, crc32(payload.subarray(0, offset)));
  return payload;
}

function corrupt(message: string, details: Record<string, unknown> = {}): BatonError {
  return new BatonError("PAYLOAD_CORRUPT", `store payload: ${message}`, details);
}

/** A bounds-checked reader over the payload body. */
class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #end: number;
  offset: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = start;
    this.#end = end;
  }

  #need(count: number, what: string): void {
    if (count > this.#end - this.offset) throw corrupt(`${what} runs past the end`, { offset: this.offset });
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#bytes[this.offset++]!;
  }

  u32(what: string): number {
    this.#need(4, what);
    const value = this.#view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  i64(what: string): bigint {
    this.#need(8, what);
    const value = this.#view.getBigInt64(this.offset);
    this.offset += 8;
    return value;
  }

  bytes(what: string): Uint8Array {
    const length = this.u32(`${what} length`);
    this.#need(length, what);
    const slice = this.#bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  text(what: string): string {
    const bytes = this.bytes(what);
    try {
      return decoder.decode(bytes);
    } catch {
      throw corrupt(`${what} is not valid UTF-8`, { offset: this.offset });
    }
  }

  get remaining(): number {
    return this.#end - this.offset;
  }
}

function decodeSequence(reader: Reader): PayloadOp {
  const count = reader.u32("sequence entry count");
  // Each entry takes at least 12 bytes, so a count beyond that is garbage (and would allocate hugely).
  if (count > reader.remaining / 12) throw corrupt("sequence entry count exceeds the payload");
  const entries: SequenceEntry[] = [];
  for (let i = 0; i < count; i++) {
    const name = reader.text("sequence name");
    entries.push({ name, value: reader.i64("sequence value") });
  }
  return { kind: "sequence", entries };
}

function decodeOp(reader: Reader): PayloadOp {
  const kind = reader.u8("op kind");
  if (kind === opKindCode.ddl) {
    const sql = reader.text("ddl text");
    if (sql.length === 0) throw corrupt("empty ddl text");
    return { kind: "ddl", sql };
  }
  if (kind === opKindCode.changeset) {
    const changeset = reader.bytes("changeset");
    if (changeset.length === 0) throw corrupt("empty changeset");
    return { kind: "changeset", changeset };
  }
  if (kind === opKindCode.sequence) return decodeSequence(reader);
  throw corrupt(`unknown op kind ${kind}`);
}

/**
 * Encodes `ops`, refusing a payload larger than `payloadBytesMax` with PAYLOAD_TOO_LARGE (the caller
 * rolls the batch back: an entry that large would hold every replica's event loop while it applies).
 */
export function encodeBoundedPayload(ops: readonly PayloadOp[], payloadBytesMax: number): Uint8Array {
  const payload = encodePayload(ops);
  if (payload.length <= payloadBytesMax) return payload;
  const message = `batch changes encode to ${payload.length} bytes; at most ${payloadBytesMax}`;
  throw new BatonError("PAYLOAD_TOO_LARGE", message, { payloadBytes: payload.length, payloadBytesMax });
}

/** Bytes checksummed per turn of the event loop by `checkPayloadInSteps`. */
export const payloadCheckStepBytes = 1024 * 1024;

/**
 * Checks the payload's checksum, `payloadCheckStepBytes` per turn of the event loop, so that a
 * payload of tens of MB is not one long turn; throws PAYLOAD_CORRUPT. `decodePayload` may then be
 * told the checksum was checked.
 */
export async function checkPayloadInSteps(payload: Uint8Array): Promise<void> {
  if (payload.length === 0) return;
  if (payload.length < headerBytes + trailerBytes) throw corrupt(`${payload.length} bytes is too short`);
  const bodyEnd = payload.length - trailerBytes;
  let actual = 0;
  for (let offset = 0; offset < bodyEnd; offset += payloadCheckStepBytes) {
    actual = crc32(payload.subarray(offset, Math.min(bodyEnd, offset + payloadCheckStepBytes)), actual);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const expected = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(bodyEnd);
  if (expected !== actual) throw corrupt("checksum mismatch", { expected, actual });
}

/** The payload's ops; `checksumChecked` when `checkPayloadInSteps` already checked these bytes. */
export function decodePayload(payload: Uint8Array, checksumChecked = false): PayloadOp[] {
  if (payload.length === 0) return [];
  if (payload.length < headerBytes + trailerBytes) throw corrupt(`${payload.length} bytes is too short`);
  const bodyEnd = payload.length - trailerBytes;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const expected = view.getUint32(bodyEnd);
  const actual = checksumChecked ? expected : crc32(payload.subarray(0, bodyEnd));
  if (expected !== actual) throw corrupt("checksum mismatch", { expected, actual });
  const version = payload[0]!;
  if (version !== payloadFormatVersion) {
    throw new BatonError(
      "STORE_VERSION_UNSUPPORTED",
      `store payload format ${version}; this build reads ${payloadFormatVersion}`,
      {
        version,
      },
    );
  }
  const count = view.getUint32(1);
  // Every op takes at least 5 bytes; a larger count cannot be honest.
  if (count > payloadOpsMax || count > (bodyEnd - headerBytes) / 5) throw corrupt(`op count ${count}`);
  const reader = new Reader(payload, headerBytes, bodyEnd);
  const ops: PayloadOp[] = [];
  for (let i = 0; i < count; i++) ops.push(decodeOp(reader));
  if (reader.remaining !== 0) throw corrupt(`${reader.remaining} trailing bytes after the last op`);
  return ops;
}
