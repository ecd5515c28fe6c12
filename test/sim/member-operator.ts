/**
 * The simulated operator: membership changes during the run, made the way an operator makes them,
 * through the node's public interface (`members`, `memberAdd`, `memberChange`, `memberJoin`, the
 * calls behind `baton member …` and `baton start --join`), at the node it believes leads.
 *
 * It runs one episode at a time, each a list of steps carried out in order:
 *  - remove-readd: remove a voter (the leader itself at times) and stop it, or stop it and then
 *    remove it; start it again later with its disk, add it back as a learner, promote it;
 *  - demote-promote: demote a voter (the leader at times), let it serve as a learner, promote it;
 *  - add-replica: a new node joins as a learner (`--join-as learner`) and stays a read replica;
 *  - wipe-rejoin: crash a member, wipe its whole disk, join it again (the leader removes its old
 *    membership and adds it back as a learner), start it from the configuration of the join
 *    answer, and promote it once caught up if it was a voter.
 * An episode that takes a voter out starts only while at least `votersMin` voters would remain,
 * one more while a voter's database is damaged on purpose (a second fault otherwise).
 *
 * A request step is done when its goal holds in the committed configuration its leader reports
 * (`members()`): an operator lists the members after an answer that was lost or refused, and
 * tries again, after `retryTicks`, at the leader it was pointed to. A join is done when it is
 * answered. Every request carries `memberRequestTimeoutTicks`; one that outlives it on a running
 * node (plus `requestSlackTicks`) is a violation: every wait in the node is bounded. A refusal the
 * operator never provokes (a bad request, the last voter, a conflict) is a violation too.
 */
import { type ClusterConfig, mayLead, memberAttributesOf } from "../../src/consensus/index.ts";
import { assert } from "../../src/lib/assert.ts";
import { isBatonError } from "../../src/lib/errors.ts";
import type { Prng } from "../../src/lib/prng.ts";
import type { MembersResponse } from "../../src/node/member-changes.ts";
import { type NodeId, nodeId } from "../../src/types/ids.ts";
import { SimViolation } from "./checkers.ts";
import type { SimCluster } from "./cluster.ts";
import {
  electionTimeoutTicksOf,
  type MemberEpisodeKind,
  type SimOptions,
  simTickMs,
  wipeAfterCrashTicks,
} from "./options.ts";
import { type SimNodeHost, simAddress } from "./sim-node.ts";

type RequestKind = "remove" | "demote" | "promote" | "addLearner" | "join";
type Step =
  | { readonly kind: RequestKind; readonly node: NodeId }
  | { readonly kind: "stop" | "start" | "wipe"; readonly node: NodeId }
  | { readonly kind: "wait"; readonly ticks: number };
type RequestStep = Extract<Step, { kind: RequestKind }>;

type Request = {
  readonly step: RequestStep;
  readonly node: NodeId;
  readonly incarnation: number;
  /** Ticks its node has been running (not paused) since it was sent. */
  runningTicks: number;
  outcome:
    | { readonly ok: true; readonly value: unknown }
    | { readonly ok: false; readonly error: unknown }
    | null;
};

export type OperatorStats = {
  /** Episodes completed, by kind. */
  readonly episodes: Record<MemberEpisodeKind, number>;
  /** Requests answered with success, by kind. */
  readonly changes: Record<RequestKind, number>;
  /** Wiped members that joined again. */
  rejoins: number;
  wipes: number;
  requests: number;
};

/** Codes an operator meets in a busy cluster; it lists the members and tries again. */
const retryCodes = new Set([
  "NOT_LEADER",
  "NO_LEADER",
  "LEADER_NOT_READY",
  "LEADERSHIP_TRANSFER",
  "LEADERSHIP_LOST",
  "MEMBERSHIP_CHANGE_PENDING",
  "MEMBER_NOT_CAUGHT_UP",
  "TIMEOUT",
  "NOT_CONFIRMED",
  "OVERLOADED",
  "SHUTTING_DOWN",
  // A leader whose database is damaged or not yet verified refuses changes until it hands over or heals.
  "STORE_DAMAGED",
  "STORE_UNVERIFIED",
  // An earlier attempt whose answer was lost may have made the change: the goal check decides.
  "NODE_ALREADY_MEMBER",
  "NODE_NOT_MEMBER",
  "NODE_NOT_LEARNER",
  "NODE_NOT_VOTER",
  "CONFIG_CHANGE_PENDING",
]);

/** Beyond its `timeoutMs`, a request may take the node's poll period (50 ms) and a tick to be answered. */
const requestSlackTicks = 10;

function roleIn(view: MembersResponse, id: string): "voter" | "learner" | null {
  return view.members.find((member) => member.id === id)?.role ?? null;
}

function goalHolds(step: RequestStep, view: MembersResponse): boolean {
  const role = roleIn(view, step.node);
  if (step.kind === "remove") return role === null;
  if (step.kind === "demote") return role === "learner";
  if (step.kind === "promote") return role === "voter";
  if (step.kind === "addLearner") return role !== null;
  return false; // a join is done when answered
}

export class MemberOperator {
  readonly stats: OperatorStats = {
    episodes: { "remove-readd": 0, "demote-promote": 0, "add-replica": 0, "wipe-rejoin": 0 },
    changes: { remove: 0, demote: 0, promote: 0, addLearner: 0, join: 0 },
    rejoins: 0,
    wipes: 0,
    requests: 0,
  };
  /** Voters that must remain when an episode takes one out: a majority of the initial voters. */
  readonly votersMin: number;
  private readonly cluster: SimCluster;
  private readonly options: SimOptions;
  private readonly prng: Prng;
  private readonly retryTicks: number;
  private episode: { readonly kind: MemberEpisodeKind; readonly steps: Step[]; wiped: boolean } | null = null;
  private request: Request | null = null;
  private waitUntilTick: number | null = null;
  private retryAtTick = 0;
  private leaderHint: NodeId | null = null;

  constructor(cluster: SimCluster, prng: Prng) {
    this.cluster = cluster;
    this.options = cluster.options;
    this.prng = prng;
    this.votersMin = Math.floor(cluster.options.nodeCount / 2) + 1;
    this.retryTicks = electionTimeoutTicksOf(cluster.options).base;
  }

  get idle(): boolean {
    return this.episode === null;
  }

  /** Steps left in the current episode (0 when idle). */
  get stepsLeft(): number {
    return this.episode?.steps.length ?? 0;
  }

  /**
   * One tick of the operator: start an episode (only with `schedule`, at the run's rate), or carry
   * the current one forward. With `finish`, waits are cut short and no episode starts.
   */
  async tick(mode: "schedule" | "finish"): Promise<void> {
    if (this.episode === null) {
      if (mode === "finish" || !this.prng.chance(this.options.memberEpisodeRate)) return;
      const view = this.leaderView();
      if (view === null) return;
      this.episode = this.plan(view.members);
      if (this.episode !== null) this.note(`episode ${this.episode.kind}: ${this.describeSteps()}`);
      return;
    }
    const step = this.episode.steps[0];
    assert(step !== undefined, "an episode in progress has steps");
    if (await this.carryOut(step, mode)) this.nextStep();
  }

  /** Carries one step forward; true when it is done. */
  private async carryOut(step: Step, mode: "schedule" | "finish"): Promise<boolean> {
    const now = this.cluster.nowTick;
    switch (step.kind) {
      case "wait":
        this.waitUntilTick ??= now + (mode === "finish" ? 0 : step.ticks);
        return now >= this.waitUntilTick;
      case "stop":
        this.cluster.hold(step.node);
        return true;
      case "start":
        await this.cluster.release(step.node);
        return true;
      case "wipe":
        this.waitUntilTick ??= now + wipeAfterCrashTicks(this.options);
        if (now < this.waitUntilTick) return false;
        await this.cluster.wipe(step.node);
        this.stats.wipes++;
        if (this.episode !== null) this.episode.wiped = true;
        return true;
      default:
        return this.requestStep(step);
    }
  }

  private nextStep(): void {
    const episode = this.episode;
    assert(episode !== null, "a step of an episode");
    episode.steps.shift();
    this.waitUntilTick = null;
    this.retryAtTick = 0;
    if (episode.steps.length > 0) return;
    this.stats.episodes[episode.kind]++;
    this.note(`episode ${episode.kind} done`);
    this.episode = null;
  }

  /** A request step: follow the one in flight, or look at the members and send one. */
  private async requestStep(step: RequestStep): Promise<boolean> {
    const now = this.cluster.nowTick;
    if (this.request !== null) {
      const answered = await this.follow(this.request);
      if (answered !== "done") return answered === "goal";
    }
    if (now < this.retryAtTick) return false;
    const view = this.leaderView();
    if (view === null) return false;
    if (!view.members.configCommitted) return false; // one change at a time, as the leader insists
    if (goalHolds(step, view.members)) return true;
    this.send(step, view.host);
    return false;
  }

  /**
   * The request in flight: "pending" while it runs, "goal" when its success completes the step,
   * "done" when it ended otherwise (the step goes on: list the members, maybe retry).
   */
  private async follow(request: Request): Promise<"pending" | "goal" | "done"> {
    const host = this.cluster.host(request.node);
    const outcome = request.outcome;
    if (outcome === null) {
      if (host === undefined || !host.alive || host.incarnation !== request.incarnation) {
        this.request = null; // its node died: the outcome is unknown
        this.retryAtTick = this.cluster.nowTick + this.retryTicks;
        return "done";
      }
      if (host.pausedUntilTick <= this.cluster.nowTick) request.runningTicks++;
      if (request.runningTicks > this.options.memberRequestTimeoutTicks + requestSlackTicks)
        throw new SimViolation(
          "member-request-unbounded",
          `${request.step.kind} of ${request.step.node} on ${request.node} unanswered after ${request.runningTicks} running ticks (timeout ${this.options.memberRequestTimeoutTicks})`,
        );
      return "pending";
    }
    this.request = null;
    if (outcome.ok) {
      this.stats.changes[request.step.kind]++;
      this.note(`${request.step.kind} ${request.step.node} acknowledged by ${request.node}`);
      if (request.step.kind !== "join") return "goal";
      const answer = outcome.value as { config: ClusterConfig };
      if (this.episode?.wiped === true) this.stats.rejoins++;
      await this.cluster.bootJoined(request.step.node, answer.config);
      return "goal";
    }
    this.refused(request, outcome.error);
    this.retryAtTick = this.cluster.nowTick + this.retryTicks;
    return "done";
  }

  private refused(request: Request, error: unknown): void {
    const code = isBatonError(error) ? error.code : String(error);
    this.note(`${request.step.kind} ${request.step.node} on ${request.node}: ${code}`);
    if (isBatonError(error, "NOT_LEADER")) {
      const leader = error.details.leader as { id?: string } | undefined;
      this.leaderHint = leader?.id === undefined ? null : nodeId(leader.id);
    }
    if (!retryCodes.has(code))
      throw new SimViolation(
        "operator-refused",
        `${request.step.kind} of ${request.step.node} on ${request.node} refused: ${error instanceof Error ? error.message : code}`,
      );
  }

  private send(step: RequestStep, host: SimNodeHost): void {
    const node = host.node;
    assert(node !== null, "requests go to a live node");
    const timeoutMs = this.options.memberRequestTimeoutTicks * simTickMs;
    const address = simAddress(step.node);
    const answer =
      step.kind === "join"
        ? node.memberJoin({ id: step.node, ...address }, timeoutMs)
        : step.kind === "addLearner"
          ? node.memberAdd({ id: step.node, ...address, role: "learner", timeoutMs, actor: "simulator" })
          : node.memberChange(step.kind, step.node, timeoutMs, "simulator");
    const request: Request = {
      step,
      node: host.id,
      incarnation: host.incarnation,
      runningTicks: 0,
      outcome: null,
    };
    answer.then(
      (value) => {
        request.outcome = { ok: true, value };
      },
      (error: unknown) => {
        request.outcome = { ok: false, error };
      },
    );
    this.request = request;
    this.stats.requests++;
    this.note(`${step.kind} ${step.node} sent to ${host.id}`);
  }

  /**
   * The members as the node believed to lead reports them (`baton member list`), when that node
   * says it leads; otherwise the hint follows whom it names, for the next tick.
   */
  private leaderView(): { host: SimNodeHost; members: MembersResponse } | null {
    const running = this.cluster.running();
    const hinted = running.find((node) => node.id === this.leaderHint);
    const host = hinted ?? (running.length === 0 ? null : this.prng.pick(running));
    if (host === null || host.node === null) return null;
    const members = host.node.members();
    if (members.leader === host.id) {
      this.leaderHint = host.id;
      return { host, members };
    }
    this.leaderHint = members.leader === null ? null : nodeId(members.leader);
    return null;
  }

  /** The next episode, chosen by the run's weights among those the configuration allows. */
  private plan(view: MembersResponse): { kind: MemberEpisodeKind; steps: Step[]; wiped: boolean } | null {
    if (!view.configCommitted) return null;
    const allVoters = view.members
      .filter((member) => member.role === "voter")
      .map((member) => nodeId(member.id));
    // A witness or never-promote voter is never a target: a witness removed and added back would
    // come back as a data node with no data (the node refuses that in place, CONFLICT), and taking
    // out a voter that may lead while one that may not stays could leave none that may lead.
    const config = this.cluster.host(view.leader ?? "")?.core?.summary().clusterConfig;
    const voters = allVoters.filter((id) => config === undefined || mayLead(config, id));
    const learners = view.members
      .filter((member) => member.role === "learner")
      .map((member) => nodeId(member.id));
    // One that may lead must stay (NO_ELIGIBLE_VOTER otherwise), and a majority of the initial voters.
    // While a voter's database is damaged (and not yet healed), one more stays: the damaged copy
    // must stay out-voted by intact ones, or no copy could be trusted (a second fault).
    const damaged = this.cluster.checker.damagedOnPurpose.size > 0 ? 1 : 0;
    const voterMayLeave = voters.length >= 2 && allVoters.length - 1 >= this.votersMin + damaged;
    // Beside a witness, a data voter's disk is never wiped: a witness compacts its log behind its
    // own (empty) snapshots and never sends one, so the other data voters may be all that holds
    // the entries before its compaction point (docs/architecture.md, "Witness").
    const withWitness = allVoters.some(
      (id) => config !== undefined && memberAttributesOf(config, id).witness,
    );
    const wipeVoter = voterMayLeave && !withWitness;
    const spare = this.cluster.spareId;
    const feasible: Record<MemberEpisodeKind, boolean> = {
      "remove-readd": voterMayLeave,
      "demote-promote": voterMayLeave,
      "add-replica": this.cluster.host(spare) === undefined,
      "wipe-rejoin": wipeVoter || learners.length > 0,
    };
    const kinds = (Object.keys(feasible) as MemberEpisodeKind[]).filter(
      (kind) => feasible[kind] && this.options.memberEpisodeWeights[kind] > 0,
    );
    if (kinds.length === 0) return null;
    const kind = this.pickWeighted(kinds);
    const dwell = this.prng.intBetween(1, this.options.memberDwellTicksMax);
    if (kind === "add-replica") {
      this.cluster.addHost(spare);
      return { kind, steps: [{ kind: "join", node: spare }], wiped: false };
    }
    if (kind === "demote-promote") {
      const node = this.pickTarget(voters, view.leader);
      const steps: Step[] = [
        { kind: "demote", node },
        { kind: "wait", ticks: dwell },
        { kind: "promote", node },
      ];
      return { kind, steps, wiped: false };
    }
    if (kind === "remove-readd") {
      const node = this.pickTarget(voters, view.leader);
      // Without check-quorum there is no vote lease (dissertation §4.2.3): a removed voter left
      // running stops hearing the leader once its removal is appended, and voters that lag grant
      // its pre-vote, so the removal may never commit (SEED=243). The operator stops it first then.
      const stopFirst = !this.options.checkQuorum || this.prng.chance(0.5);
      const steps: Step[] = [
        ...(stopFirst ? [] : [{ kind: "remove", node } as const]),
        { kind: "stop", node },
        ...(stopFirst ? [{ kind: "remove", node } as const] : []),
        { kind: "wait", ticks: dwell },
        { kind: "start", node },
        { kind: "addLearner", node },
        { kind: "promote", node },
      ];
      return { kind, steps, wiped: false };
    }
    const node = this.pickTarget(wipeVoter ? [...voters, ...learners] : learners, view.leader);
    const steps: Step[] = [
      { kind: "stop", node },
      { kind: "wipe", node },
      { kind: "join", node },
    ];
    if (voters.includes(node)) steps.push({ kind: "promote", node });
    return { kind, steps, wiped: false };
  }

  private pickWeighted(kinds: readonly MemberEpisodeKind[]): MemberEpisodeKind {
    const weights = this.options.memberEpisodeWeights;
    let pick = this.prng.nextFloat() * kinds.reduce((sum, kind) => sum + weights[kind], 0);
    for (const kind of kinds) {
      pick -= weights[kind];
      if (pick < 0) return kind;
    }
    return kinds.at(-1) as MemberEpisodeKind;
  }

  /** The leader at the run's chance when it is a candidate, otherwise another candidate. */
  private pickTarget(candidates: readonly NodeId[], leader: string | null): NodeId {
    const others = candidates.filter((id) => id !== leader);
    const leaderEligible = others.length < candidates.length;
    if (leaderEligible && (others.length === 0 || this.prng.chance(this.options.memberTargetLeaderChance)))
      return nodeId(leader as string);
    return this.prng.pick(others);
  }

  private describeSteps(): string {
    return (this.episode?.steps ?? [])
      .map((step) => (step.kind === "wait" ? `wait ${step.ticks}` : `${step.kind} ${step.node}`))
      .join(", ");
  }

  private note(line: string): void {
    this.cluster.trace?.push(`[${this.cluster.nowTick}] OPERATOR ${line}`);
  }
}
