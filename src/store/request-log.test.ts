import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
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
      request: {
        id: "req-1",
        response: (results) => JSON.stringify({ rows: results[0]?.rowsAffected }),
        loggedAtMs: 1_000,
      },
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
      request: { id: "a", response: () => "{}", loggedAtMs: 1_000 },
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

test("the request window's count is bounded on every replica, whatever indexes requests land on", () => {
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
        if (entry.payload === null) replica.apply(logIndex(entry.index), new Uint8Array(0));
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
        leader.apply(logIndex(index), new Uint8Array(0));
        committed.push({ index, payload: null });
      } else {
        const statements = [{ sql: "INSERT INTO t(v) VALUES (?)", params: [index] }];
        // One millisecond per index: far inside the default age bound, so only the count prunes.
        const request = { id: `req-${index}`, response: () => `{"index":${index}}`, loggedAtMs: index };
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
    first.execute(logIndex(1), statements, { request: { id: "a", response: () => "{}", loggedAtMs: 1 } });
    second.execute(logIndex(1), statements, { request: { id: "b", response: () => "{}", loggedAtMs: 1 } });
    first.commitSpeculative(logIndex(1));
    second.commitSpeculative(logIndex(1));
    assert.notEqual(first.contentHash(), second.contentHash());
  } finally {
    first.close();
    second.close();
  }
});

/** A leader and two replicas fed from its committed payloads. */
function replicatedStores(
  prefix: string,
  options: { requestWindowEntries?: number; requestWindowMs?: number },
) {
  const stores = ["leader", "a", "b"].map((name) =>
    Store.open({ path: path.join(root, `${prefix}-${name}.db`), ...options }),
  );
  const [leader, ...replicas] = stores as [Store, Store, Store];
  let index = 0;
  /** Runs one batch on the leader at the next index, commits it and applies it on both replicas. */
  const write = (request: { id: string; atMs: number } | null): void => {
    index++;
    const statements = [
      { sql: index === 1 ? "CREATE TABLE t(id INTEGER PRIMARY KEY, v)" : "INSERT INTO t(v) VALUES (1)" },
    ];
    const options =
      request === null
        ? {}
        : { request: { id: request.id, response: () => `{"id":"${request.id}"}`, loggedAtMs: request.atMs } };
    const { payload } = leader.execute(logIndex(index), statements, options);
    leader.commitSpeculative(logIndex(index));
    for (const replica of replicas) replica.apply(logIndex(index), payload);
  };
  const held = (store: Store): string[] =>
    store
      .query([{ sql: "SELECT request_id FROM _baton_requests ORDER BY entry_index" }])
      .results[0]!.rows.map((row) => String(row[0]));
  const close = (): void => {
    for (const store of stores) store.close();
  };
  return { stores, leader, replicas, write, held, close };
}

test("the request window's age drops requests logged at or before now minus the window, on every replica", () => {
  const windowMs = 60_000;
  const cluster = replicatedStores("age", { requestWindowMs: windowMs });
  try {
    cluster.write(null);
    cluster.write({ id: "at-0s", atMs: 1_000_000 });
    cluster.write({ id: "at-30s", atMs: 1_030_000 });
    cluster.write({ id: "at-45s", atMs: 1_045_000 });
    // 60 s after the first: it is exactly at the bound and goes; the others stay.
    cluster.write({ id: "at-60s", atMs: 1_060_000 });
    for (const store of cluster.stores) assert.deepEqual(cluster.held(store), ["at-30s", "at-45s", "at-60s"]);
    assert.equal(cluster.leader.lookupRequest("at-0s"), null, "a retry after the window is not recognised");
    assert.deepEqual(cluster.leader.lookupRequest("at-30s")?.response, '{"id":"at-30s"}');
    // Plain writes prune nothing: rows past their age stay until the next remembering batch.
    cluster.write(null);
    assert.deepEqual(cluster.held(cluster.leader), ["at-30s", "at-45s", "at-60s"]);
    // Long quiet, then one request: everything before it is past its age.
    cluster.write({ id: "at-10min", atMs: 1_600_000 });
    for (const store of cluster.stores) assert.deepEqual(cluster.held(store), ["at-10min"]);
    assert.equal(cluster.replicas[0].contentHash(), cluster.leader.contentHash());
    assert.equal(cluster.replicas[1].contentHash(), cluster.leader.contentHash());
  } finally {
    cluster.close();
  }
});

test("the age bound drops rows in index order, so a leader whose clock is behind keeps rows longer", () => {
  const cluster = replicatedStores("skew", { requestWindowMs: 60_000 });
  try {
    cluster.write(null);
    cluster.write({ id: "old-leader-1", atMs: 2_000_000 });
    // A new leader whose clock is 5 minutes behind remembers the next request.
    cluster.write({ id: "new-leader-1", atMs: 1_700_000 });
    cluster.write({ id: "old-leader-2", atMs: 2_030_000 });
    // 61 s after new-leader-1 by its own clock: new-leader-1 is past its age, but old-leader-1 before
    // it is not, so neither is dropped (rows go strictly in index order).
    cluster.write({ id: "new-leader-2", atMs: 1_761_000 });
    for (const store of cluster.stores)
      assert.deepEqual(cluster.held(store), ["old-leader-1", "new-leader-1", "old-leader-2", "new-leader-2"]);
    // Once the first row is past its age too, the run of old rows goes, up to the first young one.
    cluster.write({ id: "later", atMs: 2_061_000 });
    for (const store of cluster.stores)
      assert.deepEqual(cluster.held(store), ["old-leader-2", "new-leader-2", "later"]);
  } finally {
    cluster.close();
  }
});

test("both bounds apply: the count drops requests that are still young", () => {
  const cluster = replicatedStores("both", { requestWindowEntries: 3, requestWindowMs: 3_600_000 });
  try {
    cluster.write(null);
    for (let i = 2; i <= 10; i++) cluster.write({ id: `r${i}`, atMs: 1_000 + i });
    for (const store of cluster.stores) assert.deepEqual(cluster.held(store), ["r8", "r9", "r10"]);
  } finally {
    cluster.close();
  }
});

test("a request table from before the age bound gains its time column at open; its rows leave by count only", () => {
  const file = path.join(root, "old-format.db");
  const seed = Store.open({ path: file });
  seed.execute(logIndex(1), [{ sql: "CREATE TABLE t(id INTEGER PRIMARY KEY, v)" }]);
  seed.commitSpeculative(logIndex(1));
  seed.close();
  // Rebuild the table as an older build made it: no logged_at_ms, two remembered requests.
  const raw = new DatabaseSync(file);
  raw.exec(`DROP TABLE _baton_requests;
    CREATE TABLE _baton_requests(request_id TEXT PRIMARY KEY NOT NULL, entry_index INTEGER NOT NULL, response TEXT NOT NULL) WITHOUT ROWID;
    CREATE INDEX _baton_requests_by_index ON _baton_requests(entry_index);
    INSERT INTO _baton_requests VALUES ('legacy-a', 1, '{}'), ('legacy-b', 1, '{}');`);
  raw.close();
  const store = Store.open({ path: file, requestWindowEntries: 4, requestWindowMs: 1_000 });
  try {
    const columns = store.query([{ sql: "SELECT name FROM pragma_table_info('_baton_requests')" }]);
    assert.deepEqual(
      columns.results[0]!.rows.map((row) => row[0]),
      ["request_id", "entry_index", "response", "logged_at_ms"],
    );
    const remember = (index: number, atMs: number): void => {
      store.execute(logIndex(index), [{ sql: "INSERT INTO t(v) VALUES (1)" }], {
        request: { id: `r${index}`, response: () => "{}", loggedAtMs: atMs },
      });
      store.commitSpeculative(logIndex(index));
    };
    remember(2, 10_000_000); // Long after any age: the legacy rows (no time) stay all the same.
    assert.notEqual(store.lookupRequest("legacy-a"), null);
    remember(5, 10_000_100); // Index 5 - 4 = 1: the count bound drops them.
    assert.equal(store.lookupRequest("legacy-a"), null);
    assert.equal(store.lookupRequest("legacy-b"), null);
    assert.notEqual(store.lookupRequest("r2"), null);
  } finally {
    store.close();
  }
});
