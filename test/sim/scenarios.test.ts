/**
 * Hand-written scenarios on the simulation harness: the same production nodes, network, checkers
 * and liveness phase as the seeded runs, with the faults scripted instead of random. Every scenario
 * ends with the liveness phase and the SQL-level final check.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Durability } from "../../src/api/api-types.ts";
import { nodeDefaults } from "../../src/node/node-config.ts";
import type { NodeId } from "../../src/types/ids.ts";
import { SimViolation } from "./checkers.ts";
import type { SimCluster } from "./cluster.ts";
import type { AppendOp } from "./list-append-checker.ts";
import { electionBoundTicks, electionTimeoutTicksOf, simTickMs } from "./options.ts";
import { finalCheck, livenessPhase } from "./run.ts";
import { startQuietCluster } from "./scenario-kit.ts";
import type { SimNodeHost } from "./sim-node.ts";

const quietCluster = startQuietCluster;

function leaderOf(cluster: SimCluster): SimNodeHost {
  const leader = cluster.stableLeader();
  assert.ok(leader !== null, `SEED=${cluster.options.seed}: no stable leader`);
  return leader;
}

/** The live node that is leader in the highest term among `candidates`, if any. */
function leaderAmong(candidates: readonly SimNodeHost[]): SimNodeHost | null {
  let best: SimNodeHost | null = null;
  for (const node of candidates) {
    const summary = node.core?.summary();
    if (summary?.role !== "leader") continue;
    if (best === null || (best.core?.summary().term ?? 0) < summary.term) best = node;
  }
  return best;
}

/**
 * One acknowledged `majority` append, so the leader holds a committed AUTOINCREMENT reservation:
 * later `local` writes are then acknowledged on the leader alone while their ids stay within it.
 */
async function warmUp(cluster: SimCluster, leader: SimNodeHost): Promise<void> {
  const write = cluster.workload.appendOnce(leader, "majority");
  assert.notEqual(await cluster.runUntil(() => write.outcome === "ok", 400), null, "the warm-up write");
  await cluster.run(20);
}

/** Runs the cluster until `answer` settles (bounded); returns its error code, or "ok". */
/** A `leader` read of the events table on `node`. */
function leaderRead(node: SimNodeHost): Promise<unknown> | undefined {
  return node.node?.query({
    statements: [{ sql: "SELECT count(*) FROM events", params: [] }],
    consistency: "leader",
    minIndex: null,
    maxLagMs: null,
    timeoutMs: 50 * simTickMs,
  });
}

async function settled(cluster: SimCluster, answer: Promise<unknown> | undefined): Promise<{ code: string }> {
  let outcome: { code: string } | null = null;
  answer?.then(
    () => {
      outcome = { code: "ok" };
    },
    (error: { code?: string }) => {
      outcome = { code: error.code ?? String(error) };
    },
  );
  assert.notEqual(await cluster.runUntil(() => outcome !== null, 1_000), null, "the request was answered");
  return outcome ?? { code: "none" };
}

/**
 * n(leader) and `lost` commit three `majority` writes while `stale` is cut off; the leader then
 * dies, and `lost` restarts with those entries gone from its log (as the WAL heals a corrupted
 * record), while `stale` is back. Only the leader still holds the entries.
 */
async function lostEntriesScenario(
  seed: number,
  bugs: { ignoreLostEntries?: boolean },
): Promise<{ cluster: SimCluster; lost: SimNodeHost; stale: SimNodeHost }> {
  const cluster = await quietCluster(seed, { nodeCount: 3, unsafeTestBugs: bugs });
  const leader = leaderOf(cluster);
  await warmUp(cluster, leader);
  const [lost, stale] = cluster.nodes.filter((node) => node !== leader) as [SimNodeHost, SimNodeHost];
  cluster.network.isolate(stale.id, cluster.ids);
  const firstLost = (leader.core?.status().lastIndex ?? 0) + 1;
  const writes = [1, 2, 3].map(() => cluster.workload.appendOnce(leader, "majority"));
  assert.notEqual(await cluster.runUntil(() => writes.every((w) => w.outcome === "ok"), 400), null);
  await cluster.run(5);
  cluster.crash(leader.id);
  cluster.crash(lost.id);
  lost.disk.loseEntriesFrom(firstLost);
  await cluster.restart(lost.id);
  cluster.healPartitions();
  cluster.network.isolate(leader.id, cluster.ids);
  return { cluster, lost, stale };
}

async function finish(cluster: SimCluster): Promise<Awaited<ReturnType<typeof finalCheck>>["losses"]> {
  try {
    await livenessPhase(cluster);
    return (await finalCheck(cluster)).losses;
  } finally {
    await cluster.dispose();
  }
}

describe("scripted scenarios on production nodes", () => {
  test("a leader partitioned into a minority acknowledges no `majority` or `all` write", async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const cluster = await quietCluster(seed, { nodeCount: 5 });
      const leader = leaderOf(cluster);
      await warmUp(cluster, leader);
      const others = cluster.ids.filter((id) => id !== leader.id);
      cluster.network.partition([leader.id, others[0] as NodeId], others.slice(1));
      const writes: AppendOp[] = [];
      const levels: readonly Durability[] = ["local", "one", "majority", "all"];
      const ticks = 3 * electionTimeoutTicksOf(cluster.options).max;
      for (let i = 0; i < ticks; i++) {
        writes.push(cluster.workload.appendOnce(leader, levels[i % levels.length] ?? "majority"));
        await cluster.tick();
      }
      const acknowledged = (level: string) =>
        writes.filter((w) => w.durability === level && w.outcome === "ok").length;
      assert.equal(acknowledged("majority") + acknowledged("all"), 0, `SEED=${seed}`);
      assert.ok(acknowledged("local") > 0, `SEED=${seed}: local writes are acknowledged by the leader alone`);
      // Check-quorum fenced the old leader: it stopped accepting writes.
      assert.equal(writes.at(-1)?.outcome, "failed", `SEED=${seed}`);
      const losses = await finish(cluster);
      assert.equal(losses.majority.lost + losses.all.lost, 0);
      assert.ok(losses.local.lost > 0, `SEED=${seed}: the minority's local writes were lost and counted`);
    }
  });

  test("a rejoining old leader's uncommitted suffix is replaced, reported for review, and its SQL rolled back", async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const cluster = await quietCluster(seed, { nodeCount: 3, proposalTimeoutTicks: 100_000 });
      const oldLeader = leaderOf(cluster);
      cluster.network.isolate(oldLeader.id, cluster.ids);
      const orphans = [1, 2, 3].map(() => cluster.workload.appendOnce(oldLeader, "majority"));
      const rest = cluster.nodes.filter((node) => node !== oldLeader);
      const elected = await cluster.runUntil(
        () => leaderAmong(rest) !== null,
        electionBoundTicks(cluster.options),
      );
      assert.notEqual(elected, null, `SEED=${seed}`);
      const discardedBefore = cluster.discarded.length;
      await finish(cluster);
      const discarded = cluster.discarded.slice(discardedBefore).filter((d) => d.node === oldLeader.id);
      // The three writes reached the old leader in one tick: they may share one entry.
      assert.ok(discarded.length >= 1, `SEED=${seed}: the orphaned entries were reported`);
      for (const orphan of orphans)
        assert.equal(orphan.outcome, "unknown", `SEED=${seed}: never acknowledged`);
    }
  });

  test("orphaned `local` writes are quarantined with their rows on the old leader, no id is reused, and a replay restores one", async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const cluster = await quietCluster(seed, { nodeCount: 3 });
      const oldLeader = leaderOf(cluster);
      await warmUp(cluster, oldLeader);
      cluster.network.isolate(oldLeader.id, cluster.ids);
      const writes: AppendOp[] = [];
      for (let i = 0; i < 5; i++) {
        writes.push(cluster.workload.appendOnce(oldLeader, "local"));
        await cluster.tick();
      }
      assert.notEqual(await cluster.runUntil(() => writes.every((w) => w.outcome !== "unknown"), 200), null);
      const acknowledged = writes.filter((w) => w.outcome === "ok");
      assert.ok(acknowledged.length > 0, `SEED=${seed}: local writes acknowledged by the isolated leader`);
      const rest = cluster.nodes.filter((node) => node !== oldLeader);
      assert.notEqual(
        await cluster.runUntil(() => leaderAmong(rest) !== null, electionBoundTicks(cluster.options)),
        null,
      );
      // The new leader writes too: its ids must start above everything the old one acknowledged.
      const newLeader = leaderAmong(rest)!;
      const later = [1, 2, 3].map(() => cluster.workload.appendOnce(newLeader, "majority"));
      assert.notEqual(await cluster.runUntil(() => later.every((w) => w.outcome === "ok"), 400), null);
      cluster.healPartitions();
      const quarantined = () =>
        (oldLeader.node?.orphans("pending", 100) ?? []) as { id: number; requestIds: string[] }[];
      assert.notEqual(
        await cluster.runUntil(() => quarantined().length >= acknowledged.length, 600),
        null,
        `SEED=${seed}: orphans kept`,
      );
      const orphans = quarantined();
      for (const write of acknowledged)
        assert.ok(
          orphans.some((o) => o.requestIds.includes(`v${write.value}`)),
          `SEED=${seed}: v${write.value} is in the quarantine`,
        );
      // Shown as rows: the list append and the AUTOINCREMENT event insert with its acknowledged id.
      const first = orphans.find((o) => o.requestIds.includes(`v${acknowledged[0]!.value}`))!;
      const view = oldLeader.node?.orphan(first.id) as {
        changes: { table: string; op: string; after: Record<string, unknown> | null; state: string }[];
      };
      const event = view.changes.find((c) => c.table === "events" && c.op === "insert");
      assert.equal(event?.after?.value, acknowledged[0]!.value);
      assert.equal(event?.state, "missing", "the orphaned event row is not in the current data");
      // Replay it through the current leader: one atomic write; the row comes back with its id.
      const { request } = oldLeader.node!.orphanReplay(first.id);
      const leader = leaderAmong(cluster.nodes)!;
      assert.equal(
        (await settled(cluster, leader.node?.execute(request))).code,
        "ok",
        `SEED=${seed}: replayed`,
      );
      oldLeader.node!.orphanResolved(first.id, "replayed", "scenario");
      // A `majority` write is acknowledged once committed, which may be before the leader's own
      // fsync lets it apply the entry: read once it has.
      const committed = leader.core?.summary().commitIndex ?? 0;
      assert.notEqual(
        await cluster.runUntil(() => (leader.store?.appliedIndex ?? 0) >= committed, 100),
        null,
        `SEED=${seed}: the leader applies what it acknowledged`,
      );
      const id = event?.after?.id;
      const rows = leader.store?.query([
        { sql: "SELECT value FROM events WHERE id = ?", params: [id as number] },
      ]).results[0]?.rows;
      assert.deepEqual(
        rows,
        [[acknowledged[0]!.value]],
        `SEED=${seed}: the replayed row holds its acknowledged id`,
      );
      const replayed = oldLeader.node?.orphan(first.id) as { status: string } | undefined;
      assert.equal(replayed?.status, "replayed");
      assert.throws(() => oldLeader.node!.orphanReplay(first.id), /already replayed/);
      await finish(cluster);
    }
  });

  test("a stale follower is never elected over a fresher one (Raft §5.4.1)", async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const cluster = await quietCluster(seed, { nodeCount: 3 });
      const leader = leaderOf(cluster);
      const [fresh, stale] = cluster.nodes.filter((node) => node !== leader) as [SimNodeHost, SimNodeHost];
      cluster.network.isolate(stale.id, cluster.ids);
      const writes = [1, 2, 3].map(() => cluster.workload.appendOnce(leader, "majority"));
      assert.notEqual(
        await cluster.runUntil(() => writes.every((w) => w.outcome === "ok"), 400),
        null,
        `SEED=${seed}`,
      );
      cluster.crash(leader.id);
      cluster.healPartitions();
      const elected = await cluster.runUntil(
        () => leaderAmong([fresh, stale]) !== null,
        electionBoundTicks(cluster.options),
      );
      assert.notEqual(elected, null, `SEED=${seed}`);
      assert.equal(leaderAmong([fresh, stale])?.id, fresh.id, `SEED=${seed}: the stale node won`);
      await finish(cluster);
    }
  });

  test("readiness is honest: a cut-off follower that knows a leader stops being ready once it lags past readyLagMsMax", async () => {
    const cluster = await quietCluster(7, { nodeCount: 3 });
    const leader = leaderOf(cluster);
    const follower = cluster.nodes.find((node) => node !== leader) as SimNodeHost;
    await cluster.run(20);
    assert.deepEqual(leader.node?.readiness(), { ready: true, reason: null });
    assert.deepEqual(follower.node?.readiness(), { ready: true, reason: null });
    // One-way cut: the follower hears nothing, but nothing makes it give up the leader it knows
    // until its election timeout; readiness must not wait for that to say "not fresh".
    cluster.network.cut(leader.id, follower.id);
    const lagTicks = Math.ceil(nodeDefaults.readyLagMsMax / simTickMs);
    await cluster.run(lagTicks + 5);
    const readiness = follower.node?.readiness();
    assert.equal(readiness?.ready, false);
    assert.match(readiness?.reason ?? "", /lags the leader|no leader known/);
    cluster.healPartitions();
    assert.notEqual(
      await cluster.runUntil(
        () => follower.node?.readiness().ready === true,
        electionBoundTicks(cluster.options),
      ),
      null,
      "ready again once it hears the leader",
    );
    await finish(cluster);
  });

  test("a write retried with its request id is answered only at the durability it asked for", async () => {
    const cluster = await quietCluster(3, { nodeCount: 3 });
    const leader = leaderOf(cluster);
    const follower = cluster.nodes.find((node) => node !== leader) as SimNodeHost;
    const timeoutMs = 20 * simTickMs;
    const write = () =>
      settled(
        cluster,
        leader.node?.execute({
          statements: [
            { sql: "INSERT INTO events(key, value, noise, at) VALUES (99, 0, 0, 'scenario')", params: [] },
          ],
          durability: "all",
          requestId: "needs-all",
          expectedTerm: null,
          timeoutMs,
        }),
      );
    follower.pausedUntilTick = Number.MAX_SAFE_INTEGER;
    const first = await write();
    assert.equal(first.code, "NOT_CONFIRMED", "a paused voter cannot have applied it");
    const retried = await write();
    assert.equal(retried.code, "NOT_CONFIRMED", "the retry is not acknowledged from the request log alone");
    follower.pausedUntilTick = 0;
    assert.equal((await write()).code, "ok", "acknowledged once every voter applied it");
    await finish(cluster);
  });

  test("a leader resumed after a pause past the election timeout serves no `leader` read from its old term", async () => {
    const cluster = await quietCluster(5, { nodeCount: 3 });
    const leader = leaderOf(cluster);
    const read = () => leaderRead(leader);
    assert.equal(
      (await settled(cluster, read())).code,
      "ok",
      "the leader serves leader reads while it leads",
    );
    const term = leader.core?.summary().term ?? 0;
    leader.pausedUntilTick = Number.MAX_SAFE_INTEGER;
    const rest = cluster.nodes.filter((node) => node !== leader);
    assert.notEqual(
      await cluster.runUntil(() => leaderAmong(rest) !== null, electionBoundTicks(cluster.options)),
      null,
      "the others elect a leader",
    );
    // Resumed, it still believes it leads (it has heard nothing yet) and is asked at once.
    leader.pausedUntilTick = 0;
    assert.equal(leader.core?.summary().role, "leader");
    assert.equal(leader.core?.summary().term, term);
    const stale = await settled(cluster, read());
    assert.notEqual(stale.code, "ok", "a resumed old leader served a leader read from its old term");
    await finish(cluster);
  });

  // The answers a follower sent while the leader was paused wait in its sockets; read on resuming,
  // before anything of the new term, they counted as fresh contact and renewed the lease.
  test("a resumed old leader's lease is not renewed by answers that waited out its pause", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await quietCluster(seed, {
        nodeCount: 3,
        heartbeatTicks: 1,
        delayTicksMin: 1,
        delayTicksMax: 1,
      });
      const leader = leaderOf(cluster);
      const term = leader.core?.summary().term ?? 0;
      const bound = electionBoundTicks(cluster.options);
      // Paused for twice the election bound; what is sent to it meanwhile arrives when it resumes.
      const resumeAt = cluster.nowTick + 2 * bound;
      leader.pausedUntilTick = resumeAt;
      const rest = cluster.nodes.filter((node) => node !== leader);
      assert.notEqual(
        await cluster.runUntil(() => leaderAmong(rest) !== null, bound),
        null,
        `SEED=${seed}: the others elect a leader`,
      );
      // The new leader cannot reach the old one: only the other follower's held answers arrive.
      const newLeader = leaderAmong(rest)!;
      cluster.network.cut(newLeader.id, leader.id);
      cluster.network.cut(leader.id, newLeader.id);
      while (cluster.nowTick < resumeAt) await cluster.tick();
      assert.equal(leader.core?.summary().role, "leader", `SEED=${seed}: it has heard of no new term yet`);
      assert.equal(leader.core?.summary().term, term);
      const stale = await settled(cluster, leaderRead(leader));
      assert.notEqual(
        stale.code,
        "ok",
        `SEED=${seed}: the old leader served a leader read from term ${term}`,
      );
      cluster.healPartitions();
      await finish(cluster);
    }
  });

  test("a node whose log lost acknowledged entries helps elect no leader that lacks them, and rejoins once it has them back", async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const { cluster, lost, stale } = await lostEntriesScenario(seed, {});
      // Its promise keeps it from voting for the stale node, and from campaigning itself.
      const wrongLeader = await cluster.runUntil(
        () => leaderAmong([lost, stale]) !== null,
        3 * electionTimeoutTicksOf(cluster.options).max,
      );
      assert.equal(wrongLeader, null, `SEED=${seed}: a leader was elected without the lost entries`);
      assert.notEqual(lost.core?.status().promised, null);
      await cluster.healAll();
      assert.notEqual(
        await cluster.runUntil(
          () => lost.core?.status().promised === null,
          electionBoundTicks(cluster.options) * 4,
        ),
        null,
        `SEED=${seed}: the lost entries came back`,
      );
      const losses = await finish(cluster);
      assert.ok(losses.majority.acknowledged >= 3, `SEED=${seed}`);
    }
  });

  test("the checkers catch a node that ignores the entries it lost (the injected core bug ignoreLostEntries)", async () => {
    const caught: string[] = [];
    for (let seed = 1; seed <= 4; seed++) {
      const { cluster, lost, stale } = await lostEntriesScenario(seed, { ignoreLostEntries: true });
      try {
        await cluster.runUntil(
          () => leaderAmong([lost, stale]) !== null,
          3 * electionTimeoutTicksOf(cluster.options).max,
        );
        await cluster.healAll();
        await livenessPhase(cluster);
        await finalCheck(cluster);
      } catch (error) {
        if (!(error instanceof SimViolation)) throw error;
        caught.push(`SEED=${seed} ${error.kind}`);
      } finally {
        await cluster.dispose();
      }
    }
    assert.ok(caught.length > 0, "no run caught the bug");
    console.log(`the injected bug was caught: ${caught.join(", ")}`);
  });

  test("a node restarted on a database with a silently changed row serves none of it, finds it, and takes the leader's snapshot", async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const cluster = await quietCluster(seed, { nodeCount: 3 });
      const leader = leaderOf(cluster);
      await warmUp(cluster, leader);
      const node = cluster.nodes.find((n) => n !== leader) as SimNodeHost;
      await cluster.run(20);
      cluster.crash(node.id);
      cluster.checker.damagedOnPurpose.add(node.id);
      assert.ok(node.changeRowSilently(), `SEED=${seed}: a row to change`);
      await cluster.restart(node.id);
      const read = await settled(
        cluster,
        node.node?.query({
          statements: [{ sql: "SELECT items FROM lists", params: [] }],
          consistency: "any",
          minIndex: null,
          maxLagMs: null,
          timeoutMs: 100,
        }),
      );
      assert.ok(["STORE_UNVERIFIED", "STORE_DAMAGED"].includes(read.code), `SEED=${seed}: ${read.code}`);
      const healed = await cluster.runUntil(() => {
        const storage = node.node?.status().storage;
        return (
          storage?.damaged === null &&
          storage.verified &&
          node.store?.appliedIndex === leader.store?.appliedIndex
        );
      }, 2_000);
      assert.notEqual(healed, null, `SEED=${seed}: healed`);
      cluster.checker.damagedOnPurpose.delete(node.id);
      assert.ok(node.events.includes("consistency.damage-found"), `SEED=${seed}: the damage was found`);
      assert.ok(node.events.includes("store.healed"), `SEED=${seed}`);
      await finish(cluster);
    }
  });

  test("leadership transfer under load hands over and loses no acknowledged write (thesis §3.10)", async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const cluster = await quietCluster(seed, {
        nodeCount: 5,
        proposeRate: 0.5,
        durabilityWeights: { local: 0, one: 0, majority: 3, all: 1 },
      });
      for (let round = 0; round < 4; round++) {
        const leader = leaderOf(cluster);
        const target = cluster.prng.pick(cluster.nodes.filter((node) => node !== leader));
        leader.node?.loop.step({ type: "transferLeadership", target: target.id });
        const handedOver = await cluster.runUntil(
          () => cluster.stableLeader() === target,
          3 * electionTimeoutTicksOf(cluster.options).max,
          { load: true },
        );
        assert.notEqual(handedOver, null, `SEED=${seed}: transfer to ${target.id} did not complete`);
        await cluster.run(20, { load: true });
      }
      const losses = await finish(cluster);
      assert.ok(losses.majority.acknowledged > 10, `SEED=${seed}`);
    }
  });
});
