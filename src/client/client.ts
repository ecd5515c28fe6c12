/**
 * The client: typed calls over the HTTP API, routed to the right node, retried safely.
 *
 * Invariants:
 * - Every write carries a `requestId` (a random UUID unless the caller gives one), identical on every
 *   attempt of that write, so the server applies it at most once however often it is retried.
 * - Writes and leader reads go straight to the believed leader; reads with consistency `any` are
 *   spread over the nodes in turn.
 * - An answer reaches the caller only after its shape is checked (`BAD_RESPONSE` otherwise); values
 *   in it are passed through untouched (integers beyond ±2^53 stay decimal strings).
 * - After `close()` every call, running or new, fails with `CLIENT_CLOSED`.
 */

import type {
  ExecuteRequest,
  ExecuteResponse,
  QueryRequest,
  QueryResponse,
  ReadPosition,
  ResultValue,
  Statement,
  StatusResponse,
} from "../api/api-types.ts";
import { requestLimits } from "../api/request-limits.ts";
import { assert } from "../lib/assert.ts";
import { Batch } from "./batch.ts";
import { BatonClientError, ClientErrorCode } from "./client-error.ts";
import {
  type CallOptions,
  type ConnectOptions,
  checkDurationMs,
  checkLevels,
  type ExecuteOptions,
  type QueryOptions,
  type ResolvedOptions,
  resolveOptions,
  type StatusOptions,
} from "./connect-options.ts";
import { learnFromStatus } from "./leader-discovery.ts";
import { NodeDirectory, normalizeNodeUrl } from "./node-directory.ts";
import { type Call, type CallSuccess, RequestRunner, type Route } from "./request-runner.ts";
import { isExecuteResponse, isQueryResponse, isStatusResponse } from "./response-shapes.ts";
import { Session, type SessionOptions } from "./session.ts";
import { rowsAsObjects, type StatementsInput, statementList } from "./statements.ts";

/**
 * The answer to a write: one result per statement, the log position of the write, its request id,
 * and the fencing token — the term it was accepted under (`term`, also `position.term`) and the node
 * that answered (null from a server that does not say).
 */
export type ExecuteResult = Omit<ExecuteResponse, "node"> & {
  readonly node: string | null;
  readonly requestId: string;
};

/** The rows of one query as objects keyed by column name, with where and when they were read. */
export type QueryRows<Row> = {
  readonly rows: Row[];
  readonly columns: readonly string[];
  readonly position: ReadPosition;
  /** The id of the node that served the read. */
  readonly node: string;
  /** Fencing token: the term the node was in when it served the read (null from a server that does not say). */
  readonly term: number | null;
};

export class Client {
  readonly #options: ResolvedOptions;
  readonly #directory: NodeDirectory;
  readonly #runner: RequestRunner;
  readonly #closer = new AbortController();

  /** Prefer `connect(options)`; this throws `BAD_CONFIG` for invalid options. */
  constructor(options: ConnectOptions) {
    this.#options = resolveOptions(options);
    this.#directory = new NodeDirectory(this.#options.nodes);
    this.#runner = new RequestRunner({
      fetch: this.#options.fetch,
      directory: this.#directory,
      retry: this.#options.retry,
      leaderCheckIntervalMs: this.#options.leaderCheckIntervalMs,
      closeSignal: this.#closer.signal,
      random: Math.random,
      nowMs: Date.now,
    });
  }

  /** The node base URLs known so far: the seeds, then nodes learned from status answers and redirects. */
  get nodes(): readonly string[] {
    return this.#directory.urls;
  }

  /** The base URL of the node believed to lead, if any. A hint only: it may be stale. */
  get leader(): string | undefined {
    return this.#directory.leaderUrl;
  }

  get closed(): boolean {
    return this.#closer.signal.aborted;
  }

  /**
   * Runs `statements` as one transaction on the leader. An array is always a list of statements: write
   * a single statement with parameters as `[["INSERT … (?)", 1]]` or `{sql, params}`.
   */
  async execute(statements: StatementsInput, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    const list = statementList(statements);
    this.#checkCallOptions(options);
    checkLevels(options.durability, undefined, "BAD_REQUEST");
    const requestId = options.requestId ?? globalThis.crypto.randomUUID();
    // The server's bound on a request id; a UUID is 36 characters.
    const { requestIdLengthMax } = requestLimits;
    if (typeof requestId !== "string" || requestId === "" || requestId.length > requestIdLengthMax) {
      throw new BatonClientError("BAD_REQUEST", `requestId must be 1 to ${requestIdLengthMax} characters`);
    }
    const durability = options.durability ?? this.#options.durability;
    const body = (timeoutMs: number): ExecuteRequest => ({
      statements: list,
      requestId,
      timeoutMs,
      ...(durability === undefined ? {} : { durability }),
      ...(options.expectedTerm === undefined ? {} : { expectedTerm: options.expectedTerm }),
    });
    const success = await this.#run("POST", "/v1/execute", "leader", body, options, requestId);
    if (!isExecuteResponse(success.body, list.length)) {
      throw badResponse(success, "the execute answer does not match the API").withDetails({
        requestId,
        maybeApplied: true,
      });
    }
    const answer = success.body as ExecuteResponse & Partial<Pick<ExecuteResponse, "term" | "node">>;
    return {
      results: answer.results,
      position: answer.position,
      term: answer.term ?? answer.position.term,
      node: answer.node ?? null,
      requestId,
    };
  }

  /**
   * Runs ONE read-only statement and returns its rows as objects typed `Row` (not checked: the type
   * is the caller's promise). Here an array is the tuple form `["sql", ...params]`.
   */
  async query<Row extends object = Record<string, ResultValue>>(
    statement: Statement,
    options: QueryOptions = {},
  ): Promise<QueryRows<Row>> {
    const answer = await this.queryRaw([statement], options);
    const result = answer.results[0];
    assert(result !== undefined && answer.results.length === 1, "one statement has one result");
    return {
      rows: rowsAsObjects<Row>(result),
      columns: result.columns,
      position: answer.position,
      node: answer.node,
      term: typeof answer.term === "number" ? answer.term : null,
    };
  }

  /** Runs read-only statements and returns the wire answer: column names and row arrays per statement. */
  async queryRaw(statements: StatementsInput, options: QueryOptions = {}): Promise<QueryResponse> {
    const list = statementList(statements);
    this.#checkCallOptions(options);
    checkLevels(undefined, options.consistency, "BAD_REQUEST");
    checkCount("minIndex", options.minIndex);
    checkCount("maxLagMs", options.maxLagMs);
    const consistency = options.consistency ?? this.#options.consistency;
    const body = (timeoutMs: number): QueryRequest => ({
      statements: list,
      timeoutMs,
      ...(consistency === undefined ? {} : { consistency }),
      ...(options.minIndex === undefined ? {} : { minIndex: options.minIndex }),
      ...(options.maxLagMs === undefined ? {} : { maxLagMs: options.maxLagMs }),
    });
    const route: Route = consistency === "any" ? "any" : "leader";
    const success = await this.#run("POST", "/v1/query", route, body, options, undefined);
    if (!isQueryResponse(success.body, list.length))
      throw badResponse(success, "the query answer does not match the API");
    return success.body;
  }

  /**
   * Collects statements with `build(batch)` and sends them as ONE `execute` batch, applied atomically.
   * This is not an interactive transaction: nothing is sent, and nothing can be read back, until
   * `build` returns. If `build` throws, nothing is sent.
   */
  async transaction(
    build: (batch: Batch) => void | Promise<void>,
    options: ExecuteOptions = {},
  ): Promise<ExecuteResult> {
    this.#throwIfClosed();
    const batch = new Batch();
    await build(batch);
    const statements = batch.seal();
    if (statements.length === 0)
      throw new BatonClientError("BAD_REQUEST", "the transaction added no statements");
    return await this.execute(statements, options);
  }

  /** `GET /v1/status` from `options.node`, or from the first node that answers. */
  async status(options: StatusOptions = {}): Promise<StatusResponse> {
    this.#checkCallOptions(options);
    let route: Route = "any";
    if (options.node !== undefined) {
      const node = normalizeNodeUrl(options.node);
      if (node === undefined) throw new BatonClientError("BAD_REQUEST", `not a node URL: ${options.node}`);
      route = { node };
    }
    const success = await this.#run("GET", "/v1/status", route, undefined, options, undefined);
    if (!isStatusResponse(success.body))
      throw badResponse(success, "the status answer does not match the API");
    const context = {
      fetch: this.#options.fetch,
      directory: this.#directory,
      signal: this.#closer.signal,
      nowMs: Date.now,
    };
    const named = learnFromStatus(context, success.body, success.node);
    if (named !== null) this.#directory.learnLeader(named, success.node, Date.now());
    return success.body;
  }

  /** A handle whose reads see at least everything it wrote or read before (see `Session`). */
  session(options: SessionOptions = {}): Session {
    this.#throwIfClosed();
    checkLevels(undefined, options.consistency, "BAD_REQUEST");
    return new Session(this, options);
  }

  /**
   * Stops the client: running calls fail with `CLIENT_CLOSED` (a write already sent may still be
   * applied), later calls fail at once. Pooled connections belong to the `fetch` in use, which closes
   * idle ones by itself.
   */
  async close(): Promise<void> {
    this.#closer.abort();
  }

  #throwIfClosed(): void {
    if (this.closed) throw new BatonClientError(ClientErrorCode.CLIENT_CLOSED, "the client is closed");
  }

  #checkCallOptions(options: CallOptions): void {
    this.#throwIfClosed();
    checkDurationMs("timeoutMs", options.timeoutMs, "BAD_REQUEST");
    checkDurationMs("attemptTimeoutMs", options.attemptTimeoutMs, "BAD_REQUEST");
  }

  #run(
    method: Call["method"],
    path: string,
    route: Route,
    body: Call["body"],
    options: CallOptions,
    requestId: string | undefined,
  ): Promise<CallSuccess> {
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    const attemptTimeoutMs = Math.min(
      options.attemptTimeoutMs ??
        (options.timeoutMs === undefined ? this.#options.attemptTimeoutMs : timeoutMs / 2),
      timeoutMs,
    );
    return this.#runner.run({
      method,
      path,
      route,
      body,
      timeoutMs,
      attemptTimeoutMs,
      signal: options.signal,
      requestId,
    });
  }
}

/** Throws `BAD_REQUEST` unless `value` is a non-negative integer (or undefined). */
function checkCount(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
    throw new BatonClientError("BAD_REQUEST", `${name} must be a non-negative integer, got ${String(value)}`);
  }
}

function badResponse(success: CallSuccess, message: string): BatonClientError {
  return new BatonClientError(ClientErrorCode.BAD_RESPONSE, message, { node: success.node });
}

/** Creates a client. No request is made until the first call; the leader is found on demand. */
export function connect(options: ConnectOptions): Client {
  return new Client(options);
}
