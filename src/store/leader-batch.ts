/**
 * Running one client batch on the leader and recording the ops that reproduce it.
 *
 * The caller has opened the batch's SAVEPOINT inside the speculative transaction and rolls it back
 * if this throws. Here, statements run in order; a session records row changes between DDL
 * statements and is rotated around each one, so the ops interleave changesets and DDL text in
 * statement order (sessions do not record schema changes, and a changeset only applies to the schema
 * it was recorded under). A DROP TABLE runs with one session on every other table: with foreign keys
 * on, dropping a parent deletes its rows first and cascades into children (whose own triggers fire),
 * and those changes must reach replicas, which replay the DROP with foreign keys off. The batch ends
 * with the AUTOINCREMENT counters when replicas need them (see sequence-counters.ts), which are read
 * once per batch: the counters after one batch are the counters before the next.
 *
 * Client statements run with the connection's value length limit at `clientValueBytesMax` (as a
 * query's): no string or blob they build grows past it, which bounds what one instruction costs
 * (statement-cost.ts). The store's own writes (the request log's response) run with the
 * connection's own limit, restored right after the statements.
 *
 * Invariants: every session this opens is closed before it returns or throws; after a DDL statement
 * the schema rules hold (schema-rules.ts) or the batch fails; caches keyed on the schema are dropped
 * after every DDL statement.
 */
import type { DatabaseSync, Session } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import {
  type CompiledStatement,
  columnNames,
  compileStatement,
  type ResultBudget,
  runWithoutRows,
  runWithRows,
} from "./client-statement.ts";
import { queryValueBytesMax } from "./connections.ts";
import { type HistoryRow, insertHistory } from "./history-table.ts";
import { raiseCountersToReservations, raiseReservations } from "./id-reservations.ts";
import { internalStatement } from "./internal-statements.ts";
import type { PayloadOp, SequenceEntry } from "./payload.ts";
import { checkReplicableTable, checkReservedNames } from "./schema-rules.ts";
import { SequenceCounters } from "./sequence-counters.ts";
import type { StatementCache } from "./statement-cache.ts";
import type { StatementGuard } from "./statement-guard.ts";
import type { BatchResult, ExecuteStatementResult, Statement } from "./types.ts";
import { exactInteger } from "./values.ts";

export type LeaderContext = {
  readonly db: DatabaseSync;
  readonly guard: StatementGuard;
  /** The write connection's prepared client statements. */
  readonly statements: StatementCache;
  readonly counters: SequenceCounters;
  /** Drops every cache derived from the schema. */
  readonly schemaChanged: () => void;
};

export type BatchOutcome = {
  readonly results: ExecuteStatementResult[];
  readonly ops: PayloadOp[];
  /** The AUTOINCREMENT counters after the batch. */
  readonly counters: readonly SequenceEntry[];
  /** The id reservations, when the batch raised the counters to them (see id-reservations.ts). */
  readonly reservations: readonly SequenceEntry[] | null;
};

/** What a batch does besides its statements (id-reservations.ts, history-table.ts). */
export type BatchExtras = {
  /** First, raise every AUTOINCREMENT counter to its reservation (a term's first batch). */
  readonly raiseCounters?: boolean;
  /** Last, raise these reservations. */
  readonly reserve?: readonly SequenceEntry[];
  /** Last, insert these history records (those not yet present) and trim the oldest. */
  readonly history?: readonly HistoryRow[];
};

const noChange: ExecuteStatementResult = { rowsAffected: 0, lastInsertRowid: 0 };

/** The largest string or blob a client statement may build on the leader: the same as a query's. */
export const clientValueBytesMax = queryValueBytesMax;

/** Records row changes between DDL statements. */
class ChangeRecorder {
  readonly #db: DatabaseSync;
  readonly #ops: PayloadOp[];
  #session: Session | null = null;

  constructor(db: DatabaseSync, ops: PayloadOp[]) {
    this.#db = db;
    this.#ops = ops;
  }

  ensureOpen(): void {
    this.#session ??= this.#db.createSession();
  }

  /** Ends the current session and appends its changeset, if it recorded anything. */
  flush(): void {
    const session = this.#session;
    if (session === null) return;
    this.#session = null;
    try {
      pushChangeset(this.#ops, session.changeset());
    } finally {
      session.close();
    }
  }

  discard(): void {
    this.#session?.close();
    this.#session = null;
  }
}

function pushChangeset(ops: PayloadOp[], changeset: Uint8Array): void {
  if (changeset.length > 0) ops.push({ kind: "changeset", changeset });
}

function userTables(db: DatabaseSync): string[] {
  return db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND substr(lower(name), 1, 7) <> 'sqlite_'")
    .all()
    .map((row) => String(row.name));
}

function runDdl(context: LeaderContext, compiled: CompiledStatement, ops: PayloadOp[]): void {
  const { db, guard } = context;
  const { statementClass, statement, index } = compiled;
  assert(statementClass.ddl && db.isTransaction, "runDdl runs a DDL statement inside the batch");
  if (compiled.binding.positional.length > 0 || compiled.binding.named !== null) {
    throw new BatonError("BAD_REQUEST", `statement ${index}: DDL statements take no parameters`, {
      statementIndex: index,
    });
  }
  const dropped = new Set(statementClass.droppedTables);
  const sideSessions =
    dropped.size === 0
      ? []
      : userTables(db)
          .filter((table) => !dropped.has(table))
          .map((table) => db.createSession({ table }));
  try {
    runWithoutRows(guard, compiled);
    for (const session of sideSessions) pushChangeset(ops, session.changeset());
  } finally {
    for (const session of sideSessions) session.close();
    context.schemaChanged();
  }
  for (const table of [...statementClass.createdTables, ...statementClass.alteredTables]) {
    checkReplicableTable(db, table, index);
  }
  checkReservedNames(db, index);
  ops.push({ kind: "ddl", sql: statement.sourceSQL });
}

function runDml(
  context: LeaderContext,
  compiled: CompiledStatement,
  budget: ResultBudget,
): ExecuteStatementResult {
  const { guard, db } = context;
  assert(!compiled.statementClass.ddl, "runDml runs a statement that is not DDL");
  const columns = columnNames(compiled);
  if (columns.length === 0) {
    const result = runWithoutRows(guard, compiled);
    if (!compiled.statementClass.writes) return noChange;
    return { rowsAffected: Number(result.changes), lastInsertRowid: exactInteger(result.lastInsertRowid) };
  }
  const rows = runWithRows(guard, compiled, budget);
  if (!compiled.statementClass.writes) return { ...noChange, columns, rows };
  // A statement with RETURNING: ask SQLite for its counts, which `iterate` does not report.
  const counts = internalStatement(db, "SELECT changes() AS changes, last_insert_rowid() AS rowid").get();
  assert(
    counts !== undefined && typeof counts.changes === "bigint" && typeof counts.rowid === "bigint",
    "counts read",
  );
  return { rowsAffected: Number(counts.changes), lastInsertRowid: exactInteger(counts.rowid), columns, rows };
}

/** One client batch of a group: its statements and what runs after them while the session records. */
export type GroupBatch = {
  readonly statements: readonly Statement[];
  readonly budget: ResultBudget;
  /** Runs after the statements, while the session still records (the request log). */
  readonly beforeFlush?: (results: readonly ExecuteStatementResult[]) => void;
};

export type GroupOutcome = {
  readonly batches: readonly BatchResult[];
  readonly ops: PayloadOp[];
  /** The AUTOINCREMENT counters after the group. */
  readonly counters: readonly SequenceEntry[];
  /** The id reservations, when the group raised the counters to them (see id-reservations.ts). */
  readonly reservations: readonly SequenceEntry[] | null;
};

/**
 * SQLite ended the whole transaction while batch `batchIndex` of a group ran (`OR ROLLBACK`,
 * `RAISE(ROLLBACK)`, an I/O error): every batch of the group went with it.
 */
export class GroupTransactionLost extends Error {
  readonly batchIndex: number;
  override readonly cause: unknown;
  constructor(cause: unknown, batchIndex: number) {
    super("SQLite rolled back the transaction");
    this.cause = cause;
    this.batchIndex = batchIndex;
  }
}

/** A batch of a group reached a DDL statement after other batches ran: it needs an entry of its own. */
class NeedsOwnEntry extends Error {}

const memberSavepoint = "baton_member";
const again: BatchResult = { kind: "again", alone: false };

/** Runs one batch's statements, then its `beforeFlush`; `state.ranDdl` tells whether DDL ran. */
function runStatements(
  context: LeaderContext,
  batch: GroupBatch,
  recorder: ChangeRecorder,
  ops: PayloadOp[],
  state: { ddlAllowed: boolean; ranDdl: boolean },
): ExecuteStatementResult[] {
  const { db, guard, statements: cache } = context;
  const results: ExecuteStatementResult[] = [];
  const internalValueBytesMax = db.limits.length;
  db.limits.length = clientValueBytesMax;
  try {
    for (const [index, { sql, params }] of batch.statements.entries()) {
      const compiled = compileStatement(db, guard, cache, index, sql, params);
      if (compiled.statementClass.ddl) {
        if (!state.ddlAllowed) throw new NeedsOwnEntry();
        state.ranDdl = true;
        recorder.flush();
        runDdl(context, compiled, ops);
        results.push(noChange);
      } else {
        recorder.ensureOpen();
        results.push(runDml(context, compiled, batch.budget));
      }
    }
  } finally {
    db.limits.length = internalValueBytesMax;
  }
  if (batch.beforeFlush !== undefined) {
    recorder.ensureOpen();
    batch.beforeFlush(results);
  }
  return results;
}

/**
 * Runs one batch of several under a savepoint of its own. A failure rolls back to it: the session
 * reports only the net change, so the batch leaves nothing in the changeset. Returns whether the
 * group stays open for more batches (not after one that ran DDL, which has the entry to itself).
 */
function runMember(
  context: LeaderContext,
  batch: GroupBatch,
  recorder: ChangeRecorder,
  ops: PayloadOp[],
  ddlAllowed: boolean,
): { result: BatchResult; open: boolean } {
  const { db } = context;
  const opsBefore = ops.length;
  const state = { ddlAllowed, ranDdl: false };
  internalStatement(db, `SAVEPOINT ${memberSavepoint}`).run();
  try {
    const results = runStatements(context, batch, recorder, ops, state);
    internalStatement(db, `RELEASE ${memberSavepoint}`).run();
    return { result: { kind: "done", results }, open: !state.ranDdl };
  } catch (error) {
    if (!db.isTransaction) throw error;
    internalStatement(db, `ROLLBACK TO ${memberSavepoint}`).run();
    internalStatement(db, `RELEASE ${memberSavepoint}`).run();
    if (error instanceof NeedsOwnEntry) return { result: { kind: "again", alone: true }, open: true };
    if (state.ranDdl) {
      // Only a group's first batch runs DDL: what it flushed and recorded is its own, and undone.
      ops.length = opsBefore;
      recorder.discard();
      context.schemaChanged();
    }
    return { result: { kind: "failed", error }, open: !state.ranDdl };
  }
}

/**
 * Runs a group of batches (inside the caller's savepoint) in order, in one session, for one log
 * entry. A single batch runs as it is and a failure throws; of several, each runs under its own
 * savepoint and a failure is that batch's result. A batch that reaches DDL after another batch ran
 * is rolled back and left to run again alone; a batch that ran DDL ends the group. If SQLite ends the whole
 * transaction, `GroupTransactionLost` names the batch that did it.
 */
export function runLeaderGroup(
  context: LeaderContext,
  batches: readonly GroupBatch[],
  extras: BatchExtras = {},
): GroupOutcome {
  const { db, counters } = context;
  assert(db.isTransaction, "a leader group runs inside the speculative transaction");
  const ops: PayloadOp[] = [];
  const results: BatchResult[] = [];
  const recorder = new ChangeRecorder(db, ops);
  let reservations: readonly SequenceEntry[] | null = null;
  try {
    const countersBefore = counters.beforeBatch(db);
    if (extras.raiseCounters === true) reservations = raiseCountersToReservations(db, counters.exists(db));
    let open = true;
    for (const [index, batch] of batches.entries()) {
      if (!open) {
        results.push(again);
      } else if (batches.length === 1) {
        const state = { ddlAllowed: true, ranDdl: false };
        results.push({ kind: "done", results: runStatements(context, batch, recorder, ops, state) });
      } else {
        const ddlAllowed = !results.some((result) => result.kind === "done");
        let member: ReturnType<typeof runMember>;
        try {
          member = runMember(context, batch, recorder, ops, ddlAllowed);
        } catch (error) {
          throw db.isTransaction ? error : new GroupTransactionLost(error, index);
        }
        results.push(member.result);
        open = member.open;
      }
    }
    if (extras.reserve !== undefined || extras.history !== undefined) recorder.ensureOpen();
    if (extras.reserve !== undefined) raiseReservations(db, extras.reserve);
    if (extras.history !== undefined) insertHistory(db, extras.history);
    recorder.flush();
    const countersAfter = counters.afterBatch(db);
    const counterOp = SequenceCounters.opFor(countersBefore, countersAfter, ops);
    if (counterOp !== null) ops.push(counterOp);
    return { batches: results, ops, counters: countersAfter, reservations };
  } finally {
    recorder.discard();
  }
}

/** Runs one batch (inside the caller's savepoint) and returns its results and ops; a failure throws. */
export function runLeaderBatch(
  context: LeaderContext,
  statements: readonly Statement[],
  budget: ResultBudget,
  /** Runs after the statements, while the batch's session still records (the request log). */
  beforeFlush?: (results: readonly ExecuteStatementResult[]) => void,
  extras: BatchExtras = {},
): BatchOutcome {
  const batch = { statements, budget, ...(beforeFlush === undefined ? {} : { beforeFlush }) };
  const group = runLeaderGroup(context, [batch], extras);
  const [only] = group.batches;
  assert(only?.kind === "done", "a group of one batch either runs it or throws");
  return {
    results: [...only.results],
    ops: group.ops,
    counters: group.counters,
    reservations: group.reservations,
  };
}
