/**
 * Membership over HTTP (`src/node/member-changes.ts`). Changes are made by the leader; any other
 * node forwards them there once (as it forwards writes), with the request's own wait as the bound.
 *
 *   GET  /v1/members                                      members, roles, addresses (progress on the leader)
 *   POST /v1/members        {id, raft, http, role?, timeoutMs?}   add (role "voter", the default, or "learner")
 *   POST /v1/members/join   {id, raft, http, timeoutMs?}          a new node asks to be added (`--join`)
 *   POST /v1/members/{id}/promote | demote | remove  {timeoutMs?}
 *   POST /v1/members/{id}/attributes  {priority?, zone?, neverPromote?, witness?, timeoutMs?}
 */
import type http from "node:http";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type AddRequest, memberChangeWaitMsDefault } from "../node/member-changes.ts";
import type { NodeService } from "../node/node-service.ts";
import { type ForwardedAnswer, forwardOrThrow } from "./leader-forwarding.ts";

export type MemberRouteAnswer = { status: number; body: unknown; headers?: Record<string, string> };

/** Added to a forwarded change's own wait, for the hop and the answer. */
const forwardGraceMs = 5_000;
/** Who asks, for the history: the `x-baton-actor` header (the CLI sends the user's name). */
export const actorHeader = "x-baton-actor";
const actorPattern = /^[\w.@-]{1,64}$/;

export function actorOf(request: http.IncomingMessage): string {
  const actor = request.headers[actorHeader];
  if (actor === undefined) return "operator";
  if (typeof actor !== "string" || !actorPattern.test(actor))
    throw new BatonError(ErrorCode.BAD_REQUEST, `${actorHeader} must be 1 to 64 letters, digits, or . _ @ -`);
  return actor;
}

type Fields = Record<string, unknown>;

export function parseFields(raw: Buffer): Fields {
  if (raw.byteLength === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new BatonError(ErrorCode.BAD_REQUEST, "the body is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new BatonError(ErrorCode.BAD_REQUEST, "the body must be a JSON object");
  return value as Fields;
}

export function timeoutOf(fields: Fields): number | null {
  const value = fields.timeoutMs;
  if (value === undefined || value === null) return null;
  if (typeof value !== "number") throw new BatonError(ErrorCode.BAD_REQUEST, "timeoutMs must be a number");
  return value;
}

function text(fields: Fields, name: string): string {
  const value = fields[name];
  if (typeof value !== "string") throw new BatonError(ErrorCode.BAD_REQUEST, `${name} must be a string`);
  return value;
}

function relayed(answer: ForwardedAnswer): MemberRouteAnswer {
  return { status: answer.status, body: answer.body, headers: answer.headers };
}

/** Answers a membership route, or returns null when the path is not one. */
export async function memberRoute(
  service: NodeService,
  request: http.IncomingMessage,
  body: () => Promise<Buffer>,
): Promise<MemberRouteAnswer | null> {
  const url = new URL(request.url ?? "/", "http://node");
  const parts = url.pathname.split("/").filter((p) => p !== "");
  if (parts[0] !== "v1" || parts[1] !== "members") return null;
  const method = request.method ?? "GET";
  const expect = (wanted: string): void => {
    if (method !== wanted)
      throw new BatonError(ErrorCode.METHOD_NOT_ALLOWED, `${url.pathname} takes ${wanted}, not ${method}`);
  };
  if (parts.length === 2 && method === "GET") return { status: 200, body: service.members() };
  expect("POST");
  const raw = await body();
  const fields = parseFields(raw);
  const timeoutMs = timeoutOf(fields);
  const run = async (change: () => Promise<unknown>): Promise<MemberRouteAnswer> => {
    try {
      return { status: 200, body: await change() };
    } catch (error) {
      const forwardMs = (timeoutMs ?? memberChangeWaitMsDefault) + forwardGraceMs;
      return relayed(await forwardOrThrow(error, request, raw, forwardMs));
    }
  };
  if (parts.length === 2) {
    const role: unknown = fields.role ?? "voter";
    if (role !== "voter" && role !== "learner" && role !== "witness")
      throw new BatonError(ErrorCode.BAD_REQUEST, 'role must be "voter", "learner" or "witness"');
    const add: AddRequest = {
      id: text(fields, "id"),
      raft: text(fields, "raft"),
      http: text(fields, "http"),
      role,
      timeoutMs,
      actor: actorOf(request),
    };
    return run(() => service.memberAdd(add));
  }
  if (parts.length === 3 && parts[2] === "join") {
    const join = {
      id: text(fields, "id"),
      raft: text(fields, "raft"),
      http: text(fields, "http"),
      witness: fields.witness === true,
    };
    return run(() => service.memberJoin(join, timeoutMs));
  }
  const action = parts[3];
  if (parts.length === 4 && action === "attributes") {
    const id = decodeURIComponent(parts[2] ?? "");
    const { timeoutMs: _timeout, ...attributes } = fields;
    return run(() => service.memberAttributes(id, attributes, timeoutMs, actorOf(request)));
  }
  if (parts.length === 4 && (action === "promote" || action === "demote" || action === "remove")) {
    const id = decodeURIComponent(parts[2] ?? "");
    return run(() => service.memberChange(action, id, timeoutMs, actorOf(request)));
  }
  throw new BatonError(ErrorCode.NOT_FOUND, `no route ${method} ${url.pathname}`);
}
