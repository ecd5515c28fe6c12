/**
 * Helpers for the TCP transport tests: bounded waits, a cluster of transports on 127.0.0.1 with
 * ephemeral ports, and a raw socket that speaks the wire protocol by hand (to send what a correct
 * transport never would). Used only by tests; every helper's wait has a timeout.
 */
import { connect, type Socket } from "node:net";
import { assert } from "../lib/assert.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import { encodeFrame, type Frame, FrameDecoder, FrameType, protocolVersion } from "./frame.ts";
import { encodeHello } from "./hello.ts";
import { TcpTransport } from "./tcp-transport.ts";
import type { TcpTransportOptions } from "./tcp-transport-options.ts";
import type { PeerState, PeerStats } from "./transport.ts";

export const clusterId = "test-cluster";
export const waitMsMax = 5000;

/** Polls `condition` every few milliseconds; rejects after `timeoutMs` naming `what`. */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = waitMsMax): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves like `promise`, or rejects after `timeoutMs`. */
export async function withTimeout<T>(what: string, promise: Promise<T>, timeoutMs = waitMsMax): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export type LogRecord = { level: string; event: string; fields: Readonly<Record<string, unknown>> };
export type Received = { from: NodeId; body: Uint8Array };

/** A transport plus everything its callbacks reported. */
export type Node = {
  readonly id: NodeId;
  transport: TcpTransport;
  readonly received: Received[];
  readonly logs: LogRecord[];
  readonly peerStates: { peer: NodeId; state: PeerState }[];
};

export type NodeOverrides = Partial<Omit<TcpTransportOptions, "onMessage" | "onPeerState" | "onLog">>;

export const fastOptions = {
  reconnectDelayMsMin: 10,
  reconnectDelayMsMax: 100,
  handshakeTimeoutMs: 2000,
  closeTimeoutMs: 200,
} as const;

/** Builds (not starts) a node listening on 127.0.0.1; peers without an address are not dialled. */
export function makeNode(
  id: string,
  peers: Map<NodeId, { host: string; port: number } | null>,
  overrides: NodeOverrides = {},
): Node {
  const node: Node = {
    id: nodeId(id),
    transport: undefined as unknown as TcpTransport,
    received: [],
    logs: [],
    peerStates: [],
  };
  node.transport = new TcpTransport({
    clusterId,
    selfId: node.id,
    listen: { host: "127.0.0.1", port: 0 },
    peers,
    ...fastOptions,
    ...overrides,
    onMessage: (from, body) => node.received.push({ from, body }),
    onPeerState: (peer, state) => node.peerStates.push({ peer, state }),
    onLog: (level, event, fields) => node.logs.push({ level, event, fields }),
  });
  return node;
}

/** Starts one node per id, all knowing each other, then tells each the others' addresses. */
export async function startCluster(
  ids: readonly string[],
  overrides: NodeOverrides = {},
  extraPeers: readonly string[] = [],
): Promise<Node[]> {
  const nodes = ids.map((id) => {
    const peers = new Map<NodeId, null>();
    for (const other of [...ids, ...extraPeers]) if (other !== id) peers.set(nodeId(other), null);
    return makeNode(id, peers, overrides);
  });
  await Promise.all(nodes.map((n) => withTimeout(`start ${n.id}`, n.transport.start())));
  for (const node of nodes) {
    for (const other of nodes)
      if (other !== node) node.transport.setPeerAddress(other.id, other.transport.listenAddress());
  }
  return nodes;
}

export async function stopAll(nodes: readonly Node[]): Promise<void> {
  await Promise.all(nodes.map((n) => withTimeout(`stop ${n.id}`, n.transport.stop())));
}

export function peerStats(node: Node, peer: string): PeerStats {
  const stats = node.transport.stats().peers.find((p) => p.peer === peer);
  assert(stats !== undefined, `no stats for peer ${peer}`);
  return stats;
}

export function isConnected(node: Node, peer: string): boolean {
  return peerStats(node, peer).connected;
}

export function hasLog(node: Node, event: string, fields: Record<string, unknown> = {}): boolean {
  return node.logs.some(
    (l) => l.event === event && Object.entries(fields).every(([k, v]) => l.fields[k] === v),
  );
}

/** A hand-driven peer connection: sends raw bytes, records frames received and when it closes. */
export type RawPeer = {
  readonly socket: Socket;
  readonly frames: Frame[];
  readonly closed: Promise<void>;
  isClosed(): boolean;
};

export async function connectRaw(port: number): Promise<RawPeer> {
  const socket = connect({ host: "127.0.0.1", port });
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  const frames: Frame[] = [];
  let isClosed = false;
  socket.on("data", (chunk: Buffer) => frames.push(...decoder.push(chunk).frames));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      isClosed = true;
      resolve();
    }),
  );
  await withTimeout("raw connect", new Promise((resolve) => socket.once("connect", resolve)));
  return { socket, frames, closed, isClosed: () => isClosed };
}

export function helloFrame(id: string, options: { cluster?: string; incarnation?: string } = {}): Uint8Array {
  return encodeFrame(
    FrameType.hello,
    encodeHello({
      protocolVersion,
      incarnation: options.incarnation ?? "00000000000000aa",
      clusterId: options.cluster ?? clusterId,
      nodeId: id,
    }),
  );
}

/** A raw peer that completed the handshake as `id` (accepted by `node`). */
export async function handshakeRaw(node: Node, id: string, incarnation?: string): Promise<RawPeer> {
  const raw = await connectRaw(node.transport.listenAddress().port);
  raw.socket.write(helloFrame(id, incarnation === undefined ? {} : { incarnation }));
  await waitFor(`${node.id} accepts raw ${id}`, () => isConnected(node, id) && raw.frames.length > 0);
  return raw;
}

export function randomBody(bytes: number, seed: number): Uint8Array {
  const body = new Uint8Array(bytes);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    body[i] = state & 0xff;
  }
  return body;
}
