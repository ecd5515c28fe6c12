/**
 * The mutable state of one consensus core, shared by the per-concern modules (election,
 * replication, transfer, read index, durability) that `RaftCore.step` delegates to.
 *
 * Invariants (checked by `checkInvariants` after every step):
 *  - appliedIndex ≤ applyThrough ≤ min(commitIndex, durableIndex) or a snapshot point;
 *  - snapshotIndex ≤ commitIndex ≤ lastIndex; durableIndex ≤ lastIndex;
 *  - a leader has a Progress for every peer and leaderId = self; no other role has any;
 *  - votedFor, when set, names a voter.
 */
import { assert } from "../lib/assert.ts";
import type { Prng } from "../lib/prng.ts";
import { type LogIndex, logIndex, type NodeId, type Term, term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import type { ResolvedConfig } from "./config.ts";
import type { PendingProposal } from "./durability.ts";
import type { ObservedState } from "./effects.ts";
import type { Role } from "./events.ts";
import type { ReadRequestId } from "./inputs.ts";
import type { Progress } from "./progress.ts";
import { RaftLog } from "./raft-log.ts";

/** The state the host recovered from durable storage, handed to the constructor. */
export type InitialState = {
  /** The last durable term and vote (Raft figure 2). Use `{term: 0, votedFor: null}` for a new node. */
  readonly hardState: HardState;
  /** Every durable log entry after the snapshot, in order. */
  readonly entries: readonly LogEntry[];
  /** Position of the latest snapshot (0, 0 when none). */
  readonly snapshotIndex: LogIndex;
  readonly snapshotTerm: Term;
  /** The state machine's applied index (at least the snapshot index). */
  readonly appliedIndex: LogIndex;
};

export type PendingRead = {
  readonly requestId: ReadRequestId;
  readonly index: LogIndex;
  readonly round: number;
};

export type TransferState = {
  readonly target: NodeId;
  readonly deadlineTick: number;
  /** The target was told to campaign; its deadline was then extended once. */
  readonly timeoutNowSent: boolean;
};

export type CoreState = {
  readonly config: ResolvedConfig;
  readonly prng: Prng;
  /** Every voter but this node. */
  readonly peers: readonly NodeId[];
  readonly log: RaftLog;
  term: Term;
  votedFor: NodeId | null;
  role: Role;
  leaderId: NodeId | null;
  commitIndex: LogIndex;
  /** What the host reported applied. */
  appliedIndex: LogIndex;
  /** What the host may apply: committed and durable here (monotonic). */
  applyThrough: LogIndex;
  /** The last entry the host reported durable here (lowered by truncation). */
  durableIndex: LogIndex;
  nowTick: number;
  /** Ticks since the election timer was reset (by a leader's message or a vote grant). */
  electionElapsedTicks: number;
  randomizedElectionTimeoutTicks: number;
  heartbeatElapsedTicks: number;
  /** Votes received in the current (pre-)election. */
  readonly votes: Map<NodeId, boolean>;
  /** Leader only: one per peer. */
  readonly progress: Map<NodeId, Progress>;
  transfer: TransferState | null;
  readRound: number;
  readonly pendingReads: PendingRead[];
  readonly pendingProposals: PendingProposal[];
  /** Bumped whenever a follower's match or applied index moves, so durability is re-evaluated. */
  replicationVersion: number;
};

export function createCoreState(config: ResolvedConfig, prng: Prng, initial: InitialState): CoreState {
  const log = new RaftLog(initial.snapshotIndex, initial.snapshotTerm, initial.entries);
  assert(initial.appliedIndex >= initial.snapshotIndex, "applied index below the snapshot");
  assert(initial.appliedIndex <= log.lastIndex, "applied index beyond the durable log");
  assert(log.lastTerm <= initial.hardState.term, "log holds a term newer than the hard state");
  assert(
    initial.hardState.votedFor === null || config.voters.includes(initial.hardState.votedFor),
    "vote for a non-voter",
  );
  const state: CoreState = {
    config,
    prng,
    peers: config.voters.filter((voter) => voter !== config.id),
    log,
    term: term(initial.hardState.term),
    votedFor: initial.hardState.votedFor,
    role: "follower",
    leaderId: null,
    // Everything applied was committed; entries beyond are learned again from the leader.
    commitIndex: initial.appliedIndex,
    appliedIndex: initial.appliedIndex,
    applyThrough: initial.appliedIndex,
    durableIndex: log.lastIndex,
    nowTick: 0,
    electionElapsedTicks: 0,
    randomizedElectionTimeoutTicks: config.electionTimeoutTicks,
    heartbeatElapsedTicks: 0,
    votes: new Map(),
    progress: new Map(),
    transfer: null,
    readRound: 0,
    pendingReads: [],
    pendingProposals: [],
    replicationVersion: 0,
  };
  resetElectionTimer(state);
  return state;
}

/** Raft §5.2: a fresh timeout drawn uniformly from [T, T × (1 + jitter)] at every reset. */
export function resetElectionTimer(s: CoreState): void {
  s.electionElapsedTicks = 0;
  const jitterTicksMax = s.config.electionTimeoutTicksMax - s.config.electionTimeoutTicks;
  s.randomizedElectionTimeoutTicks = s.config.electionTimeoutTicks + s.prng.intBetween(0, jitterTicksMax);
  assert(
    s.randomizedElectionTimeoutTicks <= s.config.electionTimeoutTicksMax,
    "election timeout beyond its bound",
  );
}

export function hardStateOf(s: CoreState): HardState {
  return { term: s.term, votedFor: s.votedFor };
}

export function observe(s: CoreState): ObservedState {
  return {
    hardState: hardStateOf(s),
    commitIndex: s.commitIndex,
    applyThrough: s.applyThrough,
    role: s.role,
    leaderId: s.leaderId,
  };
}

export function progressOf(s: CoreState, peer: NodeId): Progress {
  const progress = s.progress.get(peer);
  assert(progress !== undefined, `no progress for ${peer}`);
  return progress;
}

/** Thesis §9.6 / §6.2: a node that heard from a live leader recently refuses to help depose it. */
export function inLease(s: CoreState): boolean {
  if (!s.config.checkQuorum || s.leaderId === null) return false;
  if (s.role === "leader") return true;
  return s.electionElapsedTicks < s.config.electionTimeoutTicks;
}

/** Advances the applicable index to min(commit, durable); it never goes back. */
export function refreshApplyThrough(s: CoreState): void {
  const applicable = Math.min(s.commitIndex, s.durableIndex);
  if (applicable > s.applyThrough) s.applyThrough = logIndex(applicable);
}

/** Raises the commit index (never lowers it: Raft figure 2, commitIndex is monotonic). */
export function advanceCommitIndex(s: CoreState, index: LogIndex): boolean {
  if (index <= s.commitIndex) return false;
  assert(index <= s.log.lastIndex, `commit ${index} beyond the last index ${s.log.lastIndex}`);
  s.commitIndex = index;
  refreshApplyThrough(s);
  return true;
}

export function checkInvariants(s: CoreState): void {
  assert(s.appliedIndex <= s.applyThrough, "applied beyond what was allowed");
  assert(s.log.snapshotIndex <= s.commitIndex, "commit index below the snapshot");
  assert(s.commitIndex <= s.log.lastIndex, "commit index beyond the log");
  assert(s.durableIndex <= s.log.lastIndex, "durable index beyond the log");
  assert(s.log.lastTerm <= s.term, "log term beyond the current term");
  assert(
    s.progress.size === (s.role === "leader" ? s.peers.length : 0),
    "progress for every peer, and only on a leader",
  );
  assert(s.role !== "leader" || s.leaderId === s.config.id, "a leader knows it leads");
  assert(s.votedFor === null || s.config.voters.includes(s.votedFor), "vote for a non-voter");
}
