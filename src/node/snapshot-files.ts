/**
 * The snapshot directory (`DATA/snapshots/`) and the start-up rules that make the database, the log
 * and the snapshots agree before the node runs.
 *
 * Files:
 *   snapshot-<index>-<term>.bsnap   a complete snapshot (the store's format, `snapshot-file.ts`) of
 *                                   the state through log position (index, term); the name is
 *                                   written only by a durable rename, so a complete name is a
 *                                   complete file. The latest is kept; older ones are deleted.
 *   taking-<index>.tmp              a snapshot being taken; leftovers are deleted at start.
 *   incoming-<index>-<term>-<n>.part  a snapshot being received from a leader (n numbers the
 *                                   transfers of this process); deleted at start.
 *   snapshot-<index>-<term>.config  the cluster configuration as of a received snapshot's index
 *                                   (the core's canonical text), written durably before the
 *                                   snapshot's own name: a crash between installing it and
 *                                   resetting the log (rule 4 below) resets the log with it.
 *
 * Invariant kept by the keeper and checked here: when the log is compacted through C > 0, a
 * snapshot at an index ≥ C exists (the log is compacted only behind a durable snapshot, and a
 * snapshot file is deleted only once a newer one is durable).
 */
import fs from "node:fs";
import path from "node:path";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { Store } from "../store/store.ts";
import { type LogIndex, logIndex, type Term, term } from "../types/ids.ts";
import type { LogStore } from "../wal/log-store.ts";
import type { NodeLog, RecoveredLog } from "./runtime.ts";

export type SnapshotRef = {
  readonly index: LogIndex;
  /** The term of the log entry at `index`. */
  readonly term: Term;
  /** File size, header included. */
  readonly bytes: number;
  readonly path: string;
};

const completePattern = /^snapshot-(\d{20})-(\d{20})\.bsnap$/;
const leftoverPattern = /^(taking-\d+\.tmp|incoming-\d+-\d+-\d+\.part|config-\d+\.tmp)$/;
const configPattern = /^snapshot-\d{20}-\d{20}\.config$/;
/** Bytes a configuration file may hold: `votersMax + learnersMax` members with their addresses. */
const configFileBytesMax = 64 << 10;

/** The configuration file that goes with a snapshot file. */
export function snapshotConfigPath(snapshotPath: string): string {
  return snapshotPath.replace(/\.bsnap$/, ".config");
}

/** Writes the configuration as of a received snapshot beside it, durably (before the snapshot's own name). */
export async function writeSnapshotConfig(snapshotPath: string, config: string): Promise<void> {
  const target = snapshotConfigPath(snapshotPath);
  const temporary = path.join(path.dirname(target), `config-${process.pid}.tmp`);
  const handle = await fs.promises.open(temporary, "w");
  try {
    await handle.writeFile(config);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await renameDurably(temporary, target);
}

/** The configuration written beside a snapshot, or undefined when there is none. */
export function readSnapshotConfig(snapshotPath: string): string | undefined {
  const file = snapshotConfigPath(snapshotPath);
  if (!fs.existsSync(file)) return undefined;
  if (fs.statSync(file).size > configFileBytesMax)
    throw new BatonError(ErrorCode.STORE_CORRUPT, `${file} is larger than a configuration can be`, { file });
  return fs.readFileSync(file, "utf8");
}

function pad(value: number): string {
  return String(value).padStart(20, "0");
}

export function snapshotFileName(index: LogIndex, snapshotTerm: Term): string {
  return `snapshot-${pad(index)}-${pad(snapshotTerm)}.bsnap`;
}

export function takingFileName(index: LogIndex): string {
  return `taking-${index}.tmp`;
}

export function incomingFileName(index: LogIndex, snapshotTerm: Term, transfer: number): string {
  return `incoming-${index}-${snapshotTerm}-${transfer}.part`;
}

/** Complete snapshots in `directory`, oldest first (none when it does not exist). */
export function listSnapshots(directory: string): SnapshotRef[] {
  const found: SnapshotRef[] = [];
  if (!fs.existsSync(directory)) return found;
  for (const name of fs.readdirSync(directory)) {
    const match = completePattern.exec(name);
    if (match === null) continue;
    const file = path.join(directory, name);
    // Older snapshots are deleted in the background (`deleteOlderSnapshots`), on another thread: one may go
    // between the listing and this look at it, and is then no snapshot (simulator seed 7127).
    const stats = fs.statSync(file, { throwIfNoEntry: false });
    if (stats === undefined) continue;
    found.push({
      index: logIndex(Number(match[1])),
      term: term(Number(match[2])),
      bytes: stats.size,
      path: file,
    });
  }
  return found.sort((a, b) => a.index - b.index);
}

/** Renames `from` to `to` and makes the rename durable. */
export async function renameDurably(from: string, to: string): Promise<void> {
  await fs.promises.rename(from, to);
  const directory = await fs.promises.open(path.dirname(to), "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** Deletes every complete snapshot older than `keep`, except those in `inUse` (being sent). */
export async function deleteOlderSnapshots(
  directory: string,
  keep: SnapshotRef,
  inUse: ReadonlySet<string>,
): Promise<void> {
  for (const older of listSnapshots(directory)) {
    if (older.path !== keep.path && older.index <= keep.index && !inUse.has(older.path)) {
      await fs.promises.rm(older.path, { force: true });
      await fs.promises.rm(snapshotConfigPath(older.path), { force: true });
    }
  }
}

export type ReconciledStorage = {
  readonly recovered: RecoveredLog;
  readonly latest: SnapshotRef | null;
  /** Log operations started here (a reset to the installed snapshot); the node fails if they fail. */
  readonly pending: Promise<void>;
};

/**
 * Makes the database, the log and the snapshot directory agree before the node is built:
 * 1. leftovers of interrupted takes and transfers go; only the latest complete snapshot stays;
 * 2. a log compacted through C needs a snapshot at ≥ C, else the data directory is refused;
 * 3. a database behind the latest snapshot (its last commits lost to a power failure, or a leader's
 *    snapshot received but not yet swapped in when the node stopped) is restored from it: a
 *    snapshot holds committed state only, so this finishes what was interrupted;
 * 4. a database at exactly the latest snapshot's index whose log does not hold that entry (a crash
 *    between installing a leader's snapshot and resetting the log) gets its log reset to the
 *    snapshot point, as the install would have done;
 * 5. a database ahead of its log in any other way is refused.
 */
export async function reconcileStorage(parts: {
  readonly directory: string;
  readonly log: LogStore;
  readonly recovered: RecoveredLog;
  readonly store: Store;
  readonly logger: NodeLog;
}): Promise<ReconciledStorage> {
  const { directory, log, store, logger } = parts;
  let recovered = parts.recovered;
  fs.mkdirSync(directory, { recursive: true });
  for (const name of fs.readdirSync(directory))
    if (leftoverPattern.test(name)) fs.rmSync(path.join(directory, name), { force: true });
  const snapshots = listSnapshots(directory);
  const latest = snapshots.at(-1) ?? null;
  for (const older of snapshots.slice(0, -1)) fs.rmSync(older.path, { force: true });
  for (const name of fs.readdirSync(directory)) {
    const file = path.join(directory, name);
    if (configPattern.test(name) && (latest === null || file !== snapshotConfigPath(latest.path)))
      fs.rmSync(file, { force: true });
  }

  const compaction = recovered.compactionPoint;
  if (compaction.index > 0 && (latest === null || latest.index < compaction.index)) {
    throw new BatonError(
      ErrorCode.STORE_CORRUPT,
      `the log is compacted through ${compaction.index} but no snapshot in ${directory} covers it`,
      { compactionIndex: compaction.index, latestSnapshot: latest?.index ?? null },
    );
  }
  if (latest !== null && store.appliedIndex < latest.index) {
    logger("warn", "store.restoring-from-snapshot", {
      appliedIndex: store.appliedIndex,
      compactionIndex: compaction.index,
      snapshot: latest.index,
    });
    await store.restoreSnapshot(latest.path);
  }
  const applied = store.appliedIndex;
  let pending: Promise<void> = Promise.resolve();
  if (latest !== null && latest.index === applied && log.termAt(applied) !== latest.term) {
    logger("warn", "wal.reset-to-installed-snapshot", { index: applied, term: latest.term });
    const config = readSnapshotConfig(latest.path);
    const operations: Promise<void>[] = [log.resetToSnapshot(applied, latest.term, config)];
    let hardState = recovered.hardState;
    if (hardState.term < latest.term) {
      hardState = { term: latest.term, votedFor: null };
      operations.push(log.saveHardState(hardState));
    }
    pending = Promise.all(operations).then(() => {});
    const point = { index: applied, term: latest.term };
    recovered = {
      hardState,
      compactionPoint: config === undefined ? point : { ...point, config },
      entries: [],
    };
  } else if (applied > log.lastIndex) {
    throw new BatonError(
      ErrorCode.STORE_CORRUPT,
      `the database is at applied index ${applied}, beyond the log's last index ${log.lastIndex}, and no snapshot explains it`,
      { appliedIndex: applied, lastIndex: log.lastIndex },
    );
  }
  return { recovered, latest, pending };
}
