import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { crc32 } from "node:zlib";
import { isBatonError } from "../lib/errors.ts";
import { logIndex } from "../types/ids.ts";
import { copyDatabase, snapshotHeaderBytes } from "./snapshot-file.ts";
import { Store } from "./store.ts";
import { restoreDatabase, verifySnapshot } from "./store-files.ts";
import { batch, openStore, rowsOf, TestLog, temporaryDirectory } from "./test-support.ts";

function writeRows(log: TestLog, count: number): void {
  for (let i = 0; i < count; i++) log.write(batch(`INSERT INTO row(v) VALUES (randomblob(64))`));
}

/** Rewrites the header so its checksums match the (possibly damaged) database bytes. */
function resealSnapshot(file: string): void {
  const bytes = fs.readFileSync(file);
  bytes.set(createHash("sha256").update(bytes.subarray(snapshotHeaderBytes)).digest(), 28);
  bytes.writeUInt32BE(crc32(bytes.subarray(0, 60)), 60);
  fs.writeFileSync(file, bytes);
}

/** V8's `gc()`, without starting the test process with `--expose-gc`. */
function collector(): (options: { type: "minor" | "major" }) => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as (options: { type: "minor" | "major" }) => void;
}

describe("snapshots", () => {
  test("a collection during a snapshot's copy does not wait for the copy to end", async (t) => {
    const directory = temporaryDirectory(t);
    const databasePath = path.join(directory, "node.db");
    Store.open({ path: databasePath }).close();
    const raw = new DatabaseSync(databasePath);
    // About 60 MB, so that the copy runs long beside a collection of this small heap.
    raw.exec(`CREATE TABLE filler(v BLOB);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
      INSERT INTO filler SELECT randomblob(1000) FROM n;`);
    raw.close();
    const gc = collector();
    // A copy that ends within a few ms of the collection cannot tell; such a run is measured again.
    for (let attempt = 1; ; attempt++) {
      const copyPath = path.join(directory, `copy-${attempt}.db`);
      const copying = copyDatabase(databasePath, copyPath, 1_000);
      // The statements the copy prepared on its connection are garbage now unless it holds them.
      await new Promise((resolve) => setImmediate(resolve));
      const collecting = performance.now();
      // A young-generation collection: the statements are young, and it takes a few ms by itself.
      gc({ type: "minor" });
      const collected = performance.now();
      assert.equal(await copying, 0);
      const copyLeftMs = performance.now() - collecting;
      fs.rmSync(copyPath);
      if (copyLeftMs < 50 && attempt < 5) continue;
      // Finalizing a collected statement waits for its connection's mutex, which the backup holds
      // until the copy ends: the collection (and the event loop) would have lasted the whole copy.
      const collectionMs = collected - collecting;
      assert.ok(copyLeftMs >= 50, `copies too short to tell: ${Math.round(copyLeftMs)} ms`);
      assert.ok(
        collectionMs < copyLeftMs / 2,
        `collection ${Math.round(collectionMs)} ms of the copy's last ${Math.round(copyLeftMs)} ms`,
      );
      return;
    }
  });

  test("a snapshot taken while writes continue holds exactly the state of its applied index", async (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch("CREATE TABLE row(id INTEGER PRIMARY KEY AUTOINCREMENT, v BLOB)"));
    writeRows(log, 200);
    log.leader.execute(log.nextIndex, batch("INSERT INTO row(v) VALUES ('speculative')"));
    log.leader.rollbackSpeculative();
    const pending = log.leader.snapshot(path.join(directory, "snap"));
    writeRows(log, 20);
    log.leader.execute(log.nextIndex, batch("DELETE FROM row"));
    const snapshot = await pending;
    // The copy's read transaction is pinned when the call starts: later commits are not in it.
    assert.equal(snapshot.appliedIndex, 201);
    assert.equal(snapshot.bytes, fs.statSync(snapshot.path).size);
    assert.deepEqual(
      fs.readdirSync(directory).filter((name) => name.startsWith("snap")),
      ["snap"],
      "no temporary files remain",
    );

    const restoredPath = path.join(directory, "restored.db");
    assert.deepEqual(await restoreDatabase(snapshot.path, restoredPath), {
      appliedIndex: snapshot.appliedIndex,
    });
    const restored = openStore(t, directory, "restored.db");
    assert.equal(restored.appliedIndex, snapshot.appliedIndex);
    const reference = openStore(t, directory, "reference.db");
    for (const entry of log.entries)
      if (entry.index <= snapshot.appliedIndex) reference.apply(entry.index, entry.payload);
    assert.equal(restored.contentHash(), reference.contentHash());
    // The restored store continues from its index with the entries that follow.
    log.leader.rollbackSpeculative();
    log.catchUp(restored);
    assert.equal(restored.contentHash(), log.leader.contentHash());
  });

  test("damage anywhere is detected: header, database bytes, truncation, a resealed broken database", async (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch("CREATE TABLE row(id INTEGER PRIMARY KEY AUTOINCREMENT, v BLOB)"));
    writeRows(log, 50);
    const { path: good } = await log.leader.snapshot(path.join(directory, "good"));
    const damaged = (name: string, damage: (bytes: Buffer) => Buffer): string => {
      const file = path.join(directory, name);
      fs.writeFileSync(file, damage(fs.readFileSync(good)));
      return file;
    };
    const flip = (at: number) => (bytes: Buffer) => {
      bytes[at]! ^= 0x01;
      return bytes;
    };
    const files = [
      damaged("header", flip(14)),
      damaged("magic", flip(0)),
      damaged("body", flip(snapshotHeaderBytes + 5000)),
      damaged("truncated", (bytes) => bytes.subarray(0, bytes.length - 1)),
      damaged("empty", () => Buffer.alloc(0)),
    ];
    // A broken b-tree page whose checksums were recomputed: only the integrity check can tell.
    const resealed = damaged("resealed", (bytes) => {
      bytes.fill(0xff, snapshotHeaderBytes + 4096, snapshotHeaderBytes + 4096 + 16);
      return bytes;
    });
    resealSnapshot(resealed);
    for (const file of [...files, resealed]) {
      await assert.rejects(
        restoreDatabase(file, path.join(directory, "target.db")),
        (e) => isBatonError(e, "SNAPSHOT_CORRUPT"),
        file,
      );
      assert.equal(fs.existsSync(path.join(directory, "target.db")), false, "nothing was installed");
    }
    await assert.rejects(verifySnapshot(files[2]!), (e) => isBatonError(e, "SNAPSHOT_CORRUPT"));
    assert.equal((await verifySnapshot(good)).appliedIndex, 51);
  });

  test("restoreSnapshot replaces an open store's database; a corrupt snapshot leaves it as it was", async (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write(batch("CREATE TABLE row(id INTEGER PRIMARY KEY AUTOINCREMENT, v BLOB)"));
    writeRows(log, 10);
    const snapshot = await log.leader.snapshot(path.join(directory, "snap"));
    const follower = openStore(t, directory, "follower.db");
    follower.apply(logIndex(1), new Uint8Array(0));
    const corrupt = path.join(directory, "corrupt");
    fs.writeFileSync(corrupt, fs.readFileSync(snapshot.path).subarray(0, 100));
    await assert.rejects(follower.restoreSnapshot(corrupt), (e) => isBatonError(e, "SNAPSHOT_CORRUPT"));
    assert.equal(follower.appliedIndex, 1);
    assert.deepEqual(await follower.restoreSnapshot(snapshot.path), { appliedIndex: 11 });
    assert.equal(follower.appliedIndex, 11);
    assert.deepEqual(rowsOf(follower, "SELECT count(*) FROM row"), [[10]]);
    writeRows(log, 3);
    log.catchUp(follower);
    assert.equal(follower.contentHash(), log.leader.contentHash());
  });
});
