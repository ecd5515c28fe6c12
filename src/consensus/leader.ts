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
import { logIndex, type NodeId } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { quorumSize } from "./config.ts";
import { type CoreState, progressOf } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import type { ProposeInput } from "./inputs.ts";
import type { AppendEntriesResponseMessage, HeartbeatResponseMessage } from "./messages.ts";
import type { Progress } from "./progress.ts";
import { acknowledgeReadRound } from "./read-index.ts";
import {
  broadcastAppend,
  broadcastHeartbeat,
  maybeAdvanceCommit,
  nextIndexFromHint,
  sendAppend,
  sendAppendsWhileOpen,
} from "./replication.ts";
import { becomeFollower } from "./roles.ts";
import { maybeSendTimeoutNow, tickTransfer } from "./transfer.ts";

export function handlePropose(s: CoreState, out: EffectsBuilder, input: ProposeInput): void {
  const { proposalId } = input;
  assert(
    input.kind === EntryKind.command || input.kind === EntryKind.config,
    "only commands and config are proposed",
  );
  const timeoutTicks = input.timeoutTicks ?? s.config.proposalTimeoutTicks;
  assert(
    Number.isSafeInteger(timeoutTicks) && timeoutTicks >= 1,
    "proposal timeout must be a positive tick count",
  );
  if (s.role !== "leader") {
    const code = s.leaderId === null ? "NO_LEADER" : "NOT_LEADER";
    out.proposals.push({ proposalId, accepted: false, code, leaderId: s.leaderId });
    return;
  }
  if (s.transfer !== null) {
    out.proposals.push({ proposalId, accepted: false, code: "LEADERSHIP_TRANSFER", leaderId: s.leaderId });
    return;
  }
  const overloaded =
    s.pendingProposals.length >= s.config.proposalsPendingMax ||
    s.log.lastIndex - s.commitIndex >= s.config.uncommittedEntriesMax;
  if (overloaded) {
    out.proposals.push({ proposalId, accepted: false, code: "OVERLOADED", leaderId: s.leaderId });
    return;
  }
  const entry = { index: logIndex(s.log.lastIndex + 1), term: s.term, kind: input.kind, data: input.data };
  s.log.append(entry);
  out.append(entry);
  const durability = input.durability ?? s.config.defaultDurability;
  s.pendingProposals.push({
    proposalId,
    index: entry.index,
    term: entry.term,
    durability,
    deadlineTick: s.nowTick + timeoutTicks,
    compactedAsOurs: false,
  });
  out.proposals.push({ proposalId, accepted: true, index: entry.index, term: entry.term, durability });
  broadcastAppend(s, out, false);
}

function heard(s: CoreState, progress: Progress, appliedIndex: number): void {
  progress.lastHeardTick = s.nowTick;
  if (appliedIndex > progress.appliedIndex) {
    progress.appliedIndex = logIndex(appliedIndex);
    s.replicationVersion++;
  }
}

/** After the commit index moved, tell every follower (an empty AppendEntries carries it). */
export function afterCommitMaybeAdvanced(s: CoreState, out: EffectsBuilder): void {
  if (maybeAdvanceCommit(s)) broadcastAppend(s, out, false);
}

export function handleAppendEntriesResponse(
  s: CoreState,
  out: EffectsBuilder,
  message: AppendEntriesResponseMessage,
): void {
  const progress = progressOf(s, message.from);
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
    if (message.from === s.transfer?.target) maybeSendTimeoutNow(s, out);
  }
  sendAppendsWhileOpen(s, out, message.from);
}

export function handleHeartbeatResponse(
  s: CoreState,
  out: EffectsBuilder,
  message: HeartbeatResponseMessage,
): void {
  const progress = progressOf(s, message.from);
  heard(s, progress, message.appliedIndex);
  // The follower is alive: unblock a probe, or free a slot whose append was probably lost.
  if (progress.state === "probe") progress.probeSent = false;
  else if (progress.state === "replicate" && progress.isPaused()) progress.freeOldestInflight();
  if (progress.matchIndex < s.log.lastIndex) sendAppend(s, out, message.from, true);
  if (message.readRound > 0) acknowledgeReadRound(s, out, message.from, message.readRound);
}

/** Thesis §6.2: has a majority (counting ourselves) been heard from within an election timeout? */
export function quorumActive(s: CoreState): boolean {
  let active = 1;
  for (const progress of s.progress.values()) {
    if (s.nowTick - progress.lastHeardTick <= s.config.electionTimeoutTicks) active++;
  }
  return active >= quorumSize(s.config.voters.length);
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
    broadcastHeartbeat(s, out);
  }
  tickTransfer(s, out);
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
