import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { isBatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex, nodeId, type Term, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { type DurableWrite, defaultDurableWrite } from "./file-sync.ts";
import { MemoryLog } from "./memory-log.ts";
import { checksumStepBytes, recordInlineDataBytesMax } from "./record-codec.ts";
import { Wal } from "./wal.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-wal-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let directoryCount = 0;
function freshDirectory(): string {
  return path.join(root, `log-${directoryCount++}`);
}

/** Entry data is derived from index and term so that any mix-up is visible. */
function entry(index: number, entryTerm: number, bytes = 16): LogEntry {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index * 31 + entryTerm * 7 + i) & 0xff;
  return { index: logIndex(index), term: term(entryTerm), kind: EntryKind.command, data };
}

function entriesFrom(first: number, last: number, entryTerm: number, bytes = 16): LogEntry[] {
  const result: LogEntry[] = [];
  for (let index = first; index <= last; index++) result.push(entry(index, entryTerm, bytes));
  return result;
}

function assertCorrupt(action: () => unknown, file: string, offset?: number): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(isBatonError(error, "WAL_CORRUPT"), `expected WAL_CORRUPT, got ${String(error)}`);
    assert.equal(error.details.file, file);
    if (offset !== undefined) assert.equal(error.details.offset, offset);
    return true;
  });
}

describe("write-ahead log", () => {
  test("entries survive close and reopen across many segments, byte for byte", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    const written = entriesFrom(1, 300, 1, 40);
    for (let i = 0; i < written.length; i += 7) await wal.append(written.slice(i, i + 7));
    assert.ok(wal.segmentCount > 5, "small segments roll over");
    await wal.close();
    const reopened = Wal.open(directory, { segmentBytesMax: 1024 });
    assert.deepEqual(reopened.recovered.entries, written);
    assert.equal(reopened.wal.lastIndex, 300);
    assert.deepEqual(reopened.wal.entries(logIndex(120), logIndex(131)), written.slice(119, 130));
    await reopened.wal.append([entry(301, 2)]);
    assert.equal(reopened.wal.durableIndex, 301);
    await reopened.wal.close();
  });

  test("large entries written from where they lie, mixed with small ones and merged appends, read back byte for byte", async () => {
    const directory = freshDirectory();
    const segmentBytesMax = 300 * 1024;
    const { wal } = Wal.open(directory, { segmentBytesMax });
    const sizes = [
      10,
      recordInlineDataBytesMax,
      20,
      30,
      200 * 1024,
      recordInlineDataBytesMax - 1,
      5,
      2.5 * checksumStepBytes,
      7,
    ];
    const written = sizes.map((bytes, i) => entry(i + 1, 1, bytes));
    // Appends queued together share one write: small records packed, large data referenced.
    await Promise.all([
      wal.append(written.slice(0, 3)),
      wal.append(written.slice(3, 6)),
      wal.append(written.slice(6)),
    ]);
    assert.ok(wal.segmentCount >= 3, "segments rolled over between records of one write");
    await wal.close();
    const reopened = Wal.open(directory, { segmentBytesMax });
    assert.deepEqual(reopened.recovered.entries, written);
    await reopened.wal.close();
  });

  test("concurrent appends share durable writes (group commit) and all become durable", async () => {
    let syncs = 0;
    const durableWrite: DurableWrite = (fd, parts, position) => {
      syncs++;
      return defaultDurableWrite(fd, parts, position);
    };
    const { wal } = Wal.open(freshDirectory(), { durableWrite });
    const durableReports: LogIndex[] = [];
    wal.onDurable((index) => durableReports.push(index));
    const appends: Promise<void>[] = [];
    for (let index = 1; index <= 200; index++) appends.push(wal.append([entry(index, 1)]));
    await Promise.all(appends);
    assert.equal(wal.durableIndex, 200);
    assert.ok(syncs < 200 / 4, `expected far fewer fsyncs than appends, got ${syncs}`);
    assert.equal(durableReports.at(-1), 200);
    for (let i = 1; i < durableReports.length; i++) assert.ok(durableReports[i]! > durableReports[i - 1]!);
    await wal.close();
  });

  test("hard state is stored atomically and reloaded", async () => {
    const directory = freshDirectory();
    const { wal, recovered } = Wal.open(directory);
    assert.deepEqual(recovered.hardState, { term: 0, votedFor: null });
    await wal.saveHardState({ term: term(5), votedFor: nodeId("n2") });
    await wal.close();
    assert.deepEqual(Wal.open(directory).recovered.hardState, { term: 5, votedFor: "n2" });
  });

  test("a damaged hard state file is refused", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory);
    await wal.saveHardState({ term: term(3), votedFor: null });
    await wal.close();
    const file = path.join(directory, "hardstate");
    const bytes = fs.readFileSync(file);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 2) ^ 0x20, bytes.length - 2);
    fs.writeFileSync(file, bytes);
    assertCorrupt(() => Wal.open(directory), file);
  });

  test("truncateAfter removes a divergent suffix across segments, durably", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    await wal.append(entriesFrom(1, 100, 1, 40));
    await wal.append(entriesFrom(101, 200, 2, 40));
    await wal.truncateAfter(logIndex(57));
    assert.equal(wal.lastIndex, 57);
    assert.equal(wal.lastTerm, 1);
    await wal.append(entriesFrom(58, 70, 3, 40));
    await wal.close();
    const { recovered } = Wal.open(directory, { segmentBytesMax: 1024 });
    assert.deepEqual(recovered.entries, [...entriesFrom(1, 57, 1, 40), ...entriesFrom(58, 70, 3, 40)]);
  });

  test("truncating queued, not yet durable entries keeps order", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory);
    const first = wal.append(entriesFrom(1, 10, 1));
    const truncated = wal.truncateAfter(logIndex(4));
    const second = wal.append(entriesFrom(5, 6, 2));
    await Promise.all([first, truncated, second]);
    assert.equal(wal.termAt(logIndex(6)), 2);
    await wal.close();
    assert.deepEqual(Wal.open(directory).recovered.entries, [
      ...entriesFrom(1, 4, 1),
      ...entriesFrom(5, 6, 2),
    ]);
  });

  test("compaction drops whole segments below the snapshot point and survives reopen", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    await wal.append(entriesFrom(1, 200, 1, 40));
    const segmentsBefore = wal.segmentCount;
    await wal.compact(logIndex(150), term(1));
    assert.ok(wal.segmentCount < segmentsBefore);
    assert.equal(wal.firstIndex, 151);
    assert.equal(wal.termAt(logIndex(150)), 1);
    await wal.append([entry(201, 1)]);
    await wal.close();
    const { recovered } = Wal.open(directory, { segmentBytesMax: 1024 });
    assert.deepEqual(recovered.compactionPoint, { index: 150, term: 1 });
    assert.deepEqual(recovered.entries, [...entriesFrom(151, 200, 1, 40), entry(201, 1)]);
  });

  test("the configuration given with a compaction point or a reset is recovered with it", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    await wal.append(entriesFrom(1, 60, 1, 40));
    await wal.compact(logIndex(30), term(1), '{"v":1,"voters":["a"],"learners":[]}');
    await wal.close();
    const reopened = Wal.open(directory, { segmentBytesMax: 1024 });
    assert.deepEqual(reopened.recovered.compactionPoint, {
      index: 30,
      term: 1,
      config: '{"v":1,"voters":["a"],"learners":[]}',
    });
    await reopened.wal.resetToSnapshot(logIndex(90), term(2), '{"v":1,"voters":["b"],"learners":[]}');
    await reopened.wal.close();
    assert.equal(
      Wal.open(directory).recovered.compactionPoint.config,
      '{"v":1,"voters":["b"],"learners":[]}',
    );
  });

  test("compacting every entry keeps the log appendable", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    await wal.append(entriesFrom(1, 60, 1, 40));
    await wal.compact(logIndex(60), term(1));
    await wal.close();
    const reopened = Wal.open(directory, { segmentBytesMax: 1024 });
    assert.deepEqual(reopened.recovered.entries, []);
    await reopened.wal.append([entry(61, 2)]);
    await reopened.wal.close();
    assert.deepEqual(Wal.open(directory).recovered.entries, [entry(61, 2)]);
  });

  test("resetToSnapshot replaces the log; a stale suffix never comes back", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    await wal.append(entriesFrom(1, 80, 1, 40));
    await wal.resetToSnapshot(logIndex(500), term(4));
    assert.equal(wal.lastIndex, 500);
    await wal.append([entry(501, 4)]);
    await wal.close();
    const { recovered } = Wal.open(directory);
    assert.deepEqual(recovered.compactionPoint, { index: 500, term: 4 });
    assert.deepEqual(recovered.entries, [entry(501, 4)]);
  });

  test("an interrupted reset (point written, old segments left) discards the old log", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory);
    await wal.append(entriesFrom(1, 80, 1));
    await wal.close();
    // Simulate the crash: only the compaction point of a snapshot at 40 (another term) was written.
    const donor = freshDirectory();
    const other = Wal.open(donor).wal;
    await other.append(entriesFrom(1, 40, 3));
    await other.compact(logIndex(40), term(3));
    await other.close();
    fs.copyFileSync(path.join(donor, "compaction"), path.join(directory, "compaction"));
    const { recovered } = Wal.open(directory);
    assert.deepEqual(recovered.entries, []);
    assert.deepEqual(recovered.compactionPoint, { index: 40, term: 3 });
  });
});

describe("write-ahead log recovery", () => {
  async function writeLog(directory: string, count: number): Promise<string> {
    const { wal } = Wal.open(directory);
    for (let index = 1; index <= count; index++) await wal.append([entry(index, 1, 24)]);
    await wal.close();
    const [segment] = fs.readdirSync(directory).filter((name) => name.endsWith(".wal"));
    return path.join(directory, segment!);
  }
  const recordBytes = 8 + 18 + 24;

  test("a cut at every offset of the last records keeps exactly the complete records", async () => {
    const directory = freshDirectory();
    const file = await writeLog(directory, 12);
    const original = fs.readFileSync(file);
    const firstCut = original.byteLength - 3 * recordBytes;
    for (let cut = firstCut; cut < original.byteLength; cut++) {
      fs.writeFileSync(file, original.subarray(0, cut));
      const { wal, recovered } = Wal.open(directory);
      const complete = Math.floor(cut / recordBytes);
      assert.equal(recovered.entries.length, complete, `cut at ${cut}`);
      assert.equal(recovered.tornTailBytes, cut - complete * recordBytes);
      // The log continues cleanly after the cut.
      await wal.append([entry(complete + 1, 1, 24)]);
      await wal.close();
      assert.equal(Wal.open(directory).recovered.entries.length, complete + 1);
      await Wal.open(directory).wal.close();
    }
  });

  test("a flipped byte in any record, the last complete one included, is corruption: refused with file and offset", async () => {
    const directory = freshDirectory();
    const file = await writeLog(directory, 12);
    const original = fs.readFileSync(file);
    for (let offset = original.byteLength - 3 * recordBytes; offset < original.byteLength; offset++) {
      const damaged = Buffer.from(original);
      damaged.writeUInt8(damaged.readUInt8(offset) ^ 0x5a, offset);
      fs.writeFileSync(file, damaged);
      const recordStart = offset - (offset % recordBytes);
      assertCorrupt(() => Wal.open(directory), file, recordStart);
    }
  });

  test("zeros after the last record (space allocated for an append that never reached the disk) are a torn tail", async () => {
    const directory = freshDirectory();
    const file = await writeLog(directory, 5);
    const original = fs.readFileSync(file);
    for (const zeros of [1, 7, 8, recordBytes, 4096]) {
      fs.writeFileSync(file, Buffer.concat([original, Buffer.alloc(zeros)]));
      const { wal, recovered } = Wal.open(directory);
      assert.equal(recovered.entries.length, 5, `${zeros} zeros`);
      assert.equal(recovered.tornTailBytes, zeros);
      assert.equal(recovered.damage, null);
      await wal.close();
      assert.equal(fs.statSync(file).size, original.byteLength, "the zeros were cut");
    }
  });

  test("a last record cut short whose length field grew is corruption, not a tear: its body is all there", async () => {
    const directory = freshDirectory();
    const file = await writeLog(directory, 5);
    const damaged = fs.readFileSync(file);
    const last = damaged.byteLength - recordBytes;
    // One flipped bit in the length makes the record look longer than the file: a cut-short record,
    // but its checksum still matches the bytes present, so only the length was damaged.
    damaged.writeUInt32LE(damaged.readUInt32LE(last) | 0x100, last);
    fs.writeFileSync(file, damaged);
    assertCorrupt(() => Wal.open(directory), file, last);
  });

  test("damage in a sealed segment, a missing segment or a gap refuses to open", async () => {
    const directory = freshDirectory();
    const { wal } = Wal.open(directory, { segmentBytesMax: 1024 });
    await wal.append(entriesFrom(1, 100, 1, 40));
    await wal.close();
    const segments = fs
      .readdirSync(directory)
      .filter((name) => name.endsWith(".wal"))
      .sort()
      .map((name) => path.join(directory, name));
    assert.ok(segments.length >= 4);
    const sealed = segments[1]!;
    const original = fs.readFileSync(sealed);
    const cut = original.subarray(0, original.byteLength - 5);
    fs.writeFileSync(sealed, cut);
    assertCorrupt(() => Wal.open(directory), sealed);
    fs.writeFileSync(sealed, original);
    fs.renameSync(segments[2]!, `${segments[2]!}.moved`);
    assertCorrupt(() => Wal.open(directory), segments[3]!, 0);
    fs.renameSync(`${segments[2]!}.moved`, segments[2]!);
    fs.renameSync(segments[0]!, `${segments[0]!}.moved`);
    assertCorrupt(() => Wal.open(directory), segments[1]!, 0);
  });

  test("random appends, truncations, compactions and reopens match an in-memory model", async () => {
    type Step =
      | { kind: "append"; count: number; bump: boolean }
      | { kind: "truncate"; back: number }
      | { kind: "compact"; back: number }
      | { kind: "reopen" };
    const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
      fc.record({
        kind: fc.constant("append" as const),
        count: fc.integer({ min: 1, max: 30 }),
        bump: fc.boolean(),
      }),
      fc.record({ kind: fc.constant("truncate" as const), back: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant("compact" as const), back: fc.integer({ min: 0, max: 60 }) }),
      fc.record({ kind: fc.constant("reopen" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 25 }), async (steps) => {
        const directory = freshDirectory();
        const options = { segmentBytesMax: 1024 };
        let wal = Wal.open(directory, options).wal;
        const model = new MemoryLog();
        let currentTerm: Term = term(1);
        for (const step of steps) {
          if (step.kind === "append") {
            if (step.bump) currentTerm = term(currentTerm + 1);
            const batch = entriesFrom(model.lastIndex + 1, model.lastIndex + step.count, currentTerm, 30);
            await Promise.all([wal.append(batch), model.append(batch)]);
          } else if (step.kind === "truncate") {
            const at = logIndex(Math.max(model.compactionPoint.index, model.lastIndex - step.back));
            await Promise.all([wal.truncateAfter(at), model.truncateAfter(at)]);
          } else if (step.kind === "compact") {
            const at = logIndex(Math.max(model.compactionPoint.index, model.lastIndex - step.back));
            const atTerm = model.termAt(at)!;
            await Promise.all([wal.compact(at, atTerm), model.compact(at, atTerm)]);
          } else {
            await wal.close();
            const reopened = Wal.open(directory, options);
            wal = reopened.wal;
            assert.deepEqual(
              reopened.recovered.entries,
              model.entries(model.firstIndex, logIndex(model.lastIndex + 1)),
            );
          }
          assert.equal(wal.lastIndex, model.lastIndex);
          assert.equal(wal.lastTerm, model.lastTerm);
        }
        await wal.close();
        const { recovered } = Wal.open(directory, options);
        assert.deepEqual(recovered.compactionPoint, model.compactionPoint);
        assert.deepEqual(recovered.entries, model.entries(model.firstIndex, logIndex(model.lastIndex + 1)));
      }),
      { numRuns: Number(process.env.BATON_PROPERTY_RUNS ?? 60) },
    );
  });
});

describe("write-ahead log failures", () => {
  test("a failing durable write makes the log unusable and reports nothing durable", async () => {
    let failNext = false;
    const durableWrite: DurableWrite = (fd, parts, position) =>
      failNext
        ? Promise.reject(Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" }))
        : defaultDurableWrite(fd, parts, position);
    const { wal } = Wal.open(freshDirectory(), { durableWrite });
    await wal.append(entriesFrom(1, 5, 1));
    failNext = true;
    const failing = wal.append(entriesFrom(6, 8, 1));
    const queuedBehind = wal.append(entriesFrom(9, 9, 1));
    await assert.rejects(failing, (error: unknown) => isBatonError(error, "WAL_IO"));
    await assert.rejects(queuedBehind, (error: unknown) => isBatonError(error, "WAL_IO"));
    assert.equal(wal.durableIndex, 5);
    assert.throws(
      () => wal.append(entriesFrom(10, 10, 1)),
      (error: unknown) => isBatonError(error, "WAL_IO"),
    );
    assert.throws(
      () => wal.saveHardState({ term: term(9), votedFor: null }),
      (error: unknown) => isBatonError(error, "WAL_IO"),
    );
  });

  test("appends must continue the log", async () => {
    const { wal } = Wal.open(freshDirectory());
    await wal.append(entriesFrom(1, 3, 2));
    assert.throws(() => wal.append([entry(5, 2)]), /must follow/);
    assert.throws(() => wal.append([entry(4, 1)]), /below previous term/);
    await wal.close();
    assert.throws(
      () => wal.append([entry(4, 2)]),
      (error: unknown) => isBatonError(error, "WAL_CLOSED"),
    );
  });
});
