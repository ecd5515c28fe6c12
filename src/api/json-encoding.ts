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

/** `JSON.stringify` that encodes bigints (anywhere in the value) as `jsonSafe` does. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? jsonSafe(v) : v));
}
