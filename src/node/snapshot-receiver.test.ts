import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { InstallSnapshotMessage } from "../consensus/messages.ts";
import { type LogIndex, nodeId, type Term } from "../types/ids.ts";
import { decodePeerBody } from "./peer-envelope.ts";
import { SnapshotReceiver } from "./snapshot-receiver.ts";

const chunkBytes = 1024;
const windowChunks = 4;

/** A follower's receiver on a real directory, with the acks it sends recorded. */
function receiver(t: { after: (fn: () => void) => void }) {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-snapshot-receive-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const acks: number[] = [];
  const failures: Error[] = [];
  const parts = {
    config: { snapshotWindowChunks: windowChunks, snapshotChunkBytes: chunkBytes },
    runtime: {
      store: { appliedIndex: 0 },
      snapshotDirectory: directory,
      io: <T>(work: () => Promise<T>) => work(),
      logger: () => {},
    },
    loop: {
      core: { summary: () => ({ term: 1 }) },
      stepSafely: () => {},
      fail: (error: Error) => failures.push(error),
    },
    send: (_peer: unknown, body: Uint8Array) => {
      const decoded = decodePeerBody(body);
      if (decoded.type === "snapshot" && decoded.message.kind === "ack") acks.push(decoded.message.received);
    },
  };
  return { receiver: new SnapshotReceiver(parts as never), acks, failures };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("a window of chunks sent back to back is written in order, none dropped while another is written", async (t) => {
  const { receiver: follower, acks, failures } = receiver(t);
  const leader = nodeId("n1");
  const install = {
    type: "installSnapshot",
    term: 1 as Term,
    from: leader,
    to: nodeId("n2"),
    snapshotIndex: 10 as LogIndex,
    snapshotTerm: 1 as Term,
    snapshotConfig: { voters: [], learners: [] },
  } as unknown as InstallSnapshotMessage;
  const totalBytes = (windowChunks + 1) * chunkBytes; // The window does not finish the snapshot.
  follower.onOffer(leader, totalBytes, install);
  await until("the first ack", () => acks.length > 0);
  for (let chunk = 0; chunk < windowChunks; chunk++) {
    const data = new Uint8Array(chunkBytes).fill(chunk + 1);
    follower.onChunk(leader, {
      kind: "chunk",
      index: 10 as LogIndex,
      term: 1 as Term,
      offset: chunk * chunkBytes,
      data,
    });
  }
  await until("the whole window to be acknowledged", () => acks.at(-1) === windowChunks * chunkBytes);
  assert.deepEqual(
    acks,
    Array.from({ length: windowChunks + 1 }, (_, chunk) => chunk * chunkBytes),
    "each chunk acknowledged once, in order",
  );
  assert.deepEqual(failures, []);
});
