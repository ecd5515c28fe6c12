/**
 * Real `baton start` processes on loopback for end-to-end tests and benchmarks.
 *
 * Every process is started by this harness and stopped by its pid (SIGTERM, then SIGKILL after a
 * bound); every wait is bounded; data lives in a temporary directory removed at the end. Ports come
 * from below the kernel's ephemeral range (`free-port.ts`), checked free just before the node starts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { StatusResponse } from "../../src/api/api-types.ts";
import { freePort } from "./free-port.ts";

export { freePort };

const batonBin = path.resolve(import.meta.dirname, "../../bin/baton");
const stopWaitMs = 10_000;
/** Starts of a cluster tried when another process took a port first. */
const startAttemptsMax = 3;

export type ClusterNode = {
  readonly id: string;
  readonly httpPort: number;
  readonly raftPort: number;
  readonly url: string;
  readonly dataDirectory: string;
  process: ChildProcess | null;
  log: string[];
  /** A node added later: it joins through this member's URL instead of naming the cluster. */
  readonly join?: { readonly via: string; readonly as: "voter" | "learner" | "witness" };
};

export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | null | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`,
  );
}

const commandTimeoutMs = 20_000;

/** Runs the `baton` command with `args` (and `input` on stdin); bounded, killed by pid after it. */
export function runBaton(
  args: string[],
  input = "",
): Promise<{ code: number | null; output: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [batonBin, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`baton ${args.join(" ")} did not finish: ${output}`));
    }, commandTimeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output, stdout });
    });
    child.stdin.end(input);
  });
}

/** POSTs JSON to a node and returns the status and the parsed answer (5 s bound). */
export async function postJson(
  node: ClusterNode,
  route: string,
  body: unknown,
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${node.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, body: await response.json() };
}

/**
 * A write the test needs acknowledged: sent with `requestId` to `leaderOf()` (asked again before
 * every attempt) and retried with the same id, so that it applies once, while the answer is a
 * refusal for now (503, 504: an election, a commit slower than its timeout on a busy machine;
 * NOT_LEADER) or the request failed on the way; any other 4xx or a 500 fails at once. Bounded by
 * `waitMs`.
 */
export async function acknowledgedWrite(
  leaderOf: () => Promise<ClusterNode>,
  body: Record<string, unknown> & { requestId: string },
  waitMs = 30_000,
): Promise<any> {
  const deadline = Date.now() + waitMs;
  let last = "no attempt";
  while (Date.now() < deadline) {
    const answer = await leaderOf()
      .then((leader) => postJson(leader, "/v1/execute", body))
      .catch((error: unknown) => ({ status: 0, body: { error: String(error) } }));
    if (answer.status === 200) return answer.body;
    last = `${answer.status} ${JSON.stringify(answer.body)}`;
    const notLeader = answer.status === 409 && answer.body?.error?.code === "NOT_LEADER";
    if (answer.status !== 0 && answer.status !== 503 && answer.status !== 504 && !notLeader)
      throw new Error(`write ${body.requestId} refused: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`write ${body.requestId} not acknowledged within ${waitMs} ms; last answer: ${last}`);
}

export class Cluster {
  readonly nodes: ClusterNode[];
  readonly root: string;
  private readonly extraArgs: string[];

  private constructor(nodes: ClusterNode[], root: string, extraArgs: string[]) {
    this.nodes = nodes;
    this.root = root;
    this.extraArgs = extraArgs;
  }

  /**
   * Starts `size` nodes and waits for a leader and for every node to answer. A port found free can
   * be taken by another process before the node binds it; a start that failed that way (a node
   * logged EADDRINUSE) is retried with fresh ports, at most `startAttemptsMax` times.
   */
  static async start(
    size: number,
    extraArgs: string[] = ["--heartbeat-ms", "50", "--missed-heartbeats", "6"],
  ): Promise<Cluster> {
    for (let attempt = 1; ; attempt++) {
      const cluster = await Cluster.startOnce(size, extraArgs);
      if (cluster instanceof Cluster) return cluster;
      if (!cluster.portTaken || attempt >= startAttemptsMax) throw cluster.error;
    }
  }

  private static async startOnce(
    size: number,
    extraArgs: string[],
  ): Promise<Cluster | { error: unknown; portTaken: boolean }> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-e2e-"));
    const nodes: ClusterNode[] = [];
    for (let i = 1; i <= size; i++) {
      const httpPort = await freePort();
      const raftPort = await freePort();
      nodes.push({
        id: `n${i}`,
        httpPort,
        raftPort,
        url: `http://127.0.0.1:${httpPort}`,
        dataDirectory: path.join(root, `n${i}`),
        process: null,
        log: [],
      });
    }
    const cluster = new Cluster(nodes, root, extraArgs);
    for (const node of nodes) cluster.startNode(node);
    try {
      await cluster.waitForLeader(nodes, 30_000);
      // A leader needs only a majority; tests may talk to any node at once. (A node serves HTTP
      // once its query processes run, which can take a second or two on a busy machine.)
      await waitFor("every node to answer", 30_000, async () => {
        await Promise.all(nodes.map((node) => cluster.status(node)));
        return true;
      });
    } catch (error) {
      const portTaken = nodes.some((node) => cluster.logsOf(node).includes("EADDRINUSE"));
      for (const node of nodes)
        process.stderr.write(`--- ${node.id} (start failed) ---\n${cluster.logsOf(node).slice(-5_000)}\n`);
      await cluster.stop(); // The caller never gets the cluster, so it cannot stop it.
      return { error, portTaken };
    }
    return cluster;
  }

  get clusterFlag(): string {
    return this.nodes
      .filter((n) => n.join === undefined)
      .map((n) => `${n.id}=127.0.0.1:${n.raftPort}/127.0.0.1:${n.httpPort}`)
      .join(",");
  }

  /**
   * A new node (next id, fresh ports, empty data directory) that joins the running cluster
   * through `via` (`baton start --join`); started at once.
   */
  async addJoiningNode(
    via: ClusterNode,
    as: "voter" | "learner" | "witness" = "voter",
  ): Promise<ClusterNode> {
    const id = `n${this.nodes.length + 1}`;
    const httpPort = await freePort();
    const raftPort = await freePort();
    const node: ClusterNode = {
      id,
      httpPort,
      raftPort,
      url: `http://127.0.0.1:${httpPort}`,
      dataDirectory: path.join(this.root, id),
      process: null,
      log: [],
      join: { via: via.url, as },
    };
    this.nodes.push(node);
    this.startNode(node);
    return node;
  }

  startNode(node: ClusterNode): void {
    const members =
      node.join === undefined
        ? ["--cluster", this.clusterFlag]
        : ["--join", node.join.via, "--join-as", node.join.as];
    const child = spawn(
      process.execPath,
      [
        batonBin,
        "start",
        "--id",
        node.id,
        "--data",
        node.dataDirectory,
        "--http",
        `127.0.0.1:${node.httpPort}`,
        "--raft",
        `127.0.0.1:${node.raftPort}`,
        ...members,
        "--log-format",
        "json",
        ...this.extraArgs,
      ],
      // BATON_CHILD_NODE_OPTIONS passes flags (for example --cpu-prof) to the nodes only.
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, NODE_OPTIONS: process.env.BATON_CHILD_NODE_OPTIONS ?? "" },
      },
    );
    const keep = (chunk: Buffer): void => {
      node.log.push(chunk.toString("utf8"));
      if (node.log.length > 2000) node.log.splice(0, 1000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    node.process = child;
  }

  /** Sends `signal` to the node's process (by pid) and, for terminating signals, waits for it to exit. */
  async signal(node: ClusterNode, signal: NodeJS.Signals): Promise<void> {
    const child = node.process;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    process.kill(child.pid!, signal);
    if (signal === "SIGSTOP" || signal === "SIGCONT") return;
    const timer = setTimeout(
      () => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, "SIGKILL"),
      stopWaitMs,
    );
    await exited;
    clearTimeout(timer);
    node.process = null;
  }

  async status(node: ClusterNode): Promise<StatusResponse> {
    const response = await fetch(`${node.url}/v1/status`, { signal: AbortSignal.timeout(2000) });
    return (await response.json()) as StatusResponse;
  }

  running(): ClusterNode[] {
    return this.nodes.filter((n) => n.process !== null);
  }

  async waitForLeader(among: ClusterNode[] = this.running(), timeoutMs = 15_000): Promise<ClusterNode> {
    return waitFor("a leader", timeoutMs, async () => {
      for (const node of among) {
        const status = await this.status(node).catch(() => null);
        if (status?.role === "leader") return node;
      }
      return null;
    });
  }

  async contentHash(node: ClusterNode): Promise<{ appliedIndex: number; hash: string }> {
    const response = await fetch(`${node.url}/v1/content-hash`, { signal: AbortSignal.timeout(30_000) });
    return (await response.json()) as { appliedIndex: number; hash: string };
  }

  /** Waits until every given node has applied the same index and returns their hashes. */
  async convergedHashes(
    nodes: ClusterNode[],
    timeoutMs = 20_000,
  ): Promise<{ appliedIndex: number; hash: string }[]> {
    return waitFor("replicas to converge", timeoutMs, async () => {
      const hashes = await Promise.all(nodes.map((n) => this.contentHash(n)));
      const indexes = new Set(hashes.map((h) => h.appliedIndex));
      const leader = await this.waitForLeader(nodes, 2000).catch(() => null);
      const commit = leader === null ? null : (await this.status(leader)).commitIndex;
      return indexes.size === 1 && commit !== null && hashes[0]!.appliedIndex >= commit ? hashes : null;
    });
  }

  /** Waits until every given node has applied the leader's commit index (cheap: status only). */
  async convergedIndexes(nodes: ClusterNode[], timeoutMs = 20_000): Promise<number> {
    let seen = "no status yet";
    try {
      return await waitFor("replicas to apply the commit index", timeoutMs, async () => {
        const statuses = await Promise.all(nodes.map((n) => this.status(n)));
        seen = statuses
          .map((s) => `${s.id} ${s.role} term ${s.term} commit ${s.commitIndex} applied ${s.appliedIndex}`)
          .join("; ");
        const leader = statuses.find((s) => s.role === "leader");
        if (leader === undefined) return null;
        return statuses.every((s) => s.appliedIndex >= leader.commitIndex) ? leader.commitIndex : null;
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${seen}`);
    }
  }

  logsOf(node: ClusterNode): string {
    return node.log.join("");
  }

  /** After a failed test: the end of every node's log on stderr, to see why without a rerun. */
  dumpLogs(reason: string, charsPerNode = 4_000): void {
    for (const node of this.nodes)
      process.stderr.write(`--- ${node.id} (${reason}) ---\n${this.logsOf(node).slice(-charsPerNode)}\n`);
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) {
      if (node.process !== null) {
        try {
          process.kill(node.process.pid!, "SIGCONT");
        } catch {}
      }
    }
    await Promise.all(this.nodes.map((n) => this.signal(n, "SIGTERM")));
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
