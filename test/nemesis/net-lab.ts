/**
 * The campaign's own network: one network namespace per node, joined by veth pairs to a bridge in
 * the root namespace, which also carries the campaign's clients. Needs root (`ip netns add`).
 *
 * Every name carries this run's tag (`bnm<tag>…`), and everything made is recorded as it is made and
 * removed by `destroy()` — namespaces (which takes their veth ends along), the bridge — even when the
 * setup failed half way. Partitions are `blackhole` routes inside a node's namespace: packets from that
 * node to a peer's address vanish silently, as on a real cut link, and established TCP connections
 * stall rather than fail (checked by experiment on this kernel; tc filters are not available here).
 * A symmetric cut is a route on each side; a one-way cut is a route on one side only. Clients in the
 * root namespace still reach every node, so a node cut off from its peers still gets requests (the
 * interesting case: a deposed leader that does not know it yet).
 */
import { execFile, execFileSync } from "node:child_process";

const commandTimeoutMs = 10_000;

/**
 * For cuts and heals while the clients run: never blocks the campaign's event loop, which carries
 * the clients (on a loaded machine one `ip` process can take a second to start).
 */
function ipAsync(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("ip", args, { timeout: commandTimeoutMs }, (error) => (error ? reject(error) : resolve())),
  );
}

/** For setup and teardown, while no client runs. */
export function ip(args: readonly string[]): string {
  return execFileSync("ip", args, {
    encoding: "utf8",
    timeout: commandTimeoutMs,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Tries to create and remove a namespace; returns null when that works, else why not. */
export function namespaceSupport(tag: string): string | null {
  const probe = `bnm${tag}probe`;
  try {
    ip(["netns", "add", probe]);
  } catch (error) {
    return `ip netns add failed (root and the ip command are needed): ${firstLine(error)}`;
  }
  try {
    ip(["netns", "del", probe]);
  } catch {}
  return null;
}

function firstLine(error: unknown): string {
  const stderr = (error as { stderr?: string }).stderr;
  return (stderr !== undefined && stderr !== "" ? stderr : String(error)).split("\n")[0]!.trim();
}

export type NetLabNode = { readonly namespace: string; readonly address: string };

export class NetLab {
  readonly tag: string;
  readonly bridge: string;
  readonly gateway: string;
  readonly nodes: NetLabNode[] = [];
  private readonly namespacesMade: string[] = [];
  private bridgeMade = false;
  /** Blackhole routes in place: `namespace -> addresses`. */
  private readonly cuts = new Map<string, Set<string>>();

  private constructor(tag: string, subnet: string) {
    this.tag = tag;
    this.bridge = `bnm${tag}br`;
    this.gateway = `${subnet}.254`;
  }

  /** Builds the bridge and `count` namespaces; on any failure removes what it made and throws. */
  static create(tag: string, count: number): NetLab {
    const lab = new NetLab(tag, freeSubnet());
    try {
      lab.build(count);
    } catch (error) {
      lab.destroy();
      throw error;
    }
    return lab;
  }

  private build(count: number): void {
    const subnet = this.gateway.slice(0, this.gateway.lastIndexOf("."));
    ip(["link", "add", this.bridge, "type", "bridge"]);
    this.bridgeMade = true;
    ip(["addr", "add", `${this.gateway}/24`, "dev", this.bridge]);
    ip(["link", "set", this.bridge, "up"]);
    for (let i = 1; i <= count; i++) {
      const namespace = `bnm${this.tag}n${i}`;
      const veth = `bnm${this.tag}v${i}`;
      const address = `${subnet}.${i}`;
      ip(["netns", "add", namespace]);
      this.namespacesMade.push(namespace);
      ip(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace]);
      ip(["link", "set", veth, "master", this.bridge, "up"]);
      ip(["-n", namespace, "addr", "add", `${address}/24`, "dev", "eth0"]);
      ip(["-n", namespace, "link", "set", "eth0", "up"]);
      ip(["-n", namespace, "link", "set", "lo", "up"]);
      this.nodes.push({ namespace, address });
    }
  }

  /** Drops every packet `from` sends to `to` (one way). */
  async cut(from: number, to: number): Promise<void> {
    await this.cutAll([[from, to]]);
  }

  /** Applies one-way cuts, all at once. */
  async cutAll(pairs: readonly (readonly [number, number])[]): Promise<void> {
    const commands: Promise<void>[] = [];
    for (const [from, to] of pairs) {
      const namespace = this.nodes[from]!.namespace;
      const address = this.nodes[to]!.address;
      let set = this.cuts.get(namespace);
      if (set === undefined) this.cuts.set(namespace, (set = new Set()));
      if (set.has(address)) continue;
      set.add(address);
      commands.push(ipAsync(["-n", namespace, "route", "add", "blackhole", `${address}/32`]));
    }
    await Promise.all(commands);
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  async separate(a: readonly number[], b: readonly number[]): Promise<void> {
    const pairs: [number, number][] = [];
    for (const x of a)
      for (const y of b) {
        pairs.push([x, y]);
        pairs.push([y, x]);
      }
    await this.cutAll(pairs);
  }

  /** Removes every cut, all at once. */
  async heal(): Promise<void> {
    const commands: Promise<void>[] = [];
    for (const [namespace, addresses] of this.cuts)
      for (const address of addresses)
        commands.push(
          ipAsync(["-n", namespace, "route", "del", "blackhole", `${address}/32`]).catch(() => {}),
        );
    this.cuts.clear();
    await Promise.all(commands);
  }

  get cutCount(): number {
    let count = 0;
    for (const set of this.cuts.values()) count += set.size;
    return count;
  }

  /** Removes the namespaces (their veth ends go with them) and the bridge; safe to call twice. */
  destroy(): void {
    this.cuts.clear();
    for (const namespace of this.namespacesMade.splice(0)) {
      try {
        ip(["netns", "del", namespace]);
      } catch {}
    }
    if (this.bridgeMade) {
      try {
        ip(["link", "del", this.bridge]);
      } catch {}
      this.bridgeMade = false;
    }
  }
}

/** A 10.213.x.0/24 that no interface or route of this machine uses yet (x chosen from the pid). */
function freeSubnet(): string {
  const used = ip(["-4", "route", "show", "table", "all"]) + ip(["-4", "addr"]);
  for (let attempt = 0; attempt < 250; attempt++) {
    const x = ((process.pid + attempt) % 250) + 1;
    const subnet = `10.213.${x}`;
    if (!used.includes(`${subnet}.`)) return subnet;
  }
  throw new Error("no free 10.213.x.0/24 subnet for the campaign's network");
}
