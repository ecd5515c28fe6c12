/**
 * Bytes held as a list of parts to be taken one after another, so that a large piece (a log entry
 * of tens of MB) can travel inside a message or a log write without being copied into one buffer.
 */
import { assert } from "./assert.ts";

/** The parts of one byte sequence, in order. */
export type ByteParts = readonly Uint8Array[];

export function partsBytes(parts: ByteParts): number {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  return total;
}

/** The bytes from `start` to `end` of `parts` taken as one sequence, as views of the parts. */
export function sliceParts(parts: ByteParts, start: number, end: number): Uint8Array[] {
  assert(0 <= start && start <= end, "a slice runs forwards");
  const slices: Uint8Array[] = [];
  let offset = 0;
  for (const part of parts) {
    const partEnd = offset + part.byteLength;
    if (partEnd > start && offset < end) {
      slices.push(part.subarray(Math.max(0, start - offset), Math.min(part.byteLength, end - offset)));
    }
    offset = partEnd;
    if (offset >= end) break;
  }
  assert(offset >= end, "the slice lies within the parts");
  return slices;
}

/** The parts as one buffer: the only part itself, or a copy of them all. */
export function joinParts(parts: ByteParts): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const joined = new Uint8Array(partsBytes(parts));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.byteLength;
  }
  return joined;
}
