/**
 * `npm run bench:failover [-- --kills 20 --writers 8 --baton-args="--missed-heartbeats 6"]`
 *
 * How long clients of the client library wait for a write after the leader dies. A 3-node cluster
 * (real processes, default timing unless `--baton-args` says otherwise) under `--writers` closed-
 * loop writers at `majority`; `--kills` times: wait for a steady leader, SIGKILL it, and measure
 * from the kill to the first write acknowledged in a newer term (by any writer); restart the killed
 * node and let it catch up. Prints each figure and the median, p99 and max.
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

async function main(): Promise<void> {
  console.log(
    `failover: ${kills} SIGKILLs of the leader, ${writers} writers, baton args [${batonArgs.join(" ")}]`,
  );
  const cluster = await Cluster.start(3, batonArgs);
  const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
  const acks: { atMs: number; term: number }[] = [];
  let running = true;
  try {
    await client.execute("CREATE TABLE f(id INTEGER PRIMARY KEY AUTOINCREMENT, w INTEGER)");
    const loops = Array.from({ length: writers }, async (_, w) => {
      while (running) {
        try {
          const result = await client.execute([["INSERT INTO f(w) VALUES (?)", w]], {
            durability: "majority",
          });
          acks.push({ atMs: performance.now(), term: result.term });
          if (acks.length > 100_000) acks.splice(0, 50_000);
        } catch {
          // the client library already retried within its budget; keep writing
        }
      }
    });
    const figures: number[] = [];
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
      cluster.startNode(leader);
      await cluster.convergedIndexes(cluster.nodes, 30_000).catch(() => {});
    }
    running = false;
    await Promise.all(loops);
    const sorted = [...figures].sort((a, b) => a - b);
    console.log(
      `\nfailover to the first acknowledged write: median ${percentile(sorted, 50).toFixed(0)} ms, p99 ${percentile(sorted, 99).toFixed(0)} ms, max ${sorted.at(-1)?.toFixed(0)} ms over ${figures.length} kills`,
    );
  } finally {
    running = false;
    await client.close().catch(() => {});
    await cluster.stop();
  }
}

await main();
