/**
 * Opening a node's log and database, repairing what is damaged from what is provably intact, before
 * the start-up rules of `snapshot-files.ts` make them agree (docs/architecture.md, "Storage faults").
 *
 * - The log opens with `heal` when the cluster has other members to fetch lost entries from: a
 *   record damaged after it was written in full is cut with everything after it, and the hard state
 *   records what the node may have promised (`src/wal/recovery.ts`); the consensus core then keeps
 *   the node out of elections until its log has it back. A node alone in its cluster has no one to
 *   fetch from: it stops with NO_INTACT_COPY instead.
 * - A database SQLite finds malformed (`PRAGMA quick_check`, at every start) is set aside as
 *   `<database>.malformed` (replacing an earlier one) and rebuilt from the latest snapshot, which is
 *   verified whole before use, and the log after it; or, with no snapshot, from the log alone.
 * - A database ahead of a log that lost entries (it applied entries the log no longer holds) is
 *   rewound the same way: the snapshot and the log's intact prefix are what is provably intact, and
 *   the leader sends the rest.
 * SQLite cannot see damage inside a row's content; that takes comparing with the other replicas
 * (`consistency-check.ts`).
 */
import fs from "node:fs";
import { BatonError, ErrorCode, isBatonError } from "../lib/errors.ts";
import { checkDatabaseStructure } from "../store/database-check.ts";
import { Store } from "../store/store.ts";
import { removeDatabase, restoreDatabase } from "../store/store-files.ts";
import type { StoreOptions } from "../store/types.ts";
import { Wal, type WalOptions } from "../wal/wal.ts";
import type { NodeLog } from "./runtime.ts";
import { listSnapshots } from "./snapshot-files.ts";

export type StoragePaths = {
  readonly logDirectory: string;
  readonly databasePath: string;
  readonly snapshotDirectory: string;
};

/** Opens the log, healing corruption when `hasPeers`; refuses with NO_INTACT_COPY otherwise. */
export function openLog(paths: StoragePaths, options: WalOptions, hasPeers: boolean, log: NodeLog) {
  let opened: ReturnType<typeof Wal.open>;
  try {
    opened = Wal.open(paths.logDirectory, { ...options, heal: hasPeers });
  } catch (error) {
    if (hasPeers || !isBatonError(error, ErrorCode.WAL_CORRUPT)) throw error;
    throw new BatonError(
      ErrorCode.NO_INTACT_COPY,
      `the log is damaged and this node has no peer to fetch the lost entries from: ${error.message}`,
      { ...error.details },
      { cause: error },
    );
  }
  const { recovered } = opened;
  if (recovered.tornTailBytes > 0) log("warn", "wal.torn-tail-cut", { bytes: recovered.tornTailBytes });
  if (recovered.damage !== null) log("error", "wal.corruption-healed", { ...recovered.damage });
  return opened;
}

/** Replaces the database by the latest snapshot, or removes it when there is none. */
async function rebuildDatabase(paths: StoragePaths): Promise<number | null> {
  const latest = listSnapshots(paths.snapshotDirectory).at(-1) ?? null;
  removeDatabase(paths.databasePath);
  if (latest === null) return null;
  await restoreDatabase(latest.path, paths.databasePath);
  return latest.index;
}

/** A malformed database is set aside and rebuilt before the store opens it. */
export async function repairDatabaseStructure(paths: StoragePaths, log: NodeLog): Promise<void> {
  const problem = checkDatabaseStructure(paths.databasePath);
  if (problem === null) return;
  log("error", "store.malformed", { path: paths.databasePath, problem });
  fs.renameSync(paths.databasePath, `${paths.databasePath}.malformed`);
  // The journal files hold pages of the malformed database: never apply them to the rebuilt one.
  const snapshot = await rebuildDatabase(paths);
  log("warn", "store.rebuilt", { fromSnapshot: snapshot });
}

/**
 * Opens the store; when the log lost entries the database had applied, rewinds it (see the module
 * comment) and opens it again.
 */
export async function openStoreBehindLog(
  paths: StoragePaths,
  options: Omit<StoreOptions, "path">,
  wal: { readonly lastIndex: number; readonly hardState: { readonly promised?: unknown } },
  log: NodeLog,
): Promise<Store> {
  const store = Store.open({ ...options, path: paths.databasePath });
  if (wal.hardState.promised === undefined || store.appliedIndex <= wal.lastIndex) return store;
  const appliedIndex = store.appliedIndex;
  store.close();
  const snapshot = await rebuildDatabase(paths);
  log("warn", "store.rewound-after-log-loss", {
    appliedIndex,
    logLastIndex: wal.lastIndex,
    fromSnapshot: snapshot,
  });
  return Store.open({ ...options, path: paths.databasePath });
}
