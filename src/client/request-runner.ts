/**
 * The retry loop: one client call becomes at most `attemptsMax` HTTP requests within one deadline.
 *
 * Invariants:
 * - The call's body is built once per attempt from the same inputs; for a write it carries the same
 *   `requestId` every time, so however many attempts reach the leader, the write is applied once.
 * - Nothing waits past the deadline: every request is bounded by the smaller of the attempt timeout
 *   and the time left, and a backoff (or a `Retry-After`) that would end past the deadline ends the
 *   call instead, with the last error. An attempt cut short by the deadline is reported only when
 *   no earlier attempt produced an error.
 * - Writes and leader reads go to the believed leader; without a belief the runner asks every node
 *   (one shared discovery for concurrent calls) and, failing that, tries nodes in turn.
 */
import type { ErrorBody } from "../api/api-types.ts";
import { requestLimits } from "../api/request-limits.ts";
import { assert } from "../lib/assert.ts";
import { BatonClientError, ClientErrorCode } from "./client-error.ts";
import { type Answer, exchange, type FetchLike } from "./http-exchange.ts";
import { type DiscoveryContext, discoverLeader } from "./leader-discovery.ts";
import type { NodeDirectory } from "./node-directory.ts";
import { backoffDelayMs, codeHandling, provesNotApplied, type RetryOptions } from "./retry-policy.ts";

export type RunnerConfig = {
  readonly fetch: FetchLike;
  readonly directory: NodeDirectory;
  readonly retry: RetryOptions;
  /** Re-check who leads, in the background, when the belief is older than this. */
  readonly leaderCheckIntervalMs: number;
  /** Aborted when the client closes. */
  readonly closeSignal: AbortSignal;
  readonly random: () => number;
  readonly nowMs: () => number;
};

/** Where a call may be served: only by the leader, by any node, or by one given node. */
export type Route = "leader" | "any" | { readonly node: string };

export type Call = {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly route: Route;
  /** Builds the JSON body for one attempt, given how long the server may take; `undefined` for a GET. */
  readonly body: ((serverTimeoutMs: number) => unknown) | undefined;
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** Set for writes: reported with failures so the caller can retry safely. */
  readonly requestId: string | undefined;
};

export type CallSuccess = { readonly body: unknown; readonly node: string; readonly attempts: number };

/** The server is asked to give up a little before the client does, so it answers `TIMEOUT` cleanly. */
export function serverTimeoutMs(attemptBudgetMs: number): number {
  return Math.min(requestLimits.timeoutMsMax, Math.max(1, Math.floor(attemptBudgetMs * 0.9)));
}

type Verdict = {
  readonly error: BatonClientError;
  readonly retryable: boolean;
  /** The least wait before the next attempt (`Retry-After`), or 0 to go at once to `redirectTo`. */
  readonly waitMsMin: number;
  readonly redirectTo: string | undefined;
};

type Progress = { attempts: number; maybeApplied: boolean; last: BatonClientError | undefined };

export class RequestRunner {
  readonly #config: RunnerConfig;
  readonly #discoveryContext: DiscoveryContext;
  #discovery: Promise<string | undefined> | undefined;

  constructor(config: RunnerConfig) {
    assert(config.leaderCheckIntervalMs > 0, "leaderCheckIntervalMs must be positive");
    this.#config = config;
    this.#discoveryContext = {
      fetch: config.fetch,
      directory: config.directory,
      signal: config.closeSignal,
      nowMs: config.nowMs,
    };
  }

  async run(call: Call): Promise<CallSuccess> {
    assert(call.timeoutMs > 0 && call.attemptTimeoutMs > 0, "a call needs positive timeouts");
    const { nowMs, retry } = this.#config;
    const deadlineMs = nowMs() + call.timeoutMs;
    const signal = call.signal
      ? AbortSignal.any([this.#config.closeSignal, call.signal])
      : this.#config.closeSignal;
    const progress: Progress = { attempts: 0, maybeApplied: false, last: undefined };
    let redirectTo: string | undefined;
    while (progress.attempts < retry.attemptsMax) {
      this.#throwIfStopped(call, progress);
      const url =
        redirectTo ?? (await this.#target(call, Math.min(call.attemptTimeoutMs, deadlineMs - nowMs())));
      this.#throwIfStopped(call, progress);
      const budgetMs = Math.min(call.attemptTimeoutMs, deadlineMs - nowMs());
      if (budgetMs < 1) break;
      progress.attempts += 1;
      const body = call.body === undefined ? undefined : JSON.stringify(call.body(serverTimeoutMs(budgetMs)));
      const answer = await exchange(this.#config.fetch, {
        url: `${url}${call.path}`,
        method: call.method,
        body,
        timeoutMs: budgetMs,
        signal,
      });
      if (answer.kind === "success") return { body: answer.body, node: url, attempts: progress.attempts };
      const verdict = this.#judge(call, answer, url, progress);
      // An attempt that the call's deadline (not the attempt timeout) cut short was never a fair try
      // of the node: it must not replace what a full attempt learned, or an all-down cluster whose
      // refusals come slowly under load would be reported as TIMEOUT instead of UNAVAILABLE.
      const cutByDeadline = answer.kind === "timed-out" && budgetMs < call.attemptTimeoutMs;
      if (!cutByDeadline || progress.last === undefined) progress.last = verdict.error;
      if (!verdict.retryable || progress.attempts >= retry.attemptsMax) break;
      redirectTo = verdict.redirectTo;
      const backoffMs =
        redirectTo === undefined ? backoffDelayMs(retry, progress.attempts, this.#config.random) : 0;
      const waitMs = Math.max(backoffMs, verdict.waitMsMin);
      if (nowMs() + waitMs >= deadlineMs) break;
      await sleep(waitMs, signal);
    }
    throw this.#finalError(call, progress);
  }

  /** Starts (or joins) a leader discovery; concurrent callers share one round of probes. */
  discover(probeTimeoutMs: number): Promise<string | undefined> {
    if (this.#discovery === undefined) {
      const probeMs = Math.max(1, probeTimeoutMs);
      this.#discovery = discoverLeader(this.#discoveryContext, probeMs).finally(() => {
        this.#discovery = undefined;
      });
    }
    return this.#discovery;
  }

  /** Chooses the node for the next attempt. */
  async #target(call: Call, probeBudgetMs: number): Promise<string> {
    const { directory, nowMs } = this.#config;
    if (call.route === "any") return directory.nextUrl();
    if (typeof call.route === "object") return call.route.node;
    const believed = directory.leaderUrl;
    if (believed !== undefined) {
      // A deposed leader that is still up forwards writes, so nothing else would ever correct the
      // belief: re-check in the background now and then, without delaying this call.
      if (directory.leaderAgeMs(nowMs()) > this.#config.leaderCheckIntervalMs)
        void this.discover(call.attemptTimeoutMs);
      return believed;
    }
    if (probeBudgetMs >= 1) {
      const found = await this.discover(probeBudgetMs);
      if (found !== undefined) return found;
    }
    return directory.nextUrl();
  }

  #throwIfStopped(call: Call, progress: Progress): void {
    if (this.#config.closeSignal.aborted) {
      throw this.#stamp(
        new BatonClientError(ClientErrorCode.CLIENT_CLOSED, "the client is closed"),
        call,
        progress,
      );
    }
    if (call.signal?.aborted) {
      throw this.#stamp(
        new BatonClientError(ClientErrorCode.ABORTED, "the call was aborted"),
        call,
        progress,
      );
    }
  }

  /** Classifies a failed attempt, updates the leader belief, and says whether and how to go on. */
  #judge(call: Call, answer: Exclude<Answer, { kind: "success" }>, url: string, progress: Progress): Verdict {
    const { directory } = this.#config;
    const settle = (error: BatonClientError, retryable: boolean): Verdict => {
      if (retryable) {
        directory.forgetLeader(url);
        directory.skipPast(url);
      }
      return { error, retryable, waitMsMin: 0, redirectTo: undefined };
    };
    switch (answer.kind) {
      case "aborted":
        progress.maybeApplied ||= call.requestId !== undefined;
        this.#throwIfStopped(call, progress);
        return settle(
          new BatonClientError(ClientErrorCode.ABORTED, "the call was aborted", { node: url }),
          false,
        );
      case "timed-out":
        progress.maybeApplied = true;
        return settle(new BatonClientError("TIMEOUT", `no answer from ${url} in time`, { node: url }), true);
      case "unreachable":
        progress.maybeApplied ||= answer.maybeReceived;
        return settle(unreachableError(url, answer.cause), true);
      case "bad-response":
        progress.maybeApplied = true;
        return settle(
          new BatonClientError(ClientErrorCode.BAD_RESPONSE, answer.message, {
            node: url,
            status: answer.status,
          }),
          false,
        );
      case "server-error":
        return this.#judgeServerError(answer.error, answer.status, answer.retryAfterMs, url, progress);
    }
  }

  #judgeServerError(
    body: ErrorBody,
    status: number,
    retryAfterMs: number | undefined,
    url: string,
    progress: Progress,
  ): Verdict {
    const { directory, nowMs } = this.#config;
    // A follower that failed to forward says so with `outcome: "unknown"`, whatever its code.
    if (!provesNotApplied(body.code) || body.details?.outcome === "unknown") progress.maybeApplied = true;
    const error = new BatonClientError(body.code, body.message, {
      status,
      node: url,
      details: { ...body.details, ...(body.leader ? { leader: body.leader } : {}) },
    });
    const waitMsMin = retryAfterMs ?? 0;
    const handling = codeHandling(body.code);
    if (handling === "never") return { error, retryable: false, waitMsMin, redirectTo: undefined };
    if (handling === "redirect" && body.leader) {
      const leaderUrl = directory.learnLeader(body.leader, url, nowMs());
      if (leaderUrl !== undefined && leaderUrl !== url)
        return { error, retryable: true, waitMsMin: 0, redirectTo: leaderUrl };
    }
    if (handling !== "backoff") {
      directory.forgetLeader(url);
      directory.skipPast(url);
    }
    return { error, retryable: true, waitMsMin, redirectTo: undefined };
  }

  #stamp(error: BatonClientError, call: Call, progress: Progress): BatonClientError {
    const write =
      call.requestId === undefined ? {} : { requestId: call.requestId, maybeApplied: progress.maybeApplied };
    return error.withDetails({ attempts: progress.attempts, ...write });
  }

  #finalError(call: Call, progress: Progress): BatonClientError {
    const last =
      progress.last ??
      new BatonClientError(ClientErrorCode.UNAVAILABLE, "the deadline passed before any node could be tried");
    return this.#stamp(last, call, progress);
  }
}

function unreachableError(url: string, cause: unknown): BatonClientError {
  const reason =
    cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : "";
  return new BatonClientError(
    ClientErrorCode.UNAVAILABLE,
    `cannot reach ${url}${reason ? `: ${reason}` : ""}`,
    {
      node: url,
      cause,
    },
  );
}

/** Waits `waitMs`, or less if `signal` aborts; never rejects. */
function sleep(waitMs: number, signal: AbortSignal): Promise<void> {
  if (waitMs <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, waitMs);
    signal.addEventListener("abort", done, { once: true });
  });
}
