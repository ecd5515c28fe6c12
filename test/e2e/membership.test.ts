/**
 * End to end, real processes on loopback: membership changes under load. A fourth node joins,
 * catches up by snapshot and log and is promoted; a read replica serves reads and is not needed
 * by `all` writes; a node whose data directory was wiped rejoins; a follower and then the leader
 * are removed. Writers insert unique rows at `majority` throughout, and every acknowledged row is
 * checked at the end, on every remaining member, whose content hashes must agree.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, afterEach, before, describe, test } from "node:test";
import type { StatusResponse } from "../../src/api/api-types.ts";
import { connect } from "../../src/client/index.ts";
import { Cluster, type ClusterNode, postJson, waitFor } from "./cluster-harness.ts";
import { startWriteLoad, type WriteLoad } from "./write-load.ts";

const snapshotEntries = 200;
const trail = 20;

type Load = WriteLoad;

async function members(node: ClusterNode): Promise<{ id: string; role: string }[]> {
  const response = await fetch(`${node.url}/v1/members`, { signal: AbortSignal.timeout(5000) });
  return ((await response.json()) as { members: { id: string; role: string }[] }).members;
}

async function change(
  node: ClusterNode,
  route: string,
  body: object = {},
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${node.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ timeoutMs: 30_000, ...body }),
    signal: AbortSignal.timeout(45_000),
  });
  return { status: response.status, body: await response.json() };
}

describe("membership changes under load", { timeout: 400_000 }, () => {
  let cluster: Cluster;
  const loads: Load[] = [];
  const current = (): ClusterNode[] => cluster.running();

  before(async () => {
    cluster = await Cluster.start(3, [
      "--heartbeat-ms",
      "50",
      "--missed-heartbeats",
      "6",
      "--snapshot-entries",
      String(snapshotEntries),
      "--compaction-trail",
      String(trail),
    ]);
    const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
    await client.execute(
      "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL UNIQUE, pad BLOB)",
    );
    await client.close();
  });
  afterEach((t) => {
    if (!t.passed) cluster.dumpLogs(`after "${t.name}"`);
  });

  after(async () => {
    for (const load of loads) await load.stop().catch(() => {});
    await cluster?.stop();
  });

  /** Runs `during` while writers insert; returns the load (stopped) for its counts. */
  async function underLoad(tag: string, during: () => Promise<void>): Promise<Load> {
    const load = startWriteLoad(
      current().map((n) => n.url),
      4,
      tag,
    );
    loads.push(load);
    try {
      await waitFor("writes to flow", 20_000, async () => load.acknowledged.size > 50);
      await during();
      const before = load.acknowledged.size;
      await waitFor(
        "writes to flow after the change",
        20_000,
        async () => load.acknowledged.size > before + 50,
      );
    } finally {
      await load.stop();
    }
    return load;
  }

  async function voterIn(node: ClusterNode, id: string): Promise<boolean> {
    return (await members(node)).some((m) => m.id === id && m.role === "voter");
  }

  test("a fourth node joins under load, catches up by snapshot and log, is promoted, and serves reads", async () => {
    let joined: ClusterNode | null = null;
    await underLoad("join", async () => {
      // Enough history that the leader has compacted past the start of its log.
      const leader = await cluster.waitForLeader();
      await waitFor("a compacted log on the leader", 60_000, async () => {
        const status = await cluster.status(leader);
        return status.snapshots.logFirstIndex > 1;
      });
      joined = await cluster.addJoiningNode(cluster.nodes[0]!, "voter");
      const node = joined;
      await waitFor("the new node to be promoted to voter", 90_000, async () => voterIn(node, node.id)).catch(
        (error: unknown) => {
          process.stderr.write(`log of ${node.id}:\n${cluster.logsOf(node).slice(-20_000)}\n`);
          throw error;
        },
      );
    });
    const node = joined as unknown as ClusterNode;
    const status: StatusResponse = await cluster.status(node);
    assert.equal(status.membership, "voter");
    assert.ok(status.snapshots.installed >= 1, "the new node was seeded from a snapshot");
    const hashes = await cluster.convergedHashes(current(), 60_000);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1);
    const read = await postJson(node, "/v1/query", {
      statements: ["SELECT count(*) FROM items"],
      consistency: "any",
    });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.node, node.id, "the new node serves reads from its own copy");
    const [[count]] = read.body.results[0].rows;
    assert.ok(count >= loads[0]!.acknowledged.size, `${count} rows hold every acknowledged insert`);
  });

  test("a read replica serves minIndex and linearizable reads, counts for no quorum, and all writes go on while it is down", async () => {
    const replica = await cluster.addJoiningNode(cluster.nodes[0]!, "learner");
    await waitFor("the replica to be a learner", 60_000, async () =>
      (await members(cluster.nodes[0]!)).some((m) => m.id === replica.id && m.role === "learner"),
    );
    const client = connect({ nodes: cluster.nodes.filter((n) => n.join === undefined).map((n) => n.url) });
    try {
      const write = await client.execute("INSERT INTO items(k) VALUES ('for-the-replica')", {
        durability: "majority",
      });
      const minIndexRead = await waitFor("the replica to serve the write", 30_000, async () => {
        const answer = await postJson(replica, "/v1/query", {
          statements: ["SELECT count(*) FROM items WHERE k = 'for-the-replica'"],
          consistency: "any",
          minIndex: write.position.index,
          timeoutMs: 2000,
        });
        return answer.status === 200 ? answer : null;
      });
      assert.deepEqual(minIndexRead.body.results[0].rows, [[1]]);
      assert.equal(minIndexRead.body.node, replica.id);
      const linearizable = await postJson(replica, "/v1/query", {
        statements: ["SELECT count(*) FROM items WHERE k = 'for-the-replica'"],
        consistency: "linearizable",
      });
      assert.equal(linearizable.status, 200, JSON.stringify(linearizable.body));
      assert.equal(linearizable.body.node, replica.id, "a learner serves linearizable reads itself");
      assert.deepEqual(linearizable.body.results[0].rows, [[1]]);
      await cluster.signal(replica, "SIGKILL");
      const all = await client.execute("INSERT INTO items(k) VALUES ('all-without-replica')", {
        durability: "all",
        timeoutMs: 10_000,
      });
      assert.ok(all.position.index > write.position.index);
      cluster.startNode(replica);
      await waitFor("the replica back and caught up", 60_000, async () => {
        const status = await cluster.status(replica);
        return status.appliedIndex >= all.position.index && status.membership === "learner";
      });
    } finally {
      await client.close();
    }
  });

  test("a node whose data directory was wiped rejoins under load and its content hash matches", async () => {
    const leader = await cluster.waitForLeader();
    const victim = cluster.nodes.find((n) => n !== leader && n.join === undefined)!;
    await underLoad("wipe", async () => {
      await cluster.signal(victim, "SIGKILL");
      fs.rmSync(victim.dataDirectory, { recursive: true, force: true });
      // The same id and addresses, an empty directory: it joins again through the leader.
      const rejoining = { ...victim, join: { via: leader.url, as: "voter" as const } };
      cluster.nodes[cluster.nodes.indexOf(victim)] = rejoining;
      cluster.startNode(rejoining);
      await waitFor("the wiped node to be a voter again", 90_000, async () => voterIn(leader, victim.id));
    });
    const hashes = await cluster.convergedHashes(current(), 60_000);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1);
  });

  test("removing a follower and then the leader under load loses no acknowledged write", async () => {
    const load = await underLoad("remove", async () => {
      const leader = await cluster.waitForLeader();
      const follower = current().find((n) => n !== leader && n.join?.as !== "learner")!;
      const removed = await change(leader, `/v1/members/${follower.id}/remove`);
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      await cluster.signal(follower, "SIGTERM");
      const removeLeader = await change(leader, `/v1/members/${leader.id}/remove`);
      assert.equal(removeLeader.status, 200, JSON.stringify(removeLeader.body));
      const next = await cluster.waitForLeader(current().filter((n) => n !== leader));
      assert.notEqual(next.id, leader.id);
      assert.ok(!(await members(next)).some((m) => m.id === leader.id));
      await cluster.signal(leader, "SIGTERM");
    });
    const remaining = current();
    await cluster.convergedHashes(remaining, 60_000);
    const rows = await postJson(remaining[0]!, "/v1/query", {
      statements: ["SELECT k FROM items"],
      consistency: "any",
    });
    const present = new Set((rows.body.results[0].rows as string[][]).map((r) => r[0]));
    const lost = [...load.acknowledged].filter((k) => !present.has(k));
    for (const earlier of loads) for (const k of earlier.acknowledged) if (!present.has(k)) lost.push(k);
    assert.deepEqual(lost, [], "every acknowledged write is present");
    // A restarted member starts from the replicated configuration (saved with its compacted log),
    // not from the --cluster it was started with, which still names the removed nodes.
    const leader = await cluster.waitForLeader(remaining);
    const restarted =
      remaining.find((n) => n !== leader && n.join === undefined) ?? remaining.find((n) => n !== leader)!;
    assert.ok((await cluster.status(restarted)).snapshots.logFirstIndex > 1, "its log was compacted");
    await cluster.signal(restarted, "SIGTERM");
    cluster.startNode(restarted);
    const expected = (await members(leader)).map((m) => `${m.id}:${m.role}`).sort();
    await waitFor("the restarted member to see the same configuration", 30_000, async () => {
      const seen = (await members(restarted)).map((m) => `${m.id}:${m.role}`).sort();
      return JSON.stringify(seen) === JSON.stringify(expected);
    });
  });
});
