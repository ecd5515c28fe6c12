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
 * Invariants: at most one transfer at a time; only a leader has one; the target is another voter
 * (a membership change is refused during a transfer, so it stays one until the transfer ends).
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";
import { isVoter } from "./cluster-config.ts";
import { type CoreState, progressOf } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { sendAppend } from "./replication.ts";

export function startTransfer(s: CoreState, out: EffectsBuilder, target: NodeId): void {
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
  s.transfer = { target, deadlineTick: s.nowTick + s.config.electionTimeoutTicks, timeoutNowSent: false };
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
  s.transfer = null;
}
