/**
 * Randomized safety test of membership changes over a seeded cluster of cores.
 *
 * Five cores share a lossy, reordering network. Nodes 1–3 start as the voters; 4 and 5 start
 * outside the configuration (each knows itself as a learner-to-be). Every step the seeded generator
 * picks one action: deliver or drop a message, tick a node, read, propose a write, ask a would-be
 * leader for a random membership change (add learner, promote, demote, remove, of any node, the
 * leader included), transfer leadership, force a campaign, cut or heal a link, restart a node from
 * its durable state, or compact a node's log. The host and the network are `core-cluster.ts`'s.
 *
 * Reads go through the read index, on the leader and (when the seed turns `followerReadIndex` on)
 * through it on followers and learners.
 *
 * Checkers (`cluster-checkers.ts`), after every step: election safety, committed-prefix agreement,
 * leader completeness, a leader is a voter of its configuration unless that configuration is
 * uncommitted (§4.2.2), read linearizability. The core's own assertions run too. A failure prints
 * `SEED=…`; run with that environment variable to replay one seed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { nodeId } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { type MembershipChange, membershipChangeKinds } from "./cluster-config.ts";
import { type ClusterSetup, CoreCluster, weightedActor } from "./core-cluster.ts";

const ids = ["1", "2", "3", "4", "5"].map(nodeId);
const setup: ClusterSetup = { ids, bootstrapVoters: ids.slice(0, 3) };
/** Seeds run by default; each is a whole, independent cluster history. */
const seedCount = Number(process.env.MEMBERSHIP_SEEDS ?? 240);
/** Actions per seed. */
const stepsPerSeed = 700;

function randomChange(cluster: CoreCluster): MembershipChange {
  return { kind: cluster.random.pick(membershipChangeKinds), node: cluster.random.pick(ids) };
}

/** The actions and their weights; `id` is a node drawn for the step. */
const act = weightedActor([
  [45, (cluster) => cluster.deliverOne()],
  [25, (cluster, id) => cluster.step(id, { type: "tick" })],
  [5, (cluster, id) => cluster.read(cluster.random.chance(0.5) ? cluster.leaderOr(id) : id)],
  [
    10,
    (cluster, id) => {
      const data = new TextEncoder().encode(`w${++cluster.proposals}`);
      const proposalId = `p${cluster.proposals}`;
      cluster.step(cluster.leaderOr(id), { type: "propose", proposalId, kind: EntryKind.command, data });
    },
  ],
  [
    7,
    (cluster, id) => {
      const proposalId = `c${++cluster.proposals}`;
      cluster.step(cluster.leaderOr(id), {
        type: "changeMembership",
        proposalId,
        change: randomChange(cluster),
      });
    },
  ],
  [2, (cluster, id) => cluster.step(cluster.leaderOr(id), { type: "transferLeadership", target: id })],
  [1, (cluster, id) => cluster.step(id, { type: "campaign" })],
  [3, (cluster, id) => cluster.toggleLink(id, cluster.random.pick(ids))],
  [1, (cluster, id) => cluster.restart(id)],
  [1, (cluster, id) => cluster.compact(id)],
]);

test("membership changes keep election safety, committed-prefix agreement and leader completeness", () => {
  const only = process.env.SEED;
  const seeds = only === undefined ? Array.from({ length: seedCount }, (_, i) => i + 1) : [Number(only)];
  let commits = 0;
  let changes = 0;
  let leaderTerms = 0;
  let reads = 0;
  for (const seed of seeds) {
    const cluster = new CoreCluster(seed, setup).run(seed, stepsPerSeed, act);
    commits += cluster.checkers.committed.size;
    changes += cluster.changesAccepted;
    leaderTerms += cluster.checkers.leaders.size;
    reads += cluster.readsReady;
  }
  if (process.env.MEMBERSHIP_STATS === "1")
    console.log({ commits, changes, leaderTerms, reads, seeds: seeds.length });
  // The histories must not be vacuous: leaders come and go, changes and writes commit.
  if (only === undefined) {
    assert.ok(leaderTerms > seeds.length, `only ${leaderTerms} leader terms`);
    assert.ok(changes > seeds.length, `only ${changes} membership changes accepted`);
    assert.ok(commits > seeds.length * 10, `only ${commits} committed entries`);
    assert.ok(reads > seeds.length, `only ${reads} reads served`);
  }
});
