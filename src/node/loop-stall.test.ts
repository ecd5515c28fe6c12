import assert from "node:assert/strict";
import { test } from "node:test";
import { stallWarnMsMin, stallWarnMsOf, watchedTicker } from "./loop-stall.ts";

/** A clock moved by hand and an `every` timer fired by hand, with the log lines it wrote. */
function harness() {
  let nowMs = 1_000;
  let tick: (() => void) | null = null;
  const logged: { level: string; event: string; fields: Record<string, unknown> }[] = [];
  const runtime = {
    clock: { nowMs: () => nowMs, monotonicMs: () => nowMs },
    timers: {
      after: () => () => {},
      soon: () => () => {},
      every: (_periodMs: number, run: () => void) => {
        tick = run;
        return () => {
          tick = null;
        };
      },
    },
    logger: (level: string, event: string, fields: Record<string, unknown>) => {
      logged.push({ level, event, fields });
    },
  };
  return {
    runtime,
    logged,
    fireAfter(ms: number) {
      nowMs += ms;
      assert.ok(tick !== null, "the ticker runs");
      tick();
    },
  };
}

const timing = { tickMs: 10, heartbeatMs: 100, missedHeartbeats: 6 };

test("a tick that comes a third of the election timeout late is logged as loop.stalled", () => {
  assert.equal(stallWarnMsOf(timing), 200);
  assert.equal(stallWarnMsOf({ heartbeatMs: 20, missedHeartbeats: 3 }), stallWarnMsMin);
  const h = harness();
  let ticks = 0;
  const cancel = watchedTicker(h.runtime, timing, () => ticks++);
  h.fireAfter(10);
  h.fireAfter(12);
  h.fireAfter(209); // 199 ms late: below the threshold
  assert.deepEqual(h.logged, []);
  h.fireAfter(460); // 450 ms late
  h.fireAfter(10);
  assert.deepEqual(h.logged, [{ level: "warn", event: "loop.stalled", fields: { lateMs: 450 } }]);
  assert.equal(ticks, 5, "every tick still runs");
  cancel();
});

test("with the loop-delay probe, a stall says how much of it the loop's thread spent on the CPU", () => {
  const h = harness();
  let cpuMs = 5_000;
  const runtime = { ...h.runtime, loopDelay: { recentMs: () => null, threadCpuMs: () => cpuMs, stop() {} } };
  const cancel = watchedTicker(runtime, timing, () => {});
  cpuMs += 8;
  h.fireAfter(10);
  cpuMs += 430; // busy: a long collection or a long JavaScript task
  h.fireAfter(460);
  cpuMs += 12; // waited: a blocking system call, a lock, no free core
  h.fireAfter(910);
  assert.deepEqual(
    h.logged.map((line) => line.fields),
    [
      { lateMs: 450, cpuMs: 430 },
      { lateMs: 900, cpuMs: 12 },
    ],
  );
  cancel();
});
