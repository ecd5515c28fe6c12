/**
 * Unit tests of replication, commit, bounds, timeouts and snapshots (Raft §5.3, §5.4.2, §7), one
 * behaviour each, driving single cores by hand.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Prng } from "../lib/prng.ts";
import { logIndex, nodeId, type Term, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import type { RaftConfig } from "./config.ts";
import { core, emptyState, entry, message, n1, n2, n3, sent, voters } from "./core-fixtures.ts";
import { RaftCore } from "./raft-core.ts";

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
      snapshotConfig: { voters, learners: [] },
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

describe("commit news (deferCommitNews)", () => {
  /** A leader of term 1 whose no-op (index 1) is durable here; n2 and n3 have not answered yet. */
  function electedLeader(overrides: Partial<RaftConfig>): RaftCore {
    const leader = core(n1, overrides);
    leader.step({ type: "campaign" });
    message(leader, { type: "preVoteResponse", from: n2, to: n1, term: term(1), granted: true });
    message(leader, { type: "requestVoteResponse", from: n2, to: n1, term: term(1), granted: true });
    assert.equal(leader.status().role, "leader");
    leader.step({ type: "persisted", index: logIndex(1), term: term(1) });
    return leader;
  }
  const answer = (from: typeof n2, matched: number) => ({
    type: "appendEntriesResponse" as const,
    from,
    to: n1,
    term: term(1),
    success: true,
    matchIndex: logIndex(matched),
    rejectedIndex: logIndex(0),
    conflictTerm: term(0),
    conflictIndex: logIndex(0),
    appliedIndex: logIndex(0),
  });
  const commitsTo = (effects: ReturnType<RaftCore["step"]>, peer: typeof n2) =>
    sent(effects, "appendEntries")
      .filter((m) => m.to === peer && m.type === "appendEntries")
      .map((m) => (m.type === "appendEntries" ? [m.leaderCommit, m.entries.length, m.quiet === true] : []));

  test("by default the commit index goes out at once, alone, to a follower holding the whole log", () => {
    const leader = electedLeader({});
    const committed = message(leader, answer(n2, 1));
    assert.equal(committed.commitIndex, 1);
    assert.deepEqual(commitsTo(committed, n2), [[1, 0, true]]);
    assert.equal(committed.commitNewsDue, false);
  });

  test("deferred, it waits for the host's commitNews step, which sends it once", () => {
    const leader = electedLeader({ deferCommitNews: true });
    const committed = message(leader, answer(n2, 1));
    assert.equal(committed.commitIndex, 1);
    assert.deepEqual(commitsTo(committed, n2), [], "no commit news alone yet");
    assert.equal(committed.commitNewsDue, true);
    const news = leader.step({ type: "commitNews" });
    assert.deepEqual(commitsTo(news, n2), [[1, 0, true]]);
    assert.equal(news.commitNewsDue, false, "nothing is due once told");
    assert.deepEqual(commitsTo(leader.step({ type: "commitNews" }), n2), [], "told once");
  });

  test("deferred, the next append with entries carries it and the commitNews step has nothing to add", () => {
    const leader = electedLeader({ deferCommitNews: true });
    message(leader, answer(n2, 1));
    const data = new Uint8Array([7]);
    const proposed = leader.step({ type: "propose", proposalId: "p", kind: EntryKind.command, data });
    assert.deepEqual(commitsTo(proposed, n2), [[1, 1, false]]);
    assert.equal(proposed.commitNewsDue, false, "the append told it: the host's timer can go");
    assert.deepEqual(commitsTo(leader.step({ type: "commitNews" }), n2), []);
  });

  test("deferred, it still goes out at once while an `all` proposal waits for applied reports", () => {
    const leader = electedLeader({ deferCommitNews: true });
    message(leader, answer(n2, 1));
    const data = new Uint8Array([7]);
    leader.step({ type: "propose", proposalId: "p", kind: EntryKind.command, data, durability: "all" });
    leader.step({ type: "persisted", index: logIndex(2), term: term(1) });
    const committed = message(leader, answer(n2, 2));
    assert.equal(committed.commitIndex, 2);
    assert.deepEqual(
      sent(committed, "appendEntries").map((m) => (m.type === "appendEntries" ? m.leaderCommit : 0)),
      [2],
    );
    assert.equal(committed.commitNewsDue, false);
  });
});
