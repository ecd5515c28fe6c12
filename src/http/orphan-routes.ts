/**
 * The orphan quarantine over HTTP (`src/node/orphans.ts`): answered by the node that holds the
 * orphans; a replay runs as a write through the leader (forwarded once when this node is not it).
 *
 *   GET  /v1/orphans[?status=pending|replayed|discarded&limit=N]   newest first
 *   GET  /v1/orphans/actions[?limit=N]                               what operators did, newest first
 *   GET  /v1/orphans/{id}                                            rows, and a diff with current data
 *   POST /v1/orphans/{id}/replay                                     one atomic write, or 409 ORPHAN_REPLAY_CONFLICT
 *   POST /v1/orphans/{id}/discard   {"reason": "..."}
 */
import type http from "node:http";
import type { ExecuteResponse } from "../api/api-types.ts";
import { toJson } from "../api/json-encoding.ts";
import { BatonError, ErrorCode, isBatonError, leaderOf } from "../lib/errors.ts";
import type { NodeService } from "../node/node-service.ts";
import { forwardedHeader, forwardToLeader } from "./leader-forwarding.ts";

/** Orphans listed per request, at most. */
export const orphanListMax = 1_000;

export type OrphanRouteAnswer = { status: number; body: unknown };

function limitOf(url: URL, fallback: number): number {
  const raw = url.searchParams.get("limit");
  if (raw === null) return fallback;
  const limit = Number(raw);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > orphanListMax)
    throw new BatonError(ErrorCode.BAD_REQUEST, `limit must be an integer from 1 to ${orphanListMax}`);
  return limit;
}

function idOf(text: string): number {
  const id = Number(text);
  if (!Number.isSafeInteger(id) || id < 1)
    throw new BatonError(ErrorCode.BAD_REQUEST, `bad orphan id ${text}`);
  return id;
}

/** Answers an orphan route, or returns null when the path is not one. */
export async function orphanRoute(
  service: NodeService,
  request: http.IncomingMessage,
  body: () => Promise<Buffer>,
  forwardTimeoutMs: number,
): Promise<OrphanRouteAnswer | null> {
  const url = new URL(request.url ?? "/", "http://node");
  const parts = url.pathname.split("/").filter((p) => p !== "");
  if (parts[0] !== "v1" || parts[1] !== "orphans") return null;
  const method = request.method ?? "GET";
  const expect = (wanted: string): void => {
    if (method !== wanted)
      throw new BatonError(ErrorCode.METHOD_NOT_ALLOWED, `${url.pathname} takes ${wanted}, not ${method}`);
  };
  if (parts.length === 2) {
    expect("GET");
    return {
      status: 200,
      body: { orphans: service.orphans(url.searchParams.get("status"), limitOf(url, 100)) },
    };
  }
  if (parts.length === 3 && parts[2] === "actions") {
    expect("GET");
    return { status: 200, body: { actions: service.orphanActions(limitOf(url, 100)) } };
  }
  const id = idOf(parts[2] ?? "");
  if (parts.length === 3) {
    expect("GET");
    return { status: 200, body: service.orphan(id) };
  }
  if (parts.length === 4 && parts[3] === "discard") {
    expect("POST");
    const raw = await body();
    const reason =
      raw.byteLength === 0 ? "" : (JSON.parse(raw.toString("utf8")) as { reason?: unknown }).reason;
    if (typeof reason !== "string" || reason.length === 0 || reason.length > 1000)
      throw new BatonError(ErrorCode.BAD_REQUEST, 'a discard needs {"reason": "..."} (1 to 1000 characters)');
    return { status: 200, body: { orphan: service.orphanResolved(id, "discarded", reason) } };
  }
  if (parts.length === 4 && parts[3] === "replay") {
    expect("POST");
    return replay(service, request, id, forwardTimeoutMs);
  }
  throw new BatonError(ErrorCode.NOT_FOUND, `no route ${method} ${url.pathname}`);
}

async function replay(
  service: NodeService,
  request: http.IncomingMessage,
  id: number,
  forwardTimeoutMs: number,
): Promise<OrphanRouteAnswer> {
  const { request: write, changeOf } = service.orphanReplay(id);
  let response: ExecuteResponse;
  try {
    response = await service.execute(write);
  } catch (error) {
    const leader = leaderOf(error);
    if (leader === null || request.headers[forwardedHeader] !== undefined)
      return conflictOrThrow(service, id, error, changeOf);
    const answer = await forwardToLeader(
      leader.http,
      "/v1/execute",
      Buffer.from(toJson(write)),
      forwardTimeoutMs,
    );
    const parsed = JSON.parse(answer.body) as ExecuteResponse & {
      error?: { code: string; message: string; details?: Record<string, unknown> };
    };
    if (answer.status !== 200) {
      const e = parsed.error;
      return conflictOrThrow(
        service,
        id,
        new BatonError((e?.code ?? "INTERNAL") as never, e?.message ?? "", e?.details ?? {}),
        changeOf,
      );
    }
    response = parsed;
  }
  const orphan = service.orphanResolved(
    id,
    "replayed",
    `written at index ${response.position.index}, term ${response.term}`,
  );
  return { status: 200, body: { orphan, write: response } };
}

/** A statement of the replay failed: name the change and record the attempt; other errors pass. */
function conflictOrThrow(
  service: NodeService,
  id: number,
  error: unknown,
  changeOf: readonly (number | null)[],
): never {
  const statementIndex = isBatonError(error) ? error.details.statementIndex : undefined;
  if (
    !isBatonError(error) ||
    typeof statementIndex !== "number" ||
    !["SQL_ERROR", "FORBIDDEN_STATEMENT"].includes(error.code)
  )
    throw error;
  const change = changeOf[statementIndex] ?? null;
  const detail = `change ${change ?? "(schema)"} conflicts: ${error.message}`;
  service.orphanResolved(id, null, detail);
  throw new BatonError(ErrorCode.ORPHAN_REPLAY_CONFLICT, `${detail}; nothing was applied`, {
    change,
    statementIndex,
    cause: error.code,
  });
}
