/**
 * RaftCore: the pure replication state machine (Raft with pre-vote, check-quorum, leadership
 * transfer, per-proposal durability levels, membership changes and failover control).
 *
 * The core performs no I/O, reads no clock and draws no random number of its own: time arrives as
 * `tick` inputs, randomness from the injected seeded `Prng`, and every input returns `Effects` that
 * the host carries out in the documented order (see `effects.ts`). This is what makes deterministic
 * simulation possible.
 *
 * `step` handles terms first (Raft §5.1: a higher term makes us a follower; a lower one is refused),
 * then delegates to the handler for the message type and our role.
 *
 * Failure detection: the leader heartbeats every H = heartbeatIntervalMs; a follower campaigns (in
 * failover mode auto; the other modes report instead, `failover.ts`) after
 * T = H × missedHeartbeats without hearing from it, randomized to [T, T × (1 + j)] with
 * j = electionJitter (rounded up to whole ticks). From the leader's death to a new leader, with
 * round-trip time RTT, vote fsync time F, m surviving followers and no split vote:
 *   worst    ≈ T × (1 + j) + 2 × RTT + F   (a pre-vote round, then a vote round);
 *   expected ≈ T × (1 + j / (m + 1)) − H / 2 + 2 × RTT + F
 * (the first of m uniform timers fires on average jT/(m+1) after T, and the last heartbeat arrived
 * on average H/2 before the death). Each split vote, or pre-vote refused by a voter whose lease has
 * not quite expired, adds up to another T × (1 + j). With the defaults (H = 100 ms, 10 missed
 * heartbeats, j = 0.5) in a 3-node cluster: worst ≈ 1.5 s + 2 RTT + F, expected ≈ 1.12 s + 2 RTT + F.
 */
import { assert, unreachable } from "../lib/assert.ts";
import { type LogIndex, logIndex, type Term } from "../types/ids.ts";
import type { HardState, LogEntry } from "../types/log-entry.ts";
import {
  type ClusterConfig,
  failoverSettingsOf,
  memberAttributesOf,
  sameFailoverPart,
} from "./cluster-config.ts";
import { type RaftConfig, type ResolvedConfig, resolveConfig } from "./config.ts";
import {
  type CoreState,
  checkInvariants,
  createCoreState,
  hardStateOf,
  type InitialState,
  inLease,
  observe,
  refreshApplyThrough,
  selfIsVoter,
} from "./core-state.ts";
import { type CoreStatus, type CoreSummary, statusOf, summaryOf } from "./core-status.ts";
import { evaluateProposals, expireProposals, onCompaction } from "./durability.ts";
import { type Effects, EffectsBuilder } from "./effects.ts";
import {
  campaign,
  handlePreVote,
  handleRequestVote,
  handleTimeoutNow,
  handleVoteResponse,
} from "./election.ts";
import { handlePromoteLeader, tickElection } from "./failover.ts";
import { handleChangeFailover } from "./failover-change.ts";
import { leaderFound, notePeerPosition } from "./failover-view.ts";
import { handleAppendEntries, handleHeartbeat, handleInstallSnapshot } from "./follower.ts";
import { handleTransferLeadership } from "./handoff.ts";
import type { Input } from "./inputs.ts";
import {
  afterCommitMaybeAdvanced,
  handleAppendEntriesResponse,
  handleHeartbeatResponse,
  handlePropose,
  handleSnapshotFailed,
  handleSnapshotSent,
  tickLeader,
} from "./leader.ts";
import { settlePromise } from "./lost-entries.ts";
import { handleChangeMembership } from "./membership.ts";
import type { Message } from "./messages.ts";
import {
  handleReadIndex,
  handleReadIndexRequest,
  handleReadIndexResponse,
  rejectOwnReads,
  settleForwardedReads,
} from "./read-index.ts";
import { broadcastAppend, commitNewsPending, leaderDataFloor } from "./replication.ts";
import { becomeFollower } from "./roles.ts";

/** What durability outcomes depend on: proposals are re-evaluated only when one of these moved. */
type DurabilityProgress = readonly [number, number, number, number, string, number, number];

function durabilityProgress(s: CoreState): DurabilityProgress {
  return [
    s.commitIndex,
    s.durableIndex,
    s.appliedIndex,
    s.replicationVersion,
    s.role,
    s.log.lastIndex,
    s.log.snapshotIndex,
  ];
}

function sameProgress(a: DurabilityProgress, b: DurabilityProgress): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isFromLeader(message: Message): boolean {
  return (
    message.type === "appendEntries" || message.type === "heartbeat" || message.type === "installSnapshot"
  );
}

export class RaftCore {
  readonly #s: CoreState;

  /** Throws `BatonError('BAD_CONFIG')` on an invalid configuration; asserts on an inconsistent initial state. */
  constructor(config: RaftConfig, initial: InitialState) {
    const resolved = resolveConfig(config);
    this.#s = createCoreState(resolved, config.prng, initial);
    checkInvariants(this.#s);
  }

  get config(): ResolvedConfig {
    return this.#s.config;
  }

  /** Feeds one input; returns what the host must do, in the order documented in `effects.ts`. */
  step(input: Input): Effects {
    const s = this.#s;
    const before = observe(s);
    const progress = durabilityProgress(s);
    const configBefore = s.log.config;
    const out = new EffectsBuilder();
    this.#dispatch(input, out);
    if (s.log.config !== configBefore) this.#configChanged(configBefore, out);
    settleForwardedReads(s, out);
    settlePromise(s, out);
    if (!sameProgress(progress, durabilityProgress(s))) evaluateProposals(s, out);
    if (s.config.deferCommitNews) out.commitNewsDue = commitNewsPending(s);
    checkInvariants(s);
    return out.finish(before, observe(s));
  }

  #dispatch(input: Input, out: EffectsBuilder): void {
    const s = this.#s;
    switch (input.type) {
      case "tick":
        s.nowTick++;
        if (s.role === "leader") tickLeader(s, out);
        else tickElection(s, out);
        expireProposals(s, out);
        return;
      case "message":
        this.#stepMessage(input.message, out);
        return;
      case "propose":
        handlePropose(s, out, input);
        return;
      case "changeMembership":
        handleChangeMembership(s, out, input);
        return;
      case "changeFailover":
        handleChangeFailover(s, out, input);
        return;
      case "promoteLeader":
        handlePromoteLeader(s, out, input.requestId);
        return;
      case "persisted":
        this.#persisted(input.index, input.term, out);
        return;
      case "applied":
        this.#applied(input.index, out);
        return;
      case "readIndex":
        handleReadIndex(s, out, input.requestId);
        return;
      case "transferLeadership":
        handleTransferLeadership(s, out, input.target);
        return;
      case "campaign":
        campaign(s, out, false);
        return;
      case "compact":
        this.#compact(input.index, input.term);
        return;
      case "snapshotSent":
        handleSnapshotSent(s, out, input.peer, input.index);
        return;
      case "snapshotFailed":
        handleSnapshotFailed(s, input.peer);
        return;
      case "holdCandidacy":
        s.candidacyHeld = input.hold;
        return;
      case "commitNews":
        out.commitNewsNow = true;
        if (s.role === "leader") broadcastAppend(s, out, false);
        return;
      default:
        unreachable(input, "unknown input");
    }
  }

  /** Reports a new configuration; a (pre-)candidate that it makes a non-voter gives up its campaign. */
  #configChanged(before: ClusterConfig, out: EffectsBuilder): void {
    const s = this.#s;
    const config = s.log.config;
    const { voters, learners } = config;
    const common = { node: s.config.id, term: s.term, index: s.log.configIndex };
    out.event({ type: "config-changed", ...common, voters, learners });
    const self = s.config.id;
    if (memberAttributesOf(config, self).witness && !memberAttributesOf(before, self).witness)
      rejectOwnReads(s, out);
    if (!sameFailoverPart(before, config)) {
      const settings = failoverSettingsOf(config);
      out.event({ type: "failover-config-changed", ...common, settings, members: config.members ?? [] });
    }
    if ((s.role === "candidate" || s.role === "preCandidate") && !selfIsVoter(s))
      becomeFollower(s, out, s.term, null, "removed-from-configuration", null);
  }

  /**
   * Raft §5.1: terms first, then the handler for the message type and our role. Messages are handled
   * from every member of any configuration our log holds, not only the latest (dissertation §4.1):
   * a leader that removed itself still replicates until that change commits (§4.2.2), and a node
   * answers a candidate whatever its own configuration says. The members of the bootstrap
   * configuration stay heard too (they stay the transport's peers): a node that joined can install
   * a snapshot taken before the current leader came back to the cluster, and only that leader's
   * entries can tell it so (the simulator's SEED=434 left such a node ignoring its leader for
   * good). Nodes never in any are ignored. A leader ignores answers from nodes it no longer
   * replicates to (`leader.ts`).
   */
  #stepMessage(message: Message, out: EffectsBuilder): void {
    const s = this.#s;
    if (message.to !== s.config.id || message.from === s.config.id) return;
    const { voters, learners } = s.config;
    if (!s.log.isKnown(message.from) && !voters.includes(message.from) && !learners.includes(message.from))
      return;
    // What a leaderless node knows of its peers, even from a request it ignores (`failover-view.ts`).
    if (message.type === "preVote" || message.type === "requestVote")
      notePeerPosition(
        s,
        message.from,
        message.lastLogIndex,
        message.lastLogTerm,
        message.type === "preVote" && message.held === true,
      );
    if (message.type === "installSnapshot" && message.term < s.term) {
      // The host already restored this (committed) data; record it, and let our term unseat the sender.
      handleInstallSnapshot(s, out, message);
      return;
    }
    if (message.term > s.term && !this.#acceptHigherTerm(message, out)) return;
    if (message.term < s.term) {
      this.#answerStaleTerm(message, out);
      return;
    }
    this.#dispatchMessage(message, out);
  }

  /** Returns false when the message must be ignored (a vote request while we are in lease). */
  #acceptHigherTerm(message: Message, out: EffectsBuilder): boolean {
    const s = this.#s;
    const isVoteRequest = message.type === "preVote" || message.type === "requestVote";
    const transfer = message.type === "requestVote" && message.transfer;
    // Thesis §9.6 / §4.2.3: while we hear from a live leader, disruptive candidates are ignored.
    if (isVoteRequest && !transfer && inLease(s)) return false;
    // A pre-vote and a granted pre-vote answer carry a hypothetical term: they change none of ours.
    if (message.type === "preVote" || (message.type === "preVoteResponse" && message.granted)) return true;
    const reason = s.role === "leader" && s.transfer?.target === message.from ? "transfer" : "higher-term";
    becomeFollower(s, out, message.term, isFromLeader(message) ? message.from : null, reason, message.from);
    return true;
  }

  #answerStaleTerm(message: Message, out: EffectsBuilder): void {
    const s = this.#s;
    const from = s.config.id;
    const to = message.from;
    if (message.type === "appendEntries" || message.type === "heartbeat") {
      // A deposed leader learns of the newer term from this answer and steps down. rejectedIndex 0 makes
      // the answer inert should it reach a leader of our own term.
      const zero = logIndex(0);
      out.send({
        type: "appendEntriesResponse",
        from,
        to,
        term: s.term,
        success: false,
        matchIndex: zero,
        rejectedIndex: zero,
        conflictTerm: s.log.snapshotTerm,
        conflictIndex: zero,
        appliedIndex: s.appliedIndex,
      });
    } else if (message.type === "preVote") {
      out.send({ type: "preVoteResponse", from, to, term: s.term, granted: false });
    } else if (message.type === "requestVote") {
      out.send({ type: "requestVoteResponse", from, to, term: s.term, granted: false });
    }
  }

  #dispatchMessage(message: Message, out: EffectsBuilder): void {
    const s = this.#s;
    switch (message.type) {
      case "preVote":
        handlePreVote(s, out, message);
        return;
      case "requestVote":
        handleRequestVote(s, out, message);
        return;
      case "preVoteResponse":
      case "requestVoteResponse":
        handleVoteResponse(s, out, message);
        return;
      case "appendEntries":
      case "heartbeat":
      case "installSnapshot":
        this.#stepFromLeader(message, out);
        return;
      case "appendEntriesResponse":
        if (s.role === "leader") handleAppendEntriesResponse(s, out, message);
        return;
      case "heartbeatResponse":
        if (s.role === "leader") handleHeartbeatResponse(s, out, message);
        return;
      case "timeoutNow":
        handleTimeoutNow(s, out, message);
        return;
      case "readIndex":
        handleReadIndexRequest(s, out, message);
        return;
      case "readIndexResponse":
        if (s.role === "follower") handleReadIndexResponse(s, out, message);
        return;
      default:
        unreachable(message, "unknown message");
    }
  }

  #stepFromLeader(
    message: Message & { type: "appendEntries" | "heartbeat" | "installSnapshot" },
    out: EffectsBuilder,
  ): void {
    const s = this.#s;
    // Election safety (Raft §5.2): one leader per term, so a same-term leader message never reaches a leader.
    assert(s.role !== "leader", `two leaders in term ${s.term}: ${s.config.id} and ${message.from}`);
    assert(s.leaderId === null || s.leaderId === message.from, `two leaders in term ${s.term}`);
    if (s.role !== "follower" || s.leaderId === null)
      becomeFollower(s, out, s.term, message.from, "leader-found", message.from);
    leaderFound(s, message.from);
    if (message.type === "appendEntries") handleAppendEntries(s, out, message);
    else if (message.type === "heartbeat") handleHeartbeat(s, out, message);
    else handleInstallSnapshot(s, out, message);
  }

  #persisted(index: LogIndex, entryTerm: Term, out: EffectsBuilder): void {
    const s = this.#s;
    // A report for entries since replaced by a truncation is stale: their successors are not durable yet.
    if (index <= s.durableIndex || s.log.termAt(index) !== entryTerm) return;
    s.durableIndex = index;
    refreshApplyThrough(s);
    if (s.role === "leader") afterCommitMaybeAdvanced(s, out);
  }

  #applied(index: LogIndex, out: EffectsBuilder): void {
    const s = this.#s;
    assert(index <= s.applyThrough, `applied ${index} beyond the allowed ${s.applyThrough}`);
    if (index <= s.appliedIndex) return;
    s.appliedIndex = index;
    s.log.releaseApplied(index);
    // While the leader asks (an `all` write waits), a follower reports each apply at once, so the
    // write is acknowledged without waiting for a heartbeat's answer.
    if (s.role === "follower" && s.leaderId !== null && s.appliedReportsWanted) {
      out.send({
        type: "heartbeatResponse",
        from: s.config.id,
        to: s.leaderId,
        term: s.term,
        readRound: 0,
        appliedIndex: index,
        report: true,
      });
    }
  }

  #compact(index: LogIndex, snapshotTerm: Term): void {
    const s = this.#s;
    if (index <= s.log.snapshotIndex) return;
    assert(index <= s.appliedIndex, `compaction at ${index} beyond the applied index ${s.appliedIndex}`);
    onCompaction(s, index);
    s.log.compact(index, snapshotTerm);
  }

  /**
   * The few scalars the host's request paths read on every write and read; unlike `status()` it
   * builds no member list, so it costs nothing per request.
   */
  summary(): CoreSummary {
    return summaryOf(this.#s);
  }

  /** A read-only view for the host's status endpoint and for tests. */
  status(): CoreStatus {
    return statusOf(this.#s);
  }

  hardState(): HardState {
    return hardStateOf(this.#s);
  }

  /**
   * The data floor: as leader, the highest index every data-holding voter holds (`leaderDataFloor`);
   * otherwise the highest a leader named to this node (0 until one did, and for any but a witness).
   * A witness compacts its log no further, so that it can hand on any entry it may be the last
   * voter to hold.
   */
  dataFloor(): LogIndex {
    const s = this.#s;
    return s.role === "leader" ? leaderDataFloor(s) : s.dataFloorHeard;
  }

  /** The term of the entry at `index` in memory (the snapshot's term at its index), or undefined. */
  termAt(index: number): Term | undefined {
    return this.#s.log.termAt(index);
  }

  /**
   * The cluster configuration as of `index`, for any index from the snapshot index to the last index
   * (undefined outside). A host that sends a peer a snapshot newer than the one `snapshotNeeded`
   * names must put this configuration, for its snapshot's index, in the `installSnapshot` header.
   */
  configAt(index: number): ClusterConfig | undefined {
    const log = this.#s.log;
    if (!Number.isSafeInteger(index) || index < log.snapshotIndex || index > log.lastIndex) return undefined;
    return log.configAt(logIndex(index));
  }

  entryAt(index: number): LogEntry | undefined {
    return this.#s.log.entryAt(index);
  }
}
