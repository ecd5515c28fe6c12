/**
 * Scripted membership scenarios on the simulation harness: the steps the operator of
 * `member-operator.ts` takes at random, here in a fixed order on a quiet cluster, each ending with
 * the liveness phase and the final check (every member, learners included, converged).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import type { ClusterConfig } from "../../src/consensus/index.ts";
import type { NodeId } from "../../src/types/ids.ts";
import { SimViolation } from "./checkers.ts";
import type { SimCluster } from "./cluster.ts";
import { type SimOptions, simTickMs, wipeAfterCrashTicks } from "./options.ts";
import { finalCheck, livenessPhase } from "./run.ts";
import { awaitLeader, startQuietCluster } from "./scenario-kit.ts";
import { type SimNodeHost, simAddress } from "./sim-node.ts";

const requestTimeoutMs = 2_000 * simTickMs;

async function quietCluster(seed: number, overrides: Partial<SimOptions>): Promise<SimCluster> {
  return startQuietCluster(seed, { snapshotEntries: 10, compactionTrailEntries: 0, ...overrides });
}

const leaderOf = awaitLeader;

/** Runs the cluster until `answer` settles (bounded); returns its value or its error code. */
async function settled<T>(
  cluster: SimCluster,
  answer: Promise<T> | undefined,
): Promise<T | { code: string }> {
  let outcome: { value: T } | { code: string } | null = null;
  answer?.then(
    (value) => {
      outcome = { value };
    },
    (error: { code?: string }) => {
      outcome = { code: error.code ?? String(error) };
    },
  );
  assert.notEqual(await cluster.runUntil(() => outcome !== null, 3_000), null, "the request was answered");
  const done = outcome as { value: T } | { code: string } | null;
  assert.ok(done !== null);
  return "value" in done ? done.value : done;
}

async function appendMany(cluster: SimCluster, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const write = cluster.workload.appendOnce(await leaderOf(cluster), "majority");
    assert.notEqual(
      await cluster.runUntil(() => write.outcome === "ok", 400),
      null,
      "a write on a quiet cluster",
    );
  }
}

/** `baton start --join` for a node whose disk is empty: ask the leader, then start from its answer. */
async function join(cluster: SimCluster, id: NodeId): Promise<ClusterConfig> {
  const answer = await settled(
    cluster,
    (await leaderOf(cluster)).node?.memberJoin({ id, ...simAddress(id) }, requestTimeoutMs),
  );
  assert.ok("config" in answer, `the join was answered: ${JSON.stringify(answer)}`);
  await cluster.bootJoined(id, answer.config);
  return answer.config;
}

/** Crashes `node`, waits as an operator would, and wipes its whole disk. */
async function crashAndWipe(cluster: SimCluster, node: SimNodeHost): Promise<void> {
  cluster.hold(node.id);
  await cluster.run(wipeAfterCrashTicks(cluster.options));
  await cluster.wipe(node.id);
}

async function finish(cluster: SimCluster): Promise<void> {
  try {
    await livenessPhase(cluster);
    await finalCheck(cluster);
  } finally {
    await cluster.dispose();
  }
}

describe("scripted membership scenarios on production nodes", () => {
  test("a wiped voter joins again as a learner, catches up from a snapshot, and is promoted", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await quietCluster(seed, { nodeCount: 3 });
      await appendMany(cluster, 30);
      const leader = await leaderOf(cluster);
      const victim = cluster.nodes.find((node) => node !== leader) as SimNodeHost;
      await crashAndWipe(cluster, victim);
      await appendMany(cluster, 5);
      const installsBefore = cluster.storageEvents["snapshot.installed"] ?? 0;
      const config = await join(cluster, victim.id);
      assert.deepEqual(config.learners, [victim.id], `SEED=${seed}: joined as a learner`);
      assert.ok(!config.voters.includes(victim.id), `SEED=${seed}: its old membership was removed first`);
      const promoted = await settled(
        cluster,
        (await leaderOf(cluster)).node?.memberChange("promote", victim.id, requestTimeoutMs, "simulator"),
      );
      assert.ok(!("code" in promoted), `SEED=${seed}: promoted (${JSON.stringify(promoted)})`);
      assert.ok(
        (cluster.storageEvents["snapshot.installed"] ?? 0) > installsBefore,
        `SEED=${seed}: from a snapshot`,
      );
      await finish(cluster);
    }
  });

  test("with the injected bug rejoinWithoutRemoval, a wiped voter keeps its old membership and the run fails", async () => {
    const cluster = await quietCluster(1, { nodeCount: 3, unsafeNodeBugs: { rejoinWithoutRemoval: true } });
    await appendMany(cluster, 30);
    const leader = await leaderOf(cluster);
    const victim = cluster.nodes.find((node) => node !== leader) as SimNodeHost;
    await crashAndWipe(cluster, victim);
    let failure: unknown = null;
    try {
      const config = await join(cluster, victim.id);
      assert.ok(config.voters.includes(victim.id), "the bug answers with the old membership");
      await appendMany(cluster, 5);
      await livenessPhase(cluster);
    } catch (error) {
      failure = error;
    } finally {
      await cluster.dispose();
    }
    assert.ok(failure instanceof SimViolation, `a violation, not ${String(failure)}`);
    assert.match(failure.message, new RegExp(`node ${victim.id} stopped: .*heartbeat commit beyond our log`));
  });

  test("the final check holds a read replica to the voters' content", async () => {
    const cluster = await quietCluster(4, { nodeCount: 3 });
    await appendMany(cluster, 12);
    const replica = cluster.addHost(cluster.spareId);
    await join(cluster, replica.id);
    await appendMany(cluster, 3);
    const leader = await leaderOf(cluster);
    const caughtUp = () => replica.store?.appliedIndex === leader.core?.summary().commitIndex;
    assert.notEqual(await cluster.runUntil(caughtUp, 400), null, "the replica caught up");
    await finalCheck(cluster);
    // Corrupt the replica's copy behind the node's back: the final check must name it.
    const path = replica.store?.path as string;
    const database = new DatabaseSync(path);
    database.exec("UPDATE lists SET items = items || ',999999' WHERE key = (SELECT min(key) FROM lists)");
    database.close();
    try {
      await assert.rejects(finalCheck(cluster), (error: unknown) => {
        assert.ok(error instanceof SimViolation && error.kind === "state-machine-safety");
        assert.match(error.message, new RegExp(`${replica.id} \\(learner`));
        return true;
      });
    } finally {
      await cluster.dispose();
    }
  });
});
