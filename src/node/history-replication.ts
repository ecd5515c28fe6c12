/**
 * The history made durable beyond the node that recorded it: every node's records go into the
 * replicated table `_baton_history` (`src/store/history-table.ts`) through the leader's write path,
 * so a node whose disk is lost does not take its records with it.
 *
 * How a record travels:
 * - A node records in its own sink first (`history.ts`), durably; the record stays there, marked not
 *   yet replicated, until the leader confirms it committed. Records made while no leader exists (the
 *   leader lost, a pending failover, an election) wait there until one does.
 * - Every `historyShipIntervalMs`, a follower that knows a leader pushes its oldest unconfirmed
 *   records (at most `historyBatchRecordsMax`) to it over the transport; the leader keeps the latest
 *   push of each member (one per member: a push replaces the one before) and answers with an ack
 *   once they committed. No ack: the push is repeated, each time later (back-off up to
 *   `historyRetryMsMax`); a new leader starts the back-off over.
 * - The leader proposes its own records and the pushed ones together: one statement-less batch of at
 *   most `historyBatchRecordsMax` rows, at `majority`, only while its write gate is open (so it never
 *   waits ahead of a client), at most one in flight. It leaves out records already committed (the
 *   highest committed sequence of each node, from the table and from its own commits this term), so
 *   a repeated push costs no entry; a record proposed twice anyway is stored once (the table keys
 *   rows by node and sequence). A batch that fails (no quorum, leadership lost) is tried again later
 *   with the same back-off.
 * - A node's records are sent oldest first, so the committed records of a node are always a prefix
 *   of its sequence (what the leader leaves out and what an ack confirms rely on it).
 *
 * Reading (`read`): the newest replicated rows and the node's own records (the newest `limit` of
 * each), merged newest first, each marked `replicated` or not. A witness holds no rows (it applies
 * entries as empty ones) and a database that is damaged or not verified since the node started is
 * not read (as for client reads): those answer their own records.
 */
import { assert } from "../lib/assert.ts";
import { isBatonError } from "../lib/errors.ts";
import type { HistoryRow } from "../store/index.ts";
import type { NodeId } from "../types/ids.ts";
import {
  type HistoryEntry,
  type HistorySink,
  historyBatchRecordsMax,
  historyEntryOfRow,
  historyRowOf,
} from "./history.ts";
import type { NodeConfig } from "./node-config.ts";
import { encodeHistory, type HistoryMessage } from "./peer-envelope.ts";
import type { ProposalResult } from "./proposal-registry.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";

/** How often a node with records not yet replicated tries to get them replicated. */
export const historyShipIntervalMs = 500;
/** The longest wait between two tries that made no progress. */
export const historyRetryMsMax = 8_000;
/** How long the core may take to commit a history batch before it counts as failed. */
export const historyProposalTimeoutMs = 5_000;

type Parts = {
  readonly config: Pick<NodeConfig, "id" | "unsafeNodeBugs">;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  /** The write path's history batch (`WritePath.proposeHistory`): null when the gate is closed. */
  readonly proposeHistory: (rows: readonly HistoryRow[], timeoutMs: number) => Promise<ProposalResult> | null;
  /** False while this node's database must not be read (damaged, or not verified since it started). */
  readonly storeReadable: () => boolean;
};

/** A batch being proposed: its rows and, per node, the highest sequence it carries. */
type Batch = { readonly rows: HistoryRow[]; readonly through: Map<string, number> };

export class HistoryReplicator {
  private readonly parts: Parts;
  private readonly sink: HistorySink;
  /** Leader: the latest push of each member, its rows oldest first. */
  private readonly inbox = new Map<string, readonly HistoryRow[]>();
  /** Leader: the highest sequence of each node committed in this term, learned from its own batches. */
  private readonly committedThrough = new Map<string, number>();
  private inFlight = false;
  private retryMs = historyShipIntervalMs;
  private nextTryAtMs = 0;
  /** The leader the back-off was counted with (this node when it leads). */
  private leaderSeen: NodeId | null = null;
  private cancelTimer: Cancel | null = null;

  constructor(parts: Parts) {
    this.parts = parts;
    this.sink = parts.loop.history;
  }

  start(): void {
    assert(this.cancelTimer === null, "the history replicator starts once");
    if (this.parts.config.unsafeNodeBugs?.noHistoryReplication === true) return;
    this.cancelTimer = this.parts.runtime.timers.every(historyShipIntervalMs, () =>
      this.guarded(() => this.tick()),
    );
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  /** Leadership ended: what was pushed here and learned this term belongs to the next leader. */
  leadershipLost(): void {
    this.inbox.clear();
    this.committedThrough.clear();
  }

  onMessage(from: NodeId, message: HistoryMessage): void {
    if (message.kind === "ack") {
      const before = this.sink.replicatedThrough;
      this.sink.markReplicated(message.through);
      if (this.sink.replicatedThrough > before) this.progressed();
      return;
    }
    const { role, clusterConfig } = this.parts.loop.core.summary();
    const member = clusterConfig.voters.includes(from) || clusterConfig.learners.includes(from);
    if (role !== "leader" || !member) return;
    if (message.rows.some((row) => row.node !== from)) {
      this.parts.runtime.logger("warn", "history.push-refused", { from, reason: "rows of another node" });
      return;
    }
    this.inbox.set(
      from,
      [...message.rows].sort((a, b) => a.seq - b.seq),
    );
  }

  /** The newest records, newest first: replicated rows and this node's own, at most `limit`. */
  read(limit: number): HistoryEntry[] {
    const through = this.sink.replicatedThrough;
    const own = this.sink
      .recent(limit)
      .map(
        (record): HistoryEntry => ({ ...record, replicated: record.seq !== null && record.seq <= through }),
      );
    const rows = this.parts.storeReadable() ? this.parts.runtime.store.history.recent(limit) : [];
    const seen = new Set(rows.map((row) => `${row.node}\u0000${row.seq}`));
    const merged = [
      ...rows.map((row) => historyEntryOfRow(row)),
      ...own.filter((record) => !seen.has(`${record.node}\u0000${record.seq}`)),
    ];
    merged.sort((a, b) => b.atMs - a.atMs || compare(b.node, a.node) || (b.seq ?? 0) - (a.seq ?? 0));
    return merged.slice(0, limit);
  }

  private tick(): void {
    const { loop, runtime } = this.parts;
    const id = this.parts.config.id;
    if (loop.fatal !== null) return;
    const { role, leaderId } = loop.core.summary();
    const leader = role === "leader" ? id : leaderId;
    if (leader !== this.leaderSeen) {
      this.leaderSeen = leader; // A new leader (this node, or another): nothing failed with it yet.
      this.progressed();
    }
    if (runtime.clock.nowMs() < this.nextTryAtMs) return;
    if (role === "leader") this.proposeRound();
    else if (leaderId !== null && leaderId !== id) this.push(leaderId);
  }

  private push(leader: NodeId): void {
    const rows = this.sink.unreplicated(historyBatchRecordsMax).map((record) => historyRowOf(record));
    if (rows.length === 0) return;
    this.parts.loop.sendRaw(leader, encodeHistory({ kind: "push", rows }));
    this.backOff();
  }

  private proposeRound(): void {
    if (this.inFlight) return;
    const batch = this.collect();
    if (batch.rows.length === 0) return;
    let outcome: Promise<ProposalResult> | null;
    try {
      outcome = this.parts.proposeHistory(batch.rows, historyProposalTimeoutMs);
    } catch (error) {
      if (!isBatonError(error)) throw error;
      this.parts.runtime.logger("info", "history.batch-not-proposed", { code: error.code });
      this.backOff();
      return;
    }
    if (outcome === null) return; // The gate is closed now: the next tick tries again.
    this.inFlight = true;
    outcome.then(
      () =>
        this.guarded(() => {
          this.inFlight = false;
          this.committed(batch.through);
        }),
      () =>
        this.guarded(() => {
          this.inFlight = false;
          this.backOff();
        }),
    );
  }

  /**
   * The rows to propose: this node's unconfirmed records and each member's latest push, without
   * those already committed, at most `historyBatchRecordsMax`. A push whose rows are all committed
   * is acknowledged at once.
   */
  private collect(): Batch {
    const id = this.parts.config.id;
    const sources: [string, readonly HistoryRow[]][] = [
      [id, this.sink.unreplicated(historyBatchRecordsMax).map((record) => historyRowOf(record))],
      ...this.inbox,
    ];
    const batch: Batch = { rows: [], through: new Map() };
    for (const [node, rows] of sources) {
      const known = this.knownThrough(node);
      const confirmed = rows.filter((row) => row.seq <= known).at(-1);
      if (confirmed !== undefined) this.confirm(node, confirmed.seq);
      for (const row of rows) {
        if (row.seq <= known || batch.rows.length >= historyBatchRecordsMax) continue;
        batch.rows.push(row);
        batch.through.set(node, row.seq);
      }
    }
    return batch;
  }

  /** The highest sequence of `node` known committed: from this term's batches, or the table. */
  private knownThrough(node: string): number {
    const stored = this.parts.storeReadable() ? this.parts.runtime.store.history.through(node) : null;
    return Math.max(this.committedThrough.get(node) ?? 0, stored ?? 0);
  }

  private committed(through: ReadonlyMap<string, number>): void {
    for (const [node, seq] of through) {
      this.committedThrough.set(node, Math.max(seq, this.committedThrough.get(node) ?? 0));
      this.confirm(node, seq);
    }
    this.progressed();
  }

  /** `node`'s records through `seq` are committed: it need not send them again. */
  private confirm(node: string, seq: number): void {
    if (node === this.parts.config.id) {
      this.sink.markReplicated(seq);
      return;
    }
    const rest = (this.inbox.get(node) ?? []).filter((row) => row.seq > seq);
    if (rest.length === 0) this.inbox.delete(node);
    else this.inbox.set(node, rest);
    this.parts.loop.sendRaw(node as NodeId, encodeHistory({ kind: "ack", through: seq }));
  }

  /** Runs work of a timer or a settled proposal: anything it throws is a bug and stops the node. */
  private guarded(run: () => void): void {
    if (this.parts.loop.fatal !== null) return;
    try {
      run();
    } catch (error) {
      this.parts.loop.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private backOff(): void {
    this.nextTryAtMs = this.parts.runtime.clock.nowMs() + this.retryMs;
    this.retryMs = Math.min(2 * this.retryMs, historyRetryMsMax);
  }

  private progressed(): void {
    this.retryMs = historyShipIntervalMs;
    this.nextTryAtMs = 0;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
