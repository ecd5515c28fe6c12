import assert from "node:assert/strict";
import { test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { Admission } from "./admission.ts";

const limits = { readsInFlightMax: 2, writesInFlightMax: 1 };

function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

test("reads and writes in flight are bounded separately; past the bound the answer is OVERLOADED at once", async () => {
  const admission = new Admission(limits);
  const hold = gate();
  const reads = [admission.run("read", () => hold.wait), admission.run("read", () => hold.wait)];
  await assert.rejects(
    admission.run("read", async () => "never runs"),
    (error: unknown) => isBatonError(error, "OVERLOADED"),
  );
  const write = admission.run("write", () => hold.wait);
  await assert.rejects(
    admission.run("write", async () => "never runs"),
    (error: unknown) => isBatonError(error, "OVERLOADED"),
  );
  assert.deepEqual(admission.refused, { read: 1, write: 1, loopDelay: 0 });
  hold.open();
  await Promise.all([...reads, write]);
  assert.equal(admission.inFlightOf("read"), 0);
  assert.equal(await admission.run("read", async () => "admitted again"), "admitted again");
});

test("a failing request releases its place", async () => {
  const admission = new Admission(limits);
  await assert.rejects(
    admission.run("write", async () => Promise.reject(new Error("bad SQL"))),
    /bad SQL/,
  );
  assert.equal(admission.inFlightOf("write"), 0);
  assert.equal(await admission.run("write", async () => 1), 1);
});

test("while the event loop runs later than the threshold, new work is refused OVERLOADED with the delay", async () => {
  let delayMs: number | null = null;
  const admission = new Admission(limits, { recentMs: () => delayMs, loopDelayShedMs: 100 });
  assert.equal(
    await admission.run("read", async () => "not measured yet: admitted"),
    "not measured yet: admitted",
  );
  delayMs = 100;
  assert.doesNotThrow(() => admission.shed(), "at the threshold, not past it");
  delayMs = 101;
  assert.equal(admission.shedding(), true);
  assert.throws(
    () => admission.shed(),
    (error: unknown) =>
      isBatonError(error, "OVERLOADED") &&
      error.details.reason === "loop-delay" &&
      error.details.loopDelayMs === 101 &&
      error.details.loopDelayShedMs === 100,
  );
  await assert.rejects(
    admission.run("write", async () => "never runs"),
    (error: unknown) => isBatonError(error, "OVERLOADED"),
  );
  assert.deepEqual(admission.refused, { read: 0, write: 0, loopDelay: 2 });
  assert.equal(admission.inFlightOf("write"), 0, "a shed request never took a place");
  delayMs = 20;
  assert.equal(await admission.run("write", async () => "admitted again"), "admitted again");
});
