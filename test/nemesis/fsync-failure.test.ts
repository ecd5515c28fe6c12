/**
 * End to end, one real `baton start` process: once its fsyncs fail (the test-only hook), a write
 * that needs this node's own fsync is not acknowledged, and the process stops with exit code 1.
 * A one-node cluster makes every write depend on that fsync alone: no peer can make it durable.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { NemesisCluster } from "./nemesis-cluster.ts";
import { NodeProcess, waitUntil } from "./node-processes.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-fsync-failure-"));
let node: NodeProcess | null = null;
after(async () => {
  await node?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

async function execute(url: string, sql: string): Promise<{ status: number; body: string }> {
  try {
    const response = await fetch(`${url}/v1/execute`, {
      method: "POST",
      body: JSON.stringify({ statements: [sql], durability: "local", timeoutMs: 5_000 }),
      signal: AbortSignal.timeout(8_000),
    });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { status: 0, body: String(error) };
  }
}

test("a failed fsync stops the node with exit code 1 and the write is not acknowledged", {
  timeout: 90_000,
}, async (t) => {
  const [httpPort, raftPort] = [await NemesisCluster.freePort(), await NemesisCluster.freePort()];
  const spec = {
    id: "n1",
    index: 0,
    host: "127.0.0.1",
    httpPort,
    raftPort,
    namespace: null,
    dataDirectory: path.join(root, "data"),
    logPath: path.join(root, "n1.log"),
    fsyncControlPath: path.join(root, "fsync-fault"),
  };
  const started = performance.now();
  const nowUs = (): number => (performance.now() - started) * 1000;
  node = new NodeProcess(spec);
  node.start(`n1=127.0.0.1:${raftPort}/127.0.0.1:${httpPort}`, [], nowUs);
  const leader = await waitUntil(30_000, async () =>
    (await node!.status())?.role === "leader" ? true : null,
  );
  assert.ok(leader, `the node leads: ${node.logTail(20)}`);
  const created = await execute(node.url, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
  assert.equal(created.status, 200, created.body);

  node.expectExit("failed fsync");
  node.setFsyncFault("fail");
  const write = await execute(node.url, "INSERT INTO t(id) VALUES (1)");
  assert.notEqual(write.status, 200, `a write whose fsync failed was acknowledged: ${write.body}`);
  t.diagnostic(`the write was answered ${write.status} ${write.body.slice(0, 200)}`);
  const exit = await node.waitExit(20_000);
  assert.ok(exit !== null, "the node stopped");
  assert.equal(exit.code, 1, `exit ${exit.code} ${exit.signal}`);
  assert.match(node.logTail(50), /EIO|WAL_IO/);
});
