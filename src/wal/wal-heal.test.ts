/**
 * Healing corruption at open (`recovery.ts`, `heal: true`): the intact prefix stays, everything from
 * the damage on goes, and the hard state records an upper bound of what the node may have promised
 * (and moves to the next term), durably before anything is cut.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { Wal } from "./wal.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-wal-heal-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let directoryCount = 0;
function freshDirectory(): string {
  return path.join(root, `log-${directoryCount++}`);
}

function entry(index: number, entryTerm: number, bytes = 24): LogEntry {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index * 31 + entryTerm * 7 + i) & 0xff;
  return { index: logIndex(index), term: term(entryTerm), kind: EntryKind.command, data };
}

/** A log of `count` entries of term 2 (hard state term 3, a vote) in segments of about `segmentBytes`. */
async function writeLog(directory: string, count: number, segmentBytes = 64 << 20): Promise<string[]> {
  const { wal } = Wal.open(directory, { segmentBytesMax: segmentBytes });
  await wal.saveHardState({ term: term(3), votedFor: nodeId("n2") });
  for (let index = 1; index <= count; index += 5) {
    const batch: LogEntry[] = [];
    for (let i = index; i < index + 5 && i <= count; i++) batch.push(entry(i, 2));
    await wal.append(batch);
  }
  await wal.close();
  return segmentFiles(directory);
}

function segmentFiles(directory: string): string[] {
  return fs
    .readdirSync(directory)
    .filter((name) => name.endsWith(".wal"))
    .sort()
    .map((name) => path.join(directory, name));
}

function flip(file: string, offset: number, mask = 0x04): void {
  const bytes = fs.readFileSync(file);
  bytes[offset] = bytes[offset]! ^ mask;
  fs.writeFileSync(file, bytes);
}

const recordBytes = 8 + 18 + 24;

describe("write-ahead log healing", () => {
  test("a flipped bit mid-log keeps the intact prefix and records the loss in the hard state", async () => {
    const directory = freshDirectory();
    const [file] = await writeLog(directory, 20);
    flip(file!, 7 * recordBytes + 30);
    const { wal, recovered } = Wal.open(directory, { heal: true });
    assert.deepEqual(
      recovered.entries.map((e) => e.index),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(recovered.entries.at(-1), entry(7, 2));
    assert.equal(recovered.tornTailBytes, 0);
    assert.equal(recovered.damage?.file, file);
    assert.equal(recovered.damage?.offset, 7 * recordBytes);
    assert.equal(recovered.damage?.firstLostIndex, 8);
    // The records after the damage are valid: the bound is exactly the last of them.
    assert.deepEqual(recovered.hardState, { term: 4, votedFor: null, promised: { index: 20, term: 3 } });
    assert.equal(fs.statSync(file!).size, 7 * recordBytes, "cut at the damage");
    // The log continues; the loss stays recorded across a reopen, which finds nothing more to heal.
    await wal.append([entry(8, 4)]);
    await wal.close();
    const again = Wal.open(directory, { heal: true });
    assert.equal(again.recovered.damage, null);
    assert.deepEqual(again.recovered.hardState.promised, { index: 20, term: 3 });
    assert.equal(again.recovered.entries.length, 8);
    await again.wal.close();
  });

  test("a bit flipped in the last complete record is healed, not cut as a torn tail", async () => {
    const directory = freshDirectory();
    const [file] = await writeLog(directory, 12);
    flip(file!, 11 * recordBytes + 40);
    const { wal, recovered } = Wal.open(directory, { heal: true });
    assert.equal(recovered.entries.length, 11);
    assert.equal(recovered.tornTailBytes, 0);
    assert.equal(recovered.damage?.firstLostIndex, 12);
    // Damaged bytes count as many records as could fit in them: at least the one that was there.
    assert.ok(recovered.hardState.promised!.index >= 12);
    assert.equal(recovered.hardState.term, 4);
    await wal.close();
  });

  test("a torn tail is cut as before: no loss is recorded and the term stays", async () => {
    const directory = freshDirectory();
    const [file] = await writeLog(directory, 12);
    fs.truncateSync(file!, 12 * recordBytes - 9);
    const { wal, recovered } = Wal.open(directory, { heal: true });
    assert.equal(recovered.entries.length, 11);
    assert.equal(recovered.tornTailBytes, recordBytes - 9);
    assert.equal(recovered.damage, null);
    assert.deepEqual(recovered.hardState, { term: 3, votedFor: nodeId("n2") });
    await wal.close();
  });

  test("damage in a sealed segment drops every later segment; the bound covers them", async () => {
    const directory = freshDirectory();
    const files = await writeLog(directory, 100, 1024);
    assert.ok(files.length >= 4);
    flip(files[1]!, 3 * recordBytes + 12);
    const { wal, recovered } = Wal.open(directory, { heal: true });
    const firstOfSecond = Number(path.basename(files[1]!, ".wal"));
    assert.equal(recovered.entries.at(-1)?.index, firstOfSecond + 2);
    assert.deepEqual(segmentFiles(directory), files.slice(0, 2));
    assert.ok(recovered.hardState.promised!.index >= 100);
    await wal.append([entry(firstOfSecond + 3, 4)]);
    await wal.close();
  });

  test("a crash after the hard state was written and before the cut heals again, never lowering the bound", async () => {
    const directory = freshDirectory();
    const [file] = await writeLog(directory, 20);
    flip(file!, 15 * recordBytes + 30);
    const crashed = freshDirectory();
    fs.cpSync(directory, crashed, { recursive: true });
    const first = Wal.open(directory, { heal: true });
    await first.wal.close();
    // The crashed copy got the new hard state but none of the cut.
    fs.copyFileSync(path.join(directory, "hardstate"), path.join(crashed, "hardstate"));
    const { wal, recovered } = Wal.open(crashed, { heal: true });
    assert.equal(recovered.entries.length, 15);
    // The bound is taken again, now at the term the first heal moved to: never below the first one.
    assert.deepEqual(first.recovered.hardState.promised, { index: 20, term: 3 });
    assert.deepEqual(recovered.hardState.promised, { index: 20, term: 4 });
    assert.equal(recovered.hardState.term, first.recovered.hardState.term + 1);
    await wal.close();
  });

  test("without heal, the same damage is refused and nothing is written", async () => {
    const directory = freshDirectory();
    const [file] = await writeLog(directory, 20);
    flip(file!, 7 * recordBytes + 30);
    const before = fs.readFileSync(path.join(directory, "hardstate"));
    assert.throws(() => Wal.open(directory), /WAL_CORRUPT|damaged record/);
    assert.deepEqual(fs.readFileSync(path.join(directory, "hardstate")), before);
    assert.equal(fs.statSync(file!).size, 20 * recordBytes);
  });

  test("any single flipped bit: the kept entries are the original prefix and the bound covers every lost entry", async () => {
    const template = freshDirectory();
    const files = await writeLog(template, 60, 1024);
    const sizes = files.map((f) => fs.statSync(f).size);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: files.length - 1 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 0, max: 7 }),
        async (segment, where, bit) => {
          const directory = freshDirectory();
          fs.cpSync(template, directory, { recursive: true });
          const file = path.join(directory, path.basename(files[segment]!));
          flip(file, Math.floor(where * sizes[segment]!), 1 << bit);
          const { wal, recovered } = Wal.open(directory, { heal: true });
          await wal.close();
          fs.rmSync(directory, { recursive: true, force: true });
          assert.notEqual(recovered.damage, null, "a single flipped bit is never a torn tail");
          for (const [i, kept] of recovered.entries.entries()) assert.deepEqual(kept, entry(i + 1, 2));
          assert.ok(
            recovered.hardState.promised!.index >= 60,
            `bound ${recovered.hardState.promised!.index}`,
          );
          assert.equal(recovered.hardState.promised!.term, 3);
        },
      ),
      { numRuns: 60 },
    );
  });
});
