import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { lowerV8WorkerPriority, v8WorkerNiceStep } from "./v8-worker-priority.ts";

/** Each thread of a process that ran `lowerV8WorkerPriority`, as [name, nice], and what it returned. */
function threadsAfterLowering(): { outcome: unknown; threads: [string, number][] } {
  const module = new URL("./v8-worker-priority.ts", import.meta.url).href;
  const script = `
    import fs from "node:fs";
    import os from "node:os";
    import { lowerV8WorkerPriority } from ${JSON.stringify(module)};
    const outcome = lowerV8WorkerPriority();
    const threads = fs.readdirSync("/proc/self/task").map((tid) => [
      fs.readFileSync("/proc/self/task/" + tid + "/comm", "utf8").trim(),
      os.getPriority(Number(tid)),
    ]);
    console.log(JSON.stringify({ outcome, threads }));`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout);
}

test("a node process runs V8's worker threads below its event loop and keeps every other thread's priority", (t) => {
  if (!fs.existsSync("/proc/self/task")) {
    t.skip("no /proc here to list a process's threads");
    return;
  }
  const { outcome, threads } = threadsAfterLowering();
  const workers = threads.filter(([name]) => name.endsWith("V8Worker"));
  assert.ok(workers.length > 0, `V8 workers among ${JSON.stringify(threads)}`);
  assert.deepEqual(outcome, { lowered: workers.length, failed: [] });
  // Relative to the process's own priority (this test may run under `nice`).
  const main = threads.find(([name]) => name === "node-MainThread");
  assert.ok(main !== undefined, JSON.stringify(threads));
  for (const [, nice] of workers) assert.equal(nice, Math.min(19, main[1] + v8WorkerNiceStep));
  const others = threads.filter(([name]) => !name.endsWith("V8Worker"));
  for (const [name, nice] of others) assert.equal(nice, main[1], `${name} keeps the process's priority`);
});

test("a worker whose priority cannot be changed is reported, and no thread list changes nothing", () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-tasks-"));
  try {
    // Above the kernel's pid_max: no such thread.
    for (const [tid, name] of [
      ["2000000000", "node-V8Worker"],
      ["2000000001", "node-MainThread"],
    ] as const) {
      fs.mkdirSync(path.join(directory, tid));
      fs.writeFileSync(path.join(directory, tid, "comm"), `${name}\n`);
    }
    const outcome = lowerV8WorkerPriority(directory);
    assert.equal(outcome.lowered, 0);
    assert.equal(outcome.failed.length, 1);
    assert.match(outcome.failed[0]!, /^2000000000: /);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
  assert.deepEqual(lowerV8WorkerPriority(path.join(os.tmpdir(), "baton-no-such-task-directory")), {
    lowered: 0,
    failed: [],
  });
});
