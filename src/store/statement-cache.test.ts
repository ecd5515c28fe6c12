import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { type ErrorCode, isBatonError } from "../lib/errors.ts";
import { logIndex } from "../types/ids.ts";
import { preparedStatementSqlCharsMax, preparedStatementsMax, StatementCache } from "./statement-cache.ts";
import type { StatementClass } from "./statement-guard.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, sql, TestLog, temporaryDirectory } from "./test-support.ts";

function nextIndex(store: Store): ReturnType<typeof logIndex> {
  return logIndex(Math.max(store.appliedIndex, store.lastSpeculativeIndex ?? 0) + 1);
}

function refusal(code: ErrorCode, message?: RegExp): (error: unknown) => boolean {
  return (error) => isBatonError(error, code) && (message === undefined || message.test(error.message));
}

describe("prepared-statement cache", () => {
  test("repeated statements are compiled once per connection and bind fresh values every time", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT)"));
    const before = log.leader.preparedStatements;
    const insert = "INSERT INTO t(id, a, b) VALUES (?, ?, ?)";
    log.write([sql(insert, [1, "x", "y"]), sql(insert, [2, "p"])]);
    log.write([sql(insert, [3, "q", "r"])]);
    log.write([sql("INSERT INTO t(id, a, b) VALUES (:id, :a, :b)", { id: 4, a: "n", b: "m" })]);
    log.write([sql("INSERT INTO t(id, a, b) VALUES (:id, :a, :b)", { id: 5, a: "o" })]);
    const after = log.leader.preparedStatements.execute;
    assert.equal(after.misses - before.execute.misses, 2, "two texts, each compiled once");
    assert.equal(after.hits - before.execute.hits, 3);
    // A missing value binds NULL, never the value of the previous use.
    assert.deepEqual(rowsOf(log.leader, "SELECT id, a, b FROM t ORDER BY id"), [
      [1, "x", "y"],
      [2, "p", null],
      [3, "q", "r"],
      [4, "n", "m"],
      [5, "o", null],
    ]);
    const select = "SELECT b FROM t WHERE id = ?";
    assert.deepEqual(rowsOf(log.leader, select, [1]), [["y"]]);
    assert.deepEqual(rowsOf(log.leader, select, [3]), [["r"]]);
    const query = log.leader.preparedStatements.query;
    assert.ok(query.hits >= 1 && query.entries >= 1, `query statements are kept: ${JSON.stringify(query)}`);
  });

  test("a cached query sees ALTER TABLE and DROP + CREATE of the table it reads", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)", "INSERT INTO t VALUES (1, 'x')"));
    const star = "SELECT * FROM t ORDER BY 1";
    const read = (): { columns: readonly string[]; rows: readonly (readonly unknown[])[] } =>
      log.leader.query([sql(star)]).results[0]!;
    assert.deepEqual(read(), { columns: ["id", "a"], rows: [[1, "x"]] });
    assert.deepEqual(read(), { columns: ["id", "a"], rows: [[1, "x"]] });
    log.write(batch("ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 7"));
    assert.deepEqual(read(), { columns: ["id", "a", "b"], rows: [[1, "x", 7]] });
    log.write(batch("DROP TABLE t", "CREATE TABLE t(k TEXT PRIMARY KEY NOT NULL, n REAL)"));
    log.write(batch("INSERT INTO t VALUES ('q', 1.5)"));
    assert.deepEqual(read(), { columns: ["k", "n"], rows: [["q", 1.5]] });
    log.write(batch("DROP TABLE t"));
    assert.throws(read, refusal("SQL_ERROR", /no such table/));
  });

  test("a cached batch statement sees ALTER TABLE and DROP + CREATE, in the same batch and later ones", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    const replica = openStore(t, directory, "replica.db");
    const star = "SELECT * FROM t ORDER BY 1";
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)", "INSERT INTO t VALUES (1, 'x')"));
    const first = log.write(batch(star, "ALTER TABLE t ADD COLUMN b DEFAULT 'd'", star));
    assert.deepEqual(first.results[0]?.columns, ["id", "a"]);
    assert.deepEqual(first.results[2]?.columns, ["id", "a", "b"]);
    // The same text writes, then is DDL-separated from a table of another shape under the same name.
    const write = "INSERT INTO t(id, a, b) VALUES (2, 'y', 'z')";
    const second = log.write(
      batch(write, star, "DROP TABLE t", "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c)", write, star),
    );
    assert.deepEqual(second.results[1]?.rows, [
      [1, "x", "d"],
      [2, "y", "z"],
    ]);
    assert.deepEqual(second.results[4], { rowsAffected: 1, lastInsertRowid: 2 });
    assert.deepEqual(second.results[5]?.rows, [[2, "y", "z", null]]);
    log.catchUp(replica);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });

  test("the guard still judges a cached statement after a schema change makes it forbidden", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    const insert = "INSERT INTO t(v) VALUES (?)";
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v)"));
    log.write([sql(insert, [1])]);
    log.write([sql(insert, [2])]);
    // A trigger body is judged when the statement that fires it compiles, not when it is created.
    log.write(batch("CREATE TRIGGER sneaky AFTER INSERT ON t BEGIN DELETE FROM _baton_requests; END"));
    for (let attempt = 0; attempt < 2; attempt++) {
      assert.throws(
        () => log.leader.execute(nextIndex(log.leader), [sql(insert, [3])]),
        refusal("FORBIDDEN_STATEMENT", /belongs to the store/),
      );
    }
    log.write(batch("DROP TRIGGER sneaky"));
    log.write([sql(insert, [3])]);
    assert.deepEqual(rowsOf(log.leader, "SELECT v FROM t ORDER BY id"), [[1], [2], [3]]);
  });

  test("refused statements are never kept: every attempt is refused", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
    const refusedBatches: readonly [string, ErrorCode][] = [
      ["DELETE FROM _baton_requests", "FORBIDDEN_STATEMENT"],
      ["SELECT 1; DELETE FROM t", "BAD_REQUEST"],
      ["VACUUM", "FORBIDDEN_STATEMENT"],
      ["PRAGMA user_version = 3", "FORBIDDEN_STATEMENT"],
    ];
    for (let attempt = 0; attempt < 3; attempt++) {
      for (const [text, code] of refusedBatches) {
        assert.throws(() => log.leader.execute(nextIndex(log.leader), batch(text)), refusal(code), text);
      }
      assert.throws(() => log.leader.query(batch("DELETE FROM t")), refusal("NOT_A_QUERY"));
      assert.throws(() => log.leader.query(batch("SELECT 1; SELECT 2")), refusal("BAD_REQUEST"));
    }
    const { execute, query } = log.leader.preparedStatements;
    assert.equal(execute.hits, 0, "no refused text was ever served from the cache");
    assert.equal(query.hits, 0);
  });

  test("a statement whose run failed is compiled afresh: its next use succeeds", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
    // node:sqlite leaves a statement whose `iterate` failed unreset, and reuse would repeat the error.
    const returning = "INSERT INTO t(id) VALUES (?) RETURNING id";
    log.write([sql(returning, [1])]);
    assert.throws(
      () => log.leader.execute(nextIndex(log.leader), [sql(returning, [1])]),
      refusal("SQL_ERROR", /UNIQUE/),
    );
    assert.deepEqual(log.write([sql(returning, [2])]).results[0]?.rows, [[2]]);
    const overflow = "SELECT CASE WHEN ? THEN abs(-9223372036854775807 - 1) ELSE 1 END AS v";
    assert.deepEqual(rowsOf(log.leader, overflow, [0]), [[1]]);
    assert.throws(() => log.leader.query([sql(overflow, [1])]), refusal("SQL_ERROR", /overflow/));
    assert.deepEqual(rowsOf(log.leader, overflow, [0]), [[1]]);
    const tooMany = "SELECT value FROM json_each('[1,2,3]')";
    assert.throws(() => log.leader.query([sql(tooMany)], { resultRowsMax: 2 }), refusal("RESULT_TOO_LARGE"));
    assert.deepEqual(log.leader.query([sql(tooMany)]).results[0]?.rows, [[1], [2], [3]]);
  });

  test("a rolled-back batch and a replayed entry leave no stale statement behind", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    const replica = openStore(t, directory, "replica.db");
    const star = "SELECT * FROM t ORDER BY 1";
    log.write(batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a)", "INSERT INTO t VALUES (1, 'x')"));
    log.leader.execute(nextIndex(log.leader), batch("ALTER TABLE t ADD COLUMN b", star));
    log.leader.rollbackSpeculative();
    assert.deepEqual(log.write(batch(star)).results[0]?.columns, ["id", "a"]);
    // The replica has served batches as a leader before it applies the new leader's DDL.
    log.catchUp(replica);
    replica.execute(nextIndex(replica), batch(star));
    replica.rollbackSpeculative();
    log.write(batch("ALTER TABLE t ADD COLUMN c DEFAULT 5"));
    log.catchUp(replica);
    const promoted = replica.execute(nextIndex(replica), batch(star));
    assert.deepEqual(promoted.results[0]?.columns, ["id", "a", "c"]);
    assert.deepEqual(promoted.results[0]?.rows, [[1, "x", 5]]);
  });
});

describe("statement cache bounds", () => {
  const approvedRead: StatementClass = {
    callbacks: 1,
    ddl: false,
    writes: false,
    createdTables: [],
    droppedTables: [],
    alteredTables: [],
    denial: null,
  };
  function prepared(db: DatabaseSync, cache: StatementCache, text: string): void {
    cache.set(text, { statement: db.prepare(text), statementClass: approvedRead });
  }

  test("holds at most its bound and evicts the least recently used entry", () => {
    const db = new DatabaseSync(":memory:");
    const cache = new StatementCache("query", 3);
    for (const n of [1, 2, 3]) prepared(db, cache, `SELECT ${n}`);
    assert.ok(cache.get("SELECT 1") !== undefined, "1 is now the most recently used");
    prepared(db, cache, "SELECT 4");
    assert.equal(cache.stats.entries, 3);
    assert.equal(cache.get("SELECT 2"), undefined, "2 was the least recently used");
    for (const n of [1, 3, 4]) assert.ok(cache.get(`SELECT ${n}`) !== undefined);
    cache.useSchemaVersion(1n);
    assert.equal(cache.stats.entries, 0, "a first schema version drops what it cannot vouch for");
    prepared(db, cache, "SELECT 5");
    cache.useSchemaVersion(1n);
    assert.equal(cache.stats.entries, 1, "the same schema version keeps the entries");
    cache.useSchemaVersion(2n);
    assert.equal(cache.stats.entries, 0, "another schema version drops them");
    db.close();
  });

  test("the store's caches stay within preparedStatementsMax; long texts are not kept", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "leader.db"));
    const texts = Array.from({ length: preparedStatementsMax + 20 }, (_, n) => sql(`SELECT ${n} AS n`));
    for (let from = 0; from < texts.length; from += 100) log.leader.query(texts.slice(from, from + 100));
    assert.equal(log.leader.preparedStatements.query.entries, preparedStatementsMax);
    const long = `SELECT '${"x".repeat(preparedStatementSqlCharsMax)}' AS long`;
    log.leader.query(batch(long));
    log.leader.query(batch(long));
    assert.equal(log.leader.preparedStatements.query.hits, 0);
  });
});
