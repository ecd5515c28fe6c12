/**
 * The quorum arithmetic against naive oracles (after etcd's quorum/quick_test.go).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type LogIndex, logIndex, type NodeId, nodeId, type Term, term } from "../types/ids.ts";
import { quorumSize } from "./config.ts";
import { computeCommitIndex, quorumMatchIndex, voteResult } from "./quorum.ts";

/** Naive: the largest index that at least a majority of voters hold. */
function naiveQuorumIndex(matches: readonly number[]): number {
  let best = 0;
  for (const candidate of matches) {
    const holders = matches.filter((match) => match >= candidate).length;
    if (holders >= quorumSize(matches.length) && candidate > best) best = candidate;
  }
  return best;
}

/** Naive commit rule (Raft §5.3, §5.4.2): the largest majority-held index whose entry is of the current term. */
function naiveCommit(
  matches: readonly number[],
  terms: readonly number[],
  currentTerm: number,
  commit: number,
): number {
  let best = commit;
  for (let index = 1; index <= terms.length; index++) {
    const holders = matches.filter((match) => match >= index).length;
    if (holders >= quorumSize(matches.length) && terms[index - 1] === currentTerm && index > best)
      best = index;
  }
  return best;
}

/** A random leader log (non-decreasing terms) with random voter match indexes into it. */
const scenario = fc
  .record({
    termSteps: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 30 }),
    voterCount: fc.integer({ min: 1, max: 9 }),
    matchSeeds: fc.array(fc.nat(), { minLength: 9, maxLength: 9 }),
    commitSeed: fc.nat(),
  })
  .map(({ termSteps, voterCount, matchSeeds, commitSeed }) => {
    const terms: number[] = [];
    let current = 1;
    for (const step of termSteps) terms.push((current += step));
    const currentTerm = current + (commitSeed % 2);
    const matches = matchSeeds.slice(0, voterCount).map((seed) => seed % (terms.length + 1));
    return { terms, currentTerm, matches, commit: commitSeed % (naiveQuorumIndex(matches) + 1) };
  });

test("quorumMatchIndex equals the naive majority oracle", () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 15 }), (matches) => {
      assert.equal(quorumMatchIndex(matches), naiveQuorumIndex(matches));
    }),
  );
});

test("computeCommitIndex equals the naive commit rule, and never decreases (Raft §5.4.2)", () => {
  fc.assert(
    fc.property(scenario, ({ terms, currentTerm, matches, commit }) => {
      const result = computeCommitIndex({
        matchIndexes: matches,
        commitIndex: logIndex(commit),
        currentTerm: term(currentTerm),
        termAt: (index: number): Term | undefined =>
          index === 0 ? term(0) : (terms[index - 1] as Term | undefined),
      });
      assert.equal(result, naiveCommit(matches, terms, currentTerm, commit));
      assert.ok(result >= commit);
    }),
  );
});

test("the injected bug commits old-term entries that the real rule refuses (figure 8)", () => {
  const inputs = {
    matchIndexes: [2, 2, 1],
    commitIndex: logIndex(1) as LogIndex,
    currentTerm: term(3),
    termAt: (index: number): Term | undefined => [term(0), term(1), term(2)][index],
  };
  assert.equal(computeCommitIndex(inputs), 1);
  assert.equal(computeCommitIndex({ ...inputs, commitOldTermByCounting: true }), 2);
});

test("voteResult equals a naive tally (Raft §5.2: a majority of all voters)", () => {
  const votersArbitrary = fc.integer({ min: 1, max: 9 }).chain((count) =>
    fc.record({
      count: fc.constant(count),
      votes: fc.array(fc.constantFrom<boolean | null>(true, false, null), {
        minLength: count,
        maxLength: count,
      }),
    }),
  );
  fc.assert(
    fc.property(votersArbitrary, ({ count, votes }) => {
      const voters: NodeId[] = Array.from({ length: count }, (_, i) => nodeId(`n${i}`));
      const map = new Map<NodeId, boolean>();
      votes.forEach((vote, i) => {
        if (vote !== null) map.set(voters[i] as NodeId, vote);
      });
      const granted = votes.filter((vote) => vote === true).length;
      const rejected = votes.filter((vote) => vote === false).length;
      const expected =
        granted >= quorumSize(count) ? "won" : count - rejected < quorumSize(count) ? "lost" : "pending";
      assert.equal(voteResult(voters, map), expected);
    }),
  );
});
