/**
 * Which queries a node may run on its own read connection, on the event loop, instead of in a query
 * process (`query-process-pool.ts`): those whose every statement provably runs in bounded time, by the
 * same proof the leader uses for write batches (`statement-cost.ts`) and within the same batch bounds
 * (`boundedBatchInstructionsMax`, `valueGrowthMax`). A point `SELECT` by key passes; scans, sorts,
 * aggregates, `IN (…)` lists and recursive CTEs do not, and go to a process that can be killed.
 *
 * Why: a query process costs a round trip between processes per query (about 5 times the in-process
 * cost of a point read, measured in `docs/architecture.md`, "Reads"), which is most of what a point
 * read costs. A wrong "bounded" would let a query hold the event loop; every doubt answers "unbounded".
 *
 * Verdicts are judged on the read connection, inside the query's own read transaction (so on the
 * schema that query reads), and cached per SQL text; the cache is dropped when that connection's
 * schema version changes, or when the store reopened its connections (a restored database may have
 * another schema under the same version number).
 */
import type { DatabaseSync } from "node:sqlite";
import type { QueryGate } from "./query-run.ts";
import { StatementCost } from "./statement-cost.ts";

export class BoundedReads {
  readonly #cost = new StatementCost();
  /** The connection and schema version the cached verdicts were judged on. */
  #connection: DatabaseSync | null = null;
  #schemaVersion: bigint | null = null;

  /** The gate that lets a query on `read` run only when every statement is bounded. */
  gateFor(read: DatabaseSync): QueryGate {
    return (schemaVersion, statements) => {
      if (read !== this.#connection || schemaVersion !== this.#schemaVersion) {
        this.#cost.clear();
        this.#connection = read;
        this.#schemaVersion = schemaVersion;
      }
      return this.#cost.isBoundedBatch(read, statements);
    };
  }

  /** Verdicts cached (bounded by `statementCostEntriesMax`). */
  get entries(): number {
    return this.#cost.entries;
  }
}
