/**
 * Whether a client statement provably runs in bounded time, judged from the program SQLite compiled
 * it to (`EXPLAIN`), never from its text.
 *
 * Why: node:sqlite (Node 26) has no progress handler and no interrupt, so a statement that runs on
 * the leader's event loop cannot be stopped. The leader therefore runs in process only batches whose
 * every statement is provably short, and sends any other batch to its write sandbox, a process it
 * can kill (`write-sandbox.ts`). This module is the proof. A wrong "bounded" would let a statement
 * hold the event loop; a wrong "unbounded" only costs the sandbox's round trip, so every doubt
 * answers "unbounded".
 *
 * A program is bounded when:
 * - it contains no loop but these, whose turns are bounded by the schema or by the statement's
 *   text, not by the data: the prologue's return to the program's start; the walk over
 *   `sqlite_sequence` that AUTOINCREMENT compiles to (one row per table with a counter); the loop
 *   over a multi-row `VALUES` (a co-routine whose body only computes values and yields, once per
 *   row written in the text); walks over ephemeral tables (`RETURNING`'s rows, materialized
 *   `VALUES`), which only this program fills, and only in code that is itself bounded;
 * - every instruction is one whose cost is bounded by the size of its operands: B-tree seeks,
 *   inserts and deletes of single rows, register arithmetic, record building, and calls of scalar
 *   functions that are linear in their arguments (`like`, `glob`, `instr`, `replace`, `printf` and
 *   anything unknown are not: their cost is set by a value, not by the size of the data it reads),
 *   or of `randomblob`/`zeroblob` with a size proven to be a small constant (`sized-calls.ts`);
 * - the same holds for every sub-program it calls (triggers and foreign-key actions), which
 *   `EXPLAIN` lists after the main program.
 * Such a program runs each instruction a bounded number of times, so its run time is bounded by
 * its length and the size of the values it touches: the store caps a client statement's values
 * (`clientValueBytesMax` on the write connection while client statements run), and the caller caps
 * the instructions a batch may hold and still run in process (`Store.isBoundedBatch`). Anything else (scans, sorts, aggregates,
 * recursive CTEs, DDL, `IN (…)` lists compiled to subroutines) is "unbounded" here.
 *
 * Verdicts are cached per SQL text (`statementCostEntriesMax`, texts up to
 * `statementCostSqlCharsMax` characters) and the cache is cleared whenever the schema may have
 * changed (the store calls `clear` where it drops its other schema-derived caches), because a new
 * trigger or index changes what a text compiles to.
 */
import type { DatabaseSync } from "node:sqlite";
import { assert } from "../lib/assert.ts";
import { isLinearCall, valueGrowthMax, valueGrowthOf } from "./call-costs.ts";
import { provenSizedCalls, type RegisterRange, rootFrameChanges } from "./sized-calls.ts";

/** Verdicts kept; past it the oldest goes first. */
export const statementCostEntriesMax = 512;

/**
 * Longer texts are not cached (their keys would make the cache large in bytes), and a batch holding
 * one is not run in process (`isBoundedBatch`).
 */
export const statementCostSqlCharsMax = 16 * 1024;

/** One instruction as `EXPLAIN` lists it. */
export type Instruction = {
  readonly addr: number;
  readonly opcode: string;
  readonly p1: number;
  readonly p2: number;
  readonly p3: number;
  readonly p4: string | null;
};

/** Opcodes whose P2 is a jump target. */
export const jumpOpcodes: ReadonlySet<string> = new Set([
  "Init",
  "Goto",
  "If",
  "IfNot",
  "IsNull",
  "NotNull",
  "IsType",
  "IfNullRow",
  "Eq",
  "Ne",
  "Lt",
  "Le",
  "Gt",
  "Ge",
  "ElseEq",
  "Once",
  "IfPos",
  "IfNotZero",
  "DecrJumpZero",
  "MustBeInt",
  "FkIfZero",
  "SeekRowid",
  "NotExists",
  "SeekGE",
  "SeekGT",
  "SeekLE",
  "SeekLT",
  "IdxGT",
  "IdxGE",
  "IdxLT",
  "IdxLE",
  "NoConflict",
  "NotFound",
  "Found",
  "IfNoHope",
  "Rewind",
  "Last",
  "Next",
  "Prev",
  "InitCoroutine",
  "Yield",
]);

/** Opcodes that do a bounded amount of work and do not jump. */
export const straightOpcodes: ReadonlySet<string> = new Set([
  "Transaction",
  "TableLock",
  "OpenRead",
  "OpenWrite",
  "OpenEphemeral",
  "Close",
  "ColumnsUsed",
  "CursorHint",
  "Column",
  "Rowid",
  "IdxRowid",
  "DeferredSeek",
  "FinishSeek",
  "SeekEnd",
  "NullRow",
  "SoftNull",
  "Null",
  "Integer",
  "Int64",
  "Real",
  "String8",
  "String",
  "Blob",
  "Variable",
  "Copy",
  "SCopy",
  "IntCopy",
  "Move",
  "MakeRecord",
  "Affinity",
  "TypeCheck",
  "Cast",
  "RealAffinity",
  "NewRowid",
  "Insert",
  "Delete",
  "IdxInsert",
  "IdxDelete",
  "RowData",
  "Halt",
  "HaltIfNull",
  "ResultRow",
  "Noop",
  "Trace",
  "Add",
  "Subtract",
  "Multiply",
  "Divide",
  "Remainder",
  "BitAnd",
  "BitOr",
  "ShiftLeft",
  "ShiftRight",
  "BitNot",
  "Not",
  "And",
  "Or",
  "IsTrue",
  "Concat",
  "AddImm",
  "MemMax",
  "FkCounter",
  "FkCheck",
  "Program",
  "Param",
  "ResetCount",
  "CollSeq",
  "ZeroOrNull",
  "Sequence",
  "ReleaseReg",
  "Abortable",
  "ClrSubtype",
  "GetSubtype",
  "SetSubtype",
  "EndCoroutine",
]);

/** Jumps on register values alone (no cursor): a `VALUES` body may take them forwards. */
const valueJumpOpcodes = new Set([
  "If",
  "IfNot",
  "IsNull",
  "NotNull",
  "IsType",
  "Eq",
  "Ne",
  "Lt",
  "Le",
  "Gt",
  "Ge",
  "ElseEq",
  "Once",
  "MustBeInt",
  "Goto",
]);

/** Opcodes that touch a cursor: none may run in a `VALUES` co-routine's body. */
const cursorOpcodes = new Set([
  "OpenRead",
  "OpenWrite",
  "OpenEphemeral",
  "Close",
  "Column",
  "Rowid",
  "IdxRowid",
  "DeferredSeek",
  "NewRowid",
  "Insert",
  "Delete",
  "IdxInsert",
  "IdxDelete",
  "RowData",
  "NullRow",
  "SeekEnd",
]);

/** Whether a call is one whose work the program bounds (a linear function, or a sized call proven small). */
type CallCheck = (call: Instruction) => boolean;

/** Splits an `EXPLAIN` listing into its programs (each sub-program starts again at address 0). */
export function programsOf(listing: readonly Instruction[]): Instruction[][] {
  const programs: Instruction[][] = [];
  for (const instruction of listing) {
    if (instruction.addr === 0 || programs.length === 0) programs.push([]);
    programs.at(-1)!.push(instruction);
  }
  return programs;
}

/**
 * The instruction that opened `cursor` for a loop starting at `loopStart`: the nearest open before
 * it in the same part of the program, or, for a loop in the body whose cursor the body does not
 * open, the last open in the prologue (which runs before the body).
 */
function openerOf(program: readonly Instruction[], cursor: number, loopStart: number): Instruction | null {
  const prologueStart = program[0]?.p2 ?? 0;
  const opens = (instruction: Instruction | undefined): boolean =>
    instruction !== undefined &&
    instruction.p1 === cursor &&
    /^Open(Read|Write|Ephemeral)$/.test(instruction.opcode);
  const regionStart = loopStart >= prologueStart ? prologueStart : 1;
  for (let at = loopStart - 1; at >= regionStart; at--) if (opens(program[at])) return program[at]!;
  if (loopStart >= prologueStart) return null;
  for (let at = program.length - 1; at >= prologueStart; at--) if (opens(program[at])) return program[at]!;
  return null;
}

/** A walk (`Next`/`Prev` back) over `sqlite_sequence` or over an ephemeral table. */
function isBoundedWalk(
  program: readonly Instruction[],
  walk: Instruction,
  sequenceRootPage: number | null,
): boolean {
  const opener = openerOf(program, walk.p1, walk.p2);
  if (opener === null) return false;
  if (opener.opcode === "OpenEphemeral") return !fillsItself(program, walk);
  return sequenceRootPage !== null && opener.p3 === 0 && opener.p2 === sequenceRootPage;
}

/** A walk whose own body inserts into the table it walks (a queue, as a recursive CTE keeps) may never end. */
function fillsItself(program: readonly Instruction[], walk: Instruction): boolean {
  for (let at = walk.p2; at <= walk.addr; at++) {
    const instruction = program[at];
    const inserts = instruction?.opcode === "Insert" || instruction?.opcode === "IdxInsert";
    if (inserts && instruction.p1 === walk.p1) return true;
  }
  return false;
}

/** A jump back to the `Yield` of a co-routine that only computes values and yields (a `VALUES` list). */
function isValuesLoop(program: readonly Instruction[], jump: Instruction, isBoundedCall: CallCheck): boolean {
  const head = program[jump.p2];
  if (jump.opcode !== "Goto" || head?.opcode !== "Yield") return false;
  const register = head.p1;
  const starts = program.filter((i) => i.opcode === "InitCoroutine" && i.p1 === register);
  const start = starts[0];
  if (starts.length !== 1 || start === undefined) return false;
  for (let at = start.p3; at < program.length; at++) {
    const instruction = program[at]!;
    if (instruction.opcode === "EndCoroutine") return instruction.p1 === register;
    if (instruction.opcode === "Yield") {
      if (instruction.p1 !== register || instruction.p2 !== 0) return false;
      continue;
    }
    if (!computesOnly(instruction, isBoundedCall)) return false;
  }
  return false;
}

/** An instruction that computes a value without touching a cursor and without jumping back. */
function computesOnly(instruction: Instruction, isBoundedCall: CallCheck): boolean {
  const { opcode } = instruction;
  if (cursorOpcodes.has(opcode)) return false;
  if (opcode === "Function" || opcode === "PureFunc") return isBoundedCall(instruction);
  if (straightOpcodes.has(opcode)) return true;
  return valueJumpOpcodes.has(opcode) && instruction.p2 > instruction.addr;
}

/**
 * Whether one program (no sub-programs) is bounded; see the module header. `fromOtherFrames` are the
 * registers of this program that other programs of its listing may change (`sized-calls.ts`).
 */
export function isBoundedProgram(
  program: readonly Instruction[],
  sequenceRootPage: number | null,
  fromOtherFrames: readonly RegisterRange[] = [],
): boolean {
  const init = program[0];
  if (init === undefined || init.opcode !== "Init") return false;
  const sized = provenSizedCalls(program, fromOtherFrames);
  const isBoundedCall = (call: Instruction): boolean => isLinearCall(call) || sized.has(call.addr);
  for (const [position, instruction] of program.entries()) {
    if (instruction.addr !== position) return false;
    const { opcode } = instruction;
    if (opcode === "Function" || opcode === "PureFunc") {
      if (!isBoundedCall(instruction)) return false;
      continue;
    }
    if (straightOpcodes.has(opcode)) continue;
    if (!jumpOpcodes.has(opcode)) return false;
    // P2 = 0 marks a jump SQLite never takes (a row that must exist); Init's target is forward.
    if (instruction.p2 > instruction.addr || (instruction.p2 === 0 && opcode !== "Init")) continue;
    if (!isBoundedLoop(program, instruction, sequenceRootPage, isBoundedCall)) return false;
  }
  return true;
}

/** A backward jump: one of the loops the module header names, or else unbounded. */
function isBoundedLoop(
  program: readonly Instruction[],
  jump: Instruction,
  sequenceRootPage: number | null,
  isBoundedCall: CallCheck,
): boolean {
  const initTarget = program[0]?.p2 ?? 0;
  if (jump.opcode === "Goto" && jump.p2 === 1 && jump.addr >= initTarget) return true; // The prologue's return.
  if (jump.opcode === "Next" || jump.opcode === "Prev") return isBoundedWalk(program, jump, sequenceRootPage);
  return isValuesLoop(program, jump, isBoundedCall);
}

/** Whether a whole `EXPLAIN` listing (a statement and its sub-programs) is bounded. */
export function isBoundedListing(listing: readonly Instruction[], sequenceRootPage: number | null): boolean {
  const programs = programsOf(listing);
  // A sub-program's MemMax and NewRowid change registers of the main program (the root frame).
  const fromSubPrograms = programs.slice(1).flatMap((program) => program.flatMap(rootFrameChanges));
  return (
    programs.length > 0 &&
    programs.every((program, at) =>
      isBoundedProgram(program, sequenceRootPage, at === 0 ? fromSubPrograms : []),
    )
  );
}

/**
 * A verdict: for a bounded statement, its listing's length and how many times over it may grow the
 * values it is given (`valueGrowthOf`); null when it is not bounded.
 */
export type CostVerdict = { readonly instructions: number; readonly growth: number } | null;

function numberOf(value: unknown): number {
  return typeof value === "bigint" ? Number(value) : Number(value ?? 0);
}

/** The `EXPLAIN` listing of `sql` on `db`, or null when it does not compile (then: unbounded). */
function explain(db: DatabaseSync, sql: string): Instruction[] | null {
  try {
    return db
      .prepare(`EXPLAIN ${sql}`)
      .all()
      .map((row) => ({
        addr: numberOf(row.addr),
        opcode: String(row.opcode),
        p1: numberOf(row.p1),
        p2: numberOf(row.p2),
        p3: numberOf(row.p3),
        p4: row.p4 === null || row.p4 === undefined ? null : String(row.p4),
      }));
  } catch {
    return null;
  }
}

function sequenceRootPageOf(db: DatabaseSync): number | null {
  const row = db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'sqlite_sequence'").get();
  return row === undefined ? null : numberOf(row.rootpage);
}

/**
 * The most instructions (summed over a batch's programs) a batch may compile to and still count as
 * bounded: each runs a bounded number of times on values of at most `clientValueBytesMax`, so this
 * bounds the batch's work. A thousand single-row writes fit.
 */
export const boundedBatchInstructionsMax = 32_768;

/**
 * The most SQL text a batch may hold and still count as bounded: compiling is work on the event
 * loop too, linear in the text (twice, for the verdict and for the run, when the text is too long
 * to be cached). A statement longer than `statementCostSqlCharsMax` is judged unbounded outright.
 */
export const boundedBatchSqlCharsMax = 256 * 1024;

/** Verdicts per SQL text on one connection, dropped whenever the schema may have changed. */
export class StatementCost {
  readonly #verdicts = new Map<string, CostVerdict>();
  /** `sqlite_sequence`'s root page, read once per schema; undefined until read. */
  #sequenceRootPage: number | null | undefined = undefined;

  get entries(): number {
    return this.#verdicts.size;
  }

  /** Whether `sql` compiles, on `db` as its schema stands, to a bounded program. */
  isBounded(db: DatabaseSync, sql: string): boolean {
    return this.verdictOf(db, sql) !== null;
  }

  /** The instructions `sql` compiles to (sub-programs included) if they are bounded, else null. */
  instructionsIfBounded(db: DatabaseSync, sql: string): number | null {
    return this.verdictOf(db, sql)?.instructions ?? null;
  }

  /** The verdict on `sql` (see `CostVerdict`), cached per text. */
  verdictOf(db: DatabaseSync, sql: string): CostVerdict {
    const known = this.#verdicts.get(sql);
    if (known !== undefined) return known;
    this.#sequenceRootPage ??= sequenceRootPageOf(db);
    const listing = explain(db, sql);
    const growth = listing === null ? null : valueGrowthOf(listing);
    const bounded =
      listing !== null &&
      growth !== null &&
      growth <= valueGrowthMax &&
      isBoundedListing(listing, this.#sequenceRootPage)
        ? { instructions: listing.length, growth }
        : null;
    if (sql.length <= statementCostSqlCharsMax) {
      if (this.#verdicts.size >= statementCostEntriesMax) {
        const oldest = this.#verdicts.keys().next().value;
        if (oldest !== undefined) this.#verdicts.delete(oldest);
      }
      this.#verdicts.set(sql, bounded);
    }
    assert(this.#verdicts.size <= statementCostEntriesMax, "statement cost verdicts stay within their bound");
    return bounded;
  }

  /**
   * Whether every statement of a batch is bounded and all together stay within
   * `boundedBatchInstructionsMax`, `boundedBatchSqlCharsMax` and `valueGrowthMax` (a statement may
   * grow what an earlier one stored).
   */
  isBoundedBatch(db: DatabaseSync, statements: readonly { readonly sql: string }[]): boolean {
    let sqlChars = 0;
    for (const { sql } of statements) {
      if (typeof sql !== "string" || sql.length > statementCostSqlCharsMax) return false;
      sqlChars += sql.length;
    }
    if (sqlChars > boundedBatchSqlCharsMax) return false;
    let instructions = 0;
    let growth = 1;
    for (const { sql } of statements) {
      const verdict = this.verdictOf(db, sql);
      if (verdict === null) return false;
      instructions += verdict.instructions;
      growth *= verdict.growth;
      if (instructions > boundedBatchInstructionsMax || growth > valueGrowthMax) return false;
    }
    return true;
  }

  clear(): void {
    this.#verdicts.clear();
    this.#sequenceRootPage = undefined;
  }
}
