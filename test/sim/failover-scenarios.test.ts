/**
 * Scripted failover scenarios on the simulation harness (the steps `failover-operator.ts` takes at
 * random, here in a fixed order on a quiet cluster), each ending with the liveness phase and the
 * final check: mode manual, where only an operator's promotion replaces a lost leader and a stale
 * node's is refused; and a cluster of two data nodes and a witness, which serves no SQL and keeps
 * taking writes when either data node is lost.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isBatonError } from "../../src/lib/errors.ts";
import { nodeId } from "../../src/types/ids.ts";
import { SimCluster } from "./cluster.ts";
import { electionTimeoutTicksOf, optionsFromSeed, type SimOptions, simTickMs } from "./options.ts";
import { finalCheck, livenessPhase, quietOverrides } from "./run.ts";
import { awaitLeader, startQuietCluster } from "./scenario-kit.ts";
import type { SimNodeHost } from "./sim-node.ts";

const requestTimeoutMs = 500 * simTickMs;

async function quietCluster(seed: number, overrides: Partial<SimOptions>): Promise<SimCluster> {
  return startQuietCluster(seed, { nodeCount: 3, ...overrides });
}

const leaderOf = awaitLeader;

/** Runs the cluster until `answer` settles (bounded); its value, or the error. */
async function settled<T>(
  cluster: SimCluster,
  answer: Promise<T> | undefined,
): Promise<{ value: T } | { error: unknown }> {
  let outcome: { value: T } | { error: unknown } | null = null;
  answer?.then(
    (value) => {
      outcome = { value };
    },
    (error: unknown) => {
      outcome = { error };
    },
  );
  assert.notEqual(await cluster.runUntil(() => outcome !== null, 3_000), null, "the request was answered");
  return outcome as unknown as { value: T } | { error: unknown };
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

async function finish(cluster: SimCluster): Promise<void> {
  try {
    await livenessPhase(cluster);
    await finalCheck(cluster);
  } finally {
    await cluster.dispose();
  }
}

describe("scripted failover scenarios on production nodes", () => {
  test("mode manual: nobody replaces a lost leader by itself; a stale node's promotion is refused, the up-to-date one's accepted", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await quietCluster(seed, { failoverMode: "manual" });
      await appendMany(cluster, 5);
      const leader = await leaderOf(cluster);
      const [stale, fresh] = cluster.nodes.filter((node) => node !== leader) as [SimNodeHost, SimNodeHost];
      // `stale` misses the last writes: down while the leader commits them with `fresh`.
      cluster.hold(stale.id);
      await appendMany(cluster, 5);
      cluster.hold(leader.id);
      await cluster.release(stale.id);
      await cluster.run(10 * electionTimeoutTicksOf(cluster.options).max);
      for (const node of [stale, fresh])
        assert.notEqual(
          node.core?.summary().role,
          "leader",
          `SEED=${seed}: ${node.id} took office by itself`,
        );
      assert.notEqual(fresh.node?.failoverView().leaderLostMsAgo, null, `SEED=${seed}: the loss is reported`);
      const refused = await settled(cluster, stale.node?.promote(requestTimeoutMs, "simulator"));
      assert.ok(
        "error" in refused && isBatonError(refused.error, "PROMOTION_REFUSED"),
        `SEED=${seed}: refused`,
      );
      assert.equal(refused.error.details.reason, "LOG_BEHIND");
      assert.equal(refused.error.details.peer, fresh.id);
      const promoted = await settled(cluster, fresh.node?.promote(requestTimeoutMs, "simulator"));
      assert.ok("value" in promoted, `SEED=${seed}: promoted (${JSON.stringify(promoted)})`);
      assert.equal(promoted.value.leader, fresh.id);
      assert.ok(
        cluster.failoverChecker.counts.operatorRuleChecks >= 1,
        "the operator rule judged the change",
      );
      await cluster.release(leader.id);
      await finish(cluster);
    }
  });

  // Found by the simulator: a witness elected as a relay ran `leader` reads and writes on its empty
  // database, answering SQL_ERROR. The injected core bug keeps it in office long enough to look.
  test("a witness that leads runs no client SQL: reads WITNESS_NO_SQL, writes LEADERSHIP_TRANSFER", async () => {
    const cluster = new SimCluster(
      optionsFromSeed(1, {
        ...quietOverrides(),
        nodeCount: 3,
        witnessNode: "initial-leader",
        unsafeTestBugs: { ineligibleLeaderKeepsOffice: true },
      }),
    );
    try {
      await cluster.start();
      const leader = await leaderOf(cluster);
      await cluster.failoverOperator.setup();
      assert.equal(leader.node?.isWitness(), true);
      assert.equal(leader.core?.summary().role, "leader", "the bug keeps the witness in office");
      for (const consistency of ["leader", "linearizable", "any"] as const) {
        const read: { value: unknown } | { error: unknown } = await settled(
          cluster,
          leader.node?.query({
            statements: [{ sql: "SELECT 1", params: [] }],
            consistency,
            minIndex: null,
            maxLagMs: null,
            timeoutMs: requestTimeoutMs,
          }),
        );
        assert.ok(
          "error" in read && isBatonError(read.error, "WITNESS_NO_SQL"),
          `${consistency}: ${JSON.stringify(read)}`,
        );
      }
      const write = await settled(
        cluster,
        leader.node?.execute({
          statements: [{ sql: "CREATE TABLE t(id INTEGER PRIMARY KEY)", params: [] }],
          durability: "majority",
          requestId: null,
          expectedTerm: null,
          timeoutMs: requestTimeoutMs,
        }),
      );
      assert.ok("error" in write && isBatonError(write.error, "LEADERSHIP_TRANSFER"), JSON.stringify(write));
    } finally {
      await cluster.dispose();
    }
  });

  // Found by the simulator (a damaged leader kept choosing a never-promote voter, which the core
  // refuses, and stayed in office): a leader hands over only to a voter that may lead. Here through
  // `handOver` (graceful stop, removal of the leader), whose choice was the same, with the
  // never-promote voter first among equally caught-up followers.
  test("a leader stepping down hands over to a voter that may lead, not to a never-promote one", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await quietCluster(seed, { neverPromoteNode: nodeId("n1") });
      await appendMany(cluster, 5);
      const leader = await leaderOf(cluster);
      const other = cluster.nodes.find((node) => node !== leader && node.id !== "n1") as SimNodeHost;
      await cluster.run(5 * cluster.options.heartbeatTicks);
      leader.node?.handOver(requestTimeoutMs);
      const handedOver = await cluster.runUntil(
        () => cluster.stableLeader() === other,
        3 * electionTimeoutTicksOf(cluster.options).max,
      );
      assert.notEqual(handedOver, null, `SEED=${seed}: ${other.id} leads`);
      assert.ok(
        !leader.events.includes("consensus.transfer-rejected"),
        `SEED=${seed}: no transfer to n1 tried`,
      );
      await finish(cluster);
    }
  });

  test("two data nodes and a witness: the witness serves no SQL, and either data node may be lost", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await quietCluster(seed, { witnessNode: nodeId("n3") });
      const witness = cluster.node("n3");
      assert.equal(witness.node?.isWitness(), true);
      await appendMany(cluster, 10);
      const read = await settled(
        cluster,
        witness.node?.query({
          statements: [{ sql: "SELECT items FROM lists", params: [] }],
          consistency: "any",
          minIndex: null,
          maxLagMs: null,
          timeoutMs: requestTimeoutMs,
        }),
      );
      assert.ok(
        "error" in read && isBatonError(read.error, "WITNESS_NO_SQL"),
        `SEED=${seed}: ${JSON.stringify(read)}`,
      );
      for (const lost of ["n1", "n2"]) {
        const survivor = cluster.node(lost === "n1" ? "n2" : "n1");
        cluster.hold(nodeId(lost));
        await appendMany(cluster, 5);
        assert.equal(
          (await leaderOf(cluster)).id,
          survivor.id,
          `SEED=${seed}: the data node that is left leads`,
        );
        await cluster.release(nodeId(lost));
        const healed = () => {
          const node = cluster.node(lost);
          const commitIndex = survivor.core?.summary().commitIndex;
          return node.store?.appliedIndex === commitIndex && node.node?.status().storage.verified === true;
        };
        assert.notEqual(
          await cluster.runUntil(healed, 3_000),
          null,
          `SEED=${seed}: ${lost} caught up and verified`,
        );
      }
      const tables = witness.store?.query([{ sql: "SELECT name FROM sqlite_schema WHERE name = 'lists'" }]);
      assert.deepEqual(tables?.results[0]?.rows, [], `SEED=${seed}: the witness holds no data`);
      await finish(cluster);
    }
  });

  // Found by the simulator (SEED=5718): a witness compacted its log past what a lagging data voter
  // held; elected as the relay, it could send that voter neither the entries nor a snapshot (it holds
  // no data), and the cluster stayed leaderless. A witness compacts no further than the data floor.
  test("a witness keeps the log a lagging data node needs, and hands it on when the leader is lost", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await quietCluster(seed, {
        witnessNode: nodeId("n3"),
        snapshotEntries: 10,
        compactionTrailEntries: 0,
      });
      const witness = cluster.node("n3");
      await appendMany(cluster, 5);
      const leader = await leaderOf(cluster);
      const lagging = cluster.node(leader.id === "n1" ? "n2" : "n1");
      const behind = lagging.core?.summary().lastIndex ?? 0;
      cluster.hold(lagging.id);
      await appendMany(cluster, 40);
      const witnessLog = witness.node?.status().snapshots;
      assert.ok((witnessLog?.taken ?? 0) >= 3, `SEED=${seed}: the witness took snapshots`);
      assert.ok(
        (witnessLog?.logFirstIndex ?? 0) > 1 && (witnessLog?.logFirstIndex ?? 0) <= behind + 1,
        `SEED=${seed}: the witness compacted up to what ${lagging.id} holds (${behind}), no further: ${JSON.stringify(witnessLog)}`,
      );
      const committed = leader.core?.summary().commitIndex ?? 0;
      cluster.hold(leader.id);
      await cluster.release(lagging.id);
      const caughtUp = () =>
        lagging.core?.summary().role === "leader" && (lagging.store?.appliedIndex ?? 0) >= committed;
      assert.notEqual(
        await cluster.runUntil(caughtUp, 3_000),
        null,
        `SEED=${seed}: ${lagging.id} caught up from the witness and leads`,
      );
      await cluster.release(leader.id);
      await finish(cluster);
    }
  });
});
