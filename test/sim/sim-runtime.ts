/**
 * The simulated pieces of a node's runtime (`src/node/runtime.ts`): timers on simulated time and
 * a transport over the simulated network. With `SimLogStore` and a real `Store` on a temporary
 * file they let the simulator run the production `BatonNode` unchanged.
 *
 * Determinism: timers fire in (due time, creation order); nothing here reads the wall clock or an
 * unseeded random source, so a run is fixed by its seed.
 */
import { type ByteParts, joinParts } from "../../src/lib/byte-parts.ts";
import type { Cancel, Timers } from "../../src/node/runtime.ts";
import type { Transport, TransportHandlers, TransportStats } from "../../src/transport/transport.ts";
import type { NodeId } from "../../src/types/ids.ts";
import type { SimNetwork } from "./network.ts";

type SimTimer = { dueMs: number; readonly periodMs: number | null; readonly run: () => void };

/** Timers of one node incarnation; the cluster fires them as simulated time passes. */
export class SimTimers implements Timers {
  private readonly timers = new Map<number, SimTimer>();
  /** `soon` callbacks in the order they were asked for; the cluster runs them when it settles. */
  private soonQueue: { readonly id: number; readonly run: () => void }[] = [];
  private readonly cancelledSoon = new Set<number>();
  private nextId = 1;
  private readonly nowMs: () => number;

  constructor(nowMs: () => number) {
    this.nowMs = nowMs;
  }

  after(delayMs: number, run: () => void): Cancel {
    return this.add({ dueMs: this.nowMs() + Math.max(0, delayMs), periodMs: null, run });
  }

  every(periodMs: number, run: () => void): Cancel {
    return this.add({ dueMs: this.nowMs() + periodMs, periodMs, run });
  }

  soon(run: () => void): Cancel {
    const id = this.nextId++;
    this.soonQueue.push({ id, run });
    return () => {
      this.cancelledSoon.add(id);
    };
  }

  /** Runs the `soon` callbacks asked for so far (not those they ask for); false when there were none. */
  fireSoon(): boolean {
    const queue = this.soonQueue;
    if (queue.length === 0) return false;
    this.soonQueue = [];
    for (const { id, run } of queue) {
      if (this.cancelledSoon.delete(id)) continue;
      run();
    }
    return true;
  }

  get size(): number {
    return this.timers.size;
  }

  /**
   * Runs every timer due by now, earliest first (ties in creation order). A periodic timer that
   * fell behind (its node was paused) fires once and then keeps its period from now, as Node's
   * `setInterval` does after the event loop was blocked.
   */
  fireDue(): void {
    const now = this.nowMs();
    const due = [...this.timers].filter(([, timer]) => timer.dueMs <= now);
    due.sort(([idA, a], [idB, b]) => a.dueMs - b.dueMs || idA - idB);
    for (const [id, timer] of due) {
      if (!this.timers.has(id)) continue;
      if (timer.periodMs === null) this.timers.delete(id);
      else timer.dueMs = Math.max(timer.dueMs + timer.periodMs, now + 1);
      timer.run();
    }
  }

  /** A crash: nothing scheduled by the dead incarnation ever runs. */
  clear(): void {
    this.timers.clear();
    this.soonQueue = [];
    this.cancelledSoon.clear();
  }

  private add(timer: SimTimer): Cancel {
    const id = this.nextId++;
    this.timers.set(id, timer);
    return () => {
      this.timers.delete(id);
    };
  }
}

/**
 * One node's transport over the simulated network. Like the TCP transport it talks only with its
 * peers: the peers it was started with (the bootstrap configuration's other members) and those
 * the node layer adds as the configuration changes. A message to a node that is not a peer is
 * refused and counted; one from a node that is not a peer is dropped on arrival, as a TCP
 * handshake from it would be refused.
 */
export class SimTransport implements Transport {
  readonly selfId: NodeId;
  readonly handlers: TransportHandlers;
  private readonly network: SimNetwork;
  private readonly nowTick: () => number;
  private readonly peers: Set<NodeId>;
  private stopped = false;
  private unknownPeerDrops = 0;
  private refusedFromStrangers = 0;

  constructor(parts: {
    selfId: NodeId;
    peers: Iterable<NodeId>;
    handlers: TransportHandlers;
    network: SimNetwork;
    nowTick: () => number;
  }) {
    this.selfId = parts.selfId;
    this.peers = new Set(parts.peers);
    this.handlers = parts.handlers;
    this.network = parts.network;
    this.nowTick = parts.nowTick;
  }

  async start(): Promise<void> {}

  addPeer(peer: NodeId, _address: string | null): void {
    this.peers.add(peer);
  }

  removePeer(peer: NodeId): void {
    this.peers.delete(peer);
  }

  /** Nothing to do: the simulated network takes a message when it is sent. */
  flushAtTaskEnd(): void {}

  send(to: NodeId, sent: Uint8Array | ByteParts): boolean {
    const body = sent instanceof Uint8Array ? sent : joinParts(sent);
    if (this.stopped) return false;
    if (!this.peers.has(to)) {
      this.unknownPeerDrops++;
      return false;
    }
    this.network.send({ from: this.selfId, to, body }, this.nowTick());
    return true;
  }

  /** A message arrives from the network; one from a node that is not a peer is refused. */
  receive(from: NodeId, body: Uint8Array): void {
    if (this.stopped) return;
    if (!this.peers.has(from)) {
      this.refusedFromStrangers++;
      return;
    }
    this.handlers.onMessage(from, body);
  }

  stats(): TransportStats {
    return {
      selfId: this.selfId,
      peers: [],
      refusedConnections: this.refusedFromStrangers,
      unknownPeerDrops: this.unknownPeerDrops,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }

  /** The process died: it sends nothing more. */
  kill(): void {
    this.stopped = true;
  }
}
