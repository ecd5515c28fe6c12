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

test("the request window is bounded on every replica, whatever indexes requests land on", () => {
  const windowEntries = 8;
  const stores = ["window-leader.db", "window-a.db", "window-b.db"].map((name) =>
    Store.open({ path: path.join(root, name), requestWindowEntries: windowEntries }),
  );
  const [leader, ...replicas] = stores as [Store, Store, Store];
  const count = (store: Store): number =>
    Number(store.query([{ sql: "SELECT count(*) FROM _baton_requests" }]).results[0]?.rows[0]?.[0]);
  const committed: { index: number; payload: Uint8Array | null }[] = [];
  const catchUp = (): void => {
    for (const replica of replicas) {
      for (const entry of committed) {
        if (entry.index <= replica.appliedIndex) continue;
        if (entry.payload === null) replica.applyNoop(logIndex(entry.index));
        else replica.apply(logIndex(entry.index), entry.payload);
      }
    }
  };
  try {
    const setup = leader.execute(logIndex(1), [{ sql: "CREATE TABLE t(id INTEGER PRIMARY KEY, v)" }]);
    leader.commitSpeculative(logIndex(1));
    committed.push({ index: 1, payload: setup.payload });
    // Requests on a mix of indexes (never one that is a multiple of the window), between plain
    // writes and no-op entries, several batches committed at once.
    let pending: { index: number; payload: Uint8Array }[] = [];
    for (let index = 2; index <= 400; index++) {
      const kind = index % windowEntries === 0 ? "noop" : index % 3 === 0 ? "plain" : "request";
      if (kind === "noop") {
        if (pending.length > 0) leader.commitSpeculative(logIndex(pending.at(-1)!.index));
        committed.push(...pending);
        pending = [];
        leader.applyNoop(logIndex(index));
        committed.push({ index, payload: null });
      } else {
        const statements = [{ sql: "INSERT INTO t(v) VALUES (?)", params: [index] }];
        const request = { id: `req-${index}`, response: () => `{"index":${index}}` };
        const options = kind === "request" ? { request } : {};
        pending.push({ index, payload: leader.execute(logIndex(index), statements, options).payload });
      }
      if (pending.length === 0 || index % 5 !== 0) continue;
      leader.commitSpeculative(logIndex(index));
      committed.push(...pending);
      pending = [];
      catchUp();
      for (const store of stores) {
        assert.ok(count(store) <= windowEntries, `${count(store)} requests held at index ${index}`);
      }
      assert.equal(replicas[0].contentHash(), leader.contentHash());
      assert.equal(replicas[1].contentHash(), leader.contentHash());
    }
    assert.equal(leader.appliedIndex, 400);
    catchUp();
    assert.ok(count(leader) > 0, "recent requests are still remembered");
    for (const store of stores) {
      assert.deepEqual(store.lookupRequest("req-398"), { index: 398, response: '{"index":398}' });
      assert.equal(store.lookupRequest("req-389"), null, "requests older than the window are gone");
      assert.equal(store.lookupRequest("req-2"), null);
    }
  } finally {
    for (const store of stores) store.close();
  }
});

test("the content hash covers the remembered requests", () => {
  const first = Store.open({ path: path.join(root, "hash-a.db") });
  const second = Store.open({ path: path.join(root, "hash-b.db") });
  try {
    const statements = [{ sql: "CREATE TABLE t(id INTEGER PRIMARY KEY)" }];
    first.execute(logIndex(1), statements, { request: { id: "a", response: () => "{}" } });
    second.execute(logIndex(1), statements, { request: { id: "b", response: () => "{}" } });
    first.commitSpeculative(logIndex(1));
    second.commitSpeculative(logIndex(1));
    assert.notEqual(first.contentHash(), second.contentHash());
  } finally {
    first.close();
    second.close();
  }
});
