/**
 * The write sandbox's process: the entry file of the small Node process in which a leader runs
 * write batches that are not provably short (`statement-cost.ts`), so that a batch it must stop can
 * be stopped by killing this process (node:sqlite offers no interrupt).
 *
 * For each batch it opens a store on the node's own database file, checks that the committed state
 * is the one the leader named (the leader lets nothing else write meanwhile), runs the batch with
 * `Store.execute`, the leader's own code, and closes the store, which rolls the batch back: nothing
 * this process does is ever committed. It replies with the results and the payload, which the
 * leader applies in its own transaction (`adopted-batch.ts`); a large reply goes through a file
 * beside the database (`inlineReplyBytesMax`). Each reply is sent only after the
 * rollback, so once the leader has it, this process holds no lock on the file.
 *
 * It must never outlive its node: an idle process exits when the IPC channel closes, and a watchdog
 * thread kills a busy one whose node is gone. SIGINT is ignored (the node decides when it stops).
 */
import fs from "node:fs";
import path from "node:path";
import v8 from "node:v8";
import { assert } from "../lib/assert.ts";
import { startParentWatchdog } from "./process-watchdog.ts";
import { errorReply } from "./query-process-protocol.ts";
import { Store } from "./store.ts";
import type { ExecuteResult } from "./types.ts";
import {
  inlineReplyBytesMax,
  replyFileName,
  type SandboxMessage,
  type SandboxReply,
  type SandboxSettings,
} from "./write-sandbox-protocol.ts";

function send(reply: SandboxReply): void {
  process.send?.(reply);
}

function runBatch(settings: SandboxSettings, message: SandboxMessage): ExecuteResult {
  const store = Store.open({ path: settings.path, ...settings.limits });
  try {
    assert(
      store.appliedIndex === message.appliedIndex,
      `the sandbox found applied index ${store.appliedIndex}, not the leader's ${message.appliedIndex}`,
    );
    return store.execute(message.index, message.statements, message.options);
  } finally {
    store.close();
  }
}

/** The reply for a result: inline when small, else through a file (see `inlineReplyBytesMax`). */
function resultReply(settings: SandboxSettings, id: number, result: ExecuteResult): SandboxReply {
  const bytes = v8.serialize(result);
  if (bytes.length <= inlineReplyBytesMax) return { type: "result", id, result };
  const file = path.join(path.dirname(settings.path), replyFileName(process.pid, id));
  fs.writeFileSync(file, bytes);
  return { type: "result-file", id, file };
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? "null") as SandboxSettings;
  if (process.send === undefined) throw new Error("the write sandbox runs only as a node's child, with IPC");
  Store.open({ path: settings.path, ...settings.limits }).close(); // Names a missing or bad file at once.
  process.on("SIGINT", () => {});
  process.on("disconnect", () => process.exit(0));
  process.on("message", (message: SandboxMessage) => {
    try {
      send(resultReply(settings, message.id, runBatch(settings, message)));
    } catch (error) {
      send(errorReply(message.id, error) as SandboxReply);
    }
  });
  await startParentWatchdog(settings.watchdogPollMs);
  send({ type: "ready" });
}

await main();
