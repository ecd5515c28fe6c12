/**
 * What a leaderless node knows about the voters around it, and what it concludes: who should be
 * promoted, and whether this node may be.
 *
 * Knowledge: every vote and pre-vote request carries its sender's last log position (Raft §5.4.1).
 * A node records the position of each voter that asks it, and a node that lost its leader and does
 * not campaign by itself sends every voter a pre-vote request anyway (a failover probe, see
 * `failover.ts`), which changes no state at the receiver, so all leaderless voters that can reach
 * each other learn each other's positions within one election timeout, with no message type of its
 * own. A position older than `peerPositionFreshTimeouts` election timeouts no longer counts as
 * reachable. Voters still following a live leader ignore probes (they are in lease) and send none:
 * they are not heard, and rightly so, since they would refuse to vote for a challenger too.
 *
 * Ranking (best first): the most up-to-date log (last term, then last index; Raft §5.4.1), then a
 * voter that may lead before a witness or never-promote one, then higher priority, then the lost
 * leader's zone, then the smaller id. Being up to date always wins over priority: a less
 * up-to-date node could only win by discarding entries a better one holds (entries that may have
 * been acknowledged at durability `local` or `one`), and the voters holding them would refuse it.
 *
 * Promotion safety (`promoteRefusal`): a node may be promoted when it has no live leader, a majority
 * of the voters (itself included) was heard from, none of them holds a more up-to-date log, and it
 * may lead — or it may not, but holds entries that every reachable voter that may lead lacks (the
 * relay case of `handoff.ts`). Then Raft's own vote rule guarantees it loses no committed entry if
 * it wins, and the check guarantees it discards nothing a reachable voter holds. What it cannot know
 * is the log of a voter it did not hear from (the lost leader, typically): `FailoverProposal`
 * names those voters, which is the cost an operator weighs.
 */
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import { isVoter, mayLead, memberAttributesOf } from "./cluster-config.ts";
import { quorumSize } from "./config.ts";
import type { CoreState } from "./core-state.ts";
import { mayCampaign } from "./lost-entries.ts";

/** Election timeouts after which a voter's reported position no longer counts as reachable. */
export const peerPositionFreshTimeouts = 2;

/**
 * Why `promoteLeader` refused. Permanent codes: callers match on them.
 */
export type PromoteRefusalCode =
  /** This node leads already. */
  | "ALREADY_LEADER"
  /** This node is not a voter of its configuration. */
  | "NOT_VOTER"
  /** This node is campaigning already. */
  | "CAMPAIGN_IN_PROGRESS"
  /**
   * This node may not campaign now: its host holds its candidacy back (its database is damaged) or
   * its log lost entries it may have promised (`lost-entries.ts`).
   */
  | "CANDIDACY_HELD"
  /** This node heard its leader within the election timeout (`peer`): a switchover is a transfer on the leader. */
  | "LEADER_ALIVE"
  /** Fewer than a majority of the voters were heard from lately: this node could not win. */
  | "QUORUM_NOT_HEARD"
  /** A reachable voter (`peer`) holds a more up-to-date log: promote it instead. */
  | "LOG_BEHIND"
  /** This node may not lead and a reachable voter that may (`peer`, or none) is as up to date. */
  | "NOT_ELIGIBLE";

export type PromoteRefusal = { readonly code: PromoteRefusalCode; readonly peer: NodeId | null };

/** A voter as a failover candidate. */
export type Contender = {
  readonly id: NodeId;
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  readonly mayLead: boolean;
  /**
   * It cannot campaign now (its probes said `held`, or it is this node with lost entries). Once a
   * leader heals it, it may lead again, so it still counts as one a relay can hand over to; but it
   * ranks after every contender as up to date that can campaign, so it is not named the candidate
   * in their stead (found by the simulator: seeds 3764, 2591 and 5673).
   */
  readonly held: boolean;
  readonly priority: number;
  readonly inLeaderZone: boolean;
};

/**
 * The proposal a leaderless node makes (status; event `failover-pending` in mode approve): the best
 * contender it heard from, and what promoting it may cost.
 */
export type FailoverProposal = {
  readonly candidate: NodeId;
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  /** The candidate may not lead: elected, it hands over to a voter that may, once that one caught up. */
  readonly relay: boolean;
  /** Voters heard from lately, this node included. */
  readonly heardVoters: readonly NodeId[];
  /** Voters not heard from: their logs may hold entries the candidate lacks, which its election would discard. */
  readonly unheardVoters: readonly NodeId[];
  /** Whether the heard voters are a majority (else nobody heard can win yet). */
  readonly quorumHeard: boolean;
  /** This node's commit index: entries of the candidate above it are not known to be committed. */
  readonly commitIndex: LogIndex;
};

export function notePeerPosition(
  s: CoreState,
  from: NodeId,
  lastLogIndex: LogIndex,
  lastLogTerm: Term,
  held: boolean,
): void {
  s.failover.peers.set(from, { lastLogIndex, lastLogTerm, heardTick: s.nowTick, held });
}

/** Whether position a is more up to date than position b (Raft §5.4.1: last term, then length). */
export function moreUpToDate(
  a: { lastLogIndex: number; lastLogTerm: number },
  b: { lastLogIndex: number; lastLogTerm: number },
): boolean {
  return (
    a.lastLogTerm > b.lastLogTerm || (a.lastLogTerm === b.lastLogTerm && a.lastLogIndex > b.lastLogIndex)
  );
}

/** Negative when `a` ranks before `b` (see the module comment). A total order: ids are distinct. */
export function compareContenders(a: Contender, b: Contender): number {
  if (moreUpToDate(a, b)) return -1;
  if (moreUpToDate(b, a)) return 1;
  if (a.held !== b.held) return a.held ? 1 : -1;
  if (a.mayLead !== b.mayLead) return a.mayLead ? -1 : 1;
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.inLeaderZone !== b.inLeaderZone) return a.inLeaderZone ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function contender(s: CoreState, id: NodeId, lastLogIndex: LogIndex, lastLogTerm: Term): Contender {
  const config = s.log.config;
  const lostLeader = s.failover.lastLeaderId;
  const leaderZone = lostLeader === null ? null : memberAttributesOf(config, lostLeader).zone;
  const { priority, zone } = memberAttributesOf(config, id);
  return {
    id,
    lastLogIndex,
    lastLogTerm,
    // A node whose host holds its candidacy may not lead (it relays at most), like a witness.
    mayLead: mayLead(config, id) && !(id === s.config.id && s.candidacyHeld),
    held: false,
    priority,
    inLeaderZone: leaderZone !== null && zone === leaderZone,
  };
}

/**
 * This node as a contender. With lost entries outstanding it can never campaign, not even as a
 * relay, so it ranks itself as its probes show it to the others: at its commit position, held. Ranked at its whole log it would name itself the candidate, and in mode approve its
 * published proposal, an operator's approval through it, and its timeout policy would all wait on a
 * node that cannot be promoted.
 */
function self(s: CoreState): Contender {
  const id = s.config.id;
  if (s.promised === null || s.config.unsafeTestBugs.ignoreLostEntries === true)
    return contender(s, id, s.log.lastIndex, s.log.lastTerm);
  const lastLogTerm = s.log.termAt(s.commitIndex) ?? s.log.lastTerm;
  return { ...contender(s, id, s.commitIndex, lastLogTerm), held: true };
}

/** This node (when it is a voter) and every voter of its configuration heard from lately, best first. */
export function rankedContenders(s: CoreState): Contender[] {
  const config = s.log.config;
  const freshTicks = peerPositionFreshTimeouts * s.config.electionTimeoutTicksMax;
  const list: Contender[] = [];
  if (isVoter(config, s.config.id)) list.push(self(s));
  for (const [id, position] of s.failover.peers) {
    if (id === s.config.id || !isVoter(config, id) || s.nowTick - position.heardTick > freshTicks) continue;
    const peer = contender(s, id, position.lastLogIndex, position.lastLogTerm);
    list.push(position.held ? { ...peer, held: true } : peer);
  }
  return list.sort(compareContenders);
}

/** Whether a voter that may not lead is needed as a relay: it ranks first and some reachable voter may lead. */
export function relayNeeded(s: CoreState): boolean {
  const ranked = rankedContenders(s);
  return ranked[0]?.id === s.config.id && ranked.some((c) => c.mayLead);
}

/** Null while this node leads or has a leader, or when no heard voter could take over. */
export function failoverProposal(s: CoreState): FailoverProposal | null {
  if (s.role === "leader" || s.failover.leaderLostTick === null) return null;
  const ranked = rankedContenders(s);
  const top = ranked[0];
  if (top === undefined || !ranked.some((c) => c.mayLead)) return null;
  const voters = s.log.config.voters;
  const heardVoters = ranked.map((c) => c.id);
  return {
    candidate: top.id,
    lastLogIndex: top.lastLogIndex,
    lastLogTerm: top.lastLogTerm,
    relay: !top.mayLead,
    heardVoters,
    unheardVoters: voters.filter((id) => !heardVoters.includes(id)),
    quorumHeard: heardVoters.length >= quorumSize(voters.length),
    commitIndex: s.commitIndex,
  };
}

/** What `promoteLeader` would answer on this node now: null when it may campaign. */
export function promoteRefusal(s: CoreState): PromoteRefusal | null {
  const self = s.config.id;
  if (s.role === "leader") return { code: "ALREADY_LEADER", peer: null };
  if (!isVoter(s.log.config, self)) return { code: "NOT_VOTER", peer: null };
  if (s.role !== "follower") return { code: "CAMPAIGN_IN_PROGRESS", peer: null };
  // `campaign` would do nothing: a promotion that passed would not start one.
  if (!mayCampaign(s)) return { code: "CANDIDACY_HELD", peer: null };
  if (s.leaderId !== null && s.electionElapsedTicks < s.config.electionTimeoutTicks)
    return { code: "LEADER_ALIVE", peer: s.leaderId };
  const ranked = rankedContenders(s);
  if (ranked.length < quorumSize(s.log.config.voters.length)) return { code: "QUORUM_NOT_HEARD", peer: null };
  const own = { lastLogIndex: s.log.lastIndex, lastLogTerm: s.log.lastTerm };
  const ahead = ranked.find((c) => moreUpToDate(c, own));
  if (ahead !== undefined) return { code: "LOG_BEHIND", peer: ahead.id };
  if (mayLead(s.log.config, self)) return null;
  const eligible = ranked.filter((c) => c.mayLead);
  const asGood = eligible.find((c) => !moreUpToDate(own, c));
  if (asGood !== undefined || eligible.length === 0)
    return { code: "NOT_ELIGIBLE", peer: asGood?.id ?? null };
  return null;
}

/** A leader's message arrived (or this node took office): the loss, if any, is over. */
export function leaderFound(s: CoreState, leaderId: NodeId): void {
  const f = s.failover;
  f.leaderHeardTick = s.nowTick;
  f.lastLeaderId = leaderId;
  if (f.leaderLostTick === null && f.peers.size === 0) return;
  f.leaderLostTick = null;
  f.lossReported = false;
  f.peers.clear();
  f.publishedCandidate = null;
  f.deadlineReported = false;
  f.zoneDeferred = false;
}
