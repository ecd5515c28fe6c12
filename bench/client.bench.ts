/**
 * `npm run bench:client`: a local 3-node cluster (real processes, default timing) and, through the
 * client library (`fetch`), so its figures include the client library's own cost:
 * - write throughput and p50/p99 latency per durability level at 1, 16 and 64 concurrent clients,
 *   for single-row inserts and for batches of 100 rows;
 * - linearizable and `any` read throughput at 16 concurrent readers;
 * - failover time over 5 SIGKILL trials: from the kill of the leader to the first acknowledged
 *   write of a new term (median, max).
 * Load runs in this process and shares the machine's cores with the three nodes. For scale, it
 * also prints what the same load generator reaches against a trivial HTTP server on this machine.
 */
import { connect } from "../src/client/index.ts";
import { Cluster, waitFor } from "../test/e2e/cluster-harness.ts";
import { percentile } from "./stats.ts";

const phaseMs = Number(process.env.BATON_BENCH_PHASE_MS ?? 2000);
const failoverTrials = Number(process.env.BATON_BENCH_FAILOVERS ?? 5);

type Figure = {
  name: string;
  opsPerSecond: number;
  rowsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
};

async function measure(
  name: string,
  concurrency: number,
  rowsPerOp: number,
  operation: (worker: number, i: number) => Promise<unknown>,
): Promise<Figure> {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + phaseMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        try {
          await operation(worker, i);
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name,
    opsPerSecond: latencies.length / seconds,
    rowsPerSecond: (latencies.length * rowsPerOp) / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
  };
}

function print(figure: Figure): void {
  console.log(
    `${figure.name.padEnd(40)} ${figure.opsPerSecond.toFixed(0).padStart(8)} ops/s ${figure.rowsPerSecond.toFixed(0).padStart(8)} rows/s  p50 ${figure.p50Ms.toFixed(2).padStart(7)} ms  p99 ${figure.p99Ms.toFixed(2).padStart(7)} ms${figure.errors ? `  errors ${figure.errors}` : ""}`,
  );
}

async function writes(cluster: Cluster): Promise<void> {
  const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
  await client.execute("CREATE TABLE bench(id INTEGER PRIMARY KEY, worker INTEGER, i INTEGER, payload TEXT)");
  const payload = "x".repeat(100);
  for (const durability of ["local", "one", "majority", "all"] as const) {
    for (const concurrency of [1, 16, 64]) {
      print(
        await measure(`write ${durability} c=${concurrency} rows=1`, concurrency, 1, (w, i) =>
          client.execute([["INSERT INTO bench(worker, i, payload) VALUES (?, ?, ?)", w, i, payload]], {
            durability,
          }),
        ),
      );
      const batch = (w: number, i: number) =>
        Array.from({ length: 100 }, (_, r) => ({
          sql: "INSERT INTO bench(worker, i, payload) VALUES (?, ?, ?)",
          params: [w, i * 100 + r, payload],
        }));
      print(
        await measure(`write ${durability} c=${concurrency} rows=100`, concurrency, 100, (w, i) =>
          client.execute(batch(w, i), { durability }),
        ),
      );
    }
  }
  for (const consistency of ["linearizable", "any"] as const) {
    print(
      await measure(`read ${consistency} c=16`, 16, 1, (_w, i) =>
        client.query([`SELECT payload FROM bench WHERE id = ?`, 1 + ((i * 7919) % 1000)], { consistency }),
      ),
    );
  }
  await client.close();
}

async function failovers(cluster: Cluster): Promise<number[]> {
  const times: number[] = [];
  const client = connect({ nodes: cluster.nodes.map((n) => n.url), timeoutMs: 30_000 });
  await client.execute("CREATE TABLE IF NOT EXISTS failover(id INTEGER PRIMARY KEY, trial INTEGER)");
  for (let trial = 0; trial < failoverTrials; trial++) {
    const leader = await cluster.waitForLeader();
    const term = (await cluster.status(leader)).term;
    const killedAt = performance.now();
    await cluster.signal(leader, "SIGKILL");
    for (;;) {
      const result = await client.execute([["INSERT INTO failover(trial) VALUES (?)", trial]]);
      if (result.position.term > term) break;
    }
    times.push(performance.now() - killedAt);
    cluster.startNode(leader);
    await waitFor(
      "the killed node to rejoin",
      20_000,
      async () => (await cluster.status(leader).catch(() => null))?.role === "follower",
    );
    await cluster.convergedIndexes(cluster.nodes, 30_000);
  }
  await client.close();
  return times;
}

/** The same fetch-based load generator against a trivial HTTP server in another process. */
async function httpBaseline(): Promise<number> {
  const { fork } = await import("node:child_process");
  const child = fork(import.meta.filename, ["--baseline-server"], {
    stdio: ["ignore", "ignore", "ignore", "ipc"],
  });
  try {
    const port = await new Promise<number>((resolve) => child.once("message", (m) => resolve(Number(m))));
    const figure = await measure("baseline", 64, 1, async () => {
      const response = await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        body: '{"statements":["SELECT 1"]}',
      });
      await response.arrayBuffer();
    });
    return figure.opsPerSecond;
  } finally {
    child.kill("SIGTERM");
  }
}

if (process.argv.includes("--baseline-server")) {
  const http = await import("node:http");
  const server = http.createServer((request, response) => {
    request.resume();
    request.on("end", () =>
      response.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'),
    );
  });
  server.listen(0, "127.0.0.1", () => process.send?.((server.address() as { port: number }).port));
  process.once("SIGTERM", () => server.close(() => process.exit(0)));
} else {
  await runBenchmark();
}

async function runBenchmark(): Promise<void> {
  console.log(
    `load generator against a trivial HTTP server, 64 concurrent: ${(await httpBaseline()).toFixed(0)} req/s (the ceiling of this machine's HTTP path)`,
  );
  const cluster = await Cluster.start(3, []);
  try {
    console.log(
      `Baton cluster benchmark: 3 nodes on loopback, default timing (heartbeat 100 ms x 6), ${phaseMs} ms per figure`,
    );
    await writes(cluster);
    const times = (await failovers(cluster)).sort((a, b) => a - b);
    console.log(
      `failover (SIGKILL leader -> first write of a new term acknowledged), ${times.length} trials: median ${percentile(times, 50).toFixed(0)} ms, max ${times.at(-1)?.toFixed(0)} ms; all ${times.map((t) => t.toFixed(0)).join(", ")}`,
    );
  } finally {
    await cluster.stop();
  }
}
