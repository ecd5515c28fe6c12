/**
 * Membership changes on the node: list, add, promote, demote, remove, and the join of a new node.
 *
 * The consensus core makes each single-server change safe (`src/consensus/membership.ts`: one at a
 * time, committed before the next, only by a leader that committed an entry of its term). This
 * component adds what an operator needs around it:
 * - **add** records the node with its addresses as a learner; as a voter it is then promoted once
 *   caught up. "Caught up" follows the dissertation's rounds (§4.2.1): the learner must reach the
 *   commit index the leader had when a round began, within one election timeout of that start;
 *   a slower round starts another. Past the request's wait the node stays a learner and the
 *   answer is `MEMBER_NOT_CAUGHT_UP` (promote it again later).
 * - **promote** waits for the same rounds before it changes anything: a voter that lags far
 *   behind would count toward quorums it cannot serve.
 * - **remove** and **demote** of the leader itself first hand leadership to the most up-to-date
 *   voter, then send the request on to the new leader (`NOT_LEADER`, which HTTP forwards), so the
 *   cluster never waits an election timeout for a leader that stepped down (§4.2.2).
 * - **join** (`baton start --join`): a node with an empty data directory asks to be added. A
 *   node that is already a member and asks to join has lost its state (a wiped disk), so it is
 *   first removed and then added back as a new learner: the leader forgets the replication
 *   progress it had for it, and it never counts toward a quorum with entries it no longer holds.
 *   The answer gives the cluster id and the configuration (with every member's address), which
 *   the new node starts from.
 * Every wait is bounded by the request's `timeoutMs`, at most `memberChangeWaitMsMax`.
 */
import {
  type ClusterConfig,
  clusterConfigText,
  isVoter,
  type MemberAddress,
  type MembershipChange,
  memberAddressProblem,
} from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import { within } from "./bounded-wait.ts";
import type { NodeConfig } from "./node-config.ts";
import type { PeerDirectory } from "./peer-directory.ts";
import type { ProposalResult } from "./proposal-registry.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";

/** The longest any membership request waits (for a commit, a hand-over, or a learner to catch up). */
export const memberChangeWaitMsMax = 300_000;
/** Used when a request names no `timeoutMs`. */
export const memberChangeWaitMsDefault = 60_000;
/** How often a promotion looks at the learner's progress. */
const catchUpPollMs = 50;
const nodeIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export type MemberView = {
  readonly id: string;
  readonly role: "voter" | "learner";
  readonly raft: string | null;
  readonly http: string | null;
  readonly leader: boolean;
  /** With the leader's view: the member's last replicated index and how far it is behind. */
  readonly matchIndex: number | null;
  readonly lagEntries: number | null;
};

export type MembersResponse = {
  readonly leader: string | null;
  readonly term: number;
  /** The index of the configuration's entry (the snapshot's when the log holds none). */
  readonly configIndex: number;
  readonly configCommitted: boolean;
  readonly members: readonly MemberView[];
};

export type MemberChangeAnswer = {
  readonly change: string;
  readonly node: string;
  /** The log position of the (last) configuration entry the change wrote. */
  readonly index: number;
  readonly term: number;
  readonly members: MembersResponse;
};

export type JoinAnswer = {
  readonly clusterId: string;
  readonly config: ClusterConfig;
  readonly leader: { readonly id: string; readonly http: string };
};

export type AddRequest = {
  readonly id: string;
  readonly raft: string;
  readonly http: string;
  readonly role: "voter" | "learner" | "witness";
  readonly timeoutMs: number | null;
  /** Who asked (recorded in the history). */
  readonly actor: string;
};

export class MemberChanges {
  private readonly loop: ReplicaLoop;
  private readonly peers: PeerDirectory;
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly requireLeader: () => void;
  private readonly handOver: (waitMsMax: number) => Promise<void>;
  private readonly markWitness: (node: NodeId, waitMs: number) => Promise<unknown>;

  constructor(parts: {
    loop: ReplicaLoop;
    peers: PeerDirectory;
    config: NodeConfig;
    runtime: NodeRuntime;
    requireLeader: () => void;
    handOver: (waitMsMax: number) => Promise<void>;
    /** Sets the witness attribute of a member (a replicated failover change). */
    markWitness: (node: NodeId, waitMs: number) => Promise<unknown>;
  }) {
    this.markWitness = parts.markWitness;
    this.loop = parts.loop;
    this.peers = parts.peers;
    this.config = parts.config;
    this.runtime = parts.runtime;
    this.requireLeader = parts.requireLeader;
    this.handOver = parts.handOver;
  }

  list(): MembersResponse {
    const status = this.loop.core.status();
    const config = status.clusterConfig;
    const progress = new Map(status.members.map((member) => [member.id, member]));
    const isLeader = status.role === "leader";
    const members = [...config.voters, ...config.learners].map((id): MemberView => {
      const address = config.addresses?.[id];
      const match = id === status.id && isLeader ? status.lastIndex : progress.get(id)?.matchIndex;
      return {
        id,
        role: isVoter(config, id) ? "voter" : "learner",
        raft: address?.raft ?? null,
        http: address?.http ?? this.peers.httpOf(id),
        leader: status.leaderId === id,
        matchIndex: isLeader && match !== undefined ? match : null,
        lagEntries: isLeader && match !== undefined ? Math.max(0, status.lastIndex - match) : null,
      };
    });
    return {
      leader: status.leaderId,
      term: status.term,
      configIndex: status.clusterConfigIndex,
      configCommitted: status.clusterConfigIndex <= status.commitIndex,
      members,
    };
  }

  async add(request: AddRequest): Promise<MemberChangeAnswer> {
    const node = checkNodeId(request.id);
    const address = checkAddress({ raft: request.raft, http: request.http });
    const deadlineMs = this.deadline(request.timeoutMs);
    const added = await this.change({ kind: "addLearner", node, address }, deadlineMs);
    if (request.role === "learner") return this.answer("add", node, added);
    // A witness is marked before it can vote, so it never counts as a data node.
    if (request.role === "witness") await this.markWitness(node, this.remaining(deadlineMs));
    await this.waitCaughtUp(node, deadlineMs);
    return this.answer("add", node, await this.change({ kind: "promote", node }, deadlineMs));
  }

  async promote(id: string, timeoutMs: number | null): Promise<MemberChangeAnswer> {
    const node = checkNodeId(id);
    const deadlineMs = this.deadline(timeoutMs);
    this.requireLeader();
    const config = this.loop.core.summary().clusterConfig;
    if (isVoter(config, node)) throw new BatonError(ErrorCode.NODE_NOT_LEARNER, `${node} is a voter already`);
    if (!config.learners.includes(node))
      throw new BatonError(ErrorCode.NODE_NOT_MEMBER, `${node} is not a member`);
    await this.waitCaughtUp(node, deadlineMs);
    return this.answer("promote", node, await this.change({ kind: "promote", node }, deadlineMs));
  }

  async demote(id: string, timeoutMs: number | null): Promise<MemberChangeAnswer> {
    const node = checkNodeId(id);
    const deadlineMs = this.deadline(timeoutMs);
    await this.handOverIfSelf(node, deadlineMs);
    return this.answer("demote", node, await this.change({ kind: "demote", node }, deadlineMs));
  }

  async remove(id: string, timeoutMs: number | null): Promise<MemberChangeAnswer> {
    const node = checkNodeId(id);
    const deadlineMs = this.deadline(timeoutMs);
    await this.handOverIfSelf(node, deadlineMs);
    return this.answer("remove", node, await this.change({ kind: "remove", node }, deadlineMs));
  }

  /** A node with an empty data directory asks to be added as a learner (see the module header). */
  async join(
    request: { id: string; raft: string; http: string; witness?: boolean },
    timeoutMs: number | null,
  ): Promise<JoinAnswer> {
    const node = checkNodeId(request.id);
    const address = checkAddress({ raft: request.raft, http: request.http });
    const deadlineMs = this.deadline(timeoutMs);
    this.requireLeader();
    if (node === this.config.id)
      throw new BatonError(ErrorCode.CONFLICT, `${node} is the id of the leader itself, which is running`);
    const clusterId = this.config.clusterId;
    if (clusterId === undefined)
      throw new BatonError(ErrorCode.BAD_CONFIG, "this node was started without a cluster id");
    const config = this.loop.core.summary().clusterConfig;
    const member = [...config.voters, ...config.learners].includes(node);
    // The injected test bug keeps a wiped member's old membership: it answers with the configuration
    // as it stands, in which the node may be a voter with progress the leader recorded before.
    const keepOldMembership = member && this.config.unsafeNodeBugs?.rejoinWithoutRemoval === true;
    if (!keepOldMembership) {
      if (member) {
        this.runtime.logger("warn", "member.rejoin-with-empty-state", { node });
        await this.change({ kind: "remove", node }, deadlineMs);
      }
      await this.change({ kind: "addLearner", node, address }, deadlineMs);
    }
    if (request.witness === true) await this.markWitness(node, this.remaining(deadlineMs));
    return {
      clusterId,
      // The canonical form, version included, so the new node can check it as it checks a log entry.
      config: JSON.parse(clusterConfigText(this.loop.core.summary().clusterConfig)) as ClusterConfig,
      leader: { id: this.config.id, http: this.config.httpAddress },
    };
  }

  /** One change through the core, answered once its entry commits under the new configuration. */
  private async change(change: MembershipChange, deadlineMs: number): Promise<ProposalResult> {
    this.requireLeader();
    const outcomes = this.loop.outcomes;
    const proposalId = outcomes.newId("m");
    const done = outcomes.registerProposal(proposalId);
    done.catch(() => {});
    const waitMs = Math.max(1, deadlineMs - this.runtime.clock.nowMs());
    this.runtime.logger("info", "member.change-proposed", { kind: change.kind, node: change.node });
    this.loop.step({
      type: "changeMembership",
      proposalId,
      change,
      timeoutTicks: Math.max(1, Math.ceil(waitMs / this.config.tickMs)),
    });
    return within(this.runtime.timers, done, waitMs, () => {
      outcomes.forget(proposalId);
      return new BatonError(
        ErrorCode.TIMEOUT,
        `the ${change.kind} of ${change.node} did not commit within ${waitMs} ms; it may still commit: list the members to see`,
      );
    });
  }

  /**
   * Waits until `node` caught up (the rounds of the module header), or throws MEMBER_NOT_CAUGHT_UP
   * at the deadline. Throws NOT_LEADER if leadership moves meanwhile.
   */
  private async waitCaughtUp(node: NodeId, deadlineMs: number): Promise<void> {
    const { clock, timers } = this.runtime;
    const roundMsMax = this.config.heartbeatMs * this.config.missedHeartbeats;
    let target = this.loop.core.summary().commitIndex;
    let roundStartMs = clock.nowMs();
    for (;;) {
      this.requireLeader();
      const match = this.loop.core.status().members.find((member) => member.id === node)?.matchIndex;
      if (match === undefined) throw new BatonError(ErrorCode.NODE_NOT_MEMBER, `${node} is not a member`);
      if (match >= target) {
        if (clock.nowMs() - roundStartMs <= roundMsMax) return;
        target = this.loop.core.summary().commitIndex;
        roundStartMs = clock.nowMs();
        continue;
      }
      if (clock.nowMs() >= deadlineMs) {
        const { commitIndex } = this.loop.core.summary();
        throw new BatonError(
          ErrorCode.MEMBER_NOT_CAUGHT_UP,
          `${node} has entries up to ${match}, the leader commits ${commitIndex}; it stays a learner (promote it again later)`,
          { node, matchIndex: match, commitIndex },
        );
      }
      await new Promise<void>((resolve) => timers.after(catchUpPollMs, resolve));
    }
  }

  /** Removing or demoting the leader itself: hand over first, then let the new leader do it. */
  private async handOverIfSelf(node: NodeId, deadlineMs: number): Promise<void> {
    this.requireLeader();
    if (node !== this.config.id) return;
    const others = this.loop.core.summary().clusterConfig.voters.filter((id) => id !== node);
    if (others.length === 0) return; // the core refuses with NO_VOTER_LEFT
    await this.handOver(Math.max(1, deadlineMs - this.runtime.clock.nowMs()));
    // Still the leader (no voter caught up in time): the core removes a leader safely, stepping
    // down once the change commits. Otherwise wait (bounded) to hear from the new leader, so the
    // request can be sent on to it.
    for (;;) {
      const { role, leaderId } = this.loop.core.summary();
      if (role === "leader") return;
      if (leaderId !== null || this.runtime.clock.nowMs() >= deadlineMs)
        throw this.peers.refusal("NOT_LEADER", leaderId);
      await new Promise<void>((resolve) => this.runtime.timers.after(catchUpPollMs, resolve));
    }
  }

  private remaining(deadlineMs: number): number {
    return Math.max(1, deadlineMs - this.runtime.clock.nowMs());
  }

  private deadline(timeoutMs: number | null): number {
    const waitMs = timeoutMs ?? memberChangeWaitMsDefault;
    if (!Number.isSafeInteger(waitMs) || waitMs < 1 || waitMs > memberChangeWaitMsMax)
      throw new BatonError(
        ErrorCode.BAD_REQUEST,
        `timeoutMs must be an integer from 1 to ${memberChangeWaitMsMax}`,
      );
    return this.runtime.clock.nowMs() + waitMs;
  }

  private answer(change: string, node: NodeId, result: ProposalResult): MemberChangeAnswer {
    return { change, node, index: result.index, term: result.term, members: this.list() };
  }
}

function checkNodeId(id: unknown): NodeId {
  if (typeof id !== "string" || !nodeIdPattern.test(id))
    throw new BatonError(
      ErrorCode.BAD_REQUEST,
      `a node id is 1 to 64 letters, digits, '.', '_' or '-', not ${JSON.stringify(id)}`,
    );
  return nodeId(id);
}

function checkAddress(address: { raft: unknown; http: unknown }): MemberAddress {
  const problem = memberAddressProblem(address);
  if (problem !== null) throw new BatonError(ErrorCode.BAD_REQUEST, problem);
  return address as MemberAddress;
}
