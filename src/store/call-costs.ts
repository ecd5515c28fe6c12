/**
 * What one call of a scalar function costs, for the statement cost model (`statement-cost.ts`):
 * whether its work is linear in the size of its arguments, and how many times over it may grow them.
 */
import { functionOf } from "./sized-calls.ts";
import type { Instruction } from "./statement-cost.ts";

/** Scalar functions whose work is linear in the size of their arguments (by name, as `EXPLAIN` shows it). */
const linearFunctions = new Set(
  (
    "abs changes char coalesce concat current_date current_time current_timestamp date datetime hex ifnull iif if julianday " +
    "last_insert_rowid length likelihood likely lower ltrim max min nullif octet_length quote " +
    "random round rtrim sign sqlite_version strftime substr substring time timediff " +
    "total_changes trim typeof unhex unicode unistr unixepoch unlikely upper json jsonb " +
    "json_array json_extract json_insert json_object json_quote json_remove json_replace " +
    "json_set json_type json_valid -> ->> acos asin atan atan2 ceil ceiling cos cosh degrees " +
    "exp floor ln log log10 log2 mod pi pow power radians sin sinh sqrt tan tanh trunc"
  ).split(" "),
);

/**
 * `trim`, `ltrim` and `rtrim` with a second argument test every character against a set the
 * caller chooses: bounded only with their default set.
 */
const oneArgumentOnly = new Set(["trim", "ltrim", "rtrim"]);

export function isLinearCall(instruction: Instruction): boolean {
  const called = functionOf(instruction.p4);
  if (called === null || !linearFunctions.has(called.name)) return false;
  return !oneArgumentOnly.has(called.name) || called.arity === 1;
}

/**
 * How much larger than its input a value may come out of one call, for the "linear" functions whose
 * output can be several times their input (plus a few bytes): `hex` doubles, `quote` doubles quotes
 * and hex-encodes blobs, the JSON functions may escape every character as `\u00XX`, a `strftime`
 * directive of two characters may print sixteen. Nested, such calls build from a short text a value
 * up to SQLite's value limit: 24 `hex` deep took 664 ms in process. Every other linear function's
 * output is at most the sum of its inputs, or of fixed size. (`concat_ws` repeats its separator once
 * per further argument, and `EXPLAIN` does not show how many a call has: it is not counted linear.)
 */
const growingFunctions: ReadonlyMap<string, () => number> = new Map([
  ["hex", () => 2],
  ["quote", () => 3],
  ["strftime", () => 8],
  ...[
    "json",
    "json_array",
    "json_extract",
    "json_insert",
    "json_object",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "->",
    "->>",
  ].map((name): [string, () => number] => [name, () => 6]),
]);

/**
 * The most a statement, and a whole batch, may grow the values it is given, as the product of its
 * calls' factors (`growingFunctions`) over every program of every statement, triggers included: the
 * values an in-process batch builds stay within 64 times the largest value it was sent or reads, so
 * its work stays proportional to its input, as the instruction bound assumes. Six nested `hex`, or a
 * `json_set` of a `json_object`, fit; more goes to the sandbox.
 */
export const valueGrowthMax = 64;

/** The product of the growth factors of every call in a listing (see `growingFunctions`). */
export function valueGrowthOf(listing: readonly Instruction[]): number {
  let growth = 1;
  for (const instruction of listing) {
    if (instruction.opcode !== "Function" && instruction.opcode !== "PureFunc") continue;
    const called = functionOf(instruction.p4);
    const factor = called === null ? undefined : growingFunctions.get(called.name)?.();
    if (factor !== undefined) growth *= factor;
    // Past the bound the exact product no longer matters; keep it a small finite number.
    if (growth > valueGrowthMax) return valueGrowthMax + 1;
  }
  return growth;
}
