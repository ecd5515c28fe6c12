/**
 * The snapshot keeper: takes a node's snapshots and compacts its log behind them (Raft §7).
 *
 * Policy: after any step, once `snapshotEntries` entries were applied or `snapshotLogBytes` log
 * bytes appended since the latest snapshot, take one (never two at once). Taking it is online: the
 * store copies its committed state through a read connection of its own while writes and reads go
 * on (the copy's read transaction is pinned when the take starts, so its content is that instant's
 * committed state). Then, in order:
 *   1. the file is renamed to its complete name `snapshot-<index>-<term>.bsnap` and the rename
 *      made durable;
 *   2. older snapshot files are deleted;
 *   3. the log is compacted through `index − compactionTrailEntries` — in memory (the core) and on
 *      disk (the log store) — so a follower a little behind still catches up from the log.
 * A crash between any two steps leaves a state the start-up rules of `snapshot-files.ts` accept.
 *
 * The cost of a snapshot is proportional to the database, not to the log: with a large database
 * raise `snapshotLogBytes` so that snapshots stay rare compared with the writes they cover.
 *
 * Bounds this policy gives the log (in memory, in the core, and on disk):
 * - entries since the compaction point: `compactionTrailEntries` behind the latest snapshot, plus
 *   what was appended since it, which reaches `snapshotEntries` entries or `snapshotLogBytes` bytes
 *   before a take starts, plus what is appended while the take runs;
 * - on disk, those entries and at most one WAL segment more: compaction deletes whole segments, so
 *   the segment holding the compaction point stays. The node sizes segments from the byte threshold
 *   (`walSegmentBytes`), so that this slack is a fixed fraction of it, never a second threshold.
 */
import fs from "node:fs";
import path from "node:path";
import type { StatusSnapshots } from "../api/api-types.ts";
import { memberAttributesOf } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import type { NodeConfig } from "./node-config.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import {
  deleteOlderSnapshots,
  renameDurably,
  type SnapshotRef,
  snapshotFileName,
  takingFileName,
} from "./snapshot-files.ts";

/** A witness's log above the data floor is kept up to this many snapshot intervals (`snapshotEntries`). */
export const witnessRetainedSnapshotIntervals = 8;

/** WAL segments per `snapshotLogBytes`: the disk's slack over the log since the compaction point. */
export const walSegmentsPerSnapshotLog = 8;
/** Segments never smaller than this (fewer files and directory fsyncs for small thresholds)... */
export const walSegmentBytesMin = 1 << 20;
/** ...nor larger than this (the slack stays bounded when the threshold is raised). */
export const walSegmentBytesMax = 64 << 20;

/**
 * The WAL segment size for a snapshot byte threshold: an eighth of it, within
 * [`walSegmentBytesMin`, `walSegmentBytesMax`], so the log on disk exceeds the log since the
 * compaction point by less than one segment (8 MiB at the default 64 MiB threshold).
 */
export function walSegmentBytes(snapshotLogBytes: number): number {
  assert(
    Number.isSafeInteger(snapshotLogBytes) && snapshotLogBytes > 0,
    "the snapshot threshold is positive",
  );
  const bytes = Math.ceil(snapshotLogBytes / walSegmentsPerSnapshotLog);
  const clamped = Math.min(walSegmentBytesMax, Math.max(walSegmentBytesMin, bytes));
  assert(clamped >= walSegmentBytesMin && clamped <= walSegmentBytesMax, "segment size within its bounds");
  return clamped;
}

/**
 * Bytes of the entries the core holds at or below the latest snapshot. At start the loop counts
 * every recovered entry as appended, but those the snapshot covers (the compaction trail behind it)
 * are no log since it: without this a restarted node would take a snapshot at once, while it catches
 * up, whenever its trail alone reaches the byte threshold.
 */
function coveredBytes(loop: ReplicaLoop, latest: SnapshotRef | null): number {
  const core = loop.core;
  const first = core.status().snapshotIndex + 1;
  const last = Math.min(latest?.index ?? 0, core.summary().lastIndex);
  let bytes = 0;
  for (let index = first; index <= last; index++) bytes += core.entryAt(index)?.data.byteLength ?? 0;
  assert(bytes <= loop.appendedBytes, "covered entries are among those the loop counted");
  return bytes;
}

export class SnapshotKeeper {
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly loop: ReplicaLoop;
  private latestRef: SnapshotRef | null;
  /** The loop's appended-bytes counter when the latest snapshot was taken or installed. */
  private bytesMark: number;
  private taking = false;
  private stopped = false;
  /** A snapshot was asked for (a follower replacing a damaged database): take one at once. */
  private wanted = false;
  /** While true (this node's database is damaged, or not verified since it opened), no snapshot is taken of it. */
  private readonly paused: () => boolean;
  private taken = 0;
  private installed = 0;
  private lastDurationMs: number | null = null;
  private lastTakenAtMs: number | null = null;
  /** Snapshot files being sent, with how many transfers read each: never deleted under them. */
  private readonly inUse = new Map<string, number>();

  constructor(
    config: NodeConfig,
    runtime: NodeRuntime,
    loop: ReplicaLoop,
    latest: SnapshotRef | null,
    paused: () => boolean = () => false,
  ) {
    this.config = config;
    this.paused = paused;
    this.runtime = runtime;
    this.loop = loop;
    this.latestRef = latest;
    this.bytesMark = coveredBytes(loop, latest);
  }

  get latest(): SnapshotRef | null {
    return this.latestRef;
  }

  get directory(): string {
    return this.runtime.snapshotDirectory;
  }

  /** Called after every step: starts a snapshot when the policy says so. */
  maybeSnapshot(): void {
    if (this.taking || this.stopped || this.loop.fatal !== null || this.paused()) return;
    const applied = this.runtime.store.appliedIndex;
    const since = applied - (this.latestRef?.index ?? 0);
    if (since <= 0) return;
    const bytes = this.loop.appendedBytes - this.bytesMark;
    if (!this.wanted && since < this.config.snapshotEntries && bytes < this.config.snapshotLogBytes) return;
    this.wanted = false;
    this.taking = true;
    this.take()
      .catch((error: unknown) => this.loop.fail(error instanceof Error ? error : new Error(String(error))))
      .finally(() => {
        this.taking = false;
      });
  }

  /** Takes a snapshot at the next step whatever the thresholds say (when there is anything new). */
  requestTake(): void {
    this.wanted = true;
  }

  /** A snapshot received from the leader was installed: it is the latest now. */
  adoptInstalled(ref: SnapshotRef): void {
    this.installed++;
    this.bytesMark = this.loop.appendedBytes;
    this.replaceLatest(ref);
  }

  /** A transfer reads `ref` until it calls `release`. */
  acquire(ref: SnapshotRef): void {
    this.inUse.set(ref.path, (this.inUse.get(ref.path) ?? 0) + 1);
  }

  release(ref: SnapshotRef): void {
    const count = (this.inUse.get(ref.path) ?? 0) - 1;
    if (count > 0) {
      this.inUse.set(ref.path, count);
      return;
    }
    this.inUse.delete(ref.path);
    const latest = this.latestRef;
    if (latest !== null && latest.path !== ref.path) this.deleteOlder(latest);
  }

  /** No new work after this; a take in progress drops its result. */
  stop(): void {
    this.stopped = true;
  }

  status(): StatusSnapshots {
    const latest = this.latestRef;
    const core = this.loop.core.status();
    return {
      latest: latest === null ? null : { index: latest.index, term: latest.term, bytes: latest.bytes },
      taken: this.taken,
      installed: this.installed,
      lastDurationMs: this.lastDurationMs,
      lastTakenAtMs: this.lastTakenAtMs,
      logFirstIndex: core.snapshotIndex + 1,
    };
  }

  private async take(): Promise<void> {
    const { store, io, clock, logger } = this.runtime;
    const started = clock.nowMs();
    const bytesAtStart = this.loop.appendedBytes;
    const temporary = path.join(this.directory, takingFileName(store.appliedIndex));
    const info = await io(() => store.snapshot(temporary));
    const index = info.appliedIndex;
    const snapshotTerm = this.loop.core.termAt(index);
    const stale =
      this.stopped ||
      this.loop.fatal !== null ||
      snapshotTerm === undefined ||
      (this.latestRef !== null && index <= this.latestRef.index);
    if (stale) {
      // The node stopped, or a leader's snapshot was installed meanwhile: this one is not needed.
      await io(() => fs.promises.rm(temporary, { force: true }));
      return;
    }
    const final = path.join(this.directory, snapshotFileName(index, snapshotTerm));
    await io(() => renameDurably(temporary, final));
    if (this.stopped || this.loop.fatal !== null) return;
    const ref: SnapshotRef = { index, term: snapshotTerm, bytes: info.bytes, path: final };
    this.taken++;
    this.lastDurationMs = clock.nowMs() - started;
    this.lastTakenAtMs = clock.nowMs();
    this.bytesMark = bytesAtStart;
    this.replaceLatest(ref);
    this.compactBehind(index);
    logger("info", "snapshot.taken", {
      index,
      term: snapshotTerm,
      bytes: info.bytes,
      durationMs: this.lastDurationMs,
    });
  }

  private replaceLatest(ref: SnapshotRef): void {
    // A leader's snapshot at the index of this node's own replaces it (a damaged database's copy).
    assert(this.latestRef === null || ref.index >= this.latestRef.index, "snapshots only move forward");
    this.latestRef = ref;
    this.deleteOlder(ref);
  }

  private deleteOlder(keep: SnapshotRef): void {
    const inUse = new Set(this.inUse.keys());
    this.runtime
      .io(() => deleteOlderSnapshots(this.directory, keep, inUse))
      .catch((error: unknown) =>
        this.runtime.logger("warn", "snapshot.delete-failed", { error: String(error) }),
      );
  }

  /**
   * Compacts the log through `snapshotIndex − compactionTrailEntries`, when that moves it forward;
   * a witness no further than `witnessCompactionLimit` allows.
   */
  private compactBehind(snapshotIndex: LogIndex): void {
    const core = this.loop.core;
    let target = logIndex(Math.max(0, snapshotIndex - this.config.compactionTrailEntries));
    if (memberAttributesOf(core.summary().clusterConfig, this.config.id).witness)
      target = logIndex(Math.min(target, this.witnessCompactionLimit(snapshotIndex)));
    if (target <= core.status().snapshotIndex) return;
    const targetTerm = core.termAt(target);
    assert(targetTerm !== undefined, `the log holds entry ${target} behind snapshot ${snapshotIndex}`);
    this.loop.compact(target, targetTerm);
  }

  /**
   * How far a witness may compact: to the data floor (`RaftCore.dataFloor`), so that an entry it may
   * be the last voter to hold stays in its log, but never keeping more than
   * `witnessRetainedSnapshotIntervals` × `snapshotEntries` entries for it: a data voter down for long
   * would otherwise grow the witness's log without bound. Past that the witness compacts as any node
   * and says so in its log; the down voter is then caught up by a data node's snapshot.
   */
  private witnessCompactionLimit(snapshotIndex: LogIndex): number {
    const floor = this.loop.core.dataFloor();
    const retainedMax = witnessRetainedSnapshotIntervals * this.config.snapshotEntries;
    if (snapshotIndex - floor <= retainedMax) return floor;
    this.runtime.logger("warn", "snapshot.witness-floor-passed", { floor, snapshotIndex, retainedMax });
    return snapshotIndex - retainedMax;
  }
}
