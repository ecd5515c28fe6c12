/**
 * End to end, real processes on loopback: the leader is killed with SIGKILL under a steady write
 * load; the client library rides through; every acknowledged write survives; the old leader
 * rejoins as a follower and catches up; a write fenced on the old term is refused; a write retried
 * with its requestId across the failover is applied exactly once.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect } from "../../src/client/index.ts";
import { Cluster, waitFor } from "./cluster-harness.ts";

describe("failover", { timeout: 120_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("SIGKILL of the leader under load: a new leader takes writes, no acknowledged write is lost, clients see no error", async () => {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url), timeoutMs: 20_000 });
    await client.execute("CREATE TABLE payments(id INTEGER PRIMARY KEY, tag TEXT UNIQUE NOT NULL)");
    const oldLeader = await cluster.waitForLeader();
    const oldTerm = (await cluster.status(oldLeader)).term;
    const acknowledged: string[] = [];
    const errors: unknown[] = [];
    let killedAtMs = 0;
    let firstWriteAfterKillMs: number | null = null;
    let running = true;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; running; i++) {
        const tag = `w${w}-${i}`;
        try {
          const result = await client.execute([["INSERT INTO payments(tag) VALUES (?)", tag]], {
            durability: "majority",
          });
          acknowledged.push(tag);
          if (killedAtMs > 0 && firstWriteAfterKillMs === null && result.position.term > oldTerm)
            firstWriteAfterKillMs = Date.now() - killedAtMs;
        } catch (error) {
          errors.push(error);
        }
      }
    };
    const writers = Array.from({ length: 4 }, (_, w) => writer(w));
    let newLeader: Awaited<ReturnType<Cluster["waitForLeader"]>>;
    const survivors = cluster.nodes.filter((n) => n !== oldLeader);
    try {
      await waitFor("writes before the kill", 30_000, async () => acknowledged.length >= 200);
      killedAtMs = Date.now();
      await cluster.signal(oldLeader, "SIGKILL");
      newLeader = await cluster.waitForLeader(survivors);
      await waitFor(
        "writes after the failover",
        15_000,
        async () => firstWriteAfterKillMs !== null && acknowledged.length >= 400,
      );
    } finally {
      // Stopped whatever happened: writers left running would keep this test process alive.
      running = false;
      await Promise.all(writers);
    }
    assert.deepEqual(errors, [], "the client library surfaced no error");
    assert.notEqual(newLeader.id, oldLeader.id);
    console.log(
      `failover: first write acknowledged ${firstWriteAfterKillMs} ms after SIGKILL; ${acknowledged.length} writes acknowledged`,
    );
    await cluster.convergedHashes(survivors);
    for (const node of survivors) {
      const reader = connect({ nodes: [node.url] });
      const { rows } = await reader.query<{ tag: string }>("SELECT tag FROM payments", {
        consistency: "any",
      });
      const present = new Set(rows.map((r) => r.tag));
      const missing = acknowledged.filter((tag) => !present.has(tag));
      assert.deepEqual(missing, [], `${node.id} lacks acknowledged writes`);
      await reader.close();
    }
    // Fencing: a write that names the old leadership's term is refused, and nothing is applied.
    const fenced = await client
      .execute([["INSERT INTO payments(tag) VALUES (?)", "fenced"]], { expectedTerm: oldTerm })
      .then(
        () => null,
        (error: { code: string }) => error.code,
      );
    assert.equal(fenced, "TERM_CHANGED");
    const current = await client.execute([["INSERT INTO payments(tag) VALUES (?)", "current"]]);
    assert.ok(current.term > oldTerm, "answers carry the new leadership's term");
    // A survivor answers (the one elected, unless a stall on a busy machine moved leadership again).
    assert.notEqual(current.node, oldLeader.id);
    const check = await client.query<{ n: number }>(
      "SELECT count(*) AS n FROM payments WHERE tag = 'fenced'",
    );
    assert.equal(check.rows[0]?.n, 0);
    assert.ok(
      (check.term ?? 0) >= current.term,
      "a linearizable read is served under this term or a later one",
    );
    await client.close();
  });

  test("the old leader restarts, rejoins as a follower and catches up", async () => {
    const stopped = cluster.nodes.find((n) => n.process === null);
    assert.ok(stopped !== undefined, "the killed leader is down");
    cluster.startNode(stopped);
    await waitFor(
      "the old leader to follow",
      15_000,
      async () => (await cluster.status(stopped).catch(() => null))?.role === "follower",
    );
    const hashes = await cluster.convergedHashes(cluster.nodes);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, JSON.stringify(hashes));
  });

  test("a write retried with the same requestId across a failover is applied exactly once", async () => {
    const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
    await client.execute(
      "CREATE TABLE transfers(id INTEGER PRIMARY KEY AUTOINCREMENT, amount INTEGER NOT NULL)",
    );
    const first = await client.execute([["INSERT INTO transfers(amount) VALUES (?)", 100]], {
      requestId: "transfer-42",
    });
    const leader = await cluster.waitForLeader();
    await cluster.signal(leader, "SIGKILL");
    const newLeader = await cluster.waitForLeader(cluster.running());
    const retry = await fetch(`${newLeader.url}/v1/execute`, {
      method: "POST",
      body: JSON.stringify({
        statements: [["INSERT INTO transfers(amount) VALUES (?)", 100]],
        requestId: "transfer-42",
      }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(retry.status, 200);
    const answer = (await retry.json()) as { results: unknown; position: unknown };
    assert.deepEqual(answer.position, first.position, "the retry answers with the original position");
    assert.deepEqual(answer.results, first.results);
    const { rows } = await client.query<{ n: number }>("SELECT count(*) AS n FROM transfers", {
      consistency: "linearizable",
    });
    assert.equal(rows[0]?.n, 1);
    // After failover the new leader starts above the old leader's id reservation: ids jump ahead
    // (past every id the old leader may have handed out), and none is handed out twice.
    const next = await client.execute([["INSERT INTO transfers(amount) VALUES (?)", 5]]);
    assert.ok(Number(next.results[0]?.lastInsertRowid) > 1, `next id ${next.results[0]?.lastInsertRowid}`);
    await client.close();
    cluster.startNode(cluster.nodes.find((n) => n.process === null)!);
  });

  test("SIGTERM on the leader hands leadership over first and exits 0", async () => {
    const leader = await cluster.waitForLeader();
    const child = leader.process!;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const stoppedAt = Date.now();
    process.kill(child.pid!, "SIGTERM");
    const successor = await cluster.waitForLeader(
      cluster.nodes.filter((n) => n !== leader && n.process !== null),
      15_000,
    );
    const handOverMs = Date.now() - stoppedAt;
    assert.equal(await exited, 0);
    leader.process = null;
    assert.notEqual(successor.id, leader.id);
    const log = cluster.logsOf(leader);
    assert.match(log, /transfer-started/);
    assert.match(
      log,
      /"role":"follower"[^\n]*node.hand-over-finished|node.hand-over-finished[^\n]*"role":"follower"/,
    );
    console.log(`graceful hand-over: new leader ${successor.id} after ${handOverMs} ms`);
    cluster.startNode(leader);
    await cluster.convergedIndexes(cluster.nodes);
  });
});
