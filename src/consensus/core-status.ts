/**
 * What a core reports about itself: `RaftCore.summary()` (the few scalars the host reads on every
 * request) and `RaftCore.status()` (everything, for status endpoints and tests). Read-only views of
 * the state; nothing here changes it.
 */
import type { LogIndex, NodeId, Position, Term } from "../types/ids.ts";
import { type ClusterConfig, isVoter } from "./cluster-config.ts";
import type { CoreState } from "./core-state.ts";
import type { Role } from "./events.ts";
import { type FailoverStatus, failoverStatus } from "./failover.ts";
import type { ReplicationState } from "./progress.ts";

/** Another member as the leader sees it (only reported by a leader): what a host needs to decide a promotion. */
export type MemberStatus = {
  readonly id: NodeId;
  /** Its role in the leader's current configuration. */
  readonly role: "voter" | "learner";
  readonly state: ReplicationState;
  readonly matchIndex: LogIndex;
  readonly nextIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  readonly lastHeardTicksAgo: number;
};

export type CoreStatus = {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly votedFor: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  readonly applyThrough: LogIndex;
  readonly durableIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly snapshotIndex: LogIndex;
  readonly snapshotTerm: Term;
  readonly transferTarget: NodeId | null;
  readonly pendingProposals: number;
  readonly pendingReads: number;
  readonly nowTick: number;
  /** Every other member of the leader's configuration (empty on other roles). */
  readonly members: readonly MemberStatus[];
  /** The configuration this node uses: the latest in its log, committed or not (dissertation §4.1). */
  readonly clusterConfig: ClusterConfig;
  /** Index of `clusterConfig`'s entry (the snapshot index when it comes from the snapshot). */
  readonly clusterConfigIndex: LogIndex;
  /** The configuration as of `snapshotIndex`: persist it next to the compaction point. */
  readonly snapshotConfig: ClusterConfig;
  /** When this node concluded it has no leader (its tick, see `nowTick`); null while it has one. */
  readonly leaderLostAtTick: number | null;
  /** Failover: settings in force, the loss, voters heard, proposal, what a promotion would answer. */
  readonly failover: FailoverStatus;
  /** What this node may have promised before its log lost entries, until it has them back (`lost-entries.ts`). */
  readonly promised: Position | null;
  /** Whether the host holds back this node's candidacy. */
  readonly candidacyHeld: boolean;
};

/** See `RaftCore.summary`. */
export type CoreSummary = Pick<
  CoreStatus,
  | "role"
  | "term"
  | "leaderId"
  | "commitIndex"
  | "appliedIndex"
  | "applyThrough"
  | "lastIndex"
  | "transferTarget"
  | "clusterConfig"
  | "clusterConfigIndex"
  | "snapshotConfig"
  | "leaderLostAtTick"
  | "promised"
  | "candidacyHeld"
>;

export function summaryOf(s: CoreState): CoreSummary {
  return {
    role: s.role,
    term: s.term,
    leaderId: s.leaderId,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    applyThrough: s.applyThrough,
    lastIndex: s.log.lastIndex,
    transferTarget: s.transfer?.target ?? null,
    clusterConfig: s.log.config,
    clusterConfigIndex: s.log.configIndex,
    snapshotConfig: s.log.snapshotConfig,
    leaderLostAtTick: s.failover.leaderLostTick,
    promised: s.promised,
    candidacyHeld: s.candidacyHeld,
  };
}

/** See `RaftCore.status`. */
export function statusOf(s: CoreState): CoreStatus {
  const members = [...s.progress].map(([id, progress]) => ({
    id,
    role: isVoter(s.log.config, id) ? ("voter" as const) : ("learner" as const),
    state: progress.state,
    matchIndex: progress.matchIndex,
    nextIndex: progress.nextIndex,
    appliedIndex: progress.appliedIndex,
    lastHeardTicksAgo: s.nowTick - progress.lastHeardTick,
  }));
  return {
    id: s.config.id,
    role: s.role,
    term: s.term,
    votedFor: s.votedFor,
    leaderId: s.leaderId,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    applyThrough: s.applyThrough,
    durableIndex: s.durableIndex,
    lastIndex: s.log.lastIndex,
    lastTerm: s.log.lastTerm,
    snapshotIndex: s.log.snapshotIndex,
    snapshotTerm: s.log.snapshotTerm,
    transferTarget: s.transfer?.target ?? null,
    pendingProposals: s.pendingProposals.length,
    pendingReads: s.pendingReads.length + s.forwardedReads.length,
    nowTick: s.nowTick,
    members,
    clusterConfig: s.log.config,
    clusterConfigIndex: s.log.configIndex,
    snapshotConfig: s.log.snapshotConfig,
    leaderLostAtTick: s.failover.leaderLostTick,
    failover: failoverStatus(s),
    promised: s.promised,
    candidacyHeld: s.candidacyHeld,
  };
}
