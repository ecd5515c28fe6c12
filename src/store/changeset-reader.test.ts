import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { readChangeset } from "./changeset-reader.ts";

function recorded(setup: string, work: string): Uint8Array {
  const db = new DatabaseSync(":memory:");
  db.exec(setup);
  const session = db.createSession();
  db.exec(work);
  const changeset = session.changeset();
  session.close();
  db.close();
  return changeset;
}

test("reads inserts, updates and deletes with every storage class, keys and unchanged columns", () => {
  const changeset = recorded(
    "CREATE TABLE t(a INTEGER, b TEXT, c, PRIMARY KEY(b, a)); INSERT INTO t VALUES (1, 'k', 'old'), (2, 'k', 5)",
    "INSERT INTO t VALUES (3, 'ü', x'00ff'); INSERT INTO t VALUES (9007199254740993, 'big', 1.5); UPDATE t SET c = NULL WHERE a = 1; DELETE FROM t WHERE a = 2",
  );
  // A changeset groups changes by table and key, not by statement order.
  const changes = readChangeset(changeset);
  assert.equal(changes.length, 4);
  assert.ok(changes.every((c) => c.table === "t" && c.primaryKey.join() === "2,1,0"));
  const inserts = changes.filter((c) => c.op === "insert").map((c) => c.after);
  assert.deepEqual(
    inserts.sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
    [
      [9007199254740993n, "big", 1.5],
      [3, "ü", new Uint8Array([0, 255])],
    ],
  );
  // An update carries the key and the changed column's old value; the new record only what changed.
  const update = changes.find((c) => c.op === "update");
  assert.deepEqual(update?.before, [1, "k", "old"]);
  assert.deepEqual(update?.after, [undefined, undefined, null]);
  assert.deepEqual(changes.find((c) => c.op === "delete")?.before, [2, "k", 5]);
});

test("a damaged changeset is refused whole, never read in part", () => {
  const changeset = recorded(
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
    "INSERT INTO t VALUES (1, 'hello')",
  );
  const headerBytes = 1 + 1 + 2 + "t".length + 1;
  for (let cut = 1; cut < changeset.length; cut++) {
    if (cut === headerBytes) {
      assert.deepEqual(readChangeset(changeset.subarray(0, cut)), []); // a table with no changes
      continue;
    }
    assert.throws(
      () => readChangeset(changeset.subarray(0, cut)),
      (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
    );
  }
  const bad = Uint8Array.from(changeset);
  bad[0] = 0x55;
  assert.throws(
    () => readChangeset(bad),
    (e) => isBatonError(e, "PAYLOAD_CORRUPT"),
  );
});
