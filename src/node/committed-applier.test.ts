import assert from "node:assert/strict";
import { test } from "node:test";
import type { RaftCore } from "../consensus/index.ts";
import type { Store } from "../store/store.ts";
import { openStore, sql, temporaryDirectory } from "../store/test-support.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import {
  applyBatchBytesMax,
  applyStepBytesMin,
  applyStepMsMax,
  CommittedApplier,
} from "./committed-applier.ts";
import { IndexWaiters } from "./index-waiters.ts";
import type { LeaderSpeculation } from "./leader-speculation.ts";
import { manualTimers } from "./manual-timers.ts";

/** Entries made by a leader store: a table, then `count` inserts of `bytes` each. */
function entriesOf(leader: Store, count: number, bytes: number): LogEntry[] {
  const entries: LogEntry[] = [];
  const write = (index: number, text: string, params?: unknown[]) => {
    const { payload } = leader.execute(logIndex(index), [sql(text, params as never)]);
    leader.commitSpeculative(logIndex(index));
    entries.push({ index: logIndex(index), term: 1, kind: EntryKind.command, data: payload } as LogEntry);
  };
  write(1, "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
  for (let i = 0; i < count; i++)
    write(i + 2, "INSERT INTO t(body) VALUES (?)", [new Uint8Array(bytes).fill(i)]);
  return entries;
}

/** An applier of `entries` to `replica`, as a replica loop would hold it (`clock`: time the steps). */
function applierOf(
  replica: Store,
  entries: readonly LogEntry[],
  reportApplied: (index: LogIndex) => void,
  clock?: { monotonicMs(): number },
): CommittedApplier {
  return new CommittedApplier({
    store: replica,
    core: { entryAt: (index: number) => entries[index - 1] } as unknown as RaftCore,
    speculation: { count: 0 } as LeaderSpeculation,
    applied: new IndexWaiters("applied index", 0, manualTimers(), 10),
    observer: undefined,
    loop: { reportApplied, fail: (error) => assert.fail(error) },
    isWitness: () => false,
    holdApplies: () => false,
    ...(clock === undefined ? {} : { clock }),
  });
}

test("one apply step holds at most applyBatchBytesMax of payload beyond its first entry; the rest follows", (t) => {
  const directory = temporaryDirectory(t);
  const entries = entriesOf(openStore(t, directory, "leader.db"), 4, Math.floor(applyBatchBytesMax / 3));
  const replica = openStore(t, directory, "replica.db");
  const reported: LogIndex[] = [];
  const applier = applierOf(replica, entries, (index) => reported.push(index));
  const last = logIndex(entries.length);
  applier.applyCommitted(last);
  // The table and two inserts fit (under 1 MiB together); the third insert would pass the bound.
  assert.equal(replica.appliedIndex, 3);
  assert.deepEqual(reported, [3], "the loop hears of it and continues later");
  applier.applyCommitted(last);
  assert.equal(replica.appliedIndex, 5);
  assert.deepEqual(reported, [3, 5]);
});

test("apply steps start small and double while fast; a slow one makes the next ones smaller, in proportion", (t) => {
  const directory = temporaryDirectory(t);
  // An insert's entry is 50 KiB and a few bytes: 20 fit in 1 MiB, 5 in 256 KiB, 2 in 128 KiB.
  const insertBytes = 50 * 1024;
  const entries = entriesOf(openStore(t, directory, "leader.db"), 70, insertBytes);
  const replica = openStore(t, directory, "replica.db");
  // Each apply call takes `stepMs` by this clock, as a cold page cache would make it.
  let nowMs = 0;
  let stepMs = 0;
  const applyBatch = replica.applyBatch.bind(replica);
  replica.applyBatch = (batch) => {
    nowMs += stepMs;
    return applyBatch(batch);
  };
  const applier = applierOf(replica, entries, () => {}, { monotonicMs: () => nowMs });
  const last = logIndex(entries.length);
  const step = (ms: number): number => {
    stepMs = ms;
    const before = replica.appliedIndex;
    applier.applyCommitted(last);
    return replica.appliedIndex - before;
  };
  assert.equal(applyStepBytesMin, 16 * 1024);
  assert.equal(applyBatchBytesMax, 1 << 20);
  const fast = applyStepMsMax / 10;
  // 16 KiB (the table: the first entry always goes), 32 KiB, 64 KiB (one insert each), then 128 KiB
  // to 1 MiB, doubling after each fast step the bound cut, and no further.
  const grown = [step(fast), step(fast), step(fast), step(fast), step(fast), step(fast), step(fast)];
  assert.deepEqual(grown, [1, 1, 1, 2, 5, 10, 20]);
  // 1 MiB that takes 4x the time bound: the next step takes a quarter of the bytes.
  assert.equal(step(4 * applyStepMsMax), 20);
  assert.equal(step(fast), 5);
  assert.equal(step(fast), 6, "the rest, within the doubled bound");
  assert.equal(replica.appliedIndex, entries.length);
});
