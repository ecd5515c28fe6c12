/**
 * Snapshot transfer: a leader streams its latest snapshot to a follower whose next entry was
 * compacted away, while it goes on serving.
 *
 * Protocol (messages in `peer-envelope.ts`, over the peer transport beside consensus traffic):
 *   leader  → offer {size, installSnapshot message}     "here is snapshot (index, term); where are you?"
 *   follower→ ack {received}                            bytes it already holds of that snapshot
 *   leader  → chunk {offset, data, CRC-32} …            at most `snapshotWindowChunks` beyond the ack
 *   follower→ ack {received} after each chunk written   (a chunk at another offset only re-acks)
 *   follower→ ack {installed} | ack {refused}           after verifying and installing, or not
 * Flow control: the leader never has more than the window unacknowledged. Resume: without progress
 * for `snapshotAckTimeoutMs` the leader offers again and continues from the follower's answer, so a
 * broken connection costs only the unacknowledged window. After `snapshotAttemptsMax` timeouts or
 * refusals in a row the leader gives up and tells the core (`snapshotFailed`); the core asks again.
 *
 * The follower verifies the whole file (header checksum, SHA-256 of every byte, SQLite integrity,
 * the applied index inside equal to the offer's) before anything live changes; a corrupt or partial
 * snapshot is refused. Installing is one synchronous swap of the database file followed, in the same
 * turn, by stepping the leader's installSnapshot message into the core, which makes the log start at
 * the snapshot (or keeps a suffix that continues it). A crash at any point leaves the old state or
 * the new one; `snapshot-files.ts` finishes the log reset on the next start.
 */
import fs from "node:fs";
import path from "node:path";
import type { SnapshotNeeded } from "../consensus/index.ts";
import type { InstallSnapshotMessage } from "../consensus/messages.ts";
import type { PreparedRestore } from "../store/index.ts";
import { Store } from "../store/store.ts";
import type { NodeId } from "../types/ids.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { NodeConfig } from "./node-config.ts";
import { encodeSnapshotStream, type SnapshotStreamMessage } from "./peer-envelope.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";
import { incomingFileName, renameDurably, type SnapshotRef, snapshotFileName } from "./snapshot-files.ts";
import type { SnapshotKeeper } from "./snapshot-keeper.ts";

type Parts = {
  readonly config: NodeConfig;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  readonly keeper: SnapshotKeeper;
  readonly applied: IndexWaiters;
  readonly send: (peer: NodeId, body: Uint8Array) => void;
};

type Outgoing = {
  readonly peer: NodeId;
  readonly ref: SnapshotRef;
  readonly install: InstallSnapshotMessage;
  acked: number;
  sentOffset: number;
  attempts: number;
  progressed: boolean;
  reading: boolean;
  cancelTimer: Cancel;
};

/** Leader side: one outgoing transfer per follower at most. */
export class SnapshotSender {
  private readonly parts: Parts;
  private readonly outgoing = new Map<NodeId, Outgoing>();
  sent = 0;

  constructor(parts: Parts) {
    this.parts = parts;
  }

  get active(): number {
    return this.outgoing.size;
  }

  /** The core asks for a snapshot to `needed.peer`. */
  start(needed: SnapshotNeeded): void {
    const { keeper, runtime, loop } = this.parts;
    const peer = needed.peer;
    if (this.outgoing.has(peer)) return;
    const ref = keeper.latest;
    if (ref === null || ref.index < needed.index) {
      // The log is compacted only behind a snapshot, so this is a bug unless the keeper lost a race.
      runtime.logger("warn", "snapshot.none-to-send", {
        peer,
        needed: needed.index,
        latest: ref?.index ?? null,
      });
      queueMicrotask(() => loop.stepSafely({ type: "snapshotFailed", peer }));
      return;
    }
    // The file may be newer than the index the core asked for: its header carries the
    // configuration as of the file's own index.
    const snapshotConfig = loop.core.configAt(ref.index);
    if (snapshotConfig === undefined) {
      runtime.logger("warn", "snapshot.config-unknown", { peer, index: ref.index });
      queueMicrotask(() => loop.stepSafely({ type: "snapshotFailed", peer }));
      return;
    }
    const install: InstallSnapshotMessage = {
      ...needed.message,
      snapshotIndex: ref.index,
      snapshotTerm: ref.term,
      snapshotConfig,
    };
    const transfer: Outgoing = {
      peer,
      ref,
      install,
      acked: 0,
      sentOffset: 0,
      attempts: 0,
      progressed: false,
      reading: false,
      cancelTimer: runtime.timers.every(this.parts.config.snapshotAckTimeoutMs, () =>
        this.checkProgress(transfer),
      ),
    };
    this.outgoing.set(peer, transfer);
    keeper.acquire(ref);
    runtime.logger("info", "snapshot.send-started", { peer, index: ref.index, bytes: ref.bytes });
    this.offer(transfer);
  }

  /** A follower's acknowledgement. */
  onAck(from: NodeId, message: SnapshotStreamMessage & { kind: "ack" }): void {
    const transfer = this.outgoing.get(from);
    if (transfer === undefined || transfer.ref.index !== message.index || transfer.ref.term !== message.term)
      return;
    if (message.state === "installed") {
      this.finish(transfer, "installed");
      return;
    }
    if (message.state === "refused") {
      transfer.attempts++;
      this.parts.runtime.logger("warn", "snapshot.refused", { peer: from, index: message.index });
      if (transfer.attempts >= this.parts.config.snapshotAttemptsMax) this.finish(transfer, "failed");
      else this.rewind(transfer, 0);
      return;
    }
    if (message.received > transfer.acked) {
      transfer.progressed = true;
      transfer.attempts = 0;
    }
    if (message.received < transfer.acked || message.received > transfer.sentOffset) {
      this.rewind(transfer, message.received);
      return;
    }
    transfer.acked = message.received;
    this.pump(transfer);
  }

  /** Leadership ended or the node stops: every transfer ends without telling the core. */
  abortAll(): void {
    for (const transfer of [...this.outgoing.values()]) this.close(transfer);
  }

  private offer(transfer: Outgoing): void {
    this.parts.send(
      transfer.peer,
      encodeSnapshotStream({ kind: "offer", totalBytes: transfer.ref.bytes, install: transfer.install }),
    );
  }

  private rewind(transfer: Outgoing, offset: number): void {
    transfer.acked = Math.min(offset, transfer.ref.bytes);
    transfer.sentOffset = transfer.acked;
    if (offset === 0) this.offer(transfer);
    else this.pump(transfer);
  }

  private checkProgress(transfer: Outgoing): void {
    if (this.outgoing.get(transfer.peer) !== transfer) return;
    if (transfer.progressed) {
      transfer.progressed = false;
      return;
    }
    transfer.attempts++;
    if (transfer.attempts >= this.parts.config.snapshotAttemptsMax) {
      this.finish(transfer, "failed");
      return;
    }
    // Ask where to resume; the answer rewinds to what the follower really holds.
    transfer.sentOffset = transfer.acked;
    this.offer(transfer);
  }

  /** Sends chunks while the window allows, one file read at a time. */
  private pump(transfer: Outgoing): void {
    const { config, runtime } = this.parts;
    const windowBytes = config.snapshotChunkBytes * config.snapshotWindowChunks;
    if (transfer.reading || this.outgoing.get(transfer.peer) !== transfer) return;
    const offset = transfer.sentOffset;
    if (offset >= transfer.ref.bytes || offset - transfer.acked >= windowBytes) return;
    const length = Math.min(config.snapshotChunkBytes, transfer.ref.bytes - offset);
    transfer.reading = true;
    // The file is opened per chunk: no handle outlives the transfer, and a snapshot replaced by a
    // newer one meanwhile ends this transfer (the core asks again, for the newer one).
    runtime
      .io(async () => {
        const handle = await fs.promises.open(transfer.ref.path, "r");
        try {
          const buffer = new Uint8Array(length);
          const { bytesRead } = await handle.read(buffer, 0, length, offset);
          if (bytesRead !== length) throw new Error(`snapshot ${transfer.ref.path} is shorter than its size`);
          return buffer;
        } finally {
          await handle.close();
        }
      })
      .then(
        (data) => {
          transfer.reading = false;
          if (this.outgoing.get(transfer.peer) !== transfer || transfer.sentOffset !== offset) {
            this.pump(transfer);
            return;
          }
          const { index, term } = transfer.ref;
          this.parts.send(transfer.peer, encodeSnapshotStream({ kind: "chunk", index, term, offset, data }));
          transfer.sentOffset = offset + data.byteLength;
          this.pump(transfer);
        },
        (error: unknown) => {
          transfer.reading = false;
          runtime.logger("warn", "snapshot.read-failed", { peer: transfer.peer, error: String(error) });
          this.finish(transfer, "failed");
        },
      );
  }

  private finish(transfer: Outgoing, outcome: "installed" | "failed"): void {
    const { loop, runtime } = this.parts;
    this.close(transfer);
    runtime.logger(outcome === "installed" ? "info" : "warn", `snapshot.send-${outcome}`, {
      peer: transfer.peer,
      index: transfer.ref.index,
    });
    if (outcome === "installed") this.sent++;
    if (loop.fatal !== null) return;
    const { index, term } = transfer.ref;
    queueMicrotask(() => {
      if (loop.fatal !== null) return;
      if (outcome === "installed")
        loop.stepSafely({ type: "snapshotSent", peer: transfer.peer, index, term });
      else loop.stepSafely({ type: "snapshotFailed", peer: transfer.peer });
    });
  }

  private close(transfer: Outgoing): void {
    if (this.outgoing.get(transfer.peer) !== transfer) return;
    this.outgoing.delete(transfer.peer);
    transfer.cancelTimer();
    this.parts.keeper.release(transfer.ref);
  }
}

type Incoming = {
  readonly from: NodeId;
  readonly install: InstallSnapshotMessage;
  readonly totalBytes: number;
  readonly partPath: string;
  /** Created (and truncated) once; chunk writes wait for it. */
  readonly created: Promise<void>;
  received: number;
  writing: boolean;
  finishing: boolean;
  /**
   * Chunks that arrived while another was being written, by offset: the leader sends a window of
   * them back to back, and dropping them would leave it waiting for its ack timeout before each
   * next chunk (measured: a 3 MB snapshot took 70-80 s). At most `snapshotWindowChunks`.
   */
  readonly waiting: Map<number, SnapshotStreamMessage & { kind: "chunk" }>;
};

/** Follower side: at most one incoming snapshot; a newer offer replaces it. */
export class SnapshotReceiver {
  private readonly parts: Parts;
  private incoming: Incoming | null = null;
  /** Numbers this process's incoming transfers, so each has a part file of its own. */
  private transfers = 0;

  constructor(parts: Parts) {
    this.parts = parts;
  }

  onOffer(from: NodeId, totalBytes: number, install: InstallSnapshotMessage): void {
    const { loop, runtime } = this.parts;
    const { snapshotIndex: index, snapshotTerm } = install;
    if (install.term < loop.core.summary().term) return; // a deposed leader's offer
    if (index <= runtime.store.appliedIndex) {
      // Nothing to install: the core answers with where this node stands, and the transfer ends.
      loop.stepSafely({ type: "message", message: install });
      this.ack(from, install, "installed", 0);
      return;
    }
    const current = this.incoming;
    // Two leaders' snapshots at one position hold the same rows but not the same bytes: a transfer
    // continues only with the leader that started it.
    if (
      current !== null &&
      current.from === from &&
      current.install.snapshotIndex === index &&
      current.install.snapshotTerm === snapshotTerm
    ) {
      if (!current.finishing) this.ack(from, install, "receiving", current.received);
      return;
    }
    if (current !== null) this.drop(current);
    this.transfers++;
    const partPath = path.join(
      runtime.snapshotDirectory,
      incomingFileName(index, snapshotTerm, this.transfers),
    );
    const created = runtime.io(async () => {
      const handle = await fs.promises.open(partPath, "w");
      await handle.close();
    });
    const transfer: Incoming = {
      from,
      install,
      totalBytes,
      partPath,
      created,
      received: 0,
      writing: false,
      finishing: false,
      waiting: new Map(),
    };
    this.incoming = transfer;
    runtime.logger("info", "snapshot.receive-started", { from, index, bytes: totalBytes });
    created.then(
      () => {
        if (this.incoming === transfer) this.ack(from, install, "receiving", 0);
      },
      (error: unknown) => loop.fail(error instanceof Error ? error : new Error(String(error))),
    );
  }

  onChunk(from: NodeId, message: SnapshotStreamMessage & { kind: "chunk" }): void {
    const transfer = this.incoming;
    if (
      transfer === null ||
      transfer.from !== from ||
      transfer.install.snapshotIndex !== message.index ||
      transfer.install.snapshotTerm !== message.term ||
      transfer.finishing
    ) {
      return; // the leader re-offers after its timeout and learns where to resume
    }
    if (transfer.writing) {
      const windowChunks = this.parts.config.snapshotWindowChunks;
      if (message.offset > transfer.received && transfer.waiting.size < windowChunks)
        transfer.waiting.set(message.offset, message);
      return;
    }
    if (
      message.offset !== transfer.received ||
      message.offset + message.data.byteLength > transfer.totalBytes
    ) {
      this.ack(from, transfer.install, "receiving", transfer.received);
      return;
    }
    transfer.writing = true;
    const { runtime, loop } = this.parts;
    runtime
      .io(async () => {
        const handle = await fs.promises.open(transfer.partPath, "r+");
        try {
          await handle.write(message.data, 0, message.data.byteLength, message.offset);
        } finally {
          await handle.close();
        }
      })
      .then(
        () => {
          transfer.writing = false;
          if (this.incoming !== transfer) return;
          transfer.received = message.offset + message.data.byteLength;
          if (transfer.received === transfer.totalBytes) this.finish(transfer);
          else this.ack(from, transfer.install, "receiving", transfer.received);
          this.writeWaiting(from, transfer);
        },
        (error: unknown) => loop.fail(error instanceof Error ? error : new Error(String(error))),
      );
  }

  /** Writes the chunk that waited for the one just written, if it continues it; drops older ones. */
  private writeWaiting(from: NodeId, transfer: Incoming): void {
    for (const offset of transfer.waiting.keys())
      if (offset < transfer.received) transfer.waiting.delete(offset);
    const next = transfer.waiting.get(transfer.received);
    if (next === undefined || this.incoming !== transfer || transfer.finishing) return;
    transfer.waiting.delete(transfer.received);
    this.onChunk(from, next);
  }

  /** The node stops: an incoming snapshot is abandoned (its part file is deleted at the next start). */
  stop(): void {
    this.incoming = null;
  }

  private finish(transfer: Incoming): void {
    transfer.finishing = true;
    const { runtime, loop } = this.parts;
    const { snapshotIndex: index, snapshotTerm } = transfer.install;
    const finalPath = path.join(runtime.snapshotDirectory, snapshotFileName(index, snapshotTerm));
    runtime
      .io(async () => {
        const header = await Store.verifySnapshot(transfer.partPath);
        if (header.appliedIndex !== index)
          throw new Error(`the file holds applied index ${header.appliedIndex}`);
        await renameDurably(transfer.partPath, finalPath);
        return runtime.store.prepareRestore(finalPath);
      })
      .then(
        (prepared) => {
          try {
            this.install(transfer, prepared, finalPath);
          } catch (error) {
            loop.fail(error instanceof Error ? error : new Error(String(error)));
          }
        },
        (error: unknown) => {
          runtime.logger("warn", "snapshot.receive-refused", {
            from: transfer.from,
            index,
            error: String(error),
          });
          if (this.incoming === transfer) this.incoming = null;
          void runtime.io(() => fs.promises.rm(transfer.partPath, { force: true })).catch(() => {});
          void runtime.io(() => fs.promises.rm(finalPath, { force: true })).catch(() => {});
          if (loop.fatal === null) this.ack(transfer.from, transfer.install, "refused", 0);
        },
      );
  }

  /** The synchronous part: swap the database in and step the leader's message, in one turn. */
  private install(transfer: Incoming, prepared: PreparedRestore, finalPath: string): void {
    const { runtime, loop, keeper, applied } = this.parts;
    const store = runtime.store;
    const { snapshotIndex: index, snapshotTerm } = transfer.install;
    if (this.incoming === transfer) this.incoming = null;
    const summary = loop.fatal === null ? loop.core.summary() : null;
    const usable =
      summary !== null &&
      summary.role !== "leader" &&
      transfer.install.term >= summary.term &&
      index > store.appliedIndex &&
      store.speculativeIndexes.length === 0;
    if (!usable) {
      void runtime.io(() => store.discardRestore(prepared)).catch(() => {});
      if (summary !== null && index <= store.appliedIndex)
        this.ack(transfer.from, transfer.install, "installed", 0);
      return;
    }
    store.installRestore(prepared);
    loop.stepSafely({ type: "message", message: transfer.install });
    if (loop.fatal !== null) return;
    keeper.adoptInstalled({ index, term: snapshotTerm, bytes: transfer.totalBytes, path: finalPath });
    applied.advance(store.appliedIndex);
    runtime.observer?.applied(store.appliedIndex);
    runtime.logger("info", "snapshot.installed", { from: transfer.from, index, term: snapshotTerm });
    this.ack(transfer.from, transfer.install, "installed", transfer.totalBytes);
  }

  private drop(transfer: Incoming): void {
    this.incoming = null;
    const { runtime } = this.parts;
    void transfer.created
      .then(() => runtime.io(() => fs.promises.rm(transfer.partPath, { force: true })))
      .catch(() => {});
  }

  private ack(
    to: NodeId,
    install: InstallSnapshotMessage,
    state: "receiving" | "installed" | "refused",
    received: number,
  ): void {
    this.parts.send(
      to,
      encodeSnapshotStream({
        kind: "ack",
        index: install.snapshotIndex,
        term: install.snapshotTerm,
        state,
        received,
      }),
    );
  }
}
