/**
 * `baton failover <status|set|pause|resume|promote|approve>`: failover the operator controls
 * (`src/node/failover-control.ts`; the rules are the consensus core's).
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseAction } from "./flags.ts";
import { callNode } from "./http-call.ts";

const help = `Usage:
  baton failover status  [--url URL]            settings, leader loss, the pending failover and its cost
  baton failover set     [--mode auto|manual|approve] [--approve-timeout-ms N]
                         [--approve-policy promote|stay-leaderless] [--url URL]
  baton failover pause   [--url URL]            maintenance: no automatic failover of any kind
  baton failover resume  [--url URL]
  baton failover promote NODE [--url URL]       make NODE leader, refused unless it may win safely
  baton failover approve [--url URL]            promote the candidate of the pending failover

Settings are replicated (any member's --url; changes go to the leader). In mode manual a lost
leader is reported and nobody campaigns until an operator promotes a node; in mode approve the
most up-to-date reachable node is proposed and waits for approval up to the approve timeout,
after which the approve policy applies.
`;
const requestTimeoutMs = 10_000;
const answerGraceMs = 10_000;

type Members = { members: { id: string; http: string | null }[] };

async function httpOf(url: string, node: string): Promise<string> {
  const members = (await callNode(url, "/v1/members", { timeoutMs: requestTimeoutMs })) as Members;
  const http = members.members.find((m) => m.id === node)?.http ?? null;
  if (http === null) throw new BatonError(ErrorCode.NOT_FOUND, `no member ${node} with a known HTTP address`);
  return http;
}

export async function failoverCommand(argv: string[]): Promise<number> {
  const parsed = parseAction(argv, help, {
    url: { type: "string", default: "http://127.0.0.1:4001" },
    mode: { type: "string" },
    "approve-timeout-ms": { type: "string" },
    "approve-policy": { type: "string" },
    "timeout-ms": { type: "string" },
  });
  if (parsed === null) return argv.length === 0 ? 2 : 0;
  const { action, positional, flags } = parsed;
  const url = String(flags.url);
  const timeoutMs = flags["timeout-ms"] === undefined ? requestTimeoutMs : Number(flags["timeout-ms"]);
  const post = (target: string, path: string, body: object): Promise<unknown> =>
    callNode(target, path, {
      method: "POST",
      body: { ...body, timeoutMs },
      timeoutMs: timeoutMs + answerGraceMs,
    });
  let answer: unknown;
  switch (action) {
    case "status":
      answer = await callNode(url, "/v1/failover", { timeoutMs: requestTimeoutMs });
      break;
    case "set": {
      const settings: Record<string, unknown> = {};
      if (flags.mode !== undefined) settings.mode = flags.mode;
      if (flags["approve-timeout-ms"] !== undefined)
        settings.approveTimeoutMs = Number(flags["approve-timeout-ms"]);
      if (flags["approve-policy"] !== undefined) settings.approvePolicy = flags["approve-policy"];
      if (Object.keys(settings).length === 0)
        throw new BatonError(
          ErrorCode.BAD_CONFIG,
          "baton failover set needs --mode, --approve-timeout-ms or --approve-policy",
        );
      answer = await post(url, "/v1/failover", settings);
      break;
    }
    case "pause":
    case "resume":
      answer = await post(url, "/v1/failover", { paused: action === "pause" });
      break;
    case "promote":
      if (positional === undefined)
        throw new BatonError(ErrorCode.BAD_CONFIG, "baton failover promote needs a node id");
      answer = await post(await httpOf(url, positional), "/v1/promote", {});
      break;
    case "approve": {
      const view = (await callNode(url, "/v1/failover", { timeoutMs: requestTimeoutMs })) as {
        proposal: { candidate: string } | null;
      };
      if (view.proposal === null)
        throw new BatonError(
          ErrorCode.NOT_FOUND,
          "no failover is pending on this node (it knows a leader, or heard no majority)",
        );
      answer = await post(await httpOf(url, view.proposal.candidate), "/v1/promote", {});
      break;
    }
    default:
      throw new BatonError(
        ErrorCode.BAD_CONFIG,
        `unknown failover action ${JSON.stringify(action)}\n\n${help}`,
      );
  }
  process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  return 0;
}
