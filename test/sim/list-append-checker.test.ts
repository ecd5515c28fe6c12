/**
 * Tests of the list-append checker. Each rule gets a small hand-made history that breaks that rule
 * and no other, so every check is shown to fire when it should and to stay quiet otherwise. A
 * fast-check property then generates histories from a sequential model (every operation takes effect
 * at a linearization point inside its real-time interval) and expects no violation, and expects one
 * corrupted read to be caught by the rule it breaks.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Consistency, Durability } from "../../src/api/api-types.ts";
import { AssertionError } from "../../src/lib/assert.ts";
import {
  type AppendOp,
  checkListAppend,
  type ListAppendOp,
  type ListAppendResult,
  type ReadOp,
  violationsPerKindMax,
} from "./list-append-checker.ts";

function append(fields: Partial<AppendOp> & Pick<AppendOp, "value">): AppendOp {
  return {
    kind: "append",
    client: 1,
    key: 0,
    durability: "majority",
    invokedAt: 0,
    completedAt: 1,
    outcome: "ok",
    ...fields,
  };
}

function read(fields: Partial<ReadOp> & Pick<ReadOp, "values">): ReadOp {
  return {
    kind: "read",
    client: 2,
    key: 0,
    consistency: "linearizable",
    node: "n1",
    invokedAt: 10,
    completedAt: 11,
    outcome: "ok",
    ...fields,
  };
}

function finalOf(...lists: (readonly number[])[]): Map<number, readonly number[]> {
  return new Map(lists.map((list, key) => [key, list]));
}

function kindsOf(result: ListAppendResult): string[] {
  return result.violations.map((violation) => violation.kind);
}

describe("list-append checker: each rule fires alone", () => {
  const base = [append({ value: 1 }), append({ value: 2, invokedAt: 2, completedAt: 3 })];

  test("a valid history passes and is counted", () => {
    const history = [
      ...base,
      read({ values: [1], invokedAt: 2 }),
      read({ values: [1, 2], invokedAt: 12, completedAt: 13 }),
    ];
    const result = checkListAppend(history, finalOf([1, 2]));
    assert.deepEqual(result.violations, []);
    assert.equal(result.reads, 2);
    assert.equal(result.appends, 2);
    assert.deepEqual(result.lost.majority, { acknowledged: 2, lost: 0 });
  });

  test("duplicate: a value applied twice is reported once, though seen in a read and the final list", () => {
    const history = [...base, read({ values: [1, 2, 1] })];
    const result = checkListAppend(history, finalOf([1, 2, 1]));
    assert.deepEqual(kindsOf(result), ["duplicate"]);
  });

  test("duplicate: retried attempts of one value applied once are fine", () => {
    const retried = [
      append({ value: 1, outcome: "unknown", completedAt: 5 }),
      append({ value: 1, invokedAt: 6, completedAt: 7 }),
    ];
    const result = checkListAppend([...retried, read({ values: [1] })], finalOf([1]));
    assert.deepEqual(result.violations, []);
    assert.deepEqual(result.lost.majority, { acknowledged: 1, lost: 0 });
  });

  test("phantom: a value never appended", () => {
    const result = checkListAppend([...base, read({ values: [1, 2, 9] })], finalOf([1, 2, 9]));
    assert.deepEqual(kindsOf(result), ["phantom"]);
  });

  test("phantom: a value whose every attempt failed", () => {
    const failed = [
      append({ value: 3, outcome: "failed" }),
      append({ value: 3, outcome: "failed", invokedAt: 4, completedAt: 5 }),
    ];
    const result = checkListAppend([...base, ...failed], finalOf([1, 2, 3]));
    assert.deepEqual(kindsOf(result), ["phantom"]);
  });

  test("phantom: a value appended to another key", () => {
    const result = checkListAppend([...base, append({ value: 3, key: 1 })], finalOf([1, 2, 3], [3]));
    assert.deepEqual(kindsOf(result), ["phantom"]);
  });

  test("phantom: an unknown attempt may have applied its value", () => {
    const unknown = append({ value: 3, outcome: "unknown", completedAt: null });
    assert.deepEqual(checkListAppend([...base, unknown], finalOf([1, 2, 3])).violations, []);
  });

  test("future-read: a read that completed before its value was first appended", () => {
    const late = append({ value: 3, invokedAt: 20, completedAt: 21 });
    const history = [...base, late, read({ values: [1, 2, 3], consistency: "any" })];
    assert.deepEqual(kindsOf(checkListAppend(history, finalOf([1, 2, 3]))), ["future-read"]);
  });

  test("not-prefix: a read at any consistency that departs from the final list", () => {
    for (const consistency of ["linearizable", "leader", "any"] as const) {
      const history = [...base, read({ values: [2, 1], consistency })];
      assert.deepEqual(kindsOf(checkListAppend(history, finalOf([1, 2]))), ["not-prefix"], consistency);
    }
  });

  test("lost-write: a value acknowledged at majority or all missing from the final list", () => {
    for (const durability of ["majority", "all"] as const) {
      const result = checkListAppend([...base, append({ value: 3, durability })], finalOf([1, 2]));
      assert.deepEqual(kindsOf(result), ["lost-write"], durability);
      assert.deepEqual(result.lost[durability], { acknowledged: durability === "majority" ? 3 : 1, lost: 1 });
    }
  });

  test("lost-write: values acknowledged at local or one are tallied, not reported", () => {
    const weak = [append({ value: 3, durability: "local" }), append({ value: 4, durability: "one" })];
    const unacknowledged = append({ value: 5, outcome: "unknown" });
    const result = checkListAppend([...base, ...weak, unacknowledged], finalOf([1, 2]));
    assert.deepEqual(result.violations, []);
    assert.deepEqual(result.lost, {
      local: { acknowledged: 1, lost: 1 },
      one: { acknowledged: 1, lost: 1 },
      majority: { acknowledged: 2, lost: 0 },
      all: { acknowledged: 0, lost: 0 },
    });
  });

  test("stale-read: a linearizable read shorter than one that completed before it was invoked", () => {
    const unacknowledged = [
      append({ value: 1, outcome: "unknown" }),
      append({ value: 2, outcome: "unknown" }),
    ];
    const first = read({ values: [1, 2], invokedAt: 10, completedAt: 12 });
    const history = [...unacknowledged, first, read({ values: [1], invokedAt: 13, completedAt: 14 })];
    assert.deepEqual(kindsOf(checkListAppend(history, finalOf([1, 2]))), ["stale-read"]);
  });

  test("stale-read: no order between reads in the same tick, or for weaker consistency", () => {
    const first = read({ values: [1, 2], invokedAt: 10, completedAt: 12 });
    const sameTick = read({ values: [1], invokedAt: 12, completedAt: 14 });
    const weak = read({ values: [1], invokedAt: 13, completedAt: 14, consistency: "leader" });
    const unacknowledged = [
      append({ value: 1, outcome: "unknown" }),
      append({ value: 2, outcome: "unknown" }),
    ];
    const result = checkListAppend([...unacknowledged, first, sameTick, weak], finalOf([1, 2]));
    assert.deepEqual(result.violations, []);
  });

  test("stale-read: a value once seen by a linearizable read stays seen, even via a shorter earlier read", () => {
    const unacknowledged = [
      append({ value: 1, outcome: "unknown" }),
      append({ value: 2, outcome: "unknown" }),
    ];
    const sawOne = read({ values: [1], invokedAt: 5, completedAt: 10 });
    const concurrentLonger = read({ values: [1, 2], invokedAt: 6, completedAt: 30 });
    const later = read({ values: [], invokedAt: 15, completedAt: 16 });
    const history = [...unacknowledged, sawOne, concurrentLonger, later];
    const result = checkListAppend(history, finalOf([1, 2]));
    assert.deepEqual(kindsOf(result), ["stale-read"]);
    assert.match(result.violations[0]!.message, /fewer than the 1 required/);
  });

  test("missed-write: a linearizable read invoked after a majority acknowledgement lacks the value", () => {
    const history = [...base, read({ values: [1], invokedAt: 4, completedAt: 5 })];
    assert.deepEqual(kindsOf(checkListAppend(history, finalOf([1, 2]))), ["missed-write"]);
  });

  test("missed-write: not required in the acknowledgement's tick, at weak durability or consistency", () => {
    const weak = append({ value: 3, durability: "one", invokedAt: 2, completedAt: 3 });
    const history = [
      ...base,
      weak,
      read({ values: [1], invokedAt: 3, completedAt: 5 }),
      read({ values: [1, 2], invokedAt: 4, completedAt: 5 }),
      read({ values: [1], invokedAt: 6, completedAt: 7, consistency: "any" }),
    ];
    assert.deepEqual(checkListAppend(history, finalOf([1, 2, 3])).violations, []);
  });

  test("a malformed history is a harness bug and stops the check", () => {
    assert.throws(() => checkListAppend([read({ values: null })], finalOf([])), AssertionError);
    assert.throws(
      () => checkListAppend([append({ value: 1, completedAt: -1 })], finalOf([1])),
      AssertionError,
    );
  });

  test(`at most ${violationsPerKindMax} violations of one kind are listed, the rest counted`, () => {
    const reads = Array.from({ length: violationsPerKindMax + 5 }, () =>
      read({ values: [2], consistency: "any" }),
    );
    const result = checkListAppend([...base, ...reads], finalOf([1, 2]));
    assert.equal(result.violations.length, violationsPerKindMax + 1);
    assert.match(result.violations.at(-1)!.message, /^5 more not-prefix violations not listed$/);
  });
});

// A sequential model of the database. Operations take effect one by one at linearization points
// `linearizationGapTicks` apart; each one's real-time interval surrounds its point, so intervals of
// neighbouring operations overlap and the checker sees genuine concurrency.

const keyCount = 3;
const linearizationGapTicks = 10;
const slackTicksMax = 25;
/** Earlier attempts of a retried write each take `retryGapTicks - 1` ticks and end before the next starts. */
const retryGapTicks = 6;

type AppendFate = "ok" | "ok-lost" | "unknown-applied" | "unknown-lost" | "failed";
type AppendSpec = {
  kind: "append";
  key: number;
  fate: AppendFate;
  durability: Durability;
  retries: number;
  beforeTicks: number;
  afterTicks: number;
  neverCompletes: boolean;
};
type ReadSpec = {
  kind: "read";
  key: number;
  consistency: Consistency;
  outcome: "ok" | "unknown" | "failed";
  staleBy: number;
  beforeTicks: number;
  afterTicks: number;
};
type Spec = AppendSpec | ReadSpec;

const slack = fc.integer({ min: 0, max: slackTicksMax });
const appendSpec: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constant("append" as const),
  key: fc.integer({ min: 0, max: keyCount - 1 }),
  fate: fc.constantFrom<AppendFate>("ok", "ok", "ok", "ok-lost", "unknown-applied", "unknown-lost", "failed"),
  durability: fc.constantFrom<Durability>("local", "one", "majority", "all"),
  retries: fc.integer({ min: 0, max: 2 }),
  beforeTicks: slack,
  afterTicks: slack,
  neverCompletes: fc.boolean(),
});
const readSpec: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constant("read" as const),
  key: fc.integer({ min: 0, max: keyCount - 1 }),
  consistency: fc.constantFrom<Consistency>("linearizable", "linearizable", "leader", "any"),
  outcome: fc.constantFrom(
    "ok" as const,
    "ok" as const,
    "ok" as const,
    "unknown" as const,
    "failed" as const,
  ),
  staleBy: fc.integer({ min: 0, max: 3 }),
  beforeTicks: slack,
  afterTicks: slack,
});
const specs = fc.array(fc.oneof(appendSpec, readSpec), { minLength: 20, maxLength: 80 });

type ModelRun = {
  history: ListAppendOp[];
  finalLists: Map<number, readonly number[]>;
  lostByDurability: Record<Durability, number>;
};

function runModel(steps: readonly Spec[]): ModelRun {
  const run: ModelRun = {
    history: [],
    finalLists: new Map(Array.from({ length: keyCount }, (_, key) => [key, [] as number[]])),
    lostByDurability: { local: 0, one: 0, majority: 0, all: 0 },
  };
  steps.forEach((step, position) => {
    const pointTick = 100 + position * linearizationGapTicks;
    if (step.kind === "append") modelAppend(run, step, position + 1, pointTick);
    else modelRead(run, step, pointTick);
  });
  return run;
}

/** Appends `value` at `pointTick` if its fate applies it; earlier attempts timed out or were refused. */
function modelAppend(run: ModelRun, step: AppendSpec, value: number, pointTick: number): void {
  const list = run.finalLists.get(step.key) as number[];
  if (step.fate === "ok" || step.fate === "unknown-applied") list.push(value);
  const durable = step.durability === "majority" || step.durability === "all";
  const durability: Durability = step.fate === "ok-lost" && durable ? "one" : step.durability;
  if (step.fate === "ok-lost") run.lostByDurability[durability]++;
  const outcome =
    step.fate === "ok" || step.fate === "ok-lost" ? "ok" : step.fate === "failed" ? "failed" : "unknown";
  const invokedAt = pointTick - step.beforeTicks;
  const open = outcome === "unknown" && step.neverCompletes;
  const last = { client: value, key: step.key, value, durability, invokedAt, outcome } as const;
  run.history.push(append({ ...last, completedAt: open ? null : pointTick + step.afterTicks }));
  for (let attempt = 1; attempt <= step.retries; attempt++) {
    const earlierInvokedAt = invokedAt - retryGapTicks * attempt;
    const earlierOutcome = step.fate === "failed" ? "failed" : "unknown";
    run.history.push(
      append({
        ...last,
        invokedAt: earlierInvokedAt,
        completedAt: earlierInvokedAt + retryGapTicks - 1,
        outcome: earlierOutcome,
      }),
    );
  }
}

/** Reads the model at `pointTick`; weaker reads may see an older state, which is a shorter prefix. */
function modelRead(run: ModelRun, step: ReadSpec, pointTick: number): void {
  const list = run.finalLists.get(step.key)!;
  const staleBy = step.consistency === "linearizable" ? 0 : step.staleBy;
  const values = step.outcome === "ok" ? list.slice(0, Math.max(0, list.length - staleBy)) : null;
  const completedAt = step.outcome === "unknown" ? null : pointTick + step.afterTicks;
  const invokedAt = pointTick - step.beforeTicks;
  const fields = { key: step.key, consistency: step.consistency, outcome: step.outcome, invokedAt, values };
  run.history.push(read({ ...fields, client: 1000 + pointTick, completedAt }));
}

/** Test-side oracle, pairwise on purpose: must this read contain its last value, by real time alone? */
function lastValueRequired(history: readonly ListAppendOp[], target: ReadOp): boolean {
  const last = target.values!.at(-1)!;
  return history.some((op) => {
    if (op.key !== target.key || op.completedAt === null || op.completedAt >= target.invokedAt) return false;
    if (op.kind === "append")
      return op.value === last && op.outcome === "ok" && op.durability !== "local" && op.durability !== "one";
    return op.outcome === "ok" && op.consistency === "linearizable" && op.values!.includes(last);
  });
}

function replaced(history: readonly ListAppendOp[], index: number, op: ListAppendOp): ListAppendOp[] {
  return history.map((original, position) => (position === index ? op : original));
}

describe("list-append checker: histories from a sequential model", () => {
  test("model histories have no violations and the expected tallies", () => {
    fc.assert(
      fc.property(specs, (steps) => {
        const run = runModel(steps);
        const result = checkListAppend(run.history, run.finalLists);
        assert.deepEqual(result.violations, []);
        for (const level of ["local", "one", "majority", "all"] as const)
          assert.equal(result.lost[level].lost, run.lostByDurability[level], level);
        assert.equal(result.reads + result.appends, run.history.length);
      }),
      { numRuns: 300 },
    );
  });

  test("dropping the last value of a linearizable read that real time says must hold it is caught", () => {
    let corrupted = 0;
    fc.assert(
      fc.property(specs, fc.nat(), (steps, pick) => {
        const { history, finalLists } = runModel(steps);
        const candidates = history.flatMap((op, index) =>
          op.kind === "read" &&
          op.consistency === "linearizable" &&
          (op.values?.length ?? 0) > 0 &&
          lastValueRequired(history, op)
            ? [index]
            : [],
        );
        if (candidates.length === 0) return;
        corrupted++;
        const index = candidates[pick % candidates.length]!;
        const target = history[index] as ReadOp;
        const corrupt = replaced(history, index, { ...target, values: target.values!.slice(0, -1) });
        const kinds = new Set(kindsOf(checkListAppend(corrupt, finalLists)));
        assert.ok(kinds.size > 0, "the dropped value went unnoticed");
        for (const kind of kinds) assert.ok(kind === "stale-read" || kind === "missed-write", kind);
      }),
      { numRuns: 300 },
    );
    assert.ok(corrupted > 100, `only ${corrupted} of 300 runs had a read to corrupt`);
  });

  test("swapping two values of a read is caught as not a prefix", () => {
    let corrupted = 0;
    fc.assert(
      fc.property(specs, fc.nat(), fc.nat(), (steps, pick, at) => {
        const { history, finalLists } = runModel(steps);
        const candidates = history.flatMap((op, index) =>
          op.kind === "read" && (op.values?.length ?? 0) >= 2 ? [index] : [],
        );
        if (candidates.length === 0) return;
        corrupted++;
        const index = candidates[pick % candidates.length]!;
        const values = [...(history[index] as ReadOp).values!];
        const swapAt = at % (values.length - 1);
        [values[swapAt], values[swapAt + 1]] = [values[swapAt + 1]!, values[swapAt]!];
        const corrupt = replaced(history, index, { ...(history[index] as ReadOp), values });
        assert.deepEqual(kindsOf(checkListAppend(corrupt, finalLists)), ["not-prefix"]);
      }),
      { numRuns: 300 },
    );
    assert.ok(corrupted > 100, `only ${corrupted} of 300 runs had a read to corrupt`);
  });

  test("a model history of 10,000 operations passes", () => {
    const [steps] = fc.sample(
      fc.array(fc.oneof(appendSpec, readSpec), { minLength: 10_000, maxLength: 10_000 }),
      {
        seed: 42,
        numRuns: 1,
      },
    );
    const run = runModel(steps!);
    const startedMs = performance.now();
    const result = checkListAppend(run.history, run.finalLists);
    const elapsedMs = performance.now() - startedMs;
    assert.deepEqual(result.violations, []);
    assert.ok(
      result.reads > 4000 && result.appends > 4000,
      `${result.reads} reads, ${result.appends} appends`,
    );
    // Generous on purpose: a pairwise check would still finish, but this catches a pathological one.
    assert.ok(elapsedMs < 5000, `checking took ${elapsedMs} ms`);
  });
});
