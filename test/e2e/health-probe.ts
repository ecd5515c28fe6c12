/**
 * A /healthz probe that runs in a process of its own (so a busy test process cannot slow its
 * answers): every 100 ms it asks each node, each request bounded; `stop()` ends it (its stdin
 * closes; SIGKILL by pid after 5 s) and returns the slowest answer per node, a failed one counting
 * as 1e9 ms. The first round, which warms the probe itself up, is not counted; `probing` resolves
 * once a counted round has completed (awaiting it makes sure the probe covers what follows).
 */
import { spawn } from "node:child_process";
import type { ClusterNode } from "./cluster-harness.ts";

/** The longest `probing` waits for the probe's first counted round. */
const probingWaitMsMax = 10_000;

const probeScript = `
const urls = JSON.parse(process.argv[1]);
const slowest = {};
let running = true;
process.stdin.on("end", () => { running = false; });
process.stdin.resume();
(async () => {
  for (let round = 0; running; round++) {
    await Promise.all(Object.entries(urls).map(async ([id, url]) => {
      const started = performance.now();
      const ok = await fetch(url + "/healthz", { signal: AbortSignal.timeout(5000) }).then((r) => r.ok).catch(() => false);
      const ms = ok ? performance.now() - started : 1e9;
      // The first round warms the probe itself up (loading fetch, opening connections).
      if (round > 0) slowest[id] = Math.max(slowest[id] ?? 0, ms);
    }));
    if (round === 1) process.stdout.write("probing\\n");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  process.stdout.write(JSON.stringify(slowest) + "\\n");
})();
`;

/** Probes /healthz on `nodes` every 100 ms from another process; the slowest answer per node. */
export function probeHealth(nodes: ClusterNode[]) {
  const child = spawn(
    process.execPath,
    ["-e", probeScript, JSON.stringify(Object.fromEntries(nodes.map((n) => [n.id, n.url])))],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  let output = "";
  const probing = Promise.withResolvers<void>();
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.startsWith("probing\n")) probing.resolve();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  exited.then(() => probing.resolve());
  // Bounded: a probe that never gets going is caught by the caller's count of probed nodes.
  const probingTimer = setTimeout(() => probing.resolve(), probingWaitMsMax);
  probing.promise.then(() => clearTimeout(probingTimer));
  return {
    /** Resolves once the probe has completed a counted round (or has exited). */
    probing: probing.promise,
    async stop(): Promise<Map<string, number>> {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      const result = output.replace(/^probing\n/, "").trim();
      return new Map(Object.entries(JSON.parse(result || "{}") as Record<string, number>));
    },
  };
}
