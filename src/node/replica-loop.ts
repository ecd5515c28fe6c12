/**
 * The replica loop: the one implementation of the consensus core's Effects contract
 * (`src/consensus/effects.ts`), used by production and by the simulator alike.
 *
 * It feeds every input to the core (ticks from the runtime's timers, `loop-stall.ts`; peer messages
 * from the transport; proposals and read-index requests from the write and read paths; the loop's
 * own "persisted" and "applied" reports) and carries out each Effects completely, in order:
 *   persist (snapshot reset, truncate, hard state, append: one durable batch, batches in call order)
 *   → send (now, or once this and every earlier batch is durable) → apply committed entries
 *   → answer clients → snapshot requests → bookkeeping (role changes, review, audit).
 *   A leader applies at `Timers.soon` instead (`applySoon`): the answers a step released go first.
 *
 * Invariants:
 * - A message marked `afterPersist` leaves only after its own and every earlier durable batch
 *   completed; `persisted` is reported to the core only then (one promise chain in call order).
 * - The leader counts itself toward a write's durability only once its own batch is durable, while
 *   followers may already have the entries (Raft thesis §10.2.1).
 * - Bugs crash: an exception from the core, from carrying out effects, or from a component the
 *   loop calls takes `fail`, the node's single fatal path. After it nothing more is persisted,
 *   sent, applied or acknowledged; waiting requests fail with SHUTTING_DOWN; `onFatal` is told.
 */
import {
  type CoreEvent,
  clusterConfigText,
  type Effects,
  type Input,
  type Message,
  RaftCore,
  type RoleChange,
  type SnapshotNeeded,
} from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { Prng } from "../lib/prng.ts";
import type { Transport } from "../transport/transport.ts";
import type { LogIndex, NodeId, Term } from "../types/ids.ts";
import { coreTuning, recoveredConfig } from "./core-setup.ts";
import { EventHistory, type HistorySink, MemoryHistory } from "./history.ts";
import { LeaderLease } from "./leader-lease.ts";
import { watchedTicker } from "./loop-stall.ts";
import { commitNewsDelayMsOf, type NodeConfig } from "./node-config.ts";
import type { PeerDirectory } from "./peer-directory.ts";
import {
  decodePeerBody,
  encodeConsensusParts,
  encodeNodeInfo,
  type HistoryMessage,
  laneOf,
  type SnapshotStreamMessage,
  type StorageMessage,
} from "./peer-envelope.ts";
import { ProposalRegistry } from "./proposal-registry.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";
import { TransportPeers } from "./transport-peers.ts";

/** What the loop delegates: the state machine side of "apply", snapshots, and role changes. */
export type LoopParts = {
  /** Applies committed entries through `through` (from the log, or by committing speculation). */
  applyCommitted(through: LogIndex): void;
  /** Runs before the rest of the bookkeeping when the role or leader changed. */
  roleChanged(change: RoleChange): void;
  /** The core asks for a snapshot to be sent to a follower (`snapshot-transfer.ts`). */
  snapshotNeeded(needed: SnapshotNeeded): void;
  /** A message of the snapshot stream arrived from a peer. */
  snapshotStream(from: NodeId, message: SnapshotStreamMessage): void;
  /** A consistency-check or storage-healing message arrived from a peer. */
  storageMessage(from: NodeId, message: StorageMessage): void;
  /** A history push or acknowledgement arrived from a peer (`history-replication.ts`). */
  historyMessage(from: NodeId, message: HistoryMessage): void;
  /** The transport (re)connected to a peer. */
  peerConnected(peer: NodeId): void;
};

export type AuditEvent = CoreEvent & { readonly atMs: number };

export class ReplicaLoop {
  readonly core: RaftCore;
  readonly outcomes = new ProposalRegistry();
  readonly auditEvents: AuditEvent[] = [];
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly peers: PeerDirectory;
  private parts: LoopParts | null = null;
  private transport: Transport | null = null;
  private persistChain: Promise<void> = Promise.resolve();
  private cancelTicker: Cancel | null = null;
  /** The rest of a bounded apply, due at `Timers.soon` (`reportApplied`); none after `stop`. */
  private applyLater: Cancel | null = null;
  /** The commit news a step left for later (`Effects.commitNewsDue`); none after `stop`. */
  private commitNewsLater: Cancel | null = null;
  private stopped = false;
  private fatalError: Error | null = null;
  private readonly stateListeners = new Set<() => void>();
  /** Last time this node's state machine was known to be as fresh as the leader's commit index. */
  private freshAt: number | null = null;
  private appendedBytesValue = 0;
  private readonly transportPeers: TransportPeers;
  private readonly lease: LeaderLease;
  readonly history: HistorySink;
  private readonly eventHistory: EventHistory;

  constructor(config: NodeConfig, runtime: NodeRuntime, peers: PeerDirectory) {
    this.config = config;
    this.runtime = runtime;
    this.peers = peers;
    this.lease = new LeaderLease(config.id, config.heartbeatMs * config.missedHeartbeats, runtime.clock);
    this.transportPeers = new TransportPeers(config.id, peers);
    this.history = runtime.history ?? new MemoryHistory();
    this.eventHistory = new EventHistory(this.history);
    const { recovered, store } = runtime;
    for (const entry of recovered.entries) this.appendedBytesValue += entry.data.byteLength;
    this.core = new RaftCore(
      {
        id: config.id,
        voters: config.voters,
        ...(config.learners === undefined ? {} : { learners: config.learners }),
        ...(config.addresses === undefined ? {} : { addresses: config.addresses }),
        // Learners serve linearizable reads through a read index the leader confirms (read-path.ts).
        followerReadIndex: true,
        tickMs: config.tickMs,
        heartbeatIntervalMs: config.heartbeatMs,
        missedHeartbeats: config.missedHeartbeats,
        defaultDurability: config.durability,
        prng: new Prng(runtime.randomSeed),
        ...coreTuning(config),
      },
      {
        hardState: recovered.hardState,
        entries: recovered.entries,
        snapshotIndex: recovered.compactionPoint.index,
        snapshotTerm: recovered.compactionPoint.term,
        appliedIndex: store.appliedIndex,
        ...recoveredConfig(recovered.compactionPoint),
        logMemory: {
          reader: (from, toExclusive) => runtime.log.entries(from, toExclusive),
          dataBytesMax: config.logMemoryBytes,
        },
      },
    );
    // The core holds the recovered entries from here on. The runtime's list would keep every entry
    // the log held at start in memory for good (after the core compacted them); empty it.
    recovered.entries.length = 0;
  }

  /** Wires the state machine side; once, before `start`. */
  attach(parts: LoopParts): void {
    assert(this.parts === null, "the loop's parts are attached once");
    this.parts = parts;
  }

  async start(): Promise<void> {
    assert(this.transport === null && this.parts !== null, "start once, after attach");
    this.transport = this.runtime.transport({
      onMessage: (from, body) => this.receive(from, body),
      onPeerState: (peer, state) => {
        if (state !== "connected") return;
        this.transport?.send(peer, encodeNodeInfo({ http: this.peers.selfHttp }));
        if (this.fatalError === null) this.guarded(() => this.parts?.peerConnected(peer));
      },
    });
    await this.transport.start();
    this.syncPeers();
    this.cancelTicker = watchedTicker(this.runtime, this.config, () => {
      if (this.fatalError === null) this.stepSafely({ type: "tick" });
    });
  }

  get fatal(): Error | null {
    return this.fatalError;
  }

  /** Entry bytes this process appended to the log (recovered entries included); only grows. */
  get appendedBytes(): number {
    return this.appendedBytesValue;
  }

  /** Sends a body to a peer on the loop's transport (the snapshot stream uses it). */
  sendRaw(peer: NodeId, body: Uint8Array): void {
    if (this.fatalError === null) this.transport?.send(peer, body);
  }

  /**
   * A snapshot covers every entry through `index` (whose term is `entryTerm`): drop them from the
   * core's memory and from the durable log (after every log operation already started).
   */
  compact(index: LogIndex, entryTerm: Term): void {
    const config = this.core.configAt(index);
    this.stepSafely({ type: "compact", index, term: entryTerm });
    if (this.fatalError !== null) return;
    assert(config !== undefined, `the configuration at ${index} is known before compacting it`);
    this.runtime.log
      .compact(index, entryTerm, clusterConfigText(config))
      .catch((error: unknown) => this.fail(asError(error)));
  }

  /** Milliseconds since this node's state was last known as fresh as the leader's commit; null if never. */
  lagMs(): number | null {
    return this.freshAt === null ? null : this.runtime.clock.nowMs() - this.freshAt;
  }

  /** Registers a callback run after every step (role, commit and applied changes). */
  onStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Feeds one input to the core and carries out its effects; returns them for callers that need
   * an outcome. Throws SHUTTING_DOWN once the node has stopped (and after taking the fatal path
   * itself when this very step failed).
   */
  step(input: Input): Effects {
    if (this.fatalError !== null) throw stoppedError(this.fatalError);
    let effects: Effects;
    try {
      effects = this.core.step(input);
      this.runtime.observer?.stepped(input, effects);
      this.carryOut(effects);
    } catch (error) {
      this.fail(asError(error));
      throw stoppedError(asError(error));
    }
    return effects;
  }

  /** `step` for inputs nobody waits on (ticks, messages, reports): a failure is already fatal. */
  stepSafely(input: Input): void {
    try {
      this.step(input);
    } catch (error) {
      assert(this.fatalError !== null, `a step failed without stopping the node: ${String(error)}`);
    }
  }

  /** The node's single fatal path (see the module header). Idempotent. */
  fail(error: Error): void {
    if (this.fatalError !== null) return;
    this.fatalError = error;
    const code = error instanceof BatonError ? error.code : null;
    this.runtime.logger("error", "node.fatal", { error: error.message, code, stack: error.stack });
    this.cancelTicker?.();
    const stopped = stoppedError(error);
    this.outcomes.rejectAll(stopped);
    for (const listener of this.stateListeners) listener();
    this.runtime.onFatal(error);
  }

  /** Stops ticking and the transport; waits for pending persistence. */
  async stop(): Promise<void> {
    this.cancelTicker?.();
    this.cancelTicker = null;
    this.stopped = true;
    this.applyLater?.();
    this.commitNewsLater?.();
    await this.persistChain.catch(() => {});
    await this.transport?.stop();
    this.outcomes.rejectAll(new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping"));
  }

  /**
   * The state machine now holds every entry through `index`: tell the core (in a microtask, after
   * the current step finished). Committed entries the bounded apply left follow at `Timers.soon`,
   * after the turn's input (heartbeats, answers, probes), so a long catch-up never holds the loop.
   */
  reportApplied(index: LogIndex): void {
    queueMicrotask(() => {
      if (this.fatalError !== null) return;
      const summary = this.core.summary();
      // The injected bug applies past what the core allowed; it must not also trip the core's check.
      const bug = this.config.unsafeNodeBugs?.applyBeforeCommit === true;
      const reported = bug ? Math.min(index, summary.applyThrough) : index;
      if (reported > summary.appliedIndex) this.stepSafely({ type: "applied", index: reported as LogIndex });
      this.applySoon();
    });
  }

  /**
   * A leader applies at `Timers.soon`: its SQLite COMMIT and the applied report's step come after
   * the answers the step released (committed is what makes them true; readers wait for the applied
   * index as before). Switched every 250 ms within runs: requests +3% at w1, +6% at w64.
   */
  private appliesSoon(): boolean {
    return this.core.summary().role === "leader" && this.config.unsafeNodeBugs?.applyBeforeCommit !== true;
  }

  /**
   * Commit news alone waits `commitNewsDelayMs` for an append with entries to carry it (at one
   * writer the next write's comes first); the timer goes once nothing is due.
   */
  private commitNewsSoon(due: boolean): void {
    if (!due) {
      this.commitNewsLater?.();
      this.commitNewsLater = null;
      return;
    }
    this.commitNewsLater ??= this.runtime.timers.after(commitNewsDelayMsOf(this.config), () => {
      this.commitNewsLater = null;
      if (this.fatalError === null && !this.stopped) this.stepSafely({ type: "commitNews" });
    });
  }

  /** Applies every committed entry not yet applied at `Timers.soon` (bounded per call). */
  private applySoon(): void {
    this.applyLater ??= this.runtime.timers.soon(() => {
      this.applyLater = null;
      const through = this.core.summary().applyThrough;
      if (this.fatalError !== null || this.stopped || this.runtime.store.appliedIndex >= through) return;
      this.guarded(() => this.parts?.applyCommitted(through));
    });
  }

  private receive(from: NodeId, body: Uint8Array): void {
    if (this.fatalError !== null) return;
    let decoded: ReturnType<typeof decodePeerBody>;
    try {
      decoded = decodePeerBody(body);
    } catch (error) {
      this.runtime.logger("warn", "peer.bad-message", { from, error: asError(error).message });
      return;
    }
    if (decoded.type === "nodeInfo") {
      this.peers.learn(from, decoded.info.http);
      return;
    }
    if (decoded.type === "snapshot") {
      const message = decoded.message;
      this.guarded(() => this.parts?.snapshotStream(from, message));
      return;
    }
    if (decoded.type === "storage") {
      const message = decoded.message;
      this.guarded(() => this.parts?.storageMessage(from, message));
      return;
    }
    if (decoded.type === "history") {
      const message = decoded.message;
      this.guarded(() => this.parts?.historyMessage(from, message));
      return;
    }
    const message = decoded.message;
    if (message.from !== from || message.to !== this.config.id) {
      this.runtime.logger("warn", "peer.misaddressed-message", { from, claimedFrom: message.from });
      return;
    }
    this.noteFreshness(message);
    this.lease.arriving(message, decoded.stamp);
    this.stepSafely({ type: "message", message });
    this.lease.stepped(message, decoded.stamp, this.core.summary());
  }

  /** The leader's lease (`leader-lease.ts`): whether it may serve a `leader` read now. */
  leaderLeaseHeld(): boolean {
    return this.lease.held(this.core.summary());
  }

  /** Runs a part's handler; anything it throws is a bug and takes the fatal path. */
  private guarded(run: () => void): void {
    try {
      run();
    } catch (error) {
      this.fail(asError(error));
    }
  }

  private noteFreshness(message: Message): void {
    if (message.type !== "appendEntries" && message.type !== "heartbeat") return;
    if (message.leaderCommit <= this.runtime.store.appliedIndex) this.freshAt = this.runtime.clock.nowMs();
  }

  private carryOut(effects: Effects): void {
    for (const outbound of effects.messages) if (!outbound.afterPersist) this.send(outbound.message);
    const durable = this.persist(effects);
    if (durable !== null) this.afterDurable(durable, effects);
    const parts = this.parts;
    assert(parts !== null, "parts attached before the first step");
    const through = this.applyTarget(effects);
    if (through !== null) {
      if (this.appliesSoon()) this.applySoon();
      else parts.applyCommitted(through);
    }
    this.outcomes.answer(effects, (code, leaderId) => this.peers.refusal(code, leaderId));
    for (const needed of effects.snapshotNeeded) parts.snapshotNeeded(needed);
    this.commitNewsSoon(effects.commitNewsDue);
    if (effects.roleChange !== undefined) parts.roleChanged(effects.roleChange);
    this.bookkeeping(effects);
    this.syncPeers();
    for (const listener of this.stateListeners) listener();
  }

  /** Keeps the transport's peers in step with the core's configuration (`transport-peers.ts`). */
  private syncPeers(): void {
    if (this.transport !== null) this.transportPeers.sync(this.transport, this.core.summary().clusterConfig);
  }

  /** Starts the durable batch of these effects, after the messages that need none (the log may write
   * on this thread); returns a promise for it and every earlier one, or null. */
  private persist(effects: Effects): Promise<void> | null {
    const log = this.runtime.log;
    const operations: Promise<void>[] = [];
    const restored = effects.snapshotRestored;
    if (restored !== undefined) {
      // The store already holds the snapshot's state. A log that continues the snapshot keeps its
      // suffix (those entries may be acknowledged durable); any other log starts over at it. The
      // configuration as of the snapshot is the core's `snapshotConfig` now.
      const config = clusterConfigText(this.core.summary().snapshotConfig);
      operations.push(
        log.termAt(restored.index) === restored.term
          ? log.compact(restored.index, restored.term, config)
          : log.resetToSnapshot(restored.index, restored.term, config),
      );
    }
    if (effects.truncateAfter !== undefined) operations.push(log.truncateAfter(effects.truncateAfter));
    // The hard state goes before the entries: the log store makes operations durable in call order,
    // and a crash between the two must never leave entries of a term newer than the durable term
    // (recovery refuses such a log). The simulator found this at SEED=1120.
    if (effects.hardState !== undefined) operations.push(log.saveHardState(effects.hardState));
    if (effects.entries.length > 0) {
      operations.push(log.append(effects.entries));
      for (const entry of effects.entries) this.appendedBytesValue += entry.data.byteLength;
    }
    const hasLate = effects.messages.some((m) => m.afterPersist);
    if (operations.length === 0 && !hasLate) return null;
    const batch = Promise.all(operations);
    this.persistChain = this.persistChain.then(() => batch.then(() => {}));
    return this.config.unsafeNodeBugs?.ackBeforeSync === true ? Promise.resolve() : this.persistChain;
  }

  /** Once durable: release the messages that promise durability and report the entries persisted. */
  private afterDurable(durable: Promise<void>, effects: Effects): void {
    const late = effects.messages.filter((m) => m.afterPersist);
    const last = effects.entries.at(-1);
    durable
      .then(() => {
        if (this.fatalError !== null) return;
        for (const outbound of late) this.send(outbound.message);
        if (last !== undefined) this.stepSafely({ type: "persisted", index: last.index, term: last.term });
      })
      .catch((error: unknown) => this.fail(asError(error)));
  }

  private applyTarget(effects: Effects): LogIndex | null {
    if (this.config.unsafeNodeBugs?.applyBeforeCommit === true && effects.entries.length > 0) {
      const { role } = this.core.summary();
      if (role !== "leader") return effects.entries.at(-1)?.index ?? null;
    }
    return effects.applyThrough ?? null;
  }

  /**
   * Writes the messages queued so far once the current task ends instead of at the turn's end: for
   * a caller that runs at the turn's end already (the write path's group run).
   */
  flushAtTaskEnd(): void {
    this.transport?.flushAtTaskEnd();
  }

  private send(message: Message): void {
    this.transport?.send(
      message.to,
      encodeConsensusParts(message, this.lease.stampFor(message)),
      laneOf(message),
    );
  }

  private bookkeeping(effects: Effects): void {
    const { logger, clock } = this.runtime;
    if (effects.roleChange !== undefined) {
      const { role, term, leaderId } = effects.roleChange;
      logger("info", "role.changed", { role, term, leader: leaderId });
    }
    if (effects.discarded.length > 0) {
      this.runtime.review.keepDiscarded(effects.discarded, clock.nowMs());
      logger("warn", "entries.discarded-kept-for-review", {
        count: effects.discarded.length,
        from: effects.discarded[0]?.index,
        to: effects.discarded.at(-1)?.index,
      });
    }
    for (const event of effects.events) {
      this.eventHistory.note(event, clock.nowMs());
      this.auditEvents.push({ ...event, atMs: clock.nowMs() });
      if (this.auditEvents.length > this.config.auditEventsMax) this.auditEvents.shift();
      logger("info", `consensus.${event.type}`, { ...event });
    }
  }
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

function stoppedError(cause: Error): BatonError {
  if (cause instanceof BatonError && cause.code === ErrorCode.SHUTTING_DOWN) return cause;
  return new BatonError(ErrorCode.SHUTTING_DOWN, `the node stopped: ${cause.message}`, {}, { cause });
}
