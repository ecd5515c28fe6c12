/**
 * Switchover and history over HTTP (`src/node/switchover.ts`, `src/node/history-replication.ts`).
 *
 *   POST /v1/switchover          {to?, at?, timeoutMs?}   hand leadership over now, or at `at`
 *                                                         (ISO 8601 or ms since the epoch);
 *                                                         forwarded to the leader
 *   POST /v1/switchover/cancel                            cancel the scheduled one (forwarded)
 *   GET  /v1/switchover                                   what this node has scheduled (ask the leader)
 *   GET  /v1/history[?limit=N]                            the replicated history and this node's
 *                                                         records not yet in it (`replicated:
 *                                                         false`), newest first
 *   GET  /v1/failover                                     this node's view of failover
 *   POST /v1/failover       {mode?, paused?, approveTimeoutMs?, approvePolicy?, timeoutMs?}
 *                                                         change the cluster's settings (forwarded)
 *   POST /v1/promote        {timeoutMs?}                  promote THIS node (manual failover, or
 *                                                         approving the pending one); never forwarded
 */
import type http from "node:http";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { historyReadMax } from "../node/history.ts";
import type { NodeService } from "../node/node-service.ts";
import { switchoverWaitMsMax } from "../node/switchover.ts";
import { forwardOrThrow } from "./leader-forwarding.ts";
import { actorOf, type MemberRouteAnswer, parseFields, timeoutOf } from "./member-routes.ts";

/** Added to a forwarded switchover's own wait, for the hop and the answer. */
const forwardGraceMs = 5_000;

function atOf(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const atMs = typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : Number.NaN;
  if (!Number.isSafeInteger(atMs) || atMs < 0)
    throw new BatonError(
      ErrorCode.BAD_REQUEST,
      "at must be an ISO 8601 time or milliseconds since the epoch",
    );
  return atMs;
}

/** Answers a switchover or history route, or returns null when the path is not one. */
export async function operatorRoute(
  service: NodeService,
  request: http.IncomingMessage,
  body: () => Promise<Buffer>,
): Promise<MemberRouteAnswer | null> {
  const url = new URL(request.url ?? "/", "http://node");
  const method = request.method ?? "GET";
  if (url.pathname === "/v1/history") {
    if (method !== "GET") throw new BatonError(ErrorCode.METHOD_NOT_ALLOWED, "/v1/history takes GET");
    const raw = url.searchParams.get("limit");
    const limit = raw === null ? 100 : Number(raw);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > historyReadMax)
      throw new BatonError(ErrorCode.BAD_REQUEST, `limit must be an integer from 1 to ${historyReadMax}`);
    return { status: 200, body: { node: service.fencing().node, history: service.history(limit) } };
  }
  if (url.pathname === "/v1/failover" && method === "GET")
    return { status: 200, body: service.failoverView() };
  if (url.pathname === "/v1/promote") {
    if (method !== "POST") throw new BatonError(ErrorCode.METHOD_NOT_ALLOWED, "/v1/promote takes POST");
    const fields = parseFields(await body());
    return { status: 200, body: await service.promote(timeoutOf(fields), actorOf(request)) };
  }
  if (url.pathname === "/v1/failover") {
    if (method !== "POST")
      throw new BatonError(ErrorCode.METHOD_NOT_ALLOWED, "/v1/failover takes GET or POST");
    const raw = await body();
    const { timeoutMs: _timeout, ...settings } = parseFields(raw);
    try {
      return {
        status: 200,
        body: await service.failoverSettings(settings, timeoutOf(parseFields(raw)), actorOf(request)),
      };
    } catch (error) {
      const answer = await forwardOrThrow(error, request, raw, switchoverWaitMsMax + forwardGraceMs);
      return { status: answer.status, body: answer.body, headers: answer.headers };
    }
  }
  if (url.pathname !== "/v1/switchover" && url.pathname !== "/v1/switchover/cancel") return null;
  if (url.pathname === "/v1/switchover" && method === "GET")
    return { status: 200, body: service.switchoverStatus() };
  if (method !== "POST") throw new BatonError(ErrorCode.METHOD_NOT_ALLOWED, `${url.pathname} takes POST`);
  const raw = await body();
  const fields = parseFields(raw);
  const actor = actorOf(request);
  const timeoutMs = timeoutOf(fields);
  try {
    if (url.pathname === "/v1/switchover/cancel")
      return { status: 200, body: service.switchoverCancel(actor) };
    const to = fields.to;
    if (to !== undefined && to !== null && typeof to !== "string")
      throw new BatonError(ErrorCode.BAD_REQUEST, "to must be a node id");
    const answer = await service.switchover({
      to: typeof to === "string" ? to : null,
      atMs: atOf(fields.at),
      timeoutMs,
      actor,
    });
    return { status: 200, body: answer };
  } catch (error) {
    // Cancelling on a node that is not the leader: the leader holds the schedule.
    const forwardMs = (timeoutMs ?? switchoverWaitMsMax) + forwardGraceMs;
    const answer = await forwardOrThrow(error, request, raw, forwardMs);
    return { status: answer.status, body: answer.body, headers: answer.headers };
  }
}
