/**
 * The simulator must catch a broken core. Each deliberate bug (`unsafeTestBugs`) breaks one safety
 * rule; within the CI seed budget some seed must expose it as a violation (a checker's report or a
 * core assertion), and the report must name the seed for replay.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { UnsafeTestBugs } from "../../src/consensus/config.ts";
import { runSeed } from "./run.ts";

/** Seeds tried per bug before declaring the simulator blind to it. */
const seedBudget = 300;

const bugs: readonly (keyof UnsafeTestBugs)[] = ["commitOldTermByCounting", "voteWithoutLogCheck"];

for (const bug of bugs) {
  test(`the simulator catches the injected bug ${bug}`, (t) => {
    for (let seed = 1; seed <= seedBudget; seed++) {
      const result = runSeed(seed, { unsafeTestBugs: { [bug]: true } });
      if (result.ok) continue;
      assert.match(result.failure ?? "", new RegExp(`^SEED=${seed} `));
      t.diagnostic(`${bug} caught at ${result.failure?.split("\n")[0]}`);
      // The same seed without the bug is clean: the violation is the bug's doing.
      assert.equal(runSeed(seed).ok, true);
      return;
    }
    assert.fail(`no seed in 1..${seedBudget} exposed ${bug}`);
  });
}
