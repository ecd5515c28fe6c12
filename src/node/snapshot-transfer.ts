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
 * the new one; `snapshot-files.ts` finishes the log reset on the next start. A node whose database is
 * damaged (`storage-heal.ts`) sends none, asks its leader for one (`startRequested`), and takes one
 * even at its own applied index.
 */
import fs from "node:fs";
import type { SnapshotNeeded } from "../consensus/index.ts";
import type { InstallSnapshotMessage } from "../consensus/messages.ts";
import type { LogIndex, NodeId } from "../types/ids.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { NodeConfig } from "./node-config.ts";
import { encodeSnapshotStream, type SnapshotStreamMessage } from "./peer-envelope.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";
import type { SnapshotRef } from "./snapshot-files.ts";
import type { SnapshotKeeper } from "./snapshot-keeper.ts";

export type TransferParts = {
  readonly config: NodeConfig;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  readonly keeper: SnapshotKeeper;
  readonly applied: IndexWaiters;
  readonly send: (peer: NodeId, body: Uint8Array) => void;
  /** Whether this node is a witness now (it never sends its snapshot). */
  readonly isWitness: () => boolean;
  /** This node's database failed a consistency check (`storage-heal.ts`): send none of it, take a leader's. */
  readonly storeDamaged: () => boolean;
  /** A leader's snapshot replaced this node's database. */
  readonly installed: () => void;
  /** Another process applies an entry to this node's database (`entry-applier.ts`): nothing may replace it now. */
  readonly applyingElsewhere: () => boolean;
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
  private readonly parts: TransferParts;
  private readonly outgoing = new Map<NodeId, Outgoing>();
  sent = 0;

  constructor(parts: TransferParts) {
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
    if (this.parts.isWitness()) {
      // A witness's database holds no data: its snapshot must never seed another node. The peer
      // catches up from the next leader, which a witness hands office to at once.
      runtime.logger("warn", "snapshot.witness-sends-none", { peer, needed: needed.index });
      queueMicrotask(() => loop.stepSafely({ type: "snapshotFailed", peer }));
      return;
    }
    const ref = keeper.latest;
    if (ref === null || ref.index < needed.index || this.parts.storeDamaged()) {
      // Compacted only behind a snapshot: a bug unless the keeper lost a race, or the store is damaged.
      // (An unverified store sends its latest file: the keeper takes none while unverified, so every
      // file was taken while a check vouched for the database.)
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

  /**
   * A follower with a damaged database asks for a snapshot at or after its applied index: the latest
   * if it covers that (`start` fills in its header), else one is taken for its next request.
   */
  startRequested(peer: NodeId, appliedIndex: LogIndex): void {
    const { keeper, loop } = this.parts;
    const core = loop.core.summary();
    if (core.role !== "leader" || this.outgoing.has(peer) || this.parts.storeDamaged()) return;
    const ref = keeper.latest;
    if (ref === null || ref.index < appliedIndex) {
      keeper.requestTake();
      return;
    }
    const { term, clusterConfig: snapshotConfig } = core;
    const position = { snapshotIndex: ref.index, snapshotTerm: ref.term, snapshotConfig };
    const message = {
      type: "installSnapshot",
      from: this.parts.config.id,
      to: peer,
      term,
      ...position,
    } as const;
    this.start({ peer, index: ref.index, term: ref.term, snapshotConfig, message });
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
