import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { OrphanQuarantine, orphansMax } from "../store/orphan-quarantine.ts";
import { Store } from "../store/store.ts";
import { logIndex, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { quarantineSink, replayRequest, viewOrphan } from "./orphans.ts";

function setup(t: TestContext) {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-orphans-"));
  const store = Store.open({ path: path.join(directory, "baton.db") });
  const quarantine = OrphanQuarantine.open(path.join(directory, "review", "orphans.db"));
  t.after(() => {
    store.close();
    quarantine.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });
  const commit = (sql: string, params: unknown[] = []) => {
    const index = logIndex(store.appliedIndex + 1);
    store.execute(index, [{ sql, params: params as never }]);
    store.commitSpeculative(index);
  };
  commit("CREATE TABLE accounts(id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, balance INTEGER)");
  commit("INSERT INTO accounts(owner, balance) VALUES ('ann', 10), ('bob', 20)");
  return { store, quarantine, commit };
}

/** Runs a batch as a deposed leader would, then rolls it back and quarantines its entry. */
function orphanOf(t: ReturnType<typeof setup>, statements: { sql: string; params?: unknown[] }[]) {
  const index = logIndex(t.store.appliedIndex + 1);
  const { payload } = t.store.execute(
    index,
    statements.map((s) => ({ sql: s.sql, params: (s.params ?? []) as never })),
    { request: { id: "req-7", response: () => "{}", loggedAtMs: 1_000 } },
  );
  t.store.rollbackSpeculative();
  quarantineSink(t.quarantine).keepDiscarded(
    [{ index, term: term(3), kind: EntryKind.command, data: payload }],
    1000,
  );
  const [record] = t.quarantine.list("pending", 1);
  assert.ok(record !== undefined);
  return record;
}

test("an orphan is shown as rows with its request ids, compared with current data, and replayed atomically", (t) => {
  const s = setup(t);
  const record = orphanOf(s, [
    { sql: "INSERT INTO accounts(owner, balance) VALUES ('cat', 30)" },
    { sql: "UPDATE accounts SET balance = balance - 5 WHERE owner = 'ann'" },
    { sql: "DELETE FROM accounts WHERE owner = 'bob'" },
  ]);
  assert.deepEqual(record.requestIds, ["req-7"]);
  const view = viewOrphan(record, s.store);
  const byOp = Object.fromEntries(view.changes.map((c) => [c.op, c]));
  assert.deepEqual(byOp.insert?.after, { id: 3, owner: "cat", balance: 30 });
  assert.equal(byOp.insert?.state, "missing");
  assert.deepEqual(byOp.update?.before, { id: 1, balance: 10 });
  assert.deepEqual(byOp.update?.after, { balance: 5 });
  assert.deepEqual(byOp.update?.current, { id: 1, owner: "ann", balance: 10 });
  assert.equal(byOp.delete?.state, "missing");

  const { request } = replayRequest(record, s.store, "replay-1");
  const index = logIndex(s.store.appliedIndex + 1);
  s.store.execute(index, request.statements);
  s.store.commitSpeculative(index);
  const after = viewOrphan(record, s.store);
  assert.ok(
    after.changes.every((c) => c.state === "present"),
    JSON.stringify(after.changes),
  );
});

test("a replay that meets changed rows fails whole and names the conflicting change", (t) => {
  const s = setup(t);
  const record = orphanOf(s, [
    { sql: "INSERT INTO accounts(owner, balance) VALUES ('cat', 30)" },
    { sql: "UPDATE accounts SET balance = 0 WHERE owner = 'ann'" },
  ]);
  s.commit("UPDATE accounts SET balance = 99 WHERE owner = 'ann'");
  const view = viewOrphan(record, s.store);
  assert.equal(view.changes.find((c) => c.op === "update")?.state, "changed");
  const { request, changeOf } = replayRequest(record, s.store, "replay-2");
  const index = logIndex(s.store.appliedIndex + 1);
  let failedAt: number | null = null;
  try {
    s.store.execute(index, request.statements);
  } catch (error) {
    assert.ok(isBatonError(error));
    failedAt = error.details.statementIndex as number;
  }
  assert.notEqual(failedAt, null, "the guard fails the batch");
  const change = changeOf[failedAt ?? 0];
  assert.equal(view.changes[change ?? -1]?.op, "update");
  assert.deepEqual(
    s.store.query([{ sql: "SELECT count(*) FROM accounts WHERE owner = 'cat'" }]).results[0]?.rows,
    [[0]],
    "nothing of the replay was applied",
  );
});

test("the quarantine records every action, resolves once, and stays within its bound", (t) => {
  const s = setup(t);
  const record = orphanOf(s, [{ sql: "INSERT INTO accounts(owner) VALUES ('dan')" }]);
  s.quarantine.resolve(record.id, "discarded", "not needed", 2000);
  assert.throws(
    () => s.quarantine.resolve(record.id, "replayed", "again", 3000),
    (e) => isBatonError(e, "CONFLICT"),
  );
  assert.deepEqual(
    s.quarantine.actions(10).map((a) => a.action),
    ["discarded", "quarantined"],
  );
  const entries = Array.from({ length: orphansMax + 5 }, (_, i) => ({
    index: 100 + i,
    term: 4,
    kind: EntryKind.command,
    payload: new Uint8Array(),
    requestIds: [],
  }));
  s.quarantine.keep(entries, 5000);
  assert.equal(s.quarantine.list(null, orphansMax + 100).length, orphansMax);
  // The resolved one went first, then the oldest pending ones.
  assert.throws(
    () => s.quarantine.get(record.id),
    (e) => isBatonError(e, "NOT_FOUND"),
  );
  assert.ok(s.quarantine.actions(20).some((a) => a.action === "expired"));
});
