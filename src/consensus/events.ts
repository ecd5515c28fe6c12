/**
 * Audit-trail events the core reports in `Effects.events`.
 *
 * They are facts for operators and tests (who campaigned, who won with which votes, why a leader
 * stepped down), not instructions: the host logs or exposes them and acts only on the other Effects
 * fields. Every event is a plain serializable object with `type`, the reporting `node` and its `term`.
 */
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import type { MembershipChangeKind } from "./cluster-config.ts";

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Why a leader (or candidate) gave up its role. */
export type StepDownReason =
  | "higher-term"
  | "check-quorum-lost"
  | "transfer"
  | "lost-election"
  | "leader-found"
  /** Dissertation §4.2.2: a configuration that makes this leader a non-voter committed. */
  | "removed-from-configuration";

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
      readonly reason: "NOT_LEADER" | "UNKNOWN_TARGET" | "IN_PROGRESS";
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
