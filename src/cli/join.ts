/**
 * `baton start --join HOST:PORT`: a new node joins a running cluster.
 *
 * With an empty data directory the node asks the member at `--join` (any member: a follower
 * forwards to the leader) to add it as a learner, and records the answer, the cluster id and the
 * configuration with every member's address, in `DATA/join.json` (written durably before anything
 * else). It starts from that configuration and catches up from the leader (a snapshot, then the
 * log). A node joining as a voter (`--join-as voter`, the default) or a witness (`--join-as
 * witness`: marked a witness before it can vote, it keeps the log and holds no data) then asks its
 * leader to promote it until it is a voter: the leader promotes only a learner that has caught up
 * (`src/node/member-changes.ts`), and the request is repeated after a restart until it succeeds.
 *
 * A data directory that already holds a node's state is never joined again: `--join` is ignored
 * with a warning (restart as usual). A member whose disk was wiped joins like a new node; the
 * leader removes its old membership first, so it never counts toward a quorum with entries it lost.
 */
import fs from "node:fs";
import path from "node:path";
import { httpBaseUrl } from "../http/leader-forwarding.ts";
import { BatonError, ErrorCode, retryByCode } from "../lib/errors.ts";
import { type JoinState, parseConfigJson, readJoinState, writeJoinState } from "../node/join-record.ts";
import type { LaunchConfig } from "../node/launch.ts";
import { hostPort } from "../node/launch.ts";
import type { NodeLog } from "../node/runtime.ts";

/** How long a new node keeps asking to join before it gives up (JOIN_FAILED). */
export const joinWaitMsMax = 120_000;
/** The leader's own bound for one join (a removal and an addition, each committed). */
const joinRequestMs = 30_000;
const joinRetryMs = 1_000;
/** How often a joined node asks to be promoted, and the leader's bound for one promotion. */
const promoteEveryMs = 2_000;
const promoteRequestMs = 20_000;

type StartWithJoin = LaunchConfig & {
  readonly join: string | null;
  readonly joinAs: "voter" | "learner" | "witness";
};

/** Whether the data directory holds any state of a node (a log, a database or snapshots). */
function holdsState(dataDirectory: string): boolean {
  return ["log", "baton.db", "snapshots"].some((name) => fs.existsSync(path.join(dataDirectory, name)));
}

/**
 * The launch configuration of a joining node: from `join.json` when it joined before, else by
 * joining now (empty data directory and `--join`). Any other start is returned unchanged.
 */
export async function joinIfNew<T extends StartWithJoin>(
  config: T,
  log: NodeLog,
): Promise<{ config: T; join: JoinState | null }> {
  const known = readJoinState(config.dataDirectory);
  if (known !== null) return { config: joined(config, known), join: known };
  if (config.join === null) return { config, join: null };
  if (holdsState(config.dataDirectory)) {
    log("warn", "node.join-ignored", {
      reason: "the data directory holds a node's state; it restarts as the member it is",
      dataDirectory: config.dataDirectory,
    });
    return { config, join: null };
  }
  const answer = await askToJoin(config, log);
  const state: JoinState = {
    clusterId: answer.clusterId,
    config: answer.config,
    joinAs: config.joinAs,
    done: config.joinAs === "learner",
  };
  writeJoinState(config.dataDirectory, state);
  log("info", "node.joined", { via: config.join, clusterId: state.clusterId, config: state.config });
  return { config: joined(config, state), join: state };
}

function joined<T extends StartWithJoin>(config: T, state: JoinState): T {
  return { ...config, clusterId: state.clusterId, cluster: [], bootstrap: state.config };
}

async function askToJoin(
  config: StartWithJoin,
  log: NodeLog,
): Promise<{ clusterId: string; config: JoinState["config"] }> {
  const url = `${httpBaseUrl(config.join ?? "")}/v1/members/join`;
  const body = JSON.stringify({
    id: config.id,
    raft: hostPort(config.raft),
    http: hostPort(config.http),
    witness: config.joinAs === "witness",
    timeoutMs: joinRequestMs,
  });
  const deadlineMs = Date.now() + joinWaitMsMax;
  let last = "no answer";
  while (Date.now() < deadlineMs) {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(joinRequestMs + 5_000),
      });
      const answer = (await response.json()) as {
        clusterId?: unknown;
        config?: unknown;
        error?: { code?: string; message?: string };
      };
      if (response.ok) {
        const parsed = parseConfigJson(answer.config);
        if (typeof answer.clusterId !== "string" || parsed === null)
          throw new BatonError(
            ErrorCode.JOIN_FAILED,
            `${url} answered without a cluster id or configuration`,
          );
        return { clusterId: answer.clusterId, config: parsed };
      }
      const code = answer.error?.code as keyof typeof retryByCode | undefined;
      last = `${code ?? response.status}: ${answer.error?.message ?? ""}`;
      if (code !== undefined && code in retryByCode && retryByCode[code].retry === "never")
        throw new BatonError(ErrorCode.JOIN_FAILED, `${url} refused the join: ${last}`, { code });
    } catch (error) {
      if (error instanceof BatonError) throw error;
      last = (error as Error).message;
    }
    log("info", "node.join-retry", { url, last });
    await new Promise((resolve) => setTimeout(resolve, joinRetryMs));
  }
  throw new BatonError(
    ErrorCode.JOIN_FAILED,
    `could not join through ${url} within ${joinWaitMsMax} ms: ${last}`,
  );
}

/**
 * Asks this node's leader (through its own HTTP API, which forwards) to promote it, every few
 * seconds, until it is a voter; records that in `join.json`. Returns a function that stops it.
 */
export function promoteUntilVoter(
  dataDirectory: string,
  state: JoinState,
  id: string,
  selfHttp: string,
  log: NodeLog,
): () => void {
  if (state.done || state.joinAs === "learner") return () => {};
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const attempt = async (): Promise<void> => {
    timer = null;
    let finished = false;
    try {
      const response = await fetch(`${httpBaseUrl(selfHttp)}/v1/members/${encodeURIComponent(id)}/promote`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ timeoutMs: promoteRequestMs }),
        signal: AbortSignal.timeout(promoteRequestMs + 10_000),
      });
      const answer = (await response.json()) as { error?: { code?: string; message?: string } };
      const code = answer.error?.code;
      if (response.ok || code === "NODE_NOT_LEARNER") {
        finished = true;
        writeJoinState(dataDirectory, { ...state, done: true });
        log("info", "node.promoted-to-voter", {});
      } else if (code === "NODE_NOT_MEMBER") {
        finished = true;
        log("warn", "node.promotion-abandoned", { reason: "this node is no longer a member" });
      } else log("info", "node.promotion-retry", { code, message: answer.error?.message });
    } catch (error) {
      log("info", "node.promotion-retry", { error: (error as Error).message });
    }
    if (!finished && !stopped) timer = setTimeout(() => void attempt(), promoteEveryMs);
  };
  timer = setTimeout(() => void attempt(), promoteEveryMs);
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
  };
}
