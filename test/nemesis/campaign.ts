/**
 * One campaign: build the cluster, run the clients, inject faults on the seeded schedule, heal,
 * wait for the cluster to converge, check the history, and tear everything down.
 *
 * Phases:
 *  1. Setup: run directory, network, tmpfs, nodes; a leader within `leaderWaitMs`; the schema.
 *  2. Faults and clients for `durationMs`: one fault at a time, kinds in seeded shuffled rounds so
 *     every enabled kind comes up; a node that exited without the campaign expecting it is an anomaly
 *     (and is restarted, so the run goes on).
 *  3. Heal: every cut, fsync fault and filler removed, every node resumed and running.
 *  4. Liveness: a leader within `leaderWaitMs`, `settleAppends` acknowledged appends.
 *  5. Convergence: every node applies the leader's commit index and reports the same content hash;
 *     every node's own `any` read of the lists equals the final lists.
 *  6. The list-append checker over the whole history against the final lists.
 * The run directory (history.jsonl, faults.json, summary.json, node logs) is kept when anything is
 * anomalous or `--keep` is given, and removed otherwise.
 */
import fs from "node:fs";
import path from "node:path";
import { connect } from "../../src/client/index.ts";
import { Prng } from "../../src/lib/prng.ts";
import { checkListAppend, type ListAppendLossCounts } from "../sim/list-append-checker.ts";
import { type Anomaly, type FaultContext, type FaultRecord, runFault } from "./faults.ts";
import { NemesisCluster } from "./nemesis-cluster.ts";
import { convergedHash, type NodeProcess, waitUntil } from "./node-processes.ts";
import type { CampaignOptions, FaultKind } from "./options.ts";
import {
  type CampaignSummary,
  faultCounts,
  fillRecovery,
  operationCounts,
  summaryText,
  writeAvailability,
} from "./summary.ts";
import { parseItems, schemaStatements, Workload } from "./workload.ts";

const leaderWaitMs = 30_000;
const convergeWaitMs = 60_000;
const settleAppends = 5;
/** After a heal, how long the next fault waits for every node to answer and a leader to exist. */
const healthyWaitMs = 30_000;
/** Clients finish their last call within their own timeouts; this bounds the wait for them. */
const clientsStopWaitMs = 30_000;

export type CampaignResult = {
  readonly passed: boolean;
  readonly summary: CampaignSummary;
  readonly text: string;
  readonly runDirectory: string;
  readonly kept: boolean;
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function shuffledRound(kinds: readonly FaultKind[], prng: Prng): FaultKind[] {
  const round = [...kinds];
  for (let i = round.length - 1; i > 0; i--) {
    const j = prng.intBetween(0, i);
    [round[i], round[j]] = [round[j]!, round[i]!];
  }
  return round;
}

export async function runCampaign(
  options: CampaignOptions,
  print: (line: string) => void,
): Promise<CampaignResult> {
  const prng = new Prng(options.seed);
  const diskIndex = prng.intBetween(0, options.nodeCount - 1);
  const cluster = await NemesisCluster.create(options, diskIndex);
  const onSignal = (): void => {
    void cluster.teardown(true).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let passed = false;
  try {
    const result = await runPhases(options, cluster, prng, print);
    passed = result.passed;
    return { ...result, kept: !passed || options.keep };
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await cluster.teardown(!passed || options.keep);
  }
}

async function runPhases(
  options: CampaignOptions,
  cluster: NemesisCluster,
  prng: Prng,
  print: (line: string) => void,
): Promise<Omit<CampaignResult, "kept">> {
  const anomalies: Anomaly[] = [];
  const anomaly = (kind: string, message: string): void => {
    anomalies.push({ kind, message });
    print(`ANOMALY [${kind}] ${message}`);
  };
  const log = (line: string): void => {
    if (!options.quiet) print(`${(cluster.nowUs() / 1e6).toFixed(1).padStart(6)} s  ${line}`);
  };
  print(
    `nemesis SEED=${options.seed} (replay: npm run nemesis -- --seed ${options.seed} …); run directory ${cluster.runDirectory}`,
  );
  for (const [kind, why] of cluster.skipped) print(`skipping ${kind}: ${why}`);
  cluster.startAll();
  if ((await cluster.leader(leaderWaitMs)) === null)
    throw new Error(`no leader within ${leaderWaitMs} ms of starting`);
  await createSchema(cluster);
  const urls = cluster.nodes.map((n) => n.url);
  const workload = new Workload(
    {
      nodeUrls: urls,
      keyCount: options.keyCount,
      durability: options.durability,
      consistencies: options.consistencies,
      clientCount: options.clientCount,
      clientModes: options.clientModes,
    },
    new Prng(options.seed + 1),
    () => cluster.nowUs(),
  );
  const workStartUs = cluster.nowUs();
  const clientsDone = workload.run();
  const context: FaultContext = { cluster, prng, options, anomaly, log };
  let faults: FaultRecord[];
  try {
    faults = await faultLoop(options, context, workStartUs);
  } finally {
    workload.stop();
  }
  const workEndUs = cluster.nowUs();
  await Promise.race([clientsDone, sleep(clientsStopWaitMs)]);
  log(`clients stopped; ${workload.history.length} operations`);
  await healAll(cluster, log);
  const finalLists = await settle(cluster, workload, anomaly, log);
  await workload.close();
  const lost = finalLists === null ? null : checkHistory(workload, finalLists, anomaly);
  reportUnexpectedExits(cluster.nodes, anomaly);
  fillRecovery(faults, workload.history);
  const summary: CampaignSummary = {
    seed: options.seed,
    nodes: options.nodeCount,
    durationMs: options.durationMs,
    durability: options.durability,
    reads: options.consistencies,
    network: cluster.lab === null ? "loopback" : "namespaces",
    operations: operationCounts(workload.history),
    faults: faultCounts(faults),
    skipped: Object.fromEntries(cluster.skipped),
    recoverMs: faults.map((f) => ({
      kind: f.kind,
      targets: f.targets.join("+"),
      recoverMs: f.recoverMs,
      writeGapMs: f.writeGapMs,
      notes: f.notes.join("; "),
    })),
    writeAvailability: writeAvailability(workload.history, workStartUs, workEndUs),
    lost,
    anomalies,
    finalListLengths: finalLists === null ? [] : [...finalLists.values()].map((l) => l.length),
  };
  const text = summaryText(summary, options);
  // The verdict first: should writing the records fail, it is already printed.
  print(`verdict: ${anomalies.length === 0 ? "no anomaly" : `${anomalies.length} anomalies`}`);
  writeRecords(cluster.runDirectory, workload, faults, summary);
  return { passed: anomalies.length === 0, summary, text, runDirectory: cluster.runDirectory };
}

async function createSchema(cluster: NemesisCluster): Promise<void> {
  const client = connect({ nodes: cluster.nodes.map((n) => n.url), timeoutMs: 20_000 });
  try {
    for (const statement of schemaStatements) await client.execute(statement, { durability: "majority" });
  } finally {
    await client.close();
  }
}

async function faultLoop(
  options: CampaignOptions,
  context: FaultContext,
  workStartUs: number,
): Promise<FaultRecord[]> {
  const { cluster, prng } = context;
  const enabled = options.faults.filter((k) => !cluster.skipped.has(k));
  const deadlineUs = workStartUs + options.durationMs * 1000;
  const faults: FaultRecord[] = [];
  let plan: FaultKind[] = [];
  let started = 0;
  while (enabled.length > 0) {
    await sleep(prng.intBetween(options.faultGapMsMin, options.faultGapMsMax));
    // The first round of every enabled kind runs whole even past the deadline: on a loaded machine
    // slow restarts could crowd a kind out of a short run, which then claimed to have tried it.
    if (started >= enabled.length && cluster.nowUs() + options.faultHoldMsMax * 1000 > deadlineUs) break;
    restartUnexpectedlyStopped(context);
    if (plan.length === 0) plan = shuffledRound(enabled, prng);
    started++;
    const kind = plan.shift()!;
    let record: FaultRecord;
    try {
      record = await runFault(kind, context);
    } catch (error) {
      // A fault that could not be carried out is the campaign's own failure: reported, and the run goes on.
      context.anomaly("campaign", `the ${kind} fault failed: ${(error as Error).stack ?? String(error)}`);
      continue;
    }
    faults.push(record);
    context.log(
      `${kind} ${record.targets.join("+")}: ${((record.healUs - record.startUs) / 1000).toFixed(0)} ms${record.notes.length > 0 ? `; ${record.notes.join("; ")}` : ""}`,
    );
    // Faults do not overlap by accident: the next waits until every node answers and one leads
    // (a restarted node can take seconds to boot on a loaded machine; two nodes of three down is
    // an outage by design, not a finding).
    if ((await waitUntil(healthyWaitMs, () => allAnswerWithLeader(cluster.nodes), 250)) === null)
      context.log(`not every node answered with a leader known ${healthyWaitMs} ms after healing ${kind}`);
  }
  const remainingMs = (deadlineUs - cluster.nowUs()) / 1000;
  if (remainingMs > 0) await sleep(remainingMs);
  return faults;
}

/** A node the campaign did not stop, that is gone: reported at the end, restarted now. */
function restartUnexpectedlyStopped(context: FaultContext): void {
  for (const node of context.cluster.nodes) {
    if (node.running) continue;
    context.log(`${node.id} is down without a fault that stops it; restarting it`);
    context.cluster.start(node);
  }
}

async function healAll(cluster: NemesisCluster, log: (l: string) => void): Promise<void> {
  await cluster.lab?.heal();
  for (const node of cluster.nodes) {
    node.setFsyncFault("");
    node.signal("SIGCONT");
  }
  if (cluster.diskNode !== null)
    fs.rmSync(path.join(cluster.diskNode.spec.dataDirectory, "nemesis-fill"), { force: true });
  for (const node of cluster.nodes) if (!node.running) cluster.start(node);
  log("healed: every cut, fsync fault and filler removed; every node running");
}

/** Liveness and convergence; returns the final lists, or null when the cluster did not settle. */
async function settle(
  cluster: NemesisCluster,
  workload: Workload,
  anomaly: (k: string, m: string) => void,
  log: (l: string) => void,
): Promise<Map<number, number[]> | null> {
  const leader = await cluster.leader(leaderWaitMs);
  if (leader === null) {
    anomaly("liveness", `no leader within ${leaderWaitMs} ms of healing every fault`);
    return null;
  }
  const client = connect({ nodes: cluster.nodes.map((n) => n.url), timeoutMs: 20_000 });
  try {
    for (let i = 0; i < settleAppends; i++) {
      const op = await workload.append(0, "library", client, 1_000_000_000 + i, `settle-${i}`);
      if (op.outcome !== "ok")
        anomaly("liveness", `settle append ${i} after healing: ${op.outcome} (${op.code})`);
    }
    const converged = await waitUntil(convergeWaitMs, () => convergedHash(cluster.nodes), 250);
    if (converged === null) {
      const states = await Promise.all(
        cluster.nodes.map(async (n) => `${n.id} ${JSON.stringify(await n.contentHash())}`),
      );
      anomaly(
        "convergence",
        `replicas did not reach equal content hashes within ${convergeWaitMs} ms: ${states.join(", ")}`,
      );
    } else
      log(
        `converged: every node at applied index ${converged.appliedIndex}, content hash ${converged.hash.slice(0, 16)}`,
      );
    const final = await readLists(client, null);
    for (const node of cluster.nodes) {
      const own = await readLists(null, node).catch((error: unknown) => String(error));
      if (typeof own === "string" || JSON.stringify([...own]) !== JSON.stringify([...final]))
        anomaly(
          "convergence",
          `${node.id}'s own read of the lists differs from the leader's: ${typeof own === "string" ? own : "different content"}`,
        );
    }
    return final;
  } catch (error) {
    anomaly("liveness", `reading the final lists failed: ${String(error)}`);
    return null;
  } finally {
    await client.close();
  }
}

async function allAnswerWithLeader(nodes: readonly NodeProcess[]): Promise<true | null> {
  const statuses = await Promise.all(nodes.map((n) => n.status()));
  return statuses.every((s) => s !== null) && statuses.some((s) => s?.role === "leader") ? true : null;
}

/** Every key's list: linearizable through the client, or one node's own state at `any`. */
async function readLists(
  client: ReturnType<typeof connect> | null,
  node: NodeProcess | null,
): Promise<Map<number, number[]>> {
  const statement = "SELECT key, items FROM lists ORDER BY key";
  let rows: readonly (readonly unknown[])[];
  if (client !== null)
    rows = (await client.queryRaw([statement], { consistency: "linearizable" })).results[0]!.rows;
  else {
    const response = await fetch(`${node!.url}/v1/query`, {
      method: "POST",
      body: JSON.stringify({ statements: [statement], consistency: "any" }),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok)
      throw new Error(`${node!.id} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
    rows = ((await response.json()) as { results: { rows: unknown[][] }[] }).results[0]!.rows;
  }
  return new Map(rows.map((row) => [Number(row[0]), parseItems(row[1])]));
}

function checkHistory(
  workload: Workload,
  finalLists: Map<number, number[]>,
  anomaly: (k: string, m: string) => void,
): ListAppendLossCounts {
  const result = checkListAppend(workload.history, finalLists);
  for (const violation of result.violations) anomaly(violation.kind, violation.message);
  return result.lost;
}

function reportUnexpectedExits(nodes: readonly NodeProcess[], anomaly: (k: string, m: string) => void): void {
  for (const node of nodes)
    for (const exit of node.exits)
      if (!exit.expected)
        anomaly(
          "node-exit",
          `${node.id} exited unexpectedly at ${(exit.atUs / 1e6).toFixed(1)} s with ${exit.code ?? exit.signal}; see ${path.basename(node.spec.logPath)}`,
        );
}

function writeRecords(
  directory: string,
  workload: Workload,
  faults: readonly FaultRecord[],
  summary: CampaignSummary,
): void {
  // One line at a time: a 30-minute run's history (~100,000 operations, reads holding whole lists)
  // is longer than the longest string V8 makes, and joined in one it threw.
  const history = fs.openSync(path.join(directory, "history.jsonl"), "w");
  try {
    for (const op of workload.history) fs.writeSync(history, `${JSON.stringify(op)}\n`);
  } finally {
    fs.closeSync(history);
  }
  fs.writeFileSync(path.join(directory, "faults.json"), `${JSON.stringify(faults, null, 2)}\n`);
  fs.writeFileSync(path.join(directory, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
}
