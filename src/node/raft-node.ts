/**
 * RaftNode: the imperative shell around the pure consensus core (DESIGN.md §1).
 *
 * It owns the timers, the write-ahead log, the SQLite store and the transport, feeds every input
 * to the core and carries out the returned Effects in the core's documented order:
 *   persist (truncate, append, hard state) → send (immediately, or once persisted) → apply
 *   committed entries → answer clients → bookkeeping.
 *
 * Invariants:
 * - A message marked `afterPersist` leaves only after its own and every earlier durable batch
 *   completed (one promise chain in call order; the WAL runs its operations in call order).
 * - Every log entry after the store's applied index is either a speculative batch of this
 *   leader's current term (the contiguous tail) or waits to be applied from the log.
 * - The first WAL failure stops the node (`onFatal`): nothing more is acknowledged.
 */
import { randomInt } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Durability } from "../consensus/config.ts";
import { type CoreEvent, type Effects, type Input, RaftCore } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { Prng } from "../lib/prng.ts";
import type { Store } from "../store/store.ts";
import type { Transport } from "../transport/transport.ts";
import { type LogIndex, logIndex, type NodeId, type Term } from "../types/ids.ts";
import { EntryKind, type HardState, type LogEntry } from "../types/log-entry.ts";
import type { Wal } from "../wal/wal.ts";
import { IndexWaiters } from "./index-waiters.ts";
import { decodePeerBody, encodeConsensus, encodeNodeInfo } from "./peer-envelope.ts";
import { ProposalRegistry, type ProposalResult } from "./proposal-registry.ts";

export type NodeLog = (
  level: "debug" | "info" | "warn" | "error",
  event: string,
  fields: Record<string, unknown>,
) => void;

export type RaftNodeOptions = {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly dataDirectory: string;
  readonly httpAddress: string;
  /** HTTP addresses known from configuration; peers also announce theirs. */
  readonly peerHttp: ReadonlyMap<NodeId, string>;
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  readonly durability: Durability;
  readonly wal: Wal;
  readonly store: Store;
  readonly transport: (handlers: {
    onMessage: (from: NodeId, body: Uint8Array) => void;
    onPeerState: (peer: NodeId, state: "connected" | "disconnected") => void;
  }) => Transport;
  readonly log: NodeLog;
  readonly onFatal: (error: Error) => void;
  /** Speculative batches are committed at least this often, so leader reads never lag longer. */
  readonly speculationAgeMsMax?: number;
};

const auditEventsMax = 1000;

export class RaftNode {
  readonly id: NodeId;
  readonly options: RaftNodeOptions;
  readonly core: RaftCore;
  readonly store: Store;
  readonly wal: Wal;
  readonly tickMs: number;
  readonly proposals = new ProposalRegistry();
  readonly applied: IndexWaiters;
  readonly peerHttp: Map<NodeId, string>;
  readonly auditEvents: (CoreEvent & { atMs: number })[] = [];
  /** Last time this node's state machine was known to be as fresh as the leader's commit. */
  caughtUpAtMs = 0;
  private transport: Transport | null = null;
  private persistChain: Promise<void> = Promise.resolve();
  private ticker: NodeJS.Timeout | null = null;
  private fatal: Error | null = null;
  private speculationSinceMs: number | null = null;
  private readonly stateListeners = new Set<() => void>();

  constructor(
    options: RaftNodeOptions,
    recovered: {
      entries: readonly LogEntry[];
      hardState: HardState;
      snapshotIndex: LogIndex;
      snapshotTerm: Term;
    },
  ) {
    this.id = options.id;
    this.options = options;
    this.store = options.store;
    this.wal = options.wal;
    this.tickMs = options.heartbeatMs % 10 === 0 ? 10 : options.heartbeatMs % 5 === 0 ? 5 : 1;
    this.peerHttp = new Map(options.peerHttp);
    this.core = new RaftCore(
      {
        id: options.id,
        voters: options.voters,
        tickMs: this.tickMs,
        heartbeatIntervalMs: options.heartbeatMs,
        missedHeartbeats: options.missedHeartbeats,
        defaultDurability: options.durability,
        prng: new Prng(randomInt(0, 2 ** 47)),
      },
      {
        hardState: recovered.hardState,
        entries: recovered.entries,
        snapshotIndex: recovered.snapshotIndex,
        snapshotTerm: recovered.snapshotTerm,
        appliedIndex: options.store.appliedIndex,
      },
    );
    this.applied = new IndexWaiters("applied index", options.store.appliedIndex);
  }

  async start(): Promise<void> {
    assert(this.transport === null, "start once");
    this.transport = this.options.transport({
      onMessage: (from, body) => this.receive(from, body),
      onPeerState: (peer, state) => {
        if (state === "connected")
          this.transport?.send(peer, encodeNodeInfo({ http: this.options.httpAddress }));
      },
    });
    await this.transport.start();
    // Entries committed before a restart are applied again only past the store's applied index;
    // the commit index itself is learned again from the leader.
    this.ticker = setInterval(() => {
      if (this.fatal === null) this.step({ type: "tick" });
    }, this.tickMs);
  }

  get transportOrNull(): Transport | null {
    return this.transport;
  }

  /** Registers a callback run after every step (role, commit and applied changes). */
  onStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Feeds one input to the core and carries out its effects. Returns the effects for callers that need outcomes. */
  step(input: Input): Effects {
    if (this.fatal !== null)
      throw new BatonError(ErrorCode.SHUTTING_DOWN, "the node stopped after a storage failure");
    const effects = this.core.step(input);
    this.carryOut(effects);
    return effects;
  }

  /** Stops ticking and the transport; waits for pending persistence. */
  async stop(): Promise<void> {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    await this.persistChain.catch(() => {});
    await this.transport?.stop();
    this.proposals.rejectAll(new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping"));
    this.applied.rejectAll(new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping"));
  }

  private receive(from: NodeId, body: Uint8Array): void {
    let decoded: ReturnType<typeof decodePeerBody>;
    try {
      decoded = decodePeerBody(body);
    } catch (error) {
      this.options.log("warn", "peer.bad-message", { from, error: (error as Error).message });
      return;
    }
    if (decoded.type === "nodeInfo") {
      this.peerHttp.set(from, decoded.info.http);
      return;
    }
    const message = decoded.message;
    if (message.from !== from || message.to !== this.id) {
      this.options.log("warn", "peer.misaddressed-message", {
        from,
        claimedFrom: message.from,
        to: message.to,
      });
      return;
    }
    if (
      (message.type === "appendEntries" || message.type === "heartbeat") &&
      message.leaderCommit <= this.store.appliedIndex
    ) {
      this.caughtUpAtMs = Date.now();
    }
    if (this.fatal === null) this.step({ type: "message", message });
  }

  private carryOut(effects: Effects): void {
    let durable: Promise<void> | null;
    try {
      durable = this.persist(effects);
    } catch (error) {
      // The log refuses synchronously once it has failed: stop, never acknowledge past this point.
      this.fail(error as Error);
      return;
    }
    for (const outbound of effects.messages) {
      if (!outbound.afterPersist) this.send(outbound.message);
    }
    const late = effects.messages.filter((m) => m.afterPersist);
    const last = effects.entries.at(-1);
    if (durable !== null) {
      durable
        .then(() => {
          if (this.fatal !== null) return;
          for (const outbound of late) this.send(outbound.message);
          if (last !== undefined) this.step({ type: "persisted", index: last.index, term: last.term });
        })
        .catch((error: unknown) => this.fail(error as Error));
    }
    if (effects.applyThrough !== undefined) {
      try {
        this.applyCommitted(effects.applyThrough);
      } catch (error) {
        // A committed entry that does not apply (STORE_DIVERGED, a corrupt payload, an I/O error)
        // means this replica can no longer follow the log: stop rather than serve wrong data.
        this.fail(error as Error);
        return;
      }
    }
    this.answerClients(effects);
    for (const needed of effects.snapshotNeeded) {
      // Log compaction is not enabled yet, so a follower never needs a snapshot; tell the core.
      this.options.log("warn", "snapshot.not-supported", { peer: needed.peer, index: needed.index });
      queueMicrotask(() => this.step({ type: "snapshotFailed", peer: needed.peer }));
    }
    this.bookkeeping(effects);
    for (const listener of this.stateListeners) listener();
  }

  /** Starts the durable batch of these effects; returns a promise for it and every earlier one, or null. */
  private persist(effects: Effects): Promise<void> | null {
    const operations: Promise<void>[] = [];
    if (effects.snapshotRestored !== undefined) {
      operations.push(
        this.wal.resetToSnapshot(effects.snapshotRestored.index, effects.snapshotRestored.term),
      );
    }
    if (effects.truncateAfter !== undefined) operations.push(this.wal.truncateAfter(effects.truncateAfter));
    if (effects.entries.length > 0) operations.push(this.wal.append(effects.entries));
    if (effects.hardState !== undefined) operations.push(this.wal.saveHardState(effects.hardState));
    const hasLate = effects.messages.some((m) => m.afterPersist);
    if (operations.length === 0 && !hasLate) return null;
    const batch = Promise.all(operations);
    this.persistChain = this.persistChain.then(() => batch.then(() => {}));
    return this.persistChain;
  }

  private send(message: Parameters<typeof encodeConsensus>[0]): void {
    this.transport?.send(message.to, encodeConsensus(message));
  }

  /**
   * Applies committed entries up to `through`. Speculative batches of this leader are committed in
   * SQLite all at once, when the commit index covers the last of them.
   */
  applyCommitted(through: LogIndex): void {
    const before = this.store.appliedIndex;
    while (this.store.appliedIndex < through) {
      const next = logIndex(this.store.appliedIndex + 1);
      const speculative = this.store.speculativeIndexes;
      if (speculative.length > 0) {
        assert(
          speculative[0] === next,
          `speculative batches start right after the applied index (${speculative[0]} vs ${next})`,
        );
        const lastSpeculative = speculative.at(-1)!;
        if (through < lastSpeculative) break;
        this.store.commitSpeculative(lastSpeculative);
        this.speculationSinceMs = null;
        continue;
      }
      const entry = this.core.entryAt(next);
      assert(entry !== undefined, `committed entry ${next} is in the core's log`);
      if (entry.kind === EntryKind.command) this.store.apply(next, entry.data);
      else this.store.applyNoop(next);
    }
    if (this.store.appliedIndex > before) {
      this.applied.advance(this.store.appliedIndex);
      queueMicrotask(() => {
        if (this.fatal === null && this.core.status().appliedIndex < this.store.appliedIndex) {
          this.step({ type: "applied", index: this.store.appliedIndex });
        }
      });
    }
  }

  private answerClients(effects: Effects): void {
    for (const outcome of effects.proposals) {
      if (!outcome.accepted)
        this.proposals.rejectProposal(outcome.proposalId, outcome.code, outcome.leaderId);
    }
    for (const ack of effects.acknowledged)
      this.proposals.acknowledge(ack.proposalId, { index: ack.index, term: ack.term });
    for (const failed of effects.notConfirmed) this.proposals.notConfirmed(failed);
    for (const ready of effects.readReady) this.proposals.readReady(ready.requestId, ready.index);
    for (const rejected of effects.readRejected)
      this.proposals.readRejected(rejected.requestId, rejected.code, rejected.leaderId);
  }

  private bookkeeping(effects: Effects): void {
    if (effects.roleChange !== undefined) {
      this.options.log("info", "role.changed", {
        role: effects.roleChange.role,
        term: effects.roleChange.term,
        leader: effects.roleChange.leaderId,
      });
      if (effects.roleChange.role !== "leader" && this.store.speculativeCount > 0) {
        const discarded = this.store.rollbackSpeculative();
        this.speculationSinceMs = null;
        this.applied.reset(this.store.appliedIndex);
        this.options.log("info", "speculation.rolled-back", { batches: discarded.length });
      }
    }
    if (effects.discarded.length > 0) this.keepForReview(effects.discarded);
    for (const event of effects.events) {
      this.auditEvents.push({ ...event, atMs: Date.now() });
      if (this.auditEvents.length > auditEventsMax) this.auditEvents.shift();
      this.options.log("info", `consensus.${event.type}`, { ...event });
    }
  }

  /** Writes of a deposed leader that never committed: kept on disk for an operator to review. */
  private keepForReview(entries: readonly LogEntry[]): void {
    const directory = path.join(this.options.dataDirectory, "review");
    fs.mkdirSync(directory, { recursive: true });
    const lines = entries.map((e) =>
      JSON.stringify({
        index: e.index,
        term: e.term,
        kind: e.kind,
        data: Buffer.from(e.data).toString("base64"),
        discardedAtMs: Date.now(),
      }),
    );
    fs.appendFileSync(path.join(directory, "discarded-entries.jsonl"), `${lines.join("\n")}\n`);
    this.options.log("warn", "entries.discarded-kept-for-review", {
      count: entries.length,
      from: entries[0]?.index,
      to: entries.at(-1)?.index,
    });
  }

  /** True while this leader should stop speculating until its open batches commit. */
  drainWanted(): boolean {
    if (this.store.speculativeCount === 0) return false;
    const ageMsMax = this.options.speculationAgeMsMax ?? 20;
    if (this.speculationSinceMs !== null && Date.now() - this.speculationSinceMs > ageMsMax) return true;
    return this.applied.highestTarget() !== null;
  }

  noteSpeculation(): void {
    if (this.speculationSinceMs === null) this.speculationSinceMs = Date.now();
  }

  propose(
    proposalId: string,
    data: Uint8Array,
    durability: Durability | null,
    timeoutMs: number,
  ): { effects: Effects; result: Promise<ProposalResult> } {
    // Registered before the step, which may acknowledge synchronously; forgotten if the step throws
    // (the node stopped), so no promise is left that nobody will ever settle or await.
    const result = this.proposals.registerProposal(proposalId);
    let effects: Effects;
    try {
      effects = this.step({
        type: "propose",
        proposalId,
        kind: EntryKind.command,
        data,
        ...(durability === null ? {} : { durability }),
        timeoutTicks: Math.max(1, Math.ceil(timeoutMs / this.tickMs)),
      });
    } catch (error) {
      this.proposals.forget(proposalId);
      throw error;
    }
    return { effects, result };
  }

  private fail(error: Error): void {
    if (this.fatal !== null) return;
    this.fatal = error;
    this.options.log("error", "node.fatal", { error: error.message });
    if (this.ticker !== null) clearInterval(this.ticker);
    const stopped = new BatonError(ErrorCode.SHUTTING_DOWN, `the node stopped: ${error.message}`);
    this.proposals.rejectAll(stopped);
    this.applied.rejectAll(stopped);
    this.options.onFatal(error);
  }
}
