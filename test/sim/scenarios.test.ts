/**
 * Hand-written scenarios on the simulation harness: the same cluster, network, checkers and
 * liveness phase as the seeded runs, with the faults scripted instead of random. Every scenario ends
 * with the liveness phase and the final check (no write acknowledged at `majority` or `all` lost).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeId } from "../../src/types/ids.ts";
import { SimCluster } from "./cluster.ts";
import { electionBoundTicks, electionTimeoutTicksOf, optionsFromSeed, type SimOptions } from "./options.ts";
import { livenessPhase, quietOverrides } from "./run.ts";
import type { SimNode } from "./sim-node.ts";
import type { WriteRecord } from "./workload.ts";

function quietCluster(seed: number, overrides: Partial<SimOptions> = {}): SimCluster {
  const cluster = new SimCluster(
    optionsFromSeed(seed, { ...quietOverrides(), preVote: true, checkQuorum: true, ...overrides }),
  );
  const elected = cluster.runUntil(
    () => cluster.stableLeader() !== null,
    electionBoundTicks(cluster.options),
  );
  assert.notEqual(elected, null, `SEED=${seed}: no initial leader`);
  return cluster;
}

function leaderOf(cluster: SimCluster): SimNode {
  const leader = cluster.stableLeader();
  assert.ok(leader !== null, `SEED=${cluster.options.seed}: no stable leader`);
  return leader;
}

/** The live node that is leader in the highest term among `candidates`, if any. */
function leaderAmong(candidates: readonly SimNode[]): SimNode | null {
  let best: SimNode | null = null;
  for (const node of candidates) {
    const status = node.core?.status();
    if (status?.role !== "leader") continue;
    if (best === null || (best.core?.status().term ?? 0) < status.term) best = node;
  }
  return best;
}

function finish(cluster: SimCluster): ReturnType<typeof cluster.checker.checkFinal> {
  livenessPhase(cluster);
  return cluster.checker.checkFinal(cluster.nodes);
}

describe("scripted scenarios", () => {
  test("a leader partitioned into a minority acknowledges no `majority` or `all` write", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const cluster = quietCluster(seed, { nodeCount: 5 });
      const leader = leaderOf(cluster);
      const others = cluster.ids.filter((id) => id !== leader.id);
      const minority = [leader.id, others[0] as NodeId];
      cluster.network.partition(minority, others.slice(1));
      const writes: WriteRecord[] = [];
      const levels = ["local", "one", "majority", "all"] as const;
      const ticks = 3 * electionTimeoutTicksOf(cluster.options).max;
      for (let i = 0; i < ticks; i++) {
        writes.push(cluster.propose(leader.id, levels[i % levels.length] ?? "majority"));
        cluster.tick();
      }
      const acknowledged = (level: string) =>
        writes.filter((w) => w.durability === level && w.state === "acknowledged").length;
      assert.equal(acknowledged("majority") + acknowledged("all"), 0, `SEED=${seed}`);
      assert.ok(acknowledged("local") > 0, `SEED=${seed}: local writes are acknowledged by the leader alone`);
      // Check-quorum fenced the old leader: it stopped accepting writes.
      assert.equal(writes.at(-1)?.state, "rejected", `SEED=${seed}`);
      cluster.healAll();
      const losses = finish(cluster);
      assert.equal(losses.majority.lost + losses.all.lost, 0);
      assert.ok(losses.local.lost > 0, `SEED=${seed}: the minority's local writes were lost and counted`);
    }
  });

  test("a rejoining old leader's uncommitted suffix is replaced and reported for review", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const cluster = quietCluster(seed, { nodeCount: 3 });
      const oldLeader = leaderOf(cluster);
      cluster.network.isolate(oldLeader.id, cluster.ids);
      // Long timeouts, so that the writes are still waiting when their entries are replaced.
      const orphans = [1, 2, 3].map(() => cluster.propose(oldLeader.id, "majority", 100_000));
      const rest = cluster.nodes.filter((node) => node !== oldLeader);
      const elected = cluster.runUntil(() => leaderAmong(rest) !== null, electionBoundTicks(cluster.options));
      assert.notEqual(elected, null, `SEED=${seed}`);
      const newLeader = leaderAmong(rest);
      assert.ok(newLeader !== null);
      cluster.propose(newLeader.id, "majority");
      cluster.run(10);
      finish(cluster);
      const discarded = cluster.discarded.filter((d) => d.node === oldLeader.id).map((d) => d.index);
      for (const orphan of orphans) {
        assert.ok(
          orphan.index !== null && discarded.includes(orphan.index),
          `SEED=${seed}: entry ${orphan.index} reported`,
        );
        assert.equal(orphan.notConfirmedReason, "overwritten", `SEED=${seed}`);
        assert.ok(cluster.nodes.every((node) => !node.stateMachine.contains(orphan.writeId)));
      }
    }
  });

  test("a stale follower is never elected over a fresher one (Raft §5.4.1)", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const cluster = quietCluster(seed, { nodeCount: 3 });
      const leader = leaderOf(cluster);
      const [fresh, stale] = cluster.nodes.filter((node) => node !== leader) as [SimNode, SimNode];
      cluster.network.isolate(stale.id, cluster.ids);
      const writes = [1, 2, 3].map(() => cluster.propose(leader.id, "majority"));
      const acked = cluster.runUntil(() => writes.every((w) => w.state === "acknowledged"), 200);
      assert.notEqual(acked, null, `SEED=${seed}`);
      cluster.crash(leader.id);
      cluster.healPartitions();
      const elected = cluster.runUntil(
        () => leaderAmong([fresh, stale]) !== null,
        electionBoundTicks(cluster.options),
      );
      assert.notEqual(elected, null, `SEED=${seed}`);
      assert.equal(leaderAmong([fresh, stale])?.id, fresh.id, `SEED=${seed}: the stale node won`);
      finish(cluster);
    }
  });

  test("a flapping network loses no acknowledged write and recovers", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const cluster = quietCluster(seed, { nodeCount: 5, proposeRate: 0.3 });
      for (let flap = 0; flap < 30; flap++) {
        const ids = [...cluster.ids];
        const cut = cluster.prng.intBetween(1, ids.length - 1);
        cluster.network.partition(ids.slice(0, cut), ids.slice(cut));
        cluster.run(cluster.prng.intBetween(1, 15), { load: true });
        cluster.healPartitions();
        cluster.run(cluster.prng.intBetween(1, 15), { load: true });
      }
      const losses = finish(cluster);
      assert.ok(losses.majority.acknowledged > 0, `SEED=${seed}: writes went through between flaps`);
    }
  });

  test("leadership transfer under load hands over and loses no acknowledged write (thesis §3.10)", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const cluster = quietCluster(seed, {
        nodeCount: 5,
        proposeRate: 0.5,
        durabilityWeights: { local: 0, one: 0, majority: 3, all: 1 },
      });
      for (let round = 0; round < 5; round++) {
        const leader = leaderOf(cluster);
        const followers = cluster.nodes.filter((node) => node !== leader);
        const target = cluster.prng.pick(followers);
        leader.step({ type: "transferLeadership", target: target.id }, cluster.nowTick);
        const handedOver = cluster.runUntil(
          () => cluster.stableLeader() === target,
          3 * electionTimeoutTicksOf(cluster.options).max,
          { load: true },
        );
        assert.notEqual(handedOver, null, `SEED=${seed}: transfer to ${target.id} did not complete`);
        cluster.run(20, { load: true });
      }
      const losses = finish(cluster);
      assert.ok(losses.majority.acknowledged > 20, `SEED=${seed}`);
    }
  });
});
