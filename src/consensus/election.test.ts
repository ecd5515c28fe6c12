/**
 * Unit tests of configuration and elections (Raft §5.2, §5.4.1, thesis §9.6), one behaviour each,
 * driving single cores by hand or a small scripted cluster (the golden harness).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { logIndex, term } from "../types/ids.ts";
import type { RaftConfig } from "./config.ts";
import { core, entry, message, n1, n2, n3, sent } from "./core-fixtures.ts";
import { GoldenHarness } from "./golden-harness.ts";

describe("configuration", () => {
  const cases: [string, Partial<RaftConfig>][] = [
    ["voters without this node", { voters: [n2, n3] }],
    ["duplicate voters", { voters: [n1, n2, n2] }],
    ["heartbeat not a multiple of the tick", { heartbeatIntervalMs: 15 }],
    ["fewer than two missed heartbeats", { missedHeartbeats: 1 }],
    ["jitter above 1", { electionJitter: 1.5 }],
    ["a zero bound", { appendEntriesInflightMax: 0 }],
  ];
  for (const [name, overrides] of cases) {
    test(`rejects ${name} with BAD_CONFIG`, () => {
      assert.throws(
        () => core(n1, overrides),
        (error) => isBatonError(error, "BAD_CONFIG"),
      );
    });
  }

  test("derives the election timeout from heartbeats × missed heartbeats, randomized upward by the jitter", () => {
    const config = core(n1, {
      tickMs: 10,
      heartbeatIntervalMs: 100,
      missedHeartbeats: 10,
      electionJitter: 0.5,
    }).config;
    assert.equal(config.heartbeatIntervalTicks, 10);
    assert.equal(config.electionTimeoutTicks, 100);
    assert.equal(config.electionTimeoutTicksMax, 150);
  });
});

describe("voting (Raft §5.2, §5.4.1)", () => {
  const upToDate = { entries: [entry(1, 1), entry(2, 2)], hardState: { term: term(2), votedFor: null } };

  test("a vote is refused to a candidate whose log is less up-to-date (§5.4.1)", () => {
    const voter = core(n2, {}, upToDate);
    const shorter = message(voter, {
      type: "requestVote",
      from: n1,
      to: n2,
      term: term(3),
      lastLogIndex: logIndex(5),
      lastLogTerm: term(1),
      transfer: false,
    });
    assert.deepEqual(
      sent(shorter, "requestVoteResponse").map((m) => m.type === "requestVoteResponse" && m.granted),
      [false],
    );
    assert.equal(voter.hardState().votedFor, null);
  });

  test("a vote is granted to an up-to-date candidate, recorded in the hard state and sent only after persisting", () => {
    const voter = core(n2, {}, upToDate);
    const effects = message(voter, {
      type: "requestVote",
      from: n1,
      to: n2,
      term: term(3),
      lastLogIndex: logIndex(2),
      lastLogTerm: term(2),
      transfer: false,
    });
    assert.deepEqual(effects.hardState, { term: 3, votedFor: n1 });
    const [grant] = effects.messages;
    assert.ok(grant !== undefined && grant.message.type === "requestVoteResponse" && grant.message.granted);
    assert.equal(grant.afterPersist, true);
  });

  test("one vote per term: a second candidate in the same term is refused (§5.2)", () => {
    const voter = core(n3, {}, upToDate);
    message(voter, {
      type: "requestVote",
      from: n1,
      to: n3,
      term: term(3),
      lastLogIndex: logIndex(2),
      lastLogTerm: term(2),
      transfer: false,
    });
    const second = message(voter, {
      type: "requestVote",
      from: n2,
      to: n3,
      term: term(3),
      lastLogIndex: logIndex(9),
      lastLogTerm: term(2),
      transfer: false,
    });
    const [response] = sent(second, "requestVoteResponse");
    assert.ok(response?.type === "requestVoteResponse" && !response.granted);
    assert.equal(voter.hardState().votedFor, n1);
  });

  // SEED=3170: without pre-vote, a candidate whose timer kept firing first turned away, term after
  // term, the only candidate that could win. It now restarts its timer on such a request.
  test("a candidate asked in its own term by one at least as up to date restarts its election timer", () => {
    const candidate = core(n3, { preVote: false }, upToDate);
    let ticks = 0;
    const campaignsAt: number[] = [];
    const tick = () => {
      ticks++;
      if (sent(candidate.step({ type: "tick" }), "requestVote").length > 0) campaignsAt.push(ticks);
    };
    while (campaignsAt.length === 0) tick();
    const minTicks = candidate.config.electionTimeoutTicks;
    for (let i = 0; i < minTicks - 1; i++) tick();
    const refused = message(candidate, {
      type: "requestVote",
      from: n1,
      to: n3,
      term: candidate.hardState().term,
      lastLogIndex: logIndex(9),
      lastLogTerm: term(2),
      transfer: false,
    });
    const [response] = sent(refused, "requestVoteResponse");
    assert.ok(response?.type === "requestVoteResponse" && !response.granted, "its vote went to itself");
    const askedAt = ticks;
    while (campaignsAt.length < 2) tick();
    assert.ok(
      (campaignsAt[1] ?? 0) - askedAt >= minTicks,
      `campaigned again ${(campaignsAt[1] ?? 0) - askedAt} ticks after the request (timeout ${minTicks})`,
    );
  });

  test("a pre-vote changes neither the voter's term nor its vote (thesis §9.6)", () => {
    const voter = core(n2, {}, upToDate);
    const effects = message(voter, {
      type: "preVote",
      from: n1,
      to: n2,
      term: term(3),
      lastLogIndex: logIndex(2),
      lastLogTerm: term(2),
    });
    assert.equal(effects.hardState, undefined);
    assert.equal(voter.hardState().term, 2);
    const [response] = effects.messages;
    assert.ok(response?.message.type === "preVoteResponse" && response.message.granted);
    assert.equal(response.afterPersist, false);
  });

  test("a node that heard from its leader within the election timeout ignores pre-votes and votes (thesis §9.6)", () => {
    const follower = core(n2, {}, upToDate);
    message(follower, {
      type: "heartbeat",
      from: n1,
      to: n2,
      term: term(2),
      leaderCommit: logIndex(0),
      readRound: 0,
    });
    const preVote = message(follower, {
      type: "preVote",
      from: n3,
      to: n2,
      term: term(3),
      lastLogIndex: logIndex(9),
      lastLogTerm: term(2),
    });
    const vote = message(follower, {
      type: "requestVote",
      from: n3,
      to: n2,
      term: term(3),
      lastLogIndex: logIndex(9),
      lastLogTerm: term(2),
      transfer: false,
    });
    assert.equal(preVote.messages.length + vote.messages.length, 0);
    assert.equal(follower.hardState().term, 2);
    const transfer = message(follower, {
      type: "requestVote",
      from: n3,
      to: n2,
      term: term(3),
      lastLogIndex: logIndex(9),
      lastLogTerm: term(2),
      transfer: true,
    });
    assert.deepEqual(transfer.hardState, { term: 3, votedFor: n3 });
  });

  test("a stale follower is never elected over a fresher one: the fresher refuses it (§5.4.1)", () => {
    const harness = new GoldenHarness();
    harness.run("add-nodes", ["3"]);
    harness.run("campaign", ["1"]);
    harness.run("stabilize", []);
    harness.run("partition", ["3", "/", "1", "2"]);
    harness.run("propose", ["1", "majority", "x"]);
    harness.run("stabilize", []);
    harness.run("heal", []);
    harness.run("partition", ["1", "/", "2", "3"]);
    harness.run("tick", ["2", "10"]);
    harness.run("tick-election", ["3"]);
    harness.run("stabilize", []);
    assert.notEqual(harness.core("3").status().role, "leader");
    assert.equal(harness.core("2").status().lastIndex, 2);
  });
});
