/**
 * A CI sweep over consecutive seeds: every failure is collected (the first lines of each, `SEED=n`
 * first), and the runs must actually exercise the system, or passing would mean nothing.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { runSeed } from "./run.ts";

/** Seeds per CI file: about 0.7 s each on this 2-core machine; two files of 40 run side by side. */
export const ciSeedsPerFile = 40;

export async function sweepSeeds(t: TestContext, first: number, count: number): Promise<void> {
  const failures: string[] = [];
  let elections = 0;
  let acknowledged = 0;
  let reads = 0;
  for (let seed = first; seed < first + count; seed++) {
    const result = await runSeed(seed);
    if (!result.ok) failures.push(result.failure?.split("\n").slice(0, 3).join("\n") ?? `SEED=${seed}`);
    elections += result.elections;
    reads += result.reads;
    for (const level of ["local", "one", "majority", "all"] as const)
      acknowledged += result.losses?.[level].acknowledged ?? 0;
  }
  t.diagnostic(
    `seeds ${first}–${first + count - 1}: ${elections} elections, ${acknowledged} acknowledged writes, ${reads} reads`,
  );
  assert.deepEqual(failures, []);
  assert.ok(elections > count, "too few elections");
  assert.ok(acknowledged > count * 20, "too few acknowledged writes");
  assert.ok(reads > count * 5, "too few reads");
}
