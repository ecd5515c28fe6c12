/**
 * End to end, real processes on loopback: work a client sends that could hold a node, and an
 * overload.
 * - A runaway write (an INSERT … SELECT over a recursive CTE that never ends), sent to the leader
 *   and through a follower: QUERY_TIMEOUT within its timeout plus a grace, nothing applied, no
 *   election (no node's term moves), every node answers /healthz within 1 s throughout, and the
 *   writes of other clients go on.
 * - Oversized results, from an execute and from a query: RESULT_TOO_LARGE, nothing applied.
 * - 640 closed-loop writers, ten times the load the benchmarks use, with a runaway write in the
 *   middle: the cluster keeps its leader, every node answers /healthz within 1 s, the runaway gets
 *   its code in time, and commits go on; the other writes answer only OVERLOADED, or, having spent
 *   their budget queued behind the runaway, TIMEOUT or NOT_CONFIRMED.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { httpStatusByCode } from "../../../src/lib/errors.ts";
import { Cluster, type ClusterNode } from "../cluster-harness.ts";
import { probeHealth } from "../health-probe.ts";
import { loadFromProcess } from "../load-process.ts";
import { type CountingLoad, startCountingLoad } from "../write-load.ts";

/** An election would start after 600–1200 ms without heartbeats: less than the runaway's bound. */
const timing = ["--heartbeat-ms", "100", "--missed-heartbeats", "6"];
const runaway =
  "INSERT INTO notes(note) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)";
const runawayTimeoutMs = 1_500;
/** What the answer may take beyond the request's bound on a shared, busy machine. */
const answerGraceMs = 1_500;

async function post(
  node: ClusterNode,
  route: string,
  body: unknown,
  forwarded = true,
): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${node.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(forwarded ? { "x-baton-forwarded": "1" } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: await response.json(), ms: performance.now() - started };
}

async function terms(cluster: Cluster): Promise<number[]> {
  return Promise.all(cluster.nodes.map(async (node) => (await cluster.status(node)).term));
}

async function rowCount(leader: ClusterNode): Promise<number> {
  const answer = await post(leader, "/v1/query", { statements: ["SELECT count(*) FROM notes"] });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.results[0].rows[0][0] as number;
}

/** `writers` closed loops of single inserts through `leader` until stopped; counts answers by code. */
function load(leader: ClusterNode, writers: number, timeoutMs: number): CountingLoad {
  const insert = (w: number, i: number) => ({
    statements: [{ sql: "INSERT INTO notes(note) VALUES (?)", params: [`w${w}-${i}`] }],
    timeoutMs,
  });
  return startCountingLoad(leader, writers, insert, 30_000);
}

/**
 * Sends again, after its Retry-After, a request a node shed for its event loop's delay (refused
 * before it ran, as the client library would); the answer of the attempt that was admitted.
 */
async function untilAdmitted(
  send: () => Promise<{ status: number; body: any; ms: number }>,
): Promise<{ status: number; body: any; ms: number }> {
  for (let attempt = 1; ; attempt++) {
    const answer = await send();
    if (answer.body?.error?.details?.reason !== "loop-delay" || attempt === 10) return answer;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

function assertAnsweredInTime(
  answer: { status: number; body: any; ms: number },
  code: string,
  timeoutMs = runawayTimeoutMs,
): void {
  assert.equal(answer.body?.error?.code, code, JSON.stringify(answer.body));
  assert.ok(answer.ms >= timeoutMs * 0.9, `answered after ${answer.ms} ms, before its bound`);
  assert.ok(answer.ms < timeoutMs + answerGraceMs, `answered after ${answer.ms} ms`);
}

function assertHealthy(slowest: Map<string, number>, nodes: number): void {
  assert.equal(slowest.size, nodes, "every node was probed");
  for (const [id, ms] of slowest)
    assert.ok(ms < 1000, `${id} answered /healthz in ${ms.toFixed(0)} ms at worst`);
}

describe("runaway writes, oversized results and overload", { timeout: 240_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3, timing);
    const leader = await cluster.waitForLeader();
    const created = await post(leader, "/v1/execute", {
      statements: ["CREATE TABLE notes(id INTEGER PRIMARY KEY, note TEXT)"],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a runaway write, on the leader and through a follower: QUERY_TIMEOUT in time, nothing applied, no election", async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((node) => node !== leader)!;
    const termsBefore = await terms(cluster);
    const health = probeHealth(cluster.nodes);
    await health.probing;
    const writes = load(leader, 4, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = await rowCount(leader);
    const onLeader = await untilAdmitted(() =>
      post(leader, "/v1/execute", { statements: [runaway], timeoutMs: runawayTimeoutMs }),
    );
    // The stopped batch's process is replaced (a second or two on a busy machine); a batch that
    // cannot be proven short waits for the replacement within its own bound.
    const counted = await untilAdmitted(() =>
      post(leader, "/v1/execute", { statements: ["SELECT count(*) FROM notes"], timeoutMs: 20_000 }),
    );
    assert.equal(counted.status, 200, JSON.stringify(counted.body));
    const viaFollower = await untilAdmitted(() =>
      post(follower, "/v1/execute", { statements: [runaway], timeoutMs: runawayTimeoutMs }, false),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    await writes.stop();
    assertHealthy(await health.stop(), cluster.nodes.length);
    assert.equal(onLeader.status, 504);
    assertAnsweredInTime(onLeader, "QUERY_TIMEOUT");
    assertAnsweredInTime(viaFollower, "QUERY_TIMEOUT");
    assert.deepEqual(await terms(cluster), termsBefore, "no election");
    // Other writes wait at the gate while the runaway runs and then go on; a node whose event loop
    // runs late (a busy machine) may shed some, which the writers retry.
    for (const code of writes.codes.keys())
      assert.ok(["ok", "OVERLOADED"].includes(code), `other writes: ${JSON.stringify([...writes.codes])}`);
    const written = writes.codes.get("ok") ?? 0;
    assert.ok(written > 10, `${written} writes`);
    assert.ok((await rowCount(leader)) <= before + written, "the runaway inserted nothing");
    await cluster.convergedHashes(cluster.nodes);
  });

  test("oversized results: RESULT_TOO_LARGE from an execute and from a query, nothing applied", async () => {
    const leader = await cluster.waitForLeader();
    const before = await rowCount(leader);
    const manyRows =
      "INSERT INTO notes(note) SELECT 'r' || x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100001) SELECT x FROM c) RETURNING id";
    const rows = await post(leader, "/v1/execute", { statements: [manyRows] });
    assert.equal(rows.status, httpStatusByCode.RESULT_TOO_LARGE, JSON.stringify(rows.body));
    assert.equal(rows.body.error.code, "RESULT_TOO_LARGE");
    const bigValues =
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 40) SELECT randomblob(1000000) FROM c";
    const bytes = await post(leader, "/v1/execute", { statements: [bigValues] });
    assert.equal(bytes.body.error?.code, "RESULT_TOO_LARGE", JSON.stringify(bytes.body).slice(0, 300));
    const query = await post(leader, "/v1/query", { statements: [bigValues] });
    assert.equal(query.body.error?.code, "RESULT_TOO_LARGE", JSON.stringify(query.body).slice(0, 300));
    assert.equal(await rowCount(leader), before, "nothing was applied");
  });

  test("640 writers with a runaway write among them: the leader stays, /healthz within 1 s, the runaway answers in time", async () => {
    const leader = await cluster.waitForLeader();
    const termsBefore = await terms(cluster);
    const health = probeHealth(cluster.nodes);
    await health.probing;
    // The writers run in a process of their own: this process only measures the runaway's answer.
    const writes = loadFromProcess(leader, { writers: 640, table: "notes", timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // A longer bound than alone: the runaway first queues behind the writers at the write gate.
    const timeoutMs = 2 * runawayTimeoutMs;
    const runawayAnswer = await untilAdmitted(() =>
      post(leader, "/v1/execute", { statements: [runaway], timeoutMs }),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const codes = await writes.stop();
    assertHealthy(await health.stop(), cluster.nodes.length);
    assertAnsweredInTime(runawayAnswer, "QUERY_TIMEOUT", timeoutMs);
    assert.deepEqual(await terms(cluster), termsBefore, "no election");
    assert.ok((codes.get("ok") ?? 0) > 200, `commits went on: ${JSON.stringify([...codes])}`);
    // While the runaway holds the write lock the others queue at the write gate; some spend their
    // whole budget there (TIMEOUT: never ran) or propose too late to be confirmed (NOT_CONFIRMED).
    const expected = ["ok", "OVERLOADED", "TIMEOUT", "NOT_CONFIRMED"];
    for (const code of codes.keys())
      assert.ok(expected.includes(code), `answered ${code}: ${JSON.stringify([...codes])}`);
  });
});
