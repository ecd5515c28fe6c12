/**
 * The leader's handlers: proposals, replies from followers, and its tick (heartbeats, check-quorum,
 * transfer deadline).
 *
 * Check-quorum (thesis §6.2): a leader that has not heard from a majority (itself included) within
 * an election timeout steps down and stops accepting writes. This fences a leader cut off in a
 * minority: it can never acknowledge a `majority` write (it cannot commit), and after one election
 * timeout it stops taking writes at any level.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type NodeId } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { type Durability, quorumSize } from "./config.ts";
import { type CoreState, progressOf, selfIsVoter } from "./core-state.ts";
import type { EffectsBuilder, ProposalRejectionCode } from "./effects.ts";
import { maybeHandOff } from "./handoff.ts";
import type { ProposalId, ProposeInput } from "./inputs.ts";
import type { AppendEntriesResponseMessage, HeartbeatResponseMessage } from "./messages.ts";
import type { Progress } from "./progress.ts";
import { acknowledgeReadRound, issueWaitingRound } from "./read-index.ts";
import {
  broadcastAppend,
  broadcastHeartbeat,
  broadcastProposal,
  maybeAdvanceCommit,
  nextIndexFromHint,
  sendAppend,
  sendAppendsWhileOpen,
} from "./replication.ts";
import { becomeFollower } from "./roles.ts";
import { maybeSendTimeoutNow, tickTransfer } from "./transfer.ts";

/** The refusal any proposal meets on this node now (not leader, transfer, bounds), or null. */
export function proposalRefusal(s: CoreState): ProposalRejectionCode | null {
  if (s.role !== "leader") return s.leaderId === null ? "NO_LEADER" : "NOT_LEADER";
  if (s.transfer !== null) return "LEADERSHIP_TRANSFER";
  const overloaded =
    s.pendingProposals.length >= s.config.proposalsPendingMax ||
    s.log.lastIndex - s.commitIndex >= s.config.uncommittedEntriesMax;
  return overloaded ? "OVERLOADED" : null;
}

export function rejectProposal(
  s: CoreState,
  out: EffectsBuilder,
  proposalId: ProposalId,
  code: ProposalRejectionCode,
): void {
  out.proposals.push({ proposalId, accepted: false, code, leaderId: s.leaderId });
}

/** Appends a proposal's entry, tracks it for its durability level and reports it accepted. */
export function appendProposal(
  s: CoreState,
  out: EffectsBuilder,
  proposal: { proposalId: ProposalId; kind: EntryKind; data: Uint8Array; durability: Durability },
  timeoutTicks: number,
): LogIndex {
  assert(s.role === "leader" && s.transfer === null, "only a leader that is not transferring appends");
  assert(
    Number.isSafeInteger(timeoutTicks) && timeoutTicks >= 1,
    "proposal timeout must be a positive tick count",
  );
  const { proposalId, kind, data, durability } = proposal;
  const entry = { index: logIndex(s.log.lastIndex + 1), term: s.term, kind, data };
  s.log.append(entry);
  out.append(entry);
  if (durability === "all") s.allProposalsPending++;
  s.pendingProposals.push({
    proposalId,
    index: entry.index,
    term: entry.term,
    durability,
    deadlineTick: s.nowTick + timeoutTicks,
    compactedAsOurs: false,
  });
  out.proposals.push({ proposalId, accepted: true, index: entry.index, term: entry.term, durability });
  return entry.index;
}

export function handlePropose(s: CoreState, out: EffectsBuilder, input: ProposeInput): void {
  // Configuration entries carry the safety rules of membership changes: only `changeMembership` writes them.
  assert(input.kind === EntryKind.command, "only commands are proposed");
  const refusal = proposalRefusal(s);
  if (refusal !== null) {
    rejectProposal(s, out, input.proposalId, refusal);
    return;
  }
  const durability = input.durability ?? s.config.defaultDurability;
  const timeoutTicks = input.timeoutTicks ?? s.config.proposalTimeoutTicks;
  appendProposal(s, out, { ...input, durability }, timeoutTicks);
  broadcastProposal(s, out);
}

function heard(s: CoreState, progress: Progress, appliedIndex: number): void {
  progress.lastHeardTick = s.nowTick;
  if (appliedIndex > progress.appliedIndex) {
    progress.appliedIndex = logIndex(appliedIndex);
    s.replicationVersion++;
  }
}

/**
 * After the commit index moved, tell every follower (an empty AppendEntries carries it; with
 * `deferCommitNews`, the next one with entries or the host's `commitNews` step). A leader
 * whose committed configuration no longer makes it a voter then steps down (dissertation §4.2.2):
 * until that commit it kept leading a cluster it is not part of, without counting itself.
 */
export function afterCommitMaybeAdvanced(s: CoreState, out: EffectsBuilder): void {
  if (!maybeAdvanceCommit(s)) return;
  broadcastAppend(s, out, false);
  if (
    !selfIsVoter(s) &&
    s.log.configIndex <= s.commitIndex &&
    s.config.unsafeTestBugs.removedLeaderStays !== true
  )
    becomeFollower(s, out, s.term, null, "removed-from-configuration", null);
}

export function handleAppendEntriesResponse(
  s: CoreState,
  out: EffectsBuilder,
  message: AppendEntriesResponseMessage,
): void {
  // A node removed from the configuration may still answer what it was sent before: ignore it.
  const progress = s.progress.get(message.from);
  if (progress === undefined) return;
  heard(s, progress, message.appliedIndex);
  if (!message.success) {
    if (progress.reject(message.rejectedIndex, nextIndexFromHint(s, message)))
      sendAppend(s, out, message.from, true);
    return;
  }
  assert(message.matchIndex <= s.log.lastIndex, "follower matched beyond the leader's log");
  const previousState = progress.state;
  const advanced = progress.acknowledge(message.matchIndex);
  if (
    previousState === "probe" ||
    (previousState === "snapshot" && progress.matchIndex >= progress.pendingSnapshotIndex)
  ) {
    progress.becomeReplicate();
  }
  if (advanced) {
    s.replicationVersion++;
    afterCommitMaybeAdvanced(s, out);
    // The commit may have been of a configuration that removed us (§4.2.2): we lead no more.
    if (s.role !== "leader") return;
    if (message.from === s.transfer?.target) maybeSendTimeoutNow(s, out);
  }
  sendAppendsWhileOpen(s, out, message.from);
}

export function handleHeartbeatResponse(
  s: CoreState,
  out: EffectsBuilder,
  message: HeartbeatResponseMessage,
): void {
  const progress = s.progress.get(message.from);
  if (progress === undefined) return;
  heard(s, progress, message.appliedIndex);
  // An applied report follows every apply under load; resending on each would send an empty append
  // (and draw an answer) per report while entries are in flight. A heartbeat's answer does that.
  if (message.report === true) return;
  // The follower is alive: unblock a probe, or free a slot whose append was probably lost.
  if (progress.state === "probe") progress.probeSent = false;
  else if (progress.state === "replicate" && progress.isPaused()) progress.freeOldestInflight();
  if (progress.matchIndex < s.log.lastIndex) sendAppend(s, out, message.from, true);
  if (message.readRound > 0) acknowledgeReadRound(s, out, message.from, message.readRound);
}

/**
 * Thesis §6.2: has a majority of the voters (ourselves included while we are one) been heard from
 * within an election timeout? Learners keep no leader in office.
 */
export function quorumActive(s: CoreState): boolean {
  const voters = s.log.config.voters;
  let active = 0;
  for (const voter of voters) {
    if (voter === s.config.id) active++;
    else if (s.nowTick - progressOf(s, voter).lastHeardTick <= s.config.electionTimeoutTicks) active++;
  }
  return active >= quorumSize(voters.length);
}

export function tickLeader(s: CoreState, out: EffectsBuilder): void {
  assert(s.role === "leader", "leader tick on a non-leader");
  if (s.config.checkQuorum && !quorumActive(s)) {
    becomeFollower(s, out, s.term, null, "check-quorum-lost", null);
    return;
  }
  s.heartbeatElapsedTicks++;
  if (s.heartbeatElapsedTicks >= s.config.heartbeatIntervalTicks) {
    s.heartbeatElapsedTicks = 0;
    issueWaitingRound(s);
    broadcastHeartbeat(s, out);
  }
  tickTransfer(s, out);
  maybeHandOff(s, out);
}

export function handleSnapshotSent(s: CoreState, out: EffectsBuilder, peer: NodeId, index: number): void {
  if (s.role !== "leader" || !s.progress.has(peer)) return;
  const progress = progressOf(s, peer);
  if (progress.state !== "snapshot") return;
  progress.pendingSnapshotIndex = logIndex(Math.max(progress.pendingSnapshotIndex, index));
  progress.becomeProbe();
  sendAppend(s, out, peer, true);
}

export function handleSnapshotFailed(s: CoreState, peer: NodeId): void {
  if (s.role !== "leader" || !s.progress.has(peer)) return;
  const progress = progressOf(s, peer);
  if (progress.state !== "snapshot") return;
  progress.becomeProbe();
  // Wait for the next heartbeat answer before asking for another snapshot, so failures do not spin.
  progress.probeSent = true;
}
