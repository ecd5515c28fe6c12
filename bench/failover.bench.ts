/**
 * `npm run bench:failover [-- --kills 20 --writers 8 --baton-args="--missed-heartbeats 6"]`
 *
 * How long clients of the client library wait for a write after the leader dies. A 3-node cluster
 * (real processes, default timing unless `--baton-args` says otherwise) under `--writers` closed-
 * loop writers at `majority`; `--kills` times: wait for a steady leader, SIGKILL it, and measure
 * from the kill to the first write acknowledged in a newer term (by any writer); restart the killed
 * node and let it catch up. Prints each figure and the median, p99 and max.
 *
 * Also, per kill, the p50 latency of the writes acknowledged in the second before the kill, and in
 * the new leader's first second and its next two (from its first acknowledged write): a new leader
 * runs its write path before V8 has optimized it there, and this shows for how long that costs.
 */
import { parseArgs } from "node:util";
import { connect } from "../src/client/index.ts";
import { Cluster, waitFor } from "../test/e2e/cluster-harness.ts";

const { values } = parseArgs({
  options: {
    kills: { type: "string", default: "20" },
    writers: { type: "string", default: "8" },
    "baton-args": { type: "string", default: "" },
    "settle-ms": { type: "string", default: "1500" },
  },
});
const kills = Number(values.kills);
const writers = Number(values.writers);
const settleMs = Number(values["settle-ms"]);
const batonArgs = String(values["baton-args"])
  .split(/\s+/)
  .filter((a) => a !== "");

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

type Ack = { atMs: number; term: number; latencyMs: number };

/** How long after its first acknowledged write the new leader's latency is followed. */
const newLeaderWindowMs = 3000;

function p50Between(acks: readonly Ack[], fromMs: number, toMs: number, term: number | null): number {
  const inside = acks.filter((a) => a.atMs >= fromMs && a.atMs < toMs && (term === null || a.term === term));
  return percentile(
    inside.map((a) => a.latencyMs).sort((a, b) => a - b),
    50,
  );
}

/** Prints the write p50 before the kill and in the new leader's first seconds; returns the ratios. */
function reportNewLeader(
  acks: readonly Ack[],
  killedAt: number,
  recovered: Ack,
): { first: number; next: number } {
  const before = p50Between(acks, killedAt - 1000, killedAt, null);
  const first = p50Between(acks, recovered.atMs, recovered.atMs + 1000, recovered.term);
  const next = p50Between(acks, recovered.atMs + 1000, recovered.atMs + newLeaderWindowMs, recovered.term);
  console.log(
    `    write p50: ${before.toFixed(2)} ms in the last second before the kill; the new leader's first second ${first.toFixed(2)} ms, next two ${next.toFixed(2)} ms`,
  );
  return { first: first / before, next: next / before };
}

async function main(): Promise<void> {
  console.log(
    `failover: ${kills} SIGKILLs of the leader, ${writers} writers, baton args [${batonArgs.join(" ")}]`,
  );
  const cluster = await Cluster.start(3, batonArgs);
  const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
  const acks: Ack[] = [];
  let running = true;
  try {
    await client.execute("CREATE TABLE f(id INTEGER PRIMARY KEY AUTOINCREMENT, w INTEGER)");
    const loops = Array.from({ length: writers }, async (_, w) => {
      while (running) {
        try {
          const startedMs = performance.now();
          const result = await client.execute([["INSERT INTO f(w) VALUES (?)", w]], {
            durability: "majority",
          });
          const atMs = performance.now();
          acks.push({ atMs, term: result.term, latencyMs: atMs - startedMs });
          if (acks.length > 100_000) acks.splice(0, 50_000);
        } catch {
          // the client library already retried within its budget; keep writing
        }
      }
    });
    const figures: number[] = [];
    const slowdowns: { first: number; next: number }[] = [];
    for (let k = 1; k <= kills; k++) {
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      const leader = await cluster.waitForLeader();
      const term = (await cluster.status(leader)).term;
      const killedAt = performance.now();
      await cluster.signal(leader, "SIGKILL");
      const recovered = await waitFor(
        "a write acknowledged in a newer term",
        30_000,
        async () => acks.find((a) => a.atMs > killedAt && a.term > term) ?? null,
      );
      const ms = recovered.atMs - killedAt;
      figures.push(ms);
      console.log(
        `  kill ${k}: first write acknowledged ${ms.toFixed(0)} ms after the kill (term ${term} → ${recovered.term})`,
      );
      await new Promise((resolve) =>
        setTimeout(resolve, recovered.atMs + newLeaderWindowMs - performance.now()),
      );
      slowdowns.push(reportNewLeader(acks, killedAt, recovered));
      cluster.startNode(leader);
      await cluster.convergedIndexes(cluster.nodes, 30_000).catch(() => {});
    }
    running = false;
    await Promise.all(loops);
    const sorted = [...figures].sort((a, b) => a - b);
    console.log(
      `\nfailover to the first acknowledged write: median ${percentile(sorted, 50).toFixed(0)} ms, p99 ${percentile(sorted, 99).toFixed(0)} ms, max ${sorted.at(-1)?.toFixed(0)} ms over ${figures.length} kills`,
    );
    const median = (values: number[]) =>
      percentile(
        values.toSorted((a, b) => a - b),
        50,
      );
    console.log(
      `new leader's write p50 against the old leader's last second, medians over kills: first second ${median(slowdowns.map((s) => s.first)).toFixed(2)}×, next two ${median(slowdowns.map((s) => s.next)).toFixed(2)}×`,
    );
  } finally {
    running = false;
    await client.close().catch(() => {});
    await cluster.stop();
  }
}

await main();
