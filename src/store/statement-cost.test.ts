import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { valueGrowthMax } from "./call-costs.ts";
import { sizedCallBytesMax } from "./sized-calls.ts";
import {
  boundedBatchInstructionsMax,
  boundedBatchSqlCharsMax,
  type Instruction,
  isBoundedProgram,
  programsOf,
  StatementCost,
  statementCostEntriesMax,
  statementCostSqlCharsMax,
} from "./statement-cost.ts";

/** A database with the shapes of schema the verdicts depend on, foreign keys on as on a leader. */
function database(): DatabaseSync {
  const db = new DatabaseSync(":memory:", { readBigInts: true });
  db.exec(`
    PRAGMA foreign_keys=ON;
    CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT);
    CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT UNIQUE, qty INTEGER);
    CREATE TABLE counted(id INTEGER PRIMARY KEY AUTOINCREMENT, w INTEGER);
    CREATE TABLE parent(id INTEGER PRIMARY KEY, n TEXT);
    CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE);
    CREATE TABLE indexed_parent(id INTEGER PRIMARY KEY);
    CREATE TABLE indexed_child(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES indexed_parent(id));
    CREATE INDEX indexed_child_pid ON indexed_child(pid);
    CREATE TABLE audit(id INTEGER PRIMARY KEY, note TEXT);
    CREATE TABLE watched(id INTEGER PRIMARY KEY, n TEXT);
    CREATE TRIGGER watched_insert AFTER INSERT ON watched BEGIN INSERT INTO audit(note) VALUES (new.n); END;
    CREATE TABLE scanned(id INTEGER PRIMARY KEY, n TEXT);
    CREATE TRIGGER scanned_insert AFTER INSERT ON scanned BEGIN DELETE FROM audit WHERE note = new.n; END;
    CREATE TABLE token(id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(16)))), n TEXT);
    CREATE TABLE padded(id INTEGER PRIMARY KEY, b BLOB DEFAULT (zeroblob(100)));
    CREATE TABLE oversized(id INTEGER PRIMARY KEY, b BLOB DEFAULT (randomblob(${sizedCallBytesMax + 1})));
    CREATE TABLE stamped(id INTEGER PRIMARY KEY, n TEXT);
    CREATE TABLE dated(id INTEGER PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP, d TEXT DEFAULT CURRENT_DATE);
    CREATE TRIGGER stamped_insert AFTER INSERT ON stamped BEGIN INSERT INTO audit(note) VALUES (hex(randomblob(16))); END;
  `);
  return db;
}

describe("statement cost", () => {
  const bounded = [
    "INSERT INTO kv(k, v) VALUES (?, ?)",
    "INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
    "UPDATE kv SET v = ? WHERE k = ?",
    "DELETE FROM kv WHERE k = ?",
    "INSERT INTO item(name, qty) VALUES (?, ?)",
    "UPDATE item SET qty = qty + 1 WHERE id = ?",
    "UPDATE item SET qty = ? WHERE name = ?",
    "SELECT name, qty FROM item WHERE id = ?",
    "INSERT INTO counted(w) VALUES (?)",
    "INSERT INTO child(pid) VALUES (?)",
    "INSERT INTO watched(n) VALUES (?)",
    "INSERT INTO kv(k, v) VALUES (lower(?), upper(?) || substr(?, 1, 3))",
    "INSERT INTO audit(note) VALUES (datetime('now') || ' ' || json_extract(?, '$.a'))",
    "SELECT 1",
    "INSERT INTO dated(id) VALUES (?)",
    "SELECT current_time, current_date, current_timestamp",
    "INSERT INTO item(name) VALUES (?) RETURNING id",
    "INSERT INTO kv(k, v) VALUES ('a', 1), ('b', 2)",
    "INSERT INTO kv(k, v) VALUES (?, ?), (?, lower(?)) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
    "INSERT INTO counted(w) VALUES (1), (2), (3) RETURNING id, w",
    "UPDATE kv SET v = ? WHERE k = ? RETURNING v",
  ];
  for (const sql of bounded) {
    test(`bounded: ${sql}`, () => {
      assert.equal(new StatementCost().isBounded(database(), sql), true);
    });
  }

  const unbounded: [string, string][] = [
    ["a scan", "UPDATE item SET qty = 0 WHERE qty > ?"],
    ["a full scan in a SELECT", "SELECT count(*) FROM item WHERE qty > 0"],
    ["count(*) over a whole table", "SELECT count(*) FROM item"],
    ["DELETE without WHERE (clears the table)", "DELETE FROM item"],
    [
      "a recursive CTE",
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ],
    ["INSERT … SELECT", "INSERT INTO audit(note) SELECT name FROM item"],
    ["RETURNING of a scan", "UPDATE item SET qty = 0 WHERE qty > ? RETURNING id"],
    [
      "VALUES computed by a subquery",
      "INSERT INTO kv(k, v) VALUES ('a', (SELECT count(*) FROM item)), ('b', 2)",
    ],
    ["an IN list (a subroutine)", "DELETE FROM kv WHERE k IN (?, ?, ?)"],
    ["a parent delete that scans an unindexed child", "DELETE FROM parent WHERE id = ?"],
    ["a parent delete that counts its children through an index", "DELETE FROM indexed_parent WHERE id = ?"],
    ["a trigger that scans", "INSERT INTO scanned(n) VALUES (?)"],
    ["like", "INSERT INTO audit(note) VALUES (? LIKE ?)"],
    ["printf", "INSERT INTO audit(note) VALUES (printf('%.*c', ?, 'x'))"],
    ["randomblob", "INSERT INTO audit(note) VALUES (randomblob(?))"],
    ["replace", "UPDATE audit SET note = replace(note, ?, ?) WHERE id = ?"],
    ["trim with a set", "UPDATE audit SET note = trim(note, ?) WHERE id = ?"],
    ["an aggregate", "SELECT max(qty) FROM item"],
    ["DDL", "CREATE TABLE t(id INTEGER PRIMARY KEY)"],
    ["DROP TABLE", "DROP TABLE audit"],
    ["a statement that does not compile", "INSERT INTO missing VALUES (1)"],
  ];
  for (const [what, sql] of unbounded) {
    test(`unbounded: ${what}`, () => {
      assert.equal(new StatementCost().isBounded(database(), sql), false, sql);
    });
  }

  const sizedBounded = [
    "INSERT INTO audit(note) VALUES (randomblob(16))",
    "INSERT INTO audit(note) VALUES (hex(randomblob(16)))",
    "INSERT INTO audit(note) VALUES (zeroblob(100))",
    "INSERT INTO token(n) VALUES (?)",
    "INSERT INTO padded(id) VALUES (?)",
    `INSERT INTO audit(note) VALUES (randomblob(${sizedCallBytesMax}))`,
    "INSERT INTO audit(note) VALUES (randomblob(0)), (zeroblob(-1)), (hex(randomblob(16)))",
    "INSERT INTO kv(k, v) VALUES (?, zeroblob(100)) ON CONFLICT(k) DO UPDATE SET v = randomblob(16)",
    "UPDATE item SET name = lower(hex(randomblob(16))) WHERE id = ?",
    "INSERT INTO stamped(n) VALUES (?)",
    "INSERT INTO item(name) VALUES (hex(randomblob(8))) RETURNING id, hex(randomblob(4))",
  ];
  for (const sql of sizedBounded) {
    test(`bounded, a sized call of a small literal size: ${sql}`, () => {
      assert.equal(new StatementCost().isBounded(database(), sql), true);
    });
  }

  const sizedUnbounded: [string, string][] = [
    ["a size from a parameter", "INSERT INTO audit(note) VALUES (zeroblob(?))"],
    ["a size from a column", "UPDATE audit SET note = randomblob(id) WHERE id = ?"],
    ["a size from an expression", "INSERT INTO audit(note) VALUES (randomblob(length(?)))"],
    ["a size computed from constants", "INSERT INTO audit(note) VALUES (randomblob(8 + 8))"],
    ["a size of a billion", "INSERT INTO audit(note) VALUES (randomblob(1000000000))"],
    ["a size just past the bound", `INSERT INTO audit(note) VALUES (zeroblob(${sizedCallBytesMax + 1}))`],
    ["a 64-bit literal", "INSERT INTO audit(note) VALUES (randomblob(9223372036854775807))"],
    ["a string literal", "INSERT INTO audit(note) VALUES (randomblob('16'))"],
    ["a real literal", "INSERT INTO audit(note) VALUES (randomblob(16.0))"],
    ["a default past the bound", "INSERT INTO oversized(id) VALUES (?)"],
    [
      "one small call beside one past the bound",
      "INSERT INTO audit(note) VALUES (randomblob(16) || zeroblob(100000))",
    ],
  ];
  for (const [what, sql] of sizedUnbounded) {
    test(`unbounded, a sized call: ${what}`, () => {
      assert.equal(new StatementCost().isBounded(database(), sql), false, sql);
    });
  }

  test("a verdict is kept per text and dropped by clear: a new trigger changes the program", () => {
    const db = database();
    const cost = new StatementCost();
    const insert = "INSERT INTO item(name, qty) VALUES (?, ?)";
    assert.equal(cost.isBounded(db, insert), true);
    db.exec(
      "CREATE TRIGGER item_insert AFTER INSERT ON item BEGIN DELETE FROM audit WHERE note = new.name; END",
    );
    assert.equal(cost.isBounded(db, insert), true, "the cached verdict stands until the cache is cleared");
    cost.clear();
    assert.equal(cost.isBounded(db, insert), false);
  });

  test("a batch is bounded while its statements are and their instructions stay within the bound", () => {
    const db = database();
    const cost = new StatementCost();
    const insert = { sql: "INSERT INTO kv(k, v) VALUES (?, ?)" };
    const perInsert = cost.instructionsIfBounded(db, insert.sql) ?? 0;
    assert.ok(perInsert > 0);
    const fitting = Math.floor(boundedBatchInstructionsMax / perInsert);
    assert.equal(cost.isBoundedBatch(db, Array(fitting).fill(insert)), true);
    assert.equal(cost.isBoundedBatch(db, Array(fitting + 1).fill(insert)), false);
    assert.equal(cost.isBoundedBatch(db, [insert, { sql: "DELETE FROM item" }]), false);
    assert.equal(cost.isBoundedBatch(db, []), true);
    const longText = { sql: `INSERT INTO kv(k, v) VALUES ('a', '${"x".repeat(statementCostSqlCharsMax)}')` };
    assert.equal(cost.isBoundedBatch(db, [longText]), false, "a statement too long to cache");
    const wide = { sql: `INSERT INTO kv(k, v) VALUES ('a', '${"x".repeat(statementCostSqlCharsMax - 64)}')` };
    const count = Math.ceil(boundedBatchSqlCharsMax / wide.sql.length) + 1;
    assert.equal(cost.isBoundedBatch(db, [wide]), true);
    assert.equal(cost.isBoundedBatch(db, Array(count).fill(wide)), false, "too much SQL in one batch");
  });

  test("calls that multiply their input's size may grow a statement's values at most valueGrowthMax times", () => {
    const db = database();
    const cost = new StatementCost();
    const nested = (fn: string, depth: number) => `${fn}(`.repeat(depth) + "?" + ")".repeat(depth);
    const depthFitting = Math.log2(valueGrowthMax);
    assert.equal(depthFitting, 6);
    assert.equal(cost.isBounded(db, `INSERT INTO kv(k, v) VALUES (?, ${nested("hex", depthFitting)})`), true);
    assert.equal(
      cost.isBounded(db, `INSERT INTO kv(k, v) VALUES (?, ${nested("hex", depthFitting + 1)})`),
      false,
    );
    // The case found: 24 deep, a 1-byte parameter becomes 16 MiB.
    assert.equal(cost.isBounded(db, `SELECT length(${nested("hex", 24)})`), false);
    for (const fn of ["quote", "json_quote", "json_array", "json"])
      assert.equal(cost.isBounded(db, `SELECT length(${nested(fn, 6)})`), false, fn);
    assert.equal(cost.isBounded(db, "SELECT json_set(?, '$.a', json_object('b', ?))"), true);
    // concat_ws repeats its separator once per argument, and EXPLAIN does not show how many it has.
    assert.equal(cost.isBounded(db, "SELECT concat_ws(?, 1, 2, 3)"), false);
    // Growth compounds across a batch's statements: each may grow what the one before stored.
    const grow = { sql: `UPDATE kv SET v = ${nested("hex", 4).replace("?", "v")} WHERE k = ?` };
    assert.equal(cost.isBoundedBatch(db, [grow]), true);
    assert.equal(cost.isBoundedBatch(db, [grow, grow]), false);
    // Functions whose output is at most the sum of their inputs do not count.
    assert.equal(cost.isBounded(db, `SELECT ${nested("upper", 40)} || ${nested("trim", 40)}`), true);
  });

  test("the verdicts stay within their bound", () => {
    const db = database();
    const cost = new StatementCost();
    for (let i = 0; i < statementCostEntriesMax + 10; i++) cost.isBounded(db, `SELECT ${i}`);
    assert.equal(cost.entries, statementCostEntriesMax);
  });

  test("programs split at each sub-program's address 0; a jump back is a loop", () => {
    const at = (addr: number, opcode: string, p2 = 0, p1 = 0, p3 = 0): Instruction => ({
      addr,
      opcode,
      p1,
      p2,
      p3,
      p4: null,
    });
    const main = [at(0, "Init", 3), at(1, "Program"), at(2, "Halt"), at(3, "Transaction"), at(4, "Goto", 1)];
    const sub = [at(0, "Init", 1), at(1, "Noop"), at(2, "Halt")];
    assert.deepEqual(programsOf([...main, ...sub]), [main, sub]);
    assert.equal(isBoundedProgram(main, null), true);
    const loop = [at(0, "Init", 4), at(1, "Rewind", 3), at(2, "Next", 1), at(3, "Halt"), at(4, "Goto", 1)];
    assert.equal(isBoundedProgram(loop, null), false);
    const goBack = [at(0, "Init", 3), at(1, "Noop"), at(2, "Goto", 1), at(3, "Goto", 1)];
    assert.equal(isBoundedProgram(goBack, null), false, "a Goto back before the prologue is a loop");
    const queue = [
      at(0, "Init", 6),
      at(1, "Rewind", 5, 3),
      at(2, "Insert", 0, 3),
      at(3, "Next", 2, 3),
      at(4, "Halt"),
      at(5, "Halt"),
      at(6, "OpenEphemeral", 1, 3),
      at(7, "Goto", 1),
    ];
    assert.equal(isBoundedProgram(queue, null), false, "a walk over an ephemeral table it fills itself");
    const walk = queue.map((instruction) => (instruction.opcode === "Insert" ? at(2, "Noop") : instruction));
    assert.equal(isBoundedProgram(walk, null), true, "a walk over an ephemeral table filled before it");
    const unknown = [at(0, "Init", 2), at(1, "VFilter"), at(2, "Goto", 1)];
    assert.equal(isBoundedProgram(unknown, null), false, "an opcode not known to be bounded");
  });
});
