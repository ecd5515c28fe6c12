/**
 * The write sandbox runs a batch on the node's own file exactly as the leader would and commits
 * nothing; a runaway batch is stopped at its bound (QUERY_TIMEOUT) and the file's write lock is
 * free by the time `run` settles; errors keep their codes; cancel and close stop the process.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, type TestContext, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { logIndex } from "../types/ids.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, sql, TestLog, temporaryDirectory } from "./test-support.ts";
import { WriteSandbox, type WriteSandboxOptions } from "./write-sandbox.ts";
import { inlineReplyBytesMax } from "./write-sandbox-protocol.ts";

/** Counts to a number no machine reaches: runs until it is stopped. */
const runaway = sql(
  "INSERT INTO item(name) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)",
);

/** What a stopped batch's answer may take beyond its bound on a shared, busy machine. */
const answerGraceMs = 2_000;

type Logged = { event: string; fields: Record<string, unknown> };

async function startSandbox(
  t: TestContext,
  store: Store,
  options: Partial<WriteSandboxOptions> = {},
): Promise<{ sandbox: WriteSandbox; logged: Logged[] }> {
  const logged: Logged[] = [];
  const sandbox = await WriteSandbox.start({
    path: store.path,
    limits: {},
    log: (_level, event, fields) => logged.push({ event, fields }),
    ...options,
  });
  t.after(() => sandbox.close());
  return { sandbox, logged };
}

function leaderWithRows(t: TestContext): TestLog {
  const log = new TestLog(openStore(t, temporaryDirectory(t), "baton.db"));
  log.write(batch("CREATE TABLE item(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)"));
  log.write(batch("INSERT INTO item(name) VALUES ('a'), ('b')"));
  return log;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The file's write lock is free: another connection takes it without waiting. */
function writeLockIsFree(path: string): boolean {
  const probe = new DatabaseSync(path, { timeout: 0 });
  try {
    probe.exec("BEGIN IMMEDIATE");
    probe.exec("ROLLBACK");
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

describe("the write sandbox", { timeout: 60_000 }, () => {
  test("runs a batch on the committed state as the leader would, and commits nothing", async (t) => {
    const log = leaderWithRows(t);
    const store = log.leader;
    const { sandbox } = await startSandbox(t, store);
    const index = log.nextIndex;
    const statements = [
      sql("INSERT INTO item(name) VALUES (?)", ["c"]),
      sql("UPDATE item SET name = upper(name) WHERE name <> 'a'"),
      sql("SELECT name FROM item ORDER BY id"),
    ];
    const ran = await sandbox.run(
      { appliedIndex: store.appliedIndex, index, statements, options: {} },
      5_000,
    );
    assert.deepEqual(ran.results.at(-1)?.rows, [["a"], ["B"], ["C"]]);
    assert.deepEqual(ran.counters, [{ name: "item", value: 3n }]);
    assert.equal(store.appliedIndex, index - 1, "nothing was committed");
    assert.deepEqual(rowsOf(store, "SELECT name FROM item ORDER BY id"), [["a"], ["b"]]);
    assert.ok(writeLockIsFree(store.path));
    // The leader takes the batch over and proposes the same changes.
    store.adoptBatch(index, ran);
    store.commitSpeculative(index);
    assert.deepEqual(rowsOf(store, "SELECT name FROM item ORDER BY id"), [["a"], ["B"], ["C"]]);
  });

  test("a large reply comes through a file that is removed, and stale reply files are removed at start", async (t) => {
    const log = leaderWithRows(t);
    const store = log.leader;
    const directory = path.dirname(store.path);
    fs.writeFileSync(path.join(directory, "write-sandbox-1-1.reply"), "left by a stopped node");
    const { sandbox, logged } = await startSandbox(t, store);
    assert.ok(logged.some((entry) => entry.event === "write-sandbox.stale-reply-removed"));
    const big = sql("INSERT INTO item(name) VALUES (hex(zeroblob(?)))", [inlineReplyBytesMax]);
    const request = {
      appliedIndex: store.appliedIndex,
      index: log.nextIndex,
      statements: [big],
      options: {},
    };
    const ran = await sandbox.run(request, 10_000);
    assert.ok(ran.payload.length > 2 * inlineReplyBytesMax, `a payload of ${ran.payload.length} bytes`);
    store.adoptBatch(request.index, ran);
    store.commitSpeculative(request.index);
    assert.deepEqual(rowsOf(store, "SELECT length(name) FROM item WHERE id = 3"), [
      [2 * inlineReplyBytesMax],
    ]);
    assert.deepEqual(
      fs.readdirSync(directory).filter((name) => name.endsWith(".reply")),
      [],
      "no reply file is left",
    );
  });

  test("a runaway batch answers QUERY_TIMEOUT at its bound, its process is replaced, the lock is free", async (t) => {
    const log = leaderWithRows(t);
    const store = log.leader;
    const { sandbox, logged } = await startSandbox(t, store, { executeMsMax: 800 });
    const firstPid = sandbox.pid;
    assert.ok(firstPid !== null, "a started sandbox has a process");
    const request = {
      appliedIndex: store.appliedIndex,
      index: log.nextIndex,
      statements: [runaway],
      options: {},
    };
    const started = performance.now();
    await assert.rejects(sandbox.run(request, 60_000), (error) => {
      assert.ok(isBatonError(error) && error.code === "QUERY_TIMEOUT", String(error));
      assert.equal(
        error.details.timeoutMs,
        800,
        `the node bound caps the timeoutMs: ${JSON.stringify(error.details)} ${error.message}`,
      );
      return true;
    });
    const answeredMs = performance.now() - started;
    assert.ok(answeredMs >= 800 && answeredMs < 800 + answerGraceMs, `answered after ${answeredMs} ms`);
    assert.equal(isAlive(firstPid), false, "the runaway's process is gone when run settles");
    assert.ok(writeLockIsFree(store.path), "the write lock is free when run settles");
    assert.ok(logged.some((entry) => entry.event === "write-sandbox.timeout"));
    // The replacement serves the next batch (it may still be starting: the wait counts in its bound).
    const next = await sandbox.run(
      { ...request, statements: batch("INSERT INTO item(name) VALUES ('d')") },
      10_000,
    );
    assert.equal(next.results[0]?.rowsAffected, 1);
    assert.notEqual(sandbox.pid, firstPid);
  });

  test("a failing batch keeps its error code, and a stale applied index is a bug", async (t) => {
    const log = leaderWithRows(t);
    const store = log.leader;
    const { sandbox } = await startSandbox(t, store);
    const base = { appliedIndex: store.appliedIndex, index: log.nextIndex, options: {} };
    const cases: [string, string][] = [
      ["INSERT INTO missing VALUES (1)", "SQL_ERROR"],
      ["ATTACH 'x.db' AS x", "FORBIDDEN_STATEMENT"],
      ["SELECT 1; SELECT 2", "BAD_REQUEST"],
    ];
    for (const [text, code] of cases) {
      await assert.rejects(sandbox.run({ ...base, statements: batch(text) }, 5_000), (error) => {
        assert.ok(isBatonError(error), String(error));
        assert.equal(error.code, code, text);
        return true;
      });
    }
    const rows = { ...base, statements: batch("SELECT * FROM item"), options: { resultRowsMax: 1 } };
    await assert.rejects(
      sandbox.run(rows, 5_000),
      (error) => isBatonError(error) && error.code === "RESULT_TOO_LARGE",
    );
    const stale = { ...base, appliedIndex: logIndex(base.appliedIndex - 1), statements: batch("SELECT 1") };
    await assert.rejects(
      sandbox.run(stale, 5_000),
      (error) => !isBatonError(error) && /applied index/.test(String(error)),
    );
  });

  test("rest stops the process and any batch in it; run warms it again", async (t) => {
    const log = leaderWithRows(t);
    const store = log.leader;
    const sandbox = WriteSandbox.create({ path: store.path, limits: {}, log: () => {} });
    t.after(() => sandbox.close());
    assert.equal(sandbox.pid, null, "a created sandbox rests");
    sandbox.warm();
    const request = { appliedIndex: store.appliedIndex, index: log.nextIndex, options: {} };
    await sandbox.run({ ...request, statements: batch("SELECT 1") }, 10_000); // Ready now.
    const running = sandbox.run({ ...request, statements: [runaway] }, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pid = sandbox.pid;
    assert.ok(pid !== null);
    sandbox.rest("leadership lost");
    await assert.rejects(running, (error) => isBatonError(error) && error.code === "QUERY_ABORTED");
    assert.equal(isAlive(pid), false, "a running batch's process is gone when run settles");
    assert.equal(sandbox.pid, null, "no process while resting");
    const ran = await sandbox.run(
      { ...request, statements: batch("INSERT INTO item(name) VALUES ('w')") },
      10_000,
    );
    assert.equal(ran.results[0]?.rowsAffected, 1, "run warmed it again");
  });

  test("cancel stops a running batch (QUERY_ABORTED) and close leaves no process", async (t) => {
    const log = leaderWithRows(t);
    const store = log.leader;
    const { sandbox } = await startSandbox(t, store);
    const running = sandbox.run(
      { appliedIndex: store.appliedIndex, index: log.nextIndex, statements: [runaway], options: {} },
      30_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pid = sandbox.pid;
    assert.ok(pid !== null);
    sandbox.cancel("leadership lost");
    await assert.rejects(running, (error) => isBatonError(error) && error.code === "QUERY_ABORTED");
    assert.equal(isAlive(pid), false);
    assert.ok(writeLockIsFree(store.path));
    const replacement = sandbox.pid;
    assert.ok(replacement !== null, "a warm sandbox replaces a stopped process");
    await sandbox.close();
    assert.equal(isAlive(replacement), false);
    await assert.rejects(
      sandbox.run(
        { appliedIndex: store.appliedIndex, index: log.nextIndex, statements: [], options: {} },
        1_000,
      ),
      (error) => isBatonError(error) && error.code === "SHUTTING_DOWN",
    );
  });
});
