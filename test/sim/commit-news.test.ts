/**
 * Commit news on production nodes (`deferCommitNews`): a leader leaves the news of a commit to the
 * next AppendEntries with entries, or to its `commitNewsDelayMs` timer when none follows. Followers
 * must still apply a lone write promptly, long before the next heartbeat would tell them.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { awaitLeader, startQuietCluster } from "./scenario-kit.ts";

/** Heartbeats 20 ticks apart: a follower that waited for one would take up to 20 ticks. */
const heartbeatTicks = 20;
/** Lone writes, each after the cluster went quiet. */
const writes = 5;

describe("commit news", () => {
  test("followers apply a lone write within ticks of its commit, not at the next heartbeat", async () => {
    for (const seed of [1, 2]) {
      const cluster = await startQuietCluster(seed, {
        nodeCount: 3,
        heartbeatTicks,
        missedHeartbeats: 10,
        delayTicksMin: 1,
        delayTicksMax: 1,
        fsyncTicksMax: 0,
      });
      try {
        const leader = await awaitLeader(cluster);
        const lags: number[] = [];
        for (let write = 0; write < writes; write++) {
          await cluster.run(7);
          const op = cluster.workload.appendOnce(leader, "majority");
          const acknowledged = await cluster.runUntil(() => op.outcome === "ok", 200);
          assert.notEqual(acknowledged, null, `SEED=${seed}: write ${write} acknowledged`);
          const committed = leader.core?.summary().commitIndex ?? 0;
          const applied = () => cluster.nodes.every((node) => (node.store?.appliedIndex ?? 0) >= committed);
          const lag = await cluster.runUntil(applied, 2 * heartbeatTicks);
          assert.notEqual(lag, null, `SEED=${seed}: write ${write} applied everywhere`);
          lags.push(lag ?? -1);
        }
        // The news leaves 2 ms after the commit and arrives a tick or two later.
        assert.ok(Math.max(...lags) <= 3, `SEED=${seed}: ticks from acknowledgement to every apply: ${lags}`);
      } finally {
        await cluster.dispose();
      }
    }
  });
});
