/**
 * The one place where SQLite values become JSON (DESIGN.md §3).
 *
 * JSON numbers are doubles. An integer SQLite hands back as a `bigint` is sent as a JSON number when
 * a double holds it exactly, and as a decimal string otherwise, so no precision is ever lost
 * silently; blobs travel as `{base64}`. The server's result encoding and its response serializer
 * both go through `jsonSafe`, so the two can never disagree.
 */
import type { JsonValue } from "./api-types.ts";

const safeIntegerMin = BigInt(Number.MIN_SAFE_INTEGER);
const safeIntegerMax = BigInt(Number.MAX_SAFE_INTEGER);

/** A SQLite value (or an array of them) as a JSON-safe value. */
export function jsonSafe(value: unknown): JsonValue {
  if (typeof value === "bigint")
    return value >= safeIntegerMin && value <= safeIntegerMax ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return { base64: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(jsonSafe);
  return value as JsonValue;
}

const bigintReplacer = (_key: string, v: unknown): unknown => (typeof v === "bigint" ? jsonSafe(v) : v);

/**
 * `JSON.stringify` that encodes bigints (anywhere in the value) as `jsonSafe` does. Answers rarely
 * hold one (results are made JSON-safe before), so the plain call is tried first: a replacer costs a
 * call per key of every answer. `JSON.stringify` refuses a bigint with a TypeError, which sends the
 * value through the replacer.
 */
export function toJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
  return JSON.stringify(value, bigintReplacer);
}
