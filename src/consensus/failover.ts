/**
 * Failover on the follower's side: what a voter does when its election timer fires, per the
 * failover settings of its configuration (`failover-config.ts`); the operator's promotion; the
 * approve mode's proposal and timeout.
 *
 * When the timer fires (no leader heard for the randomized election timeout, Raft §5.2):
 *  - mode `auto`, not paused, and this voter may lead: it campaigns, as Raft does; except that
 *    once per loss a voter outside the lost leader's zone first waits `zoneDeferFraction` of an
 *    election timeout more when a voter of that zone may lead (`election-deferred`), so that one
 *    usually wins first;
 *  - a witness or never-promote voter campaigns by itself only as a relay (`relayNeeded`): in mode
 *    auto, when it holds entries that every reachable voter that may lead lacks. Such voters refuse
 *    those voters their votes (§5.4.1), so without the relay no leader could be elected until a
 *    voter holding those entries returned. Elected, it hands over at once (`handoff.ts`);
 *  - otherwise nobody campaigns by itself: a campaign under way ends (`election-timeout`), the loss
 *    is reported once (`leader-lost`, `leaderLostAtTick`), the leader is forgotten (clients get
 *    `NO_LEADER`, not a redirect to a dead node), and the voter sends every other voter a failover
 *    probe (a pre-vote request, which changes nothing at the receiver, `failover-view.ts`) each
 *    election timeout, so that leaderless voters learn each other's positions. In mode approve the
 *    voter also publishes its proposal (`failover-pending`) once it heard from a majority, and
 *    (unless paused) once `approveTimeoutMs` has passed since the loss (`failover-timeout`) the
 *    policy applies: with `promote`, the candidate campaigns if its own promotion check passes
 *    (again at each later timeout while leaderless); with `stay-leaderless`, nobody does.
 *
 * `promoteLeader` (an operator's command, and the approval in mode approve) campaigns at once if
 * `promoteRefusal` finds nothing against it. Safety never rests on these rules: a campaign started
 * in any mode is an ordinary Raft election (pre-vote, §5.4.1 vote rule, one vote per term), so
 * every mode keeps Raft's guarantees; the modes only decide who starts one.
 */
import { assert } from "../lib/assert.ts";
import { type NodeId, term } from "../types/ids.ts";
import {
  failoverIsAutomatic,
  failoverSettingsOf,
  isMember,
  mayLead,
  memberAttributesOf,
} from "./cluster-config.ts";
import { type CoreState, otherMembers, resetElectionTimer, selfIsVoter } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { campaign } from "./election.ts";
import type { FailoverSettings } from "./failover-config.ts";
import {
  type FailoverProposal,
  failoverProposal,
  type PromoteRefusal,
  promoteRefusal,
  relayNeeded,
} from "./failover-view.ts";
import type { PromoteRequestId } from "./inputs.ts";
import { mayCampaign } from "./lost-entries.ts";
import { becomeFollower } from "./roles.ts";

/** The extra wait, as a fraction of the base election timeout, of a voter outside the lost leader's zone. */
export const zoneDeferFraction = 0.5;

/** What a node reports about failover (`RaftCore.status().failover`). */
export type FailoverStatus = {
  /** The settings of this node's configuration (the latest in its log). */
  readonly settings: FailoverSettings;
  /** Mode auto and not paused: a lost leader is replaced without an operator. */
  readonly automatic: boolean;
  /** When this node concluded it has no leader (its tick); null while it has one. */
  readonly leaderLostAtTick: number | null;
  readonly lastLeaderId: NodeId | null;
  readonly leaderLastHeardTicksAgo: number | null;
  /** Voters heard from since the leader was lost, with their last log positions. */
  readonly peers: readonly {
    readonly id: NodeId;
    readonly lastLogIndex: number;
    readonly lastLogTerm: number;
    readonly heardTicksAgo: number;
  }[];
  /** Who this node would promote, and at what cost (null while a leader is known). */
  readonly proposal: FailoverProposal | null;
  /** Mode approve: the tick at which the policy applies (null otherwise). */
  readonly approveDeadlineTick: number | null;
  /** What `promoteLeader` on this node would answer now (null: it would campaign). */
  readonly promoteRefusal: PromoteRefusal | null;
};

function approveTimeoutTicks(s: CoreState): number {
  return Math.max(1, Math.ceil(failoverSettingsOf(s.log.config).approveTimeoutMs / s.config.tickMs));
}

function approveDeadlineTick(s: CoreState): number | null {
  const { mode } = failoverSettingsOf(s.log.config);
  const lost = s.failover.leaderLostTick;
  return mode !== "approve" || lost === null ? null : lost + approveTimeoutTicks(s);
}

/** Non-leader tick: the election timer, and the approve deadline. */
export function tickElection(s: CoreState, out: EffectsBuilder): void {
  assert(s.role !== "leader", "leaders do not run the election timer");
  s.electionElapsedTicks++;
  checkApproveDeadline(s, out);
  if (s.electionElapsedTicks >= s.randomizedElectionTimeoutTicks) electionTimeout(s, out);
}

function campaignsByItself(s: CoreState): boolean {
  const config = s.log.config;
  const automatic = failoverIsAutomatic(config) || s.config.unsafeTestBugs.campaignWhenNotAutomatic === true;
  if (!automatic) return false;
  return mayLead(config, s.config.id) || relayNeeded(s);
}

function electionTimeout(s: CoreState, out: EffectsBuilder): void {
  if (s.failover.leaderLostTick === null) s.failover.leaderLostTick = s.nowTick;
  // A non-voter never campaigns (dissertation §4.2.3). A learner of its own configuration still
  // probes: it may be a voter in a newer configuration that others hold, and their promotion checks
  // must hear it (found by the simulator: a demoted-then-promoted voter that missed its promotion
  // was the only other voter of the most up-to-date node, which could then never be promoted).
  if (!selfIsVoter(s)) {
    // Its timer is left running (a learner keeps the leader it knew, as before), so the probes go
    // once per base election timeout from the first firing.
    const sinceTimeout = s.electionElapsedTicks - s.randomizedElectionTimeoutTicks;
    if (isMember(s.log.config, s.config.id) && sinceTimeout % s.config.electionTimeoutTicks === 0)
      probe(s, out);
    return;
  }
  if (campaignsByItself(s)) {
    if (!deferForZone(s, out)) campaign(s, out, false);
    return;
  }
  if (s.role !== "follower") becomeFollower(s, out, s.term, null, "election-timeout", null);
  else resetElectionTimer(s);
  reportLeaderLost(s, out);
  probe(s, out);
  const settings = failoverSettingsOf(s.log.config);
  if (settings.mode !== "approve") return;
  publishProposal(s, out, settings);
  if (!settings.paused && s.failover.deadlineReported && settings.approvePolicy === "promote")
    campaignAsCandidate(s, out);
}

/** Once per loss: a voter outside the lost leader's zone gives a voter of that zone a head start. */
function deferForZone(s: CoreState, out: EffectsBuilder): boolean {
  const f = s.failover;
  const self = s.config.id;
  if (s.role !== "follower" || f.zoneDeferred || f.lastLeaderId === null) return false;
  const config = s.log.config;
  const lost = f.lastLeaderId;
  const zone = memberAttributesOf(config, lost).zone;
  if (zone === null || memberAttributesOf(config, self).zone === zone) return false;
  const inZone = (id: NodeId) =>
    id !== self && id !== lost && mayLead(config, id) && memberAttributesOf(config, id).zone === zone;
  if (!config.voters.some(inZone)) return false;
  f.zoneDeferred = true;
  const ticks = Math.ceil(s.config.electionTimeoutTicks * zoneDeferFraction);
  s.electionElapsedTicks -= ticks;
  out.event({ type: "election-deferred", node: self, term: s.term, zone, ticks });
  return true;
}

function reportLeaderLost(s: CoreState, out: EffectsBuilder): void {
  const f = s.failover;
  s.leaderId = null;
  if (f.lossReported) return;
  f.lossReported = true;
  const { mode, paused } = failoverSettingsOf(s.log.config);
  out.event({
    type: "leader-lost",
    node: s.config.id,
    term: s.term,
    lastLeader: f.lastLeaderId,
    leaderHeardTick: f.leaderHeardTick,
    mode,
    paused,
  });
}

/**
 * A pre-vote request to every other member, learners included: it tells them our position and
 * changes nothing of theirs. Learners too, because our configuration may be older than theirs: a
 * node that is a learner here may already be a voter in the newer configuration it holds, and it
 * learns the positions of the voters around it only from these probes. Without them, a voter that
 * was promoted while the others missed the entry heard from nobody, and in modes manual and approve
 * no leader could be made (found by the simulator).
 * A voter that may not campaign (its candidacy held back, or lost entries outstanding) tells its
 * commit position instead: it could never be promoted to hand on what it holds beyond, so the others
 * must not defer to it (their promotions would refuse LOG_BEHIND for its sake, and in mode manual no
 * leader could be made to heal it), yet it is heard, since it votes (found by the simulator). It
 * says so (`held`), so the others do not name it their candidate: at a tie in position it would
 * win on priority or id, and in mode approve every proposal, approval and timeout policy would wait
 * on a node that cannot be promoted (found by the simulator).
 * A learner of its own configuration probes the same way, for the same reason: it never campaigns.
 * Its log may end in an uncommitted entry that demoted it; at its full position the voters that
 * hold the older configuration deferred to it for good (a never-promote voter would not relay, a
 * promotion refused LOG_BEHIND), though one of them could be elected and overwrite that entry
 * (simulator seeds 3764, 3635 and 2591).
 */
function probe(s: CoreState, out: EffectsBuilder): void {
  const held = !mayCampaign(s) || !selfIsVoter(s);
  const lastLogIndex = held ? s.commitIndex : s.log.lastIndex;
  const lastLogTerm = held ? (s.log.termAt(s.commitIndex) ?? s.log.lastTerm) : s.log.lastTerm;
  for (const peer of otherMembers(s)) {
    out.send({
      type: "preVote",
      from: s.config.id,
      to: peer,
      term: term(s.term + 1),
      lastLogIndex,
      lastLogTerm,
      ...(held ? { held: true as const } : {}),
    });
  }
}

function publishProposal(s: CoreState, out: EffectsBuilder, settings: FailoverSettings): void {
  const proposal = failoverProposal(s);
  const deadlineTick = approveDeadlineTick(s);
  // A proposal whose voters are not a majority could not be carried out: it is not worth an alert.
  if (proposal === null || deadlineTick === null || !proposal.quorumHeard) return;
  if (proposal.candidate === s.failover.publishedCandidate) return;
  s.failover.publishedCandidate = proposal.candidate;
  out.event({
    type: "failover-pending",
    node: s.config.id,
    term: s.term,
    candidate: proposal.candidate,
    lastIndex: proposal.lastLogIndex,
    lastTerm: proposal.lastLogTerm,
    relay: proposal.relay,
    unheardVoters: proposal.unheardVoters,
    deadlineTick,
    policy: settings.approvePolicy,
  });
}

function checkApproveDeadline(s: CoreState, out: EffectsBuilder): void {
  const f = s.failover;
  const settings = failoverSettingsOf(s.log.config);
  const deadlineTick = approveDeadlineTick(s);
  if (deadlineTick === null || settings.paused || f.deadlineReported || !f.lossReported) return;
  if (s.nowTick < deadlineTick) return;
  f.deadlineReported = true;
  const candidate = failoverProposal(s)?.candidate ?? null;
  out.event({
    type: "failover-timeout",
    node: s.config.id,
    term: s.term,
    policy: settings.approvePolicy,
    candidate,
  });
  if (settings.approvePolicy === "promote") campaignAsCandidate(s, out);
}

/** Mode approve, after the deadline with policy promote: the proposed candidate campaigns if it may. */
function campaignAsCandidate(s: CoreState, out: EffectsBuilder): void {
  if (s.role !== "follower" || failoverProposal(s)?.candidate !== s.config.id) return;
  if (promoteRefusal(s) !== null) return;
  campaign(s, out, false);
}

export function handlePromoteLeader(s: CoreState, out: EffectsBuilder, requestId: PromoteRequestId): void {
  const node = s.config.id;
  const refusal = promoteRefusal(s);
  if (refusal !== null) {
    out.promotions.push({ requestId, started: false, ...refusal });
    out.event({ type: "promote-refused", node, term: s.term, ...refusal });
    return;
  }
  out.promotions.push({ requestId, started: true });
  out.event({ type: "promote-started", node, term: s.term });
  if (s.failover.leaderLostTick === null) s.failover.leaderLostTick = s.nowTick;
  campaign(s, out, false);
  assert(s.role !== "follower", "a promotion that passed its check campaigns");
}

export function failoverStatus(s: CoreState): FailoverStatus {
  const f = s.failover;
  const peers = [...f.peers].map(([id, position]) => ({
    id,
    lastLogIndex: position.lastLogIndex,
    lastLogTerm: position.lastLogTerm,
    heardTicksAgo: s.nowTick - position.heardTick,
  }));
  return {
    settings: failoverSettingsOf(s.log.config),
    automatic: failoverIsAutomatic(s.log.config),
    leaderLostAtTick: f.leaderLostTick,
    lastLeaderId: f.lastLeaderId,
    leaderLastHeardTicksAgo: f.leaderHeardTick === null ? null : s.nowTick - f.leaderHeardTick,
    peers,
    proposal: failoverProposal(s),
    approveDeadlineTick: approveDeadlineTick(s),
    promoteRefusal: promoteRefusal(s),
  };
}
