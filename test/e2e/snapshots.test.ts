/**
 * End to end, real processes on loopback: snapshots and log compaction under load, a follower
 * that comes back after the leader compacted past it and catches up by snapshot transfer, and a
 * node restarted after compaction that starts from its snapshot.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { connect } from "../../src/client/index.ts";
import { Cluster, type ClusterNode, waitFor } from "./cluster-harness.ts";

const snapshotEntries = 150;
const trail = 10;

/** Writers inserting rows at `majority` until stopped; counts acknowledged and failed writes. */
function startLoad(cluster: Cluster, writers: number) {
  const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
  let running = true;
  const counts = { acknowledged: 0, failed: 0 };
  const done = Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; running; i++) {
        try {
          await client.execute(
            [{ sql: "INSERT INTO items(writer, seq, pad) VALUES (?, ?, randomblob(200))", params: [w, i] }],
            { durability: "majority", timeoutMs: 5000 },
          );
          counts.acknowledged++;
        } catch {
          counts.failed++;
        }
      }
    }),
  );
  return {
    counts,
    async stop() {
      running = false;
      await done;
      await client.close();
    },
  };
}

function snapshotFiles(node: ClusterNode): string[] {
  return fs.readdirSync(path.join(node.dataDirectory, "snapshots")).filter((n) => n.endsWith(".bsnap"));
}

describe("snapshots and log compaction", { timeout: 180_000 }, () => {
  let cluster: Cluster;
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
      "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, writer INTEGER NOT NULL, seq INTEGER NOT NULL, pad BLOB, UNIQUE(writer, seq))",
    );
    await client.close();
  });
  after(async () => {
    await cluster?.stop();
  });

  test("a follower back after the log was compacted past it catches up by snapshot; the leader serves throughout", async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n !== leader)!;
    await cluster.signal(follower, "SIGKILL");
    const load = startLoad(cluster, 4);
    try {
      // Write until the leader has compacted well past where the follower stopped.
      const before = await cluster.status(leader);
      await waitFor("the leader to compact past the stopped follower", 60_000, async () => {
        const status = await cluster.status(leader);
        return status.snapshots.logFirstIndex > before.lastIndex + trail + 1 ? status : null;
      });
      const failedWhileAway = load.counts.failed;
      cluster.startNode(follower);
      await waitFor("the follower to install a snapshot", 30_000, async () => {
        const status = await cluster.status(follower).catch(() => null);
        return status !== null && status.snapshots.installed >= 1 ? status : null;
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(load.counts.failed, failedWhileAway, "no write failed while the snapshot was sent");
    } finally {
      await load.stop();
    }
    assert.ok(load.counts.acknowledged > snapshotEntries, `${load.counts.acknowledged} writes acknowledged`);
    const hashes = await cluster.convergedHashes(cluster.nodes, 30_000);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, `hashes differ: ${JSON.stringify(hashes)}`);
    // Every acknowledged write is on the follower that came back by snapshot.
    const back = connect({ nodes: [follower.url] });
    const { rows } = await back.query<{ n: number }>("SELECT count(*) AS n FROM items", {
      consistency: "any",
    });
    assert.ok((rows[0]?.n ?? 0) >= load.counts.acknowledged);
    await back.close();
    for (const node of cluster.nodes) {
      const status = await cluster.status(node);
      assert.ok(status.snapshots.latest !== null, `${node.id} holds a snapshot`);
      assert.equal(snapshotFiles(node).length, 1, `${node.id} keeps only its latest snapshot`);
    }
  });

  test("a node restarted after compaction starts from its snapshot and a short log", async () => {
    const leader = await cluster.waitForLeader();
    const node = cluster.nodes.find((n) => n !== leader)!;
    const load = startLoad(cluster, 2);
    await waitFor("a snapshot on the node", 30_000, async () => {
      const status = await cluster.status(node);
      return status.snapshots.taken + status.snapshots.installed >= 1 && status.snapshots.logFirstIndex > 1
        ? status
        : null;
    });
    await load.stop();
    const beforeRestart = await cluster.status(node);
    await cluster.signal(node, "SIGKILL");
    cluster.startNode(node);
    const restarted = await waitFor("the node to answer again", 20_000, () =>
      cluster.status(node).catch(() => null),
    );
    assert.ok(restarted.snapshots.logFirstIndex > 1, "the restarted node's log starts after its snapshot");
    assert.ok(restarted.snapshots.logFirstIndex >= beforeRestart.snapshots.logFirstIndex);
    const hashes = await cluster.convergedHashes(cluster.nodes, 30_000);
    assert.equal(new Set(hashes.map((h) => h.hash)).size, 1);
  });
});
