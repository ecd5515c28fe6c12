/**
 * The seam through which a node runs client queries (`NodeRuntime.queryExecutor`).
 *
 * - `QueryProcessPool` (`query-process-pool.ts`) runs each query in a child process it can kill, so
 *   no query can hold the node's event loop: what a real node uses (`src/node/launch.ts`).
 * - `InProcessQueryExecutor` runs the query on the store's own read connection, synchronously, on
 *   the caller's thread: what the simulator and unit tests use. It cannot stop a statement, so it
 *   ignores `timeoutMs`; the simulator stays deterministic because nothing here reads a clock or
 *   waits on another process.
 *
 * Both run the same code (`runQuery`) with the same guard and bounds, so they answer alike: the same
 * results, the same `BatonError` codes and details.
 */
import type { QueryOptions, QueryResult, Statement } from "./types.ts";

export type QueryRunOptions = QueryOptions & {
  /** How long the query may run; an executor that can stop it answers `QUERY_TIMEOUT` past it. */
  readonly timeoutMs: number;
};

export interface QueryExecutor {
  /** Runs read-only statements on committed state in one read transaction (see `Store.query`). */
  query(statements: readonly Statement[], options: QueryRunOptions): Promise<QueryResult>;
  /** Stops the executor: queries still running or waiting fail with `SHUTTING_DOWN`. */
  close(): Promise<void>;
}

/** The part of the store the in-process executor needs. */
export type InProcessQuerySource = {
  query(statements: readonly Statement[], options?: QueryOptions): QueryResult;
};

export class InProcessQueryExecutor implements QueryExecutor {
  readonly #store: InProcessQuerySource;

  constructor(store: InProcessQuerySource) {
    this.#store = store;
  }

  query(statements: readonly Statement[], options: QueryRunOptions): Promise<QueryResult> {
    const { timeoutMs: _unbounded, ...queryOptions } = options;
    try {
      return Promise.resolve(this.#store.query(statements, queryOptions));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
