/**
 * The campaign's `baton start` processes: one per node, in the node's network namespace when the
 * campaign has them (`ip netns exec` execs the node, so the pid we hold is the node's own), on
 * loopback otherwise. Output goes to `RUN/nX.log`, which outlives the process.
 *
 * Only pids this module spawned are ever signalled. Every wait is bounded. Each process exit is
 * recorded with whether the campaign expected it (it killed the node, or injected a fault that must
 * stop it); an unexpected exit is an anomaly.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { StatusResponse } from "../../src/api/api-types.ts";
import { faultInjectionOptIn, fsyncFaultFileVariable } from "../../src/wal/fault-injection.ts";

const batonBin = path.resolve(import.meta.dirname, "../../bin/baton");
const exitWaitMs = 10_000;
const statusTimeoutMs = 1_000;
/** Written to the log file before each start, so a process's own lines can be told apart. */
const startMarker = "=== nemesis: starting";

export type NodeExit = {
  readonly atUs: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly expected: boolean;
  readonly why: string;
};

export type NodeSpec = {
  readonly id: string;
  readonly index: number;
  readonly host: string;
  readonly httpPort: number;
  readonly raftPort: number;
  readonly namespace: string | null;
  readonly dataDirectory: string;
  readonly logPath: string;
  readonly fsyncControlPath: string;
};

export class NodeProcess {
  readonly spec: NodeSpec;
  readonly exits: NodeExit[] = [];
  private child: ChildProcess | null = null;
  private exitExpectation: string | null = null;
  paused = false;

  constructor(spec: NodeSpec) {
    this.spec = spec;
  }

  get id(): string {
    return this.spec.id;
  }

  get url(): string {
    return `http://${this.spec.host}:${this.spec.httpPort}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Starts `baton start`; `extraArgs` follow the common flags. */
  start(clusterFlag: string, extraArgs: readonly string[], nowUs: () => number): void {
    if (this.child !== null) throw new Error(`${this.id} is already running`);
    const nodeArgs = [
      batonBin,
      "start",
      "--id",
      this.id,
      "--data",
      this.spec.dataDirectory,
      "--http",
      `${this.spec.host}:${this.spec.httpPort}`,
      "--raft",
      `${this.spec.host}:${this.spec.raftPort}`,
      "--cluster",
      clusterFlag,
      "--log-format",
      "json",
      ...extraArgs,
    ];
    const [command, args] =
      this.spec.namespace === null
        ? [process.execPath, nodeArgs]
        : ["ip", ["netns", "exec", this.spec.namespace, process.execPath, ...nodeArgs]];
    const logFd = fs.openSync(this.spec.logPath, "a");
    fs.writeSync(logFd, `\n${startMarker} ${this.id} at ${(nowUs() / 1e6).toFixed(3)} s ===\n`);
    const child = spawn(command, args, { stdio: ["ignore", logFd, logFd], env: childEnvironment(this.spec) });
    fs.closeSync(logFd);
    this.child = child;
    this.paused = false;
    this.exitExpectation = null;
    child.once("exit", (code, signal) => {
      const expected = this.exitExpectation;
      this.exits.push({
        atUs: nowUs(),
        code,
        signal,
        expected: expected !== null,
        why: expected ?? "unexpected",
      });
      if (this.child === child) this.child = null;
      this.paused = false;
    });
  }

  /** The campaign expects this process to exit next (a kill, or a fault that must stop it). */
  expectExit(why: string): void {
    this.exitExpectation = why;
  }

  /** The exit once expected did not come (the node coped): a later exit is unexpected again. */
  clearExpectation(): void {
    this.exitExpectation = null;
  }

  signal(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {}
    if (signal === "SIGSTOP") this.paused = true;
    if (signal === "SIGCONT") this.paused = false;
  }

  /** Resolves with the exit once the process is gone, or null if it is still running after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<NodeExit | null> {
    const child = this.child;
    if (child === null) return this.exits.at(-1) ?? null;
    const exited = new Promise<boolean>((resolve) => child.once("exit", () => resolve(true)));
    const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
    return (await Promise.race([exited, timer])) ? (this.exits.at(-1) ?? null) : null;
  }

  async kill(why: string): Promise<void> {
    if (this.child === null) return;
    this.expectExit(why);
    this.signal("SIGKILL");
    if ((await this.waitExit(exitWaitMs)) === null) throw new Error(`${this.id} did not exit after SIGKILL`);
  }

  /** SIGCONT, SIGTERM, then SIGKILL after a bound. */
  async stop(): Promise<void> {
    if (this.child === null) return;
    this.expectExit("campaign end");
    this.signal("SIGCONT");
    this.signal("SIGTERM");
    if ((await this.waitExit(exitWaitMs)) !== null) return;
    this.signal("SIGKILL");
    await this.waitExit(exitWaitMs);
  }

  async status(): Promise<StatusResponse | null> {
    try {
      const response = await fetch(`${this.url}/v1/status`, { signal: AbortSignal.timeout(statusTimeoutMs) });
      return response.ok ? ((await response.json()) as StatusResponse) : null;
    } catch {
      return null;
    }
  }

  async contentHash(): Promise<{ appliedIndex: number; hash: string } | null> {
    try {
      const response = await fetch(`${this.url}/v1/content-hash`, { signal: AbortSignal.timeout(5_000) });
      return response.ok ? ((await response.json()) as { appliedIndex: number; hash: string }) : null;
    } catch {
      return null;
    }
  }

  /** The last `lines` lines the node's current (or last) process wrote to its log file. */
  logTail(lines: number): string {
    try {
      const text = fs.readFileSync(this.spec.logPath, "utf8");
      return text
        .slice(Math.max(0, text.lastIndexOf(startMarker)))
        .split("\n")
        .slice(-lines)
        .join("\n");
    } catch {
      return "";
    }
  }

  setFsyncFault(line: string): void {
    fs.writeFileSync(this.spec.fsyncControlPath, `${line}\n`);
  }
}

/** The node's environment: ours without any BATON_* setting, plus the test-only fsync hook. */
function childEnvironment(spec: NodeSpec): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith("BATON_") && key !== "NODE_OPTIONS") environment[key] = value;
  environment[faultInjectionOptIn.name] = faultInjectionOptIn.value;
  environment[fsyncFaultFileVariable] = spec.fsyncControlPath;
  return environment;
}

export function clusterFlag(specs: readonly NodeSpec[]): string {
  return specs.map((s) => `${s.id}=${s.host}:${s.raftPort}/${s.host}:${s.httpPort}`).join(",");
}

/** Polls every running node's status; the leader is the one in the highest term that says so. */
export async function findLeader(
  nodes: readonly NodeProcess[],
): Promise<{ node: NodeProcess; term: number } | null> {
  const statuses = await Promise.all(
    nodes.map(async (n) => (n.running && !n.paused ? await n.status() : null)),
  );
  let best: { node: NodeProcess; term: number } | null = null;
  statuses.forEach((status, i) => {
    if (status?.role === "leader" && (best === null || status.term > best.term))
      best = { node: nodes[i]!, term: status.term };
  });
  return best;
}

/**
 * Every node applied the leader's commit index, verified its database, and reports the same content
 * hash at the same applied index: that hash and index, else null.
 */
export async function convergedHash(
  nodes: readonly NodeProcess[],
): Promise<{ appliedIndex: number; hash: string } | null> {
  const statuses = await Promise.all(nodes.map((n) => n.status()));
  const leader = statuses.find((s) => s?.role === "leader");
  // A node serves its own reads only once it has verified its database against the others.
  if (
    leader === undefined ||
    statuses.some((s) => s === null || s.appliedIndex < leader!.commitIndex || !s.storage.verified)
  )
    return null;
  const hashes = await Promise.all(nodes.map((n) => n.contentHash()));
  const first = hashes[0];
  if (first === null || first === undefined) return null;
  return hashes.every((h) => h !== null && h.appliedIndex === first.appliedIndex && h.hash === first.hash)
    ? first
    : null;
}

export async function waitUntil<T>(
  timeoutMs: number,
  probe: () => Promise<T | null>,
  stepMs = 100,
): Promise<T | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== null) return value;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return null;
}
