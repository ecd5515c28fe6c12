/**
 * `InMemoryTransport`: the test double of `Transport`, for node-level tests without sockets.
 *
 * Transports registered on one `InMemoryNetwork` exchange copies of message bodies. A peer counts as
 * connected when both transports are started and the link between them is up; links can be cut and
 * restored (`setLinkUp`, `isolate`, `heal`) to model partitions. Delivery is FIFO per link (in fact
 * global FIFO) and asynchronous: `"auto"` delivers on the next event-loop turn like a real socket,
 * `"manual"` holds messages until the test calls `deliver()`, for step-by-step scenarios.
 *
 * Like the TCP transport it is best effort: a message sent to a disconnected peer, or beyond
 * `sendQueueMessagesMax` messages in flight on a link, is refused (`send` returns false) and
 * counted; a message in flight when its link goes down is dropped. It never reorders, corrupts or
 * duplicates. Bodies are copied at `send`, so the sender may reuse its buffer.
 */
import { assert } from "../lib/assert.ts";
import { type ByteParts, joinParts } from "../lib/byte-parts.ts";
import type { NodeId } from "../types/ids.ts";
import type { PeerStats, Transport, TransportHandlers, TransportStats } from "./transport.ts";

export type InMemoryDelivery = "auto" | "manual";

type InFlight = { readonly from: NodeId; readonly to: NodeId; readonly body: Uint8Array };

export class InMemoryNetwork {
  readonly delivery: InMemoryDelivery;
  readonly #transports = new Map<NodeId, InMemoryTransport>();
  readonly #linksDown = new Set<string>();
  #inFlight: InFlight[] = [];
  /** In-flight message counts per directed link `from\u0000to`. */
  readonly #inFlightByLink = new Map<string, number>();
  #deliveryScheduled = false;

  constructor(options: { delivery?: InMemoryDelivery } = {}) {
    this.delivery = options.delivery ?? "auto";
  }

  /** Messages sent and not yet delivered or dropped. */
  get inFlightMessages(): number {
    return this.#inFlight.length;
  }

  /** Cuts or restores the link between `a` and `b` (both directions). */
  setLinkUp(a: NodeId, b: NodeId, up: boolean): void {
    assert(a !== b, "a link joins two different nodes");
    const key = linkKey(a, b);
    const before = this.connected(a, b);
    if (up) this.#linksDown.delete(key);
    else this.#linksDown.add(key);
    if (before !== this.connected(a, b)) this.#notifyPair(a, b);
  }

  /** Cuts every link of `node`. */
  isolate(node: NodeId): void {
    for (const other of this.#transports.keys()) if (other !== node) this.setLinkUp(node, other, false);
  }

  /** Restores every link. */
  heal(): void {
    for (const key of [...this.#linksDown]) {
      const [a, b] = key.split("\u0000") as [NodeId, NodeId];
      this.setLinkUp(a, b, true);
    }
  }

  /** Whether `a` and `b` are both started and their link is up. */
  connected(a: NodeId, b: NodeId): boolean {
    const ta = this.#transports.get(a);
    const tb = this.#transports.get(b);
    return ta?.running === true && tb?.running === true && !this.#linksDown.has(linkKey(a, b));
  }

  /** Delivers up to `messagesMax` in-flight messages in order; returns how many were handled. */
  deliver(messagesMax = Number.POSITIVE_INFINITY): number {
    let handled = 0;
    // Bounded by the messages in flight now: deliveries that send more are handled next call.
    const batch = this.#inFlight.splice(0, Math.min(messagesMax, this.#inFlight.length));
    for (const message of batch) {
      handled += 1;
      const key = directedKey(message.from, message.to);
      const count = this.#inFlightByLink.get(key) ?? 0;
      assert(count > 0, "in-flight count out of step with the queue");
      if (count === 1) this.#inFlightByLink.delete(key);
      else this.#inFlightByLink.set(key, count - 1);
      const sender = this.#transports.get(message.from);
      const receiver = this.#transports.get(message.to);
      if (!this.connected(message.from, message.to) || receiver === undefined) {
        sender?.countLost(message.to, message.body.length);
        continue;
      }
      receiver.receive(message.from, message.body);
    }
    return handled;
  }

  register(transport: InMemoryTransport): void {
    assert(!this.#transports.has(transport.selfId), `node ${transport.selfId} registered twice`);
    this.#transports.set(transport.selfId, transport);
  }

  /** Called by a transport whose running state changed: tells every peer that can see it. */
  nodeChanged(node: NodeId): void {
    for (const other of this.#transports.keys()) if (other !== node) this.#notifyPair(node, other);
  }

  enqueue(message: InFlight): void {
    this.#inFlight.push(message);
    const key = directedKey(message.from, message.to);
    this.#inFlightByLink.set(key, (this.#inFlightByLink.get(key) ?? 0) + 1);
    if (this.delivery === "auto" && !this.#deliveryScheduled) {
      this.#deliveryScheduled = true;
      setImmediate(() => {
        this.#deliveryScheduled = false;
        this.deliver();
      });
    }
  }

  inFlightOn(from: NodeId, to: NodeId): number {
    return this.#inFlightByLink.get(directedKey(from, to)) ?? 0;
  }

  #notifyPair(a: NodeId, b: NodeId): void {
    const state = this.connected(a, b) ? "connected" : "disconnected";
    this.#transports.get(a)?.peerStateChanged(b, state);
    this.#transports.get(b)?.peerStateChanged(a, state);
  }
}

export type InMemoryTransportOptions = TransportHandlers & {
  readonly network: InMemoryNetwork;
  readonly selfId: NodeId;
  readonly peers: readonly NodeId[];
  /** Most messages in flight from this node to one peer; more are refused. Default 4096. */
  readonly sendQueueMessagesMax?: number;
};

type MutablePeerStats = { -readonly [K in keyof PeerStats]: PeerStats[K] };

export class InMemoryTransport implements Transport {
  readonly selfId: NodeId;
  readonly #options: InMemoryTransportOptions;
  readonly #network: InMemoryNetwork;
  readonly #stats = new Map<NodeId, MutablePeerStats>();
  readonly #sendQueueMessagesMax: number;
  #state: "new" | "running" | "stopped" = "new";
  #unknownPeerDrops = 0;

  constructor(options: InMemoryTransportOptions) {
    assert(!options.peers.includes(options.selfId), "peers must not contain selfId");
    this.selfId = options.selfId;
    this.#options = options;
    this.#network = options.network;
    this.#sendQueueMessagesMax = options.sendQueueMessagesMax ?? 4096;
    assert(this.#sendQueueMessagesMax >= 1, "sendQueueMessagesMax must be >= 1");
    for (const peer of options.peers) this.#stats.set(peer, emptyStats(peer));
    this.#network.register(this);
  }

  get running(): boolean {
    return this.#state === "running";
  }

  async start(): Promise<void> {
    assert(this.#state === "new", `start() called in state ${this.#state}`);
    this.#state = "running";
    this.#network.nodeChanged(this.selfId);
  }

  addPeer(peer: NodeId, _address: string | null): void {
    assert(peer !== this.selfId, "a node is not its own peer");
    if (this.#stats.has(peer)) return;
    const stats = emptyStats(peer);
    this.#stats.set(peer, stats);
    if (this.running && this.#network.connected(this.selfId, peer)) this.peerStateChanged(peer, "connected");
  }

  removePeer(peer: NodeId): void {
    this.#stats.delete(peer);
  }

  /** Nothing to do: a message is handed to the network when it is sent. */
  flushAtTaskEnd(): void {}

  send(to: NodeId, sent: Uint8Array | ByteParts): boolean {
    assert(sent instanceof Uint8Array || Array.isArray(sent), "send() needs a Uint8Array body or parts");
    const body = sent instanceof Uint8Array ? sent : joinParts(sent);
    const stats = this.#stats.get(to);
    if (stats === undefined) {
      this.#unknownPeerDrops += 1;
      return false;
    }
    const accepted =
      this.running &&
      this.#network.connected(this.selfId, to) &&
      this.#network.inFlightOn(this.selfId, to) < this.#sendQueueMessagesMax;
    if (!accepted) {
      stats.droppedMessages += 1;
      stats.droppedBytes += body.length;
      return false;
    }
    stats.sentMessages += 1;
    stats.sentBytes += body.length;
    this.#network.enqueue({ from: this.selfId, to, body: body.slice() });
    return true;
  }

  stats(): TransportStats {
    const peers = [...this.#stats.values()].map((s) => ({
      ...s,
      connected: this.#network.connected(this.selfId, s.peer),
      queuedMessages: this.#network.inFlightOn(this.selfId, s.peer),
    }));
    return { selfId: this.selfId, peers, refusedConnections: 0, unknownPeerDrops: this.#unknownPeerDrops };
  }

  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    const wasRunning = this.running;
    this.#state = "stopped";
    for (const stats of this.#stats.values()) stats.connected = false;
    if (wasRunning) this.#network.nodeChanged(this.selfId);
  }

  /** Network side: a message for this node. */
  receive(from: NodeId, body: Uint8Array): void {
    const stats = this.#stats.get(from);
    assert(this.running, "delivery to a stopped transport");
    if (stats === undefined) return; // not (or no longer) a peer: refused, as TCP refuses its handshake
    stats.receivedMessages += 1;
    stats.receivedBytes += body.length;
    this.#options.onMessage(from, body);
  }

  /** Network side: a message from this node was dropped in flight. */
  countLost(to: NodeId, bodyBytes: number): void {
    const stats = this.#stats.get(to);
    if (stats === undefined) return;
    stats.droppedMessages += 1;
    stats.droppedBytes += bodyBytes;
  }

  /** Network side: reachability of `peer` may have changed; reports only real transitions. */
  peerStateChanged(peer: NodeId, state: "connected" | "disconnected"): void {
    const stats = this.#stats.get(peer);
    if (stats === undefined || !this.running || stats.connected === (state === "connected")) return;
    stats.connected = state === "connected";
    if (state === "connected") {
      stats.connects += 1;
      stats.reconnects = Math.max(0, stats.connects - 1);
    }
    this.#options.onPeerState?.(peer, state);
  }
}

function directedKey(from: NodeId, to: NodeId): string {
  return `${from}\u0000${to}`;
}

function linkKey(a: NodeId, b: NodeId): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

function emptyStats(peer: NodeId): MutablePeerStats {
  return {
    peer,
    connected: false,
    connection: null,
    queuedMessages: 0,
    queuedBytes: 0,
    socketBufferedBytes: 0,
    droppedMessages: 0,
    droppedBytes: 0,
    expiredMessages: 0,
    sentMessages: 0,
    sentBytes: 0,
    receivedMessages: 0,
    receivedBytes: 0,
    connects: 0,
    reconnects: 0,
    protocolErrors: 0,
  };
}
