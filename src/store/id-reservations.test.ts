import assert from "node:assert/strict";
import { test } from "node:test";
import { logIndex } from "../types/ids.ts";
import { batch, openStore, rowsOf, sql, TestLog, temporaryDirectory } from "./test-support.ts";

test("id reservations replicate with their batch, and a term's first batch raises counters above them on every replica", (t) => {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  const replica = openStore(t, directory, "replica.db");
  log.write(batch("CREATE TABLE u(id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT)"));
  const first = log.write([sql("INSERT INTO u(who) VALUES ('a')")]);
  assert.deepEqual(first.counters, [{ name: "u", value: 1n }]);
  // A reservation rides in a batch without statements; reservations only rise.
  for (const value of [1000n, 10n]) {
    const index = log.nextIndex;
    const reserved = log.leader.execute(index, [], { reserveIds: [{ name: "u", value }] });
    log.leader.commitSpeculative(index);
    log.entries.push({ index, payload: reserved.payload });
  }
  log.catchUp(replica);
  assert.deepEqual(rowsOf(replica, "SELECT name, high FROM _baton_id_reservations"), [["u", 1000]]);

  // The replica becomes leader: its first batch starts above the reservation.
  const index = logIndex(replica.appliedIndex + 1);
  const raised = replica.execute(index, [sql("INSERT INTO u(who) VALUES ('b')")], {
    raiseCountersToReservations: true,
  });
  replica.commitSpeculative(index);
  assert.deepEqual(raised.reservations, [{ name: "u", value: 1000n }]);
  assert.equal(raised.results[0]?.lastInsertRowid, 1001);
  assert.deepEqual(raised.counters, [{ name: "u", value: 1001n }]);
  // The raise reaches the old leader, now a replica, with the batch: contents stay equal.
  log.leader.apply(index, raised.payload);
  assert.equal(log.leader.contentHash(), replica.contentHash());
});

test("a reservation for a table that was dropped does not resurrect a counter", (t) => {
  const directory = temporaryDirectory(t);
  const log = new TestLog(openStore(t, directory, "leader.db"));
  log.write(
    batch(
      "CREATE TABLE u(id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT)",
      "CREATE TABLE v(id INTEGER PRIMARY KEY AUTOINCREMENT)",
    ),
  );
  log.write([sql("INSERT INTO u(who) VALUES ('a')"), sql("INSERT INTO v DEFAULT VALUES")]);
  const index = log.nextIndex;
  log.leader.execute(index, [sql("DROP TABLE v")], {
    reserveIds: [
      { name: "u", value: 50n },
      { name: "v", value: 50n },
    ],
  });
  log.leader.commitSpeculative(index);
  const raised = log.leader.execute(log.nextIndex, [], { raiseCountersToReservations: true });
  assert.deepEqual(raised.counters, [{ name: "u", value: 50n }]);
});
