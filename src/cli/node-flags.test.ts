import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import {
  mayReplaceProcess,
  missingNodeEnv,
  missingNodeFlags,
  nodeProcessEnv,
  nodeProcessFlags,
} from "./node-flags.ts";

const tiering = [
  "--invocation-count-for-maglev=100",
  "--invocation-count-for-turbofan=600",
  "--minimum-invocations-after-ic-update=100",
  "--concurrent-turbofan-max-threads=1",
];

test("a node process gets the young-generation bound, earlier tier-up and one TurboFan compile at a time unless the operator set them, in either spelling or place", () => {
  assert.deepEqual(nodeProcessFlags, ["--max-semi-space-size=8", ...tiering]);
  assert.deepEqual(missingNodeFlags([], ""), ["--max-semi-space-size=8", ...tiering]);
  assert.deepEqual(missingNodeFlags(["--cpu-prof"], "--enable-source-maps"), [
    "--max-semi-space-size=8",
    ...tiering,
  ]);
  assert.deepEqual(missingNodeFlags(["--max-semi-space-size=8"], ""), tiering);
  assert.deepEqual(missingNodeFlags([], "--inspect-port=0 --max-semi-space-size=32"), tiering);
  assert.deepEqual(missingNodeFlags(["--max_semi_space_size=4", ...tiering], ""), []);
  assert.deepEqual(
    missingNodeFlags(["--invocation_count_for_turbofan=3000"], ""),
    nodeProcessFlags.filter((flag) => !flag.startsWith("--invocation-count-for-turbofan")),
  );
});

test("this Node accepts every flag a node process is given (an unknown one would stop the node at start)", () => {
  const run = (flags: readonly string[]) =>
    spawnSync(process.execPath, [...flags, "-e", "0"], { encoding: "utf8", timeout: 20_000 });
  const accepted = run(nodeProcessFlags);
  assert.equal(accepted.status, 0, accepted.stderr);
  assert.equal(accepted.stderr, "");
  const unknown = run([...nodeProcessFlags, "--invocation-count-for-nothing=1"]);
  assert.notEqual(unknown.status, 0, "a flag this Node does not know fails the process");
});

test("a node process gets glibc's arena bound unless its environment sets one", () => {
  assert.deepEqual(nodeProcessEnv, { MALLOC_ARENA_MAX: "2" });
  assert.deepEqual(missingNodeEnv({}), { MALLOC_ARENA_MAX: "2" });
  assert.deepEqual(missingNodeEnv({ PATH: "/bin" }), { MALLOC_ARENA_MAX: "2" });
  assert.deepEqual(missingNodeEnv({ MALLOC_ARENA_MAX: "8" }), {});
});

test("a process with a profiling timer is not replaced (the timer would kill the new image)", () => {
  assert.equal(mayReplaceProcess([], ""), true);
  assert.equal(mayReplaceProcess(["--enable-source-maps"], "--max-old-space-size=512"), true);
  assert.equal(mayReplaceProcess(["--cpu-prof", "--cpu-prof-dir=/tmp/p"], ""), false);
  assert.equal(mayReplaceProcess([], "--prof"), false);
  assert.equal(mayReplaceProcess(["--cpu-prof-dir=/tmp/p"], ""), true);
});
