import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { logIndex } from "../types/ids.ts";
import { batch, openStore, TestLog, temporaryDirectory } from "./test-support.ts";

describe("content hash", () => {
  test("values of different storage classes hash differently: 1, 1.0, '1', x'31'", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "s.db"));
    log.write(batch("CREATE TABLE v(id INTEGER PRIMARY KEY, x)"));
    const hashes = ["1", "1.0", "'1'", "x'31'", "NULL"].map((literal) => {
      log.write(batch(`INSERT OR REPLACE INTO v VALUES (1, ${literal})`));
      return log.leader.contentHash();
    });
    assert.equal(new Set(hashes).size, hashes.length);
  });

  test("the digest of a fixed database is pinned: members of different versions compare their hashes", (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "s.db"));
    log.write(
      batch(
        "CREATE TABLE p(id INTEGER PRIMARY KEY, x)",
        // Every storage class; multi-byte text; text and blobs either side of the 64 KiB chunk.
        "INSERT INTO p VALUES (1, NULL), (2, -7), (3, 2.5), (4, 'héllo ☃ 𝄞'), (5, x'00ff'), (6, '')",
        "INSERT INTO p VALUES (7, printf('%.*c', 21000, 'é')), (8, printf('%.*c', 70000, 'a'))",
        "INSERT INTO p VALUES (9, zeroblob(65000)), (10, zeroblob(200000))",
        "WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < 5000) INSERT INTO p SELECT 100 + v, v * 3 FROM c",
      ),
    );
    assert.equal(
      log.leader.contentHash(),
      "f445c1416a819f820db31c881d792d00d6a50f3546bd0cd977e944ef75910eee",
    );
  });

  test("equal content hashes equal, whatever the order and history of writes", (t) => {
    const directory = temporaryDirectory(t);
    const first = new TestLog(openStore(t, directory, "a.db"));
    const second = new TestLog(openStore(t, directory, "b.db"));
    const schema = "CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, n REAL)";
    first.write(batch(schema, "INSERT INTO w VALUES ('a', 1.5), ('b', 2), ('c', NULL)"));
    second.write(batch(schema, "INSERT INTO w VALUES ('c', 0), ('x', 9), ('b', 2)"));
    second.write(
      batch(
        "DELETE FROM w WHERE k = 'x'",
        "UPDATE w SET n = NULL WHERE k = 'c'",
        "INSERT INTO w VALUES ('a', 1.5)",
      ),
    );
    assert.equal(first.leader.contentHash(), second.leader.contentHash());
    second.write(batch("UPDATE w SET n = 2.0000001 WHERE k = 'b'"));
    assert.notEqual(first.leader.contentHash(), second.leader.contentHash());
  });

  test("covers schema and AUTOINCREMENT counters; leaves out the applied index and speculative batches", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "s.db"));
    log.write(batch("CREATE TABLE s(id INTEGER PRIMARY KEY AUTOINCREMENT, v)"));
    const empty = log.leader.contentHash();
    log.leader.apply(logIndex(2), new Uint8Array(0));
    assert.equal(log.leader.contentHash(), empty, "the applied index is not content");
    log.leader.execute(logIndex(3), batch("INSERT INTO s(v) VALUES (1)"));
    assert.equal(log.leader.contentHash(), empty, "speculative batches are not committed content");
    log.leader.commitSpeculative(logIndex(3));
    const withRow = log.leader.contentHash();
    log.write(batch("DELETE FROM s"));
    const afterDelete = log.leader.contentHash();
    assert.notEqual(afterDelete, empty, "the counter still remembers id 1");
    assert.notEqual(afterDelete, withRow);
    log.write(batch("CREATE INDEX s_v ON s(v)"));
    assert.notEqual(log.leader.contentHash(), afterDelete, "an index is schema");
  });
});
