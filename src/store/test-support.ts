/**
 * Helpers for the store's tests: temporary directories that are always removed, short statement
 * builders, and a small log that replays a leader's payloads onto replicas.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { Store } from "./store.ts";
import type { Statement, StatementParams, StoreOptions } from "./types.ts";

/** A fresh directory under the system temp dir, removed (with everything in it) after the test. */
export function temporaryDirectory(t: TestContext): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-store-test-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  return directory;
}

/** Opens a store on `name` inside `directory`; it is closed after the test. */
export function openStore(
  t: TestContext,
  directory: string,
  name: string,
  options: Omit<StoreOptions, "path"> = {},
): Store {
  const store = Store.open({ path: path.join(directory, name), ...options });
  t.after(() => store.close());
  return store;
}

export function sql(text: string, params?: StatementParams): Statement {
  return params === undefined ? { sql: text } : { sql: text, params };
}

export function batch(...texts: string[]): Statement[] {
  return texts.map((text) => ({ sql: text }));
}

/** A leader with the log it has committed so far, and replicas fed from that log. */
export class TestLog {
  readonly entries: { index: LogIndex; payload: Uint8Array }[] = [];
  readonly leader: Store;

  constructor(leader: Store) {
    this.leader = leader;
  }

  get nextIndex(): LogIndex {
    return logIndex(Math.max(this.leader.appliedIndex, this.leader.lastSpeculativeIndex ?? 0) + 1);
  }

  /** Executes and commits one batch on the leader, keeping its payload. */
  write(statements: readonly Statement[]): ReturnType<Store["execute"]> {
    const index = this.nextIndex;
    const result = this.leader.execute(index, statements);
    this.leader.commitSpeculative(index);
    this.entries.push({ index, payload: result.payload });
    return result;
  }

  /** Applies every logged entry the replica has not applied yet. */
  catchUp(replica: Store): void {
    for (const entry of this.entries)
      if (entry.index > replica.appliedIndex) replica.apply(entry.index, entry.payload);
  }
}

/** The rows of one read on the committed state. */
export function rowsOf(store: Store, text: string, params?: StatementParams): unknown[][] {
  const result = store.query([sql(text, params)]).results[0];
  if (result === undefined) throw new Error("query returned no result");
  return result.rows as unknown[][];
}
