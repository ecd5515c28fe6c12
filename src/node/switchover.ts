/**
 * Planned switchover: the leader hands leadership to a chosen voter (or the most up-to-date one),
 * now or at a set time, and reports how long writes paused.
 *
 * Zero loss: the core transfers leadership only to a voter whose log matches the leader's (it
 * brings the target up to date first, then tells it to campaign at once; Raft thesis §3.10), and
 * while a transfer runs the leader refuses new writes with `LEADERSHIP_TRANSFER` (not applied:
 * clients retry on the new leader). Every acknowledged write is committed, so it is in the new
 * leader's log.
 *
 * The write pause is measured on the old leader from the transfer's start until it hears that the
 * new leader committed an entry of its own term (the heartbeat that carries that commit index):
 * from then on the new leader accepts writes. That overstates the pause by at most a heartbeat.
 *
 * A scheduled switchover lives on the leader that accepted it: one at a time, cancellable until it
 * starts, and dropped (with a history record) if this node stops leading first. Every step is in
 * the history.
 */
import { isVoter } from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import type { HistorySink } from "./history.ts";
import type { NodeConfig } from "./node-config.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";

/** The longest a switchover may be scheduled ahead. */
export const switchoverAheadMsMax = 7 * 24 * 3600_000;
/** The longest one switchover may take, from its start to the new leader's first commit. */
export const switchoverWaitMsMax = 60_000;
const switchoverWaitMsDefault = 10_000;
const pollMs = 5;

export type SwitchoverRequest = {
  readonly to: string | null;
  /** When to start (milliseconds since the epoch), or null for now. */
  readonly atMs: number | null;
  readonly timeoutMs: number | null;
  readonly actor: string;
};

export type ScheduledSwitchover = {
  readonly to: string | null;
  readonly atMs: number;
  readonly requestedAtMs: number;
  readonly actor: string;
};

export type SwitchoverDone = {
  readonly from: string;
  readonly to: string;
  readonly term: number;
  /** From the transfer's start until the new leader had committed an entry of its term. */
  readonly writePauseMs: number;
};

export type SwitchoverAnswer =
  | { readonly state: "scheduled"; readonly scheduled: ScheduledSwitchover }
  | ({ readonly state: "done" } & SwitchoverDone);

export class Switchover {
  private readonly loop: ReplicaLoop;
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly history: HistorySink;
  private readonly requireLeader: () => void;
  private scheduled: (ScheduledSwitchover & { readonly cancel: Cancel }) | null = null;

  constructor(parts: {
    loop: ReplicaLoop;
    config: NodeConfig;
    runtime: NodeRuntime;
    history: HistorySink;
    requireLeader: () => void;
  }) {
    this.loop = parts.loop;
    this.config = parts.config;
    this.runtime = parts.runtime;
    this.history = parts.history;
    this.requireLeader = parts.requireLeader;
  }

  status(): { readonly scheduled: ScheduledSwitchover | null } {
    if (this.scheduled === null) return { scheduled: null };
    const { cancel: _cancel, ...scheduled } = this.scheduled;
    return { scheduled };
  }

  async request(request: SwitchoverRequest): Promise<SwitchoverAnswer> {
    this.requireLeader();
    const nowMs = this.runtime.clock.nowMs();
    const waitMs = request.timeoutMs ?? switchoverWaitMsDefault;
    if (!Number.isSafeInteger(waitMs) || waitMs < 1 || waitMs > switchoverWaitMsMax)
      throw new BatonError(
        ErrorCode.BAD_REQUEST,
        `timeoutMs must be an integer from 1 to ${switchoverWaitMsMax}`,
      );
    if (request.to !== null) this.checkTarget(request.to);
    if (request.atMs !== null && request.atMs > nowMs) {
      if (request.atMs - nowMs > switchoverAheadMsMax)
        throw new BatonError(
          ErrorCode.BAD_REQUEST,
          `a switchover is scheduled at most ${switchoverAheadMsMax} ms ahead`,
        );
      if (this.scheduled !== null)
        throw new BatonError(ErrorCode.CONFLICT, "a switchover is already scheduled; cancel it first", {
          scheduled: this.status().scheduled,
        });
      const scheduled = { to: request.to, atMs: request.atMs, requestedAtMs: nowMs, actor: request.actor };
      const cancel = this.runtime.timers.after(request.atMs - nowMs, () => {
        this.scheduled = null;
        this.run(request.to, waitMs, request.actor).catch((error: unknown) =>
          this.record("switchover-failed", { actor: request.actor, error: (error as Error).message }),
        );
      });
      this.scheduled = { ...scheduled, cancel };
      this.record("switchover-scheduled", { ...scheduled });
      return { state: "scheduled", scheduled };
    }
    return { state: "done", ...(await this.run(request.to, waitMs, request.actor)) };
  }

  cancel(actor: string): { readonly cancelled: ScheduledSwitchover } {
    const scheduled = this.scheduled;
    if (scheduled === null) {
      this.requireLeader(); // the leader holds the schedule: a follower sends the request there
      throw new BatonError(ErrorCode.NOT_FOUND, "no switchover is scheduled");
    }
    scheduled.cancel();
    this.scheduled = null;
    const { cancel: _cancel, ...cancelled } = scheduled;
    this.record("switchover-cancelled", { actor, scheduled: cancelled });
    return { cancelled };
  }

  /** This node stopped leading: a switchover it scheduled will not happen. */
  leadershipLost(): void {
    if (this.scheduled === null) return;
    const { cancel, ...dropped } = this.scheduled;
    cancel();
    this.scheduled = null;
    this.record("switchover-cancelled", { actor: "node", reason: "leadership lost", scheduled: dropped });
  }

  private async run(to: string | null, waitMs: number, actor: string): Promise<SwitchoverDone> {
    this.requireLeader();
    const target = to === null ? this.bestVoter() : this.checkTarget(to);
    const { clock, timers } = this.runtime;
    const startMs = clock.nowMs();
    const deadlineMs = startMs + waitMs;
    this.record("switchover-started", { actor, target });
    this.loop.step({ type: "transferLeadership", target });
    for (;;) {
      const summary = this.loop.core.summary();
      const newLeaderCommitted =
        summary.role !== "leader" &&
        summary.leaderId === target &&
        this.loop.core.termAt(summary.commitIndex) === summary.term;
      if (newLeaderCommitted) {
        const done = {
          from: this.config.id,
          to: target,
          term: summary.term,
          writePauseMs: clock.nowMs() - startMs,
        };
        this.record("switchover-finished", { actor, ...done });
        return done;
      }
      if (clock.nowMs() >= deadlineMs) {
        this.record("switchover-failed", { actor, target, reason: "timeout", role: summary.role });
        throw new BatonError(
          ErrorCode.TIMEOUT,
          `leadership did not move to ${target} within ${waitMs} ms (this node is ${summary.role}, leader ${summary.leaderId ?? "unknown"})`,
          { target, role: summary.role, leader: summary.leaderId },
        );
      }
      await new Promise<void>((resolve) => timers.after(pollMs, resolve));
    }
  }

  /** The most up-to-date voter other than this node. */
  private bestVoter(): NodeId {
    const status = this.loop.core.status();
    const best = status.members
      .filter((member) => member.id !== this.config.id && member.role === "voter")
      .sort((a, b) => b.matchIndex - a.matchIndex)[0];
    if (best === undefined)
      throw new BatonError(ErrorCode.NO_VOTER_LEFT, "there is no other voter to hand leadership to");
    return best.id;
  }

  private checkTarget(to: string): NodeId {
    const config = this.loop.core.summary().clusterConfig;
    const target = nodeId(to);
    if (target === this.config.id) throw new BatonError(ErrorCode.BAD_REQUEST, `${to} is the leader already`);
    if (!isVoter(config, target))
      throw new BatonError(ErrorCode.NODE_NOT_VOTER, `${to} is not a voter, so it cannot lead`, { node: to });
    return target;
  }

  private record(event: string, fields: Record<string, unknown>): void {
    const { term } = this.loop.core.summary();
    this.history.record({ atMs: this.runtime.clock.nowMs(), node: this.config.id, term, event, ...fields });
    this.runtime.logger("info", `node.${event}`, fields);
  }
}
