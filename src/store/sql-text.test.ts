import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hasDeferredForeignKey, quoteIdentifier, sqlRemainderIsBlank } from "./sql-text.ts";

describe("sql text", () => {
  test("the remainder after a statement is blank only for whitespace, comments and semicolons", () => {
    for (const blank of ["", " ; ", "-- c", "/* c */;", "\n;\t;\r\f", "/* unterminated", "-- a\n-- b\n;"]) {
      assert.equal(sqlRemainderIsBlank(blank), true, JSON.stringify(blank));
    }
    for (const more of ["SELECT 2", "; x", "/* c */ DELETE FROM t", "\u00a0", "-- c\nSELECT 1"]) {
      assert.equal(sqlRemainderIsBlank(more), false, JSON.stringify(more));
    }
  });

  test("deferred foreign keys are found as tokens, not inside literals, quoted names or comments", () => {
    assert.equal(
      hasDeferredForeignKey(
        "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES t DEFERRABLE INITIALLY DEFERRED)",
      ),
      true,
    );
    assert.equal(
      hasDeferredForeignKey(
        "create table c(id integer primary key, p references t deferrable\n initially /* x */ deferred)",
      ),
      true,
    );
    assert.equal(
      hasDeferredForeignKey(
        "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES t DEFERRABLE INITIALLY IMMEDIATE)",
      ),
      false,
    );
    assert.equal(
      hasDeferredForeignKey("CREATE TABLE c(id INTEGER PRIMARY KEY, note DEFAULT 'INITIALLY DEFERRED')"),
      false,
    );
    assert.equal(
      hasDeferredForeignKey('CREATE TABLE c(id INTEGER PRIMARY KEY, "initially deferred" TEXT)'),
      false,
    );
    assert.equal(
      hasDeferredForeignKey("CREATE TABLE c(id INTEGER PRIMARY KEY) -- INITIALLY DEFERRED"),
      false,
    );
  });

  test("identifiers are quoted safely", () => {
    assert.equal(quoteIdentifier('a"b'), '"a""b"');
  });
});
