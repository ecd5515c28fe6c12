/**
 * Loopback ports for the nodes that tests and benchmarks start, chosen below the kernel's ephemeral
 * range.
 *
 * Why: a port found by binding port 0 comes from the ephemeral range, the range the kernel also
 * draws every outbound connection's local port from. Between the check and the node's own bind
 * (for a node that joins later, a minute or more) any `fetch` of any test could take it: in CI a
 * witness that joined 60 s after its ports were found could not listen (`EADDRINUSE`), and its
 * peers met another test's HTTP server on its raft port. Below that range the kernel hands out no
 * port by itself, so only an explicit bind can take one.
 *
 * How: each process draws a random block of `blockPorts` ports below the range and hands them out
 * in order, each checked free by binding it once; a port it already handed out is never handed out
 * again by it. Two processes that draw the same block still check every port. Where the range
 * cannot be read (not Linux) or leaves no room below it, a port is found by binding port 0.
 */
import fs from "node:fs";
import net from "node:net";

/** The lowest port drawn from (above the well-known and most registered service ports). */
const lowestPort = 10_000;
/** Ports in one process's block. */
const blockPorts = 256;
/** Ports tried before giving up: a whole block taken by other processes means something is wrong. */
const triesMax = 4 * blockPorts;

const handedOut = new Set<number>();
let next: { port: number; end: number } | null = null;

/** The first port of the kernel's ephemeral range, or null when it cannot be read. */
function ephemeralLow(): number | null {
  try {
    const [low] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const port = Number(low);
    return Number.isSafeInteger(port) && port > 0 ? port : null;
  } catch {
    return null;
  }
}

function newBlock(belowPort: number): { port: number; end: number } {
  const blocks = Math.floor((belowPort - lowestPort) / blockPorts);
  const start = lowestPort + Math.floor(Math.random() * blocks) * blockPorts;
  return { port: start, end: start + blockPorts };
}

/** Whether `port` can be bound on 127.0.0.1 now (bound and released). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Any free port, from the kernel (port 0): the fallback. */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A free loopback port that no outbound connection can take before the node binds it. */
export async function freePort(): Promise<number> {
  const below = ephemeralLow();
  if (below === null || below - lowestPort < blockPorts) return kernelPort();
  for (let tries = 0; tries < triesMax; tries++) {
    if (next === null || next.port >= next.end) next = newBlock(below);
    const port = next.port++;
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port below ${below} after ${triesMax} tries`);
}
