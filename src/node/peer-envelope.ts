/**
 * What travels in a transport message body between nodes: a one-byte class, then the content.
 *
 * - `consensus`: a consensus message in the binary codec of `message-codec.ts`.
 * - `consensus` with a lease stamp: [6][u64 stamp][the message as above]. A leader stamps its
 *   heartbeats with its monotonic clock; a follower's answer echoes the latest stamp it received
 *   from that leader in that term (`leader-lease.ts`).
 * - `nodeInfo`: JSON `{http}` — each node tells its peers where its HTTP API listens, so a
 *   follower can forward writes to the leader and `/v1/status` can name the leader's address
 *   without the operator listing every HTTP address in `--cluster`.
 * - `snapshot`: the out-of-band snapshot stream of `snapshot-transfer.ts` (big-endian):
 *     offer  [1][u64 total bytes][the consensus installSnapshot message]
 *     chunk  [2][u64 index][u64 term][u64 offset][u32 CRC-32 of data][data]
 *     ack    [3][u64 index][u64 term][u8 state: 0 receiving, 1 installed, 2 refused][u64 received]
 * - `storage`: consistency checks and storage healing (`consistency-check.ts`, `storage-heal.ts`):
 *     check start       [1][u64 index]                  "hash your state at applied index `index`"
 *     check report      [2][u64 index][32 bytes SHA-256] "my content hash at `index`"
 *     snapshot request  [3][u64 applied index]          "my database is damaged: send me a snapshot
 *                                                        at or after this index"
 *     check request     [4][u64 applied index]          "my database is not verified: start a check"
 * - `history`: a node's history records on their way to the leader (`history-replication.ts`):
 *     push  [1][JSON array of rows {node, seq, atMs, record}]  "my records not yet replicated", at
 *           most `historyBatchRecordsMax` rows and `historyPushBytesMax` bytes
 *     ack   [2][u64 sequence]                                  "yours are replicated through it"
 */
import { crc32 } from "node:zlib";
import type { InstallSnapshotMessage, Message } from "../consensus/messages.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { HistoryRow } from "../store/index.ts";
import type { SendLane } from "../transport/transport.ts";
import { type LogIndex, logIndex, type Term, term } from "../types/ids.ts";
import { decodeHistoryRows } from "./history.ts";
import { decodeMessage, encodeMessage, encodeMessageParts } from "./message-codec.ts";

const consensusClass = 1;
const nodeInfoClass = 2;
const snapshotClass = 3;
const storageClass = 4;
const historyClass = 5;
const stampedConsensusClass = 6;
const stampBytes = 8;
const historyPushKind = 1;
const historyAckKind = 2;
const checkStartKind = 1;
const checkReportKind = 2;
const snapshotRequestKind = 3;
const checkRequestKind = 4;
const hashBytes = 32;
const nodeInfoBytesMax = 1024;
const offerKind = 1;
const chunkKind = 2;
const ackKind = 3;
const chunkHeaderBytes = 2 + 8 + 8 + 8 + 4;

export type NodeInfo = { readonly http: string };

export type SnapshotAckState = "receiving" | "installed" | "refused";
const ackStates: readonly SnapshotAckState[] = ["receiving", "installed", "refused"];

export type SnapshotStreamMessage =
  | {
      readonly kind: "offer";
      readonly totalBytes: number;
      readonly install: InstallSnapshotMessage;
    }
  | {
      readonly kind: "chunk";
      readonly index: LogIndex;
      readonly term: Term;
      readonly offset: number;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: "ack";
      readonly index: LogIndex;
      readonly term: Term;
      readonly state: SnapshotAckState;
      readonly received: number;
    };

export type StorageMessage =
  | { readonly kind: "checkStart"; readonly index: LogIndex }
  /** `hash` is the hex SHA-256 of `content-hash.ts`. */
  | { readonly kind: "checkReport"; readonly index: LogIndex; readonly hash: string }
  | { readonly kind: "snapshotRequest"; readonly appliedIndex: LogIndex }
  | { readonly kind: "checkRequest"; readonly appliedIndex: LogIndex };

export type HistoryMessage =
  | { readonly kind: "push"; readonly rows: readonly HistoryRow[] }
  | { readonly kind: "ack"; readonly through: number };

export type PeerBody =
  | { readonly type: "consensus"; readonly message: Message; readonly stamp?: number }
  | { readonly type: "nodeInfo"; readonly info: NodeInfo }
  | { readonly type: "snapshot"; readonly message: SnapshotStreamMessage }
  | { readonly type: "storage"; readonly message: StorageMessage }
  | { readonly type: "history"; readonly message: HistoryMessage };

export function encodeHistory(message: HistoryMessage): Uint8Array {
  if (message.kind === "ack") {
    const bytes = new Uint8Array(10);
    bytes[0] = historyClass;
    bytes[1] = historyAckKind;
    new DataView(bytes.buffer).setBigUint64(2, BigInt(message.through));
    return bytes;
  }
  const json = Buffer.from(JSON.stringify(message.rows));
  const framed = new Uint8Array(json.byteLength + 2);
  framed[0] = historyClass;
  framed[1] = historyPushKind;
  framed.set(json, 2);
  return framed;
}

function decodeHistory(body: Uint8Array): HistoryMessage {
  if (body[1] === historyAckKind && body.byteLength === 10) {
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    return { kind: "ack", through: safeInteger(view.getBigUint64(2), "history sequence") };
  }
  if (body[1] === historyPushKind) return { kind: "push", rows: decodeHistoryRows(body.subarray(2)) };
  throw new BatonError(ErrorCode.BAD_MESSAGE, `malformed history message (kind ${body[1]})`);
}

export function encodeStorage(message: StorageMessage): Uint8Array {
  const report = message.kind === "checkReport";
  const bytes = new Uint8Array(2 + 8 + (report ? hashBytes : 0));
  bytes[0] = storageClass;
  const view = new DataView(bytes.buffer);
  if (message.kind === "snapshotRequest" || message.kind === "checkRequest") {
    bytes[1] = message.kind === "snapshotRequest" ? snapshotRequestKind : checkRequestKind;
    view.setBigUint64(2, BigInt(message.appliedIndex));
    return bytes;
  }
  bytes[1] = report ? checkReportKind : checkStartKind;
  view.setBigUint64(2, BigInt(message.index));
  if (report) {
    const hash = Buffer.from(message.hash, "hex");
    if (hash.byteLength !== hashBytes)
      throw new BatonError(ErrorCode.BAD_MESSAGE, "a content hash is 32 bytes");
    bytes.set(hash, 10);
  }
  return bytes;
}

function decodeStorage(body: Uint8Array): StorageMessage {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const kind = body[1];
  const value = body.byteLength >= 10 ? logIndex(safeInteger(view.getBigUint64(2), "index")) : null;
  if (value !== null && kind === checkStartKind && body.byteLength === 10)
    return { kind: "checkStart", index: value };
  if (value !== null && kind === snapshotRequestKind && body.byteLength === 10)
    return { kind: "snapshotRequest", appliedIndex: value };
  if (value !== null && kind === checkRequestKind && body.byteLength === 10)
    return { kind: "checkRequest", appliedIndex: value };
  if (value !== null && kind === checkReportKind && body.byteLength === 10 + hashBytes)
    return { kind: "checkReport", index: value, hash: Buffer.from(body.subarray(10)).toString("hex") };
  throw new BatonError(
    ErrorCode.BAD_MESSAGE,
    `malformed storage message (kind ${kind}, ${body.byteLength} bytes)`,
  );
}

/**
 * The transport lane a consensus message travels in. Log appends and snapshot offers stay in order
 * behind one another (`ordered`): a follower rejects an append that overtakes the one before it.
 * Everything else is small and carries no log check (heartbeats, votes, acknowledgements, read
 * rounds, `timeoutNow`), so it goes `urgent` and never waits behind a large entry being written:
 * a heartbeat delayed that long would start an election.
 */
export function laneOf(message: Message): SendLane {
  return message.type === "appendEntries" || message.type === "installSnapshot" ? "ordered" : "urgent";
}

/** A consensus message, with a lease stamp (a safe non-negative integer) when one is given. */
export function encodeConsensus(message: Message, stamp?: number): Uint8Array {
  const framed = encodeMessage(message, envelopeBytes(stamp));
  writeEnvelope(framed, stamp);
  return framed;
}

/**
 * `encodeConsensus` as parts to send one after another (`encodeMessageParts`): the data of a large
 * entry is referenced, not copied into each follower's message.
 */
export function encodeConsensusParts(message: Message, stamp?: number): Uint8Array[] {
  const parts = encodeMessageParts(message, envelopeBytes(stamp));
  writeEnvelope(parts[0]!, stamp);
  return parts;
}

function envelopeBytes(stamp: number | undefined): number {
  return stamp === undefined ? 1 : 1 + stampBytes;
}

/** Fills the envelope room at the start of `framed`: the class, and the lease stamp if any. */
function writeEnvelope(framed: Uint8Array, stamp: number | undefined): void {
  if (stamp === undefined) {
    framed[0] = consensusClass;
    return;
  }
  assert(
    Number.isSafeInteger(stamp) && stamp >= 0,
    `a lease stamp is a safe non-negative integer, got ${stamp}`,
  );
  framed[0] = stampedConsensusClass;
  new DataView(framed.buffer, framed.byteOffset).setBigUint64(1, BigInt(stamp));
}

export function encodeNodeInfo(info: NodeInfo): Uint8Array {
  const json = Buffer.from(JSON.stringify({ http: info.http }));
  const framed = new Uint8Array(json.byteLength + 1);
  framed[0] = nodeInfoClass;
  framed.set(json, 1);
  return framed;
}

export function encodeSnapshotStream(message: SnapshotStreamMessage): Uint8Array {
  switch (message.kind) {
    case "offer": {
      const install = encodeMessage(message.install);
      const bytes = new Uint8Array(2 + 8 + install.byteLength);
      bytes[0] = snapshotClass;
      bytes[1] = offerKind;
      new DataView(bytes.buffer).setBigUint64(2, BigInt(message.totalBytes));
      bytes.set(install, 10);
      return bytes;
    }
    case "chunk": {
      const bytes = new Uint8Array(chunkHeaderBytes + message.data.byteLength);
      const view = new DataView(bytes.buffer);
      bytes[0] = snapshotClass;
      bytes[1] = chunkKind;
      view.setBigUint64(2, BigInt(message.index));
      view.setBigUint64(10, BigInt(message.term));
      view.setBigUint64(18, BigInt(message.offset));
      view.setUint32(26, crc32(message.data));
      bytes.set(message.data, chunkHeaderBytes);
      return bytes;
    }
    case "ack": {
      const bytes = new Uint8Array(2 + 8 + 8 + 1 + 8);
      const view = new DataView(bytes.buffer);
      bytes[0] = snapshotClass;
      bytes[1] = ackKind;
      view.setBigUint64(2, BigInt(message.index));
      view.setBigUint64(10, BigInt(message.term));
      bytes[18] = ackStates.indexOf(message.state);
      view.setBigUint64(19, BigInt(message.received));
      return bytes;
    }
  }
}

function safeInteger(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw new BatonError(ErrorCode.BAD_MESSAGE, `${what} out of range`);
  return Number(value);
}

function decodeSnapshotStream(body: Uint8Array): SnapshotStreamMessage {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const kind = body[1];
  if (kind === offerKind && body.byteLength > 10) {
    const install = decodeMessage(body.subarray(10));
    if (install.type !== "installSnapshot")
      throw new BatonError(ErrorCode.BAD_MESSAGE, "a snapshot offer without an installSnapshot message");
    return { kind: "offer", totalBytes: safeInteger(view.getBigUint64(2), "snapshot size"), install };
  }
  if (kind === chunkKind && body.byteLength >= chunkHeaderBytes) {
    const data = body.subarray(chunkHeaderBytes);
    if (crc32(data) !== view.getUint32(26))
      throw new BatonError(ErrorCode.BAD_MESSAGE, "snapshot chunk checksum mismatch");
    return {
      kind: "chunk",
      index: logIndex(safeInteger(view.getBigUint64(2), "snapshot index")),
      term: term(safeInteger(view.getBigUint64(10), "snapshot term")),
      offset: safeInteger(view.getBigUint64(18), "chunk offset"),
      data,
    };
  }
  const state = ackStates[body[18] ?? -1];
  if (kind === ackKind && body.byteLength === 27 && state !== undefined) {
    return {
      kind: "ack",
      index: logIndex(safeInteger(view.getBigUint64(2), "snapshot index")),
      term: term(safeInteger(view.getBigUint64(10), "snapshot term")),
      state,
      received: safeInteger(view.getBigUint64(19), "received bytes"),
    };
  }
  throw new BatonError(ErrorCode.BAD_MESSAGE, `malformed snapshot stream message (kind ${kind})`);
}

export function decodePeerBody(body: Uint8Array): PeerBody {
  const content = body.subarray(1);
  if (body[0] === consensusClass) return { type: "consensus", message: decodeMessage(content) };
  if (body[0] === stampedConsensusClass && body.byteLength > 1 + stampBytes) {
    const stamp = new DataView(body.buffer, body.byteOffset, body.byteLength).getBigUint64(1);
    if (stamp > BigInt(Number.MAX_SAFE_INTEGER))
      throw new BatonError(ErrorCode.BAD_MESSAGE, "lease stamp out of range");
    return { type: "consensus", message: decodeMessage(body.subarray(1 + stampBytes)), stamp: Number(stamp) };
  }
  if (body[0] === snapshotClass) return { type: "snapshot", message: decodeSnapshotStream(body) };
  if (body[0] === storageClass) return { type: "storage", message: decodeStorage(body) };
  if (body[0] === historyClass) return { type: "history", message: decodeHistory(body) };
  if (body[0] === nodeInfoClass && content.byteLength <= nodeInfoBytesMax) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(content).toString("utf8"));
    } catch {
      throw new BatonError(ErrorCode.BAD_MESSAGE, "node info is not JSON");
    }
    const http = (parsed as { http?: unknown })?.http;
    if (typeof http !== "string" || http.length > 300)
      throw new BatonError(ErrorCode.BAD_MESSAGE, "node info without an http address");
    return { type: "nodeInfo", info: { http } };
  }
  throw new BatonError(ErrorCode.BAD_MESSAGE, `unknown peer body class ${body[0]}`);
}
