/**
 * The store's bounds (`StoreOptions` without the path) and their defaults; every bound is a
 * positive integer, checked once when a store opens.
 */
import { assert } from "../lib/assert.ts";
import { requestWindowEntriesDefault, requestWindowMsDefault } from "./request-log.ts";
import type { StoreOptions } from "./types.ts";

export const storeDefaults = {
  speculativeBatchesMax: 1024,
  statementsPerBatchMax: 1000,
  sqlBytesMax: 1 << 20,
  payloadBytesMax: 16 << 20,
  busyTimeoutMs: 5000,
  requestWindowEntries: requestWindowEntriesDefault,
  requestWindowMs: requestWindowMsDefault,
} as const;

export type StoreLimits = Required<Omit<StoreOptions, "path">>;

/** The defaults overridden by whatever `options` sets; asserts every bound is a positive integer. */
export function storeLimitsOf(options: StoreOptions): StoreLimits {
  const limits: Record<string, number> = { ...storeDefaults };
  for (const key of Object.keys(storeDefaults) as (keyof StoreLimits)[]) {
    const value = options[key] ?? storeDefaults[key];
    assert(Number.isSafeInteger(value) && value > 0, `store option ${key} must be a positive integer`);
    limits[key] = value;
  }
  return limits as StoreLimits;
}
