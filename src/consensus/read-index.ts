/**
 * Linearizable reads without writing to the log (ReadIndex, thesis §6.4), on the leader and, when
 * `followerReadIndex` is on, through it for followers and learners (§6.4.1).
 *
 * The leader records its commit index as the read's index, then confirms it is still the leader by
 * a round of heartbeats acknowledged by a majority of the voters of its configuration (itself
 * included while it is one; learners' acknowledgements never count); only then does it emit
 * `readReady`. The host serves the read once its applied index reaches that index. A leader that
 * has not yet committed an entry of its own term does not know the full commit index (§6.4 step 1:
 * the no-op of Raft §8 fixes that quickly) and refuses with LEADER_NOT_READY.
 *
 * A follower (or learner) asks its leader with a `readIndex` message; the leader runs the same round
 * and answers `readIndexResponse` with the confirmed index (or a refusal), and the follower emits
 * `readReady` with it: the follower serves the read once its own applied index reaches the leader's
 * confirmed commit index, which is linearizable for the same reason as on the leader. A forwarded
 * read that gets no answer within an election timeout, or whose leader changes, is rejected
 * NOT_LEADER (NO_LEADER when none is known), as reads on followers were before, so the host can
 * still ask the leader itself. With `followerReadIndex` off a follower rejects at once.
 *
 * Invariants: rounds increase; a read waits for a round issued after it arrived; at most one round
 * is in flight, and reads that arrive meanwhile share the next one; reads become ready in arrival order; at most `readsPendingMax` wait on a leader, and at most as many forwarded
 * reads on a follower; a leader that steps down rejects them all (answering members that asked).
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";
import { memberAttributesOf } from "./cluster-config.ts";
import { quorumSize } from "./config.ts";
import { type CoreState, type PendingRead, progressOf } from "./core-state.ts";
import type { EffectsBuilder, ReadRejectionCode } from "./effects.ts";
import type { ReadRequestId } from "./inputs.ts";
import type { ReadIndexMessage, ReadIndexResponseMessage } from "./messages.ts";
import { sendHeartbeats } from "./replication.ts";

function notLeaderCode(s: CoreState): "NOT_LEADER" | "NO_LEADER" {
  return s.leaderId === null ? "NO_LEADER" : "NOT_LEADER";
}

/** Why this node cannot start a read round now, or null. */
function leaderReadRefusal(s: CoreState): ReadRejectionCode | null {
  if (s.role !== "leader") return notLeaderCode(s);
  if (s.log.termAt(s.commitIndex) !== s.term) return "LEADER_NOT_READY";
  if (s.pendingReads.length >= s.config.readsPendingMax) return "OVERLOADED";
  return null;
}

export function handleReadIndex(s: CoreState, out: EffectsBuilder, requestId: ReadRequestId): void {
  // A witness keeps no data, so it serves no read (it still confirms read indexes its members ask for).
  if (memberAttributesOf(s.log.config, s.config.id).witness) {
    out.readRejected.push({ requestId, ...witnessRefusal(s) });
    return;
  }
  if (s.role !== "leader" && s.config.followerReadIndex && s.role === "follower" && s.leaderId !== null) {
    forwardRead(s, out, requestId, s.leaderId);
    return;
  }
  const refusal = leaderReadRefusal(s);
  if (refusal !== null) {
    out.readRejected.push({ requestId, code: refusal, leaderId: s.leaderId });
    return;
  }
  startRound(s, out, { from: null, requestId });
}

/** Leader side of §6.4.1: a member asks for a read index. */
export function handleReadIndexRequest(s: CoreState, out: EffectsBuilder, message: ReadIndexMessage): void {
  const refusal = leaderReadRefusal(s);
  if (refusal !== null) {
    answer(s, out, message.from, message.readId, 0, refusal);
    return;
  }
  startRound(s, out, { from: message.from, readId: message.readId });
}

function startRound(s: CoreState, out: EffectsBuilder, origin: PendingRead["origin"]): void {
  assert(s.role === "leader", "only a leader runs read rounds");
  const index = s.commitIndex;
  if (roundConfirmed(s, s.readRound + 1) || s.config.unsafeTestBugs.readWithoutRound === true) {
    // A single voter that is this leader: no one else can have been elected.
    release(s, out, { origin, index, round: s.readRound });
    return;
  }
  // At most one round in flight: a read that arrives while one is waits for the next round, which
  // starts when that one is confirmed (or with the next heartbeat), together with every read that
  // arrived meanwhile. Each round costs a majority's worth of members a heartbeat and an answer
  // (`heartbeatReadQuorum`); under concurrent reads one round serves all the reads of a round trip.
  if (!roundConfirmed(s, s.readRound)) {
    s.pendingReads.push({ origin, index, round: s.readRound + 1 });
    return;
  }
  s.readRound++;
  s.pendingReads.push({ origin, index, round: s.readRound });
  heartbeatReadQuorum(s, out);
}

/**
 * A read round's heartbeats go to the fewest voters whose answers make a majority with this leader:
 * those that acknowledged the latest round, the earliest to answer first (ties: configuration
 * order). The others hear the round with the tick's next heartbeat, which goes to every member: if
 * a chosen voter does not answer, those answers confirm the round, and the next round asks the
 * voters that answered. In a 3-node cluster a round costs the leader one heartbeat and one answer
 * instead of two, and one follower nothing.
 */
function heartbeatReadQuorum(s: CoreState, out: EffectsBuilder): void {
  const voters = s.log.config.voters;
  const others = voters.filter((voter) => voter !== s.config.id);
  const needed = quorumSize(voters.length) - (others.length < voters.length ? 1 : 0);
  const ranked = others.toSorted((a, b) => {
    const first = progressOf(s, a);
    const second = progressOf(s, b);
    if (first.readRoundAcknowledged !== second.readRoundAcknowledged)
      return second.readRoundAcknowledged - first.readRoundAcknowledged;
    return first.readRoundAcknowledgedAt - second.readRoundAcknowledgedAt;
  });
  sendHeartbeats(s, out, ranked.slice(0, needed));
}

/**
 * Reads wait for the round after the one in flight (see `startRound`): issue it now. Called before
 * every heartbeat the leader sends, and when a round is confirmed.
 */
export function issueWaitingRound(s: CoreState): boolean {
  const last = s.pendingReads.at(-1);
  if (last === undefined || last.round <= s.readRound) return false;
  assert(last.round === s.readRound + 1, "reads wait for at most the round after the current one");
  s.readRound++;
  return true;
}

function answer(
  s: CoreState,
  out: EffectsBuilder,
  to: NodeId,
  readId: number,
  index: number,
  refusal: ReadIndexResponseMessage["refusal"],
): void {
  out.send({
    type: "readIndexResponse",
    from: s.config.id,
    to,
    term: s.term,
    readId,
    index: index as ReadIndexResponseMessage["index"],
    refusal,
  });
}

function release(s: CoreState, out: EffectsBuilder, read: PendingRead): void {
  const { origin, index } = read;
  if (origin.from === null) out.readReady.push({ requestId: origin.requestId, index });
  else answer(s, out, origin.from, origin.readId, index, null);
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
  progress.readRoundAcknowledgedAt = ++s.readAcknowledgements;
  let released = 0;
  for (const read of s.pendingReads) {
    if (!roundConfirmed(s, read.round)) break;
    release(s, out, read);
    released++;
  }
  s.pendingReads.splice(0, released);
  if (roundConfirmed(s, s.readRound) && issueWaitingRound(s)) heartbeatReadQuorum(s, out);
}

/** On step-down: only a leader can confirm reads. Members that asked are told at once. */
export function rejectPendingReads(s: CoreState, out: EffectsBuilder): void {
  const code = notLeaderCode(s);
  for (const { origin } of s.pendingReads) {
    if (origin.from === null)
      out.readRejected.push({ requestId: origin.requestId, code, leaderId: s.leaderId });
    else answer(s, out, origin.from, origin.readId, 0, code);
  }
  s.pendingReads.length = 0;
}

/** How a witness turns a read away: to the leader when another node leads, else with no leader to name. */
function witnessRefusal(s: CoreState): { code: "NOT_LEADER" | "NO_LEADER"; leaderId: NodeId | null } {
  const leaderId = s.leaderId === s.config.id ? null : s.leaderId;
  return { code: leaderId === null ? "NO_LEADER" : "NOT_LEADER", leaderId };
}

/**
 * This node just became a witness: it will keep no data, so every read of its own still waiting
 * (on its own round, or forwarded to its leader) is turned away. Members' reads it confirms as a
 * leader go on: they are served by the members.
 */
export function rejectOwnReads(s: CoreState, out: EffectsBuilder): void {
  const refusal = witnessRefusal(s);
  for (const read of s.forwardedReads) out.readRejected.push({ requestId: read.requestId, ...refusal });
  s.forwardedReads.length = 0;
  let kept = 0;
  for (const read of s.pendingReads) {
    if (read.origin.from === null) out.readRejected.push({ requestId: read.origin.requestId, ...refusal });
    else s.pendingReads[kept++] = read;
  }
  s.pendingReads.length = kept;
}

/**
 * A read id no earlier incarnation of this node used: a restarted node's counter starts over, and a
 * late answer to a request of its previous life must not complete a new read with an index older
 * than the new read (the randomized cluster test found exactly that). The counter therefore starts
 * at a 53-bit base drawn from the injected generator at the first forwarded read; two incarnations
 * collide only with probability about (reads in flight) / 2^53.
 */
function nextReadId(s: CoreState): number {
  if (s.forwardedReadSeq === 0) {
    const high = s.prng.nextUint32() % 0x20_0000;
    s.forwardedReadSeq = high * 0x1_0000_0000 + s.prng.nextUint32();
  }
  s.forwardedReadSeq = s.forwardedReadSeq >= Number.MAX_SAFE_INTEGER ? 1 : s.forwardedReadSeq + 1;
  assert(Number.isSafeInteger(s.forwardedReadSeq) && s.forwardedReadSeq > 0, "read id out of range");
  return s.forwardedReadSeq;
}

function forwardRead(s: CoreState, out: EffectsBuilder, requestId: ReadRequestId, leaderId: NodeId): void {
  if (s.forwardedReads.length >= s.config.readsPendingMax) {
    out.readRejected.push({ requestId, code: "OVERLOADED", leaderId });
    return;
  }
  const readId = nextReadId(s);
  const deadlineTick = s.nowTick + s.config.electionTimeoutTicks;
  s.forwardedReads.push({ requestId, readId, leaderId, deadlineTick });
  out.send({ type: "readIndex", from: s.config.id, to: leaderId, term: s.term, readId });
}

/** Follower side of §6.4.1: the leader answered one of our reads. */
export function handleReadIndexResponse(
  s: CoreState,
  out: EffectsBuilder,
  message: ReadIndexResponseMessage,
): void {
  const at = s.forwardedReads.findIndex(
    (read) => read.readId === message.readId && read.leaderId === message.from,
  );
  if (at < 0) return;
  const [read] = s.forwardedReads.splice(at, 1);
  assert(read !== undefined, "forwarded read vanished");
  if (message.refusal === null) out.readReady.push({ requestId: read.requestId, index: message.index });
  else out.readRejected.push({ requestId: read.requestId, code: message.refusal, leaderId: s.leaderId });
}

/**
 * After every step: a forwarded read whose leader is no longer ours, or that waited past its
 * deadline, is rejected so that no read waits forever.
 */
export function settleForwardedReads(s: CoreState, out: EffectsBuilder): void {
  if (s.forwardedReads.length === 0) return;
  let kept = 0;
  for (const read of s.forwardedReads) {
    const current = s.role === "follower" && s.leaderId === read.leaderId;
    if (current && s.nowTick < read.deadlineTick) {
      s.forwardedReads[kept++] = read;
      continue;
    }
    out.readRejected.push({ requestId: read.requestId, code: notLeaderCode(s), leaderId: s.leaderId });
  }
  s.forwardedReads.length = kept;
  assert(s.forwardedReads.length <= s.config.readsPendingMax, "forwarded reads beyond their bound");
}
