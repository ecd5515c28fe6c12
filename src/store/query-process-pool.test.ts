/**
 * The query process pool answers exactly as the in-process executor does, and no query can outlast
 * its bound: a runaway statement's process is killed and replaced; the queue is bounded; a process
 * that dies answers its query QUERY_ABORTED; closing leaves no process behind.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { describe, type TestContext, test } from "node:test";
import { BatonError, isBatonError } from "../lib/errors.ts";
import { queryValueBytesMax } from "./connections.ts";
import { InProcessQueryExecutor, type QueryRunOptions } from "./query-executor.ts";
import { type QueryPoolOptions, QueryProcessPool } from "./query-process-pool.ts";
import type { Store } from "./store.ts";
import { batch, openStore, sql, TestLog, temporaryDirectory } from "./test-support.ts";
import type { Statement } from "./types.ts";

const runaway = sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c");

type Logged = { level: string; event: string; fields: Record<string, unknown> };

async function startPool(
  t: TestContext,
  store: Store,
  options: Partial<QueryPoolOptions> = {},
): Promise<{ pool: QueryProcessPool; logged: Logged[] }> {
  const logged: Logged[] = [];
  const pool = await QueryProcessPool.start({
    path: store.path,
    limits: store.queryLimits,
    log: (level, event, fields) => logged.push({ level, event, fields }),
    ...options,
  });
  t.after(() => pool.close());
  return { pool, logged };
}

function storeWithRows(t: TestContext): Store {
  const log = new TestLog(openStore(t, temporaryDirectory(t), "baton.db"));
  log.write(
    batch(
      "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL, big INTEGER, data BLOB)",
      "INSERT INTO item VALUES (1, 'one', 1.5, 9007199254740993, x'00ff10'), (2, NULL, -0.25, -3, NULL)",
      "INSERT INTO item(id, name) WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 50) SELECT v + 10, 'n' || v FROM s",
    ),
  );
  return log.leader;
}

/** What a run of the executor gave: its results, or its error as code, message and details. */
async function outcome(
  run: (statements: Statement[], options: QueryRunOptions) => Promise<unknown>,
  statements: Statement[],
  options: QueryRunOptions,
): Promise<unknown> {
  try {
    return { results: await run(statements, options) };
  } catch (error) {
    assert.ok(error instanceof BatonError, `an operating error, not ${String(error)}`);
    return { code: error.code, message: error.message, details: error.details };
  }
}

const sample: { name: string; statements: Statement[]; options?: Partial<QueryRunOptions> }[] = [
  { name: "rows of every type", statements: batch("SELECT * FROM item ORDER BY id") },
  {
    name: "two statements",
    statements: batch("SELECT count(*) FROM item", "SELECT max(big), min(big) FROM item"),
  },
  {
    name: "positional parameters",
    statements: [sql("SELECT name FROM item WHERE id = ? OR id = ?", [1, 12])],
  },
  {
    name: "named parameters",
    statements: [sql("SELECT :b AS b, $n AS n", { b: new Uint8Array([1, 2]), n: 2n ** 60n })],
  },
  { name: "introspection pragma", statements: batch("PRAGMA table_info(item)") },
  { name: "SQL error", statements: batch("SELECT nope FROM item") },
  { name: "a write", statements: batch("DELETE FROM item") },
  { name: "forbidden pragma", statements: batch("PRAGMA user_version = 3") },
  { name: "attach", statements: batch("ATTACH 'x.db' AS x") },
  { name: "two statements in one", statements: batch("SELECT 1; SELECT 2") },
  { name: "a bad parameter", statements: [sql("SELECT ?", [{ nested: true }] as never)] },
  { name: "rows past resultRowsMax", statements: batch("SELECT * FROM item"), options: { resultRowsMax: 5 } },
  {
    name: "bytes past resultBytesMax",
    statements: batch("SELECT * FROM item"),
    options: { resultBytesMax: 100 },
  },
  {
    name: "a value past queryValueBytesMax",
    statements: batch(`SELECT zeroblob(${queryValueBytesMax + 1})`),
  },
];

describe("query process pool", () => {
  test("answers a sample of queries and errors exactly as the in-process executor", async (t) => {
    const store = storeWithRows(t);
    const { pool } = await startPool(t, store);
    const inProcess = new InProcessQueryExecutor(store);
    for (const { name, statements, options } of sample) {
      const runOptions = { timeoutMs: 5_000, ...options };
      const expected = await outcome((s, o) => inProcess.query(s, o), statements, runOptions);
      const actual = await outcome((s, o) => pool.query(s, o), statements, runOptions);
      assert.deepStrictEqual(actual, expected, name);
    }
    const codes = [];
    for (const { statements, options } of sample.slice(-3))
      codes.push(
        await pool.query(statements, { timeoutMs: 5_000, ...options }).catch((e: BatonError) => e.code),
      );
    assert.deepEqual(codes, ["RESULT_TOO_LARGE", "RESULT_TOO_LARGE", "VALUE_TOO_LARGE"]);
  });

  test("a query reads at least the state committed before it was sent", async (t) => {
    const log = new TestLog(openStore(t, temporaryDirectory(t), "baton.db"));
    log.write(batch("CREATE TABLE n(id INTEGER PRIMARY KEY)"));
    const { pool } = await startPool(t, log.leader);
    for (let i = 1; i <= 20; i++) {
      log.write([sql("INSERT INTO n VALUES (?)", [i])]);
      const result = await pool.query(batch("SELECT count(*) FROM n"), { timeoutMs: 5_000 });
      assert.deepEqual(result.results[0]?.rows, [[i]]);
      assert.equal(result.appliedIndex, log.leader.appliedIndex);
    }
  });

  test("after a snapshot restore replaced the database, queries read the restored file", async (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "baton.db"));
    log.write(batch("CREATE TABLE n(id INTEGER PRIMARY KEY)", "INSERT INTO n VALUES (1)"));
    const snapshot = await log.leader.snapshot(path.join(directory, "snap"));
    log.write(batch("INSERT INTO n VALUES (2)"));
    const { pool } = await startPool(t, log.leader, { queryProcessesMax: 1 });
    const count = async () =>
      (await pool.query(batch("SELECT count(*) FROM n"), { timeoutMs: 5_000 })).results[0]?.rows;
    assert.deepEqual(await count(), [[2]]);
    await log.leader.restoreSnapshot(snapshot.path);
    assert.deepEqual(await count(), [[1]], "the restored state, not the replaced file");
    assert.deepEqual(log.leader.query(batch("SELECT count(*) FROM n")).results[0]?.rows, [[1]]);
  });

  test("a runaway query is stopped at its bound: QUERY_TIMEOUT, its process killed and replaced", async (t) => {
    const store = storeWithRows(t);
    const { pool, logged } = await startPool(t, store, { queryProcessesMax: 1, queryMsMax: 400 });
    const [pid] = pool.pids;
    const startedMs = performance.now();
    const error = await pool.query([runaway], { timeoutMs: 10_000 }).catch((e: unknown) => e);
    const tookMs = performance.now() - startedMs;
    assert.ok(isBatonError(error, "QUERY_TIMEOUT"), String(error));
    assert.deepEqual(error.details, { timeoutMs: 400 }, "the node's queryMsMax caps the request's timeoutMs");
    // Well before the request's own 10 s, with room for a busy machine: the answer comes after the
    // replacement process is spawned, while the runaway still holds a core.
    assert.ok(tookMs >= 400 && tookMs < 2_400, `answered after ${tookMs} ms`);
    await waitUntil("the replacement is ready", 10_000, () => pool.readyProcesses === 1);
    const result = await pool.query(batch("SELECT count(*) FROM item"), { timeoutMs: 5_000 });
    assert.deepEqual(result.results[0]?.rows, [[52]], "the replacement serves");
    assert.equal(pool.pids.length, 1);
    assert.notEqual(pool.pids[0], pid);
    assert.equal(isRunning(pid!), false, "the runaway's process is gone");
    assert.ok(logged.some((l) => l.event === "query.timeout" && l.fields.pid === pid));
  });

  test("a process that dies while it runs a query answers QUERY_ABORTED and is replaced", async (t) => {
    const store = storeWithRows(t);
    const { pool, logged } = await startPool(t, store, { queryProcessesMax: 1 });
    const [pid] = pool.pids;
    const running = pool.query([runaway], { timeoutMs: 5_000 }).catch((e: unknown) => e);
    await delay(100);
    process.kill(pid!, "SIGKILL");
    const error = await running;
    assert.ok(isBatonError(error, "QUERY_ABORTED"), String(error));
    assert.ok(logged.some((l) => l.event === "query-process.exited" && l.fields.pid === pid));
    await waitUntil("the replacement is ready", 10_000, () => pool.readyProcesses === 1);
    const result = await pool.query(batch("SELECT 1"), { timeoutMs: 5_000 });
    assert.deepEqual(result.results[0]?.rows, [[1]]);
  });

  test("beyond queuedQueriesMax waiting queries, and past queueWaitMsMax, a query is OVERLOADED", async (t) => {
    const store = storeWithRows(t);
    const bounds = { queryProcessesMax: 1, queuedQueriesMax: 2, queueWaitMsMax: 300 };
    const { pool } = await startPool(t, store, bounds);
    const busy = pool.query([runaway], { timeoutMs: 2_000 }).catch((e: unknown) => e);
    const waiting = [1, 2].map(() =>
      pool.query(batch("SELECT 1"), { timeoutMs: 5_000 }).catch((e: unknown) => e),
    );
    await assert.rejects(pool.query(batch("SELECT 1"), { timeoutMs: 5_000 }), (e) =>
      isBatonError(e, "OVERLOADED"),
    );
    for (const error of await Promise.all(waiting))
      assert.ok(isBatonError(error, "OVERLOADED"), String(error));
    assert.equal(pool.queueLength, 0);
    assert.ok(isBatonError(await busy, "QUERY_TIMEOUT"));
  });

  test("close kills every process, running or idle, and answers what was in flight SHUTTING_DOWN", async (t) => {
    const store = storeWithRows(t);
    const { pool } = await startPool(t, store, { queryProcessesMax: 2 });
    const pids = pool.pids;
    assert.equal(pids.length, 2);
    assert.ok(pids.every(isRunning));
    const running = pool.query([runaway], { timeoutMs: 5_000 }).catch((e: unknown) => e);
    await delay(100);
    await pool.close();
    assert.ok(isBatonError(await running, "SHUTTING_DOWN"));
    assert.deepEqual(pool.pids, []);
    assert.deepEqual(pids.filter(isRunning), [], "no process is left");
    await assert.rejects(pool.query(batch("SELECT 1"), { timeoutMs: 1_000 }), (e) =>
      isBatonError(e, "SHUTTING_DOWN"),
    );
  });

  test("query processes do not outlive a node killed with SIGKILL, even one running a runaway query", async (t) => {
    const store = storeWithRows(t);
    const poolUrl = new URL("./query-process-pool.ts", import.meta.url).href;
    const script = `
      import { QueryProcessPool } from ${JSON.stringify(poolUrl)};
      const pool = await QueryProcessPool.start({
        path: ${JSON.stringify(store.path)}, limits: ${JSON.stringify(store.queryLimits)}, log: () => {},
      });
      pool.query([{ sql: ${JSON.stringify(runaway.sql)} }], { timeoutMs: 60_000 }).catch(() => {});
      setTimeout(() => console.log(JSON.stringify(pool.pids)), 200);
    `;
    const node = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    t.after(() => node.kill("SIGKILL"));
    const line = await new Promise<string>((resolve, reject) => {
      node.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString("utf8")));
      node.once("exit", () => reject(new Error("the node exited before it reported its query processes")));
    });
    const pids = JSON.parse(line) as number[];
    assert.equal(pids.length, 2);
    assert.ok(pids.every(isRunning));
    node.kill("SIGKILL");
    await waitUntil("the query processes exit", 10_000, () => !pids.some(isRunning));
  });

  test("a pool whose processes are not ready within startMsMax fails to start with its own code, and leaves none", async (t) => {
    const store = storeWithRows(t);
    const started: number[] = [];
    const error = await QueryProcessPool.start({
      path: store.path,
      limits: store.queryLimits,
      log: () => {},
      queryProcessesMax: 2,
      startMsMax: 1,
    }).then(
      (pool) => {
        started.push(...pool.pids);
        return pool.close().then(() => null);
      },
      (e: unknown) => e,
    );
    assert.deepEqual(started, [], "two processes cannot load and open the database within 1 ms");
    assert.ok(isBatonError(error, "PROCESS_START_FAILED"), String(error));
    assert.match((error as Error).message, /not ready within 1 ms/);
  });

  test("a pool whose processes cannot open the database fails to start, with their stderr in the log", async (t) => {
    const logged: Logged[] = [];
    const missing = path.join(temporaryDirectory(t), "missing", "baton.db");
    await assert.rejects(
      QueryProcessPool.start({
        path: missing,
        limits: { statementsMax: 10, sqlBytesMax: 1000 },
        log: (level, event, fields) => logged.push({ level, event, fields }),
        queryProcessesMax: 1,
      }),
      (e) => isBatonError(e, "PROCESS_START_FAILED"),
    );
    assert.ok(
      logged.some((l) => l.event === "query-process.stderr" && String(l.fields.line).includes("cannot open")),
      JSON.stringify(logged),
    );
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, timeoutMs: number, done: () => boolean): Promise<void> {
  const deadlineMs = performance.now() + timeoutMs;
  while (!done()) {
    assert.ok(performance.now() < deadlineMs, `${what} within ${timeoutMs} ms`);
    await delay(20);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
