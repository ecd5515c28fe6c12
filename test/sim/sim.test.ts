/**
 * The seeded simulation in CI: a few hundred seeds through the safety phase (random faults) and the
 * liveness phase (faults off). A failure message starts with `SEED=n`; replay it with
 * `npm run sim -- --seed n`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSeed } from "./run.ts";

/** Seeds per CI run: about 25 ms each here, so well under the 60 s budget on a slow 2-core machine. */
const ciSeeds = 300;

test(`the cluster stays safe and live across ${ciSeeds} seeds`, (t) => {
  const failures: string[] = [];
  let elections = 0;
  let acknowledged = 0;
  for (let seed = 1; seed <= ciSeeds; seed++) {
    const result = runSeed(seed);
    if (!result.ok) failures.push(result.failure?.split("\n").slice(0, 3).join("\n") ?? `SEED=${seed}`);
    elections += result.elections;
    for (const level of ["local", "one", "majority", "all"] as const)
      acknowledged += result.losses?.[level].acknowledged ?? 0;
  }
  t.diagnostic(`${ciSeeds} seeds, ${elections} elections, ${acknowledged} acknowledged writes`);
  assert.deepEqual(failures, []);
  // The runs must actually exercise the system, or passing means nothing.
  assert.ok(elections > ciSeeds, "too few elections");
  assert.ok(acknowledged > ciSeeds * 50, "too few acknowledged writes");
});

test("a run is fully determined by its seed", () => {
  const first = runSeed(42);
  const second = runSeed(42);
  assert.deepEqual({ ...second, trace: null }, { ...first, trace: null });
});
