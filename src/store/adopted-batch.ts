/**
 * Taking over a batch that ran elsewhere: the leader's write sandbox (`write-sandbox.ts`) ran a
 * batch with `Store.execute` on this very file and state, rolled it back and returned its payload
 * and results; the leader applies that payload inside a new speculative transaction and proposes it.
 *
 * The payload is applied exactly as a replica applies it (`replica-apply.ts`: foreign keys off, CHECKs
 * ignored, triggers suspended around changesets), because it already holds every effect of the
 * batch's triggers and foreign-key actions: that is the same path every replica takes for the same
 * entry, which the divergence check covers. The request log's row (`request-log.ts`) is written
 * here rather than in the sandbox, because its remembered response is built by the node from the
 * results; it is recorded by a session of its own and travels as one more op of the same entry.
 *
 * With `recordOnly` (a large batch, which the entry applier applies once committed: `entry-applier.ts`)
 * nothing is applied: the request's row is recorded on the state before the batch, which holds the
 * same request log (a batch never writes it), and the transaction is rolled back.
 *
 * Invariants: the caller holds no open transaction and has set replica settings; on any failure
 * the transaction is rolled back and the trigger suspension forgotten before the error propagates.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { LogIndex } from "../types/ids.ts";
import { runLeaderBatch } from "./leader-batch.ts";
import { decodePayload, encodeBoundedPayload } from "./payload.ts";
import { resultBudget } from "./query-run.ts";
import { applyOps } from "./replica-apply.ts";
import { rememberRequest } from "./request-log.ts";
import type { SequenceCounters } from "./sequence-counters.ts";
import type { StatementCache } from "./statement-cache.ts";
import type { StatementGuard } from "./statement-guard.ts";
import type { TriggerSuspension } from "./trigger-suspension.ts";
import type { AdoptedBatch, ExecuteOptions } from "./types.ts";

export type AdoptContext = {
  readonly write: DatabaseSync;
  readonly writeGuard: StatementGuard;
  readonly writeStatements: StatementCache;
  readonly triggers: TriggerSuspension;
  readonly counters: SequenceCounters;
  readonly schemaChanged: () => void;
  /** The request log's window (`request-log.ts`). */
  readonly requestWindow: { readonly entries: number; readonly ms: number };
  readonly payloadBytesMax: number;
};

/**
 * Opens the transaction, applies the adopted ops and remembers the request; returns the payload to
 * propose (every op, PAYLOAD_TOO_LARGE past `payloadBytesMax`). The transaction stays open.
 */
export function adoptBatchInto(
  context: AdoptContext,
  index: LogIndex,
  adopted: AdoptedBatch,
  request: ExecuteOptions["request"],
  recordOnly = false,
): Uint8Array {
  const { write, triggers, counters, schemaChanged } = context;
  assert(!write.isTransaction, "an adopted batch opens its own transaction");
  // Nothing to apply and no row to record: the payload is proposed as the sandbox made it (and bounded).
  if (recordOnly && request === undefined) return adopted.payload;
  const ops = decodePayload(adopted.payload, adopted.checksumChecked === true);
  write.exec("BEGIN IMMEDIATE");
  try {
    if (!recordOnly) applyOps({ db: write, triggers, counters, schemaChanged }, ops);
    // The adopted ops changed the counters without a batch of this connection reading them.
    counters.invalidate();
    if (request !== undefined) {
      const remember = (): void =>
        rememberRequest(write, {
          requestId: request.id,
          index,
          response: request.response(adopted.results),
          loggedAtMs: request.loggedAtMs,
          window: context.requestWindow,
        });
      const leader = { db: write, guard: context.writeGuard, statements: context.writeStatements, counters };
      const recorded = runLeaderBatch({ ...leader, schemaChanged }, [], resultBudget({}), remember);
      ops.push(...recorded.ops);
    }
    const payload = encodeBoundedPayload(ops, context.payloadBytesMax);
    assert(write.isTransaction, "the adopted batch's transaction stays open");
    if (recordOnly) abandonAdopted(context);
    return payload;
  } catch (error) {
    abandonAdopted(context);
    throw error;
  }
}

/** Rolls the adopted batch's transaction back and drops what was derived from it. */
function abandonAdopted(context: AdoptContext): void {
  if (context.write.isTransaction) context.write.exec("ROLLBACK");
  context.triggers.forgetAfterRollback();
  context.schemaChanged();
}
