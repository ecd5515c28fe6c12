/**
 * Orphaned writes for an operator: entries this node held that a new leader overwrote, kept in the
 * quarantine (`src/store/orphan-quarantine.ts`), shown as rows, compared with current data, and
 * replayed through the leader as a new write or discarded.
 *
 * - View: the entry's payload decoded into DDL and row changes (`changeset-reader.ts`), with the
 *   column names of the table as it is now; changes to the store's own `_baton_*` tables are left
 *   out, except that the request ids it carried are listed.
 * - Diff: for each change, the row with its key in this node's committed state, and whether the
 *   orphan's effect is `present` there, `missing` (the row is as before the orphan), or `changed`
 *   (neither: someone wrote it since), or the table is gone (`no-table`).
 * - Replay: one atomic batch. Each update and delete is preceded by a guard that fails the batch
 *   unless the row still holds the orphan's before-values; an insert fails on its own if its key
 *   is taken. So a replay either applies every change or none, and a failure names the change that
 *   conflicted. The batch carries a request id derived from the node and orphan, so a retried
 *   replay is applied once.
 */
import type { JsonValue } from "../api/api-types.ts";
import { jsonSafe } from "../api/json-encoding.ts";
import type { NormalizedExecute } from "../api/request-validation.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type ChangeValue, type RowChange, readChangeset } from "../store/changeset-reader.ts";
import { decodePayload } from "../store/index.ts";
import type { OrphanQuarantine, OrphanRecord } from "../store/orphan-quarantine.ts";
import type { Store } from "../store/store.ts";
import type { SqlParamValue, Statement } from "../store/types.ts";
import type { LogEntry } from "../types/log-entry.ts";
import type { ReviewSink } from "./runtime.ts";

export type ChangeState = "present" | "missing" | "changed" | "no-table";

export type OrphanChangeView = {
  readonly table: string;
  readonly op: RowChange["op"];
  readonly key: Record<string, JsonValue>;
  readonly before: Record<string, JsonValue> | null;
  readonly after: Record<string, JsonValue> | null;
  readonly current: Record<string, JsonValue> | null;
  readonly state: ChangeState;
};

export type OrphanView = {
  readonly id: number;
  readonly index: number;
  readonly term: number;
  readonly discardedAtMs: number;
  readonly requestIds: readonly string[];
  readonly status: string;
  readonly resolution: string | null;
  readonly ddl: readonly string[];
  readonly changes: readonly OrphanChangeView[];
  /** The applied index of this node's state the diff was made against. */
  readonly comparedAtIndex: number;
};

/** Changes shown to an operator, at most, per orphan. */
export const orphanChangesShownMax = 10_000;

type Decoded = { readonly ddl: string[]; readonly changes: RowChange[]; readonly steps: Step[] };
type Step = { readonly ddl: string } | { readonly change: RowChange };

const reserved = (table: string): boolean => table.toLowerCase().startsWith("_baton_");

function decode(record: OrphanRecord): Decoded {
  const ddl: string[] = [];
  const changes: RowChange[] = [];
  const steps: Step[] = [];
  for (const op of decodePayload(record.payload)) {
    if (op.kind === "ddl") {
      ddl.push(op.sql);
      steps.push({ ddl: op.sql });
    } else if (op.kind === "changeset") {
      for (const change of readChangeset(op.changeset)) {
        if (reserved(change.table)) continue;
        changes.push(change);
        steps.push({ change });
      }
    }
  }
  return { ddl, changes, steps };
}

/** The request ids an entry's payload remembered (its `_baton_requests` inserts). */
export function requestIdsOf(payload: Uint8Array): string[] {
  const ids: string[] = [];
  try {
    for (const op of decodePayload(payload)) {
      if (op.kind !== "changeset") continue;
      for (const change of readChangeset(op.changeset))
        if (
          change.table === "_baton_requests" &&
          change.op === "insert" &&
          typeof change.after[0] === "string"
        )
          ids.push(change.after[0]);
    }
  } catch {
    return ids; // a no-op or undecodable entry carries none; the quarantine keeps its bytes anyway
  }
  return ids;
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function columnsOf(store: Store, change: RowChange): string[] | null {
  const described = store.describeTable(change.table);
  if (described === null) return null;
  const width = change.primaryKey.length;
  return Array.from({ length: width }, (_, i) => described.columns[i] ?? `column${i + 1}`);
}

function named(columns: readonly string[], values: readonly ChangeValue[]): Record<string, JsonValue> | null {
  if (values.length === 0) return null;
  const row: Record<string, JsonValue> = {};
  for (const [i, value] of values.entries()) if (value !== undefined) row[columns[i]!] = jsonSafe(value);
  return row;
}

function keyValues(change: RowChange): ChangeValue[] {
  const source = change.op === "insert" ? change.after : change.before;
  return change.primaryKey.map((flag, i) => (flag > 0 ? source[i] : undefined));
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(jsonSafe(a)) === JSON.stringify(jsonSafe(b));
}

function matches(row: readonly unknown[] | null, values: readonly ChangeValue[]): boolean {
  return row !== null && values.every((value, i) => value === undefined || same(row[i], value));
}

function currentRow(store: Store, columns: readonly string[], change: RowChange): unknown[] | null {
  const key = keyValues(change);
  const where = key.flatMap((value, i) => (value === undefined ? [] : [`${quote(columns[i]!)} IS ?`]));
  const params = key.filter((value) => value !== undefined) as SqlParamValue[];
  const select = `SELECT ${columns.map(quote).join(", ")} FROM ${quote(change.table)} WHERE ${where.join(" AND ")}`;
  const rows = store.query([{ sql: select, params }]).results[0]?.rows ?? [];
  return (rows[0] as unknown[] | undefined) ?? null;
}

function stateOf(change: RowChange, current: unknown[] | null): ChangeState {
  if (change.op === "insert")
    return current === null ? "missing" : matches(current, change.after) ? "present" : "changed";
  if (change.op === "delete")
    return current === null ? "present" : matches(current, change.before) ? "missing" : "changed";
  if (matches(current, change.after)) return "present";
  return matches(current, change.before) ? "missing" : "changed";
}

/** The orphan as rows, compared with this node's committed state. */
export function viewOrphan(record: OrphanRecord, store: Store): OrphanView {
  const { ddl, changes } = decode(record);
  return {
    id: record.id,
    index: record.index,
    term: record.term,
    discardedAtMs: record.discardedAtMs,
    requestIds: record.requestIds,
    status: record.status,
    resolution: record.resolution,
    ddl,
    comparedAtIndex: store.appliedIndex,
    changes: changes.slice(0, orphanChangesShownMax).map((change) => {
      const columns = columnsOf(store, change);
      const names = columns ?? change.primaryKey.map((_, i) => `column${i + 1}`);
      const current = columns === null ? null : currentRow(store, columns, change);
      return {
        table: change.table,
        op: change.op,
        key: named(names, keyValues(change)) ?? {},
        before: named(names, change.before),
        after: named(names, change.after),
        current: current === null ? null : named(names, current as ChangeValue[]),
        state: columns === null ? "no-table" : stateOf(change, current),
      };
    }),
  };
}

function guardFor(change: RowChange, columns: readonly string[]): Statement {
  const conditions = change.before.flatMap((value, i) =>
    value === undefined ? [] : [`${quote(columns[i]!)} IS ?`],
  );
  const params = change.before.filter((value) => value !== undefined) as SqlParamValue[];
  // No RAISE outside triggers: json() of a non-JSON text fails the statement, and with it the batch.
  return {
    sql: `SELECT CASE WHEN EXISTS (SELECT 1 FROM ${quote(change.table)} WHERE ${conditions.join(" AND ")}) THEN 1 ELSE json('orphan replay conflict') END AS guard`,
    params,
  };
}

function statementFor(change: RowChange, columns: readonly string[]): Statement {
  const key = keyValues(change);
  const where = key.flatMap((value, i) => (value === undefined ? [] : [`${quote(columns[i]!)} IS ?`]));
  const keyParams = key.filter((value) => value !== undefined) as SqlParamValue[];
  if (change.op === "insert") {
    return {
      sql: `INSERT INTO ${quote(change.table)}(${columns.map(quote).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
      params: change.after.map((value) => (value === undefined ? null : value)) as SqlParamValue[],
    };
  }
  if (change.op === "delete")
    return { sql: `DELETE FROM ${quote(change.table)} WHERE ${where.join(" AND ")}`, params: keyParams };
  const sets = change.after.flatMap((value, i) => (value === undefined ? [] : [`${quote(columns[i]!)} = ?`]));
  const setParams = change.after.filter((value) => value !== undefined) as SqlParamValue[];
  return {
    sql: `UPDATE ${quote(change.table)} SET ${sets.join(", ")} WHERE ${where.join(" AND ")}`,
    params: [...setParams, ...keyParams],
  };
}

/** The replay batch, and which change each statement belongs to (for conflict reports). */
export function replayRequest(
  record: OrphanRecord,
  store: Store,
  requestId: string,
): { request: NormalizedExecute; changeOf: (number | null)[] } {
  if (record.status !== "pending")
    throw new BatonError(ErrorCode.CONFLICT, `orphaned entry ${record.id} is already ${record.status}`);
  const { steps } = decode(record);
  const statements: Statement[] = [];
  const changeOf: (number | null)[] = [];
  let changeIndex = 0;
  for (const step of steps) {
    if ("ddl" in step) {
      statements.push({ sql: step.ddl, params: [] });
      changeOf.push(null);
      continue;
    }
    const columns = columnsOf(store, step.change);
    if (columns === null) {
      throw new BatonError(
        ErrorCode.ORPHAN_REPLAY_CONFLICT,
        `table ${step.change.table} no longer exists; nothing was applied`,
        { change: changeIndex, table: step.change.table },
      );
    }
    if (step.change.op !== "insert") {
      statements.push(guardFor(step.change, columns));
      changeOf.push(changeIndex);
    }
    statements.push(statementFor(step.change, columns));
    changeOf.push(changeIndex);
    changeIndex++;
  }
  if (statements.length === 0)
    throw new BatonError(ErrorCode.CONFLICT, `orphaned entry ${record.id} holds no row change to replay`);
  return {
    request: { statements, durability: "majority", requestId, expectedTerm: null, timeoutMs: null } as never,
    changeOf,
  };
}

/** The review sink that keeps discarded entries in the quarantine. */
export function quarantineSink(quarantine: OrphanQuarantine): ReviewSink {
  return {
    keepDiscarded(entries: readonly LogEntry[], atMs: number): void {
      quarantine.keep(
        entries.map((entry) => ({
          index: entry.index,
          term: entry.term,
          kind: entry.kind,
          payload: entry.data,
          requestIds: requestIdsOf(entry.data),
        })),
        atMs,
      );
    },
  };
}

/** One line per orphan for listings. */
export function summarizeOrphan(record: OrphanRecord) {
  return {
    id: record.id,
    index: record.index,
    term: record.term,
    discardedAtMs: record.discardedAtMs,
    requestIds: record.requestIds,
    status: record.status,
    resolvedAtMs: record.resolvedAtMs,
    resolution: record.resolution,
    payloadBytes: record.payload.byteLength,
  };
}
