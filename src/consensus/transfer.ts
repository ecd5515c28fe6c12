/**
 * Leadership transfer (Ongaro thesis §3.10).
 *
 * The leader stops accepting proposals (they are rejected LEADERSHIP_TRANSFER so the log stops
 * growing), brings the target fully up to date, then sends it `timeoutNow`. The target campaigns at
 * once, skipping pre-vote, with the `transfer` flag that lets voters grant despite having heard
 * from a live leader. The old leader steps down when it sees the higher term. If the target has not
 * won within an election timeout (counted from the start, and again from the first `timeoutNow`, so
 * a slow catch-up does not leave the target no time to campaign), the transfer is aborted and
 * writes resume.
 *
 * An operator's transfer (a switchover) names its target, or lets the leader pick the best voter
 * that may lead (`handoff.ts`: heard from lately, most caught up, highest priority, the leader's
 * zone). A witness or never-promote voter is refused as a target (`NOT_ELIGIBLE`): it would only
 * hand the office on. The leader also starts transfers itself (`handoff.ts`): to a caught-up voter
 * of higher priority, and always when it may not lead; a failed priority transfer is not retried
 * before `priorityTransferBackoffTimeouts` election timeouts, so an unreachable favourite does not
 * stall writes over and over.
 *
 * Invariants: at most one transfer at a time; only a leader has one; the target is another voter
 * (a membership change is refused during a transfer, so it stays one until the transfer ends).
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";
import { isVoter, mayLead } from "./cluster-config.ts";
import { type CoreState, progressOf, type TransferReason } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { sendAppend } from "./replication.ts";

/** Election timeouts a leader waits after a failed priority transfer before it tries another. */
export const priorityTransferBackoffTimeouts = 10;

export function startTransfer(
  s: CoreState,
  out: EffectsBuilder,
  target: NodeId,
  reason: TransferReason = "operator",
): void {
  const node = s.config.id;
  if (s.role !== "leader") {
    out.event({ type: "transfer-rejected", node, term: s.term, target, reason: "NOT_LEADER" });
    return;
  }
  // Only a voter of the current configuration can win an election.
  if (!isVoter(s.log.config, target)) {
    out.event({ type: "transfer-rejected", node, term: s.term, target, reason: "UNKNOWN_TARGET" });
    return;
  }
  if (target === node) return;
  if (!mayLead(s.log.config, target)) {
    out.event({ type: "transfer-rejected", node, term: s.term, target, reason: "NOT_ELIGIBLE" });
    return;
  }
  if (s.transfer !== null) {
    if (s.transfer.target === target) {
      out.event({ type: "transfer-rejected", node, term: s.term, target, reason: "IN_PROGRESS" });
      return;
    }
    out.event({
      type: "transfer-aborted",
      node,
      term: s.term,
      target: s.transfer.target,
      reason: "superseded",
    });
  }
  s.transfer = {
    target,
    reason,
    deadlineTick: s.nowTick + s.config.electionTimeoutTicks,
    timeoutNowSent: false,
  };
  out.event({ type: "transfer-started", node, term: s.term, target });
  if (!maybeSendTimeoutNow(s, out)) sendAppend(s, out, target, true);
}

/** Sends `timeoutNow` once the target's durable log matches ours to the end. Returns whether sent. */
export function maybeSendTimeoutNow(s: CoreState, out: EffectsBuilder): boolean {
  if (s.transfer === null) return false;
  assert(s.role === "leader", "only a leader transfers");
  const target = s.transfer.target;
  if (progressOf(s, target).matchIndex !== s.log.lastIndex) return false;
  out.send({ type: "timeoutNow", from: s.config.id, to: target, term: s.term });
  if (!s.transfer.timeoutNowSent) {
    // Catching up may have used most of the time: give the target one full election timeout to win.
    s.transfer = {
      target,
      reason: s.transfer.reason,
      timeoutNowSent: true,
      deadlineTick: Math.max(s.transfer.deadlineTick, s.nowTick + s.config.electionTimeoutTicks),
    };
  }
  return true;
}

/** Aborts a transfer whose target did not take over within an election timeout; writes resume. */
export function tickTransfer(s: CoreState, out: EffectsBuilder): void {
  if (s.transfer === null || s.nowTick < s.transfer.deadlineTick) return;
  out.event({
    type: "transfer-aborted",
    node: s.config.id,
    term: s.term,
    target: s.transfer.target,
    reason: "timeout",
  });
  progressOf(s, s.transfer.target).transfersFailed++;
  if (s.transfer.reason === "priority")
    s.failover.priorityTransferNotBeforeTick =
      s.nowTick + priorityTransferBackoffTimeouts * s.config.electionTimeoutTicks;
  s.transfer = null;
}
