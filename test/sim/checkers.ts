/**
 * Safety checkers, run continuously while the simulation runs (TigerBeetle's VOPR keeps them apart
 * from the harness the same way).
 *
 *  - Election safety (Raft §5.2): at most one leader per term, across configuration changes; a
 *    leader is a voter of its own configuration (a learner or a removed node never leads).
 *  - Leader append-only (§5.3): a leader never truncates its log while it leads.
 *  - Log matching (§5.3): the same (index, term) always holds the same entry, on every node, and two
 *    logs agreeing on an entry agree on everything before it.
 *  - Committed prefixes agree, snapshot installs included: a snapshot installed at (i, t) has the
 *    committed entry's term at i, and the store it installs holds the content every replica had at
 *    applied index i. Commit index monotonic per node incarnation.
 *  - Commit quorums (`quorum-checker.ts`): an entry a leader commits is durable on a majority of
 *    the voters of the configuration it uses; a write it acknowledges at `all`, on every voter.
 *  - Leader completeness (§5.4): every committed entry and every write acknowledged at `majority` or
 *    `all` is in the log of every later leader.
 *  - State machine safety (§5.4.3), at the SQL level: replicas at the same applied index have the
 *    same content hash (sampled during the run, and on every node at the end).
 * The SQL-level checks of what clients saw (acknowledged rows kept, reads linearizable, retries
 * applied once) are in `list-append-checker.ts`, run on the workload's history at the end.
 */
import { createHash } from "node:crypto";
import type { Effects } from "../../src/consensus/effects.ts";
import type { LogEntry } from "../../src/types/log-entry.ts";
import { EntryKind } from "../../src/types/log-entry.ts";
import { type DurableImage, DurableQuorumChecker } from "./quorum-checker.ts";
import type { SimNodeHost } from "./sim-node.ts";

export class SimViolation extends Error {
  override name = "SimViolation";
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

/** An entry's identity: its term and a digest of its payload (the store's ops for a client write). */
function entryKey(entry: LogEntry): string {
  const payload =
    entry.kind === EntryKind.command
      ? createHash("sha1").update(entry.data).digest("hex").slice(0, 16)
      : `k${entry.kind}`;
  return `${entry.term}:${payload}`;
}

export class SafetyChecker {
  private readonly leadersByTerm = new Map<number, string>();
  private readonly entryByPosition = new Map<string, string>();
  /** Every committed entry: its key and the (lowest) term in which a node saw it committed. */
  private readonly committed = new Map<number, { key: string; term: number }>();
  /** Writes acknowledged at `majority` or `all` (keyed by node, incarnation and proposal), with the acknowledging term. */
  private readonly acknowledgedWrites = new Map<
    string,
    { index: number; term: number; acknowledgedInTerm: number }
  >();
  /** Content hash of the replicated state at each applied index, as the first node to reach it saw it. */
  private readonly hashByAppliedIndex = new Map<number, { node: string; hash: string }>();
  private readonly commitByIncarnation = new Map<string, number>();
  private readonly leaderLastIndex = new Map<string, number>();
  /** The term in which each node incarnation led, as of its last step (absent when not leading). */
  private readonly leadingTerm = new Map<string, number>();
  readonly quorum: DurableQuorumChecker;
  /** Configuration entries committed (each counted once, at its index). */
  configEntriesCommitted = 0;

  /** `imageOf` gives a node's durable image (its disk and snapshot files), dead or alive. */
  constructor(imageOf: (id: string) => DurableImage | null) {
    this.quorum = new DurableQuorumChecker(imageOf);
  }

  /** Called with every Effects, right after the step that produced it. */
  onEffects(node: SimNodeHost, effects: Effects): void {
    const core = node.core;
    if (core === null) return;
    const status = core.status();
    const incarnation = `${node.id}#${node.incarnation}`;
    // A leader's own count: it leads now, or led in this very term before the step (a leader that
    // a committed change made a non-voter steps down in the step that commits it).
    const counted = status.role === "leader" || this.leadingTerm.get(incarnation) === status.term;
    if (status.role === "leader") this.leadingTerm.set(incarnation, status.term);
    else this.leadingTerm.delete(incarnation);
    if (effects.snapshotRestored !== undefined) this.onSnapshotRestored(node, effects.snapshotRestored);
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
    if (effects.commitIndex !== undefined) {
      this.onCommit(node, effects.commitIndex, status.term);
      const term = core.termAt(effects.commitIndex);
      if (counted && term !== undefined && effects.commitIndex > status.snapshotIndex)
        this.quorum.checkCommit(node.id, status.clusterConfig.voters, effects.commitIndex, term);
    }
    for (const ack of effects.acknowledged) {
      if (ack.durability !== "majority" && ack.durability !== "all") continue;
      if (ack.durability === "all" && counted)
        this.quorum.checkAllAcknowledged(node.id, status.clusterConfig.voters, ack.index, ack.term);
      const writeId = `${node.id}#${node.incarnation}/${ack.proposalId}`;
      this.acknowledgedWrites.set(writeId, {
        index: ack.index,
        term: ack.term,
        acknowledgedInTerm: status.term,
      });
    }
  }

  /** Leader append-only (Raft §5.3): within one term of leadership, the leader's last index never falls. */
  private checkLeaderGrows(node: SimNodeHost, term: number, lastIndex: number): void {
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

  private checkPosition(node: SimNodeHost, entry: LogEntry): void {
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

  private onNewLeader(node: SimNodeHost): void {
    const core = node.core;
    if (core === null) return;
    const { term, snapshotIndex, clusterConfig } = core.status();
    const previous = this.leadersByTerm.get(term);
    if (previous !== undefined && previous !== node.id) {
      throw new SimViolation("election-safety", `two leaders in term ${term}: ${previous} and ${node.id}`);
    }
    if (!clusterConfig.voters.includes(node.id)) {
      const role = clusterConfig.learners.includes(node.id) ? "a learner" : "not a member";
      throw new SimViolation(
        "election-safety",
        `${node.id} became leader of term ${term} while ${role} of its configuration [${clusterConfig.voters.join(",")}]`,
      );
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

  private onCommit(node: SimNodeHost, commitIndex: number, committingTerm: number): void {
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
      if (known === undefined && entry.kind === EntryKind.config) this.configEntriesCommitted++;
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

  /** Nodes whose database a scenario damaged on purpose: not compared until it heals them. */
  readonly damagedOnPurpose = new Set<string>();

  /**
   * A snapshot was installed at (index, term): the store holds the leader's state through it. The
   * position must be the committed entry's (committed prefixes agree across installs), and the
   * content the content every replica had at that applied index.
   */
  private onSnapshotRestored(node: SimNodeHost, restored: { index: number; term: number }): void {
    const known = this.committed.get(restored.index);
    if (known !== undefined && !known.key.startsWith(`${restored.term}:`))
      throw new SimViolation(
        "committed-prefix",
        `node ${node.id} installed a snapshot at ${restored.index}/${restored.term}, where ${known.key} was committed`,
      );
    const applied = node.store?.appliedIndex;
    if (applied !== restored.index)
      throw new SimViolation(
        "snapshot-install",
        `node ${node.id} installed a snapshot at ${restored.index} but its store is at ${applied}`,
      );
    this.checkContent(node);
  }

  /**
   * State machine safety at the SQL level: two replicas at the same applied index hold the same
   * content (the store's content hash covers every replicated table, AUTOINCREMENT counters and
   * the request log).
   */
  checkContent(node: SimNodeHost): void {
    const store = node.store;
    // A witness holds no data (it applies every entry as an empty one): nothing to compare.
    if (store === null || this.damagedOnPurpose.has(node.id) || node.node?.isWitness() === true) return;
    const index = store.appliedIndex;
    const hash = store.contentHash();
    const known = this.hashByAppliedIndex.get(index);
    if (known === undefined) this.hashByAppliedIndex.set(index, { node: node.id, hash });
    else if (known.hash !== hash)
      throw new SimViolation(
        "state-machine-safety",
        `node ${node.id} at applied index ${index} holds content ${hash.slice(0, 12)}, ${known.node} held ${known.hash.slice(0, 12)}`,
      );
  }

  /** Log matching across every pair of live nodes (Raft §5.3). O(nodes² × log length). */
  checkLogMatching(nodes: readonly SimNodeHost[]): void {
    const live = nodes.filter((node) => node.core !== null);
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++)
        this.checkPair(live[a] as SimNodeHost, live[b] as SimNodeHost);
    }
  }

  private checkPair(a: SimNodeHost, b: SimNodeHost): void {
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
}
