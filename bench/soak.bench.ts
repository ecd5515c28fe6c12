/**
 * `npm run bench:soak [-- --minutes 10 --interval-s 30 --clients 16 --batch 20 --keys 200000]`
 * `[--inspect] [--baton-args="--snapshot-log-bytes 16777216"] [--node-options="--max-semi-space-size=8"]`
 * (`=` before a value that starts with a dash). `--node-options` are Node's flags for the nodes.
 *
 * A 3-node cluster (real processes, default timing and snapshot policy) under sustained writes:
 * `--clients` closed-loop clients, each writing batches of `--batch` upserts of a 300-byte value
 * into a table of `--keys` keys at `majority`. Every `--interval-s` it prints, per node, resident
 * memory, the log's bytes on disk, the snapshot directory's bytes, the database file's bytes, and
 * the snapshots taken and installed with the latest one's size and duration. At 2 minutes and at the
 * end it kills a follower (SIGKILL), restarts it at once and measures restart-to-caught-up: from
 * the restart to the moment its applied index reaches the leader's commit index as of the restart.
 * The summary compares memory and restart time at the end with their values at 2 minutes, and
 * lists the run's step-downs (from the replicated history), each with the snapshot takes of any node
 * that ran within 5 s before it (from the nodes' logs), how many takes overlapped another node's, and
 * each node's event-loop stalls (`loop.stalled` in its log: ticks a third of an election timeout late).
 *
 * Memory is printed as resident (RSS) with its anonymous, file-backed and shared parts; with
 * `--inspect` each node gets an inspector on a free loopback port (started by SIGUSR1) and each
 * line adds what `process.memoryUsage()` says inside the node: V8's heap (used of total), external
 * memory (array buffers among it) and V8's own malloc, so growth can be told apart as V8 heap or
 * native memory.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { StatusResponse } from "../src/api/api-types.ts";
import { connect } from "../src/client/index.ts";
import { Cluster, type ClusterNode, waitFor } from "../test/e2e/cluster-harness.ts";
import { inspectMemory, inspectorUrl, residentBreakdown } from "./process-memory.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    "interval-s": { type: "string", default: "30" },
    clients: { type: "string", default: "16" },
    batch: { type: "string", default: "20" },
    keys: { type: "string", default: "200000" },
    "early-restart-min": { type: "string", default: "2" },
    inspect: { type: "boolean", default: false },
    "baton-args": { type: "string", default: "" },
    "node-options": { type: "string", default: "" },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const intervalMs = Number(values["interval-s"]) * 1000;
const clients = Number(values.clients);
const batch = Number(values.batch);
const keys = Number(values.keys);
const earlyRestartMs = Number(values["early-restart-min"]) * 60_000;
/** Extra `baton start` flags of every node (default timing and snapshot policy without them). */
const batonArgs = values["baton-args"].split(" ").filter((arg) => arg !== "");

// `--inspect-port` alone starts no inspector; SIGUSR1 starts one in the node it is sent to, so the
// node's query processes (which inherit the option) never run one.
const nodeOptions = [values["node-options"], values.inspect ? "--inspect-port=127.0.0.1:0" : ""];
process.env.BATON_CHILD_NODE_OPTIONS = nodeOptions.filter((option) => option !== "").join(" ");

/** Each node process's inspector address, by pid, read from its log after SIGUSR1 started it. */
const inspectorUrls = new Map<number, string>();
/** The longest a node may take to print its inspector's address after SIGUSR1. */
const inspectorStartMsMax = 5_000;

async function inspectorOf(node: ClusterNode, pid: number): Promise<string | null> {
  const known = inspectorUrls.get(pid);
  if (known !== undefined) return known;
  const before = inspectorUrl(node.log.join(""));
  process.kill(pid, "SIGUSR1");
  const url = await waitFor("the inspector's address", inspectorStartMsMax, async () => {
    const found = inspectorUrl(node.log.join(""));
    return found !== null && found !== before ? found : null;
  }).catch(() => null);
  if (url !== null) inspectorUrls.set(pid, url);
  return url;
}

/** Resident memory with its parts, and the V8 heap apart from native memory under `--inspect`. */
async function memoryText(node: ClusterNode): Promise<{ rss: number | null; text: string }> {
  const pid = node.process?.pid;
  const resident = pid === undefined ? null : residentBreakdown(pid);
  if (resident === null) return { rss: null, text: "rss -" };
  let text = `rss ${mb(resident.rss)} MB (anon ${mb(resident.anonymous)}, file ${mb(resident.file)}, shm ${mb(resident.shared)})`;
  const url = values.inspect ? await inspectorOf(node, pid!) : null;
  const inside = url === null ? null : await inspectMemory(url);
  if (inside !== null)
    text += `, heap ${mb(inside.heapUsed)}/${mb(inside.heapTotal)} MB, external ${mb(inside.external)} (buffers ${mb(inside.arrayBuffers)}), v8 malloc ${mb(inside.mallocedMemory)}`;
  return { rss: resident.rss / (1 << 20), text };
}

function directoryBytes(directory: string): number {
  let total = 0;
  if (!fs.existsSync(directory)) return 0;
  for (const name of fs.readdirSync(directory)) {
    const stat = fs.statSync(path.join(directory, name), { throwIfNoEntry: false });
    if (stat?.isFile()) total += stat.size;
  }
  return total;
}

function fileBytes(file: string): number {
  return fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}

const mb = (bytes: number): string => (bytes / (1 << 20)).toFixed(1);

type Sample = { atMs: number; rss: Map<string, number | null>; role: Map<string, string> };

async function printInterval(cluster: Cluster, atMs: number, rows: number, seconds: number): Promise<Sample> {
  const rss = new Map<string, number | null>();
  const role = new Map<string, string>();
  const lines: string[] = [];
  for (const node of cluster.nodes) {
    const status: StatusResponse | null = await cluster.status(node).catch(() => null);
    const memory = await memoryText(node);
    rss.set(node.id, memory.rss);
    role.set(node.id, status?.role ?? "down");
    const s = status?.snapshots;
    lines.push(
      `  ${node.id} ${status?.role ?? "down"}: ${memory.text}, log ${mb(directoryBytes(path.join(node.dataDirectory, "log")))} MB, ` +
        `snapshots dir ${mb(directoryBytes(path.join(node.dataDirectory, "snapshots")))} MB, db ${mb(fileBytes(path.join(node.dataDirectory, "baton.db")) + fileBytes(path.join(node.dataDirectory, "baton.db-wal")))} MB, ` +
        `snapshots taken ${s?.taken ?? "-"} installed ${s?.installed ?? "-"} latest ${s?.latest ? `${mb(s.latest.bytes)} MB @${s.latest.index}` : "-"} last ${s?.lastDurationMs ?? "-"} ms, log from ${s?.logFirstIndex ?? "-"} to ${status?.lastIndex ?? "-"}`,
    );
  }
  console.log(`t=${(atMs / 1000).toFixed(0)} s: ${(rows / seconds).toFixed(0)} rows/s`);
  for (const line of lines) console.log(line);
  return { atMs, rss, role };
}

/** History records read back to count the run's elections (a soak sees a few at most). */
const historyRecordsMax = 500;

/** A snapshot a node took: when it ended (wall clock, from the node's log) and how long it ran. */
type SnapshotTake = { node: string; index: number; endMs: number; durationMs: number };
/** Every snapshot take seen in the nodes' logs, by node and index (the logs keep their latest lines only). */
const takes = new Map<string, SnapshotTake>();
/** How often the nodes' logs are read for snapshot takes. */
const takeScanMs = 5_000;

/** Every `loop.stalled` a node logged (its event loop stopped), by node and time. */
const stalls = new Map<string, { node: string; atMs: number; lateMs: number }>();

function scanStall(node: string, line: string): void {
  try {
    const entry = JSON.parse(line) as { time: number; lateMs: number };
    stalls.set(`${node}@${entry.time}`, { node, atMs: entry.time, lateMs: entry.lateMs });
  } catch {
    // A line cut between two chunks: read whole at the next scan.
  }
}

function scanTakes(cluster: Cluster): void {
  for (const node of cluster.nodes)
    for (const line of node.log.join("").split("\n")) {
      if (line.includes('"loop.stalled"')) scanStall(node.id, line);
      if (!line.includes('"snapshot.taken"')) continue;
      try {
        const entry = JSON.parse(line) as { time: number; index: number; durationMs: number };
        takes.set(`${node.id}@${entry.index}`, {
          node: node.id,
          index: entry.index,
          endMs: entry.time,
          durationMs: entry.durationMs,
        });
      } catch {
        // A line cut between two chunks: read whole at the next scan.
      }
    }
}

/** Snapshot takes running within `windowMs` before `atMs` (or at it), as `node index (start..end s)`. */
function takesBefore(atMs: number, windowMs: number, originMs: number): string {
  const near = [...takes.values()].filter(
    (t) => t.endMs >= atMs - windowMs && t.endMs - t.durationMs <= atMs,
  );
  if (near.length === 0) return "none";
  return near
    .map(
      (t) =>
        `${t.node} @${t.index} (${((t.endMs - t.durationMs - originMs) / 1000).toFixed(1)}..${((t.endMs - originMs) / 1000).toFixed(1)} s)`,
    )
    .join(", ");
}

/** Stalls at least this late are listed one by one, with what their node logged just before. */
const stallListedMs = 300;
/** How far before a listed stall its node's log lines are shown. */
const stallContextMs = 3_000;

/**
 * What `node` logged in the `windowMs` before `atMs` (the stall is logged when the loop resumes, so
 * the work that held it started before): each event once, with when it was last logged, in seconds
 * before the stall, and its count when repeated.
 */
function loggedBefore(node: ClusterNode, atMs: number, windowMs: number): string {
  const seen = new Map<string, { count: number; lastMs: number }>();
  for (const line of node.log.join("").split("\n")) {
    if (!line.startsWith("{")) continue;
    let entry: { time?: number; msg?: string };
    try {
      entry = JSON.parse(line) as { time?: number; msg?: string };
    } catch {
      continue;
    }
    if (entry.time === undefined || entry.msg === undefined || entry.msg === "loop.stalled") continue;
    if (entry.time < atMs - windowMs || entry.time > atMs) continue;
    const known = seen.get(entry.msg);
    seen.set(entry.msg, { count: (known?.count ?? 0) + 1, lastMs: entry.time });
  }
  if (seen.size === 0) return "nothing";
  return [...seen.entries()]
    .map(
      ([msg, s]) =>
        `${msg}${s.count > 1 ? ` x${s.count}` : ""} (-${((atMs - s.lastMs) / 1000).toFixed(2)} s)`,
    )
    .join(", ");
}

/** How long before a step-down a snapshot take counts as near it. */
const stepDownWindowMs = 5_000;

/** The run's elections and step-downs with their reasons, from the replicated history. */
async function printLeadership(cluster: Cluster, originMs: number): Promise<void> {
  const leader = await cluster.waitForLeader();
  const response = await fetch(`${leader.url}/v1/history?limit=${historyRecordsMax}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as {
    history?: { event: string; reason?: string; term: number; atMs: number; node: string }[];
  };
  const records = body.history ?? [];
  const elected = records.filter((r) => r.event === "leader-elected");
  const reasons: Record<string, number> = {};
  for (const r of records)
    if (r.event === "stepped-down") reasons[r.reason ?? "?"] = (reasons[r.reason ?? "?"] ?? 0) + 1;
  console.log(
    `  leadership: ${elected.length} leader elections (terms ${elected
      .map((r) => r.term)
      .sort((a, b) => a - b)
      .join(", ")}), step-downs by reason ${JSON.stringify(reasons)}`,
  );
  // Whether snapshot takes (three nodes take theirs at nearly the same index) line up with step-downs.
  const all = [...takes.values()];
  const overlapping = all.filter((a) =>
    all.some(
      (b) => b.node !== a.node && a.endMs - a.durationMs < b.endMs && b.endMs - b.durationMs < a.endMs,
    ),
  );
  console.log(
    `  snapshot takes seen: ${all.length}, running at the same time as another node's: ${overlapping.length}`,
  );
  const stalled = [...stalls.values()];
  const perNode = cluster.nodes.map((node) => {
    const own = stalled.filter((s) => s.node === node.id).map((s) => s.lateMs);
    return `${node.id} ${own.length}${own.length === 0 ? "" : ` (max ${Math.max(...own)} ms)`}`;
  });
  console.log(`  event-loop stalls logged (loop.stalled): ${perNode.join(", ")}`);
  for (const stall of stalled.filter((s) => s.lateMs >= stallListedMs).sort((a, b) => a.atMs - b.atMs)) {
    const node = cluster.nodes.find((n) => n.id === stall.node);
    if (node === undefined) continue;
    console.log(
      `  stall of ${stall.node} at ${((stall.atMs - originMs) / 1000).toFixed(1)} s, ${stall.lateMs} ms late; logged in the ${stallContextMs / 1000} s before: ${loggedBefore(node, stall.atMs, stallContextMs)}`,
    );
  }
  for (const r of records.filter((r) => r.event === "stepped-down"))
    console.log(
      `  step-down of ${r.node} in term ${r.term} at ${((r.atMs - originMs) / 1000).toFixed(1)} s (${r.reason}); snapshot takes within ${stepDownWindowMs / 1000} s before: ${takesBefore(r.atMs, stepDownWindowMs, originMs)}`,
    );
}

/** Kills a follower, restarts it at once, and times restart-to-caught-up. */
async function restartFollower(cluster: Cluster): Promise<{ node: string; ms: number; behind: number }> {
  const leader = await cluster.waitForLeader();
  const follower = cluster.nodes.find((n) => n !== leader)!;
  await cluster.signal(follower, "SIGKILL");
  const target = (await cluster.status(leader)).commitIndex;
  const started = performance.now();
  cluster.startNode(follower);
  await waitFor("the restarted follower to catch up", 300_000, async () => {
    const status = await cluster.status(follower).catch(() => null);
    return status !== null && status.appliedIndex >= target ? status : null;
  });
  const ms = performance.now() - started;
  console.log(`  restart of ${follower.id}: caught up with commit index ${target} in ${ms.toFixed(0)} ms`);
  return { node: follower.id, ms, behind: target };
}

/**
 * Cluster starts tried before giving up: on a loaded machine three nodes (and their query processes)
 * can take longer than the harness's wait for a leader, and a failed start stops what it started.
 */
const clusterStartAttemptsMax = 3;

async function startCluster(): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await Cluster.start(3, batonArgs);
    } catch (error) {
      if (attempt >= clusterStartAttemptsMax) throw error;
      console.log(
        `cluster start ${attempt} of ${clusterStartAttemptsMax} failed (${String(error)}); trying again`,
      );
    }
  }
}

async function main(): Promise<void> {
  console.log(
    `soak: ${values.minutes} min, ${clients} clients x ${batch}-row upsert batches over ${keys} keys, majority${batonArgs.length > 0 ? `, nodes started with ${batonArgs.join(" ")}` : ""}${values["node-options"] === "" ? "" : `, node options ${values["node-options"]}`}`,
  );
  const cluster = await startCluster();
  const client = connect({ nodes: cluster.nodes.map((n) => n.url) });
  let running = true;
  let rows = 0;
  let errors = 0;
  // Interrupted (Ctrl-C, a stopped run): stop the nodes this run started before exiting.
  let stopping = false;
  const interrupted = (signal: NodeJS.Signals) => {
    console.log(`${signal}: stopping the cluster`);
    running = false;
    if (stopping) return;
    stopping = true;
    void client
      .close()
      .catch(() => {})
      .then(() => cluster.stop())
      .catch((error: unknown) => console.log(`stopping the cluster failed: ${String(error)}`))
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    await client.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    const workers = Array.from({ length: clients }, async (_, w) => {
      let i = 0;
      while (running) {
        // The 300-byte value comes from the client, so figures compare with earlier runs. A literal
        // `hex(randomblob(150))` would also run in process (src/store/sized-calls.ts); a size the
        // leader cannot prove small, such as `randomblob(?)`, sends each batch through its write
        // sandbox, one at a time.
        const statements = Array.from({ length: batch }, () => ({
          sql: "INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
          params: [((w * 7919 + i++ * 104_729) % keys) + 1, randomBytes(150).toString("hex")],
        }));
        try {
          await client.execute(statements, { durability: "majority", timeoutMs: 10_000 });
          rows += batch;
        } catch {
          errors++;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    });
    const started = performance.now();
    const startedWallMs = Date.now();
    const takeScan = setInterval(() => scanTakes(cluster), takeScanMs);
    const samples: Sample[] = [];
    const restarts: { atMs: number; ms: number }[] = [];
    let early = false;
    let lastRows = 0;
    let lastAt = 0;
    while (performance.now() - started < durationMs) {
      const wait = Math.min(intervalMs, durationMs - (performance.now() - started));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
      const at = performance.now() - started;
      samples.push(await printInterval(cluster, at, rows - lastRows, (at - lastAt) / 1000));
      lastRows = rows;
      lastAt = at;
      if (!early && at >= earlyRestartMs) {
        early = true;
        restarts.push({ atMs: at, ms: (await restartFollower(cluster)).ms });
      }
    }
    restarts.push({ atMs: performance.now() - started, ms: (await restartFollower(cluster)).ms });
    running = false;
    await Promise.all(workers);
    console.log(`\nsummary: ${rows} rows written, ${errors} failed batches`);
    const atEarly = samples.find((s) => s.atMs >= earlyRestartMs) ?? samples[0];
    const last = samples.at(-1);
    for (const node of cluster.nodes) {
      const a = atEarly?.rss.get(node.id);
      const b = last?.rss.get(node.id);
      if (a != null && b != null)
        console.log(
          `  ${node.id} rss ${a.toFixed(0)} MB at ${((atEarly?.atMs ?? 0) / 60_000).toFixed(1)} min (${atEarly?.role.get(node.id)}) → ${b.toFixed(0)} MB at the end (${last?.role.get(node.id)}) (${(b / a).toFixed(2)}x)`,
        );
    }
    const [first, final] = [restarts[0], restarts.at(-1)];
    if (first !== undefined && final !== undefined && restarts.length > 1)
      console.log(
        `  restart-to-caught-up ${first.ms.toFixed(0)} ms at ${(first.atMs / 60_000).toFixed(1)} min → ${final.ms.toFixed(0)} ms at the end (${(final.ms / first.ms).toFixed(2)}x)`,
      );
    clearInterval(takeScan);
    scanTakes(cluster);
    await printLeadership(cluster, startedWallMs).catch((error: unknown) =>
      console.log(`  leadership: unknown (${String(error)})`),
    );
  } finally {
    running = false;
    await client.close().catch(() => {});
    await cluster.stop();
  }
}

await main();
