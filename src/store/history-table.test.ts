import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import {
  ensureHistoryTable,
  type HistoryRow,
  historyRecordBytesMax,
  historyThrough,
  insertHistory,
  readHistory,
} from "./history-table.ts";
import { batch, openStore, rowsOf, sql, TestLog, temporaryDirectory } from "./test-support.ts";

function row(node: string, seq: number, atMs: number): HistoryRow {
  return { node, seq, atMs, record: JSON.stringify({ node, seq, atMs, event: `e${seq}` }) };
}

/** Writes history rows in a batch of their own on the log's leader, as the node's history batch does. */
function writeHistory(log: TestLog, rows: readonly HistoryRow[]): Uint8Array {
  const index = log.nextIndex;
  const { payload } = log.leader.execute(index, [], { historyRows: rows });
  log.leader.commitSpeculative(index);
  log.entries.push({ index, payload });
  return payload;
}

test("history rows replicate with their batch; sending them again changes nothing", (t) => {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  const replica = openStore(t, directory, "replica.db");
  log.write(batch("CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT)"));
  writeHistory(log, [row("n1", 7, 1_000), row("n2", 3, 1_500), row("n1", 8, 2_000)]);
  // The same records again (a lost acknowledgement, a new leader), and one new: only the new is written.
  const again = writeHistory(log, [
    { ...row("n1", 7, 1_000), record: '{"changed":true}' },
    row("n1", 8, 2_000),
    row("n1", 9, 2_500),
  ]);
  log.catchUp(replica);
  for (const store of [log.leader, replica]) {
    assert.deepEqual(
      store.history.recent(10).map((r) => `${r.node}:${r.seq}@${r.atMs}`),
      ["n1:9@2500", "n1:8@2000", "n2:3@1500", "n1:7@1000"],
    );
    assert.equal(store.history.recent(10).at(-1)?.record, row("n1", 7, 1_000).record, "never changed");
    assert.equal(store.history.through("n1"), 9);
    assert.equal(store.history.through("n3"), null);
  }
  assert.equal(log.leader.contentHash(), replica.contentHash(), "the history is replicated content");
  const nothingNew = writeHistory(log, [row("n2", 3, 1_500)]);
  assert.ok(nothingNew.byteLength < again.byteLength, "a batch of known records carries no row change");
  assert.deepEqual(
    log.leader.history.recent(2).map((r) => r.seq),
    [9, 8],
  );
});

test("the history keeps its newest rows: the batch that inserts deletes the oldest beyond the bound", () => {
  const db = new DatabaseSync(":memory:", { readBigInts: true });
  ensureHistoryTable(db);
  db.exec("BEGIN");
  assert.equal(insertHistory(db, [row("a", 1, 50), row("b", 1, 10), row("a", 2, 30)], 3), 3);
  // Two newer rows push out the two oldest (by time, whatever their node).
  assert.equal(insertHistory(db, [row("b", 2, 60), row("a", 3, 20), row("c", 1, 40)], 3), 3);
  db.exec("COMMIT");
  assert.deepEqual(
    readHistory(db, 10).map((r) => `${r.node}:${r.seq}`),
    ["b:2", "a:1", "c:1"],
  );
  assert.equal(historyThrough(db, "a"), 1);
  assert.equal(historyThrough(db, "b"), 2);
  db.close();
});

test("a history row breaking its bounds is a bug, refused before anything is written", () => {
  const db = new DatabaseSync(":memory:", { readBigInts: true });
  ensureHistoryTable(db);
  db.exec("BEGIN");
  const large = { ...row("a", 1, 1), record: "x".repeat(historyRecordBytesMax + 1) };
  assert.throws(() => insertHistory(db, [large]), /within 4096 bytes/);
  assert.throws(() => insertHistory(db, [{ ...row("a", 1, 1), seq: 1.5 }]), /a node, a sequence and a time/);
  db.exec("ROLLBACK");
  assert.throws(() => insertHistory(db, [row("a", 1, 1)]), /inside a batch/);
  db.close();
});

test("clients may read the history but not write it or build on its name", (t) => {
  const store = openStore(t, temporaryDirectory(t), "leader.db");
  const log = new TestLog(store);
  writeHistory(log, [row("n1", 1, 1_000)]);
  assert.deepEqual(rowsOf(store, "SELECT node, seq FROM _baton_history"), [["n1", 1]]);
  for (const text of [
    "INSERT INTO _baton_history(node, seq, at_ms, record) VALUES ('x', 1, 1, '{}')",
    "DELETE FROM _baton_history",
    "UPDATE _baton_history SET record = '{}'",
    "DROP TABLE _baton_history",
    "CREATE INDEX _baton_history_x ON _baton_history(record)",
  ]) {
    assert.throws(
      () => store.execute(log.nextIndex, [sql(text)]),
      (error: { code?: string }) => error.code === "FORBIDDEN_STATEMENT",
      text,
    );
  }
  assert.deepEqual(rowsOf(store, "SELECT count(*) FROM _baton_history"), [[1]]);
});
