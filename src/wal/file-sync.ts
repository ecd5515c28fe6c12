/**
 * The log's file operations while it runs, all asynchronous, with every fsync through one function.
 *
 * Why asynchronous: an fsync takes milliseconds to tens of milliseconds on real disks; done with
 * `fsyncSync` it would stop the event loop, and with it heartbeats, votes and replication, for that
 * long. Only recovery at open (recovery.ts) still works synchronously, before the node runs.
 *
 * Why one function (`SyncFile`): every fsync the running log makes, of segment data, of directories,
 * of atomically replaced files and of cut segments, goes through it, so a test can make any one of
 * them fail and check that the log becomes unusable. `data` asks for `fdatasync` (segment appends:
 * only the bytes and the size matter), `full` for `fsync` (directories and metadata changes).
 */
import fs from "node:fs";
import { assert } from "../lib/assert.ts";

export type SyncKind = "data" | "full";

/** Makes what was written through `fd` durable; a rejection means it may not be. */
export type SyncFile = (fd: number, kind: SyncKind) => Promise<void>;

export const defaultSyncFile: SyncFile = (fd, kind) =>
  new Promise((resolve, reject) => {
    const done = (error: NodeJS.ErrnoException | null): void => (error ? reject(error) : resolve());
    if (kind === "data") fs.fdatasync(fd, done);
    else fs.fsync(fd, done);
  });

export function openFile(filePath: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(filePath, flags, (error, fd) => (error ? reject(error) : resolve(fd))),
  );
}

export function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (error) => (error ? reject(error) : resolve())));
}

/** Writes all of `buffer` at `position`, continuing after short writes. */
export function writeAll(fd: number, buffer: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number): void => {
      fs.write(fd, buffer, offset, buffer.byteLength - offset, position + offset, (error, written) => {
        if (error) return reject(error);
        assert(written > 0, "write made progress");
        if (offset + written < buffer.byteLength) return step(offset + written);
        resolve();
      });
    };
    step(0);
  });
}

/** Writes `parts` one after another at `position` of `fd`, however many writes it takes. */
export function writeAllParts(fd: number, parts: readonly Uint8Array[], position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (remaining: Uint8Array[], at: number): void => {
      if (remaining.length === 0) {
        resolve();
        return;
      }
      fs.writev(fd, remaining, at, (error, written) => {
        if (error) return reject(error);
        step(unwritten(remaining, written), at + written);
      });
    };
    step(
      parts.filter((part) => part.byteLength > 0),
      position,
    );
  });
}

/**
 * Bytes of parts `writeParts` writes on the calling thread at most: a one-row write's record (a few
 * hundred bytes) or one 100-row batch's. A group commit of many, written there, cost the leader's
 * loop more than the hop (256 KiB measured 0.74-0.95x the throughput of 16 KiB at 100-row batches).
 */
export const syncWriteBytesMax = 16 * 1024;

/**
 * `writeAllParts`, but parts of at most `syncWriteBytesMax` bytes in all are written on the calling
 * thread (returning undefined): copying them into the page cache is shorter than the hop to the
 * thread pool and back, which waits for the event loop to be free (270 µs of a one-writer write's
 * 1.2 ms on the leader, measured). Neither syncs.
 */
export function writeParts(
  fd: number,
  parts: readonly Uint8Array[],
  position: number,
): Promise<void> | undefined {
  let bytes = 0;
  for (const part of parts) bytes += part.byteLength;
  if (bytes > syncWriteBytesMax) return writeAllParts(fd, parts, position);
  let remaining = parts.filter((part) => part.byteLength > 0);
  for (let at = position; remaining.length > 0; ) {
    const written = fs.writevSync(fd, remaining, at);
    remaining = unwritten(remaining, written);
    at += written;
  }
  return undefined;
}

/** What is left of `parts` after a write took the first `written` bytes. */
function unwritten(parts: readonly Uint8Array[], written: number): Uint8Array[] {
  assert(written > 0, "write made progress");
  let skipped = 0;
  let rest = parts.slice();
  while (rest.length > 0 && skipped + rest[0]!.byteLength <= written) skipped += rest.shift()!.byteLength;
  if (rest.length > 0 && written > skipped) rest = [rest[0]!.subarray(written - skipped), ...rest.slice(1)];
  return rest;
}

/** Makes the directory's entries (files created, renamed or removed) durable. */
export async function syncDirectory(directory: string, sync: SyncFile): Promise<void> {
  const fd = await openFile(directory, "r");
  try {
    await sync(fd, "full");
  } finally {
    await closeFile(fd);
  }
}

/** Creates an empty file (replacing any), then makes its directory entry durable. */
export async function createEmptyFile(filePath: string, directory: string, sync: SyncFile): Promise<void> {
  await closeFile(await openFile(filePath, "w"));
  await syncDirectory(directory, sync);
}

/** Cuts a file to `bytes` and makes the new length durable. */
export async function truncateFile(filePath: string, bytes: number, sync: SyncFile): Promise<void> {
  assert(Number.isSafeInteger(bytes) && bytes >= 0, "a file is cut at a byte offset");
  const fd = await openFile(filePath, "r+");
  try {
    await new Promise<void>((resolve, reject) =>
      fs.ftruncate(fd, bytes, (error) => (error ? reject(error) : resolve())),
    );
    await sync(fd, "full");
  } finally {
    await closeFile(fd);
  }
}

/** Removes files newest first (the order given, reversed), then makes the removal durable. */
export async function unlinkFiles(
  paths: readonly string[],
  directory: string,
  sync: SyncFile,
): Promise<void> {
  for (let i = paths.length - 1; i >= 0; i--) await fs.promises.unlink(paths[i]!);
  if (paths.length > 0) await syncDirectory(directory, sync);
}
