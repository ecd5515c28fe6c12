/**
 * Session mode: read-your-writes and monotonic reads on any node.
 *
 * A session remembers the highest log position it has seen — from its own writes and from the reads
 * it was served — and sends that index as `minIndex` with every read. A node that has not yet applied
 * that far waits or answers `STALE_READ` (and the client tries another node), so a read never shows
 * a state older than one this session already saw or wrote. The position only ever grows.
 *
 * `position` is a plain JSON value: hand it to another process and pass it to `client.session({position})`
 * (or as `minIndex`) there, and that process's reads will include everything this session saw.
 *
 * With `durability: "local"` a write's position is not yet committed and could be lost in a failover;
 * reads waiting for it would then see the new leader's entry at that index instead.
 */

import type { Consistency, QueryResponse, ReadPosition, ResultValue, Statement } from "../api/api-types.ts";
import { assert } from "../lib/assert.ts";
import type { Batch } from "./batch.ts";
import type { Client, ExecuteResult, QueryRows } from "./client.ts";
import { BatonClientError } from "./client-error.ts";
import type { ExecuteOptions, QueryOptions } from "./connect-options.ts";
import type { StatementsInput } from "./statements.ts";

export type SessionOptions = {
  /** Start from a position handed over by another session (or process). */
  readonly position?: ReadPosition | number;
  /** Consistency of this session's reads; default the client's. `any` spreads reads over all nodes. */
  readonly consistency?: Consistency;
};

function indexOf(position: ReadPosition | number): number {
  const index = typeof position === "number" ? position : position?.index;
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) {
    throw new BatonClientError(
      "BAD_REQUEST",
      `a position is a non-negative integer index, got ${String(index)}`,
    );
  }
  return index;
}

export class Session {
  readonly #client: Client;
  readonly #consistency: Consistency | undefined;
  #index = 0;

  constructor(client: Client, options: SessionOptions = {}) {
    this.#client = client;
    this.#consistency = options.consistency;
    if (options.position !== undefined) this.observe(options.position);
  }

  /** The highest position seen so far; reads are served from at least this index. */
  get position(): ReadPosition {
    return { index: this.#index };
  }

  /** Raises the session's position to at least `position` (never lowers it); returns the new position. */
  observe(position: ReadPosition | number): ReadPosition {
    const index = indexOf(position);
    const before = this.#index;
    this.#index = Math.max(this.#index, index);
    assert(this.#index >= before, "a session position never decreases");
    return this.position;
  }

  async execute(statements: StatementsInput, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    const result = await this.#client.execute(statements, options);
    this.observe(result.position.index);
    return result;
  }

  async transaction(
    build: (batch: Batch) => void | Promise<void>,
    options: ExecuteOptions = {},
  ): Promise<ExecuteResult> {
    const result = await this.#client.transaction(build, options);
    this.observe(result.position.index);
    return result;
  }

  async query<Row extends object = Record<string, ResultValue>>(
    statement: Statement,
    options: QueryOptions = {},
  ): Promise<QueryRows<Row>> {
    const result = await this.#client.query<Row>(statement, this.#readOptions(options));
    this.observe(result.position);
    return result;
  }

  async queryRaw(statements: StatementsInput, options: QueryOptions = {}): Promise<QueryResponse> {
    const result = await this.#client.queryRaw(statements, this.#readOptions(options));
    this.observe(result.position);
    return result;
  }

  #readOptions(options: QueryOptions): QueryOptions {
    const minIndex = Math.max(this.#index, options.minIndex === undefined ? 0 : indexOf(options.minIndex));
    const consistency = options.consistency ?? this.#consistency;
    return {
      ...options,
      ...(consistency === undefined ? {} : { consistency }),
      ...(minIndex > 0 ? { minIndex } : {}),
    };
  }
}
