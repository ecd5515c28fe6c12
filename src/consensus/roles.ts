/**
 * Role transitions: follower, pre-candidate, candidate, leader (Raft §5.1–§5.2, thesis §9.6).
 *
 * Each transition resets exactly the volatile state its new role must not inherit: votes, the
 * leader's per-follower progress, the read-index queue, a leadership transfer in progress.
 * Invariants: the term never decreases; a vote is recorded only together with the term it belongs
 * to; a new leader appends a no-op entry of its term at once (Raft §8) so that it can commit, and
 * learn the commit index, without waiting for a client write.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type NodeId, type Term, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { type CoreState, otherVoters, resetElectionTimer, selfIsVoter, syncProgress } from "./core-state.ts";
import { onLeadershipLost } from "./durability.ts";
import type { EffectsBuilder } from "./effects.ts";
import type { Role, StepDownReason } from "./events.ts";
import { leaderFound } from "./failover-view.ts";
import { maybeHandOff } from "./handoff.ts";
import { voteResult } from "./quorum.ts";
import { rejectPendingReads } from "./read-index.ts";
import { broadcastAppend, maybeAdvanceCommit } from "./replication.ts";

function changeRole(s: CoreState, out: EffectsBuilder, role: Role): void {
  const previousRole = s.role;
  s.role = role;
  if (previousRole !== role)
    out.event({ type: "role-changed", node: s.config.id, term: s.term, role, previousRole });
}

/**
 * Becomes a follower of `leaderId` (null when unknown) in `newTerm` (≥ the current term). A higher
 * term clears the vote (Raft §5.1). `reason` is reported when a leader or candidate steps down.
 */
export function becomeFollower(
  s: CoreState,
  out: EffectsBuilder,
  newTerm: Term,
  leaderId: NodeId | null,
  reason: StepDownReason,
  cause: NodeId | null,
): void {
  assert(newTerm >= s.term, "terms never decrease");
  const previousRole = s.role;
  if (newTerm > s.term) {
    s.term = newTerm;
    s.votedFor = null;
  }
  // Judge `one`/`all` proposals while the leader's view of its peers still exists.
  if (previousRole === "leader") onLeadershipLost(s, out);
  s.leaderId = leaderId;
  s.appliedReportsWanted = false;
  resetElectionTimer(s);
  s.votes.clear();
  s.progress.clear();
  s.transfer = null;
  if (previousRole !== "follower")
    out.event({ type: "stepped-down", node: s.config.id, term: s.term, reason, cause });
  changeRole(s, out, "follower");
  if (previousRole === "leader") rejectPendingReads(s, out);
  assert(s.role === "follower" && s.progress.size === 0, "follower keeps no leader state");
}

function lastLogPosition(s: CoreState): { lastLogIndex: LogIndex; lastLogTerm: Term } {
  return { lastLogIndex: s.log.lastIndex, lastLogTerm: s.log.lastTerm };
}

/** Thesis §9.6: ask whether we could win before disturbing anyone with a higher term. */
export function becomePreCandidate(s: CoreState, out: EffectsBuilder): void {
  assert(s.role !== "leader", "a leader does not campaign");
  assert(selfIsVoter(s), "only a voter campaigns");
  s.leaderId = null;
  resetElectionTimer(s);
  s.votes.clear();
  s.votes.set(s.config.id, true);
  changeRole(s, out, "preCandidate");
  const proposedTerm = term(s.term + 1);
  out.event({
    type: "election-started",
    node: s.config.id,
    term: proposedTerm,
    preVote: true,
    transfer: false,
  });
  for (const peer of otherVoters(s)) {
    out.send({ type: "preVote", from: s.config.id, to: peer, term: proposedTerm, ...lastLogPosition(s) });
  }
  tallyVotes(s, out);
}

/** Raft §5.2: increment the term, vote for ourselves, and request votes from every peer. */
export function becomeCandidate(s: CoreState, out: EffectsBuilder, transfer: boolean): void {
  assert(s.role !== "leader", "a leader does not campaign");
  assert(selfIsVoter(s), "only a voter campaigns");
  s.term = term(s.term + 1);
  s.votedFor = s.config.id;
  s.leaderId = null;
  resetElectionTimer(s);
  s.votes.clear();
  s.votes.set(s.config.id, true);
  changeRole(s, out, "candidate");
  out.event({ type: "election-started", node: s.config.id, term: s.term, preVote: false, transfer });
  for (const peer of otherVoters(s)) {
    out.send({
      type: "requestVote",
      from: s.config.id,
      to: peer,
      term: s.term,
      ...lastLogPosition(s),
      transfer,
    });
  }
  tallyVotes(s, out);
}

/** Counts the votes of the current (pre-)election and acts on a decided outcome. */
export function tallyVotes(s: CoreState, out: EffectsBuilder): void {
  assert(s.role === "preCandidate" || s.role === "candidate", "only candidates count votes");
  // Raft §5.2 with dissertation §4.1: a majority of the voters of the candidate's own configuration.
  const result = voteResult(s.log.config.voters, s.votes);
  if (result === "pending") return;
  const preVote = s.role === "preCandidate";
  const eventTerm = preVote ? term(s.term + 1) : s.term;
  const votes = [...s.votes].filter(([, granted]) => granted).map(([voter]) => voter);
  if (result === "won") {
    out.event({ type: "election-won", node: s.config.id, term: eventTerm, preVote, votes });
    if (preVote) becomeCandidate(s, out, false);
    else becomeLeader(s, out);
    return;
  }
  const rejections = [...s.votes].filter(([, granted]) => !granted).map(([voter]) => voter);
  out.event({ type: "election-lost", node: s.config.id, term: eventTerm, preVote, votes, rejections });
  becomeFollower(s, out, s.term, null, "lost-election", null);
}

/** Raft §5.2 and §8: take office, start replicating, and append this term's no-op entry. */
export function becomeLeader(s: CoreState, out: EffectsBuilder): void {
  assert(s.role === "candidate", "only a candidate becomes leader");
  assert(s.votedFor === s.config.id, "a leader voted for itself");
  s.leaderId = s.config.id;
  s.heartbeatElapsedTicks = 0;
  s.readRound = 0;
  s.readAcknowledgements = 0;
  s.transfer = null;
  const electedBy = [...s.votes].filter(([, granted]) => granted).map(([voter]) => voter);
  s.votes.clear();
  leaderFound(s, s.config.id);
  const nextIndex = logIndex(s.log.lastIndex + 1);
  changeRole(s, out, "leader");
  syncProgress(s);
  const noop = { index: nextIndex, term: s.term, kind: EntryKind.noop, data: new Uint8Array(0) };
  s.log.append(noop);
  out.append(noop);
  broadcastAppend(s, out, true);
  maybeAdvanceCommit(s);
  // A witness or never-promote voter elected as a relay hands over at once (`handoff.ts`).
  maybeHandOff(s, out, electedBy);
}
