/**
 * Everything the host can feed to `RaftCore.step`, as a discriminated union on `type`.
 *
 * Time arrives only as `tick`; durability arrives only as `persisted`; application progress only as
 * `applied`. The core trusts none of them blindly: stale `persisted` reports (for entries since
 * replaced) are ignored, and an `applied` beyond what the core allowed is an assertion failure.
 */
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import type { EntryKind } from "../types/log-entry.ts";
import type { MembershipChange } from "./cluster-config.ts";
import type { Durability } from "./config.ts";
import type { FailoverChange } from "./failover-config.ts";
import type { Message } from "./messages.ts";

/** The host's handle for a client write; echoed in every outcome for that write. */
export type ProposalId = string;
/** The host's handle for a linearizable read. */
export type ReadRequestId = string;

export type TickInput = { readonly type: "tick" };
export type MessageInput = { readonly type: "message"; readonly message: Message };
export type ProposeInput = {
  readonly type: "propose";
  readonly proposalId: ProposalId;
  /** `command` only: configuration entries are written by `changeMembership`, never proposed raw. */
  readonly kind: EntryKind;
  readonly data: Uint8Array;
  /** Defaults to the configured `defaultDurability`. */
  readonly durability?: Durability;
  /** Defaults to `proposalTimeoutMs / tickMs`. */
  readonly timeoutTicks?: number;
};
/**
 * A single-server membership change (dissertation §4.1). The leader accepts it only when the
 * previous configuration entry is committed and it has committed an entry of its own term; it
 * appends the whole new configuration as an `EntryKind.config` entry, which every node uses from the
 * moment it is in its log. Outcomes arrive as for a `majority` proposal: `proposals` (accepted, or
 * rejected with a code any proposal can meet), `membershipRejected` (refused for a reason of the
 * configuration), then `acknowledged` once the entry is committed under the new configuration, or
 * `notConfirmed`.
 */
export type ChangeMembershipInput = {
  readonly type: "changeMembership";
  readonly proposalId: ProposalId;
  readonly change: MembershipChange;
  /** Defaults to `proposalTimeoutMs / tickMs`. */
  readonly timeoutTicks?: number;
};
/**
 * A change to the failover part of the configuration (`failover-config.ts`): some of the cluster's
 * settings (mode, pause, approve timeout and policy), or some attributes of one member (priority,
 * zone, never-promote, witness). Fields left out keep their value. Accepted under the same rules as a
 * membership change (one configuration change at a time, after the leader committed in its term);
 * refusals for a reason of the configuration arrive in `failoverChangeRejected`, the others in
 * `proposals`; then `acknowledged` once committed, or `notConfirmed`.
 */
export type ChangeFailoverInput = {
  readonly type: "changeFailover";
  readonly proposalId: ProposalId;
  readonly change: FailoverChange;
  /** Defaults to `proposalTimeoutMs / tickMs`. */
  readonly timeoutTicks?: number;
};
/** The host's handle for an operator's promotion; echoed in its `promotions` outcome. */
export type PromoteRequestId = string;
/**
 * An operator promotes this node: it campaigns at once (pre-vote first when enabled) if it may win
 * safely, else the answer in `promotions` says why not (see `PromoteRefusalCode`). In mode approve,
 * stepping this on the pending failover's candidate is the approval. Unlike `campaign`, it is
 * checked: it is the operator's way to end a leaderless period in mode manual or while paused.
 */
export type PromoteLeaderInput = { readonly type: "promoteLeader"; readonly requestId: PromoteRequestId };
/** The host made every entry up to `index` (whose term is `term`) and every earlier hard state durable. */
export type PersistedInput = { readonly type: "persisted"; readonly index: LogIndex; readonly term: Term };
/** The host applied every entry up to `index` to the state machine. */
export type AppliedInput = { readonly type: "applied"; readonly index: LogIndex };
export type ReadIndexInput = { readonly type: "readIndex"; readonly requestId: ReadRequestId };
/**
 * A switchover (thesis §3.10), stepped on the leader: to `target`, or when it is left out to the best
 * voter that may lead (heard from lately, most caught up, highest priority, the leader's zone).
 * Outcomes are events: `transfer-started`, `transfer-rejected`, `transfer-aborted`, then the target's
 * election.
 */
export type TransferLeadershipInput = { readonly type: "transferLeadership"; readonly target?: NodeId };
/**
 * Start an election now, unchecked, with pre-vote when enabled: what the election timer does in mode
 * auto. For tests and tools; an operator's command is `promoteLeader`.
 */
export type CampaignInput = { readonly type: "campaign" };
/** The host took a snapshot through `index` (whose term is `term`): drop those entries from memory. */
export type CompactInput = { readonly type: "compact"; readonly index: LogIndex; readonly term: Term };
/** Leader side: the host finished sending `peer` a snapshot through `index`. */
export type SnapshotSentInput = {
  readonly type: "snapshotSent";
  readonly peer: NodeId;
  readonly index: LogIndex;
  readonly term: Term;
};
/** Leader side: sending a snapshot to `peer` failed; replication falls back to probing. */
export type SnapshotFailedInput = { readonly type: "snapshotFailed"; readonly peer: NodeId };
/**
 * While `hold` is true this node never campaigns (it still votes); the host sets it while this
 * node's state machine cannot be trusted to lead (`lost-entries.ts`). A leader is not deposed by
 * it: the host transfers leadership first.
 */
/**
 * (leader, with `deferCommitNews`) Tell every follower that holds the whole log the commit index
 * it has not been sent yet: the commit news a step left for later (`Effects.commitNewsDue`).
 */
export type CommitNewsInput = { readonly type: "commitNews" };
export type HoldCandidacyInput = { readonly type: "holdCandidacy"; readonly hold: boolean };

export type Input =
  | TickInput
  | MessageInput
  | ProposeInput
  | ChangeMembershipInput
  | ChangeFailoverInput
  | PromoteLeaderInput
  | PersistedInput
  | AppliedInput
  | ReadIndexInput
  | TransferLeadershipInput
  | CampaignInput
  | CompactInput
  | SnapshotSentInput
  | SnapshotFailedInput
  | CommitNewsInput
  | HoldCandidacyInput;
