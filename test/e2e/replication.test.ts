/**
 * End to end, real processes on loopback: replication of a schema and 10,000 rows, a follower
 * stopped under load that catches up, `all` writes that cannot be confirmed while it is away,
 * and bad requests that never hurt the node.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect } from "../../src/client/index.ts";
import { Cluster, type ClusterNode, postJson, waitFor } from "./cluster-harness.ts";

describe("a three-node cluster", { timeout: 120_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("replicates a schema and 10,000 rows written through the client; every node's content hash matches", async () => {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
    await client.execute(
      "CREATE TABLE accounts(id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, balance INTEGER NOT NULL, opened TEXT DEFAULT (datetime('now')), token BLOB DEFAULT (randomblob(8)))",
    );
    const writers = 4;
    const batchesPerWriter = 25;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let b = 0; b < batchesPerWriter; b++) {
          const statements = Array.from({ length: 100 }, (_, r) => ({
            sql: "INSERT INTO accounts(owner, balance) VALUES (?, ?)",
            params: [`w${w}-b${b}-r${r}`, r],
          }));
          await client.execute(statements);
        }
      }),
    );
    const { rows } = await client.query<{ n: number }>("SELECT count(*) AS n FROM accounts", {
      consistency: "linearizable",
    });
    assert.equal(rows[0]?.n, 10_000);
    const hashes = await cluster.convergedHashes(cluster.nodes);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, `hashes differ: ${JSON.stringify(hashes)}`);
    await client.close();
  });

  test("a stopped follower: majority writes continue, `all` writes are not confirmed (durable on 2 of 3), and it catches up on resume", async () => {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
    await client.execute("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, note TEXT)");
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n !== leader)!;
    await cluster.signal(follower, "SIGSTOP");
    try {
      for (let i = 0; i < 50; i++)
        await client.execute(["INSERT INTO events(note) VALUES ('while away')"], { durability: "majority" });
      // Straight to the leader, with a server-side timeout of 1.5 s and 5 s for the answer to come.
      // Through the client, 1.5 s was two attempts of 750 ms whose server timeout (675 ms) left the
      // NOT_CONFIRMED 65 ms to arrive (one attempt of 4 s still ended TIMEOUT beside other tests).
      const answer = await postJson(leader, "/v1/execute", {
        statements: ["INSERT INTO events(note) VALUES ('needs all')"],
        durability: "all",
        timeoutMs: 1500,
      });
      const failure =
        answer.status === 200
          ? null
          : (answer.body.error as { code: string; details: Record<string, unknown> });
      assert.ok(failure !== null, "an `all` write cannot be confirmed while a voter is stopped");
      assert.equal(failure.code, "NOT_CONFIRMED");
      assert.equal(failure.details.durableOn, 2);
      assert.equal(failure.details.clusterSize, 3);
    } finally {
      await cluster.signal(follower, "SIGCONT");
    }
    // The `all` write was not undone: once the follower is back it is everywhere.
    const hashes = await cluster.convergedHashes(cluster.nodes);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1);
    const back = connect({ nodes: [follower.url] });
    const { rows } = await back.query<{ n: number }>(
      "SELECT count(*) AS n FROM events WHERE note = 'needs all'",
      { consistency: "any" },
    );
    assert.equal(rows[0]?.n, 1);
    const status = await cluster.status(follower);
    assert.equal(status.role, "follower");
    await back.close();
    await client.close();
  });

  test("reads: any node with minIndex is read-your-writes; maxLagMs refuses a lagging follower; linearizable reads on a follower are forwarded", async () => {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
    await client.execute("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)");
    const written = await client.execute(["INSERT INTO notes(body) VALUES ('fresh')"]);
    const leader = await cluster.waitForLeader();
    for (const node of cluster.nodes.filter((n) => n !== leader)) {
      const response = await fetch(`${node.url}/v1/query`, {
        method: "POST",
        body: JSON.stringify({
          statements: ["SELECT count(*) FROM notes WHERE body = 'fresh'"],
          consistency: "any",
          minIndex: written.position.index,
          timeoutMs: 3000,
        }),
        signal: AbortSignal.timeout(5000),
      });
      const body = (await response.json()) as any;
      assert.equal(response.status, 200);
      assert.deepEqual(body.results[0].rows, [[1]]);
      assert.ok(body.position.index >= written.position.index);
      const linearizable = await fetch(`${node.url}/v1/query`, {
        method: "POST",
        body: JSON.stringify({ statements: ["SELECT count(*) FROM notes"] }),
        signal: AbortSignal.timeout(5000),
      });
      // Served by the leader: the one seen before, or the one after, should a stall on a busy machine
      // have moved leadership meanwhile.
      const servedBy = ((await linearizable.json()) as any).node;
      const leaderNow = await cluster.waitForLeader();
      assert.ok([leader.id, leaderNow.id].includes(servedBy), `served by ${servedBy}, not a leader`);
    }
    const future = await fetch(`${leader.url}/v1/query`, {
      method: "POST",
      body: JSON.stringify({
        statements: ["SELECT 1"],
        consistency: "any",
        minIndex: written.position.index + 1_000_000,
        timeoutMs: 200,
      }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(future.status, 504);
    assert.equal(((await future.json()) as any).error.code, "TIMEOUT");
    // A follower that stops hearing from its leader falls behind: pause the leader and a read
    // bounded by maxLagMs is refused. The other follower is paused too, so that no new leader can be
    // elected meanwhile: a fetch that came late would find a new leader and a lag of about 0.
    const [follower, other] = cluster.nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
    await cluster.signal(leader, "SIGSTOP");
    await cluster.signal(other, "SIGSTOP");
    let stale: Response;
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      stale = await fetch(`${follower.url}/v1/query`, {
        method: "POST",
        body: JSON.stringify({ statements: ["SELECT 1"], consistency: "any", maxLagMs: 100 }),
        signal: AbortSignal.timeout(5000),
      });
    } finally {
      await cluster.signal(other, "SIGCONT");
      await cluster.signal(leader, "SIGCONT");
    }
    const staleBody = (await stale.json()) as any;
    assert.ok(
      stale.status === 503 && staleBody.error.code === "STALE_READ",
      `expected STALE_READ, got ${stale.status} ${JSON.stringify(staleBody)}`,
    );
    await waitFor("the follower to catch up", 10_000, async () => {
      const r = await fetch(`${follower.url}/v1/query`, {
        method: "POST",
        body: JSON.stringify({ statements: ["SELECT 1"], consistency: "any", maxLagMs: 500 }),
        signal: AbortSignal.timeout(2000),
      });
      return r.status === 200;
    });
    await client.close();
  });

  test("bad requests of every kind get their codes and the node keeps serving", async () => {
    const leader = await cluster.waitForLeader();
    const cases: [string, string, number, string][] = [
      ["/v1/execute", "{not json", 400, "BAD_REQUEST"],
      ["/v1/execute", JSON.stringify({ statements: [] }), 400, "BAD_REQUEST"],
      ["/v1/execute", JSON.stringify({ statements: ["SELECT 1"], bogus: 1 }), 400, "BAD_REQUEST"],
      ["/v1/execute", JSON.stringify({ statements: [{ sql: 42 }] }), 400, "BAD_REQUEST"],
      ["/v1/execute", JSON.stringify({ statements: ["INSERT INTO missing VALUES (1)"] }), 400, "SQL_ERROR"],
      [
        "/v1/execute",
        JSON.stringify({ statements: ["CREATE TABLE nopk(a, b)"] }),
        400,
        "FORBIDDEN_STATEMENT",
      ],
      ["/v1/execute", JSON.stringify({ statements: ["ATTACH 'x.db' AS x"] }), 400, "FORBIDDEN_STATEMENT"],
      [
        "/v1/execute",
        JSON.stringify({ statements: ["PRAGMA foreign_keys=OFF"] }),
        400,
        "FORBIDDEN_STATEMENT",
      ],
      ["/v1/query", JSON.stringify({ statements: ["DELETE FROM notes"] }), 400, "NOT_A_QUERY"],
      [
        "/v1/query",
        JSON.stringify({
          statements: [
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 200000) SELECT x FROM c",
          ],
          consistency: "any",
        }),
        400,
        "RESULT_TOO_LARGE",
      ],
      [
        "/v1/execute",
        JSON.stringify({ statements: ["x".repeat(9 * 1024 * 1024)] }),
        413,
        "PAYLOAD_TOO_LARGE",
      ],
    ];
    for (const [path, body, status, code] of cases) {
      const response = await fetch(`${leader.url}${path}`, {
        method: "POST",
        body,
        signal: AbortSignal.timeout(10_000),
      });
      const json = (await response.json()) as any;
      assert.equal(response.status, status, `${path} ${body.slice(0, 60)}: ${JSON.stringify(json)}`);
      assert.equal(json.error.code, code, `${body.slice(0, 60)}: ${JSON.stringify(json)}`);
    }
    const client = connect({ nodes: [leader.url] });
    const result = await client.execute("CREATE TABLE IF NOT EXISTS after_bad(id INTEGER PRIMARY KEY)");
    assert.ok(result.position.index > 0);
    await client.close();
  });
});
