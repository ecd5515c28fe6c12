/**
 * The simulated clients: real `execute` and `query` calls on the nodes' public interface (the
 * same `NodeService` the HTTP layer calls), recorded as a list-append history for
 * `list-append-checker.ts`.
 *
 * Each append adds a unique value to one of a few keys' lists and, in the same batch, inserts an
 * AUTOINCREMENT row with `random()` and `datetime('now')` whose trigger writes an audit row, so
 * the replicas' content hashes also cover nondeterminism, counters and triggers. Every append
 * carries a request id; an attempt whose outcome is unknown (timeout, leadership lost, not
 * confirmed, its node crashed) or refused is retried with the same id, up to `attemptsMax`, at the
 * node the client believes leads. Reads pick a consistency level and a node (the leader for
 * `linearizable` and `leader`), like the client library would.
 */
import type { Consistency, Durability } from "../../src/api/api-types.ts";
import type { NormalizedExecute, NormalizedQuery } from "../../src/api/request-validation.ts";
import { type BatonError, isBatonError } from "../../src/lib/errors.ts";
import type { Prng } from "../../src/lib/prng.ts";
import type { NodeId } from "../../src/types/ids.ts";
import type { AppendOp, ListAppendOp, Outcome, ReadOp } from "./list-append-checker.ts";
import type { SimNodeHost } from "./sim-node.ts";

export const schemaStatements = [
  "CREATE TABLE lists(key INTEGER PRIMARY KEY, items TEXT NOT NULL)",
  "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL, value INTEGER NOT NULL, noise INTEGER NOT NULL, at TEXT NOT NULL)",
  "CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, event INTEGER NOT NULL)",
  "CREATE TRIGGER events_audit AFTER INSERT ON events BEGIN INSERT INTO audit(event) VALUES (new.id); END",
];

const keyCount = 4;
/** Attempts per append value (the first and its retries). */
export const attemptsMax = 4;
/** Back-off before a retry, per attempt already made. */
const retryBackoffTicks = 3;
/** The share of reads sent to a read replica while there is one. */
const replicaReadShare = 0.4;
/** Client operations in flight at once; beyond it new ones wait for a later tick. */
export const operationsInFlightMax = 24;

/** Codes that say the batch never ran: the attempt definitely did not apply. */
const refusedCodes = new Set([
  "NOT_LEADER",
  "NO_LEADER",
  "LEADERSHIP_TRANSFER",
  "LEADER_NOT_READY",
  "OVERLOADED",
  "BAD_REQUEST",
  "SQL_ERROR",
]);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Running = {
  readonly node: NodeId;
  readonly op: Mutable<ListAppendOp>;
  /** Runs when the operation settles, or with `unknown` when its node crashes first. */
  readonly then: (outcome: Outcome) => void;
  settled: boolean;
};

export type DurabilityWeights = Readonly<Record<Durability, number>>;

export type WorkloadClock = { nowTick(): number };

export class Workload {
  readonly history: Mutable<ListAppendOp>[] = [];
  /** `events` ids acknowledged, and the value of the append that got each (see `noteEventId`). */
  private readonly eventIds = new Map<string, number>();
  readonly idConflicts: string[] = [];
  leaderHint: NodeId | null = null;
  /** Told of every answer: the node the request went to, the node the answer names, or the error. */
  onServed: ((sentTo: SimNodeHost, servedBy: string | null, error: BatonError | null) => void) | null = null;
  private readonly running = new Set<Running>();
  private readonly prng: Prng;
  private readonly weights: DurabilityWeights;
  private readonly clock: WorkloadClock;
  private readonly timeoutMs: number;
  private nextValue = 1;

  constructor(prng: Prng, weights: DurabilityWeights, clock: WorkloadClock, timeoutMs: number) {
    this.prng = prng;
    this.weights = weights;
    this.clock = clock;
    this.timeoutMs = timeoutMs;
  }

  get inFlight(): number {
    return this.running.size;
  }

  chooseDurability(): Durability {
    const total = this.weights.local + this.weights.one + this.weights.majority + this.weights.all;
    let pick = this.prng.nextFloat() * total;
    for (const level of ["local", "one", "majority", "all"] as const) {
      pick -= this.weights[level];
      if (pick < 0) return level;
    }
    return "majority";
  }

  /**
   * Starts one random operation on one of `live` (nodes that answer now). Some reads go to a read
   * replica among `replicas` (learners), which serves `any` reads from its copy and `linearizable`
   * ones through the leader's read index.
   */
  startRandom(live: readonly SimNodeHost[], replicas: readonly SimNodeHost[] = []): void {
    if (live.length === 0 || this.running.size >= operationsInFlightMax) return;
    if (this.prng.chance(0.65)) this.append(this.leaderOr(live), this.chooseDurability());
    else if (replicas.length > 0 && this.prng.chance(replicaReadShare))
      this.read(this.prng.pick(replicas), this.prng.pick<Consistency>(["linearizable", "any"]));
    else {
      const consistency = this.prng.pick<Consistency>(["linearizable", "linearizable", "leader", "any"]);
      const node = consistency === "any" ? this.prng.pick(live) : this.leaderOr(live);
      this.read(node, consistency);
    }
  }

  /** Appends a new value to a random key at `node`; retried as described in the module header. */
  append(
    node: SimNodeHost,
    durability: Durability,
    attempt = 1,
    value = this.nextValue++,
  ): Mutable<AppendOp> {
    const key = value % keyCount;
    const op: Mutable<AppendOp> = {
      kind: "append",
      client: value,
      key,
      value,
      durability,
      invokedAt: this.clock.nowTick(),
      completedAt: null,
      outcome: "unknown",
    };
    const request: NormalizedExecute = {
      statements: [
        {
          sql: "INSERT INTO lists(key, items) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET items = items || ',' || excluded.items",
          params: [key, String(value)],
        },
        {
          sql: "INSERT INTO events(key, value, noise, at) VALUES (?, ?, random(), datetime('now'))",
          params: [key, value],
        },
      ],
      durability,
      requestId: `v${value}`,
      expectedTerm: null,
      timeoutMs: this.timeoutMs,
    };
    const answer = node.node?.execute(request).then((response) => {
      this.noteEventId(response.results[1]?.lastInsertRowid, value);
      return response;
    });
    this.track(node, op, answer, (outcome) => {
      if (outcome !== "ok" && attempt < attemptsMax) this.retryLater(value, durability, attempt + 1);
    });
    return op;
  }

  read(node: SimNodeHost, consistency: Consistency): Mutable<ReadOp> {
    const key = this.prng.intBetween(0, keyCount - 1);
    const op: Mutable<ReadOp> = {
      kind: "read",
      client: 0,
      key,
      consistency,
      node: node.id,
      invokedAt: this.clock.nowTick(),
      completedAt: null,
      outcome: "unknown",
      values: null,
    };
    const request: NormalizedQuery = {
      statements: [{ sql: "SELECT items FROM lists WHERE key = ?", params: [key] }],
      consistency,
      minIndex: null,
      maxLagMs: null,
      timeoutMs: this.timeoutMs,
    };
    const answer = node.node?.query(request).then((response) => {
      const items = response.results[0]?.rows[0]?.[0];
      op.values = typeof items === "string" ? items.split(",").map(Number) : [];
      return response;
    });
    this.track(node, op, answer, () => {});
    return op;
  }

  /**
   * The id checker: an AUTOINCREMENT id acknowledged to a client belongs to that row for good. Two
   * acknowledged appends of different values answered with the same `events` id is a violation
   * (the incident of ids reused after a failover), whatever the durability.
   */
  private noteEventId(id: number | string | undefined, value: number): void {
    if (id === undefined) return;
    const key = String(id);
    const owner = this.eventIds.get(key);
    if (owner === undefined) this.eventIds.set(key, value);
    else if (owner !== value && this.idConflicts.length < 10)
      this.idConflicts.push(`events id ${key} was acknowledged for value ${owner} and for value ${value}`);
  }

  /** One attempt, never retried (scripted scenarios watch its outcome). */
  appendOnce(node: SimNodeHost, durability: Durability): Mutable<AppendOp> {
    return this.append(node, durability, attemptsMax);
  }

  /** A node crashed: its operations in flight will never answer; their outcome stays unknown. */
  nodeCrashed(node: NodeId): void {
    for (const running of [...this.running]) {
      if (running.node !== node) continue;
      this.running.delete(running);
      running.settled = true;
      running.op.completedAt = null;
      running.then("unknown");
    }
  }

  private retries: { value: number; durability: Durability; attempt: number; dueTick: number }[] = [];

  /** Retries whose back-off has passed, started at the leader the client now believes in. */
  startRetries(live: readonly SimNodeHost[]): void {
    if (live.length === 0) return;
    const now = this.clock.nowTick();
    const due = this.retries.filter((retry) => retry.dueTick <= now);
    this.retries = this.retries.filter((retry) => retry.dueTick > now);
    for (const retry of due) this.append(this.leaderOr(live), retry.durability, retry.attempt, retry.value);
  }

  /** True while an attempt at `value` runs or waits to be retried. */
  pending(value: number): boolean {
    for (const running of this.running)
      if (running.op.kind === "append" && running.op.value === value) return true;
    return this.retries.some((retry) => retry.value === value);
  }

  /** Retries back off like the client library's: longer after each attempt. */
  private retryLater(value: number, durability: Durability, attempt: number): void {
    this.retries.push({
      value,
      durability,
      attempt,
      dueTick: this.clock.nowTick() + retryBackoffTicks * attempt,
    });
  }

  private leaderOr(live: readonly SimNodeHost[]): SimNodeHost {
    const hinted = live.find((node) => node.id === this.leaderHint);
    if (hinted !== undefined && this.prng.chance(0.9)) return hinted;
    return this.prng.pick(live);
  }

  private track(
    node: SimNodeHost,
    op: Mutable<ListAppendOp>,
    answer: Promise<unknown> | undefined,
    then: (outcome: Outcome) => void,
  ): void {
    this.history.push(op);
    if (answer === undefined) {
      op.outcome = "failed";
      op.completedAt = this.clock.nowTick();
      return;
    }
    const running: Running = { node: node.id, op, then, settled: false };
    this.running.add(running);
    answer.then(
      (value) => {
        if (!running.settled) this.onServed?.(node, (value as { node?: string }).node ?? null, null);
        this.settle(running, "ok", null);
      },
      (error: unknown) => {
        if (!running.settled) this.onServed?.(node, null, isBatonError(error) ? error : null);
        this.settle(running, outcomeOf(error), error);
      },
    );
  }

  private settle(running: Running, outcome: Outcome, error: unknown): void {
    if (running.settled) return;
    running.settled = true;
    this.running.delete(running);
    running.op.outcome = outcome;
    running.op.completedAt = this.clock.nowTick();
    if (outcome === "ok") this.leaderHint = running.node;
    if (isBatonError(error, "NOT_LEADER")) {
      const leader = error.details.leader as { id?: string } | undefined;
      if (leader?.id !== undefined) this.leaderHint = leader.id as NodeId;
    }
    running.then(outcome);
  }
}

function outcomeOf(error: unknown): Outcome {
  if (isBatonError(error) && refusedCodes.has(error.code)) return "failed";
  return "unknown";
}
