/**
 * The messages between a leader and its write sandbox (`write-sandbox.ts`,
 * `write-sandbox-process.ts`), over the IPC channel with Node's "advanced" serialization, so the
 * payload's bytes and bigint results cross it exactly as the store returns them. Errors travel as in
 * the query processes' protocol (`query-process-protocol.ts`): an operating error as its code,
 * message and details, anything else as a bug.
 */
import type { LogIndex } from "../types/ids.ts";
import type { SentError } from "./query-process-protocol.ts";
import type { ExecuteOptions, ExecuteResult, Statement, StoreOptions } from "./types.ts";

/** What the sandbox process is started with (one JSON argument). */
export type SandboxSettings = {
  readonly path: string;
  /** The store's bounds, the same as the node's own store (statements, SQL bytes, payload bytes). */
  readonly limits: Omit<StoreOptions, "path">;
  readonly watchdogPollMs: number;
};

/** What a batch may ask of the sandbox: the options of `Store.execute` that are data, not callbacks. */
export type SandboxExecuteOptions = Pick<
  ExecuteOptions,
  "resultRowsMax" | "resultBytesMax" | "raiseCountersToReservations"
>;

/** Run `statements` as the batch for `index` on the committed state at `appliedIndex`, then discard it. */
export type SandboxRequest = {
  readonly appliedIndex: LogIndex;
  readonly index: LogIndex;
  readonly statements: readonly Statement[];
  readonly options: SandboxExecuteOptions;
};

export type SandboxMessage = SandboxRequest & { readonly type: "batch"; readonly id: number };

/**
 * A reply whose serialized result is larger than this travels through a file instead of the IPC
 * channel: Node reassembles a large IPC message by concatenating every chunk as it arrives
 * (measured: 600 ms of the node's CPU for a 12 MB payload on a busy machine), while the node reads
 * a file off its event loop and deserializes it in one pass.
 */
export const inlineReplyBytesMax = 256 << 10;

/** The name of a reply file: in the store's directory, named by the sandbox's pid and the batch. */
export function replyFileName(pid: number, id: number): string {
  return `write-sandbox-${pid}-${id}.reply`;
}

export const replyFilePattern = /^write-sandbox-\d+-\d+\.reply$/;

export type SandboxReply =
  | { readonly type: "ready" }
  | { readonly type: "result"; readonly id: number; readonly result: ExecuteResult }
  /** The result, `v8.serialize`d, in `file` (the node reads and deletes it). */
  | { readonly type: "result-file"; readonly id: number; readonly file: string }
  | { readonly type: "error"; readonly id: number; readonly error: SentError }
  | { readonly type: "bug"; readonly id: number; readonly message: string };
