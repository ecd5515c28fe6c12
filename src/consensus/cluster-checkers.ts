/**
 * Safety checkers of the randomized multi-core tests (`core-cluster.ts`). Each judges what the
 * cores did from the outside (their logs, roles, effects) and never trusts a core's own view of a
 * rule it checks; each violation names its rule, so that a test can tell which checker caught an
 * injected bug:
 *
 *  - `election safety` (Raft §5.2): never two leaders in one term;
 *  - `committed prefix` (§5.4.3): every node's entries up to its commit index agree with every
 *    other node's;
 *  - `leader completeness` (§5.4): a node that becomes leader of term T holds every entry committed
 *    in a term before T — with the previous one, what "committed entries are never lost" means,
 *    across failovers, promotions, relays and priority transfers. (A leader of an older term may
 *    still take office after a newer leader committed: it holds no promise about those entries and
 *    is deposed as soon as it meets the newer term.) An entry's commit term is the lowest current
 *    term of any node seen holding it committed, which is the committing leader's term, since the
 *    checker looks after every step;
 *  - `removed leader` (dissertation §4.2.2): a leader is a voter of its configuration unless that
 *    configuration is uncommitted;
 *  - `read linearizability` (thesis §6.4): a read is never ready at an index below an entry that was
 *    committed anywhere before the read was asked;
 *  - `operator rule`: where failover needs an operator (mode manual, approve with policy
 *    stay-leaderless, or paused) no node takes office without an operator command: a promotion that
 *    started, a `campaign` command, or a `timeoutNow` from a leader an operator asked to transfer (or
 *    from a witness or never-promote leader handing over, whose own office needed a command). A
 *    leader change is judged when both the committed configuration and the new leader's own say so
 *    (a node may follow a newer, uncommitted setting in its log: dissertation §4.1);
 *  - `witness rule`: a witness never serves a client: no client write accepted, no read ready.
 */
import type { NodeId } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import {
  type ClusterConfig,
  decodeClusterConfig,
  failoverSettingsOf,
  isVoter,
  memberAttributesOf,
} from "./cluster-config.ts";
import type { Effects } from "./effects.ts";
import type { Message } from "./messages.ts";
import type { RaftCore } from "./raft-core.ts";

export class ClusterViolation extends Error {
  override name = "ClusterViolation";
}

function violation(rule: string, message: string): never {
  throw new ClusterViolation(`${rule}: ${message}`);
}

function entryKey(entry: LogEntry): string {
  const hex = [...entry.data].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${entry.term}:${entry.kind}:${hex}`;
}

/** Whether a configuration leaves replacing a lost leader to an operator. */
export function failoverNeedsOperator(config: ClusterConfig): boolean {
  const { mode, paused, approvePolicy } = failoverSettingsOf(config);
  if (paused) return true;
  return mode === "manual" || (mode === "approve" && approvePolicy === "stay-leaderless");
}

export class ClusterCheckers {
  /** Entry (term, kind and data) committed at each index, as first seen committed anywhere. */
  readonly committed = new Map<number, string>();
  /** The term each was committed in (see the module comment). */
  readonly commitTerms = new Map<number, number>();
  /** The configuration entries among them. */
  readonly committedConfigs = new Map<number, ClusterConfig>();
  readonly leaders = new Map<number, NodeId>();
  /** Per read: the highest index committed anywhere when it was asked. */
  readonly readFloors = new Map<string, number>();
  /** Ids of client writes (the witness rule ignores configuration changes). */
  readonly clientProposals = new Set<string>();
  /** Nodes an operator command entitles to take office (see the module comment). */
  readonly authorized = new Set<NodeId>();
  readonly authorizedMessages = new WeakSet<Message>();
  /** `leader@term` an operator asked to transfer. */
  readonly transferRequests = new Set<string>();
  /** Leader changes judged by the operator rule (the histories must not leave it vacuous). */
  operatorRuleChecks = 0;
  readonly bootstrapConfig: ClusterConfig;

  constructor(bootstrapConfig: ClusterConfig) {
    this.bootstrapConfig = bootstrapConfig;
  }

  /** The configuration of the highest committed configuration entry. */
  committedConfig(): ClusterConfig {
    const index = Math.max(0, ...this.committedConfigs.keys());
    return this.committedConfigs.get(index) ?? this.bootstrapConfig;
  }

  /** After every action: election safety, the removed-leader rule, committed-prefix agreement. */
  checkCore(id: NodeId, core: RaftCore): void {
    const status = core.status();
    if (status.role === "leader") {
      const known = this.leaders.get(status.term);
      if (known !== undefined && known !== id)
        violation("election safety", `two leaders in term ${status.term}: ${known} and ${id}`);
      this.leaders.set(status.term, id);
      if (!isVoter(status.clusterConfig, id) && status.clusterConfigIndex <= status.commitIndex)
        violation("removed leader", `leader ${id} outside its committed configuration`);
    }
    for (let index = status.snapshotIndex + 1; index <= status.commitIndex; index++) {
      const entry = core.entryAt(index);
      if (entry === undefined) violation("committed prefix", `node ${id} lacks its committed entry ${index}`);
      const key = entryKey(entry);
      const known = this.committed.get(index);
      this.commitTerms.set(index, Math.min(this.commitTerms.get(index) ?? status.term, status.term));
      if (known === undefined) {
        this.committed.set(index, key);
        if (entry.kind === EntryKind.config)
          this.committedConfigs.set(index, decodeClusterConfig(entry.data));
      } else if (key !== known) {
        violation("committed prefix", `node ${id} disagrees on committed entry ${index}`);
      }
    }
  }

  /** A node just took office: leader completeness and the operator rule. */
  checkNewLeader(id: NodeId, core: RaftCore): void {
    const { snapshotIndex, lastIndex, term, clusterConfig } = core.status();
    for (const [index, key] of this.committed) {
      if ((this.commitTerms.get(index) ?? 0) >= term) continue;
      if (index > lastIndex)
        violation("leader completeness", `new leader ${id} lacks committed entry ${index}`);
      const entry = core.entryAt(index);
      if (index > snapshotIndex && (entry === undefined || entryKey(entry) !== key))
        violation(
          "leader completeness",
          `new leader ${id} holds a different entry at committed index ${index}`,
        );
    }
    if (!failoverNeedsOperator(this.committedConfig()) || !failoverNeedsOperator(clusterConfig)) return;
    this.operatorRuleChecks++;
    if (!this.authorized.has(id))
      violation("operator rule", `${id} took office in term ${term} without an operator command`);
  }

  /** Every Effects: the witness rule and read linearizability. */
  checkEffects(id: NodeId, core: RaftCore, effects: Effects): void {
    if (memberAttributesOf(core.summary().clusterConfig, id).witness) {
      const write = effects.proposals.find((p) => p.accepted && this.clientProposals.has(p.proposalId));
      if (write !== undefined)
        violation("witness rule", `witness ${id} accepted client write ${write.proposalId}`);
      const read = effects.readReady[0];
      if (read !== undefined) violation("witness rule", `witness ${id} served read ${read.requestId}`);
    }
    for (const ready of effects.readReady) {
      const floor = this.readFloors.get(ready.requestId);
      if (floor === undefined) violation("read linearizability", `unknown read ${ready.requestId}`);
      if (ready.index < floor)
        violation(
          "read linearizability",
          `read ${ready.requestId} at ${ready.index} misses entry ${floor} committed before it`,
        );
      this.readFloors.delete(ready.requestId);
    }
    for (const rejected of effects.readRejected) this.readFloors.delete(rejected.requestId);
  }
}
