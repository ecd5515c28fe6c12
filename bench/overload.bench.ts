/**
 * `npm run bench:overload [-- --clients 512 --baseline 64 --seconds 8 --runs 3 --baton-args="…"]`
 *
 * Overload: a 3-node cluster (real processes) tuned for `--baseline` clients — its writes in flight
 * bounded at that many (`--writes-in-flight-max`; `--baton-args` adds or overrides flags) — first
 * under `--baseline` closed-loop clients (the load the other benchmarks use), then under
 * `--clients`, alternating, `--runs` times. Each client sends single-row inserts at
 * `majority` to the leader over its own keep-alive connection and sends its next request as soon
 * as the answer arrives; after an answer with `Retry-After` (OVERLOADED) it waits that long, as the
 * client library does. For each phase it prints goodput (acknowledged writes per second in the
 * measured window), p50 and p99 latency of acknowledged writes, the answers by code with the p50
 * latency of refusals, elections during the phase (the highest term after minus before), the
 * slowest /healthz answer of any node (probed every 100 ms from a process of its own), and the
 * event loop's delay and loop-delay refusals the nodes report in /v1/status. The summary gives the
 * medians and the goodput ratio of overload to baseline.
 *
 * `--sandboxed` writes a statement the leader cannot prove short (`randomblob` of a parameter), so
 * every batch goes through its write sandbox: the cost of that path under the same load.
 */
import http from "node:http";
import { parseArgs } from "node:util";
import { Cluster, type ClusterNode } from "../test/e2e/cluster-harness.ts";
import { probeHealth } from "../test/e2e/health-probe.ts";
import { median, percentile } from "./stats.ts";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "512" },
    baseline: { type: "string", default: "64" },
    seconds: { type: "string", default: "8" },
    "warmup-seconds": { type: "string", default: "2" },
    runs: { type: "string", default: "3" },
    "baton-args": { type: "string", default: "" },
    sandboxed: { type: "boolean", default: false },
  },
});
const insertSql = values.sandboxed
  ? "INSERT INTO o(c, i, pad) VALUES (?, ?, randomblob(?))"
  : "INSERT INTO o(c, i, pad) VALUES (?, ?, ?)";
const overloadClients = Number(values.clients);
const baselineClients = Number(values.baseline);
const measuredMs = Number(values.seconds) * 1000;
const warmupMs = Number(values["warmup-seconds"]) * 1000;
const runs = Number(values.runs);
const batonArgs = [
  "--writes-in-flight-max",
  String(baselineClients),
  ...String(values["baton-args"])
    .split(/\s+/)
    .filter((a) => a !== ""),
];
/** A request's own bound on the server, and the client's bound on waiting for its answer. */
const requestTimeoutMs = 5_000;
const statusEveryMs = 250;

type Answer = { status: number; code: string; retryAfterMs: number };

function insert(agent: http.Agent, node: ClusterNode, body: string): Promise<Answer> {
  return new Promise((resolve) => {
    const request = http.request(
      {
        host: "127.0.0.1",
        port: node.httpPort,
        path: "/v1/execute",
        method: "POST",
        agent,
        timeout: requestTimeoutMs + 5_000,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const status = response.statusCode ?? 0;
          const retryAfterMs = Number(response.headers["retry-after"] ?? 0) * 1000;
          if (status === 200) return resolve({ status, code: "ok", retryAfterMs });
          let code = `HTTP ${status}`;
          try {
            code = JSON.parse(Buffer.concat(chunks).toString("utf8")).error.code;
          } catch {}
          resolve({ status, code, retryAfterMs });
        });
        response.on("error", () => resolve({ status: 0, code: "UNREACHABLE", retryAfterMs: 0 }));
      },
    );
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", () => resolve({ status: 0, code: "UNREACHABLE", retryAfterMs: 0 }));
    request.end(body);
  });
}

type Phase = {
  clients: number;
  goodput: number;
  p50Ms: number;
  p99Ms: number;
  refusalP50Ms: number;
  codes: Map<string, number>;
  elections: number;
  healthzMaxMs: number;
  loopDelayMaxMs: number;
  loopDelayRefusals: number;
};

async function highestTerm(cluster: Cluster): Promise<number> {
  const statuses = await Promise.all(cluster.nodes.map((node) => cluster.status(node)));
  return Math.max(...statuses.map((status) => status.term));
}

async function loopDelayRefusals(cluster: Cluster): Promise<number> {
  const statuses = await Promise.all(cluster.nodes.map((node) => cluster.status(node)));
  return statuses.reduce((sum, status) => sum + status.admission.refused.loopDelay, 0);
}

/** Samples every node's reported loop delay until stopped; the largest seen. */
function sampleLoopDelay(cluster: Cluster): { stop: () => Promise<number> } {
  let running = true;
  let largestMs = 0;
  const loop = (async () => {
    while (running) {
      const statuses = await Promise.all(cluster.nodes.map((node) => cluster.status(node).catch(() => null)));
      for (const status of statuses) largestMs = Math.max(largestMs, status?.admission.loopDelayMs ?? 0);
      await new Promise((resolve) => setTimeout(resolve, statusEveryMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return largestMs;
    },
  };
}

async function phase(cluster: Cluster, clients: number): Promise<Phase> {
  const leader = await cluster.waitForLeader();
  const termBefore = await highestTerm(cluster);
  const refusalsBefore = await loopDelayRefusals(cluster);
  const health = probeHealth(cluster.nodes);
  const loopDelay = sampleLoopDelay(cluster);
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const windowStart = performance.now() + warmupMs;
  const windowEnd = windowStart + measuredMs;
  const okMs: number[] = [];
  const refusedMs: number[] = [];
  const codes = new Map<string, number>();
  let next = 0;
  const client = async (): Promise<void> => {
    while (performance.now() < windowEnd) {
      const body = JSON.stringify({
        statements: [{ sql: insertSql, params: [clients, next++, 16] }],
        durability: "majority",
        timeoutMs: requestTimeoutMs,
      });
      const started = performance.now();
      const answer = await insert(agent, leader, body);
      const finished = performance.now();
      if (finished >= windowStart && finished <= windowEnd) {
        codes.set(answer.code, (codes.get(answer.code) ?? 0) + 1);
        (answer.code === "ok" ? okMs : refusedMs).push(finished - started);
      }
      if (answer.code !== "ok")
        await new Promise((resolve) => setTimeout(resolve, Math.max(5, answer.retryAfterMs)));
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  agent.destroy();
  const healthzMaxMs = Math.max(...(await health.stop()).values());
  const loopDelayMaxMs = await loopDelay.stop();
  okMs.sort((a, b) => a - b);
  refusedMs.sort((a, b) => a - b);
  return {
    clients,
    goodput: okMs.length / (measuredMs / 1000),
    p50Ms: percentile(okMs, 50),
    p99Ms: percentile(okMs, 99),
    refusalP50Ms: percentile(refusedMs, 50),
    codes,
    elections: (await highestTerm(cluster)) - termBefore,
    healthzMaxMs,
    loopDelayMaxMs,
    loopDelayRefusals: (await loopDelayRefusals(cluster)) - refusalsBefore,
  };
}

function report(p: Phase): string {
  const codes = [...p.codes].map(([code, count]) => `${code} ${count}`).join(", ");
  return (
    `${String(p.clients).padStart(4)} clients: ${p.goodput.toFixed(0).padStart(6)} writes/s, ` +
    `p50 ${p.p50Ms.toFixed(1)} ms, p99 ${p.p99Ms.toFixed(1)} ms, elections ${p.elections}, ` +
    `/healthz max ${p.healthzMaxMs.toFixed(0)} ms, loop delay max ${p.loopDelayMaxMs.toFixed(0)} ms ` +
    `(${p.loopDelayRefusals} shed), refusals p50 ${Number.isNaN(p.refusalP50Ms) ? "-" : p.refusalP50Ms.toFixed(1)} ms; ${codes}`
  );
}

function summary(label: string, phases: Phase[]): string {
  const of = (pick: (p: Phase) => number) => median(phases.map(pick));
  return (
    `${label}: median goodput ${of((p) => p.goodput).toFixed(0)} writes/s, p99 ${of((p) => p.p99Ms).toFixed(1)} ms, ` +
    `elections ${phases.reduce((sum, p) => sum + p.elections, 0)} in ${phases.length} runs, ` +
    `/healthz max ${Math.max(...phases.map((p) => p.healthzMaxMs)).toFixed(0)} ms`
  );
}

async function main(): Promise<void> {
  console.log(
    `overload: ${overloadClients} vs ${baselineClients} closed-loop writers of ${insertSql}, ${runs} runs of ${measuredMs / 1000} s (+${warmupMs / 1000} s warm-up), baton args [${batonArgs.join(" ")}]`,
  );
  const cluster = await Cluster.start(3, batonArgs);
  try {
    const leader = await cluster.waitForLeader();
    const created = await insert(
      new http.Agent(),
      leader,
      JSON.stringify({ statements: ["CREATE TABLE o(id INTEGER PRIMARY KEY, c INTEGER, i INTEGER, pad)"] }),
    );
    if (created.code !== "ok") throw new Error(`CREATE TABLE answered ${created.code}`);
    const baseline: Phase[] = [];
    const overload: Phase[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const [clients, into] of [
        [baselineClients, baseline],
        [overloadClients, overload],
      ] as const) {
        const measured = await phase(cluster, clients);
        into.push(measured);
        console.log(`run ${run}, ${report(measured)}`);
      }
    }
    console.log(`\n${summary(`baseline (${baselineClients})`, baseline)}`);
    console.log(summary(`overload (${overloadClients})`, overload));
    const ratio = median(overload.map((p) => p.goodput)) / median(baseline.map((p) => p.goodput));
    console.log(`goodput under overload: ${ratio.toFixed(2)}x the baseline's`);
  } finally {
    await cluster.stop();
  }
}

await main();
