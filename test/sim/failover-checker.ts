/**
 * The failover checkers of a simulation run (the rules of `src/consensus/README.md`, "Failover"),
 * judged from the outside like the other checkers (`checkers.ts`), and the failover figures of a run.
 *
 *  - Operator rule: where failover needs an operator (mode manual, approve, or paused), no node
 *    takes office without an operator command having started its campaign (or, in mode approve with
 *    policy promote, the approve deadline having passed on it): a promotion (or an approval, which is a promotion of the candidate) that started,
 *    or a `timeoutNow` from a leader an operator asked to transfer (a switchover, a removal of the
 *    leader), from a witness or never-promote leader (or one whose host holds its candidacy, a
 *    damaged database) handing its office over, or from a leader in
 *    mode auto (a priority transfer). A leader change is judged when both the committed
 *    configuration and the new leader's own say so (a node follows the newest setting in its log,
 *    committed or not: dissertation §4.1), as the core's own cluster checker does
 *    (`src/consensus/cluster-checkers.ts`).
 *  - Witness rule: a witness never answers a client's SQL: every read or write sent to it is
 *    refused `WITNESS_NO_SQL` or forwarded (the answer names the node that served it), and none
 *    is answered with data by a witness.
 *  - Hand-over bound: a leader that may not lead (a witness, a never-promote voter: elected as a
 *    relay, or by an operator's promotion) gives its office up within `handOverBoundTicks` of ticks
 *    in which it could (no partition, every voter running).
 */
import { failoverNeedsOperator } from "../../src/consensus/cluster-checkers.ts";
import {
  type ClusterConfig,
  failoverIsAutomatic,
  failoverSettingsOf,
  mayLead,
  memberAttributesOf,
} from "../../src/consensus/cluster-config.ts";
import type { Effects } from "../../src/consensus/effects.ts";
import type { Input } from "../../src/consensus/inputs.ts";
import type { BatonError } from "../../src/lib/errors.ts";
import { nodeId } from "../../src/types/ids.ts";
import { SimViolation } from "./checkers.ts";
import type { SimNodeHost } from "./sim-node.ts";

/** What the core reported about failover during a run, counted from its events. */
export type FailoverEventCounts = {
  promotionsStarted: number;
  promotionsRefused: number;
  /** `failover-timeout` events (mode approve: the approval did not come in time), per node. */
  approveTimeouts: number;
  /** `handoff-started` by a witness or never-promote leader. */
  ineligibleHandoffs: number;
  /** `handoff-started` for a voter of higher priority. */
  priorityHandoffs: number;
  /** Leader changes the operator rule judged (so that the checker is not vacuous). */
  operatorRuleChecks: number;
};

/** Mode approve, not paused, policy promote: a candidate may campaign by itself once its deadline passed. */
function approvePromotes(config: ClusterConfig): boolean {
  const { mode, paused, approvePolicy } = failoverSettingsOf(config);
  return mode === "approve" && !paused && approvePolicy === "promote";
}

/** Whether the operator rule judges a leader change under this configuration: any mode but auto, unpaused. */
function judged(config: ClusterConfig): boolean {
  return failoverNeedsOperator(config) || approvePromotes(config);
}

export class FailoverChecker {
  readonly counts: FailoverEventCounts = {
    promotionsStarted: 0,
    promotionsRefused: 0,
    approveTimeouts: 0,
    ineligibleHandoffs: 0,
    priorityHandoffs: 0,
    operatorRuleChecks: 0,
  };
  /** Node incarnations whose campaign under way an operator command (or the timer, in mode auto) started. */
  private readonly authorized = new Set<string>();
  /** `from>to@term` of every `timeoutNow` a leader sent with an entitlement (see the module header). */
  private readonly authorizedTimeoutNow = new Set<string>();
  /** `leader#incarnation@term` an operator asked to transfer. */
  private readonly transferRequests = new Set<string>();
  private committedConfig: ClusterConfig;
  private committedConfigIndex = 0;
  /** Per incarnation leading while it may not lead: its term and the ticks it could have handed over. */
  private readonly ineligibleLeaders = new Map<string, { term: number; ticks: number }>();

  constructor(bootstrap: ClusterConfig) {
    this.committedConfig = bootstrap;
  }

  /** Called after every step of every node, with its input and its effects. */
  onStep(host: SimNodeHost, input: Input, effects: Effects): void {
    const core = host.core;
    if (core === null) return;
    const incarnation = `${host.id}#${host.incarnation}`;
    const status = core.status();
    const config = status.clusterConfig;
    if (input.type === "transferLeadership" && status.role === "leader")
      this.transferRequests.add(`${incarnation}@${status.term}`);
    if (input.type === "campaign") this.authorized.add(incarnation);
    if (input.type === "message" && input.message.type === "timeoutNow") {
      const { from, term } = input.message;
      if (this.authorizedTimeoutNow.has(`${from}>${host.id}@${term}`)) this.authorized.add(incarnation);
    }
    if (effects.promotions.some((outcome) => outcome.started)) this.authorized.add(incarnation);
    const deadline = status.failover.approveDeadlineTick;
    const timedOut = approvePromotes(config) && deadline !== null && status.nowTick >= deadline;
    this.countEvents(host, effects, failoverIsAutomatic(config) || timedOut);
    if (effects.commitIndex !== undefined && status.clusterConfigIndex <= effects.commitIndex)
      this.noteCommittedConfig(status.clusterConfigIndex, config);
    this.noteTimeoutNow(host, incarnation, effects, status.term, config);
    if (effects.roleChange?.role === "leader") this.checkNewLeader(host, incarnation, status.term, config);
    if (status.role === "leader" || status.role === "follower") this.authorized.delete(incarnation);
  }

  private countEvents(host: SimNodeHost, effects: Effects, automatic: boolean): void {
    const incarnation = `${host.id}#${host.incarnation}`;
    for (const event of effects.events) {
      if (event.type === "promote-started") this.counts.promotionsStarted++;
      else if (event.type === "promote-refused") this.counts.promotionsRefused++;
      else if (event.type === "failover-timeout") this.counts.approveTimeouts++;
      else if (event.type === "handoff-started" && event.reason === "priority")
        this.counts.priorityHandoffs++;
      else if (event.type === "handoff-started") this.counts.ineligibleHandoffs++;
      // A campaign the timer starts in mode auto, or the approve policy `promote` past its deadline,
      // needs no command (nor does its real round after a pre-vote).
      else if (event.type === "election-started" && automatic) this.authorized.add(incarnation);
    }
  }

  private noteCommittedConfig(index: number, config: ClusterConfig): void {
    if (index < this.committedConfigIndex) return;
    this.committedConfigIndex = index;
    this.committedConfig = config;
  }

  private noteTimeoutNow(
    host: SimNodeHost,
    incarnation: string,
    effects: Effects,
    term: number,
    config: ClusterConfig,
  ): void {
    // A leader whose host holds its candidacy (a damaged database) hands office over by itself,
    // as one that may not lead does.
    const entitled =
      this.transferRequests.has(`${incarnation}@${term}`) ||
      !mayLead(config, host.id) ||
      host.core?.summary().candidacyHeld === true ||
      failoverIsAutomatic(config);
    if (!entitled) return;
    for (const { message } of effects.messages)
      if (message.type === "timeoutNow")
        this.authorizedTimeoutNow.add(`${host.id}>${message.to}@${message.term}`);
  }

  /** The operator rule (see the module header). */
  private checkNewLeader(host: SimNodeHost, incarnation: string, term: number, config: ClusterConfig): void {
    if (!judged(this.committedConfig) || !judged(config)) return;
    this.counts.operatorRuleChecks++;
    if (!this.authorized.has(incarnation))
      throw new SimViolation(
        "leader-without-operator",
        `${host.id} took office in term ${term} without an operator command, failover ${JSON.stringify(config.failover ?? "auto")}`,
      );
  }

  /**
   * The witness rule, for one client request's answer: `sentTo` got it; `servedBy` is the node the
   * answer names (null for an error), `error` the error (null for an answer).
   */
  onServed(
    sentTo: SimNodeHost,
    servedBy: string | null,
    error: BatonError | null,
    isWitness: (id: string) => boolean,
  ): void {
    if (servedBy !== null && isWitness(servedBy))
      throw new SimViolation(
        "witness-served-sql",
        `witness ${servedBy} answered a request sent to ${sentTo.id} with data`,
      );
    // The workload's SQL never fails on a node holding the data: from a witness, it ran on none.
    if (error?.code === "SQL_ERROR" && isWitness(sentTo.id))
      throw new SimViolation(
        "witness-served-sql",
        `witness ${sentTo.id} ran a client's SQL: SQL_ERROR ${error.message}`,
      );
  }

  /**
   * The hand-over bound, once per tick: `couldHandOver` says whether this tick gave a leader every
   * chance to (no partition, every voter running); such ticks are counted per leader that may not lead.
   */
  checkHandOver(hosts: readonly SimNodeHost[], couldHandOver: boolean, boundTicks: number): void {
    const leading = new Set<string>();
    for (const host of hosts) {
      const summary = host.core?.summary();
      if (summary === undefined || summary.role !== "leader") continue;
      const config = summary.clusterConfig;
      if (!config.voters.includes(host.id) || mayLead(config, host.id)) continue;
      const incarnation = `${host.id}#${host.incarnation}`;
      leading.add(incarnation);
      const known = this.ineligibleLeaders.get(incarnation);
      const record = known?.term === summary.term ? known : { term: summary.term, ticks: 0 };
      if (couldHandOver) record.ticks++;
      this.ineligibleLeaders.set(incarnation, record);
      if (record.ticks > boundTicks) {
        const what = memberAttributesOf(config, nodeId(host.id)).witness ? "witness" : "never-promote voter";
        throw new SimViolation(
          "ineligible-leader-kept-office",
          `${what} ${host.id} still leads term ${summary.term} after ${record.ticks} ticks in which it could hand over (bound ${boundTicks})`,
        );
      }
    }
    for (const incarnation of this.ineligibleLeaders.keys())
      if (!leading.has(incarnation)) this.ineligibleLeaders.delete(incarnation);
  }
}
