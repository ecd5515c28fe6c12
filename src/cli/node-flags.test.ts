import assert from "node:assert/strict";
import { test } from "node:test";
import { missingNodeFlags, nodeProcessFlags } from "./node-flags.ts";

test("a node process gets the young-generation bound unless the operator set it, in either spelling or place", () => {
  assert.deepEqual(nodeProcessFlags, ["--max-semi-space-size=8"]);
  assert.deepEqual(missingNodeFlags([], ""), ["--max-semi-space-size=8"]);
  assert.deepEqual(missingNodeFlags(["--cpu-prof"], "--enable-source-maps"), ["--max-semi-space-size=8"]);
  assert.deepEqual(missingNodeFlags(["--max-semi-space-size=8"], ""), []);
  assert.deepEqual(missingNodeFlags([], "--inspect-port=0 --max-semi-space-size=32"), []);
  assert.deepEqual(missingNodeFlags(["--max_semi_space_size=4"], ""), []);
});
