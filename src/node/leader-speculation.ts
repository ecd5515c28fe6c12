/**
 * Leader speculation: the leader runs each write batch once, inside one open SQLite transaction,
 * at the log index it is about to propose, and commits that transaction only when Raft has
 * committed the last batch in it (DESIGN.md §1; the store's side is `Store.execute`).
 *
 * Rules kept here, and nowhere else:
 * - Batches run at consecutive indexes right after the applied index (the store asserts it).
 * - The transaction commits when the commit index covers its last batch (`commitCovered`), never
 *   earlier: readers on the other connection must never see a write Raft has not committed.
 * - It rolls back when leadership is lost (`rollback`); batches that still commit later are
 *   applied from the log like any follower's.
 * - Drain: while batches are open the leader's reads lag commits, so new batches pause (the write
 *   gate closes) once the oldest open batch is older than `speculationAgeMsMax`, or as soon as a
 *   reader waits for an index; the open batches then commit and the gate reopens.
 * - A batch the write sandbox ran is adopted into a transaction of its own (`adopt`), which runs with
 *   replica settings; nothing joins it, so the gate stays closed until it commits or rolls back.
 */
import { assert } from "../lib/assert.ts";
import type { Store } from "../store/store.ts";
import type {
  AdoptedBatch,
  AdoptOptions,
  ExecuteOptions,
  ExecuteResult,
  GroupedBatch,
  GroupOptions,
  GroupResult,
  Statement,
} from "../store/types.ts";
import type { LogIndex } from "../types/ids.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { NodeConfig } from "./node-config.ts";
import type { Clock, NodeLog } from "./runtime.ts";

export class LeaderSpeculation {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly config: NodeConfig;
  private readonly applied: IndexWaiters;
  private readonly logger: NodeLog;
  private openedAtMs: number | null = null;

  constructor(store: Store, clock: Clock, config: NodeConfig, applied: IndexWaiters, logger: NodeLog) {
    this.store = store;
    this.clock = clock;
    this.config = config;
    this.applied = applied;
    this.logger = logger;
  }

  /** Batches executed and not yet committed in SQLite. */
  get count(): number {
    return this.store.speculativeCount;
  }

  /** The first and last open batch indexes, or null when none is open. */
  get range(): { first: LogIndex; last: LogIndex } | null {
    const indexes = this.store.speculativeIndexes;
    const first = indexes[0];
    const last = indexes.at(-1);
    return first === undefined || last === undefined ? null : { first, last };
  }

  /** Runs a batch at `index` inside the open transaction; a failing batch leaves no trace. */
  execute(index: LogIndex, statements: readonly Statement[], options: ExecuteOptions): ExecuteResult {
    const result = this.store.execute(index, statements, options);
    this.openedAtMs ??= this.clock.nowMs();
    if (this.config.unsafeNodeBugs?.commitSpeculationEarly === true) this.commitAll();
    return result;
  }

  /** Runs several batches as one entry at `index` (Store.executeGroup); batches that fail leave no trace. */
  executeGroup(index: LogIndex, batches: readonly GroupedBatch[], options: GroupOptions): GroupResult {
    const result = this.store.executeGroup(index, batches, options);
    if (result.payload === null) return result;
    this.openedAtMs ??= this.clock.nowMs();
    if (this.config.unsafeNodeBugs?.commitSpeculationEarly === true) this.commitAll();
    return result;
  }

  /** Opens a transaction of its own holding a batch the write sandbox ran; returns the payload to propose. */
  adopt(index: LogIndex, batch: AdoptedBatch, options: AdoptOptions): { payload: Uint8Array } {
    assert(this.store.speculativeCount === 0, "an adopted batch opens its own transaction");
    const adopted = this.store.adoptBatch(index, batch, options);
    if (options.applyElsewhere !== true) this.openedAtMs = this.clock.nowMs();
    return adopted;
  }

  /** True while new batches should wait for the open ones to commit (see the module header). */
  drainWanted(): boolean {
    if (this.store.speculativeCount === 0) return false;
    if (this.store.holdsAdoptedBatch) return true;
    if (this.openedAtMs !== null && this.clock.nowMs() - this.openedAtMs > this.config.speculationAgeMsMax)
      return true;
    return this.applied.highestTarget() !== null;
  }

  /**
   * Commits the open transaction when `commitIndex` covers its last batch. Returns false when some
   * open batch is not yet committed (nothing changes then).
   */
  commitCovered(commitIndex: LogIndex): boolean {
    const range = this.range;
    assert(range !== null, "commitCovered with no open batch");
    assert(
      range.first === this.store.appliedIndex + 1,
      `open batches start right after the applied index (${range.first} vs ${this.store.appliedIndex})`,
    );
    if (commitIndex < range.last) return false;
    this.commitAll();
    return true;
  }

  /** Leadership lost (or a proposal refused after its batch ran): every open batch is undone. */
  rollback(reason: string): void {
    if (this.store.speculativeCount === 0) return;
    const discarded = this.store.rollbackSpeculative();
    this.openedAtMs = null;
    this.applied.reset(this.store.appliedIndex);
    this.logger("info", "speculation.rolled-back", { batches: discarded.length, reason });
  }

  private commitAll(): void {
    const range = this.range;
    assert(range !== null, "commit with no open batch");
    this.store.commitSpeculative(range.last);
    this.openedAtMs = null;
  }
}
