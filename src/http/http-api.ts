/**
 * The HTTP API of one node (DESIGN.md §3), kept thin: parse and validate up front, call the node
 * service, map typed errors to statuses through the one table in `src/lib/errors.ts`.
 *
 * Invariants: every answer is JSON; every error answer is `{error: {code, message, ...}}` with a
 * stable code; a malformed request never reaches the node and never produces a 500; request bodies
 * are bounded (`bodyBytesMax`) and read with a deadline; `stop()` refuses new requests, lets
 * in-flight ones finish within `drainMsMax`, then closes every connection.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { toJson } from "../api/json-encoding.ts";
import { normalizeExecute, normalizeQuery } from "../api/request-validation.ts";
import { BatonError, ErrorCode, httpStatusByCode, isBatonError, retryByCode } from "../lib/errors.ts";
import type { NodeService } from "../node/node-service.ts";
import { forwardOrThrow, nodeHeader, termHeader } from "./leader-forwarding.ts";
import { memberRoute } from "./member-routes.ts";
import { operatorRoute } from "./operator-routes.ts";
import { orphanRoute } from "./orphan-routes.ts";

export type HttpApiOptions = {
  readonly host: string;
  readonly port: number;
  /** Largest accepted request body. */
  readonly bodyBytesMax?: number;
  /** A request body must arrive within this time. */
  readonly bodyReadMsMax?: number;
  /** Bound on waiting for in-flight requests during `stop()`. */
  readonly drainMsMax?: number;
  /** Bound on one forwarded request (follower → leader). */
  readonly forwardTimeoutMs?: number;
  readonly onLog?: (level: "info" | "warn" | "error", event: string, fields: Record<string, unknown>) => void;
};

const defaults = {
  bodyBytesMax: 8 * 1024 * 1024,
  bodyReadMsMax: 30_000,
  drainMsMax: 10_000,
  forwardTimeoutMs: 30_000,
};

export function errorBody(
  error: BatonError,
  fencing?: { readonly node: string; readonly term: number },
): { error: Record<string, unknown> } {
  const { leader, ...details } = error.details as Record<string, unknown>;
  const body: Record<string, unknown> = { code: error.code, message: error.message };
  if (leader !== undefined) body.leader = leader;
  if (Object.keys(details).length > 0) body.details = details;
  if (fencing !== undefined) {
    body.term = fencing.term;
    body.node = fencing.node;
  }
  return { error: body };
}

/** The fencing headers of an answer: the term and node the body names, or else this node's now. */
function fencingHeaders(
  body: unknown,
  now: { readonly node: string; readonly term: number },
): Record<string, string> {
  const named = body as { term?: unknown; node?: unknown } | null;
  const term = typeof named?.term === "number" ? named.term : now.term;
  const node = typeof named?.node === "string" ? named.node : now.node;
  const headers: Record<string, string> = {};
  headers[termHeader] = String(term);
  headers[nodeHeader] = node;
  return headers;
}

/** What a route answers; `headers` only when relayed from another node (the leader's own fencing headers). */
type RouteAnswer = { status: number; body: unknown; headers?: Record<string, string> };

export class HttpApi {
  private readonly server: http.Server;
  private readonly options: Required<Omit<HttpApiOptions, "onLog">> & Pick<HttpApiOptions, "onLog">;
  private readonly service: NodeService;
  private stopping = false;
  private inFlight = 0;

  constructor(service: NodeService, options: HttpApiOptions) {
    this.service = service;
    this.options = { ...defaults, ...options };
    this.server = http.createServer(
      { keepAliveTimeout: 5_000, requestTimeout: this.options.bodyReadMsMax },
      (request, response) => {
        void this.handle(request, response);
      },
    );
  }

  async start(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting requests, waits (bounded) for in-flight ones, closes all connections. */
  async stop(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + this.options.drainMsMax;
    while (this.inFlight > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    this.inFlight++;
    try {
      if (this.stopping) throw new BatonError(ErrorCode.SHUTTING_DOWN, "the node is shutting down");
      const { status, body, headers } = await this.route(request);
      this.send(response, status, body, headers ?? fencingHeaders(body, this.service.fencing()));
    } catch (error) {
      this.sendError(response, error, request);
    } finally {
      this.inFlight--;
    }
  }

  /** The node's own routes, built once (not per request). */
  private readonly routes = new Map<
    string,
    { method: string; run: (request: http.IncomingMessage) => Promise<RouteAnswer> }
  >([
    [
      "/v1/execute",
      {
        method: "POST",
        run: (request) =>
          this.shedOrRun(() => this.withBody(request, normalizeExecute, (r) => this.service.execute(r))),
      },
    ],
    [
      "/v1/query",
      {
        method: "POST",
        run: (request) =>
          this.shedOrRun(() => this.withBody(request, normalizeQuery, (r) => this.service.query(r))),
      },
    ],
    ["/v1/status", { method: "GET", run: async () => ({ status: 200, body: this.service.status() }) }],
    [
      "/v1/content-hash",
      { method: "GET", run: async () => ({ status: 200, body: await this.service.contentHash() }) },
    ],
    ["/healthz", { method: "GET", run: async () => ({ status: 200, body: { ok: true } }) }],
    ["/readyz", { method: "GET", run: async () => this.readiness() }],
  ]);

  private async route(request: http.IncomingMessage): Promise<RouteAnswer> {
    const path = (request.url ?? "/").split("?")[0];
    const route = path === undefined ? undefined : this.routes.get(path);
    if (route === undefined) {
      const orphans = await orphanRoute(
        this.service,
        request,
        () => this.readBody(request),
        this.options.forwardTimeoutMs,
      );
      if (orphans !== null) return orphans;
      const members = await memberRoute(this.service, request, () => this.readBody(request));
      if (members !== null) return members;
      const operator = await operatorRoute(this.service, request, () => this.readBody(request));
      if (operator !== null) return operator;
      throw new BatonError(ErrorCode.NOT_FOUND, `no route ${request.method} ${path}`);
    }
    if (request.method !== route.method) {
      throw new BatonError(
        ErrorCode.METHOD_NOT_ALLOWED,
        `${path} takes ${route.method}, not ${request.method}`,
      );
    }
    return route.run(request);
  }

  /**
   * Client work is refused OVERLOADED before its body is read while the node sheds load (its event
   * loop runs late); Node's server drains the unread body once the answer is sent.
   */
  private shedOrRun(run: () => Promise<RouteAnswer>): Promise<RouteAnswer> {
    this.service.shed();
    return run();
  }

  private async readiness(): Promise<{ status: number; body: unknown }> {
    const readiness = this.service.readiness();
    return { status: readiness.ready ? 200 : 503, body: readiness };
  }

  /** Reads and validates a JSON body, runs it on the node, and forwards to the leader on NOT_LEADER. */
  private async withBody<T>(
    request: http.IncomingMessage,
    normalize: (body: unknown) => T,
    run: (normalized: T) => Promise<unknown>,
  ): Promise<RouteAnswer> {
    const raw = await this.readBody(request);
    const normalized = normalize(parseJson(raw));
    try {
      return { status: 200, body: await run(normalized) };
    } catch (error) {
      return forwardOrThrow(error, request, raw, this.options.forwardTimeoutMs);
    }
  }

  /**
   * Reads the body up to `bodyBytesMax`. An oversized body is still read to its end (and dropped)
   * before the 413 answer, so the client sees the answer instead of a reset connection; the
   * server's request timeout bounds how long that can take.
   */
  private readBody(request: http.IncomingMessage): Promise<Buffer> {
    const limit = this.options.bodyBytesMax;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      request.on("data", (chunk: Buffer) => {
        bytes += chunk.byteLength;
        if (bytes <= limit) chunks.push(chunk);
        else chunks.length = 0;
      });
      request.on("end", () => {
        if (bytes > limit) {
          reject(
            new BatonError(ErrorCode.PAYLOAD_TOO_LARGE, `the body exceeds ${limit} bytes`, {
              bodyBytesMax: limit,
            }),
          );
        } else resolve(Buffer.concat(chunks));
      });
      request.on("error", (error) =>
        reject(new BatonError(ErrorCode.BAD_REQUEST, `reading the body failed: ${error.message}`)),
      );
    });
  }

  private send(
    response: http.ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    if (response.headersSent) return;
    const text = typeof body === "string" ? body : toJson(body);
    // Names and values in one flat list: Node takes it as it is, without an object per answer.
    const flat = ["content-type", "application/json", "content-length", String(Buffer.byteLength(text))];
    for (const name in headers) flat.push(name, headers[name]!);
    response.writeHead(status, flat);
    response.end(text);
  }

  private sendError(response: http.ServerResponse, error: unknown, request: http.IncomingMessage): void {
    const typed = isBatonError(error)
      ? error
      : new BatonError(ErrorCode.INTERNAL, "internal error", {}, { cause: error });
    if (!isBatonError(error))
      this.options.onLog?.("error", "http.internal-error", {
        url: request.url,
        error: String((error as Error)?.stack ?? error),
      });
    const fencing = this.service.fencing();
    const headers: Record<string, string> = fencingHeaders(null, fencing);
    const { retryAfterSeconds } = retryByCode[typed.code];
    if (retryAfterSeconds !== null) headers["retry-after"] = String(retryAfterSeconds);
    this.send(response, httpStatusByCode[typed.code], errorBody(typed, fencing), headers);
  }
}

function parseJson(raw: Buffer): unknown {
  if (raw.byteLength === 0)
    throw new BatonError(ErrorCode.BAD_REQUEST, "the body is empty; expected a JSON object");
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw new BatonError(ErrorCode.BAD_REQUEST, `the body is not valid JSON: ${(error as Error).message}`);
  }
}
