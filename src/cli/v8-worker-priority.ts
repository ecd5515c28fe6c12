/**
 * A node process runs V8's worker threads below its other threads: their `nice` value goes up by
 * `v8WorkerNiceStep` (at most to 19) on Linux, where each thread has its own.
 *
 * V8's workers compile hot functions (Maglev, TurboFan) and do the concurrent parts of garbage
 * collection. Neither holds up a write while it runs: code runs on, unoptimized, while it compiles.
 * But in the first seconds of a load (or of a new leader's term) all three nodes compile their write
 * paths at once, and on a machine with few cores the compiles took the cores the event loops needed.
 * At one writer on this 2-core machine (`npm run bench`, priority switched every 250 ms within a
 * run, 8 runs), the first 3 s of the measured window ran at p50 0.90x (0.85-1.02) in the quarters with
 * the workers lowered, which also completed 1.11x the requests; over the whole window, once the
 * compiles are done, it made no difference (0.98-1.07). A nice step of 19 was not distinguishable
 * from 10.
 *
 * The event loop, the libuv pool (the log's writes and fsyncs) and the checkpoint thread keep the
 * process's priority. Where the threads cannot be listed (no `/proc`), nothing changes.
 */
import fs from "node:fs";
import os from "node:os";

/** How far V8's worker threads go below the rest of the process (0 becomes 10; 19 is the lowest). */
export const v8WorkerNiceStep = 10;
const lowestNice = 19;

/** What lowering found: threads lowered, and those whose priority could not be changed, with why. */
export type WorkerPriorityOutcome = { readonly lowered: number; readonly failed: readonly string[] };

/** V8's platform workers name themselves so (`comm` of the thread, as Node 26 sets it). */
const v8WorkerName = /V8Worker$/;

/** Lowers the priority of this process's V8 worker threads by `v8WorkerNiceStep` (call it once). */
export function lowerV8WorkerPriority(taskDirectory = "/proc/self/task"): WorkerPriorityOutcome {
  let tids: string[];
  try {
    tids = fs.readdirSync(taskDirectory);
  } catch {
    return { lowered: 0, failed: [] };
  }
  let lowered = 0;
  const failed: string[] = [];
  for (const tid of tids) {
    let name: string;
    try {
      name = fs.readFileSync(`${taskDirectory}/${tid}/comm`, "utf8").trim();
    } catch {
      continue; // the thread ended meanwhile
    }
    if (!v8WorkerName.test(name)) continue;
    try {
      os.setPriority(Number(tid), Math.min(lowestNice, os.getPriority(Number(tid)) + v8WorkerNiceStep));
      lowered++;
    } catch (error) {
      failed.push(`${tid}: ${(error as Error).message}`);
    }
  }
  return { lowered, failed };
}
