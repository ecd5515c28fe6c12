/**
 * The simulated host around one consensus core: it carries out Effects in the documented order,
 * with durability decided by the simulator.
 *
 * Each Effects with something to persist becomes a batch with a completion tick (batches complete
 * in order, like a WAL with group commit). Only when a batch completes is it written to the
 * durable log double, are its `afterPersist` messages released, and is `persisted` reported. A
 * crash throws away the core, the pending batches and their messages; a restart builds a new core
 * from the durable log and the state machine, exactly as the real node would recover.
 */

import type { RaftConfig } from "../../src/consensus/config.ts";
import type { Effects } from "../../src/consensus/effects.ts";
import type { Input } from "../../src/consensus/inputs.ts";
import type { Message } from "../../src/consensus/messages.ts";
import { RaftCore } from "../../src/consensus/raft-core.ts";
import { assert } from "../../src/lib/assert.ts";
import { Prng } from "../../src/lib/prng.ts";
import { type LogIndex, logIndex, type NodeId, type Term } from "../../src/types/ids.ts";
import type { LogEntry } from "../../src/types/log-entry.ts";
import { type DurableBatch, MemoryLog } from "./memory-log.ts";
import { MemoryStateMachine, type StateMachineSnapshot } from "./state-machine.ts";

type PendingBatch = DurableBatch & {
  readonly messages: Message[];
  readonly last: { index: LogIndex; term: Term } | null;
  readonly dueTick: number;
};

/** What the node reports to the cluster, which owns the network, the checkers and the workload. */
export type NodeObserver = {
  effects(node: SimNode, input: Input, effects: Effects): void;
  send(node: SimNode, message: Message): void;
  applied(node: SimNode, entry: LogEntry, writeId: number | null): void;
};

export type SimNodeOptions = {
  readonly config: Omit<RaftConfig, "prng">;
  readonly fsyncTicksMax: number;
  /** Take a snapshot and compact once this many entries are applied past the last snapshot. */
  readonly compactEveryEntries: number;
};

/** Entries applied per `apply` call: bounds the work of one tick. */
const applyBatchMax = 1000;

export class SimNode {
  readonly id: NodeId;
  readonly durable = new MemoryLog();
  readonly stateMachine = new MemoryStateMachine();
  core: RaftCore | null;
  incarnation = 0;
  pausedUntilTick = 0;
  private batches: PendingBatch[] = [];
  private readonly options: SimNodeOptions;
  private readonly prng: Prng;
  private readonly observer: NodeObserver;
  private nowTick = 0;

  constructor(options: SimNodeOptions, prng: Prng, observer: NodeObserver) {
    this.id = options.config.id;
    this.options = options;
    this.prng = prng;
    this.observer = observer;
    this.core = this.bootCore();
  }

  get alive(): boolean {
    return this.core !== null;
  }

  private bootCore(): RaftCore {
    this.incarnation++;
    return new RaftCore(
      { ...this.options.config, prng: new Prng(this.prng.nextUint32()) },
      {
        hardState: this.durable.hardState,
        entries: this.durable.entriesAfterSnapshot(),
        snapshotIndex: this.durable.snapshotIndex,
        snapshotTerm: this.durable.snapshotTerm,
        appliedIndex: this.stateMachine.appliedIndex,
      },
    );
  }

  crash(): void {
    assert(this.core !== null, "crash of a dead node");
    this.core = null;
    this.batches = [];
  }

  restart(): void {
    assert(this.core === null, "restart of a live node");
    this.core = this.bootCore();
  }

  step(input: Input, nowTick: number): Effects | null {
    if (this.core === null) return null;
    this.nowTick = nowTick;
    const effects = this.core.step(input);
    this.observer.effects(this, input, effects);
    this.carryOut(effects);
    return effects;
  }

  private carryOut(effects: Effects): void {
    const later: Message[] = [];
    for (const { message, afterPersist } of effects.messages) {
      if (afterPersist) later.push(message);
      else this.observer.send(this, message);
    }
    const hasBatch =
      effects.entries.length > 0 ||
      effects.hardState !== undefined ||
      effects.truncateAfter !== undefined ||
      effects.snapshotRestored !== undefined;
    const previous = this.batches.at(-1);
    if (!hasBatch) {
      // Messages that promise durability wait for every earlier batch, even with nothing of their own.
      if (previous !== undefined) previous.messages.push(...later);
      else for (const message of later) this.observer.send(this, message);
      return;
    }
    const lastEntry = effects.entries.at(-1);
    const delay = this.prng.intBetween(0, this.options.fsyncTicksMax);
    this.batches.push({
      snapshotRestored: effects.snapshotRestored,
      truncateAfter: effects.truncateAfter,
      entries: effects.entries,
      hardState: effects.hardState,
      messages: later,
      last: lastEntry === undefined ? null : { index: lastEntry.index, term: lastEntry.term },
      dueTick: Math.max(previous?.dueTick ?? 0, this.nowTick + delay),
    });
  }

  /** Completes every batch whose fsync is due (all of them with `force`), in order. */
  completePersists(nowTick: number, force = false): void {
    while (this.core !== null) {
      const batch = this.batches[0];
      if (batch === undefined || (!force && batch.dueTick > nowTick)) return;
      this.batches.shift();
      this.durable.write(batch);
      for (const message of batch.messages) this.observer.send(this, message);
      if (batch.last !== null)
        this.step({ type: "persisted", index: batch.last.index, term: batch.last.term }, nowTick);
    }
  }

  /** Applies committed, locally durable entries to the state machine, then reports them applied. */
  apply(nowTick: number): void {
    if (this.core === null) return;
    const target = Math.min(this.core.status().applyThrough, this.stateMachine.appliedIndex + applyBatchMax);
    if (target <= this.stateMachine.appliedIndex) return;
    for (let index = this.stateMachine.appliedIndex + 1; index <= target; index++) {
      const entry = this.durable.entryAt(index);
      assert(entry !== undefined, `node ${this.id} must apply ${index} but it is not durable`);
      const writeId = this.stateMachine.apply(entry);
      this.observer.applied(this, entry, writeId);
    }
    this.step({ type: "applied", index: logIndex(target) }, nowTick);
    this.maybeCompact(nowTick);
  }

  private maybeCompact(nowTick: number): void {
    const applied = this.stateMachine.appliedIndex;
    if (this.core === null || applied - this.durable.snapshotIndex < this.options.compactEveryEntries) return;
    const appliedTerm = this.durable.termAt(applied);
    assert(appliedTerm !== undefined, "applied entry missing from the durable log");
    this.durable.compact(this.stateMachine.snapshot(appliedTerm));
    this.step({ type: "compact", index: applied, term: appliedTerm }, nowTick);
  }

  /** A snapshot arrived: drain the write queue, restore the data durably, then tell the core. */
  receiveSnapshot(snapshot: StateMachineSnapshot, message: Message, nowTick: number): void {
    if (this.core === null) return;
    this.completePersists(nowTick, true);
    if (snapshot.index > this.stateMachine.appliedIndex) {
      this.stateMachine.restore(snapshot);
      this.durable.installSnapshot(snapshot);
    }
    this.step({ type: "message", message }, nowTick);
  }

  get pendingBatchCount(): number {
    return this.batches.length;
  }
}
