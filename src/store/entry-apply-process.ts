/**
 * The entry applier's process (`entry-applier.ts`): applies ONE committed log entry to the node's
 * database, off the node's event loop, then exits.
 *
 * It opens a store on the node's own file, checks that the applied index is the one the node named
 * (the node writes nothing meanwhile), applies the entry with `Store.apply`, the node's own replica
 * path (one transaction that also records the applied index), and closes the store. It answers
 * `{ type: "applied" }` once the transaction has committed and the store is closed, or the error
 * (`STORE_DIVERGED` travels as its code), and then exits. The payload comes in a file the node
 * wrote beside the database; the process deletes it once read.
 *
 * It must never outlive its node: a watchdog thread kills it when the node is gone.
 */
import fs from "node:fs";
import { assert } from "../lib/assert.ts";
import { logIndex } from "../types/ids.ts";
import type { EntryApplyJob, EntryApplyReply } from "./entry-apply-protocol.ts";
import { startParentWatchdog } from "./process-watchdog.ts";
import { errorReply } from "./query-process-protocol.ts";
import { Store } from "./store.ts";

function applyEntry(job: EntryApplyJob): void {
  const payload = fs.readFileSync(job.payloadFile);
  fs.rmSync(job.payloadFile, { force: true });
  assert(payload.byteLength === job.payloadBytes, `the payload file holds ${payload.byteLength} bytes`);
  const store = Store.open({ path: job.path, ...job.limits });
  try {
    assert(
      store.appliedIndex === job.index - 1,
      `the entry applier found applied index ${store.appliedIndex}, not ${job.index - 1}`,
    );
    store.apply(logIndex(job.index), new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
  } finally {
    store.close();
  }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "null") as EntryApplyJob;
  if (process.send === undefined) throw new Error("the entry applier runs only as a node's child, with IPC");
  process.on("SIGINT", () => {});
  process.on("message", () => {}); // Keeps the IPC channel, and so this process, alive until the answer.
  await startParentWatchdog(job.watchdogPollMs);
  let reply: EntryApplyReply;
  try {
    applyEntry(job);
    reply = { type: "applied" };
  } catch (error) {
    reply = errorReply(0, error) as EntryApplyReply;
  }
  process.send(reply, () => process.exit(0));
}

await main();
