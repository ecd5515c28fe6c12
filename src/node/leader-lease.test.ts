/**
 * The leader's lease for `leader` reads: it runs from when a heartbeat was sent (the stamp a
 * follower echoes), never from when its answer was read, and by the monotonic clock.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoreSummary, Message } from "../consensus/index.ts";
import { isBatonError } from "../lib/errors.ts";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { LeaderLease } from "./leader-lease.ts";
import { decodePeerBody, encodeConsensus } from "./peer-envelope.ts";
import type { Clock } from "./runtime.ts";

const [n1, n2, n3] = [nodeId("n1"), nodeId("n2"), nodeId("n3")];
const boundMs = 600;

function clockAt(start: number): Clock & { advance(ms: number): void; wallBack(ms: number): void } {
  let monotonic = start;
  let wall = 1_700_000_000_000;
  return {
    nowMs: () => wall,
    monotonicMs: () => monotonic,
    advance(ms: number) {
      monotonic += ms;
      wall += ms;
    },
    wallBack(ms: number) {
      wall -= ms;
    },
  };
}

function leading(termNumber: number): CoreSummary {
  return {
    role: "leader",
    term: term(termNumber),
    clusterConfig: { voters: [n1, n2, n3], learners: [] },
  } as unknown as CoreSummary;
}

const heartbeat = (from: typeof n1, to: typeof n1, t: number): Message => ({
  type: "heartbeat",
  from,
  to,
  term: term(t),
  leaderCommit: logIndex(0),
  readRound: 0,
});
const answer = (from: typeof n1, to: typeof n1, t: number): Message => ({
  type: "heartbeatResponse",
  from,
  to,
  term: term(t),
  readRound: 0,
  appliedIndex: logIndex(0),
});

/** One heartbeat round trip: the leader stamps, the follower echoes, the leader notes the echo. */
function roundTrip(leader: LeaderLease, follower: LeaderLease, to: typeof n1, t: number): number | undefined {
  const stamp = leader.stampFor(heartbeat(n1, to, t));
  follower.arriving(heartbeat(n1, to, t), stamp);
  return follower.stampFor(answer(to, n1, t));
}

test("an answer held back during a pause does not renew the lease: it runs from when its heartbeat left", () => {
  const clock = clockAt(10_000);
  const leader = new LeaderLease(n1, boundMs, clock);
  const follower = new LeaderLease(n2, boundMs, clockAt(0));
  const echoed = roundTrip(leader, follower, n2, 3);
  assert.equal(echoed, 10_000, "the follower echoes the leader's stamp");
  // The leader is paused for 2 s; the answer waited in its socket and is read only now.
  clock.advance(2_000);
  leader.stepped(answer(n2, n1, 3), echoed, leading(3));
  assert.equal(leader.held(leading(3)), false, "a stale answer renewed the lease");
  // A heartbeat sent now and answered renews it.
  const fresh = roundTrip(leader, follower, n2, 3);
  clock.advance(100);
  leader.stepped(answer(n2, n1, 3), fresh, leading(3));
  assert.equal(leader.held(leading(3)), true);
  clock.advance(boundMs);
  assert.equal(leader.held(leading(3)), false, "the lease ends a bound after the heartbeat left");
});

test("the lease is measured by the monotonic clock: the wall clock stepped back does not stretch it", () => {
  const clock = clockAt(5_000);
  const leader = new LeaderLease(n1, boundMs, clock);
  const follower = new LeaderLease(n3, boundMs, clockAt(0));
  leader.stepped(answer(n3, n1, 2), roundTrip(leader, follower, n3, 2), leading(2));
  assert.equal(leader.held(leading(2)), true);
  clock.advance(boundMs);
  clock.wallBack(60_000);
  assert.equal(leader.held(leading(2)), false);
});

test("no echo across terms, none from the future, none without a stamp, and only a heartbeat's answer carries one", () => {
  const clock = clockAt(1_000);
  const leader = new LeaderLease(n1, boundMs, clock);
  const follower = new LeaderLease(n2, boundMs, clockAt(0));
  follower.arriving(heartbeat(n1, n2, 4), leader.stampFor(heartbeat(n1, n2, 4)));
  assert.equal(follower.stampFor(answer(n2, n1, 5)), undefined, "a stamp of term 4 in an answer of term 5");
  assert.equal(follower.stampFor(answer(n2, n3, 4)), undefined, "an echo to another node");
  assert.equal(
    follower.stampFor({ ...answer(n2, n1, 4), type: "requestVoteResponse", granted: true } as Message),
    undefined,
  );
  leader.stepped(answer(n2, n1, 4), 99_999, leading(4));
  leader.stepped(answer(n3, n1, 4), undefined, leading(4));
  assert.equal(leader.held(leading(4)), false, "a stamp from the future or none counted");
});

test("a stamped consensus message round-trips through the peer envelope; a bad stamp is refused", () => {
  const message = answer(n2, n1, 7);
  assert.deepEqual(decodePeerBody(encodeConsensus(message, 123_456)), {
    type: "consensus",
    message,
    stamp: 123_456,
  });
  assert.deepEqual(decodePeerBody(encodeConsensus(message)), { type: "consensus", message });
  const bad = encodeConsensus(message, 1);
  new DataView(bad.buffer, bad.byteOffset).setBigUint64(1, 2n ** 63n);
  assert.throws(
    () => decodePeerBody(bad),
    (error) => isBatonError(error, "BAD_MESSAGE"),
  );
});
