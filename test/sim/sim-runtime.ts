/**
 * The simulated pieces of a node's runtime (`src/node/runtime.ts`): timers on simulated time and
 * a transport over the simulated network. With `SimLogStore` and a real `Store` on a temporary
 * file they let the simulator run the production `BatonNode` unchanged.
 *
 * Determinism: timers fire in (due time, creation order); nothing here reads the wall clock or an
 * unseeded random source, so a run is fixed by its seed.
 */
import type { Cancel, Timers } from "../../src/node/runtime.ts";
import type { Transport, TransportHandlers, TransportStats } from "../../src/transport/transport.ts";
import type { NodeId } from "../../src/types/ids.ts";
import type { SimNetwork } from "./network.ts";

type SimTimer = { dueMs: number; readonly periodMs: number | null; readonly run: () => void };

/** Timers of one node incarnation; the cluster fires them as simulated time passes. */
export class SimTimers implements Timers {
  private readonly timers = new Map<number, SimTimer>();
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
  }

  private add(timer: SimTimer): Cancel {
    const id = this.nextId++;
    this.timers.set(id, timer);
    return () => {
      this.timers.delete(id);
    };
  }
}

/** One node's transport over the simulated network. */
export class SimTransport implements Transport {
  readonly selfId: NodeId;
  readonly handlers: TransportHandlers;
  private readonly network: SimNetwork;
  private readonly nowTick: () => number;
  private stopped = false;

  constructor(selfId: NodeId, handlers: TransportHandlers, network: SimNetwork, nowTick: () => number) {
    this.selfId = selfId;
    this.handlers = handlers;
    this.network = network;
    this.nowTick = nowTick;
  }

  async start(): Promise<void> {}

  /** The simulated network reaches every node by id; the peer set is the node layer's to keep. */
  addPeer(_peer: NodeId, _address: string | null): void {}

  removePeer(_peer: NodeId): void {}

  send(to: NodeId, body: Uint8Array): boolean {
    if (this.stopped) return false;
    this.network.send({ from: this.selfId, to, body }, this.nowTick());
    return true;
  }

  stats(): TransportStats {
    return { selfId: this.selfId, peers: [], refusedConnections: 0 };
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }

  /** The process died: it sends nothing more. */
  kill(): void {
    this.stopped = true;
  }
}
