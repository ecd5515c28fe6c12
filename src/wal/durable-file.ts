/**
 * Small files replaced atomically: hard state (term, vote) and the compaction point.
 *
 * A file is written to a temporary name, fsynced, renamed over the old one, and the directory is
 * fsynced, so a crash leaves either the old or the new content, never a mix. The content carries a
 * magic, a length and a CRC-32, so a damaged file is detected and refused, never silently used.
 * Writing is asynchronous, with its fsyncs through the log's `SyncFile` (file-sync.ts); only recovery
 * at open uses the synchronous `fsyncDirectory`, before the node runs.
 */
import fs from "node:fs";
import path from "node:path";
import { crc32 } from "node:zlib";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { closeFile, openFile, type SyncFile, syncDirectory, writeAll } from "./file-sync.ts";

const magic = 0x4254_4e46; // "BTNF"
const headerBytes = 12;
const contentBytesMax = 64 * 1024;

/** Synchronous, for recovery at open only: the running log uses `syncDirectory`. */
export function fsyncDirectory(directory: string): void {
  const fd = fs.openSync(directory, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces `filePath` with `content` atomically and durably: temporary file, fsync, rename, fsync dir. */
export async function writeDurableFile(filePath: string, content: Uint8Array, sync: SyncFile): Promise<void> {
  const buffer = encodeDurable(content);
  const temporaryPath = `${filePath}.tmp`;
  const fd = await openFile(temporaryPath, "w");
  try {
    await writeAll(fd, buffer, 0);
    // The content must be durable before the rename can expose it under the real name.
    await sync(fd);
  } finally {
    await closeFile(fd);
  }
  await fs.promises.rename(temporaryPath, filePath);
  await syncDirectory(path.dirname(filePath), sync);
}

/**
 * `writeDurableFile` for recovery at open only (synchronous, before the node runs): the same
 * temporary file, fsync, rename and directory fsync.
 */
export function writeDurableFileSync(filePath: string, content: Uint8Array): void {
  const buffer = encodeDurable(content);
  const temporaryPath = `${filePath}.tmp`;
  const fd = fs.openSync(temporaryPath, "w");
  try {
    fs.writeSync(fd, buffer, 0, buffer.byteLength, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporaryPath, filePath);
  fsyncDirectory(path.dirname(filePath));
}

function encodeDurable(content: Uint8Array): Buffer {
  assert(content.byteLength <= contentBytesMax, "durable file content too large");
  const buffer = Buffer.allocUnsafe(headerBytes + content.byteLength);
  buffer.writeUInt32LE(magic, 0);
  buffer.writeUInt32LE(content.byteLength, 4);
  buffer.writeUInt32LE(crc32(content), 8);
  buffer.set(content, headerBytes);
  return buffer;
}

/** Reads a durable file; null when it does not exist; throws WAL_CORRUPT when it is damaged. */
export function readDurableFile(filePath: string): Uint8Array | null {
  let buffer: Buffer;
  try {
    buffer = fs.readFileSync(filePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  const corrupt = (why: string): BatonError =>
    new BatonError(ErrorCode.WAL_CORRUPT, `${filePath}: ${why}`, { file: filePath, offset: 0 });
  if (buffer.byteLength < headerBytes || buffer.readUInt32LE(0) !== magic) throw corrupt("bad header");
  const contentBytes = buffer.readUInt32LE(4);
  if (contentBytes !== buffer.byteLength - headerBytes) throw corrupt("length does not match file size");
  const content = buffer.subarray(headerBytes);
  if (crc32(content) !== buffer.readUInt32LE(8)) throw corrupt("checksum mismatch");
  return new Uint8Array(content);
}
