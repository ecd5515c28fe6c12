/**
 * `baton status [--url URL]`: asks one node for the cluster's members, then every member for its
 * own view, and prints one row per node: role, term, indexes and the leader's view of its lag.
 */
import type { StatusResponse } from "../api/api-types.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseFlags } from "./flags.ts";

const help = `Usage: baton status [--url http://127.0.0.1:4001] [--json]\n\nPrints every node's role, term, commit/applied/last index and lag.\n`;
const requestTimeoutMs = 3_000;

async function fetchStatus(url: string): Promise<StatusResponse> {
  const response = await fetch(`${url.replace(/\/+$/, "")}/v1/status`, {
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return (await response.json()) as StatusResponse;
}

function asUrl(address: string): string {
  return /^https?:\/\//.test(address) ? address : `http://${address}`;
}

export function formatStatusTable(
  rows: readonly { id: string; url: string; status: StatusResponse | null; error: string | null }[],
  leader: StatusResponse | null,
): string {
  const header = ["node", "role", "term", "commit", "applied", "last", "lag", "contact", "http"];
  const lines = [header];
  for (const row of rows) {
    const member = leader?.members.find((m) => m.id === row.id);
    const s = row.status;
    lines.push(
      s === null
        ? [row.id, `unreachable (${row.error})`, "", "", "", "", "", "", row.url]
        : [
            row.id,
            s.role,
            String(s.term),
            String(s.commitIndex),
            String(s.appliedIndex),
            String(s.lastIndex),
            member?.lagEntries === undefined ? "-" : String(member.lagEntries),
            member?.lastContactMs === undefined ? "-" : `${member.lastContactMs}ms`,
            row.url,
          ],
    );
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? "").length)));
  return `${lines
    .map((l) =>
      l
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    url: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean" },
  }) as { url?: string; json?: boolean; help?: boolean };
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const first = await fetchStatus(asUrl(values.url ?? "http://127.0.0.1:4001")).catch((error: unknown) => {
    throw new BatonError(
      ErrorCode.NO_LEADER,
      `cannot reach ${values.url ?? "http://127.0.0.1:4001"}: ${(error as Error).message}`,
    );
  });
  const rows = await Promise.all(
    first.members.map(async (member) => {
      const url = member.http ? asUrl(member.http) : "";
      if (!url) return { id: member.id, url: "?", status: null, error: "http address unknown" };
      try {
        return { id: member.id, url, status: await fetchStatus(url), error: null };
      } catch (error) {
        return { id: member.id, url, status: null, error: (error as Error).message };
      }
    }),
  );
  const leader = rows.find((r) => r.status?.role === "leader")?.status ?? null;
  if (values.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else process.stdout.write(formatStatusTable(rows, leader));
  return rows.some((r) => r.status === null) ? 1 : 0;
}
