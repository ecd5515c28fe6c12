/**
 * `TcpTransport`: the cluster's peer transport over TCP (`node:net`), carrying opaque bodies.
 *
 * Rules (details and rationale in README.md):
 * - At most one connection per peer is active, used in both directions. Both sides dial; when two
 *   handshaken connections to the same peer exist, both ends keep the same one (`#judgeDuplicate`):
 *   a new incarnation wins (the peer restarted), a connection older than twice the handshake
 *   timeout loses to one the peer dialled (the peer lost its end), and otherwise, for a
 *   simultaneous dial, the connection dialled by the lower node id wins.
 * - Each peer has two bounded send queues (messages, bytes, age), one per lane (`SendLane`). `send`
 *   never blocks: a message that does not fit is refused and counted. The queues are flushed once
 *   per event-loop turn (`setImmediate`; an urgent message at once, when the task that queued it
 *   ends, and everything queued when a caller that runs at a turn's end asks with
 *   `flushAtTaskEnd`), urgent lane first, in batches, and a message larger than
 *   a batch in pieces (`link-writer.ts`); never while the socket asks for `drain`, so the socket
 *   buffer holds at most one batch or piece beyond its high-water mark and an urgent message waits
 *   behind at most that.
 * - Messages queued for a peer that restarted (its hello carries a new incarnation) are dropped, not
 *   delivered to the new process.
 * - A lost peer is redialled with capped exponential backoff and jitter; a peer without a known
 *   address is not dialled but may connect to us.
 * - No peer input can throw out of this module: bad frames and refused handshakes close that one
 *   connection with a logged reason. `stop()` is bounded by `closeTimeoutMs`.
 */
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { assert } from "../lib/assert.ts";
import { type ByteParts, joinParts, partsBytes } from "../lib/byte-parts.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { NodeId } from "../types/ids.ts";
import { reconnectDelayMs } from "./backoff.ts";
import { Connection, type ConnectionDirection } from "./connection.ts";
import { frameHeaderBytes, protocolVersion } from "./frame.ts";
import { encodeHello, type Hello } from "./hello.ts";
import { flushAtTaskEnd, scheduleFlush, type WriteBounds, writeQueued } from "./link-writer.ts";
import {
  countDropped,
  createPeerLink,
  discardQueued,
  expireQueued,
  forgetPreviousIncarnation,
  type PeerLink,
  peerStats,
} from "./peer-link.ts";
import {
  type PeerAddress,
  type ResolvedTcpTransportOptions,
  resolveTcpTransportOptions,
  type TcpTransportOptions,
} from "./tcp-transport-options.ts";
import {
  type PeerStats,
  parseHostPort,
  type SendLane,
  type Transport,
  type TransportStats,
} from "./transport.ts";

/** Inbound connections that have not finished their handshake; more are closed at once. */
const pendingHandshakesMax = 64;

type RunState = "new" | "running" | "stopping" | "stopped";
type DuplicateVerdict = "peer-restarted" | "stale" | "same-dialer-newer" | "lower-dialer" | "keep-current";

export class TcpTransport implements Transport {
  readonly selfId: NodeId;
  readonly #options: ResolvedTcpTransportOptions;
  readonly #links = new Map<string, PeerLink>();
  readonly #connections = new Set<Connection>();
  readonly #hello: Uint8Array;
  #server: Server | null = null;
  #state: RunState = "new";
  #nextConnectionId = 1;
  #refusedConnections = 0;
  #unknownPeerDrops = 0;
  readonly #queueBounds: { readonly messagesMax: number; readonly bytesMax: number };
  readonly #urgentBounds: { readonly messagesMax: number; readonly bytesMax: number };
  readonly #writeBounds: WriteBounds;
  #sweepTimer: NodeJS.Timeout | null = null;
  #stopped: Promise<void> | null = null;

  constructor(options: TcpTransportOptions) {
    this.#options = resolveTcpTransportOptions(options);
    this.selfId = this.#options.selfId;
    this.#queueBounds = {
      messagesMax: this.#options.sendQueueMessagesMax,
      bytesMax: this.#options.sendQueueBytesMax,
    };
    const { batchBytesMax, frameBytesMax } = this.#options;
    this.#writeBounds = { batchBytesMax, pieceBytesMax: Math.min(batchBytesMax, frameBytesMax) };
    this.#urgentBounds = {
      messagesMax: this.#options.sendQueueMessagesMax,
      bytesMax: this.#options.urgentQueueBytesMax,
    };
    for (const [id, address] of this.#options.peers) {
      this.#links.set(id, createPeerLink(id, address, this.#queueBounds, this.#urgentBounds));
    }
    this.#hello = encodeHello({
      protocolVersion,
      incarnation: this.#options.incarnation,
      clusterId: this.#options.clusterId,
      nodeId: this.selfId,
    });
    assert(this.#links.size === this.#options.peers.size, "one link per configured peer");
  }

  /** Listens, then dials every peer with a known address. Rejects with TRANSPORT_LISTEN_FAILED. */
  async start(): Promise<void> {
    assert(this.#state === "new", `start() called in state ${this.#state}`);
    const server = createServer({ noDelay: true }, (socket) => this.#onInbound(socket));
    this.#server = server;
    const { host, port } = this.#options.listen;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host, port }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      this.#state = "stopped";
      this.#server = null;
      const code = (error as NodeJS.ErrnoException).code ?? "unknown";
      throw new BatonError(
        ErrorCode.TRANSPORT_LISTEN_FAILED,
        `cannot listen on ${host}:${port}: ${code}`,
        { host, port, code },
        { cause: error },
      );
    }
    server.on("error", (error) => this.#log("error", "transport.server.error", { message: error.message }));
    this.#state = "running";
    this.#log("info", "transport.listening", {
      ...this.listenAddress(),
      incarnation: this.#options.incarnation,
    });
    const sweepMs = Math.max(10, Math.floor(this.#options.queuedMessageAgeMsMax / 2));
    this.#sweepTimer = setInterval(() => this.#expireQueues(), sweepMs);
    for (const link of this.#links.values()) this.#dial(link);
  }

  /** The address actually bound (useful with port 0). Only after `start()`. */
  listenAddress(): PeerAddress {
    const address = this.#server?.address();
    assert(
      address !== null && address !== undefined && typeof address === "object",
      "transport is not listening",
    );
    return { host: address.address, port: address.port };
  }

  /** Sets or clears where `peer` is dialled; dials at once if it is not connected. */
  setPeerAddress(peer: NodeId, address: PeerAddress | null): void {
    const link = this.#links.get(peer);
    assert(link !== undefined, `unknown peer ${peer}`);
    if (address !== null) {
      assert(Number.isInteger(address.port) && address.port > 0 && address.port <= 65535, "bad peer port");
    }
    link.address = address;
    if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
    link.reconnectTimer = null;
    link.dialAttempt = 0;
    this.#dial(link);
  }

  addPeer(peer: NodeId, address: string | null): void {
    assert(peer !== this.selfId, "a node is not its own peer");
    const parsed = address === null ? null : parseHostPort(address);
    assert(address === null || parsed !== null, `bad peer address ${address}`);
    const link = this.#links.get(peer);
    if (link !== undefined) {
      const same =
        (link.address === null && parsed === null) ||
        (link.address !== null &&
          parsed !== null &&
          link.address.host === parsed.host &&
          link.address.port === parsed.port);
      if (!same) this.setPeerAddress(peer, parsed);
      return;
    }
    const added = createPeerLink(peer, parsed, this.#queueBounds, this.#urgentBounds);
    this.#links.set(peer, added);
    this.#log("info", "transport.peer.added", { peer, address });
    this.#dial(added);
  }

  removePeer(peer: NodeId): void {
    const link = this.#links.get(peer);
    if (link === undefined) return;
    this.#links.delete(peer);
    if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
    link.reconnectTimer = null;
    discardQueued(link);
    for (const connection of [link.active, link.dialing])
      if (connection !== null) connection.close("peer-removed", { graceful: false });
    link.active = null;
    link.dialing = null;
    this.#log("info", "transport.peer.removed", { peer });
  }

  send(to: NodeId, body: Uint8Array | ByteParts, lane: SendLane = "ordered"): boolean {
    assert(body instanceof Uint8Array || Array.isArray(body), "send() needs a Uint8Array body or parts");
    const bytes = body instanceof Uint8Array ? body.length : partsBytes(body);
    const link = this.#links.get(to);
    if (link === undefined) {
      this.#unknownPeerDrops += 1;
      return false;
    }
    if (this.#state !== "running" || frameHeaderBytes + bytes > this.#options.frameBytesMax) {
      if (this.#state === "running") {
        this.#log("warn", "transport.send.too-large", {
          peer: to,
          bodyBytes: bytes,
          frameBytesMax: this.#options.frameBytesMax,
        });
      }
      countDropped(link, 1, bytes);
      return false;
    }
    const small = frameHeaderBytes + bytes <= this.#writeBounds.pieceBytesMax;
    const queue = lane === "urgent" && small ? link.urgent : link.queue;
    // Parts are kept apart only for a message written in pieces; a small one is joined now.
    if (!queue.push(small && !(body instanceof Uint8Array) ? joinParts(body) : body, this.#options.nowMs())) {
      countDropped(link, 1, bytes);
      return false;
    }
    scheduleFlush(link, queue === link.urgent, this.#flushLink);
    return true;
  }

  flushAtTaskEnd(): void {
    for (const link of this.#links.values()) flushAtTaskEnd(link, this.#flushLink);
  }

  stats(): TransportStats {
    const peers: PeerStats[] = [];
    for (const link of this.#links.values()) {
      peers.push(peerStats(link, this.selfId));
    }
    return {
      selfId: this.selfId,
      peers,
      refusedConnections: this.#refusedConnections,
      unknownPeerDrops: this.#unknownPeerDrops,
    };
  }

  /** Closes the listener and every connection; resolves within about `closeTimeoutMs`. */
  stop(): Promise<void> {
    if (this.#stopped !== null) return this.#stopped;
    this.#stopped = this.#stopNow();
    return this.#stopped;
  }

  async #stopNow(): Promise<void> {
    const wasRunning = this.#state === "running";
    this.#state = "stopping";
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    for (const link of this.#links.values()) {
      if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
      link.reconnectTimer = null;
      discardQueued(link);
    }
    const server = this.#server;
    const closed: Promise<unknown>[] = [...this.#connections].map(
      (connection) => new Promise((resolve) => connection.socket.once("close", resolve)),
    );
    closed.push(
      new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve()))),
    );
    for (const connection of this.#connections) connection.close("transport-stopping", { graceful: true });
    // Each graceful close destroys its socket after closeTimeoutMs, so this wait is bounded; the
    // extra timer is a second bound in case a 'close' event were ever lost.
    let hardStop: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      hardStop = setTimeout(resolve, 2 * this.#options.closeTimeoutMs);
    });
    await Promise.race([Promise.all(closed), deadline]);
    clearTimeout(hardStop);
    for (const connection of this.#connections) connection.socket.destroy();
    this.#state = "stopped";
    if (wasRunning) this.#log("info", "transport.stopped", {});
  }

  #onInbound(socket: Socket): void {
    const pending = [...this.#connections].filter(
      (c) => c.direction === "inbound" && c.state === "handshaking",
    );
    if (this.#state !== "running" || pending.length >= pendingHandshakesMax) {
      this.#refusedConnections += 1;
      socket.destroy();
      return;
    }
    this.#openConnection(socket, "inbound", null);
  }

  #dial(link: PeerLink): void {
    if (this.#state !== "running" || link.address === null) return;
    if (link.active !== null || link.dialing !== null) return;
    const { host, port } = link.address;
    const socket = netConnect({ host, port, noDelay: true });
    link.dialing = this.#openConnection(socket, "outbound", link.id);
    this.#log("debug", "transport.dial", { peer: link.id, host, port, attempt: link.dialAttempt });
  }

  #openConnection(socket: Socket, direction: ConnectionDirection, peer: NodeId | null): Connection {
    const options = this.#options;
    const connection = new Connection(
      socket,
      {
        id: this.#nextConnectionId++,
        direction,
        peer,
        hello: this.#hello,
        frameBytesMax: options.frameBytesMax,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
        closeTimeoutMs: options.closeTimeoutMs,
        keepAliveDelayMs: options.keepAliveDelayMs,
        log: (level, event, fields) => this.#log(level, event, fields),
      },
      {
        onHello: (c, hello) => this.#onHello(c, hello),
        onMessage: (c, body) => this.#onMessage(c, body),
        onDrain: (c) => {
          const link = c.peer === null ? undefined : this.#links.get(c.peer);
          if (link !== undefined) this.#flush(link);
        },
        onClosed: (c, reason, protocolError) => this.#onClosed(c, reason, protocolError),
      },
    );
    this.#connections.add(connection);
    return connection;
  }

  #onHello(connection: Connection, hello: Hello): void {
    const link = this.#links.get(hello.nodeId);
    let refusal: string | null = null;
    if (this.#state !== "running") refusal = "shutting-down";
    else if (hello.clusterId !== this.#options.clusterId) refusal = "cluster-id-mismatch";
    else if (hello.protocolVersion !== protocolVersion) refusal = "protocol-version-mismatch";
    else if (link === undefined) refusal = "unknown-node-id";
    else if (connection.peer !== null && connection.peer !== link.id) refusal = "unexpected-node-id";
    if (refusal !== null || link === undefined) {
      const announced = {
        clusterId: hello.clusterId.slice(0, 64),
        nodeId: hello.nodeId.slice(0, 64),
        version: hello.protocolVersion,
      };
      this.#log("warn", "transport.handshake.refused", {
        ...connection.logFields(),
        reason: refusal,
        announced,
      });
      connection.refuse(refusal ?? "unknown-node-id");
      return;
    }
    connection.accept(link.id, hello.incarnation);
    if (link.dialing === connection) link.dialing = null;
    const dropped = forgetPreviousIncarnation(link, hello.incarnation);
    if (dropped > 0)
      this.#log("info", "transport.queue.dropped-for-restarted-peer", { peer: link.id, messages: dropped });
    this.#adopt(link, connection);
  }

  /** Makes `connection` the peer's active connection, or resolves a duplicate (see module comment). */
  #adopt(link: PeerLink, connection: Connection): void {
    const current = link.active;
    if (current === null) {
      link.active = connection;
      link.activeSinceMs = this.#options.nowMs();
      link.counters.connects += 1;
      link.dialAttempt = 0;
      if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
      link.reconnectTimer = null;
      this.#log("info", "transport.peer.connected", connection.logFields());
      this.#options.onPeerState?.(link.id, "connected");
      scheduleFlush(link, false, this.#flushLink);
      return;
    }
    assert(current !== connection, "connection adopted twice");
    const verdict = this.#judgeDuplicate(link, connection, current);
    const [winner, loser] = verdict === "keep-current" ? [current, connection] : [connection, current];
    link.active = winner;
    if (winner === connection) link.activeSinceMs = this.#options.nowMs();
    this.#log("info", "transport.connection.duplicate", {
      peer: link.id,
      kept: winner.id,
      closed: loser.id,
      verdict,
    });
    // A duplicate's peer is alive and closes the same connection, so close gracefully and let frames
    // in flight arrive; a restarted or stale connection has no live far end, so destroy it.
    loser.close(`duplicate:${verdict}`, {
      graceful: verdict === "keep-current" || verdict === "lower-dialer",
    });
    scheduleFlush(link, false, this.#flushLink);
  }

  /**
   * Decides between two handshaken connections to one peer. Both ends reach the same verdict:
   * - `peer-restarted`: the candidate's hello carries a new incarnation; the old process is gone.
   * - `stale`: the peer dialled although our connection has been up for more than twice the
   *   handshake timeout. A peer dials only when it holds no connection to us, and the two
   *   connections of a simultaneous dial are both up within one handshake timeout of each other,
   *   so the peer has lost its end of ours (half-open): keeping ours would lock it out.
   * - otherwise a simultaneous dial: the connection dialled by the lower node id wins (string
   *   order); between two dialled by the same side, the newer wins (that side gave the old one up).
   */
  #judgeDuplicate(link: PeerLink, candidate: Connection, current: Connection): DuplicateVerdict {
    if (candidate.remoteIncarnation !== current.remoteIncarnation) return "peer-restarted";
    const dialer = (c: Connection): string => (c.direction === "outbound" ? this.selfId : link.id);
    const candidateDialer = dialer(candidate);
    const currentDialer = dialer(current);
    const currentAgeMs = this.#options.nowMs() - link.activeSinceMs;
    if (candidate.direction === "inbound" && currentAgeMs > 2 * this.#options.handshakeTimeoutMs)
      return "stale";
    if (candidateDialer === currentDialer) return "same-dialer-newer";
    return candidateDialer < currentDialer ? "lower-dialer" : "keep-current";
  }

  #onMessage(connection: Connection, body: Uint8Array): void {
    assert(connection.peer !== null, "message on an unattributed connection");
    const link = this.#links.get(connection.peer);
    // A peer removed while its connection closes: its last frames are not delivered.
    if (link === undefined) return;
    link.counters.receivedMessages += 1;
    link.counters.receivedBytes += body.length;
    if (this.#state === "running") this.#options.onMessage(link.id, body);
  }

  #onClosed(connection: Connection, reason: string, protocolError: boolean): void {
    this.#connections.delete(connection);
    const link = connection.peer === null ? undefined : this.#links.get(connection.peer);
    if (link === undefined) {
      if (protocolError) this.#refusedConnections += 1;
      this.#log("debug", "transport.connection.closed", { ...connection.logFields(), reason });
      return;
    }
    if (protocolError) link.counters.protocolErrors += 1;
    if (link.dialing === connection) {
      link.dialing = null;
      this.#log("debug", "transport.dial.failed", { peer: link.id, reason, attempt: link.dialAttempt });
      this.#scheduleDial(link);
    } else if (link.active === connection) {
      link.active = null;
      this.#log("warn", "transport.peer.disconnected", { ...connection.logFields(), reason });
      if (this.#state === "running") this.#options.onPeerState?.(link.id, "disconnected");
      this.#scheduleDial(link);
    } else {
      this.#log("debug", "transport.connection.closed", { ...connection.logFields(), reason });
    }
  }

  #scheduleDial(link: PeerLink): void {
    if (this.#state !== "running" || link.address === null) return;
    if (link.active !== null || link.dialing !== null || link.reconnectTimer !== null) return;
    const bounds = {
      delayMsMin: this.#options.reconnectDelayMsMin,
      delayMsMax: this.#options.reconnectDelayMsMax,
    };
    const delayMs = reconnectDelayMs(link.dialAttempt, bounds, this.#options.random);
    link.dialAttempt += 1;
    link.reconnectTimer = setTimeout(() => {
      link.reconnectTimer = null;
      this.#dial(link);
    }, delayMs);
  }

  /** Hands queued messages to the socket (`link-writer.ts`) until it needs drain. */
  readonly #flushLink = (link: PeerLink): void => this.#flush(link);

  #flush(link: PeerLink): void {
    const connection = link.active;
    if (connection === null || this.#state !== "running") return;
    if (writeQueued(link, connection, this.#writeBounds)) scheduleFlush(link, false, this.#flushLink);
  }

  /** Discards messages that waited longer than `queuedMessageAgeMsMax` (peer down or too slow). */
  #expireQueues(): void {
    const oldestAllowedMs = this.#options.nowMs() - this.#options.queuedMessageAgeMsMax;
    for (const link of this.#links.values()) {
      const messages = expireQueued(link, oldestAllowedMs);
      if (messages > 0) this.#log("debug", "transport.queue.expired", { peer: link.id, messages });
    }
  }

  #log(
    level: Parameters<ResolvedTcpTransportOptions["onLog"]>[0],
    event: string,
    fields: Record<string, unknown>,
  ): void {
    this.#options.onLog(level, event, { node: this.selfId, ...fields });
  }
}
