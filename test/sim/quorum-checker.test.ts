/**
 * The commit oracle on hand-made disks: each rule must pass the case it allows and fail the one it
 * forbids (a checker that cannot fail proves nothing).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SimViolation } from "./checkers.ts";
import { type DurableImage, DurableQuorumChecker, holdsDurably } from "./quorum-checker.ts";

function image(
  first: number,
  last: number,
  term: number,
  compactedThrough = first - 1,
  snapshotIndex = 0,
): DurableImage {
  const entries = [];
  for (let index = first; index <= last; index++) entries.push({ index, term });
  return { entries, compactedThrough, snapshotIndex: () => snapshotIndex };
}

const empty: DurableImage = { entries: [], compactedThrough: 0, snapshotIndex: () => 0 };

function violation(kind: string): (error: unknown) => boolean {
  return (error) => error instanceof SimViolation && error.kind === kind;
}

test("an entry is held durably in the log on disk, behind the compaction point, or under a snapshot file", () => {
  assert.equal(holdsDurably(image(1, 5, 2), 5, 2), true);
  assert.equal(holdsDurably(image(1, 5, 2), 5, 3), false, "another term at that index");
  assert.equal(holdsDurably(image(1, 5, 2), 6, 2), false, "beyond the log");
  assert.equal(holdsDurably(image(8, 9, 2, 7), 6, 1), true, "compacted");
  assert.equal(holdsDurably({ ...empty, snapshotIndex: () => 12 }, 10, 4), true, "under a snapshot file");
  assert.equal(holdsDurably(empty, 1, 1), false);
});

test("a commit needs the entry durable on a majority of the voters the leader uses; learners do not count", () => {
  const disks = new Map<string, DurableImage>([
    ["n1", image(1, 10, 3)],
    ["n2", image(1, 10, 3)],
    ["n3", image(1, 4, 3)],
    ["n4", image(1, 10, 3)],
  ]);
  const checker = new DurableQuorumChecker((id) => disks.get(id) ?? null);
  checker.checkCommit("n1", ["n1", "n2", "n3"], 10, 3);
  // n4 holds it but is a learner: with voters n1, n3 (and n5, absent) the leader alone holds it.
  assert.throws(
    () => checker.checkCommit("n1", ["n1", "n3", "n5"], 10, 3),
    violation("commit-without-quorum"),
  );
  assert.throws(
    () => checker.checkCommit("n1", ["n1", "n2", "n3"], 10, 4),
    violation("commit-without-quorum"),
  );
});

test("a write acknowledged at all must be durable on every voter", () => {
  const disks = new Map<string, DurableImage>([
    ["n1", image(1, 10, 3)],
    ["n2", image(1, 10, 3)],
    ["n3", image(1, 9, 3)],
  ]);
  const checker = new DurableQuorumChecker((id) => disks.get(id) ?? null);
  checker.checkAllAcknowledged("n1", ["n1", "n2", "n3"], 9, 3);
  assert.throws(
    () => checker.checkAllAcknowledged("n1", ["n1", "n2", "n3"], 10, 3),
    violation("all-without-every-voter"),
  );
});

test("a wiped disk keeps counting what it held before the wipe, and what it holds after its rejoin", () => {
  const disks = new Map<string, DurableImage>([
    ["n1", image(1, 10, 3)],
    ["n2", image(1, 4, 3)],
    ["n3", image(1, 10, 3)],
  ]);
  const checker = new DurableQuorumChecker((id) => disks.get(id) ?? null);
  checker.rememberWiped("n3", disks.get("n3") as DurableImage);
  disks.set("n3", empty);
  // n3 acknowledged 10 before it died: a leader may still count that.
  checker.checkCommit("n1", ["n1", "n2", "n3"], 10, 3);
  disks.set("n1", image(1, 11, 3));
  assert.throws(
    () => checker.checkCommit("n1", ["n1", "n2", "n3"], 11, 3),
    violation("commit-without-quorum"),
  );
  disks.set("n3", image(11, 11, 3, 10));
  checker.checkCommit("n1", ["n1", "n2", "n3"], 11, 3);
});
