/**
 * The seeded simulation in CI: production nodes (the real `BatonNode` and SQLite store on simulated
 * time, network and disks) through the safety phase (random faults) and the liveness phase
 * (faults off), with the SQL-level checks at the end. A failure message starts with `SEED=n`;
 * replay it with `npm run sim -- --seed n`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSeed } from "./run.ts";

/**
 * Seeds per CI run: about 0.7 s each on this 2-core machine. The breadth comes from the campaign
 * run outside CI (`npm run sim -- --seeds 10000 --jobs 2`); CI keeps a sample of the schedule
 * (every fault profile, failover mode and operator appears within it), the seeds that once failed
 * below, the scenarios, and the injected bugs, each hunted over seeds 1..100 of its own.
 */
const ciSeeds = 80;

test(`production nodes stay safe and live across ${ciSeeds} seeds`, async (t) => {
  const failures: string[] = [];
  let elections = 0;
  let acknowledged = 0;
  let reads = 0;
  for (let seed = 1; seed <= ciSeeds; seed++) {
    const result = await runSeed(seed);
    if (!result.ok) failures.push(result.failure?.split("\n").slice(0, 3).join("\n") ?? `SEED=${seed}`);
    elections += result.elections;
    reads += result.reads;
    for (const level of ["local", "one", "majority", "all"] as const)
      acknowledged += result.losses?.[level].acknowledged ?? 0;
  }
  t.diagnostic(
    `${ciSeeds} seeds, ${elections} elections, ${acknowledged} acknowledged writes, ${reads} reads`,
  );
  assert.deepEqual(failures, []);
  // The runs must actually exercise the system, or passing means nothing.
  assert.ok(elections > ciSeeds, "too few elections");
  assert.ok(acknowledged > ciSeeds * 20, "too few acknowledged writes");
  assert.ok(reads > ciSeeds * 5, "too few reads");
});

/** Seeds that once failed, each for a bug since fixed (see the commit that added it). */
const regressionSeeds = [
  1120, // the loop appended entries before saving the hard state; a crash between left a log newer than its term
  121, // a damaged leader handed over to a never-promote voter, again and again (found among the CI's seeds when they were 200)
  179, // a data voter wiped beside a witness leader that sends no snapshot could rejoin through nobody (likewise)
  5119, // the workload's retries used up every attempt on a restarted node's NO_LEADER in three ticks
  430, // a snapshot offer stepped into a core whose applied index lagged the store's compacted the log past every snapshot
  434, // a rejoined node whose installed snapshot predated its leader's return ignored that leader for good
  228, // a snapshot of a database damaged while its node was down, taken before any check, seeded a rejoining node
];

test("seeds that once failed stay clean", async () => {
  for (const seed of regressionSeeds) {
    const result = await runSeed(seed);
    assert.ok(result.ok, result.failure ?? "");
  }
});

test("a run is fully determined by its seed", async () => {
  const first = await runSeed(42);
  const second = await runSeed(42);
  assert.deepEqual({ ...second, trace: null }, { ...first, trace: null });
});
