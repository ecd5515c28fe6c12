/**
 * Safety checkers, run continuously while the simulation runs (TigerBeetle's VOPR keeps them apart
 * from the harness the same way).
 *
 *  - Election safety (Raft §5.2): at most one leader per term.
 *  - Leader append-only (§5.3): a leader never truncates its log while it leads.
 *  - Log matching (§5.3): the same (index, term) always holds the same entry, on every node, and two
 *    logs agreeing on an entry agree on everything before it.
 *  - Committed prefixes agree; commit index monotonic per node incarnation.
 *  - Leader completeness (§5.4): every committed entry and every write acknowledged at `majority` or
 *    `all` is in the log of every later leader.
 *  - State machine safety (§5.4.3): every node applies the same entry at the same index.
 *  - At the end: every write acknowledged at `majority` or `all` is applied everywhere. Writes
 *    acknowledged at `local` or `one` may be lost across failovers: those are counted, not failed.
 */
import type { Durability } from "../../src/consensus/config.ts";
import type { Effects } from "../../src/consensus/effects.ts";
import type { LogEntry } from "../../src/types/log-entry.ts";
import { EntryKind } from "../../src/types/log-entry.ts";
import type { SimNode } from "./sim-node.ts";
import { decodeWriteId } from "./state-machine.ts";
import { type Workload, writeIdOf } from "./workload.ts";

export class SimViolation extends Error {
  override name = "SimViolation";
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

function entryKey(entry: LogEntry): string {
  const payload = entry.kind === EntryKind.command ? `w${decodeWriteId(entry.data)}` : `k${entry.kind}`;
  return `${entry.term}:${payload}`;
}

export type LossCounts = Record<Durability, { acknowledged: number; lost: number }>;

export class SafetyChecker {
  private readonly leadersByTerm = new Map<number, string>();
  private readonly entryByPosition = new Map<string, string>();
  /** Every committed entry: its key and the (lowest) term in which a node saw it committed. */
  private readonly committed = new Map<number, { key: string; term: number }>();
  /** Writes acknowledged at `majority` or `all`, with the term of the node that acknowledged them. */
  private readonly acknowledgedWrites = new Map<
    number,
    { index: number; term: number; acknowledgedInTerm: number }
  >();
  private readonly applied = new Map<number, string>();
  private readonly commitByIncarnation = new Map<string, number>();
  private readonly leaderLastIndex = new Map<string, number>();
  private readonly workload: Workload;

  constructor(workload: Workload) {
    this.workload = workload;
  }

  /** Called with every Effects, right after the step that produced it. */
  onEffects(node: SimNode, effects: Effects): void {
    const core = node.core;
    if (core === null) return;
    const status = core.status();
    for (const entry of effects.entries) this.checkPosition(node, entry);
    if (
      status.role === "leader" &&
      (effects.truncateAfter !== undefined || effects.snapshotRestored !== undefined)
    ) {
      throw new SimViolation(
        "leader-append-only",
        `leader ${node.id} rewrote its log in term ${status.term}`,
      );
    }
    if (status.role === "leader") this.checkLeaderGrows(node, status.term, status.lastIndex);
    if (effects.roleChange?.role === "leader") this.onNewLeader(node);
    if (effects.commitIndex !== undefined) this.onCommit(node, effects.commitIndex, status.term);
    for (const ack of effects.acknowledged) {
      if (ack.durability !== "majority" && ack.durability !== "all") continue;
      const writeId = writeIdOf(ack.proposalId);
      this.acknowledgedWrites.set(writeId, {
        index: ack.index,
        term: ack.term,
        acknowledgedInTerm: status.term,
      });
    }
  }

  /** Leader append-only (Raft §5.3): within one term of leadership, the leader's last index never falls. */
  private checkLeaderGrows(node: SimNode, term: number, lastIndex: number): void {
    const key = `${node.id}#${node.incarnation}@${term}`;
    const previous = this.leaderLastIndex.get(key) ?? 0;
    if (lastIndex < previous) {
      throw new SimViolation(
        "leader-append-only",
        `leader ${node.id} of term ${term} shrank its log ${previous} -> ${lastIndex}`,
      );
    }
    this.leaderLastIndex.set(key, lastIndex);
  }

  private checkPosition(node: SimNode, entry: LogEntry): void {
    const position = `${entry.index}/${entry.term}`;
    const key = entryKey(entry);
    const known = this.entryByPosition.get(position);
    if (known === undefined) this.entryByPosition.set(position, key);
    else if (known !== key)
      throw new SimViolation(
        "log-matching",
        `node ${node.id} holds ${key} at ${position}, elsewhere ${known}`,
      );
  }

  private onNewLeader(node: SimNode): void {
    const core = node.core;
    if (core === null) return;
    const { term, snapshotIndex } = core.status();
    const previous = this.leadersByTerm.get(term);
    if (previous !== undefined && previous !== node.id) {
      throw new SimViolation("election-safety", `two leaders in term ${term}: ${previous} and ${node.id}`);
    }
    this.leadersByTerm.set(term, node.id);
    // Raft §5.4: an entry committed in term T is in the log of every leader of a term above T. (A
    // leader of an older term may still be declared later in real time, by delayed votes.)
    for (const [index, { key, term: committedInTerm }] of this.committed) {
      if (index <= snapshotIndex || committedInTerm >= term) continue;
      const entry = core.entryAt(index);
      if (entry === undefined || entryKey(entry) !== key) {
        throw new SimViolation(
          "leader-completeness",
          `leader ${node.id} of term ${term} lacks ${index} (${key}) committed in term ${committedInTerm}`,
        );
      }
    }
    for (const [writeId, write] of this.acknowledgedWrites) {
      if (write.index <= snapshotIndex || write.acknowledgedInTerm >= term) continue;
      if (core.termAt(write.index) !== write.term) {
        throw new SimViolation(
          "acknowledged-write-lost",
          `leader ${node.id} of term ${term} lacks write ${writeId} (${write.index}/${write.term}) acknowledged in term ${write.acknowledgedInTerm}`,
        );
      }
    }
  }

  private onCommit(node: SimNode, commitIndex: number, committingTerm: number): void {
    const core = node.core;
    if (core === null) return;
    const incarnation = `${node.id}#${node.incarnation}`;
    const previous = this.commitByIncarnation.get(incarnation) ?? core.status().appliedIndex;
    if (commitIndex < previous)
      throw new SimViolation("commit-monotonic", `node ${node.id} commit ${previous} -> ${commitIndex}`);
    this.commitByIncarnation.set(incarnation, commitIndex);
    for (let index = previous + 1; index <= commitIndex; index++) {
      const entry = core.entryAt(index);
      if (entry === undefined) continue;
      const key = entryKey(entry);
      const known = this.committed.get(index);
      if (known === undefined || known.key === key) {
        this.committed.set(index, { key, term: Math.min(known?.term ?? committingTerm, committingTerm) });
        continue;
      }
      throw new SimViolation(
        "committed-prefix",
        `node ${node.id} committed ${key} at ${index}, elsewhere ${known.key}`,
      );
    }
  }

  /** Called for every entry a state machine applies. */
  onApplied(node: SimNode, entry: LogEntry): void {
    const key = entryKey(entry);
    const known = this.applied.get(entry.index);
    if (known === undefined) this.applied.set(entry.index, key);
    else if (known !== key)
      throw new SimViolation(
        "state-machine-safety",
        `node ${node.id} applied ${key} at ${entry.index}, elsewhere ${known}`,
      );
    const committed = this.committed.get(entry.index)?.key;
    if (committed !== undefined && committed !== key) {
      throw new SimViolation(
        "state-machine-safety",
        `node ${node.id} applied ${key} at ${entry.index} but ${committed} was committed`,
      );
    }
  }

  /** Log matching across every pair of live nodes (Raft §5.3). O(nodes² × log length). */
  checkLogMatching(nodes: readonly SimNode[]): void {
    const live = nodes.filter((node) => node.core !== null);
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) this.checkPair(live[a] as SimNode, live[b] as SimNode);
    }
  }

  private checkPair(a: SimNode, b: SimNode): void {
    const coreA = a.core;
    const coreB = b.core;
    if (coreA === null || coreB === null) return;
    const statusA = coreA.status();
    const statusB = coreB.status();
    const from = Math.max(statusA.snapshotIndex, statusB.snapshotIndex) + 1;
    const through = Math.min(statusA.lastIndex, statusB.lastIndex);
    let diverged = false;
    for (let index = from; index <= through; index++) {
      const entryA = coreA.entryAt(index);
      const entryB = coreB.entryAt(index);
      if (entryA === undefined || entryB === undefined) continue;
      if (entryA.term !== entryB.term) {
        diverged = true;
        continue;
      }
      if (diverged || entryKey(entryA) !== entryKey(entryB)) {
        throw new SimViolation(
          "log-matching",
          `nodes ${a.id} and ${b.id} agree on ${index}/${entryA.term} but not before it`,
        );
      }
    }
  }

  /**
   * After the liveness phase converged: every node applied the same sequence, and no write
   * acknowledged at `majority` or `all` is missing. Returns the losses of `local` and `one` writes.
   */
  checkFinal(nodes: readonly SimNode[]): LossCounts {
    const reference = nodes[0]?.stateMachine;
    if (reference === undefined) throw new SimViolation("final", "no nodes");
    for (const node of nodes) {
      const sequence = node.stateMachine.sequence;
      if (
        sequence.length !== reference.sequence.length ||
        sequence.some((id, i) => reference.sequence[i] !== id)
      ) {
        throw new SimViolation(
          "state-machine-safety",
          `node ${node.id} applied a different sequence than ${nodes[0]?.id}`,
        );
      }
    }
    const counts: LossCounts = {
      local: { acknowledged: 0, lost: 0 },
      one: { acknowledged: 0, lost: 0 },
      majority: { acknowledged: 0, lost: 0 },
      all: { acknowledged: 0, lost: 0 },
    };
    for (const write of this.workload.acknowledged()) {
      const count = counts[write.durability];
      count.acknowledged++;
      if (reference.contains(write.writeId)) continue;
      count.lost++;
      if (write.durability === "majority" || write.durability === "all") {
        throw new SimViolation(
          "acknowledged-write-lost",
          `${write.durability} write ${write.writeId} (${write.index}/${write.term}) is not applied`,
        );
      }
    }
    return counts;
  }
}
