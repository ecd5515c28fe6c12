/**
 * Recovery: turns the files of a log directory back into a consistent log, healing or refusing
 * damage.
 *
 * Rules (the order matters):
 * - Hard state and compaction point are atomic files; a damaged one is refused.
 * - Segments are read in order up to the first damage: a record that fails its checksum or does not
 *   decode, an index out of sequence, a term that decreases, a gap between segments, or an empty
 *   segment before the last one. Everything before it is the intact prefix.
 * - Damage at the end of the last segment, with no valid record after it, that has the shape an
 *   interrupted append leaves (`isTornTail` in record-codec.ts: a record cut short, or zeros) is a
 *   torn tail: those bytes were never reported durable, and they are cut off.
 * - Any other damage is corruption of records that were written in full, which this node may have
 *   reported durable. Without `heal` it is refused with WAL_CORRUPT, naming the file and offset.
 *   With `heal` the intact prefix is kept and everything from the damage on is dropped, after one
 *   atomic write of the hard state that records the loss (below), so a crash part-way through the
 *   cut is healed again at the next open and never forgotten.
 * - Segments wholly at or below the compaction point are leftovers of an interrupted compaction
 *   and are deleted. If the log's entry at the compaction point has another term, or the whole log
 *   lies below it, the log was being replaced by a snapshot: every segment is discarded.
 *
 * What a heal writes into the hard state (`HardState.promised`): an upper bound of the last log
 * position this node may have acknowledged or voted on. Its index counts every valid record found
 * after the damage and, for damaged bytes, as many records as could fit in them
 * (`recordMinBytes` each); its term is the hard state's term, which no entry of the log exceeds. The
 * consensus core keeps the node from campaigning, and from voting for a candidate whose log is
 * behind that position, until its durable log reaches it again (`src/consensus/lost-entries.ts`). The
 * same write moves the node to the next term with no vote: the log never shrinks beneath what its
 * node acknowledged except here, and a leader that counted the lost entries would keep counting
 * them while it leads; the first message this node sends in the new term deposes that leader, and
 * every later leader learns this node's log afresh by probing.
 */
import fs from "node:fs";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type LogIndex, logIndex, type NodeId, nodeId, type Position, term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import { fsyncDirectory, readDurableFile, writeDurableFileSync } from "./durable-file.ts";
import type { CompactionPoint } from "./log-store.ts";
import { isTornTail, recordMinBytes, salvageRecords, scanSegment } from "./record-codec.ts";
import { listSegmentFiles, type Segment, segmentLastIndex } from "./segment-files.ts";

export const hardStateFileName = "hardstate";
export const compactionFileName = "compaction";

export type RecoverOptions = {
  /**
   * Heal corruption by keeping the intact prefix and recording the loss in the hard state (`true`),
   * or refuse to open with WAL_CORRUPT (`false`, the default). A node heals only when peers can
   * give it back what it lost.
   */
  readonly heal?: boolean;
};

/** Corruption healed at this open. */
export type LogDamage = {
  readonly file: string;
  readonly offset: number;
  readonly reason: string;
  /** Every entry from this index on was dropped. */
  readonly firstLostIndex: LogIndex;
  /** The bound recorded in the hard state (see the module comment). */
  readonly promised: Position;
};

export type RecoveredLog = {
  readonly hardState: HardState;
  readonly compactionPoint: CompactionPoint;
  /** Entries after the compaction point, in order. */
  readonly entries: LogEntry[];
  /** Segments after recovery; the last one is where appends continue. */
  readonly segments: Segment[];
  /** Bytes cut from a torn tail, for the log. */
  readonly tornTailBytes: number;
  /** Corruption healed at this open, or null. */
  readonly damage: LogDamage | null;
};

function corrupt(file: string, offset: number, why: string): BatonError {
  return new BatonError(ErrorCode.WAL_CORRUPT, `${file} at byte ${offset}: ${why}`, { file, offset });
}

function decodePosition(value: unknown): Position | null {
  const parsed = value as { index?: unknown; term?: unknown } | null;
  if (parsed === null || typeof parsed !== "object") return null;
  if (!Number.isSafeInteger(parsed.index) || (parsed.index as number) < 0) return null;
  if (!Number.isSafeInteger(parsed.term) || (parsed.term as number) < 0) return null;
  return { index: logIndex(parsed.index as number), term: term(parsed.term as number) };
}

export function decodeHardState(content: Uint8Array | null, file: string): HardState {
  if (content === null) return { term: term(0), votedFor: null };
  const parsed = JSON.parse(Buffer.from(content).toString("utf8")) as {
    term?: unknown;
    votedFor?: unknown;
    promised?: unknown;
  };
  if (!Number.isSafeInteger(parsed.term) || (parsed.term as number) < 0) throw corrupt(file, 0, "bad term");
  if (parsed.votedFor !== null && typeof parsed.votedFor !== "string") throw corrupt(file, 0, "bad votedFor");
  const votedFor: NodeId | null = parsed.votedFor === null ? null : nodeId(parsed.votedFor);
  const hardState = { term: term(parsed.term as number), votedFor };
  if (parsed.promised === undefined) return hardState;
  const promised = decodePosition(parsed.promised);
  if (promised === null) throw corrupt(file, 0, "bad promised position");
  return { ...hardState, promised };
}

/** The hard state file's content: `{term, votedFor}`, and `promised` when set. */
export function encodeHardState(state: HardState): Uint8Array {
  const fields: Record<string, unknown> = { term: state.term, votedFor: state.votedFor };
  if (state.promised !== undefined)
    fields.promised = { index: state.promised.index, term: state.promised.term };
  return Buffer.from(JSON.stringify(fields));
}

export function decodeCompactionPoint(content: Uint8Array | null, file: string): CompactionPoint {
  if (content === null) return { index: logIndex(0), term: term(0) };
  const parsed = JSON.parse(Buffer.from(content).toString("utf8")) as { config?: unknown } | null;
  const point = decodePosition(parsed);
  if (point === null) throw corrupt(file, 0, "bad compaction point");
  const config = parsed?.config;
  if (config !== undefined && typeof config !== "string")
    throw corrupt(file, 0, "bad configuration at the compaction point");
  return config === undefined ? point : { ...point, config };
}

type ScannedSegment = { segment: Segment; entries: LogEntry[] };
type SegmentFile = { firstIndex: LogIndex; path: string };
/** The first damage found: where, why, and whether it may be a torn tail. */
type Damage = { fileIndex: number; offset: number; reason: string; torn: boolean };

/** Reads one segment up to its first damage; `previous` is the last intact entry before it. */
function scanOne(
  file: SegmentFile,
  previous: LogEntry | undefined,
  isLast: boolean,
  fileIndex: number,
): { scanned: ScannedSegment; damage: Damage | null } {
  const bytes = fs.readFileSync(file.path);
  // Entries are views into the segment's one buffer, not a copy each: the core keeps the data of only
  // its newest applied entries and copies those (`RaftLog.ownHeldData`), so the buffer is freed whole.
  // Copying every record here allocated the whole log again in record-sized pieces, which the
  // allocator kept after the core released them (55 MB more resident memory after a restart).
  const scan = scanSegment(bytes, false);
  const entries: LogEntry[] = [];
  const offsets: number[] = [];
  let damage: Damage | null = null;
  for (const record of scan.records) {
    const expected = file.firstIndex + entries.length;
    const before = entries.at(-1) ?? previous;
    const why =
      record.entry.index !== expected
        ? `entry index ${record.entry.index}, expected ${expected}`
        : before !== undefined && record.entry.term < before.term
          ? `term ${record.entry.term} after term ${before.term}`
          : null;
    if (why !== null) {
      damage = { fileIndex, offset: record.offset, reason: why, torn: false };
      break;
    }
    entries.push(record.entry);
    offsets.push(record.offset);
  }
  const validBytes = damage === null ? scan.validBytes : damage.offset;
  if (damage === null && scan.validBytes < bytes.byteLength) {
    const torn = isLast && scan.validRecordAfterDamageOffset === null && isTornTail(bytes, scan.validBytes);
    damage = { fileIndex, offset: scan.validBytes, reason: "damaged record", torn };
  }
  const segment: Segment = { firstIndex: file.firstIndex, path: file.path, offsets, bytes: validBytes };
  return { scanned: { segment, entries }, damage };
}

function removeSegments(directory: string, segments: readonly Segment[]): void {
  // Newest first, so that a crash part-way leaves a contiguous prefix of the log.
  for (let i = segments.length - 1; i >= 0; i--) fs.unlinkSync(segments[i]!.path);
  if (segments.length > 0) fsyncDirectory(directory);
}

function truncateSync(filePath: string, bytes: number): void {
  const fd = fs.openSync(filePath, "r+");
  try {
    fs.ftruncateSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads the segments in order up to the first damage. */
function scanSegments(files: readonly SegmentFile[]): { scanned: ScannedSegment[]; damage: Damage | null } {
  const scanned: ScannedSegment[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const previous = scanned.at(-1);
    if (previous !== undefined && previous.entries.length === 0)
      return {
        scanned,
        damage: { fileIndex: i - 1, offset: 0, reason: "empty segment before the last one", torn: false },
      };
    if (previous !== undefined && file.firstIndex !== segmentLastIndex(previous.segment) + 1) {
      const reason = `gap: previous segment ends at ${segmentLastIndex(previous.segment)}`;
      return { scanned, damage: { fileIndex: i, offset: 0, reason, torn: false } };
    }
    const result = scanOne(file, previous?.entries.at(-1), i === files.length - 1, i);
    scanned.push(result.scanned);
    if (result.damage !== null) return { scanned, damage: result.damage };
  }
  return { scanned, damage: null };
}

/**
 * The upper bound of the last index the files held before the damage: valid records found after it
 * count by their index, damaged bytes by how many records could fit in them.
 */
function lostIndexBound(files: readonly SegmentFile[], damage: Damage, lastIntact: LogIndex): Position {
  let bound: number = lastIntact;
  let termSeen = 0;
  for (let i = damage.fileIndex; i < files.length; i++) {
    const file = files[i]!;
    bound = Math.max(bound, file.firstIndex - 1);
    const bytes = fs.readFileSync(file.path);
    const { records, damagedRuns } = salvageRecords(bytes, i === damage.fileIndex ? damage.offset : 0);
    for (const run of damagedRuns) bound += Math.ceil(run / recordMinBytes);
    for (const record of records) {
      bound = Math.max(bound, record.index);
      termSeen = Math.max(termSeen, record.term);
    }
  }
  return { index: logIndex(bound), term: term(termSeen) };
}

/** The later of two positions in Raft's up-to-date order (last term, then index; §5.4.1). */
function laterPosition(a: Position, b: Position | undefined): Position {
  if (b === undefined) return a;
  if (a.term !== b.term) return a.term > b.term ? a : b;
  return a.index >= b.index ? a : b;
}

/**
 * Heals corruption: records the loss in the hard state (durably, first), then drops every segment
 * after the damaged one and cuts that one at the damage. Returns the new hard state.
 */
function healCorruption(
  directory: string,
  files: readonly SegmentFile[],
  scanned: ScannedSegment[],
  damage: Damage,
  hardState: HardState,
): { hardState: HardState; scanned: ScannedSegment[]; report: LogDamage } {
  const lastIntact = scanned.flatMap((s) => s.entries).at(-1);
  const lastIntactIndex = lastIntact?.index ?? logIndex(files[0]!.firstIndex - 1);
  const lost = lostIndexBound(files, damage, lastIntactIndex);
  const bound: Position = {
    index: logIndex(Math.max(lost.index, lastIntactIndex + 1)),
    term: term(Math.max(hardState.term, lost.term)),
  };
  const promised = laterPosition(bound, hardState.promised);
  const healed: HardState = { term: term(hardState.term + 1), votedFor: null, promised };
  writeDurableFileSync(path.join(directory, hardStateFileName), encodeHardState(healed));
  const file = files[damage.fileIndex]!;
  const dropWhole = files.slice(damage.fileIndex + (damage.offset === 0 ? 0 : 1));
  for (let i = dropWhole.length - 1; i >= 0; i--) fs.unlinkSync(dropWhole[i]!.path);
  if (dropWhole.length > 0) fsyncDirectory(directory);
  const dropped = new Set(dropWhole.map((f) => f.path));
  const kept = scanned.filter((s) => !dropped.has(s.segment.path));
  if (damage.offset > 0) truncateSync(file.path, damage.offset);
  assert(
    kept.every((s) => s.segment.path !== file.path || s.segment.bytes === damage.offset),
    "cut at the damage",
  );
  const report: LogDamage = {
    file: file.path,
    offset: damage.offset,
    reason: damage.reason,
    firstLostIndex: logIndex(lastIntactIndex + 1),
    promised,
  };
  return { hardState: healed, scanned: kept, report };
}

export function recoverLog(directory: string, options: RecoverOptions = {}): RecoveredLog {
  for (const name of fs.readdirSync(directory)) {
    if (name.endsWith(".tmp")) fs.unlinkSync(path.join(directory, name));
  }
  const hardStatePath = path.join(directory, hardStateFileName);
  const compactionPath = path.join(directory, compactionFileName);
  let hardState = decodeHardState(readDurableFile(hardStatePath), hardStatePath);
  const compactionPoint = decodeCompactionPoint(readDurableFile(compactionPath), compactionPath);

  const files = listSegmentFiles(directory);
  let { scanned, damage } = scanSegments(files);
  let tornTailBytes = 0;
  let report: LogDamage | null = null;
  if (damage?.torn) {
    const file = files[damage.fileIndex]!;
    tornTailBytes = fs.statSync(file.path).size - damage.offset;
    truncateSync(file.path, damage.offset);
  } else if (damage !== null) {
    const file = files[damage.fileIndex]!;
    if (options.heal !== true) throw corrupt(file.path, damage.offset, damage.reason);
    ({ hardState, scanned, report } = healCorruption(directory, files, scanned, damage, hardState));
  }
  scanned = applyCompactionPoint(directory, scanned, compactionPoint);
  const entries = scanned.flatMap((s) => s.entries.filter((e) => e.index > compactionPoint.index));
  const first = entries[0];
  assert(
    first === undefined || first.index === compactionPoint.index + 1,
    "recovered log starts after the point",
  );
  return {
    hardState,
    compactionPoint,
    entries,
    segments: scanned.map((s) => s.segment),
    tornTailBytes,
    damage: report,
  };
}

function applyCompactionPoint(
  directory: string,
  scanned: ScannedSegment[],
  point: Position,
): ScannedSegment[] {
  const first = scanned[0];
  if (first === undefined) return scanned;
  const firstIndex = first.segment.firstIndex;
  if (firstIndex > point.index + 1) {
    throw corrupt(
      first.segment.path,
      0,
      `gap: log starts at ${firstIndex}, compaction point is ${point.index}`,
    );
  }
  const last = scanned.at(-1)!;
  const lastIndex = segmentLastIndex(last.segment);
  const atPoint = point.index >= firstIndex ? findEntry(scanned, point.index) : null;
  const replacedBySnapshot = lastIndex < point.index || (atPoint !== null && atPoint.term !== point.term);
  if (point.index > 0 && replacedBySnapshot) {
    removeSegments(
      directory,
      scanned.map((s) => s.segment),
    );
    return [];
  }
  // Drop whole segments below the point; the segment holding the point itself stays.
  // When every entry is compacted, the last segment stays anyway: appends continue in it.
  const firstLive = scanned.findIndex((s) => segmentLastIndex(s.segment) > point.index);
  const keepFrom = firstLive === -1 ? scanned.length - 1 : firstLive;
  assert(keepFrom >= 0 && keepFrom < scanned.length, "a segment is kept");
  removeSegments(
    directory,
    scanned.slice(0, keepFrom).map((s) => s.segment),
  );
  return scanned.slice(keepFrom);
}

function findEntry(scanned: readonly ScannedSegment[], index: LogIndex): LogEntry | null {
  for (const s of scanned) {
    const offset = index - s.segment.firstIndex;
    if (offset >= 0 && offset < s.entries.length) return s.entries[offset]!;
  }
  return null;
}
