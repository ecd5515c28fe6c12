/**
 * Recovery: turns the files of a log directory back into a consistent log, or refuses.
 *
 * Rules (the order matters):
 * - Hard state and compaction point are atomic files; a damaged one is refused.
 * - Every record of every segment but the last must be valid; any damage there, an index out of
 *   sequence, or a gap between segments refuses to open, naming the file and byte offset.
 * - In the last segment, damage with no valid record after it is a torn tail from a crash during
 *   an append (those records were never reported durable): it is cut off. Damage followed by a
 *   valid record is corruption: refused.
 * - Segments wholly at or below the compaction point are leftovers of an interrupted compaction
 *   and are deleted. If the log's entry at the compaction point has another term, or the whole log
 *   lies below it, the log was being replaced by a snapshot: every segment is discarded.
 */
import fs from "node:fs";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type LogIndex, logIndex, type NodeId, nodeId, type Position, term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import { fsyncDirectory, readDurableFile } from "./durable-file.ts";
import type { CompactionPoint } from "./log-store.ts";
import { scanSegment } from "./record-codec.ts";
import { listSegmentFiles, type Segment, segmentLastIndex } from "./segment-files.ts";

export const hardStateFileName = "hardstate";
export const compactionFileName = "compaction";

export type RecoveredLog = {
  readonly hardState: HardState;
  readonly compactionPoint: CompactionPoint;
  /** Entries after the compaction point, in order. */
  readonly entries: LogEntry[];
  /** Segments after recovery; the last one is where appends continue. */
  readonly segments: Segment[];
  /** Bytes cut from a torn tail, for the log. */
  readonly tornTailBytes: number;
};

function corrupt(file: string, offset: number, why: string): BatonError {
  return new BatonError(ErrorCode.WAL_CORRUPT, `${file} at byte ${offset}: ${why}`, { file, offset });
}

export function decodeHardState(content: Uint8Array | null, file: string): HardState {
  if (content === null) return { term: term(0), votedFor: null };
  const parsed = JSON.parse(Buffer.from(content).toString("utf8")) as { term?: unknown; votedFor?: unknown };
  if (!Number.isSafeInteger(parsed.term) || (parsed.term as number) < 0) throw corrupt(file, 0, "bad term");
  if (parsed.votedFor !== null && typeof parsed.votedFor !== "string") throw corrupt(file, 0, "bad votedFor");
  const votedFor: NodeId | null = parsed.votedFor === null ? null : nodeId(parsed.votedFor);
  return { term: term(parsed.term as number), votedFor };
}

export function decodePosition(content: Uint8Array | null, file: string): CompactionPoint {
  if (content === null) return { index: logIndex(0), term: term(0) };
  const parsed = JSON.parse(Buffer.from(content).toString("utf8")) as {
    index?: unknown;
    term?: unknown;
    config?: unknown;
  };
  if (!Number.isSafeInteger(parsed.index) || !Number.isSafeInteger(parsed.term)) {
    throw corrupt(file, 0, "bad compaction point");
  }
  if (parsed.config !== undefined && typeof parsed.config !== "string")
    throw corrupt(file, 0, "bad configuration at the compaction point");
  const point = { index: logIndex(parsed.index as number), term: term(parsed.term as number) };
  return parsed.config === undefined ? point : { ...point, config: parsed.config };
}

type ScannedSegment = { segment: Segment; entries: LogEntry[] };

function scanOne(
  file: { firstIndex: LogIndex; path: string },
  isLast: boolean,
): { scanned: ScannedSegment; tornBytes: number } {
  const bytes = fs.readFileSync(file.path);
  const scan = scanSegment(bytes);
  const entries: LogEntry[] = [];
  const offsets: number[] = [];
  for (const record of scan.records) {
    const expected = file.firstIndex + entries.length;
    if (record.entry.index !== expected) {
      throw corrupt(file.path, record.offset, `entry index ${record.entry.index}, expected ${expected}`);
    }
    const previous = entries.at(-1);
    if (previous !== undefined && record.entry.term < previous.term) {
      throw corrupt(file.path, record.offset, `term ${record.entry.term} after term ${previous.term}`);
    }
    entries.push(record.entry);
    offsets.push(record.offset);
  }
  let tornBytes = 0;
  if (scan.validBytes < bytes.byteLength) {
    if (!isLast || scan.validRecordAfterDamageOffset !== null) {
      throw corrupt(file.path, scan.validBytes, "damaged record");
    }
    tornBytes = bytes.byteLength - scan.validBytes;
    const fd = fs.openSync(file.path, "r+");
    try {
      fs.ftruncateSync(fd, scan.validBytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  const segment: Segment = { firstIndex: file.firstIndex, path: file.path, offsets, bytes: scan.validBytes };
  return { scanned: { segment, entries }, tornBytes };
}

function removeSegments(directory: string, segments: readonly Segment[]): void {
  // Newest first, so that a crash part-way leaves a contiguous prefix of the log.
  for (let i = segments.length - 1; i >= 0; i--) fs.unlinkSync(segments[i]!.path);
  if (segments.length > 0) fsyncDirectory(directory);
}

export function recoverLog(directory: string): RecoveredLog {
  for (const name of fs.readdirSync(directory)) {
    if (name.endsWith(".tmp")) fs.unlinkSync(path.join(directory, name));
  }
  const hardStatePath = path.join(directory, hardStateFileName);
  const compactionPath = path.join(directory, compactionFileName);
  const hardState = decodeHardState(readDurableFile(hardStatePath), hardStatePath);
  const compactionPoint = decodePosition(readDurableFile(compactionPath), compactionPath);

  const files = listSegmentFiles(directory);
  let scanned: ScannedSegment[] = [];
  let tornTailBytes = 0;
  for (let i = 0; i < files.length; i++) {
    const result = scanOne(files[i]!, i === files.length - 1);
    tornTailBytes += result.tornBytes;
    const previous = scanned.at(-1);
    if (
      previous !== undefined &&
      result.scanned.segment.firstIndex !== segmentLastIndex(previous.segment) + 1
    ) {
      throw corrupt(files[i]!.path, 0, `gap: previous segment ends at ${segmentLastIndex(previous.segment)}`);
    }
    if (previous !== undefined && previous.entries.length === 0) {
      throw corrupt(previous.segment.path, 0, "empty segment before the last one");
    }
    scanned.push(result.scanned);
  }
  scanned = applyCompactionPoint(directory, scanned, compactionPoint);
  const entries = scanned.flatMap((s) => s.entries.filter((e) => e.index > compactionPoint.index));
  const first = entries[0];
  assert(
    first === undefined || first.index === compactionPoint.index + 1,
    "recovered log starts after the point",
  );
  return { hardState, compactionPoint, entries, segments: scanned.map((s) => s.segment), tornTailBytes };
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
