/**
 * The node's public interface to clients (`NodeService`): writes, reads at a chosen consistency,
 * status and readiness, on top of `RaftNode`.
 *
 * Writes (leader only): wait at the write gate until every log entry is applied or is one of this
 * leader's speculative batches (true from the moment the term's no-op is applied), answer a
 * retried `requestId` from the replicated request log, otherwise execute the batch speculatively
 * at the next log index, propose its payload, and answer when its durability level is reached.
 *
 * Reads: `linearizable` confirms leadership with a heartbeat round (read index) and waits until
 * that index is applied; `leader` requires leadership and waits for the known commit index;
 * `any` serves local state, refusing with STALE_READ when `maxLagMs` is exceeded. `minIndex`
 * waits (bounded by `timeoutMs`) until that index is applied.
 */
import type { ExecuteResponse, QueryResponse, StatusResponse } from "../api/api-types.ts";
import type { ProposalRejectionCode } from "../consensus/index.ts";
import type { NodeService, Readiness } from "./node-service.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { ExecuteStatementResult } from "../store/types.ts";
import { type LogIndex, logIndex, type NodeId } from "../types/ids.ts";
import type { RaftNode } from "./raft-node.ts";

const defaultWriteTimeoutMs = 10_000;
const defaultReadTimeoutMs = 5_000;
const gateWaitersMax = 10_000;
/** Extra time past a write's own timeout before the service stops waiting for the core's answer. */
const outcomeGraceMs = 1_000;

type GateWaiter = { resolve: () => void; reject: (error: Error) => void; timer: NodeJS.Timeout };

function jsonSafe(value: unknown): unknown {
  if (typeof value === "bigint")
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  if (value instanceof Uint8Array) return { base64: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(jsonSafe);
  return value;
}

export function encodeResults(results: readonly ExecuteStatementResult[]): ExecuteResponse["results"] {
  return results.map((r) => ({
    rowsAffected: r.rowsAffected,
    lastInsertRowid: jsonSafe(r.lastInsertRowid) as number | string,
    ...(r.columns === undefined
      ? {}
      : { columns: r.columns, rows: (r.rows ?? []).map((row) => row.map(jsonSafe)) as never }),
  }));
}

export class DatabaseService implements NodeService {
  private readonly node: RaftNode;
  private readonly gate = new Set<GateWaiter>();
  private stopping = false;

  constructor(node: RaftNode) {
    this.node = node;
    node.onStateChange(() => this.checkGate());
  }

  /** Refuses new work; pending gate waiters fail with SHUTTING_DOWN. */
  beginStop(): void {
    this.stopping = true;
    for (const waiter of this.gate) {
      clearTimeout(waiter.timer);
      waiter.reject(new BatonError(ErrorCode.SHUTTING_DOWN, "the node is shutting down"));
    }
    this.gate.clear();
  }

  async execute(request: NormalizedExecute): Promise<ExecuteResponse> {
    const timeoutMs = request.timeoutMs ?? defaultWriteTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    this.requireLeader();
    // Resuming after the await is a new turn of the event loop: check the gate again, so the batch
    // runs only in the state the gate promised (every log entry applied or speculative).
    while (!this.gateOpen()) {
      this.requireLeader();
      await this.waitForGate(Math.max(1, deadline - Date.now()));
    }
    if (request.requestId !== null) {
      const remembered = this.node.store.lookupRequest(request.requestId);
      if (remembered !== null)
        return this.answerRemembered(
          remembered.index,
          remembered.response,
          Math.max(1, deadline - Date.now()),
        );
    }
    const status = this.node.core.status();
    const index = logIndex(status.lastIndex + 1);
    const term = status.term;
    const { results, payload } = this.node.store.execute(
      index,
      request.statements,
      request.requestId === null
        ? {}
        : {
            request: {
              id: request.requestId,
              response: (r) => JSON.stringify({ results: encodeResults(r), position: { index, term } }),
            },
          },
    );
    this.node.noteSpeculation();
    const proposalId = this.node.proposals.newId("w");
    const { effects, result } = this.node.propose(
      proposalId,
      payload,
      request.durability,
      Math.max(1, deadline - Date.now()),
    );
    const outcome = effects.proposals.find((p) => p.proposalId === proposalId);
    assert(outcome !== undefined, "the core answers every proposal");
    if (!outcome.accepted) {
      // The core refused after the batch ran (a race the gate should prevent): undo every
      // speculative batch; the accepted ones are in the log and will be applied from it. The
      // registry already rejected this proposal's promise; nobody will await it.
      result.catch(() => {});
      this.node.store.rollbackSpeculative();
      throw this.rejection(outcome.code, outcome.leaderId);
    }
    assert(
      outcome.index === index && outcome.term === term,
      `proposal landed at ${outcome.index}, expected ${index}`,
    );
    // The core answers every accepted proposal by its own timeout; this bound is a second line so
    // that a request can never hang, and says the outcome is unknown (retry with the requestId).
    const position = await withTimeout(
      result,
      Math.max(1, deadline - Date.now()) + outcomeGraceMs,
      () => this.node.proposals.forget(proposalId),
      `the write at index ${index} was not confirmed (its outcome is unknown; retry with the same requestId)`,
    );
    return { results: encodeResults(results), position: { index: position.index, term: position.term } };
  }

  async query(request: NormalizedQuery): Promise<QueryResponse> {
    const timeoutMs = request.timeoutMs ?? defaultReadTimeoutMs;
    if (request.consistency === "linearizable") {
      this.requireLeader();
      const readId = this.node.proposals.newId("r");
      const ready = this.node.proposals.registerRead(readId);
      try {
        this.node.step({ type: "readIndex", requestId: readId });
      } catch (error) {
        this.node.proposals.forget(readId);
        throw error;
      }
      const readIndex = await withTimeout(
        ready,
        timeoutMs,
        () => this.node.proposals.forget(readId),
        "the read index was not confirmed",
      );
      await this.node.applied.wait(readIndex, timeoutMs);
    } else if (request.consistency === "leader") {
      this.requireLeader();
      await this.node.applied.wait(this.node.core.status().commitIndex, timeoutMs);
    } else if (request.maxLagMs !== null) {
      this.checkLag(request.maxLagMs);
    }
    if (request.minIndex !== null) await this.node.applied.wait(request.minIndex, timeoutMs);
    const result = this.node.store.query(request.statements);
    return {
      results: result.results.map((r) => ({
        columns: r.columns,
        rows: r.rows.map((row) => row.map(jsonSafe)) as never,
      })),
      position: { index: result.appliedIndex },
      node: this.node.id,
    };
  }

  status(): StatusResponse {
    const core = this.node.core.status();
    const leaderId = core.leaderId;
    const members = this.node.options.voters.map((id) => {
      const progress = core.members.find((m) => m.id === id);
      const base = { id, http: this.httpOf(id) ?? undefined };
      if (id === this.node.id)
        return {
          ...base,
          self: true,
          matchIndex: core.lastIndex,
          appliedIndex: this.node.store.appliedIndex,
        };
      if (progress === undefined) return base;
      return {
        ...base,
        state: progress.state,
        matchIndex: progress.matchIndex,
        appliedIndex: progress.appliedIndex,
        lagEntries: Math.max(0, core.lastIndex - progress.matchIndex),
        lastContactMs: progress.lastHeardTicksAgo * this.node.tickMs,
      };
    });
    return {
      id: this.node.id,
      role: core.role === "leader" ? "leader" : core.role === "follower" ? "follower" : "candidate",
      term: core.term,
      leader: leaderId === null ? null : { id: leaderId, http: this.httpOf(leaderId) ?? "" },
      commitIndex: core.commitIndex,
      appliedIndex: this.node.store.appliedIndex,
      lastIndex: core.lastIndex,
      members,
    };
  }

  contentHash(): { appliedIndex: number; hash: string } {
    return { appliedIndex: this.node.store.appliedIndex, hash: this.node.store.contentHash() };
  }

  readiness(): Readiness {
    if (this.stopping) return { ready: false, reason: "shutting down" };
    const core = this.node.core.status();
    if (core.leaderId === null) return { ready: false, reason: "no leader known" };
    return { ready: true, reason: null };
  }

  private httpOf(id: NodeId): string | null {
    if (id === this.node.id) return this.node.options.httpAddress;
    return this.node.peerHttp.get(id) ?? null;
  }

  private requireLeader(): void {
    if (this.stopping) throw new BatonError(ErrorCode.SHUTTING_DOWN, "the node is shutting down");
    const core = this.node.core.status();
    if (core.role === "leader") return;
    if (core.leaderId === null)
      throw new BatonError(ErrorCode.NO_LEADER, "no leader is known; an election may be in progress");
    const http = this.httpOf(core.leaderId);
    throw new BatonError(ErrorCode.NOT_LEADER, `this node is not the leader; ${core.leaderId} is`, {
      leader: { id: core.leaderId, http: http ?? "" },
    });
  }

  private rejection(code: ProposalRejectionCode, leaderId: NodeId | null): BatonError {
    if (code === "NOT_LEADER" && leaderId !== null) {
      return new BatonError(ErrorCode.NOT_LEADER, `this node is not the leader; ${leaderId} is`, {
        leader: { id: leaderId, http: this.httpOf(leaderId) ?? "" },
      });
    }
    return new BatonError(ErrorCode[code], `the write was not accepted: ${code}`);
  }

  private checkLag(maxLagMs: number): void {
    if (this.node.core.status().role === "leader") return;
    const lagMs =
      this.node.caughtUpAtMs === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.node.caughtUpAtMs;
    if (lagMs > maxLagMs) {
      throw new BatonError(
        ErrorCode.STALE_READ,
        `this node lags the leader by ${Number.isFinite(lagMs) ? `${lagMs} ms` : "an unknown time"}; maxLagMs is ${maxLagMs}`,
        {
          lagMs: Number.isFinite(lagMs) ? lagMs : null,
          maxLagMs,
        },
      );
    }
  }

  /** A retried write: answer the original response once the original write is applied here. */
  private async answerRemembered(
    index: LogIndex,
    response: string,
    timeoutMs: number,
  ): Promise<ExecuteResponse> {
    await this.node.applied.wait(index, timeoutMs);
    return JSON.parse(response) as ExecuteResponse;
  }

  /** Open when this node leads, every log entry is applied or speculative, and no drain is due. */
  private gateOpen(): boolean {
    const { store, core } = this.node;
    const status = core.status();
    if (status.role !== "leader" || status.transferTarget !== null) return false;
    if (store.replayRequiredThrough !== null) return false;
    if (store.appliedIndex + store.speculativeCount !== status.lastIndex) return false;
    return !this.node.drainWanted();
  }

  private waitForGate(timeoutMs: number): Promise<void> {
    if (this.gateOpen()) return Promise.resolve();
    if (this.gate.size >= gateWaitersMax)
      return Promise.reject(new BatonError(ErrorCode.OVERLOADED, "too many writes waiting"));
    return new Promise((resolve, reject) => {
      const waiter: GateWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.gate.delete(waiter);
          reject(
            new BatonError(ErrorCode.TIMEOUT, `the leader was not ready for writes within ${timeoutMs} ms`),
          );
        }, timeoutMs),
      };
      this.gate.add(waiter);
    });
  }

  private checkGate(): void {
    if (this.gate.size === 0) return;
    const role = this.node.core.status().role;
    if (role !== "leader") {
      for (const waiter of this.gate) {
        clearTimeout(waiter.timer);
        try {
          this.requireLeader();
          waiter.reject(new BatonError(ErrorCode.NO_LEADER, "leadership changed"));
        } catch (error) {
          waiter.reject(error as Error);
        }
      }
      this.gate.clear();
      return;
    }
    // Waiters run one at a time: each execute changes the state the next one's gate check reads.
    for (const waiter of this.gate) {
      if (!this.gateOpen()) return;
      clearTimeout(waiter.timer);
      this.gate.delete(waiter);
      waiter.resolve();
    }
  }
}

async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  onTimeout: () => void,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new BatonError(ErrorCode.TIMEOUT, `${what} within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
