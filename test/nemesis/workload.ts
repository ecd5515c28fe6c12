/**
 * Clients of the campaign: list appends and whole-list reads over HTTP, recorded as a history for
 * `test/sim/list-append-checker.ts`.
 *
 * Each append adds a value unique in the whole run to one of a few keys' lists (`lists.items`, a
 * comma-separated text) and, in the same batch, inserts an AUTOINCREMENT `events` row holding
 * `random()` and `datetime('now')`, so equal content hashes also cover values the leader drew once.
 * Half the clients use the client library (it routes to the leader, follows failovers and retries
 * with one request id; an append it gives up on with `maybeApplied` is sent once more, later, with
 * the same id); the other half send one raw HTTP request to a random node, without a request id,
 * and never retry. Times are microseconds since the campaign began: invocation rounded down,
 * completion rounded up, so a rounding can only hide an order, never invent one.
 *
 * Outcomes: `ok` with an answer; `failed` only when the error proves nothing was applied (the
 * server's `retryByCode` table unless the answer says `details.outcome: "unknown"`, as a follower
 * whose forwarding to the leader broke off does; or the client's `maybeApplied: false`); `unknown` otherwise
 * (timeouts, resets, leadership lost), with no completion time: it may take effect at any later time.
 */
import type { Consistency, Durability } from "../../src/api/api-types.ts";
import type { Client } from "../../src/client/client.ts";
import { isBatonClientError } from "../../src/client/client-error.ts";
import { connect } from "../../src/client/index.ts";
import { provesNotApplied } from "../../src/client/retry-policy.ts";
import type { Prng } from "../../src/lib/prng.ts";
import type { AppendOp, Outcome, ReadOp } from "../sim/list-append-checker.ts";
import type { ClientMode } from "./options.ts";

export const schemaStatements = [
  "CREATE TABLE IF NOT EXISTS lists(key INTEGER PRIMARY KEY, items TEXT NOT NULL)",
  "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL, value INTEGER NOT NULL, noise INTEGER NOT NULL, at TEXT NOT NULL)",
];

const appendSql =
  "INSERT INTO lists(key, items) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET items = items || ',' || excluded.items";
const eventSql = "INSERT INTO events(key, value, noise, at) VALUES (?, ?, random(), datetime('now'))";

/** The deadline of one library call (all its retries) and of one raw request. */
const libraryCallTimeoutMs = 6_000;
const rawRequestTimeoutMs = 4_000;
/** A client sleeps between its operations, up to this long. */
const thinkMsMax = 40;
/** A library append whose outcome stayed unknown is sent once more with the same request id, after this. */
const retryAfterMs = 1_000;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type RecordedAppend = Mutable<AppendOp> & {
  mode: ClientMode;
  code: string | null;
  servedBy: string | null;
};
export type RecordedRead = Mutable<ReadOp> & { mode: ClientMode; code: string | null };
export type RecordedOp = RecordedAppend | RecordedRead;

export type WorkloadSettings = {
  readonly nodeUrls: readonly string[];
  readonly keyCount: number;
  readonly durability: Durability;
  readonly consistencies: readonly Consistency[];
  readonly clientCount: number;
  readonly clientModes: readonly ClientMode[];
};

export class Workload {
  readonly history: RecordedOp[] = [];
  private nextValue = 1;
  private readonly libraries: Client[] = [];
  private running = true;
  private readonly settings: WorkloadSettings;
  private readonly prng: Prng;
  private readonly nowUs: () => number;

  constructor(settings: WorkloadSettings, prng: Prng, nowUs: () => number) {
    this.settings = settings;
    this.prng = prng;
    this.nowUs = nowUs;
  }

  /** Runs every client until `stop()`; resolves when all have finished their last operation. */
  async run(): Promise<void> {
    const clients = Array.from({ length: this.settings.clientCount }, (_, i) => {
      const mode = this.settings.clientModes[i % this.settings.clientModes.length]!;
      return this.client(i + 1, mode);
    });
    await Promise.all(clients);
  }

  stop(): void {
    this.running = false;
  }

  async close(): Promise<void> {
    await Promise.all(this.libraries.map((c) => c.close()));
  }

  private async client(id: number, mode: ClientMode): Promise<void> {
    const library =
      mode === "library"
        ? connect({
            nodes: [...this.settings.nodeUrls],
            timeoutMs: libraryCallTimeoutMs,
            leaderCheckIntervalMs: 2_000,
          })
        : null;
    if (library !== null) this.libraries.push(library);
    const pending: Promise<void>[] = [];
    while (this.running) {
      if (this.prng.chance(0.6)) {
        const value = this.nextValue++;
        const op = await this.append(id, mode, library, value, `c${id}-v${value}`);
        if (op.outcome === "unknown" && library !== null) pending.push(this.retryLater(id, library, value));
      } else {
        await this.read(id, mode, library);
      }
      await sleep(this.prng.intBetween(0, thinkMsMax));
    }
    await Promise.all(pending);
  }

  /** Sends an append whose outcome is unknown once more with its request id (the caller's retry). */
  private async retryLater(id: number, library: Client, value: number): Promise<void> {
    await sleep(retryAfterMs);
    await this.append(id, "library", library, value, `c${id}-v${value}`);
  }

  /** Appends the key of `value` is chosen from the value, so every attempt at one value names one key. */
  async append(
    id: number,
    mode: ClientMode,
    library: Client | null,
    value: number,
    requestId: string,
  ): Promise<RecordedAppend> {
    const key = value % this.settings.keyCount;
    const op: RecordedAppend = {
      kind: "append",
      client: id,
      key,
      value,
      durability: this.settings.durability,
      invokedAt: Math.floor(this.nowUs()),
      completedAt: null,
      outcome: "unknown",
      mode,
      code: null,
      servedBy: null,
    };
    this.history.push(op);
    const statements: [string, ...(string | number)[]][] = [
      [appendSql, key, String(value)],
      [eventSql, key, value],
    ];
    try {
      if (library !== null) {
        const answer = await library.execute(statements, { durability: this.settings.durability, requestId });
        op.servedBy = answer.node;
      } else {
        const body = {
          statements,
          durability: this.settings.durability,
          timeoutMs: rawRequestTimeoutMs - 500,
        };
        const answer = (await this.raw("/v1/execute", body)) as { node?: string };
        op.servedBy = answer.node ?? null;
      }
      this.settle(op, "ok", null);
    } catch (error) {
      this.settle(op, appendOutcome(error), error);
    }
    return op;
  }

  async read(id: number, mode: ClientMode, library: Client | null): Promise<RecordedRead> {
    const key = this.prng.intBetween(0, this.settings.keyCount - 1);
    const consistency = this.prng.pick(this.settings.consistencies);
    const op: RecordedRead = {
      kind: "read",
      client: id,
      key,
      consistency,
      node: "?",
      invokedAt: Math.floor(this.nowUs()),
      completedAt: null,
      outcome: "unknown",
      values: null,
      mode,
      code: null,
    };
    this.history.push(op);
    const statement: [string, number] = ["SELECT items FROM lists WHERE key = ?", key];
    try {
      let items: unknown;
      if (library !== null) {
        const answer = await library.queryRaw([statement], { consistency });
        items = answer.results[0]?.rows[0]?.[0];
        op.node = answer.node;
      } else {
        const answer = (await this.raw("/v1/query", {
          statements: [statement],
          consistency,
          timeoutMs: rawRequestTimeoutMs - 500,
        })) as { results: { rows: unknown[][] }[]; node: string };
        items = answer.results[0]?.rows[0]?.[0];
        op.node = answer.node;
      }
      op.values = parseItems(items);
      this.settle(op, "ok", null);
    } catch (error) {
      this.settle(op, "failed", error);
    }
    return op;
  }

  private settle(op: RecordedOp, outcome: Outcome, error: unknown): void {
    op.outcome = outcome;
    op.code = error === null ? null : errorCode(error);
    op.completedAt = outcome === "unknown" ? null : Math.ceil(this.nowUs());
  }

  /** One request to a random node; a non-2xx answer throws `{code}`. */
  private async raw(route: string, body: unknown): Promise<unknown> {
    const url = this.prng.pick(this.settings.nodeUrls);
    const response = await fetch(`${url}${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(rawRequestTimeoutMs),
    });
    const answer = (await response.json()) as { error?: { code: string; details?: { outcome?: string } } };
    if (!response.ok)
      throw new RawError(
        answer.error?.code ?? `HTTP_${response.status}`,
        answer.error?.details?.outcome === "unknown",
      );
    return answer;
  }
}

class RawError extends Error {
  readonly code: string;
  /** A follower that failed to forward a write says `details.outcome: "unknown"`, whatever its code. */
  readonly outcomeUnknown: boolean;
  constructor(code: string, outcomeUnknown: boolean) {
    super(code);
    this.code = code;
    this.outcomeUnknown = outcomeUnknown;
  }
}

function errorCode(error: unknown): string {
  if (error instanceof RawError || isBatonClientError(error)) return error.code;
  const name = (error as { name?: string })?.name;
  return name === "TimeoutError" || name === "AbortError" ? "CLIENT_TIMEOUT" : "CONNECTION";
}

/** `failed` only when the error proves the write was not applied. */
function appendOutcome(error: unknown): Outcome {
  if (isBatonClientError(error)) return error.details.maybeApplied === false ? "failed" : "unknown";
  if (error instanceof RawError)
    return provesNotApplied(error.code) && !error.outcomeUnknown ? "failed" : "unknown";
  return "unknown";
}

export function parseItems(items: unknown): number[] {
  if (items === undefined || items === null) return [];
  if (typeof items !== "string") throw new Error(`a list is text, got ${JSON.stringify(items)}`);
  return items === "" ? [] : items.split(",").map(Number);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
