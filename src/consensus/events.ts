/**
 * Audit-trail events the core reports in `Effects.events`.
 *
 * They are facts for operators and tests (who campaigned, who won with which votes, why a leader
 * stepped down), not instructions: the host logs or exposes them and acts only on the other Effects
 * fields. Every event is a plain serializable object with `type`, the reporting `node` and its `term`.
 */
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import type { MembershipChangeKind } from "./cluster-config.ts";
import type {
  ApprovePolicy,
  FailoverMode,
  FailoverSettings,
  MemberAttributesEntry,
} from "./failover-config.ts";
import type { PromoteRefusalCode } from "./failover-view.ts";

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Why a leader (or candidate) gave up its role. */
export type StepDownReason =
  | "higher-term"
  | "check-quorum-lost"
  | "transfer"
  | "lost-election"
  | "leader-found"
  /** Dissertation §4.2.2: a configuration that makes this leader a non-voter committed. */
  | "removed-from-configuration"
  /** A campaign ran out its election timer where failover is not automatic: it is not retried by itself. */
  | "election-timeout";

type EventBase = { readonly node: NodeId; readonly term: Term };

export type CoreEvent =
  | (EventBase & { readonly type: "role-changed"; readonly role: Role; readonly previousRole: Role })
  | (EventBase & {
      readonly type: "election-started";
      /** True for the pre-vote round: `term` is then the term the node would campaign in. */
      readonly preVote: boolean;
      readonly transfer: boolean;
    })
  | (EventBase & {
      readonly type: "election-won";
      readonly preVote: boolean;
      readonly votes: readonly NodeId[];
    })
  | (EventBase & {
      readonly type: "election-lost";
      readonly preVote: boolean;
      readonly votes: readonly NodeId[];
      readonly rejections: readonly NodeId[];
    })
  | (EventBase & { readonly type: "vote-granted"; readonly candidate: NodeId; readonly preVote: boolean })
  | (EventBase & {
      readonly type: "stepped-down";
      readonly reason: StepDownReason;
      /** The node whose message caused it, when one did. */
      readonly cause: NodeId | null;
    })
  | (EventBase & { readonly type: "transfer-started"; readonly target: NodeId })
  | (EventBase & {
      readonly type: "transfer-aborted";
      readonly target: NodeId;
      readonly reason: "timeout" | "superseded";
    })
  | (EventBase & {
      readonly type: "transfer-rejected";
      readonly target: NodeId;
      /** `NOT_ELIGIBLE`: the target is a witness or never-promote. `NO_TARGET`: no other voter may lead (`target` is then this node). */
      readonly reason: "NOT_LEADER" | "UNKNOWN_TARGET" | "IN_PROGRESS" | "NOT_ELIGIBLE" | "NO_TARGET";
    })
  | (EventBase & {
      readonly type: "entries-discarded";
      /** Indexes of this node's divergent, never-committed suffix replaced by the leader's entries. */
      readonly fromIndex: LogIndex;
      readonly toIndex: LogIndex;
    })
  | (EventBase & {
      /** This node's configuration changed: an entry was appended or truncated, or a snapshot installed. */
      readonly type: "config-changed";
      /** The configuration's entry index (the snapshot index when it comes from a snapshot). */
      readonly index: LogIndex;
      readonly voters: readonly NodeId[];
      readonly learners: readonly NodeId[];
    })
  | (EventBase & {
      /** The leader appended a membership change. */
      readonly type: "membership-change-proposed";
      readonly index: LogIndex;
      readonly kind: MembershipChangeKind;
      readonly target: NodeId;
    })
  | (EventBase & {
      /** The failover settings or member attributes of this node's configuration changed (with `config-changed`). */
      readonly type: "failover-config-changed";
      readonly index: LogIndex;
      readonly settings: FailoverSettings;
      /** Members with a non-default attribute. */
      readonly members: readonly MemberAttributesEntry[];
    })
  | (EventBase & {
      /**
       * The election timer fired and this voter does not campaign by itself (mode manual or approve,
       * paused, or it may not lead): once per loss, until a leader is heard again.
       */
      readonly type: "leader-lost";
      readonly lastLeader: NodeId | null;
      /** When the lost leader was last heard (this node's tick), null if never. */
      readonly leaderHeardTick: number | null;
      readonly mode: FailoverMode;
      readonly paused: boolean;
    })
  | (EventBase & {
      /** Mode approve: this node's proposed candidate appeared or changed (see `FailoverProposal`). */
      readonly type: "failover-pending";
      readonly candidate: NodeId;
      readonly lastIndex: LogIndex;
      readonly lastTerm: Term;
      readonly relay: boolean;
      readonly unheardVoters: readonly NodeId[];
      /** The tick at which `policy` applies. */
      readonly deadlineTick: number;
      readonly policy: ApprovePolicy;
    })
  | (EventBase & {
      /** Mode approve: no approval came within the timeout; `policy` now applies (the candidate campaigns, or nobody). */
      readonly type: "failover-timeout";
      readonly policy: ApprovePolicy;
      readonly candidate: NodeId | null;
    })
  | (EventBase & { readonly type: "promote-started" })
  | (EventBase & {
      readonly type: "promote-refused";
      readonly code: PromoteRefusalCode;
      /** The node the refusal is about (the live leader, the more up-to-date voter…), when there is one. */
      readonly peer: NodeId | null;
    })
  | (EventBase & {
      /** Mode auto: this voter is outside the lost leader's zone and gives a voter of that zone a head start. */
      readonly type: "election-deferred";
      readonly zone: string;
      readonly ticks: number;
    })
  | (EventBase & {
      /** The leader transfers its office by itself: a caught-up voter has a higher priority, or it may not lead. */
      readonly type: "handoff-started";
      readonly target: NodeId;
      readonly reason: "priority" | "not-eligible";
    })
  | (EventBase & {
      readonly type: "snapshot-installed";
      readonly index: LogIndex;
      readonly snapshotTerm: Term;
    })
  | (EventBase & {
      /** The durable log again reaches what this node may have promised before it lost entries (`lost-entries.ts`). */
      readonly type: "lost-entries-refetched";
      readonly index: LogIndex;
      readonly promisedTerm: Term;
    });

export type CoreEventType = CoreEvent["type"];
