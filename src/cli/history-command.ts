/**
 * `baton history [--url URL] [--limit N] [--json]`: the cluster's history (`src/node/history.ts`),
 * merged from every member that answers, newest first. Each node records its own role changes and
 * elections, the node an operator asked records the action; every node answers the replicated
 * history plus its own records not yet replicated, so one record may come from several members:
 * it is shown once (by node and sequence).
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseFlags } from "./flags.ts";
import { callNode } from "./http-call.ts";

const help = `Usage:
  baton history [--url URL] [--limit N] [--json]

Role changes, elections and their causes, leadership transfers, failovers, configuration and
membership changes, switchovers and forced recoveries, newest first: the replicated history and each
member's records not yet replicated (marked "not replicated").
`;
const requestTimeoutMs = 5_000;

type Record = {
  atMs: number;
  node: string;
  term: number | null;
  event: string;
  seq?: number | null;
  replicated?: boolean;
  [field: string]: unknown;
};

function line(record: Record): string {
  const { atMs, node, term, event, seq: _seq, replicated, ...fields } = record;
  const detail = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
  const mark = replicated === false ? "  (not replicated)" : "";
  return `${new Date(atMs).toISOString()}  ${node.padEnd(10)} term ${String(term ?? "-").padEnd(5)} ${event.padEnd(28)} ${detail}${mark}`;
}

/** One record once: by node and sequence, a replicated copy before a node's own (or by content without a sequence). */
export function mergeHistories(answers: readonly (readonly Record[])[], limit: number): Record[] {
  const byKey = new Map<string, Record>();
  for (const record of answers.flat()) {
    const key = typeof record.seq === "number" ? `${record.node}\u0000${record.seq}` : JSON.stringify(record);
    const kept = byKey.get(key);
    if (kept === undefined || (kept.replicated === false && record.replicated !== false))
      byKey.set(key, record);
  }
  return [...byKey.values()].sort((a, b) => b.atMs - a.atMs).slice(0, limit);
}

export async function historyCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(help);
    return 0;
  }
  const flags = parseFlags(argv, {
    url: { type: "string", default: "http://127.0.0.1:4001" },
    limit: { type: "string", default: "100" },
    json: { type: "boolean", default: false },
  });
  const url = String(flags.url);
  const limit = Number(flags.limit);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000)
    throw new BatonError(ErrorCode.BAD_CONFIG, "--limit must be an integer from 1 to 1000");
  const members = (await callNode(url, "/v1/members", { timeoutMs: requestTimeoutMs })) as {
    members: { id: string; http: string | null }[];
  };
  const urls = new Set<string>([url, ...members.members.flatMap((m) => (m.http === null ? [] : [m.http]))]);
  const answers = await Promise.all(
    [...urls].map((memberUrl) =>
      callNode(memberUrl, `/v1/history?limit=${limit}`, { timeoutMs: requestTimeoutMs }).then(
        (answer) => answer as { node: string; history: Record[] },
        (error: unknown) => {
          process.stderr.write(`${memberUrl}: ${(error as Error).message}\n`);
          return null;
        },
      ),
    ),
  );
  const shown = mergeHistories(
    answers.flatMap((answer) => (answer === null ? [] : [answer.history])),
    limit,
  );
  if (flags.json === true) process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  else process.stdout.write(shown.length === 0 ? "no history\n" : `${shown.map(line).join("\n")}\n`);
  return 0;
}
