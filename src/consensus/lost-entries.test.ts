/**
 * A node that lost entries (`lost-entries.ts`): no campaign, votes only for a log at least as
 * up-to-date as what it may have promised, and back to normal once its durable log reaches it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { logIndex, type Position, term } from "../types/ids.ts";
import type { LogEntry } from "../types/log-entry.ts";
import { core, entry, message, n1, n2, n3, sent } from "./core-fixtures.ts";
import type { Effects } from "./effects.ts";
import { failoverDefaults } from "./failover-config.ts";
import type { RaftCore } from "./raft-core.ts";

/** n2 kept entries 1–5 of term 2; it may have acknowledged up to index 9 of term 3, and is in term 4. */
const promised: Position = { index: logIndex(9), term: term(3) };
const healing = {
  entries: [1, 2, 3, 4, 5].map((i) => entry(i, 2)),
  hardState: { term: term(4), votedFor: null, promised },
  appliedIndex: logIndex(5),
};

function vote(voter: RaftCore, lastLogIndex: number, lastLogTerm: number, preVote: boolean): boolean {
  const common = { from: n1, to: n2, lastLogIndex: logIndex(lastLogIndex), lastLogTerm: term(lastLogTerm) };
  const effects = preVote
    ? message(voter, { type: "preVote", term: term(5), ...common })
    : message(voter, { type: "requestVote", term: term(5), transfer: false, ...common });
  const [answer] = sent(effects, preVote ? "preVoteResponse" : "requestVoteResponse");
  assert.ok(answer?.type === "preVoteResponse" || answer?.type === "requestVoteResponse");
  return answer.granted;
}

function ticks(node: RaftCore, count: number): Effects[] {
  return Array.from({ length: count }, () => node.step({ type: "tick" }));
}

function campaigned(effects: readonly Effects[]): boolean {
  return effects.some((e) => sent(e, "preVote").length + sent(e, "requestVote").length > 0);
}

/** n1, leader of term 5, replicates `entries` after index 5 and n2 reports them durable. */
function replicate(follower: RaftCore, entries: LogEntry[]): Effects {
  message(follower, {
    type: "appendEntries",
    from: n1,
    to: n2,
    term: term(5),
    prevLogIndex: logIndex(5),
    prevLogTerm: term(2),
    entries,
    leaderCommit: logIndex(5),
  });
  const last = entries.at(-1)!;
  return follower.step({ type: "persisted", index: last.index, term: last.term });
}

describe("a node that lost entries to storage damage", () => {
  test("never campaigns, on its timer or when a leader hands over", () => {
    const node = core(n2, {}, healing);
    assert.equal(campaigned(ticks(node, 400)), false);
    assert.equal(node.status().role, "follower");
    const heartbeat = {
      type: "heartbeat",
      from: n1,
      to: n2,
      term: term(4),
      leaderCommit: logIndex(5),
      readRound: 0,
    } as const;
    message(node, heartbeat);
    assert.equal(node.status().leaderId, n1);
    const handOver = message(node, { type: "timeoutNow", from: n1, to: n2, term: term(4) });
    assert.equal(campaigned([handOver]), false);
  });

  test("votes only for a log at least as up-to-date as what it may have promised, not merely its own", () => {
    for (const preVote of [true, false]) {
      // Ahead of the kept log (5, term 2) but behind the promise (9, term 3): refused.
      assert.equal(vote(core(n2, {}, healing), 8, 3, preVote), false, `pre-vote ${preVote}`);
      assert.equal(vote(core(n2, {}, healing), 5, 2, preVote), false);
      assert.equal(vote(core(n2, {}, healing), 9, 3, preVote), true);
      assert.equal(vote(core(n2, {}, healing), 2, 4, preVote), true);
    }
    // The same node with its log intact would have granted the first of them.
    const intact = core(n2, {}, { ...healing, hardState: { term: term(4), votedFor: null } });
    assert.equal(vote(intact, 8, 3, false), true);
  });

  test("keeps the bound in every hard state it writes until its durable log reaches it", () => {
    const node = core(n2, {}, healing);
    const higher = message(node, {
      type: "heartbeat",
      from: n1,
      to: n2,
      term: term(5),
      leaderCommit: logIndex(5),
      readRound: 0,
    });
    assert.deepEqual(higher.hardState, { term: 5, votedFor: null, promised });
    const partway = replicate(
      node,
      [6, 7, 8].map((i) => entry(i, 3)),
    );
    assert.equal(partway.hardState, undefined);
    assert.deepEqual(node.status().promised, promised);
    assert.equal(partway.events.filter((e) => e.type === "lost-entries-refetched").length, 0);
  });

  test("is back to normal once its durable log reaches the bound: the bound is dropped durably and it campaigns again", () => {
    const node = core(n2, {}, healing);
    const done = replicate(
      node,
      [6, 7, 8, 9].map((i) => entry(i, 3)),
    );
    assert.deepEqual(done.hardState, { term: 5, votedFor: null });
    assert.deepEqual(
      done.events
        .filter((e) => e.type === "lost-entries-refetched")
        .map((e) => e.type === "lost-entries-refetched" && e.index),
      [9],
    );
    assert.equal(node.status().promised, null);
    assert.equal(campaigned(ticks(node, 400)), true);
  });

  test("an entry of a newer term reaches the bound whatever its index", () => {
    const node = core(n2, {}, healing);
    const done = replicate(node, [entry(6, 5)]);
    assert.deepEqual(done.hardState, { term: 5, votedFor: null });
    assert.equal(node.status().promised, null);
  });

  test("entries received but not yet durable do not count", () => {
    const node = core(n2, {}, healing);
    message(node, {
      type: "appendEntries",
      from: n1,
      to: n2,
      term: term(5),
      prevLogIndex: logIndex(5),
      prevLogTerm: term(2),
      entries: [entry(6, 5)],
      leaderCommit: logIndex(5),
    });
    assert.deepEqual(node.status().promised, promised);
    assert.equal(campaigned(ticks(node, 400)), false);
  });

  test("names as failover candidate the best voter that may campaign, not itself, though its log is longer", () => {
    const node = core(n2, {}, healing);
    replicate(
      node,
      [6, 7].map((i) => entry(i, 3)),
    );
    ticks(node, 400); // n1 is heard no more.
    const probe = { type: "preVote", from: n3, to: n2, term: term(6) } as const;
    message(node, { ...probe, lastLogIndex: logIndex(6), lastLogTerm: term(3) });
    const { failover, commitIndex } = node.status();
    assert.equal(commitIndex, 5);
    assert.equal(
      failover.proposal?.candidate,
      n3,
      "n2 holds 7 of term 3, n3 only 6, yet n2 may not campaign",
    );
    assert.equal(failover.promoteRefusal?.code, "CANDIDACY_HELD");
  });

  test("a snapshot that reaches the bound ends it too", () => {
    const node = core(n2, {}, healing);
    const installed = message(node, {
      type: "installSnapshot",
      from: n1,
      to: n2,
      term: term(5),
      snapshotIndex: logIndex(40),
      snapshotTerm: term(5),
      snapshotConfig: { voters: [n1, n2, n3], learners: [] },
    });
    assert.deepEqual(installed.hardState, { term: 5, votedFor: null });
    assert.equal(node.status().promised, null);
  });
});

describe("a node whose candidacy the host holds back", () => {
  test("votes as usual but never campaigns until released", () => {
    const node = core(n2);
    node.step({ type: "holdCandidacy", hold: true });
    assert.equal(node.status().candidacyHeld, true);
    assert.equal(campaigned(ticks(node, 400)), false);
    assert.equal(vote(node, 0, 0, false), true);
    node.step({ type: "holdCandidacy", hold: false });
    assert.equal(campaigned(ticks(node, 400)), true);
  });

  test("its probes say so, and the others never name it their candidate, even where it would rank first", () => {
    const log = {
      entries: [1, 2, 3].map((i) => entry(i, 2)),
      hardState: { term: term(2), votedFor: null },
      appliedIndex: logIndex(3),
      snapshotConfig: {
        voters: [n1, n2, n3],
        learners: [],
        failover: { ...failoverDefaults, mode: "approve" },
      },
    } as const;
    const held = core(n2, {}, log);
    held.step({ type: "holdCandidacy", hold: true });
    const probes = ticks(held, 400).flatMap((e) => sent(e, "preVote"));
    assert.ok(probes.length > 0 && probes.every((p) => p.type === "preVote" && p.held === true));
    assert.equal(held.status().failover.promoteRefusal?.code, "CANDIDACY_HELD");

    // n3 holds the same log: at a tie n2 ranks before it by id, unless n2 said it is held.
    for (const saysHeld of [false, true]) {
      const other = core(n3, {}, log);
      ticks(other, 400);
      const probe = probes.find((p) => p.to === n3);
      assert.ok(probe?.type === "preVote");
      const { held: _, ...unheld } = probe;
      message(other, saysHeld ? probe : unheld);
      assert.equal(other.status().failover.proposal?.candidate, saysHeld ? n3 : n2);
    }
  });

  test("with the most up-to-date log of the voters it hears, it campaigns as a relay and hands office over once elected", () => {
    const node = core(
      n2,
      {},
      {
        entries: [1, 2, 3, 4, 5].map((i) => entry(i, 2)),
        hardState: { term: term(2), votedFor: null },
        appliedIndex: logIndex(5),
      },
    );
    node.step({ type: "holdCandidacy", hold: true });
    // n1 and n3 ask for votes with shorter logs: n2 refuses them (§5.4.1), so only it can be elected.
    for (const from of [n1, n3])
      message(node, {
        type: "preVote",
        from,
        to: n2,
        term: term(3),
        lastLogIndex: logIndex(3),
        lastLogTerm: term(2),
      });
    const effects = ticks(node, 400);
    assert.equal(campaigned(effects), true, "the held node relays");
    for (const preVote of [true, false]) {
      const status = node.status();
      message(node, {
        type: preVote ? "preVoteResponse" : "requestVoteResponse",
        from: n1,
        to: n2,
        term: preVote ? term(status.term + 1) : status.term,
        granted: true,
      } as never);
    }
    assert.equal(node.status().role, "leader");
    const handOff = [...ticks(node, 50)].flatMap((e) => e.events).find((e) => e.type === "handoff-started");
    assert.equal(handOff?.type === "handoff-started" ? handOff.reason : null, "not-eligible");
  });
});
