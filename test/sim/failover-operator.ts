/**
 * The simulated operator of failover: what `baton failover set`, `baton member attributes`,
 * `baton failover promote` and `baton failover approve` do, through the nodes' public interface
 * (`BatonNode.failoverSettings`, `memberAttributes`, `promote`, `failoverView`).
 *
 *  - Setup (before the schema exists, so a witness never held data): the run's failover settings
 *    and member attributes (`options.ts`), one change at a time through the leader.
 *  - Promotion: when failover needs an operator (mode manual or approve, or paused) and a voter has
 *    had no leader for `operatorDelayTicks`, it promotes the most up-to-date running voter (now and
 *    then another one: `PROMOTION_REFUSED` with `LOG_BEHIND`, `QUORUM_NOT_HEARD`… is an expected
 *    answer); in mode approve it approves the pending failover (a promotion of the candidate the
 *    nodes propose), or, at the run's chance, leaves it to the approve policy and approves only
 *    once the timeout has passed and nobody leads.
 *  - Episodes (safety phase): failover paused for a while, or the mode switched for a while.
 *
 * Every request carries a `timeoutMs` and must be answered within it (plus a poll period), as the
 * membership operator's are.
 */
import { mayLead } from "../../src/consensus/cluster-config.ts";
import type { FailoverSettings } from "../../src/consensus/failover-config.ts";
import { assert } from "../../src/lib/assert.ts";
import { isBatonError } from "../../src/lib/errors.ts";
import type { Prng } from "../../src/lib/prng.ts";
import { type FailoverView, failoverWaitMsMax } from "../../src/node/failover-control.ts";
import type { NodeId } from "../../src/types/ids.ts";
import { SimViolation } from "./checkers.ts";
import type { SimCluster } from "./cluster.ts";
import { electionBoundTicks, electionTimeoutTicksOf, type SimOptions, simTickMs } from "./options.ts";
import type { SimNodeHost } from "./sim-node.ts";

export type FailoverOperatorStats = {
  /** Promotions in modes manual and paused answered with the node leading. */
  promotions: number;
  /** Approvals (mode approve) answered with the candidate leading. */
  approvals: number;
  /** Promotions and approvals not carried out, by `PROMOTION_REFUSED` reason or error code. */
  readonly refusals: Record<string, number>;
  pauses: number;
  modeSwitches: number;
  /** Settings and attribute changes answered with success (setup included). */
  changes: number;
  requests: number;
};

type VoterView = { readonly host: SimNodeHost; readonly view: FailoverView };

type Request = {
  readonly what: "promote" | "approve" | "change";
  readonly label: string;
  readonly node: NodeId;
  readonly incarnation: number;
  readonly timeoutTicks: number;
  /** Ticks its node has been running (not paused) since it was sent. */
  runningTicks: number;
  outcome: { readonly ok: true } | { readonly ok: false; readonly error: unknown } | null;
};

/** Codes a settings change meets in a busy cluster; the operator tries again later. */
const changeRetryCodes = new Set([
  "NOT_LEADER",
  "NO_LEADER",
  "LEADER_NOT_READY",
  "LEADERSHIP_TRANSFER",
  "LEADERSHIP_LOST",
  "CONFIG_CHANGE_PENDING",
  "MEMBERSHIP_CHANGE_PENDING",
  "TIMEOUT",
  "NOT_CONFIRMED",
  "OVERLOADED",
  "SHUTTING_DOWN",
  "STORE_DAMAGED",
  "STORE_UNVERIFIED",
]);

/** Answers a promotion may legitimately get: refused with a reason, or not won in time. */
const promoteAnswerCodes = new Set(["PROMOTION_REFUSED", "TIMEOUT", "SHUTTING_DOWN", "OVERLOADED"]);

/** Attempts at each setup change: a priority set a moment before may move the leader meanwhile. */
const setupAttemptsMax = 20;
/** Beyond its `timeoutMs`, a request may take the node's poll period (50 ms) and a tick to be answered. */
const requestSlackTicks = 10;
/** The share of promotions (safety phase, modes manual and paused) sent to a random voter instead of the best. */
const randomPromoteShare = 0.15;

/** How long a promotion may wait for its node to win: a few election rounds. */
export function promoteTimeoutTicks(o: SimOptions): number {
  return Math.min(failoverWaitMsMax / simTickMs, 4 * electionTimeoutTicksOf(o).max + 8 * o.delayTicksMax);
}

/**
 * Ticks the operator may add, after the faults end, before a leader appears where failover needs
 * it: its delay, the approve timeout it may wait out, and a few promotions that time out or are
 * refused while the voters learn each other's positions.
 */
export function operatorBoundTicks(o: SimOptions): number {
  const attemptTicks = promoteTimeoutTicks(o) + electionTimeoutTicksOf(o).base + requestSlackTicks;
  return o.operatorDelayTicks + o.approveTimeoutTicks + 5 * attemptTicks;
}

export class FailoverOperator {
  readonly stats: FailoverOperatorStats = {
    promotions: 0,
    approvals: 0,
    refusals: {},
    pauses: 0,
    modeSwitches: 0,
    changes: 0,
    requests: 0,
  };
  private readonly cluster: SimCluster;
  private readonly options: SimOptions;
  private readonly prng: Prng;
  private readonly retryTicks: number;
  private request: Request | null = null;
  private retryAtTick = 0;
  /** A settings change under way (a pause or a mode switch, or undoing one) until the leader's settings match. */
  private goal: Partial<FailoverSettings> | null = null;
  /** The change that undoes the current episode, and when. */
  private undo: { readonly settings: Partial<FailoverSettings>; readonly atTick: number } | null = null;
  /** Mode approve, per loss of the leader: approve at once, or leave it to the policy first. */
  private approveNow: boolean | null = null;

  constructor(cluster: SimCluster, prng: Prng) {
    this.cluster = cluster;
    this.options = cluster.options;
    this.prng = prng;
    this.retryTicks = electionTimeoutTicksOf(cluster.options).base;
  }

  /**
   * Setup, on a quiet cluster with a leader: the run's attributes (the witness first: marked while
   * it leads, it hands its office over), its settings, then priorities (which may move the leader),
   * each through the leader of the moment.
   */
  async setup(): Promise<void> {
    const o = this.options;
    const ids = new Set(this.cluster.ids.map(String));
    const witness =
      o.witnessNode === "initial-leader" ? (this.cluster.stableLeader()?.id ?? null) : o.witnessNode;
    const changes: { label: string; send: (host: SimNodeHost, timeoutMs: number) => Promise<unknown> }[] = [];
    const attributes = (id: string, value: Record<string, unknown>) =>
      changes.push({
        label: `attributes ${id} ${JSON.stringify(value)}`,
        send: (host, timeoutMs) => this.node(host).memberAttributes(id, value, timeoutMs, "simulator"),
      });
    if (witness !== null && ids.has(witness)) attributes(witness, { witness: true });
    if (o.neverPromoteNode !== null && ids.has(o.neverPromoteNode))
      attributes(o.neverPromoteNode, { neverPromote: true });
    if (o.failoverMode !== "auto") {
      const settings = {
        mode: o.failoverMode,
        approveTimeoutMs: o.approveTimeoutTicks * simTickMs,
        approvePolicy: o.approvePolicy,
      };
      changes.push({
        label: `settings ${JSON.stringify(settings)}`,
        send: (host, timeoutMs) => this.node(host).failoverSettings(settings, timeoutMs, "simulator"),
      });
    }
    for (const [id, priority] of Object.entries(o.priorities)) if (ids.has(id)) attributes(id, { priority });
    for (const change of changes) await this.setupChange(change.label, change.send);
  }

  private async setupChange(
    label: string,
    send: (host: SimNodeHost, timeoutMs: number) => Promise<unknown>,
  ): Promise<void> {
    const bound = electionBoundTicks(this.options) + this.changeTimeoutTicks() + requestSlackTicks;
    for (let attempt = 1; attempt <= setupAttemptsMax; attempt++) {
      await this.cluster.runUntil(() => this.cluster.stableLeader() !== null, bound);
      const leader = this.cluster.stableLeader();
      if (leader === null) break;
      this.send("change", label, leader, send(leader, this.changeTimeoutTicks() * simTickMs));
      await this.cluster.runUntil(() => this.request?.outcome !== null, bound);
      const outcome = this.request?.outcome;
      this.request = null;
      if (outcome?.ok === true) {
        this.stats.changes++;
        return;
      }
      const code = isBatonError(outcome?.error) ? outcome.error.code : String(outcome?.error);
      if (!changeRetryCodes.has(code))
        throw new SimViolation("operator-refused", `setup ${label} refused: ${code}`);
      this.note(`${label}: ${code}`);
      await this.cluster.run(this.retryTicks);
    }
    throw new SimViolation("liveness", `setup ${label} was not made on a quiet cluster`);
  }

  /** One tick: follow the request in flight, else promote or approve when needed, else an episode. */
  async tick(mode: "schedule" | "finish"): Promise<void> {
    if (this.request !== null) {
      this.follow(this.request);
      return;
    }
    if (this.cluster.nowTick < this.retryAtTick) return;
    if (this.promoteIfNeeded(mode)) return;
    if (this.goal !== null) this.sendGoal();
    else if (this.undo !== null && (mode === "finish" || this.cluster.nowTick >= this.undo.atTick)) {
      this.goal = this.undo.settings;
      this.undo = null;
      this.sendGoal();
    } else if (mode === "schedule" && this.undo === null) this.maybeStartEpisode();
  }

  private node(host: SimNodeHost) {
    assert(host.node !== null, "requests go to a live node");
    return host.node;
  }

  /** Running voters of their own configuration, with what they report. */
  private voters(): VoterView[] {
    const found: VoterView[] = [];
    for (const host of this.cluster.running()) {
      const summary = host.core?.summary();
      if (host.node === null || summary === undefined || !summary.clusterConfig.voters.includes(host.id))
        continue;
      found.push({ host, view: host.node.failoverView() });
    }
    return found;
  }

  /** Sends a promotion or an approval when failover needs the operator; true when it did (or waits for one). */
  private promoteIfNeeded(mode: "schedule" | "finish"): boolean {
    if (this.cluster.stableLeader() !== null) {
      this.approveNow = null;
      return false;
    }
    const voters = this.voters();
    const lost = voters.filter(
      ({ view }) =>
        !view.automatic &&
        view.leaderLostMsAgo !== null &&
        view.leaderLostMsAgo >= this.options.operatorDelayTicks * simTickMs,
    );
    const first = lost[0]?.view;
    if (first === undefined) return false;
    if (first.settings.mode === "approve" && !first.settings.paused) {
      const approved = this.approve(lost, mode);
      if (approved !== "candidate-held") return approved;
    }
    const followers = voters.filter(({ host }) => host.core?.summary().role !== "leader");
    // As an operator reads `baton failover status`: a node whose promotion would pass first, then the
    // most up-to-date, then one that may lead.
    const ranked = [...followers].sort(
      (a, b) =>
        Number(b.view.promoteRefusal === null) - Number(a.view.promoteRefusal === null) ||
        position(b.host) - position(a.host) ||
        Number(mayLeadNow(b.host)) - Number(mayLeadNow(a.host)),
    );
    const target =
      mode === "schedule" && followers.length > 0 && this.prng.chance(randomPromoteShare)
        ? this.prng.pick(followers)
        : ranked[0];
    if (target === undefined) return false;
    this.sendPromote("promote", target.host);
    return true;
  }

  /**
   * Approves the pending failover; "candidate-held" when the candidate's own status says it may not
   * campaign (`CANDIDACY_HELD`: a damaged database, lost entries): the operator promotes another
   * node then, as nobody else would (the approve policy acts only through the candidate). Held nodes
   * say so in their probes and are never named candidate, so this happens only for the election
   * timeout before their next probe reaches the others (none in seeds 1–300).
   */
  private approve(lost: readonly VoterView[], mode: "schedule" | "finish"): boolean | "candidate-held" {
    this.approveNow ??= mode === "finish" || this.prng.chance(this.options.approveChance);
    const waitedMs = Math.max(...lost.map(({ view }) => view.leaderLostMsAgo ?? 0));
    const policyMs = (this.options.approveTimeoutTicks + this.options.operatorDelayTicks) * simTickMs;
    if (!this.approveNow && mode === "schedule" && waitedMs < policyMs) return false;
    // Of the proposals made with a majority heard, the most up-to-date candidate, as an operator
    // comparing every node's `baton failover status` would choose: a removed node that does not know
    // it heard only the old configuration, and proposed a candidate behind the others' (seed 5583).
    type Proposal = { candidate?: string; quorumHeard?: boolean; lastLogIndex: number; lastLogTerm: number };
    const proposal = lost
      .map(({ view }) => view.proposal as Proposal | null)
      .filter((p): p is Proposal => p?.candidate !== undefined && p.quorumHeard === true)
      .reduce<Proposal | undefined>(
        (best, p) =>
          best === undefined ||
          p.lastLogTerm > best.lastLogTerm ||
          (p.lastLogTerm === best.lastLogTerm && p.lastLogIndex > best.lastLogIndex)
            ? p
            : best,
        undefined,
      );
    const candidate = proposal?.candidate === undefined ? undefined : this.cluster.host(proposal.candidate);
    if (candidate?.node === null || candidate?.node === undefined) {
      this.retryAtTick = this.cluster.nowTick + this.retryTicks;
      return true;
    }
    const refusal = candidate.node.failoverView().promoteRefusal as { code?: string } | null;
    if (refusal?.code === "CANDIDACY_HELD") return "candidate-held";
    this.sendPromote("approve", candidate);
    return true;
  }

  private sendPromote(what: "promote" | "approve", host: SimNodeHost): void {
    const timeoutTicks = promoteTimeoutTicks(this.options);
    this.send(
      what,
      `${what} ${host.id}`,
      host,
      this.node(host).promote(timeoutTicks * simTickMs, "simulator"),
    );
  }

  private maybeStartEpisode(): void {
    const o = this.options;
    const leader = this.cluster.stableLeader();
    if (leader === null) return;
    const settings = this.node(leader).failoverView().settings;
    const atTick = this.cluster.nowTick + this.prng.intBetween(1, o.failoverDwellTicksMax);
    if (!settings.paused && this.prng.chance(o.pauseEpisodeRate)) {
      this.stats.pauses++;
      this.goal = { paused: true };
      this.undo = { settings: { paused: false }, atTick };
    } else if (this.prng.chance(o.modeSwitchRate)) {
      this.stats.modeSwitches++;
      const modes = (["auto", "manual", "approve"] as const).filter((m) => m !== settings.mode);
      this.goal = { mode: this.prng.pick(modes) };
      this.undo = { settings: { mode: settings.mode }, atTick };
    } else return;
    this.note(`episode ${JSON.stringify(this.goal)}, undone at ${atTick}`);
    this.sendGoal();
  }

  /** Sends the settings change under way to the leader, unless its settings already match it. */
  private sendGoal(): void {
    const goal = this.goal;
    const leader = this.cluster.stableLeader();
    if (goal === null || leader === null) return;
    const settings = this.node(leader).failoverView().settings;
    if (Object.entries(goal).every(([key, value]) => settings[key as keyof FailoverSettings] === value)) {
      this.goal = null;
      return;
    }
    const timeoutMs = this.changeTimeoutTicks() * simTickMs;
    const answer = this.node(leader).failoverSettings(goal, timeoutMs, "simulator");
    this.send("change", `settings ${JSON.stringify(goal)}`, leader, answer);
  }

  private changeTimeoutTicks(): number {
    return Math.min(failoverWaitMsMax / simTickMs, this.options.memberRequestTimeoutTicks);
  }

  private send(what: Request["what"], label: string, host: SimNodeHost, answer: Promise<unknown>): void {
    const timeoutTicks = what === "change" ? this.changeTimeoutTicks() : promoteTimeoutTicks(this.options);
    const request: Request = {
      what,
      label,
      node: host.id,
      incarnation: host.incarnation,
      timeoutTicks,
      runningTicks: 0,
      outcome: null,
    };
    answer.then(
      () => {
        request.outcome = { ok: true };
      },
      (error: unknown) => {
        request.outcome = { ok: false, error };
      },
    );
    this.request = request;
    this.stats.requests++;
    this.note(`${label} sent to ${host.id}`);
  }

  /** The request in flight: bounded while it runs; its answer counted, a refusal judged. */
  private follow(request: Request): void {
    const host = this.cluster.host(request.node);
    const outcome = request.outcome;
    if (outcome === null) {
      if (host === undefined || !host.alive || host.incarnation !== request.incarnation) {
        this.request = null; // its node died: the outcome is unknown
        this.retryAtTick = this.cluster.nowTick + this.retryTicks;
        return;
      }
      if (host.pausedUntilTick <= this.cluster.nowTick) request.runningTicks++;
      if (request.runningTicks > request.timeoutTicks + requestSlackTicks)
        throw new SimViolation(
          "failover-request-unbounded",
          `${request.label} on ${request.node} unanswered after ${request.runningTicks} running ticks (timeout ${request.timeoutTicks})`,
        );
      return;
    }
    this.request = null;
    this.retryAtTick = this.cluster.nowTick + this.retryTicks;
    if (outcome.ok) {
      this.note(`${request.label} done`);
      if (request.what === "promote") this.stats.promotions++;
      else if (request.what === "approve") this.stats.approvals++;
      else this.stats.changes++;
      return;
    }
    this.refused(request, outcome.error);
  }

  private refused(request: Request, error: unknown): void {
    const code = isBatonError(error) ? error.code : String(error);
    const reason = isBatonError(error, "PROMOTION_REFUSED") ? String(error.details.reason) : code;
    this.note(`${request.label} on ${request.node}: ${reason}`);
    const expected = request.what === "change" ? changeRetryCodes.has(code) : promoteAnswerCodes.has(code);
    if (!expected)
      throw new SimViolation(
        "operator-refused",
        `${request.label} on ${request.node} refused: ${error instanceof Error ? error.message : code}`,
      );
    if (request.what !== "change") this.stats.refusals[reason] = (this.stats.refusals[reason] ?? 0) + 1;
  }

  private note(line: string): void {
    this.cluster.trace?.push(`[${this.cluster.nowTick}] FAILOVER-OPERATOR ${line}`);
  }
}

/** Whether a node may lead by its own configuration (not a witness, not never-promote). */
function mayLeadNow(host: SimNodeHost): boolean {
  const config = host.core?.summary().clusterConfig;
  return config !== undefined && mayLead(config, host.id);
}

/** A voter's log position as one comparable number: last term first, then last index. */
function position(host: SimNodeHost): number {
  const summary = host.core?.summary();
  if (summary === undefined) return -1;
  return (host.core?.termAt(summary.lastIndex) ?? 0) * 2 ** 32 + summary.lastIndex;
}
