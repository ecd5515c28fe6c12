/**
 * BatonNode: one node, assembled from components with one job each, behind the `NodeService`
 * interface that HTTP, the CLI and the simulator's clients use.
 *
 *   ReplicaLoop        feeds the core, carries out Effects (persist → send → apply → answer)
 *   LeaderSpeculation  the leader's open SQLite transaction: run, commit when covered, roll back
 *   CommittedApplier   committed entries into SQLite, exactly once, in order
 *   WritePath          gate, request-id replay, propose, wait for the durability level
 *   ReadPath           consistency levels, read index, minIndex, maxLagMs
 *   NodeStatusView     /v1/status and honest readiness
 *   Admission          bounded reads and writes in flight (OVERLOADED beyond them)
 *   SnapshotKeeper     snapshots of the state, and log compaction behind them
 *   SnapshotSender/Receiver  a leader's snapshot streamed to a follower that needs it
 *   ConsistencyChecks  content hashes of the voters compared at one index (damage no checksum sees)
 *   OperatorControls   membership changes, failover settings, promotion, switchover, history
 *   StorageHeal        after damage: no service from a damaged database, a snapshot from the leader,
 *                      and the bound on waiting for intact copies
 *
 * Everything outside the process reaches it through the `NodeRuntime` (clock, timers, seed, log
 * store, store, transport), so the simulator runs this very class on simulated time and disks.
 *
 * Bugs crash: a non-`BatonError` thrown by any request path takes the loop's fatal path before it
 * propagates; a `BatonError` is an operating error and leaves the node running.
 */
import type { ExecuteResponse, QueryResponse, StatusAdmission, StatusResponse } from "../api/api-types.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import { mayLead, memberAttributesOf, type RoleChange } from "../consensus/index.ts";
import { BatonError, ErrorCode, isBatonError } from "../lib/errors.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import { Admission } from "./admission.ts";
import { CommittedApplier } from "./committed-applier.ts";
import { type ConsistencyChecks, contentHashInSteps } from "./consistency-check.ts";
import type { FailoverView } from "./failover-control.ts";
import type { HistoryEntry } from "./history.ts";
import { IdGuard } from "./id-guard.ts";
import { IndexWaiters } from "./index-waiters.ts";
import { LeaderSpeculation } from "./leader-speculation.ts";
import type { AddRequest, JoinAnswer, MemberChangeAnswer, MembersResponse } from "./member-changes.ts";
import { checkNodeConfig, loopDelayShedMsOf, type NodeConfig } from "./node-config.ts";
import type { NodeService, Readiness } from "./node-service.ts";
import { NodeStatusView } from "./node-status.ts";
import { OperatorControls } from "./operator-controls.ts";
import { replayRequest, summarizeOrphan, viewOrphan } from "./orphans.ts";
import { PeerDirectory } from "./peer-directory.ts";
import { ReadPath } from "./read-path.ts";
import { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import { listSnapshots } from "./snapshot-files.ts";
import { SnapshotKeeper } from "./snapshot-keeper.ts";
import { SnapshotReceiver } from "./snapshot-receiver.ts";
import { SnapshotSender } from "./snapshot-transfer.ts";
import type { StorageHeal } from "./storage-heal.ts";
import { routeStorageMessage, storageHealth } from "./storage-health.ts";
import type { ScheduledSwitchover, SwitchoverAnswer, SwitchoverRequest } from "./switchover.ts";
import { WritePath } from "./write-path.ts";

/** How often a stopping leader checks whether its hand-over finished. */
const handOverPollMs = 10;

export class BatonNode implements NodeService {
  readonly id: NodeId;
  readonly config: NodeConfig;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  readonly peers: PeerDirectory;
  readonly applied: IndexWaiters;
  readonly speculation: LeaderSpeculation;
  readonly admission: Admission;
  readonly snapshots: SnapshotKeeper;
  private readonly ids: IdGuard;
  private readonly sender: SnapshotSender;
  private readonly receiver: SnapshotReceiver;
  private readonly writes: WritePath;
  private readonly reads: ReadPath;
  private readonly statusView: NodeStatusView;
  private readonly operator: OperatorControls;
  private readonly checks: ConsistencyChecks;
  private readonly healing: StorageHeal;
  private stopping = false;

  constructor(config: NodeConfig, runtime: NodeRuntime) {
    this.config = checkNodeConfig(config);
    this.id = config.id;
    this.runtime = runtime;
    const { store, timers, clock, logger } = runtime;
    this.peers = new PeerDirectory(config.id, config.httpAddress, config.peerHttp);
    this.loop = new ReplicaLoop(config, runtime, this.peers);
    this.applied = new IndexWaiters("applied index", store.appliedIndex, timers, config.indexWaitersMax);
    this.speculation = new LeaderSpeculation(store, clock, config, this.applied, logger);
    const send = (peer: NodeId, body: Uint8Array): void => this.loop.sendRaw(peer, body);
    const speculativeCount = (): number => this.speculation.count;
    const abortSending = (): void => this.sender.abortAll();
    const isWitness = (): boolean => this.isWitness();
    const healthParts = { config, runtime, loop: this.loop, send, speculativeCount, abortSending, isWitness };
    ({ healing: this.healing, checks: this.checks } = storageHealth(healthParts));
    const storeDamaged = (): boolean => this.healing.damaged !== null;
    const latest = listSnapshots(runtime.snapshotDirectory).at(-1) ?? null;
    this.snapshots = new SnapshotKeeper(config, runtime, this.loop, latest, () => this.snapshotsPaused());
    const applier = this.newApplier(storeDamaged);
    const transferParts = {
      config,
      runtime,
      loop: this.loop,
      keeper: this.snapshots,
      applied: this.applied,
      send,
      isWitness,
      storeDamaged,
      installed: () => this.healing.snapshotInstalled(),
      applyingElsewhere: () => applier.applyingElsewhere !== null,
    };
    this.sender = new SnapshotSender(transferParts);
    this.receiver = new SnapshotReceiver(transferParts);
    this.attachLoop(applier);
    this.ids = IdGuard.forNode(config, timers);
    this.writes = new WritePath({
      ...this.parts(),
      speculation: this.speculation,
      ids: this.ids,
      isStopping: () => this.stopping,
      damageError: () => this.healing.damageError(),
      storeVerified: () => this.healing.verified,
    });
    this.reads = new ReadPath({
      ...this.parts(),
      requireLeader: () => this.writes.requireLeader(),
      refuseRead: () => this.healing.refuseRead(),
    });
    const { admission, status } = admissionOf(config, runtime);
    this.admission = admission;
    this.statusView = new NodeStatusView(this.loop, store, this.peers, config, {
      snapshots: () => this.snapshots.status(),
      storage: () => ({ ...this.healing.status(), lastCheck: this.checks.lastCheck }),
      admission: status,
    });
    this.operator = new OperatorControls({
      ...this.parts(),
      requireLeader: () => this.writes.requireLeader(),
      handOver: (waitMsMax) => this.handOver(waitMsMax),
      guard: (run) => this.guard(run),
      guardSync: (run) => this.guardSync(run),
      proposeHistory: (rows, timeoutMs) => this.writes.proposeHistory(rows, timeoutMs),
      storeReadable: () => this.healing.readRefusal() === null,
    });
    this.loop.onStateChange(() => this.afterStep());
  }

  private newApplier(storeDamaged: () => boolean): CommittedApplier {
    const { store, observer } = this.runtime;
    return new CommittedApplier({
      store,
      core: this.loop.core,
      speculation: this.speculation,
      applied: this.applied,
      observer,
      loop: this.loop,
      isWitness: () => this.isWitness(),
      holdIndex: () => this.checks.holdIndex,
      paused: storeDamaged,
      diverged: (error) => this.healing.onDiverged(error),
      holdApplies: () => this.writes.sandboxRunning,
      clock: this.runtime.clock,
      ...(this.runtime.entryApplier === undefined ? {} : { entryApplier: this.runtime.entryApplier }),
    });
  }

  /** Hands the replica loop what it calls: the applier, role changes and the snapshot streams. */
  private attachLoop(applier: CommittedApplier): void {
    this.loop.attach({
      applyCommitted: (through) => applier.applyCommitted(through),
      roleChanged: (change) => this.roleChanged(change),
      snapshotNeeded: (needed) => this.sender.start(needed),
      snapshotStream: (from, message) => {
        if (message.kind === "offer") this.receiver.onOffer(from, message.totalBytes, message.install);
        else if (message.kind === "chunk") this.receiver.onChunk(from, message);
        else this.sender.onAck(from, message);
      },
      storageMessage: (from, message) =>
        routeStorageMessage(
          this.checks,
          (peer, index) => this.sender.startRequested(peer, index),
          from,
          message,
        ),
      peerConnected: (peer) => this.checks.peerConnected(peer),
      historyMessage: (from, message) => this.operator.history.onMessage(from, message),
    });
  }

  private parts() {
    return {
      loop: this.loop,
      applied: this.applied,
      peers: this.peers,
      config: this.config,
      runtime: this.runtime,
    };
  }

  async start(): Promise<void> {
    await this.loop.start();
    this.healing.start();
    this.operator.history.start();
  }

  /**
   * No snapshot of a damaged database, nor of one not verified since it opened: damage done while
   * the node was down would travel in it to a follower that counts the copy it installed as verified
   * (found by the simulator, SEED=228). Older files, and the log behind them, are not compacted meanwhile.
   */
  private snapshotsPaused(): boolean {
    return this.healing.damaged !== null || !this.healing.verified;
  }

  /** Whether the configuration in use makes this node a witness (votes, keeps the log, no data). */
  isWitness(): boolean {
    return memberAttributesOf(this.loop.core.summary().clusterConfig, this.id).witness;
  }

  execute(request: NormalizedExecute): Promise<ExecuteResponse> {
    return this.guard(() => this.admission.run("write", () => this.writes.execute(request)));
  }

  shed(): void {
    this.guardSync(() => this.admission.shed());
  }

  query(request: NormalizedQuery): Promise<QueryResponse> {
    return this.guard(() =>
      this.admission.run("read", () => {
        // A witness holds no data; reads it would send to the leader go there as from any follower.
        // Leading (a relay, handing its office over) it has nobody to send them to (found by the simulator).
        const toLeader = request.consistency === "linearizable" || request.consistency === "leader";
        if (this.isWitness() && (!toLeader || this.loop.core.summary().role === "leader"))
          throw new BatonError(ErrorCode.WITNESS_NO_SQL, `${this.id} is a witness: it holds no data to read`);
        return this.reads.query(request);
      }),
    );
  }

  status(): StatusResponse {
    return this.guardSync(() => ({
      ...this.statusView.status(),
      witness: this.isWitness(),
      failover: this.operator.failover.view(),
    }));
  }

  fencing(): { node: string; term: number } {
    return { node: this.id, term: this.loop.core.summary().term };
  }

  readiness(): Readiness {
    return this.guardSync(() => this.statusView.readiness(this.stopping));
  }

  contentHash(): Promise<{ appliedIndex: number; hash: string }> {
    return this.guard(() => contentHashInSteps(this.runtime, this.config.consistencyCheckRowsPerStep));
  }

  orphans(status: string | null, limit: number): unknown[] {
    if (status !== null && !["pending", "replayed", "discarded"].includes(status))
      throw new BatonError(ErrorCode.BAD_REQUEST, `status must be pending, replayed or discarded`);
    return this.guardSync(() =>
      this.runtime.orphans.list(status as never, limit).map((record) => summarizeOrphan(record)),
    );
  }

  orphan(id: number): unknown {
    return this.guardSync(() => viewOrphan(this.runtime.orphans.get(id), this.runtime.store));
  }

  orphanReplay(id: number): { request: NormalizedExecute; changeOf: (number | null)[] } {
    return this.guardSync(() =>
      replayRequest(this.runtime.orphans.get(id), this.runtime.store, `orphan-replay-${this.id}-${id}`),
    );
  }

  orphanResolved(id: number, status: "replayed" | "discarded" | null, detail: string): unknown {
    const { orphans, clock } = this.runtime;
    return this.guardSync(() => {
      if (status === null) {
        orphans.note(id, "replay-conflict", detail, clock.nowMs());
        return summarizeOrphan(orphans.get(id));
      }
      return summarizeOrphan(orphans.resolve(id, status, detail, clock.nowMs()));
    });
  }

  orphanActions(limit: number): unknown[] {
    return this.guardSync(() => this.runtime.orphans.actions(limit));
  }

  members(): MembersResponse {
    return this.operator.members();
  }

  memberAdd(request: AddRequest): Promise<MemberChangeAnswer> {
    return this.operator.memberAdd(request);
  }

  memberChange(
    action: "promote" | "demote" | "remove",
    id: string,
    timeoutMs: number | null,
    actor: string,
  ): Promise<MemberChangeAnswer> {
    return this.operator.memberChange(action, id, timeoutMs, actor);
  }

  memberJoin(
    request: { id: string; raft: string; http: string; witness?: boolean },
    timeoutMs: number | null,
  ): Promise<JoinAnswer> {
    return this.operator.memberJoin(request, timeoutMs);
  }

  switchover(request: SwitchoverRequest): Promise<SwitchoverAnswer> {
    return this.operator.switchover(request);
  }

  switchoverCancel(actor: string): { readonly cancelled: ScheduledSwitchover } {
    return this.operator.switchoverCancel(actor);
  }

  switchoverStatus(): { readonly scheduled: ScheduledSwitchover | null } {
    return this.operator.switchoverStatus();
  }

  failoverView(): FailoverView {
    return this.operator.failoverView();
  }

  failoverSettings(
    settings: Record<string, unknown>,
    timeoutMs: number | null,
    actor: string,
  ): Promise<unknown> {
    return this.operator.failoverSettings(settings, timeoutMs, actor);
  }

  memberAttributes(
    id: string,
    attributes: Record<string, unknown>,
    timeoutMs: number | null,
    actor: string,
  ): Promise<unknown> {
    return this.operator.memberAttributes(id, attributes, timeoutMs, actor);
  }

  promote(
    timeoutMs: number | null,
    actor: string,
  ): Promise<{ readonly leader: string; readonly term: number }> {
    return this.operator.promote(timeoutMs, actor);
  }

  history(limit: number): HistoryEntry[] {
    return this.operator.historyRead(limit);
  }

  /** Refuses new work from now on; writes waiting at the gate fail with SHUTTING_DOWN. */
  beginStop(): void {
    this.stopping = true;
    this.writes.gate.refuseAll(() => new BatonError(ErrorCode.SHUTTING_DOWN, "the node is shutting down"));
  }

  /**
   * A leader hands leadership to its most up-to-date follower and waits (bounded) until it has;
   * any other node returns at once. Used on graceful stop.
   */
  async handOver(waitMsMax: number): Promise<void> {
    const status = this.loop.core.status();
    if (status.role !== "leader") return;
    // Only to a voter that may lead: the core refuses a transfer to a witness or never-promote voter.
    const target = status.members
      .filter(
        (member) =>
          member.id !== this.id &&
          member.role === "voter" &&
          mayLead(status.clusterConfig, nodeId(member.id)),
      )
      .sort((a, b) => b.matchIndex - a.matchIndex)[0];
    if (target === undefined) return;
    this.runtime.logger("info", "node.handing-over-leadership", { target: target.id });
    this.loop.step({ type: "transferLeadership", target: target.id });
    const deadlineMs = this.runtime.clock.nowMs() + waitMsMax;
    while (this.loop.core.summary().role === "leader" && this.runtime.clock.nowMs() < deadlineMs)
      await new Promise<void>((resolve) => this.runtime.timers.after(handOverPollMs, resolve));
  }

  /** Stops ticking and the transport, and waits for pending log writes. Closing files is the caller's. */
  async stop(): Promise<void> {
    this.beginStop();
    this.snapshots.stop();
    this.sender.abortAll();
    this.receiver.stop();
    this.checks.stop();
    this.healing.stop();
    this.operator.history.stop();
    await this.loop.stop();
    this.applied.rejectAll(new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping"));
  }

  private roleChanged(change: RoleChange): void {
    this.checks.roleChanged(change.role);
    if (change.role === "leader") this.writes.leadershipGained();
    if (change.role !== "leader") {
      this.writes.leadershipLost();
      this.speculation.rollback(`became ${change.role}`);
      this.operator.leadershipLost();
      this.sender.abortAll();
      this.ids.reset();
    }
  }

  /** After every step (and on the fatal path): refuse or release the writes at the gate. */
  private afterStep(): void {
    this.snapshots.maybeSnapshot();
    const gate = this.writes.gate;
    if (this.loop.fatal !== null) {
      const stopped = () => new BatonError(ErrorCode.SHUTTING_DOWN, "the node stopped after a failure");
      gate.refuseAll(stopped);
      this.applied.rejectAll(stopped());
      return;
    }
    // Before the gate lets writes in: a leader picks a check's index while no batch is open.
    this.checks.afterStep();
    this.healing.afterStep();
    if (gate.size === 0) return;
    const damage = this.healing.damageError();
    if (damage !== null) {
      gate.refuseAll(() => damage);
      return;
    }
    const core = this.loop.core.summary();
    if (core.role !== "leader") {
      gate.refuseAll(() => this.peers.refusal("NOT_LEADER", core.leaderId));
      return;
    }
    gate.release();
  }

  /** Runs a request path; an error that is not an operating error is a bug and stops the node. */
  private async guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.bugOrOperating(error);
    }
  }

  private guardSync<T>(run: () => T): T {
    try {
      return run();
    } catch (error) {
      throw this.bugOrOperating(error);
    }
  }

  private bugOrOperating(error: unknown): Error {
    if (isBatonError(error)) return error;
    const bug = error instanceof Error ? error : new Error(String(error));
    this.loop.fail(bug);
    return new BatonError(
      ErrorCode.INTERNAL,
      `the node stopped on an internal error: ${bug.message}`,
      {},
      { cause: bug },
    );
  }
}

/** Admission control on the runtime's measure of the event loop's delay, and its status section. */
function admissionOf(
  config: NodeConfig,
  runtime: NodeRuntime,
): { admission: Admission; status: () => StatusAdmission } {
  const loopDelay = runtime.loopDelay;
  const loopDelayShedMs = loopDelayShedMsOf(config);
  const admission = new Admission(
    config,
    loopDelay === undefined ? null : { recentMs: () => loopDelay.recentMs(), loopDelayShedMs },
  );
  const status = (): StatusAdmission => ({
    readsInFlight: admission.inFlightOf("read"),
    writesInFlight: admission.inFlightOf("write"),
    refused: { ...admission.refused },
    loopDelayMs: admission.loopDelayMs(),
    loopDelayShedMs,
  });
  return { admission, status };
}
