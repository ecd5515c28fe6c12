/**
 * The log's memory bound (`RaftLog`, "Memory"): applied entries beyond `dataBytesMax` lose their
 * data, which is read back from the durable log; callers see the same entries as from a log that
 * holds everything.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type LogIndex, logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import type { ClusterConfig } from "./cluster-config.ts";
import { RaftLog } from "./raft-log.ts";

const bootstrapConfig: ClusterConfig = { voters: [nodeId("n1")], learners: [] };

function entry(index: number, entryTerm: number, bytes: number): LogEntry {
  return {
    index: logIndex(index),
    term: term(entryTerm),
    kind: EntryKind.command,
    data: new Uint8Array(bytes).fill(index % 251),
  };
}

/** A durable log the reader serves from: what the host's WAL would hold. */
class Disk {
  entries: LogEntry[] = [];
  reads = 0;
  readonly read = (from: LogIndex, toExclusive: LogIndex): LogEntry[] => {
    this.reads++;
    return this.entries.slice(from - 1, toExclusive - 1);
  };
}

/** A log bounded to `dataBytesMax` holding entries 1..`count` of 10 bytes each (term 1), on `disk` too. */
function boundedLog(dataBytesMax: number, count: number): { disk: Disk; log: RaftLog } {
  const disk = new Disk();
  const log = new RaftLog(logIndex(0), term(0), [], bootstrapConfig, { reader: disk.read, dataBytesMax });
  for (let index = 1; index <= count; index++) {
    const next = entry(index, 1, 10);
    log.append(next);
    disk.entries.push(next);
  }
  return { disk, log };
}

type Operation =
  | { kind: "append"; bytes: number; termStep: number }
  | { kind: "apply"; upTo: number }
  | { kind: "truncate"; back: number }
  | { kind: "compact"; back: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      bytes: fc.integer({ min: 0, max: 300 }),
      termStep: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("apply" as const), upTo: fc.integer({ min: 0, max: 4 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("truncate" as const), back: fc.integer({ min: 1, max: 4 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("compact" as const), back: fc.integer({ min: 0, max: 6 }) }),
  },
);

test("a log with a memory bound answers every read like one that holds everything, and holds no more than its bound beyond unapplied entries", () => {
  let readsSeen = 0;
  fc.assert(
    fc.property(
      fc.array(operation, { maxLength: 80 }),
      fc.integer({ min: 0, max: 600 }),
      (operations, bound) => {
        const disk = new Disk();
        const bounded = new RaftLog(logIndex(0), term(0), [], bootstrapConfig, {
          reader: disk.read,
          dataBytesMax: bound,
        });
        const whole = new RaftLog(logIndex(0), term(0), [], bootstrapConfig);
        let applied = 0;
        let snapshot = 0;
        for (const op of operations) {
          const last = whole.lastIndex;
          if (op.kind === "append") {
            const next = entry(last + 1, whole.lastTerm + op.termStep || 1, op.bytes);
            bounded.append(next);
            whole.append(next);
            disk.entries.length = last;
            disk.entries.push(next);
          } else if (op.kind === "apply") {
            applied = Math.min(last, applied + op.upTo);
            bounded.releaseApplied(logIndex(applied));
            const aboveApplied = disk.entries.slice(applied).reduce((sum, e) => sum + e.data.byteLength, 0);
            // Unapplied entries are never released (an apply or a truncation may still need them)...
            assert.ok(bounded.dataBytesHeld >= aboveApplied, "every unapplied entry held");
            // ...and the log is past its bound only when everything applied is released already.
            assert.ok(
              bounded.dataBytesHeld <= bound || bounded.dataBytesHeld === aboveApplied,
              `held ${bounded.dataBytesHeld} of bound ${bound} with ${aboveApplied} unapplied`,
            );
          } else if (op.kind === "truncate" && last - op.back >= Math.max(applied, snapshot)) {
            // The core truncates only above the commit index, so never an applied entry.
            assert.deepEqual(
              bounded.truncateAfter(logIndex(last - op.back)),
              whole.truncateAfter(logIndex(last - op.back)),
            );
            disk.entries.length = last - op.back;
          } else if (op.kind === "compact" && applied - op.back > snapshot) {
            const at = logIndex(applied - op.back);
            const atTerm = whole.termAt(at);
            assert.ok(atTerm !== undefined);
            bounded.compact(at, atTerm);
            whole.compact(at, atTerm);
            snapshot = at;
          }
          assert.equal(bounded.lastIndex, whole.lastIndex);
          for (let index = snapshot; index <= whole.lastIndex + 1; index++) {
            assert.equal(bounded.termAt(index), whole.termAt(index), `term at ${index}`);
            assert.deepEqual(bounded.entryAt(index), whole.entryAt(index), `entry at ${index}`);
          }
          if (whole.lastIndex > snapshot) {
            const from = logIndex(snapshot + 1);
            assert.deepEqual(
              bounded.slice(from, whole.lastIndex, 5, 700),
              whole.slice(from, whole.lastIndex, 5, 700),
            );
          }
        }
        readsSeen += disk.reads;
      },
    ),
  );
  assert.ok(readsSeen > 0, "some runs read released entries back");
});

test("a released entry read back different from the one the log held is a bug, not data", () => {
  const { disk, log } = boundedLog(0, 3);
  log.releaseApplied(logIndex(2));
  assert.equal(log.dataBytesHeld, 10, "entries 1 and 2 released, 3 (not applied) held");
  assert.deepEqual(log.entryAt(2), disk.entries[1]);
  // The durable log now holds another term at index 2 (a damaged or misplaced read).
  disk.entries[1] = entry(2, 2, 10);
  assert.throws(() => log.entryAt(2), /read back differs/);
  assert.throws(() => log.slice(logIndex(1), logIndex(3), 10, 1000), /read back differs/);
});

test("an applied entry is released only while the log holds more than its bound, oldest first", () => {
  const { disk, log } = boundedLog(25, 5);
  log.releaseApplied(logIndex(5));
  assert.equal(log.dataBytesHeld, 20, "three released: 50 bytes down to the first total within 25");
  assert.equal(disk.reads, 0);
  assert.deepEqual(log.entryAt(4), disk.entries[3]);
  assert.equal(disk.reads, 0, "a held entry is served from memory");
  assert.deepEqual(log.entryAt(3), disk.entries[2]);
  assert.equal(disk.reads, 1, "a released one is read back");
  log.compact(logIndex(4), term(1));
  assert.equal(log.dataBytesHeld, 10, "compaction drops the held entry 4 too");
});

test("entries recovered as views into one segment buffer: the held ones get buffers of their own, the rest keep none", () => {
  const segment = new Uint8Array(100 * 10);
  for (let i = 0; i < segment.byteLength; i++) segment[i] = (i * 7) % 256;
  const recovered: LogEntry[] = Array.from({ length: 100 }, (_, i) => ({
    index: logIndex(i + 1),
    term: term(1),
    kind: EntryKind.command,
    data: segment.subarray(i * 10, i * 10 + 10),
  }));
  const disk = new Disk();
  disk.entries = recovered.map((recoveredEntry) => ({
    ...recoveredEntry,
    data: recoveredEntry.data.slice(),
  }));
  const log = new RaftLog(logIndex(0), term(0), recovered, bootstrapConfig, {
    reader: disk.read,
    dataBytesMax: 50,
  });
  log.releaseApplied(logIndex(95));
  log.ownHeldData();
  assert.equal(log.dataBytesHeld, 50, "the bound keeps 96..100 (unapplied ones are always held)");
  const readsBefore = disk.reads;
  for (let index = 96; index <= 100; index++) {
    const held = log.entryAt(index);
    assert.ok(held !== undefined && held.kind === EntryKind.command);
    assert.notEqual(held.data.buffer, segment.buffer, `entry ${index} no longer shares the segment's buffer`);
    assert.deepEqual(held.data, recovered[index - 1]!.data);
  }
  assert.equal(disk.reads, readsBefore, "held entries are served from memory");
  assert.deepEqual(log.entryAt(3)?.data, recovered[2]!.data, "a released one reads back from disk");
});

test("the term of a released entry is known without reading its data back", () => {
  // The core asks the term of its commit index on every tick; one large entry, released once applied,
  // was read back from disk each time (a 34 MB entry: about 80 ms per tick on a leader).
  const { disk, log } = boundedLog(15, 5);
  log.releaseApplied(logIndex(5));
  const readsBefore = disk.reads;
  for (let index = 1; index <= 5; index++) assert.equal(log.termAt(index), term(1));
  assert.equal(disk.reads, readsBefore, "termAt read nothing back");
  assert.equal(log.entryAt(1)?.data.byteLength, 10, "entryAt still reads a released entry back");
  assert.ok(disk.reads > readsBefore);
});
