/**
 * Unit tests of the core's rules, one behaviour each, driving single cores by hand or a small
 * scripted cluster (the golden harness). Each test names the rule it checks.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { Prng } from "../lib/prng.ts";
import { logIndex, type NodeId, nodeId, type Term, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import type { RaftConfig } from "./config.ts";
import type { InitialState } from "./core-state.ts";
import type { Effects } from "./effects.ts";
import { GoldenHarness } from "./golden-harness.ts";
import type { Message } from "./messages.ts";
import { RaftCore } from "./raft-core.ts";

const [n1, n2, n3] = [nodeId("n1"), nodeId("n2"), nodeId("n3")];
const voters = [n1, n2, n3];
const emptyState: InitialState = {
  hardState: { term: term(0), votedFor: null },
  entries: [],
  snapshotIndex: logIndex(0),
  snapshotTerm: term(0),
  appliedIndex: logIndex(0),
};

function entry(index: number, entryTerm: number, kind: EntryKind = EntryKind.command): LogEntry {
  return { index: logIndex(index), term: term(entryTerm), kind, data: new Uint8Array([index]) };
}

function core(
  id: NodeId,
  overrides: Partial<RaftConfig> = {},
  initial: Partial<InitialState> = {},
): RaftCore {
  return new RaftCore(
    {
      id,
      voters,
      tickMs: 10,
      heartbeatIntervalMs: 10,
      missedHeartbeats: 10,
      prng: new Prng(1),
      ...overrides,
    },
    { ...emptyState, ...initial },
  );
}

function message(to: RaftCore, m: Message): Effects {
  return to.step({ type: "message", message: m });
}

function sent(effects: Effects, type: Message["type"]): Message[] {
  return effects.messages.filter(({ message }) => message.type === type).map(({ message }) => message);
}

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

describe("replication and commit (Raft §5.3, §5.4.2)", () => {
  test("a single-voter leader commits only once its own entries are durable", () => {
    const alone = new RaftCore({ id: n1, voters: [n1], prng: new Prng(1) }, emptyState);
    const elected = alone.step({ type: "campaign" });
    assert.equal(alone.status().role, "leader");
    assert.equal(elected.commitIndex, undefined);
    const proposed = alone.step({
      type: "propose",
      proposalId: "p",
      kind: EntryKind.command,
      data: new Uint8Array([1]),
    });
    assert.equal(proposed.commitIndex, undefined);
    const persisted = alone.step({ type: "persisted", index: logIndex(2), term: term(1) });
    assert.equal(persisted.commitIndex, 2);
    assert.deepEqual(
      persisted.acknowledged.map((ack) => ack.proposalId),
      ["p"],
    );
  });

  test("a follower never truncates a committed entry, whatever a (buggy) leader sends (§5.3, §5.4)", () => {
    const follower = core(
      n2,
      {},
      { entries: [entry(1, 1), entry(2, 1)], hardState: { term: term(1), votedFor: null } },
    );
    message(follower, {
      type: "appendEntries",
      from: n1,
      to: n2,
      term: term(1),
      prevLogIndex: logIndex(2),
      prevLogTerm: term(1),
      entries: [],
      leaderCommit: logIndex(2),
    });
    assert.equal(follower.status().commitIndex, 2);
    const conflicting = [[entry(2, 2)], [entry(2, 2), entry(3, 2)]].map((entries) =>
      message(follower, {
        type: "appendEntries",
        from: n3,
        to: n2,
        term: term(2),
        prevLogIndex: logIndex(1),
        prevLogTerm: term(1),
        entries,
        leaderCommit: logIndex(3),
      }),
    );
    for (const effects of conflicting) assert.equal(effects.truncateAfter, undefined);
    assert.equal(follower.termAt(2), 1);
  });

  test("the commit index never decreases, even when a stale append carries a lower one", () => {
    const follower = core(
      n2,
      {},
      { entries: [entry(1, 1), entry(2, 1), entry(3, 1)], hardState: { term: term(1), votedFor: null } },
    );
    message(follower, {
      type: "appendEntries",
      from: n1,
      to: n2,
      term: term(1),
      prevLogIndex: logIndex(3),
      prevLogTerm: term(1),
      entries: [],
      leaderCommit: logIndex(3),
    });
    const stale = message(follower, {
      type: "appendEntries",
      from: n1,
      to: n2,
      term: term(1),
      prevLogIndex: logIndex(1),
      prevLogTerm: term(1),
      entries: [entry(2, 1)],
      leaderCommit: logIndex(1),
    });
    assert.equal(stale.commitIndex, undefined);
    assert.equal(follower.status().commitIndex, 3);
  });

  test("a persisted report for entries since replaced is ignored", () => {
    const follower = core(n2, {}, { entries: [entry(1, 1)], hardState: { term: term(2), votedFor: null } });
    message(follower, {
      type: "appendEntries",
      from: n1,
      to: n2,
      term: term(2),
      prevLogIndex: logIndex(1),
      prevLogTerm: term(1),
      entries: [entry(2, 1), entry(3, 1)],
      leaderCommit: logIndex(1),
    });
    const replaced = message(follower, {
      type: "appendEntries",
      from: n1,
      to: n2,
      term: term(2),
      prevLogIndex: logIndex(1),
      prevLogTerm: term(1),
      entries: [entry(2, 2)],
      leaderCommit: logIndex(1),
    });
    assert.equal(replaced.truncateAfter, 1);
    assert.deepEqual(
      replaced.discarded.map((e) => e.index),
      [2, 3],
    );
    follower.step({ type: "persisted", index: logIndex(3), term: term(1) });
    assert.equal(follower.status().durableIndex, 1);
    follower.step({ type: "persisted", index: logIndex(2), term: term(2) });
    assert.equal(follower.status().durableIndex, 2);
  });

  test("a recovered node treats its log as durable and its applied index as committed", () => {
    const recovered = core(
      n2,
      {},
      {
        entries: [entry(1, 1), entry(2, 1)],
        appliedIndex: logIndex(1),
        hardState: { term: term(1), votedFor: n1 },
      },
    );
    const status = recovered.status();
    assert.equal(status.durableIndex, 2);
    assert.equal(status.commitIndex, 1);
    assert.equal(status.votedFor, n1);
  });
});

describe("bounds and timeouts", () => {
  function leader(overrides: Partial<RaftConfig> = {}): RaftCore {
    const single = new RaftCore({ id: n1, voters: [n1], prng: new Prng(1), ...overrides }, emptyState);
    single.step({ type: "campaign" });
    return single;
  }

  test("proposals beyond proposalsPendingMax are rejected OVERLOADED", () => {
    const busy = leader({ proposalsPendingMax: 2 });
    const outcomes = ["a", "b", "c"].map(
      (id) =>
        busy.step({ type: "propose", proposalId: id, kind: EntryKind.command, data: new Uint8Array(1) })
          .proposals[0],
    );
    assert.deepEqual(
      outcomes.map((o) => (o?.accepted ? "accepted" : o?.code)),
      ["accepted", "accepted", "OVERLOADED"],
    );
  });

  test("a proposal that misses its level before its deadline is notConfirmed with k of n, and stays in the log", () => {
    const three = core(n1, { proposalTimeoutMs: 50 });
    three.step({ type: "campaign" });
    message(three, { type: "preVoteResponse", from: n2, to: n1, term: term(1), granted: true });
    message(three, { type: "requestVoteResponse", from: n2, to: n1, term: term(1), granted: true });
    assert.equal(three.status().role, "leader");
    three.step({
      type: "propose",
      proposalId: "w",
      kind: EntryKind.command,
      data: new Uint8Array(1),
      durability: "majority",
    });
    three.step({ type: "persisted", index: logIndex(2), term: term(1) });
    const results = Array.from({ length: 5 }, () => three.step({ type: "tick" }));
    const failures = results.flatMap((effects) => effects.notConfirmed);
    assert.deepEqual(
      failures.map((f) => [f.proposalId, f.reason, f.durableVoters, f.voters]),
      [["w", "timeout", 1, 3]],
    );
    assert.equal(three.termAt(2), 1);
  });

  test("a follower rejects proposals with NOT_LEADER and the leader hint, NO_LEADER when it knows none", () => {
    const follower = core(n2);
    const none = follower.step({
      type: "propose",
      proposalId: "a",
      kind: EntryKind.command,
      data: new Uint8Array(1),
    });
    assert.deepEqual(none.proposals, [
      { proposalId: "a", accepted: false, code: "NO_LEADER", leaderId: null },
    ]);
    message(follower, {
      type: "heartbeat",
      from: n1,
      to: n2,
      term: term(1),
      leaderCommit: logIndex(0),
      readRound: 0,
    });
    const hinted = follower.step({
      type: "propose",
      proposalId: "b",
      kind: EntryKind.command,
      data: new Uint8Array(1),
    });
    assert.deepEqual(hinted.proposals, [
      { proposalId: "b", accepted: false, code: "NOT_LEADER", leaderId: n1 },
    ]);
  });

  test("messages from non-voters are ignored", () => {
    const follower = core(n2);
    const effects = message(follower, {
      type: "heartbeat",
      from: nodeId("intruder"),
      to: n2,
      term: term(9),
      leaderCommit: logIndex(0),
      readRound: 0,
    });
    assert.equal(effects.messages.length, 0);
    assert.equal(follower.status().term, 0);
  });
});

describe("snapshots (Raft §7)", () => {
  test("a leader whose log was compacted asks for a snapshot for a follower that is behind", () => {
    const leader = core(
      n1,
      {},
      {
        entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
        appliedIndex: logIndex(3),
        hardState: { term: term(1), votedFor: null },
      },
    );
    leader.step({ type: "compact", index: logIndex(3), term: term(1) });
    leader.step({ type: "campaign" });
    message(leader, { type: "preVoteResponse", from: n2, to: n1, term: term(2), granted: true });
    message(leader, { type: "requestVoteResponse", from: n2, to: n1, term: term(2), granted: true });
    const rejection = message(leader, {
      type: "appendEntriesResponse",
      from: n3,
      to: n1,
      term: term(2),
      success: false,
      matchIndex: logIndex(0),
      rejectedIndex: logIndex(3),
      conflictTerm: term(0),
      conflictIndex: logIndex(1),
      appliedIndex: logIndex(0),
    });
    assert.deepEqual(
      rejection.snapshotNeeded.map((need) => [need.peer, need.index, need.term, need.message.type]),
      [[n3, 3, 1, "installSnapshot"]],
    );
  });

  test("a follower whose log cannot join the snapshot restarts its log from it", () => {
    const follower = core(
      n2,
      {},
      { entries: [entry(1, 1), entry(2, 1)], hardState: { term: term(2), votedFor: null } },
    );
    const effects = message(follower, {
      type: "installSnapshot",
      from: n1,
      to: n2,
      term: term(3),
      snapshotIndex: logIndex(5),
      snapshotTerm: term(2 as number) as Term,
    });
    assert.deepEqual(effects.snapshotRestored, { index: 5, term: 2 });
    const status = follower.status();
    assert.deepEqual(
      [status.snapshotIndex, status.lastIndex, status.commitIndex, status.appliedIndex],
      [5, 5, 5, 5],
    );
    const [response] = sent(effects, "appendEntriesResponse");
    assert.ok(response?.type === "appendEntriesResponse" && response.success && response.matchIndex === 5);
  });
});
