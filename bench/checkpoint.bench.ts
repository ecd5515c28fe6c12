/**
 * What background checkpoints cost the event loop (part of `npm run bench:storage`): a store with
 * its checkpoint thread, a 200,000-row table of 300-byte values, and a writer committing 20-row
 * upserts of random keys `commitsPerSecond` times a second for `seconds` (the soak's leader commits
 * about 325 such batches a second; as fast as it can, the writer outruns the thread). Every
 * commit is timed on the calling thread, the writer's catch-up checkpoint included, which is where
 * a WAL that grew past `walFramesCatchUpAt` is copied and synced. Prints the commits' total time,
 * p50, p99, the slowest, and how many took 20 ms or more.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Store } from "../src/store/store.ts";
import { logIndex } from "../src/types/ids.ts";
import { percentile } from "./stats.ts";

const rows = 200_000;
const batchRows = 20;
const slowCommitMs = 20;
const commitsPerSecond = 300;

export type CheckpointFigures = {
  readonly commits: number;
  readonly totalMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly slowCommits: number;
};

export async function benchCheckpoints(seconds = 20): Promise<CheckpointFigures> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-bench-checkpoint-"));
  const store = Store.open({ path: path.join(directory, "bench.db") });
  try {
    const failures: Error[] = [];
    store.startBackgroundCheckpoints((error) => failures.push(error));
    let index = 0;
    const commit = (statements: { sql: string; params?: unknown[] }[]): number => {
      index++;
      store.execute(logIndex(index), statements as never);
      const started = performance.now();
      store.commitSpeculative(logIndex(index));
      return performance.now() - started;
    };
    commit([{ sql: "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB NOT NULL)" }]);
    for (let k = 0; k < rows; k += 1000) {
      const insert = { sql: "INSERT INTO kv VALUES (?, randomblob(300))" };
      commit(Array.from({ length: 1000 }, (_, i) => ({ ...insert, params: [k + i] })));
    }
    await sleep(500);
    const upsert =
      "INSERT INTO kv(k, v) VALUES (?, randomblob(300)) ON CONFLICT(k) DO UPDATE SET v = excluded.v";
    const times: number[] = [];
    const start = performance.now();
    for (let i = 0; i < seconds * commitsPerSecond; i++) {
      const keys = Array.from({ length: batchRows }, () => Math.floor(Math.random() * rows));
      times.push(commit(keys.map((key) => ({ sql: upsert, params: [key] }))));
      const dueMs = start + ((i + 1) * 1000) / commitsPerSecond - performance.now();
      await (dueMs > 0 ? sleep(dueMs) : new Promise((resolve) => setImmediate(resolve)));
    }
    if (failures.length > 0) throw failures[0];
    times.sort((a, b) => a - b);
    return {
      commits: times.length,
      totalMs: times.reduce((sum, ms) => sum + ms, 0),
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
      maxMs: times.at(-1) ?? 0,
      slowCommits: times.filter((ms) => ms >= slowCommitMs).length,
    };
  } finally {
    store.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

export function printCheckpointFigures(figures: CheckpointFigures): void {
  const f = figures;
  console.log(
    `Checkpoints: ${f.commits} commits of ${batchRows} random upserts into ${rows.toLocaleString("en-US")} rows, ${commitsPerSecond} a second: ` +
      `commits took ${f.totalMs.toFixed(0)} ms in all, p50 ${f.p50Ms.toFixed(2)} ms, ` +
      `p99 ${f.p99Ms.toFixed(2)} ms, slowest ${f.maxMs.toFixed(1)} ms, ${f.slowCommits} of ${slowCommitMs} ms or more`,
  );
}
