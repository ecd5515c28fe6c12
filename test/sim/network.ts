/**
 * The simulated network: delays, drops, duplicates and reorders messages, and partitions nodes
 * (symmetric or one-way). Deterministic: every choice comes from the run's seeded generator.
 *
 * Delivery order is by due tick, ties broken at random, so two messages sent in one order
 * may arrive in the other. Partitions are checked at delivery time, so a message in flight when a
 * partition starts is lost, as on a real network.
 */

import { assert } from "../../src/lib/assert.ts";
import type { Prng } from "../../src/lib/prng.ts";
import type { NodeId } from "../../src/types/ids.ts";

/** A transport message body in flight, exactly as the node's transport handed it over. */
export type Packet = { readonly from: NodeId; readonly to: NodeId; readonly body: Uint8Array };

type InFlight = { readonly packet: Packet; readonly dueTick: number; readonly order: number };

export type NetworkFaults = {
  dropRate: number;
  duplicateRate: number;
  delayTicksMin: number;
  delayTicksMax: number;
};

/** Packets in flight at once; beyond it the simulation is broken (a message storm), not the network. */
export const packetsInFlightMax = 200_000;

export class SimNetwork {
  private inFlight: InFlight[] = [];
  private readonly blocked = new Set<string>();
  faults: NetworkFaults;
  readonly stats = { sent: 0, dropped: 0, duplicated: 0, partitionDropped: 0 };
  private readonly prng: Prng;

  constructor(prng: Prng, faults: NetworkFaults) {
    this.prng = prng;
    this.faults = faults;
  }

  send(packet: Packet, nowTick: number): void {
    this.stats.sent++;
    if (this.prng.chance(this.faults.dropRate)) {
      this.stats.dropped++;
      return;
    }
    const copies = this.prng.chance(this.faults.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let copy = 0; copy < copies; copy++) {
      const delay = this.prng.intBetween(this.faults.delayTicksMin, this.faults.delayTicksMax);
      this.inFlight.push({ packet, dueTick: nowTick + delay, order: this.prng.nextUint32() });
    }
    assert(this.inFlight.length <= packetsInFlightMax, "packets in flight beyond their bound");
  }

  /** Packets due by `nowTick`, in delivery order, minus those a partition swallows. */
  takeDue(nowTick: number): Packet[] {
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const item of this.inFlight) (item.dueTick <= nowTick ? due : rest).push(item);
    this.inFlight = rest;
    due.sort((a, b) => a.dueTick - b.dueTick || a.order - b.order);
    const delivered: Packet[] = [];
    for (const { packet } of due) {
      if (this.isBlocked(packet.from, packet.to)) this.stats.partitionDropped++;
      else delivered.push(packet);
    }
    return delivered;
  }

  /** Drops every packet `from` sent that is still in flight. */
  dropFrom(from: NodeId): void {
    const before = this.inFlight.length;
    this.inFlight = this.inFlight.filter((item) => item.packet.from !== from);
    this.stats.dropped += before - this.inFlight.length;
  }

  /** Puts a packet back for a later tick (its receiver is paused). */
  postpone(packet: Packet, dueTick: number): void {
    this.inFlight.push({ packet, dueTick, order: this.prng.nextUint32() });
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  cut(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Symmetric partition between two groups. */
  partition(left: readonly NodeId[], right: readonly NodeId[]): void {
    for (const a of left) {
      for (const b of right) {
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  isolate(node: NodeId, all: readonly NodeId[]): void {
    this.partition(
      [node],
      all.filter((other) => other !== node),
    );
  }

  healPartitions(): void {
    this.blocked.clear();
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  get inFlightCount(): number {
    return this.inFlight.length;
  }
}
