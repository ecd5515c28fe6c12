import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { SequenceCounters } from "./sequence-counters.ts";
import type { Store } from "./store.ts";
import { batch, openStore, rowsOf, TestLog, temporaryDirectory } from "./test-support.ts";

const schema = "CREATE TABLE ticket(id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT)";
/** Moves the counter and leaves no row behind: the batch's changeset is empty, only its counter op tells. */
const burnOneId = ["INSERT INTO ticket(note) VALUES ('burn')", "DELETE FROM ticket WHERE note = 'burn'"];

function nextIndex(store: Store): LogIndex {
  return logIndex(Math.max(store.appliedIndex, store.lastSpeculativeIndex ?? 0) + 1);
}

function leaderAndReplica(t: TestContext): { log: TestLog; replica: Store; sync: () => void } {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  const replica = openStore(t, directory, "replica.db");
  const sync = (): void => {
    log.catchUp(replica);
    assert.equal(replica.contentHash(), log.leader.contentHash());
  };
  return { log, replica, sync };
}

describe("AUTOINCREMENT counters read once per batch", () => {
  test("a leader batch reads sqlite_sequence once, however many statements it holds", (t) => {
    const { log, sync } = leaderAndReplica(t);
    log.write(batch(schema));
    const reads = t.mock.method(SequenceCounters.prototype, "read");
    const batches = 6;
    for (let b = 0; b < batches; b++) {
      log.write(
        batch(...Array.from({ length: 10 }, (_, i) => `INSERT INTO ticket(note) VALUES ('${b}.${i}')`)),
      );
    }
    // Each batch reads at its end; its start is the previous batch's end.
    assert.equal(reads.mock.callCount(), batches);
    sync();
  });

  test("counters stay right across failed batches, rollbacks, a lost transaction and applies", (t) => {
    const { log, replica, sync } = leaderAndReplica(t);
    const leader = log.leader;
    log.write(batch(schema, ...burnOneId));
    sync();
    // A batch that fails after moving the counter leaves no trace; the next one starts from the truth.
    assert.throws(
      () => leader.execute(nextIndex(leader), batch(...burnOneId, "INSERT INTO nowhere VALUES (1)")),
      (error) => isBatonError(error, "SQL_ERROR"),
    );
    log.write(batch(...burnOneId));
    sync();
    // Speculative batches discarded by a lost leadership.
    leader.execute(nextIndex(leader), batch(...burnOneId));
    leader.rollbackSpeculative();
    log.write(batch(...burnOneId));
    sync();
    // SQLite itself ending the transaction (OR ROLLBACK) takes earlier speculative batches with it.
    log.write(batch("INSERT INTO ticket(id, note) VALUES (100, 'kept')"));
    const lostIndex = nextIndex(leader);
    const lost = leader.execute(lostIndex, batch(...burnOneId));
    assert.throws(
      () => leader.execute(nextIndex(leader), batch("INSERT OR ROLLBACK INTO ticket(id) VALUES (100)")),
      (error) => isBatonError(error, "SQL_ERROR") && error.details.lostSpeculativeIndexes !== undefined,
    );
    leader.apply(lostIndex, lost.payload);
    log.entries.push({ index: lostIndex, payload: lost.payload });
    log.write(batch(...burnOneId));
    sync();
    // The replica takes over after applying, then hands leadership back: both agree on the next id.
    const onReplica = replica.execute(nextIndex(replica), batch(...burnOneId));
    replica.rollbackSpeculative();
    const next = log.write(batch("INSERT INTO ticket(note) VALUES ('next') RETURNING id"));
    sync();
    const promoted = replica.execute(
      nextIndex(replica),
      batch("INSERT INTO ticket(note) VALUES ('x') RETURNING id"),
    );
    assert.ok(onReplica.payload.length > 0);
    assert.deepEqual(next.results[0]?.rows, [[103]]);
    assert.deepEqual(promoted.results[0]?.rows, [[104]]);
    assert.deepEqual(rowsOf(replica, "SELECT seq FROM sqlite_sequence"), [[103]]);
  });
});
