/**
 * Branded identifiers shared by every layer.
 *
 * A `LogIndex` and a `Term` are both plain integers at run time; the brands stop one being passed
 * where the other is meant. Construct them only through these functions, which check the value.
 */
import { assert } from "../lib/assert.ts";

export type Term = number & { readonly __brand: "Term" };
export type LogIndex = number & { readonly __brand: "LogIndex" };
export type NodeId = string & { readonly __brand: "NodeId" };

export function term(value: number): Term {
  assert(Number.isSafeInteger(value) && value >= 0, `term must be a non-negative integer, got ${value}`);
  return value as Term;
}

export function logIndex(value: number): LogIndex {
  assert(Number.isSafeInteger(value) && value >= 0, `log index must be a non-negative integer, got ${value}`);
  return value as LogIndex;
}

export function nodeId(value: string): NodeId {
  assert(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value), `bad node id ${JSON.stringify(value)}`);
  return value as NodeId;
}

/** A position in the replicated log (our LSN). */
export type Position = { readonly index: LogIndex; readonly term: Term };
