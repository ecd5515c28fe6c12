/**
 * The client against a fake cluster of real HTTP servers on 127.0.0.1: routing, failover, safe retries.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ConnectOptions } from "./connect-options.ts";
import { BatonClientError, type Client, connect } from "./index.ts";
import { FakeCluster } from "./testing/fake-cluster.ts";

/** Backoffs short enough to keep the suite fast, with room for several attempts. */
const quickRetry = { attemptsMax: 10, backoffMsMin: 5, backoffMsMax: 50 };

async function withCluster(
  size: number,
  run: (cluster: FakeCluster, open: (options?: Partial<ConnectOptions>) => Client) => Promise<void>,
): Promise<void> {
  const cluster = await FakeCluster.start(size);
  const clients: Client[] = [];
  const open = (options: Partial<ConnectOptions> = {}): Client => {
    const client = connect({ nodes: cluster.urls, timeoutMs: 5_000, retry: quickRetry, ...options });
    clients.push(client);
    return client;
  };
  try {
    await run(cluster, open);
  } finally {
    for (const client of clients) await client.close();
    await cluster.close();
  }
}

/** Awaits a rejection and returns it as a `BatonClientError`. */
async function failure(promise: Promise<unknown>): Promise<BatonClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BatonClientError, `expected a BatonClientError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

/** Never settles until `signal` aborts, then rejects with its reason, as `fetch` does. */
function pendingUntilAborted(signal: AbortSignal | null | undefined): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal?.aborted) reject(signal.reason);
    signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/**
 * The nodes a path's requests went to, repeats in a row collapsed.
 */
function nodesReached(cluster: FakeCluster, path: string): string[] {
  return cluster
    .received(path)
    .map((request) => request.node)
    .filter((node, i, all) => node !== all[i - 1]);
}

const requestIdsOf = (cluster: FakeCluster): unknown[] =>
  cluster.received("/v1/execute").map((r) => r.body?.requestId);

describe("client routing", () => {
  test("writes go straight to the leader, not through a follower", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.setLeader("n2");
      const client = open();
      const positions: number[] = [];
      for (let i = 0; i < 5; i++)
        positions.push((await client.execute([["INSERT", `k${i}`, i]])).position.index);
      assert.deepEqual(
        cluster.received("/v1/execute").map((request) => request.node),
        ["n2", "n2", "n2", "n2", "n2"],
      );
      assert.equal(client.leader, cluster.url("n2"));
      assert.deepEqual(positions, [1, 2, 3, 4, 5]);
    });
  });

  test("a NOT_LEADER answer redirects a read to the leader it names", async () => {
    await withCluster(3, async (cluster, open) => {
      const client = open();
      await client.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v)");
      cluster.setLeader("n3");
      const read = await client.query(["SELECT * FROM t WHERE k = ?", "a"], { consistency: "linearizable" });
      assert.equal(read.node, "n3");
      assert.deepEqual(nodesReached(cluster, "/v1/query"), ["n1", "n3"]);
      assert.equal(client.leader, cluster.url("n3"));
    });
  });

  test("a write redirected by NOT_LEADER keeps its requestId", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.followerWrites = "not-leader";
      const client = open();
      await client.execute([["INSERT", "a", 1]]);
      cluster.setLeader("n2");
      const result = await client.execute([["INSERT", "b", 2]]);
      assert.deepEqual(nodesReached(cluster, "/v1/execute"), ["n1", "n2"]);
      const attempts = cluster.received("/v1/execute").slice(1);
      assert.ok(attempts.length >= 2);
      for (const attempt of attempts) assert.equal(attempt.body?.requestId, result.requestId);
      assert.equal(cluster.applyCount, 2);
    });
  });
});

describe("client failover and retries", () => {
  test("a leader failover in the middle of a stream of writes surfaces no error", async () => {
    await withCluster(3, async (cluster, open) => {
      // The leaderless gap lasts 150 ms; the shortest possible retry schedule here lasts 490 ms.
      const client = open({ retry: { attemptsMax: 50, backoffMsMin: 10, backoffMsMax: 50 } });
      const writesTotal = 12;
      let timer: NodeJS.Timeout | undefined;
      try {
        for (let i = 0; i < writesTotal; i++) {
          if (i === 4) {
            await cluster.stop("n1");
            cluster.setLeader(null);
            timer = setTimeout(() => cluster.setLeader("n2"), 150);
          }
          await client.execute([["INSERT", `k${i}`, i]]);
        }
      } finally {
        clearTimeout(timer);
      }
      assert.equal(cluster.applyCount, writesTotal, "each write applied exactly once");
      assert.deepEqual(
        cluster.entries.flat().map((row) => row[0]),
        Array.from({ length: writesTotal }, (_, i) => `k${i}`),
      );
      assert.equal(client.leader, cluster.url("n2"));
      assert.equal(cluster.received("/v1/execute").at(-1)?.node, "n2");
    });
  });

  test("a write whose connection drops after it was applied is retried with the same requestId, applied once", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.inject("n1", "/v1/execute", { kind: "drop-after-apply" });
      const client = open();
      const result = await client.execute([["INSERT", "a", 1]]);
      assert.deepEqual(requestIdsOf(cluster), [result.requestId, result.requestId]);
      assert.match(result.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(cluster.applyCount, 1);
      assert.equal(result.position.index, 1);
      const other = await client.execute([["INSERT", "b", 2]]);
      assert.notEqual(other.requestId, result.requestId, "distinct writes get distinct ids");
    });
  });

  test("a node that never answers is given up after attemptTimeoutMs and the write retried", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.inject("n1", "/v1/execute", { kind: "hang" });
      // 1 s per attempt: the answering node's attempt must not time out too (a stall of 200 ms on a
      // busy machine would make a third request).
      const client = open({ timeoutMs: 10_000, attemptTimeoutMs: 1_000 });
      const result = await client.execute([["INSERT", "a", 1]]);
      assert.deepEqual(requestIdsOf(cluster), [result.requestId, result.requestId]);
      assert.equal(cluster.applyCount, 1);
    });
  });

  test("NO_LEADER with Retry-After delays the next attempt by at least that long", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.inject("n1", "/v1/execute", { kind: "error", status: 503, code: "NO_LEADER", retryAfter: "1" });
      const client = open();
      await client.execute([["INSERT", "a", 1]]);
      const [first, second] = cluster.received("/v1/execute");
      assert.ok(first && second);
      assert.equal(first.body?.requestId, second.body?.requestId);
      assert.ok(second.atMs - first.atMs >= 990, `retried after ${second.atMs - first.atMs} ms`);
    });
  });

  test("a Retry-After beyond the deadline ends the call with the server's error instead of waiting", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.inject("n1", "/v1/execute", {
        kind: "error",
        status: 503,
        code: "NO_LEADER",
        retryAfter: "30",
      });
      const client = open({ timeoutMs: 10_000 });
      const error = await failure(client.execute([["INSERT", "a", 1]]));
      assert.equal(error.code, "NO_LEADER");
      assert.equal(error.status, 503);
      assert.equal(error.details.attempts, 1);
      assert.equal(error.details.maybeApplied, false);
    });
  });

  for (const [code, status] of [
    ["SQL_ERROR", 400],
    ["BAD_REQUEST", 400],
    ["FORBIDDEN_STATEMENT", 400],
    ["NOT_CONFIRMED", 504],
  ] as const) {
    test(`${code} surfaces at once with its code and is never retried`, async () => {
      await withCluster(3, async (cluster, open) => {
        const details = { durableOn: 1, clusterSize: 3 };
        cluster.inject("n1", "/v1/execute", { kind: "error", status, code, details });
        const client = open();
        const error = await failure(client.execute([["INSERT", "a", 1]]));
        assert.equal(error.code, code);
        assert.equal(error.status, status);
        assert.equal(error.node, cluster.url("n1"));
        assert.equal(error.details.durableOn, 1);
        assert.equal(error.details.attempts, 1);
        assert.equal(typeof error.details.requestId, "string");
        assert.equal(cluster.received("/v1/execute").length, 1);
      });
    });
  }

  test("an all-down cluster fails with UNAVAILABLE after exactly attemptsMax requests", async () => {
    await withCluster(3, async (cluster, open) => {
      await cluster.close();
      let executes = 0;
      const counting: typeof fetch = (url, init) => {
        if (String(url).endsWith("/v1/execute")) executes += 1;
        return fetch(url, init);
      };
      const client = open({ fetch: counting, retry: { attemptsMax: 4, backoffMsMin: 1, backoffMsMax: 5 } });
      const error = await failure(client.execute([["INSERT", "a", 1]]));
      assert.equal(error.code, "UNAVAILABLE");
      assert.equal(error.status, undefined);
      assert.equal(error.details.attempts, 4);
      assert.equal(error.details.maybeApplied, false, "refused connections never reached a node");
      assert.equal(executes, 4);
    });
  });

  test("an all-down cluster fails with UNAVAILABLE by the deadline even with a large attempt budget", async () => {
    await withCluster(3, async (cluster, open) => {
      await cluster.close();
      const client = open({
        timeoutMs: 300,
        retry: { attemptsMax: 1_000, backoffMsMin: 5, backoffMsMax: 20 },
      });
      const startedMs = Date.now();
      const error = await failure(client.query("SELECT 1"));
      assert.equal(error.code, "UNAVAILABLE");
      assert.ok(Number(error.details.attempts) < 1_000);
      // Generous slack: this checks that the deadline bounds the call, not how fast the machine is.
      assert.ok(Date.now() - startedMs < 300 + 3_000);
    });
  });

  test("a connection attempt still pending at the deadline does not turn UNAVAILABLE into TIMEOUT", async () => {
    // Under load a refused connection can take longer to report than the time left before the
    // deadline. Here the first query is refused at once and the second never settles, so the
    // deadline always cuts it short: that says nothing about the nodes, which refused the call.
    await withCluster(3, async (cluster, open) => {
      await cluster.close();
      let queries = 0;
      const pendingAfterFirst: typeof fetch = async (url, init) => {
        if (String(url).endsWith("/v1/query") && ++queries > 1) await pendingUntilAborted(init?.signal);
        return fetch(url, init);
      };
      const client = open({
        fetch: pendingAfterFirst,
        // Long enough that a refused connection reports within it even on a loaded machine.
        timeoutMs: 2_000,
        attemptTimeoutMs: 2_000,
        retry: { attemptsMax: 1_000, backoffMsMin: 1, backoffMsMax: 2 },
      });
      const error = await failure(client.query("SELECT 1"));
      assert.equal(error.code, "UNAVAILABLE");
      assert.equal(error.details.attempts, 2);
    });
  });

  test("close() fails a running call and every later call with CLIENT_CLOSED", async () => {
    await withCluster(1, async (cluster, open) => {
      cluster.inject("n1", "/v1/execute", { kind: "hang" });
      const client = open();
      const running = failure(client.execute([["INSERT", "a", 1]]));
      while (cluster.received("/v1/execute").length === 0)
        await new Promise((resolve) => setTimeout(resolve, 5));
      await client.close();
      const error = await running;
      assert.equal(error.code, "CLIENT_CLOSED");
      assert.equal(error.details.maybeApplied, true);
      assert.equal((await failure(client.query("SELECT 1"))).code, "CLIENT_CLOSED");
    });
  });
});

describe("client results", () => {
  test("transaction() sends its statements as one execute batch and query() types the rows", async () => {
    await withCluster(3, async (cluster, open) => {
      const client = open();
      const result = await client.transaction((batch) => {
        batch.add("CREATE TABLE kv (key TEXT PRIMARY KEY, value INTEGER)");
        batch.add(["INSERT INTO kv VALUES (?, ?)", "a", 1]);
        batch.add({ sql: "INSERT INTO kv VALUES (?, ?)", params: ["b", 2] });
      });
      const executes = cluster.received("/v1/execute");
      assert.equal(executes.length, 1);
      assert.deepEqual(executes[0]?.body?.statements, [
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value INTEGER)",
        ["INSERT INTO kv VALUES (?, ?)", "a", 1],
        { sql: "INSERT INTO kv VALUES (?, ?)", params: ["b", 2] },
      ]);
      assert.equal(result.results.length, 3);
      const read = await client.query<{ key: string; value: number }>("SELECT key, value FROM kv");
      assert.deepEqual(read.rows, [
        { key: "a", value: 1 },
        { key: "b", value: 2 },
      ]);
      assert.equal(read.position.index, result.position.index);
      const raw = await client.queryRaw(["SELECT key, value FROM kv", "SELECT key, value FROM kv"]);
      assert.deepEqual(raw.results[1], {
        columns: ["key", "value"],
        rows: [
          ["a", 1],
          ["b", 2],
        ],
      });
    });
  });

  test("a transaction whose builder throws sends nothing", async () => {
    await withCluster(1, async (cluster, open) => {
      const client = open();
      const boom = new Error("changed my mind");
      await assert.rejects(
        client.transaction((batch) => {
          batch.add(["INSERT", "a", 1]);
          throw boom;
        }),
        boom,
      );
      assert.equal(cluster.received("/v1/execute").length, 0);
    });
  });

  test("status() answers from a node and teaches the client the leader", async () => {
    await withCluster(3, async (cluster, open) => {
      cluster.setLeader("n3");
      const client = open();
      const status = await client.status({ node: cluster.url("n1") });
      assert.equal(status.id, "n1");
      assert.equal(status.leader?.id, "n3");
      assert.equal(client.leader, cluster.url("n3"));
    });
  });
});
