/**
 * `baton orphans <list|show|replay|discard|history> [ID] [--url URL] [--status S] [--reason R]`:
 * the orphan quarantine of one node (`src/node/orphans.ts`). Orphans live on the node that held
 * them, so `--url` names that node; a replay is written through the cluster's leader from there.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseAction } from "./flags.ts";
import { callNode } from "./http-call.ts";

const help = `Usage:
  baton orphans list    [--url URL] [--status pending|replayed|discarded] [--json]
  baton orphans show    ID [--url URL]          rows, and how they compare with current data
  baton orphans replay  ID [--url URL]          write them again through the leader (all or nothing)
  baton orphans discard ID --reason TEXT [--url URL]
  baton orphans history [--url URL]             what operators did, newest first

Orphans are log entries a node held that a new leader overwrote: writes that may have been
acknowledged at durability local or one and then lost in a failover.
`;
const requestTimeoutMs = 15_000;

function call(url: string, path: string, method = "GET", body?: unknown): Promise<unknown> {
  return callNode(url, path, { method, body, timeoutMs: requestTimeoutMs });
}

type Listed = {
  id: number;
  index: number;
  term: number;
  status: string;
  requestIds: string[];
  discardedAtMs: number;
};

function table(rows: readonly Listed[]): string {
  if (rows.length === 0) return "no orphaned entries\n";
  const lines = rows.map(
    (r) =>
      `${String(r.id).padEnd(6)} index ${String(r.index).padEnd(10)} term ${String(r.term).padEnd(6)} ${r.status.padEnd(10)} ${new Date(r.discardedAtMs).toISOString()}  ${r.requestIds.join(",")}`,
  );
  return `${lines.join("\n")}\n`;
}

export async function orphansCommand(argv: string[]): Promise<number> {
  const parsed = parseAction(argv, help, {
    url: { type: "string", default: "http://127.0.0.1:4001" },
    status: { type: "string" },
    reason: { type: "string" },
    json: { type: "boolean", default: false },
  });
  if (parsed === null) return argv.length === 0 ? 2 : 0;
  const { action, positional, flags } = parsed;
  const url = String(flags.url);
  const needId = (): string => {
    if (positional === undefined || !/^\d+$/.test(positional))
      throw new BatonError(ErrorCode.BAD_CONFIG, `baton orphans ${action} needs an orphan id`);
    return positional;
  };
  let answer: unknown;
  switch (action) {
    case "list": {
      const query = flags.status === undefined ? "" : `?status=${encodeURIComponent(String(flags.status))}`;
      answer = await call(url, `/v1/orphans${query}`);
      if (flags.json !== true) {
        process.stdout.write(table((answer as { orphans: Listed[] }).orphans));
        return 0;
      }
      break;
    }
    case "show":
      answer = await call(url, `/v1/orphans/${needId()}`);
      break;
    case "replay":
      answer = await call(url, `/v1/orphans/${needId()}/replay`, "POST");
      break;
    case "discard":
      if (typeof flags.reason !== "string")
        throw new BatonError(ErrorCode.BAD_CONFIG, "baton orphans discard needs --reason");
      answer = await call(url, `/v1/orphans/${needId()}/discard`, "POST", { reason: flags.reason });
      break;
    case "history":
      answer = await call(url, "/v1/orphans/actions");
      break;
    default:
      throw new BatonError(
        ErrorCode.BAD_CONFIG,
        `unknown orphans action ${JSON.stringify(action)}\n\n${help}`,
      );
  }
  process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  return 0;
}
