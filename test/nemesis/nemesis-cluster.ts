/**
 * Everything the campaign builds on the machine, and its removal: the run directory, the network
 * lab (namespaces, veths, bridge) or loopback ports, the tmpfs under the disk-full node's data
 * directory, and the node processes. `teardown()` undoes all of it in reverse order and is safe to
 * call twice or after a half-finished setup; the campaign calls it in a `finally` and on SIGINT/SIGTERM.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { NetLab, namespaceSupport } from "./net-lab.ts";
import { clusterFlag, findLeader, NodeProcess, type NodeSpec, waitUntil } from "./node-processes.ts";
import { type CampaignOptions, type FaultKind, networkFaultKinds } from "./options.ts";

const httpPortInNamespace = 4001;
const raftPortInNamespace = 4101;

export class NemesisCluster {
  readonly runDirectory: string;
  readonly nodes: NodeProcess[] = [];
  readonly lab: NetLab | null;
  /** The node whose data directory sits on a small tmpfs (for disk-full), or null. */
  diskNode: NodeProcess | null = null;
  /** Fault kinds the machine cannot provide here, with the reason. */
  readonly skipped: Map<FaultKind, string>;
  private readonly mounts: string[] = [];
  private readonly extraArgs: string[];
  private flag = "";
  private readonly startedAtMs = performance.now();

  private constructor(
    runDirectory: string,
    lab: NetLab | null,
    skipped: Map<FaultKind, string>,
    extraArgs: string[],
  ) {
    this.runDirectory = runDirectory;
    this.lab = lab;
    this.skipped = skipped;
    this.extraArgs = extraArgs;
  }

  nowUs(): number {
    return (performance.now() - this.startedAtMs) * 1000;
  }

  /** Builds everything; on failure tears down what was built and throws. */
  static async create(options: CampaignOptions, diskIndex: number): Promise<NemesisCluster> {
    const base = options.baseDirectory ?? os.tmpdir();
    fs.mkdirSync(base, { recursive: true });
    const runDirectory = fs.mkdtempSync(path.join(base, `baton-nemesis-${options.seed}-`));
    const skipped = new Map<FaultKind, string>();
    const tag = (process.pid % 46656).toString(36);
    let lab: NetLab | null = null;
    if (options.faults.some((k) => networkFaultKinds.includes(k))) {
      const why = options.network === "loopback" ? "--network loopback was given" : namespaceSupport(tag);
      if (why === null) lab = NetLab.create(tag, options.nodeCount);
      else if (options.network === "namespaces") throw new Error(why);
      else for (const kind of networkFaultKinds) if (options.faults.includes(kind)) skipped.set(kind, why);
    }
    const extraArgs = [
      "--heartbeat-ms",
      String(options.heartbeatMs),
      "--missed-heartbeats",
      String(options.missedHeartbeats),
      "--durability",
      options.durability,
    ];
    const cluster = new NemesisCluster(runDirectory, lab, skipped, extraArgs);
    try {
      await cluster.prepareNodes(options, diskIndex);
    } catch (error) {
      await cluster.teardown(false);
      throw error;
    }
    return cluster;
  }

  private async prepareNodes(options: CampaignOptions, diskIndex: number): Promise<void> {
    const specs: NodeSpec[] = [];
    for (let i = 0; i < options.nodeCount; i++) {
      const id = `n${i + 1}`;
      const labNode = this.lab?.nodes[i];
      specs.push({
        id,
        index: i,
        host: labNode?.address ?? "127.0.0.1",
        httpPort: labNode === undefined ? await freePort() : httpPortInNamespace,
        raftPort: labNode === undefined ? await freePort() : raftPortInNamespace,
        namespace: labNode?.namespace ?? null,
        dataDirectory: path.join(this.runDirectory, id, "data"),
        logPath: path.join(this.runDirectory, `${id}.log`),
        fsyncControlPath: path.join(this.runDirectory, id, "fsync-fault"),
      });
    }
    for (const spec of specs) fs.mkdirSync(spec.dataDirectory, { recursive: true });
    this.flag = clusterFlag(specs);
    for (const spec of specs) this.nodes.push(new NodeProcess(spec));
    if (options.faults.includes("disk-full")) {
      const why = this.mountTmpfs(specs[diskIndex]!.dataDirectory, options.diskMebibytes);
      if (why === null) this.diskNode = this.nodes[diskIndex]!;
      else this.skipped.set("disk-full", why);
    }
  }

  private mountTmpfs(directory: string, mebibytes: number): string | null {
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mebibytes}m`, "tmpfs", directory], {
        stdio: "pipe",
        timeout: 10_000,
      });
      this.mounts.push(directory);
      return null;
    } catch (error) {
      const stderr = String((error as { stderr?: Buffer }).stderr ?? error).trim();
      return `mount -t tmpfs failed (root is needed): ${stderr.split("\n")[0]}`;
    }
  }

  start(node: NodeProcess): void {
    node.start(this.flag, this.extraArgs, () => this.nowUs());
  }

  startAll(): void {
    for (const node of this.nodes) this.start(node);
  }

  async leader(timeoutMs: number): Promise<NodeProcess | null> {
    const found = await waitUntil(timeoutMs, async () => (await findLeader(this.nodes))?.node ?? null);
    return found;
  }

  /** Stops every node (by pid), removes the network and the mounts, and the run directory unless kept. */
  async teardown(keepDirectory: boolean): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop().catch(() => {})));
    await this.lab?.heal().catch(() => {});
    this.lab?.destroy();
    for (const directory of this.mounts.splice(0).reverse()) {
      // A kept run keeps the disk node's data too: it lives on the tmpfs, which is about to go.
      const saved = keepDirectory ? `${directory}-saved` : null;
      if (saved !== null) fs.cpSync(directory, saved, { recursive: true });
      try {
        execFileSync("umount", [directory], { stdio: "pipe", timeout: 10_000 });
      } catch {
        try {
          execFileSync("umount", ["-l", directory], { stdio: "pipe", timeout: 10_000 });
        } catch {}
      }
      if (saved !== null) {
        fs.cpSync(saved, directory, { recursive: true });
        fs.rmSync(saved, { recursive: true, force: true });
      }
    }
    if (!keepDirectory) fs.rmSync(this.runDirectory, { recursive: true, force: true });
  }

  /** A free loopback port, for a probe process. */
  static freePort(): Promise<number> {
    return freePort();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
