/**
 * What `/v1/status` and `/readyz` say about a node. Built on demand from the core's status (which
 * lists members and so costs an allocation per member): never on a request's hot path.
 *
 * Readiness is honest: ready means this node can serve reads within its configured lag now — a
 * leader that still holds its lease (check-quorum steps it down otherwise) and has applied its
 * term's first entry, or a follower whose state was known as fresh as the leader's commit within
 * `readyLagMsMax`. Knowing a leader is not enough.
 */
import type { StatusAdmission, StatusResponse, StatusSnapshots, StatusStorage } from "../api/api-types.ts";
import type { Store } from "../store/store.ts";
import type { NodeId } from "../types/ids.ts";
import type { NodeConfig } from "./node-config.ts";
import type { Readiness } from "./node-service.ts";
import type { PeerDirectory } from "./peer-directory.ts";
import type { ReplicaLoop } from "./replica-loop.ts";

export class NodeStatusView {
  private readonly loop: ReplicaLoop;
  private readonly store: Store;
  private readonly peers: PeerDirectory;
  private readonly config: NodeConfig;
  private readonly snapshots: () => StatusSnapshots;
  private readonly storage: () => StatusStorage;
  private readonly admission: () => StatusAdmission;

  constructor(
    loop: ReplicaLoop,
    store: Store,
    peers: PeerDirectory,
    config: NodeConfig,
    views: {
      snapshots: () => StatusSnapshots;
      storage: () => StatusStorage;
      admission: () => StatusAdmission;
    },
  ) {
    this.loop = loop;
    this.store = store;
    this.peers = peers;
    this.config = config;
    this.snapshots = views.snapshots;
    this.storage = views.storage;
    this.admission = views.admission;
  }

  status(): StatusResponse {
    const core = this.loop.core.status();
    const { voters, learners } = core.clusterConfig;
    const members = [...voters, ...learners].map((id) => ({
      ...this.member(id, core),
      membership: voters.includes(id) ? "voter" : "learner",
    }));
    return {
      id: this.config.id,
      role: core.role === "leader" ? "leader" : core.role === "follower" ? "follower" : "candidate",
      term: core.term,
      leader:
        core.leaderId === null ? null : { id: core.leaderId, http: this.peers.httpOf(core.leaderId) ?? "" },
      commitIndex: core.commitIndex,
      appliedIndex: this.store.appliedIndex,
      lastIndex: core.lastIndex,
      membership: voters.includes(this.config.id)
        ? "voter"
        : learners.includes(this.config.id)
          ? "learner"
          : "not-a-member",
      members,
      snapshots: this.snapshots(),
      storage: this.storage(),
      admission: this.admission(),
    };
  }

  readiness(stopping: boolean): Readiness {
    if (stopping) return { ready: false, reason: "shutting down" };
    if (this.loop.fatal !== null) return { ready: false, reason: `stopped: ${this.loop.fatal.message}` };
    const storage = this.storage();
    if (storage.damaged !== null)
      return {
        ready: false,
        reason: `database damaged (check at index ${storage.damaged.index}); waiting for a snapshot`,
      };
    if (!storage.verified)
      return { ready: false, reason: "database not verified against the other replicas since it started" };
    const core = this.loop.core.summary();
    if (core.leaderId === null) return { ready: false, reason: "no leader known" };
    if (core.role === "leader") {
      const termStarted = this.loop.core.termAt(core.commitIndex) === core.term;
      return termStarted
        ? { ready: true, reason: null }
        : { ready: false, reason: "the new leader has not committed yet" };
    }
    const lagMs = this.loop.lagMs();
    if (lagMs === null) return { ready: false, reason: "not yet caught up with the leader" };
    if (lagMs > this.config.readyLagMsMax)
      return {
        ready: false,
        reason: `lags the leader by ${lagMs} ms (readyLagMsMax ${this.config.readyLagMsMax})`,
      };
    return { ready: true, reason: null };
  }

  private member(
    id: NodeId,
    core: ReturnType<ReplicaLoop["core"]["status"]>,
  ): StatusResponse["members"][number] {
    const base = { id, http: this.peers.httpOf(id) ?? undefined };
    if (id === this.config.id)
      return { ...base, self: true, matchIndex: core.lastIndex, appliedIndex: this.store.appliedIndex };
    const progress = core.members.find((m) => m.id === id);
    if (progress === undefined) return base;
    return {
      ...base,
      state: progress.state,
      matchIndex: progress.matchIndex,
      appliedIndex: progress.appliedIndex,
      lagEntries: Math.max(0, core.lastIndex - progress.matchIndex),
      lastContactMs: progress.lastHeardTicksAgo * this.config.tickMs,
    };
  }
}
