/**
 * The result of one `step`: everything the host must do, in order (the analogue of etcd's Ready).
 *
 * ORDER CONTRACT — the host handles each Effects completely and in the order they were returned,
 * and within one Effects it follows the fields in this order:
 *
 *  1. `snapshotRestored`  (follower) The host has already restored the snapshot's data; make the
 *                         durable log start right after this position (discard older entries).
 *  2. `truncateAfter`     (follower) Durably drop every log entry after this index. Never a
 *                         committed entry; never on a leader.
 *  3. `hardState`         Write term and vote (and `promised`, `lost-entries.ts`) atomically, no
 *                         later than the entries below: a crash between the two must never leave
 *                         the durable log holding a term newer than the durable hard state (the
 *                         core refuses such an initial state).
 *  4. `entries`           Append these entries durably, after the truncation.
 *     Steps 1–4 form one durable batch; batches complete in order (group commit is fine).
 *  5. `messages`          Send those with `afterPersist: false` now. Send those with
 *                         `afterPersist: true` only once the batch of this Effects and every earlier
 *                         batch are durable (a heartbeat's answer from a step that made nothing
 *                         durable is `afterPersist: false`). When the batch is durable and `entries` was non-empty,
 *                         step `{type:'persisted', index, term}` with the last entry's position.
 *  6. `applyThrough`      Apply committed entries to the state machine in index order up to this
 *                         index (they are committed and durable here), then step `{type:'applied'}`.
 *                         `commitIndex` is informational (status, metrics): the cluster's commit
 *                         index as this node knows it, which may run ahead of local durability.
 *  7. `proposals`, `acknowledged`, `notConfirmed`, `membershipRejected`, `failoverChangeRejected`,
 *     `readReady`, `readRejected`, `promotions`: answer clients and operators.
 *     A `readReady` read may be served once the local applied index reaches its `index`.
 *  8. `snapshotNeeded`    (leader) Send that peer a snapshot out of band, with the given message,
 *                         then step `snapshotSent` (or `snapshotFailed`).
 *     `commitNewsDue`     (leader, `deferCommitNews`) A follower has not been told the commit
 *                         index: step `{type:'commitNews'}` soon (a short timer) unless a later
 *                         step's effects say it is no longer due.
 *  9. `roleChange`, `discarded`, `events`: bookkeeping, audit trail, review of discarded entries.
 *
 * Array fields are always present (possibly empty); scalar fields are undefined when unchanged.
 */
import { assert } from "../lib/assert.ts";
import type { LogIndex, NodeId, Position, Term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import type { ClusterConfig, MembershipRejectionCode } from "./cluster-config.ts";
import type { Durability } from "./config.ts";
import type { CoreEvent, Role } from "./events.ts";
import type { FailoverChangeRejectionCode } from "./failover-config.ts";
import type { PromoteRefusalCode } from "./failover-view.ts";
import type { PromoteRequestId, ProposalId, ReadRequestId } from "./inputs.ts";
import { type InstallSnapshotMessage, type Message, sendableBeforePersist } from "./messages.ts";

export type OutboundMessage = {
  readonly message: Message;
  /** True: send only after this and every earlier Effects' durable batch completed. */
  readonly afterPersist: boolean;
};

/**
 * Why a proposal or a membership change was refused for a reason any of them can meet.
 * `LEADER_NOT_READY` is only given to membership changes: the leader has not committed an entry of
 * its term yet (the fix to single-server changes Ongaro posted to raft-dev in 2015).
 */
export type ProposalRejectionCode =
  | "NOT_LEADER"
  | "NO_LEADER"
  | "LEADERSHIP_TRANSFER"
  | "OVERLOADED"
  | "LEADER_NOT_READY";

export type ProposalOutcome =
  | {
      readonly proposalId: ProposalId;
      readonly accepted: true;
      readonly index: LogIndex;
      readonly term: Term;
      readonly durability: Durability;
    }
  | {
      readonly proposalId: ProposalId;
      readonly accepted: false;
      readonly code: ProposalRejectionCode;
      /** Where to retry, when known. */
      readonly leaderId: NodeId | null;
    };

/** A proposal reached its durability level. */
export type Acknowledgement = {
  readonly proposalId: ProposalId;
  readonly index: LogIndex;
  readonly term: Term;
  readonly durability: Durability;
};

/**
 * A proposal gave up waiting before reaching its level. Except for `overwritten` (the entry was
 * replaced and will never apply) the write is NOT undone: it may still commit later.
 */
export type NotConfirmed = {
  readonly proposalId: ProposalId;
  readonly index: LogIndex;
  readonly term: Term;
  readonly durability: Durability;
  readonly reason: "timeout" | "leadership-lost" | "overwritten" | "snapshot-installed";
  /** Voters known to hold the entry durably (a lower bound on a non-leader, which knows only itself). */
  readonly durableVoters: number;
  readonly voters: number;
};

/**
 * A membership change refused for a reason of the configuration itself (the refusals any proposal
 * can meet arrive in `proposals`, as for writes). Nothing was appended.
 */
export type MembershipRejected = {
  readonly proposalId: ProposalId;
  readonly code: MembershipRejectionCode;
  readonly leaderId: NodeId | null;
};

/** A failover change refused for a reason of the configuration (see `FailoverChangeRejectionCode`). Nothing was appended. */
export type FailoverChangeRejected = {
  readonly proposalId: ProposalId;
  readonly code: FailoverChangeRejectionCode;
  readonly leaderId: NodeId | null;
};

/**
 * The answer to `promoteLeader`: the campaign started (its result shows in `roleChange` and the
 * `election-won`/`election-lost` events), or why this node may not be promoted now.
 */
export type PromotionOutcome =
  | { readonly requestId: PromoteRequestId; readonly started: true }
  | {
      readonly requestId: PromoteRequestId;
      readonly started: false;
      readonly code: PromoteRefusalCode;
      /** The node the refusal is about (the live leader, the more up-to-date voter…), when there is one. */
      readonly peer: NodeId | null;
    };

export type ReadReady = { readonly requestId: ReadRequestId; readonly index: LogIndex };

export type ReadRejectionCode = "NOT_LEADER" | "NO_LEADER" | "LEADER_NOT_READY" | "OVERLOADED";

export type ReadRejected = {
  readonly requestId: ReadRequestId;
  readonly code: ReadRejectionCode;
  readonly leaderId: NodeId | null;
};

export type SnapshotNeeded = {
  readonly peer: NodeId;
  /** The snapshot must cover at least this index (the leader's first log index − 1). */
  readonly index: LogIndex;
  readonly term: Term;
  /** The cluster configuration as of `index` (also in `message`): the host stores it with the snapshot. */
  readonly snapshotConfig: ClusterConfig;
  /**
   * The header to send along with the snapshot data; the receiver steps it after restoring. A host
   * that sends a newer snapshot than `index` sets the header's `snapshotIndex`, `snapshotTerm` and
   * `snapshotConfig` to that snapshot's (`RaftCore.configAt(itsIndex)`): the receiver adopts the
   * configuration it is given, and asserts it matches when its own log joins the snapshot.
   */
  readonly message: InstallSnapshotMessage;
};

export type RoleChange = { readonly role: Role; readonly term: Term; readonly leaderId: NodeId | null };

export type Effects = {
  readonly snapshotRestored?: Position | undefined;
  readonly truncateAfter?: LogIndex | undefined;
  readonly entries: readonly LogEntry[];
  readonly hardState?: HardState | undefined;
  readonly messages: readonly OutboundMessage[];
  readonly commitIndex?: LogIndex | undefined;
  readonly applyThrough?: LogIndex | undefined;
  readonly proposals: readonly ProposalOutcome[];
  readonly acknowledged: readonly Acknowledgement[];
  readonly notConfirmed: readonly NotConfirmed[];
  readonly membershipRejected: readonly MembershipRejected[];
  readonly failoverChangeRejected: readonly FailoverChangeRejected[];
  readonly readReady: readonly ReadReady[];
  readonly readRejected: readonly ReadRejected[];
  readonly promotions: readonly PromotionOutcome[];
  readonly snapshotNeeded: readonly SnapshotNeeded[];
  readonly commitNewsDue: boolean;
  readonly roleChange?: RoleChange | undefined;
  /** Entries of this node's divergent suffix dropped by `truncateAfter`, kept for review. */
  readonly discarded: readonly LogEntry[];
  readonly events: readonly CoreEvent[];
};

/** The scalar state an Effects reports as "changed"; captured before a step and compared after. */
export type ObservedState = {
  readonly hardState: HardState;
  readonly commitIndex: LogIndex;
  readonly applyThrough: LogIndex;
  readonly role: Role;
  readonly leaderId: NodeId | null;
};

/** Collects the effects of one step. One builder per step; never reused. */
export class EffectsBuilder {
  readonly entries: LogEntry[] = [];
  readonly messages: OutboundMessage[] = [];
  readonly proposals: ProposalOutcome[] = [];
  readonly acknowledged: Acknowledgement[] = [];
  readonly notConfirmed: NotConfirmed[] = [];
  readonly membershipRejected: MembershipRejected[] = [];
  readonly failoverChangeRejected: FailoverChangeRejected[] = [];
  readonly readReady: ReadReady[] = [];
  readonly readRejected: ReadRejected[] = [];
  readonly promotions: PromotionOutcome[] = [];
  readonly snapshotNeeded: SnapshotNeeded[] = [];
  readonly discarded: LogEntry[] = [];
  readonly events: CoreEvent[] = [];
  snapshotRestored: Position | undefined = undefined;
  truncateAfter: LogIndex | undefined = undefined;
  commitNewsDue = false;
  /** This step is the host's `commitNews`: commit news leaves now (`replication.ts`). */
  commitNewsNow = false;

  send(message: Message): void {
    assert(message.from !== message.to, `message ${message.type} addressed to its sender`);
    if (message.type === "heartbeatResponse") this.heartbeatAnswers++;
    this.messages.push({ message, afterPersist: !sendableBeforePersist(message.type) });
  }

  /** `heartbeatResponse` messages in `messages` (see `finish`). */
  private heartbeatAnswers = 0;

  event(event: CoreEvent): void {
    this.events.push(event);
  }

  /** Records a suffix truncation; at most one per step, and always before this step's appends. */
  truncate(afterIndex: LogIndex, dropped: readonly LogEntry[]): void {
    assert(this.truncateAfter === undefined, "two truncations in one step");
    assert(this.entries.length === 0, "truncation after an append in the same step");
    this.truncateAfter = afterIndex;
    this.discarded.push(...dropped);
  }

  append(entry: LogEntry): void {
    const previous = this.entries.at(-1);
    assert(
      previous === undefined || entry.index === previous.index + 1,
      "effects entries must be contiguous",
    );
    this.entries.push(entry);
  }

  /**
   * A heartbeat's answer (or an applied report) from a step that made nothing durable itself leaves
   * at once instead of after every earlier batch: it vouches for this node's term, which is durable
   * unless an earlier step of this node raised it (a crash then loses only a term this node never
   * voted in), and for its applied index, which only durable entries reach. Waiting behind the log's
   * fsync made a leader lose check-quorum while its followers' disks were slow (three snapshot takes
   * at once drove an fsync to 626 ms, past the 600 ms election timeout).
   */
  private heartbeatAnswersNow(): void {
    if (this.entries.length > 0 || this.truncateAfter !== undefined || this.snapshotRestored !== undefined)
      return;
    for (let i = 0; i < this.messages.length; i++) {
      const outbound = this.messages[i];
      if (outbound?.message.type === "heartbeatResponse")
        this.messages[i] = { message: outbound.message, afterPersist: false };
    }
  }

  restoreSnapshot(position: Position): void {
    assert(
      this.snapshotRestored === undefined && this.entries.length === 0,
      "snapshot restore must come first",
    );
    this.snapshotRestored = position;
  }

  finish(before: ObservedState, after: ObservedState): Effects {
    assert(after.commitIndex >= before.commitIndex, "commit index decreased within a step");
    const hardStateChanged =
      before.hardState.term !== after.hardState.term ||
      before.hardState.votedFor !== after.hardState.votedFor ||
      before.hardState.promised !== after.hardState.promised;
    const roleChanged = before.role !== after.role || before.leaderId !== after.leaderId;
    if (this.heartbeatAnswers > 0 && !hardStateChanged) this.heartbeatAnswersNow();
    // Every field is present (undefined when unchanged): one object shape for every step, which V8
    // builds as a plain literal (conditional spreads took a slow runtime path on every step).
    return {
      snapshotRestored: this.snapshotRestored,
      truncateAfter: this.truncateAfter,
      entries: this.entries,
      hardState: hardStateChanged ? after.hardState : undefined,
      messages: this.messages,
      commitIndex: after.commitIndex !== before.commitIndex ? after.commitIndex : undefined,
      applyThrough: after.applyThrough !== before.applyThrough ? after.applyThrough : undefined,
      proposals: this.proposals,
      acknowledged: this.acknowledged,
      notConfirmed: this.notConfirmed,
      membershipRejected: this.membershipRejected,
      failoverChangeRejected: this.failoverChangeRejected,
      readReady: this.readReady,
      readRejected: this.readRejected,
      promotions: this.promotions,
      snapshotNeeded: this.snapshotNeeded,
      commitNewsDue: this.commitNewsDue,
      roleChange: roleChanged
        ? { role: after.role, term: after.hardState.term, leaderId: after.leaderId }
        : undefined,
      discarded: this.discarded,
      events: this.events,
    };
  }
}
