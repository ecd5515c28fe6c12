/**
 * The seam between the node layer and the network: a `Transport` moves opaque message bodies
 * between the nodes of one cluster.
 *
 * Contract shared by every implementation (`TcpTransport`, `InMemoryTransport`):
 * - Delivery is best effort: a message may be dropped (queue full, peer down, connection lost) but
 *   is never corrupted, duplicated or delivered to the wrong node, and messages from one sender to
 *   one receiver in one lane (`SendLane`) that do arrive, arrive in the order they were sent while
 *   a connection lasts. An `urgent` message may overtake `ordered` ones queued or being written
 *   before it, never the other way round. Raft tolerates loss and reordering and retransmits on its
 *   own (Raft §5.3), so the transport never retries.
 * - `send` never blocks and never throws on network conditions; it returns false when the message
 *   was not accepted, and the drop is counted in `stats()`. A message to a node that is not a peer
 *   (never added, or removed) is refused the same way and counted in `unknownPeerDrops`.
 * - The peer set changes at runtime (`addPeer`, `removePeer`) as the cluster's membership does:
 *   a removed peer's connections close, its queue is discarded, and its messages are no longer
 *   delivered; connections from a node that is not a peer are refused at the handshake.
 * - Callbacks run on the event loop; an exception thrown by `onMessage` is a bug of the caller and
 *   is not caught.
 * The transport knows nothing of consensus messages: the node layer encodes them into bytes.
 */
import type { ByteParts } from "../lib/byte-parts.ts";
import type { NodeId } from "../types/ids.ts";

export type PeerState = "connected" | "disconnected";
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A structured log sink: `event` is a stable dotted name, `fields` are JSON-safe details. */
export type TransportLog = (
  level: LogLevel,
  event: string,
  fields: Readonly<Record<string, unknown>>,
) => void;

/**
 * `ordered`: the default; kept in order with the other ordered messages to the same peer (log
 * appends, snapshot chunks). `urgent`: small messages whose delay costs liveness (heartbeats, votes,
 * acknowledgements); they pass ordered messages still queued or being written in pieces, so a
 * heartbeat never waits behind a large log entry. A transport may deliver both lanes in one order
 * (the in-memory one does).
 */
export type SendLane = "ordered" | "urgent";

/** Callbacks the layer above hands to a transport at construction. */
export type TransportHandlers = {
  /** A complete message from `from`. The body owns its memory; the receiver may keep it. */
  readonly onMessage: (from: NodeId, body: Uint8Array) => void;
  /** The peer became reachable or unreachable (one connection per peer; replacements are silent). */
  readonly onPeerState?: (peer: NodeId, state: PeerState) => void;
  readonly onLog?: TransportLog;
};

/** The live connection to a peer, for status pages and tests. */
export type ConnectionInfo = {
  /** Which side opened the connection. */
  readonly dialedBy: NodeId;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
};

export type PeerStats = {
  readonly peer: NodeId;
  readonly connected: boolean;
  readonly connection: ConnectionInfo | null;
  /** Messages accepted by `send` and not yet handed to the socket (wholly), in either lane. */
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Bytes handed to the socket that the kernel has not taken yet. */
  readonly socketBufferedBytes: number;
  /** Messages refused by `send` (queue full, too large, stopped) or discarded after queueing. */
  readonly droppedMessages: number;
  readonly droppedBytes: number;
  /** The part of `droppedMessages` discarded because they waited longer than the age bound. */
  readonly expiredMessages: number;
  /** Message frames (and their body bytes) handed to the socket. */
  readonly sentMessages: number;
  readonly sentBytes: number;
  readonly receivedMessages: number;
  readonly receivedBytes: number;
  /** Connections established (handshake completed) with this peer, and those after the first. */
  readonly connects: number;
  readonly reconnects: number;
  /** Connections to or from this peer closed because of a bad frame or a refused handshake. */
  readonly protocolErrors: number;
};

export type TransportStats = {
  readonly selfId: NodeId;
  readonly peers: readonly PeerStats[];
  /** Inbound connections closed before they could be attributed to a configured peer. */
  readonly refusedConnections: number;
  /** Messages refused because their destination was not a peer. */
  readonly unknownPeerDrops?: number;
};

export interface Transport {
  readonly selfId: NodeId;
  /** Starts listening and connecting; resolves once the transport accepts connections. */
  start(): Promise<void>;
  /**
   * Queues `body` for `to` in `lane` (default `ordered`); false when it was not accepted (counted).
   * A body given as parts (in order) is one message; a large one is sent without joining them.
   */
  send(to: NodeId, body: Uint8Array | ByteParts, lane?: SendLane): boolean;
  /**
   * Makes `peer` a peer, dialled at `address` (`host:port`, IPv6 hosts in brackets) or, with null,
   * only accepted when it connects. For a peer already known, replaces its address when it differs.
   */
  addPeer(peer: NodeId, address: string | null): void;
  /**
   * Writes what is queued for every peer once the current task ends (a microtask), not when the
   * event loop's turn ends: for a caller that itself runs at a turn's end (`setImmediate`), where
   * waiting for the next turn only delays the batch it just queued. A transport without per-turn
   * batching does nothing.
   */
  flushAtTaskEnd(): void;
  /** Stops talking to `peer`: closes its connections and discards what is queued for it. */
  removePeer(peer: NodeId): void;
  stats(): TransportStats;
  /** Closes everything; bounded in time; queued messages are discarded. Idempotent. */
  stop(): Promise<void>;
}

export function noopLog(): void {}

/** `host:port` or `[v6]:port` as a host and a port; null when it is neither. */
export function parseHostPort(text: string): { readonly host: string; readonly port: number } | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1] ?? match[2] ?? "", port };
}
