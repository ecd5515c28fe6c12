import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  provenSizedCalls,
  type RegisterRange,
  registersChanged,
  rootFrameChanges,
  sizedCallBytesMax,
} from "./sized-calls.ts";
import {
  type Instruction,
  isBoundedListing,
  isBoundedProgram,
  jumpOpcodes,
  StatementCost,
  straightOpcodes,
} from "./statement-cost.ts";

function at(addr: number, opcode: string, p1 = 0, p2 = 0, p3 = 0, p4: string | null = null): Instruction {
  return { addr, opcode, p1, p2, p3, p4 };
}

/**
 * What SQLite 3.53 compiles `INSERT INTO audit(note) VALUES (randomblob(16))` to: the size is
 * register 5, written by the prologue's `Integer` at 9 and read by the call at 3.
 */
const insertRandomblob: readonly Instruction[] = [
  at(0, "Init", 0, 8),
  at(1, "OpenWrite", 0, 2, 0, "2"),
  at(2, "SoftNull", 2),
  at(3, "Function", 1, 5, 3, "randomblob(1)"),
  at(4, "NewRowid", 0, 1),
  at(5, "MakeRecord", 2, 2, 4, "DB"),
  at(6, "Insert", 0, 4, 1, "audit"),
  at(7, "Halt"),
  at(8, "Transaction", 0, 1, 3, "0"),
  at(9, "Integer", 16, 5),
  at(10, "Goto", 0, 1),
];

/** `insertRandomblob` with `extra` run in the prologue, before its return to the body. */
function withPrologue(...extra: Instruction[]): Instruction[] {
  const program = insertRandomblob.slice(0, 10);
  for (const instruction of extra) program.push({ ...instruction, addr: program.length });
  program.push(at(program.length, "Goto", 0, 1));
  return program;
}

describe("sized calls", () => {
  test("SQLite's own program for randomblob(16) is proven, and is the program the test copies", () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE audit(id INTEGER PRIMARY KEY, note TEXT)");
    const listing = db.prepare("EXPLAIN INSERT INTO audit(note) VALUES (randomblob(16))").all();
    // Transaction's P3 is the schema cookie, which depends on the schema's history.
    const operands = (i: Record<string, unknown>) => [
      Number(i.addr),
      String(i.opcode),
      Number(i.p1),
      Number(i.p2),
      i.opcode === "Transaction" ? null : Number(i.p3),
    ];
    assert.deepEqual(listing.map(operands), insertRandomblob.map(operands));
    assert.deepEqual([...provenSizedCalls(insertRandomblob, [])], [3]);
    assert.equal(isBoundedProgram(insertRandomblob, null), true);
  });

  const overwrites: [string, Instruction][] = [
    ["arithmetic into the size", at(0, "Add", 6, 6, 5)],
    ["a copy of a range over the size", at(0, "Copy", 3, 4, 1)],
    ["a NULL over a range holding the size", at(0, "Null", 0, 4, 6)],
    ["a move out of the size", at(0, "Move", 5, 7, 1)],
    ["a record's affinity over the size", at(0, "MakeRecord", 4, 2, 9, "BB")],
    ["a comparison converting the size in place", at(0, "Lt", 5, 0, 6)],
    ["a parameter into the size", at(0, "Variable", 1, 5)],
    ["a 64-bit constant into the size", at(0, "Int64", 0, 5, 0, "16")],
    ["a second constant past the bound", at(0, "Integer", sizedCallBytesMax + 1, 5)],
    ["another call's result into the size", at(0, "Function", 0, 7, 5, "abs(1)")],
    ["an opcode the table does not know", at(0, "AggStep", 0, 6, 7)],
  ];
  for (const [what, overwrite] of overwrites) {
    test(`not proven: ${what}`, () => {
      const program = withPrologue(overwrite);
      assert.deepEqual([...provenSizedCalls(program, [])], []);
      assert.equal(isBoundedProgram(program, null), false);
    });
  }

  test("proven: other registers change, or a second small constant writes the size", () => {
    const program = withPrologue(
      at(0, "Add", 6, 6, 7),
      at(0, "Copy", 3, 6, 1),
      at(0, "Null", 0, 6, 8),
      at(0, "Integer", sizedCallBytesMax, 5),
    );
    assert.deepEqual([...provenSizedCalls(program, [])], [3]);
    assert.equal(isBoundedProgram(program, null), true);
  });

  test("not proven: no instruction writes the size, or a sub-program writes it through the root frame", () => {
    const unwritten = insertRandomblob.map((i) => (i.opcode === "Integer" ? at(i.addr, "Noop") : i));
    assert.deepEqual([...provenSizedCalls(unwritten, [])], []);
    const trigger = (register: number) => [at(0, "Init", 0, 1), at(1, "MemMax", register, 2), at(2, "Halt")];
    assert.equal(isBoundedListing([...insertRandomblob, ...trigger(6)], null), true);
    assert.equal(isBoundedListing([...insertRandomblob, ...trigger(5)], null), false);
    const counter = [at(0, "Init", 0, 1), at(1, "NewRowid", 0, 1, 5), at(2, "Halt")];
    assert.equal(isBoundedListing([...insertRandomblob, ...counter], null), false);
  });

  test("every opcode the cost model accepts has an entry in the table of register changes", () => {
    const accepted = [...jumpOpcodes, ...straightOpcodes, "Function", "PureFunc"];
    const unknown = accepted.filter((opcode) =>
      registersChanged(at(0, opcode, 1, 2, 3)).some(([first, last]) => !Number.isFinite(first - last)),
    );
    assert.deepEqual(unknown, []);
  });

  test("a literal size is proven exactly when it is a 32-bit integer not above the bound", () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE audit(id INTEGER PRIMARY KEY, note TEXT)");
    const cost = new StatementCost();
    const sizes = fc.oneof(
      fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: -2, max: sizedCallBytesMax + 2 }),
      fc.bigInt({ min: 2n ** 31n, max: 2n ** 63n - 1n }),
    );
    fc.assert(
      fc.property(sizes, fc.constantFrom("randomblob", "zeroblob"), (size, name) => {
        const sql = `INSERT INTO audit(note) VALUES (${name}(${size}))`;
        assert.equal(cost.isBounded(db, sql), size <= sizedCallBytesMax, sql);
      }),
      { numRuns: 300 },
    );
  });

  test("the proof agrees with the rule read naively, on random programs", () => {
    const opcode = fc.constantFrom(
      "Integer",
      "Integer",
      "Add",
      "Copy",
      "Move",
      "Null",
      "MakeRecord",
      "SCopy",
      "Variable",
      "Lt",
      "Noop",
      "Function",
      "VFilter",
    );
    const instruction = fc
      .record({
        opcode,
        p1: fc.integer({ min: 0, max: 2 * sizedCallBytesMax }),
        p2: fc.integer({ min: 0, max: 9 }),
        p3: fc.integer({ min: 0, max: 9 }),
        sized: fc.boolean(),
      })
      .map(({ opcode, p1, p2, p3, sized }) => {
        // An Integer's P1 is its value; every other opcode here takes a register there.
        const p4 = opcode === "Function" ? (sized ? "zeroblob(1)" : "abs(1)") : null;
        return at(0, opcode, opcode === "Integer" ? p1 : p1 % 10, p2, p3, p4);
      });
    const frames = fc.array(
      fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 3 })).map(([first, width]) => {
        const range: RegisterRange = [first, first + width];
        return range;
      }),
      { maxLength: 2 },
    );
    fc.assert(
      fc.property(fc.array(instruction, { maxLength: 24 }), frames, (instructions, fromOtherFrames) => {
        const program = instructions.map((i, addr) => ({ ...i, addr }));
        assert.deepEqual(
          [...provenSizedCalls(program, fromOtherFrames)].sort(byAddress),
          naive(program, fromOtherFrames),
        );
      }),
      { numRuns: 500 },
    );
  });

  test("only MemMax and NewRowid's counter reach the root frame", () => {
    assert.deepEqual(rootFrameChanges(at(0, "MemMax", 4, 2)), [[4, 4]]);
    assert.deepEqual(rootFrameChanges(at(0, "NewRowid", 0, 1, 6)), [[6, 6]]);
    assert.deepEqual(rootFrameChanges(at(0, "NewRowid", 0, 1, 0)), []);
    assert.deepEqual(rootFrameChanges(at(0, "Insert", 0, 4, 1)), []);
  });
});

/** The rule as the module header states it, checked call by call against every instruction. */
function naive(program: readonly Instruction[], fromOtherFrames: readonly RegisterRange[]): number[] {
  const covers = (ranges: readonly RegisterRange[], register: number): boolean =>
    ranges.some(([first, last]) => first <= register && register <= last);
  const calls = program.filter(
    (i) => i.opcode === "Function" && (i.p4 === "zeroblob(1)" || i.p4 === "randomblob(1)"),
  );
  return calls
    .filter((call) => {
      const writers = program.filter((i) => covers(registersChanged(i), call.p2));
      return (
        writers.length > 0 &&
        writers.every((w) => w.opcode === "Integer" && w.p1 <= sizedCallBytesMax) &&
        !covers(fromOtherFrames, call.p2)
      );
    })
    .map((call) => call.addr)
    .sort(byAddress);
}

function byAddress(a: number, b: number): number {
  return a - b;
}
