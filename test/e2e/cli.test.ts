/** The operator commands against a real cluster: `baton status` and `baton shell`. */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { after, before, describe, type TestContext, test } from "node:test";
import { nodeProcessFlags } from "../../src/cli/node-flags.ts";
import { v8WorkerNiceStep } from "../../src/cli/v8-worker-priority.ts";
import { Cluster, runBaton } from "./cluster-harness.ts";

describe("operator commands", { timeout: 60_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("baton shell runs writes and reads through the leader and knows .tables", async () => {
    const follower = (
      await Promise.all(cluster.nodes.map(async (n) => ({ n, s: await cluster.status(n) })))
    ).find((x) => x.s.role === "follower")!.n;
    const script = [
      "CREATE TABLE fruit(id INTEGER PRIMARY KEY, name TEXT);",
      "INSERT INTO fruit(name)",
      "  VALUES ('apple'), ('pear');",
      "SELECT name FROM fruit ORDER BY id;",
      ".tables",
      "SELEC nonsense;",
      ".quit",
      "",
    ].join("\n");
    const { code, output } = await runBaton(["shell", "--url", follower.url], script);
    assert.equal(code, 0, output);
    assert.match(output, /ok: 2 row\(s\) affected/);
    assert.match(output, /apple[\s\S]*pear[\s\S]*\(2 rows\)/);
    assert.match(output, /fruit/);
    assert.match(output, /error SQL_ERROR/);
  });

  test("baton status prints one row per node with the leader's view of lag", async () => {
    const { code, output } = await runBaton(["status", "--url", cluster.nodes[0]!.url], "");
    assert.equal(code, 0, output);
    const rows = output.trim().split("\n").slice(1);
    assert.equal(rows.length, 3, output);
    assert.equal(rows.filter((r) => /\bleader\b/.test(r)).length, 1, output);
    assert.equal(rows.filter((r) => /\bfollower\b/.test(r)).length, 2, output);
  });

  /** The first node's pid when `/proc/<pid>/<entry>` can be read here; otherwise skips `t`. */
  const firstNodeProc = (t: TestContext, entry: string): number | null => {
    const pid = cluster.nodes[0]!.process?.pid;
    assert.ok(pid !== undefined);
    if (fs.existsSync(`/proc/${pid}/${entry}`)) return pid;
    t.skip(`no /proc/<pid>/${entry} here to read`);
    return null;
  };

  test("a node process runs with Node's flags and glibc's arena bound for a long-running node, under the pid it was started with", (t) => {
    const pid = firstNodeProc(t, "cmdline");
    if (pid === null) return;
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    for (const flag of nodeProcessFlags) assert.ok(args.includes(flag), `${flag} in ${args.join(" ")}`);
    assert.ok(args.includes("start"), args.join(" "));
    // Unless this test's environment sets glibc's arena bound, the node set it when it replaced itself.
    const expected = `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? "2"}`;
    const env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    assert.ok(env.includes(expected), `the node process runs with ${expected}`);
  });

  test("a node process runs V8's worker threads (compiles, concurrent GC) below its event loop", (t) => {
    const pid = firstNodeProc(t, "task");
    if (pid === null) return;
    const threads = fs.readdirSync(`/proc/${pid}/task`).map((tid) => ({
      name: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim(),
      nice: os.getPriority(Number(tid)),
    }));
    const main = threads.find((thread) => thread.name === "node-MainThread");
    assert.ok(main !== undefined, JSON.stringify(threads));
    const workers = threads.filter((thread) => thread.name.endsWith("V8Worker"));
    assert.ok(workers.length > 0, JSON.stringify(threads));
    for (const worker of workers) assert.equal(worker.nice, Math.min(19, main.nice + v8WorkerNiceStep));
  });

  test("a bad flag exits 2 with a message", async () => {
    const { code, output } = await runBaton(["status", "--nope"], "");
    assert.equal(code, 2);
    assert.match(output, /Unknown option '--nope'/);
  });
});
