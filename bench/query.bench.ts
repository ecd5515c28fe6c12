/**
 * `npm run bench:query`: what running client queries in query processes costs against running them
 * on the node's own read connection, for point SELECTs (`SELECT * FROM item WHERE id = ?` on a
 * 10,000-row table), at 1 and 16 queries in flight.
 *
 * Both executors serve from the same database in the same process, and their phases alternate
 * (in process, pool, in process, …) so that the machine's other load falls on both alike. Every
 * figure is the median of `BATON_BENCH_RUNS` (5) phases of `BATON_BENCH_PHASE_MS` (1000 ms); the
 * ratio is pool / in process.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { InProcessQueryExecutor, type QueryExecutor } from "../src/store/query-executor.ts";
import { QueryProcessPool } from "../src/store/query-process-pool.ts";
import { Store } from "../src/store/store.ts";
import { logIndex } from "../src/types/ids.ts";
import { median, percentile } from "./stats.ts";

const runs = Number(process.env.BATON_BENCH_RUNS ?? 5);
const phaseMs = Number(process.env.BATON_BENCH_PHASE_MS ?? 1000);
const rows = 10_000;

type Phase = { opsPerSecond: number; p50Ms: number; p99Ms: number };

async function phase(executor: QueryExecutor, concurrency: number): Promise<Phase> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + phaseMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const id = ((worker * 7919 + i * 104_729) % rows) + 1;
        const t0 = performance.now();
        const result = await executor.query([{ sql: "SELECT * FROM item WHERE id = ?", params: [id] }], {
          timeoutMs: 5_000,
        });
        latencies.push(performance.now() - t0);
        if (result.results[0]?.rows.length !== 1) throw new Error(`no row ${id}`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    opsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

function summary(phases: readonly Phase[]): Phase {
  return {
    opsPerSecond: median(phases.map((p) => p.opsPerSecond)),
    p50Ms: median(phases.map((p) => p.p50Ms)),
    p99Ms: median(phases.map((p) => p.p99Ms)),
  };
}

function line(name: string, figure: Phase): string {
  return `${name.padEnd(24)} ${figure.opsPerSecond.toFixed(0).padStart(8)} queries/s  p50 ${figure.p50Ms.toFixed(3).padStart(7)} ms  p99 ${figure.p99Ms.toFixed(3).padStart(7)} ms`;
}

async function main(): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-bench-query-"));
  const store = Store.open({ path: path.join(directory, "baton.db") });
  const pool = await QueryProcessPool.start({ path: store.path, limits: store.queryLimits, log: () => {} });
  try {
    store.execute(logIndex(1), [
      { sql: "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)" },
      {
        sql: `INSERT INTO item WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < ${rows}) SELECT v, 'item-' || v, v % 97 FROM s`,
      },
    ]);
    store.commitSpeculative(logIndex(1));
    const inProcess = new InProcessQueryExecutor(store);
    console.log(
      `point SELECT, ${runs} alternating phases of ${phaseMs} ms each, medians; ${os.cpus().length} cores`,
    );
    for (const concurrency of [1, 16]) {
      await phase(pool, concurrency); // Warm both: caches, JIT.
      await phase(inProcess, concurrency);
      const figures = { inProcess: [] as Phase[], pool: [] as Phase[] };
      for (let run = 0; run < runs; run++) {
        figures.inProcess.push(await phase(inProcess, concurrency));
        figures.pool.push(await phase(pool, concurrency));
      }
      const local = summary(figures.inProcess);
      const remote = summary(figures.pool);
      console.log(line(`in process c=${concurrency}`, local));
      console.log(line(`query processes c=${concurrency}`, remote));
      console.log(
        `  ratio pool/in-process: throughput ${(remote.opsPerSecond / local.opsPerSecond).toFixed(2)}, p50 ${(remote.p50Ms / local.p50Ms).toFixed(1)}×`,
      );
    }
  } finally {
    await pool.close();
    store.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

await main();
