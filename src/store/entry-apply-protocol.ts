/**
 * What the node and its entry applier's process (`entry-applier.ts`, `entry-apply-process.ts`)
 * exchange: the job as the process's one JSON argument, the answer over the IPC channel. Errors
 * travel as in the query processes' protocol (`query-process-protocol.ts`).
 */
import type { SentError } from "./query-process-protocol.ts";
import type { StoreOptions } from "./types.ts";

export type EntryApplyJob = {
  /** The node's database file. */
  readonly path: string;
  readonly limits: Omit<StoreOptions, "path">;
  /** The entry's index: the database's applied index must be the one before it. */
  readonly index: number;
  /** The file holding the entry's payload, and its length. */
  readonly payloadFile: string;
  readonly payloadBytes: number;
  readonly watchdogPollMs: number;
};

export type EntryApplyReply =
  | { readonly type: "applied" }
  | { readonly type: "error"; readonly id: number; readonly error: SentError }
  | { readonly type: "bug"; readonly id: number; readonly message: string };

/** The name of a payload file: in the store's directory, named by the node's pid and the entry. */
export function payloadFileName(pid: number, index: number): string {
  return `entry-apply-${pid}-${index}.payload`;
}

export const payloadFilePattern = /^entry-apply-\d+-\d+\.payload$/;
