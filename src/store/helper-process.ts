/**
 * What the node's helper processes (query processes, the write sandbox, the entry applier) share:
 * their numeric bounds, checked alike, and a bounded wait for a killed process to exit.
 */
import { assert } from "../lib/assert.ts";
import type { QueryPoolLog } from "./query-process-pool.ts";
import type { StoreOptions } from "./types.ts";

/** A helper on the node's store file: its bounds (`defaults`' keys, each optional), the file, the log. */
export type StoreHelperOptions<D> = Partial<{ readonly [K in keyof D]: number }> & {
  /** The store's database file; the node's store has it open (in WAL mode). */
  readonly path: string;
  readonly limits: Omit<StoreOptions, "path">;
  readonly log: QueryPoolLog;
};

/** `defaults` with each given option in its place; every value must be a positive integer. */
export function positiveBounds<B extends Readonly<Record<string, number>>>(
  what: string,
  defaults: B,
  options: Partial<{ readonly [K in keyof B]: number }>,
): { readonly [K in keyof B]: number } {
  const bounds: Record<string, number> = {};
  for (const name of Object.keys(defaults) as (keyof B & string)[]) {
    const value = (options[name] ?? defaults[name]) as number;
    assert(Number.isSafeInteger(value) && value > 0, `${what} option ${name} must be a positive integer`);
    bounds[name] = value;
  }
  return bounds as { readonly [K in keyof B]: number };
}

/** Resolves when `exited` does, or after `waitMs`: then `late` is called (a lock may still be held). */
export async function waitForExit(exited: Promise<void>, waitMs: number, late: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const passed = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), waitMs);
  });
  const outcome = await Promise.race([exited.then(() => "exited" as const), passed]);
  clearTimeout(timer);
  if (outcome === "late") late();
}
