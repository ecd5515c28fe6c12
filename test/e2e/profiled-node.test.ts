/**
 * Node processes started under Node's CPU profiler run and write their profiles when stopped. A node
 * replaces itself at start to add its Node flags (`src/cli/node-flags.ts`); under `--cpu-prof` the
 * profiler's timer outlived that replacement, and its SIGPROF often killed the new process before
 * V8 had a handler for it, so the benchmarks' profiled clusters failed to start. Three processes at
 * a short sampling interval make that failure all but certain when the replacement happens.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { freePort, waitFor } from "./cluster-harness.ts";

const batonBin = path.resolve(import.meta.dirname, "../../bin/baton");
const processes = 3;
const startWaitMs = 20_000;
/** Three processes sampling every 20 µs write their profiles on a busy machine's two cores. */
const stopWaitMs = 30_000;

type Exit = { code: number | null; signal: NodeJS.Signals | null };

async function startProfiled(root: string, name: string) {
  const [http, raft] = [await freePort(), await freePort()];
  const profiles = path.join(root, name, "profiles");
  const child = spawn(
    process.execPath,
    ["--cpu-prof", "--cpu-prof-interval=20", `--cpu-prof-dir=${profiles}`, batonBin, "start", "--id", "n1"]
      .concat(["--data", path.join(root, name, "data"), "--http", `127.0.0.1:${http}`])
      .concat(["--raft", `127.0.0.1:${raft}`, "--cluster", `n1=127.0.0.1:${raft}/127.0.0.1:${http}`]),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const node = {
    child,
    http,
    profiles,
    output: "",
    exit: null as Exit | null,
    exited: null as unknown as Promise<Exit>,
  };
  child.stdout.on("data", (chunk: Buffer) => (node.output += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (node.output += chunk.toString("utf8")));
  node.exited = new Promise<Exit>((resolve) =>
    child.once("exit", (code, signal) => {
      node.exit = { code, signal };
      resolve(node.exit);
    }),
  );
  return node;
}

test("nodes started with --cpu-prof serve, and write their profiles when stopped", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-profiled-"));
  const nodes = await Promise.all(Array.from({ length: processes }, (_, i) => startProfiled(root, `p${i}`)));
  try {
    await Promise.all(
      nodes.map((node) =>
        waitFor("a profiled node to lead", startWaitMs, async () => {
          if (node.exit !== null)
            throw new Error(`the node ended (${JSON.stringify(node.exit)}): ${node.output}`);
          const response = await fetch(`http://127.0.0.1:${node.http}/v1/status`, {
            signal: AbortSignal.timeout(2_000),
          });
          return ((await response.json()) as { role?: string }).role === "leader";
        }),
      ),
    );
    for (const node of nodes) process.kill(node.child.pid!, "SIGTERM");
    const timer = setTimeout(() => {
      for (const node of nodes) if (node.exit === null) process.kill(node.child.pid!, "SIGKILL");
    }, stopWaitMs);
    const exits = await Promise.all(nodes.map((node) => node.exited));
    clearTimeout(timer);
    for (const [i, exit] of exits.entries()) {
      assert.deepEqual(exit, { code: 0, signal: null }, `node ${i} ended so: ${nodes[i]!.output}`);
      const written = fs.readdirSync(nodes[i]!.profiles).filter((name) => name.endsWith(".cpuprofile"));
      assert.ok(written.length >= 1, `node ${i} wrote a profile`);
    }
  } finally {
    for (const node of nodes) if (node.exit === null) process.kill(node.child.pid!, "SIGKILL");
    await Promise.all(nodes.map((node) => node.exited));
    fs.rmSync(root, { recursive: true, force: true });
  }
});
