/**
 * Snapshot transfer, the follower's side: takes a leader's snapshot stream (protocol in
 * `snapshot-transfer.ts`), verifies the whole file, and installs it atomically.
 */
import fs from "node:fs";
import path from "node:path";
import { clusterConfigText } from "../consensus/index.ts";
import type { InstallSnapshotMessage } from "../consensus/messages.ts";
import type { PreparedRestore } from "../store/index.ts";
import { discardRestore, verifySnapshot } from "../store/store-files.ts";
import type { NodeId } from "../types/ids.ts";
import { encodeSnapshotStream, type SnapshotStreamMessage } from "./peer-envelope.ts";
import {
  incomingFileName,
  renameDurably,
  snapshotConfigPath,
  snapshotFileName,
  writeSnapshotConfig,
} from "./snapshot-files.ts";

import type { TransferParts } from "./snapshot-transfer.ts";

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
  private readonly parts: TransferParts;
  private incoming: Incoming | null = null;
  /** Numbers this process's incoming transfers, so each has a part file of its own. */
  private transfers = 0;

  constructor(parts: TransferParts) {
    this.parts = parts;
  }

  onOffer(from: NodeId, totalBytes: number, install: InstallSnapshotMessage): void {
    const { loop, runtime } = this.parts;
    const { snapshotIndex: index, snapshotTerm } = install;
    if (install.term < loop.core.summary().term) return; // a deposed leader's offer
    // A damaged database is replaced even by a snapshot of the state it claims to hold.
    const applied = runtime.store.appliedIndex;
    if (index < applied || (index === applied && !this.parts.storeDamaged())) {
      // Nothing to install: the core answers with where this node stands, and the transfer ends.
      // The core's applied index may still lag the store's (its "applied" report is queued behind
      // this turn): given the message then, it would take the snapshot as restored and compact the
      // log past every snapshot file. The ack alone tells the leader (found at simulator SEED=430).
      if (index <= loop.core.summary().appliedIndex) loop.stepSafely({ type: "message", message: install });
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
        const header = await verifySnapshot(transfer.partPath);
        if (header.appliedIndex !== index)
          throw new Error(`the file holds applied index ${header.appliedIndex}`);
        await writeSnapshotConfig(finalPath, clusterConfigText(transfer.install.snapshotConfig));
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
          void runtime
            .io(() => fs.promises.rm(snapshotConfigPath(finalPath), { force: true }))
            .catch(() => {});
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
      (index > store.appliedIndex || (index === store.appliedIndex && this.parts.storeDamaged())) &&
      store.speculativeIndexes.length === 0 &&
      !this.parts.applyingElsewhere();
    if (!usable) {
      void runtime.io(() => discardRestore(prepared)).catch(() => {});
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
    this.parts.installed();
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
