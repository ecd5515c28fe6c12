/**
 * Durability tracking: when is a client's proposal acknowledged?
 *
 * Levels (per proposal; the cluster default is configurable):
 *  - `local`:    the entry is durable on the leader.
 *  - `one`:      durable on the leader and on at least one other voter (just the leader in a
 *                single-voter cluster).
 *  - `majority`: committed (Raft §5.3): durable on a majority, of the leader's term (§5.4.2).
 *  - `all`:      committed and applied by every voter (followers report their applied index).
 * "Voter" means a voter of the leader's current configuration: learners never count toward any
 * level, so `all` completes with a learner down.
 *
 * A proposal that does not reach its level before its deadline is reported `notConfirmed` with how
 * many voters hold it durably; it is NOT undone and may still commit. A proposal whose entry is
 * replaced by another leader's is reported `overwritten`: that write will never apply.
 * `local` and `majority` keep being tracked after the leader steps down (a follower still sees its
 * own fsyncs and the commit index); `one` and `all` need the leader's view of its peers and end as
 * `leadership-lost` on step-down.
 *
 * Invariants: at most `proposalsPendingMax` proposals pending; each pending proposal's entry was
 * appended by this node as leader in `term`; every proposal ends exactly once (ack or notConfirmed).
 */
import { assert } from "../lib/assert.ts";
import type { LogIndex, Term } from "../types/ids.ts";
import type { Durability } from "./config.ts";
import { type CoreState, progressOf } from "./core-state.ts";
import type { EffectsBuilder, NotConfirmed } from "./effects.ts";
import type { ProposalId } from "./inputs.ts";

export type PendingProposal = {
  readonly proposalId: ProposalId;
  readonly index: LogIndex;
  readonly term: Term;
  readonly durability: Durability;
  readonly deadlineTick: number;
  /** Set when compaction removed the entry while it was still ours (it was committed then). */
  compactedAsOurs: boolean;
};

/** How many voters of the current configuration hold `index` durably, as far as this node knows. */
export function durableVoterCount(s: CoreState, index: LogIndex): number {
  let count = 0;
  for (const voter of s.log.config.voters) {
    if (voter === s.config.id) {
      if (s.durableIndex >= index) count++;
    } else if (s.role === "leader" && progressOf(s, voter).matchIndex >= index) {
      count++;
    }
  }
  return count;
}

/** Voters other than this node (the leader) that hold `index` durably, or have applied it. */
function otherVotersReached(
  s: CoreState,
  index: LogIndex,
  applied: boolean,
): { reached: number; others: number } {
  assert(s.role === "leader", "only a leader knows its peers' progress");
  let reached = 0;
  let others = 0;
  for (const voter of s.log.config.voters) {
    if (voter === s.config.id) continue;
    others++;
    const progress = progressOf(s, voter);
    if ((applied ? progress.appliedIndex : progress.matchIndex) >= index) reached++;
  }
  return { reached, others };
}

function entryIsOurs(s: CoreState, proposal: PendingProposal): boolean {
  if (proposal.index <= s.log.snapshotIndex) return proposal.compactedAsOurs;
  return s.log.termAt(proposal.index) === proposal.term;
}

function levelReached(s: CoreState, proposal: PendingProposal): boolean {
  const index = proposal.index;
  switch (proposal.durability) {
    case "local":
      return s.durableIndex >= index;
    case "one": {
      if (s.role !== "leader" || s.durableIndex < index) return false;
      const { reached, others } = otherVotersReached(s, index, false);
      return others === 0 || reached >= 1;
    }
    case "majority":
      return s.commitIndex >= index;
    case "all": {
      if (s.role !== "leader" || s.commitIndex < index || s.appliedIndex < index) return false;
      const { reached, others } = otherVotersReached(s, index, true);
      return reached === others;
    }
  }
}

function notConfirmed(s: CoreState, proposal: PendingProposal, reason: NotConfirmed["reason"]): NotConfirmed {
  return {
    proposalId: proposal.proposalId,
    index: proposal.index,
    term: proposal.term,
    durability: proposal.durability,
    reason,
    durableVoters: reason === "overwritten" ? 0 : durableVoterCount(s, proposal.index),
    voters: s.log.config.voters.length,
  };
}

/** Removes from the pending list every proposal for which `decide` returns an outcome. */
function settle(
  s: CoreState,
  out: EffectsBuilder,
  decide: (proposal: PendingProposal) => "keep" | "ack" | NotConfirmed["reason"],
): void {
  let kept = 0;
  let keptAll = 0;
  const pending = s.pendingProposals;
  for (let i = 0; i < pending.length; i++) {
    const proposal = pending[i];
    assert(proposal !== undefined, "pending proposal hole");
    const outcome = decide(proposal);
    if (outcome === "keep") {
      pending[kept++] = proposal;
      if (proposal.durability === "all") keptAll++;
    } else if (outcome === "ack") {
      const { proposalId, index, term, durability } = proposal;
      out.acknowledged.push({ proposalId, index, term, durability });
    } else {
      out.notConfirmed.push(notConfirmed(s, proposal, outcome));
    }
  }
  pending.length = kept;
  s.allProposalsPending = keptAll;
  assert(pending.length <= s.config.proposalsPendingMax, "pending proposals beyond their bound");
}

/** Acknowledges proposals that reached their level; fails those whose entry was replaced. */
export function evaluateProposals(s: CoreState, out: EffectsBuilder): void {
  if (s.pendingProposals.length === 0) return;
  settle(s, out, (proposal) => {
    if (!entryIsOurs(s, proposal)) return "overwritten";
    return levelReached(s, proposal) ? "ack" : "keep";
  });
}

/** Called every tick: proposals past their deadline end as `timeout`. */
export function expireProposals(s: CoreState, out: EffectsBuilder): void {
  if (s.pendingProposals.length === 0) return;
  settle(s, out, (proposal) => (s.nowTick >= proposal.deadlineTick ? "timeout" : "keep"));
}

/** On step-down: `one` and `all` cannot be judged without the leader's view of its peers. */
export function onLeadershipLost(s: CoreState, out: EffectsBuilder): void {
  settle(s, out, (proposal) =>
    proposal.durability === "one" || proposal.durability === "all" ? "leadership-lost" : "keep",
  );
}

/** Before compaction through `index`: remember which compacted entries were still ours. */
export function onCompaction(s: CoreState, index: LogIndex): void {
  for (const proposal of s.pendingProposals) {
    if (proposal.index <= index && proposal.index > s.log.snapshotIndex) {
      proposal.compactedAsOurs = s.log.termAt(proposal.index) === proposal.term;
    }
  }
}

/** A snapshot replaced the whole log: whether our entries survived is unknown. */
export function onSnapshotReset(s: CoreState, out: EffectsBuilder): void {
  settle(s, out, () => "snapshot-installed");
}
