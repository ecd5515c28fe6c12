/**
 * The entry applier applies a committed entry in a process of its own, exactly as the node's
 * replica path would: the replica's content and applied index match the leader's afterwards, the
 * store takes the entry in (its reads and its next apply see it), an entry that does not apply keeps
 * its code (STORE_DIVERGED) and leaves nothing, a closed applier applies nothing, and the store
 * refuses to write while another process applies.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, type TestContext, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { ProcessEntryApplier } from "./entry-applier.ts";
import { payloadFilePattern } from "./entry-apply-protocol.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, TestLog, temporaryDirectory } from "./test-support.ts";

function applierFor(t: TestContext, store: Store, logged: string[] = []): ProcessEntryApplier {
  const applier = new ProcessEntryApplier({
    path: store.path,
    limits: {},
    log: (_level, event) => logged.push(event),
  });
  t.after(() => applier.close());
  return applier;
}

/** A leader with a table, and a replica caught up with it. */
function pair(t: TestContext): { log: TestLog; replica: Store } {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  log.write(batch("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT NOT NULL)"));
  const replica = openStore(t, directory, "replica.db");
  log.catchUp(replica);
  return { log, replica };
}

const manyRows =
  "INSERT INTO item(id, name) SELECT x, printf('%050d', x) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000) SELECT x FROM c)";

describe("entry applier", { timeout: 120_000 }, () => {
  test("applies an entry in its own process; the store takes it in", async (t) => {
    const { log, replica } = pair(t);
    log.write(batch(manyRows));
    const entry = log.entries.at(-1)!;
    assert.ok(entry.payload.byteLength > 1_000_000, `a large entry (${entry.payload.byteLength} bytes)`);
    const logged: string[] = [];
    const applier = applierFor(t, replica, logged);
    await applier.apply(replica, entry.index, entry.payload);
    assert.equal(replica.appliedIndex, entry.index);
    assert.deepEqual(rowsOf(replica, "SELECT count(*), max(name) FROM item"), [
      [20000, `${"0".repeat(45)}20000`],
    ]);
    assert.equal(replica.contentHash(), log.leader.contentHash());
    assert.ok(logged.includes("entry-applier.done"));
    // The next entry applies on the node's own connection on top of it.
    log.write(batch("UPDATE item SET name = 'x' WHERE id = 1"));
    log.catchUp(replica);
    assert.equal(replica.contentHash(), log.leader.contentHash());
    const files = fs.readdirSync(log.leader.path.replace(/\/[^/]+$/, ""));
    assert.deepEqual(
      files.filter((name) => payloadFilePattern.test(name)),
      [],
      "no payload file is left",
    );
  });

  test("an entry that does not apply fails with its code and leaves the replica as it was", async (t) => {
    const { log, replica } = pair(t);
    log.write(batch(manyRows));
    const entry = log.entries.at(-1)!;
    // The replica already holds a row the entry inserts: the changeset conflicts.
    const other = new TestLog(replica);
    other.write(batch("INSERT INTO item(id, name) VALUES (7, 'here first')"));
    const diverging = { index: replica.appliedIndex + 1, payload: entry.payload };
    const applier = applierFor(t, replica);
    const before = replica.appliedIndex;
    await assert.rejects(applier.apply(replica, diverging.index as never, diverging.payload), (error) =>
      isBatonError(error, "STORE_DIVERGED"),
    );
    assert.equal(replica.appliedIndex, before);
    assert.deepEqual(rowsOf(replica, "SELECT count(*) FROM item"), [[1]]);
  });

  test("while another process applies, the store writes nothing; a closed applier applies nothing", async (t) => {
    const { log, replica } = pair(t);
    log.write(batch(manyRows));
    const entry = log.entries.at(-1)!;
    const applier = applierFor(t, replica);
    const applying = applier.apply(replica, entry.index, entry.payload);
    assert.throws(() => log.catchUp(replica), /apply while a speculative transaction is open/);
    await applier.close();
    await assert.rejects(applying, (error) => isBatonError(error, "SHUTTING_DOWN"));
    assert.equal(replica.appliedIndex, entry.index - 1);
    assert.deepEqual(rowsOf(replica, "SELECT count(*) FROM item"), [[0]]);
    log.catchUp(replica);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  });
});
