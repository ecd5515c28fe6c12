/**
 * The in-memory log against a plain-array model: appends, suffix truncations, compactions, and the
 * questions replication asks (term at an index, up-to-date comparison, batch slicing).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import { type ClusterConfig, encodeClusterConfig } from "./cluster-config.ts";
import { entryOverheadBytes, RaftLog } from "./raft-log.ts";

const bootstrapConfig: ClusterConfig = { voters: [nodeId("n1")], learners: [] };

/** A distinct configuration per index, so the model can tell which entry the log's configuration came from. */
function configFor(index: number): ClusterConfig {
  return { voters: [nodeId("n1")], learners: [nodeId(`l${index}`)] };
}

type Operation =
  | { kind: "append"; termStep: number; config: boolean }
  | { kind: "truncate"; back: number }
  | { kind: "compact"; back: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    kind: fc.constant("append" as const),
    termStep: fc.integer({ min: 0, max: 2 }),
    config: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("truncate" as const), back: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ kind: fc.constant("compact" as const), back: fc.integer({ min: 0, max: 5 }) }),
);

/** The model's configuration as of `index`: its latest configuration entry at or below, else the snapshot's. */
function modelConfigAt(
  model: readonly { index: number; config: boolean }[],
  index: number,
  snapshotConfig: ClusterConfig,
): ClusterConfig {
  for (let i = index; i >= 1; i--) if (model[i - 1]?.config === true) return configFor(i);
  return snapshotConfig;
}

test("the log agrees with an array model under appends, truncations and compactions, configuration included", () => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
      const log = new RaftLog(logIndex(0), term(0), [], bootstrapConfig);
      const model: { index: number; term: number; config: boolean }[] = [];
      let snapshotIndex = 0;
      let snapshotConfig = bootstrapConfig;
      for (const op of operations) {
        const lastTerm = model.at(-1)?.term ?? 1;
        if (op.kind === "append") {
          const entry: LogEntry = {
            index: logIndex(model.length + 1),
            term: term(lastTerm + op.termStep),
            kind: op.config ? EntryKind.config : EntryKind.command,
            data: op.config ? encodeClusterConfig(configFor(model.length + 1)) : new Uint8Array(0),
          };
          log.append(entry);
          model.push({ index: entry.index, term: entry.term, config: op.config });
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
          const visible = model.map((entry) => ({
            ...entry,
            config: entry.index > snapshotIndex && entry.config,
          }));
          snapshotConfig = modelConfigAt(visible, at, snapshotConfig);
          log.compact(logIndex(at), term(model[at - 1]?.term ?? 0));
          snapshotIndex = at;
        }
        assert.equal(log.lastIndex, model.length);
        assert.equal(log.snapshotIndex, snapshotIndex);
        assert.deepEqual(log.snapshotConfig, snapshotConfig);
        const visible = model.map((entry) => ({
          ...entry,
          config: entry.index > snapshotIndex && entry.config,
        }));
        assert.deepEqual(log.config, modelConfigAt(visible, model.length, snapshotConfig));
        for (let index = snapshotIndex; index <= model.length; index++)
          assert.deepEqual(log.configAt(logIndex(index)), modelConfigAt(visible, index, snapshotConfig));
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
    bootstrapConfig,
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
    bootstrapConfig,
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
    bootstrapConfig,
  );
  assert.equal(log.lastIndexOfTerm(term(2), logIndex(6)), 5);
  assert.equal(log.lastIndexOfTerm(term(3), logIndex(6)), undefined);
  assert.equal(log.firstIndexOfTermRun(logIndex(5), logIndex(0)), 3);
  assert.equal(log.firstIndexOfTermRun(logIndex(5), logIndex(3)), 4);
});
