/**
 * The incident's checks, from the converged final state and what the writers were acknowledged
 * (`incident.ts`):
 *  - no AUTOINCREMENT id acknowledged for one row is held by another (`reused`), at every level;
 *  - an acknowledged row is present with its acknowledged id, or missing: never present under
 *    another id (`moved`);
 *  - at `one` and `majority` nothing acknowledged is missing;
 *  - at `local` every missing acknowledged row is in the orphan quarantine of the node that
 *    acknowledged it, as that row (table, id, who), in the entry at the acknowledged log position:
 *    nothing acknowledged is lost silently.
 * Every node's quarantine is read over HTTP (`GET /v1/orphans`, `GET /v1/orphans/{id}`).
 */
import type { Acknowledged } from "./incident.ts";
import { findLeader, type NodeProcess } from "./node-processes.ts";

export const incidentLevels = ["local", "one", "majority"] as const;
export type IncidentLevel = (typeof incidentLevels)[number];

export function tableOf(level: IncidentLevel): string {
  return `u_${level}`;
}

export type IncidentFigures = {
  readonly level: IncidentLevel;
  readonly acknowledged: number;
  /** Acknowledged rows missing from the final state (their id free, or reused). */
  readonly lost: number;
  /** Of those, the ones found in the quarantine of the node that acknowledged them. */
  readonly quarantined: number;
  /** Ids acknowledged for one row and held by (or acknowledged for) another. */
  readonly reused: number;
  /** Acknowledged rows present under another id than the acknowledged one. */
  readonly moved: number;
  /** The final table's ids as runs (`1-57 1025-1190`): each failover starts above the reservation. */
  readonly idRuns: string;
};

type OrphanSummary = { id: number; index: number; term: number; requestIds: string[] };
type OrphanChange = { table: string; op: string; after: Record<string, unknown> | null };

/** Orphans listed per node, at most (the route's own bound). */
const orphansListedMax = 1_000;
const requestTimeoutMs = 10_000;

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(requestTimeoutMs) });
  if (!response.ok)
    throw new Error(`GET ${url}: ${response.status} ${(await response.text()).slice(0, 200)}`);
  return response.json();
}

/** One node's quarantine, read as an operator would: the list, and an entry's rows on demand. */
class Quarantine {
  readonly node: NodeProcess;
  readonly listed: OrphanSummary[];
  private readonly views = new Map<number, OrphanChange[]>();

  private constructor(node: NodeProcess, listed: OrphanSummary[]) {
    this.node = node;
    this.listed = listed;
  }

  static async read(node: NodeProcess): Promise<Quarantine> {
    const body = (await getJson(`${node.url}/v1/orphans?limit=${orphansListedMax}`)) as {
      orphans: OrphanSummary[];
    };
    return new Quarantine(node, body.orphans);
  }

  /** The id of the entry at the write's position holding its request id and its row, else null. */
  async holding(ack: Acknowledged): Promise<number | null> {
    const orphan = this.listed.find(
      (o) => o.index === ack.index && o.term === ack.term && o.requestIds.includes(ack.who),
    );
    if (orphan === undefined) return null;
    let changes = this.views.get(orphan.id);
    if (changes === undefined) {
      const view = (await getJson(`${this.node.url}/v1/orphans/${orphan.id}`)) as { changes: OrphanChange[] };
      changes = view.changes;
      this.views.set(orphan.id, changes);
    }
    const held = changes.some(
      (c) =>
        c.table === tableOf(ack.level) &&
        c.op === "insert" &&
        c.after?.id === ack.id &&
        c.after?.who === ack.who,
    );
    return held ? orphan.id : null;
  }
}

/** Every table's rows, `id -> who`, read linearizably from the leader. */
async function finalRows(nodes: readonly NodeProcess[]): Promise<Map<IncidentLevel, Map<number, string>>> {
  const leader = await findLeader(nodes);
  if (leader === null) throw new Error("no leader to read the final state from");
  const response = await fetch(`${leader.node.url}/v1/query`, {
    method: "POST",
    body: JSON.stringify({
      statements: incidentLevels.map((level) => `SELECT id, who FROM ${tableOf(level)}`),
      consistency: "linearizable",
    }),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  if (!response.ok) throw new Error(`the final read failed: ${response.status} ${await response.text()}`);
  const { results } = (await response.json()) as { results: { rows: [number, string][] }[] };
  return new Map(incidentLevels.map((level, i) => [level, new Map(results[i]!.rows)]));
}

/** A lost write found in a quarantine: the node holding it and the orphan's id there. */
export type QuarantinedWrite = {
  readonly ack: Acknowledged;
  readonly node: NodeProcess;
  readonly orphanId: number;
};

export async function judge(
  nodes: readonly NodeProcess[],
  acknowledged: readonly Acknowledged[],
): Promise<{ figures: IncidentFigures[]; problems: string[]; quarantined: QuarantinedWrite[] }> {
  const rows = await finalRows(nodes);
  const quarantines = new Map<string, Quarantine>();
  for (const node of nodes) quarantines.set(node.id, await Quarantine.read(node));
  const figures: IncidentFigures[] = [];
  const problems: string[] = [];
  const quarantined: QuarantinedWrite[] = [];
  for (const level of incidentLevels) {
    const acks = acknowledged.filter((a) => a.level === level);
    figures.push(await judgeLevel(level, acks, rows.get(level)!, quarantines, { problems, quarantined }));
  }
  for (const quarantine of quarantines.values())
    if (quarantine.listed.length >= orphansListedMax)
      problems.push(
        `${quarantine.node.id} lists ${orphansListedMax} orphans or more: some were not looked at`,
      );
  return { figures, problems, quarantined };
}

async function judgeLevel(
  level: IncidentLevel,
  acks: readonly Acknowledged[],
  rows: ReadonlyMap<number, string>,
  quarantines: ReadonlyMap<string, Quarantine>,
  found: { problems: string[]; quarantined: QuarantinedWrite[] },
): Promise<IncidentFigures> {
  const { problems } = found;
  const idOfWho = new Map([...rows].map(([id, who]) => [who, id]));
  const acknowledgedFor = new Map<number, string>();
  const reused = new Set<number>();
  let lost = 0;
  let quarantined = 0;
  let moved = 0;
  for (const ack of acks) {
    const earlier = acknowledgedFor.get(ack.id);
    if (earlier !== undefined && earlier !== ack.who) {
      reused.add(ack.id);
      problems.push(`${level}: id ${ack.id} was acknowledged for ${earlier} and again for ${ack.who}`);
    }
    acknowledgedFor.set(ack.id, ack.who);
    const holder = rows.get(ack.id);
    if (holder === ack.who) continue;
    if (holder !== undefined) {
      reused.add(ack.id);
      problems.push(`${level}: id ${ack.id} was acknowledged for ${ack.who} and is held by ${holder}`);
    }
    const elsewhere = idOfWho.get(ack.who);
    if (elsewhere !== undefined) {
      moved++;
      problems.push(
        `${level}: ${ack.who} was acknowledged with id ${ack.id} and is present with id ${elsewhere}`,
      );
      continue;
    }
    lost++;
    const quarantine = ack.node === null ? undefined : quarantines.get(ack.node);
    const orphanId = quarantine === undefined ? null : await quarantine.holding(ack);
    if (orphanId !== null) {
      quarantined++;
      found.quarantined.push({ ack, node: quarantine!.node, orphanId });
    } else if (level === "local")
      problems.push(
        `local: ${ack.who} (id ${ack.id}, index ${ack.index}, term ${ack.term}, acknowledged by ${ack.node}) is lost and not in that node's quarantine`,
      );
    if (level !== "local")
      problems.push(`${level}: ${ack.who} (id ${ack.id}, acknowledged by ${ack.node}) is lost`);
  }
  const idRuns = runsOf([...rows.keys()]);
  return { level, acknowledged: acks.length, lost, quarantined, reused: reused.size, moved, idRuns };
}

/** Sorted ids as runs of consecutive values: `1-57 1025-1190`. */
function runsOf(ids: number[]): string {
  const runs: string[] = [];
  const sorted = ids.sort((a, b) => a - b);
  let start = sorted[0];
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i + 1] === sorted[i]! + 1) continue;
    runs.push(start === sorted[i] ? `${start}` : `${start}-${sorted[i]}`);
    start = sorted[i + 1];
  }
  return runs.join(" ");
}
