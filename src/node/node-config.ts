/**
 * What one node is told about itself and its cluster, with the node layer's own bounds.
 *
 * The tick period is explicit configuration (it used to be derived from the heartbeat by a
 * formula): the core counts time in ticks, and the heartbeat must be a whole number of them.
 */
import type { ClusterConfig } from "../consensus/cluster-config.ts";
import type { Durability } from "../consensus/config.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { NodeId } from "../types/ids.ts";

/**
 * Deliberate bugs in the node layer, for the simulator's self-test ("does it catch a broken
 * shell?"). Never set outside tests: each breaks one rule of the replica loop or the read path.
 */
export type UnsafeNodeBugs = {
  /** Report entries durable and send durability-promising messages before the log synced them. */
  readonly ackBeforeSync?: boolean;
  /** Apply every entry in the log, committed or not. */
  readonly applyBeforeCommit?: boolean;
  /** Serve `linearizable` reads from local state without a read index round. */
  readonly linearizableWithoutReadIndex?: boolean;
  /** Commit the leader's speculative SQLite transaction right after each batch runs, before Raft commits it. */
  readonly commitSpeculationEarly?: boolean;
  /** Acknowledge `local`/`one` writes without AUTOINCREMENT id reservations (`id-guard.ts`). */
  readonly noIdReservations?: boolean;
  /**
   * Answer the join of a node that is already a member (its disk was wiped) with the configuration
   * as it stands, without removing its old membership first (`member-changes.ts`).
   */
  readonly rejoinWithoutRemoval?: boolean;
  /** Run no consistency checks and trust every database as verified (`consistency-check.ts`). */
  readonly skipConsistencyChecks?: boolean;
  /** Keep history records on the node that made them: never push or propose them (`history-replication.ts`). */
  readonly noHistoryReplication?: boolean;
};

export type NodeConfig = {
  readonly id: NodeId;
  /**
   * The bootstrap configuration: voters, learners and members' addresses, used until the log (or
   * the configuration saved with its compaction point) names another. This node is one of them.
   */
  readonly voters: readonly NodeId[];
  readonly learners?: readonly NodeId[];
  readonly addresses?: ClusterConfig["addresses"];
  /** The cluster's id, which a node joining it adopts (`member-changes.ts`). */
  readonly clusterId?: string;
  /** Where this node's HTTP API listens, as peers and clients should dial it. */
  readonly httpAddress: string;
  /** HTTP addresses known from configuration; peers also announce theirs over the transport. */
  readonly peerHttp: ReadonlyMap<NodeId, string>;
  readonly tickMs: number;
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  readonly electionJitter?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly appendEntriesInflightMax?: number;
  /** Proposals go out at once only to followers with fewer AppendEntries in flight (consensus config). */
  readonly appendEntriesEagerInflightMax?: number;
  readonly appendEntriesBatchEntriesMax?: number;
  readonly appendEntriesBatchBytesMax?: number;
  readonly durability: Durability;
  /** Speculative batches are committed at least this often, so leader reads never lag longer. */
  readonly speculationAgeMsMax: number;
  /**
   * How long a leader's commit news alone waits for an AppendEntries with entries to carry it
   * (`deferCommitNews` of the core); 0 sends it at once. Default `commitNewsDelayMsDefault`.
   */
  readonly commitNewsDelayMs?: number;
  /** `/readyz` says ready only when this node's state was known fresh within this time. */
  readonly readyLagMsMax: number;
  /** Client reads running on this node at once; more are refused OVERLOADED (`admission.ts`). */
  readonly readsInFlightMax: number;
  /** Client writes running or waiting on this node at once; more are refused OVERLOADED. */
  readonly writesInFlightMax: number;
  /** Writes waiting at the write gate; more are refused OVERLOADED. */
  readonly gateWaitersMax: number;
  /** Requests waiting for the applied index to reach a target; more are refused OVERLOADED. */
  readonly indexWaitersMax: number;
  /**
   * New client work is shed (OVERLOADED) while the event loop runs later than this (`admission.ts`);
   * when left out, `loopDelayShedFraction` of the election timeout.
   */
  readonly loopDelayShedMs?: number;
  readonly writeTimeoutMsDefault: number;
  readonly readTimeoutMsDefault: number;
  /** Core events kept in memory for status pages. */
  readonly auditEventsMax: number;
  /** Take a snapshot once this many entries were applied since the latest one (`snapshot-keeper.ts`). */
  readonly snapshotEntries: number;
  /** ...or once this many log bytes were appended since the latest one. */
  readonly snapshotLogBytes: number;
  /** Entries kept in the log behind a snapshot, so a follower slightly behind needs no snapshot. */
  readonly compactionTrailEntries: number;
  /**
   * Bytes of applied entries' data the core's log keeps in memory; the data of older ones is read
   * back from the WAL when a follower needs them (`RaftLog`, "Memory"). 0 keeps none.
   */
  readonly logMemoryBytes: number;
  /** Bytes per snapshot chunk sent to a follower (`snapshot-transfer.ts`). */
  readonly snapshotChunkBytes: number;
  /** Chunks a leader sends ahead of the follower's acknowledgement (flow control). */
  readonly snapshotWindowChunks: number;
  /** Without progress for this long, a leader asks the follower where to resume. */
  readonly snapshotAckTimeoutMs: number;
  /** Consecutive timeouts or refusals after which a transfer is given up (the core asks again later). */
  readonly snapshotAttemptsMax: number;
  /** AUTOINCREMENT ids reserved ahead per table and reservation (`id-guard.ts`). */
  readonly idReservationBlock: number;
  /**
   * How often a leader starts a consistency check (`consistency-check.ts`); 0 turns the periodic
   * checks off (a leader still checks at the start of its term and when a voter reconnects).
   */
  readonly consistencyCheckIntervalMs: number;
  /** Table rows a consistency check hashes per tick: bounds how long one step holds the event loop. */
  readonly consistencyCheckRowsPerStep: number;
  /** A consistency check not decided within this is forgotten. */
  readonly consistencyCheckTimeoutMs: number;
  /** A node that lost log entries or holds a damaged database and is not healed from its peers within this stops (NO_INTACT_COPY). */
  readonly healWaitMsMax: number;
  readonly unsafeNodeBugs?: UnsafeNodeBugs;
  readonly unsafeCoreBugs?: {
    readonly commitOldTermByCounting?: boolean;
    readonly voteWithoutLogCheck?: boolean;
    readonly ignoreLostEntries?: boolean;
  };
};

/** Followers hear of a commit at most this late when no write follows it (`commitNewsDelayMs`). */
export const commitNewsDelayMsDefault = 2;

export function commitNewsDelayMsOf(config: NodeConfig): number {
  return config.commitNewsDelayMs ?? commitNewsDelayMsDefault;
}

export const nodeDefaults = {
  tickMs: 10,
  speculationAgeMsMax: 20,
  readyLagMsMax: 5_000,
  readsInFlightMax: 512,
  writesInFlightMax: 2_048,
  gateWaitersMax: 10_000,
  indexWaitersMax: 10_000,
  writeTimeoutMsDefault: 10_000,
  readTimeoutMsDefault: 5_000,
  auditEventsMax: 1_000,
  snapshotEntries: 10_000,
  snapshotLogBytes: 64 << 20,
  compactionTrailEntries: 1_000,
  logMemoryBytes: 8 << 20,
  snapshotChunkBytes: 128 << 10,
  snapshotWindowChunks: 4,
  snapshotAckTimeoutMs: 2_000,
  snapshotAttemptsMax: 5,
  idReservationBlock: 1_024,
  consistencyCheckIntervalMs: 300_000,
  consistencyCheckRowsPerStep: 1_000,
  consistencyCheckTimeoutMs: 60_000,
  healWaitMsMax: 300_000,
} as const;

/**
 * The default shedding threshold as a share of the election timeout (heartbeat × missed
 * heartbeats): a loop that late delays every heartbeat by a quarter of the time followers wait
 * before they elect, so shedding starts well before a late heartbeat could cost the leader.
 */
export const loopDelayShedFraction = 0.25;
/** The default threshold is never below this: ordinary scheduling noise on a busy machine. */
export const loopDelayShedMsMin = 50;

export function loopDelayShedMsOf(config: NodeConfig): number {
  const electionTimeoutMs = config.heartbeatMs * config.missedHeartbeats;
  return (
    config.loopDelayShedMs ??
    Math.max(loopDelayShedMsMin, Math.round(electionTimeoutMs * loopDelayShedFraction))
  );
}

/** Checks the relations the core and the node rely on; a bad value is BAD_CONFIG, not a crash. */
export function checkNodeConfig(config: NodeConfig): NodeConfig {
  const positive = [
    "tickMs",
    "heartbeatMs",
    "missedHeartbeats",
    "speculationAgeMsMax",
    "snapshotEntries",
    "snapshotLogBytes",
    "snapshotChunkBytes",
    "snapshotWindowChunks",
    "snapshotAckTimeoutMs",
    "snapshotAttemptsMax",
    "idReservationBlock",
    "consistencyCheckRowsPerStep",
    "consistencyCheckTimeoutMs",
    "healWaitMsMax",
  ] as const;
  for (const name of positive) {
    if (!Number.isSafeInteger(config[name]) || config[name] <= 0)
      throw new BatonError(ErrorCode.BAD_CONFIG, `${name} must be a positive integer, not ${config[name]}`);
  }
  if (config.heartbeatMs % config.tickMs !== 0)
    throw new BatonError(
      ErrorCode.BAD_CONFIG,
      `the heartbeat (${config.heartbeatMs} ms) must be a whole number of ticks (${config.tickMs} ms)`,
    );
  if (!Number.isSafeInteger(config.consistencyCheckIntervalMs) || config.consistencyCheckIntervalMs < 0)
    throw new BatonError(ErrorCode.BAD_CONFIG, "consistencyCheckIntervalMs must be a non-negative integer");
  if (!Number.isSafeInteger(config.compactionTrailEntries) || config.compactionTrailEntries < 0)
    throw new BatonError(ErrorCode.BAD_CONFIG, "compactionTrailEntries must be a non-negative integer");
  if (!Number.isSafeInteger(config.logMemoryBytes) || config.logMemoryBytes < 0)
    throw new BatonError(ErrorCode.BAD_CONFIG, "logMemoryBytes must be a non-negative integer");
  if (!config.voters.includes(config.id) && !(config.learners ?? []).includes(config.id))
    throw new BatonError(ErrorCode.BAD_CONFIG, `${config.id} is not one of the voters or learners`);
  return config;
}
