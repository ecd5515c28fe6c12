import assert from "node:assert/strict";
import { test } from "node:test";
import { within } from "./bounded-wait.ts";
import { manualTimers } from "./manual-timers.ts";

test("within: the promise wins and the deadline's timer is cancelled", async () => {
  const timers = manualTimers();
  assert.equal(await within(timers, Promise.resolve(7), 1_000, () => new Error("late")), 7);
  assert.equal(timers.scheduled(), 0);
});

test("within: the deadline wins with the caller's error, and the promise's later outcome is ignored", async () => {
  const timers = manualTimers();
  let settle: (value: number) => void = () => {};
  const slow = new Promise<number>((resolve) => {
    settle = resolve;
  });
  const raced = within(timers, slow, 1_000, () => new Error("deadline passed"));
  timers.fire();
  await assert.rejects(raced, /deadline passed/);
  settle(1);
});
