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
 *
 * Everything outside the process reaches it through the `NodeRuntime` (clock, timers, seed, log
 * store, store, transport), so the simulator runs this very class on simulated time and disks.
 *
 * Bugs crash: a non-`BatonError` thrown by any request path takes the loop's fatal path before it
 * propagates; a `BatonError` is an operating error and leaves the node running.
 */
import type { ExecuteResponse, QueryResponse, StatusAdmission, StatusResponse } from "../api/api-types.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import type { RoleChange } from "../consensus/index.ts";
import { BatonError, ErrorCode, isBatonError } from "../lib/errors.ts";
import type { NodeId } from "../types/ids.ts";
import { Admission } from "./admission.ts";
import { CommittedApplier } from "./committed-applier.ts";
import { IdGuard } from "./id-guard.ts";
import { IndexWaiters } from "./index-waiters.ts";
import { LeaderSpeculation } from "./leader-speculation.ts";
import { checkNodeConfig, loopDelayShedMsOf, type NodeConfig } from "./node-config.ts";
import type { NodeService, Readiness } from "./node-service.ts";
import { NodeStatusView } from "./node-status.ts";
import { replayRequest, summarizeOrphan, viewOrphan } from "./orphans.ts";
import { PeerDirectory } from "./peer-directory.ts";
import { ReadPath } from "./read-path.ts";
import { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import { listSnapshots } from "./snapshot-files.ts";
import { SnapshotKeeper } from "./snapshot-keeper.ts";
import { SnapshotReceiver, SnapshotSender } from "./snapshot-transfer.ts";
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
    const applier = new CommittedApplier({
      store,
      core: this.loop.core,
      speculation: this.speculation,
      applied: this.applied,
      observer: runtime.observer,
      reportApplied: (index) => this.loop.reportApplied(index),
      holdApplies: () => this.writes.sandboxRunning,
    });
    this.snapshots = new SnapshotKeeper(
      config,
      runtime,
      this.loop,
      listSnapshots(runtime.snapshotDirectory).at(-1) ?? null,
    );
    const transferParts = {
      config,
      runtime,
      loop: this.loop,
      keeper: this.snapshots,
      applied: this.applied,
      send: (peer: NodeId, body: Uint8Array) => this.loop.sendRaw(peer, body),
    };
    this.sender = new SnapshotSender(transferParts);
    this.receiver = new SnapshotReceiver(transferParts);
    this.loop.attach({
      applyCommitted: (through) => applier.applyCommitted(through),
      roleChanged: (change) => this.roleChanged(change),
      snapshotNeeded: (needed) => this.sender.start(needed),
      snapshotStream: (from, message) => {
        if (message.kind === "offer") this.receiver.onOffer(from, message.totalBytes, message.install);
        else if (message.kind === "chunk") this.receiver.onChunk(from, message);
        else this.sender.onAck(from, message);
      },
    });
    const isStopping = (): boolean => this.stopping;
    this.ids = new IdGuard({
      block: config.idReservationBlock,
      enabled: config.unsafeNodeBugs?.noIdReservations !== true,
      timers,
      waitersMax: config.writesInFlightMax,
    });
    this.writes = new WritePath({
      ...this.parts(),
      speculation: this.speculation,
      ids: this.ids,
      isStopping,
    });
    this.reads = new ReadPath({ ...this.parts(), requireLeader: () => this.writes.requireLeader() });
    const { admission, status } = admissionOf(config, runtime);
    this.admission = admission;
    this.statusView = new NodeStatusView(this.loop, store, this.peers, config, {
      snapshots: () => this.snapshots.status(),
      admission: status,
    });
    this.loop.onStateChange(() => this.afterStep());
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

  start(): Promise<void> {
    return this.loop.start();
  }

  execute(request: NormalizedExecute): Promise<ExecuteResponse> {
    return this.guard(() => this.admission.run("write", () => this.writes.execute(request)));
  }

  shed(): void {
    this.guardSync(() => this.admission.shed());
  }

  query(request: NormalizedQuery): Promise<QueryResponse> {
    return this.guard(() => this.admission.run("read", () => this.reads.query(request)));
  }

  status(): StatusResponse {
    return this.guardSync(() => this.statusView.status());
  }

  fencing(): { node: string; term: number } {
    return { node: this.id, term: this.loop.core.summary().term };
  }

  readiness(): Readiness {
    return this.guardSync(() => this.statusView.readiness(this.stopping));
  }

  contentHash(): { appliedIndex: number; hash: string } {
    const store = this.runtime.store;
    return this.guardSync(() => ({ appliedIndex: store.appliedIndex, hash: store.contentHash() }));
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
    const target = status.members
      .filter((member) => member.id !== this.id)
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
    await this.loop.stop();
    this.applied.rejectAll(new BatonError(ErrorCode.SHUTTING_DOWN, "the node is stopping"));
  }

  private roleChanged(change: RoleChange): void {
    if (change.role === "leader") this.writes.leadershipGained();
    if (change.role !== "leader") {
      this.writes.leadershipLost();
      this.speculation.rollback(`became ${change.role}`);
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
    if (gate.size === 0) return;
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
