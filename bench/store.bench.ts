/**
 * Store figures: how fast the leader executes batches into payloads and a replica applies them.
 *
 * Workload: batches of single-row INSERT statements (1 or 100 statements per batch) into a table
 * with an INTEGER PRIMARY KEY and two columns. The leader either commits its speculative
 * transaction after every batch or after every 16 batches (as a leader does when Raft commits a
 * group of entries at once); the replica then applies the payloads the leader produced, one
 * transaction per entry. Every figure is the median of 3 runs, in batches/s and rows/s.
 *
 * The `remembered` rows run single-insert batches that each carry a client request id, as the write
 * path's are: the request log records it and prunes past its window in the same batch. The window
 * is shrunk to `rememberedWindowEntries` so that pruning runs at every batch of the run, as it does
 * on a node once the window is full.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Store } from "../src/store/index.ts";
import type { Statement } from "../src/store/types.ts";
import { logIndex } from "../src/types/ids.ts";
import { median } from "./stats.ts";

const runs = 3;
const rowsPerRun = 20_000;
/** The request log's count bound in the `remembered` runs: full after the first 5% of batches. */
const rememberedWindowEntries = 1_000;

type RunFigures = { executeSeconds: number; applySeconds: number; batches: number; rows: number };

function insertBatch(statementsPerBatch: number, first: number): Statement[] {
  return Array.from({ length: statementsPerBatch }, (_, i) => ({
    sql: "INSERT INTO item(id, name, qty) VALUES (?, ?, ?)",
    params: [first + i, `item-${first + i}`, (first + i) % 97],
  }));
}

function runOnce(statementsPerBatch: number, commitEveryBatches: number, remember = false): RunFigures {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-bench-store-"));
  try {
    const leader = Store.open({
      path: path.join(directory, "leader.db"),
      ...(remember ? { requestWindowEntries: rememberedWindowEntries } : {}),
    });
    const replica = Store.open({ path: path.join(directory, "replica.db") });
    const schema = leader.execute(logIndex(1), [
      { sql: "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)" },
    ]);
    leader.commitSpeculative(logIndex(1));
    replica.apply(logIndex(1), schema.payload);
    const batches = Math.floor(rowsPerRun / statementsPerBatch);
    const payloads: Uint8Array[] = [];
    const executeStarted = performance.now();
    for (let b = 0; b < batches; b++) {
      const index = logIndex(b + 2);
      const request = {
        id: `request-${b}`,
        response: () => `{"results":[{"rowsAffected":1}]}`,
        loggedAtMs: b,
      };
      const options = remember ? { request } : {};
      const statements = insertBatch(statementsPerBatch, b * statementsPerBatch);
      payloads.push(leader.execute(index, statements, options).payload);
      if ((b + 1) % commitEveryBatches === 0 || b === batches - 1) leader.commitSpeculative(index);
    }
    const executeSeconds = (performance.now() - executeStarted) / 1000;
    const applyStarted = performance.now();
    for (const [b, payload] of payloads.entries()) replica.apply(logIndex(b + 2), payload);
    const applySeconds = (performance.now() - applyStarted) / 1000;
    if (replica.contentHash() !== leader.contentHash())
      throw new Error("replica diverged during the benchmark");
    leader.close();
    replica.close();
    return { executeSeconds, applySeconds, batches, rows: batches * statementsPerBatch };
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

/** Measures and returns every figure, keyed `<path>.<batch size>.<commit>.<unit>`. */
export async function benchStore(): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  for (const statementsPerBatch of [1, 100]) {
    for (const commitEveryBatches of [1, 16]) {
      const samples = Array.from({ length: runs }, () => runOnce(statementsPerBatch, commitEveryBatches));
      const key = `batch${statementsPerBatch}.commitEvery${commitEveryBatches}`;
      figures[`execute.${key}.batchesPerSecond`] = median(samples.map((s) => s.batches / s.executeSeconds));
      figures[`execute.${key}.rowsPerSecond`] = median(samples.map((s) => s.rows / s.executeSeconds));
      // The replica applies one entry per transaction whatever the leader's commit grouping.
      if (commitEveryBatches === 1) {
        figures[`apply.batch${statementsPerBatch}.batchesPerSecond`] = median(
          samples.map((s) => s.batches / s.applySeconds),
        );
        figures[`apply.batch${statementsPerBatch}.rowsPerSecond`] = median(
          samples.map((s) => s.rows / s.applySeconds),
        );
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const remembered = Array.from({ length: runs }, () => runOnce(1, 16, true));
  figures["execute.batch1.commitEvery16.remembered.batchesPerSecond"] = median(
    remembered.map((s) => s.batches / s.executeSeconds),
  );
  figures["apply.batch1.remembered.batchesPerSecond"] = median(
    remembered.map((s) => s.batches / s.applySeconds),
  );
  return figures;
}

export function printStoreFigures(figures: Readonly<Record<string, number>>): void {
  console.log(`Store (median of ${runs} runs, ${rowsPerRun} rows per run)`);
  for (const [name, value] of Object.entries(figures))
    console.log(`${name.padEnd(48)} ${value.toFixed(0).padStart(10)}`);
}

if (import.meta.main) printStoreFigures(await benchStore());
