import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { BoundedReads } from "./bounded-reads.ts";
import { statementCostEntriesMax } from "./statement-cost.ts";
import { batch, openStore, sql, TestLog, temporaryDirectory } from "./test-support.ts";

describe("queries that may run in process (queryIfBounded)", () => {
  test("a point read by key runs and answers as query does; a scan, an aggregate or a recursive CTE runs nothing", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)"));
    log.write([sql("INSERT INTO kv VALUES (?, ?), (?, ?)", ["a", "1", "b", "2"])]);
    const store = log.leader;
    const point = [sql("SELECT v FROM kv WHERE k = ?", ["b"])];
    assert.deepEqual(store.queryIfBounded(point), store.query(point));
    assert.deepEqual(store.queryIfBounded(point)?.results[0]?.rows, [["2"]]);
    for (const text of [
      "SELECT v FROM kv",
      "SELECT count(*) FROM kv",
      "SELECT v FROM kv WHERE k IN ('a', 'b')",
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ])
      assert.equal(store.queryIfBounded([sql(text)]), null, text);
    // One unbounded statement sends the whole query elsewhere.
    assert.equal(store.queryIfBounded([...point, sql("SELECT count(*) FROM kv")]), null);
  });

  test("a verdict is judged again once the committed schema changes: the same text over a table without its key is a scan", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)"));
    const store = log.leader;
    const point = [sql("SELECT v FROM kv WHERE k = ?", ["a"])];
    assert.notEqual(store.queryIfBounded(point), null);
    // Changed but not committed: readers still see the keyed table, and so does the verdict.
    const index = log.nextIndex;
    store.execute(index, batch("DROP TABLE kv", "CREATE TABLE kv(id INTEGER PRIMARY KEY, k TEXT, v TEXT)"));
    assert.notEqual(store.queryIfBounded(point), null);
    store.commitSpeculative(index);
    assert.equal(store.queryIfBounded(point), null);
  });

  test("bad statements get the same errors as query; results keep their bounds", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)"));
    log.write([sql("INSERT INTO kv VALUES ('big', ?)", ["x".repeat(2000)])]);
    const store = log.leader;
    // What the store refuses before running anything is refused alike: too many statements, two in one text.
    const codeOf = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return isBatonError(error) ? error.code : String(error);
      }
      return "no error";
    };
    for (const bad of [Array.from({ length: 1_001 }, () => sql("SELECT 1")), [sql("SELECT 1; SELECT 2")]]) {
      const expected = codeOf(() => store.query(bad));
      assert.equal(expected, "BAD_REQUEST");
      assert.equal(
        codeOf(() => store.queryIfBounded(bad)),
        expected,
      );
    }
    // A statement that does not compile is not proven short: the executor runs it and reports the error.
    assert.equal(store.queryIfBounded([sql("SELECT nope FROM kv WHERE k = 'a'")]), null);
    assert.throws(
      () => store.queryIfBounded([sql("SELECT v FROM kv WHERE k = 'big'")], { resultBytesMax: 100 }),
      (error) => isBatonError(error, "RESULT_TOO_LARGE"),
    );
  });

  test("the verdicts kept stay within statementCostEntriesMax", () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)");
    const gate = new BoundedReads().gateFor(db);
    const reads = new BoundedReads();
    const readGate = reads.gateFor(db);
    for (let i = 0; i < statementCostEntriesMax + 50; i++)
      assert.equal(readGate(1n, [{ sql: `SELECT v FROM kv WHERE k = 'k${i}'` }]), true);
    assert.equal(reads.entries, statementCostEntriesMax);
    // Another schema version starts over.
    assert.equal(readGate(2n, [{ sql: "SELECT v FROM kv" }]), false);
    assert.equal(reads.entries, 1);
    assert.equal(gate(1n, [{ sql: "SELECT v FROM kv WHERE k = 'a'" }]), true);
    db.close();
  });
});

describe("the read transaction short queries share (read-turn.ts)", () => {
  test("queries share it until endReadTurn; a commit here ends it for the next query", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)"));
    log.write([sql("INSERT INTO kv VALUES ('a', '1')")]);
    const store = log.leader;
    const point = [sql("SELECT v FROM kv WHERE k = 'a'")];
    const valueRead = () => store.queryIfBounded(point)?.results[0]?.rows[0]?.[0];
    assert.equal(valueRead(), "1");
    // A writer the store does not know of: the shared transaction keeps showing what it showed.
    const outside = new DatabaseSync(store.path);
    t.after(() => outside.close());
    outside.exec("UPDATE kv SET v = 'outside' WHERE k = 'a'");
    assert.equal(valueRead(), "1", "the second query ran in the first one's transaction");
    store.endReadTurn();
    assert.equal(valueRead(), "outside", "a new turn reads afresh");
    // A commit through the store: the next query must see it, shared transaction or not.
    log.write([sql("UPDATE kv SET v = '2' WHERE k = 'a'")]);
    const after = store.queryIfBounded(point);
    assert.equal(after?.results[0]?.rows[0]?.[0], "2");
    assert.equal(after?.appliedIndex, store.appliedIndex, "it names the applied index it read");
    // Every other reader of the connection ends the shared transaction first.
    assert.deepEqual(store.query(point).results[0]?.rows, [["2"]]);
    assert.equal(store.describeTable("kv")?.columns.length, 2);
  });

  test("a replica's apply ends it for the next query", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    const replica = openStore(t, directory, "replica.db");
    log.write(batch("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)"));
    log.write([sql("INSERT INTO kv VALUES ('a', '1')")]);
    log.catchUp(replica);
    const point = [sql("SELECT v FROM kv WHERE k = 'a'")];
    assert.deepEqual(replica.queryIfBounded(point)?.results[0]?.rows, [["1"]]);
    log.write([sql("UPDATE kv SET v = '2' WHERE k = 'a'")]);
    log.catchUp(replica);
    assert.deepEqual(replica.queryIfBounded(point)?.results[0]?.rows, [["2"]]);
  });
});
