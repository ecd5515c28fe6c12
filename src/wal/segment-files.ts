/**
 * Naming, listing and reading of log segment files.
 *
 * A segment is named by the index of its first entry, zero-padded so that lexical order is index
 * order: `00000000000000000001.wal`. Segments are contiguous: each starts right after the last
 * entry of the one before. `offsets[i]` is the byte offset of entry `firstIndex + i` in the file.
 */
import fs from "node:fs";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import type { LogEntry } from "../types/log-entry.ts";
import { decodeRecordAt } from "./record-codec.ts";

export const segmentSuffix = ".wal";
const segmentNamePattern = /^(\d{20})\.wal$/;

export type Segment = {
  readonly firstIndex: LogIndex;
  readonly path: string;
  /** Byte offset of each entry in the file, in index order. */
  offsets: number[];
  /** Bytes of valid records in the file (the write position of the active segment). */
  bytes: number;
};

export function segmentFileName(firstIndex: LogIndex): string {
  return `${String(firstIndex).padStart(20, "0")}${segmentSuffix}`;
}

/** Index of the last entry a segment holds; `firstIndex - 1` when it holds none. */
export function segmentLastIndex(segment: Segment): LogIndex {
  return logIndex(segment.firstIndex + segment.offsets.length - 1);
}

/** Lists segment files in index order. Any other `.wal` name is refused, not skipped. */
export function listSegmentFiles(directory: string): { firstIndex: LogIndex; path: string }[] {
  const found: { firstIndex: LogIndex; path: string }[] = [];
  for (const name of fs.readdirSync(directory)) {
    if (!name.endsWith(segmentSuffix)) continue;
    const match = segmentNamePattern.exec(name);
    if (match === null || match[1] === undefined) {
      throw new BatonError(ErrorCode.WAL_CORRUPT, `unexpected log file name ${name}`, {
        file: path.join(directory, name),
        offset: 0,
      });
    }
    const first = Number(match[1]);
    if (!Number.isSafeInteger(first) || first < 1) {
      throw new BatonError(ErrorCode.WAL_CORRUPT, `bad segment first index in ${name}`, {
        file: path.join(directory, name),
        offset: 0,
      });
    }
    found.push({ firstIndex: logIndex(first), path: path.join(directory, name) });
  }
  found.sort((a, b) => a.firstIndex - b.firstIndex);
  for (let i = 1; i < found.length; i++) {
    assert(found[i - 1]!.firstIndex < found[i]!.firstIndex, "segment names are unique");
  }
  return found;
}

/** Finds the segment holding `index` by binary search; null when no segment holds it. */
export function findSegment(segments: readonly Segment[], index: LogIndex): Segment | null {
  let low = 0;
  let high = segments.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const segment = segments[middle]!;
    if (index < segment.firstIndex) high = middle - 1;
    else if (index > segmentLastIndex(segment)) low = middle + 1;
    else return segment;
  }
  return null;
}

/** Reads the entries in [from, toExclusive) from the segments that hold them; damage is WAL_CORRUPT. */
export function readSegmentEntries(
  segments: readonly Segment[],
  from: LogIndex,
  toExclusive: LogIndex,
): LogEntry[] {
  const result: LogEntry[] = [];
  for (let index = from; index < toExclusive; ) {
    const segment = findSegment(segments, logIndex(index));
    assert(segment !== null, `segment for entry ${index}`);
    const lastInSegment = Math.min(segmentLastIndex(segment), toExclusive - 1);
    const start = segment.offsets[index - segment.firstIndex]!;
    const end =
      lastInSegment === segmentLastIndex(segment)
        ? segment.bytes
        : segment.offsets[lastInSegment + 1 - segment.firstIndex]!;
    const buffer = Buffer.allocUnsafe(end - start);
    const fd = fs.openSync(segment.path, "r");
    try {
      const read = fs.readSync(fd, buffer, 0, buffer.byteLength, start);
      assert(read === buffer.byteLength, "read whole records");
    } finally {
      fs.closeSync(fd);
    }
    for (let offset = 0; offset < buffer.byteLength; ) {
      const decoded = decodeRecordAt(buffer, offset);
      if (decoded === null) {
        throw new BatonError(
          ErrorCode.WAL_CORRUPT,
          `${segment.path} at byte ${start + offset}: damaged record`,
          {
            file: segment.path,
            offset: start + offset,
          },
        );
      }
      assert(decoded.entry.index === index, "read entries are in order");
      result.push(decoded.entry);
      offset = decoded.nextOffset;
      index++;
    }
  }
  return result;
}
