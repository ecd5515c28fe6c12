/**
 * Proposing what the leader ran (write-path.ts): an entry's payload goes to the core at the very
 * index it ran at, in the same turn; AUTOINCREMENT reservations follow the write that needs them;
 * a writer waits for its entry's outcome within a bound.
 */
import type { NormalizedExecute } from "../api/request-validation.ts";
import type { Durability } from "../consensus/config.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { SequenceEntry } from "../store/index.ts";
import type { ExecuteStatementResult } from "../store/types.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { within } from "./bounded-wait.ts";
import type { IdGuard } from "./id-guard.ts";
import type { LeaderSpeculation } from "./leader-speculation.ts";
import type { NodeConfig } from "./node-config.ts";
import type { PeerDirectory } from "./peer-directory.ts";
import type { ProposalResult } from "./proposal-registry.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import { encodeResults } from "./write-results.ts";

export class EntryProposer {
  private readonly loop: ReplicaLoop;
  private readonly speculation: LeaderSpeculation;
  private readonly ids: IdGuard;
  private readonly peers: PeerDirectory;
  private readonly config: NodeConfig;
  private readonly runtime: NodeRuntime;

  constructor(parts: {
    loop: ReplicaLoop;
    speculation: LeaderSpeculation;
    ids: IdGuard;
    peers: PeerDirectory;
    config: NodeConfig;
    runtime: NodeRuntime;
  }) {
    this.loop = parts.loop;
    this.speculation = parts.speculation;
    this.ids = parts.ids;
    this.peers = parts.peers;
    this.config = parts.config;
    this.runtime = parts.runtime;
  }

  /** The store's request option for a batch at `index`: remember it with its response. */
  requestOption(request: NormalizedExecute, index: LogIndex, term: number) {
    const requestId = request.requestId;
    if (requestId === null) return {};
    return {
      request: {
        id: requestId,
        response: (r: readonly ExecuteStatementResult[]) =>
          JSON.stringify({ results: encodeResults(r), position: { index, term } }),
        loggedAtMs: this.runtime.clock.nowMs(),
      },
    };
  }

  /**
   * Reserves AUTOINCREMENT ids ahead (id-guard.ts): a batch without statements that raises the
   * reservations, proposed at `majority` right behind the write that needed it, in the same turn.
   */
  proposeReservation(reserve: SequenceEntry[]): void {
    const { term, lastIndex } = this.loop.core.summary();
    const index = logIndex(lastIndex + 1);
    let payload: Uint8Array;
    try {
      ({ payload } = this.speculation.execute(index, [], { reserveIds: reserve }));
    } catch (error) {
      // A full speculation window: the next batch will ask again.
      if (!(error instanceof BatonError)) throw error;
      this.ids.proposalFailed(reserve);
      return;
    }
    const { outcome } = this.propose(index, term, payload, "majority", this.config.writeTimeoutMsDefault);
    outcome.then(
      () => this.ids.committedReservation(reserve),
      () => this.ids.proposalFailed(reserve),
    );
  }

  /** Proposes a batch that ran at `index`; refused, it undoes the open batches and throws. */
  propose(
    index: LogIndex,
    term: number,
    payload: Uint8Array,
    durability: Durability | null,
    timeoutMs: number,
  ) {
    const proposalId = this.loop.outcomes.newId("w");
    const outcome = this.loop.outcomes.registerProposal(proposalId);
    // Whatever happens next (the step fails and the node stops, the core refuses), the promise is
    // settled by the registry; this handler keeps a settlement nobody awaits from being unhandled.
    outcome.catch(() => {});
    const effects = this.loop.step({
      type: "propose",
      proposalId,
      kind: EntryKind.command,
      data: payload,
      ...(durability === null ? {} : { durability }),
      timeoutTicks: Math.max(1, Math.ceil(timeoutMs / this.config.tickMs)),
    });
    const proposal = effects.proposals.find((p) => p.proposalId === proposalId);
    assert(proposal !== undefined, "the core answers every proposal");
    if (!proposal.accepted) {
      // The core refused after the batch ran (a race the gate should prevent): undo the open
      // batches; the accepted ones are in the log and will be applied from it.
      this.speculation.rollback("proposal refused");
      throw this.peers.refusal(proposal.code, proposal.leaderId);
    }
    assert(
      proposal.index === index && proposal.term === term,
      `proposal landed at ${proposal.index}, not ${index}`,
    );
    return { proposalId, outcome };
  }

  /** Waits for a proposal's outcome at most `waitMsMax`; past it the outcome is unknown (TIMEOUT). */
  awaitOutcome(
    forget: () => void,
    outcome: Promise<ProposalResult>,
    index: LogIndex,
    waitMsMax: number,
  ): Promise<ProposalResult> {
    return within(this.runtime.timers, outcome, waitMsMax, () => {
      forget();
      return new BatonError(
        ErrorCode.TIMEOUT,
        `the write at index ${index} was not confirmed within ${waitMsMax} ms (its outcome is unknown; retry with the same requestId)`,
        { index },
      );
    });
  }
}
