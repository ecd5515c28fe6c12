/**
 * Calls whose cost is set by a size they are given, not by the size of what they read
 * (`randomblob(N)` builds N random bytes, `zeroblob(N)` N zero bytes): the statement cost model
 * (`statement-cost.ts`) accepts one only when this module proves, from the program SQLite compiled,
 * that N can never exceed `sizedCallBytesMax`.
 *
 * The rule, for a call whose size argument is register R (the call's P2) in one program of a
 * listing (the main program or a trigger's sub-program, each with registers of its own):
 * - at least one instruction of the program writes R, and every instruction that may change R is an
 *   `Integer` whose value (P1) is at most `sizedCallBytesMax`;
 * - for the main program, no sub-program changes R through the root frame (`MemMax` P1 and
 *   `NewRowid` P3 name a register of the main program, whichever frame runs them).
 * Soundness: a register holds what the last instruction that changed it stored or, before any did
 * in this run, its initial value: undefined (which SQLite's integer accessor reads as 0), or what
 * this same program stored in an earlier run (a reset statement, a trigger frame SQLite reuses).
 * So every value the call can read is 0 or one of those constants, and both functions treat a size
 * below 1 as 1 (`randomblob`) or 0 (`zeroblob`). The names are SQLite's built-ins: the store
 * registers no function of its own, and extensions cannot be loaded. The argument does not depend on where the `Integer` sits: SQLite factors a constant
 * into the prologue (run once before the body), behind a `Once`, or, in a trigger, into the body;
 * every path is covered because every writer is. A size from a parameter (`Variable`), a column, an
 * expression, a string or a 64-bit literal (`Int64`) is written by some other opcode, so the call
 * stays unproven, and the statement goes to the write sandbox.
 *
 * "May change" is over-approximated by `registersChanged`, a table of the opcodes the cost model
 * accepts: besides the registers an opcode stores into, it counts those it converts in place
 * (comparisons and `MakeRecord` apply affinity to their inputs) and, where a read-only operand was
 * not worth telling apart, those it only reads; an opcode missing from the table changes every
 * register. A function call changes only its result register (P3): SQLite passes its arguments as
 * values, and the accessors built-in functions read them with may add a text form to an integer but
 * never change it. A wrong "may change" only sends a statement to the sandbox; a missed one would be
 * unsound, so the table errs one way.
 */
import { assert } from "../lib/assert.ts";
import type { Instruction } from "./statement-cost.ts";

/**
 * The largest size a proven `randomblob`/`zeroblob` call may be given. 512 bytes hold ids, tokens,
 * salts and the padding rows tests and benchmarks write (16 to 500 bytes), and keep what such calls
 * can build within what a client could send anyway: at the densest (a constant and a call, two
 * instructions per value), a batch of `boundedBatchInstructionsMax` (32,768) instructions builds
 * at most 16,384 × 512 bytes = 8 MiB, the HTTP layer's body bound. Measured in process on 2 busy
 * shared cores: a batch inserting 10,500 rows of `randomblob(512)` (its multi-row `VALUES` take
 * three instructions a row) took 0.6–0.7 s, one inserting 8 MiB of rows sent as parameters 0.6–1.0 s.
 */
export const sizedCallBytesMax = 512;

/** Functions whose one argument is the size, in bytes, of the blob they build. */
const sizedFunctions = new Set(["randomblob", "zeroblob"]);

/** `name(arity)` from an instruction's P4, or null when it does not look like one. */
export function functionOf(p4: string | null): { name: string; arity: number } | null {
  const match = /^(.+)\((-?\d+)\)$/.exec(p4 ?? "");
  if (match === null) return null;
  return { name: match[1]!.toLowerCase(), arity: Number(match[2]) };
}

/** Registers `first` through `last`, both included. */
export type RegisterRange = readonly [first: number, last: number];

const none: readonly RegisterRange[] = [];
const one = (register: number): RegisterRange => [register, register];
/** `count` registers from `first` (at least `first` itself: a count of 0 or less still names it). */
const span = (first: number, count: number): RegisterRange => [first, first + Math.max(count, 1) - 1];
/** The key width an index opcode takes in P4, or 1 when P4 holds none. */
const keyWidth = (instruction: Instruction): number =>
  /^\d+$/.test(instruction.p4 ?? "") ? Number(instruction.p4) : 1;

type Changes = (instruction: Instruction) => readonly RegisterRange[];

function opcodes(names: string, changes: Changes): [string, Changes][] {
  return names.split(" ").map((name) => [name, changes]);
}

/** For each opcode the cost model accepts, the registers it may change (see the module header). */
const changesByOpcode = new Map<string, Changes>([
  ...opcodes(
    "Init Goto Once ElseEq FkIfZero Transaction TableLock OpenRead OpenWrite Close ColumnsUsed " +
      "CursorHint DeferredSeek FinishSeek SeekEnd NullRow Rewind Last Next Prev Halt Noop Trace " +
      "FkCounter FkCheck ResetCount Abortable",
    () => none,
  ),
  ...opcodes(
    "Integer Int64 Real String8 String Blob Variable Param Rowid IdxRowid RowData Sequence Not " +
      "BitNot IsTrue ZeroOrNull",
    (i) => [one(i.p2)],
  ),
  ...opcodes(
    "If IfNot IsNull NotNull MustBeInt IfPos IfNotZero DecrJumpZero AddImm MemMax Cast " +
      "RealAffinity ClrSubtype SoftNull CollSeq InitCoroutine Yield EndCoroutine",
    (i) => [one(i.p1)],
  ),
  ...opcodes("Column IfNullRow HaltIfNull Function PureFunc Program OpenEphemeral", (i) => [one(i.p3)]),
  ...opcodes("SCopy IntCopy GetSubtype SetSubtype", (i) => [one(i.p1), one(i.p2)]),
  ...opcodes("Eq Ne Lt Le Gt Ge", (i) => [one(i.p1), one(i.p3)]),
  ...opcodes(
    "Add Subtract Multiply Divide Remainder BitAnd BitOr ShiftLeft ShiftRight Concat And Or",
    (i) => [one(i.p1), one(i.p2), one(i.p3)],
  ),
  ...opcodes("NewRowid Insert Delete", (i) => [one(i.p2), one(i.p3)]),
  ...opcodes("IsType", (i) => (i.p1 < 0 ? [one(i.p3)] : none)),
  ...opcodes("Null", (i) => [[i.p2, Math.max(i.p2, i.p3)]]),
  ...opcodes("Copy", (i) => [span(i.p1, i.p3 + 1), span(i.p2, i.p3 + 1)]),
  ...opcodes("Move", (i) => [span(i.p1, i.p3), span(i.p2, i.p3)]),
  ...opcodes("Affinity TypeCheck ResultRow ReleaseReg", (i) => [span(i.p1, i.p2)]),
  ...opcodes("MakeRecord", (i) => [span(i.p1, i.p2), one(i.p3)]),
  ...opcodes("IdxInsert", (i) => [one(i.p2), span(i.p3, keyWidth(i))]),
  ...opcodes("IdxDelete", (i) => [span(i.p2, i.p3)]),
  ...opcodes(
    "SeekRowid NotExists SeekGE SeekGT SeekLE SeekLT IdxGT IdxGE IdxLT IdxLE NoConflict NotFound Found IfNoHope",
    (i) => [span(i.p3, keyWidth(i))],
  ),
]);

/** Every register, for an opcode the table does not know. */
const everyRegister: readonly RegisterRange[] = [[Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY]];

/** The registers `instruction` may change in its own frame (over-approximated; see the header). */
export function registersChanged(instruction: Instruction): readonly RegisterRange[] {
  const changes = changesByOpcode.get(instruction.opcode);
  return changes === undefined ? everyRegister : changes(instruction);
}

/** The registers of the main program that a sub-program's `instruction` may change (its root frame). */
export function rootFrameChanges(instruction: Instruction): readonly RegisterRange[] {
  if (instruction.opcode === "MemMax") return [one(instruction.p1)];
  if (instruction.opcode === "NewRowid" && instruction.p3 > 0) return [one(instruction.p3)];
  return none;
}

/** A call of a sized function with its one argument, whatever writes that argument. */
export function isSizedCall(instruction: Instruction): boolean {
  if (instruction.opcode !== "Function" && instruction.opcode !== "PureFunc") return false;
  const called = functionOf(instruction.p4);
  return called !== null && sizedFunctions.has(called.name) && called.arity === 1;
}

/** What is known of one size register: not yet written, written only by small constants, or not. */
type SizeRegister = "unwritten" | "small constant" | "unproven";

/**
 * The addresses of the sized calls in `program` whose size is proven at most `sizedCallBytesMax`
 * (the rule in the module header). `fromOtherFrames` are the changes other programs of the listing
 * make to this program's registers (for the main program, its sub-programs' root-frame changes).
 */
export function provenSizedCalls(
  program: readonly Instruction[],
  fromOtherFrames: readonly RegisterRange[],
): ReadonlySet<number> {
  const calls = program.filter(isSizedCall);
  if (calls.length === 0) return new Set();
  const sizes = new Map<number, SizeRegister>(calls.map((call) => [call.p2, "unwritten"]));
  const registers = [...sizes.keys()].sort((a, b) => a - b);
  const mark = (ranges: readonly RegisterRange[], writer: Instruction | null): void => {
    for (const register of within(registers, ranges)) {
      const smallConstant =
        writer?.opcode === "Integer" && writer.p2 === register && writer.p1 <= sizedCallBytesMax;
      const known = sizes.get(register);
      sizes.set(register, smallConstant && known !== "unproven" ? "small constant" : "unproven");
    }
  };
  for (const instruction of program) mark(registersChanged(instruction), instruction);
  mark(fromOtherFrames, null);
  const proven = calls.filter((call) => sizes.get(call.p2) === "small constant").map((call) => call.addr);
  assert(proven.length <= calls.length, "only calls of the program are proven");
  return new Set(proven);
}

/** The registers of sorted `registers` that fall within any of `ranges`. */
function within(registers: readonly number[], ranges: readonly RegisterRange[]): number[] {
  const found: number[] = [];
  for (const [first, last] of ranges) {
    assert(first <= last, "a register range runs upwards");
    let low = 0;
    let high = registers.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (registers[middle]! < first) low = middle + 1;
      else high = middle;
    }
    for (let at = low; at < registers.length && registers[at]! <= last; at++) found.push(registers[at]!);
  }
  return found;
}
