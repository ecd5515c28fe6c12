import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AssertionError } from "../lib/assert.ts";
import { isBatonError } from "../lib/errors.ts";
import { logIndex } from "../types/ids.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, sql, TestLog, temporaryDirectory } from "./test-support.ts";
import type { ExecuteStatementResult, Statement } from "./types.ts";

const schema = batch(
  "CREATE TABLE account(id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, balance INTEGER NOT NULL)",
  "CREATE TABLE movement(id INTEGER PRIMARY KEY, account INTEGER REFERENCES account(id) ON DELETE CASCADE, note TEXT)",
  "CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT, stamp TEXT)",
  "CREATE TRIGGER account_audit AFTER INSERT ON account BEGIN INSERT INTO audit(what, stamp) VALUES ('open ' || new.owner, datetime('now') || random()); END",
);

const work: Statement[] = [
  sql("INSERT INTO account(owner, balance) VALUES (?, ?)", ["ada", 10]),
  sql("INSERT INTO account(owner, balance) VALUES (?, ?)", ["bob", 20]),
  sql("INSERT INTO movement(account, note) VALUES (1, 'x'), (3, 'y'), (3, 'z')"),
  sql("DELETE FROM account WHERE owner = ?", ["bob"]),
  sql("SELECT count(*) FROM movement"),
];

const response = (results: readonly ExecuteStatementResult[]): string =>
  JSON.stringify({ statements: results.length });

/** A leader and a second store (the one that adopts) with the same committed history. */
function twins(t: Parameters<typeof openStore>[0]): { log: TestLog; adopter: Store } {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  const adopter = openStore(t, directory, "adopter.db");
  log.write(schema);
  log.write([sql("INSERT INTO account(owner, balance) VALUES ('eve', 5)")]);
  log.catchUp(adopter);
  return { log, adopter };
}

describe("adopting a batch that ran elsewhere", () => {
  test("leaves exactly the content, counters and request row that running it would, and replicas agree", (t) => {
    const { log, adopter } = twins(t);
    const index = log.nextIndex;
    // The batch runs on the leader as the sandbox runs it: executed, then rolled back.
    const ran = log.leader.execute(index, work);
    log.leader.rollbackSpeculative();
    const { payload } = adopter.adoptBatch(index, ran, {
      request: { id: "r-1", response, loggedAtMs: 1_000 },
    });
    assert.equal(adopter.holdsAdoptedBatch, true);
    assert.equal(adopter.speculativeCount, 1);
    assert.deepEqual(adopter.lookupRequest("r-1"), { index, response: JSON.stringify({ statements: 5 }) });
    assert.deepEqual(
      rowsOf(adopter, "SELECT count(*) FROM account"),
      [[1]],
      "readers see committed state only",
    );
    adopter.commitSpeculative(index);
    assert.equal(adopter.holdsAdoptedBatch, false);
    // The reference: the same batch run and committed on the leader with the same request.
    log.leader.execute(index, work, { request: { id: "r-1", response, loggedAtMs: 1_000 } });
    log.leader.commitSpeculative(index);
    assert.deepEqual(rowsOf(adopter, "SELECT id, owner FROM account ORDER BY id"), [
      [1, "eve"],
      [2, "ada"],
    ]);
    assert.deepEqual(rowsOf(adopter, "SELECT account FROM movement"), [[1]], "the cascade is in the payload");
    assert.deepEqual(rowsOf(adopter, "SELECT seq FROM sqlite_sequence"), [[3]]);
    const audit = "SELECT what FROM audit ORDER BY id";
    assert.deepEqual(
      rowsOf(adopter, audit),
      [["open eve"], ["open ada"], ["open bob"]],
      "the trigger fired once",
    );
    assert.deepEqual(rowsOf(adopter, audit), rowsOf(log.leader, audit));
    // A replica that applies the proposed payload ends up equal to the adopter.
    const replica = openStore(t, temporaryDirectory(t), "replica.db");
    log.catchUp(replica);
    replica.apply(index, payload);
    assert.equal(replica.contentHash(), adopter.contentHash());
    assert.deepEqual(adopter.lookupRequest("r-1"), log.leader.lookupRequest("r-1"));
  });

  test("nothing joins the adopted batch's transaction, and a rollback undoes it", (t) => {
    const { log, adopter } = twins(t);
    const index = log.nextIndex;
    const ran = log.leader.execute(index, work);
    log.leader.rollbackSpeculative();
    const before = adopter.contentHash();
    adopter.adoptBatch(index, ran);
    assert.throws(() => adopter.execute(logIndex(index + 1), work), AssertionError);
    assert.equal(adopter.isBoundedBatch([sql("INSERT INTO audit(what) VALUES (?)")]), false);
    assert.deepEqual(adopter.rollbackSpeculative(), [{ index }]);
    assert.equal(adopter.holdsAdoptedBatch, false);
    assert.equal(adopter.contentHash(), before);
    // The trigger survived the rollback: running the batch now fires it.
    adopter.execute(index, [sql("INSERT INTO account(owner, balance) VALUES ('cy', 1)")]);
    assert.deepEqual(rowsOf(adopter, "SELECT count(*) FROM audit"), [[1]]);
    adopter.commitSpeculative(index);
    assert.deepEqual(rowsOf(adopter, "SELECT count(*) FROM audit"), [[2]]);
  });

  test("a payload past the bound once the request op is added is PAYLOAD_TOO_LARGE and leaves nothing", (t) => {
    const directory = temporaryDirectory(t);
    const log = new TestLog(openStore(t, directory, "leader.db"));
    log.write([sql("CREATE TABLE blob(id INTEGER PRIMARY KEY, body BLOB)")]);
    const ran = log.leader.execute(log.nextIndex, [sql("INSERT INTO blob(body) VALUES (zeroblob(2000))")]);
    log.leader.rollbackSpeculative();
    const bound = ran.payload.length + 20;
    const adopter = openStore(t, directory, "adopter.db", { payloadBytesMax: bound });
    log.catchUp(adopter);
    const before = adopter.contentHash();
    const longResponse = (): string => "x".repeat(500);
    assert.throws(
      () =>
        adopter.adoptBatch(log.nextIndex, ran, {
          request: { id: "r-2", response: longResponse, loggedAtMs: 1_000 },
        }),
      (error) => isBatonError(error) && error.code === "PAYLOAD_TOO_LARGE",
    );
    assert.equal(adopter.speculativeCount, 0);
    assert.equal(adopter.contentHash(), before);
    assert.equal(adopter.lookupRequest("r-2"), null);
  });
});
