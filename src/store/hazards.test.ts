/**
 * One test per replication hazard of DESIGN.md §2 (and the few found while building the store). Each
 * fails without its fix: the leader would accept what cannot replicate, or the replica would end
 * with different content (or a conflict) after applying the leader's payloads.
 */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { logIndex } from "../types/ids.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, TestLog, temporaryDirectory } from "./test-support.ts";

/** A leader and a replica; `run` writes batches on the leader and brings the replica up to date. */
function pair(t: TestContext): { log: TestLog; replica: Store; run: (...texts: string[]) => void } {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  const replica = openStore(t, directory, "replica.db");
  return {
    log,
    replica,
    run: (...texts) => {
      log.write(batch(...texts));
      log.catchUp(replica);
    },
  };
}

function assertSameContent(leader: Store, replica: Store, table: string): void {
  const order = `SELECT * FROM ${table} ORDER BY 1`;
  assert.deepEqual(rowsOf(replica, order), rowsOf(leader, order));
  assert.equal(replica.contentHash(), leader.contentHash());
}

function refuses(store: Store, text: string, code = "FORBIDDEN_STATEMENT", message?: RegExp): void {
  assert.throws(
    () =>
      store.execute(logIndex(Math.max(store.appliedIndex, store.lastSpeculativeIndex ?? 0) + 1), batch(text)),
    (error) =>
      isBatonError(error) && error.code === code && (message === undefined || message.test(error.message)),
    text,
  );
}

describe("hazard 1: tables sessions would not record", () => {
  test("tables without a PRIMARY KEY, and CREATE TABLE … AS SELECT, are refused", (t) => {
    const { log } = pair(t);
    refuses(log.leader, "CREATE TABLE loose(a, b)", "FORBIDDEN_STATEMENT", /no PRIMARY KEY/);
    refuses(log.leader, "CREATE TABLE copy AS SELECT 1 AS id", "FORBIDDEN_STATEMENT", /no PRIMARY KEY/);
    assert.equal(log.leader.speculativeCount, 0);
  });

  test("key columns that may hold NULL in a rowid table are refused; NOT NULL keys and WITHOUT ROWID are fine", (t) => {
    const { log, replica, run } = pair(t);
    for (const text of [
      "CREATE TABLE k1(id TEXT PRIMARY KEY, v)",
      "CREATE TABLE k2(id INT PRIMARY KEY, v)",
      "CREATE TABLE k3(id INTEGER PRIMARY KEY DESC, v)",
      "CREATE TABLE k4(a INTEGER NOT NULL, b TEXT, v, PRIMARY KEY (a, b))",
    ]) {
      refuses(log.leader, text, "FORBIDDEN_STATEMENT", /may hold NULL/);
    }
    run(
      "CREATE TABLE ok1(id TEXT PRIMARY KEY NOT NULL, v)",
      "CREATE TABLE ok2(a TEXT, b INTEGER, v, PRIMARY KEY (a, b)) WITHOUT ROWID",
      "INSERT INTO ok1 VALUES ('x', 1)",
      "INSERT INTO ok2 VALUES ('x', 2, 3)",
    );
    assertSameContent(log.leader, replica, "ok2");
    assert.deepEqual(rowsOf(replica, "SELECT * FROM ok1"), [["x", 1]]);
  });
});

describe("hazard 2: triggers and foreign-key actions must not run again on replicas", () => {
  const triggers = [
    "CREATE TABLE account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
    "CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT, at TEXT, noise INTEGER)",
    "CREATE TABLE totals(id INTEGER PRIMARY KEY, updates INTEGER NOT NULL)",
    "INSERT INTO totals VALUES (1, 0)",
    "CREATE TRIGGER account_insert AFTER INSERT ON account BEGIN INSERT INTO audit(what, at, noise) VALUES ('insert ' || new.id, datetime('now'), random()); END",
    "CREATE TRIGGER account_update AFTER UPDATE ON account BEGIN UPDATE totals SET updates = updates + 1 WHERE id = 1; END",
    "CREATE TRIGGER account_delete BEFORE DELETE ON account BEGIN DELETE FROM audit WHERE what = 'insert ' || old.id; INSERT INTO audit(what, noise) VALUES ('delete ' || old.id, random()); END",
  ];

  test("INSERT, UPDATE and DELETE triggers (with random() and datetime('now')) apply once", (t) => {
    const { log, replica, run } = pair(t);
    run(...triggers);
    run("INSERT INTO account VALUES (1, 10), (2, 20), (3, 30)");
    run("UPDATE account SET balance = balance + 1", "DELETE FROM account WHERE id = 2");
    assert.deepEqual(rowsOf(replica, "SELECT updates FROM totals"), [[3]]);
    assertSameContent(log.leader, replica, "audit");
    // The replica still has its triggers: as the next leader it fires them itself.
    const next = replica.execute(
      logIndex(replica.appliedIndex + 1),
      batch("INSERT INTO account VALUES (4, 40)"),
    );
    replica.commitSpeculative(logIndex(replica.appliedIndex + 1));
    assert.equal(next.results.length, 1);
    assert.equal(rowsOf(replica, "SELECT count(*) FROM audit WHERE what = 'insert 4'")[0]?.[0], 1);
  });

  test("writes through a view's INSTEAD OF trigger apply once", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE stock(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, touched TEXT)",
      "CREATE VIEW stock_view AS SELECT id, qty FROM stock",
      "CREATE TRIGGER stock_view_insert INSTEAD OF INSERT ON stock_view BEGIN INSERT INTO stock VALUES (new.id, new.qty, datetime('now', 'subsec') || random()); END",
    );
    run("INSERT INTO stock_view VALUES (1, 5), (2, 7)");
    assertSameContent(log.leader, replica, "stock");
  });

  test("ON DELETE CASCADE, SET NULL and ON UPDATE CASCADE effects apply once", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE parent(id INTEGER PRIMARY KEY, code TEXT UNIQUE NOT NULL)",
      "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE)",
      "CREATE TABLE loose(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE SET NULL)",
      "CREATE TABLE coded(id INTEGER PRIMARY KEY, code TEXT REFERENCES parent(code) ON UPDATE CASCADE)",
      "INSERT INTO parent VALUES (1, 'a'), (2, 'b')",
      "INSERT INTO child VALUES (10, 1), (11, 1), (12, 2)",
      "INSERT INTO loose VALUES (20, 1), (21, 2)",
      "INSERT INTO coded VALUES (30, 'b')",
    );
    run("DELETE FROM parent WHERE id = 1", "UPDATE parent SET code = 'c' WHERE id = 2");
    assert.deepEqual(rowsOf(replica, "SELECT * FROM child"), [[12, 2]]);
    assert.deepEqual(rowsOf(replica, "SELECT * FROM loose ORDER BY id"), [
      [20, null],
      [21, 2],
    ]);
    assertSameContent(log.leader, replica, "coded");
  });
});

describe("hazard 3: DDL keeps its place among row changes", () => {
  test("CREATE; INSERT; ALTER ADD COLUMN; UPDATE the new column; RENAME; DROP COLUMN — in one batch", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE thing(id INTEGER PRIMARY KEY, a TEXT)",
      "INSERT INTO thing(a) VALUES ('x'), ('y')",
      "ALTER TABLE thing ADD COLUMN b INTEGER DEFAULT 7",
      "UPDATE thing SET b = b + id",
      "CREATE TABLE log(id INTEGER PRIMARY KEY, note TEXT)",
      "CREATE TRIGGER thing_b AFTER UPDATE OF b ON thing BEGIN INSERT INTO log(note) VALUES (new.a); END",
      "ALTER TABLE thing RENAME COLUMN a TO label",
      "UPDATE thing SET b = 0 WHERE id = 1",
      "ALTER TABLE thing DROP COLUMN b",
      "CREATE UNIQUE INDEX thing_label ON thing(label)",
      "CREATE VIEW labels AS SELECT label FROM thing",
      "DROP TRIGGER thing_b",
      "INSERT INTO thing(label) VALUES ('z')",
    );
    run("DROP INDEX thing_label", "DROP VIEW labels", "INSERT INTO thing(label) VALUES ('z')");
    assert.deepEqual(rowsOf(replica, "SELECT * FROM thing ORDER BY id"), [
      [1, "x"],
      [2, "y"],
      [3, "z"],
      [4, "z"],
    ]);
    assertSameContent(log.leader, replica, "log");
  });

  test("RENAME of a parent table rewrites its children's references alike on leader and replica", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE parent(id INTEGER PRIMARY KEY)",
      "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE)",
      "CREATE TRIGGER parent_gone AFTER DELETE ON parent BEGIN DELETE FROM child WHERE id < 0; END",
      "INSERT INTO parent VALUES (1), (2)",
      "INSERT INTO child VALUES (10, 1), (11, 2)",
    );
    run("ALTER TABLE parent RENAME TO family", "DELETE FROM family WHERE id = 1");
    assert.deepEqual(rowsOf(replica, "SELECT * FROM child"), [[11, 2]]);
    assert.equal(replica.contentHash(), log.leader.contentHash(), "schema text (REFERENCES family) matches");
  });

  test("DROP TABLE of a parent replicates the rows its foreign-key actions removed in other tables", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE parent(id INTEGER PRIMARY KEY)",
      "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE)",
      "CREATE TABLE grandchild(id INTEGER PRIMARY KEY, child_id INTEGER REFERENCES child(id) ON DELETE CASCADE)",
      "CREATE TABLE removed(id INTEGER PRIMARY KEY, child_id INTEGER)",
      "CREATE TRIGGER child_gone AFTER DELETE ON child BEGIN INSERT INTO removed(child_id) VALUES (old.id); END",
      "INSERT INTO parent VALUES (1), (2)",
      "INSERT INTO child VALUES (10, 1), (11, 2)",
      "INSERT INTO grandchild VALUES (100, 10)",
    );
    run("DROP TABLE parent");
    assert.deepEqual(rowsOf(log.leader, "SELECT count(*) FROM child"), [[0]], "the leader cascaded");
    assert.deepEqual(rowsOf(replica, "SELECT count(*) FROM child"), [[0]]);
    assert.deepEqual(rowsOf(replica, "SELECT count(*) FROM grandchild"), [[0]]);
    assertSameContent(log.leader, replica, "removed");
  });
});

describe("hazard 4: nondeterminism is evaluated once, on the leader", () => {
  test("random(), randomblob(), datetime('now') and nondeterministic defaults reach replicas as values", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE sample(id INTEGER PRIMARY KEY, r INTEGER DEFAULT (random()), at TEXT DEFAULT CURRENT_TIMESTAMP, b BLOB, d TEXT)",
      "INSERT INTO sample(b, d) VALUES (randomblob(16), datetime('now', 'subsec'))",
      "INSERT INTO sample(id, b) SELECT value, randomblob(8) FROM json_each('[5, 6, 7]')",
      "UPDATE sample SET r = random() WHERE id > 5",
    );
    assertSameContent(log.leader, replica, "sample");
  });

  test("a batch the leader runs in process (randomblob of a small literal size) carries values too", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE token(id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(16)))), r INTEGER DEFAULT (random()), at TEXT DEFAULT (datetime('now')), b BLOB, d TEXT)",
    );
    const texts = [
      "INSERT INTO token(b, d) VALUES (randomblob(16), datetime('now', 'subsec')), (zeroblob(8), datetime('now'))",
      "INSERT INTO token(id, b) VALUES ('fixed', hex(randomblob(8))) ON CONFLICT(id) DO UPDATE SET r = random()",
      "UPDATE token SET b = randomblob(16), r = random() WHERE id = 'fixed'",
    ];
    assert.equal(
      log.leader.isBoundedBatch(batch(...texts)),
      true,
      "the batch runs in process, not in the sandbox",
    );
    run(...texts);
    assert.deepEqual(rowsOf(replica, "SELECT count(DISTINCT id), count(DISTINCT r) FROM token"), [[3, 3]]);
    assertSameContent(log.leader, replica, "token");
  });

  test("generated columns (VIRTUAL and STORED) replicate", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE shape(id INTEGER PRIMARY KEY, w REAL, h REAL, area REAL AS (w * h) VIRTUAL, label TEXT AS (w || 'x' || h) STORED) STRICT",
      "INSERT INTO shape(id, w, h) VALUES (1, 2, 3), (2, 4.5, 1)",
      "UPDATE shape SET h = h + 1 WHERE id = 2",
    );
    assert.deepEqual(rowsOf(replica, "SELECT area, label FROM shape ORDER BY id"), [
      [6, "2.0x3.0"],
      [9, "4.5x2.0"],
    ]);
    assertSameContent(log.leader, replica, "shape");
  });

  test("CHECK constraints that call random() are not evaluated again on replicas", (t) => {
    const { log, replica } = pair(t);
    log.write(
      batch(
        "CREATE TABLE coin(id INTEGER PRIMARY KEY, side INTEGER CHECK (abs(random()) % 2 = 0 OR side IS NULL))",
      ),
    );
    // Each accepted row would fail a second evaluation half the time: 24 rows make a silent pass unlikely.
    let accepted = 0;
    for (let attempt = 0; accepted < 24 && attempt < 1000; attempt++) {
      try {
        log.write(batch(`INSERT INTO coin(side) VALUES (${attempt})`));
        accepted++;
      } catch (error) {
        assert.ok(isBatonError(error, "SQL_ERROR"));
      }
    }
    assert.equal(accepted, 24);
    log.catchUp(replica);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });

  test("DDL that would embed nondeterminism in stored data is refused", (t) => {
    const { log, run } = pair(t);
    run("CREATE TABLE full(id INTEGER PRIMARY KEY)", "INSERT INTO full VALUES (1)");
    refuses(log.leader, "CREATE TABLE copy AS SELECT random() AS id", "FORBIDDEN_STATEMENT");
    refuses(
      log.leader,
      "ALTER TABLE full ADD COLUMN r DEFAULT (random())",
      "SQL_ERROR",
      /non-constant default/,
    );
    refuses(
      log.leader,
      "ALTER TABLE full ADD COLUMN at DEFAULT CURRENT_TIMESTAMP",
      "SQL_ERROR",
      /non-constant default/,
    );
    refuses(
      log.leader,
      "CREATE TABLE gen(id INTEGER PRIMARY KEY, g AS (random()))",
      "SQL_ERROR",
      /non-deterministic/,
    );
    refuses(log.leader, "CREATE INDEX noisy ON full(random())", "SQL_ERROR", /non-deterministic/);
  });
});

describe("hazard 5: AUTOINCREMENT counters match after failover", () => {
  test("insert then delete in one batch: the replica, as next leader, hands out the id the old leader would", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE ticket(id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT)",
      "INSERT INTO ticket(note) VALUES ('a')",
    );
    run("INSERT INTO ticket(note) VALUES ('b'), ('c')", "DELETE FROM ticket WHERE note <> 'a'");
    run("INSERT INTO ticket(note) VALUES ('d')", "DELETE FROM ticket WHERE note = 'd'");
    assert.equal(replica.contentHash(), log.leader.contentHash());
    const onOldLeader = log.leader.execute(
      logIndex(4),
      batch("INSERT INTO ticket(note) VALUES ('e') RETURNING id"),
    );
    log.leader.rollbackSpeculative();
    const onNewLeader = replica.execute(
      logIndex(4),
      batch("INSERT INTO ticket(note) VALUES ('e') RETURNING id"),
    );
    assert.deepEqual(onNewLeader.results[0]?.rows, [[5]]);
    assert.deepEqual(onNewLeader.results[0]?.rows, onOldLeader.results[0]?.rows);
  });
});

describe("hazard 5b: AUTOINCREMENT counters do not run ahead on replicas", () => {
  test("an UPDATE that moves a row to a larger id leaves the leader's counter alone, and the replica's too", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE ticket(id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT)",
      "INSERT INTO ticket(id, note) VALUES (9, 'a')",
    );
    // The changeset carries this as DELETE 9 + INSERT 19, and an INSERT raises the replica's counter.
    run("UPDATE ticket SET id = 19 WHERE id = 9");
    assert.deepEqual(rowsOf(replica, "SELECT seq FROM sqlite_sequence"), [[9]]);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });
});

describe("hazard 6: statements that cannot replicate are refused by the authorizer", () => {
  const refused: readonly [string, RegExp][] = [
    ["ATTACH DATABASE ':memory:' AS other", /ATTACH/],
    ["DETACH DATABASE other", /DETACH/],
    ["SELECT load_extension('libevil')", /load_extension/],
    ["BEGIN", /transaction control/],
    ["COMMIT", /transaction control/],
    ["ROLLBACK", /transaction control/],
    ["SAVEPOINT s", /SAVEPOINT/],
    ["RELEASE s", /SAVEPOINT/],
    ["VACUUM", /cannot classify/],
    ["VACUUM INTO '/tmp/baton-vacuum-copy.db'", /cannot classify/],
    ["CREATE VIRTUAL TABLE docs USING fts5(body)", /virtual tables/],
    ["CREATE TEMP TABLE scratch(id INTEGER PRIMARY KEY)", /TEMP/],
    ["CREATE TABLE temp.scratch(id INTEGER PRIMARY KEY)", /TEMP/],
    ["CREATE TEMP VIEW v AS SELECT 1", /TEMP/],
    ["CREATE TEMP TRIGGER tt AFTER INSERT ON seq BEGIN SELECT 1; END", /TEMP/],
    ["UPDATE sqlite_sequence SET seq = 100", /internal table sqlite_sequence/],
    ["DELETE FROM sqlite_sequence", /internal table sqlite_sequence/],
    ["INSERT INTO _baton_meta VALUES ('applied_index', 99)", /belongs to the store/],
    ["UPDATE _baton_meta SET value = 0", /belongs to the store/],
    ["DROP TABLE _baton_meta", /belong to the store/],
    ["CREATE TABLE _baton_mine(id INTEGER PRIMARY KEY)", /belong to the store/],
    ["ALTER TABLE seq RENAME TO _baton_mine", /belong to the store/],
    ["CREATE INDEX meta_value ON _baton_meta(value)", /belong to the store/],
    ["ANALYZE", /ANALYZE/],
    ["REINDEX", /REINDEX/],
    ["PRAGMA foreign_keys = OFF", /PRAGMA foreign_keys = OFF is not allowed/],
    ["PRAGMA defer_foreign_keys = ON", /not allowed/],
    ["PRAGMA writable_schema = ON", /not allowed/],
    ["PRAGMA user_version = 7", /not allowed/],
    ["PRAGMA journal_mode = DELETE", /not allowed/],
    ["SELECT * FROM pragma_user_version", /not allowed/],
    ["SELECT fts3_tokenizer('simple')", /fts3_tokenizer/],
  ];

  test("each is FORBIDDEN_STATEMENT with a clear message, and leaves no trace", (t) => {
    const { log, run } = pair(t);
    run("CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT)", "INSERT INTO seq DEFAULT VALUES");
    const before = log.leader.contentHash();
    for (const [text, message] of refused) refuses(log.leader, text, "FORBIDDEN_STATEMENT", message);
    assert.equal(log.leader.speculativeCount, 0);
    assert.equal(log.leader.contentHash(), before);
  });

  test("statements the authorizer never sees run only when SQLite compiled them to nothing", (t) => {
    const { log, replica, run } = pair(t);
    run("CREATE TABLE kept(id INTEGER PRIMARY KEY)", "CREATE INDEX kept_id ON kept(id)");
    run(
      "DROP TABLE IF EXISTS missing",
      "DROP INDEX IF EXISTS missing",
      "CREATE INDEX IF NOT EXISTS kept_id ON kept(id)",
    );
    refuses(log.leader, "EXPLAIN VACUUM", "FORBIDDEN_STATEMENT", /cannot classify/);
    assert.throws(
      () => log.leader.query(batch("DROP TABLE IF EXISTS missing")),
      (e) => isBatonError(e, "NOT_A_QUERY"),
    );
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });

  test("schema introspection pragmas are allowed in batches and queries", (t) => {
    const { log, run } = pair(t);
    run(
      "CREATE TABLE p(id INTEGER PRIMARY KEY)",
      "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES p(id))",
    );
    const { results } = log.leader.execute(
      logIndex(2),
      batch("PRAGMA table_info(c)", "PRAGMA foreign_key_list(c)", "PRAGMA index_list(c)"),
    );
    assert.equal(results[0]?.rows?.length, 2);
    assert.equal(results[1]?.rows?.[0]?.[2], "p");
  });

  test("deferred foreign keys are refused: COMMIT would check them after the log committed the batch", (t) => {
    const { log, run } = pair(t);
    run("CREATE TABLE p(id INTEGER PRIMARY KEY)");
    refuses(
      log.leader,
      "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
      "FORBIDDEN_STATEMENT",
      /DEFERRED/,
    );
    run("CREATE TABLE c(id INTEGER PRIMARY KEY)");
    refuses(
      log.leader,
      "ALTER TABLE c ADD COLUMN p REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED",
      "FORBIDDEN_STATEMENT",
      /DEFERRED/,
    );
  });
});

describe("hazard 7: several statements in one string", () => {
  test("are refused as a whole rather than cut after the first (prepare compiles only the first)", (t) => {
    const { log, run } = pair(t);
    run("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)");
    refuses(
      log.leader,
      "INSERT INTO note(body) VALUES ('a'); DELETE FROM note",
      "BAD_REQUEST",
      /more than one SQL statement/,
    );
    refuses(log.leader, "SELECT 1; SELECT 2", "BAD_REQUEST", /more than one SQL statement/);
    run("INSERT INTO note(body) VALUES ('b'); -- a trailing comment is not a statement");
    assert.deepEqual(rowsOf(log.leader, "SELECT body FROM note"), [["b"]]);
  });
});

describe("ordering within one batch", () => {
  test("swapping unique values through a temporary value replicates", (t) => {
    const { log, replica, run } = pair(t);
    run(
      "CREATE TABLE slot(id INTEGER PRIMARY KEY, position INTEGER UNIQUE NOT NULL)",
      "INSERT INTO slot VALUES (1, 1), (2, 2), (3, 3)",
    );
    run(
      "UPDATE slot SET position = -1 WHERE id = 1",
      "UPDATE slot SET position = 1 WHERE id = 2",
      "UPDATE slot SET position = 2 WHERE id = 3",
      "UPDATE slot SET position = 3 WHERE id = 1",
    );
    assertSameContent(log.leader, replica, "slot");
  });
});
