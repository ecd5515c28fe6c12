import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { logIndex, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import {
  faultInjectionOptIn,
  fsyncFaultFileVariable,
  parseFsyncFault,
  walFaultOptions,
} from "./fault-injection.ts";
import { Wal } from "./wal.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-fault-injection-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

test("without the variables the log syncs as usual", () => {
  assert.deepEqual(walFaultOptions({}), {});
  assert.deepEqual(walFaultOptions({ [faultInjectionOptIn.name]: faultInjectionOptIn.value }), {});
});

test("a control file without the explicit opt-in is refused", () => {
  for (const optIn of [undefined, "1", "yes"]) {
    assert.throws(
      () => walFaultOptions({ [fsyncFaultFileVariable]: "/tmp/x", [faultInjectionOptIn.name]: optIn }),
      (error: unknown) => isBatonError(error, "BAD_CONFIG"),
    );
  }
});

test("control lines", () => {
  assert.deepEqual(parseFsyncFault(""), { kind: "none" });
  assert.deepEqual(parseFsyncFault("fail\n"), { kind: "fail" });
  assert.deepEqual(parseFsyncFault("delay 250"), { kind: "delay", delayMs: 250 });
  assert.deepEqual(parseFsyncFault("delay 99999999"), { kind: "delay", delayMs: 60_000 });
  assert.deepEqual(parseFsyncFault("delay soon"), { kind: "none" });
});

test("an injected failure makes the append fail and the log unusable; a delay only slows it", async () => {
  const control = path.join(root, "control");
  const options = walFaultOptions({
    [fsyncFaultFileVariable]: control,
    [faultInjectionOptIn.name]: faultInjectionOptIn.value,
  });
  const { wal } = Wal.open(path.join(root, "log"), options);
  const entry = (index: number) => ({
    index: logIndex(index),
    term: term(1),
    kind: EntryKind.command,
    data: new Uint8Array([index]),
  });
  fs.writeFileSync(control, "delay 120\n");
  const startedMs = performance.now();
  await wal.append([entry(1)]);
  assert.ok(performance.now() - startedMs >= 100, "the fsync was delayed");
  fs.writeFileSync(control, "fail\n");
  await assert.rejects(
    async () => wal.append([entry(2)]),
    (error: unknown) => isBatonError(error, "WAL_IO"),
  );
  fs.writeFileSync(control, "");
  await assert.rejects(async () => wal.append([entry(3)]), "the log stays unusable after a failed fsync");
  await Promise.resolve()
    .then(() => wal.close())
    .catch(() => {});
});
