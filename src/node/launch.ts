/**
 * Opens one node on the real machine: the system runtime (wall clock, Node's timers, a random
 * seed, the WAL on disk, the SQLite store, TCP to the peers, the review file) and the `BatonNode`
 * on it. Serving it over HTTP is the outer layer's job (`src/cli/serve-node.ts`).
 *
 * Closing: `close()` stops the node (ticking, transport, pending log writes), then closes the log
 * and the store; the caller hands leadership over and drains HTTP before it.
 */
import path from "node:path";
import { requestLimits } from "../api/request-limits.ts";
import type { Durability } from "../consensus/config.ts";
import type { ClusterConfig, MemberAddress } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { ProcessEntryApplier } from "../store/entry-applier.ts";
import { OrphanQuarantine } from "../store/orphan-quarantine.ts";
import { QueryProcessPool } from "../store/query-process-pool.ts";
import type { Store } from "../store/store.ts";
import { WriteSandbox } from "../store/write-sandbox.ts";
import { TcpTransport } from "../transport/tcp-transport.ts";
import { parseHostPort } from "../transport/transport.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import { walFaultOptions } from "../wal/fault-injection.ts";
import { recordBytesMax } from "../wal/record-codec.ts";
import type { Wal } from "../wal/wal.ts";
import { BatonNode } from "./baton-node.ts";
import { FileHistory } from "./history-file.ts";
import { type NodeConfig, nodeDefaults } from "./node-config.ts";
import { quarantineSink } from "./orphans.ts";
import {
  type NodeLog,
  systemClock,
  systemIo,
  systemLoopDelay,
  systemRandomSeed,
  systemTimers,
} from "./runtime.ts";
import { reconcileStorage } from "./snapshot-files.ts";
import { walSegmentBytes } from "./snapshot-keeper.ts";
import { openLog, openStoreBehindLog, repairDatabaseStructure } from "./storage-repair.ts";

type HostPort = { readonly host: string; readonly port: number };

/** What launching a node needs; `baton start`'s resolved configuration has this shape. */
export type LaunchConfig = {
  readonly id: string;
  readonly dataDirectory: string;
  readonly http: HostPort;
  readonly raft: HostPort;
  readonly cluster: readonly {
    readonly id: string;
    readonly raft: HostPort;
    readonly http: HostPort | null;
  }[];
  readonly clusterId: string;
  readonly tickMs?: number;
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  readonly durability: Durability;
  readonly bodyBytesMax: number;
  /**
   * Query processes (default 2) and the longest a query may run (default 5 s): `query-process-pool.ts`.
   * The same bound caps a write batch in the write sandbox (`write-sandbox.ts`).
   */
  readonly queryProcessesMax?: number;
  readonly queryMsMax?: number;
  /** Admission bounds (`--reads-in-flight-max`, `--writes-in-flight-max`): `admission.ts`. */
  readonly readsInFlightMax?: number;
  readonly writesInFlightMax?: number;
  /** Snapshot policy (`--snapshot-entries`, `--snapshot-log-bytes`, `--compaction-trail`). */
  readonly snapshotEntries?: number;
  readonly snapshotLogBytes?: number;
  readonly compactionTrailEntries?: number;
  /** Bytes of applied entries the log keeps in memory (`--log-memory-bytes`; `RaftLog`, "Memory"). */
  readonly logMemoryBytes?: number;
  /**
   * The configuration a joined node starts from (`src/cli/join.ts`, `src/node/join-record.ts`): voters, learners and their
   * addresses, in place of `cluster`. The replicated configuration takes over as soon as it arrives.
   */
  readonly bootstrap?: ClusterConfig;
  /** Storage faults (`--consistency-check-ms`, `--heal-wait-ms`; `consistency-check.ts`, `storage-heal.ts`). */
  readonly consistencyCheckIntervalMs?: number;
  readonly healWaitMsMax?: number;
};

export type OpenNode = {
  readonly node: BatonNode;
  /** The log's last index when the node opened (for the start-up log line). */
  readonly lastIndexAtOpen: number;
  /** Stops the node and closes the log and the store. */
  close(): Promise<void>;
};

export function hostPort(address: HostPort): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/**
 * The largest entry a write batch may produce; a larger batch is refused PAYLOAD_TOO_LARGE before
 * anything is proposed. Applying an entry is the cost that grows fastest with its size (a 34 MB
 * changeset of 300,000 rows: about a second of SQLite), so an entry of `EntryApplier.payloadBytesMin`
 * bytes or more is applied by the entry applier in a process of its own, on every node, the leader
 * included (`entry-applier.ts`). What stays on the event loop is copying and checksumming it: the
 * sandbox's reply, the log record, a message per follower.
 */
export const entryPayloadBytesMax = 63 << 20;
// The log's records are bounded too (64 MiB); an entry's payload must leave room for its record's fields.
assert(
  entryPayloadBytesMax + (1 << 20) <= recordBytesMax,
  "an entry of the largest payload fits a log record",
);

/** Peer frames hold an entry of `entryPayloadBytesMax` and the rest of its AppendEntries. */
const peerFrameBytesMax = entryPayloadBytesMax + (4 << 20);

/** The store's bounds, the same for the node's store and its write sandbox: a request's bounds. */
const storeLimits = {
  statementsPerBatchMax: requestLimits.statementsPerBatchMax,
  sqlBytesMax: requestLimits.sqlBytesMax,
  payloadBytesMax: entryPayloadBytesMax,
} as const;

/** Client queries run in killable processes, so none can hold this node's event loop. */
async function startQueryPool(
  storage: { store: Store; wal: Wal },
  config: LaunchConfig,
  log: NodeLog,
): Promise<QueryProcessPool> {
  const { store, wal } = storage;
  const options = { queryProcessesMax: config.queryProcessesMax, queryMsMax: config.queryMsMax };
  try {
    return await QueryProcessPool.start({ path: store.path, limits: store.queryLimits, log, ...options });
  } catch (error) {
    store.close();
    await wal.close().catch(() => {});
    throw error;
  }
}

/**
 * Write batches that are not provably short run in a killable process too. The node starts that
 * process only while it leads (followers never need it), in the background: a batch that comes
 * before it is ready waits for it within its own bound.
 */
function createWriteSandbox(store: Store, config: LaunchConfig, log: NodeLog): WriteSandbox {
  const executeMsMax = config.queryMsMax;
  return WriteSandbox.create({
    path: store.path,
    limits: storeLimits,
    log,
    ...(executeMsMax === undefined ? {} : { executeMsMax }),
  });
}

/**
 * Opens the log and the store, repairing damage from what is intact (`storage-repair.ts`), and makes
 * them agree with the snapshots (`snapshot-files.ts`).
 */
async function openStorage(config: LaunchConfig, log: NodeLog) {
  const { dataDirectory } = config;
  // A joined node takes its members from the configuration it joined with (`join-record.ts`).
  const members =
    config.bootstrap === undefined
      ? config.cluster.map((member) => member.id)
      : [...config.bootstrap.voters, ...config.bootstrap.learners];
  const hasPeers = members.some((member) => member !== config.id);
  const snapshotDirectory = path.join(dataDirectory, "snapshots");
  const paths = {
    logDirectory: path.join(dataDirectory, "log"),
    databasePath: path.join(dataDirectory, "baton.db"),
    snapshotDirectory,
  };
  const snapshotLogBytes = config.snapshotLogBytes ?? nodeDefaults.snapshotLogBytes;
  const walOptions = { ...walFaultOptions(process.env), segmentBytesMax: walSegmentBytes(snapshotLogBytes) };
  const { wal, recovered } = openLog(paths, walOptions, hasPeers, log);
  let store: Store;
  try {
    await repairDatabaseStructure(paths, log);
    store = await openStoreBehindLog(paths, storeLimits, wal, log);
  } catch (error) {
    await wal.close().catch(() => {});
    throw error;
  }
  try {
    const reconciled = await reconcileStorage({
      directory: snapshotDirectory,
      log: wal,
      recovered,
      store,
      logger: log,
    });
    await reconciled.pending;
    return { wal, store, reconciled, snapshotDirectory };
  } catch (error) {
    store.close();
    await wal.close().catch(() => {});
    throw error;
  }
}

/**
 * The bootstrap configuration (from `cluster`, or a joined node's `bootstrap`), with the peers'
 * raft and HTTP addresses. A member's address enters the configuration only when both are known
 * and dialable (a port 0 is not).
 */
function bootstrapMembers(config: LaunchConfig): {
  config: { voters: NodeId[]; learners: NodeId[]; addresses?: ClusterConfig["addresses"] };
  peerHttp: Map<NodeId, string>;
  peerRaft: Map<NodeId, { host: string; port: number } | null>;
} {
  const peerHttp = new Map<NodeId, string>();
  const peerRaft = new Map<NodeId, { host: string; port: number } | null>();
  const addresses: Record<string, MemberAddress> = {};
  if (config.bootstrap !== undefined) {
    const { voters, learners } = config.bootstrap;
    for (const id of [...voters, ...learners]) {
      const address = config.bootstrap.addresses?.[id];
      if (address !== undefined) addresses[id] = address;
      if (id === config.id) continue;
      peerRaft.set(id, address === undefined ? null : parseHostPort(address.raft));
      if (address !== undefined) peerHttp.set(id, address.http);
    }
    return { config: { voters: [...voters], learners: [...learners], addresses }, peerHttp, peerRaft };
  }
  for (const member of config.cluster) {
    const id = nodeId(member.id);
    const http = member.id === config.id ? config.http : member.http;
    if (http !== null && http.port > 0 && member.raft.port > 0)
      addresses[id] = { raft: hostPort(member.raft), http: hostPort(http) };
    if (member.id === config.id) continue;
    peerRaft.set(id, member.raft);
    if (member.http !== null) peerHttp.set(id, hostPort(member.http));
  }
  const voters = config.cluster.map((m) => nodeId(m.id));
  return { config: { voters, learners: [], addresses }, peerHttp, peerRaft };
}

/** The node's configuration: the launch options, and the defaults for what they leave out. */
function nodeConfigOf(config: LaunchConfig, members: ReturnType<typeof bootstrapMembers>): NodeConfig {
  const self = nodeId(config.id);
  return {
    ...nodeDefaults,
    id: self,
    ...members.config,
    clusterId: config.clusterId,
    httpAddress: hostPort(config.http),
    peerHttp: members.peerHttp,
    tickMs: config.tickMs ?? nodeDefaults.tickMs,
    readsInFlightMax: config.readsInFlightMax ?? nodeDefaults.readsInFlightMax,
    writesInFlightMax: config.writesInFlightMax ?? nodeDefaults.writesInFlightMax,
    snapshotEntries: config.snapshotEntries ?? nodeDefaults.snapshotEntries,
    snapshotLogBytes: config.snapshotLogBytes ?? nodeDefaults.snapshotLogBytes,
    compactionTrailEntries: config.compactionTrailEntries ?? nodeDefaults.compactionTrailEntries,
    logMemoryBytes: config.logMemoryBytes ?? nodeDefaults.logMemoryBytes,
    consistencyCheckIntervalMs: config.consistencyCheckIntervalMs ?? nodeDefaults.consistencyCheckIntervalMs,
    healWaitMsMax: config.healWaitMsMax ?? nodeDefaults.healWaitMsMax,
    heartbeatMs: config.heartbeatMs,
    missedHeartbeats: config.missedHeartbeats,
    durability: config.durability,
  };
}

export async function openNode(
  config: LaunchConfig,
  log: NodeLog,
  onFatal: (error: Error) => void,
): Promise<OpenNode> {
  const { wal, store, reconciled, snapshotDirectory } = await openStorage(config, log);
  const queries = await startQueryPool({ store, wal }, config, log);
  const writeSandbox = createWriteSandbox(store, config, log);
  const entryApplier = new ProcessEntryApplier({ path: store.path, limits: storeLimits, log });
  const loopDelay = systemLoopDelay();
  const orphans = OrphanQuarantine.open(path.join(config.dataDirectory, "review", "orphans.db"));
  const self = nodeId(config.id);
  const members = bootstrapMembers(config);
  // A failed sync of the history file is a storage failure: it stops the node, as a failed log sync does.
  const history = new FileHistory(config.dataDirectory, (error) =>
    node.loop.fail(new BatonError(ErrorCode.HISTORY_IO, `history file: ${error.message}`)),
  );
  const node = new BatonNode(nodeConfigOf(config, members), {
    clock: systemClock,
    timers: systemTimers,
    randomSeed: systemRandomSeed(),
    log: wal,
    recovered: reconciled.recovered,
    store,
    queryExecutor: queries,
    writeSandbox,
    entryApplier,
    loopDelay,
    snapshotDirectory,
    io: systemIo,
    review: quarantineSink(orphans),
    history,
    orphans,
    logger: log,
    onFatal,
    transport: (handlers) =>
      new TcpTransport({
        clusterId: config.clusterId,
        selfId: self,
        listen: config.raft,
        peers: members.peerRaft,
        frameBytesMax: peerFrameBytesMax,
        sendQueueBytesMax: peerFrameBytesMax + (16 << 20),
        ...handlers,
        onLog: (level, event, fields) => log(level, event, { ...fields }),
      }),
  });
  // WAL checkpoints of the store run on a thread (`checkpointer.ts`); a failed one stops the node.
  store.startBackgroundCheckpoints((error) => node.loop.fail(error));
  await node.start();
  const close = async (): Promise<void> => {
    await node.stop();
    await history.settled();
    loopDelay.stop();
    await queries.close();
    await writeSandbox.close();
    await entryApplier.close();
    await wal.close().catch((error: unknown) => log("error", "wal.close-failed", { error: String(error) }));
    store.close();
    orphans.close();
  };
  return { node, lastIndexAtOpen: wal.lastIndex, close };
}
