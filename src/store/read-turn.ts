/**
 * One read transaction shared by the provably short queries that run close together
 * (`Store.queryIfBounded`). A linearizable read round releases several reads at once, and each paid
 * for a transaction of its own: BEGIN, the applied index, the schema version, ROLLBACK, and the WAL
 * read lock taken and released, which together cost more than a point read.
 *
 * A query joins the open transaction only while it still shows the latest commit: the applied index
 * it read is the store's applied index now, on the same connection, and no other process applies an
 * entry to the file. Then a new transaction would read exactly the same state, so sharing changes no
 * answer. Otherwise the stale transaction ends and a fresh one begins. The node ends the shared
 * transaction a bounded time after it began (`readTurnHoldMs`, read-path.ts), so it never holds the
 * WAL longer than that; every other use of the read connection ends it first, and so does the
 * writer's catch-up checkpoint (`checkpointer.ts`), which it would keep from completing.
 */
import type { DatabaseSync } from "node:sqlite";
import type { LogIndex } from "../types/ids.ts";
import { internalStatement } from "./internal-statements.ts";

/** What a query reads in the shared transaction instead of reading it again. */
export type ReadState = { readonly appliedIndex: LogIndex; readonly schemaVersion: bigint };

/** The shared transaction as one query sees it (query-run.ts). */
export type SharedRead = {
  /** The open transaction's state, if the query may run in it; null: begin a new one. */
  reuse(): ReadState | null;
  /** The query began a transaction showing `state`: keep it open for the turn's next queries. */
  opened(state: ReadState): void;
};

export class ReadTurn {
  #open: { readonly db: DatabaseSync; readonly state: ReadState } | null = null;

  /**
   * The shared transaction for a query on `db`, whose store's applied index is `appliedIndex` now;
   * null, with any open one ended, when another process may be writing the file (`writerElsewhere`).
   */
  shared(db: DatabaseSync, appliedIndex: LogIndex, writerElsewhere: boolean): SharedRead | null {
    if (writerElsewhere) {
      this.end();
      return null;
    }
    return {
      reuse: () => {
        const open = this.#open;
        if (open !== null && open.db === db && db.isTransaction && open.state.appliedIndex === appliedIndex)
          return open.state;
        this.end();
        return null;
      },
      opened: (state) => {
        this.#open = { db, state };
      },
    };
  }

  /** Ends the shared transaction, if one is open. */
  end(): void {
    const open = this.#open;
    if (open === null) return;
    this.#open = null;
    if (open.db.isOpen && open.db.isTransaction) internalStatement(open.db, "ROLLBACK").run();
  }
}
