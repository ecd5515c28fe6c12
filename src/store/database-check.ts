/**
 * Checks of a store database that the node's consistency checks rely on.
 *
 * - `checkDatabaseStructure`: SQLite's `PRAGMA quick_check` (every b-tree page well-formed, every
 *   record decodable, no page used twice) on a database no store has open. It cannot see damage
 *   inside a row's content, which SQLite keeps no checksum of: that takes comparing content hashes
 *   with other replicas (`src/node/consistency-check.ts`).
 * - `ContentHashJob`: the content hash (`content-hash.ts`) of the committed state at one applied
 *   index, on a read-only connection of its own whose read transaction is begun when the job starts
 *   (so it reads that state however long it runs while the store applies more), advanced a bounded
 *   number of rows per step.
 */
import fs from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import type { LogIndex } from "../types/ids.ts";
import { openReadSide, type ReadSide } from "./connections.ts";
import { contentHashSteps } from "./content-hash.ts";

/** Lines of a failed check kept in the report. */
const problemLinesMax = 5;

/**
 * Null when the database at `databasePath` is structurally sound (or does not exist), else what is
 * wrong with it (SQLite's own words). Never throws on a damaged file.
 */
export function checkDatabaseStructure(databasePath: string): string | null {
  if (!fs.existsSync(databasePath)) return null;
  let db: DatabaseSync | null = null;
  try {
    db = new DatabaseSync(databasePath, { readOnly: true });
    const rows = db.prepare("PRAGMA quick_check").all();
    const lines = rows.map((row) => String(Object.values(row)[0]));
    return lines.length === 1 && lines[0] === "ok" ? null : lines.slice(0, problemLinesMax).join("; ");
  } catch (error) {
    return (error as Error).message;
  } finally {
    db?.close();
  }
}

export class ContentHashJob {
  /** The applied index of the state this job reads. */
  readonly appliedIndex: LogIndex;
  private side: ReadSide | null;
  private readonly steps: Generator<void, string>;
  private digest: string | null = null;

  /** Begins the read transaction now: the job hashes the state committed at this moment. */
  constructor(databasePath: string, busyTimeoutMs: number, rowsPerStep: number) {
    const side = openReadSide(databasePath, busyTimeoutMs);
    try {
      side.read.exec("BEGIN");
      this.appliedIndex = side.readMeta.readAppliedIndex();
    } catch (error) {
      side.read.close();
      throw error;
    }
    assert(side.read.isTransaction, "the job's read transaction is open");
    this.side = side;
    this.steps = contentHashSteps(side.read, rowsPerStep);
  }

  /** Hashes up to the step's bound of rows; returns the hex digest once done (then closes). */
  step(): string | null {
    if (this.digest !== null) return this.digest;
    assert(this.side !== null, "step after close");
    const next = this.steps.next();
    if (next.done !== true) return null;
    this.digest = next.value;
    this.close();
    return this.digest;
  }

  /** Ends the read transaction and closes the connection; harmless twice. */
  close(): void {
    const side = this.side;
    this.side = null;
    if (side === null) return;
    try {
      if (side.read.isTransaction) side.read.exec("ROLLBACK");
    } finally {
      side.read.close();
    }
  }
}
