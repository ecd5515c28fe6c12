/**
 * Session mode: reads carry the highest position seen as `minIndex`, and positions only grow.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { connect } from "./index.ts";
import { FakeCluster } from "./testing/fake-cluster.ts";

const quickRetry = { attemptsMax: 10, backoffMsMin: 1, backoffMsMax: 20 };

function json(body: unknown): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
}

describe("session against a fake cluster", () => {
  test("a session reads its own writes on any node, skipping nodes that lag behind", async () => {
    const cluster = await FakeCluster.start(3);
    const client = connect({ nodes: cluster.urls, consistency: "any", retry: quickRetry, timeoutMs: 5_000 });
    try {
      await client.execute([["INSERT", "old", 0]]);
      cluster.setApplied("n2", 1);
      cluster.setApplied("n3", 1);
      const session = client.session();
      const write = await session.execute([["INSERT", "mine", 1]]);
      assert.deepEqual(session.position, { index: write.position.index });
      for (let i = 0; i < 3; i++) {
        const read = await session.query<{ key: string }>("SELECT key FROM kv");
        assert.deepEqual(
          read.rows.map((row) => row.key),
          ["old", "mine"],
        );
        assert.equal(read.node, "n1", "only the up-to-date node may serve the session");
      }
      const queries = cluster.received("/v1/query");
      assert.ok(queries.every((request) => request.body?.minIndex === write.position.index));
      assert.ok(
        queries.some((request) => request.node !== "n1"),
        "the reads were offered to the lagging nodes too",
      );
    } finally {
      await client.close();
      await cluster.close();
    }
  });

  test("a session position handed to another process carries read-your-writes over", async () => {
    const cluster = await FakeCluster.start(2);
    const writer = connect({ nodes: cluster.urls, retry: quickRetry });
    // n2 lags for 30 ms; the shortest possible retry schedule here lasts 490 ms.
    const patientRetry = { attemptsMax: 50, backoffMsMin: 10, backoffMsMax: 20 };
    const reader = connect({ nodes: [cluster.url("n2")], consistency: "any", retry: patientRetry });
    let timer: NodeJS.Timeout | undefined;
    try {
      const writerSession = writer.session();
      await writerSession.execute([["INSERT", "a", 1]]);
      const token = JSON.stringify(writerSession.position);
      cluster.setApplied("n2", 0);
      timer = setTimeout(() => cluster.setApplied("n2", undefined), 30);
      const readerSession = reader.session({ position: JSON.parse(token) });
      const read = await readerSession.query<{ key: string }>("SELECT key FROM kv");
      assert.deepEqual(
        read.rows.map((row) => row.key),
        ["a"],
      );
      assert.equal(cluster.received("/v1/query").at(-1)?.body?.minIndex, writerSession.position.index);
    } finally {
      clearTimeout(timer);
      await writer.close();
      await reader.close();
      await cluster.close();
    }
  });
});

describe("session position", () => {
  test("positions only grow, and every read asks for the highest position seen before it", async () => {
    const operation = fc.record({ kind: fc.constantFrom("write", "read", "handover"), index: fc.nat(1_000) });
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 30 }), async (operations) => {
        let served = 0;
        const sentMinIndexes: (number | undefined)[] = [];
        const client = connect({
          nodes: ["http://127.0.0.1:1"],
          consistency: "any",
          fetch: async (url, init) => {
            const body = JSON.parse(String(init.body)) as { statements: unknown[]; minIndex?: number };
            if (url.endsWith("/v1/execute")) {
              const results = body.statements.map(() => ({ rowsAffected: 1, lastInsertRowid: 1 }));
              return json({ results, position: { index: served, term: 1 } });
            }
            sentMinIndexes.push(body.minIndex);
            const results = body.statements.map(() => ({ columns: [], rows: [] }));
            return json({ results, position: { index: served }, node: "n1" });
          },
        });
        const session = client.session();
        let highest = 0;
        for (const { kind, index } of operations) {
          const before = session.position.index;
          served = index;
          if (kind === "write") await session.execute("UPDATE t SET v = v + 1");
          else if (kind === "handover") session.observe({ index });
          else {
            await session.query("SELECT v FROM t");
            assert.equal(sentMinIndexes.at(-1), highest === 0 ? undefined : highest);
          }
          highest = Math.max(highest, index);
          assert.equal(session.position.index, highest);
          assert.ok(session.position.index >= before);
        }
        await client.close();
      }),
      { numRuns: 50 },
    );
  });

  test("a session refuses a position that is not a non-negative integer", async () => {
    const client = connect({ nodes: ["http://127.0.0.1:1"] });
    for (const bad of [-1, 1.5, Number.NaN, { index: "3" }]) {
      assert.throws(() => client.session({ position: bad as number }), { code: "BAD_REQUEST" });
    }
    await client.close();
  });
});
