/**
 * The orphan quarantine: log entries this node held that a new leader overwrote (Raft §5.3), kept
 * for an operator in a node-local SQLite file (`DATA/review/orphans.db`, never replicated).
 *
 * An orphan is an entry of a deposed leader's suffix (or a follower's) that never committed: its
 * write may have been acknowledged at `local` or `one` and then lost. The quarantine keeps the
 * entry whole (term, index, kind, payload) with the request ids it carried and when it was
 * discarded; `src/node/orphans.ts` turns it into rows, a diff against current data, and a replay.
 * Every operator action (replay, conflict, discard, expiry) is recorded in `actions`.
 *
 * Retention policy: at most `orphansMax` (10,000) entries. Resolved entries (replayed or
 * discarded) go after `resolvedRetentionMs` (30 days); beyond the bound, the oldest resolved go
 * first, then the oldest pending, each expiry recorded as an action.
 */
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";

export const orphansMax = 10_000;
export const resolvedRetentionMs = 30 * 24 * 3600 * 1000;
/** Actions kept in the history, at most. */
export const orphanActionsMax = 100_000;

export type OrphanStatus = "pending" | "replayed" | "discarded";

export type OrphanRecord = {
  readonly id: number;
  readonly index: number;
  readonly term: number;
  readonly kind: number;
  readonly payload: Uint8Array;
  readonly requestIds: readonly string[];
  readonly discardedAtMs: number;
  readonly status: OrphanStatus;
  readonly resolvedAtMs: number | null;
  readonly resolution: string | null;
};

export type OrphanAction = {
  readonly id: number;
  readonly atMs: number;
  readonly orphanId: number;
  readonly action: string;
  readonly detail: string;
};

export type OrphanInput = {
  readonly index: number;
  readonly term: number;
  readonly kind: number;
  readonly payload: Uint8Array;
  readonly requestIds: readonly string[];
};

function toRecord(row: Record<string, unknown>): OrphanRecord {
  return {
    id: Number(row.id),
    index: Number(row.entry_index),
    term: Number(row.entry_term),
    kind: Number(row.kind),
    payload: row.payload as Uint8Array,
    requestIds: JSON.parse(String(row.request_ids)) as string[],
    discardedAtMs: Number(row.discarded_at_ms),
    status: row.status as OrphanStatus,
    resolvedAtMs: row.resolved_at_ms === null ? null : Number(row.resolved_at_ms),
    resolution: row.resolution === null ? null : String(row.resolution),
  };
}

export class OrphanQuarantine {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (creating) the quarantine file at `file`. */
  static open(file: string): OrphanQuarantine {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const db = new DatabaseSync(file, { allowExtension: false, defensive: true });
    db.exec(`PRAGMA journal_mode=WAL;
      CREATE TABLE IF NOT EXISTS orphans(
        id INTEGER PRIMARY KEY AUTOINCREMENT, entry_index INTEGER NOT NULL, entry_term INTEGER NOT NULL,
        kind INTEGER NOT NULL, payload BLOB NOT NULL, request_ids TEXT NOT NULL,
        discarded_at_ms INTEGER NOT NULL, status TEXT NOT NULL, resolved_at_ms INTEGER, resolution TEXT);
      CREATE TABLE IF NOT EXISTS actions(
        id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, orphan_id INTEGER NOT NULL,
        action TEXT NOT NULL, detail TEXT NOT NULL);`);
    return new OrphanQuarantine(db);
  }

  /** Keeps discarded entries; applies the retention policy. */
  keep(entries: readonly OrphanInput[], atMs: number): void {
    if (entries.length === 0) return;
    const insert = this.#db.prepare(
      "INSERT INTO orphans(entry_index, entry_term, kind, payload, request_ids, discarded_at_ms, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
    );
    this.#db.exec("BEGIN");
    try {
      for (const entry of entries) {
        const { lastInsertRowid } = insert.run(
          entry.index,
          entry.term,
          entry.kind,
          entry.payload,
          JSON.stringify(entry.requestIds),
          atMs,
        );
        this.#action(atMs, Number(lastInsertRowid), "quarantined", `index ${entry.index} term ${entry.term}`);
      }
      this.#expire(atMs);
      this.#db.exec("COMMIT");
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  list(status: OrphanStatus | null, limit: number): OrphanRecord[] {
    const rows =
      status === null
        ? this.#db.prepare("SELECT * FROM orphans ORDER BY id DESC LIMIT ?").all(limit)
        : this.#db
            .prepare("SELECT * FROM orphans WHERE status = ? ORDER BY id DESC LIMIT ?")
            .all(status, limit);
    return rows.map((row) => toRecord(row as Record<string, unknown>));
  }

  get(id: number): OrphanRecord {
    const row = this.#db.prepare("SELECT * FROM orphans WHERE id = ?").get(id);
    if (row === undefined) throw new BatonError("NOT_FOUND", `no orphaned entry ${id} on this node`, { id });
    return toRecord(row as Record<string, unknown>);
  }

  /** Marks a pending orphan replayed or discarded (once). */
  resolve(id: number, status: "replayed" | "discarded", detail: string, atMs: number): OrphanRecord {
    const current = this.get(id);
    if (current.status !== "pending") {
      throw new BatonError("CONFLICT", `orphaned entry ${id} is already ${current.status}`, {
        id,
        status: current.status,
      });
    }
    this.#db
      .prepare("UPDATE orphans SET status = ?, resolved_at_ms = ?, resolution = ? WHERE id = ?")
      .run(status, atMs, detail, id);
    this.#action(atMs, id, status, detail);
    return this.get(id);
  }

  /** Records an action that changes nothing (a replay that met a conflict, say). */
  note(id: number, action: string, detail: string, atMs: number): void {
    this.get(id);
    this.#action(atMs, id, action, detail);
  }

  actions(limit: number): OrphanAction[] {
    return this.#db
      .prepare("SELECT * FROM actions ORDER BY id DESC LIMIT ?")
      .all(limit)
      .map((row) => ({
        id: Number(row.id),
        atMs: Number(row.at_ms),
        orphanId: Number(row.orphan_id),
        action: String(row.action),
        detail: String(row.detail),
      }));
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #action(atMs: number, orphanId: number, action: string, detail: string): void {
    this.#db
      .prepare("INSERT INTO actions(at_ms, orphan_id, action, detail) VALUES (?, ?, ?, ?)")
      .run(atMs, orphanId, action, detail);
  }

  #expire(atMs: number): void {
    const expired = this.#db
      .prepare("SELECT id FROM orphans WHERE status != 'pending' AND resolved_at_ms < ? ORDER BY id")
      .all(atMs - resolvedRetentionMs)
      .map((row) => Number(row.id));
    const count = Number(this.#db.prepare("SELECT count(*) AS n FROM orphans").get()?.n ?? 0);
    const excess = Math.max(0, count - expired.length - orphansMax);
    if (excess > 0) {
      const oldest = this.#db
        .prepare(
          "SELECT id FROM orphans WHERE id NOT IN (SELECT value FROM json_each(?)) ORDER BY status = 'pending', id LIMIT ?",
        )
        .all(JSON.stringify(expired), excess)
        .map((row) => Number(row.id));
      expired.push(...oldest);
    }
    const remove = this.#db.prepare("DELETE FROM orphans WHERE id = ?");
    for (const id of expired) {
      remove.run(id);
      this.#action(atMs, id, "expired", "retention policy");
    }
    this.#db
      .prepare("DELETE FROM actions WHERE id <= (SELECT max(id) FROM actions) - ?")
      .run(orphanActionsMax);
    assert(
      Number(this.#db.prepare("SELECT count(*) AS n FROM orphans").get()?.n ?? 0) <= orphansMax,
      "the quarantine stays within its bound",
    );
  }
}
