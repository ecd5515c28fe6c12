/**
 * The messages replicas exchange, as a discriminated union on `type`.
 *
 * Every message is a plain serializable object with `type`, `from`, `to` and `term` (the sender's
 * current term, except for `preVote` which carries the term the sender *would* campaign in, and a
 * granted `preVoteResponse` which echoes it). The node process encodes these into binary frames;
 * the core never sees bytes. Terms and indexes are branded integers; `0` means "none" for
 * `conflictTerm` and for a log position before the first entry.
 */
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import type { LogEntry } from "../types/log-entry.ts";
import type { ClusterConfig } from "./cluster-config.ts";

type Envelope = {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
};

/** Pre-vote request (thesis §9.6): "would you vote for me in term `term`?" Changes no state at the receiver. */
export type PreVoteMessage = Envelope & {
  readonly type: "preVote";
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  /**
   * Set only on a failover probe from a voter that may not campaign (its candidacy held back, or
   * lost entries outstanding): the receivers rank it as unable to lead (`failover-view.ts`).
   */
  readonly held?: true;
};

export type PreVoteResponseMessage = Envelope & {
  readonly type: "preVoteResponse";
  readonly granted: boolean;
};

/** RequestVote (Raft §5.2) carrying the candidate's last log position for the §5.4.1 check. */
export type RequestVoteMessage = Envelope & {
  readonly type: "requestVote";
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  /** Set during leadership transfer (thesis §3.10): voters grant despite having heard from a live leader. */
  readonly transfer: boolean;
};

export type RequestVoteResponseMessage = Envelope & {
  readonly type: "requestVoteResponse";
  readonly granted: boolean;
};

/** AppendEntries (Raft §5.3). An empty `entries` list still checks the log and carries the commit index. */
export type AppendEntriesMessage = Envelope & {
  readonly type: "appendEntries";
  readonly prevLogIndex: LogIndex;
  readonly prevLogTerm: Term;
  readonly entries: readonly LogEntry[];
  readonly leaderCommit: LogIndex;
  /**
   * Set only on an entry-less message that brings a follower in the replicate state a new commit
   * index: the follower answers it only with a rejection. Its success answer would tell the leader
   * nothing new (the entries' own answers did), and the follower's applied report follows the apply.
   */
  readonly quiet?: true;
  /**
   * Set while the leader has an `all` write waiting: the follower reports each apply at once (an
   * unasked `heartbeatResponse` with `report`). Otherwise its applied index travels only in its
   * answers to appends and heartbeats, which saves a message per follower per write.
   */
  readonly reportApplied?: true;
};

/**
 * Reply to `appendEntries` (and to `installSnapshot`). On success `matchIndex` is the last index the
 * follower's durable log is known to share with the leader. On rejection `rejectedIndex` echoes the
 * request's `prevLogIndex` and the conflict hint lets the leader skip a whole term at once:
 * `conflictTerm` is the follower's term at `rejectedIndex` (0 when its log is shorter) and
 * `conflictIndex` is the first index the follower holds of that term (or its last index + 1).
 */
export type AppendEntriesResponseMessage = Envelope & {
  readonly type: "appendEntriesResponse";
  readonly success: boolean;
  readonly matchIndex: LogIndex;
  readonly rejectedIndex: LogIndex;
  readonly conflictTerm: Term;
  readonly conflictIndex: LogIndex;
  /** The follower's applied index, so the leader can tell when `all` durability is reached. */
  readonly appliedIndex: LogIndex;
};

/**
 * Leader liveness signal. Carries no log check, so it never disturbs pipelined appends;
 * `leaderCommit` is already capped at what this follower is known to hold.
 */
export type HeartbeatMessage = Envelope & {
  readonly type: "heartbeat";
  readonly leaderCommit: LogIndex;
  /** The latest linearizable-read round; echoed back to confirm leadership (thesis §6.4). 0 = none. */
  readonly readRound: number;
  /**
   * To a witness only, and only when positive: the data floor, the highest index every data-holding
   * voter is known to hold (and committed). The witness keeps its log above it (`RaftCore.dataFloor`).
   */
  readonly dataFloor?: LogIndex;
};

export type HeartbeatResponseMessage = Envelope & {
  readonly type: "heartbeatResponse";
  readonly readRound: number;
  readonly appliedIndex: LogIndex;
  /**
   * Set only when a follower sends it on its own after applying (not as a heartbeat's answer): the
   * leader takes the applied index and the sign of life, but does not resend appends on it, which it
   * does once per heartbeat for a follower whose answers may have been lost.
   */
  readonly report?: true;
};

/** Leadership transfer (thesis §3.10): "campaign now, you are up to date". */
export type TimeoutNowMessage = Envelope & {
  readonly type: "timeoutNow";
};

/**
 * Snapshot installation notice. The snapshot's data travels out of band; the receiving host restores
 * it (only when `snapshotIndex` exceeds its applied index) and only then steps this message.
 */
export type InstallSnapshotMessage = Envelope & {
  readonly type: "installSnapshot";
  readonly snapshotIndex: LogIndex;
  readonly snapshotTerm: Term;
  /** The cluster configuration as of `snapshotIndex`; the receiver adopts it with the snapshot. */
  readonly snapshotConfig: ClusterConfig;
};

/**
 * A follower or learner asks its leader for a read index (thesis §6.4.1): the leader confirms its
 * leadership with a heartbeat round, as for its own reads, and answers with its commit index.
 * `readId` is the asker's handle, echoed in the answer.
 */
export type ReadIndexMessage = Envelope & {
  readonly type: "readIndex";
  readonly readId: number;
};

/** Why a leader could not give a read index; the asker reports it as its own `readRejected` code. */
export type ReadIndexRefusal = "NOT_LEADER" | "NO_LEADER" | "LEADER_NOT_READY" | "OVERLOADED";
export const readIndexRefusals: readonly ReadIndexRefusal[] = [
  "NOT_LEADER",
  "NO_LEADER",
  "LEADER_NOT_READY",
  "OVERLOADED",
];

/** The answer to `readIndex`: the confirmed index, or (when `refusal` is set) why there is none. */
export type ReadIndexResponseMessage = Envelope & {
  readonly type: "readIndexResponse";
  readonly readId: number;
  /** The leader's commit index when the request arrived, confirmed by a heartbeat round; 0 when refused. */
  readonly index: LogIndex;
  readonly refusal: ReadIndexRefusal | null;
};

export type Message =
  | PreVoteMessage
  | PreVoteResponseMessage
  | RequestVoteMessage
  | RequestVoteResponseMessage
  | AppendEntriesMessage
  | AppendEntriesResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | TimeoutNowMessage
  | InstallSnapshotMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

export type MessageType = Message["type"];

export const messageTypes: readonly MessageType[] = [
  "preVote",
  "preVoteResponse",
  "requestVote",
  "requestVoteResponse",
  "appendEntries",
  "appendEntriesResponse",
  "heartbeat",
  "heartbeatResponse",
  "timeoutNow",
  "installSnapshot",
  "readIndex",
  "readIndexResponse",
];

/**
 * Whether a message may leave before the hard state and entries of the same Effects are durable.
 *
 * A leader may ship entries before its own fsync (thesis §10.2.1) because it counts itself toward
 * a quorum only once durable. Pre-vote traffic changes no durable state, nor does read-index
 * traffic (the index answered is committed, so durable on a majority already). Everything else
 * promises something about durable state (a vote, a term, a matched log) and must wait.
 */
export function sendableBeforePersist(type: MessageType): boolean {
  return (
    type === "appendEntries" ||
    type === "heartbeat" ||
    type === "timeoutNow" ||
    type === "preVote" ||
    type === "preVoteResponse" ||
    type === "readIndex" ||
    type === "readIndexResponse"
  );
}
