/**
 * A fresh 3-node Baton cluster for one measurement: real `bin/baton start` processes on 127.0.0.1
 * with default timing, data and logs in a temporary directory removed by `stop()`, every process
 * stopped by its pid (SIGTERM, SIGKILL after `stopWaitMs`).
 *
 * `nodeOptions` becomes the nodes' `NODE_OPTIONS` (for example `--cpu-prof --cpu-prof-dir=DIR`);
 * the graceful SIGTERM stop lets Node write the profile on exit.
 */
import { freePort } from "../test/e2e/cluster-harness.ts";

export { freePort };

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { type LoadRequest, type LoadTarget, post } from "./load.ts";
import { expectOk, type RunningCluster, sleep, valueText, waitFor } from "./system-under-test.ts";

const batonBin = path.resolve(import.meta.dirname, "../bin/baton");
const nodesCount = 3;
const leaderWaitMs = 20_000;
const stopWaitMs = 10_000;

export type BatonClusterOptions = {
  /** `NODE_OPTIONS` of the node processes (not of this one). */
  readonly nodeOptions?: string;
  /**
   * When set, each node runs with `--cpu-prof`, its profile in DIR/<node id>. On the command line:
   * Node refuses `--cpu-prof` in `NODE_OPTIONS`.
   */
  readonly profileDirectory?: string;
  readonly extraArgs?: readonly string[];
};

type BatonNodeProcess = { id: string; httpPort: number; raftPort: number; child: ChildProcess };

function getJson(port: number, urlPath: string): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    const request = http.get({ host: "127.0.0.1", port, path: urlPath, timeout: 1000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch {
          resolve(null);
        }
      });
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(null));
  });
}

/** Stops a child by its pid: SIGTERM, then SIGKILL if it has not exited within `stopWaitMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.kill(child.pid, signal);
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
  }, stopWaitMs);
  await exited;
  clearTimeout(timer);
}

export async function startBatonCluster(options: BatonClusterOptions = {}): Promise<RunningCluster> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-bench-"));
  const nodes: BatonNodeProcess[] = [];
  for (let i = 1; i <= nodesCount; i++) {
    nodes.push({ id: `n${i}`, httpPort: await freePort(), raftPort: await freePort(), child: null! });
  }
  const clusterFlag = nodes.map((n) => `${n.id}=127.0.0.1:${n.raftPort}/127.0.0.1:${n.httpPort}`).join(",");
  for (const node of nodes) {
    const log = fs.openSync(path.join(root, `${node.id}.log`), "a");
    const profileFlags =
      options.profileDirectory === undefined
        ? []
        : ["--cpu-prof", `--cpu-prof-dir=${path.join(options.profileDirectory, node.id)}`];
    // The node processes run the same Node binary as this one (Node 26).
    node.child = spawn(
      process.execPath,
      [...profileFlags, batonBin, "start", "--id", node.id, "--data", path.join(root, node.id)]
        .concat(["--http", `127.0.0.1:${node.httpPort}`, "--raft", `127.0.0.1:${node.raftPort}`])
        .concat(["--cluster", clusterFlag, "--log-format", "json", ...(options.extraArgs ?? [])]),
      { stdio: ["ignore", log, log], env: { ...process.env, NODE_OPTIONS: options.nodeOptions ?? "" } },
    );
    fs.closeSync(log);
  }
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => stopChild(n.child)));
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    return await ready(nodes, root, stop);
  } catch (error) {
    const tails = nodes.map((n) => `${n.id}: ${tail(path.join(root, `${n.id}.log`))}`).join("\n");
    await stop();
    throw new Error(`${(error as Error).message}\n${tails}`);
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-10).join("\n");
  } catch {
    return "";
  }
}

async function ready(
  nodes: BatonNodeProcess[],
  root: string,
  stop: () => Promise<void>,
): Promise<RunningCluster> {
  // Every node answers, not only a majority: a node that failed to start would leave a cluster of
  // two, measured as if it were three.
  const leader = await waitFor("a Baton leader and every node answering", leaderWaitMs, async () => {
    const statuses = await Promise.all(nodes.map((node) => getJson(node.httpPort, "/v1/status")));
    if (statuses.some((status) => status === null)) return null;
    return nodes.find((_, i) => statuses[i]?.role === "leader") ?? null;
  });
  const target: LoadTarget = { host: "127.0.0.1", port: leader.httpPort };
  const agent = new http.Agent();
  const create = "CREATE TABLE kv(k TEXT PRIMARY KEY NOT NULL, v TEXT)";
  expectOk(await post(agent, target, executeRequest([create])), `Baton CREATE TABLE (data in ${root})`);
  agent.destroy();
  // A leader that has just committed its first entry is settled; a short pause lets the followers apply it.
  await sleep(200);
  return {
    system: "baton",
    leader: target,
    processes: nodes.map((n) => ({
      role: n === leader ? "leader" : "follower",
      name: n.id,
      pid: n.child.pid!,
    })),
    writeRequest: (key) => executeRequest([upsert(key)]),
    readRequest: (key) =>
      jsonRequest("/v1/query", {
        statements: [["SELECT v FROM kv WHERE k = ?", `k${key}`]],
        consistency: "linearizable",
      }),
    batchRequest: (firstKey, rows) =>
      executeRequest(Array.from({ length: rows }, (_, row) => upsert(firstKey + row))),
    stop,
  };
}

const upsertSql = "INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v";

function upsert(key: number): unknown {
  return [upsertSql, `k${key}`, valueText];
}

function executeRequest(statements: unknown[]): LoadRequest {
  return jsonRequest("/v1/execute", { statements, durability: "majority" });
}

function jsonRequest(urlPath: string, body: unknown): LoadRequest {
  return { path: urlPath, body: JSON.stringify(body) };
}
