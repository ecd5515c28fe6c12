import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { IdGuard } from "./id-guard.ts";
import { manualTimers } from "./manual-timers.ts";

function guard(enabled = true) {
  const timers = manualTimers();
  return { timers, ids: new IdGuard({ block: 1024, enabled, timers, waitersMax: 2 }) };
}

describe("id guard", () => {
  test("every batch of a term raises the counters until one that raised is accepted into the log", () => {
    const { ids } = guard();
    assert.equal(ids.mustRaise(3), true);
    // That batch failed, or another entry (a configuration change) took its index while it ran in
    // the sandbox: it never reached the log, so the next batch still raises, whatever the applied
    // index has become meanwhile.
    assert.equal(ids.mustRaise(3), true);
    ids.raised(3);
    assert.equal(ids.mustRaise(3), false);
    assert.equal(ids.mustRaise(4), true, "a later term raises again");
  });

  test("leadership lost: the next term's first batch raises", () => {
    const { ids } = guard();
    ids.raised(5);
    ids.reset();
    assert.equal(ids.mustRaise(5), true);
  });

  test("switched off, nothing is raised, reserved or waited for", () => {
    const { ids } = guard(false);
    assert.equal(ids.mustRaise(1), false);
    assert.deepEqual(ids.afterBatch([{ name: "u", value: 10n }], null), { needs: [], reserve: null });
  });

  test("a counter within half a block of its reservation reserves a block beyond it, once", () => {
    const { ids } = guard();
    const first = ids.afterBatch([{ name: "u", value: 1n }], [{ name: "u", value: 0n }]);
    assert.deepEqual(first.reserve, [{ name: "u", value: 1025n }]);
    assert.deepEqual(first.needs, [{ name: "u", value: 1n }]);
    assert.equal(ids.afterBatch([{ name: "u", value: 2n }], null).reserve, null, "already proposed");
    ids.proposalFailed([{ name: "u", value: 1025n }]);
    assert.deepEqual(ids.afterBatch([{ name: "u", value: 3n }], null).reserve, [{ name: "u", value: 1027n }]);
  });

  test("a `local` or `one` write past the committed reservation waits for one that covers it", async () => {
    const { ids } = guard();
    const needs = [{ name: "u", value: 7n }];
    assert.equal(ids.mustWait("local", needs), true);
    assert.equal(ids.mustWait("one", needs), true);
    assert.equal(ids.mustWait("majority", needs), false);
    const waiting = ids.waitCovered(needs, 12, 1000);
    ids.committedReservation([{ name: "u", value: 6n }]);
    ids.committedReservation([{ name: "u", value: 1031n }]);
    await waiting;
    assert.equal(ids.mustWait("local", needs), false);
  });

  test("a waiting write is not acknowledged when no reservation commits in time, or leadership is lost", async () => {
    const { ids, timers } = guard();
    const late = ids.waitCovered([{ name: "u", value: 7n }], 12, 1000);
    timers.fire();
    await assert.rejects(late, (e: { code: string }) => e.code === "NOT_CONFIRMED");
    const lost = ids.waitCovered([{ name: "u", value: 8n }], 13, 1000);
    ids.reset();
    await assert.rejects(lost, /leadership was lost/);
  });

  test("waiting writes are bounded", async () => {
    const { ids } = guard();
    const a = ids.waitCovered([{ name: "u", value: 7n }], 1, 1000);
    const b = ids.waitCovered([{ name: "u", value: 8n }], 2, 1000);
    await assert.rejects(ids.waitCovered([{ name: "u", value: 9n }], 3, 1000), /too many writes wait/);
    ids.reset();
    await Promise.allSettled([a, b]);
  });
});
