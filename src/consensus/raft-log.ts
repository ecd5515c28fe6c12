/**
 * The in-memory Raft log: every entry after the last snapshot, plus the snapshot's position and
 * the cluster configuration at the snapshot index.
 *
 * Indexes start at 1; position (0, 0) is the empty log. After compaction the log remembers the
 * snapshot's index and term so that it can still answer "what term is at snapshotIndex?" for the
 * AppendEntries consistency check (Raft §5.3, §7).
 *
 * Invariants: entries are contiguous from `snapshotIndex + 1`; terms never decrease along the log;
 * the first entry's term is at least `snapshotTerm`. This module does not know which entries are
 * committed or durable: the callers guard truncation (never at or below the commit index).
 *
 * Configuration (dissertation §4.1): the log's configuration is that of its latest configuration
 * entry, committed or not, or the snapshot's when it holds none. The log tracks its configuration
 * entries itself, so that every append, truncation, compaction and reset keeps it right: appending
 * a configuration entry adopts it at once, truncating it reverts to the one before, and compaction
 * folds the configuration at the new snapshot index into `snapshotConfig`.
 *
 * Memory: with an `EntryReader` (the host's durable log), the log keeps the data of at most
 * `dataBytesMax` bytes of entries; `releaseApplied` drops the data of the oldest applied entries
 * beyond it, keeping their index, term and kind. Every read of a released entry (`entryAt`, `slice`)
 * loads it back through the reader, so callers see whole entries either way. Only applied entries
 * are released: they are committed and durable, so no truncation, reset or apply ever needs their
 * data from memory, and the host's log holds them until both compact past them.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type NodeId, type Term, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import {
  assertValidClusterConfig,
  type ClusterConfig,
  decodeClusterConfig,
  normalizeClusterConfig,
} from "./cluster-config.ts";

/** A configuration entry held in memory. */
type ConfigEntry = { readonly index: LogIndex; readonly config: ClusterConfig };

/** Reads entries in [from, toExclusive) back from the host's durable log. */
export type EntryReader = (from: LogIndex, toExclusive: LogIndex) => readonly LogEntry[];

/** An entry whose data the log released: kept for its term and kind, its data read back on demand. */
type ReleasedEntry = {
  readonly index: LogIndex;
  readonly term: Term;
  readonly kind: EntryKind;
  /** The released data's length, for the byte bounds of `slice`. */
  readonly releasedBytes: number;
};

type HeldEntry = LogEntry | ReleasedEntry;

function isReleased(entry: HeldEntry): entry is ReleasedEntry {
  return "releasedBytes" in entry;
}

/** Where released data comes from, and how much data the log may hold. */
export type LogMemory = { readonly reader: EntryReader; readonly dataBytesMax: number };

/** Bytes charged per entry on top of its data when sizing a batch (index, term, kind, framing). */
export const entryOverheadBytes = 24;

export class RaftLog {
  private entries: HeldEntry[];
  /** Entries through this index (and above the snapshot index) have their data released. */
  private releasedThrough: LogIndex;
  /** The data bytes of the entries not released. */
  private heldDataBytes = 0;
  private readonly memory: LogMemory | null;
  private snapshotIndexValue: LogIndex;
  private snapshotTermValue: Term;
  private snapshotConfigValue: ClusterConfig;
  /** The configuration entries among `entries`, in index order. */
  private configs: ConfigEntry[] = [];
  /** Every member of the snapshot's configuration and of every configuration entry held. */
  private known = new Set<NodeId>();

  constructor(
    snapshotIndex: LogIndex,
    snapshotTerm: Term,
    entries: readonly LogEntry[],
    snapshotConfig: ClusterConfig,
    memory: LogMemory | null = null,
  ) {
    assert(snapshotIndex >= 0 && snapshotTerm >= 0, "snapshot position must be non-negative");
    assert(snapshotIndex > 0 || snapshotTerm === 0, "the empty snapshot has term 0");
    assertValidClusterConfig(snapshotConfig);
    this.snapshotIndexValue = snapshotIndex;
    this.snapshotTermValue = snapshotTerm;
    // A copy: the host's object must not be able to change the configuration behind the log's back.
    this.snapshotConfigValue = normalizeClusterConfig(snapshotConfig);
    this.entries = [];
    this.releasedThrough = snapshotIndex;
    assert(memory === null || memory.dataBytesMax >= 0, "the log's data bound is not negative");
    this.memory = memory;
    this.recountKnown();
    for (const entry of entries) this.append(entry);
  }

  /**
   * Whether `id` is a member of any configuration this log holds (the snapshot's or an entry's,
   * committed or not). Messages from anyone else are ignored; the members of older configurations
   * stay known so that a leader removing itself (dissertation §4.2.2) is still heard.
   */
  isKnown(id: NodeId): boolean {
    return this.known.has(id);
  }

  private recountKnown(): void {
    this.known = new Set([...this.snapshotConfigValue.voters, ...this.snapshotConfigValue.learners]);
    for (const { config } of this.configs)
      for (const id of [...config.voters, ...config.learners]) this.known.add(id);
  }

  /** The configuration as of the snapshot index. */
  get snapshotConfig(): ClusterConfig {
    return this.snapshotConfigValue;
  }

  /** The log's configuration: its latest configuration entry's, committed or not, else the snapshot's. */
  get config(): ClusterConfig {
    return this.configs.at(-1)?.config ?? this.snapshotConfigValue;
  }

  /**
   * The index of the latest configuration entry, or the snapshot index when the configuration comes
   * from the snapshot (it is committed then, whatever index it was first written at).
   */
  get configIndex(): LogIndex {
    return this.configs.at(-1)?.index ?? this.snapshotIndexValue;
  }

  /** The configuration as of `index` (at or after the snapshot index). */
  configAt(index: LogIndex): ClusterConfig {
    assert(index >= this.snapshotIndexValue, `configuration at ${index} below the snapshot`);
    let config = this.snapshotConfigValue;
    for (const entry of this.configs) {
      if (entry.index > index) break;
      config = entry.config;
    }
    return config;
  }

  get snapshotIndex(): LogIndex {
    return this.snapshotIndexValue;
  }

  get snapshotTerm(): Term {
    return this.snapshotTermValue;
  }

  get firstIndex(): LogIndex {
    return logIndex(this.snapshotIndexValue + 1);
  }

  get lastIndex(): LogIndex {
    return logIndex(this.snapshotIndexValue + this.entries.length);
  }

  get lastTerm(): Term {
    return this.entries.at(-1)?.term ?? this.snapshotTermValue;
  }

  /** The term at `index`, or undefined when `index` is compacted away (below the snapshot) or beyond the end. */
  /** The term of entry `index`; a released entry keeps its term, so this never reads data back. */
  termAt(index: number): Term | undefined {
    if (index === this.snapshotIndexValue) return this.snapshotTermValue;
    return this.heldAt(index)?.term;
  }

  entryAt(index: number): LogEntry | undefined {
    const held = this.heldAt(index);
    if (held === undefined || !isReleased(held)) return held;
    return this.readBack(held.index, logIndex(held.index + 1))[0];
  }

  private heldAt(index: number): HeldEntry | undefined {
    if (index <= this.snapshotIndexValue || index > this.lastIndex) return undefined;
    const entry = this.entries[index - this.snapshotIndexValue - 1];
    assert(entry !== undefined && entry.index === index, `log entry ${index} misplaced`);
    return entry;
  }

  /** Released entries [from, toExclusive), read back; each must be the entry the log held there. */
  private readBack(from: LogIndex, toExclusive: LogIndex): LogEntry[] {
    assert(
      this.memory !== null && toExclusive - 1 <= this.releasedThrough,
      "only released entries are read back",
    );
    const read = this.memory.reader(from, toExclusive);
    assert(read.length === toExclusive - from, `read back ${read.length} entries of ${toExclusive - from}`);
    return read.map((entry, i) => {
      const held = this.heldAt(from + i);
      assert(
        held !== undefined &&
          entry.index === held.index &&
          entry.term === held.term &&
          entry.kind === held.kind,
        `entry ${from + i} read back differs from the one released`,
      );
      return entry;
    });
  }

  /**
   * Releases the data of the oldest entries at or below `appliedIndex` while the log holds more
   * than its bound (no-op without a reader).
   */
  releaseApplied(appliedIndex: LogIndex): void {
    if (this.memory === null) return;
    const through = Math.min(appliedIndex, this.lastIndex);
    while (this.heldDataBytes > this.memory.dataBytesMax && this.releasedThrough < through) {
      const at = this.releasedThrough - this.snapshotIndexValue;
      const entry = this.entries[at];
      assert(entry !== undefined && !isReleased(entry), `entry ${this.releasedThrough + 1} held`);
      this.entries[at] = {
        index: entry.index,
        term: entry.term,
        kind: entry.kind,
        releasedBytes: entry.data.byteLength,
      };
      this.heldDataBytes -= entry.data.byteLength;
      this.releasedThrough = logIndex(this.releasedThrough + 1);
    }
  }

  /**
   * Gives every held entry's data a buffer of its own. Entries recovered from disk are views into
   * whole segment buffers (`recovery.ts`), any of which one held view would keep alive.
   */
  ownHeldData(): void {
    for (const [at, entry] of this.entries.entries()) {
      if (isReleased(entry) || entry.data.byteLength === entry.data.buffer.byteLength) continue;
      this.entries[at] = { ...entry, data: entry.data.slice() };
    }
  }

  /** The data bytes the log holds in memory (released entries excluded). */
  get dataBytesHeld(): number {
    return this.heldDataBytes;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up-to-date as this one? */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  append(entry: LogEntry): void {
    assert(entry.index === this.lastIndex + 1, `append of index ${entry.index} after ${this.lastIndex}`);
    assert(entry.term >= this.lastTerm, `append of term ${entry.term} after term ${this.lastTerm}`);
    // Dissertation §4.1: a server uses a configuration from the moment its entry is in its log.
    if (entry.kind === EntryKind.config) {
      const config = decodeClusterConfig(entry.data);
      this.configs.push({ index: entry.index, config });
      for (const id of [...config.voters, ...config.learners]) this.known.add(id);
    }
    this.entries.push(entry);
    this.heldDataBytes += entry.data.byteLength;
  }

  /** Drops every entry after `index` and returns them. The caller guarantees none is committed. */
  truncateAfter(index: LogIndex): LogEntry[] {
    assert(
      index >= this.snapshotIndexValue,
      `truncation at ${index} below the snapshot ${this.snapshotIndexValue}`,
    );
    assert(index < this.lastIndex, `truncation at ${index} drops nothing (last ${this.lastIndex})`);
    assert(
      index >= this.releasedThrough,
      `truncation at ${index} below released entry ${this.releasedThrough}`,
    );
    const dropped = this.entries.splice(index - this.snapshotIndexValue) as LogEntry[];
    for (const entry of dropped) this.heldDataBytes -= entry.data.byteLength;
    assert(this.lastIndex === index, "truncation left the wrong last index");
    // A truncated configuration entry no longer counts: the one before it applies again.
    const configCount = this.configs.length;
    while ((this.configs.at(-1)?.index ?? 0) > index) this.configs.pop();
    if (this.configs.length !== configCount) this.recountKnown();
    return dropped;
  }

  /**
   * Entries in [from, through], stopping early at `entriesMax` entries or once `bytesMax` would be
   * exceeded; at least one entry when any is available, so an oversized entry still moves.
   */
  slice(from: LogIndex, through: LogIndex, entriesMax: number, bytesMax: number): LogEntry[] {
    assert(from > this.snapshotIndexValue, `slice from ${from} reaches into the snapshot`);
    assert(entriesMax >= 1 && bytesMax >= 1, "slice bounds must be positive");
    const result: HeldEntry[] = [];
    let bytes = 0;
    for (let index = from; index <= through && result.length < entriesMax; index++) {
      const entry = this.heldAt(index);
      assert(entry !== undefined, `slice past the end at ${index}`);
      bytes += (isReleased(entry) ? entry.releasedBytes : entry.data.byteLength) + entryOverheadBytes;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    // Released entries form a prefix of the log, so of the slice too: one read brings them back.
    const releasedCount = result.filter(isReleased).length;
    if (releasedCount === 0) return result as LogEntry[];
    const loaded = this.readBack(from, logIndex(from + releasedCount));
    return [...loaded, ...(result.slice(releasedCount) as LogEntry[])];
  }

  /** The last index holding `entryTerm` at or below `atOrBelow`, or undefined if none is in memory. */
  lastIndexOfTerm(entryTerm: Term, atOrBelow: LogIndex): LogIndex | undefined {
    for (let index = Math.min(atOrBelow, this.lastIndex); index >= this.snapshotIndexValue; index--) {
      const found = this.termAt(index);
      assert(found !== undefined, "log hole while scanning terms");
      if (found === entryTerm) return logIndex(index);
      if (found < entryTerm) return undefined;
    }
    return undefined;
  }

  /** The first index of the run of `entryTerm` that contains `index`, not going below `floor`. */
  firstIndexOfTermRun(index: LogIndex, floor: LogIndex): LogIndex {
    const runTerm = this.termAt(index);
    assert(runTerm !== undefined, `no entry at ${index}`);
    let first = index;
    while (first - 1 > floor && first - 1 > this.snapshotIndexValue && this.termAt(first - 1) === runTerm)
      first--;
    return logIndex(first);
  }

  /** Forgets entries up to `index` after the host took a snapshot there (Raft §7). */
  compact(index: LogIndex, snapshotTerm: Term): void {
    assert(index > this.snapshotIndexValue && index <= this.lastIndex, `compaction at ${index} out of range`);
    assert(this.termAt(index) === snapshotTerm, `compaction term mismatch at ${index}`);
    this.snapshotConfigValue = this.configAt(index);
    this.configs = this.configs.filter((entry) => entry.index > index);
    this.recountKnown();
    for (const entry of this.entries.splice(0, index - this.snapshotIndexValue))
      if (!isReleased(entry)) this.heldDataBytes -= entry.data.byteLength;
    this.releasedThrough = logIndex(Math.max(this.releasedThrough, index));
    this.snapshotIndexValue = index;
    this.snapshotTermValue = snapshotTerm;
  }

  /** Replaces the whole log by a snapshot position (the follower installed a snapshot its log cannot join). */
  resetToSnapshot(index: LogIndex, snapshotTerm: Term, snapshotConfig: ClusterConfig): void {
    assert(index > 0 && snapshotTerm > 0, "reset to an empty snapshot");
    assertValidClusterConfig(snapshotConfig);
    this.entries = [];
    this.heldDataBytes = 0;
    this.releasedThrough = index;
    this.configs = [];
    this.snapshotConfigValue = normalizeClusterConfig(snapshotConfig);
    this.recountKnown();
    this.snapshotIndexValue = index;
    this.snapshotTermValue = term(snapshotTerm);
  }
}
