/**
 * A `LogStore` (`src/wal/log-store.ts`) with crash semantics, for the simulator.
 *
 * Every operation changes the in-memory view at once (as the WAL's does) and becomes durable only
 * when the simulator says its fsync completed: operations complete in call order, each after a
 * seeded delay, and only then is it written to the `SimDisk` and its promise resolved. A crash
 * throws the pending operations away unresolved; the next incarnation opens the disk as it is, so
 * whatever was not synced is lost, exactly what a crash does to the real WAL.
 */
import { assert } from "../../src/lib/assert.ts";
import type { Prng } from "../../src/lib/prng.ts";
import type { RecoveredLog } from "../../src/node/runtime.ts";
import { type LogIndex, logIndex, type Position, type Term, term } from "../../src/types/ids.ts";
import type { HardState, LogEntry } from "../../src/types/log-entry.ts";
import type { CompactionPoint, LogStore } from "../../src/wal/log-store.ts";

/** The durable image of one node's log: survives crashes. */
export class SimDisk {
  entries: LogEntry[] = [];
  hardState: HardState = { term: term(0), votedFor: null };
  point: CompactionPoint = { index: logIndex(0), term: term(0) };

  recover(): RecoveredLog {
    return { entries: [...this.entries], hardState: this.hardState, compactionPoint: this.point };
  }

  /** The disk is replaced by an empty one. */
  wipe(): void {
    this.entries = [];
    this.hardState = { term: term(0), votedFor: null };
    this.point = { index: logIndex(0), term: term(0) };
  }

  /**
   * Storage damage healed as the WAL's recovery heals it (`src/wal/recovery.ts`): every entry from
   * `firstLostIndex` on is gone, and the hard state moves to the next term with no vote and the
   * last position held before (the WAL's bound is exact when the records after the damage are
   * intact). A log left wholly below the compaction point is discarded, as recovery does.
   */
  loseEntriesFrom(firstLostIndex: number): void {
    const last = this.entries.at(-1);
    if (last === undefined || last.index < firstLostIndex) return;
    const lost: Position = { index: last.index, term: this.hardState.term };
    const earlier = this.hardState.promised;
    const promised =
      earlier !== undefined &&
      (earlier.term > lost.term || (earlier.term === lost.term && earlier.index > lost.index))
        ? earlier
        : lost;
    this.hardState = { term: term(this.hardState.term + 1), votedFor: null, promised };
    this.entries = this.entries.filter((entry) => entry.index < firstLostIndex);
    if ((this.entries.at(-1)?.index ?? 0) < this.point.index) this.entries = [];
  }
}

type PendingOperation = {
  readonly dueTick: number;
  readonly apply: (disk: SimDisk) => void;
  readonly resolve: () => void;
};

/** Operations waiting for their fsync; beyond it the simulation is broken, not the disk. */
const pendingOperationsMax = 100_000;

export class SimLogStore implements LogStore {
  private readonly disk: SimDisk;
  private readonly prng: Prng;
  private readonly fsyncTicksMax: number;
  private readonly nowTick: () => number;
  private view: LogEntry[];
  private point: CompactionPoint;
  private state: HardState;
  private pending: PendingOperation[] = [];
  private durableThrough: LogIndex;

  constructor(disk: SimDisk, prng: Prng, fsyncTicksMax: number, nowTick: () => number) {
    this.disk = disk;
    this.prng = prng;
    this.fsyncTicksMax = fsyncTicksMax;
    this.nowTick = nowTick;
    this.view = [...disk.entries];
    this.point = disk.point;
    this.state = disk.hardState;
    this.durableThrough = this.lastIndex;
  }

  get firstIndex(): LogIndex {
    return logIndex(this.point.index + 1);
  }
  get lastIndex(): LogIndex {
    return this.view.at(-1)?.index ?? this.point.index;
  }
  get lastTerm(): Term {
    return this.view.at(-1)?.term ?? this.point.term;
  }
  get durableIndex(): LogIndex {
    return this.durableThrough;
  }
  get compactionPoint(): CompactionPoint {
    return this.point;
  }
  get hardState(): HardState {
    return this.state;
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    for (const entry of entries) {
      assert(
        entry.index === this.lastIndex + 1,
        `append ${entry.index} continues the log at ${this.lastIndex}`,
      );
      this.view.push(entry);
    }
    const last = this.lastIndex;
    const copy = [...entries];
    return this.schedule((disk) => {
      disk.entries.push(...copy);
      this.durableThrough = last;
    });
  }

  saveHardState(state: HardState): Promise<void> {
    assert(state.term >= this.state.term, "hard state term never decreases");
    this.state = state;
    return this.schedule((disk) => {
      disk.hardState = state;
    });
  }

  truncateAfter(index: LogIndex): Promise<void> {
    assert(index >= this.point.index, "truncate above the compaction point");
    this.view = this.view.filter((entry) => entry.index <= index);
    this.durableThrough = logIndex(Math.min(this.durableThrough, index));
    return this.schedule((disk) => {
      disk.entries = disk.entries.filter((entry) => entry.index <= index);
    });
  }

  compact(index: LogIndex, entryTerm: Term, config?: string): Promise<void> {
    if (index <= this.point.index) return Promise.resolve();
    this.view = this.view.filter((entry) => entry.index > index);
    this.point = config === undefined ? { index, term: entryTerm } : { index, term: entryTerm, config };
    const point = this.point;
    return this.schedule((disk) => {
      disk.entries = disk.entries.filter((entry) => entry.index > index);
      disk.point = point;
    });
  }

  resetToSnapshot(index: LogIndex, snapshotTerm: Term, config?: string): Promise<void> {
    this.view = [];
    this.point = config === undefined ? { index, term: snapshotTerm } : { index, term: snapshotTerm, config };
    const point = this.point;
    return this.schedule((disk) => {
      disk.entries = [];
      disk.point = point;
    });
  }

  termAt(index: LogIndex): Term | null {
    if (index === this.point.index) return this.point.term;
    return this.view[index - this.point.index - 1]?.term ?? null;
  }

  entries(from: LogIndex, toExclusive: LogIndex): LogEntry[] {
    return this.view.slice(from - this.point.index - 1, toExclusive - this.point.index - 1);
  }

  onDurable(): void {}

  async close(): Promise<void> {}

  /** Completes, in order, every operation whose fsync is due. */
  completeDue(nowTick: number): void {
    while (this.pending.length > 0 && (this.pending[0] as PendingOperation).dueTick <= nowTick) {
      const operation = this.pending.shift() as PendingOperation;
      operation.apply(this.disk);
      operation.resolve();
    }
  }

  /** The process died: pending operations never reach the disk and never resolve. */
  crash(): void {
    this.pending = [];
  }

  private schedule(apply: (disk: SimDisk) => void): Promise<void> {
    const previousDue = this.pending.at(-1)?.dueTick ?? 0;
    const dueTick = Math.max(previousDue, this.nowTick() + this.prng.intBetween(0, this.fsyncTicksMax));
    assert(this.pending.length < pendingOperationsMax, "pending log operations beyond their bound");
    return new Promise((resolve) => this.pending.push({ dueTick, apply, resolve }));
  }
}
