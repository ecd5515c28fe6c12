/**
 * The log's file operations while it runs, all asynchronous, with every fsync through one function
 * and every durable append through another.
 *
 * Why asynchronous: an fsync takes milliseconds to tens of milliseconds on real disks; done with
 * `fsyncSync` it would stop the event loop, and with it heartbeats, votes and replication, for that
 * long. Only recovery at open (recovery.ts) still works synchronously, before the node runs.
 *
 * Why two functions, each replaceable (`WalOptions`): every fsync the running log makes (of
 * directories, of atomically replaced files and of cut segments) goes through `SyncFile`, and every
 * write of appended records through `DurableWrite`, so a test can make any one of them fail and
 * check that the log becomes unusable.
 *
 * Appended records are durable when their write returns: the active segment is open with O_DSYNC
 * (`segmentOpenFlags`), so each write is the write and the `fdatasync` in one system call on
 * libuv's thread pool. Written first and synced after, an append cost the event loop the write
 * itself plus a second hop to the pool (measured in bench/PROFILE.md).
 */
import fs from "node:fs";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";

/** Makes what was written through `fd` (a file or a directory) durable with `fsync`; a rejection means it may not be. */
export type SyncFile = (fd: number) => Promise<void>;

export const defaultSyncFile: SyncFile = (fd) =>
  new Promise((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve())));

/**
 * Writes `parts` one after another at `position` of a segment opened with `segmentOpenFlags`, and
 * resolves once they are durable; a rejection means they may not be.
 */
export type DurableWrite = (fd: number, parts: readonly Uint8Array[], position: number) => Promise<void>;

/**
 * The flags of an open segment: read and write, and O_DSYNC, so that a write returns only once its
 * bytes (and the file size they need) are on stable storage. A platform without O_DSYNC cannot run
 * the log.
 */
export function segmentOpenFlags(): number {
  const { O_RDWR, O_DSYNC } = fs.constants;
  if (O_DSYNC === undefined)
    throw new BatonError(
      ErrorCode.WAL_IO,
      "this platform has no O_DSYNC: the log cannot make writes durable",
    );
  return O_RDWR | O_DSYNC;
}

/** Writes that are durable on return: `writeAllParts` on a segment opened with `segmentOpenFlags`. */
export const defaultDurableWrite: DurableWrite = (fd, parts, position) => writeAllParts(fd, parts, position);

export function openFile(filePath: string, flags: string | number): Promise<number> {
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
    await sync(fd);
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
    await sync(fd);
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
