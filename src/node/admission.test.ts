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
  assert.deepEqual(admission.refused, { read: 1, write: 1 });
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
