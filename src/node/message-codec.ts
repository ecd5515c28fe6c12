/**
 * Binary encoding of consensus messages for the peer transport (no JSON on the replication path).
 *
 * Layout: codec version (u8), message type (u8), term (u64), from and to (u8 length + UTF-8), then
 * the type's own fields in a fixed order. Integers are unsigned little-endian 64-bit (split in two
 * 32-bit halves; values are safe integers). Entries: count (u32), then per entry index (u64),
 * term (u64), kind (u8), data length (u32), data. A cluster configuration (`installSnapshot`): length
 * (u32) and the bytes of its canonical encoding (`encodeClusterConfig`, the same as a configuration
 * entry's data), validated on decode. A read-index refusal: u8, 0 for none, else 1 + its position
 * in `readIndexRefusals`.
 *
 * Invariant: `decodeMessage(encodeMessage(m))` deep-equals `m`. Decoding never trusts the input:
 * every length is checked against the remaining bytes and every enum against its table, and a
 * bad message throws `BatonError(BAD_MESSAGE)`, which the node logs and drops.
 */
import { encodeClusterConfig, parseClusterConfig } from "../consensus/cluster-config.ts";
import type { Message, MessageType } from "../consensus/messages.ts";
import { messageTypes, readIndexRefusals } from "../consensus/messages.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";

const codecVersion = 1;
/** The bits of an append's trailing flags byte (present only when one is set). */
const appendFlags = { quiet: 1, reportApplied: 2 } as const;
const entryKinds: ReadonlySet<number> = new Set(Object.values(EntryKind));
const typeCodes = new Map<MessageType, number>(messageTypes.map((type, i) => [type, i + 1]));

/** Entry data at least this large is referenced by `encodeMessageParts`, not copied. */
export const referencedDataBytesMin = 64 * 1024;

class Writer {
  private buffer: Buffer;
  private offset: number;
  /** Where the bytes not yet handed out as a part begin in `buffer`. */
  private segmentStart = 0;
  private readonly parts: Uint8Array[] = [];
  private readonly referenceBytesMin: number;
  /**
   * `prefixBytes` are left for the caller to fill, before the first byte written. Values of
   * `referenceBytesMin` bytes or more written with `bytes` become parts of their own (`finishParts`).
   */
  constructor(bytesHint: number, prefixBytes = 0, referenceBytesMin = Number.POSITIVE_INFINITY) {
    this.buffer = Buffer.allocUnsafe(Math.max(64, prefixBytes + bytesHint));
    this.offset = prefixBytes;
    this.referenceBytesMin = referenceBytesMin;
  }
  private reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.byteLength) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.byteLength * 2, this.offset + bytes));
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }
  u8(value: number): void {
    this.reserve(1);
    this.offset = this.buffer.writeUInt8(value, this.offset);
  }
  u32(value: number): void {
    this.reserve(4);
    this.offset = this.buffer.writeUInt32LE(value, this.offset);
  }
  u64(value: number): void {
    assert(
      Number.isSafeInteger(value) && value >= 0,
      `u64 field holds a safe non-negative integer, got ${value}`,
    );
    this.u32(value % 0x1_0000_0000);
    this.u32(Math.floor(value / 0x1_0000_0000));
  }
  bool(value: boolean): void {
    this.u8(value ? 1 : 0);
  }
  text(value: string): void {
    const bytes = Buffer.from(value, "utf8");
    assert(bytes.byteLength <= 255, "short text field");
    this.u8(bytes.byteLength);
    this.bytes(bytes);
  }
  bytes(value: Uint8Array): void {
    if (value.byteLength >= this.referenceBytesMin) {
      this.parts.push(this.buffer.subarray(this.segmentStart, this.offset), value);
      this.segmentStart = this.offset;
      return;
    }
    this.reserve(value.byteLength);
    this.buffer.set(value, this.offset);
    this.offset += value.byteLength;
  }
  finish(): Uint8Array {
    assert(this.parts.length === 0, "a message with referenced values is finished in parts");
    return this.buffer.subarray(0, this.offset);
  }
  /** The encoding as parts in order: the written bytes, split around each referenced value. */
  finishParts(): Uint8Array[] {
    const last = this.buffer.subarray(this.segmentStart, this.offset);
    return last.byteLength > 0 || this.parts.length === 0 ? [...this.parts, last] : [...this.parts];
  }
}

class Reader {
  private offset = 0;
  private readonly buffer: Buffer;
  constructor(bytes: Uint8Array) {
    this.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(bytes: number): void {
    if (this.offset + bytes > this.buffer.byteLength) throw bad(`truncated at byte ${this.offset}`);
  }
  u8(): number {
    this.need(1);
    return this.buffer.readUInt8(this.offset++);
  }
  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }
  u64(): number {
    const low = this.u32();
    const high = this.u32();
    if (high > 0x1f_ffff) throw bad("integer beyond 2^53");
    return high * 0x1_0000_0000 + low;
  }
  bool(): boolean {
    const value = this.u8();
    if (value > 1) throw bad("bad boolean");
    return value === 1;
  }
  text(): string {
    const length = this.u8();
    this.need(length);
    const value = this.buffer.toString("utf8", this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  bytes(length: number): Uint8Array {
    this.need(length);
    const view = this.buffer.subarray(this.offset, this.offset + length);
    // Copied, so that a small value does not keep its whole message alive; a value that is most of
    // its message (a large entry) is used in place: a copy of tens of MB holds the event loop.
    const value = length * 2 >= this.buffer.byteLength ? view : new Uint8Array(view);
    this.offset += length;
    return value;
  }
  atEnd(): boolean {
    return this.offset === this.buffer.byteLength;
  }
  end(): void {
    if (this.offset !== this.buffer.byteLength)
      throw bad(`${this.buffer.byteLength - this.offset} trailing bytes`);
  }
}

function bad(why: string): BatonError {
  return new BatonError(ErrorCode.BAD_MESSAGE, `malformed peer message: ${why}`);
}

/** Bytes the entries take in the writer's own buffer: data of `referenceBytesMin` or more is not. */
function entriesBytes(entries: readonly LogEntry[], referenceBytesMin = Number.POSITIVE_INFINITY): number {
  let total = 0;
  for (const entry of entries)
    total += 21 + (entry.data.byteLength >= referenceBytesMin ? 0 : entry.data.byteLength);
  return total;
}

/**
 * The encoding of `message`, after `prefixBytes` bytes left for the caller to fill (an envelope), so
 * that a message carrying entries of tens of MB is copied once, not once more into its envelope.
 */
export function encodeMessage(message: Message, prefixBytes = 0): Uint8Array {
  return encodeInto(message, prefixBytes, Number.POSITIVE_INFINITY).finish();
}

/**
 * `encodeMessage` as parts to be sent one after another: entry data of `referencedDataBytesMin` or
 * more is a part of its own, referenced rather than copied, so that sending an entry of tens of MB
 * to each follower copies none of it (the transport writes the parts as they are).
 */
export function encodeMessageParts(message: Message, prefixBytes = 0): Uint8Array[] {
  return encodeInto(message, prefixBytes, referencedDataBytesMin).finishParts();
}

function encodeInto(message: Message, prefixBytes: number, referenceBytesMin: number): Writer {
  assert(Number.isSafeInteger(prefixBytes) && prefixBytes >= 0, "prefix length is a non-negative integer");
  const entries = message.type === "appendEntries" ? entriesBytes(message.entries, referenceBytesMin) : 0;
  const writer = new Writer(64 + entries, prefixBytes, referenceBytesMin);
  writer.u8(codecVersion);
  writer.u8(typeCodes.get(message.type)!);
  writer.u64(message.term);
  writer.text(message.from);
  writer.text(message.to);
  encodeBody(writer, message);
  return writer;
}

function encodeBody(w: Writer, m: Message): void {
  switch (m.type) {
    case "preVote":
    case "requestVote":
      w.u64(m.lastLogIndex);
      w.u64(m.lastLogTerm);
      if (m.type === "requestVote") w.bool(m.transfer);
      else if (m.held === true) w.bool(true); // Only then: an unheld probe keeps its version 1 bytes.
      return;
    case "preVoteResponse":
    case "requestVoteResponse":
      w.bool(m.granted);
      return;
    case "appendEntries":
      w.u64(m.prevLogIndex);
      w.u64(m.prevLogTerm);
      w.u64(m.leaderCommit);
      w.u32(m.entries.length);
      for (const entry of m.entries) {
        w.u64(entry.index);
        w.u64(entry.term);
        w.u8(entry.kind);
        w.u32(entry.data.byteLength);
        w.bytes(entry.data);
      }
      {
        // Only when a flag is set: other appends keep their version 1 bytes.
        const flags =
          (m.quiet === true ? appendFlags.quiet : 0) |
          (m.reportApplied === true ? appendFlags.reportApplied : 0);
        if (flags !== 0) w.u8(flags);
      }
      return;
    case "appendEntriesResponse":
      w.bool(m.success);
      for (const value of [m.matchIndex, m.rejectedIndex, m.conflictTerm, m.conflictIndex, m.appliedIndex])
        w.u64(value);
      return;
    case "heartbeat":
      w.u64(m.leaderCommit);
      w.u64(m.readRound);
      if (m.dataFloor !== undefined) w.u64(m.dataFloor); // Only to a witness: others keep their version 1 bytes.
      return;
    case "heartbeatResponse":
      w.u64(m.readRound);
      w.u64(m.appliedIndex);
      if (m.report === true) w.bool(true); // Only then: a heartbeat's answer keeps its version 1 bytes.
      return;
    case "timeoutNow":
      return;
    case "readIndex":
      w.u64(m.readId);
      return;
    case "readIndexResponse":
      w.u64(m.readId);
      w.u64(m.index);
      w.u8(m.refusal === null ? 0 : readIndexRefusals.indexOf(m.refusal) + 1);
      return;
    case "installSnapshot": {
      w.u64(m.snapshotIndex);
      w.u64(m.snapshotTerm);
      const config = encodeClusterConfig(m.snapshotConfig);
      w.u32(config.byteLength);
      w.bytes(config);
      return;
    }
  }
}

export function decodeMessage(bytes: Uint8Array): Message {
  const r = new Reader(bytes);
  if (r.u8() !== codecVersion) throw bad("unknown codec version");
  const type = messageTypes[r.u8() - 1];
  if (type === undefined) throw bad("unknown message type");
  const envelope = { term: term(r.u64()), from: checkedNodeId(r.text()), to: checkedNodeId(r.text()) };
  const message = decodeBody(r, type, envelope);
  r.end();
  return message;
}

function checkedNodeId(value: string): ReturnType<typeof nodeId> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value)) throw bad("bad node id");
  return nodeId(value);
}

type Envelope = Pick<Message, "term" | "from" | "to">;

function decodeBody(r: Reader, type: MessageType, e: Envelope): Message {
  switch (type) {
    case "preVote": {
      const position = { lastLogIndex: logIndex(r.u64()), lastLogTerm: term(r.u64()) };
      if (r.atEnd()) return { type, ...e, ...position };
      if (!r.bool()) throw bad("a pre-vote's held flag is present only when set");
      return { type, ...e, ...position, held: true };
    }
    case "requestVote":
      return { type, ...e, lastLogIndex: logIndex(r.u64()), lastLogTerm: term(r.u64()), transfer: r.bool() };
    case "preVoteResponse":
    case "requestVoteResponse":
      return { type, ...e, granted: r.bool() };
    case "appendEntries":
      return decodeAppendEntries(r, e);
    case "appendEntriesResponse":
      return {
        type,
        ...e,
        success: r.bool(),
        matchIndex: logIndex(r.u64()),
        rejectedIndex: logIndex(r.u64()),
        conflictTerm: term(r.u64()),
        conflictIndex: logIndex(r.u64()),
        appliedIndex: logIndex(r.u64()),
      };
    case "heartbeat": {
      const heartbeat = { type, ...e, leaderCommit: logIndex(r.u64()), readRound: r.u64() };
      if (r.atEnd()) return heartbeat;
      const dataFloor = r.u64();
      if (dataFloor === 0) throw bad("a heartbeat's data floor is present only when positive");
      return { ...heartbeat, dataFloor: logIndex(dataFloor) };
    }
    case "heartbeatResponse": {
      const answer = { type, ...e, readRound: r.u64(), appliedIndex: logIndex(r.u64()) };
      if (r.atEnd()) return answer;
      if (!r.bool()) throw bad("an applied report's flag is present only when set");
      return { ...answer, report: true };
    }
    case "timeoutNow":
      return { type, ...e };
    case "readIndex":
      return { type, ...e, readId: r.u64() };
    case "readIndexResponse": {
      const readId = r.u64();
      const index = logIndex(r.u64());
      const code = r.u8();
      const refusal = code === 0 ? null : readIndexRefusals[code - 1];
      if (refusal === undefined) throw bad("unknown read-index refusal");
      return { type, ...e, readId, index, refusal };
    }
    case "installSnapshot": {
      const snapshotIndex = logIndex(r.u64());
      const snapshotTerm = term(r.u64());
      const snapshotConfig = parseClusterConfig(r.bytes(r.u32()));
      if ("problem" in snapshotConfig) throw bad(`bad snapshot configuration: ${snapshotConfig.problem}`);
      return { type, ...e, snapshotIndex, snapshotTerm, snapshotConfig };
    }
  }
}

function decodeAppendEntries(r: Reader, e: Envelope): Message {
  const prevLogIndex = logIndex(r.u64());
  const prevLogTerm = term(r.u64());
  const leaderCommit = logIndex(r.u64());
  const count = r.u32();
  const entries: LogEntry[] = [];
  for (let i = 0; i < count; i++) {
    const index = logIndex(r.u64());
    const entryTerm = term(r.u64());
    const kind = r.u8();
    if (!entryKinds.has(kind)) throw bad("unknown entry kind");
    const data = r.bytes(r.u32());
    if (index !== prevLogIndex + 1 + i) throw bad("entries are not contiguous");
    entries.push({ index, term: entryTerm, kind: kind as EntryKind, data });
  }
  const message = { type: "appendEntries" as const, ...e, prevLogIndex, prevLogTerm, leaderCommit, entries };
  if (r.atEnd()) return message;
  const flags = r.u8();
  if (flags === 0 || (flags & ~(appendFlags.quiet | appendFlags.reportApplied)) !== 0)
    throw bad("an append's flags byte is present only with known flags set");
  return {
    ...message,
    ...((flags & appendFlags.quiet) !== 0 ? { quiet: true as const } : {}),
    ...((flags & appendFlags.reportApplied) !== 0 ? { reportApplied: true as const } : {}),
  };
}
