/**
 * End to end, real processes on loopback: storage damage healed from peers (docs/architecture.md,
 * "Storage faults"). A node restarted with a corrupted committed log record, mid-log or in its last
 * complete record, keeps its intact prefix, fetches the rest and rejoins; a node restarted with a
 * damaged row in its database (which SQLite's own checks do not see) finds it by comparing content
 * hashes with the other voters, never serves it, replaces its database with the leader's snapshot
 * and rejoins; a node alone with a corrupted log says so and stops.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { Prng } from "../../src/lib/prng.ts";
import { corruptLastWalRecord, corruptWalRecord } from "../nemesis/storage-faults.ts";
import { acknowledgedWrite, Cluster, type ClusterNode, postJson, waitFor } from "./cluster-harness.ts";

const keys = 40;

/** Appends `${tag}${key}` to every list, each append acknowledged once (retried by request id). */
async function appendAll(cluster: Cluster, tag: string): Promise<void> {
  for (let key = 1; key <= keys; key++) {
    await acknowledgedWrite(() => cluster.waitForLeader(), {
      statements: [
        [
          "INSERT INTO lists(key, items) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET items = items || ',' || excluded.items",
          key,
          `${tag}${key}`,
        ],
      ],
      requestId: `append-${tag}-${key}`,
    });
  }
}

async function listsOf(node: ClusterNode): Promise<{ status: number; rows: unknown; code: string | null }> {
  const answer = await postJson(node, "/v1/query", {
    statements: ["SELECT key, items FROM lists ORDER BY key"],
    consistency: "any",
  });
  return {
    status: answer.status,
    rows: answer.body.results?.[0]?.rows ?? null,
    code: answer.body.error?.code ?? null,
  };
}

/**
 * Changes one character of a stored text value in a stopped node's database file (after moving
 * SQLite's WAL into it): damage inside a row's content, which SQLite keeps no checksum of.
 */
function damageRowText(node: ClusterNode, needle: string): void {
  const file = path.join(node.dataDirectory, "baton.db");
  const db = new DatabaseSync(file);
  try {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
  const bytes = fs.readFileSync(file);
  const at = bytes.indexOf(Buffer.from(needle));
  assert.ok(at >= 0, `${needle} is in the file`);
  assert.equal(bytes.indexOf(Buffer.from(needle), at + 1), -1, `one copy of ${needle}`);
  bytes[at] = bytes[at] === 0x7a ? 0x79 : 0x7a;
  fs.writeFileSync(file, bytes);
}

/** Breaks the first page of a table's b-tree in a stopped node's database file (SQLite sees it). */
function breakTablePage(node: ClusterNode, table: string): void {
  const file = path.join(node.dataDirectory, "baton.db");
  const db = new DatabaseSync(file);
  let pageBytes: number;
  let root: number;
  try {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    pageBytes = Number(db.prepare("PRAGMA page_size").get()?.page_size);
    root = Number(db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = ?").get(table)?.rootpage);
  } finally {
    db.close();
  }
  const bytes = fs.readFileSync(file);
  bytes.fill(0xff, (root - 1) * pageBytes, (root - 1) * pageBytes + 12);
  fs.writeFileSync(file, bytes);
}

function logged(cluster: Cluster, node: ClusterNode, event: string): boolean {
  return cluster.logsOf(node).includes(`"${event}"`);
}

/** Until the node reports no lost entries, no damage and a verified database; then its status. */
async function healthy(cluster: Cluster, node: ClusterNode) {
  return waitFor(`${node.id} to be healthy`, 30_000, async () => {
    const status = await cluster.status(node).catch(() => null);
    const storage = status?.storage;
    return storage?.lostEntriesUntil === null && storage.damaged === null && storage.verified ? status : null;
  });
}

async function converged(cluster: Cluster): Promise<void> {
  const hashes = await cluster.convergedHashes(cluster.nodes, 30_000);
  assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, `hashes differ: ${JSON.stringify(hashes)}`);
  const [first, ...rest] = await Promise.all(cluster.nodes.map((node) => listsOf(node)));
  for (const other of rest) assert.deepEqual(other.rows, first?.rows);
}

describe("storage faults heal from peers", { timeout: 240_000 }, () => {
  let cluster: Cluster;
  const prng = new Prng(13);
  before(async () => {
    cluster = await Cluster.start(3);
    const leader = await cluster.waitForLeader();
    const created = await postJson(leader, "/v1/execute", {
      statements: ["CREATE TABLE lists(key INTEGER PRIMARY KEY, items TEXT NOT NULL)"],
    });
    assert.equal(created.status, 200);
    await appendAll(cluster, "a");
  });
  after(async () => {
    await cluster?.stop();
  });

  for (const where of ["mid-log", "in the last complete record"] as const) {
    test(`a node whose log has a corrupted committed record ${where} keeps its intact prefix, fetches the rest and rejoins`, async () => {
      await cluster.convergedIndexes(cluster.nodes);
      for (const n of cluster.nodes) n.log.splice(0);
      const leader = await cluster.waitForLeader();
      const node = cluster.nodes.find((n) => n !== leader)!;
      const before = await cluster.status(node);
      await cluster.signal(node, "SIGKILL");
      const note =
        where === "mid-log"
          ? corruptWalRecord(node.dataDirectory, prng)
          : corruptLastWalRecord(node.dataDirectory, prng);
      assert.ok(note !== null, "a record to corrupt");
      const startedMs = Date.now();
      cluster.startNode(node);
      await waitFor("the corruption to be healed at start", 20_000, async () =>
        logged(cluster, node, "wal.corruption-healed") ? true : null,
      );
      assert.equal(
        logged(cluster, node, "wal.torn-tail-cut"),
        false,
        "corruption is never cut as a torn tail",
      );
      const status = await healthy(cluster, node);
      console.log(`corrupted log record ${where}: healthy ${Date.now() - startedMs} ms after the restart`);
      assert.ok(logged(cluster, node, "consensus.lost-entries-refetched"), "it fetched back what it lost");
      // The loss moved it to a newer term: a leader that counted the lost entries was deposed.
      assert.ok(status.term > before.term, `term ${status.term} after ${before.term}`);
      await appendAll(cluster, "b");
      await converged(cluster);
    });
  }

  test("a node whose database has a damaged row finds it by content hash, never serves it, and takes the leader's snapshot", async () => {
    const leader = await cluster.waitForLeader();
    // A value written once, so the database file holds exactly one copy of it to damage.
    const marker = `only-copy-${Date.now()}`;
    const written = await postJson(leader, "/v1/execute", {
      statements: [["INSERT INTO lists(key, items) VALUES (?, ?)", keys + 1, marker]],
    });
    assert.equal(written.status, 200);
    await cluster.convergedIndexes(cluster.nodes);
    for (const n of cluster.nodes) n.log.splice(0);
    const node = cluster.nodes.find((n) => n !== leader)!;
    const intact = await listsOf(leader);
    await cluster.signal(node, "SIGKILL");
    damageRowText(node, marker);
    const startedMs = Date.now();
    cluster.startNode(node);
    // Every answer the node gives while it heals is a refusal or the intact rows, never damaged ones.
    const answers: { status: number; code: string | null; intact: boolean }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const answer = await listsOf(node).catch(() => null);
        if (answer !== null)
          answers.push({
            status: answer.status,
            code: answer.code,
            intact: JSON.stringify(answer.rows) === JSON.stringify(intact.rows),
          });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    try {
      await waitFor("the damage to be found", 30_000, async () =>
        logged(cluster, node, "consistency.damage-found") ? true : null,
      );
      await waitFor("the database to be replaced", 30_000, async () =>
        logged(cluster, node, "store.healed") ? true : null,
      );
      await healthy(cluster, node);
      console.log(`damaged row: healthy ${Date.now() - startedMs} ms after the restart`);
      const served = await listsOf(node);
      assert.equal(served.status, 200);
      assert.deepEqual(served.rows, intact.rows);
    } catch (error) {
      const tail = (n: ClusterNode) =>
        cluster
          .logsOf(n)
          .split("\n")
          .filter((l) => /consistency|store\.|snapshot|fatal|role/.test(l))
          .slice(-30)
          .join("\n");
      throw new Error(
        `${(error as Error).message}\n${node.id}:\n${tail(node)}\nleader ${leader.id}:\n${tail(leader)}`,
      );
    } finally {
      watching = false;
      await watcher;
    }
    const wrong = answers.filter((a) => a.status === 200 && !a.intact);
    assert.deepEqual(wrong, [], "the damaged rows were served");
    const refused = new Set(answers.filter((a) => a.status !== 200).map((a) => a.code));
    for (const code of refused)
      assert.ok(["STORE_UNVERIFIED", "STORE_DAMAGED"].includes(code ?? ""), String(code));
    assert.ok(
      refused.has("STORE_UNVERIFIED") || refused.has("STORE_DAMAGED"),
      JSON.stringify(answers.slice(0, 5)),
    );
    assert.equal(logged(cluster, node, "store.malformed"), false, "SQLite's own check saw nothing");
    await appendAll(cluster, "c");
    await converged(cluster);
  });

  test("a node whose damaged row is written again before a check finds it heals too: the entry that does not apply shows the damage", async () => {
    const leader = await cluster.waitForLeader();
    const marker = `written-again-${Date.now()}`;
    const key = keys + 2;
    const first = await postJson(leader, "/v1/execute", {
      statements: [["INSERT INTO lists(key, items) VALUES (?, ?)", key, marker]],
    });
    assert.equal(first.status, 200);
    await cluster.convergedIndexes(cluster.nodes);
    for (const n of cluster.nodes) n.log.splice(0);
    const node = cluster.nodes.find((n) => n !== leader)!;
    await cluster.signal(node, "SIGKILL");
    damageRowText(node, marker);
    // Writes to the damaged row, committed by the others while the node is down and as it comes back.
    const writing = (async () => {
      for (let i = 0; i < 40; i++) {
        await postJson(leader, "/v1/execute", {
          statements: [["UPDATE lists SET items = items || ? WHERE key = ?", `,w${i}`, key]],
        }).catch(() => null);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    cluster.startNode(node);
    await writing;
    await waitFor("the database to be replaced", 30_000, async () =>
      logged(cluster, node, "store.healed") ? true : null,
    );
    assert.ok(
      logged(cluster, node, "store.diverged-unverified") || logged(cluster, node, "consistency.damage-found"),
      "the damage was found",
    );
    assert.equal(logged(cluster, node, "node.fatal"), false, "the node did not stop");
    await healthy(cluster, node);
    await converged(cluster);
  });

  test("a node whose database has a broken b-tree page rebuilds it at start from its snapshot and log", async () => {
    await cluster.convergedIndexes(cluster.nodes);
    for (const n of cluster.nodes) n.log.splice(0);
    const leader = await cluster.waitForLeader();
    const node = cluster.nodes.find((n) => n !== leader)!;
    await cluster.signal(node, "SIGKILL");
    breakTablePage(node, "lists");
    cluster.startNode(node);
    await waitFor("the rebuild", 20_000, async () => (logged(cluster, node, "store.rebuilt") ? true : null));
    assert.ok(logged(cluster, node, "store.malformed"));
    await healthy(cluster, node);
    assert.ok(
      fs.existsSync(path.join(node.dataDirectory, "baton.db.malformed")),
      "the damaged file is kept aside",
    );
    await appendAll(cluster, "d");
    await converged(cluster);
  });
});

describe("a node alone with a corrupted log", { timeout: 60_000 }, () => {
  test("says so and stops with NO_INTACT_COPY: no peer holds a copy of what it lost", async () => {
    const single = await Cluster.start(1);
    try {
      const [node] = single.nodes;
      const created = await postJson(node!, "/v1/execute", {
        statements: ["CREATE TABLE lists(key INTEGER PRIMARY KEY, items TEXT NOT NULL)"],
      });
      assert.equal(created.status, 200);
      await appendAll(single, "a");
      await single.signal(node!, "SIGKILL");
      assert.ok(corruptWalRecord(node!.dataDirectory, new Prng(5)) !== null);
      single.startNode(node!);
      const exit = await waitFor("the node to exit", 20_000, async () => {
        const child = node!.process;
        return child !== null && child.exitCode !== null ? child.exitCode : null;
      });
      assert.equal(exit, 1);
      assert.match(single.logsOf(node!), /NO_INTACT_COPY/);
      node!.process = null;
    } finally {
      await single.stop();
    }
  });
});
