/**
 * Finding the leader: ask every known node for `GET /v1/status` at once.
 *
 * The search settles as soon as a node says it is the leader. Otherwise it waits for every node (each
 * bounded by the probe timeout) and takes the leader named by the node in the highest term, because
 * a node in a later term has seen a later election. When nobody names a leader (an election is under
 * way, or every node is down) the result is `undefined` and the caller falls back to any node, whose
 * answer (`NO_LEADER` with `Retry-After`, or a forwarded write) is still useful.
 */

import type { NodeAddress, StatusResponse } from "../api/api-types.ts";
import { assert } from "../lib/assert.ts";
import { exchange, type FetchLike } from "./http-exchange.ts";
import type { NodeDirectory } from "./node-directory.ts";
import { isStatusResponse } from "./response-shapes.ts";

export type DiscoveryContext = {
  readonly fetch: FetchLike;
  readonly directory: NodeDirectory;
  readonly signal: AbortSignal;
  readonly nowMs: () => number;
};

/**
 * Records what one status answer teaches: the node's identity, the members, and — when the node leads
 * — the leader. Returns the leader a follower names, for the caller to weigh by term.
 */
export function learnFromStatus(
  context: DiscoveryContext,
  status: StatusResponse,
  url: string,
): NodeAddress | null {
  context.directory.learnIdentity(status.id, url);
  context.directory.learnMembers(status.members, url);
  if (status.role === "leader") {
    context.directory.learnLeader({ id: status.id, http: url }, url, context.nowMs());
    return null;
  }
  return status.leader;
}

/** Probes every known node; resolves to the leader's URL once known, or `undefined`. Never rejects. */
export async function discoverLeader(
  context: DiscoveryContext,
  probeTimeoutMs: number,
): Promise<string | undefined> {
  assert(probeTimeoutMs > 0, `a probe needs a positive timeout, got ${probeTimeoutMs}`);
  const urls = [...context.directory.urls];
  assert(urls.length > 0, "discovery needs at least one node");
  let best: { term: number; leader: NodeAddress; from: string } | undefined;
  return await new Promise<string | undefined>((resolve) => {
    let pending = urls.length;
    let settled = false;
    const finish = (url: string | undefined): void => {
      if (!settled) resolve(url);
      settled = true;
    };
    for (const url of urls) {
      void probe(context, url, probeTimeoutMs).then((status) => {
        pending -= 1;
        if (status !== undefined && !settled) {
          const named = learnFromStatus(context, status, url);
          if (status.role === "leader") finish(context.directory.leaderUrl);
          else if (named !== null && (best === undefined || status.term > best.term)) {
            best = { term: status.term, leader: named, from: url };
          }
        }
        if (pending === 0 && !settled) {
          finish(best && context.directory.learnLeader(best.leader, best.from, context.nowMs()));
        }
      });
    }
  });
}

/** One status request; `undefined` for any failure (discovery is best effort). */
export async function probe(
  context: DiscoveryContext,
  url: string,
  timeoutMs: number,
): Promise<StatusResponse | undefined> {
  const answer = await exchange(context.fetch, {
    url: `${url}/v1/status`,
    method: "GET",
    body: undefined,
    timeoutMs,
    signal: context.signal,
  });
  if (answer.kind !== "success" || !isStatusResponse(answer.body)) return undefined;
  return answer.body;
}
