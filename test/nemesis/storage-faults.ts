/**
 * Damage done to a stopped node's files, and the disk-full filler. Every byte changed is chosen by
 * the campaign's seeded generator and described in the returned note.
 *
 * - `tearWalTail`: appends a prefix of the last record of the newest segment: the bytes a crash in
 *   the middle of an append leaves. Recovery must cut exactly that tail and the node must start.
 * - `corruptWalRecord`: flips one bit in the body of a record that has a valid record after it;
 *   `corruptLastWalRecord` in the last complete record of the newest segment (which a crash cannot
 *   tear: it was written in full). Recovery must not take either for a torn tail: a node with peers
 *   keeps the intact prefix, records what it may have promised and fetches the rest from them.
 * - `damageDatabase`: checkpoints the SQLite WAL into the main file (as SQLite itself would when it
 *   opens), then flips bytes inside a live row of the `lists` table (a cell of its right-most leaf
 *   page). SQLite keeps no checksum of row content (`PRAGMA integrity_check` passes), so only the
 *   node can notice. It must not serve those rows as if they were good.
 */
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Prng } from "../../src/lib/prng.ts";
import { recordHeaderBytes } from "../../src/wal/record-codec.ts";

type RecordSpan = { readonly offset: number; readonly bytes: number };

function segments(logDirectory: string): string[] {
  return fs
    .readdirSync(logDirectory)
    .filter((name) => name.endsWith(".wal"))
    .sort()
    .map((name) => path.join(logDirectory, name));
}

/** Record boundaries of a segment, up to the first record that does not fit. */
function recordSpans(bytes: Buffer): RecordSpan[] {
  const spans: RecordSpan[] = [];
  let offset = 0;
  while (bytes.byteLength - offset >= recordHeaderBytes) {
    const bodyBytes = bytes.readUInt32LE(offset);
    const total = recordHeaderBytes + bodyBytes;
    if (bodyBytes === 0 || offset + total > bytes.byteLength) break;
    spans.push({ offset, bytes: total });
    offset += total;
  }
  return spans;
}

/** The newest segment holding at least `recordsMin` records, with its records. */
function newestSegment(
  dataDirectory: string,
  recordsMin: number,
): { file: string; bytes: Buffer; spans: RecordSpan[] } | null {
  const files = segments(path.join(dataDirectory, "log")).reverse();
  for (const file of files) {
    const bytes = fs.readFileSync(file);
    const spans = recordSpans(bytes);
    if (spans.length >= recordsMin) return { file, bytes, spans };
  }
  return null;
}

export function tearWalTail(dataDirectory: string, prng: Prng): string | null {
  const segment = newestSegment(dataDirectory, 1);
  if (segment === null) return null;
  const last = segment.spans.at(-1)!;
  if (last.offset + last.bytes !== segment.bytes.byteLength) return null;
  const kept = prng.intBetween(1, last.bytes - 1);
  fs.appendFileSync(segment.file, segment.bytes.subarray(last.offset, last.offset + kept));
  return `${path.basename(segment.file)}: appended the first ${kept} of ${last.bytes} bytes of its last record`;
}

export function corruptWalRecord(dataDirectory: string, prng: Prng): string | null {
  const segment = newestSegment(dataDirectory, 2);
  if (segment === null) return null;
  return flipInRecord(segment, segment.spans[prng.intBetween(0, segment.spans.length - 2)]!, prng);
}

export function corruptLastWalRecord(dataDirectory: string, prng: Prng): string | null {
  const segment = newestSegment(dataDirectory, 1);
  if (segment === null) return null;
  const last = segment.spans.at(-1)!;
  if (last.offset + last.bytes !== segment.bytes.byteLength) return null;
  return flipInRecord(segment, last, prng);
}

function flipInRecord(
  segment: { file: string; spans: RecordSpan[] },
  victim: RecordSpan,
  prng: Prng,
): string {
  const at = victim.offset + recordHeaderBytes + prng.intBetween(0, victim.bytes - recordHeaderBytes - 1);
  const fd = fs.openSync(segment.file, "r+");
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, at);
    byte[0] = byte[0]! ^ (1 << prng.intBetween(0, 7));
    fs.writeSync(fd, byte, 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
  return `${path.basename(segment.file)}: flipped a bit at byte ${at}, inside the record at ${victim.offset} (${segment.spans.length} records)`;
}

export function damageDatabase(dataDirectory: string, prng: Prng): string | null {
  const file = path.join(dataDirectory, "baton.db");
  if (!fs.existsSync(file)) return null;
  let pageBytes: number;
  let rootPage: number;
  const db = new DatabaseSync(file);
  try {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    pageBytes = Number((db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size);
    const row = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'lists'").get() as
      | { rootpage: number }
      | undefined;
    if (row === undefined) return null;
    rootPage = Number(row.rootpage);
  } finally {
    db.close();
  }
  const fd = fs.openSync(file, "r+");
  try {
    const leaf = rightmostLeaf(fd, rootPage, pageBytes);
    if (leaf === null) return null;
    const { pageNumber, page } = leaf;
    // A table leaf's header is 8 bytes (after the 100-byte file header on page 1): byte 3-4 hold
    // the cell count, and a 2-byte pointer per cell follows. A cell is payload size and rowid
    // (varints), then the record: a small header and the `items` text (the key is the rowid).
    // Twelve bytes in, a cell of this table is inside that text, so the damage hits a live row.
    const header = pageNumber === 1 ? 100 : 0;
    const cellCount = page.readUInt16BE(header + 3);
    if (cellCount === 0) return null;
    const cell = prng.intBetween(0, cellCount - 1);
    const cellStart = page.readUInt16BE(header + 8 + 2 * cell);
    const at = cellStart + 12 + prng.intBetween(0, 8);
    if (at + 8 > pageBytes) return null;
    for (let i = 0; i < 8; i++) page[at + i] = page[at + i]! ^ 0x5a;
    fs.writeSync(fd, page, at, 8, (pageNumber - 1) * pageBytes + at);
    return (
      `baton.db: xor 0x5a over 8 bytes at file offset ${(pageNumber - 1) * pageBytes + at} ` +
      `(cell ${cell} of ${cellCount} on page ${pageNumber}, a leaf of the lists table whose root is page ${rootPage})`
    );
  } finally {
    fs.closeSync(fd);
  }
}

/** Interior table pages are followed this deep at most. */
const btreeDepthMax = 10;

/** Follows right-most child pointers from a table b-tree's root down to a leaf page (type 13). */
function rightmostLeaf(
  fd: number,
  rootPage: number,
  pageBytes: number,
): { pageNumber: number; page: Buffer } | null {
  let pageNumber = rootPage;
  for (let depth = 0; depth < btreeDepthMax; depth++) {
    const page = Buffer.alloc(pageBytes);
    fs.readSync(fd, page, 0, pageBytes, (pageNumber - 1) * pageBytes);
    const header = pageNumber === 1 ? 100 : 0;
    const type = page[header];
    if (type === 13) return { pageNumber, page };
    if (type !== 5) return null;
    pageNumber = page.readUInt32BE(header + 8);
  }
  return null;
}

/** Fills the file system holding `directory` until a write fails; returns the bytes written. */
export async function fillDisk(directory: string): Promise<number> {
  const file = await fs.promises.open(path.join(directory, "nemesis-fill"), "a");
  let written = 0;
  try {
    for (let chunk = 1 << 20; chunk >= 512; chunk >>= 1) {
      const buffer = Buffer.alloc(chunk, 0x55);
      for (;;) {
        try {
          written += (await file.write(buffer)).bytesWritten;
        } catch {
          break;
        }
      }
    }
  } finally {
    await file.close();
  }
  return written;
}

export function unfillDisk(directory: string): void {
  fs.rmSync(path.join(directory, "nemesis-fill"), { force: true });
}
