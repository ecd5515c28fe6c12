/**
 * How the client reads answers, with an injected `fetch` (no network): malformed answers, gateways,
 * big integers, unknown codes, options, abort, and which leader discovery believes.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BatonClientError, connect, type FetchLike } from "./index.ts";

type Seen = { url: string; body: Record<string, unknown> | undefined };

/** A fetch that records requests and answers with `reply`; a thrown error acts as a network failure. */
function scripted(reply: (url: string, body: Record<string, unknown> | undefined, call: number) => Response) {
  const seen: Seen[] = [];
  const fetch: FetchLike = async (url, init) => {
    const body = init.body ? (JSON.parse(String(init.body)) as Record<string, unknown>) : undefined;
    seen.push({ url, body });
    return reply(url, body, seen.length);
  };
  return { seen, fetch };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

const leaderStatus = {
  id: "n1",
  role: "leader",
  term: 1,
  leader: null,
  commitIndex: 0,
  appliedIndex: 0,
  lastIndex: 0,
  members: [],
};
const executed = (statements: number) => ({
  results: Array.from({ length: statements }, () => ({ rowsAffected: 1, lastInsertRowid: 1 })),
  position: { index: 7, term: 1 },
});
const retry = { attemptsMax: 5, backoffMsMin: 1, backoffMsMax: 5 };

async function failure(promise: Promise<unknown>): Promise<BatonClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BatonClientError, String(error));
    return error;
  }
  assert.fail("expected the call to fail");
}

describe("answers", () => {
  test("a success answer of the wrong shape is BAD_RESPONSE, not retried, and the write may be applied", async () => {
    const { seen, fetch } = scripted((url) =>
      url.endsWith("/v1/status")
        ? json(200, leaderStatus)
        : json(200, { results: [], position: { index: 1, term: 1 } }),
    );
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    const error = await failure(client.execute("INSERT INTO t VALUES (1)"));
    assert.equal(error.code, "BAD_RESPONSE");
    assert.equal(error.details.maybeApplied, true);
    assert.equal(seen.filter((request) => request.url.endsWith("/v1/execute")).length, 1);
  });

  test("a gateway's HTML 502 is retried with the same requestId", async () => {
    const { seen, fetch } = scripted((url, _body, call) => {
      if (url.endsWith("/v1/status")) return json(200, leaderStatus);
      return call === 2 ? new Response("<html>bad gateway</html>", { status: 502 }) : json(200, executed(1));
    });
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    const result = await client.execute("INSERT INTO t VALUES (1)");
    const ids = seen
      .filter((request) => request.url.endsWith("/v1/execute"))
      .map((request) => request.body?.requestId);
    assert.deepEqual(ids, [result.requestId, result.requestId]);
  });

  test("integers beyond 2^53 that the server sends as strings reach the caller unchanged", async () => {
    const big = "9007199254740993";
    const { fetch } = scripted((url) => {
      if (url.endsWith("/v1/status")) return json(200, leaderStatus);
      if (url.endsWith("/v1/execute")) {
        return json(200, {
          results: [{ rowsAffected: 1, lastInsertRowid: big }],
          position: { index: 1, term: 1 },
        });
      }
      return json(200, { results: [{ columns: ["id"], rows: [[big]] }], position: { index: 1 }, node: "n1" });
    });
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    assert.equal(
      (await client.execute([["INSERT INTO t VALUES (?)", big]])).results[0]?.lastInsertRowid,
      big,
    );
    assert.deepEqual((await client.query<{ id: string }>("SELECT id FROM t")).rows, [{ id: big }]);
  });

  test("an error code the client does not know passes through and is not retried", async () => {
    const { seen, fetch } = scripted((url) =>
      url.endsWith("/v1/status")
        ? json(200, leaderStatus)
        : json(503, { error: { code: "SOMETHING_NEW", message: "from a newer server", details: { x: 1 } } }),
    );
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    const error = await failure(client.query("SELECT 1"));
    assert.equal(error.code, "SOMETHING_NEW");
    assert.equal(error.status, 503);
    assert.equal(error.details.x, 1);
    assert.equal(seen.filter((request) => request.url.endsWith("/v1/query")).length, 1);
  });

  test("LEADERSHIP_LOST and a failed forward are retried with the same requestId and leave the outcome open", async () => {
    const { seen, fetch } = scripted((url, _body, call) => {
      if (url.endsWith("/v1/status")) return json(200, leaderStatus);
      if (call % 2 === 0) return json(503, { error: { code: "LEADERSHIP_LOST", message: "lost it" } });
      return json(503, {
        error: { code: "NO_LEADER", message: "forward failed", details: { outcome: "unknown" } },
      });
    });
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    const error = await failure(client.execute("INSERT INTO t VALUES (1)"));
    assert.equal(error.details.attempts, retry.attemptsMax);
    assert.equal(error.details.maybeApplied, true);
    const ids = new Set(seen.filter((r) => r.url.endsWith("/v1/execute")).map((r) => r.body?.requestId));
    assert.deepEqual([...ids], [error.details.requestId]);
  });

  test("a caller's requestId is sent as given, so an unknown outcome can be resolved by retrying it", async () => {
    const { seen, fetch } = scripted((url) =>
      json(200, url.endsWith("/v1/status") ? leaderStatus : executed(1)),
    );
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    const result = await client.execute("INSERT INTO t VALUES (1)", { requestId: "order-42" });
    assert.equal(result.requestId, "order-42");
    assert.equal(seen.at(-1)?.body?.requestId, "order-42");
  });

  test("aborting the caller's signal ends the call with ABORTED", async () => {
    const controller = new AbortController();
    const fetch: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) =>
        init.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
      );
    const client = connect({ nodes: ["http://n1"], fetch, retry });
    const running = failure(client.query("SELECT 1", { consistency: "any", signal: controller.signal }));
    controller.abort();
    assert.equal((await running).code, "ABORTED");
  });
});

describe("leader discovery", () => {
  test("with the leader down, the leader named by the follower in the highest term is believed", async () => {
    const statuses: Record<string, unknown> = {
      "http://n2": {
        ...leaderStatus,
        id: "n2",
        role: "follower",
        term: 3,
        leader: { id: "n1", http: "n1:80" },
      },
      "http://n3": {
        ...leaderStatus,
        id: "n3",
        role: "follower",
        term: 5,
        leader: { id: "n4", http: "n4:80" },
      },
    };
    const { seen, fetch } = scripted((url) => {
      const status = statuses[url.replace("/v1/status", "")];
      if (url.endsWith("/v1/status") && status) return json(200, status);
      if (url.startsWith("http://n4/")) return json(200, executed(1));
      throw new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
    });
    const client = connect({ nodes: ["http://n1", "http://n2", "http://n3"], fetch, retry });
    await client.execute("INSERT INTO t VALUES (1)");
    assert.equal(client.leader, "http://n4");
    assert.deepEqual(
      seen.filter((request) => request.url.endsWith("/v1/execute")).map((request) => request.url),
      ["http://n4/v1/execute"],
    );
  });
});

describe("options", () => {
  test("invalid options fail connect with BAD_CONFIG and invalid call options with BAD_REQUEST", async () => {
    const bad: unknown[] = [
      { nodes: [] },
      { nodes: ["ftp://x"] },
      { nodes: ["http://a"], timeoutMs: 0 },
      { nodes: ["http://a"], retry: { backoffMsMin: 10, backoffMsMax: 5 } },
      { nodes: ["http://a"], retry: { attemptsMax: 0 } },
      { nodes: ["http://a"], durability: "quorum" },
    ];
    for (const options of bad) assert.throws(() => connect(options as never), { code: "BAD_CONFIG" });
    const client = connect({ nodes: ["http://a"], fetch: async () => json(500, {}) });
    await assert.rejects(client.query("SELECT 1", { minIndex: -1 }), { code: "BAD_REQUEST" });
    await assert.rejects(client.execute("SELECT 1", { durability: "quorum" as never }), {
      code: "BAD_REQUEST",
    });
    await assert.rejects(
      client.transaction(() => {}),
      { code: "BAD_REQUEST" },
    );
  });
});
