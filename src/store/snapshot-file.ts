/**
 * Snapshot files: a consistent copy of the committed database with its applied index, protected so
 * that a damaged file is detected and never installed.
 *
 * File layout (integers big-endian), one self-contained file a node can ship to a peer:
 *
 *   bytes  0..7   magic "BATONSNP"
 *          8..11  u32 snapshot format version (1)
 *         12..19  u64 applied index of the state inside
 *         20..27  u64 database bytes that follow the header
 *         28..59  SHA-256 of those database bytes
 *         60..63  CRC-32 of bytes 0..59
 *         64..    the SQLite database (rollback-journal mode, no -wal needed)
 *
 * Writing: `backup` copies from a dedicated read-only connection in ONE step (all pages), so it holds
 * one read snapshot for the whole copy and concurrent commits cannot restart or starve it; the copy is
 * marked a rollback-journal database (its two version bytes, no fsync), its applied index read from
 * its own `_baton_meta` (so index and data cannot disagree), then streamed behind the header into a
 * temporary name, fsynced, renamed, and the directory fsynced. Restoring checks the header checksum, the SHA-256 of every database byte,
 * `PRAGMA integrity_check`, the store format and that the inner applied index equals the header's,
 * before anything replaces the live database; stale -wal and -shm files are removed first, because a
 * WAL left from the old database would be replayed onto the new one.
 */
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { backup, DatabaseSync } from "node:sqlite";
import { crc32 } from "node:zlib";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { boundConnectionMemory } from "./connections.ts";
import { checkFormat, MetaAccess } from "./meta.ts";

const magic = new TextEncoder().encode("BATONSNP");
export const snapshotFormatVersion = 1;
export const snapshotHeaderBytes = 64;
/** Bytes read or written per step when streaming database bytes. */
const copyChunkBytes = 1 << 20;
/**
 * A file being written is synced each time this many bytes were written to it, not only at the end:
 * one sync of a whole 200 MB database at once held up the log's own small fsyncs behind it. Measured
 * on this machine's disk, three 400 MB writers at once: a small fdatasync beside them took up to
 * 328-726 ms with one sync each at the end, 88-117 ms with a sync every 16 MiB (the writers 20-50%
 * slower).
 */
export const copySyncEveryBytes = 16 << 20;
/** Pages per backup step: all of them (SQLite copies at most what exists), so the copy is one step. */
const backupPagesPerStep = 0x7fff_ffff;

export type SnapshotHeader = {
  readonly appliedIndex: LogIndex;
  readonly databaseBytes: number;
  readonly sha256: Uint8Array;
};

function corrupt(file: string, message: string): BatonError {
  return new BatonError("SNAPSHOT_CORRUPT", `snapshot ${file}: ${message}`, { path: file });
}

function encodeHeader(header: SnapshotHeader): Uint8Array {
  assert(header.sha256.length === 32, "a SHA-256 digest has 32 bytes");
  const bytes = new Uint8Array(snapshotHeaderBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(magic, 0);
  view.setUint32(8, snapshotFormatVersion);
  view.setBigUint64(12, BigInt(header.appliedIndex));
  view.setBigUint64(20, BigInt(header.databaseBytes));
  bytes.set(header.sha256, 28);
  view.setUint32(60, crc32(bytes.subarray(0, 60)));
  return bytes;
}

function decodeHeader(bytes: Uint8Array, file: string, fileBytes: number): SnapshotHeader {
  if (bytes.length < snapshotHeaderBytes)
    throw corrupt(file, `${fileBytes} bytes is shorter than the header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!magic.every((byte, i) => bytes[i] === byte)) throw corrupt(file, "not a Baton snapshot (bad magic)");
  if (view.getUint32(60) !== crc32(bytes.subarray(0, 60))) throw corrupt(file, "header checksum mismatch");
  const version = view.getUint32(8);
  if (version !== snapshotFormatVersion) {
    throw new BatonError(
      "STORE_VERSION_UNSUPPORTED",
      `snapshot ${file} has format ${version}; this build reads ${snapshotFormatVersion}`,
      {
        path: file,
        version,
      },
    );
  }
  const appliedIndex = view.getBigUint64(12);
  const databaseBytes = view.getBigUint64(20);
  if (appliedIndex > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(file, "applied index out of range");
  if (databaseBytes !== BigInt(fileBytes - snapshotHeaderBytes)) {
    throw corrupt(
      file,
      `header promises ${databaseBytes} database bytes, the file holds ${fileBytes - snapshotHeaderBytes}`,
    );
  }
  return {
    appliedIndex: logIndex(Number(appliedIndex)),
    databaseBytes: Number(databaseBytes),
    sha256: bytes.slice(28, 60),
  };
}

/** Copies `bytes` bytes from `source` at `sourceOffset` to `target` at `targetOffset`, returning their SHA-256. */
async function copyHashing(
  source: fs.promises.FileHandle,
  sourceOffset: number,
  target: fs.promises.FileHandle | null,
  targetOffset: number,
  bytes: number,
): Promise<Uint8Array> {
  const hash = createHash("sha256");
  const buffer = Buffer.alloc(Math.min(copyChunkBytes, Math.max(bytes, 1)));
  let done = 0;
  let unsynced = 0;
  while (done < bytes) {
    const { bytesRead } = await source.read(
      buffer,
      0,
      Math.min(buffer.length, bytes - done),
      sourceOffset + done,
    );
    assert(bytesRead > 0, "the file ended before its expected size");
    const chunk = buffer.subarray(0, bytesRead);
    hash.update(chunk);
    if (target !== null) await target.write(chunk, 0, bytesRead, targetOffset + done);
    done += bytesRead;
    unsynced += bytesRead;
    if (target !== null && unsynced >= copySyncEveryBytes) {
      await target.datasync();
      unsynced = 0;
    }
  }
  return new Uint8Array(hash.digest());
}

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await fs.promises.open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function temporaryName(target: string, purpose: string): string {
  return `${target}.${purpose}-${randomUUID().slice(0, 8)}`;
}

/** Offset of the database header's two file-format version bytes: 1 rollback journal, 2 WAL. */
const formatVersionOffset = 18;

/**
 * Marks a complete copy of a WAL-mode database, with no -wal of its own, as a rollback-journal
 * database: the two version bytes SQLite's `PRAGMA journal_mode=DELETE` would set. That pragma does
 * it in a transaction that fsyncs a journal and the 200 MB copy on the calling thread, which held
 * the event loop for 175-373 ms while three nodes took snapshots at once. The copy is a temporary
 * file: nothing needs it durable, only the snapshot file written from it is synced.
 */
async function markRollbackJournal(copyPath: string): Promise<void> {
  const handle = await fs.promises.open(copyPath, "r+");
  try {
    const version = Buffer.alloc(2);
    const { bytesRead } = await handle.read(version, 0, 2, formatVersionOffset);
    assert(bytesRead === 2 && version[0] === version[1], "the copy has a database header");
    if (version[0] !== 1) await handle.write(Buffer.from([1, 1]), 0, 2, formatVersionOffset);
  } finally {
    await handle.close();
  }
}

/**
 * Copies the committed database at `sourcePath` into a single-file copy and returns its applied index.
 * The state copied is fixed before this function first awaits: the source connection opens its read
 * transaction synchronously, so the snapshot holds exactly what was committed when it was called.
 *
 * Every statement prepared on the source connection stays reachable until the connection is closed.
 * The backup step holds the connection's mutex for the whole copy (one step, on a libuv thread), and
 * a statement that V8 collects meanwhile is finalized inside the collection, on the event loop, by
 * `sqlite3_finalize`, which waits for that mutex. Measured in the 10-minute soak: at every snapshot
 * take the nodes' event loops stopped 300-900 ms in a collection waiting on that mutex (seen in the
 * main thread's stack), once on both followers at the same time, so the leader lost check-quorum.
 */
export async function copyDatabase(
  sourcePath: string,
  copyPath: string,
  busyTimeoutMs: number,
): Promise<LogIndex> {
  const source = new DatabaseSync(sourcePath, {
    readOnly: true,
    readBigInts: true,
    timeout: busyTimeoutMs,
    allowExtension: false,
  });
  let pinned: LogIndex;
  const held: object[] = [];
  try {
    boundConnectionMemory(source, held);
    source.exec("BEGIN");
    const meta = new MetaAccess(source, false);
    held.push(meta);
    pinned = meta.readAppliedIndex();
    await backup(source, copyPath, { rate: backupPagesPerStep });
  } finally {
    if (source.isOpen && source.isTransaction) source.exec("ROLLBACK");
    source.close();
    // Closing finalized the statements; only now may they be collected.
    held.length = 0;
  }
  await markRollbackJournal(copyPath);
  const copy = new DatabaseSync(copyPath, { readOnly: true, readBigInts: true, allowExtension: false });
  try {
    boundConnectionMemory(copy);
    const mode = copy.prepare("PRAGMA journal_mode").get();
    assert(mode?.journal_mode === "delete", "the snapshot copy is a single rollback-journal file");
    checkFormat(copy, copyPath);
    const copied = new MetaAccess(copy, false).readAppliedIndex();
    assert(copied === pinned, `the copy holds applied index ${copied}, the pinned read ${pinned}`);
    return copied;
  } finally {
    copy.close();
  }
}

/** Writes a snapshot of the committed database at `sourcePath` to `destinationPath`. */
export async function writeSnapshot(
  sourcePath: string,
  destinationPath: string,
  busyTimeoutMs: number,
): Promise<{ appliedIndex: LogIndex; bytes: number }> {
  const copyPath = temporaryName(destinationPath, "copy");
  const partPath = temporaryName(destinationPath, "part");
  try {
    const appliedIndex = await copyDatabase(sourcePath, copyPath, busyTimeoutMs);
    const databaseBytes = (await fs.promises.stat(copyPath)).size;
    const source = await fs.promises.open(copyPath, "r");
    try {
      const target = await fs.promises.open(partPath, "wx");
      try {
        const sha256 = await copyHashing(source, 0, target, snapshotHeaderBytes, databaseBytes);
        await target.write(encodeHeader({ appliedIndex, databaseBytes, sha256 }), 0, snapshotHeaderBytes, 0);
        await target.sync();
      } finally {
        await target.close();
      }
    } finally {
      await source.close();
    }
    await fs.promises.rename(partPath, destinationPath);
    await fsyncDirectory(path.dirname(destinationPath));
    return { appliedIndex, bytes: snapshotHeaderBytes + databaseBytes };
  } finally {
    for (const leftover of [
      copyPath,
      `${copyPath}-journal`,
      `${copyPath}-wal`,
      `${copyPath}-shm`,
      partPath,
    ]) {
      await fs.promises.rm(leftover, { force: true });
    }
  }
}

/** Checks the header and the SHA-256 of every database byte; optionally extracts the database to `extractPath`. */
export async function verifySnapshot(
  snapshotPath: string,
  extractPath: string | null = null,
): Promise<SnapshotHeader> {
  const source = await fs.promises.open(snapshotPath, "r");
  try {
    const fileBytes = (await source.stat()).size;
    const headerBuffer = Buffer.alloc(snapshotHeaderBytes);
    const { bytesRead } = await source.read(headerBuffer, 0, snapshotHeaderBytes, 0);
    const header = decodeHeader(headerBuffer.subarray(0, bytesRead), snapshotPath, fileBytes);
    const target = extractPath === null ? null : await fs.promises.open(extractPath, "wx");
    try {
      const sha256 = await copyHashing(source, snapshotHeaderBytes, target, 0, header.databaseBytes);
      if (!sha256.every((byte, i) => header.sha256[i] === byte))
        throw corrupt(snapshotPath, "database checksum mismatch");
      await target?.sync();
    } finally {
      await target?.close();
    }
    return header;
  } finally {
    await source.close();
  }
}

/** Opens the extracted database read-only and checks it is whole and matches the header. */
function checkExtracted(extractPath: string, snapshotPath: string, header: SnapshotHeader): void {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(extractPath, { readOnly: true, readBigInts: true, allowExtension: false });
  } catch (error) {
    throw corrupt(snapshotPath, `database does not open: ${String(error)}`);
  }
  try {
    const result = db.prepare("PRAGMA integrity_check").all();
    if (result.length !== 1 || result[0]?.integrity_check !== "ok") {
      throw corrupt(snapshotPath, `integrity check failed: ${JSON.stringify(result.slice(0, 3))}`);
    }
    checkFormat(db, snapshotPath);
    const inner = new MetaAccess(db, false).readAppliedIndex();
    if (inner !== header.appliedIndex) {
      throw corrupt(
        snapshotPath,
        `header says applied index ${header.appliedIndex}, the database says ${inner}`,
      );
    }
  } catch (error) {
    if (error instanceof BatonError) throw error;
    throw corrupt(snapshotPath, `database is unreadable: ${String(error)}`);
  } finally {
    db.close();
  }
}

/** A snapshot verified and extracted next to the database it will replace, ready to swap in. */
export type PreparedRestore = {
  readonly extractPath: string;
  readonly appliedIndex: LogIndex;
};

/**
 * Verifies a snapshot completely and extracts its database next to `dataPath` (nothing live is
 * touched). The caller then swaps it in with `installPreparedRestore` or drops it with
 * `discardPreparedRestore`.
 */
export async function prepareRestore(snapshotPath: string, dataPath: string): Promise<PreparedRestore> {
  const extractPath = temporaryName(dataPath, "restore");
  try {
    const header = await verifySnapshot(snapshotPath, extractPath);
    checkExtracted(extractPath, snapshotPath, header);
    return { extractPath, appliedIndex: header.appliedIndex };
  } catch (error) {
    await fs.promises.rm(extractPath, { force: true });
    throw error;
  }
}

/**
 * Swaps a prepared database in for the one at `dataPath`, which no connection may hold open. One
 * rename makes it atomic: a crash leaves the old database or the new one. Synchronous, so that
 * nothing can run against the store between closing and reopening it; the stale -wal and -shm files
 * go first, because a WAL left from the old database would be replayed onto the new one.
 */
export function installPreparedRestore(prepared: PreparedRestore, dataPath: string): LogIndex {
  for (const suffix of ["-wal", "-shm", "-journal"]) fs.rmSync(`${dataPath}${suffix}`, { force: true });
  fs.renameSync(prepared.extractPath, dataPath);
  const directory = fs.openSync(path.dirname(dataPath), "r");
  try {
    fs.fsyncSync(directory);
  } finally {
    fs.closeSync(directory);
  }
  return prepared.appliedIndex;
}

export async function discardPreparedRestore(prepared: PreparedRestore): Promise<void> {
  await fs.promises.rm(prepared.extractPath, { force: true });
}

/**
 * Replaces the database at `dataPath` (which no open store may be using) with the snapshot's, after
 * verifying it completely. Returns the applied index of the restored state.
 */
export async function restoreSnapshotFile(snapshotPath: string, dataPath: string): Promise<LogIndex> {
  return installPreparedRestore(await prepareRestore(snapshotPath, dataPath), dataPath);
}
