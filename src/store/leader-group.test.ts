import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, sql, temporaryDirectory } from "./test-support.ts";
import type { BatchResult, GroupedBatch } from "./types.ts";

const schema = [
  "CREATE TABLE item(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL, qty INTEGER)",
  "CREATE TABLE note(k TEXT PRIMARY KEY NOT NULL, v TEXT)",
];

/** A leader with the schema and a few rows committed at index 1, and a replica that applied it. */
function pair(t: Parameters<typeof openStore>[0], options: Parameters<typeof openStore>[3] = {}) {
  const directory = temporaryDirectory(t);
  const leader = openStore(t, directory, "leader.db", options);
  const replica = openStore(t, directory, "replica.db", options);
  const first = leader.execute(logIndex(1), [
    ...batch(...schema),
    sql("INSERT INTO item(name, qty) VALUES ('a', 1), ('b', 2), ('c', 3)"),
    sql("INSERT INTO note VALUES ('x', 'one'), ('y', 'two')"),
  ]);
  leader.commitSpeculative(logIndex(1));
  replica.apply(logIndex(1), first.payload);
  return { leader, replica };
}

function commitAndApply(leader: Store, replica: Store, index: LogIndex, payload: Uint8Array | null): void {
  assert.ok(payload !== null, "the group made an entry");
  leader.commitSpeculative(index);
  replica.apply(index, payload);
  assert.equal(replica.contentHash(), leader.contentHash(), "the replica holds what the leader holds");
}

function kinds(results: readonly BatchResult[]): string[] {
  return results.map((result) => result.kind);
}

function failedCode(result: BatchResult | undefined): string | undefined {
  assert.equal(result?.kind, "failed");
  return result.kind === "failed" && isBatonError(result.error) ? result.error.code : undefined;
}

/** A batch that creates a table and then runs `last`, followed by a batch of one insert. */
function ddlFirst(last: string): GroupedBatch[] {
  const ddl = batch("INSERT INTO note VALUES ('q', 'q')", "CREATE TABLE t2(a INTEGER PRIMARY KEY)", last);
  return [{ statements: ddl }, { statements: batch("INSERT INTO note VALUES ('s', 's')") }];
}

const requestFor = (id: string) => ({
  request: { id, response: () => JSON.stringify({ id }), loggedAtMs: 1_000 },
});

describe("several client batches in one entry", () => {
  test("each batch has its own results, and one payload reproduces them all on a replica", (t) => {
    const { leader, replica } = pair(t);
    const group = leader.executeGroup(logIndex(2), [
      { statements: batch("INSERT INTO item(name, qty) VALUES ('d', 4)") },
      { statements: [sql("UPDATE item SET qty = qty + 10 WHERE name = ? RETURNING qty", ["a"])] },
      { statements: batch("DELETE FROM note WHERE k = 'x'", "INSERT INTO item(name) VALUES ('e')") },
    ]);
    assert.deepEqual(kinds(group.batches), ["done", "done", "done"]);
    const [insert, update, mixed] = group.batches;
    assert.deepEqual(insert?.kind === "done" && insert.results, [{ rowsAffected: 1, lastInsertRowid: 4 }]);
    assert.deepEqual(update?.kind === "done" && update.results[0]?.rows, [[11]]);
    assert.deepEqual(mixed?.kind === "done" && mixed.results[1]?.lastInsertRowid, 5);
    assert.deepEqual(leader.speculativeIndexes, [2], "the group is one speculative entry");
    commitAndApply(leader, replica, logIndex(2), group.payload);
    assert.deepEqual(rowsOf(replica, "SELECT seq FROM sqlite_sequence WHERE name = 'item'"), [[5]]);
  });

  test("a failing batch leaves nothing in the entry; the batches around it stand", (t) => {
    const { leader, replica } = pair(t);
    const group = leader.executeGroup(logIndex(2), [
      { statements: batch("UPDATE item SET qty = 100 WHERE name = 'a'") },
      {
        // Changes an insert, an update and a delete, then fails: all three must be undone.
        statements: batch(
          "INSERT INTO item(name) VALUES ('z')",
          "UPDATE item SET qty = 0 WHERE name = 'b'",
          "DELETE FROM note WHERE k = 'y'",
          "INSERT INTO item(name) VALUES ('a')",
        ),
      },
      {
        statements: batch("UPDATE item SET qty = 200 WHERE name = 'a'", "INSERT INTO note VALUES ('w', 'w')"),
      },
    ]);
    assert.deepEqual(kinds(group.batches), ["done", "failed", "done"]);
    assert.equal(failedCode(group.batches[1]), "SQL_ERROR");
    commitAndApply(leader, replica, logIndex(2), group.payload);
    assert.deepEqual(rowsOf(replica, "SELECT name, qty FROM item ORDER BY id"), [
      ["a", 200],
      ["b", 2],
      ["c", 3],
    ]);
    assert.deepEqual(rowsOf(replica, "SELECT k FROM note ORDER BY k"), [["w"], ["x"], ["y"]]);
    assert.deepEqual(rowsOf(replica, "SELECT seq FROM sqlite_sequence WHERE name = 'item'"), [[3]]);
  });

  test("a batch that fails the statement limits fails alone", (t) => {
    const { leader, replica } = pair(t, { statementsPerBatchMax: 4 });
    const group = leader.executeGroup(logIndex(2), [
      { statements: batch("SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "SELECT 5") },
      { statements: batch("INSERT INTO note VALUES ('n', 'n')") },
    ]);
    assert.deepEqual(kinds(group.batches), ["failed", "done"]);
    assert.equal(failedCode(group.batches[0]), "BAD_REQUEST");
    commitAndApply(leader, replica, logIndex(2), group.payload);
  });

  test("when every batch fails nothing is proposed and nothing stays open", (t) => {
    const { leader } = pair(t);
    const group = leader.executeGroup(logIndex(2), [
      { statements: batch("INSERT INTO item(name) VALUES ('a')") },
      { statements: batch("INSERT INTO nowhere VALUES (1)") },
    ]);
    assert.deepEqual(kinds(group.batches), ["failed", "failed"]);
    assert.equal(group.payload, null);
    assert.deepEqual(leader.speculativeIndexes, []);
    const next = leader.execute(logIndex(2), batch("INSERT INTO note VALUES ('n', 'n')"));
    assert.ok(next.payload.length > 0, "the index is free for the next entry");
  });

  test("DDL runs only in an entry of its own", (t) => {
    const { leader, replica } = pair(t);
    const later = leader.executeGroup(logIndex(2), [
      { statements: batch("INSERT INTO note VALUES ('p', 'p')") },
      { statements: batch("INSERT INTO note VALUES ('q', 'q')", "CREATE TABLE t2(a INTEGER PRIMARY KEY)") },
      { statements: batch("INSERT INTO note VALUES ('r', 'r')") },
    ]);
    assert.deepEqual(later.batches[1], { kind: "again", alone: true });
    assert.deepEqual(kinds(later.batches), ["done", "again", "done"], "the batches after it go on");
    commitAndApply(leader, replica, logIndex(2), later.payload);
    assert.deepEqual(rowsOf(leader, "SELECT k FROM note WHERE k IN ('p', 'q', 'r') ORDER BY k"), [
      ["p"],
      ["r"],
    ]);

    const first = leader.executeGroup(logIndex(3), ddlFirst("INSERT INTO t2 VALUES (1)"));
    assert.deepEqual(kinds(first.batches), ["done", "again"], "the batch that ran DDL ends the group");
    commitAndApply(leader, replica, logIndex(3), first.payload);
    assert.deepEqual(rowsOf(replica, "SELECT a FROM t2"), [[1]]);
  });

  test("a first batch whose DDL fails leaves the entry to the batches after it", (t) => {
    const { leader, replica } = pair(t);
    const group = leader.executeGroup(logIndex(2), ddlFirst("INSERT INTO t2 VALUES (1, 2)"));
    assert.deepEqual(kinds(group.batches), ["failed", "again"]);
    assert.equal(group.payload, null);
    assert.deepEqual(rowsOf(leader, "SELECT count(*) FROM sqlite_schema WHERE name = 't2'"), [[0]]);
    const next = leader.executeGroup(logIndex(2), [
      { statements: batch("INSERT INTO note VALUES ('r', 'r')") },
    ]);
    commitAndApply(leader, replica, logIndex(2), next.payload);
  });

  test("each batch's request is remembered at the entry's index", (t) => {
    const { leader, replica } = pair(t);
    const batches: GroupedBatch[] = [
      { statements: batch("INSERT INTO note VALUES ('r1', '')"), options: requestFor("req-1") },
      { statements: batch("INSERT INTO note VALUES ('x', '')"), options: requestFor("req-2") },
      { statements: batch("INSERT INTO note VALUES ('r3', '')"), options: requestFor("req-3") },
    ];
    const group = leader.executeGroup(logIndex(2), batches);
    assert.deepEqual(kinds(group.batches), ["done", "failed", "done"]);
    commitAndApply(leader, replica, logIndex(2), group.payload);
    assert.equal(replica.lookupRequest("req-1")?.index, 2);
    assert.equal(replica.lookupRequest("req-2"), null, "a failed batch is not remembered");
    assert.equal(replica.lookupRequest("req-3")?.response, JSON.stringify({ id: "req-3" }));
  });

  test("batches whose changes together pass the payload bound run again, each alone", (t) => {
    const { leader, replica } = pair(t, { payloadBytesMax: 3_000 });
    const wide = (k: string) => ({
      statements: [sql("INSERT INTO note VALUES (?, ?)", [k, "v".repeat(1_800)])],
    });
    const group = leader.executeGroup(logIndex(2), [wide("w1"), wide("w2")]);
    assert.deepEqual(group.batches, [
      { kind: "again", alone: true },
      { kind: "again", alone: true },
    ]);
    assert.equal(group.payload, null);
    assert.deepEqual(rowsOf(leader, "SELECT count(*) FROM note"), [[2]]);
    const alone = leader.executeGroup(logIndex(2), [wide("w1")]);
    commitAndApply(leader, replica, logIndex(2), alone.payload);
  });

  test("a batch that makes SQLite end the transaction fails; the others run again", (t) => {
    const { leader } = pair(t);
    leader.execute(logIndex(2), batch("INSERT INTO note VALUES ('s', 's')"));
    const group = leader.executeGroup(logIndex(3), [
      { statements: batch("INSERT INTO note VALUES ('t', 't')") },
      { statements: batch("INSERT OR ROLLBACK INTO item(name) VALUES ('a')") },
      { statements: batch("INSERT INTO note VALUES ('u', 'u')") },
    ]);
    assert.deepEqual(kinds(group.batches), ["again", "failed", "again"]);
    const lost = group.batches[1];
    assert.ok(lost?.kind === "failed" && isBatonError(lost.error, "SQL_ERROR"));
    assert.deepEqual(lost.error.details.lostSpeculativeIndexes, [2]);
    assert.equal(group.payload, null);
    assert.equal(leader.replayRequiredThrough, 2, "the earlier entry must be applied from the log");
    assert.deepEqual(leader.speculativeIndexes, []);
  });
});
