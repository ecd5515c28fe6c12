import assert from "node:assert/strict";
import { test } from "node:test";
import { mergeHistories } from "./history-command.ts";

test("baton history shows each record once, the replicated copy first, newest first", () => {
  const record = (node: string, seq: number | null, atMs: number, replicated: boolean) => ({
    atMs,
    node,
    term: 1,
    event: `e-${node}-${seq}`,
    seq,
    replicated,
  });
  const fromN1 = [record("n1", 3_000, 3, false), record("n2", 2_000, 2, true), record("n1", 1_000, 1, true)];
  const fromN2 = [record("n2", 2_000, 2, true), record("n1", 3_000, 3, true), record("n1", 1_000, 1, true)];
  const legacy = [record("n3", null, 4, false), record("n3", null, 4, false)];
  const merged = mergeHistories([fromN1, fromN2, legacy], 10);
  assert.deepEqual(
    merged.map((r) => [r.node, r.seq, r.replicated]),
    [
      ["n3", null, false],
      ["n1", 3_000, true],
      ["n2", 2_000, true],
      ["n1", 1_000, true],
    ],
  );
  assert.equal(mergeHistories([fromN1, fromN2], 2).length, 2);
});
