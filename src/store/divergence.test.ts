/**
 * The divergence check (DESIGN.md §2): after randomized workloads, every replica's content hash
 * equals the leader's at the same index.
 *
 * A leader store runs random batches over random schemas (keys of every kind, UNIQUE columns,
 * foreign keys with CASCADE and SET NULL, AUTOINCREMENT, nondeterministic defaults and CHECKs,
 * triggers that call random() and datetime('now'), DDL mid-stream: ADD/DROP COLUMN, CREATE/DROP
 * INDEX, DROP/CREATE TABLE, triggers) with random speculative commit points, interleaved no-op
 * entries, lost leadership (rollback), statements that fail (rolling their batch back) and an
 * occasional `INSERT OR ROLLBACK` that takes the speculative transaction with it. Replica A applies
 * every committed entry as it commits; replica B lags, is closed and reopened, and is re-fed an
 * entry it already applied. At every commit A must equal the leader; at the end all three must.
 * Runs: BATON_PROPERTY_RUNS (default 60, about two seconds).
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, type TestContext, test } from "node:test";
import fc from "fast-check";
import { isBatonError } from "../lib/errors.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { Store } from "./store.ts";
import { batch, temporaryDirectory } from "./test-support.ts";

const propertyRuns = Number(process.env.BATON_PROPERTY_RUNS ?? 60);
const tables = ["t0", "t1", "t2"] as const;
type Table = (typeof tables)[number];

const keyKinds = ["integer", "autoincrement", "text", "composite"] as const;
type KeyKind = (typeof keyKinds)[number];
type TableDesign = { key: KeyKind; unique: boolean; randomCheck: boolean; onDelete: "CASCADE" | "SET NULL" };

function createTable(table: Table, design: TableDesign, parentKey: KeyKind | null): string {
  const key = {
    integer: "id INTEGER PRIMARY KEY",
    autoincrement: "id INTEGER PRIMARY KEY AUTOINCREMENT",
    text: "id TEXT PRIMARY KEY NOT NULL",
    composite: "id INTEGER NOT NULL, k INTEGER NOT NULL DEFAULT 0",
  }[design.key];
  const columns = [
    key,
    `a INTEGER${design.randomCheck ? " CHECK (a IS NULL OR abs(random()) % 3 <> 0)" : " CHECK (a IS NULL OR a > -1000)"}`,
    `u INTEGER${design.unique ? " UNIQUE" : ""}`,
    "r INTEGER DEFAULT (random())",
    "at TEXT DEFAULT CURRENT_TIMESTAMP",
  ];
  const index = tables.indexOf(table);
  if (index > 0 && parentKey !== "composite")
    columns.push(`p INTEGER REFERENCES ${tables[index - 1]}(id) ON DELETE ${design.onDelete}`);
  if (design.key === "composite") columns.push("PRIMARY KEY (id, k)");
  return `CREATE TABLE IF NOT EXISTS ${table}(${columns.join(", ")})${design.key === "composite" ? " WITHOUT ROWID" : ""}`;
}

const triggerSql = (table: Table, kind: number): string =>
  [
    `CREATE TRIGGER IF NOT EXISTS ${table}_ins AFTER INSERT ON ${table} BEGIN INSERT INTO lg(msg, at, r) VALUES ('${table} ' || new.id, datetime('now'), random()); END`,
    `CREATE TRIGGER IF NOT EXISTS ${table}_upd AFTER UPDATE OF a ON ${table} BEGIN UPDATE lg SET r = random() WHERE id = (SELECT max(id) FROM lg); END`,
    `CREATE TRIGGER IF NOT EXISTS ${table}_del BEFORE DELETE ON ${table} BEGIN INSERT INTO lg(msg, r) VALUES ('gone ' || old.id, random()); DELETE FROM lg WHERE id < (SELECT max(id) - 15 FROM lg); END`,
    `DROP TRIGGER IF EXISTS ${table}_ins`,
  ][kind]!;

const designArbitrary: fc.Arbitrary<TableDesign> = fc.record(
  {
    key: fc.constantFrom(...keyKinds),
    unique: fc.boolean(),
    randomCheck: fc.boolean(),
    onDelete: fc.constantFrom("CASCADE" as const, "SET NULL" as const),
  },
  { noNullPrototype: true },
);

const small = fc.integer({ min: 1, max: 9 });
const table = fc.constantFrom(...tables);

function statementArbitrary(designs: readonly TableDesign[]): fc.Arbitrary<string> {
  const dml = fc.oneof(
    fc
      .tuple(table, small, small, small)
      .map(([t, id, a, u]) => `INSERT INTO ${t}(id, a, u) VALUES (${id}, ${a}, ${u})`),
    fc.tuple(table, small, small).map(([t, a, u]) => `INSERT INTO ${t}(a, u) VALUES (${a}, ${u})`),
    fc
      .tuple(fc.constantFrom("t1", "t2"), small, small, small)
      .map(([t, id, a, p]) => `INSERT INTO ${t}(id, a, p) VALUES (${id}, ${a}, ${p})`),
    fc
      .tuple(table, small, small)
      .map(
        ([t, id, a]) =>
          `INSERT INTO ${t}(id, a) VALUES (${id}, ${a}) ON CONFLICT(id) DO UPDATE SET a = a + excluded.a`,
      ),
    fc
      .tuple(table, small, small, small)
      .map(([t, id, a, u]) => `INSERT OR REPLACE INTO ${t}(id, a, u) VALUES (${id}, ${a}, ${u})`),
    fc.tuple(table, small).map(([t, m]) => `UPDATE ${t} SET a = a + 1 WHERE id % ${m} = 0`),
    fc.tuple(table, small, small).map(([t, u, id]) => `UPDATE ${t} SET u = ${u} WHERE id = ${id}`),
    fc
      .tuple(table, small)
      .map(([t, a]) => `UPDATE ${t} SET r = random(), at = datetime('now', 'subsec') WHERE a > ${a}`),
    fc.tuple(table, small).map(([t, id]) => `UPDATE ${t} SET id = id + 10 WHERE id = ${id}`),
    fc.tuple(table, small).map(([t, id]) => `DELETE FROM ${t} WHERE id = ${id}`),
    fc.tuple(table, small).map(([t, a]) => `DELETE FROM ${t} WHERE a > ${a}`),
    table.map((t) => `DELETE FROM ${t} WHERE id = (SELECT max(id) FROM ${t})`),
    table.map((t) => `SELECT count(*), sum(a) FROM ${t}`),
  );
  const ddl = fc.oneof(
    table.map((t) => `ALTER TABLE ${t} ADD COLUMN c INTEGER DEFAULT 3`),
    table.map((t) => `ALTER TABLE ${t} DROP COLUMN c`),
    table.map((t) => `UPDATE ${t} SET c = coalesce(c, 0) + 1`),
    table.map((t) => `CREATE INDEX IF NOT EXISTS ${t}_a ON ${t}(a)`),
    table.map((t) => `DROP INDEX IF EXISTS ${t}_a`),
    table.map((t) => `DROP TABLE IF EXISTS ${t}`),
    table.map((t) =>
      createTable(t, designs[tables.indexOf(t)]!, designs[tables.indexOf(t) - 1]?.key ?? null),
    ),
    fc.tuple(table, fc.integer({ min: 0, max: 3 })).map(([t, kind]) => triggerSql(t, kind)),
  );
  const failing = fc.oneof(
    fc.constant("INSERT INTO missing VALUES (1)"),
    fc
      .tuple(table, small, small)
      .map(([t, id, a]) => `INSERT OR ROLLBACK INTO ${t}(id, a) VALUES (${id}, ${a})`),
  );
  return fc.oneof(
    { weight: 30, arbitrary: dml },
    { weight: 6, arbitrary: ddl },
    { weight: 1, arbitrary: failing },
  );
}

type Step =
  | { readonly kind: "batch"; readonly statements: readonly string[] }
  | { readonly kind: "commit" | "noop" | "rollback" | "reopen" };

function stepsArbitrary(designs: readonly TableDesign[]): fc.Arbitrary<Step[]> {
  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 10,
      arbitrary: fc
        .array(statementArbitrary(designs), { minLength: 1, maxLength: 4 })
        .map((statements) => ({ kind: "batch" as const, statements })),
    },
    { weight: 4, arbitrary: fc.constant({ kind: "commit" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "noop" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "rollback" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
  );
  return fc.array(step, { minLength: 5, maxLength: 40 });
}

/** The harness: the leader's log, its commit point and the two replicas. */
class Cluster {
  readonly log: { index: LogIndex; payload: Uint8Array }[] = [];
  readonly leader: Store;
  readonly replicaA: Store;
  replicaB: Store;
  readonly #directory: string;

  constructor(directory: string) {
    this.#directory = directory;
    this.leader = Store.open({ path: path.join(directory, "leader.db") });
    this.replicaA = Store.open({ path: path.join(directory, "a.db") });
    this.replicaB = Store.open({ path: path.join(directory, "b.db") });
  }

  get nextIndex(): LogIndex {
    return logIndex(this.log.length + 1);
  }

  runBatch(statements: readonly string[]): void {
    const index = this.nextIndex;
    try {
      const { payload } = this.leader.execute(index, batch(...statements));
      this.log.push({ index, payload: payload.slice() });
    } catch (error) {
      assert.ok(isBatonError(error), `unexpected failure: ${String(error)}`);
      assert.ok(
        ["SQL_ERROR", "FORBIDDEN_STATEMENT", "OVERLOADED"].includes(error.code),
        `${error.code}: ${error.message}`,
      );
      // While the leader must replay lost entries, another leader's entry stands in for the batch.
      if (error.code === "OVERLOADED") this.log.push({ index, payload: new Uint8Array() });
    }
  }

  /** Raft commits the whole log: the leader commits or replays, replica A catches up, and must match. */
  commit(): void {
    const last = this.leader.lastSpeculativeIndex;
    if (last !== null) this.leader.commitSpeculative(last);
    for (const entry of this.log)
      if (entry.index > this.leader.appliedIndex) this.leader.apply(entry.index, entry.payload);
    for (const entry of this.log)
      if (entry.index > this.replicaA.appliedIndex) this.replicaA.apply(entry.index, entry.payload);
    assert.equal(this.replicaA.appliedIndex, this.leader.appliedIndex);
    assert.equal(
      this.replicaA.contentHash(),
      this.leader.contentHash(),
      `replica A diverged at ${this.leader.appliedIndex}`,
    );
  }

  /** Leadership lost: uncommitted entries disappear from the log; the leader must be back at its commit point. */
  rollback(): void {
    const committedHash = this.leader.contentHash();
    this.leader.rollbackSpeculative();
    this.log.length = this.leader.appliedIndex;
    const { payload } = this.leader.execute(this.nextIndex, batch("SELECT 1"));
    this.log.push({ index: this.nextIndex, payload });
    this.commit();
    assert.equal(
      this.leader.contentHash(),
      committedHash,
      "a rolled-back leader equals its last committed state",
    );
  }

  /** Replica B restarts, is re-fed the entry it applied last (a no-op), and catches up part of the way. */
  reopen(lagEntries: number): void {
    this.replicaB.close();
    this.replicaB = Store.open({ path: path.join(this.#directory, "b.db") });
    const applied = this.replicaB.appliedIndex;
    if (applied > 0)
      assert.equal(this.replicaB.apply(applied, this.log[applied - 1]!.payload), "already-applied");
    const target = Math.max(applied, this.leader.appliedIndex - lagEntries);
    for (const entry of this.log)
      if (entry.index > applied && entry.index <= target) this.replicaB.apply(entry.index, entry.payload);
  }

  finish(): void {
    this.commit();
    for (const entry of this.log)
      if (entry.index > this.replicaB.appliedIndex) this.replicaB.apply(entry.index, entry.payload);
    const hash = this.leader.contentHash();
    assert.equal(this.replicaB.contentHash(), hash, "replica B diverged");
    assert.equal(this.replicaA.contentHash(), hash, "replica A diverged");
  }

  close(): void {
    for (const store of [this.leader, this.replicaA, this.replicaB]) store.close();
  }
}

function runScenario(
  t: TestContext,
  designs: readonly TableDesign[],
  triggers: readonly number[],
  steps: readonly Step[],
): void {
  const cluster = new Cluster(temporaryDirectory(t));
  try {
    cluster.runBatch([
      "CREATE TABLE lg(id INTEGER PRIMARY KEY AUTOINCREMENT, msg TEXT, at TEXT, r INTEGER)",
      ...tables.map((name, i) => createTable(name, designs[i]!, designs[i - 1]?.key ?? null)),
      ...triggers.map((kind, i) => triggerSql(tables[i % tables.length]!, kind)),
    ]);
    assert.equal(cluster.log.length, 1, "the schema batch succeeds");
    cluster.commit();
    for (const step of steps) {
      if (step.kind === "batch") cluster.runBatch(step.statements);
      else if (step.kind === "commit") cluster.commit();
      else if (step.kind === "noop")
        cluster.log.push({ index: cluster.nextIndex, payload: new Uint8Array() });
      else if (step.kind === "rollback") cluster.rollback();
      else cluster.reopen(step === steps[0] ? 0 : 2);
    }
    cluster.finish();
  } finally {
    cluster.close();
  }
}

describe("divergence check", () => {
  test("replicas applying the leader's payloads end with the leader's content hash", (t) => {
    const scenario = fc
      .tuple(
        fc.array(designArbitrary, { minLength: 3, maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 3 }),
      )
      .chain(([designs, triggers]) =>
        fc.tuple(fc.constant(designs), fc.constant(triggers), stepsArbitrary(designs)),
      );
    fc.assert(
      fc.property(scenario, ([designs, triggers, steps]) => runScenario(t, designs, triggers, steps)),
      { numRuns: propertyRuns },
    );
  });
});
