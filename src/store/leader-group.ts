/**
 * One log entry from a group of client batches on the leader (`Store.executeGroup`).
 *
 * Each batch is checked against the statement limits, remembers its request id with the entry's
 * index, and runs in the group's one session (leader-batch.ts); a batch that fails leaves nothing in
 * the entry and does not stop the others. The entry's payload is bounded as a single batch's is. When
 * several batches together pass the bound, none of them is proposed: each is to run again in an
 * entry of its own, so a batch fails PAYLOAD_TOO_LARGE only for its own changes.
 *
 * A single batch behaves exactly as before groups: any failure throws.
 */
import type { DatabaseSync } from "node:sqlite";
import { BatonError, isBatonError } from "../lib/errors.ts";
import type { LogIndex } from "../types/ids.ts";
import { type BatchExtras, type GroupBatch, type LeaderContext, runLeaderGroup } from "./leader-batch.ts";
import { encodeBoundedPayload } from "./payload.ts";
import { resultBudget } from "./query-run.ts";
import { rememberStep } from "./request-log.ts";
import type { StoreLimits } from "./store-limits.ts";
import type { BatchResult, GroupedBatch, GroupOptions, GroupResult } from "./types.ts";
import { checkStatements } from "./values.ts";

export type GroupEntryContext = LeaderContext & { readonly limits: StoreLimits };

type Prepared = { readonly run: GroupBatch } | { readonly result: BatchResult };

function prepare(
  context: GroupEntryContext,
  index: LogIndex,
  batch: GroupedBatch,
  single: boolean,
): Prepared {
  const { limits, db } = context;
  const options = batch.options ?? {};
  try {
    const statements = checkStatements(batch.statements, {
      statementsMax: limits.statementsPerBatchMax,
      sqlBytesMax: limits.sqlBytesMax,
    });
    const window = { entries: limits.requestWindowEntries, ms: limits.requestWindowMs };
    const beforeFlush = rememberStep(db, options.request, index, window);
    const budget = resultBudget(options);
    return { run: { statements, budget, ...(beforeFlush === undefined ? {} : { beforeFlush }) } };
  } catch (error) {
    if (single || !isBatonError(error)) throw error;
    return { result: { kind: "failed", error } };
  }
}

function extrasOf(options: GroupOptions): BatchExtras {
  return {
    ...(options.raiseCountersToReservations === true ? { raiseCounters: true } : {}),
    ...(options.reserveIds === undefined ? {} : { reserve: options.reserveIds }),
    ...(options.historyRows === undefined ? {} : { history: options.historyRows }),
  };
}

/**
 * Runs `batches` for the entry at `index` inside the caller's savepoint. A null payload means
 * nothing is to be proposed and the caller rolls back to its savepoint.
 */
export function runGroupEntry(
  context: GroupEntryContext,
  index: LogIndex,
  batches: readonly GroupedBatch[],
  options: GroupOptions,
): GroupResult {
  const single = batches.length === 1;
  const prepared = batches.map((batch) => prepare(context, index, batch, single));
  const runnable = prepared.flatMap((item) => ("run" in item ? [item.run] : []));
  const group = runLeaderGroup(context, runnable, extrasOf(options));
  let next = 0;
  const results = prepared.map((item) => ("run" in item ? group.batches[next++]! : item.result));
  const { counters, reservations } = group;
  const done = results.filter((result) => result.kind === "done").length;
  if (done === 0) return { batches: results, payload: null, counters, reservations };
  try {
    const payload = encodeBoundedPayload(group.ops, context.limits.payloadBytesMax);
    return { batches: results, payload, counters, reservations };
  } catch (error) {
    if (done === 1 || !isBatonError(error, "PAYLOAD_TOO_LARGE")) throw error;
    const alone = results.map(
      (result): BatchResult => (result.kind === "done" ? { kind: "again", alone: true } : result),
    );
    return { batches: alone, payload: null, counters, reservations };
  }
}

/** The result of a group whose batch `batchIndex` made SQLite end the whole transaction (`error`). */
export function lostGroup(count: number, batchIndex: number, error: unknown): GroupResult {
  const batches = Array.from(
    { length: count },
    (_, i): BatchResult => (i === batchIndex ? { kind: "failed", error } : { kind: "again", alone: false }),
  );
  return { batches, payload: null, counters: [], reservations: null };
}

/**
 * Undoes a group (or a single batch) run under `savepoint`, and the transaction too when no earlier
 * batch is open in it (`othersOpen`). False when SQLite had ended the whole transaction itself.
 */
export function undoGroup(db: DatabaseSync, savepoint: string, othersOpen: boolean): boolean {
  if (!db.isTransaction) return false;
  db.exec(`ROLLBACK TO ${savepoint}`);
  db.exec(`RELEASE ${savepoint}`);
  if (!othersOpen) db.exec("ROLLBACK");
  return true;
}

/** The error of a batch that made SQLite end the transaction, naming the open entries that went with it. */
export function lostTransactionError(error: unknown, lost: readonly LogIndex[]): unknown {
  if (!(error instanceof BatonError)) return error;
  const message = `${error.message} (SQLite rolled back the speculative transaction)`;
  return new BatonError(error.code, message, { ...error.details, lostSpeculativeIndexes: lost.map(Number) });
}
