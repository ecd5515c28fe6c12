import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { contentHashStepBytesMax } from "./content-hash.ts";
import { checkDatabaseStructure } from "./database-check.ts";
import { removeDatabase } from "./store-files.ts";
import { batch, openStore, TestLog, temporaryDirectory } from "./test-support.ts";

function filledLog(t: Parameters<typeof temporaryDirectory>[0], directory: string, rows: number): TestLog {
  const log = new TestLog(openStore(t, directory, "leader.db"));
  log.write(batch("CREATE TABLE item(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"));
  for (let i = 0; i < rows; i++)
    log.write(batch(`INSERT INTO item(v) VALUES ('row ${i} ${"x".repeat(40)}')`));
  return log;
}

describe("content hash jobs", () => {
  test("a job's digest is the content hash of the state committed when it began, however much is applied meanwhile", (t) => {
    const directory = temporaryDirectory(t);
    const log = filledLog(t, directory, 30);
    const expected = log.leader.contentHash();
    const job = log.leader.beginContentHash(4);
    assert.equal(job.appliedIndex, log.leader.appliedIndex);
    for (let i = 0; i < 5; i++) log.write(batch("INSERT INTO item(v) VALUES ('later')"));
    assert.notEqual(log.leader.contentHash(), expected);
    let digest: string | null = null;
    let steps = 0;
    while (digest === null) {
      digest = job.step();
      steps++;
      assert.ok(steps < 1000, "the job ends");
    }
    assert.equal(digest, expected);
    // Thirty rows four at a time, plus the bookkeeping tables: the work was split.
    assert.ok(steps >= 8, `${steps} steps`);
    assert.equal(job.step(), expected, "a finished job keeps its digest");
  });

  test("a step hashes about contentHashStepBytesMax bytes of values at most, however many rows it may take", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch("CREATE TABLE blob(id INTEGER PRIMARY KEY, body BLOB NOT NULL)"));
    const blobBytes = 256 * 1024;
    const blobs = 12;
    for (let i = 0; i < blobs; i++)
      log.write(batch(`INSERT INTO blob(body) VALUES (zeroblob(${blobBytes}))`));
    const job = log.leader.beginContentHash(1_000);
    let steps = 0;
    let digest: string | null = null;
    while (digest === null && steps < 1000) {
      digest = job.step();
      steps++;
    }
    assert.equal(digest, log.leader.contentHash());
    // 3 MiB of blobs, 1 MiB (four blobs) a step: at least three steps, though 1,000 rows were allowed.
    const perStep = Math.ceil(contentHashStepBytesMax / blobBytes);
    assert.ok(steps >= Math.ceil(blobs / perStep), `${steps} steps`);
  });

  test("a job closed early may be closed again and refuses further steps", (t) => {
    const directory = temporaryDirectory(t);
    const log = filledLog(t, directory, 10);
    const job = log.leader.beginContentHash(1);
    job.step();
    job.close();
    job.close();
    assert.throws(() => job.step(), /step after close/);
  });
});

describe("database structure check", () => {
  test("a sound database passes, one with a broken b-tree page does not; damage inside a row's content passes", (t) => {
    const directory = temporaryDirectory(t);
    const log = filledLog(t, directory, 200);
    const source = log.leader.path;
    log.leader.close();
    assert.equal(checkDatabaseStructure(source), null);
    assert.equal(checkDatabaseStructure(path.join(directory, "absent.db")), null);

    const db = new DatabaseSync(source);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const pageBytes = Number(db.prepare("PRAGMA page_size").get()?.page_size);
    const root = Number(db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'item'").get()?.rootpage);
    db.close();
    const original = fs.readFileSync(source);

    const broken = path.join(directory, "broken.db");
    const pageHeader = Buffer.from(original);
    pageHeader.fill(0xff, (root - 1) * pageBytes, (root - 1) * pageBytes + 12);
    fs.writeFileSync(broken, pageHeader);
    assert.match(checkDatabaseStructure(broken) ?? "", /./);

    const garbage = path.join(directory, "garbage.db");
    fs.writeFileSync(garbage, Buffer.alloc(4096, 0x42));
    assert.match(checkDatabaseStructure(garbage) ?? "", /not a database|malformed|corrupt/i);

    // A text value changed in place: SQLite keeps no checksum of row content.
    const content = Buffer.from(original);
    const at = content.indexOf(Buffer.from("row 150 "));
    assert.ok(at > 0);
    content.write("ROW", at);
    const changed = path.join(directory, "changed.db");
    fs.writeFileSync(changed, content);
    assert.equal(checkDatabaseStructure(changed), null);
  });

  test("removeDatabase deletes the file and its journals; the next open starts empty", (t) => {
    const directory = temporaryDirectory(t);
    const log = filledLog(t, directory, 3);
    const file = log.leader.path;
    assert.throws(() => removeDatabase(file), /while a store has it open/);
    log.leader.close();
    removeDatabase(file);
    assert.equal(fs.existsSync(file), false);
    const fresh = openStore(t, directory, "leader.db");
    assert.equal(fresh.appliedIndex, 0);
  });
});
