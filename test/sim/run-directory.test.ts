import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { removeDeadRunDirectories } from "./run-directory.ts";

test("a run directory left by a process that no longer exists is removed; a live process's and others are kept", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-run-directory-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  // A process that has exited: its pid names a directory nobody will remove.
  const exited = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(exited.status, 0, exited.stderr);
  const deadPid = Number(exited.stdout);
  const dead = `baton-sim-212-p${deadPid}-AbC123`;
  const live = `baton-sim-7-p${process.pid}-XyZ789`;
  const unrelated = "baton-sim-219-3eJ5Mp";
  for (const name of [dead, live, unrelated]) {
    fs.mkdirSync(path.join(root, name, "n1"), { recursive: true });
    fs.writeFileSync(path.join(root, name, "n1", "baton.db"), "x");
  }
  assert.deepEqual(removeDeadRunDirectories(root), [dead]);
  assert.deepEqual(fs.readdirSync(root).sort(), [unrelated, live].sort());
});
