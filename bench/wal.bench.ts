/**
 * Write-ahead log figures: appends/s, MB/s and fsyncs/s with group commit at several levels of
 * concurrency and two payload sizes. Each appender appends one entry at a time and waits for it to
 * be durable before appending the next, as a client waiting for its write would. Segments are the
 * size a node gives them at the default snapshot threshold (`walSegmentBytes`), so runs at 4 KiB
 * roll segments over as a node does.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { nodeDefaults } from "../src/node/node-config.ts";
import { walSegmentBytes } from "../src/node/snapshot-keeper.ts";
import { logIndex, term } from "../src/types/ids.ts";
import { EntryKind } from "../src/types/log-entry.ts";
import { defaultDurableWrite, defaultSyncFile } from "../src/wal/file-sync.ts";
import { Wal } from "../src/wal/wal.ts";
import { median } from "./stats.ts";

export type WalFigure = {
  appenders: number;
  payloadBytes: number;
  appendsPerSecond: number;
  megabytesPerSecond: number;
  fsyncsPerSecond: number;
};

async function runOnce(appenders: number, payloadBytes: number, durationMs: number): Promise<WalFigure> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-bench-wal-"));
  // Each durable write (an O_DSYNC write) is a sync of the disk, as is each fsync of a directory.
  let fsyncs = 0;
  const { wal } = Wal.open(directory, {
    syncFile: (fd) => {
      fsyncs++;
      return defaultSyncFile(fd);
    },
    durableWrite: (fd, parts, position) => {
      fsyncs++;
      return defaultDurableWrite(fd, parts, position);
    },
    segmentBytesMax: walSegmentBytes(nodeDefaults.snapshotLogBytes),
  });
  const data = new Uint8Array(payloadBytes).fill(7);
  let next = 1;
  let appended = 0;
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  const appender = async (): Promise<void> => {
    while (performance.now() < deadline) {
      await wal.append([{ index: logIndex(next++), term: term(1), kind: EntryKind.command, data }]);
      appended++;
    }
  };
  await Promise.all(Array.from({ length: appenders }, appender));
  const seconds = (performance.now() - started) / 1000;
  await wal.close();
  fs.rmSync(directory, { recursive: true, force: true });
  return {
    appenders,
    payloadBytes,
    appendsPerSecond: appended / seconds,
    megabytesPerSecond: (appended * payloadBytes) / seconds / 1e6,
    fsyncsPerSecond: fsyncs / seconds,
  };
}

export async function benchWal(runs = 3, durationMs = 1500): Promise<WalFigure[]> {
  const figures: WalFigure[] = [];
  for (const payloadBytes of [200, 4096]) {
    for (const appenders of [1, 16, 256]) {
      const samples: WalFigure[] = [];
      for (let run = 0; run < runs; run++) samples.push(await runOnce(appenders, payloadBytes, durationMs));
      figures.push({
        appenders,
        payloadBytes,
        appendsPerSecond: median(samples.map((s) => s.appendsPerSecond)),
        megabytesPerSecond: median(samples.map((s) => s.megabytesPerSecond)),
        fsyncsPerSecond: median(samples.map((s) => s.fsyncsPerSecond)),
      });
    }
  }
  return figures;
}

export function printWalFigures(figures: readonly WalFigure[]): void {
  console.log("WAL group commit (median of runs)");
  console.log("payload  appenders  appends/s   MB/s    fsyncs/s");
  for (const f of figures) {
    console.log(
      `${String(f.payloadBytes).padStart(6)} B ${String(f.appenders).padStart(9)} ${f.appendsPerSecond.toFixed(0).padStart(10)} ${f.megabytesPerSecond.toFixed(2).padStart(7)} ${f.fsyncsPerSecond.toFixed(0).padStart(10)}`,
    );
  }
}

if (import.meta.main) printWalFigures(await benchWal());
