/**
 * How a node judges its own database from the voters' content hashes (`judge`), against a naive
 * oracle; checks exchanged between members, one of them restarted after a check passed; and the
 * storage messages' wire format.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isBatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex, type NodeId, nodeId } from "../types/ids.ts";
import { ConsistencyChecks, checkSpacingMs, type DamageFound, judge } from "./consistency-check.ts";
import { type NodeConfig, nodeDefaults } from "./node-config.ts";
import { decodePeerBody, encodeStorage, type StorageMessage } from "./peer-envelope.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import { routeStorageMessage } from "./storage-health.ts";

const ids = ["n1", "n2", "n3", "n4", "n5"].map(nodeId);
const hashA = "a".repeat(64);
const hashB = "b".repeat(64);

function reports(entries: [string, string][]): Map<NodeId, string> {
  return new Map(entries.map(([id, hash]) => [nodeId(id), hash]));
}

describe("judging a node's database by the voters' hashes", () => {
  test("passed with the majority, damaged against it, pending without its own hash or a majority", () => {
    const voters = ids.slice(0, 3);
    assert.deepEqual(
      judge(
        voters[0]!,
        voters,
        reports([
          ["n1", hashA],
          ["n2", hashA],
        ]),
      ),
      { outcome: "passed", hash: hashA, dissenters: [] },
    );
    assert.deepEqual(
      judge(
        voters[2]!,
        voters,
        reports([
          ["n1", hashA],
          ["n2", hashA],
          ["n3", hashB],
        ]),
      ),
      { outcome: "damaged", hash: hashA, agreeing: [voters[0], voters[1]] },
    );
    assert.equal(
      judge(
        voters[2]!,
        voters,
        reports([
          ["n1", hashA],
          ["n2", hashA],
        ]),
      ).outcome,
      "pending",
    );
    assert.equal(
      judge(
        voters[0]!,
        voters,
        reports([
          ["n1", hashA],
          ["n3", hashB],
        ]),
      ).outcome,
      "pending",
    );
    assert.equal(
      judge(
        voters[0]!,
        voters.slice(0, 2),
        reports([
          ["n1", hashA],
          ["n2", hashB],
        ]),
      ).outcome,
      "no-majority",
      "two voters that differ: no copy can be trusted over the other",
    );
  });

  test("a learner's hash counts for no majority, but a learner judges itself by the voters'", () => {
    const voters = ids.slice(0, 3);
    const learner = ids[3]!;
    const seen = reports([
      ["n1", hashB],
      ["n4", hashB],
      ["n2", hashA],
      ["n3", hashA],
    ]);
    assert.equal(judge(learner, voters, seen).outcome, "damaged");
    assert.equal(judge(voters[0]!, voters, seen).outcome, "damaged");
  });

  test("against a naive oracle: damaged exactly when a majority of voters agrees on another hash; never on a lone dissenter's word", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.option(fc.constantFrom("x", "y", "z"), { nil: undefined }), {
          minLength: 5,
          maxLength: 5,
        }),
        fc.integer({ min: 0, max: 4 }),
        (voterCount, hashes, selfAt) => {
          const voters = ids.slice(0, voterCount);
          const self = ids[Math.min(selfAt, voterCount - 1)]!;
          const seen = new Map<NodeId, string>();
          voters.forEach((voter, i) => {
            if (hashes[i] !== undefined) seen.set(voter, hashes[i]!);
          });
          const verdict = judge(self, voters, seen);
          const own = seen.get(self);
          const quorum = Math.floor(voterCount / 2) + 1;
          const counts = new Map<string, number>();
          for (const hash of seen.values()) counts.set(hash, (counts.get(hash) ?? 0) + 1);
          const majority = [...counts].find(([, count]) => count >= quorum)?.[0];
          if (own === undefined) assert.equal(verdict.outcome, "pending");
          else if (majority === undefined)
            assert.equal(verdict.outcome, seen.size === voterCount ? "no-majority" : "pending");
          else assert.equal(verdict.outcome, majority === own ? "passed" : "damaged");
          // A healthy node (holding the majority's hash) is never judged damaged, whatever one other says.
          if (own !== undefined && own === majority) assert.notEqual(verdict.outcome, "damaged");
          if (verdict.outcome === "damaged")
            assert.ok(verdict.agreeing.length >= quorum && !verdict.agreeing.includes(self));
        },
      ),
      { numRuns: 500 },
    );
  });
});

type Member = {
  readonly checks: ConsistencyChecks;
  readonly found: DamageFound[];
  readonly passed: LogIndex[];
  /** Running hash jobs' steps (the checks step them every tick). */
  readonly jobs: Set<() => void>;
};

type Sent = { readonly from: NodeId; readonly to: NodeId; readonly message: StorageMessage };

/**
 * Members of a three-voter cluster at one applied index, each hashing to a hash of its own, whose
 * storage messages travel on a bus; a message to a member that is down (not started) is lost.
 */
class CheckCluster {
  static readonly voters = ids.slice(0, 3);
  static readonly appliedIndex = logIndex(128);
  nowMs = 0;
  readonly members = new Map<NodeId, Member>();
  /** Every message sent, delivered or lost. */
  readonly sent: Sent[] = [];
  private readonly queue: Sent[] = [];

  start(id: NodeId, hash: string, role: "leader" | "follower"): Member {
    const jobs = new Set<() => void>();
    const found: DamageFound[] = [];
    const passed: LogIndex[] = [];
    const runtime = {
      clock: { nowMs: () => this.nowMs, monotonicMs: () => this.nowMs },
      timers: {
        every: (_periodMs: number, run: () => void) => {
          jobs.add(run);
          return () => jobs.delete(run);
        },
      },
      store: {
        appliedIndex: CheckCluster.appliedIndex,
        beginContentHash: () => ({
          appliedIndex: CheckCluster.appliedIndex,
          step: () => hash,
          close: () => {},
        }),
      },
      logger: () => {},
    } as unknown as NodeRuntime;
    const summary = {
      role,
      lastIndex: CheckCluster.appliedIndex,
      clusterConfig: { voters: CheckCluster.voters, learners: [] },
    };
    const loop = {
      fatal: null,
      core: { summary: () => summary },
      reportApplied: () => {},
    } as unknown as ReplicaLoop;
    const checks = new ConsistencyChecks({
      config: { ...nodeDefaults, id } as unknown as NodeConfig,
      runtime,
      loop,
      speculativeCount: () => 0,
      send: (to, body) => this.send(id, to, body),
      onDamage: (damage) => found.push(damage),
      onPassed: (index) => passed.push(index),
      onNoMajority: () => assert.fail(`${id}: no majority`),
      isWitness: () => false,
    });
    const member: Member = { checks, found, passed, jobs };
    this.members.set(id, member);
    checks.roleChanged(role);
    checks.afterStep();
    return member;
  }

  send(from: NodeId, to: NodeId, body: Uint8Array): void {
    const decoded = decodePeerBody(body);
    assert.equal(decoded.type, "storage");
    const sent = { from, to, message: (decoded as { message: StorageMessage }).message };
    this.sent.push(sent);
    this.queue.push(sent);
  }

  /** Steps the hash jobs and delivers messages until there are none; fails if they never stop. */
  settle(): void {
    const roundsMax = 20;
    for (let round = 0; round < roundsMax; round++) {
      for (const member of this.members.values()) for (const step of [...member.jobs]) step();
      const batch = this.queue.splice(0);
      if (batch.length === 0) return;
      for (const { from, to, message } of batch) {
        const member = this.members.get(to);
        if (member === undefined) continue;
        routeStorageMessage(member.checks, () => assert.fail("no snapshot is asked for"), from, message);
        member.checks.afterStep();
      }
    }
    assert.fail(`messages still flowing after ${roundsMax} rounds`);
  }
}

describe("a member restarted after a check passed, with no writes since", () => {
  test("hears every member's report again when the check restarts at that index, and finds its damage", () => {
    const [n1, n2, n3] = CheckCluster.voters as [NodeId, NodeId, NodeId];
    const cluster = new CheckCluster();
    // The check at the applied index passes on the leader and n3 while n1 is down: their reports to
    // n1 are lost.
    const leader = cluster.start(n2, hashA, "leader");
    const other = cluster.start(n3, hashA, "follower");
    cluster.settle();
    assert.deepEqual(
      [leader.passed, other.passed],
      [[CheckCluster.appliedIndex], [CheckCluster.appliedIndex]],
    );
    // n1 restarts on a damaged database and asks for a check; the leader starts one again at the same
    // index, which n3 already hashed.
    const restarted = cluster.start(n1, hashB, "follower");
    cluster.nowMs += checkSpacingMs;
    const sentBefore = cluster.sent.length;
    cluster.send(n1, n2, encodeStorage({ kind: "checkRequest", appliedIndex: CheckCluster.appliedIndex }));
    cluster.settle();
    assert.deepEqual(
      restarted.found.map((found) => ({ ...found, agreeing: [...found.agreeing].sort() })),
      [{ index: CheckCluster.appliedIndex, ownHash: hashB, majorityHash: hashA, agreeing: [n2, n3] }],
    );
    // n3 sent its report once to each other member for the restarted check.
    const reportsOf = (from: NodeId, since: number) =>
      cluster.sent
        .slice(since)
        .filter((sent) => sent.from === from && sent.message.kind === "checkReport")
        .map((sent) => sent.to)
        .sort();
    assert.deepEqual(reportsOf(n3, sentBefore), [n1, n2]);
    // A report never draws one in answer: n1's, again, draws nothing from n3 (no ping-pong).
    const sentAgain = cluster.sent.length;
    cluster.send(
      n1,
      n3,
      encodeStorage({ kind: "checkReport", index: CheckCluster.appliedIndex, hash: hashB }),
    );
    cluster.settle();
    assert.deepEqual(reportsOf(n3, sentAgain), []);
    assert.equal(cluster.sent.length, sentAgain + 1);
    assert.equal(restarted.found.length, 1, "judged once");
  });
});

describe("storage messages on the wire", () => {
  test("every kind survives encoding; malformed ones are refused BAD_MESSAGE", () => {
    const messages: StorageMessage[] = [
      { kind: "checkStart", index: logIndex(42) },
      { kind: "checkReport", index: logIndex(7), hash: hashA.replace(/a/g, "0f").slice(0, 64) },
      { kind: "snapshotRequest", appliedIndex: logIndex(2 ** 40) },
      { kind: "checkRequest", appliedIndex: logIndex(0) },
    ];
    for (const message of messages)
      assert.deepEqual(decodePeerBody(encodeStorage(message)), { type: "storage", message });
    const report = encodeStorage(messages[1]!);
    for (const bad of [
      report.subarray(0, report.byteLength - 1),
      Uint8Array.of(4, 9, 0, 0, 0, 0, 0, 0, 0, 0),
    ])
      assert.throws(
        () => decodePeerBody(bad),
        (e) => isBatonError(e, "BAD_MESSAGE"),
      );
    assert.throws(() => encodeStorage({ kind: "checkReport", index: logIndex(1), hash: "abc" }), /32 bytes/);
  });
});
