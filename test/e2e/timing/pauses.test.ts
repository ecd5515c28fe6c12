/**
 * End to end, real processes on loopback: pauses like long GC stops, and an overload.
 * - A follower stopped (SIGSTOP) for 2 s under load: the leader keeps leading (no new term), every
 *   running node answers /healthz within 1 s throughout.
 * - The leader stopped past the election timeout: the others elect a new leader; the old one, on
 *   resuming, acknowledges none of the `majority` writes it received while it was stopped.
 * - 640 closed-loop writers, ten times the largest benchmark load: the cluster keeps its leader (no
 *   new term), every node answers /healthz within 1 s, commits go on, and anything refused is
 *   refused OVERLOADED.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Cluster, type ClusterNode } from "../cluster-harness.ts";
import { probeHealth } from "../health-probe.ts";
import { type CountingLoad, startCountingLoad } from "../write-load.ts";

async function post(
  node: ClusterNode,
  body: unknown,
  timeoutMs = 5000,
  route = "/v1/execute",
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${node.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-baton-forwarded": "1" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, body: await response.json() };
}

/** `writers` closed loops of single `majority` inserts through `leader` until stopped; counts answers by code. */
function load(leader: ClusterNode, writers: number): CountingLoad {
  const insert = (w: number, i: number) => ({
    statements: [{ sql: "INSERT INTO p(w, i) VALUES (?, ?)", params: [w, i] }],
    durability: "majority",
    timeoutMs: 3000,
  });
  return startCountingLoad(leader, writers, insert, 5000);
}

/** No node moved to a new term, and every probed node answered /healthz within 1 s throughout. */
async function assertSteady(cluster: Cluster, term: number, slowest: Map<string, number>): Promise<void> {
  for (const node of cluster.nodes)
    assert.equal((await cluster.status(node)).term, term, `${node.id}: no new term`);
  for (const [id, ms] of slowest)
    assert.ok(ms < 1000, `${id} answered /healthz in ${ms.toFixed(0)} ms at worst`);
}

describe("pauses and overload", { timeout: 180_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3, ["--heartbeat-ms", "100", "--missed-heartbeats", "6"]);
    const leader = await cluster.waitForLeader();
    await post(leader, {
      statements: [{ sql: "CREATE TABLE p(id INTEGER PRIMARY KEY, w INTEGER, i INTEGER)" }],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a follower paused for 2 s under load: no election, every running node answers /healthz within 1 s", async () => {
    const leader = await cluster.waitForLeader();
    const term = (await cluster.status(leader)).term;
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const health = probeHealth(cluster.nodes.filter((n) => n !== follower));
    const writes = load(leader, 16);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await cluster.signal(follower, "SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await cluster.signal(follower, "SIGCONT");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await writes.stop();
    await assertSteady(cluster, term, await health.stop());
    assert.ok((writes.codes.get("ok") ?? 0) > 100, `writes went on: ${JSON.stringify([...writes.codes])}`);
  });

  test("640 writers, ten times the largest benchmark load: no election, /healthz within 1 s, commits go on", async () => {
    const leader = await cluster.waitForLeader();
    const term = (await cluster.status(leader)).term;
    const health = probeHealth(cluster.nodes);
    const writes = load(leader, 640);
    await new Promise((resolve) => setTimeout(resolve, 4000));
    await writes.stop();
    await assertSteady(cluster, term, await health.stop());
    assert.ok((writes.codes.get("ok") ?? 0) > 200, `commits went on: ${JSON.stringify([...writes.codes])}`);
    for (const code of writes.codes.keys())
      assert.ok(["ok", "OVERLOADED"].includes(code), `answered ${code}`);
  });

  test("the leader paused past the election timeout: a new leader is elected, and the old one acknowledges none of the writes it held", async () => {
    const oldLeader = await cluster.waitForLeader();
    const term = (await cluster.status(oldLeader)).term;
    await cluster.signal(oldLeader, "SIGSTOP");
    // Writes sent to the stopped leader wait in its socket; it reads them when it resumes.
    const held = Array.from({ length: 10 }, (_, i) =>
      post(
        oldLeader,
        {
          statements: [{ sql: "INSERT INTO p(w, i) VALUES (-1, ?)", params: [i] }],
          durability: "majority",
          timeoutMs: 2000,
        },
        10_000,
      ).catch(() => ({ status: 0, body: null })),
    );
    const others = cluster.nodes.filter((n) => n !== oldLeader);
    const newLeader = await cluster.waitForLeader(others, 10_000);
    assert.ok((await cluster.status(newLeader)).term > term);
    // Reads sent to it now are read when it resumes, before it has heard of the new leader.
    const reads = (["leader", "linearizable"] as const).flatMap((consistency) =>
      Array.from({ length: 5 }, () =>
        post(
          oldLeader,
          { statements: ["SELECT count(*) FROM p"], consistency, timeoutMs: 2000 },
          10_000,
          "/v1/query",
        )
          .then((answer) => ({ consistency, ...answer }))
          .catch(() => ({ consistency, status: 0, body: null })),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await cluster.signal(oldLeader, "SIGCONT");
    const staleReads = (await Promise.all(reads)).filter((r) => r.status === 200 && r.body.term <= term);
    assert.deepEqual(
      staleReads.map((r) => r.consistency),
      [],
      "the resumed old leader served reads from its stale term",
    );
    const answers = await Promise.all(held);
    const acknowledged = answers.filter((a) => a.status === 200);
    for (const a of acknowledged)
      assert.ok(a.body.term > term, `acknowledged in the stale term ${a.body.term}`);
    assert.equal(acknowledged.length, 0, `the old leader acknowledged ${acknowledged.length} writes`);
    await cluster.convergedHashes(cluster.nodes, 30_000);
  });
});
