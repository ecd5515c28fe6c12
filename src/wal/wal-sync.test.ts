/**
 * The log's fsyncs while it runs: all asynchronous through `syncFile`, none on the event loop, in
 * crash-safe order, and any one of them failing makes the log unusable (`WAL_IO`, never retried).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { defaultSyncFile, type SyncFile } from "./file-sync.ts";
import { Wal } from "./wal.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-wal-sync-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let directoryCount = 0;
function freshDirectory(): string {
  return path.join(root, `log-${directoryCount++}`);
}

function entries(first: number, last: number, entryTerm: number): LogEntry[] {
  const result: LogEntry[] = [];
  for (let index = first; index <= last; index++) {
    const data = new Uint8Array(40).fill(index & 0xff);
    result.push({ index: logIndex(index), term: term(entryTerm), kind: EntryKind.command, data });
  }
  return result;
}

/** A sync that counts, and fails the sync numbered `failAt` (1-based) once armed. */
class SyncProbe {
  calls = 0;
  failAt: number | null = null;
  readonly sync: SyncFile = (fd) => {
    this.calls++;
    if (this.failAt !== null && this.calls === this.failAt) {
      return Promise.reject(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }));
    }
    return defaultSyncFile(fd);
  };
  arm(failAfter: number): void {
    this.failAt = this.calls + failAfter;
  }
}

type Operation = {
  readonly name: string;
  /** Runs the operation on a log holding entries 1..200 in several segments. */
  readonly run: (wal: Wal) => Promise<void>;
  /**
   * What the first fsync must precede: every change to the log's files (a durable point or state
   * must exist first), the cut of a segment (a truncation removes later segments first and cuts only
   * once that is durable), or nothing (a cut inside the last segment is its own first step).
   */
  readonly firstSyncPrecedes: "every change" | "the cut" | "nothing";
};

const operations: readonly Operation[] = [
  {
    name: "saveHardState",
    run: (wal) => wal.saveHardState({ term: term(7), votedFor: nodeId("n3") }),
    firstSyncPrecedes: "every change",
  },
  {
    name: "truncateAfter (across segments)",
    run: (wal) => wal.truncateAfter(logIndex(57)),
    firstSyncPrecedes: "the cut",
  },
  {
    name: "truncateAfter (inside a segment)",
    run: (wal) => wal.truncateAfter(logIndex(198)),
    firstSyncPrecedes: "nothing",
  },
  {
    name: "compact",
    run: (wal) => wal.compact(logIndex(150), term(1)),
    firstSyncPrecedes: "every change",
  },
  {
    name: "resetToSnapshot",
    run: (wal) => wal.resetToSnapshot(logIndex(500), term(4)),
    firstSyncPrecedes: "every change",
  },
];

/** File names and sizes in a log directory, leaving out temporary files. */
function listing(directory: string): Map<string, number> {
  const files = fs.readdirSync(directory).filter((name) => !name.endsWith(".tmp"));
  return new Map(files.map((name) => [name, fs.statSync(path.join(directory, name)).size]));
}

async function openFilled(probe: SyncProbe): Promise<{ wal: Wal; directory: string }> {
  const directory = freshDirectory();
  const { wal } = Wal.open(directory, { segmentBytesMax: 1024, syncFile: probe.sync });
  await wal.append(entries(1, 200, 1));
  return { wal, directory };
}

describe("write-ahead log fsyncs", () => {
  for (const operation of operations) {
    test(`${operation.name}: every fsync is asynchronous and goes through syncFile`, async (t) => {
      const probe = new SyncProbe();
      const { wal } = await openFilled(probe);
      const syncsBefore = probe.calls;
      const blocking = t.mock.method(fs, "fsyncSync");
      const blockingData = t.mock.method(fs, "fdatasyncSync");
      await operation.run(wal);
      assert.equal(
        blocking.mock.callCount() + blockingData.mock.callCount(),
        0,
        "no fsync on the event loop",
      );
      assert.ok(probe.calls > syncsBefore, "the operation is made durable");
      await wal.close();
    });
  }

  for (const operation of operations) {
    test(`${operation.name}: a failing fsync at any step makes the log unusable`, async () => {
      const dryRun = new SyncProbe();
      const counted = await openFilled(dryRun);
      const before = dryRun.calls;
      await operation.run(counted.wal);
      const steps = dryRun.calls - before;
      await counted.wal.close();
      for (let step = 1; step <= steps; step++) {
        const probe = new SyncProbe();
        const { wal, directory } = await openFilled(probe);
        const hardState = wal.hardState;
        const filesBefore = listing(directory);
        probe.arm(step);
        const failing = operation.run(wal);
        const queuedBehind = wal.append(entries(wal.lastIndex + 1, wal.lastIndex + 1, 9));
        const isIo = (error: unknown): boolean => isBatonError(error, "WAL_IO");
        await assert.rejects(failing, isIo, `step ${step} of ${steps}`);
        await assert.rejects(queuedBehind, isIo);
        assert.throws(() => wal.append(entries(wal.lastIndex + 1, wal.lastIndex + 1, 9)), isIo);
        assert.throws(() => wal.saveHardState({ term: term(8), votedFor: null }), isIo);
        assert.throws(() => wal.truncateAfter(logIndex(10)), isIo);
        assert.throws(() => wal.compact(logIndex(10), term(1)), isIo);
        assert.throws(() => wal.resetToSnapshot(logIndex(900), term(9)), isIo);
        assert.throws(() => wal.entries(logIndex(150), logIndex(151)), isIo);
        if (operation.name === "saveHardState") assert.deepEqual(wal.hardState, hardState);
        if (step === 1 && operation.firstSyncPrecedes !== "nothing") {
          // Crash order: what must wait for the first fsync has not happened when it fails.
          const filesAfter = listing(directory);
          for (const [name, bytes] of filesAfter) assert.equal(bytes, filesBefore.get(name), name);
          if (operation.firstSyncPrecedes === "every change") assert.deepEqual(filesAfter, filesBefore);
        }
        assert.equal(probe.calls, before + step, "a failed fsync is never retried, nothing runs after it");
        await wal.close();
        // Whatever reached the disk is a consistent log: the old state or the new one, never damage.
        const reopened = Wal.open(directory, { segmentBytesMax: 1024 });
        assert.ok(reopened.recovered.entries.length > 0 || reopened.recovered.compactionPoint.index === 500);
        await reopened.wal.close();
      }
    });
  }

  test("operations complete in call order", async () => {
    const probe = new SyncProbe();
    const { wal } = await openFilled(probe);
    const completed: string[] = [];
    const track = (name: string, promise: Promise<void>): Promise<void> =>
      promise.then(() => {
        completed.push(name);
      });
    await Promise.all([
      track("append 201", wal.append(entries(201, 201, 1))),
      track("hard state", wal.saveHardState({ term: term(2), votedFor: null })),
      track("append 202-210", wal.append(entries(202, 210, 2))),
      track("truncate", wal.truncateAfter(logIndex(205))),
      track("append 206", wal.append(entries(206, 206, 3))),
      track("compact", wal.compact(logIndex(100), term(1))),
      track("hard state 2", wal.saveHardState({ term: term(3), votedFor: nodeId("n1") })),
      track("append 207", wal.append(entries(207, 207, 3))),
    ]);
    assert.deepEqual(completed, [
      "append 201",
      "hard state",
      "append 202-210",
      "truncate",
      "append 206",
      "compact",
      "hard state 2",
      "append 207",
    ]);
    await wal.close();
    const { recovered } = Wal.open(wal.directory, { segmentBytesMax: 1024 });
    assert.deepEqual(recovered.hardState, { term: 3, votedFor: "n1" });
    assert.deepEqual(recovered.compactionPoint, { index: 100, term: 1 });
    assert.deepEqual(
      recovered.entries.map((entry) => [entry.index, entry.term]),
      [
        ...entries(101, 200, 1),
        ...entries(201, 201, 1),
        ...entries(202, 205, 2),
        ...entries(206, 207, 3),
      ].map((entry) => [entry.index, entry.term]),
    );
  });

  test("terms of entries appended after a truncation are known before they are written", async () => {
    const probe = new SyncProbe();
    const { wal } = await openFilled(probe);
    const old = wal.append(entries(201, 210, 1));
    const truncated = wal.truncateAfter(logIndex(204));
    const fresh = wal.append(entries(205, 206, 2));
    await truncated;
    // The truncation ran; entries 205-206 of term 2 may still be on their way to disk.
    assert.equal(wal.termAt(logIndex(205)), 2);
    assert.equal(wal.termAt(logIndex(204)), 1);
    const again = wal.truncateAfter(logIndex(205));
    assert.equal(wal.lastTerm, 2);
    await Promise.all([old, fresh, again]);
    assert.deepEqual(
      wal.entries(logIndex(203), logIndex(206)).map((entry) => entry.term),
      [1, 1, 2],
    );
    await wal.close();
  });
});

/** The open flags of this process's descriptors of `file` (Linux: /proc/self/fdinfo), one per descriptor. */
function openFlagsOf(file: string): number[] {
  const flags: number[] = [];
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (the listing's own descriptor)
    }
    if (target !== file) continue;
    const line = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
    if (line !== null) flags.push(Number.parseInt(line[1]!, 8));
  }
  return flags;
}

describe("write-ahead log appends", () => {
  const linux = process.platform === "linux";
  test("records are durable when their write returns: the active segment is open with O_DSYNC, written on the thread pool", {
    skip: linux ? false : "reads open flags from /proc/self/fdinfo (Linux only)",
  }, async (t) => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    // Directories are still fsynced (new segments); data is never synced on its own.
    const unused = ["writeSync", "writevSync", "fsyncSync", "fdatasyncSync", "fdatasync"].map((name) =>
      t.mock.method(fs, name as "writeSync"),
    );
    await wal.append(entries(1, 60, 1));
    assert.deepEqual(
      unused.map((mock) => mock.mock.callCount()),
      [0, 0, 0, 0, 0],
      "no write on the event loop and no separate data sync: O_DSYNC makes each write durable",
    );
    t.mock.restoreAll();
    assert.ok(wal.segmentCount >= 2, "the appends rolled over to new segments");
    const segments = fs
      .readdirSync(directory)
      .filter((name) => name.endsWith(".wal"))
      .sort();
    const active = path.join(directory, segments.at(-1)!);
    const flags = openFlagsOf(active);
    assert.equal(flags.length, 1, "the active segment is open once");
    assert.equal(flags[0]! & fs.constants.O_DSYNC, fs.constants.O_DSYNC, "opened with O_DSYNC");
    for (const older of segments.slice(0, -1))
      assert.deepEqual(openFlagsOf(path.join(directory, older)), [], `${older} is closed`);
    await wal.close();
    const reopened = Wal.open(directory, { segmentBytesMax: 1024 });
    assert.deepEqual(reopened.recovered.entries, entries(1, 60, 1));
    await reopened.wal.close();
  });
});
