/**
 * Client writes and linearizable reads waiting on the consensus core, keyed by the ids the node
 * handed to the core. Each outcome the core reports settles exactly one promise; an outcome for
 * an unknown id (a request that already timed out on the HTTP side) is ignored.
 */
import type { Effects, MembershipRejectionCode, NotConfirmed } from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import type { RefusalCode } from "./peer-directory.ts";

export type ProposalResult = { readonly index: LogIndex; readonly term: Term };
type Pending<T> = { resolve: (value: T) => void; reject: (error: Error) => void };

export class ProposalRegistry {
  private readonly proposals = new Map<string, Pending<ProposalResult>>();
  private readonly reads = new Map<string, Pending<LogIndex>>();
  private nextId = 1;

  /** True when a proposal with this id is still waiting for its outcome. */
  has(id: string): boolean {
    return this.proposals.has(id) || this.reads.has(id);
  }

  newId(prefix: string): string {
    return `${prefix}${this.nextId++}`;
  }

  get pendingProposals(): number {
    return this.proposals.size;
  }

  registerProposal(id: string): Promise<ProposalResult> {
    return new Promise((resolve, reject) => this.proposals.set(id, { resolve, reject }));
  }

  registerRead(id: string): Promise<LogIndex> {
    return new Promise((resolve, reject) => this.reads.set(id, { resolve, reject }));
  }

  acknowledge(id: string, result: ProposalResult): void {
    this.take(this.proposals, id)?.resolve(result);
  }

  /** The core refused the write; `refusal` says where to go (see `PeerDirectory.refusal`). */
  /** Settles every client outcome in one step's effects; `refusal` builds the error for a refusal naming a leader. */
  answer(effects: Effects, refusal: (code: RefusalCode, leaderId: NodeId | null) => BatonError): void {
    for (const outcome of effects.proposals)
      if (!outcome.accepted) this.rejectProposal(outcome.proposalId, refusal(outcome.code, outcome.leaderId));
    for (const ack of effects.acknowledged)
      this.acknowledge(ack.proposalId, { index: ack.index, term: ack.term });
    for (const failed of effects.notConfirmed) this.notConfirmed(failed);
    for (const ready of effects.readReady) this.readReady(ready.requestId, ready.index);
    for (const refused of effects.membershipRejected)
      this.rejectProposal(
        refused.proposalId,
        new BatonError(ErrorCode[refused.code], membershipRefusals[refused.code], { code: refused.code }),
      );
    for (const refused of effects.failoverChangeRejected)
      this.rejectProposal(
        refused.proposalId,
        new BatonError(ErrorCode[refused.code], `the failover change was refused: ${refused.code}`, {
          code: refused.code,
        }),
      );
    for (const rejected of effects.readRejected)
      this.readRejected(rejected.requestId, refusal(rejected.code, rejected.leaderId));
  }

  rejectProposal(id: string, refusal: BatonError): void {
    this.take(this.proposals, id)?.reject(refusal);
  }

  notConfirmed(failure: NotConfirmed): void {
    const pending = this.take(this.proposals, failure.proposalId);
    if (pending === undefined) return;
    const details = {
      index: failure.index,
      term: failure.term,
      durability: failure.durability,
      durableOn: failure.durableVoters,
      clusterSize: failure.voters,
      reason: failure.reason,
    };
    if (failure.reason === "timeout") {
      pending.reject(
        new BatonError(
          ErrorCode.NOT_CONFIRMED,
          `the write is durable on ${failure.durableVoters} of ${failure.voters} voters; ${failure.durability} was not confirmed in time. It is not undone and may still commit; retry with the same requestId to learn its outcome`,
          details,
        ),
      );
    } else {
      pending.reject(
        new BatonError(
          ErrorCode.LEADERSHIP_LOST,
          `leadership changed before the write was confirmed (${failure.reason}); retry with the same requestId`,
          details,
        ),
      );
    }
  }

  readReady(id: string, index: LogIndex): void {
    this.take(this.reads, id)?.resolve(index);
  }

  /** The core refused the read index; `refusal` keeps the core's code (LEADER_NOT_READY stays itself). */
  readRejected(id: string, refusal: BatonError): void {
    this.take(this.reads, id)?.reject(refusal);
  }

  /** Forgets an id whose caller gave up (timeout); a later outcome is then ignored. */
  forget(id: string): void {
    this.proposals.delete(id);
    this.reads.delete(id);
  }

  rejectAll(error: Error): void {
    for (const pending of [...this.proposals.values(), ...this.reads.values()]) pending.reject(error);
    this.proposals.clear();
    this.reads.clear();
  }

  private take<T>(map: Map<string, Pending<T>>, id: string): Pending<T> | undefined {
    const pending = map.get(id);
    map.delete(id);
    return pending;
  }
}

const membershipRefusals: Readonly<Record<MembershipRejectionCode, string>> = {
  MEMBERSHIP_CHANGE_PENDING: "the previous membership change is not committed yet; retry shortly",
  NODE_ALREADY_MEMBER: "the node is already a member",
  NODE_NOT_MEMBER: "the node is not a member",
  NODE_NOT_LEARNER: "the node is not a learner",
  NODE_NOT_VOTER: "the node is not a voter",
  NO_VOTER_LEFT: "the change would leave no voter",
  VOTERS_TOO_MANY: "the cluster has as many voters as it may",
  LEARNERS_TOO_MANY: "the cluster has as many learners as it may",
  NO_ELIGIBLE_VOTER: "the change would leave no voter that may lead",
};
