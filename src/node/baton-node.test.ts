import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { crc32 } from "node:zlib";
import { requestLimits } from "../api/request-limits.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import { isBatonError } from "../lib/errors.ts";
import { OrphanQuarantine } from "../store/orphan-quarantine.ts";
import { InProcessQueryExecutor, type QueryExecutor } from "../store/query-executor.ts";
import { requestWindowMsDefault } from "../store/request-log.ts";
import { sizedCallBytesMax } from "../store/sized-calls.ts";
import { Store } from "../store/store.ts";
import { type BatchSandbox, WriteSandbox } from "../store/write-sandbox.ts";
import { InMemoryNetwork, InMemoryTransport } from "../transport/in-memory-transport.ts";
import { logIndex, nodeId } from "../types/ids.ts";
import { defaultDurableWrite, defaultSyncFile } from "../wal/file-sync.ts";
import { Wal } from "../wal/wal.ts";
import { BatonNode } from "./baton-node.ts";
import { IndexWaiters } from "./index-waiters.ts";
import { type NodeConfig, nodeDefaults } from "./node-config.ts";
import { quarantineSink } from "./orphans.ts";
import { type Clock, systemClock, systemIo, systemTimers } from "./runtime.ts";

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

/**
 * The store once it applied `index`: a leader answers a committed write before it commits the write
 * into its own database (at the end of that turn), so a test that reads the store directly waits.
 */
async function appliedThrough(store: Store, index: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  while (store.appliedIndex < index && Date.now() < deadline)
    await new Promise((resolve) => setImmediate(resolve));
  assert.ok(store.appliedIndex >= index, `applied ${store.appliedIndex}, not through ${index}`);
  return store.appliedIndex;
}

/** A single-voter node on the in-memory transport whose log fsync can be made to fail. */
async function singleNode(
  name: string,
  overrides: Partial<NodeConfig> = {},
  setup: {
    prepare?: (directory: string) => void;
    expectLeader?: boolean;
    clock?: Clock;
    writeSandbox?: (store: Store) => Promise<BatchSandbox | undefined>;
    queryExecutor?: QueryExecutor;
  } = {},
): Promise<{ node: BatonNode; store: Store; wal: Wal; failSync: () => void; fatal: Error[] }> {
  const directory = path.join(root, name);
  fs.mkdirSync(directory, { recursive: true });
  setup.prepare?.(directory);
  let failing = false;
  const { wal, recovered } = Wal.open(path.join(directory, "log"), {
    // A failing disk: the appended records' durable write (an O_DSYNC write) and any fsync fail.
    durableWrite: (fd, parts, position) =>
      failing
        ? Promise.reject(Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" }))
        : defaultDurableWrite(fd, parts, position),
    syncFile: (fd) =>
      failing
        ? Promise.reject(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }))
        : defaultSyncFile(fd),
  });
  const store = Store.open({ path: path.join(directory, "baton.db") });
  const sandbox = await (setup.writeSandbox ?? (async () => undefined))(store);
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
      clock: setup.clock ?? systemClock,
      timers: systemTimers,
      randomSeed: 7,
      log: wal,
      recovered,
      store,
      ...(sandbox === undefined ? {} : { writeSandbox: sandbox }),
      ...(setup.queryExecutor === undefined ? {} : { queryExecutor: setup.queryExecutor }),
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
  if (setup.expectLeader === false) return { node, store, wal, failSync: () => (failing = true), fatal };
  const deadline = Date.now() + 5_000;
  while (node.loop.core.summary().role !== "leader" && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(node.loop.core.summary().role, "leader", "a single voter elects itself");
  return { node, store, wal, failSync: () => (failing = true), fatal };
}

test("a failing fsync stops the node: the write in flight is not acknowledged and later writes are refused", async () => {
  const { node, store, failSync, fatal } = await singleNode("fsync");
  const created = await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY)"));
  const applied = await appliedThrough(store, created.position.index);
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
  const execute = store.executeGroup;
  store.executeGroup = () => {
    throw new TypeError("cannot read properties of undefined");
  };
  await assert.rejects(node.execute(write("INSERT INTO t VALUES (1)")), (error: unknown) =>
    isBatonError(error, "INTERNAL"),
  );
  store.executeGroup = execute;
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

test("a retry is answered from the request log for the longest client call, and runs anew past the window", async () => {
  // The window's age is measured by the leader's clock; this one can be moved forward.
  let offsetMs = 0;
  const clock: Clock = {
    nowMs: () => systemClock.nowMs() + offsetMs,
    monotonicMs: () => systemClock.monotonicMs() + offsetMs,
  };
  const { node, store, wal } = await singleNode("request-window", {}, { clock });
  try {
    await node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"));
    const insert = { ...write("INSERT INTO t(v) VALUES ('a')"), requestId: "r1" };
    const first = await node.execute(insert);
    // A client call retries for at most timeoutMsMax; a remembering write at that time prunes.
    offsetMs += requestLimits.timeoutMsMax;
    await node.execute({ ...write("INSERT INTO t(v) VALUES ('b')"), requestId: "r2" });
    assert.deepEqual(await node.execute(insert), first, "a retry within the window gets the first answer");
    // Past the window's age, the next remembering write drops r1: its retry runs as a new write.
    offsetMs += requestWindowMsDefault;
    await node.execute({ ...write("INSERT INTO t(v) VALUES ('c')"), requestId: "r3" });
    const again = await node.execute(insert);
    assert.ok(again.position.index > first.position.index, "the forgotten request ran again");
    const rows = await node.query(linearizable("SELECT count(*) FROM t WHERE v = 'a'"));
    assert.deepEqual(rows.results[0]?.rows, [[2]]);
  } finally {
    await node.stop();
    await wal.close();
    store.close();
  }
});

test("entries recovered at start are held by the core alone: compacted, they can be freed", async () => {
  const first = await singleNode("recovered");
  await first.node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"));
  for (let i = 0; i < 20; i++)
    await first.node.execute(write(`INSERT INTO t(v) VALUES ('${"x".repeat(500)}')`));
  await first.node.stop();
  await first.wal.close();
  first.store.close();
  // Reopened: the log's entries come back through the runtime's recovered log.
  const { node, store, wal } = await singleNode("recovered");
  try {
    const core = node.loop.core;
    const index = logIndex(10);
    const entry = new WeakRef(core.entryAt(index)!);
    node.loop.compact(index, core.termAt(index)!);
    assert.equal(core.entryAt(index), undefined, "the core let the entry go");
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    // A WeakRef target stays alive until the end of the turn it was read in; collect after one.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(entry.deref(), undefined, "nothing else kept the recovered entry alive");
  } finally {
    await node.stop();
    await wal.close();
    store.close();
  }
});

test("a restarted node does not count the log its latest snapshot covers toward the next one", async () => {
  // The compaction trail (1,000 entries) keeps every entry here, so the log at restart holds more
  // than the byte threshold, nearly all of it covered by the snapshot.
  const policy = { snapshotLogBytes: 200_000, snapshotEntries: 10_000, compactionTrailEntries: 1_000 };
  const value = "x".repeat(10_000);
  fs.mkdirSync(path.join(root, "keeper-restart", "snapshots"), { recursive: true });
  const first = await singleNode("keeper-restart", policy);
  await first.node.execute(write("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"));
  for (let i = 0; i < 25 && first.node.snapshots.status().taken === 0; i++)
    await first.node.execute(write(`INSERT INTO t(v) VALUES ('${value}')`));
  const deadline = Date.now() + 10_000;
  while (first.node.snapshots.status().taken === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(first.node.snapshots.status().taken, 1, "the byte threshold took a snapshot");
  await first.node.execute(write("INSERT INTO t(v) VALUES ('after the snapshot')"));
  await first.node.stop();
  await first.wal.close();
  first.store.close();
  const { node, store, wal } = await singleNode("keeper-restart", policy);
  try {
    assert.ok(wal.lastIndex - wal.compactionPoint.index > 20, "the recovered log is above the threshold");
    await node.execute(write("INSERT INTO t(v) VALUES ('after the restart')"));
    await new Promise((resolve) => setTimeout(resolve, 300)); // Many ticks, each a chance to snapshot.
    assert.equal(node.snapshots.status().taken, 0, "no snapshot for a log the latest one covers");
  } finally {
    await node.stop();
    await wal.close();
    store.close();
  }
});

test("a node that finds its database marked damaged at start serves nothing, never campaigns, and with no peer to heal from says NO_INTACT_COPY and stops", async () => {
  const marker = JSON.stringify({
    index: 3,
    reason: "check",
    ownHash: "aa",
    majorityHash: "bb",
    agreeing: [],
    detectedAtMs: 0,
  });
  for (const [name, content] of [
    ["damaged-marker", null],
    ["damaged-marker-garbage", Buffer.from("not a damage record")],
  ] as const) {
    const { node, fatal } = await singleNode(
      name,
      { healWaitMsMax: 300 },
      {
        expectLeader: false,
        prepare: (directory) => {
          const file = path.join(directory, "baton.db.damaged");
          if (content === null) {
            // The format the node writes: a durable file (magic, length, CRC-32) holding JSON.
            const json = Buffer.from(marker);
            const header = Buffer.alloc(12);
            header.writeUInt32LE(0x4254_4e46, 0);
            header.writeUInt32LE(json.byteLength, 4);
            header.writeUInt32LE(crc32(json), 8);
            fs.writeFileSync(file, Buffer.concat([header, json]));
          } else fs.writeFileSync(file, content);
        },
      },
    );
    assert.equal(node.status().storage.damaged !== null, true, name);
    await assert.rejects(node.query({ ...linearizable("SELECT 1"), consistency: "any" }), (error: unknown) =>
      isBatonError(error, "STORE_DAMAGED"),
    );
    const deadline = Date.now() + 5_000;
    while (fatal.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(node.loop.core.summary().role, "follower", `${name}: a damaged single voter never leads`);
    assert.equal(fatal.length, 1, `${name}: it stopped`);
    assert.ok(isBatonError(fatal[0], "NO_INTACT_COPY"), String(fatal[0]));
    await node.stop();
  }
});

test("a write sandbox: batches that are not provably short run there, a runaway is stopped while the loop runs on", async () => {
  let sandbox: WriteSandbox | null = null;
  const { node, store, wal } = await singleNode(
    "sandbox",
    {},
    {
      writeSandbox: async (opened) => {
        sandbox = await WriteSandbox.start({
          path: opened.path,
          limits: {},
          log: () => {},
          executeMsMax: 1_500,
        });
        return sandbox;
      },
    },
  );
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
  // Batches that reach the gate in one turn share one entry.
  assert.equal(new Set(inProcess.map((answer) => answer.position.index)).size, 1);
  assert.deepEqual(
    inProcess.map((answer) => answer.results[0]?.lastInsertRowid),
    [4, 5, 6],
  );
  assert.deepEqual(await node.execute(many), first, "a retried sandboxed write answers its first response");
  const runaway =
    "INSERT INTO t(v) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)";
  const applied = await appliedThrough(store, Math.max(...inProcess.map((answer) => answer.position.index)));
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

test("a write whose randomblob/zeroblob size is a small literal runs in process; any other goes to the write sandbox", async () => {
  const sandboxed: string[] = [];
  let sandbox: WriteSandbox | null = null;
  const { node, store, wal } = await singleNode(
    "sized-calls",
    {},
    {
      writeSandbox: async (opened) => {
        const started = await WriteSandbox.start({ path: opened.path, limits: {}, log: () => {} });
        sandbox = started;
        // The sandbox is where a batch that is not provably short runs: count what reaches it.
        const counting: BatchSandbox = {
          run: (request, timeoutMs) => {
            sandboxed.push(request.statements.map((statement) => statement.sql).join("; "));
            return started.run(request, timeoutMs);
          },
          cancel: (reason) => started.cancel(reason),
          warm: () => started.warm(),
          rest: (reason) => started.rest(reason),
          close: () => started.close(),
        };
        return counting;
      },
    },
  );
  after(() => sandbox?.close());
  // A failed assertion must not leave the node running (its timers would keep the test alive).
  try {
    const ddl =
      "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(16)))), b BLOB, z BLOB DEFAULT (zeroblob(100)))";
    await node.execute(write(ddl));
    assert.deepEqual(sandboxed, [ddl], "DDL runs in the sandbox");
    const fast = [
      "INSERT INTO t(b) VALUES (randomblob(16))",
      "INSERT INTO t(b) VALUES (hex(randomblob(16))), (zeroblob(100))",
      `INSERT INTO t(id, b) VALUES ('fixed', randomblob(${sizedCallBytesMax}))`,
    ];
    for (const sql of fast) await node.execute(write(sql));
    assert.deepEqual(sandboxed, [ddl], "sizes that are small literals run in process");
    const fromParameter = "INSERT INTO t(b) VALUES (randomblob(?))";
    await node.execute({ ...write(fromParameter), statements: [{ sql: fromParameter, params: [16] }] });
    const pastBound = `INSERT INTO t(b) VALUES (zeroblob(${sizedCallBytesMax + 1}))`;
    await node.execute(write(pastBound));
    assert.deepEqual(sandboxed, [ddl, fromParameter, pastBound], "other sizes go to the sandbox");
    const read = await node.query(
      linearizable("SELECT count(*), count(DISTINCT id), sum(length(z)), max(length(b)) FROM t"),
    );
    assert.deepEqual(read.results[0]?.rows, [[6, 6, 600, sizedCallBytesMax + 1]]);
  } finally {
    await node.stop();
    await wal.close();
    store.close();
  }
});

test("provably short queries run on the node's own read connection; any other goes to the query executor", async () => {
  const sent: string[] = [];
  let store: Store | null = null;
  const executor: QueryExecutor = {
    query(statements, options) {
      sent.push(statements.map((statement) => statement.sql).join("; "));
      assert.ok(store !== null);
      return new InProcessQueryExecutor(store).query(statements, options);
    },
    close: () => Promise.resolve(),
  };
  const started = await singleNode("bounded-reads", {}, { queryExecutor: executor });
  store = started.store;
  const { node } = started;
  await node.execute(write("CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)"));
  await node.execute(write("INSERT INTO kv VALUES ('a', 'x'), ('b', 'y')"));
  for (const consistency of ["linearizable", "leader", "any"] as const) {
    const point = await node.query({ ...linearizable("SELECT v FROM kv WHERE k = 'b'"), consistency });
    assert.deepEqual(point.results[0]?.rows, [["y"]]);
    assert.equal(point.position.index, store.appliedIndex);
  }
  assert.deepEqual(sent, [], "point reads never reached the executor");
  const scan = await node.query(linearizable("SELECT count(*) FROM kv"));
  assert.deepEqual(scan.results[0]?.rows, [[2]]);
  assert.deepEqual(sent, ["SELECT count(*) FROM kv"]);
  await node.stop();
  store.close();
});
