/**
 * The simulated clients: they propose writes with mixed durability levels and record what the
 * cluster told them about each write.
 *
 * Every write carries a unique write id in its data, so the checkers can find it in any log or
 * state machine. Clients look for the leader like real ones: they try the node they last heard was
 * the leader, follow NOT_LEADER hints, and otherwise pick a live node at random. A write is never
 * retried under the same id, so applying any id twice is a bug.
 */
import type { Durability } from "../../src/consensus/config.ts";
import type { Effects } from "../../src/consensus/effects.ts";
import type { Prng } from "../../src/lib/prng.ts";
import type { LogIndex, NodeId, Term } from "../../src/types/ids.ts";

export type WriteRecord = {
  readonly writeId: number;
  readonly durability: Durability;
  readonly proposedAtTick: number;
  node: NodeId;
  state: "proposed" | "rejected" | "accepted" | "acknowledged" | "notConfirmed";
  index: LogIndex | null;
  term: Term | null;
  acknowledgedAtTick: number | null;
  notConfirmedReason: string | null;
};

export type DurabilityWeights = Readonly<Record<Durability, number>>;

export class Workload {
  readonly writes = new Map<number, WriteRecord>();
  private nextWriteId = 1;
  private leaderHint: NodeId | null = null;
  private readonly prng: Prng;
  private readonly weights: DurabilityWeights;

  constructor(prng: Prng, weights: DurabilityWeights) {
    this.prng = prng;
    this.weights = weights;
  }

  chooseDurability(): Durability {
    const total = this.weights.local + this.weights.one + this.weights.majority + this.weights.all;
    let pick = this.prng.nextFloat() * total;
    for (const level of ["local", "one", "majority", "all"] as const) {
      pick -= this.weights[level];
      if (pick < 0) return level;
    }
    return "majority";
  }

  chooseTarget(alive: readonly NodeId[]): NodeId | null {
    if (alive.length === 0) return null;
    if (this.leaderHint !== null && alive.includes(this.leaderHint) && this.prng.chance(0.9))
      return this.leaderHint;
    return this.prng.pick(alive);
  }

  /** Registers a new write to propose on `node`; returns its id (also its proposal id suffix). */
  begin(node: NodeId, durability: Durability, nowTick: number): WriteRecord {
    const record: WriteRecord = {
      writeId: this.nextWriteId++,
      durability,
      proposedAtTick: nowTick,
      node,
      state: "proposed",
      index: null,
      term: null,
      acknowledgedAtTick: null,
      notConfirmedReason: null,
    };
    this.writes.set(record.writeId, record);
    return record;
  }

  /** Records every client-visible outcome in one node's Effects. */
  observe(node: NodeId, effects: Effects, nowTick: number): void {
    for (const outcome of effects.proposals) {
      const record = this.writes.get(writeIdOf(outcome.proposalId));
      if (record === undefined) continue;
      if (outcome.accepted) {
        record.state = "accepted";
        record.index = outcome.index;
        record.term = outcome.term;
        this.leaderHint = node;
      } else {
        record.state = "rejected";
        this.leaderHint = outcome.leaderId;
      }
    }
    for (const ack of effects.acknowledged) {
      const record = this.writes.get(writeIdOf(ack.proposalId));
      if (record === undefined) continue;
      record.state = "acknowledged";
      record.acknowledgedAtTick = nowTick;
    }
    for (const failure of effects.notConfirmed) {
      const record = this.writes.get(writeIdOf(failure.proposalId));
      if (record === undefined) continue;
      record.state = "notConfirmed";
      record.notConfirmedReason = failure.reason;
    }
  }

  acknowledged(): WriteRecord[] {
    return [...this.writes.values()].filter((write) => write.state === "acknowledged");
  }
}

export function proposalIdOf(writeId: number): string {
  return `w${writeId}`;
}

export function writeIdOf(proposalId: string): number {
  return Number(proposalId.slice(1));
}
