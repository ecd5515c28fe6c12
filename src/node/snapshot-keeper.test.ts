import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { logIndex, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { Wal } from "../wal/wal.ts";
import { nodeDefaults } from "./node-config.ts";
import {
  walSegmentBytes,
  walSegmentBytesMax,
  walSegmentBytesMin,
  walSegmentsPerSnapshotLog,
} from "./snapshot-keeper.ts";

test("WAL segments are an eighth of the snapshot byte threshold, within their bounds", () => {
  assert.equal(walSegmentBytes(nodeDefaults.snapshotLogBytes), 8 << 20);
  assert.equal(walSegmentBytes(16 << 20), 2 << 20);
  assert.equal(walSegmentBytes(1_000), walSegmentBytesMin, "a tiny threshold still gets 1 MiB segments");
  assert.equal(walSegmentBytes(4 * 2 ** 30), walSegmentBytesMax, "a huge threshold gets at most 64 MiB");
  assert.equal(walSegmentBytes((8 << 20) + 1), (1 << 20) + 1, "rounded up, never below an eighth");
});

function directoryBytes(directory: string): number {
  return fs
    .readdirSync(directory)
    .filter((name) => name.endsWith(".wal"))
    .reduce((total, name) => total + fs.statSync(path.join(directory, name)).size, 0);
}

test("after compaction the log on disk exceeds the log since the compaction point by less than one segment", async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-segments-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const snapshotLogBytes = 8 << 20;
  const segmentBytes = walSegmentBytes(snapshotLogBytes);
  const { wal } = Wal.open(directory, { segmentBytesMax: segmentBytes });
  const data = new Uint8Array(13_000).fill(3); // About one 20-row upsert batch of the soak.
  const recordBytes = data.byteLength + 26;
  let last = 0;
  const append = async (count: number): Promise<void> => {
    const entries = Array.from({ length: count }, () => ({
      index: logIndex(++last),
      term: term(1),
      kind: EntryKind.command,
      data,
    }));
    await wal.append(entries);
  };
  try {
    // Three thresholds' worth of log, compacting behind each as the snapshot keeper does.
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < snapshotLogBytes / data.byteLength / 64; i++) await append(64);
      const point = logIndex(last - 100);
      await wal.compact(point, term(1));
      const keptBytes = (last - point) * recordBytes;
      const diskBytes = directoryBytes(directory);
      assert.ok(diskBytes >= keptBytes, "every entry after the compaction point is still on disk");
      // The slack is one segment: an eighth of the threshold, not a second threshold.
      assert.ok(
        diskBytes < keptBytes + snapshotLogBytes / walSegmentsPerSnapshotLog + recordBytes,
        `round ${round}: ${diskBytes} bytes on disk for ${keptBytes} bytes of log since the compaction point`,
      );
    }
  } finally {
    await wal.close();
  }
});
