/**
 * The campaign's options: command-line flags, their defaults, and the fault kinds.
 *
 * One seed drives every random choice the campaign makes itself (the fault schedule, targets,
 * durations, the corrupted bytes, the clients' operations); the printed seed replays the same
 * schedule. Real processes and real time decide the rest (who leads when a fault starts, how long an
 * election takes), so a replay follows the same plan, not the same interleaving.
 */
import { parseArgs } from "node:util";
import type { Consistency, Durability } from "../../src/api/api-types.ts";

export const faultKinds = [
  "kill",
  "pause",
  "partition-leader",
  "partition-halves",
  "partition-bridge",
  "partition-one-way",
  "disk-full",
  "fsync-slow",
  "fsync-fail",
  "wal-torn",
  "wal-corrupt",
  "db-damage",
] as const;
export type FaultKind = (typeof faultKinds)[number];

export const networkFaultKinds: readonly FaultKind[] = faultKinds.filter((k) => k.startsWith("partition-"));

export type ClientMode = "library" | "raw";

export type CampaignOptions = {
  readonly seed: number;
  readonly durationMs: number;
  readonly nodeCount: 3 | 5;
  readonly faults: readonly FaultKind[];
  readonly durability: Durability;
  readonly consistencies: readonly Consistency[];
  readonly clientCount: number;
  readonly keyCount: number;
  /** Clients alternate between these: the client library (retries with request ids) and raw HTTP. */
  readonly clientModes: readonly ClientMode[];
  /** Quiet time between two faults, drawn from this range. */
  readonly faultGapMsMin: number;
  readonly faultGapMsMax: number;
  /** How long a fault lasts before it is healed, drawn from this range. */
  readonly faultHoldMsMin: number;
  readonly faultHoldMsMax: number;
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  /**
   * Size of the tmpfs under the disk-full node's data directory. The fault fills whatever is free, so
   * the size only has to hold what the node keeps between faults: a log of up to `snapshotLogBytes`
   * (64 MiB) before it compacts, two snapshots, the database and its WAL. At 64 MiB a 30-minute run's
   * node filled it with no fault held and crashed on every restart (ENOSPC).
   */
  readonly diskMebibytes: number;
  /** Keep the run directory (history, node logs) even when the run passes. */
  readonly keep: boolean;
  /** Where run directories are made (default the system temporary directory). */
  readonly baseDirectory: string | null;
  /** `auto`: network namespaces when `ip netns add` works, loopback otherwise. */
  readonly network: "auto" | "namespaces" | "loopback";
  readonly quiet: boolean;
};

export const defaultOptions: Omit<CampaignOptions, "seed"> = {
  durationMs: 60_000,
  nodeCount: 3,
  faults: faultKinds,
  durability: "majority",
  consistencies: ["linearizable"],
  clientCount: 6,
  keyCount: 5,
  clientModes: ["library", "raw"],
  faultGapMsMin: 1_500,
  faultGapMsMax: 4_000,
  faultHoldMsMin: 2_000,
  faultHoldMsMax: 6_000,
  heartbeatMs: 100,
  missedHeartbeats: 10,
  diskMebibytes: 512,
  keep: false,
  baseDirectory: null,
  network: "auto",
  quiet: false,
};

export const usage = `Usage: npm run nemesis -- [options]

  --seconds N | --minutes N   how long clients and faults run (default 60 s)
  --seed N                    the seed (default: random, printed)
  --nodes 3|5                 cluster size (default 3)
  --faults a,b,...            fault kinds, or "all" (default all):
                              ${faultKinds.join(", ")}
  --durability LEVEL          local | one | majority | all (default majority)
  --reads L1,L2               read consistencies, from linearizable, leader, any (default linearizable)
  --clients N                 concurrent clients (default 6), half through the client library, half raw HTTP
  --client-modes a,b          library, raw (default both)
  --keys N                    keys appended to (default 5)
  --heartbeat-ms N --missed-heartbeats N   passed to every node (default 100 and 10)
  --network auto|namespaces|loopback       (default auto: namespaces when root can create them)
  --keep                      keep the run directory even when the run passes
  --dir PATH                  where to make the run directory (default the system temp directory)
  --quiet                     print only the summary
`;

function list<T extends string>(text: string, allowed: readonly T[], what: string): T[] {
  const items =
    text === "all"
      ? [...allowed]
      : text
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
  for (const item of items)
    if (!allowed.includes(item as T))
      throw new Error(`unknown ${what} ${JSON.stringify(item)}; one of ${allowed.join(", ")}`);
  if (items.length === 0) throw new Error(`--${what} needs at least one value`);
  return items as T[];
}

function positive(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--${name} must be a positive number, got ${text}`);
  return value;
}

export function parseCampaignArgs(argv: readonly string[]): CampaignOptions | "help" {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seconds: { type: "string" },
      minutes: { type: "string" },
      seed: { type: "string" },
      nodes: { type: "string" },
      faults: { type: "string" },
      durability: { type: "string" },
      reads: { type: "string" },
      clients: { type: "string" },
      "client-modes": { type: "string" },
      keys: { type: "string" },
      "heartbeat-ms": { type: "string" },
      "missed-heartbeats": { type: "string" },
      network: { type: "string" },
      keep: { type: "boolean" },
      dir: { type: "string" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const seconds = positive(values.seconds, "seconds") ?? (positive(values.minutes, "minutes") ?? 1) * 60;
  const nodes = values.nodes === undefined ? 3 : Number(values.nodes);
  if (nodes !== 3 && nodes !== 5) throw new Error(`--nodes must be 3 or 5, got ${values.nodes}`);
  const network = values.network ?? "auto";
  if (network !== "auto" && network !== "namespaces" && network !== "loopback")
    throw new Error(`--network must be auto, namespaces or loopback, got ${network}`);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  return {
    ...defaultOptions,
    seed,
    durationMs: Math.round(seconds * 1000),
    nodeCount: nodes,
    faults: values.faults === undefined ? defaultOptions.faults : list(values.faults, faultKinds, "faults"),
    durability:
      values.durability === undefined
        ? defaultOptions.durability
        : list(values.durability, ["local", "one", "majority", "all"] as const, "durability")[0]!,
    consistencies:
      values.reads === undefined
        ? defaultOptions.consistencies
        : list(values.reads, ["linearizable", "leader", "any"] as const, "reads"),
    clientCount: Math.round(positive(values.clients, "clients") ?? defaultOptions.clientCount),
    clientModes:
      values["client-modes"] === undefined
        ? defaultOptions.clientModes
        : list(values["client-modes"], ["library", "raw"] as const, "client-modes"),
    keyCount: Math.round(positive(values.keys, "keys") ?? defaultOptions.keyCount),
    heartbeatMs: Math.round(positive(values["heartbeat-ms"], "heartbeat-ms") ?? defaultOptions.heartbeatMs),
    missedHeartbeats: Math.round(
      positive(values["missed-heartbeats"], "missed-heartbeats") ?? defaultOptions.missedHeartbeats,
    ),
    network,
    keep: values.keep ?? false,
    baseDirectory: values.dir ?? null,
    quiet: values.quiet ?? false,
  };
}
