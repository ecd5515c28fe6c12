/**
 * The second half of the simulator's CI seeds (the first half, the regression seeds and the
 * determinism check are in `sim.test.ts`): a file of its own, so the two halves run side by side.
 */
import { test } from "node:test";
import { ciSeedsPerFile, sweepSeeds } from "./seed-sweep.ts";

const first = ciSeedsPerFile + 1;

test(`production nodes stay safe and live across seeds ${first}–${first + ciSeedsPerFile - 1}`, (t) =>
  sweepSeeds(t, first, ciSeedsPerFile));
