/**
 * Linearizable reads without writing to the log (ReadIndex, thesis §6.4).
 *
 * The leader records its commit index as the read's index, then confirms it is still the leader by
 * a round of heartbeats acknowledged by a majority of the voters of its configuration (itself
 * included while it is one; learners' acknowledgements never count); only then does it emit
 * `readReady`. The host serves the read once its applied index reaches that index. A leader that
 * has not yet committed an entry of its own term does not know the full commit index (§6.4 step 1:
 * the no-op of Raft §8 fixes that quickly) and refuses with LEADER_NOT_READY.
 *
 * Invariants: rounds increase; a read waits for a round issued after it arrived; reads become
 * ready in arrival order; at most `readsPendingMax` wait; a leader that steps down rejects them all.
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";
import { quorumSize } from "./config.ts";
import { type CoreState, progressOf } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import type { ReadRequestId } from "./inputs.ts";
import { broadcastHeartbeat } from "./replication.ts";

export function handleReadIndex(s: CoreState, out: EffectsBuilder, requestId: ReadRequestId): void {
  if (s.role !== "leader") {
    out.readRejected.push({
      requestId,
      code: s.leaderId === null ? "NO_LEADER" : "NOT_LEADER",
      leaderId: s.leaderId,
    });
    return;
  }
  if (s.log.termAt(s.commitIndex) !== s.term) {
    out.readRejected.push({ requestId, code: "LEADER_NOT_READY", leaderId: s.leaderId });
    return;
  }
  if (s.pendingReads.length >= s.config.readsPendingMax) {
    out.readRejected.push({ requestId, code: "OVERLOADED", leaderId: s.leaderId });
    return;
  }
  if (roundConfirmed(s, s.readRound + 1)) {
    // A single voter that is this leader: no one else can have been elected.
    out.readReady.push({ requestId, index: s.commitIndex });
    return;
  }
  s.readRound++;
  s.pendingReads.push({ requestId, index: s.commitIndex, round: s.readRound });
  broadcastHeartbeat(s, out);
}

function roundConfirmed(s: CoreState, round: number): boolean {
  const voters = s.log.config.voters;
  let acknowledged = 0;
  for (const voter of voters) {
    if (voter === s.config.id || progressOf(s, voter).readRoundAcknowledged >= round) acknowledged++;
  }
  return acknowledged >= quorumSize(voters.length);
}

/** A follower echoed `round`: release every read whose round a majority has now confirmed. */
export function acknowledgeReadRound(s: CoreState, out: EffectsBuilder, peer: NodeId, round: number): void {
  assert(round <= s.readRound, "acknowledged a read round never issued");
  const progress = progressOf(s, peer);
  if (round <= progress.readRoundAcknowledged) return;
  progress.readRoundAcknowledged = round;
  let released = 0;
  for (const read of s.pendingReads) {
    if (!roundConfirmed(s, read.round)) break;
    out.readReady.push({ requestId: read.requestId, index: read.index });
    released++;
  }
  s.pendingReads.splice(0, released);
}
