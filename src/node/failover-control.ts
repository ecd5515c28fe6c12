/**
 * The operator's side of failover (the rules live in the consensus core: `src/consensus/README.md`,
 * "Failover"): the cluster's failover settings and member attributes, promotion of a node (the
 * approval of a pending failover is a promotion of its candidate), and the failover view in status.
 *
 * - **Settings and attributes** are replicated configuration: each change is one configuration
 *   entry through the leader, answered once committed, one at a time (like a membership change).
 * - **Promote** runs on the node to promote: the core checks that it may win safely (no live
 *   leader heard, a majority of voters heard, none of them more up to date, and it may lead) and
 *   campaigns at once, or refuses with the reason (`PROMOTION_REFUSED`, `details.reason`). The
 *   answer waits (bounded) until the node leads.
 * - **Status** converts the core's ticks to milliseconds.
 */
import {
  type FailoverChange,
  type FailoverSettings,
  type MemberAttributes,
  memberAttributesOf,
} from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { nodeId } from "../types/ids.ts";
import { within } from "./bounded-wait.ts";
import type { NodeConfig } from "./node-config.ts";
import type { ProposalResult } from "./proposal-registry.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";

/** The longest a failover change or a promotion waits (for a commit, or to win the election). */
export const failoverWaitMsMax = 60_000;
const failoverWaitMsDefault = 10_000;
const pollMs = 10;

export type FailoverView = {
  readonly settings: FailoverSettings;
  readonly automatic: boolean;
  /** Since when this node has had no leader (null while it has one). */
  readonly leaderLostMsAgo: number | null;
  readonly lastLeader: string | null;
  readonly leaderLastHeardMsAgo: number | null;
  /** The voters this node heard from lately, with their last log position. */
  readonly peers: readonly unknown[];
  /** Mode approve: the failover this node proposes (candidate, its position, who was not heard). */
  readonly proposal: unknown;
  readonly approveDeadlineInMs: number | null;
  /** What promoting this node would answer now: null when it may win safely. */
  readonly promoteRefusal: unknown;
};

export class FailoverControl {
  private readonly loop: ReplicaLoop;
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly requireLeader: () => void;

  constructor(parts: {
    loop: ReplicaLoop;
    config: NodeConfig;
    runtime: NodeRuntime;
    requireLeader: () => void;
  }) {
    this.loop = parts.loop;
    this.config = parts.config;
    this.runtime = parts.runtime;
    this.requireLeader = parts.requireLeader;
  }

  view(): FailoverView {
    const status = this.loop.core.status();
    const failover = status.failover;
    const tickMs = this.config.tickMs;
    const ago = (tick: number | null): number | null =>
      tick === null ? null : (status.nowTick - tick) * tickMs;
    return {
      settings: failover.settings,
      automatic: failover.automatic,
      leaderLostMsAgo: ago(failover.leaderLostAtTick),
      lastLeader: failover.lastLeaderId,
      leaderLastHeardMsAgo:
        failover.leaderLastHeardTicksAgo === null ? null : failover.leaderLastHeardTicksAgo * tickMs,
      peers: failover.peers,
      proposal: failover.proposal,
      approveDeadlineInMs:
        failover.approveDeadlineTick === null
          ? null
          : (failover.approveDeadlineTick - status.nowTick) * tickMs,
      promoteRefusal: failover.promoteRefusal,
    };
  }

  /** Changes the failover settings an operator gave (unknown keys are refused with BAD_REQUEST). */
  async changeSettings(settings: Record<string, unknown>, timeoutMs: number | null): Promise<ProposalResult> {
    refuseUnknown("failover settings", settings, ["mode", "paused", "approveTimeoutMs", "approvePolicy"]);
    return this.change({ kind: "settings", settings: settings as Partial<FailoverSettings> }, timeoutMs);
  }

  /**
   * Changes one member's attributes an operator gave (unknown keys are refused with BAD_REQUEST). A
   * witness holds no data: it cannot be made a data node in place (CONFLICT).
   */
  async changeAttributes(
    node: string,
    attributes: Record<string, unknown>,
    timeoutMs: number | null,
  ): Promise<ProposalResult> {
    refuseUnknown("member attributes", attributes, ["priority", "zone", "neverPromote", "witness"]);
    const config = this.loop.core.summary().clusterConfig;
    if (attributes.witness === false && memberAttributesOf(config, nodeId(node)).witness)
      throw new BatonError(
        ErrorCode.CONFLICT,
        `${node} is a witness and holds no data; remove it and add it back as a data node instead`,
      );
    const change = {
      kind: "member",
      node: nodeId(node),
      attributes: attributes as Partial<MemberAttributes>,
    };
    return this.change(change as FailoverChange, timeoutMs);
  }

  /** Promotes this node (see the module header); resolves once it leads. */
  async promote(timeoutMs: number | null): Promise<{ readonly leader: string; readonly term: number }> {
    const waitMs = this.waitMs(timeoutMs);
    const requestId = this.loop.outcomes.newId("p");
    const effects = this.loop.step({ type: "promoteLeader", requestId });
    const outcome = effects.promotions.find((p) => p.requestId === requestId);
    if (outcome === undefined) throw new Error(`the core did not answer promotion ${requestId}`);
    if (!outcome.started)
      throw new BatonError(
        ErrorCode.PROMOTION_REFUSED,
        `${this.config.id} may not be promoted now: ${outcome.code}${outcome.peer === null ? "" : ` (${outcome.peer})`}`,
        { reason: outcome.code, peer: outcome.peer },
      );
    const { clock, timers } = this.runtime;
    const deadlineMs = clock.nowMs() + waitMs;
    for (;;) {
      const summary = this.loop.core.summary();
      if (summary.role === "leader") return { leader: this.config.id, term: summary.term };
      if (clock.nowMs() >= deadlineMs)
        throw new BatonError(
          ErrorCode.TIMEOUT,
          `${this.config.id} started its campaign but did not win within ${waitMs} ms (it is ${summary.role}, leader ${summary.leaderId ?? "unknown"})`,
          { role: summary.role, leader: summary.leaderId },
        );
      await new Promise<void>((resolve) => timers.after(pollMs, resolve));
    }
  }

  private async change(change: FailoverChange, timeoutMs: number | null): Promise<ProposalResult> {
    const waitMs = this.waitMs(timeoutMs);
    this.requireLeader();
    const outcomes = this.loop.outcomes;
    const proposalId = outcomes.newId("f");
    const done = outcomes.registerProposal(proposalId);
    done.catch(() => {});
    this.loop.step({
      type: "changeFailover",
      proposalId,
      change,
      timeoutTicks: Math.max(1, Math.ceil(waitMs / this.config.tickMs)),
    });
    return within(this.runtime.timers, done, waitMs, () => {
      outcomes.forget(proposalId);
      return new BatonError(ErrorCode.TIMEOUT, `the failover change did not commit within ${waitMs} ms`);
    });
  }

  private waitMs(timeoutMs: number | null): number {
    const waitMs = timeoutMs ?? failoverWaitMsDefault;
    if (!Number.isSafeInteger(waitMs) || waitMs < 1 || waitMs > failoverWaitMsMax)
      throw new BatonError(
        ErrorCode.BAD_REQUEST,
        `timeoutMs must be an integer from 1 to ${failoverWaitMsMax}`,
      );
    return waitMs;
  }
}

function refuseUnknown(what: string, given: Record<string, unknown>, known: readonly string[]): void {
  const unknown = Object.keys(given).filter((key) => !known.includes(key));
  if (unknown.length > 0)
    throw new BatonError(ErrorCode.BAD_REQUEST, `unknown ${what} ${unknown.join(", ")}`);
}
