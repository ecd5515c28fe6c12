/**
 * Forwarding of a request from a follower to the leader (one hop, bounded in time).
 *
 * The forwarded request carries `x-baton-forwarded`, and a node that receives such a request and
 * is not the leader answers NOT_LEADER instead of forwarding again, so a stale view of who leads
 * can never make requests circle. The leader's answer (status and body) is relayed unchanged.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";

export const forwardedHeader = "x-baton-forwarded";

export function httpBaseUrl(address: string): string {
  return /^https?:\/\//.test(address) ? address.replace(/\/+$/, "") : `http://${address}`;
}

export async function forwardToLeader(
  leaderHttp: string,
  path: string,
  body: Buffer,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  let response: Response;
  try {
    response = await fetch(`${httpBaseUrl(leaderHttp)}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", [forwardedHeader]: "1" },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const timedOut = (error as Error).name === "TimeoutError";
    throw new BatonError(
      timedOut ? ErrorCode.TIMEOUT : ErrorCode.NO_LEADER,
      `forwarding to the leader at ${leaderHttp} failed: ${(error as Error).message}`,
      { leaderHttp, outcome: "unknown" },
    );
  }
  return { status: response.status, body: await response.text() };
}
