import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ExecuteResponse, QueryResponse, StatusResponse } from "../api/api-types.ts";
import { requestLimits } from "../api/request-limits.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import { BatonError, ErrorCode, httpStatusByCode, retryByCode } from "../lib/errors.ts";
import type { NodeService, Readiness } from "../node/node-service.ts";
import { HttpApi } from "./http-api.ts";

/** A node double: records what reached it and answers as scripted. */
class FakeNode implements NodeService {
  executed: NormalizedExecute[] = [];
  queried: NormalizedQuery[] = [];
  failWith: BatonError | null = null;
  shedWith: BatonError | null = null;
  readonly id: string;
  constructor(id: string) {
    this.id = id;
  }
  async execute(request: NormalizedExecute): Promise<ExecuteResponse> {
    if (this.failWith) throw this.failWith;
    this.executed.push(request);
    return {
      results: [{ rowsAffected: 1, lastInsertRowid: 7 }],
      position: { index: 42, term: 3 },
      term: 3,
      node: this.id,
    };
  }
  async query(request: NormalizedQuery): Promise<QueryResponse> {
    if (this.failWith) throw this.failWith;
    this.queried.push(request);
    return {
      results: [{ columns: ["n"], rows: [[9007199254740993n as unknown as number]] }],
      position: { index: 42 },
      term: 3,
      node: this.id,
    };
  }
  orphans(): unknown[] {
    return [];
  }
  orphan(id: number): unknown {
    throw new BatonError("NOT_FOUND", `no orphaned entry ${id}`);
  }
  orphanReplay(id: number): never {
    throw new BatonError("NOT_FOUND", `no orphaned entry ${id}`);
  }
  orphanResolved(id: number): never {
    throw new BatonError("NOT_FOUND", `no orphaned entry ${id}`);
  }
  members(): never {
    throw new BatonError("NOT_FOUND", "no members here");
  }
  memberAdd(): never {
    throw new BatonError("NOT_FOUND", "no members here");
  }
  memberChange(): never {
    throw new BatonError("NOT_FOUND", "no members here");
  }
  memberJoin(): never {
    throw new BatonError("NOT_FOUND", "no members here");
  }
  failoverView(): never {
    throw new BatonError("NOT_FOUND", "no failover here");
  }
  failoverSettings(): never {
    throw new BatonError("NOT_FOUND", "no failover here");
  }
  memberAttributes(): never {
    throw new BatonError("NOT_FOUND", "no failover here");
  }
  promote(): never {
    throw new BatonError("NOT_FOUND", "no failover here");
  }
  switchover(): never {
    throw new BatonError("NOT_FOUND", "no switchover here");
  }
  switchoverCancel(): never {
    throw new BatonError("NOT_FOUND", "no switchover here");
  }
  switchoverStatus(): { scheduled: null } {
    return { scheduled: null };
  }
  history(): [] {
    return [];
  }
  orphanActions(): unknown[] {
    return [];
  }
  status(): StatusResponse {
    return {
      id: this.id,
      role: "leader",
      term: 3,
      leader: null,
      commitIndex: 42,
      appliedIndex: 42,
      lastIndex: 42,
      membership: "voter",
      members: [],
      snapshots: {
        latest: null,
        taken: 0,
        installed: 0,
        lastDurationMs: null,
        lastTakenAtMs: null,
        logFirstIndex: 1,
      },
      storage: { lostEntriesUntil: null, damaged: null, verified: true, lastCheck: null },
      admission: {
        readsInFlight: 0,
        writesInFlight: 0,
        refused: { read: 0, write: 0, loopDelay: 0 },
        loopDelayMs: null,
        loopDelayShedMs: 150,
      },
    };
  }
  shed(): void {
    if (this.shedWith) throw this.shedWith;
  }
  async contentHash(): Promise<{ appliedIndex: number; hash: string }> {
    return { appliedIndex: 42, hash: "ab" };
  }
  readiness(): Readiness {
    return { ready: this.failWith === null, reason: this.failWith ? "no leader" : null };
  }
  fencing(): { node: string; term: number } {
    return { node: this.id, term: 5 };
  }
}

async function post(
  base: string,
  path: string,
  body: string | object,
): Promise<{ status: number; json: any; headers: Headers }> {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, json: await response.json(), headers: response.headers };
}

describe("HTTP API", () => {
  const leader = new FakeNode("n1");
  const follower = new FakeNode("n2");
  const leaderApi = new HttpApi(leader, { host: "127.0.0.1", port: 0, bodyBytesMax: 4096 });
  const followerApi = new HttpApi(follower, { host: "127.0.0.1", port: 0, bodyBytesMax: 4096 });
  let leaderBase = "";
  let followerBase = "";
  before(async () => {
    leaderBase = `http://127.0.0.1:${(await leaderApi.start()).port}`;
    followerBase = `http://127.0.0.1:${(await followerApi.start()).port}`;
  });
  after(async () => {
    await leaderApi.stop();
    await followerApi.stop();
  });

  test("execute accepts the three statement forms and normalizes them", async () => {
    const { status, json } = await post(leaderBase, "/v1/execute", {
      statements: [
        "SELECT 1",
        ["INSERT INTO t VALUES (?, ?)", 1, "a"],
        { sql: "UPDATE t SET v = :v", params: { v: null } },
      ],
      durability: "all",
      requestId: "r-1",
    });
    assert.equal(status, 200);
    assert.deepEqual(json, {
      results: [{ rowsAffected: 1, lastInsertRowid: 7 }],
      position: { index: 42, term: 3 },
      term: 3,
      node: "n1",
    });
    assert.deepEqual(leader.executed.at(-1), {
      statements: [
        { sql: "SELECT 1", params: [] },
        { sql: "INSERT INTO t VALUES (?, ?)", params: [1, "a"] },
        { sql: "UPDATE t SET v = :v", params: { v: null } },
      ],
      durability: "all",
      requestId: "r-1",
      expectedTerm: null,
      timeoutMs: null,
    });
  });

  test("while the node sheds load, execute and query are refused OVERLOADED with Retry-After before the body is read; status still answers", async () => {
    leader.shedWith = new BatonError(ErrorCode.OVERLOADED, "the event loop runs late", {
      reason: "loop-delay",
    });
    const executedBefore = leader.executed.length;
    try {
      // A body the validator would refuse: shedding answers before reading it.
      for (const path of ["/v1/execute", "/v1/query"]) {
        const { status, json, headers } = await post(leaderBase, path, "{not json");
        assert.equal(status, 503, path);
        assert.equal(json.error.code, "OVERLOADED");
        assert.equal(json.error.details.reason, "loop-delay");
        assert.equal(headers.get("retry-after"), String(retryByCode.OVERLOADED.retryAfterSeconds));
      }
      assert.equal(leader.executed.length, executedBefore);
      const status = await fetch(`${leaderBase}/v1/status`, { signal: AbortSignal.timeout(5000) });
      assert.equal(status.status, 200);
      const health = await fetch(`${leaderBase}/healthz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(health.status, 200);
    } finally {
      leader.shedWith = null;
    }
    const { status } = await post(leaderBase, "/v1/execute", { statements: ["SELECT 1"] });
    assert.equal(status, 200, "served again once shedding ends");
  });

  test("integers beyond 2^53 are sent as decimal strings, never rounded", async () => {
    const { json } = await post(leaderBase, "/v1/query", { statements: ["SELECT big"], consistency: "any" });
    assert.deepEqual(json.results[0].rows, [["9007199254740993"]]);
  });

  const badBodies: [string, string | object, string][] = [
    ["not JSON", "{nope", "not valid JSON"],
    ["empty body", "", "empty"],
    ["an array body", [1], "JSON object"],
    ["no statements", {}, "statements must be an array"],
    ["empty batch", { statements: [] }, "at least one statement"],
    ["a number as statement", { statements: [5] }, "statements[0]"],
    ["empty SQL", { statements: ["  "] }, "empty"],
    ["unknown field", { statements: ["SELECT 1"], durabilty: "all" }, "unknown field"],
    ["unknown statement field", { statements: [{ sql: "SELECT 1", parms: [] }] }, "unknown field"],
    ["bad durability", { statements: ["SELECT 1"], durability: "most" }, "durability"],
    ["bad timeout", { statements: ["SELECT 1"], timeoutMs: -5 }, "timeoutMs"],
    ["object parameter", { statements: [["SELECT ?", { x: 1 }]] }, "parameters"],
    ["bad requestId", { statements: ["SELECT 1"], requestId: 12 }, "requestId"],
  ];
  for (const [name, body, fragment] of badBodies) {
    test(`execute with ${name} answers 400 BAD_REQUEST`, async () => {
      const before = leader.executed.length;
      const { status, json } = await post(leaderBase, "/v1/execute", body);
      assert.equal(status, 400);
      assert.equal(json.error.code, "BAD_REQUEST");
      assert.ok(json.error.message.includes(fragment), json.error.message);
      assert.equal(leader.executed.length, before, "nothing reached the node");
    });
  }

  test("a batch of one statement more than requestLimits allows answers 400 BAD_REQUEST", async () => {
    // The leader above bounds bodies at 4 KiB; this API takes the default body bound, so the
    // statement count is what refuses the batch.
    const api = new HttpApi(leader, { host: "127.0.0.1", port: 0 });
    const base = `http://127.0.0.1:${(await api.start()).port}`;
    try {
      const before = leader.executed.length;
      const tooMany = Array.from({ length: requestLimits.statementsPerBatchMax + 1 }, () => "SELECT 1");
      assert.equal(tooMany.length, 1_001);
      const refused = await post(base, "/v1/execute", { statements: tooMany });
      assert.equal(refused.status, 400);
      assert.equal(refused.json.error.code, "BAD_REQUEST");
      assert.ok(refused.json.error.message.includes("1000"), refused.json.error.message);
      const query = await post(base, "/v1/query", { statements: tooMany });
      assert.equal(query.json.error.code, "BAD_REQUEST");
      assert.equal(leader.executed.length, before, "nothing reached the node");
      const { status } = await post(base, "/v1/execute", { statements: tooMany.slice(1) });
      assert.equal(status, 200, "exactly the limit is accepted");
    } finally {
      await api.stop();
    }
  });

  test("query validation: bad consistency, negative minIndex", async () => {
    for (const body of [
      { statements: ["SELECT 1"], consistency: "strong" },
      { statements: ["SELECT 1"], minIndex: -1 },
    ]) {
      const { status, json } = await post(leaderBase, "/v1/query", body);
      assert.equal(status, 400);
      assert.equal(json.error.code, "BAD_REQUEST");
    }
  });

  test("an oversized body answers 413 PAYLOAD_TOO_LARGE", async () => {
    const { status, json } = await post(leaderBase, "/v1/execute", { statements: ["x".repeat(5000)] });
    assert.equal(status, 413);
    assert.equal(json.error.code, "PAYLOAD_TOO_LARGE");
  });

  test("unknown routes and wrong methods answer with codes", async () => {
    const missing = await fetch(`${leaderBase}/v2/nothing`, { signal: AbortSignal.timeout(5000) });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).error.code, "NOT_FOUND");
    const wrong = await fetch(`${leaderBase}/v1/execute`, { signal: AbortSignal.timeout(5000) });
    assert.equal(wrong.status, 405);
    assert.equal(((await wrong.json()) as any).error.code, "METHOD_NOT_ALLOWED");
  });

  test("a follower forwards writes to the leader and relays the answer", async () => {
    follower.failWith = new BatonError(ErrorCode.NOT_LEADER, "not the leader", {
      leader: { id: "n1", http: leaderBase },
    });
    try {
      const before = leader.executed.length;
      const { status, json } = await post(followerBase, "/v1/execute", {
        statements: ["INSERT INTO t VALUES (1)"],
      });
      assert.equal(status, 200);
      assert.equal(json.position.index, 42);
      assert.equal(leader.executed.length, before + 1);
    } finally {
      follower.failWith = null;
    }
  });

  test("every answer carries its fencing token (term and node) in the body and in headers, relayed ones the leader's", async () => {
    const written = await post(leaderBase, "/v1/execute", { statements: ["INSERT INTO t VALUES (1)"] });
    assert.equal(written.headers.get("baton-term"), "3", "a write: the term it was accepted under");
    assert.equal(written.headers.get("baton-node"), "n1");
    const read = await post(leaderBase, "/v1/query", { statements: ["SELECT 1"], consistency: "any" });
    assert.deepEqual([read.json.term, read.json.node, read.headers.get("baton-term")], [3, "n1", "3"]);
    const refused = await post(leaderBase, "/v1/execute", { statements: [] });
    assert.deepEqual(
      [refused.json.error.term, refused.json.error.node],
      [5, "n1"],
      "an error: the node's term now",
    );
    assert.deepEqual([refused.headers.get("baton-term"), refused.headers.get("baton-node")], ["5", "n1"]);
    follower.failWith = new BatonError(ErrorCode.NOT_LEADER, "not the leader", {
      leader: { id: "n1", http: leaderBase },
    });
    try {
      const relayed = await post(followerBase, "/v1/execute", { statements: ["INSERT INTO t VALUES (2)"] });
      assert.deepEqual([relayed.headers.get("baton-node"), relayed.headers.get("baton-term")], ["n1", "3"]);
    } finally {
      follower.failWith = null;
    }
  });

  test("a forwarded request never hops twice", async () => {
    leader.failWith = new BatonError(ErrorCode.NOT_LEADER, "not the leader", {
      leader: { id: "n2", http: followerBase },
    });
    follower.failWith = new BatonError(ErrorCode.NOT_LEADER, "not the leader", {
      leader: { id: "n1", http: leaderBase },
    });
    try {
      const { status, json } = await post(followerBase, "/v1/execute", { statements: ["SELECT 1"] });
      assert.equal(status, 409);
      assert.equal(json.error.code, "NOT_LEADER");
      assert.equal(json.error.leader.id, "n2");
    } finally {
      leader.failWith = null;
      follower.failWith = null;
    }
  });

  test("NO_LEADER answers 503 without a Retry-After floor; readyz reflects readiness", async () => {
    leader.failWith = new BatonError(ErrorCode.NO_LEADER, "no leader is known");
    try {
      const { status, json, headers } = await post(leaderBase, "/v1/execute", { statements: ["SELECT 1"] });
      assert.equal(status, 503);
      assert.equal(json.error.code, "NO_LEADER");
      assert.equal(headers.get("retry-after"), null);
      const ready = await fetch(`${leaderBase}/readyz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(ready.status, 503);
    } finally {
      leader.failWith = null;
    }
    const ready = await fetch(`${leaderBase}/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(ready.status, 200);
    const health = await fetch(`${leaderBase}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.deepEqual(await health.json(), { ok: true });
  });

  test("Retry-After is sent exactly as retryByCode says", async () => {
    try {
      for (const code of Object.values(ErrorCode)) {
        leader.failWith = new BatonError(code, "scripted");
        const { status, json, headers } = await post(leaderBase, "/v1/execute", { statements: ["SELECT 1"] });
        assert.equal(status, httpStatusByCode[code], code);
        assert.equal(json.error.code, code);
        const seconds = retryByCode[code].retryAfterSeconds;
        assert.equal(headers.get("retry-after"), seconds === null ? null : String(seconds), code);
      }
    } finally {
      leader.failWith = null;
    }
  });

  test("an unexpected exception answers 500 INTERNAL without details and the server keeps serving", async () => {
    leader.failWith = new TypeError("boom") as unknown as BatonError;
    try {
      const { status, json } = await post(leaderBase, "/v1/execute", { statements: ["SELECT 1"] });
      assert.equal(status, 500);
      assert.equal(json.error.code, "INTERNAL");
    } finally {
      leader.failWith = null;
    }
    const { status } = await post(leaderBase, "/v1/execute", { statements: ["SELECT 1"] });
    assert.equal(status, 200);
  });
});
