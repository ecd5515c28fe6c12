/**
 * A store's files while no store has them open: replacing a database with a verified snapshot,
 * deleting it, checking a snapshot file. Two stores on one file would break the single-writer
 * model, so this module also keeps the set of files a store in this process has open.
 */
import fs from "node:fs";
import path from "node:path";
import { assert } from "../lib/assert.ts";
import type { LogIndex } from "../types/ids.ts";
import * as snapshotFile from "./snapshot-file.ts";

/** Files with an open store in this process. */
export const openPaths = new Set<string>();

/** Replaces the database at `dataPath` (no store may have it open) with a verified snapshot. */
export async function restoreDatabase(
  snapshotPath: string,
  dataPath: string,
): Promise<{ appliedIndex: LogIndex }> {
  assert(!openPaths.has(path.resolve(dataPath)), `restore over ${dataPath} while a store has it open`);
  return { appliedIndex: await snapshotFile.restoreSnapshotFile(snapshotPath, path.resolve(dataPath)) };
}

/** Deletes the database at `dataPath` (no store may have it open); the next `open` starts empty. */
export function removeDatabase(dataPath: string): void {
  assert(!openPaths.has(path.resolve(dataPath)), `remove ${dataPath} while a store has it open`);
  for (const suffix of ["", "-wal", "-shm", "-journal"]) fs.rmSync(`${dataPath}${suffix}`, { force: true });
}

/** Deletes a prepared restore that will not be installed (`Store.prepareRestore`). */
export function discardRestore(prepared: snapshotFile.PreparedRestore): Promise<void> {
  return snapshotFile.discardPreparedRestore(prepared);
}

/** Checks a snapshot file completely (header and every byte) without installing it. */
export async function verifySnapshot(
  file: string,
): Promise<{ appliedIndex: LogIndex; databaseBytes: number }> {
  const header = await snapshotFile.verifySnapshot(file);
  return { appliedIndex: header.appliedIndex, databaseBytes: header.databaseBytes };
}
