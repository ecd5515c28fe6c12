/**
 * The hello frame body: who is speaking, in which cluster, with which protocol version.
 *
 * Layout (big-endian): u16 protocol version, 8 bytes incarnation, u8 cluster id length, cluster id
 * (UTF-8), u8 node id length, node id (UTF-8). The incarnation is drawn at random each time a
 * transport starts; a hello carrying a new incarnation for a peer tells the receiver that the peer
 * restarted and that any connection it still holds to the old process is dead.
 *
 * `decodeHello` never throws: a malformed body is reported as a value so the connection can be
 * refused with a logged reason. Identifiers are returned as plain strings; the transport checks them
 * against its configuration, which is the only trusted list of node ids.
 */
import { assert } from "../lib/assert.ts";

export type Hello = {
  readonly protocolVersion: number;
  /** 16 lowercase hex digits identifying one run of the sender's transport. */
  readonly incarnation: string;
  readonly clusterId: string;
  readonly nodeId: string;
};

/** Longest cluster id or node id a hello can carry, in UTF-8 bytes. */
export const helloIdBytesMax = 255;
const incarnationBytes = 8;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: false });

export function encodeHello(hello: Hello): Uint8Array {
  assert(/^[0-9a-f]{16}$/.test(hello.incarnation), "incarnation must be 16 lowercase hex digits");
  assert(Number.isInteger(hello.protocolVersion) && hello.protocolVersion >= 0, "bad protocol version");
  const clusterId = textEncoder.encode(hello.clusterId);
  const nodeId = textEncoder.encode(hello.nodeId);
  assert(clusterId.length >= 1 && clusterId.length <= helloIdBytesMax, "cluster id length out of range");
  assert(nodeId.length >= 1 && nodeId.length <= helloIdBytesMax, "node id length out of range");
  const body = new Uint8Array(2 + incarnationBytes + 1 + clusterId.length + 1 + nodeId.length);
  const view = new DataView(body.buffer);
  view.setUint16(0, hello.protocolVersion);
  body.set(Buffer.from(hello.incarnation, "hex"), 2);
  let offset = 2 + incarnationBytes;
  body[offset++] = clusterId.length;
  body.set(clusterId, offset);
  offset += clusterId.length;
  body[offset++] = nodeId.length;
  body.set(nodeId, offset);
  assert(offset + nodeId.length === body.length, "hello encoding length mismatch");
  return body;
}

export type HelloDecodeResult =
  | { readonly ok: true; readonly hello: Hello }
  | { readonly ok: false; readonly detail: string };

export function decodeHello(body: Uint8Array): HelloDecodeResult {
  const fixedBytes = 2 + incarnationBytes;
  if (body.length < fixedBytes + 2)
    return { ok: false, detail: `hello body of ${body.length} bytes is too short` };
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const protocolVersion = view.getUint16(0);
  const incarnation = Buffer.from(body.buffer, body.byteOffset + 2, incarnationBytes).toString("hex");
  const clusterIdLength = body[fixedBytes]!;
  const nodeIdLengthOffset = fixedBytes + 1 + clusterIdLength;
  if (clusterIdLength === 0 || nodeIdLengthOffset >= body.length) {
    return { ok: false, detail: "hello cluster id is empty or runs past the body" };
  }
  const nodeIdLength = body[nodeIdLengthOffset]!;
  if (nodeIdLength === 0 || nodeIdLengthOffset + 1 + nodeIdLength !== body.length) {
    return { ok: false, detail: "hello node id is empty or does not end the body" };
  }
  const clusterId = textDecoder.decode(body.subarray(fixedBytes + 1, nodeIdLengthOffset));
  const nodeId = textDecoder.decode(body.subarray(nodeIdLengthOffset + 1));
  assert(incarnation.length === 2 * incarnationBytes, "incarnation hex has the wrong length");
  return { ok: true, hello: { protocolVersion, incarnation, clusterId, nodeId } };
}
