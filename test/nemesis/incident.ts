/**
 * The failover incident of issue 11 on real processes and a real network partition: a 3-node
 * cluster in network namespaces (`net-lab.ts`), writers inserting AUTOINCREMENT rows through the
 * node they believe leads, and the leader cut off from both peers for a while — twice — while the
 * clients, in the root namespace, still reach it.
 *
 * One cluster carries the three durability levels at once: a table per level (`u_local`, `u_one`,
 * `u_majority`, each `id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT NOT NULL`) and writers per
 * level, each a client of its own (the client library: it finds the leader, follows `NOT_LEADER`
 * and failovers, retries under one request id). Every `who` is unique in the run and is also the
 * write's request id, so the quarantine of a node names the writes it lost.
 *
 * After the cuts the writers stop, the cluster converges (equal content hashes), and the final
 * state is checked against what was acknowledged (`incident-checks.ts`).
 */
import { type Client, connect, isBatonClientError } from "../../src/client/index.ts";
import { runBaton } from "../e2e/cluster-harness.ts";
import {
  type IncidentFigures,
  type IncidentLevel,
  incidentLevels,
  judge,
  type QuarantinedWrite,
  tableOf,
} from "./incident-checks.ts";
import { NemesisCluster } from "./nemesis-cluster.ts";
import { convergedHash, findLeader, type NodeProcess, waitUntil } from "./node-processes.ts";
import { defaultOptions } from "./options.ts";

export type IncidentOptions = {
  readonly writersPerLevel: number;
  /** How long each cut lasts at least (longer while the majority side has no leader yet). */
  readonly cutMs: number;
  readonly cuts: number;
  /** Writes before the first cut, between cuts (once a stable leader is back) and after the last. */
  readonly writeMsBetweenCuts: number;
  /** Keep the run directory (node data and logs) when a check fails. */
  readonly keepOnFailure: boolean;
};

export const incidentDefaults: IncidentOptions = {
  writersPerLevel: 3,
  cutMs: 4_000,
  cuts: 2,
  writeMsBetweenCuts: 1_000,
  keepOnFailure: false,
};

/** One acknowledged insert: its row, and where and under which leadership it was acknowledged. */
export type Acknowledged = {
  readonly level: IncidentLevel;
  readonly who: string;
  readonly id: number;
  readonly node: string | null;
  readonly index: number;
  readonly term: number;
};

export type CutRecord = {
  readonly leader: string;
  readonly leaderTerm: number;
  /** The leader the majority side had elected when the cut was healed, or null. */
  readonly majorityLeader: string | null;
  readonly majorityTerm: number | null;
  /** When the majority side's leader was first seen, from the cut (polled every 100 ms). */
  readonly electedAfterMs: number | null;
  /** How long the cut lasted: `cutMs`, or until the majority side had a leader. */
  readonly heldMs: number;
  /**
   * From the cut to the first write acknowledged by another node than the cut leader, if one was
   * by the time the cluster was stable again.
   */
  readonly writeGapMs: number | null;
  /**
   * Writes the cut leader acknowledged in its old term once the cut was in place, per level: at
   * `one` and `majority` only writes its peers held before (their answers were on the way).
   */
  readonly acknowledgedByCutLeader: Record<IncidentLevel, number>;
};

export type IncidentResult = {
  readonly figures: IncidentFigures[];
  readonly cuts: CutRecord[];
  /** `leader-elected` records in the nodes' histories during the run. */
  readonly elections: number;
  /** Writes not acknowledged, by level and error code (`local NOT_CONFIRMED`). */
  readonly failures: Record<string, number>;
  readonly problems: string[];
  readonly runDirectory: string;
  readonly kept: boolean;
};

/** Nodes booting on a loaded machine (each with its query processes) can take tens of seconds. */
const startWaitMs = 60_000;
const leaderWaitMs = 30_000;
/** How much longer than `cutMs` a cut may last while the majority side elects a leader. */
const electionWaitMs = 20_000;
const convergeWaitMs = 60_000;
/** Writers finish their last call within their client's timeout; this bounds the wait for them. */
const writersStopWaitMs = 15_000;
const writeTimeoutMs = 5_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Builds the lab and the cluster, runs the incident, and removes everything it made. */
export async function runIncident(
  options: IncidentOptions,
  print: (line: string) => void,
): Promise<IncidentResult> {
  const cluster = await NemesisCluster.create(
    { ...defaultOptions, seed: 11, faults: ["partition-leader"], network: "namespaces", quiet: true },
    0,
  );
  let keep = false;
  try {
    const result = await runScenario(cluster, options, print);
    result.problems.push(...unexpectedExits(cluster.nodes));
    keep = options.keepOnFailure && result.problems.length > 0;
    return { ...result, runDirectory: cluster.runDirectory, kept: keep };
  } catch (error) {
    keep = options.keepOnFailure;
    const where = keep ? `kept in ${cluster.runDirectory}` : "BATON_INCIDENT_KEEP=1 keeps the run directory";
    const tails = cluster.nodes.map(
      (n) => `--- ${n.id} (${n.running ? "running" : "stopped"}):\n${n.logTail(8)}`,
    );
    throw new Error(`${(error as Error).message} (${where})\n${tails.join("\n")}`, { cause: error });
  } finally {
    await cluster.teardown(keep);
  }
}

async function runScenario(
  cluster: NemesisCluster,
  options: IncidentOptions,
  print: (line: string) => void,
): Promise<Omit<IncidentResult, "runDirectory" | "kept">> {
  const log = (line: string): void => print(`${(cluster.nowUs() / 1e6).toFixed(1).padStart(5)} s  ${line}`);
  cluster.startAll();
  const first = await stableLeader(cluster.nodes, startWaitMs);
  if (first === null) throw new Error(`no stable leader within ${startWaitMs} ms of starting`);
  const startedAtMs = Date.now();
  await createTables(cluster);
  log(`cluster up in namespaces of ${cluster.lab!.bridge}; ${first.node.id} leads in term ${first.term}`);
  const writers = new Writers(
    cluster.nodes.map((n) => n.url),
    options.writersPerLevel,
  );
  const writing = writers.run();
  const cuts: CutRecord[] = [];
  try {
    for (let i = 0; i < options.cuts; i++) {
      await sleep(options.writeMsBetweenCuts);
      cuts.push(await cutLeader(cluster, options.cutMs, writers, log));
    }
    await sleep(options.writeMsBetweenCuts);
  } finally {
    writers.stop();
    await Promise.race([writing, sleep(writersStopWaitMs)]);
    await writers.close();
  }
  log(`writers stopped: ${writers.acknowledged.length} inserts acknowledged`);
  const problems: string[] = [...writers.unexpected];
  for (const cut of cuts)
    if (cut.majorityLeader === null || cut.majorityTerm! <= cut.leaderTerm)
      problems.push(
        `the majority side elected no leader while ${cut.leader} was cut off: ${JSON.stringify(cut)}`,
      );
  const converged = await waitUntil(convergeWaitMs, () => convergedHash(cluster.nodes), 250);
  if (converged === null) {
    const states = await Promise.all(
      cluster.nodes.map(async (n) => `${n.id} ${JSON.stringify(await n.contentHash())}`),
    );
    problems.push(
      `replicas did not reach equal content hashes within ${convergeWaitMs} ms: ${states.join(", ")}`,
    );
  } else log(`converged at applied index ${converged.appliedIndex}`);
  const judged = await judge(cluster.nodes, writers.acknowledged);
  problems.push(...judged.problems);
  const shown = judged.quarantined[0];
  if (shown !== undefined) problems.push(...(await shownByCli(shown)));
  const elections = await electionsSince(cluster.nodes, startedAtMs);
  const failures = Object.fromEntries([...writers.failures].sort());
  return { figures: judged.figures, cuts, elections, failures, problems };
}

async function createTables(cluster: NemesisCluster): Promise<void> {
  const client = connect({ nodes: cluster.nodes.map((n) => n.url), timeoutMs: 20_000 });
  try {
    for (const level of incidentLevels)
      await client.execute(
        `CREATE TABLE ${tableOf(level)}(id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT NOT NULL)`,
        { durability: "majority" },
      );
  } finally {
    await client.close();
  }
}

/**
 * A leader every running node names, in the term they all share, and which says it leads: the
 * cluster is past its election and the old leader (if any) has rejoined.
 */
export async function stableLeader(
  nodes: readonly NodeProcess[],
  timeoutMs: number,
): Promise<{ node: NodeProcess; term: number } | null> {
  return waitUntil(timeoutMs, async () => {
    const statuses = await Promise.all(nodes.map((n) => n.status()));
    const first = statuses[0];
    if (first === null || first === undefined || first.leader === null) return null;
    const agreed = statuses.every(
      (s) => s !== null && s.term === first.term && s.leader?.id === first.leader!.id,
    );
    const node = nodes.find((n) => n.id === first.leader!.id);
    const leads = statuses[nodes.findIndex((n) => n.id === first.leader!.id)]?.role === "leader";
    return agreed && leads && node !== undefined ? { node, term: first.term } : null;
  });
}

/** Cuts the leader off from both peers (clients still reach it) for `cutMs`, heals, waits for a stable leader. */
async function cutLeader(
  cluster: NemesisCluster,
  cutMs: number,
  writers: Writers,
  log: (line: string) => void,
): Promise<CutRecord> {
  const leader = await stableLeader(cluster.nodes, leaderWaitMs);
  if (leader === null) throw new Error(`no stable leader to cut within ${leaderWaitMs} ms`);
  const index = leader.node.spec.index;
  const others = cluster.nodes.filter((n) => n !== leader.node);
  const acknowledgedBefore = writers.acknowledged.length;
  await cluster.lab!.separate(
    [index],
    others.map((n) => n.spec.index),
  );
  // From here every route is in place (an `ip` command can take a while on a loaded machine).
  const cutAtMs = performance.now();
  log(`cut ${leader.node.id} (leader, term ${leader.term}) from ${others.map((n) => n.id).join("+")}`);
  // The cut lasts `cutMs`, and longer if the majority side has not elected a leader by then (a
  // loaded machine can take seconds): the incident is a failover while the old leader is reachable.
  const elected = waitUntil(cutMs + electionWaitMs, () => findLeader(others), 100).then((found) => ({
    found,
    afterMs: performance.now() - cutAtMs,
  }));
  await sleep(cutMs);
  const { found: majority, afterMs: electedAfterMs } = await elected;
  await cluster.lab!.heal();
  const heldMs = performance.now() - cutAtMs;
  log(
    `healed after ${(heldMs / 1000).toFixed(1)} s; the majority side's leader: ${majority === null ? "none" : `${majority.node.id} (term ${majority.term}), seen ${(electedAfterMs / 1000).toFixed(1)} s into the cut`}`,
  );
  const stable = await stableLeader(cluster.nodes, leaderWaitMs);
  if (stable === null) throw new Error(`no stable leader within ${leaderWaitMs} ms of healing the cut`);
  log(`stable: ${stable.node.id} leads in term ${stable.term}`);
  const acknowledgedByCutLeader = { local: 0, one: 0, majority: 0 };
  for (const a of writers.acknowledged.slice(acknowledgedBefore))
    if (a.node === leader.node.id && a.term === leader.term && a.atMs >= cutAtMs)
      acknowledgedByCutLeader[a.level]++;
  const firstElsewhere = writers.acknowledged
    .slice(acknowledgedBefore)
    .find((a) => a.node !== null && a.node !== leader.node.id);
  const writeGapMs = firstElsewhere === undefined ? null : firstElsewhere.atMs - cutAtMs;
  return {
    leader: leader.node.id,
    leaderTerm: leader.term,
    majorityLeader: majority?.node.id ?? null,
    majorityTerm: majority?.term ?? null,
    electedAfterMs: majority === null ? null : Math.round(electedAfterMs),
    heldMs: Math.round(heldMs),
    writeGapMs: writeGapMs === null ? null : Math.round(writeGapMs),
    acknowledgedByCutLeader,
  };
}

/** An operator finds a lost write with the CLI: `baton orphans show ID --url NODE` gives its row. */
async function shownByCli({ ack, node, orphanId }: QuarantinedWrite): Promise<string[]> {
  const { code, stdout, output } = await runBaton(["orphans", "show", String(orphanId), "--url", node.url]);
  let shown = false;
  try {
    const view = JSON.parse(stdout) as {
      changes: { table: string; after: Record<string, unknown> | null }[];
    };
    shown = view.changes.some(
      (c) => c.table === tableOf(ack.level) && c.after?.id === ack.id && c.after?.who === ack.who,
    );
  } catch {}
  return code === 0 && shown
    ? []
    : [`baton orphans show ${orphanId} --url ${node.url} does not show ${ack.who} (id ${ack.id}): ${output}`];
}

/** Node processes that exited while the scenario ran (it stops none before the teardown). */
function unexpectedExits(nodes: readonly NodeProcess[]): string[] {
  return nodes.flatMap((node) =>
    node.exits.map(
      (exit) =>
        `${node.id} exited at ${(exit.atUs / 1e6).toFixed(1)} s with ${exit.code ?? exit.signal}: ${node.logTail(5)}`,
    ),
  );
}

/** Counts `leader-elected` records since `sinceMs` in every node's history (each is recorded by its winner). */
async function electionsSince(nodes: readonly NodeProcess[], sinceMs: number): Promise<number> {
  let count = 0;
  for (const node of nodes) {
    const response = await fetch(`${node.url}/v1/history?limit=1000`, { signal: AbortSignal.timeout(5_000) });
    const { history } = (await response.json()) as { history: { atMs: number; event: string }[] };
    count += history.filter((h) => h.event === "leader-elected" && h.atMs >= sinceMs).length;
  }
  return count;
}

/** The writers of every level: each a loop of inserts with a client of its own. */
class Writers {
  readonly acknowledged: (Acknowledged & { readonly atMs: number })[] = [];
  /** Calls that were not acknowledged, by error code. */
  readonly failures = new Map<string, number>();
  /** Anything a call threw that is not an operating error of the client (a bug): the writer stops. */
  readonly unexpected: string[] = [];
  private readonly clients: { level: IncidentLevel; writer: number; client: Client }[] = [];
  private stopped = false;

  constructor(urls: readonly string[], perLevel: number) {
    for (const level of incidentLevels)
      for (let writer = 0; writer < perLevel; writer++)
        this.clients.push({ level, writer, client: connect({ nodes: urls, timeoutMs: writeTimeoutMs }) });
  }

  async run(): Promise<void> {
    await Promise.all(this.clients.map((c) => this.loop(c.level, c.writer, c.client)));
  }

  private async loop(level: IncidentLevel, writer: number, client: Client): Promise<void> {
    for (let sequence = 0; !this.stopped; sequence++) {
      const who = `${level}-${writer}-${sequence}`;
      try {
        const answer = await client.execute([[`INSERT INTO ${tableOf(level)}(who) VALUES (?)`, who]], {
          durability: level,
          requestId: who,
        });
        const id = Number(answer.results[0]!.lastInsertRowid);
        const { index, term } = answer.position;
        this.acknowledged.push({ level, who, id, node: answer.node, index, term, atMs: performance.now() });
      } catch (error) {
        if (!isBatonClientError(error)) {
          this.unexpected.push(`${level} writer ${writer}: ${(error as Error).stack ?? String(error)}`);
          return;
        }
        const key = `${level} ${error.code}`;
        this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
        // A refusal can come at once (no leader yet): do not spin on it.
        await sleep(20);
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.client.close()));
  }
}
