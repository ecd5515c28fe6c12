/**
 * `baton switchover [--to NODE] [--at TIME] [--cancel | --status] [--url URL]`: a planned
 * hand-over of leadership (`src/node/switchover.ts`), now or at a time, cancellable until then.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseFlags } from "./flags.ts";
import { callNode } from "./http-call.ts";

const help = `Usage:
  baton switchover [--to NODE] [--at TIME] [--timeout-ms N] [--url URL]
  baton switchover --cancel [--url URL]
  baton switchover --status [--url URL]

Hands leadership to NODE (default: the most up-to-date voter) without losing a write, now or at
TIME (ISO 8601, e.g. 2026-12-02T03:00:00Z); prints how long writes paused. Any member's --url
will do: the request goes to the leader.
`;
const answerGraceMs = 10_000;
const timeoutMsDefault = 10_000;

export async function switchoverCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(help);
    return 0;
  }
  const flags = parseFlags(argv, {
    url: { type: "string", default: "http://127.0.0.1:4001" },
    to: { type: "string" },
    at: { type: "string" },
    "timeout-ms": { type: "string" },
    cancel: { type: "boolean", default: false },
    status: { type: "boolean", default: false },
  });
  const url = String(flags.url);
  const timeoutMs = flags["timeout-ms"] === undefined ? timeoutMsDefault : Number(flags["timeout-ms"]);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1)
    throw new BatonError(ErrorCode.BAD_CONFIG, "--timeout-ms must be a positive integer");
  let answer: unknown;
  if (flags.status === true) {
    const status = (await callNode(url, "/v1/status", { timeoutMs: 10_000 })) as {
      leader: { http: string } | null;
    };
    const leaderUrl =
      status.leader?.http === undefined || status.leader.http === "" ? url : status.leader.http;
    answer = await callNode(leaderUrl, "/v1/switchover", { timeoutMs: 10_000 });
  } else if (flags.cancel === true) {
    answer = await callNode(url, "/v1/switchover/cancel", { method: "POST", body: {}, timeoutMs: 10_000 });
  } else {
    if (flags.at !== undefined && Number.isNaN(Date.parse(String(flags.at))))
      throw new BatonError(ErrorCode.BAD_CONFIG, `--at must be an ISO 8601 time, not ${String(flags.at)}`);
    answer = await callNode(url, "/v1/switchover", {
      method: "POST",
      body: { to: flags.to ?? null, at: flags.at ?? null, timeoutMs },
      timeoutMs: timeoutMs + answerGraceMs,
    });
    const done = answer as {
      state?: string;
      from?: string;
      to?: string;
      term?: number;
      writePauseMs?: number;
    };
    if (done.state === "done") {
      process.stdout.write(
        `leadership moved from ${done.from} to ${done.to} (term ${done.term}); writes paused ${done.writePauseMs} ms\n`,
      );
      return 0;
    }
  }
  process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  return 0;
}
