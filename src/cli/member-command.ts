/**
 * `baton member <list|add|remove|promote|demote>`: the cluster's membership
 * (`src/node/member-changes.ts`). Any member's `--url` will do: changes are forwarded to the leader.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { parseAction } from "./flags.ts";
import { callNode } from "./http-call.ts";

const help = `Usage:
  baton member list    [--url URL] [--json]
  baton member add     ID --raft HOST:PORT --http HOST:PORT [--learner | --witness] [--timeout-ms N] [--url URL]
  baton member promote ID [--timeout-ms N] [--url URL]
  baton member demote  ID [--timeout-ms N] [--url URL]
  baton member remove  ID [--timeout-ms N] [--url URL]
  baton member attributes ID [--priority N] [--zone Z] [--never-promote true|false] [--url URL]

add records a node as a learner and, unless --learner, promotes it to voter once it has caught up
(start the node itself with 'baton start --join URL', which adds it in the same way). Removing or
demoting the leader hands leadership to another voter first. One change at a time; each answers
once it is committed.
`;
/** Added to a change's own wait for the answer to come back. */
const answerGraceMs = 10_000;
const listTimeoutMs = 10_000;
const changeTimeoutMsDefault = 60_000;

type Member = {
  id: string;
  role: string;
  raft: string | null;
  http: string | null;
  leader: boolean;
  matchIndex: number | null;
  lagEntries: number | null;
};
type Members = {
  leader: string | null;
  term: number;
  configIndex: number;
  configCommitted: boolean;
  members: Member[];
};

function table(answer: Members): string {
  const lines = answer.members.map((m) =>
    [
      m.id.padEnd(12),
      (m.leader ? "leader" : m.role).padEnd(8),
      `raft ${m.raft ?? "?"}`.padEnd(28),
      `http ${m.http ?? "?"}`.padEnd(28),
      m.lagEntries === null ? "" : `behind ${m.lagEntries}`,
    ].join(" "),
  );
  const pending = answer.configCommitted ? "" : " (a change is not yet committed)";
  return `term ${answer.term}, configuration at index ${answer.configIndex}${pending}\n${lines.join("\n")}\n`;
}

type Flags = Record<string, string | boolean | undefined>;

function addBody(flags: Flags): { raft: string; http: string; role: string } {
  if (typeof flags.raft !== "string" || typeof flags.http !== "string")
    throw new BatonError(
      ErrorCode.BAD_CONFIG,
      "baton member add needs --raft HOST:PORT and --http HOST:PORT",
    );
  const role = flags.learner === true ? "learner" : flags.witness === true ? "witness" : "voter";
  return { raft: flags.raft, http: flags.http, role };
}

function attributesBody(flags: Flags): Record<string, unknown> {
  const attributes: Record<string, unknown> = {};
  if (flags.priority !== undefined) attributes.priority = Number(flags.priority);
  if (flags.zone !== undefined) attributes.zone = flags.zone === "" ? null : flags.zone;
  if (flags["never-promote"] !== undefined) attributes.neverPromote = flags["never-promote"] === "true";
  return attributes;
}

export async function memberCommand(argv: string[]): Promise<number> {
  const parsed = parseAction(argv, help, {
    url: { type: "string", default: "http://127.0.0.1:4001" },
    raft: { type: "string" },
    http: { type: "string" },
    learner: { type: "boolean", default: false },
    witness: { type: "boolean", default: false },
    priority: { type: "string" },
    zone: { type: "string" },
    "never-promote": { type: "string" },
    "timeout-ms": { type: "string" },
    json: { type: "boolean", default: false },
  });
  if (parsed === null) return argv.length === 0 ? 2 : 0;
  const { action, positional, flags } = parsed;
  const url = String(flags.url);
  const timeoutMs = flags["timeout-ms"] === undefined ? changeTimeoutMsDefault : Number(flags["timeout-ms"]);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1)
    throw new BatonError(ErrorCode.BAD_CONFIG, "--timeout-ms must be a positive integer");
  const needId = (): string => {
    if (positional === undefined)
      throw new BatonError(ErrorCode.BAD_CONFIG, `baton member ${action} needs a node id`);
    return encodeURIComponent(positional);
  };
  const change = (path: string, body: object): Promise<unknown> =>
    callNode(url, path, {
      method: "POST",
      body: { ...body, timeoutMs },
      timeoutMs: timeoutMs + answerGraceMs,
    });
  let answer: unknown;
  switch (action) {
    case "list":
      answer = await callNode(url, "/v1/members", { timeoutMs: listTimeoutMs });
      if (flags.json !== true) {
        process.stdout.write(table(answer as Members));
        return 0;
      }
      break;
    case "add":
      answer = await change("/v1/members", { ...addBody(flags), id: positional ?? needId() });
      break;
    case "attributes": {
      answer = await change(`/v1/members/${needId()}/attributes`, attributesBody(flags));
      if (flags.json !== true) {
        process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
        return 0;
      }
      break;
    }
    case "promote":
    case "demote":
    case "remove":
      answer = await change(`/v1/members/${needId()}/${action}`, {});
      break;
    default:
      throw new BatonError(
        ErrorCode.BAD_CONFIG,
        `unknown member action ${JSON.stringify(action)}\n\n${help}`,
      );
  }
  if (flags.json === true) process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  else process.stdout.write(table((answer as { members: Members }).members));
  return 0;
}
