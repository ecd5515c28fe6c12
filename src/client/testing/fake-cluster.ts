/**
 * A fake Baton cluster for the client's tests: real HTTP servers on 127.0.0.1 (port 0), fake brains.
 *
 * It speaks the HTTP contract of DESIGN.md §3 with a toy state machine: a write appends its
 * statements' parameters as rows of one table, and every query returns that table's rows up to the
 * serving node's applied index as columns `key, value`. The test decides who leads (`setLeader`),
 * which nodes lag (`setApplied`), which are down (`stop` closes the listener, so connections are
 * refused), and scripts one-shot faults per node and path (`inject`). Writes are deduplicated by
 * `requestId` cluster-wide, as the real log's dedup table would, and every request is recorded.
 * Test support only: never imported by the library.
 */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ExecuteResponse, Statement, StatementResult } from "../../api/api-types.ts";
import { assert } from "../../lib/assert.ts";

export type FakeFault =
  /** Close the connection without reading on or answering: the node never acted. */
  | { readonly kind: "drop-before" }
  /** Apply the write, then close the connection without answering: the client cannot know. */
  | { readonly kind: "drop-after-apply" }
  /** Never answer (until the node stops). */
  | { readonly kind: "hang" }
  /** Answer with this error body; `withLeader` adds the current leader as a hint. */
  | {
      readonly kind: "error";
      readonly status: number;
      readonly code: string;
      readonly retryAfter?: string;
      readonly withLeader?: boolean;
      readonly details?: Record<string, unknown>;
    };

export type RecordedRequest = {
  readonly node: string;
  readonly method: string;
  readonly path: string;
  readonly body: Record<string, unknown> | undefined;
  readonly atMs: number;
};

type FakeNode = { readonly id: string; server: http.Server; port: number; appliedIndex: number | undefined };

/** Faults queued per node and path, at most; a guard against a test scripting without bound. */
const faultsQueuedMax = 100;

export class FakeCluster {
  readonly requests: RecordedRequest[] = [];
  /** The rows each log entry added, by index - 1. */
  readonly entries: (readonly unknown[])[][] = [];
  /** What a follower does with a write: forward it to the leader (the contract) or answer NOT_LEADER. */
  followerWrites: "forward" | "not-leader" = "forward";
  leaderId: string | null;
  term = 1;
  applyCount = 0;
  readonly #nodes: FakeNode[];
  readonly #answersByRequestId = new Map<string, ExecuteResponse>();
  readonly #faults = new Map<string, FakeFault[]>();

  private constructor(nodes: FakeNode[]) {
    this.#nodes = nodes;
    this.leaderId = nodes[0]?.id ?? null;
  }

  static async start(size: number): Promise<FakeCluster> {
    assert(size >= 1 && size <= 9, "a fake cluster has 1 to 9 nodes");
    const nodes: FakeNode[] = [];
    for (let i = 1; i <= size; i++)
      nodes.push({ id: `n${i}`, server: http.createServer(), port: 0, appliedIndex: undefined });
    const cluster = new FakeCluster(nodes);
    for (const node of nodes) await cluster.#listen(node);
    return cluster;
  }

  get ids(): string[] {
    return this.#nodes.map((node) => node.id);
  }

  get urls(): string[] {
    return this.#nodes.map((node) => this.url(node.id));
  }

  url(id: string): string {
    return `http://127.0.0.1:${this.#node(id).port}`;
  }

  get commitIndex(): number {
    return this.entries.length;
  }

  /** Requests received by `path`, optionally only those on node `id`. */
  received(path: string, id?: string): RecordedRequest[] {
    return this.requests.filter(
      (request) => request.path === path && (id === undefined || request.node === id),
    );
  }

  /** Makes `id` the leader (a new term) or leaves the cluster leaderless. */
  setLeader(id: string | null): void {
    if (id !== null) this.#node(id);
    if (id !== this.leaderId) this.term += 1;
    this.leaderId = id;
  }

  /** Freezes a node's applied index (it lags), or with `undefined` lets it follow the commit index. */
  setApplied(id: string, appliedIndex: number | undefined): void {
    this.#node(id).appliedIndex = appliedIndex;
  }

  inject(id: string, path: string, fault: FakeFault): void {
    const key = `${this.#node(id).id} ${path}`;
    const queue = this.#faults.get(key) ?? [];
    assert(queue.length < faultsQueuedMax, "too many faults queued");
    queue.push(fault);
    this.#faults.set(key, queue);
  }

  /** Closes the node's listener and its connections: it refuses connections until `restart`. */
  async stop(id: string): Promise<void> {
    const node = this.#node(id);
    if (!node.server.listening) return;
    const closed = once(node.server, "close");
    node.server.close();
    node.server.closeAllConnections();
    await closed;
  }

  async restart(id: string): Promise<void> {
    const node = this.#node(id);
    assert(!node.server.listening, `${id} is already running`);
    node.server = http.createServer();
    await this.#listen(node);
  }

  async close(): Promise<void> {
    for (const node of this.#nodes) await this.stop(node.id);
  }

  #node(id: string): FakeNode {
    const node = this.#nodes.find((candidate) => candidate.id === id);
    assert(node !== undefined, `no fake node ${id}`);
    return node;
  }

  async #listen(node: FakeNode): Promise<void> {
    node.server.on("request", (request, response) => {
      void this.#handle(node, request, response);
    });
    node.server.listen(node.port, "127.0.0.1");
    await once(node.server, "listening");
    node.port = (node.server.address() as AddressInfo).port;
  }

  #applied(node: FakeNode): number {
    return node.appliedIndex ?? this.commitIndex;
  }

  #leaderAddress(): { id: string; http: string } | null {
    // Advertised as host:port, without a scheme, as `--http` is given on the command line.
    return this.leaderId === null
      ? null
      : { id: this.leaderId, http: `127.0.0.1:${this.#node(this.leaderId).port}` };
  }

  async #handle(node: FakeNode, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text === "" ? undefined : (JSON.parse(text) as Record<string, unknown>);
    const path = request.url ?? "";
    this.requests.push({ node: node.id, method: request.method ?? "", path, body, atMs: Date.now() });
    const fault = this.#faults.get(`${node.id} ${path}`)?.shift();
    if (fault?.kind === "drop-before") return void request.socket.destroy();
    if (fault?.kind === "hang") return;
    if (fault?.kind === "error") {
      const headers: Record<string, string> =
        fault.retryAfter === undefined ? {} : { "retry-after": fault.retryAfter };
      const leader = fault.withLeader ? { leader: this.#leaderAddress() } : {};
      return send(
        response,
        fault.status,
        { error: { code: fault.code, message: "scripted", ...leader, details: fault.details } },
        headers,
      );
    }
    const [status, answer, headers] = this.#answer(node, path, body);
    if (fault?.kind === "drop-after-apply") return void request.socket.destroy();
    send(response, status, answer, headers);
  }

  #answer(
    node: FakeNode,
    path: string,
    body: Record<string, unknown> | undefined,
  ): [number, unknown, Record<string, string>?] {
    const isLeader = node.id === this.leaderId;
    if (path === "/v1/status") {
      const role = isLeader ? "leader" : "follower";
      const applied = this.#applied(node);
      const members = this.#nodes.map((member) => ({ id: member.id, http: `127.0.0.1:${member.port}` }));
      const leader = this.#leaderAddress();
      return [
        200,
        {
          id: node.id,
          role,
          term: this.term,
          leader,
          commitIndex: applied,
          appliedIndex: applied,
          lastIndex: applied,
          members,
        },
      ];
    }
    if (this.leaderId === null && !(path === "/v1/query" && body?.consistency === "any")) {
      return [503, { error: { code: "NO_LEADER", message: "no leader" } }, { "retry-after": "0" }];
    }
    if (path === "/v1/execute") {
      if (!isLeader && this.followerWrites === "not-leader") {
        return [
          409,
          { error: { code: "NOT_LEADER", message: "not the leader", leader: this.#leaderAddress() } },
        ];
      }
      return [200, this.#execute(body ?? {})];
    }
    if (path === "/v1/query") {
      if (!isLeader && body?.consistency !== "any") {
        return [
          409,
          { error: { code: "NOT_LEADER", message: "not the leader", leader: this.#leaderAddress() } },
        ];
      }
      const applied = this.#applied(node);
      if (typeof body?.minIndex === "number" && body.minIndex > applied) {
        return [503, { error: { code: "STALE_READ", message: `applied ${applied} < ${body.minIndex}` } }];
      }
      const rows = this.entries.slice(0, applied).flat();
      const statements = (body?.statements as unknown[] | undefined) ?? [];
      const results = statements.map(() => ({ columns: ["key", "value"], rows }));
      return [200, { results, position: { index: applied }, node: node.id }];
    }
    return [404, { error: { code: "NOT_FOUND", message: path } }];
  }

  /** Applies a write once per request id; a repeat gets the first answer back. */
  #execute(body: Record<string, unknown>): ExecuteResponse {
    const requestId = body.requestId as string | undefined;
    const earlier = requestId === undefined ? undefined : this.#answersByRequestId.get(requestId);
    if (earlier !== undefined) return earlier;
    const statements = (body.statements as Statement[] | undefined) ?? [];
    const added: (readonly unknown[])[] = [];
    const results: StatementResult[] = statements.map((statement) => {
      const params = paramsOf(statement);
      if (Array.isArray(params) && params.length > 0) added.push(params);
      return {
        rowsAffected: Array.isArray(params) && params.length > 0 ? 1 : 0,
        lastInsertRowid: this.entries.length + 1,
      };
    });
    this.entries.push(added);
    this.applyCount += 1;
    const answer: ExecuteResponse = {
      results,
      position: { index: this.entries.length, term: this.term },
      term: this.term,
      node: "fake",
    };
    if (requestId !== undefined) this.#answersByRequestId.set(requestId, answer);
    return answer;
  }
}

function paramsOf(statement: Statement): unknown {
  if (typeof statement === "string") return undefined;
  if (Array.isArray(statement)) return statement.slice(1);
  return (statement as { params?: unknown }).params;
}

function send(
  response: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}
