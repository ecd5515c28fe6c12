/**
 * How a node judges its own database from the voters' content hashes (`judge`), against a naive
 * oracle, and the storage messages' wire format.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isBatonError } from "../lib/errors.ts";
import { logIndex, type NodeId, nodeId } from "../types/ids.ts";
import { judge } from "./consistency-check.ts";
import { decodePeerBody, encodeStorage, type StorageMessage } from "./peer-envelope.ts";

const ids = ["n1", "n2", "n3", "n4", "n5"].map(nodeId);
const hashA = "a".repeat(64);
const hashB = "b".repeat(64);

function reports(entries: [string, string][]): Map<NodeId, string> {
  return new Map(entries.map(([id, hash]) => [nodeId(id), hash]));
}

describe("judging a node's database by the voters' hashes", () => {
  test("passed with the majority, damaged against it, pending without its own hash or a majority", () => {
    const voters = ids.slice(0, 3);
    assert.deepEqual(
      judge(
        voters[0]!,
        voters,
        reports([
          ["n1", hashA],
          ["n2", hashA],
        ]),
      ),
      { outcome: "passed", hash: hashA, dissenters: [] },
    );
    assert.deepEqual(
      judge(
        voters[2]!,
        voters,
        reports([
          ["n1", hashA],
          ["n2", hashA],
          ["n3", hashB],
        ]),
      ),
      { outcome: "damaged", hash: hashA, agreeing: [voters[0], voters[1]] },
    );
    assert.equal(
      judge(
        voters[2]!,
        voters,
        reports([
          ["n1", hashA],
          ["n2", hashA],
        ]),
      ).outcome,
      "pending",
    );
    assert.equal(
      judge(
        voters[0]!,
        voters,
        reports([
          ["n1", hashA],
          ["n3", hashB],
        ]),
      ).outcome,
      "pending",
    );
    assert.equal(
      judge(
        voters[0]!,
        voters.slice(0, 2),
        reports([
          ["n1", hashA],
          ["n2", hashB],
        ]),
      ).outcome,
      "no-majority",
      "two voters that differ: no copy can be trusted over the other",
    );
  });

  test("a learner's hash counts for no majority, but a learner judges itself by the voters'", () => {
    const voters = ids.slice(0, 3);
    const learner = ids[3]!;
    const seen = reports([
      ["n1", hashB],
      ["n4", hashB],
      ["n2", hashA],
      ["n3", hashA],
    ]);
    assert.equal(judge(learner, voters, seen).outcome, "damaged");
    assert.equal(judge(voters[0]!, voters, seen).outcome, "damaged");
  });

  test("against a naive oracle: damaged exactly when a majority of voters agrees on another hash; never on a lone dissenter's word", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.option(fc.constantFrom("x", "y", "z"), { nil: undefined }), {
          minLength: 5,
          maxLength: 5,
        }),
        fc.integer({ min: 0, max: 4 }),
        (voterCount, hashes, selfAt) => {
          const voters = ids.slice(0, voterCount);
          const self = ids[Math.min(selfAt, voterCount - 1)]!;
          const seen = new Map<NodeId, string>();
          voters.forEach((voter, i) => {
            if (hashes[i] !== undefined) seen.set(voter, hashes[i]!);
          });
          const verdict = judge(self, voters, seen);
          const own = seen.get(self);
          const quorum = Math.floor(voterCount / 2) + 1;
          const counts = new Map<string, number>();
          for (const hash of seen.values()) counts.set(hash, (counts.get(hash) ?? 0) + 1);
          const majority = [...counts].find(([, count]) => count >= quorum)?.[0];
          if (own === undefined) assert.equal(verdict.outcome, "pending");
          else if (majority === undefined)
            assert.equal(verdict.outcome, seen.size === voterCount ? "no-majority" : "pending");
          else assert.equal(verdict.outcome, majority === own ? "passed" : "damaged");
          // A healthy node (holding the majority's hash) is never judged damaged, whatever one other says.
          if (own !== undefined && own === majority) assert.notEqual(verdict.outcome, "damaged");
          if (verdict.outcome === "damaged")
            assert.ok(verdict.agreeing.length >= quorum && !verdict.agreeing.includes(self));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("storage messages on the wire", () => {
  test("every kind survives encoding; malformed ones are refused BAD_MESSAGE", () => {
    const messages: StorageMessage[] = [
      { kind: "checkStart", index: logIndex(42) },
      { kind: "checkReport", index: logIndex(7), hash: hashA.replace(/a/g, "0f").slice(0, 64) },
      { kind: "snapshotRequest", appliedIndex: logIndex(2 ** 40) },
      { kind: "checkRequest", appliedIndex: logIndex(0) },
    ];
    for (const message of messages)
      assert.deepEqual(decodePeerBody(encodeStorage(message)), { type: "storage", message });
    const report = encodeStorage(messages[1]!);
    for (const bad of [
      report.subarray(0, report.byteLength - 1),
      Uint8Array.of(4, 9, 0, 0, 0, 0, 0, 0, 0, 0),
    ])
      assert.throws(
        () => decodePeerBody(bad),
        (e) => isBatonError(e, "BAD_MESSAGE"),
      );
    assert.throws(() => encodeStorage({ kind: "checkReport", index: logIndex(1), hash: "abc" }), /32 bytes/);
  });
});
