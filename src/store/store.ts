/**
 * The store: a node's SQLite database as the Raft state machine (DESIGN.md §1, §2).
 *
 * Leader path (speculative transaction). The first `execute` opens one write transaction (`BEGIN
 * IMMEDIATE`, foreign keys on) that stays open across batches. Each batch runs in a SAVEPOINT: on
 * failure it rolls back to it and leaves no trace; on success it is released into the outer
 * transaction and its log index is remembered as speculative. Later batches therefore see the effects
 * of earlier uncommitted ones (AUTOINCREMENT, uniqueness, read-modify-write), while readers, on the
 * separate read connection, see only committed state. When Raft commits the last speculative entry
 * the node calls `commitSpeculative`, which records the applied index in the same transaction and
 * COMMITs; on losing leadership it calls `rollbackSpeculative`.
 *
 * Replica path. `apply` applies a committed payload in one transaction recording its index; an index
 * at or below the applied one is a no-op (exactly-once replay after a crash), a gap is a bug.
 *
 * Invariants: applied index < every speculative index, strictly increasing; `apply` never runs while
 * a speculative transaction is open; the applied index on disk always matches the data on disk.
 */
import path from "node:path";
import { assert } from "../lib/assert.ts";
import { BatonError } from "../lib/errors.ts";
import type { LogIndex } from "../types/ids.ts";
import { adoptBatchInto } from "./adopted-batch.ts";
import { BoundedReads } from "./bounded-reads.ts";
import { BackgroundCheckpoints } from "./checkpointer.ts";
import { type Connections, closeConnections, openConnections } from "./connections.ts";
import { computeContentHash } from "./content-hash.ts";
import { ContentHashJob } from "./database-check.ts";
import { type HistoryReads, historyReads } from "./history-table.ts";
import { internalStatement } from "./internal-statements.ts";
import { GroupTransactionLost } from "./leader-batch.ts";
import { lostGroup, lostTransactionError, runGroupEntry, undoGroup } from "./leader-group.ts";
import { decodePayload } from "./payload.ts";
import { runQuery, runQueryIf } from "./query-run.ts";
import { ReadTurn } from "./read-turn.ts";
import { applyInTransaction } from "./replica-apply.ts";
import { lookupRequest, type RememberedRequest } from "./request-log.ts";
import { describeTable, type TableColumns } from "./schema-rules.ts";
import { SequenceCounters } from "./sequence-counters.ts";
import * as snapshotFile from "./snapshot-file.ts";
import type { StatementCacheStats } from "./statement-cache.ts";
import { StatementCost } from "./statement-cost.ts";
import { openPaths } from "./store-files.ts";
import { type StoreLimits, storeLimitsOf } from "./store-limits.ts";
import { TriggerSuspension } from "./trigger-suspension.ts";
import type {
  AdoptedBatch,
  AdoptOptions,
  ApplyOutcome,
  DiscardedBatch,
  ExecuteOptions,
  ExecuteResult,
  GroupedBatch,
  GroupOptions,
  GroupResult,
  QueryOptions,
  QueryResult,
  SnapshotInfo,
  Statement,
  StoreOptions,
} from "./types.ts";
import type { StatementLimits } from "./values.ts";

export { resultBytesMaxDefault, resultRowsMaxDefault } from "./query-run.ts";
export { storeDefaults } from "./store-limits.ts";

const batchSavepoint = "baton_batch";

export class Store {
  readonly path: string;
  readonly #limits: StoreLimits;
  #connections: Connections | null;
  readonly #triggers = new TriggerSuspension();
  readonly #counters = new SequenceCounters();
  readonly #cost = new StatementCost();
  readonly #boundedReads = new BoundedReads();
  readonly #readTurn = new ReadTurn();
  readonly #endOwnReads = (): void => this.#readTurn.end();
  #appliedIndex: LogIndex;
  #speculative: LogIndex[] = [];
  #replayRequiredThrough: LogIndex | null = null;
  /** Which settings the write connection has: foreign keys and CHECKs enforced (leader) or not. */
  #connectionMode: "leader" | "replica" | null = null;
  /** The open speculative transaction holds a batch adopted from elsewhere (`adoptBatch`). */
  #holdsAdopted = false;
  /** Another process applies an entry on this file (`applyElsewhere`): nothing writes here meanwhile. */
  #elsewhere = false;
  /** Background checkpoints (`checkpointer.ts`), once started; null: SQLite's automatic ones. */
  #checkpoints: BackgroundCheckpoints | null = null;

  private constructor(filePath: string, limits: StoreLimits, connections: Connections) {
    this.path = filePath;
    this.#limits = limits;
    this.#connections = connections;
    this.#appliedIndex = connections.writeMeta.readAppliedIndex();
  }

  /** Opens the store at `options.path`, creating the database if it does not exist. */
  static open(options: StoreOptions): Store {
    const filePath = path.resolve(options.path);
    assert(!openPaths.has(filePath), `a store is already open on ${filePath}`);
    const limits = storeLimitsOf(options);
    const store = new Store(filePath, limits, openConnections(filePath, limits.busyTimeoutMs));
    openPaths.add(filePath);
    return store;
  }

  /** The index of the last entry whose effects are committed in SQLite. */
  get appliedIndex(): LogIndex {
    return this.#appliedIndex;
  }
  /** Indexes of batches executed in the open speculative transaction, ascending. */
  get speculativeIndexes(): readonly LogIndex[] {
    return [...this.#speculative];
  }
  get lastSpeculativeIndex(): LogIndex | null {
    return this.#speculative.at(-1) ?? null;
  }
  get speculativeCount(): number {
    return this.#speculative.length;
  }
  /** The open speculative transaction holds an adopted batch: nothing may join it (see `adoptBatch`). */
  get holdsAdoptedBatch(): boolean {
    return this.#holdsAdopted;
  }
  /**
   * Set when SQLite itself rolled back the speculative transaction (a statement with `OR ROLLBACK`,
   * `RAISE(ROLLBACK)` or an I/O error): the entries up to this index are in the log but no longer in
   * SQLite, so the node must `apply` them as they commit before `execute` is allowed again.
   */
  get replayRequiredThrough(): LogIndex | null {
    return this.#replayRequiredThrough;
  }

  /** No transaction is open here and no other process applies an entry: this store may write. */
  #idle(): boolean {
    return this.#speculative.length === 0 && !this.#open().write.isTransaction && !this.#elsewhere;
  }

  #open(): Connections {
    assert(this.#connections !== null, "store is closed");
    return this.#connections;
  }

  /** Drops every cache derived from the schema or from the write transaction's content. */
  #schemaChanged(): void {
    this.#triggers.invalidate();
    this.#counters.invalidate();
    this.#cost.clear();
    this.#open().writeStatements.clear();
  }

  /** Sets foreign keys and CHECK enforcement; only possible outside a transaction. */
  #useMode(mode: "leader" | "replica"): void {
    const { write } = this.#open();
    if (this.#connectionMode === mode) return;
    assert(!write.isTransaction, "connection settings change only outside a transaction");
    const leader = mode === "leader";
    write.exec(
      `PRAGMA foreign_keys=${leader ? "ON" : "OFF"}; PRAGMA ignore_check_constraints=${leader ? "OFF" : "ON"}`,
    );
    const foreignKeys = write.prepare("PRAGMA foreign_keys").get()?.foreign_keys;
    assert(foreignKeys === (leader ? 1n : 0n), `foreign keys ${leader ? "on" : "off"} for ${mode} mode`);
    this.#connectionMode = mode;
    // Applies ran in between (DDL ops, suspended triggers): compile client statements afresh.
    this.#open().writeStatements.clear();
  }

  /**
   * Runs a batch on the leader as the payload for log index `index`, which the caller will propose
   * (a group of one, below). Nothing is visible to readers or durable in SQLite until
   * `commitSpeculative`. A failing statement throws and leaves no trace.
   */
  execute(index: LogIndex, statements: readonly Statement[], options: ExecuteOptions = {}): ExecuteResult {
    const { batches, payload, counters, reservations } = this.executeGroup(
      index,
      [{ statements, options }],
      options,
    );
    assert(batches[0]?.kind === "done" && payload !== null, "a group of one batch either runs it or throws");
    return { results: batches[0].results, payload, counters, reservations };
  }

  /**
   * Runs several client batches on the leader as ONE entry at `index` (leader-group.ts), each with a
   * result of its own. A batch that fails leaves no trace and the others stand; when none ran, the
   * payload is null and nothing joined the transaction. A group of one throws like `execute`. Errors
   * of the group as a whole (too many open batches, a replay required) throw.
   */
  executeGroup(index: LogIndex, batches: readonly GroupedBatch[], options: GroupOptions = {}): GroupResult {
    const { write } = this.#open();
    assert(index > this.#appliedIndex, `execute at ${index} not after applied index ${this.#appliedIndex}`);
    const last = this.lastSpeculativeIndex;
    assert(last === null || index > last, `execute at ${index} not after speculative index ${last}`);
    this.#checkCanSpeculate();
    assert(!this.#holdsAdopted, "no batch joins a transaction that holds an adopted batch");
    if (last === null) {
      this.#useMode("leader");
      internalStatement(write, "BEGIN IMMEDIATE").run();
    }
    internalStatement(write, `SAVEPOINT ${batchSavepoint}`).run();
    try {
      const { writeGuard: guard, writeStatements: statements } = this.#open();
      const context = { db: write, guard, statements, counters: this.#counters, limits: this.#limits };
      const schemaChanged = () => this.#schemaChanged();
      const group = runGroupEntry({ ...context, schemaChanged }, index, batches, options);
      if (group.payload === null) this.#abandonBatch(null);
      else internalStatement(write, `RELEASE ${batchSavepoint}`).run();
      if (group.payload !== null) this.#speculative.push(index);
      return group;
    } catch (error) {
      if (!(error instanceof GroupTransactionLost)) throw this.#abandonBatch(error);
      return lostGroup(batches.length, error.batchIndex, this.#abandonBatch(error.cause));
    }
  }

  /**
   * Whether the batch provably runs in bounded time here (statement-cost.ts): such a batch may run
   * on the node's event loop; any other belongs in the write sandbox. Judged
   * with the leader's settings (foreign keys on, which adds their checks to the program); while an
   * adopted batch holds the transaction in replica settings the answer is no.
   */
  isBoundedBatch(statements: readonly Statement[]): boolean {
    const { write } = this.#open();
    if (this.#connectionMode !== "leader") {
      if (write.isTransaction) return false;
      this.#useMode("leader");
    }
    return this.#cost.isBoundedBatch(write, statements);
  }

  /**
   * Opens a speculative transaction holding batch `index`, which ran elsewhere on this very state
   * (see adopted-batch.ts; with `applyElsewhere`, none). Nothing may join that transaction: the caller
   * commits or rolls it back first. Returns the payload to propose.
   */
  adoptBatch(index: LogIndex, adopted: AdoptedBatch, options: AdoptOptions = {}) {
    const connections = this.#open();
    assert(this.#speculative.length === 0 && !connections.write.isTransaction, "an adopted batch is alone");
    assert(index === this.#appliedIndex + 1, `adopt at ${index} after applied index ${this.#appliedIndex}`);
    this.#checkCanSpeculate();
    this.#useMode("replica");
    const context = {
      ...connections,
      triggers: this.#triggers,
      counters: this.#counters,
      schemaChanged: () => this.#schemaChanged(),
      requestWindow: { entries: this.#limits.requestWindowEntries, ms: this.#limits.requestWindowMs },
      payloadBytesMax: this.#limits.payloadBytesMax,
    };
    const payload = adoptBatchInto(context, index, adopted, options.request, options.applyElsewhere === true);
    if (options.applyElsewhere === true) return { payload };
    this.#speculative.push(index);
    this.#holdsAdopted = true;
    return { payload };
  }

  #checkCanSpeculate(): void {
    assert(!this.#elsewhere, "a batch runs while an entry is applied elsewhere");
    const { speculativeBatchesMax } = this.#limits;
    if (this.#speculative.length >= speculativeBatchesMax) {
      const message = `${this.#speculative.length} batches await commit; at most ${speculativeBatchesMax}`;
      throw new BatonError("OVERLOADED", message, { speculativeBatchesMax });
    }
    const replay = this.#replayRequiredThrough;
    if (replay !== null) {
      const message = `entries up to ${replay} must be applied before new batches run; retry`;
      throw new BatonError("OVERLOADED", message, { replayRequiredThrough: replay });
    }
  }

  /** Undoes a failed batch; returns the error to throw. */
  #abandonBatch(error: unknown): unknown {
    this.#schemaChanged();
    if (undoGroup(this.#open().write, batchSavepoint, this.#speculative.length > 0)) return error;
    // SQLite ended the whole transaction itself: every speculative batch went with it.
    const lost = this.#speculative;
    this.#speculative = [];
    if (lost.length === 0) return error;
    this.#replayRequiredThrough = lost.at(-1)!;
    return lostTransactionError(error, lost);
  }

  /** Commits the speculative transaction once Raft has committed its last batch, `upToIndex`. */
  commitSpeculative(upToIndex: LogIndex): void {
    const { write, writeMeta } = this.#open();
    const last = this.lastSpeculativeIndex;
    assert(
      last !== null && upToIndex === last,
      `commitSpeculative(${upToIndex}) but the last speculative index is ${last}`,
    );
    assert(write.isTransaction, "a speculative transaction is open");
    writeMeta.writeAppliedIndex(upToIndex);
    internalStatement(write, "COMMIT").run();
    this.#checkpoints?.afterCommit(write, this.#endOwnReads);
    this.#appliedIndex = upToIndex;
    this.#speculative = [];
    this.#holdsAdopted = false;
  }

  /**
   * Discards every speculative batch (leadership lost); returns their indexes. Entries lost earlier
   * (see `replayRequiredThrough`) are in the same position now, so that requirement ends too: what
   * becomes of them is for the next leader's log to say.
   */
  rollbackSpeculative(): DiscardedBatch[] {
    const { write } = this.#open();
    const discarded = this.#speculative.map((index) => ({ index }));
    if (write.isTransaction) write.exec("ROLLBACK");
    if (this.#holdsAdopted) this.#triggers.forgetAfterRollback();
    this.#speculative = [];
    this.#holdsAdopted = false;
    this.#replayRequiredThrough = null;
    this.#schemaChanged();
    return discarded;
  }

  /** Applies committed entry `index` (replica path; an empty payload for no-op and configuration entries); a replay is a no-op. */
  apply(index: LogIndex, payload: Uint8Array): ApplyOutcome {
    return this.applyBatch([{ index, payload }]);
  }

  /** Applies consecutive committed entries in ONE transaction recording the last index (skips replays). */
  applyBatch(entries: readonly { readonly index: LogIndex; readonly payload: Uint8Array }[]): ApplyOutcome {
    const { write, writeMeta } = this.#open();
    assert(this.#idle(), "apply while a speculative transaction is open or an entry is applied elsewhere");
    const fresh = entries.filter((entry) => entry.index > this.#appliedIndex);
    const last = fresh.at(-1);
    if (last === undefined) return "already-applied";
    for (const [i, entry] of fresh.entries()) {
      assert(
        entry.index === this.#appliedIndex + 1 + i,
        `apply(${entry.index}) leaves a gap after applied index ${this.#appliedIndex + i}`,
      );
    }
    const decoded = fresh.map((entry) => decodePayload(entry.payload));
    this.#useMode("replica");
    const schemaChanged = () => this.#schemaChanged();
    const context = { db: write, triggers: this.#triggers, counters: this.#counters, schemaChanged };
    applyInTransaction(context, writeMeta, decoded, last.index);
    this.#checkpoints?.afterCommit(write, this.#endOwnReads);
    this.#advanceApplied(last.index);
    return "applied";
  }

  /** Committed entries through `index` were applied (changesets and sequence ops change the counters). */
  #advanceApplied(index: LogIndex): void {
    this.#counters.invalidate();
    this.#appliedIndex = index;
    if (this.#replayRequiredThrough !== null && index >= this.#replayRequiredThrough)
      this.#replayRequiredThrough = null;
  }

  /**
   * Applies entry `index` through `run`, which commits it in another process (`entry-applier.ts`) while
   * this store writes nothing. Applied on disk (even by a process that died then), it is taken in.
   */
  async applyElsewhere(index: LogIndex, run: () => Promise<Error | null>): Promise<void> {
    assert(this.#idle() && index === this.#appliedIndex + 1, `apply ${index} after ${this.#appliedIndex}`);
    this.#elsewhere = true;
    const failure = await run();
    this.#elsewhere = false;
    const onDisk = this.#open().writeMeta.readAppliedIndex();
    assert(onDisk === index || (onDisk === index - 1 && failure !== null), `${onDisk} on disk, not ${index}`);
    if (onDisk !== index) throw failure;
    this.#schemaChanged(); // the entry may hold DDL
    this.#advanceApplied(index);
  }

  /**
   * The remembered outcome of a write carrying `requestId`, including speculative batches of this
   * leader (the write connection sees them); null when unknown within the window.
   */
  lookupRequest(requestId: string): RememberedRequest | null {
    return lookupRequest(this.#open().write, requestId);
  }

  /** Hits, misses and entries of the prepared-statement caches of execute batches and of queries. */
  get preparedStatements(): { readonly execute: StatementCacheStats; readonly query: StatementCacheStats } {
    const { writeStatements, readStatements } = this.#open();
    return { execute: writeStatements.stats, query: readStatements.stats };
  }

  /** Runs read-only statements on the committed state, all in one read transaction. */
  query(statements: readonly Statement[], options: QueryOptions = {}): QueryResult {
    return runQuery(this.#readSide(), statements, this.queryLimits, options);
  }

  /** As `query` when every statement is provably short (bounded-reads.ts; read-turn.ts), else null. */
  queryIfBounded(statements: readonly Statement[], options: QueryOptions = {}): QueryResult | null {
    const side = this.#open();
    const shared = this.#readTurn.shared(side.read, this.#appliedIndex, this.#elsewhere);
    const gate = this.#boundedReads.gateFor(side.read);
    return runQueryIf(side, statements, this.queryLimits, options, gate, shared);
  }

  /** Ends the read transaction short queries share; call when the turn's work is done. */
  endReadTurn(): void {
    this.#readTurn.end();
  }
  /** The connections, with no shared read transaction open on the read one. */
  #readSide(): Connections {
    this.#readTurn.end();
    return this.#open();
  }

  /** The bounds on a query's statements, for query processes to apply alike. */
  get queryLimits(): StatementLimits {
    return { statementsMax: this.#limits.statementsPerBatchMax, sqlBytesMax: this.#limits.sqlBytesMax };
  }

  /** Column names and primary-key positions (1-based, 0 if not in the key) of a committed table; null if none. */
  describeTable(table: string): TableColumns | null {
    return describeTable(this.#readSide().read, table);
  }

  /** The committed history (history-table.ts). */
  get history(): HistoryReads {
    return historyReads(this.#readSide().read);
  }

  /** The hex SHA-256 of the committed replicated content (see content-hash.ts). */
  contentHash(): string {
    return computeContentHash(this.#readSide().read);
  }

  /**
   * Starts hashing the committed content as of now, on a connection of its own that reads this
   * state however long the job runs; `rowsPerStep` bounds each `step` (database-check.ts).
   */
  beginContentHash(rowsPerStep: number): ContentHashJob {
    this.#open();
    return new ContentHashJob(this.path, this.#limits.busyTimeoutMs, rowsPerStep);
  }

  /** A verified-on-restore snapshot of the committed state, while writes continue (no WAL catch-up meanwhile). */
  async snapshot(destinationPath: string): Promise<SnapshotInfo> {
    this.#open();
    const target = path.resolve(destinationPath);
    const copy = () => snapshotFile.writeSnapshot(this.path, target, this.#limits.busyTimeoutMs);
    const { appliedIndex, bytes } = await (this.#checkpoints?.whileCopying(copy) ?? copy());
    return { appliedIndex, path: target, bytes };
  }

  /** Replaces this store's database with a verified snapshot; a bad snapshot leaves it unchanged. */
  async restoreSnapshot(snapshotPath: string): Promise<{ appliedIndex: LogIndex }> {
    return this.installRestore(await this.prepareRestore(snapshotPath));
  }

  /** Verifies a snapshot and extracts it beside the database; the live database is untouched. */
  async prepareRestore(snapshotPath: string): Promise<snapshotFile.PreparedRestore> {
    this.#open();
    return snapshotFile.prepareRestore(snapshotPath, this.path);
  }

  /** Swaps a prepared snapshot in, synchronously (close, rename, reopen): old database or new. */
  installRestore(prepared: snapshotFile.PreparedRestore): { appliedIndex: LogIndex } {
    const connections = this.#readSide();
    assert(this.#speculative.length === 0 && !this.#elsewhere, "restore while a batch or entry is open");
    // The checkpoint thread's connection closes too before the file is swapped; a new one opens after.
    this.#checkpoints?.detach();
    this.#connections = null;
    closeConnections(connections);
    try {
      snapshotFile.installPreparedRestore(prepared, this.path);
    } finally {
      const reopened = openConnections(this.path, this.#limits.busyTimeoutMs);
      this.#connections = reopened;
      this.#checkpoints?.attach(reopened.write);
      this.#connectionMode = null;
      this.#triggers.forgetAfterRollback();
      this.#counters.invalidate();
      this.#appliedIndex = reopened.writeMeta.readAppliedIndex();
      this.#replayRequiredThrough = null;
    }
    return { appliedIndex: this.#appliedIndex };
  }

  /** From now on a thread checkpoints the WAL, not the event loop (`checkpointer.ts`). */
  startBackgroundCheckpoints(onFailure: (error: BatonError) => void): void {
    assert(this.#checkpoints === null, "background checkpoints start once");
    const { write } = this.#open();
    this.#checkpoints = new BackgroundCheckpoints(this.path, this.#limits.busyTimeoutMs, onFailure, write);
  }

  /** Closes the store; an open speculative transaction rolls back. Closing twice is harmless. */
  close(): void {
    const connections = this.#connections;
    if (connections === null) return;
    this.#readTurn.end();
    this.#checkpoints?.detach();
    this.#connections = null;
    this.#speculative = [];
    openPaths.delete(this.path);
    closeConnections(connections);
  }
}
