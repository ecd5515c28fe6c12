/**
 * Options of `TcpTransport`, their defaults, and their validation.
 *
 * Every bound the transport enforces is named here; `resolveTcpTransportOptions` rejects an
 * inconsistent configuration with a `BAD_CONFIG` error before anything is opened, so the transport
 * itself can assert on these relations instead of handling them.
 */
import { randomBytes } from "node:crypto";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { NodeId } from "../types/ids.ts";
import { frameBytesMaxHighest, frameBytesMaxLowest, frameHeaderBytes } from "./frame.ts";
import { helloIdBytesMax } from "./hello.ts";
import { noopLog, type TransportHandlers, type TransportLog } from "./transport.ts";

export type PeerAddress = { readonly host: string; readonly port: number };

export type TcpTransportOptions = TransportHandlers & {
  /** Shared by every node of the cluster; a peer announcing another cluster id is refused. */
  readonly clusterId: string;
  readonly selfId: NodeId;
  readonly listen: PeerAddress;
  /**
   * Every other member and where to dial it. `null` means "a member whose address is not known
   * yet": its inbound connections are accepted but it is not dialled until `setPeerAddress`.
   */
  readonly peers: ReadonlyMap<NodeId, PeerAddress | null>;
  /** Largest frame, header included, sent or accepted. Default 8 MiB. */
  readonly frameBytesMax?: number;
  /** Per-peer send queue bounds. Defaults 16 MiB and 4096 messages. */
  readonly sendQueueBytesMax?: number;
  readonly sendQueueMessagesMax?: number;
  /** Queued messages older than this are discarded rather than sent late. Default 5 s. */
  readonly queuedMessageAgeMsMax?: number;
  /**
   * Most bytes of small frames coalesced into one socket write. A message whose frame is larger than
   * this (or than `frameBytesMax`) is written in pieces of that size, so an urgent message waits
   * behind at most one piece. Default 256 KiB.
   */
  readonly batchBytesMax?: number;
  /**
   * Per-peer bound on the bytes of urgent messages queued (their count is bounded by
   * `sendQueueMessagesMax`, as the ordered lane's is). An urgent message larger than `batchBytesMax`
   * travels in the ordered lane. Default 1 MiB; at least `batchBytesMax`.
   */
  readonly urgentQueueBytesMax?: number;
  /** Reconnect backoff bounds. Defaults 50 ms and 2 s. */
  readonly reconnectDelayMsMin?: number;
  readonly reconnectDelayMsMax?: number;
  /** A connection must complete TCP connect and both hellos within this. Default 5 s. */
  readonly handshakeTimeoutMs?: number;
  /** How long a closing connection may take to flush before it is destroyed. Default 1 s. */
  readonly closeTimeoutMs?: number;
  /** TCP keep-alive initial delay, so a silently dead peer is noticed. Default 5 s. */
  readonly keepAliveDelayMs?: number;
  /** Injected for tests: a float in [0, 1) (backoff jitter). Default `Math.random`. */
  readonly random?: () => number;
  /** Injected for tests: a monotonic clock in milliseconds. Default `performance.now`. */
  readonly nowMs?: () => number;
  /** Injected for tests: 16 hex digits identifying this run. Default random. */
  readonly incarnation?: string;
};

export type ResolvedTcpTransportOptions = Required<Omit<TcpTransportOptions, "onPeerState">> &
  Pick<TcpTransportOptions, "onPeerState"> & { readonly onLog: TransportLog };

const defaults = {
  frameBytesMax: 8 * 1024 * 1024,
  sendQueueBytesMax: 16 * 1024 * 1024,
  sendQueueMessagesMax: 4096,
  queuedMessageAgeMsMax: 5000,
  batchBytesMax: 256 * 1024,
  urgentQueueBytesMax: 1024 * 1024,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2000,
  handshakeTimeoutMs: 5000,
  closeTimeoutMs: 1000,
  keepAliveDelayMs: 5000,
} as const;

export function resolveTcpTransportOptions(options: TcpTransportOptions): ResolvedTcpTransportOptions {
  const resolved: ResolvedTcpTransportOptions = {
    ...defaults,
    random: Math.random,
    nowMs: () => performance.now(),
    incarnation: randomBytes(8).toString("hex"),
    onLog: noopLog,
    ...withoutUndefined(options),
  };
  validate(resolved);
  assert(resolved.sendQueueBytesMax >= resolved.frameBytesMax - frameHeaderBytes, "validated queue bound");
  return resolved;
}

function validate(o: ResolvedTcpTransportOptions): void {
  const idBytes = (text: string) => Buffer.byteLength(text, "utf8");
  check(
    idBytes(o.clusterId) >= 1 && idBytes(o.clusterId) <= helloIdBytesMax,
    "clusterId must be 1-255 bytes",
  );
  check(!o.peers.has(o.selfId), "peers must not contain selfId");
  for (const [peer, address] of o.peers) {
    check(idBytes(peer) <= helloIdBytesMax, `peer id ${peer} is too long`);
    if (address !== null) checkAddress(address, `peer ${peer}`, 1);
  }
  checkAddress(o.listen, "listen", 0);
  check(
    isIntegerIn(o.frameBytesMax, frameBytesMaxLowest, frameBytesMaxHighest),
    "frameBytesMax out of range",
  );
  check(
    isIntegerIn(o.sendQueueBytesMax, o.frameBytesMax - frameHeaderBytes, Number.MAX_SAFE_INTEGER),
    "sendQueueBytesMax must hold at least one largest message (frameBytesMax minus the header)",
  );
  check(isIntegerIn(o.sendQueueMessagesMax, 1, 1_000_000), "sendQueueMessagesMax must be 1..1000000");
  check(isIntegerIn(o.queuedMessageAgeMsMax, 1, 3_600_000), "queuedMessageAgeMsMax must be 1..3600000");
  check(isIntegerIn(o.batchBytesMax, 2 * frameHeaderBytes, 64 * 1024 * 1024), "batchBytesMax out of range");
  check(
    isIntegerIn(o.urgentQueueBytesMax, o.batchBytesMax, Number.MAX_SAFE_INTEGER),
    "urgentQueueBytesMax must be at least batchBytesMax",
  );
  check(isIntegerIn(o.reconnectDelayMsMin, 1, 600_000), "reconnectDelayMsMin must be 1..600000");
  check(
    isIntegerIn(o.reconnectDelayMsMax, o.reconnectDelayMsMin, 600_000),
    "reconnectDelayMsMax must be >= reconnectDelayMsMin",
  );
  check(isIntegerIn(o.handshakeTimeoutMs, 1, 600_000), "handshakeTimeoutMs must be 1..600000");
  check(isIntegerIn(o.closeTimeoutMs, 1, 600_000), "closeTimeoutMs must be 1..600000");
  check(isIntegerIn(o.keepAliveDelayMs, 1, 600_000), "keepAliveDelayMs must be 1..600000");
  check(/^[0-9a-f]{16}$/.test(o.incarnation), "incarnation must be 16 lowercase hex digits");
}

function checkAddress(address: PeerAddress, what: string, portMin: number): void {
  check(typeof address.host === "string" && address.host.length > 0, `${what}: host must be non-empty`);
  check(isIntegerIn(address.port, portMin, 65535), `${what}: port must be ${portMin}..65535`);
}

function isIntegerIn(value: number, min: number, max: number): boolean {
  return Number.isSafeInteger(value) && value >= min && value <= max;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new BatonError(ErrorCode.BAD_CONFIG, `transport: ${message}`);
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
