import assert from "node:assert/strict";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { AssertionError } from "../lib/assert.ts";
import { isBatonError } from "../lib/errors.ts";
import { logIndex } from "../types/ids.ts";
import { queryValueBytesMax } from "./connections.ts";
import { clientValueBytesMax } from "./leader-batch.ts";
import { Store } from "./store.ts";
import { batch, openStore, rowsOf, sql, TestLog, temporaryDirectory } from "./test-support.ts";

const schema =
  "CREATE TABLE item(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL, qty INTEGER)";

describe("execute results", () => {
  test("returns rows, counts and rowids per statement; RETURNING rows come back", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const { results } = leader.execute(logIndex(1), [
      sql(schema),
      sql("INSERT INTO item(name, qty) VALUES (?, ?), (?, ?)", ["a", 1, "b", 2]),
      sql("UPDATE item SET qty = qty + 10 WHERE qty > :min RETURNING id, qty", { min: 1 }),
      sql("SELECT name FROM item ORDER BY id"),
    ]);
    assert.deepEqual(results[0], { rowsAffected: 0, lastInsertRowid: 0 });
    assert.deepEqual(results[1], { rowsAffected: 2, lastInsertRowid: 2 });
    assert.deepEqual(results[2], {
      rowsAffected: 1,
      lastInsertRowid: 2,
      columns: ["id", "qty"],
      rows: [[2, 12]],
    });
    assert.deepEqual(results[3], {
      rowsAffected: 0,
      lastInsertRowid: 0,
      columns: ["name"],
      rows: [["a"], ["b"]],
    });
  });

  test("binds named parameters with or without prefix, booleans as 0/1, bytes and bigints", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const big = 2n ** 62n + 1n;
    const { results } = leader.execute(logIndex(1), [
      sql("SELECT :a AS a, $b AS b, ? AS c, ? AS d, ? AS e", { a: true, $b: false }),
      sql("SELECT ? AS blob, ? AS big, ? AS f", [Buffer.from([1, 2]), big, 1.5]),
    ]);
    assert.deepEqual(results[1]?.rows, [[new Uint8Array([1, 2]), big, 1.5]]);
    assert.deepEqual(results[0]?.rows, [[1, 0, null, null, null]]);
  });

  test("integers beyond 2^53 come back exact as bigint, smaller ones as numbers", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const { results } = leader.execute(logIndex(1), [
      sql("SELECT 9007199254740993 AS big, 9007199254740991 AS safe, 1.0 AS real"),
    ]);
    assert.deepEqual(results[0]?.rows, [[9007199254740993n, 9007199254740991, 1]]);
    assert.equal(typeof results[0]?.rows?.[0]?.[0], "bigint");
  });

  test("refuses values it cannot bind exactly with BAD_REQUEST naming the statement", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    for (const bad of [undefined, {}, [1], Number.NaN, Number.POSITIVE_INFINITY, 2n ** 64n, () => 1]) {
      assert.throws(
        () => leader.execute(logIndex(1), [sql("SELECT 1"), sql("SELECT ?", [bad as never])]),
        (error) => isBatonError(error, "BAD_REQUEST") && error.details.statementIndex === 1,
      );
    }
    assert.throws(
      () => leader.execute(logIndex(1), [sql("SELECT :a", { nope: 1 })]),
      (e) => isBatonError(e, "BAD_REQUEST"),
    );
    assert.throws(
      () => leader.execute(logIndex(1), [sql("SELECT ?", [1, 2])]),
      (e) => isBatonError(e, "BAD_REQUEST"),
    );
    assert.equal(leader.speculativeCount, 0);
  });

  test("a failing statement rolls the whole batch back and names the statement and SQLite's message", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const log = new TestLog(leader);
    log.write(batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    const error = (() => {
      try {
        leader.execute(
          logIndex(2),
          batch("INSERT INTO item(name) VALUES ('b')", "INSERT INTO item(name) VALUES ('a')"),
        );
      } catch (caught) {
        return caught;
      }
      return null;
    })();
    assert.ok(isBatonError(error, "SQL_ERROR"));
    assert.equal(error.details.statementIndex, 1);
    assert.match(String(error.details.sqliteMessage), /UNIQUE constraint failed: item\.name/);
    assert.equal(leader.speculativeCount, 0);
    // Nothing of the failed batch survives: 'b' can be inserted and gets the next id after 'a'.
    const next = leader.execute(logIndex(2), batch("INSERT INTO item(name) VALUES ('b') RETURNING id"));
    assert.deepEqual(next.results[0]?.rows, [[2]]);
  });

  test("a string with several statements is refused; trailing comments and semicolons are fine", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    for (const empty of ["", "  ", "-- only a comment", ";"]) {
      assert.throws(
        () => leader.execute(logIndex(1), batch(empty)),
        (e) => isBatonError(e, "BAD_REQUEST"),
        JSON.stringify(empty),
      );
    }
    leader.execute(logIndex(1), batch(`${schema}; -- trailing comment\n ; /* more */`));
    assert.throws(
      () => leader.execute(logIndex(2), batch("INSERT INTO item(name) VALUES ('a'); DELETE FROM item")),
      (error) => isBatonError(error, "BAD_REQUEST") && /more than one SQL statement/.test(error.message),
    );
    leader.commitSpeculative(logIndex(1));
    assert.deepEqual(rowsOf(leader, "SELECT count(*) FROM item"), [[0]]);
  });

  test("bounds: statements per batch, SQL bytes, rows returned, payload bytes", (t) => {
    const directory = temporaryDirectory(t);
    const leader = openStore(t, directory, "leader.db", {
      statementsPerBatchMax: 3,
      sqlBytesMax: 60,
      payloadBytesMax: 400,
    });
    assert.throws(
      () => leader.execute(logIndex(1), batch("SELECT 1", "SELECT 1", "SELECT 1", "SELECT 1")),
      (e) => isBatonError(e, "BAD_REQUEST"),
    );
    assert.throws(
      () => leader.execute(logIndex(1), batch(`SELECT '${"x".repeat(60)}'`)),
      (e) => isBatonError(e, "BAD_REQUEST"),
    );
    assert.throws(
      () => leader.execute(logIndex(1), batch("SELECT 1 UNION ALL SELECT 2"), { resultRowsMax: 1 }),
      (e) => isBatonError(e, "RESULT_TOO_LARGE"),
    );
    leader.execute(logIndex(1), batch("CREATE TABLE b(id INTEGER PRIMARY KEY, v)"));
    assert.throws(
      () => leader.execute(logIndex(2), [sql("INSERT INTO b(v) VALUES (zeroblob(1000))")]),
      (e) => isBatonError(e, "PAYLOAD_TOO_LARGE"),
    );
    assert.deepEqual(leader.speculativeIndexes, [1]);
  });

  test("results are bounded in bytes across a request's statements: RESULT_TOO_LARGE, and the store serves on", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    leader.execute(logIndex(1), batch("CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)"));
    leader.execute(logIndex(2), [sql("INSERT INTO big(v) VALUES (printf('%.1000c', 'x'))")]);
    leader.commitSpeculative(logIndex(2));
    const select = sql("SELECT v FROM big");
    assert.equal(leader.query([select], { resultBytesMax: 1_000 }).results[0]?.rows.length, 1);
    assert.throws(
      () => leader.query([select, select], { resultBytesMax: 1_500 }),
      (e) => isBatonError(e, "RESULT_TOO_LARGE") && e.details.statementIndex === 1,
      "the second statement crosses the request's budget",
    );
    assert.throws(
      () =>
        leader.execute(logIndex(3), [sql("UPDATE big SET v = v || 'y' RETURNING v")], {
          resultBytesMax: 500,
        }),
      (e) => isBatonError(e, "RESULT_TOO_LARGE"),
    );
    assert.deepEqual(leader.speculativeIndexes, [], "the refused batch left nothing behind");
    assert.equal(leader.query([select]).results[0]?.rows.length, 1);
  });

  test("a query cannot make SQLite build a value past queryValueBytesMax: VALUE_TOO_LARGE before the allocation", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const before = process.memoryUsage().rss;
    assert.throws(
      () => leader.query([sql(`SELECT length(zeroblob(${queryValueBytesMax + 1}))`)]),
      (e) => isBatonError(e, "VALUE_TOO_LARGE"),
    );
    assert.ok(process.memoryUsage().rss - before < queryValueBytesMax, "the value was never allocated");
    assert.deepEqual(leader.query([sql(`SELECT length(zeroblob(${queryValueBytesMax}))`)]).results[0]?.rows, [
      [queryValueBytesMax],
    ]);
  });
});

describe("client values on the leader", () => {
  test("an execute cannot build a value past clientValueBytesMax (VALUE_TOO_LARGE), while the store's own writes keep the connection's limit", (t) => {
    const payloadBytesMax = 2 * clientValueBytesMax; // Room for the long response below.
    const leader = openStore(t, temporaryDirectory(t), "leader.db", { payloadBytesMax });
    leader.execute(logIndex(1), batch("CREATE TABLE big(id INTEGER PRIMARY KEY, body BLOB)"));
    assert.throws(
      () => leader.execute(logIndex(2), [sql(`SELECT length(zeroblob(${clientValueBytesMax + 1}))`)]),
      (e) => isBatonError(e, "VALUE_TOO_LARGE"),
    );
    // A remembered response longer than the client bound: the request log writes it all the same.
    const response = (): string => "x".repeat(clientValueBytesMax + 1);
    leader.execute(logIndex(2), batch("INSERT INTO big(body) VALUES (x'00')"), {
      request: { id: "r", response, loggedAtMs: 1_000 },
    });
    assert.equal(leader.lookupRequest("r")?.response.length, clientValueBytesMax + 1);
  });
});

describe("speculative transaction", () => {
  test("readers see nothing until commitSpeculative; later batches see earlier uncommitted ones", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    leader.execute(logIndex(1), batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    const second = leader.execute(logIndex(3), batch("INSERT INTO item(name) VALUES ('b') RETURNING id"));
    assert.deepEqual(second.results[0]?.rows, [[2]], "AUTOINCREMENT continues from the uncommitted batch");
    assert.throws(
      () => leader.execute(logIndex(4), batch("INSERT INTO item(name) VALUES ('a')")),
      (e) => isBatonError(e, "SQL_ERROR"),
    );
    assert.deepEqual(leader.speculativeIndexes, [1, 3]);
    assert.equal(leader.lastSpeculativeIndex, 3);
    assert.equal(leader.query(batch("SELECT 1")).appliedIndex, 0);
    assert.deepEqual(rowsOf(leader, "SELECT count(*) FROM sqlite_schema WHERE name = 'item'"), [[0]]);
    leader.commitSpeculative(logIndex(3));
    assert.equal(leader.appliedIndex, 3);
    assert.equal(leader.speculativeCount, 0);
    assert.deepEqual(rowsOf(leader, "SELECT name FROM item ORDER BY id"), [["a"], ["b"]]);
    assert.equal(leader.query(batch("SELECT 1")).appliedIndex, 3);
  });

  test("rollbackSpeculative discards every speculative batch and returns their indexes", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const log = new TestLog(leader);
    log.write(batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    const hashCommitted = leader.contentHash();
    leader.execute(
      logIndex(2),
      batch("INSERT INTO item(name) VALUES ('b')", "CREATE TABLE extra(id INTEGER PRIMARY KEY)"),
    );
    leader.execute(logIndex(3), batch("DELETE FROM item"));
    assert.deepEqual(leader.rollbackSpeculative(), [{ index: 2 }, { index: 3 }]);
    assert.equal(leader.appliedIndex, 1);
    // The write connection is back at the committed state: commit a new batch and compare.
    const next = leader.execute(
      logIndex(2),
      batch("SELECT count(*) FROM item", "SELECT count(*) FROM sqlite_schema WHERE name = 'extra'"),
    );
    assert.deepEqual(
      next.results.map((r) => r.rows),
      [[[1]], [[0]]],
    );
    leader.commitSpeculative(logIndex(2));
    assert.equal(leader.contentHash(), hashCommitted);
  });

  test("a statement whose conflict clause rolls back the whole transaction loses the speculative batches, and says so", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const log = new TestLog(leader);
    log.write(batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    const lost = leader.execute(logIndex(2), batch("INSERT INTO item(name) VALUES ('b')"));
    let error: unknown = null;
    try {
      leader.execute(logIndex(3), batch("INSERT OR ROLLBACK INTO item(name) VALUES ('a')"));
    } catch (caught) {
      error = caught;
    }
    assert.ok(isBatonError(error, "SQL_ERROR"));
    assert.deepEqual(error.details.lostSpeculativeIndexes, [2]);
    assert.equal(leader.speculativeCount, 0);
    assert.equal(leader.replayRequiredThrough, 2);
    assert.throws(
      () => leader.execute(logIndex(3), batch("SELECT 1")),
      (e) => isBatonError(e, "OVERLOADED"),
    );
    // The entry is in the log: once committed, the node applies it and may execute again.
    leader.apply(logIndex(2), lost.payload);
    assert.equal(leader.replayRequiredThrough, null);
    leader.execute(logIndex(3), batch("SELECT 1"));
    assert.deepEqual(leader.speculativeIndexes, [3]);
  });

  test("execute and apply refuse indexes that break the log order (assertions: caller bugs)", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db");
    const { payload } = leader.execute(logIndex(2), batch(schema));
    assert.throws(() => leader.execute(logIndex(2), batch("SELECT 1")), AssertionError);
    assert.throws(
      () => leader.apply(logIndex(1), new Uint8Array()),
      AssertionError,
      "apply while speculating",
    );
    assert.throws(() => leader.commitSpeculative(logIndex(1)), AssertionError);
    leader.commitSpeculative(logIndex(2));
    assert.throws(() => leader.execute(logIndex(2), batch("SELECT 1")), AssertionError);
    const replica = openStore(t, temporaryDirectory(t), "replica.db");
    assert.throws(() => replica.apply(logIndex(2), payload), AssertionError, "a gap is a bug");
  });

  test("the speculative window is bounded", (t) => {
    const leader = openStore(t, temporaryDirectory(t), "leader.db", { speculativeBatchesMax: 2 });
    leader.execute(logIndex(1), batch("SELECT 1"));
    leader.execute(logIndex(2), batch("SELECT 1"));
    assert.throws(
      () => leader.execute(logIndex(3), batch("SELECT 1")),
      (e) => isBatonError(e, "OVERLOADED"),
    );
    leader.commitSpeculative(logIndex(2));
    leader.execute(logIndex(3), batch("SELECT 1"));
  });
});

describe("replica apply", () => {
  test("applies payloads exactly once; replays are no-ops; no-op entries advance the index", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch(schema, "INSERT INTO item(name, qty) VALUES ('a', 1)"));
    log.write(batch("UPDATE item SET qty = qty + 1"));
    const replica = openStore(t, directory, "replica.db");
    log.catchUp(replica);
    assert.equal(replica.apply(logIndex(2), log.entries[1]!.payload), "already-applied");
    assert.deepEqual(rowsOf(replica, "SELECT qty FROM item"), [[2]]);
    assert.equal(replica.apply(logIndex(3), new Uint8Array(0)), "applied");
    assert.equal(replica.apply(logIndex(4), new Uint8Array()), "applied");
    assert.equal(replica.appliedIndex, 4);
    // A batch with only reads produces a payload that changes nothing but the index.
    const reads = log.leader.execute(logIndex(5), batch("SELECT * FROM item"));
    replica.apply(logIndex(5), reads.payload);
    assert.equal(replica.appliedIndex, 5);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });

  test("a corrupt payload throws PAYLOAD_CORRUPT and changes nothing", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    const { payload } = log.write(batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    const replica = openStore(t, directory, "replica.db");
    const damaged = payload.slice();
    damaged[Math.floor(damaged.length / 2)]! ^= 0x40;
    assert.throws(
      () => replica.apply(logIndex(1), damaged),
      (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
    );
    assert.equal(replica.appliedIndex, 0);
    replica.apply(logIndex(1), payload);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });

  test("a replica whose data differs refuses to apply (STORE_DIVERGED) and rolls back", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    log.write(batch("UPDATE item SET qty = 5"));
    const replica = openStore(t, directory, "replica.db");
    replica.apply(logIndex(1), log.entries[0]!.payload);
    replica.close();
    const tamper = new DatabaseSync(path.join(directory, "replica.db"));
    tamper.exec("UPDATE item SET qty = 7");
    tamper.close();
    const reopened = openStore(t, directory, "replica.db");
    assert.throws(
      () => reopened.apply(logIndex(2), log.entries[1]!.payload),
      (e) => isBatonError(e, "STORE_DIVERGED"),
    );
    assert.equal(reopened.appliedIndex, 1);
  });
});

describe("query", () => {
  test("writes and schema changes are NOT_A_QUERY; introspection pragmas are allowed", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch(schema));
    for (const text of [
      "INSERT INTO item(name) VALUES ('x')",
      "DELETE FROM item",
      "CREATE TABLE q(id INTEGER PRIMARY KEY)",
      "DROP TABLE item",
    ]) {
      assert.throws(
        () => log.leader.query(batch(text)),
        (e) => isBatonError(e, "NOT_A_QUERY"),
        text,
      );
    }
    assert.throws(
      () => log.leader.query(batch("PRAGMA user_version = 3")),
      (e) => isBatonError(e, "FORBIDDEN_STATEMENT"),
    );
    const info = log.leader.query(
      batch("PRAGMA table_info(item)", "SELECT name FROM pragma_index_list('item')"),
    );
    assert.deepEqual(
      info.results[0]?.rows.map((row) => row[1]),
      ["id", "name", "qty"],
    );
    assert.equal(info.results[1]?.rows.length, 1);
  });
});

describe("open and close", () => {
  test("committed state and applied index survive a reopen; speculative batches do not", (t) => {
    const directory = temporaryDirectory(t);
    const leader = Store.open({ path: path.join(directory, "leader.db") });
    const log = new TestLog(leader);
    log.write(batch(schema, "INSERT INTO item(name) VALUES ('a')"));
    leader.execute(logIndex(2), batch("INSERT INTO item(name) VALUES ('b')"));
    leader.close();
    const reopened = openStore(t, directory, "leader.db");
    assert.equal(reopened.appliedIndex, 1);
    assert.deepEqual(rowsOf(reopened, "SELECT name FROM item"), [["a"]]);
    assert.equal(reopened.speculativeCount, 0);
  });

  test("a store written by a newer format version is refused with STORE_VERSION_UNSUPPORTED", (t) => {
    const directory = temporaryDirectory(t);
    Store.open({ path: path.join(directory, "s.db") }).close();
    const raw = new DatabaseSync(path.join(directory, "s.db"));
    raw.exec("UPDATE _baton_meta SET value = 99 WHERE key = 'format_version'");
    raw.close();
    assert.throws(
      () => Store.open({ path: path.join(directory, "s.db") }),
      (e) => isBatonError(e, "STORE_VERSION_UNSUPPORTED"),
    );
  });

  test("a SQLite file that is not a store is refused; one store per file per process", (t) => {
    const directory = temporaryDirectory(t);
    const raw = new DatabaseSync(path.join(directory, "other.db"));
    raw.exec("CREATE TABLE foreign_data(id INTEGER PRIMARY KEY)");
    raw.close();
    assert.throws(
      () => Store.open({ path: path.join(directory, "other.db") }),
      (e) => isBatonError(e, "STORE_CORRUPT"),
    );
    openStore(t, directory, "one.db");
    assert.throws(() => Store.open({ path: path.join(directory, "one.db") }), AssertionError);
  });
});
