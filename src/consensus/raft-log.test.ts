/**
 * The in-memory log against a plain-array model: appends, suffix truncations, compactions, and the
 * questions replication asks (term at an index, up-to-date comparison, batch slicing).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { logIndex, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { entryOverheadBytes, RaftLog } from "./raft-log.ts";

type Operation =
  | { kind: "append"; termStep: number }
  | { kind: "truncate"; back: number }
  | { kind: "compact"; back: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant("append" as const), termStep: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant("truncate" as const), back: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ kind: fc.constant("compact" as const), back: fc.integer({ min: 0, max: 5 }) }),
);

test("the log agrees with an array model under appends, truncations and compactions", () => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
      const log = new RaftLog(logIndex(0), term(0), []);
      const model: { index: number; term: number }[] = [];
      let snapshotIndex = 0;
      for (const op of operations) {
        const lastTerm = model.at(-1)?.term ?? 1;
        if (op.kind === "append") {
          const entry: LogEntry = {
            index: logIndex(model.length + 1),
            term: term(lastTerm + op.termStep),
            kind: EntryKind.command,
            data: new Uint8Array(0),
          };
          log.append(entry);
          model.push({ index: entry.index, term: entry.term });
        } else if (
          op.kind === "truncate" &&
          model.length - op.back >= snapshotIndex &&
          op.back <= model.length
        ) {
          const dropped = log.truncateAfter(logIndex(model.length - op.back));
          assert.equal(dropped.length, op.back);
          model.length -= op.back;
        } else if (op.kind === "compact" && model.length - op.back > snapshotIndex) {
          const at = model.length - op.back;
          log.compact(logIndex(at), term(model[at - 1]?.term ?? 0));
          snapshotIndex = at;
        }
        assert.equal(log.lastIndex, model.length);
        assert.equal(log.snapshotIndex, snapshotIndex);
        for (let index = 0; index <= model.length + 1; index++) {
          const expected =
            index === 0 && snapshotIndex === 0
              ? 0
              : index < snapshotIndex
                ? undefined
                : model[index - 1]?.term;
          assert.equal(log.termAt(index), expected, `term at ${index}`);
        }
      }
    }),
  );
});

test("isUpToDate compares last term first, then length (Raft §5.4.1)", () => {
  const log = new RaftLog(
    logIndex(0),
    term(0),
    [1, 1, 2].map((t, i) => ({
      index: logIndex(i + 1),
      term: term(t),
      kind: EntryKind.command,
      data: new Uint8Array(0),
    })),
  );
  assert.equal(log.isUpToDate(logIndex(9), term(1)), false);
  assert.equal(log.isUpToDate(logIndex(2), term(2)), false);
  assert.equal(log.isUpToDate(logIndex(3), term(2)), true);
  assert.equal(log.isUpToDate(logIndex(1), term(3)), true);
});

test("slice respects both batch bounds and always moves at least one entry", () => {
  const data = new Uint8Array(100);
  const log = new RaftLog(
    logIndex(0),
    term(0),
    [1, 2, 3, 4].map((i) => ({ index: logIndex(i), term: term(1), kind: EntryKind.command, data })),
  );
  assert.equal(log.slice(logIndex(1), logIndex(4), 3, 1_000_000).length, 3);
  assert.equal(log.slice(logIndex(1), logIndex(4), 10, 2 * (100 + entryOverheadBytes)).length, 2);
  assert.equal(log.slice(logIndex(1), logIndex(4), 10, 1).length, 1);
});

test("the conflict hint helpers find a term's last index and the first index of a run", () => {
  const terms = [1, 1, 2, 2, 2, 4];
  const log = new RaftLog(
    logIndex(0),
    term(0),
    terms.map((t, i) => ({
      index: logIndex(i + 1),
      term: term(t),
      kind: EntryKind.command,
      data: new Uint8Array(0),
    })),
  );
  assert.equal(log.lastIndexOfTerm(term(2), logIndex(6)), 5);
  assert.equal(log.lastIndexOfTerm(term(3), logIndex(6)), undefined);
  assert.equal(log.firstIndexOfTermRun(logIndex(5), logIndex(0)), 3);
  assert.equal(log.firstIndexOfTermRun(logIndex(5), logIndex(3)), 4);
});
