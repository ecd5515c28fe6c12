/**
 * Configuration of `baton start`: flags, then `BATON_*` environment variables, then an optional
 * JSON config file (`--config`), then defaults — in that order of precedence.
 *
 * One table describes every option (flag name, environment variable, config-file key, default,
 * help text), so the three sources and `--help` can never disagree. Every bad value is a
 * `BAD_CONFIG` error naming the option and the source it came from; the CLI prints it and exits 2.
 */
import fs from "node:fs";
import { parseArgs } from "node:util";
import type { Durability } from "../api/api-types.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";

export type HostPort = { readonly host: string; readonly port: number };
export type ClusterMember = { readonly id: string; readonly raft: HostPort; readonly http: HostPort | null };

export type StartConfig = {
  readonly id: string;
  readonly dataDirectory: string;
  readonly http: HostPort;
  readonly raft: HostPort;
  readonly cluster: readonly ClusterMember[];
  readonly clusterId: string;
  readonly tickMs: number;
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  readonly durability: Durability;
  readonly bodyBytesMax: number;
  readonly queryProcessesMax: number;
  readonly queryMsMax: number;
  readonly readsInFlightMax: number;
  readonly writesInFlightMax: number;
  readonly snapshotEntries: number;
  readonly snapshotLogBytes: number;
  readonly compactionTrailEntries: number;
  readonly logMemoryBytes: number;
  readonly consistencyCheckIntervalMs: number;
  readonly healWaitMsMax: number;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  readonly logFormat: "json" | "pretty" | "auto";
  /** A member's HTTP address to join through when the data directory is empty (`join.ts`), or null. */
  readonly join: string | null;
  /** What a joining node becomes: a voter once caught up, or a learner (read replica). */
  readonly joinAs: "voter" | "learner" | "witness";
};

type OptionSpec = {
  readonly flag: string;
  readonly key: keyof StartConfig | "config";
  readonly env: string;
  readonly help: string;
  readonly fallback?: string;
};

export const startOptions: readonly OptionSpec[] = [
  { flag: "id", key: "id", env: "BATON_ID", help: "this node's id (letters, digits, . _ -)" },
  { flag: "data", key: "dataDirectory", env: "BATON_DATA", help: "directory for the log and the database" },
  {
    flag: "http",
    key: "http",
    env: "BATON_HTTP",
    help: "HTTP API address host:port",
    fallback: "127.0.0.1:4001",
  },
  {
    flag: "raft",
    key: "raft",
    env: "BATON_RAFT",
    help: "peer address host:port",
    fallback: "127.0.0.1:4101",
  },
  {
    flag: "cluster",
    key: "cluster",
    env: "BATON_CLUSTER",
    help: "every voter: id=raftHost:port[/httpHost:port],... (this node included)",
  },
  {
    flag: "cluster-id",
    key: "clusterId",
    env: "BATON_CLUSTER_ID",
    help: "peers announcing another cluster id are refused",
    fallback: "baton",
  },
  {
    flag: "tick-ms",
    key: "tickMs",
    env: "BATON_TICK_MS",
    help: "the consensus clock's period; the heartbeat must be a whole number of ticks",
    fallback: "10",
  },
  {
    flag: "heartbeat-ms",
    key: "heartbeatMs",
    env: "BATON_HEARTBEAT_MS",
    help: "leader heartbeat interval",
    fallback: "100",
  },
  {
    flag: "missed-heartbeats",
    key: "missedHeartbeats",
    env: "BATON_MISSED_HEARTBEATS",
    help: "heartbeats missed before a follower starts an election",
    fallback: "6",
  },
  {
    flag: "durability",
    key: "durability",
    env: "BATON_DURABILITY",
    help: "default write durability: local|one|majority|all",
    fallback: "majority",
  },
  {
    flag: "body-bytes-max",
    key: "bodyBytesMax",
    env: "BATON_BODY_BYTES_MAX",
    help: "largest HTTP request body",
    fallback: String(8 * 1024 * 1024),
  },
  {
    flag: "query-processes",
    key: "queryProcessesMax",
    env: "BATON_QUERY_PROCESSES",
    help: "child processes that run queries (a query past its bound has its process killed)",
    fallback: "2",
  },
  {
    flag: "query-ms-max",
    key: "queryMsMax",
    env: "BATON_QUERY_MS_MAX",
    help: "longest a query may run, whatever timeoutMs it asks for (then QUERY_TIMEOUT)",
    fallback: "5000",
  },
  {
    flag: "reads-in-flight-max",
    key: "readsInFlightMax",
    env: "BATON_READS_IN_FLIGHT_MAX",
    help: "client reads this node runs at once; more are refused OVERLOADED",
    fallback: "512",
  },
  {
    flag: "writes-in-flight-max",
    key: "writesInFlightMax",
    env: "BATON_WRITES_IN_FLIGHT_MAX",
    help: "client writes this node runs or holds at once; more are refused OVERLOADED",
    fallback: "2048",
  },
  {
    flag: "snapshot-entries",
    key: "snapshotEntries",
    env: "BATON_SNAPSHOT_ENTRIES",
    help: "take a snapshot after this many entries applied since the last one",
    fallback: "10000",
  },
  {
    flag: "snapshot-log-bytes",
    key: "snapshotLogBytes",
    env: "BATON_SNAPSHOT_LOG_BYTES",
    help: "...or after this many log bytes appended since the last one",
    fallback: String(64 * 1024 * 1024),
  },
  {
    flag: "compaction-trail",
    key: "compactionTrailEntries",
    env: "BATON_COMPACTION_TRAIL",
    help: "log entries kept behind a snapshot for followers slightly behind",
    fallback: "1000",
  },
  {
    flag: "log-memory-bytes",
    key: "logMemoryBytes",
    env: "BATON_LOG_MEMORY_BYTES",
    help: "bytes of applied log entries kept in memory; older ones are read back from disk",
    fallback: String(8 * 1024 * 1024),
  },
  {
    flag: "consistency-check-ms",
    key: "consistencyCheckIntervalMs",
    env: "BATON_CONSISTENCY_CHECK_MS",
    help: "the leader compares the replicas' content hashes this often (0: only at term start and when a node rejoins)",
    fallback: "300000",
  },
  {
    flag: "heal-wait-ms",
    key: "healWaitMsMax",
    env: "BATON_HEAL_WAIT_MS",
    help: "a node with damaged storage not healed from its peers within this stops (NO_INTACT_COPY)",
    fallback: "300000",
  },
  {
    flag: "log-level",
    key: "logLevel",
    env: "BATON_LOG_LEVEL",
    help: "debug|info|warn|error",
    fallback: "info",
  },
  {
    flag: "log-format",
    key: "logFormat",
    env: "BATON_LOG_FORMAT",
    help: "json|pretty|auto (pretty on a TTY)",
    fallback: "auto",
  },
  {
    flag: "join",
    key: "join",
    env: "BATON_JOIN",
    help: "join the cluster through this member's HTTP address (host:port) when the data directory is empty",
  },
  {
    flag: "join-as",
    key: "joinAs",
    env: "BATON_JOIN_AS",
    help: "voter|learner|witness: what a joining node becomes (voters and witnesses are promoted once caught up)",
    fallback: "voter",
  },
  {
    flag: "config",
    key: "config",
    env: "BATON_CONFIG",
    help: "JSON file with any of these options (keys as the flags)",
  },
];

function badConfig(message: string): BatonError {
  return new BatonError(ErrorCode.BAD_CONFIG, message);
}

export function parseHostPort(value: string, where: string): HostPort {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[2]);
  if (match === null || !(port >= 0 && port <= 65535))
    throw badConfig(`${where}: expected host:port, got ${JSON.stringify(value)}`);
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

export function parseCluster(value: string, where: string): ClusterMember[] {
  const members: ClusterMember[] = [];
  for (const part of value
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=([^/]+)(?:\/(.+))?$/.exec(part);
    if (match === null)
      throw badConfig(`${where}: expected id=host:port[/httpHost:port], got ${JSON.stringify(part)}`);
    const http = match[3] === undefined ? null : parseHostPort(match[3], `${where} (${match[1]} http)`);
    members.push({ id: match[1]!, raft: parseHostPort(match[2]!, `${where} (${match[1]})`), http });
  }
  if (members.length === 0) throw badConfig(`${where}: no members`);
  if (new Set(members.map((m) => m.id)).size !== members.length)
    throw badConfig(`${where}: duplicate member id`);
  return members;
}

function integer(value: string, where: string, min: number, max: number): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || parsed < min || parsed > max)
    throw badConfig(`${where}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return parsed;
}

function oneOf<T extends string>(value: string, where: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw badConfig(`${where}: expected one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  return value as T;
}

function readConfigFile(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw badConfig(`config file ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw badConfig(`config file ${file}: expected a JSON object`);
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!startOptions.some((o) => o.flag === key && o.flag !== "config"))
      throw badConfig(`config file ${file}: unknown option ${JSON.stringify(key)}`);
    values[key] = String(value);
  }
  return values;
}

/** Resolves the raw string of every option with its source, following the precedence rule. */
function rawValues(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Map<string, { value: string; source: string }> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(startOptions.map((o) => [o.flag, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw badConfig((error as Error).message);
  }
  const flags = parsed.values as Record<string, string | undefined>;
  const configPath = flags.config ?? env.BATON_CONFIG;
  const file = configPath === undefined ? {} : readConfigFile(configPath);
  const values = new Map<string, { value: string; source: string }>();
  for (const option of startOptions) {
    const flag = flags[option.flag];
    const fromEnv = env[option.env];
    if (flag !== undefined) values.set(option.flag, { value: flag, source: `--${option.flag}` });
    else if (fromEnv !== undefined && fromEnv !== "")
      values.set(option.flag, { value: fromEnv, source: option.env });
    else if (file[option.flag] !== undefined)
      values.set(option.flag, { value: file[option.flag]!, source: `${configPath}: ${option.flag}` });
    else if (option.fallback !== undefined)
      values.set(option.flag, { value: option.fallback, source: "default" });
  }
  return values;
}

export function resolveStartConfig(argv: readonly string[], env: NodeJS.ProcessEnv): StartConfig {
  const raw = rawValues(argv, env);
  const get = (flag: string): { value: string; source: string } => {
    const found = raw.get(flag);
    if (found === undefined)
      throw badConfig(`--${flag} is required (or ${startOptions.find((o) => o.flag === flag)?.env})`);
    return found;
  };
  const int = (flag: string, min: number, max: number): number =>
    integer(get(flag).value, get(flag).source, min, max);
  const pick = <T extends string>(flag: string, options: readonly T[]): T =>
    oneOf(get(flag).value, get(flag).source, options);
  const id = get("id");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(id.value))
    throw badConfig(`${id.source}: bad node id ${JSON.stringify(id.value)}`);
  const raft = parseHostPort(get("raft").value, get("raft").source);
  const http = parseHostPort(get("http").value, get("http").source);
  const cluster = raw.has("cluster")
    ? parseCluster(get("cluster").value, get("cluster").source)
    : [{ id: id.value, raft, http }];
  const join = raw.get("join") ?? null;
  if (join !== null && raw.has("cluster"))
    throw badConfig(`${join.source}: a joining node takes its members from the cluster; leave out --cluster`);
  if (join !== null && (raft.port === 0 || http.port === 0))
    throw badConfig(
      `${join.source}: a joining node needs fixed --raft and --http ports (its members dial them)`,
    );
  const self = cluster.find((m) => m.id === id.value);
  if (self === undefined)
    throw badConfig(`${get("cluster").source}: this node (${id.value}) is not a member`);
  const config: StartConfig = {
    id: id.value,
    dataDirectory: get("data").value,
    http,
    raft,
    cluster: cluster.map((m) => (m.id === id.value ? { ...m, http } : m)),
    clusterId: get("cluster-id").value,
    tickMs: int("tick-ms", 1, 1_000),
    heartbeatMs: int("heartbeat-ms", 5, 60_000),
    missedHeartbeats: int("missed-heartbeats", 2, 1000),
    durability: pick("durability", ["local", "one", "majority", "all"] as const),
    bodyBytesMax: int("body-bytes-max", 1024, 1024 * 1024 * 1024),
    queryProcessesMax: int("query-processes", 1, 64),
    queryMsMax: int("query-ms-max", 10, 3_600_000),
    readsInFlightMax: int("reads-in-flight-max", 1, 1e6),
    writesInFlightMax: int("writes-in-flight-max", 1, 1e6),
    snapshotEntries: int("snapshot-entries", 1, 1e9),
    snapshotLogBytes: int("snapshot-log-bytes", 1024, 2 ** 40),
    compactionTrailEntries: int("compaction-trail", 0, 1e9),
    logMemoryBytes: int("log-memory-bytes", 0, 2 ** 40),
    ...storageHealSettings(get),
    logLevel: pick("log-level", ["debug", "info", "warn", "error"] as const),
    logFormat: pick("log-format", ["json", "pretty", "auto"] as const),
    join: join === null ? null : join.value,
    joinAs: pick("join-as", ["voter", "learner", "witness"] as const),
  };
  if (config.heartbeatMs % config.tickMs !== 0)
    throw badConfig(
      `the heartbeat (${config.heartbeatMs} ms) must be a whole number of ticks (--tick-ms ${config.tickMs})`,
    );
  return config;
}

/** `--consistency-check-ms` and `--heal-wait-ms` (docs/architecture.md, "Storage faults"). */
function storageHealSettings(get: (flag: string) => { value: string; source: string }) {
  const check = get("consistency-check-ms");
  const wait = get("heal-wait-ms");
  return {
    consistencyCheckIntervalMs: integer(check.value, check.source, 0, 1e9),
    healWaitMsMax: integer(wait.value, wait.source, 1000, 1e9),
  };
}

export function startHelp(): string {
  const lines = [
    "Usage: baton start --id ID --data DIR [options]",
    "",
    "Options (flag, environment variable, default):",
  ];
  for (const option of startOptions) {
    const fallback = option.fallback === undefined ? "" : ` (default ${option.fallback})`;
    lines.push(`  --${option.flag.padEnd(18)} ${option.env.padEnd(24)} ${option.help}${fallback}`);
  }
  lines.push("", "Precedence: flags, then environment variables, then the --config file, then defaults.");
  return lines.join("\n");
}
