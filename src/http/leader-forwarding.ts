/**
 * Forwarding of a request from a follower to the leader (one hop, bounded in time).
 *
 * The node says where the leader is in one shape only: `NOT_LEADER` with `details.leader =
 * {id, http}` (`notLeaderError` in `src/lib/errors.ts`); any other error, or a `NOT_LEADER` without
 * an HTTP address, is answered as it is. The forwarded request carries `x-baton-forwarded`, and a
 * node that receives such a request and is not the leader answers NOT_LEADER instead of forwarding
 * again, so a stale view of who leads can never make requests circle. The leader's answer (status,
 * body, and its fencing and Retry-After headers) is relayed unchanged.
 */
import type http from "node:http";
import { BatonError, ErrorCode, leaderOf } from "../lib/errors.ts";

export const forwardedHeader = "x-baton-forwarded";
/** Fencing token headers: the term an answer was served under, and the node that served it. */
export const termHeader = "baton-term";
export const nodeHeader = "baton-node";

export type ForwardedAnswer = { status: number; body: string; headers: Record<string, string> };

export function httpBaseUrl(address: string): string {
  return /^https?:\/\//.test(address) ? address.replace(/\/+$/, "") : `http://${address}`;
}

export async function forwardToLeader(
  leaderHttp: string,
  path: string,
  body: Buffer,
  timeoutMs: number,
  extraHeaders: Record<string, string> = {},
): Promise<ForwardedAnswer> {
  let response: Response;
  try {
    response = await fetch(`${httpBaseUrl(leaderHttp)}${path}`, {
      method: "POST",
      headers: { ...extraHeaders, "content-type": "application/json", [forwardedHeader]: "1" },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const timedOut = (error as Error).name === "TimeoutError";
    // Refused before a byte was sent: the leader never saw the request. Any other failure may
    // come after the leader received it, so the write's outcome is unknown (a code that says so).
    const refused = ((error as Error).cause as { code?: string } | undefined)?.code === "ECONNREFUSED";
    const code = timedOut ? ErrorCode.TIMEOUT : refused ? ErrorCode.NO_LEADER : ErrorCode.FORWARD_FAILED;
    throw new BatonError(
      code,
      `forwarding to the leader at ${leaderHttp} failed: ${(error as Error).message}`,
      {
        leaderHttp,
        outcome: refused ? "not-applied" : "unknown",
      },
    );
  }
  const headers: Record<string, string> = {};
  for (const name of [termHeader, nodeHeader, "retry-after"]) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return { status: response.status, body: await response.text(), headers };
}

/** Forwards a request the node refused with `NOT_LEADER` to the leader it names, once; rethrows anything else. */
export async function forwardOrThrow(
  error: unknown,
  request: http.IncomingMessage,
  body: Buffer,
  timeoutMs: number,
): Promise<ForwardedAnswer> {
  const leader = leaderOf(error);
  if (leader === null || request.headers[forwardedHeader] !== undefined) throw error;
  // Who asked travels with the request, so the leader's history names them.
  const actor = request.headers["x-baton-actor"];
  const extra: Record<string, string> = typeof actor === "string" ? { "x-baton-actor": actor } : {};
  return forwardToLeader(leader.http, request.url ?? "/", body, timeoutMs, extra);
}
