import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { Store } from "../store/store.ts";
import { type LogIndex, logIndex, type Term, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { Wal } from "../wal/wal.ts";
import { listSnapshots, reconcileStorage, snapshotFileName } from "./snapshot-files.ts";

type Setup = { directory: string; snapshots: string; dbPath: string; logPath: string };

function setup(t: TestContext): Setup {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-snapfiles-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const snapshots = path.join(directory, "snapshots");
  fs.mkdirSync(snapshots);
  return {
    directory,
    snapshots,
    dbPath: path.join(directory, "baton.db"),
    logPath: path.join(directory, "log"),
  };
}

function entries(from: number, to: number, entryTerm: number): LogEntry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({
    index: logIndex(from + i),
    term: term(entryTerm),
    kind: EntryKind.noop,
    data: new Uint8Array(),
  }));
}

function applyThrough(store: Store, through: number): void {
  for (let i = store.appliedIndex + 1; i <= through; i++) store.apply(logIndex(i), new Uint8Array(0));
}

/** Takes a snapshot of `store` and files it under its complete name at (its applied index, `atTerm`). */
async function fileSnapshot(s: Setup, store: Store, atTerm: Term): Promise<string> {
  const info = await store.snapshot(path.join(s.snapshots, "taking.tmp"));
  const final = path.join(s.snapshots, snapshotFileName(info.appliedIndex as LogIndex, atTerm));
  fs.renameSync(info.path, final);
  return final;
}

const quiet = () => {};

async function openLog(s: Setup) {
  const { wal, recovered } = Wal.open(s.logPath);
  return { wal, recovered };
}

/** The node's store and log, closed when the test ends. */
function openBoth(t: TestContext, s: Setup) {
  const store = Store.open({ path: s.dbPath });
  t.after(() => store.close());
  const { wal, recovered } = Wal.open(s.logPath);
  t.after(() => wal.close());
  return { store, wal, recovered };
}

test("start-up: leftovers go, only the latest snapshot stays, and a consistent directory is accepted as it is", async (t) => {
  const s = setup(t);
  const { store, wal, recovered } = openBoth(t, s);
  await wal.append(entries(1, 30, 1));
  applyThrough(store, 10);
  await fileSnapshot(s, store, term(1));
  applyThrough(store, 20);
  const latest = await fileSnapshot(s, store, term(1));
  fs.writeFileSync(path.join(s.snapshots, "taking-25.tmp"), "x");
  fs.writeFileSync(path.join(s.snapshots, "incoming-40-2-1.part"), "x");
  const reconciled = await reconcileStorage({
    directory: s.snapshots,
    log: wal,
    recovered,
    store,
    logger: quiet,
  });
  assert.equal(reconciled.latest?.path, latest);
  assert.deepEqual(fs.readdirSync(s.snapshots), [path.basename(latest)]);
  assert.equal(reconciled.recovered, recovered);
});

test("start-up: a database behind the compaction point is restored from the snapshot", async (t) => {
  const s = setup(t);
  const store = Store.open({ path: s.dbPath });
  t.after(() => store.close());
  const { wal } = await openLog(s);
  await wal.append(entries(1, 30, 2));
  applyThrough(store, 20);
  await fileSnapshot(s, store, term(2));
  await wal.compact(logIndex(15), term(2));
  await wal.close();
  // The database loses its latest commits (as after a power failure): rebuild it at index 5.
  store.close();
  for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(`${s.dbPath}${suffix}`, { force: true });
  const behind = Store.open({ path: s.dbPath });
  t.after(() => behind.close());
  applyThrough(behind, 5);
  const reopened = await openLog(s);
  t.after(() => reopened.wal.close());
  const reconciled = await reconcileStorage({
    directory: s.snapshots,
    log: reopened.wal,
    recovered: reopened.recovered,
    store: behind,
    logger: quiet,
  });
  assert.equal(behind.appliedIndex, 20);
  assert.equal(reconciled.recovered.compactionPoint.index, 15);
});

test("start-up: a crash after installing a leader's snapshot but before the log reset finishes the reset", async (t) => {
  const s = setup(t);
  const leader = Store.open({ path: path.join(s.directory, "leader.db") });
  applyThrough(leader, 40);
  const snapshot = await fileSnapshot(s, leader, term(3));
  leader.close();
  // The follower's log holds a divergent suffix (term 1) and its database now holds the snapshot.
  const { store, wal, recovered } = openBoth(t, s);
  await wal.append(entries(1, 25, 1));
  applyThrough(store, 10);
  await store.restoreSnapshot(snapshot);
  const reconciled = await reconcileStorage({
    directory: s.snapshots,
    log: wal,
    recovered,
    store,
    logger: quiet,
  });
  await reconciled.pending;
  assert.deepEqual(reconciled.recovered.compactionPoint, { index: 40, term: 3 });
  assert.deepEqual(reconciled.recovered.entries, []);
  assert.equal(reconciled.recovered.hardState.term, 3);
  assert.equal(wal.lastIndex, 40);
  assert.equal(wal.termAt(logIndex(40)), 3);
});

test("start-up: a leader's snapshot received but not swapped in when the node stopped is installed", async (t) => {
  const s = setup(t);
  const leader = Store.open({ path: path.join(s.directory, "leader.db") });
  applyThrough(leader, 30);
  await fileSnapshot(s, leader, term(2));
  leader.close();
  const { store, wal, recovered } = openBoth(t, s);
  await wal.append(entries(1, 12, 1));
  applyThrough(store, 12);
  const reconciled = await reconcileStorage({
    directory: s.snapshots,
    log: wal,
    recovered,
    store,
    logger: quiet,
  });
  await reconciled.pending;
  assert.equal(store.appliedIndex, 30);
  assert.deepEqual(reconciled.recovered.compactionPoint, { index: 30, term: 2 });
  assert.equal(wal.lastIndex, 30);
});

test("start-up: a log compacted with no snapshot covering it, or a database ahead of its log, is refused", async (t) => {
  const s = setup(t);
  const { store, wal, recovered } = openBoth(t, s);
  await wal.append(entries(1, 10, 1));
  applyThrough(store, 12);
  await assert.rejects(
    reconcileStorage({ directory: s.snapshots, log: wal, recovered, store, logger: quiet }),
    (error) => isBatonError(error, "STORE_CORRUPT") && /beyond the log/.test(error.message),
  );
  await wal.compact(logIndex(5), term(1));
  const compacted = { ...recovered, compactionPoint: { index: logIndex(5), term: term(1) } };
  await assert.rejects(
    reconcileStorage({ directory: s.snapshots, log: wal, recovered: compacted, store, logger: quiet }),
    (error) => isBatonError(error, "STORE_CORRUPT") && /no snapshot/.test(error.message),
  );
  assert.deepEqual(listSnapshots(s.snapshots), []);
});
