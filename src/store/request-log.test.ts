import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { logIndex } from "../types/ids.ts";
import { Store } from "./store.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-requests-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

test("a remembered request replicates with its batch and survives failover to a replica", () => {
  const leader = Store.open({ path: path.join(root, "leader.db") });
  const replica = Store.open({ path: path.join(root, "replica.db") });
  try {
    const setup = leader.execute(logIndex(1), [{ sql: "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)" }]);
    const write = leader.execute(logIndex(2), [{ sql: "INSERT INTO t(v) VALUES ('a')" }], {
      request: { id: "req-1", response: (results) => JSON.stringify({ rows: results[0]?.rowsAffected }) },
    });
    // The leader knows the request while its batch is still speculative.
    assert.deepEqual(leader.lookupRequest("req-1"), { index: 2, response: '{"rows":1}' });
    assert.equal(leader.lookupRequest("req-2"), null);
    leader.commitSpeculative(logIndex(2));
    replica.apply(logIndex(1), setup.payload);
    assert.equal(replica.lookupRequest("req-1"), null);
    replica.apply(logIndex(2), write.payload);
    assert.deepEqual(replica.lookupRequest("req-1"), { index: 2, response: '{"rows":1}' });
    assert.equal(leader.contentHash(), replica.contentHash());
  } finally {
    leader.close();
    replica.close();
  }
});

test("a rolled-back speculative batch forgets its request", () => {
  const leader = Store.open({ path: path.join(root, "rollback.db") });
  try {
    leader.execute(logIndex(1), [{ sql: "CREATE TABLE t(id INTEGER PRIMARY KEY)" }], {
      request: { id: "a", response: () => "{}" },
    });
    leader.rollbackSpeculative();
    assert.equal(leader.lookupRequest("a"), null);
  } finally {
    leader.close();
  }
});

test("client statements cannot touch the request table", () => {
  const leader = Store.open({ path: path.join(root, "guard.db") });
  try {
    assert.throws(
      () => leader.execute(logIndex(1), [{ sql: "DELETE FROM _baton_requests" }]),
      /FORBIDDEN|_baton_/,
    );
  } finally {
    leader.close();
  }
});
