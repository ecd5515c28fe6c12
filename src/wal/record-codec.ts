/**
 * Encoding of one log record, and the scan that recovery runs over a segment's bytes.
 *
 * Layout of a record (little-endian):
 *
 * | offset | size | field                                     |
 * |--------|------|-------------------------------------------|
 * | 0      | 4    | body length L (bytes after this header)   |
 * | 4      | 4    | CRC-32 of the body (zlib.crc32)           |
 * | 8      | 1    | record format version (1)                 |
 * | 9      | 1    | entry kind (EntryKind)                    |
 * | 10     | 8    | index (unsigned)                          |
 * | 18     | 8    | term (unsigned)                           |
 * | 26     | L-18 | entry data                                |
 *
 * Invariants: a record is valid only if its whole body is present and its checksum matches; the
 * length is bounded by `recordBytesMax` so a flipped length can never make recovery allocate or
 * read gigabytes. The scan never throws on bad bytes: it reports where the valid prefix ends and
 * whether any valid record follows the damage, and recovery decides what that means.
 *
 * Torn or corrupt (`isTornTail`): an append that a crash interrupted leaves either a prefix of the
 * bytes it wrote (a process that dies mid-write; the file system keeps what reached it, in order) or
 * space the file system allocated but whose data never reached the disk, which reads back as zeros
 * (a power failure before the fsync). It cannot leave a record whose length field says it is
 * complete and whose bytes are all there but fail the checksum, nor non-zero bytes that are no
 * record: those were written in full and damaged afterwards, so they may have been reported
 * durable. The length field frames each record, which is what lets recovery tell the two apart.
 */
import { crc32 } from "node:zlib";
import { assert } from "../lib/assert.ts";
import { logIndex, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";

export const recordHeaderBytes = 8;
const recordFixedBodyBytes = 18;
/** The smallest a record can be (an entry with no data): what bounds how many fit in damaged bytes. */
export const recordMinBytes = recordHeaderBytes + recordFixedBodyBytes;
const recordVersion = 1;
/** Upper bound of one record's body; larger lengths are treated as damage. */
export const recordBytesMax = 64 * 1024 * 1024;

const entryKinds: ReadonlySet<number> = new Set(Object.values(EntryKind));

export function encodedRecordBytes(entry: LogEntry): number {
  return recordHeaderBytes + recordFixedBodyBytes + entry.data.byteLength;
}

/** Writes `entry` as one record into `target` at `offset`; returns the offset after it. */
export function encodeRecord(entry: LogEntry, target: Buffer, offset: number): number {
  const bodyBytes = recordFixedBodyBytes + entry.data.byteLength;
  assert(target.byteLength - offset >= recordHeaderBytes + bodyBytes, "record target buffer too small");
  const body = offset + recordHeaderBytes;
  writeFixedBody(entry, target, body);
  target.set(entry.data, body + recordFixedBodyBytes);
  const checksum = crc32(target.subarray(body, body + bodyBytes));
  target.writeUInt32LE(bodyBytes, offset);
  target.writeUInt32LE(checksum, offset + 4);
  return body + bodyBytes;
}

function writeFixedBody(entry: LogEntry, target: Buffer, body: number): void {
  const bodyBytes = recordFixedBodyBytes + entry.data.byteLength;
  assert(bodyBytes <= recordBytesMax, `log entry of ${bodyBytes} bytes exceeds recordBytesMax`);
  target.writeUInt8(recordVersion, body);
  target.writeUInt8(entry.kind, body + 1);
  target.writeBigUInt64LE(BigInt(entry.index), body + 2);
  target.writeBigUInt64LE(BigInt(entry.term), body + 10);
}

/**
 * Entry data of at least this many bytes is written from where it lies (the record's header and
 * fixed fields in a buffer of their own, checksummed on through the data) instead of being copied
 * into the records' buffer: an entry of tens of MB is not copied once more on the event loop.
 */
export const recordInlineDataBytesMax = 64 * 1024;

/** A large record whose checksum is still to be written into its head (`writeChecksumsInSteps`). */
export type PendingChecksum = { readonly head: Buffer; readonly data: Buffer };

/**
 * Records as the buffers to write, in order, and each record's size (header included). The heads
 * of large records lack their checksum until `writeChecksumsInSteps(pending)` has run.
 */
export type EncodedRecords = {
  readonly parts: Buffer[];
  readonly recordBytes: number[];
  readonly pending: PendingChecksum[];
};

/** Bytes checksummed per turn of the event loop by `writeChecksumsInSteps`. */
export const checksumStepBytes = 1024 * 1024;

/**
 * Computes and writes the checksums of `pending` records, `checksumStepBytes` per turn of the
 * event loop: a 40 MB entry's checksum is not one long turn of the loop (the log calls this before
 * writing the records, off the step that appended them).
 */
export async function writeChecksumsInSteps(pending: readonly PendingChecksum[]): Promise<void> {
  for (const { head, data } of pending) {
    let checksum = crc32(head.subarray(recordHeaderBytes));
    for (let offset = 0; offset < data.byteLength; offset += checksumStepBytes) {
      checksum = crc32(data.subarray(offset, offset + checksumStepBytes), checksum);
      await new Promise((resolve) => setImmediate(resolve));
    }
    head.writeUInt32LE(checksum, 4);
  }
}

/** Encodes `entries` as consecutive records: small ones packed together, large data referenced. */
export function encodeRecordParts(entries: readonly LogEntry[]): EncodedRecords {
  const parts: Buffer[] = [];
  const recordBytes: number[] = [];
  const pending: PendingChecksum[] = [];
  let packed: LogEntry[] = [];
  for (const entry of entries) {
    recordBytes.push(encodedRecordBytes(entry));
    if (entry.data.byteLength < recordInlineDataBytesMax) {
      packed.push(entry);
      continue;
    }
    if (packed.length > 0) parts.push(encodeRecords(packed));
    packed = [];
    const head = Buffer.allocUnsafe(recordHeaderBytes + recordFixedBodyBytes);
    writeFixedBody(entry, head, recordHeaderBytes);
    const data = Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
    head.writeUInt32LE(recordFixedBodyBytes + data.byteLength, 0);
    pending.push({ head, data });
    parts.push(head, data);
  }
  if (packed.length > 0) parts.push(encodeRecords(packed));
  return { parts, recordBytes, pending };
}

export function encodeRecords(entries: readonly LogEntry[]): Buffer {
  let total = 0;
  for (const entry of entries) total += encodedRecordBytes(entry);
  const buffer = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const entry of entries) offset = encodeRecord(entry, buffer, offset);
  assert(offset === total, "encoded records must fill the buffer exactly");
  return buffer;
}

export type DecodedRecord = { readonly entry: LogEntry; readonly nextOffset: number };

/**
 * Decodes the record at `offset`, or returns null if the bytes there are not one whole, valid
 * record. The entry's data is copied so that the caller may drop the segment buffer, unless `copy`
 * is false: then it is a view into `bytes`, which stays alive as long as any such entry does.
 */
export function decodeRecordAt(bytes: Uint8Array, offset: number, copy = true): DecodedRecord | null {
  if (bytes.byteLength - offset < recordHeaderBytes) return null;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bodyBytes = view.readUInt32LE(offset);
  if (bodyBytes < recordFixedBodyBytes || bodyBytes > recordBytesMax) return null;
  const body = offset + recordHeaderBytes;
  if (view.byteLength - body < bodyBytes) return null;
  if (crc32(view.subarray(body, body + bodyBytes)) !== view.readUInt32LE(offset + 4)) return null;
  if (view.readUInt8(body) !== recordVersion) return null;
  const kind = view.readUInt8(body + 1);
  if (!entryKinds.has(kind)) return null;
  const index = view.readBigUInt64LE(body + 2);
  const entryTerm = view.readBigUInt64LE(body + 10);
  if (index > BigInt(Number.MAX_SAFE_INTEGER) || entryTerm > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  const inPlace = view.subarray(body + recordFixedBodyBytes, body + bodyBytes);
  const data = copy
    ? new Uint8Array(inPlace)
    : new Uint8Array(inPlace.buffer, inPlace.byteOffset, inPlace.byteLength);
  const entry: LogEntry = {
    index: logIndex(Number(index)),
    term: term(Number(entryTerm)),
    kind: kind as EntryKind,
    data,
  };
  return { entry, nextOffset: body + bodyBytes };
}

/**
 * Whether the damage at `offset` (the end of the valid prefix, with no valid record after it) is what
 * an interrupted append leaves: a record cut short, or zeros to the end. See the module comment.
 */
export function isTornTail(bytes: Uint8Array, offset: number): boolean {
  assert(offset <= bytes.byteLength, "damage lies inside the buffer");
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let zeros = true;
  for (let i = offset; i < view.byteLength && zeros; i++) zeros = view[i] === 0;
  if (zeros) return true;
  const remaining = view.byteLength - offset;
  if (remaining < recordHeaderBytes) return true;
  const bodyBytes = view.readUInt32LE(offset);
  if (bodyBytes < recordFixedBodyBytes || bodyBytes > recordBytesMax) return false;
  if (remaining >= recordHeaderBytes + bodyBytes) return false;
  // Shorter than its length says: a prefix of an append, unless the bytes present are a whole body
  // with a good checksum, in which case only the length field was damaged.
  const present = view.subarray(offset + recordHeaderBytes);
  return present.byteLength < recordFixedBodyBytes || crc32(present) !== view.readUInt32LE(offset + 4);
}

/**
 * Every whole, valid record at or after `offset`, found by decoding in sequence and, past damage,
 * by probing byte by byte; and the bytes of damage between them. Never throws on damaged input.
 */
export function salvageRecords(
  bytes: Uint8Array,
  offset: number,
): { records: LogEntry[]; damagedRuns: number[] } {
  const records: LogEntry[] = [];
  const damagedRuns: number[] = [];
  let at = offset;
  while (at < bytes.byteLength) {
    const decoded = decodeRecordAt(bytes, at);
    if (decoded !== null) {
      records.push(decoded.entry);
      at = decoded.nextOffset;
      continue;
    }
    let next = at + 1;
    while (next < bytes.byteLength && decodeRecordAt(bytes, next) === null) next++;
    damagedRuns.push(next - at);
    at = next;
  }
  return { records, damagedRuns };
}

export type SegmentScan = {
  /** Records decoded from the start of the buffer, in order, up to the first damage. */
  readonly records: readonly { readonly entry: LogEntry; readonly offset: number }[];
  /** Byte offset where the valid prefix ends (equals the buffer length when undamaged). */
  readonly validBytes: number;
  /** Offset of a valid record found after the damage, if any: damage then cannot be a torn tail. */
  readonly validRecordAfterDamageOffset: number | null;
};

/** Scans a whole segment's bytes. Never throws on damaged input. */
export function scanSegment(bytes: Uint8Array, copyData = true): SegmentScan {
  const records: { entry: LogEntry; offset: number }[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const decoded = decodeRecordAt(bytes, offset, copyData);
    if (decoded === null) break;
    records.push({ entry: decoded.entry, offset });
    offset = decoded.nextOffset;
  }
  let validRecordAfterDamageOffset: number | null = null;
  // A torn append leaves only a damaged tail; a valid record after the damage means the damage is
  // corruption in the middle. The search is byte by byte, and runs only when damage was found.
  for (let probe = offset + 1; offset < bytes.byteLength && probe < bytes.byteLength; probe++) {
    if (decodeRecordAt(bytes, probe) !== null) {
      validRecordAfterDamageOffset = probe;
      break;
    }
  }
  return { records, validBytes: offset, validRecordAfterDamageOffset };
}
