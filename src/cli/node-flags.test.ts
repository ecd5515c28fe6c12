import assert from "node:assert/strict";
import { test } from "node:test";
import {
  mayReplaceProcess,
  missingNodeEnv,
  missingNodeFlags,
  nodeProcessEnv,
  nodeProcessFlags,
} from "./node-flags.ts";

test("a node process gets the young-generation bound unless the operator set it, in either spelling or place", () => {
  assert.deepEqual(nodeProcessFlags, ["--max-semi-space-size=8"]);
  assert.deepEqual(missingNodeFlags([], ""), ["--max-semi-space-size=8"]);
  assert.deepEqual(missingNodeFlags(["--cpu-prof"], "--enable-source-maps"), ["--max-semi-space-size=8"]);
  assert.deepEqual(missingNodeFlags(["--max-semi-space-size=8"], ""), []);
  assert.deepEqual(missingNodeFlags([], "--inspect-port=0 --max-semi-space-size=32"), []);
  assert.deepEqual(missingNodeFlags(["--max_semi_space_size=4"], ""), []);
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
