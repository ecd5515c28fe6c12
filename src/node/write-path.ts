/**
 * The write path (leader only): gate → request-id replay → run the batch speculatively at the next
 * log index → propose its payload → wait until its durability level is reached.
 *
 * - The gate is open when this node leads, no leadership transfer runs, every log entry is either
 *   applied or one of this term's open speculative batches (true once the term's no-op is
 *   applied), no replay is pending in the store, and no drain is due. It is checked again after
 *   every await, because resuming is a new turn of the event loop.
 * - A retried `requestId` answers the original response from the replicated request log once
 *   that write is applied here, so a write is applied at most once across retries and failovers.
 * - Every wait is bounded: the gate by the request's deadline, the outcome by the deadline plus
 *   `outcomeGraceMs` (the core answers every proposal by its own timeout; this is the second line,
 *   and says the outcome is unknown).
 * - No batch holds the event loop for long. A batch whose every statement is provably short
 *   (`Store.isBoundedBatch`) runs in process. Any other runs in the runtime's write sandbox, a
 *   process that is killed when the batch passes its time bound (QUERY_TIMEOUT; nothing was
 *   proposed). The sandbox runs on the node's own file, so it needs the committed state and the
 *   write lock: it takes the sandbox turn (the gate closes), waits until every open batch has
 *   committed and every entry is applied, and while it runs nothing is applied here
 *   (`sandboxRunning`). Its payload is then adopted as the next index and proposed in one turn;
 *   the adopted batch commits alone (speculation drains) before the gate reopens. A payload of
 *   `EntryApplier.payloadBytesMin` bytes or more is not applied here at all: it is proposed as it
 *   is, and the entry applier applies it once committed (`committed-applier.ts`), as on every
 *   replica; the gate reopens once it is applied. Without a sandbox (the simulator, unit tests)
 *   every batch runs in process.
 */
import type { ExecuteResponse } from "../api/api-types.ts";
import type { NormalizedExecute } from "../api/request-validation.ts";
import type { Durability } from "../consensus/config.ts";
import { mayLead } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode, isBatonError } from "../lib/errors.ts";
import { checkPayloadInSteps, type HistoryRow, type SequenceEntry } from "../store/index.ts";
import type { RememberedRequest } from "../store/request-log.ts";
import type {
  AdoptedBatch,
  AdoptOptions,
  BatchResult,
  ExecuteResult,
  ExecuteStatementResult,
} from "../store/types.ts";
import type { BatchSandbox } from "../store/write-sandbox.ts";
import type { SandboxRequest } from "../store/write-sandbox-protocol.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { EntryProposer } from "./entry-proposer.ts";
import type { IdGuard } from "./id-guard.ts";
import type { IndexWaiters } from "./index-waiters.ts";
import type { LeaderSpeculation } from "./leader-speculation.ts";
import type { NodeConfig } from "./node-config.ts";
import type { PeerDirectory } from "./peer-directory.ts";
import type { ProposalResult } from "./proposal-registry.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import { WriteGate } from "./write-gate.ts";
import { type GroupMember, runAgain, WriteGroups } from "./write-groups.ts";
import { encodeResults } from "./write-results.ts";

/** Extra time past a write's own timeout before the node stops waiting for the core's answer. */
export const outcomeGraceMs = 1_000;

/** A batch proposed at `index`: its results, and its entry's outcome. */
type ProposedWrite = {
  readonly index: LogIndex;
  readonly term: number;
  readonly results: readonly ExecuteStatementResult[];
  readonly outcome: Promise<ProposalResult>;
  /** The writer stops waiting for the outcome (the entry's last waiter lets the registry forget it). */
  readonly forget: () => void;
  readonly needs: readonly SequenceEntry[];
};

/** A write that passed the gate but was handed back until its deadline: it never ran. */
function notRunInTime(timeoutMs: number): BatonError {
  const message = `the write did not run within its ${timeoutMs} ms; nothing was applied`;
  return new BatonError(ErrorCode.TIMEOUT, message, { timeoutMs });
}

/** Settles a member whose batch is not in a proposed entry: its error, or run it again. */
function settleUnproposed(member: GroupMember<ProposedWrite>, batch: BatchResult | undefined): void {
  assert(batch !== undefined && batch.kind !== "done", "a batch that ran is in the proposed entry");
  if (batch.kind === "failed") member.reject(batch.error);
  else member.resolve({ kind: "again", alone: batch.alone });
}

export class WritePath {
  readonly gate: WriteGate;
  private readonly groups: WriteGroups<ProposedWrite>;
  private readonly proposer: EntryProposer;
  private readonly loop: ReplicaLoop;
  private readonly speculation: LeaderSpeculation;
  private readonly ids: IdGuard;
  private readonly applied: IndexWaiters;
  private readonly peers: PeerDirectory;
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;
  private readonly isStopping: () => boolean;
  private readonly damageError: () => BatonError | null;
  private readonly storeVerified: () => boolean;
  /** A sandboxed batch holds the turn: it waits for the drain, runs, or is being proposed. */
  private sandboxTurn = false;
  /** The sandbox runs a batch and may hold the database's write lock: nothing is applied meanwhile. */
  private sandboxRunningValue = false;

  constructor(parts: {
    loop: ReplicaLoop;
    speculation: LeaderSpeculation;
    ids: IdGuard;
    applied: IndexWaiters;
    peers: PeerDirectory;
    config: NodeConfig;
    runtime: NodeRuntime;
    isStopping: () => boolean;
    /** Set while this node's database is damaged (`storage-heal.ts`): no batch runs on it. */
    damageError: () => BatonError | null;
    /** False until this node's database matched a majority since it opened: batches wait. */
    storeVerified: () => boolean;
  }) {
    this.loop = parts.loop;
    this.speculation = parts.speculation;
    this.ids = parts.ids;
    this.applied = parts.applied;
    this.peers = parts.peers;
    this.config = parts.config;
    this.runtime = parts.runtime;
    this.isStopping = parts.isStopping;
    this.damageError = parts.damageError;
    this.storeVerified = parts.storeVerified;
    this.gate = new WriteGate(parts.runtime.timers, parts.config.gateWaitersMax, () => this.gateOpen());
    this.proposer = new EntryProposer(parts);
    this.groups = new WriteGroups(parts.runtime.timers, (members) => this.runGroup(members));
  }

  async execute(request: NormalizedExecute): Promise<ExecuteResponse> {
    const { clock } = this.runtime;
    const deadlineMs = clock.nowMs() + (request.timeoutMs ?? this.config.writeTimeoutMsDefault);
    const remainingMs = (): number => Math.max(1, deadlineMs - clock.nowMs());
    this.requireLeader();
    const ticket = this.gate.ticket();
    let alone = false;
    let ran: ProposedWrite | null = null;
    while (ran === null) {
      while (!this.gateOpen()) {
        this.requireLeader();
        await this.gate.wait(remainingMs(), { ticket });
      }
      this.requireLeader();
      this.checkExpectedTerm(request.expectedTerm);
      this.refuseWhileHandingOver();
      if (request.requestId !== null) {
        const remembered = this.runtime.store.lookupRequest(request.requestId);
        if (remembered !== null) return this.answerRemembered(remembered, request, deadlineMs);
      }
      const sandbox = this.runtime.writeSandbox;
      if (sandbox !== undefined && !this.runtime.store.isBoundedBatch(request.statements)) {
        ran = await this.runSandboxedAndPropose(sandbox, request, remainingMs);
        break;
      }
      const term = this.loop.core.summary().term;
      const joined = await this.groups.join(request, deadlineMs, term, alone);
      if (joined.kind === "ran") ran = joined.write;
      else alone ||= joined.alone;
      if (ran === null && clock.nowMs() >= deadlineMs)
        throw notRunInTime(request.timeoutMs ?? this.config.writeTimeoutMsDefault);
    }
    const { index, term, results, outcome, forget, needs } = ran;
    const position = await this.proposer.awaitOutcome(forget, outcome, index, remainingMs() + outcomeGraceMs);
    assert(
      position.index === index && position.term === term,
      "the acknowledgement names the batch's position",
    );
    const durability = (request.durability ?? this.config.durability) as Durability;
    if (this.ids.mustWait(durability, needs)) await this.ids.waitCovered(needs, index, remainingMs());
    return {
      results: encodeResults(results),
      position: { index: position.index, term: position.term },
      term: position.term,
      node: this.config.id,
    };
  }

  /** A retried write that is remembered: its original response, once applied here at its durability. */
  private async answerRemembered(
    remembered: RememberedRequest,
    request: NormalizedExecute,
    deadlineMs: number,
  ): Promise<ExecuteResponse> {
    await this.applied.wait(remembered.index, Math.max(1, deadlineMs - this.runtime.clock.nowMs()));
    await this.confirmRemembered(remembered.index, request.durability ?? this.config.durability, deadlineMs);
    const original = JSON.parse(remembered.response) as Pick<ExecuteResponse, "results" | "position">;
    return { ...original, term: original.position.term, node: this.config.id };
  }

  /**
   * A retried write is answered only at the durability its client asked for, like the first try.
   * Applied here means committed, which covers `local`, `one` and `majority`; `all` also needs every
   * voter to have applied it, as the leader learns from their responses. Polled once a tick, bounded
   * by the request's deadline; not reached, it is NOT_CONFIRMED (and still not undone).
   */
  private async confirmRemembered(
    index: LogIndex,
    durability: Durability,
    deadlineMs: number,
  ): Promise<void> {
    if (durability !== "all") return;
    const { clock, timers } = this.runtime;
    for (;;) {
      const status = this.loop.core.status();
      const behind = status.members.filter(
        (member) => member.id !== this.config.id && member.appliedIndex < index,
      );
      if (behind.length === 0) return;
      if (clock.nowMs() >= deadlineMs) {
        const voters = this.config.voters.length;
        throw new BatonError(
          ErrorCode.NOT_CONFIRMED,
          `the retried write at index ${index} is applied on ${voters - behind.length} of ${voters} voters; all was not confirmed in time. It is not undone`,
          { index, durability, durableOn: voters - behind.length, clusterSize: voters, reason: "timeout" },
        );
      }
      await new Promise<void>((resolve) => timers.after(this.config.tickMs, resolve));
      this.requireLeader();
    }
  }

  /** Fencing: a write that names a term runs only while this leader is in that very term. */
  private checkExpectedTerm(expectedTerm: number | null): void {
    if (expectedTerm === null) return;
    const { term } = this.loop.core.summary();
    if (term === expectedTerm) return;
    throw new BatonError(
      ErrorCode.TERM_CHANGED,
      `the leader is in term ${term}, not the expected term ${expectedTerm}; nothing was applied`,
      { expectedTerm, term },
    );
  }

  /** True while a sandboxed batch runs and may hold the write lock: the node applies nothing then. */
  get sandboxRunning(): boolean {
    return this.sandboxRunningValue;
  }

  /** This node leads: the write sandbox's process starts, so the first batch need not wait for it. */
  leadershipGained(): void {
    this.runtime.writeSandbox?.warm();
  }

  /** Leadership is gone: the write sandbox stops, with any batch in it (which is never proposed). */
  leadershipLost(): void {
    this.runtime.writeSandbox?.rest("leadership lost");
  }

  /** Open when a batch may run now (see the module header). */
  gateOpen(): boolean {
    if (this.loop.fatal !== null || this.isStopping() || !this.storeVerified() || this.sandboxTurn)
      return false;
    const core = this.loop.core.summary();
    if (core.role !== "leader" || core.transferTarget !== null) return false;
    const store = this.runtime.store;
    if (store.replayRequiredThrough !== null) return false;
    if (store.appliedIndex + this.speculation.count !== core.lastIndex) return false;
    return !this.speculation.drainWanted();
  }

  /** Refuses the request unless this node leads; names the leader when known. */
  requireLeader(): void {
    if (this.loop.fatal !== null || this.isStopping())
      throw new BatonError(ErrorCode.SHUTTING_DOWN, "the node is shutting down");
    const core = this.loop.core.summary();
    if (core.role !== "leader") throw this.peers.refusal("NOT_LEADER", core.leaderId);
    const damage = this.damageError();
    if (damage !== null) throw damage;
  }

  /**
   * A leader that may not lead (a witness, a never-promote voter: elected as a relay or promoted)
   * is handing its office over and the core refuses its proposals: refuse the batch before running
   * it, as the core would, rather than run it on a witness's empty database (an SQL_ERROR the
   * client would take for its own; found by the simulator).
   */
  private refuseWhileHandingOver(): void {
    const { clusterConfig } = this.loop.core.summary();
    if (mayLead(clusterConfig, this.config.id)) return;
    throw new BatonError(
      ErrorCode.LEADERSHIP_TRANSFER,
      `${this.config.id} may not lead (witness or never-promote) and is handing its office over; retry shortly`,
    );
  }

  /** A group may run now: the gate is open and nothing changed since its batches passed it. */
  private groupMayRun(members: readonly GroupMember<ProposedWrite>[]): boolean {
    if (!this.gateOpen() || this.damageError() !== null) return false;
    const { term, clusterConfig } = this.loop.core.summary();
    return mayLead(clusterConfig, this.config.id) && members.every((member) => member.term === term);
  }

  /**
   * Runs a group of in-process batches in the open transaction at the next index and proposes the
   * entry there, in one turn (write-groups.ts); settles every member.
   */
  private runGroup(members: readonly GroupMember<ProposedWrite>[]): void {
    if (!this.groupMayRun(members)) {
      for (const member of members) member.resolve(runAgain);
      return;
    }
    const { term, lastIndex } = this.loop.core.summary();
    const index = logIndex(lastIndex + 1);
    const raise = this.ids.mustRaise(term);
    const batches = members.map((member) => ({
      statements: member.request.statements,
      options: this.proposer.requestOption(member.request, index, term),
    }));
    const group = this.speculation.executeGroup(
      index,
      batches,
      raise ? { raiseCountersToReservations: true } : {},
    );
    if (group.payload === null) {
      for (const [i, member] of members.entries()) settleUnproposed(member, group.batches[i]);
      return;
    }
    const { needs, reserve } = this.ids.afterBatch(group.counters, group.reservations);
    const nowMs = this.runtime.clock.nowMs();
    const timeoutMs = Math.max(1, Math.min(...members.map((member) => member.deadlineMs - nowMs)));
    const durability = members[0]?.request.durability ?? null;
    const { proposalId, outcome } = this.proposer.propose(index, term, group.payload, durability, timeoutMs);
    if (raise) this.ids.raised(term);
    if (reserve !== null) this.proposer.proposeReservation(reserve);
    // This runs at the turn's end already (write-groups.ts): the entry leaves when this task ends,
    // not one turn of the event loop later.
    this.loop.flushAtTaskEnd();
    let waiting = group.batches.filter((batch) => batch.kind === "done").length;
    const forget = () => {
      if (--waiting === 0) this.loop.outcomes.forget(proposalId);
    };
    for (const [i, member] of members.entries()) {
      const batch = group.batches[i];
      if (batch?.kind !== "done") settleUnproposed(member, batch);
      else
        member.resolve({
          kind: "ran",
          write: { index, term, results: batch.results, outcome, forget, needs },
        });
    }
  }

  /** Ready for the sandbox: leading, nothing speculative, every log entry applied (see the header). */
  private sandboxReady(): boolean {
    if (this.loop.fatal !== null || this.isStopping() || !this.storeVerified()) return false;
    const core = this.loop.core.summary();
    if (core.role !== "leader" || core.transferTarget !== null) return false;
    const store = this.runtime.store;
    if (store.replayRequiredThrough !== null || this.speculation.count > 0) return false;
    return store.appliedIndex === core.lastIndex;
  }

  /**
   * Runs a batch that is not provably short in the write sandbox on the committed state, then
   * adopts its payload as the next index and proposes it, in one turn (see the module header).
   */
  private async runSandboxedAndPropose(
    sandbox: BatchSandbox,
    request: NormalizedExecute,
    remainingMs: () => number,
  ) {
    assert(!this.sandboxTurn, "one sandboxed batch holds the turn at a time");
    this.sandboxTurn = true;
    try {
      while (!this.sandboxReady()) {
        this.requireLeader();
        await this.gate.wait(remainingMs(), { until: () => this.sandboxReady() });
      }
      this.checkExpectedTerm(request.expectedTerm);
      const { term, lastIndex } = this.loop.core.summary();
      const index = logIndex(lastIndex + 1);
      const raise = this.ids.mustRaise(term);
      const executed = await this.runInSandbox(
        sandbox,
        {
          appliedIndex: logIndex(lastIndex),
          index,
          statements: request.statements,
          options: raise ? { raiseCountersToReservations: true } : {},
        },
        remainingMs(),
      );
      // A large payload is applied once committed, by the entry applier, as on every replica; its
      // checksum is checked here, a step per turn, not in the one turn that adopts and proposes it.
      const applier = this.runtime.entryApplier;
      const applyElsewhere = applier !== undefined && executed.payload.byteLength >= applier.payloadBytesMin;
      if (applyElsewhere) await this.checkSandboxPayload(index, executed.payload);
      this.requireLeader();
      const now = this.loop.core.summary();
      if (now.term !== term || now.lastIndex !== lastIndex || !this.sandboxReady()) {
        const message = "the log moved on while the batch ran in the sandbox; it was not applied, retry";
        throw new BatonError(ErrorCode.OVERLOADED, message, { index });
      }
      const options = { ...this.proposer.requestOption(request, index, term), applyElsewhere };
      const { payload } = this.adopt(index, { ...executed, checksumChecked: applyElsewhere }, options);
      const { needs, reserve } = this.ids.afterBatch(executed.counters, executed.reservations);
      const { proposalId, outcome } = this.proposer.propose(
        index,
        term,
        payload,
        request.durability,
        remainingMs(),
      );
      if (raise) this.ids.raised(term);
      // Nothing joins the adopted batch's transaction: the next batch asks for the reservation again.
      if (reserve !== null) this.ids.proposalFailed(reserve);
      const forget = () => this.loop.outcomes.forget(proposalId);
      return { index, term, results: executed.results, outcome, forget, needs };
    } finally {
      this.sandboxTurn = false;
      this.gate.release();
    }
  }

  /** Runs the batch in the sandbox; nothing is applied meanwhile, and applying resumes after it. */
  private async runInSandbox(sandbox: BatchSandbox, batch: SandboxRequest, timeoutMs: number) {
    this.sandboxRunningValue = true;
    try {
      return await sandbox.run(batch, timeoutMs);
    } catch (error) {
      this.requireLeader(); // Stopped because leadership was lost: say so.
      throw error;
    } finally {
      this.sandboxRunningValue = false;
      this.loop.reportApplied(this.runtime.store.appliedIndex);
    }
  }

  /** Checks a sandbox's payload in steps; a damaged one is a bug, as in `adopt`. */
  private async checkSandboxPayload(index: LogIndex, payload: Uint8Array): Promise<void> {
    try {
      await checkPayloadInSteps(payload);
    } catch (error) {
      if (!isBatonError(error, "PAYLOAD_CORRUPT")) throw error;
      throw new Error(`the write sandbox's batch at ${index} is damaged: ${error.message}`);
    }
  }

  /**
   * Adopts a sandbox's batch. The sandbox ran it on exactly this state, so a payload that does not
   * apply here (STORE_DIVERGED, PAYLOAD_CORRUPT) is a bug, never an answer to the client.
   */
  private adopt(index: LogIndex, executed: ExecuteResult & AdoptedBatch, options: AdoptOptions) {
    try {
      return this.speculation.adopt(index, executed, options);
    } catch (error) {
      if (isBatonError(error, "STORE_DIVERGED") || isBatonError(error, "PAYLOAD_CORRUPT"))
        throw new Error(
          `the write sandbox's batch at ${index} does not apply on the leader: ${error.message}`,
        );
      throw error;
    }
  }

  /**
   * Runs a statement-less batch of history rows (`history-replication.ts`) at the next index and
   * proposes it at `majority`, in one turn, only if the gate is open now: it never waits, so it never
   * stands in a client's way for longer than its own small batch. Null when the gate is closed or
   * this node may not lead (nothing ran); the promise settles with the core's outcome.
   */
  proposeHistory(rows: readonly HistoryRow[], timeoutMs: number): Promise<ProposalResult> | null {
    const { term, lastIndex, clusterConfig } = this.loop.core.summary();
    if (!this.gateOpen() || this.damageError() !== null || !mayLead(clusterConfig, this.config.id))
      return null;
    const index = logIndex(lastIndex + 1);
    const { payload } = this.speculation.execute(index, [], { historyRows: rows });
    return this.proposer.propose(index, term, payload, "majority", timeoutMs).outcome;
  }
}
