import assert from "node:assert/strict";
import { test } from "node:test";
import { missingNodeEnv, missingNodeFlags, nodeProcessEnv, nodeProcessFlags } from "./node-flags.ts";

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
