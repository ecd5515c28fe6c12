/**
 * Quorum arithmetic: the commit rule and vote tallies, kept free of any other state so that it can
 * be checked against naive oracles.
 *
 * Commit rule (Raft §5.3, §5.4.2): the leader may advance its commit index to N when a majority of
 * voters hold entries through N durably AND the entry at N is of the leader's current term. Entries
 * of earlier terms are committed only indirectly, by committing a later entry of the current term
 * (figure 8 shows why counting replicas of an old-term entry is unsafe).
 */
import { assert } from "../lib/assert.ts";
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import { quorumSize } from "./config.ts";

/** The highest index held by a majority: the quorum-th largest of the voters' match indexes. */
export function quorumMatchIndex(matchIndexes: readonly number[]): number {
  assert(matchIndexes.length > 0, "no voters");
  const sorted = [...matchIndexes].sort((a, b) => b - a);
  const result = sorted[quorumSize(matchIndexes.length) - 1];
  assert(result !== undefined, "quorum index out of range");
  return result;
}

export type CommitInputs = {
  /** Durable match index of every voter, the leader's own included (its durable index). */
  readonly matchIndexes: readonly number[];
  readonly commitIndex: LogIndex;
  readonly currentTerm: Term;
  /** The leader's log: the term of an entry it holds. */
  readonly termAt: (index: number) => Term | undefined;
  /** Test-only bug: skip the current-term check of Raft §5.4.2. */
  readonly commitOldTermByCounting?: boolean;
};

/** The new commit index (never lower than the current one). */
export function computeCommitIndex(inputs: CommitInputs): LogIndex {
  const candidate = quorumMatchIndex(inputs.matchIndexes);
  if (candidate <= inputs.commitIndex) return inputs.commitIndex;
  const candidateTerm = inputs.termAt(candidate);
  assert(candidateTerm !== undefined, `quorum index ${candidate} beyond the leader's log`);
  assert(candidateTerm <= inputs.currentTerm, "entry from a future term");
  // Raft §5.4.2: only entries of the current term are committed by counting replicas.
  if (candidateTerm !== inputs.currentTerm && inputs.commitOldTermByCounting !== true)
    return inputs.commitIndex;
  return candidate as LogIndex;
}

export type VoteResult = "won" | "lost" | "pending";

/** Tallies granted and rejected votes among `voters` (Raft §5.2: a majority of the full configuration). */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  assert(granted + rejected <= voters.length, "more votes than voters");
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return "won";
  if (rejected > voters.length - quorum) return "lost";
  return "pending";
}
