/**
 * The read path: serve a query at the consistency the client chose.
 *
 * - `linearizable` (default): the leader confirms it still leads with a heartbeat round (read
 *   index, Raft thesis §6.4), then serves once that index is applied here. A follower refuses
 *   with NOT_LEADER naming the leader, which the HTTP layer forwards to. A learner (read replica)
 *   asks the leader for the read index instead (thesis §6.4.1) and serves once it applied it.
 * - `leader`: on the leader, serve once its known commit index is applied, without a confirmation
 *   round but only while a majority answered heartbeats it sent within the election timeout, by
 *   its monotonic clock (`ReplicaLoop.leaderLeaseHeld`): a leader resumed after a long pause
 *   refuses them at once, whatever answers waited in its sockets. Clocks whose rates drift apart, or
 *   a pause between the check and the answer, can still let a deposed leader serve a stale `leader`
 *   read; `linearizable` never does.
 * - `any`: local committed state; with `maxLagMs`, refuse STALE_READ when this node's state was
 *   last known fresh longer ago.
 * - `minIndex` (read-your-writes across nodes): wait, bounded by `timeoutMs`, until applied.
 * Every read sees only committed state: the store's read connection never sees open batches.
 */
import type { QueryResponse } from "../api/api-types.ts";
import { jsonSafe } from "../api/json-encoding.ts";
import type { NormalizedQuery } from "../api/request-validation.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { InProcessQueryExecutor, type QueryExecutor } from "../store/query-executor.ts";
import type { QueryResult } from "../store/types.ts";
import type { LogIndex } from "../types/ids.ts";
import { within } from "./bounded-wait.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { NodeConfig } from "./node-config.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";

/**
 * How long the read transaction that short queries share stays open after the first of them. A
 * query joins it only while it shows the latest commit (`read-turn.ts`), so holding it longer changes
 * no answer; it saves the BEGIN, applied-index read and ROLLBACK of every turn under steady reads.
 * The bound keeps it from holding the WAL: SQLite restarts the WAL only when no reader uses it.
 */
export const readTurnHoldMs = 20;

export class ReadPath {
  private readonly loop: ReplicaLoop;
  private readonly applied: IndexWaiters;
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly requireLeader: () => void;
  private readonly refuseRead: () => void;
  private readonly executor: QueryExecutor;
  /** Queries run on the store's own read connection because they are provably short (`queryInProcess`). */
  inProcessQueries = 0;
  /** Ends the read transaction this turn's short queries share; set while one may be open. */
  private endTurn: Cancel | null = null;

  constructor(parts: {
    loop: ReplicaLoop;
    applied: IndexWaiters;
    config: NodeConfig;
    runtime: NodeRuntime;
    requireLeader: () => void;
    /** Throws STORE_DAMAGED or STORE_UNVERIFIED while this node's database is not to be read (`storage-heal.ts`). */
    refuseRead: () => void;
  }) {
    this.loop = parts.loop;
    this.applied = parts.applied;
    this.config = parts.config;
    this.runtime = parts.runtime;
    this.requireLeader = parts.requireLeader;
    this.refuseRead = parts.refuseRead;
    this.executor = parts.runtime.queryExecutor ?? new InProcessQueryExecutor(parts.runtime.store);
  }

  async query(request: NormalizedQuery): Promise<QueryResponse> {
    const timeoutMs = request.timeoutMs ?? this.config.readTimeoutMsDefault;
    const startedMs = this.runtime.clock.nowMs();
    if (request.consistency === "linearizable") {
      // A learner (read replica) serves it itself, through a read index the leader confirms; a
      // voting follower sends the client to the leader.
      if (!this.isLearner()) this.requireLeader();
      if (this.config.unsafeNodeBugs?.linearizableWithoutReadIndex !== true)
        await this.applied.wait(await this.confirmReadIndex(timeoutMs), timeoutMs);
    } else if (request.consistency === "leader") {
      this.requireLeader();
      if (!this.loop.leaderLeaseHeld())
        throw new BatonError(
          ErrorCode.NO_LEADER,
          "this node has not heard from a majority within the election timeout, so it may no longer lead; retry shortly",
        );
      await this.applied.wait(this.loop.core.summary().commitIndex, timeoutMs);
    } else if (request.maxLagMs !== null) {
      this.checkLag(request.maxLagMs);
    }
    if (request.minIndex !== null) await this.applied.wait(request.minIndex, timeoutMs);
    const { term } = this.loop.core.summary();
    // Order matters: the waits above end once this node's applied index covers what the consistency
    // level requires, and that state is already committed in SQLite; the executor opens a fresh read
    // transaction only now (in a query process, after our message reaches it), so it reads at least
    // that state. `position.index` reports exactly the applied index of what it read.
    // Whatever the level, the query reads this node's database: never a damaged or unverified one.
    this.refuseRead();
    const result =
      this.queryInProcess(request.statements) ??
      (await this.executor.query(request.statements, {
        timeoutMs: Math.max(1, timeoutMs - (this.runtime.clock.nowMs() - startedMs)),
      }));
    return {
      results: result.results.map((r) => ({
        columns: r.columns,
        rows: r.rows.map((row) => row.map(jsonSafe)) as never,
      })),
      position: { index: result.appliedIndex },
      term,
      node: this.config.id,
    };
  }

  /**
   * A query whose every statement is provably short runs here, on the store's read connection,
   * without a query process's round trip (`bounded-reads.ts`); null for any other, which the executor
   * runs (in a process it can kill, on a real node). Counted in `inProcessQueries`.
   */
  private queryInProcess(statements: NormalizedQuery["statements"]): QueryResult | null {
    if (this.runtime.queryExecutor === undefined) return null;
    const { store, timers } = this.runtime;
    // Short queries share one read transaction; it ends `readTurnHoldMs` after it began, or earlier.
    this.endTurn ??= timers.after(readTurnHoldMs, () => {
      this.endTurn = null;
      store.endReadTurn();
    });
    const result = store.queryIfBounded(statements);
    if (result !== null) this.inProcessQueries++;
    return result;
  }

  private isLearner(): boolean {
    return this.loop.core.summary().clusterConfig.learners.includes(this.config.id);
  }

  /** One read-index round: resolves with the index to wait for, or rejects with the core's refusal. */
  private confirmReadIndex(timeoutMs: number): Promise<LogIndex> {
    const outcomes = this.loop.outcomes;
    const readId = outcomes.newId("r");
    const ready = outcomes.registerRead(readId);
    ready.catch(() => {});
    this.loop.step({ type: "readIndex", requestId: readId });
    return within(this.runtime.timers, ready, timeoutMs, () => {
      outcomes.forget(readId);
      return new BatonError(ErrorCode.TIMEOUT, `the read index was not confirmed within ${timeoutMs} ms`);
    });
  }

  private checkLag(maxLagMs: number): void {
    if (this.loop.core.summary().role === "leader") return;
    const lagMs = this.loop.lagMs();
    if (lagMs !== null && lagMs <= maxLagMs) return;
    throw new BatonError(
      ErrorCode.STALE_READ,
      `this node lags the leader by ${lagMs === null ? "an unknown time" : `${lagMs} ms`}; maxLagMs is ${maxLagMs}`,
      { lagMs, maxLagMs },
    );
  }
}
