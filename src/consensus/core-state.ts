/**
 * The mutable state of one consensus core, shared by the per-concern modules (election,
 * replication, transfer, read index, durability) that `RaftCore.step` delegates to.
 *
 * Invariants (checked by `checkInvariants` after every step):
 *  - appliedIndex ≤ applyThrough ≤ min(commitIndex, durableIndex) or a snapshot point;
 *  - snapshotIndex ≤ commitIndex ≤ lastIndex; durableIndex ≤ lastIndex;
 *  - a leader has a Progress for every other member (voter or learner) of its configuration and
 *    leaderId = self; no other role has any;
 *  - only a voter of its own configuration is a (pre-)candidate;
 *  - a leader that is a witness or never-promote voter always has a leadership transfer under way.
 *
 * The cluster configuration is the log's (`s.log.config`, see `raft-log.ts`): the latest
 * configuration entry, committed or not, else the snapshot's.
 */
import { assert } from "../lib/assert.ts";
import type { Prng } from "../lib/prng.ts";
import { type LogIndex, logIndex, type NodeId, type Position, type Term, term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import { type ClusterConfig, isVoter, mayLead, membersExcept } from "./cluster-config.ts";
import type { ResolvedConfig } from "./config.ts";
import type { PendingProposal } from "./durability.ts";
import type { ObservedState } from "./effects.ts";
import type { Role } from "./events.ts";
import type { ReadRequestId } from "./inputs.ts";
import { Progress } from "./progress.ts";
import { type LogMemory, RaftLog } from "./raft-log.ts";

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
  /**
   * The cluster configuration as of the snapshot index, as the host persisted it next to its
   * compaction point (`RaftCore.summary().snapshotConfig`). Default: the bootstrap configuration
   * of `RaftConfig.voters` and `learners`. The configuration entries in `entries` apply on top.
   */
  readonly snapshotConfig?: ClusterConfig;
  /**
   * Bounds the entry data held in memory (`RaftLog`, "Memory"): the data of applied entries beyond
   * `dataBytesMax` is released and read back from the host's durable log through `reader`.
   * Default: every entry after the snapshot stays in memory.
   */
  readonly logMemory?: LogMemory;
};

/** A read waiting on the leader for its heartbeat round: the leader's own, or one a member asked for. */
export type PendingRead = {
  readonly origin:
    | { readonly from: null; readonly requestId: ReadRequestId }
    | { readonly from: NodeId; readonly readId: number };
  readonly index: LogIndex;
  readonly round: number;
};

/** A read this follower asked its leader to confirm (thesis §6.4.1). */
export type ForwardedRead = {
  readonly requestId: ReadRequestId;
  readonly readId: number;
  readonly leaderId: NodeId;
  /** Unanswered by then, the read is rejected NOT_LEADER: the host may still ask the leader itself. */
  readonly deadlineTick: number;
};

/** Why a leader transfers its office: an operator asked, a caught-up voter has a higher priority, or it may not lead. */
export type TransferReason = "operator" | "priority" | "not-eligible";

export type TransferState = {
  readonly target: NodeId;
  readonly reason: TransferReason;
  readonly deadlineTick: number;
  /** The target was told to campaign; its deadline was then extended once. */
  readonly timeoutNowSent: boolean;
};

/** A voter's last log position, as its latest vote or pre-vote request (or failover probe) told us. */
export type PeerPosition = {
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  readonly heardTick: number;
  /** The peer said it may not campaign (a probe with `held`). */
  readonly held: boolean;
};

/** What a node knows about failover (see `failover.ts`). */
export type FailoverState = {
  /** When this node concluded it has no leader (its election timer fired); null while it has one. */
  leaderLostTick: number | null;
  /** The leader this node last heard from (null if none since it started). */
  lastLeaderId: NodeId | null;
  /** When it last heard from a leader (null if never since it started). */
  leaderHeardTick: number | null;
  /** The loss was reported (`leader-lost`). */
  lossReported: boolean;
  /** Positions of the voters heard from since the leader was lost. */
  readonly peers: Map<NodeId, PeerPosition>;
  /** The candidate of the last `failover-pending` event of this loss (mode approve): only changes are reported. */
  publishedCandidate: NodeId | null;
  /** The approve deadline of this loss has passed and was reported. */
  deadlineReported: boolean;
  /** This loss's campaign was already deferred once for the zone preference. */
  zoneDeferred: boolean;
  /** Leader only: no priority transfer before this tick (set when one fails). */
  priorityTransferNotBeforeTick: number;
};

export type CoreState = {
  readonly config: ResolvedConfig;
  readonly prng: Prng;
  /** The log, which also knows the cluster configuration (`log.config`). */
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
  /** Leader only: read-round acknowledgements received in this term (orders `Progress.readRoundAcknowledgedAt`). */
  readAcknowledgements: number;
  readonly pendingReads: PendingRead[];
  /** Follower only: reads asked of the leader and not answered yet (at most `readsPendingMax`). */
  readonly forwardedReads: ForwardedRead[];
  /** The last `readId` this node used (0 before the first; see `read-index.ts`). */
  forwardedReadSeq: number;
  readonly pendingProposals: PendingProposal[];
  /** Leader only: how many of `pendingProposals` wait for `all` (for which followers report applies). */
  allProposalsPending: number;
  /**
   * Follower only: the leader's latest AppendEntries asked for applied reports (`reportApplied`),
   * because an `all` write waits on them; otherwise applies go unreported until the next answer.
   */
  appliedReportsWanted: boolean;
  /** Bumped whenever a follower's match or applied index moves, so durability is re-evaluated. */
  replicationVersion: number;
  readonly failover: FailoverState;
  /** What this node may have promised before its log lost entries (`lost-entries.ts`); part of the hard state. */
  promised: Position | null;
  /** The host holds back this node's candidacy (`lost-entries.ts`); not persisted. */
  candidacyHeld: boolean;
  /** The highest data floor a leader's heartbeat named (sent to witnesses only; 0 after a start). */
  dataFloorHeard: LogIndex;
};

export function createCoreState(config: ResolvedConfig, prng: Prng, initial: InitialState): CoreState {
  const snapshotConfig = initial.snapshotConfig ?? {
    voters: config.voters,
    learners: config.learners,
    ...(config.addresses === undefined ? {} : { addresses: config.addresses }),
  };
  const log = new RaftLog(
    initial.snapshotIndex,
    initial.snapshotTerm,
    initial.entries,
    snapshotConfig,
    initial.logMemory ?? null,
  );
  assert(initial.appliedIndex >= initial.snapshotIndex, "applied index below the snapshot");
  assert(initial.appliedIndex <= log.lastIndex, "applied index beyond the durable log");
  assert(log.lastTerm <= initial.hardState.term, "log holds a term newer than the hard state");
  const state: CoreState = {
    config,
    prng,
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
    readAcknowledgements: 0,
    pendingReads: [],
    forwardedReads: [],
    forwardedReadSeq: 0,
    pendingProposals: [],
    allProposalsPending: 0,
    appliedReportsWanted: false,
    replicationVersion: 0,
    failover: {
      leaderLostTick: null,
      lastLeaderId: null,
      leaderHeardTick: null,
      lossReported: false,
      peers: new Map(),
      publishedCandidate: null,
      deadlineReported: false,
      zoneDeferred: false,
      priorityTransferNotBeforeTick: 0,
    },
    promised: initial.hardState.promised ?? null,
    candidacyHeld: false,
    dataFloorHeard: logIndex(0),
  };
  log.releaseApplied(state.appliedIndex);
  log.ownHeldData();
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
  const hardState = { term: s.term, votedFor: s.votedFor };
  return s.promised === null ? hardState : { ...hardState, promised: s.promised };
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

/** Whether this node is a voter of its own configuration: only then may it campaign or count itself. */
export function selfIsVoter(s: CoreState): boolean {
  return isVoter(s.log.config, s.config.id);
}

/** The voters other than this node: whom a candidate asks for votes. */
export function otherVoters(s: CoreState): NodeId[] {
  return s.log.config.voters.filter((id) => id !== s.config.id);
}

/** Every member other than this node, voters and learners: whom a leaderless voter probes. */
export function otherMembers(s: CoreState): NodeId[] {
  const { voters, learners } = s.log.config;
  return [...voters, ...learners].filter((id) => id !== s.config.id);
}

/**
 * Makes a leader's progress map match its configuration: a Progress (probing from the end of the
 * log) for each new member, none for a removed one. Called when a leader takes office and whenever
 * it appends a configuration entry (a leader's configuration changes only that way).
 */
export function syncProgress(s: CoreState): void {
  assert(s.role === "leader", "only a leader tracks progress");
  const members = membersExcept(s.log.config, s.config.id);
  for (const peer of [...s.progress.keys()]) if (!members.includes(peer)) s.progress.delete(peer);
  const nextIndex = logIndex(s.log.lastIndex + 1);
  for (const peer of members) {
    if (!s.progress.has(peer))
      s.progress.set(peer, new Progress(nextIndex, s.nowTick, s.config.appendEntriesInflightMax));
  }
  assert(s.progress.size === members.length, "progress for every other member");
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
  const members = membersExcept(s.log.config, s.config.id);
  assert(
    s.role === "leader"
      ? s.progress.size === members.length && members.every((id) => s.progress.has(id))
      : s.progress.size === 0,
    "progress for every other member, and only on a leader",
  );
  assert(s.role !== "leader" || s.leaderId === s.config.id, "a leader knows it leads");
  assert((s.role !== "candidate" && s.role !== "preCandidate") || selfIsVoter(s), "only a voter campaigns");
  assert(
    s.role !== "leader" ||
      !selfIsVoter(s) ||
      mayLead(s.log.config, s.config.id) ||
      s.transfer !== null ||
      s.config.unsafeTestBugs.ineligibleLeaderKeepsOffice === true,
    "a leader that may not lead is always handing its office over",
  );
}
