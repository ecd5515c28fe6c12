/**
 * What an operator does to a running cluster through a node: membership changes
 * (`member-changes.ts`), failover settings, member attributes and promotion (`failover-control.ts`),
 * switchovers (`switchover.ts`) and the history (`history.ts`, replicated by
 * `history-replication.ts`). Every change is recorded in the history with who asked and how it ended.
 */
import { BatonError, ErrorCode, isBatonError } from "../lib/errors.ts";
import { FailoverControl, type FailoverView } from "./failover-control.ts";
import { type HistoryEntry, historyReadMax } from "./history.ts";
import { HistoryReplicator } from "./history-replication.ts";
import {
  type AddRequest,
  type JoinAnswer,
  type MemberChangeAnswer,
  MemberChanges,
  type MembersResponse,
} from "./member-changes.ts";
import type { NodeConfig } from "./node-config.ts";
import type { PeerDirectory } from "./peer-directory.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import {
  type ScheduledSwitchover,
  Switchover,
  type SwitchoverAnswer,
  type SwitchoverRequest,
} from "./switchover.ts";

type Parts = {
  readonly config: NodeConfig;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  readonly peers: PeerDirectory;
  readonly requireLeader: () => void;
  readonly handOver: (waitMsMax: number) => Promise<void>;
  /** The node's request guards: a bug takes the fatal path, an operating error is returned. */
  readonly guard: <T>(run: () => Promise<T>) => Promise<T>;
  readonly guardSync: <T>(run: () => T) => T;
  readonly proposeHistory: ConstructorParameters<typeof HistoryReplicator>[0]["proposeHistory"];
  /** False while this node's database must not be read (damaged, or not verified since it started). */
  readonly storeReadable: () => boolean;
};

export class OperatorControls {
  readonly failover: FailoverControl;
  readonly switchovers: Switchover;
  readonly history: HistoryReplicator;
  private readonly memberChanges: MemberChanges;
  private readonly parts: Parts;

  constructor(parts: Parts) {
    this.parts = parts;
    const { loop, config, runtime, peers, requireLeader } = parts;
    this.failover = new FailoverControl({ loop, config, runtime, requireLeader });
    this.memberChanges = new MemberChanges({
      loop,
      peers,
      config,
      runtime,
      requireLeader,
      handOver: parts.handOver,
      markWitness: (node, waitMs) => this.failover.changeAttributes(node, { witness: true }, waitMs),
    });
    this.switchovers = new Switchover({ loop, config, runtime, history: loop.history, requireLeader });
    const { proposeHistory, storeReadable } = parts;
    this.history = new HistoryReplicator({ config, runtime, loop, proposeHistory, storeReadable });
  }

  /** This node no longer leads: a scheduled switchover is dropped, pushed history is the next leader's. */
  leadershipLost(): void {
    this.switchovers.leadershipLost();
    this.history.leadershipLost();
  }

  members(): MembersResponse {
    return this.parts.guardSync(() => this.memberChanges.list());
  }

  memberAdd(request: AddRequest): Promise<MemberChangeAnswer> {
    const { id, role, raft, http, actor } = request;
    return this.operatorAction("member-add", { actor, target: id, role, raft, http }, () =>
      this.memberChanges.add(request),
    );
  }

  memberChange(
    action: "promote" | "demote" | "remove",
    id: string,
    timeoutMs: number | null,
    actor: string,
  ): Promise<MemberChangeAnswer> {
    return this.operatorAction(`member-${action}`, { actor, target: id }, () =>
      this.memberChanges[action](id, timeoutMs),
    );
  }

  memberJoin(
    request: { id: string; raft: string; http: string; witness?: boolean },
    timeoutMs: number | null,
  ): Promise<JoinAnswer> {
    const { id, raft, http } = request;
    return this.operatorAction("member-join", { actor: id, target: id, raft, http }, () =>
      this.memberChanges.join(request, timeoutMs),
    );
  }

  switchover(request: SwitchoverRequest): Promise<SwitchoverAnswer> {
    return this.parts.guard(() => this.switchovers.request(request));
  }

  switchoverCancel(actor: string): { readonly cancelled: ScheduledSwitchover } {
    return this.parts.guardSync(() => this.switchovers.cancel(actor));
  }

  switchoverStatus(): { readonly scheduled: ScheduledSwitchover | null } {
    return this.parts.guardSync(() => this.switchovers.status());
  }

  failoverView(): FailoverView {
    return this.parts.guardSync(() => this.failover.view());
  }

  failoverSettings(
    settings: Record<string, unknown>,
    timeoutMs: number | null,
    actor: string,
  ): Promise<unknown> {
    return this.operatorAction("failover-settings", { actor, settings }, async () => {
      const result = await this.failover.changeSettings(settings, timeoutMs);
      return { ...result, failover: this.failover.view().settings };
    });
  }

  memberAttributes(
    id: string,
    attributes: Record<string, unknown>,
    timeoutMs: number | null,
    actor: string,
  ): Promise<unknown> {
    return this.operatorAction("member-attributes", { actor, target: id, attributes }, () =>
      this.failover.changeAttributes(id, attributes, timeoutMs),
    );
  }

  promote(
    timeoutMs: number | null,
    actor: string,
  ): Promise<{ readonly leader: string; readonly term: number }> {
    return this.operatorAction("promote", { actor, target: this.parts.config.id }, () =>
      this.failover.promote(timeoutMs),
    );
  }

  historyRead(limit: number): HistoryEntry[] {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > historyReadMax)
      throw new BatonError(ErrorCode.BAD_REQUEST, `limit must be an integer from 1 to ${historyReadMax}`);
    return this.parts.guardSync(() => this.history.read(limit));
  }

  /**
   * Runs an operator's request and records it in the history with its outcome. A refusal that
   * sends the request to the leader (NOT_LEADER, NO_LEADER) is not recorded here: the leader
   * records it.
   */
  private async operatorAction<T>(
    event: string,
    fields: Record<string, unknown>,
    run: () => Promise<T>,
  ): Promise<T> {
    const record = (outcome: Record<string, unknown>): void => {
      this.parts.loop.history.record({
        atMs: this.parts.runtime.clock.nowMs(),
        node: this.parts.config.id,
        term: this.parts.loop.core.summary().term,
        event,
        ...fields,
        ...outcome,
      });
    };
    try {
      const result = await this.parts.guard(run);
      record({ outcome: "done" });
      return result;
    } catch (error) {
      if (isBatonError(error) && error.code !== ErrorCode.NOT_LEADER && error.code !== ErrorCode.NO_LEADER)
        record({ outcome: "failed", code: error.code, message: error.message });
      throw error;
    }
  }
}
