/**
 * In-memory double of the state machine (what SQLite is to the real node).
 *
 * It applies committed `command` entries in index order and records the applied sequence of write
 * ids, which the checkers compare across nodes (state machine safety: every node applies the same
 * sequence, each write at most once). Like the store, it persists its applied index together with
 * its data, so it survives a crash as is.
 */
import { assert } from "../../src/lib/assert.ts";
import { type LogIndex, logIndex, type Term } from "../../src/types/ids.ts";
import { EntryKind, type LogEntry } from "../../src/types/log-entry.ts";

export type StateMachineSnapshot = {
  readonly index: LogIndex;
  readonly term: Term;
  readonly writeIds: readonly number[];
};

export function encodeWriteId(writeId: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, writeId);
  return bytes;
}

export function decodeWriteId(data: Uint8Array): number {
  assert(data.byteLength === 4, "a simulated write carries a 4-byte id");
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
}

export class MemoryStateMachine {
  appliedIndex: LogIndex = logIndex(0);
  private writeIds: number[] = [];
  private readonly seen = new Set<number>();

  get sequence(): readonly number[] {
    return this.writeIds;
  }

  contains(writeId: number): boolean {
    return this.seen.has(writeId);
  }

  /** Applies the next entry; returns the write id for a command, null otherwise. */
  apply(entry: LogEntry): number | null {
    assert(entry.index === this.appliedIndex + 1, `apply of ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    if (entry.kind !== EntryKind.command) return null;
    const writeId = decodeWriteId(entry.data);
    assert(!this.seen.has(writeId), `write ${writeId} applied twice`);
    this.seen.add(writeId);
    this.writeIds.push(writeId);
    return writeId;
  }

  snapshot(term: Term): StateMachineSnapshot {
    return { index: this.appliedIndex, term, writeIds: [...this.writeIds] };
  }

  restore(snapshot: StateMachineSnapshot): void {
    assert(snapshot.index > this.appliedIndex, "restoring an older snapshot");
    this.appliedIndex = snapshot.index;
    this.writeIds = [...snapshot.writeIds];
    this.seen.clear();
    for (const writeId of this.writeIds) this.seen.add(writeId);
  }
}
