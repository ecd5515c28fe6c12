/**
 * `baton dev` (what `npm start` runs): a local 3-node cluster as child processes, data under
 * `./data`, endpoints printed; Ctrl-C (or SIGTERM) stops all of them, each by its pid, and waits
 * for them to exit (bounded; a child still alive after the grace period is killed).
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseFlags } from "./flags.ts";

const help = `Usage: baton dev [--data DIR] [--nodes N] [--base-port P]

Runs a local cluster of N nodes (default 3) as child processes on 127.0.0.1.
Node i listens for HTTP on P+i and for peers on P+100+i (default P=4000).
Data goes under DIR/n1, DIR/n2, ... (default ./data). Ctrl-C stops every node.
`;
const stopGraceMs = 15_000;

export async function devCommand(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    data: { type: "string" },
    nodes: { type: "string" },
    "base-port": { type: "string" },
    help: { type: "boolean" },
  }) as { data?: string; nodes?: string; "base-port"?: string; help?: boolean };
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const count = Number(values.nodes ?? 3);
  const basePort = Number(values["base-port"] ?? 4000);
  if (!Number.isInteger(count) || count < 1 || count > 9)
    throw new BatonError(ErrorCode.BAD_CONFIG, "--nodes must be 1 to 9");
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65000)
    throw new BatonError(ErrorCode.BAD_CONFIG, "--base-port must be 1024 to 65000");
  const dataRoot = path.resolve(values.data ?? "data");
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const cluster = ids
    .map((id, i) => `${id}=127.0.0.1:${basePort + 101 + i}/127.0.0.1:${basePort + 1 + i}`)
    .join(",");
  const baton = path.resolve(import.meta.dirname, "../../bin/baton");
  const children: ChildProcess[] = ids.map((id, i) =>
    spawn(
      process.execPath,
      [
        baton,
        "start",
        "--id",
        id,
        "--data",
        path.join(dataRoot, id),
        "--http",
        `127.0.0.1:${basePort + 1 + i}`,
        "--raft",
        `127.0.0.1:${basePort + 101 + i}`,
        "--cluster",
        cluster,
      ],
      {
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, BATON_LOG_FORMAT: process.env.BATON_LOG_FORMAT ?? "pretty" },
      },
    ),
  );
  process.stdout.write(`Baton dev cluster: ${count} nodes, data under ${dataRoot}\n`);
  for (const [i, id] of ids.entries()) {
    process.stdout.write(`  ${id}  http://127.0.0.1:${basePort + 1 + i}   (pid ${children[i]!.pid})\n`);
  }
  process.stdout.write(
    `Try: curl -s localhost:${basePort + 1}/v1/status   or   npx baton shell --url http://127.0.0.1:${basePort + 1}\n`,
  );
  return waitAndStop(children);
}

function waitAndStop(children: ChildProcess[]): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const exited = new Set<ChildProcess>();
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      for (const child of children) if (!exited.has(child)) child.kill("SIGTERM");
      setTimeout(() => {
        for (const child of children) if (!exited.has(child)) child.kill("SIGKILL");
      }, stopGraceMs).unref();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    for (const child of children) {
      child.once("exit", (code, signal) => {
        exited.add(child);
        // A node that dies on its own is reported, not avenged: the others keep running, so a
        // developer can kill one to watch the cluster fail over.
        if (!stopping)
          process.stdout.write(`node pid ${child.pid} exited (${signal ?? code}); the others keep running\n`);
        if (exited.size === children.length) resolve(stopping ? 0 : 1);
      });
    }
  });
}
