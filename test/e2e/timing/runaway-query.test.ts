/**
 * End to end, real processes on loopback: a runaway query (a recursive CTE that never ends), sent
 * with `consistency:"any"` to a follower and then to the leader, answers QUERY_TIMEOUT within its
 * bound while every node keeps answering /healthz and /v1/status, no election happens (every
 * node's term is unchanged) and writes keep succeeding. The nodes' query processes are found in
 * /proc by the cluster's data directory (read only) and are all gone once the nodes stop.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import { connect } from "../../../src/client/index.ts";
import { Cluster, type ClusterNode, waitFor } from "../cluster-harness.ts";

const runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";
/** An election would start after about a second without heartbeats: less than the query's bound. */
const timing = ["--heartbeat-ms", "100", "--missed-heartbeats", "10"];
const queryTimeoutMs = 1_500;
/** What the answer may take beyond the query's bound on a shared, busy machine. */
const answerGraceMs = 1_500;
const probeTimeoutMs = 1_000;

/** Pids of the query processes of nodes whose data lives under `root` (read from /proc; nothing is signalled). */
function queryProcessesUnder(root: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const commandLine = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (commandLine.includes("query-process.ts") && commandLine.includes(root)) pids.push(Number(entry));
    } catch {} // The process exited while we looked.
  }
  return pids;
}

type Probe = { url: string; ok: boolean; ms: number };

/** Probes every node's /healthz and /v1/status every 100 ms until `stop()`; each probe is bounded. */
function probeNodes(nodes: readonly ClusterNode[]): { stop: () => Promise<Probe[]> } {
  const probes: Probe[] = [];
  let running = true;
  const loop = async (url: string): Promise<void> => {
    while (running) {
      const started = performance.now();
      const ok = await fetch(url, { signal: AbortSignal.timeout(probeTimeoutMs) }).then(
        (response) => response.ok,
        () => false,
      );
      probes.push({ url, ok, ms: performance.now() - started });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const loops = nodes.flatMap((node) => [loop(`${node.url}/healthz`), loop(`${node.url}/v1/status`)]);
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return probes;
    },
  };
}

describe("a runaway query", { timeout: 120_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3, timing);
  });
  after(async () => {
    await cluster?.stop();
  });

  async function runawayOn(node: ClusterNode): Promise<void> {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url), timeoutMs: 10_000 });
    const termsBefore = await Promise.all(cluster.nodes.map(async (n) => (await cluster.status(n)).term));
    const probes = probeNodes(cluster.nodes);
    let writes = 0;
    let writeErrors = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        try {
          await client.execute([["INSERT INTO notes(note) VALUES (?)", `during ${node.id}`]]);
          writes++;
        } catch {
          writeErrors++;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    })();
    const started = performance.now();
    let response: Response;
    let answeredMs: number;
    let probed: Probe[];
    try {
      response = await fetch(`${node.url}/v1/query`, {
        method: "POST",
        body: JSON.stringify({ statements: [runaway], consistency: "any", timeoutMs: queryTimeoutMs }),
        signal: AbortSignal.timeout(queryTimeoutMs + 10_000),
      });
      answeredMs = performance.now() - started;
      // A little more time with the probes and the writer running after the answer.
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      writing = false;
      await writer;
      probed = await probes.stop();
      await client.close();
    }
    const body = (await response.json()) as { error?: { code: string } };
    assert.equal(response.status, 504, JSON.stringify(body));
    assert.equal(body.error?.code, "QUERY_TIMEOUT");
    assert.ok(answeredMs >= queryTimeoutMs, `answered after ${answeredMs} ms, before its bound`);
    assert.ok(answeredMs < queryTimeoutMs + answerGraceMs, `answered after ${answeredMs} ms`);
    const failed = probed.filter((probe) => !probe.ok);
    assert.deepEqual(failed, [], "every node answered /healthz and /v1/status within 1 s throughout");
    assert.ok(probed.length >= 6 * 10, `${probed.length} probes`);
    assert.ok(writes > 0, "writes kept succeeding");
    assert.equal(writeErrors, 0, "no write failed");
    const termsAfter = await Promise.all(cluster.nodes.map(async (n) => (await cluster.status(n)).term));
    assert.deepEqual(termsAfter, termsBefore, "no election happened");
  }

  test("sent to a follower and then to the leader: QUERY_TIMEOUT in time, the cluster serves on, no election", async () => {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
    await client.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, note TEXT)");
    await client.close();
    const queryProcesses = queryProcessesUnder(cluster.root);
    assert.equal(queryProcesses.length, 6, "two query processes per node");
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n !== leader)!;
    await runawayOn(follower);
    await runawayOn(leader);
    assert.equal((await cluster.waitForLeader()).id, leader.id);
    // The killed processes were replaced; the nodes serve queries on every node.
    for (const node of cluster.nodes) {
      const response = await fetch(`${node.url}/v1/query`, {
        method: "POST",
        body: JSON.stringify({ statements: ["SELECT count(*) FROM notes"], consistency: "any" }),
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(response.status, 200, node.id);
    }
  });

  test("stopping the nodes stops every query process they started", async () => {
    const named = (): number[] => queryProcessesUnder(cluster.root);
    await waitFor("each node to have its two query processes", 10_000, async () => named().length === 6);
    for (const node of cluster.nodes) await cluster.signal(node, "SIGTERM");
    await waitFor("the query processes to exit", 5_000, async () => named().length === 0);
  });
});
