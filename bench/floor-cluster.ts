/**
 * A fresh 3-process replication floor (`floor-node.ts`) for one measurement: a leader and two
 * followers on 127.0.0.1 that do only what a durable majority write needs (log append, replication,
 * `fdatasync`, HTTP and JSON), with Baton's node flags. Writes and batches only: reads throw.
 * Data in a temporary directory removed by `stop()`, processes stopped by pid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { nodeProcessFlags } from "../src/cli/node-flags.ts";
import { freePort, stopChild } from "./baton-cluster.ts";
import type { LoadRequest } from "./load.ts";
import { type RunningCluster, valueText } from "./system-under-test.ts";

const floorNode = path.resolve(import.meta.dirname, "floor-node.ts");
const readyWaitMs = 10_000;

/** As a Baton node runs after replacing itself (`src/cli/node-flags.ts`). */
const nodeFlags = nodeProcessFlags;

function startProcess(args: string[]): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, [...nodeFlags, floorNode, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, MALLOC_ARENA_MAX: "2" },
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`floor ${args[0]} not ready in ${readyWaitMs} ms`)),
      readyWaitMs,
    );
    child.stdout!.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => reject(new Error(`floor ${args[0]} exited with ${code}`)));
  });
  return { child, ready };
}

export async function startFloorCluster(): Promise<RunningCluster> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "floor-bench-"));
  const httpPort = await freePort();
  const peerPorts = [await freePort(), await freePort()];
  const started = peerPorts.map((port, i) =>
    startProcess(["follower", path.join(root, `f${i + 1}`), `${port}`]),
  );
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((s) => stopChild(s.child)));
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    await Promise.all(started.map((s) => s.ready));
    const leader = startProcess(["leader", path.join(root, "l"), `${httpPort}`, peerPorts.join(",")]);
    started.unshift(leader);
    await leader.ready;
  } catch (error) {
    await stop();
    throw error;
  }
  const rowsRequest = (rows: [string, string][]): LoadRequest => ({
    path: "/write",
    body: JSON.stringify({ rows }),
  });
  return {
    system: "floor",
    leader: { host: "127.0.0.1", port: httpPort },
    processes: started.map((s, i) => ({
      role: i === 0 ? "leader" : "follower",
      name: i === 0 ? "l" : `f${i}`,
      pid: s.child.pid!,
    })),
    writeRequest: (key) => rowsRequest([[`k${key}`, valueText]]),
    readRequest: () => {
      throw new Error("the replication floor measures writes only (workloads wN and bN)");
    },
    batchRequest: (firstKey, rows) =>
      rowsRequest(Array.from({ length: rows }, (_, row) => [`k${firstKey + row}`, valueText])),
    stop,
  };
}
