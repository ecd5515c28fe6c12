/**
 * The node's public interface: what `src/http` and `src/cli` (and the simulator's clients) call.
 * `BatonNode` implements it.
 *
 * Methods throw `BatonError`s for operating errors (the HTTP layer maps codes to statuses through
 * `httpStatusByCode`). Anything else is a bug: the node takes its fatal path before the error
 * leaves it, so the HTTP layer may answer that one request 500 `INTERNAL` but the node never
 * carries on. A `NOT_LEADER` error carries `details.leader = {id, http}`, which the forwarding
 * module uses.
 */
import type { ExecuteResponse, QueryResponse, StatusResponse } from "../api/api-types.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import type { FailoverView } from "./failover-control.ts";
import type { HistoryEntry } from "./history.ts";
import type { AddRequest, JoinAnswer, MemberChangeAnswer, MembersResponse } from "./member-changes.ts";
import type { ScheduledSwitchover, SwitchoverAnswer, SwitchoverRequest } from "./switchover.ts";

export type Readiness = { readonly ready: boolean; readonly reason: string | null };

export interface NodeService {
  /** Runs a write batch; a follower throws NOT_LEADER (with the leader when known) or NO_LEADER. */
  execute(request: NormalizedExecute): Promise<ExecuteResponse>;
  /**
   * Throws OVERLOADED while this node sheds new client work (its event loop runs late, see
   * `admission.ts`); the HTTP layer asks before it reads a request's body, so shedding costs little.
   */
  shed(): void;
  /** Serves a read at the requested consistency; throws NOT_LEADER for leader reads on a follower. */
  query(request: NormalizedQuery): Promise<QueryResponse>;
  status(): StatusResponse;
  /** Hash of this node's committed content with the index it was taken at (divergence check). */
  contentHash(): Promise<{ readonly appliedIndex: number; readonly hash: string }>;
  /** The fencing token of this node now: its id and current term (every HTTP answer carries them). */
  fencing(): { readonly node: string; readonly term: number };
  /** Ready = can serve reads within its configured lag now (see `node-status.ts`). */
  readiness(): Readiness;
  /** Orphaned entries quarantined on this node, newest first (`orphans.ts`). */
  orphans(status: string | null, limit: number): unknown[];
  /** One orphan as rows, compared with this node's committed state. */
  orphan(id: number): unknown;
  /** The replay batch of an orphan (to run through the leader), and the change of each statement. */
  orphanReplay(id: number): { request: NormalizedExecute; changeOf: (number | null)[] };
  /** Records the outcome of a replay or a discard; `null` status records a note (a conflict). */
  orphanResolved(id: number, status: "replayed" | "discarded" | null, detail: string): unknown;
  orphanActions(limit: number): unknown[];
  /** The cluster's members as this node sees them (with replication progress on the leader). */
  members(): MembersResponse;
  /**
   * Membership changes (`member-changes.ts`); only the leader makes them, others throw NOT_LEADER.
   * Each resolves once its configuration entry committed.
   */
  memberAdd(request: AddRequest): Promise<MemberChangeAnswer>;
  memberChange(
    action: "promote" | "demote" | "remove",
    id: string,
    timeoutMs: number | null,
    actor: string,
  ): Promise<MemberChangeAnswer>;
  /** Planned hand-over of leadership, now or at a time (`switchover.ts`); only the leader, others throw NOT_LEADER. */
  switchover(request: SwitchoverRequest): Promise<SwitchoverAnswer>;
  switchoverCancel(actor: string): { readonly cancelled: ScheduledSwitchover };
  switchoverStatus(): { readonly scheduled: ScheduledSwitchover | null };
  /** This node's view of failover: settings, leader loss, the pending proposal (`failover-control.ts`). */
  failoverView(): FailoverView;
  /** Changes the cluster's failover settings (leader only; replicated). */
  failoverSettings(
    settings: Record<string, unknown>,
    timeoutMs: number | null,
    actor: string,
  ): Promise<unknown>;
  /** Changes a member's failover attributes: priority, zone, neverPromote, witness (leader only). */
  memberAttributes(
    id: string,
    attributes: Record<string, unknown>,
    timeoutMs: number | null,
    actor: string,
  ): Promise<unknown>;
  /** Promotes this very node if it may win safely (manual failover, or approving a pending one). */
  promote(
    timeoutMs: number | null,
    actor: string,
  ): Promise<{ readonly leader: string; readonly term: number }>;
  /**
   * The history, newest first (`history-replication.ts`): the replicated records and this node's own
   * not yet replicated (`replicated: false`), at most `limit`.
   */
  history(limit: number): HistoryEntry[];
  /** A new node with an empty data directory asks to be added (`baton start --join`). */
  memberJoin(
    request: { id: string; raft: string; http: string; witness?: boolean },
    timeoutMs: number | null,
  ): Promise<JoinAnswer>;
}
