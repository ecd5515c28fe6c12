/**
 * Elections: pre-vote (thesis §9.6), RequestVote (Raft §5.2, §5.4.1) and the leadership-transfer
 * campaign (thesis §3.10). The election timer, and when it leads to a campaign, is `failover.ts`.
 *
 * Rules enforced here:
 *  - a vote goes only to a candidate whose log is at least as up-to-date as ours (§5.4.1), so only
 *    a most-up-to-date node can win and every committed entry survives in the next leader's log;
 *  - one vote per term; the vote is part of the hard state and the grant is a message marked
 *    `afterPersist`, so it leaves only once the vote is durable;
 *  - a node that knows a leader of the current term votes for no one else in that term;
 *  - any node answers vote requests, whatever its own configuration says of it or of the
 *    candidate (dissertation §4.1): the candidate counts only the voters of its own configuration,
 *    and a node still holding the configuration before its promotion may be the vote a candidate
 *    that already holds the new one needs;
 *  - a pre-vote changes no state at the voter; it is granted only for a higher term and an
 *    up-to-date log (refusals by nodes in lease happen during term handling, in `raft-core.ts`);
 *  - the last log position every vote or pre-vote request carries is recorded before any of this,
 *    whether the request is answered or ignored (`raft-core.ts`, `failover-view.ts`): it is what a
 *    leaderless node knows of the voters around it. The grant rules above ignore it.
 *  - a node that lost entries to storage damage never campaigns, and votes only for a log at least
 *    as up-to-date as what it may have promised (`lost-entries.ts`); nor does a node whose host holds
 *    back its candidacy campaign.
 */

import { assert } from "../lib/assert.ts";
import { type CoreState, resetElectionTimer, selfIsVoter } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { mayCampaign, promiseAllowsVote } from "./lost-entries.ts";
import type {
  PreVoteMessage,
  PreVoteResponseMessage,
  RequestVoteMessage,
  RequestVoteResponseMessage,
  TimeoutNowMessage,
} from "./messages.ts";
import { becomeCandidate, becomePreCandidate, tallyVotes } from "./roles.ts";
import { priorityTransferBackoffTimeouts } from "./transfer.ts";

/**
 * Starts an election: a pre-vote round when enabled, unless this is a leadership transfer. A node
 * that is not a voter of its own configuration (a learner, or a node removed from the cluster)
 * never campaigns (dissertation §4.2.3): it could not count its own vote, and a removed node's
 * higher term would only disrupt the cluster.
 */
export function campaign(s: CoreState, out: EffectsBuilder, transfer: boolean): void {
  if (s.role === "leader" || !selfIsVoter(s) || !mayCampaign(s)) return;
  if (transfer || !s.config.preVote) becomeCandidate(s, out, transfer);
  else becomePreCandidate(s, out);
}

function logAcceptable(
  s: CoreState,
  lastLogIndex: RequestVoteMessage["lastLogIndex"],
  lastLogTerm: RequestVoteMessage["lastLogTerm"],
): boolean {
  if (s.config.unsafeTestBugs.voteWithoutLogCheck === true) return true;
  return s.log.isUpToDate(lastLogIndex, lastLogTerm) && promiseAllowsVote(s, lastLogIndex, lastLogTerm);
}

export function handlePreVote(s: CoreState, out: EffectsBuilder, message: PreVoteMessage): void {
  const granted = message.term > s.term && logAcceptable(s, message.lastLogIndex, message.lastLogTerm);
  out.send({
    type: "preVoteResponse",
    from: s.config.id,
    to: message.from,
    term: granted ? message.term : s.term,
    granted,
  });
  if (granted)
    out.event({
      type: "vote-granted",
      node: s.config.id,
      term: s.term,
      candidate: message.from,
      preVote: true,
    });
}

export function handleRequestVote(s: CoreState, out: EffectsBuilder, message: RequestVoteMessage): void {
  assert(message.term === s.term, "vote requests are handled in their own term");
  const canVote =
    s.votedFor === message.from ||
    (s.votedFor === null && s.leaderId === null) ||
    (s.config.unsafeTestBugs.voteTwiceInTerm === true && s.role === "follower");
  const upToDate = logAcceptable(s, message.lastLogIndex, message.lastLogTerm);
  const granted = canVote && upToDate;
  if (!granted && upToDate && s.role === "candidate" && s.votedFor === s.config.id) {
    // A candidate at least as up to date asks in our own term: we cannot vote for it twice, but we
    // restart our timer so that its next term's request likely finds us still in this one. Without
    // pre-vote, a candidate that cannot win (its configuration's quorum is down) whose timer kept
    // firing first turned every request of the one that could away for 500 ticks (found by the
    // simulator, SEED=3170). Timers never affect safety.
    resetElectionTimer(s);
  }
  if (granted) {
    // Raft §5.2: granting a vote resets the election timer, so we do not compete with the candidate.
    s.votedFor = message.from;
    resetElectionTimer(s);
    out.event({
      type: "vote-granted",
      node: s.config.id,
      term: s.term,
      candidate: message.from,
      preVote: false,
    });
  }
  out.send({ type: "requestVoteResponse", from: s.config.id, to: message.from, term: s.term, granted });
  assert(!granted || s.votedFor === message.from, "a grant records the vote");
}

export function handleVoteResponse(
  s: CoreState,
  out: EffectsBuilder,
  message: PreVoteResponseMessage | RequestVoteResponseMessage,
): void {
  if (message.type === "preVoteResponse") {
    if (s.role !== "preCandidate") return;
    // A grant echoes the proposed term; a refusal carries the voter's own (equal) term.
    const expectedTerm = message.granted ? s.term + 1 : s.term;
    if (message.term !== expectedTerm) return;
  } else if (s.role !== "candidate" || message.term !== s.term) {
    return;
  }
  // The first answer of each voter counts; duplicates delivered later change nothing.
  if (!s.votes.has(message.from)) s.votes.set(message.from, message.granted);
  tallyVotes(s, out);
}

/** Thesis §3.10: the leader tells us we are up to date; campaign at once, skipping pre-vote. */
export function handleTimeoutNow(s: CoreState, out: EffectsBuilder, message: TimeoutNowMessage): void {
  if (s.role !== "follower" || message.from !== s.leaderId) return;
  // Office handed over (a switchover, a leader removing itself, a priority hand-off): not handed
  // back for priority at once. A leader removing itself that ranked first by priority got office
  // straight back, and its removal never completed (found by the simulator).
  s.failover.priorityTransferNotBeforeTick =
    s.nowTick + priorityTransferBackoffTimeouts * s.config.electionTimeoutTicks;
  campaign(s, out, true);
}
