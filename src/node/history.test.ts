import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { historyRecordBytesMax } from "../store/index.ts";
import {
  decodeHistoryRows,
  type HistoryEvent,
  historyBatchRecordsMax,
  historyEntryOfRow,
  historyRowOf,
  MemoryHistory,
} from "./history.ts";
import { FileHistory, historyFileName } from "./history-file.ts";
import { decodePeerBody, encodeHistory } from "./peer-envelope.ts";

function event(atMs: number, name = "leader-elected"): HistoryEvent {
  return { atMs, node: "n1", term: 2, event: name, cause: "leader-lost" };
}

function directory(t: TestContext): string {
  const made = fs.mkdtempSync(path.join(os.tmpdir(), "baton-history-"));
  t.after(() => fs.rmSync(made, { recursive: true, force: true }));
  return made;
}

test("sequences rise by one within a life and start from the clock in a new one", () => {
  const history = new MemoryHistory();
  const seqs = [1_000, 1_000, 1_000, 5_000.7, 4_000].map((atMs) => history.record(event(atMs)).seq);
  assert.deepEqual(seqs, [1_000_000, 1_000_001, 1_000_002, 5_000_000, 5_000_001]);
  // A node whose records were lost starts again from its clock, above what it used before.
  assert.equal(new MemoryHistory().record(event(5_001)).seq, 5_001_000);
});

test("records stay unreplicated until confirmed; a confirmation only rises and never names an unknown record", () => {
  const history = new MemoryHistory();
  for (const atMs of [10, 20, 30]) history.record(event(atMs));
  assert.deepEqual(
    history.unreplicated(2).map((r) => r.seq),
    [10_000, 20_000],
  );
  history.markReplicated(20_000);
  assert.equal(history.replicatedThrough, 20_000);
  assert.deepEqual(
    history.unreplicated(10).map((r) => r.seq),
    [30_000],
  );
  history.markReplicated(10_000);
  assert.equal(history.replicatedThrough, 20_000, "only rises");
  history.markReplicated(99_000);
  assert.equal(history.replicatedThrough, 20_000, "a sequence this history never gave is ignored");
  history.markReplicated(30_000);
  assert.deepEqual(history.unreplicated(10), []);
});

test("the file keeps records and what was replicated across restarts; a wiped file starts above", async (t) => {
  const data = directory(t);
  const first = new FileHistory(data);
  for (const atMs of [100, 200, 300]) first.record(event(atMs));
  first.markReplicated(200_000);
  await first.settled();
  const reopened = new FileHistory(data);
  assert.equal(reopened.replicatedThrough, 200_000);
  assert.deepEqual(
    reopened.unreplicated(10).map((r) => r.seq),
    [300_000],
  );
  assert.equal(reopened.record(event(50)).seq, 300_001, "the sequence goes on from the file");
  assert.deepEqual(
    reopened.recent(2).map((r) => r.seq),
    [300_001, 300_000],
  );
  // A torn line and a line from before sequences are shown, never replicated.
  fs.appendFileSync(path.join(data, historyFileName), '{"atMs":1,"node":"n1","event":"old"}\n{"atMs":');
  const damaged = new FileHistory(data);
  assert.deepEqual(
    damaged.recent(2).map((r) => [r.event, r.seq]),
    [
      ["unreadable-line", null],
      ["old", null],
    ],
  );
  assert.deepEqual(
    damaged.unreplicated(10).map((r) => r.seq),
    [300_000, 300_001],
  );
  await reopened.settled();
  fs.rmSync(path.join(data, "review"), { recursive: true });
  const wiped = new FileHistory(data);
  assert.equal(wiped.replicatedThrough, 0);
  assert.equal(wiped.record(event(10_000)).seq, 10_000_000);
  await wiped.settled();
});

test("the history file is synced off the event loop; a sync that fails is reported as a storage failure", async (t) => {
  const data = directory(t);
  const failures: Error[] = [];
  const history = new FileHistory(data, (error) => failures.push(error));
  history.record(event(100));
  history.record(event(200));
  history.markReplicated(100_000);
  // Appended at once (a restart reads it), synced and marked later, on the thread pool.
  assert.equal(fs.readFileSync(path.join(data, historyFileName), "utf8").split("\n").length, 3);
  assert.equal(fs.existsSync(path.join(data, "review", "history-replicated.json")), false);
  await history.settled();
  assert.equal(new FileHistory(data).replicatedThrough, 100_000);
  assert.equal(failures.length, 0);

  // A disk whose fdatasync fails: reported once per failed sync, never thrown into the caller.
  class FailingDisk extends FileHistory {
    protected override async datasync(): Promise<void> {
      throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
    }
  }
  const failing = new FailingDisk(data, (error) => failures.push(error));
  failing.record(event(300));
  await failing.settled();
  assert.equal(failures.length, 1);
  assert.match(failures[0]!.message, /EIO/);
});

test("a record is replicated as JSON within its bound, a larger one with its first fields only", () => {
  const history = new MemoryHistory();
  const small = history.record(event(1_000));
  const row = historyRowOf(small);
  assert.deepEqual(
    { node: row.node, seq: row.seq, atMs: row.atMs },
    { node: "n1", seq: 1_000_000, atMs: 1_000 },
  );
  assert.deepEqual(historyEntryOfRow(row), { ...small, replicated: true });
  const large = history.record({
    ...event(2_000, "forced-recovery"),
    report: "x".repeat(historyRecordBytesMax),
  });
  const truncated = historyEntryOfRow(historyRowOf(large));
  assert.equal(truncated.truncated, true);
  assert.equal(truncated.event, "forced-recovery");
  assert.equal(truncated.report, undefined);
});

test("history pushes and acknowledgements cross the transport; a malformed push is BAD_MESSAGE", () => {
  const history = new MemoryHistory();
  const rows = [history.record(event(5)), history.record(event(6))].map((record) => historyRowOf(record));
  assert.deepEqual(decodePeerBody(encodeHistory({ kind: "push", rows })), {
    type: "history",
    message: { kind: "push", rows },
  });
  assert.deepEqual(decodePeerBody(encodeHistory({ kind: "ack", through: 6 })), {
    type: "history",
    message: { kind: "ack", through: 6 },
  });
  const push = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
  const good = rows[0]!;
  for (const [bad, why] of [
    [push({}), /an array/],
    [push(Array.from({ length: historyBatchRecordsMax + 1 }, () => good)), /an array of at most 64/],
    [push([{ ...good, node: "" }]), /node/],
    [push([{ ...good, seq: 0 }]), /sequence/],
    [push([{ ...good, atMs: 1.5 }]), /time/],
    [push([{ ...good, record: "x".repeat(historyRecordBytesMax + 1) }]), /record/],
    [new TextEncoder().encode("[{"), /not JSON/],
  ] as const)
    assert.throws(
      () => decodeHistoryRows(bad),
      (error: { code?: string; message?: string }) =>
        error.code === "BAD_MESSAGE" && why.test(error.message ?? ""),
      String(why),
    );
});
