/**
 * `baton history [--url URL] [--limit N] [--json]`: the cluster's history (`src/node/history.ts`),
 * merged from every member that answers, newest first. Each node records its own role changes and
 * elections; the leader records operator actions.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseFlags } from "./flags.ts";
import { callNode } from "./http-call.ts";

const help = `Usage:
  baton history [--url URL] [--limit N] [--json]

Role changes, elections and their causes, leadership transfers, configuration and membership
changes, switchovers and forced recoveries, from every member, newest first.
`;
const requestTimeoutMs = 5_000;

type Record = { atMs: number; node: string; term: number | null; event: string; [field: string]: unknown };

function line(record: Record): string {
  const { atMs, node, term, event, ...fields } = record;
  const detail = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
  return `${new Date(atMs).toISOString()}  ${node.padEnd(10)} term ${String(term ?? "-").padEnd(5)} ${event.padEnd(28)} ${detail}`;
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
  const seen = new Set<string>();
  const records: Record[] = [];
  for (const answer of answers) {
    if (answer === null || seen.has(answer.node)) continue;
    seen.add(answer.node);
    records.push(...answer.history);
  }
  records.sort((a, b) => b.atMs - a.atMs);
  const shown = records.slice(0, limit);
  if (flags.json === true) process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  else process.stdout.write(shown.length === 0 ? "no history\n" : `${shown.map(line).join("\n")}\n`);
  return 0;
}
