import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import { isBatonError } from "../lib/errors.ts";
import { OrphanQuarantine } from "../store/orphan-quarantine.ts";
import { Store } from "../store/store.ts";
import { type BatchSandbox, WriteSandbox } from "../store/write-sandbox.ts";
import { InMemoryNetwork, InMemoryTransport } from "../transport/in-memory-transport.ts";
import { nodeId } from "../types/ids.ts";
import { Wal } from "../wal/wal.ts";
import { BatonNode } from "./baton-node.ts";
import { IndexWaiters } from "./index-waiters.ts";
import { type NodeConfig, nodeDefaults } from "./node-config.ts";
import { quarantineSink } from "./orphans.ts";
import { systemClock, systemIo, systemTimers } from "./runtime.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-node-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function linearizable(sql: string): NormalizedQuery {
  return {
    statements: [{ sql, params: [] }],
    consistency: "linearizable",
    minIndex: null,
    maxLagMs: null,
    timeoutMs: 5_000,
  };
}

function write(sql: string): NormalizedExecute {
  return {
    statements: [{ sql, params: [] }],
    durability: null,
    requestId: null,
    expectedTerm: null,
    timeoutMs: 5_000,
  };
}

/** A single-voter node on the in-memory transport whose log fsync can be made to fail. */
async function singleNode(
  name: string,
  overrides: Partial<NodeConfig> = {},
  writeSandbox: (store: Store) => Promise<BatchSandbox | undefined> = async () => undefined,
): Promise<{ node: BatonNode; store: Store; wal: Wal; failSync: () => void; fatal: Error[] }> {
  const directory = path.join(root, name);
  let failing = false;
  const { wal, recovered } = Wal.open(path.join(directory, "log"), {
    syncFile: (fd) =>
      failing
        ? Promise.reject(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }))
        : new Promise((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()))),
  });
  const store = Store.open({ path: path.join(directory, "baton.db") });
  const sandbox = await writeSandbox(store);
  const orphans = OrphanQuarantine.open(path.join(directory, "review", "orphans.db"));
  after(() => orphans.close());
  const fatal: Error[] = [];
  const network = new InMemoryNetwork();
  const node = new BatonNode(
    {
      ...nodeDefaults,
      id: nodeId("n1"),
      voters: [nodeId("n1")],
      httpAddress: "127.0.0.1:0",
      peerHttp: new Map(),
      heartbeatMs: 10,
      missedHeartbeats: 3,
      durability: "majority",
      ...overrides,
    },
    {
      clock: systemClock,
      timers: systemTimers,
      randomSeed: 7,
      log: wal,
      recovered,
      store,
      ...(sandbox === undefined ? {} : { writeSandbox: sandbox }),
      review: quarantineSink(orphans),
      orphans,
      snapshotDirectory: path.join(directory, "snapshots"),
      io: systemIo,
      logger: () => {},
      onFatal: (error) => fatal.push(error),
      transport: (handlers) =>
        new InMemoryTransport({ network, selfId: nodeId("n1"), peers: [], ...handlers }),
    },
  );
  await node.start();
  const deadline = Date.now() + 5_000;
  while (node.loop.core.summary().role !== "leader" && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(node.loop.core.summary().role, "leader", "a single voter elects itself");
  return { node, store, wal, failSync: () => (failing = true), fatal };
}

test("a failing fsync stops the node: the write in flight is not acknowledged and later writes are refused", async () => {
  const { node, store, failSync, fatal } = await singleNode("fsync");
  await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
  const applied = store.appliedIndex;
  failSync();
  await assert.rejects(node.execute(write("INSERT INTO t VALUES (1)")), (error: unknown) =>
    isBatonError(error, "SHUTTING_DOWN"),
  );
  assert.equal(fatal.length, 1, "onFatal was called once");
  assert.ok(isBatonError(fatal[0], "WAL_IO"));
  await assert.rejects(node.execute(write("INSERT INTO t VALUES (2)")), (error: unknown) =>
    isBatonError(error, "SHUTTING_DOWN"),
  );
  assert.equal(store.appliedIndex, applied, "nothing past the failure was applied");
  assert.equal(node.readiness().ready, false, "a stopped node is not ready");
  await node.stop();
  store.close();
});

test("a single node executes, answers a retried requestId from the request log, and reads linearizably", async () => {
  const { node, store, wal } = await singleNode("basic");
  await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"));
  const first = await node.execute({ ...write("INSERT INTO t(v) VALUES ('a')"), requestId: "r1" });
  const retried = await node.execute({ ...write("INSERT INTO t(v) VALUES ('a')"), requestId: "r1" });
  assert.deepEqual(retried, first);
  const read = await node.query(linearizable("SELECT count(*) FROM t"));
  assert.deepEqual(read.results[0]?.rows, [[1]]);
  assert.ok(read.position.index >= first.position.index);
  await node.stop();
  await wal.close();
  store.close();
});

test("a bug on a request path stops the node instead of answering an error and carrying on", async () => {
  const { node, store, wal, fatal } = await singleNode("bug");
  await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
  // A bug in a component the write path calls: it throws something that is not an operating error.
  const execute = store.execute;
  store.execute = () => {
    throw new TypeError("cannot read properties of undefined");
  };
  await assert.rejects(node.execute(write("INSERT INTO t VALUES (1)")), (error: unknown) =>
    isBatonError(error, "INTERNAL"),
  );
  store.execute = execute;
  assert.equal(fatal.length, 1, "the fatal path ran");
  assert.equal(fatal[0]?.name, "TypeError");
  await assert.rejects(node.execute(write("INSERT INTO t VALUES (2)")), (error: unknown) =>
    isBatonError(error, "SHUTTING_DOWN"),
  );
  await assert.rejects(node.query(linearizable("SELECT 1")), (error: unknown) =>
    isBatonError(error, "SHUTTING_DOWN"),
  );
  await node.stop();
  await wal.close();
  store.close();
});

test("fencing: answers carry the term and node; a write fenced on another term is refused and applies nothing", async () => {
  const { node, store, wal } = await singleNode("fencing");
  const created = await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
  assert.equal(created.term, created.position.term);
  assert.equal(created.node, "n1");
  const term = created.term;
  const fenced = await node.execute({ ...write("INSERT INTO t VALUES (1)"), expectedTerm: term });
  assert.equal(fenced.term, term);
  const applied = store.appliedIndex;
  await assert.rejects(
    node.execute({ ...write("INSERT INTO t VALUES (2)"), expectedTerm: term + 1 }),
    (error: unknown) => isBatonError(error, "TERM_CHANGED") && error.details.term === term,
  );
  assert.equal(store.appliedIndex, applied, "nothing was proposed");
  const read = await node.query(linearizable("SELECT count(*) FROM t"));
  assert.deepEqual([read.term, read.node, read.results[0]?.rows], [term, "n1", [[1]]]);
  await node.stop();
  await wal.close();
  store.close();
});

test("admission: past readsInFlightMax a read is refused OVERLOADED at once, and the node keeps serving", async () => {
  const { node, store, wal } = await singleNode("admission", { readsInFlightMax: 1 });
  await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
  const read = () => node.query(linearizable("SELECT 1"));
  const first = read();
  await assert.rejects(read(), (error: unknown) => isBatonError(error, "OVERLOADED"));
  assert.deepEqual((await first).results[0]?.rows, [[1]]);
  assert.deepEqual((await read()).results[0]?.rows, [[1]], "admitted again once the first finished");
  assert.equal(node.admission.refused.read, 1);
  await node.stop();
  await wal.close();
  store.close();
});

test("index waiters: resolve on advance, time out with TIMEOUT, refuse beyond their bound", async () => {
  const waiters = new IndexWaiters("applied index", 5, systemTimers, 2);
  await waiters.wait(5, 10);
  const reached = waiters.wait(7, 5_000);
  const timedOut = waiters.wait(100, 20);
  await assert.rejects(waiters.wait(8, 5_000), (error: unknown) => isBatonError(error, "OVERLOADED"));
  waiters.advance(7);
  await reached;
  await assert.rejects(timedOut, (error: unknown) => isBatonError(error, "TIMEOUT"));
  assert.equal(waiters.highestTarget(), null);
});

test("a write sandbox: batches that are not provably short run there, a runaway is stopped while the loop runs on", async () => {
  let sandbox: WriteSandbox | null = null;
  const { node, store, wal } = await singleNode("sandbox", {}, async (opened) => {
    sandbox = await WriteSandbox.start({ path: opened.path, limits: {}, log: () => {}, executeMsMax: 1_500 });
    return sandbox;
  });
  after(() => sandbox?.close());
  // DDL, several VALUES rows and RETURNING go to the sandbox; single-row inserts by key run here.
  await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"));
  await node.execute(write("INSERT INTO t(v) VALUES ('a')"));
  const many = { ...write("INSERT INTO t(v) VALUES ('b'), ('c') RETURNING id"), requestId: "many" };
  const first = await node.execute(many);
  assert.deepEqual(first.results[0]?.rows, [[2], [3]]);
  const inProcess = await Promise.all(
    [1, 2, 3].map((i) => node.execute(write(`INSERT INTO t(v) VALUES ('p${i}')`))),
  );
  assert.equal(new Set(inProcess.map((answer) => answer.position.index)).size, 3);
  assert.deepEqual(await node.execute(many), first, "a retried sandboxed write answers its first response");
  const runaway =
    "INSERT INTO t(v) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)";
  const applied = store.appliedIndex;
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 20);
  const started = Date.now();
  await assert.rejects(node.execute({ ...write(runaway), timeoutMs: 10_000 }), (error: unknown) =>
    isBatonError(error, "QUERY_TIMEOUT"),
  );
  clearInterval(ticker);
  const tookMs = Date.now() - started;
  assert.ok(tookMs >= 1_500, `answered after ${tookMs} ms, before the node's bound`);
  assert.ok(
    ticks >= 15,
    `the event loop ran on while the batch ran (${ticks} ticks of 20 ms in ${tookMs} ms)`,
  );
  assert.equal(store.appliedIndex, applied, "nothing was proposed");
  await node.execute(write("INSERT INTO t(v) VALUES ('after')"));
  const read = await node.query(linearizable("SELECT count(*) FROM t"));
  assert.deepEqual(read.results[0]?.rows, [[7]]);
  await node.stop();
  await wal.close();
  store.close();
});
