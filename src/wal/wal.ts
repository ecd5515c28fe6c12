/**
 * The durable replicated log: segmented append-only files with group commit.
 *
 * Role: keep log entries and the hard state (term, vote) on disk so that whatever is reported
 * durable survives a crash. The consensus core decides what to write; this module only writes it.
 *
 * Invariants:
 * - Entries are contiguous: every append starts at `lastIndex + 1` (after any truncation).
 * - `durableIndex <= writtenIndex <= lastIndex`; an index is reported durable only after the
 *   durable writes holding it returned (and the directory was fsynced for a new segment).
 * - Operations are carried out in call order by one worker. Consecutive appends queued while a
 *   write runs are merged into one durable write (group commit).
 * - The first I/O error makes the log unusable: every pending and later call fails with `WAL_IO`,
 *   and no durability is reported for data that may not be on disk. The node must stop.
 * - No write or fsync runs on the event loop once the log is open: appends go through the
 *   asynchronous `DurableWrite` (an O_DSYNC write), hard state, truncation, compaction and snapshot
 *   resets through `SyncFile` (file-sync.ts), awaited in the crash-safe order each method describes.
 *   An operation updates the in-memory view first, so reads between its steps see the log it makes.
 */
import fs from "node:fs";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { sliceParts } from "../lib/byte-parts.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type LogIndex, logIndex, type Position, type Term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import { fsyncDirectory, writeDurableFile } from "./durable-file.ts";
import {
  closeFile,
  createEmptyFile,
  type DurableWrite,
  defaultDurableWrite,
  defaultSyncFile,
  openFile,
  type SyncFile,
  segmentOpenFlags,
  syncDirectory,
  truncateFile,
  unlinkFiles,
} from "./file-sync.ts";
import type { CompactionPoint, LogStore } from "./log-store.ts";
import { encodeRecordParts, type PendingChecksum, writeChecksumsInSteps } from "./record-codec.ts";
import {
  compactionFileName,
  encodeHardState,
  hardStateFileName,
  type RecoveredLog,
  recoverLog,
} from "./recovery.ts";
import { readSegmentEntries, type Segment, segmentFileName, segmentLastIndex } from "./segment-files.ts";

export type WalOptions = {
  /** A new segment is started once the active one reaches this size (a soft limit). */
  readonly segmentBytesMax?: number;
  /** Appends merged into one write and fsync at most; bounds latency of a single flush. */
  readonly groupCommitBytesMax?: number;
  /** Every fsync of the running log (directories, replaced files, cut segments); for fault tests. */
  readonly syncFile?: SyncFile;
  /** Every write of appended records, durable on return (an O_DSYNC write); for fault tests. */
  readonly durableWrite?: DurableWrite;
  /**
   * At open, heal corruption of records written in full (keep the intact prefix, record the loss
   * in the hard state; `recovery.ts`) instead of refusing with WAL_CORRUPT. Default false.
   */
  readonly heal?: boolean;
};

const defaultSegmentBytesMax = 64 * 1024 * 1024;
const defaultGroupCommitBytesMax = 16 * 1024 * 1024;

type Waiter = { resolve: () => void; reject: (error: Error) => void };
type AppendOp = {
  type: "append";
  /** The records' bytes in order (`encodeRecordParts`), each record's size, checksums to write. */
  parts: Buffer[];
  recordBytes: number[];
  pending: PendingChecksum[];
  bytes: number;
  firstIndex: LogIndex;
  lastIndex: LogIndex;
  /** `terms[i]` is the term of entry `firstIndex + i`: `termAt` answers from here until written. */
  terms: Term[];
  waiters: Waiter[];
};
type BarrierOp = { type: "barrier"; run: () => Promise<void>; waiter: Waiter };
type Op = AppendOp | BarrierOp;

/** At open only (recovery found no segment): synchronous, before the node runs. */
function createSegmentAtOpen(directory: string, firstIndex: LogIndex): Segment {
  const segmentPath = path.join(directory, segmentFileName(firstIndex));
  fs.closeSync(fs.openSync(segmentPath, "w"));
  fsyncDirectory(directory);
  return { firstIndex, path: segmentPath, offsets: [], bytes: 0 };
}

export class Wal implements LogStore {
  readonly directory: string;
  private readonly segmentBytesMax: number;
  private readonly groupCommitBytesMax: number;
  private readonly syncFile: SyncFile;
  private readonly durableWrite: DurableWrite;
  private segments: Segment[];
  /** The active segment, open for appends; null while an operation replaces it. */
  private activeFd: number | null;
  private hardStateValue: HardState;
  private compaction: CompactionPoint;
  private last: Position;
  private writtenIndexValue: LogIndex;
  private durableIndexValue: LogIndex;
  private readonly queue: Op[] = [];
  /** The append being written, out of the queue but not yet durable. */
  private flushing: AppendOp | null = null;
  private working = false;
  private failure: BatonError | null = null;
  private closed = false;
  private readonly durableListeners: ((index: LogIndex) => void)[] = [];

  private constructor(directory: string, recovered: RecoveredLog, options: WalOptions) {
    this.directory = directory;
    this.segmentBytesMax = options.segmentBytesMax ?? defaultSegmentBytesMax;
    this.groupCommitBytesMax = options.groupCommitBytesMax ?? defaultGroupCommitBytesMax;
    assert(this.segmentBytesMax >= 1024, "segmentBytesMax of at least 1 KiB");
    this.syncFile = options.syncFile ?? defaultSyncFile;
    this.durableWrite = options.durableWrite ?? defaultDurableWrite;
    this.hardStateValue = recovered.hardState;
    this.compaction = recovered.compactionPoint;
    this.segments = recovered.segments;
    const lastEntry = recovered.entries.at(-1);
    this.last = lastEntry ? { index: lastEntry.index, term: lastEntry.term } : this.compaction;
    this.writtenIndexValue = this.last.index;
    this.durableIndexValue = this.last.index;
    if (this.segments.length === 0)
      this.segments.push(createSegmentAtOpen(directory, logIndex(this.last.index + 1)));
    const active = this.segments.at(-1)!;
    assert(
      segmentLastIndex(active) === this.last.index || active.offsets.length === 0,
      "active segment ends the log",
    );
    this.activeFd = fs.openSync(active.path, segmentOpenFlags());
  }

  /**
   * Opens (creating if needed) the log in `directory`, running recovery. Returns the log and what
   * was recovered: hard state, compaction point and every entry after it.
   */
  static open(directory: string, options: WalOptions = {}): { wal: Wal; recovered: RecoveredLog } {
    fs.mkdirSync(directory, { recursive: true });
    const recovered = recoverLog(directory, { heal: options.heal === true });
    return { wal: new Wal(directory, recovered, options), recovered };
  }

  get firstIndex(): LogIndex {
    return logIndex(this.compaction.index + 1);
  }
  get lastIndex(): LogIndex {
    return this.last.index;
  }
  get lastTerm(): Term {
    return this.last.term;
  }
  get durableIndex(): LogIndex {
    return this.durableIndexValue;
  }
  get compactionPoint(): CompactionPoint {
    return this.compaction;
  }
  get hardState(): HardState {
    return this.hardStateValue;
  }
  get segmentCount(): number {
    return this.segments.length;
  }

  /** Called with the new durable index after each group commit. */
  onDurable(listener: (index: LogIndex) => void): void {
    this.durableListeners.push(listener);
  }

  /**
   * Appends entries that must continue the log at `lastIndex + 1`. Resolves when they are durable.
   * Appends made while a flush is running share the next write and fsync.
   */
  append(entries: readonly LogEntry[]): Promise<void> {
    this.checkUsable();
    assert(entries.length > 0, "append needs entries");
    let previous = this.last;
    const terms: Term[] = [];
    for (const entry of entries) {
      assert(entry.index === previous.index + 1, `append at ${entry.index} must follow ${previous.index}`);
      assert(entry.term >= previous.term, `entry term ${entry.term} below previous term ${previous.term}`);
      previous = { index: entry.index, term: entry.term };
      terms.push(entry.term);
    }
    this.last = previous;
    const { parts, recordBytes, pending } = encodeRecordParts(entries);
    const bytes = recordBytes.reduce((sum, size) => sum + size, 0);
    const first = entries[0]!.index;
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      const tail = this.queue.at(-1);
      if (tail?.type === "append" && tail.bytes + bytes <= this.groupCommitBytesMax) {
        assert(tail.lastIndex + 1 === first, "merged appends are contiguous");
        tail.parts.push(...parts);
        tail.recordBytes.push(...recordBytes);
        tail.pending.push(...pending);
        tail.bytes += bytes;
        tail.lastIndex = previous.index;
        tail.terms.push(...terms);
        tail.waiters.push(waiter);
      } else {
        this.queue.push({
          type: "append",
          parts,
          recordBytes,
          pending,
          bytes,
          firstIndex: first,
          lastIndex: previous.index,
          terms,
          waiters: [waiter],
        });
      }
      this.kick();
    });
  }

  /** Persists the hard state atomically (temporary file, fsync, rename, fsync dir); resolves when durable. */
  saveHardState(state: HardState): Promise<void> {
    this.checkUsable();
    assert(state.term >= this.hardStateValue.term, "hard state term never decreases");
    const content = encodeHardState(state);
    return this.barrier(async () => {
      await writeDurableFile(path.join(this.directory, hardStateFileName), content, this.syncFile);
      this.hardStateValue = state;
    });
  }

  /**
   * Removes every entry after `index` (a follower's divergent suffix). The caller must not truncate
   * committed entries; the log cannot tell which are committed, the core asserts it.
   */
  truncateAfter(index: LogIndex): Promise<void> {
    this.checkUsable();
    assert(index >= this.compaction.index, `truncate at ${index} below the compaction point`);
    if (index >= this.last.index) return Promise.resolve();
    const termAtIndex = index === this.compaction.index ? this.compaction.term : this.termAt(index);
    assert(termAtIndex !== null, `term of entry ${index} is known`);
    this.last = { index, term: termAtIndex };
    return this.barrier(() => this.truncateFiles(index));
  }

  /** Drops entries up to `index` (covered by a snapshot at `index`, `entryTerm`). */
  compact(index: LogIndex, entryTerm: Term, config?: string): Promise<void> {
    this.checkUsable();
    // Entries still queued are written before this runs (operations complete in call order).
    assert(index <= this.last.index, "only entries of the log are compacted");
    if (index <= this.compaction.index) return Promise.resolve();
    return this.barrier(async () => {
      const actual = this.termAt(index);
      assert(actual === entryTerm, `compaction term ${entryTerm} matches entry term ${actual}`);
      // The point is durable before any segment goes: a crash in between leaves extra segments,
      // which the next open deletes, never a log that starts after its compaction point.
      await this.writeCompactionPoint(compactionPoint(index, entryTerm, config));
      const keepFrom = this.segments.findIndex((s) => segmentLastIndex(s) > index);
      const removable = this.segments.slice(0, keepFrom === -1 ? this.segments.length - 1 : keepFrom);
      this.segments = this.segments.slice(removable.length);
      await unlinkFiles(
        removable.map((segment) => segment.path),
        this.directory,
        this.syncFile,
      );
    });
  }

  /** Replaces the whole log by a snapshot point (a follower installing a leader's snapshot). */
  resetToSnapshot(index: LogIndex, snapshotTerm: Term, config?: string): Promise<void> {
    this.checkUsable();
    this.last = { index, term: snapshotTerm };
    return this.barrier(async () => {
      // The point first: once it is durable, a crash at any later step leaves a log that the next
      // open recognises as replaced (recovery.ts) and discards.
      await this.writeCompactionPoint(compactionPoint(index, snapshotTerm, config));
      const replaced = this.segments;
      this.segments = [];
      this.writtenIndexValue = index;
      this.durableIndexValue = index;
      await this.closeActive();
      await unlinkFiles(
        replaced.map((segment) => segment.path),
        this.directory,
        this.syncFile,
      );
      const fresh = await this.createSegment(logIndex(index + 1));
      this.segments = [fresh];
      this.activeFd = await openFile(fresh.path, segmentOpenFlags());
    });
  }

  /** Term of a written entry, or null when `index` is outside the log. */
  termAt(index: LogIndex): Term | null {
    if (index === this.compaction.index) return this.compaction.term;
    if (index <= this.compaction.index || index > this.last.index) return null;
    if (index === this.last.index) return this.last.term;
    const pending = this.pendingTerm(index);
    if (pending !== null) return pending;
    const entries = this.entries(index, logIndex(index + 1));
    return entries[0]?.term ?? null;
  }

  /** Reads written entries in [from, toExclusive) from disk. */
  entries(from: LogIndex, toExclusive: LogIndex): LogEntry[] {
    this.checkUsable();
    assert(from > this.compaction.index, `entry ${from} was compacted`);
    assert(toExclusive <= this.writtenIndexValue + 1, "only written entries can be read");
    return readSegmentEntries(this.segments, from, toExclusive);
  }

  /** Waits for queued work, then closes files. Further calls fail with WAL_CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    // Refuse new calls at once: nothing may be queued behind the final barrier.
    this.closed = true;
    if (this.failure === null) await this.barrier(async () => {}).catch(() => {});
    await this.closeActive();
  }

  /**
   * The term of `index` when it is not yet written: the newest queued (or writing) append that holds
   * it wrote the current entry there, since a later truncation below `index` followed by a new append
   * there would be a newer append. Null when every append holding it has been written.
   */
  private pendingTerm(index: LogIndex): Term | null {
    for (let i = this.queue.length - 1; i >= -1; i--) {
      const op = i === -1 ? this.flushing : this.queue[i]!;
      if (op?.type !== "append" || index < op.firstIndex || index > op.lastIndex) continue;
      const pendingTerm = op.terms[index - op.firstIndex];
      assert(pendingTerm !== undefined, "an append holds a term for each of its entries");
      return pendingTerm;
    }
    return null;
  }

  private checkUsable(): void {
    if (this.failure !== null) throw this.failure;
    if (this.closed) throw new BatonError(ErrorCode.WAL_CLOSED, "the log is closed");
  }

  private barrier(run: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ type: "barrier", run, waiter: { resolve, reject } });
      this.kick();
    });
  }

  private kick(): void {
    if (this.working) return;
    this.working = true;
    void this.work();
  }

  private async work(): Promise<void> {
    while (this.queue.length > 0) {
      const op = this.queue.shift()!;
      try {
        if (op.type === "append") {
          this.flushing = op;
          await this.flush(op);
        } else {
          await op.run();
        }
      } catch (error) {
        this.fail(error);
      } finally {
        this.flushing = null;
      }
      if (this.failure !== null) {
        for (const waiter of op.type === "append" ? op.waiters : [op.waiter]) waiter.reject(this.failure);
        for (const queued of this.queue.splice(0)) {
          for (const waiter of queued.type === "append" ? queued.waiters : [queued.waiter])
            waiter.reject(this.failure);
        }
        break;
      }
      if (op.type === "append") for (const waiter of op.waiters) waiter.resolve();
      else op.waiter.resolve();
    }
    this.working = false;
  }

  private async flush(op: AppendOp): Promise<void> {
    if (op.pending.length > 0) await writeChecksumsInSteps(op.pending);
    let newSegment = false;
    let index = op.firstIndex;
    let record = 0;
    for (let position = 0; record < op.recordBytes.length; ) {
      let active = this.segments.at(-1)!;
      if (active.bytes >= this.segmentBytesMax && active.offsets.length > 0) {
        await this.closeActive();
        active = await this.createSegment(logIndex(index));
        this.segments.push(active);
        this.activeFd = await openFile(active.path, segmentOpenFlags());
        newSegment = true;
      }
      assert(index === segmentLastIndex(active) + 1, "flush continues the active segment");
      // Take whole records until the segment is full (at least one record).
      const chunkStart = position;
      const filePosition = active.bytes;
      const offsets: number[] = [];
      while (
        record < op.recordBytes.length &&
        (offsets.length === 0 || filePosition + position - chunkStart < this.segmentBytesMax)
      ) {
        offsets.push(filePosition + position - chunkStart);
        position += op.recordBytes[record++]!;
      }
      await this.durableWrite(
        this.requireActiveFd(),
        sliceParts(op.parts, chunkStart, position),
        filePosition,
      );
      active.offsets.push(...offsets);
      active.bytes += position - chunkStart;
      index = logIndex(index + offsets.length);
    }
    assert(index === op.lastIndex + 1, "the flush wrote every entry of the batch");
    this.writtenIndexValue = op.lastIndex;
    if (newSegment) await syncDirectory(this.directory, this.syncFile);
    this.durableIndexValue = op.lastIndex;
    for (const listener of this.durableListeners) listener(op.lastIndex);
  }

  /**
   * Cuts the log after `index`: deletes whole later segments newest first and fsyncs the directory,
   * then cuts the segment holding `index + 1` at that record and fsyncs it, so a crash part-way
   * leaves a longer prefix of the old log, never a gap.
   */
  private async truncateFiles(index: LogIndex): Promise<void> {
    const removable = this.segments.filter((s) => s.firstIndex > index);
    this.segments = this.segments.filter((s) => s.firstIndex <= index);
    const holder = this.segments.at(-1);
    let cut: number | null = null;
    if (holder !== undefined && segmentLastIndex(holder) > index) {
      cut = holder.offsets[index + 1 - holder.firstIndex]!;
      holder.offsets.length = index + 1 - holder.firstIndex;
      holder.bytes = cut;
    }
    this.writtenIndexValue = logIndex(Math.min(this.writtenIndexValue, index));
    this.durableIndexValue = logIndex(Math.min(this.durableIndexValue, index));
    await this.closeActive();
    await unlinkFiles(
      removable.map((segment) => segment.path),
      this.directory,
      this.syncFile,
    );
    if (holder === undefined) this.segments.push(await this.createSegment(logIndex(index + 1)));
    else if (cut !== null) await truncateFile(holder.path, cut, this.syncFile);
    this.activeFd = await openFile(this.segments.at(-1)!.path, segmentOpenFlags());
    assert(segmentLastIndex(this.segments.at(-1)!) <= index, "the log ends at or before the cut");
  }

  private async createSegment(firstIndex: LogIndex): Promise<Segment> {
    const segmentPath = path.join(this.directory, segmentFileName(firstIndex));
    await createEmptyFile(segmentPath, this.directory, this.syncFile);
    return { firstIndex, path: segmentPath, offsets: [], bytes: 0 };
  }

  private requireActiveFd(): number {
    assert(this.activeFd !== null, "the active segment is open");
    return this.activeFd;
  }

  /** Closes the active segment's descriptor, once: a number is never closed twice (it may be reused). */
  private async closeActive(): Promise<void> {
    const fd = this.activeFd;
    this.activeFd = null;
    if (fd !== null) await closeFile(fd);
  }

  private async writeCompactionPoint(point: CompactionPoint): Promise<void> {
    const content = Buffer.from(JSON.stringify(point));
    await writeDurableFile(path.join(this.directory, compactionFileName), content, this.syncFile);
    this.compaction = point;
  }

  private fail(error: unknown): void {
    if (this.failure !== null) return;
    this.failure = new BatonError(
      ErrorCode.WAL_IO,
      `log I/O failed; the log is unusable and the node must stop: ${(error as Error).message}`,
      { directory: this.directory },
      { cause: error },
    );
  }
}

function compactionPoint(index: LogIndex, entryTerm: Term, config: string | undefined): CompactionPoint {
  return config === undefined ? { index, term: entryTerm } : { index, term: entryTerm, config };
}
