/**
 * Consistency checks: the voters hash their state machines at one applied index, and each node
 * judges its own database by what a majority of the voters hold.
 *
 * Why: SQLite keeps no checksum of row content, so a damaged row passes `PRAGMA integrity_check` and
 * would be served (and, on a leader, read by writes) as if it were good. Replicas at the same applied
 * index hold the same content, so comparing content hashes at one index shows which copies differ,
 * and a majority of equal hashes shows which copy is intact.
 *
 * Protocol (messages in `peer-envelope.ts`):
 *  1. The leader picks the index when a check is due: `consistencyCheckIntervalMs` after its last
 *     one, at the start of its term, when a voter (re)connects, and when a member asks
 *     (`checkRequest`: it restarted with data it has not verified yet, `storage-heal.ts`), but never
 *     sooner after the last than `checkSpacingMs` or twice the time its own last hash took. At a
 *     moment when its state machine holds every entry of its log and no speculative batch is open,
 *     I = its applied index. That state is committed, so every replica passes through the same state
 *     at I. One check at a time: it ends when the leader has judged itself, after
 *     `consistencyCheckTimeoutMs`, or, once that spacing has passed, when a member asks again (a
 *     message of the check was lost, or the member could not take part).
 *  2. It sends `checkStart(I)` to the other members and hashes its own state at I.
 *  3. A member behind I has its applier stop at I (`CommittedApplier`), begins a hash job there on a
 *     read transaction of its own (`ContentHashJob`), and applies on while the job hashes
 *     `consistencyCheckRowsPerStep` rows per tick. A member already past I, or that a snapshot takes
 *     past it, takes no part.
 *  4. Every member sends its hash to the other members (`checkReport`), and sends it again on a
 *     `checkStart` at an index it already hashed: a member restarted since missed it. Reports are
 *     sent only on a hash or a `checkStart`, never in answer to a report, so they cannot ping-pong.
 *  5. Each node judges only itself (`judge`): once a majority of the voters report one hash, its own
 *     either equals it (passed: its database is verified) or not (damaged: `storage-heal.ts`
 *     replaces its database with a leader's snapshot). Learners' hashes count for no majority. No
 *     node is ever told it is damaged, so a lone dissenting node can only find itself in the
 *     minority, never put a healthy node there. When every voter reported and no hash has a
 *     majority, nothing is done but saying so (`consistency.no-majority`): there is no way to tell
 *     which copy is intact, and nodes not yet verified stay so.
 *  Witnesses hold no data: they neither hash nor report, and count for no majority.
 *
 * Bounds: one index waiting to be hashed, one hash job, reports of at most `checksTrackedMax`
 * indexes and one per member each; every check is forgotten after `consistencyCheckTimeoutMs`.
 */
import { memberAttributesOf } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import type { ContentHashJob } from "../store/database-check.ts";
import type { LogIndex, NodeId } from "../types/ids.ts";
import type { NodeConfig } from "./node-config.ts";
import { encodeStorage } from "./peer-envelope.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";

/** Indexes whose reports are kept at once. */
export const checksTrackedMax = 4;
/** A leader starts checks at most this often, and at most every two hash durations of its own. */
export const checkSpacingMs = 1_000;

export type CheckVerdict =
  | { readonly outcome: "pending" }
  | { readonly outcome: "passed"; readonly hash: string; readonly dissenters: readonly NodeId[] }
  | { readonly outcome: "damaged"; readonly hash: string; readonly agreeing: readonly NodeId[] }
  | { readonly outcome: "no-majority" };

/** What a node learns about itself when a check finds it in the minority. */
export type DamageFound = {
  readonly index: LogIndex;
  readonly ownHash: string;
  readonly majorityHash: string;
  /** The voters whose hash was the majority's: the ones to trust. */
  readonly agreeing: readonly NodeId[];
};

/**
 * Judges `self`'s hash (in `reports`) against the voters' reports: pending until its own hash and a
 * majority of the voters agreeing on one hash are known, or until every voter reported.
 */
export function judge(
  self: NodeId,
  voters: readonly NodeId[],
  reports: ReadonlyMap<NodeId, string>,
): CheckVerdict {
  const own = reports.get(self);
  if (own === undefined) return { outcome: "pending" };
  const holders = new Map<string, NodeId[]>();
  for (const voter of voters) {
    const hash = reports.get(voter);
    if (hash !== undefined) holders.set(hash, [...(holders.get(hash) ?? []), voter]);
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  for (const [hash, agreeing] of holders) {
    if (agreeing.length < quorum) continue;
    if (hash !== own) return { outcome: "damaged", hash, agreeing };
    const dissenters = voters.filter((voter) => reports.has(voter) && reports.get(voter) !== hash);
    return { outcome: "passed", hash, dissenters };
  }
  const everyone = voters.every((voter) => reports.has(voter));
  return everyone ? { outcome: "no-majority" } : { outcome: "pending" };
}

type Tracked = {
  readonly index: LogIndex;
  readonly reports: Map<NodeId, string>;
  readonly startedAtMs: number;
  decided: boolean;
  readonly noted: Set<NodeId>;
};

type Parts = {
  readonly config: NodeConfig;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  /** Speculative batches open on this node (a leader picks an index only when there are none). */
  readonly speculativeCount: () => number;
  readonly send: (peer: NodeId, body: Uint8Array) => void;
  readonly onDamage: (found: DamageFound) => void;
  /** A check found this node's hash in the majority. */
  readonly onPassed: (index: LogIndex) => void;
  /** A check ended with every data voter's hash and none held by a majority. */
  readonly onNoMajority: () => void;
  /** Whether this node is a witness: it holds no data, so it neither hashes nor counts. */
  readonly isWitness: () => boolean;
};

export type LastCheck = { readonly index: number; readonly outcome: string; readonly atMs: number };

/** Hash reported for this node when its own database could not be read to the end. */
const unreadable = "unreadable";

export class ConsistencyChecks {
  private readonly parts: Parts;
  private readonly tracked = new Map<LogIndex, Tracked>();
  /** An index this node must hash once its applied index reaches it. */
  private pending: LogIndex | null = null;
  private job: {
    readonly index: LogIndex;
    readonly job: ContentHashJob;
    readonly cancel: Cancel;
    readonly startedAtMs: number;
  } | null = null;
  /** The check this node started as leader, until every voter reported or it timed out. */
  private leading: Tracked | null = null;
  private lastStartedAtMs: number | null = null;
  /** How long this node's last hash job took (ms). */
  private lastHashMs = 0;
  private due = true;
  private last: LastCheck | null = null;
  /** The highest index at which a check found this node's hash in the majority. */
  private passedIndex = 0;
  private stopped = false;

  constructor(parts: Parts) {
    this.parts = parts;
  }

  /** The index the applier must not pass until this node's hash job has begun there, or null. */
  get holdIndex(): LogIndex | null {
    return this.skipped ? null : this.pending;
  }

  get lastCheck(): LastCheck | null {
    return this.last;
  }

  /** Whether a check found this node's data in the majority at `index` or later. */
  passedAtOrAfter(index: number): boolean {
    return this.passedIndex >= index;
  }

  /** After every step: start a job at a reached index, forget old checks, and, leading, start one. */
  afterStep(): void {
    if (this.stopped || this.parts.loop.fatal !== null) return;
    if (this.skipped) {
      // A member that became a witness holds nothing to hash: a check it joined before is dropped,
      // so the applier is not held for it.
      this.pending = null;
      this.closeJob();
      return;
    }
    this.expire();
    const applied = this.parts.runtime.store.appliedIndex;
    if (this.pending !== null && (applied > this.pending || !this.tracked.has(this.pending)))
      this.pending = null;
    if (this.pending !== null && applied === this.pending) this.begin(this.pending);
    this.maybeLead();
  }

  /** A member (re)connected: check again soon (it may have restarted on a damaged disk). */
  peerConnected(peer: NodeId): void {
    if (this.isMember(peer)) this.due = true;
  }

  /** A member (or this node) asks for a check: its database is not verified yet. */
  requested(from: NodeId): void {
    if (!this.isMember(from)) return;
    this.due = true;
    const leading = this.leading;
    const nowMs = this.parts.runtime.clock.nowMs();
    if (leading !== null && this.job === null && nowMs - leading.startedAtMs >= this.spacingMs())
      this.leading = null;
  }

  /** A new term's leader checks at once; any other role ends the check it led. */
  roleChanged(role: string): void {
    if (role === "leader") this.due = true;
    else this.leading = null;
  }

  onStart(from: NodeId, index: LogIndex): void {
    if (this.skipped || !this.isMember(from) || this.job?.index === index) return;
    const own = this.tracked.get(index)?.reports.get(this.self);
    if (own !== undefined) {
      // A check at an index already hashed: the leader starts one again when a report was lost, or
      // when a member restarted after the check passed (no writes, so the applied index stands
      // still). Every member hears ours again: a restarted one missed the reports sent while it was
      // down, and without a majority of them it cannot judge itself until writes move the index on.
      if (own === unreadable) return;
      const report = encodeStorage({ kind: "checkReport", index, hash: own });
      for (const member of this.others()) this.parts.send(member, report);
      return;
    }
    if (index < this.parts.runtime.store.appliedIndex) return;
    this.track(index);
    this.pending = index;
    this.afterStep();
  }

  onReport(from: NodeId, index: LogIndex, hash: string): void {
    if (!this.isMember(from) || from === this.self) return;
    const tracked = this.track(index);
    if (tracked.reports.has(from)) return;
    tracked.reports.set(from, hash);
    this.evaluate(tracked);
  }

  stop(): void {
    this.stopped = true;
    this.closeJob();
  }

  private get skipped(): boolean {
    return this.parts.config.unsafeNodeBugs?.skipConsistencyChecks === true || this.parts.isWitness();
  }

  private get self(): NodeId {
    return this.parts.config.id;
  }

  private spacingMs(): number {
    return Math.max(checkSpacingMs, 2 * this.lastHashMs);
  }

  /** The voters that hold data: a witness's empty database is no copy to compare. */
  private voters(): readonly NodeId[] {
    const config = this.parts.loop.core.summary().clusterConfig;
    return config.voters.filter((id) => !memberAttributesOf(config, id).witness);
  }

  /** Every member but this node: who hears of a check and of its hashes. */
  private others(): NodeId[] {
    const { voters, learners } = this.parts.loop.core.summary().clusterConfig;
    return [...voters, ...learners].filter((id) => id !== this.self);
  }

  private isMember(id: NodeId): boolean {
    const { voters, learners } = this.parts.loop.core.summary().clusterConfig;
    return voters.includes(id) || learners.includes(id);
  }

  private maybeLead(): void {
    const { runtime, loop, config } = this.parts;
    const core = loop.core.summary();
    if (core.role !== "leader" || this.leading !== null || this.job !== null) return;
    const nowMs = runtime.clock.nowMs();
    const sinceMs = this.lastStartedAtMs === null ? Number.POSITIVE_INFINITY : nowMs - this.lastStartedAtMs;
    const interval = config.consistencyCheckIntervalMs;
    const periodic = interval > 0 && sinceMs >= interval;
    if ((!this.due && !periodic) || sinceMs < this.spacingMs()) return;
    const applied = runtime.store.appliedIndex;
    if (applied === 0 || applied !== core.lastIndex || this.parts.speculativeCount() !== 0) return;
    this.due = false;
    this.lastStartedAtMs = nowMs;
    const start = encodeStorage({ kind: "checkStart", index: applied });
    for (const member of this.others()) this.parts.send(member, start);
    runtime.logger("info", "consistency.check-started", { index: applied });
    this.begin(applied);
    this.leading = this.track(applied);
  }

  /** Begins hashing the state at `index`, which must be the state committed now. */
  private begin(index: LogIndex): void {
    const { runtime, config } = this.parts;
    assert(runtime.store.appliedIndex === index, `hash job at ${index} begins at that applied index`);
    this.pending = null;
    this.closeJob();
    const job = runtime.store.beginContentHash(config.consistencyCheckRowsPerStep);
    assert(job.appliedIndex === index, `the hash job reads applied index ${job.appliedIndex}, not ${index}`);
    const cancel = runtime.timers.every(config.tickMs, () => this.stepJob());
    this.job = { index, job, cancel, startedAtMs: runtime.clock.nowMs() };
    this.track(index);
    // The applier may have stopped at `index` for this job: let it go on.
    this.parts.loop.reportApplied(index);
  }

  private stepJob(): void {
    const running = this.job;
    if (running === null || this.stopped) return;
    let digest: string | null;
    try {
      digest = running.job.step();
    } catch (error) {
      // A page SQLite cannot read is damage too: this node's hash can then match no majority.
      this.parts.runtime.logger("error", "consistency.hash-failed", {
        index: running.index,
        error: (error as Error).message,
      });
      digest = unreadable;
    }
    if (digest === null) return;
    this.lastHashMs = this.parts.runtime.clock.nowMs() - running.startedAtMs;
    this.closeJob();
    const tracked = this.track(running.index);
    tracked.reports.set(this.self, digest);
    if (digest !== unreadable) {
      const report = encodeStorage({ kind: "checkReport", index: running.index, hash: digest });
      for (const member of this.others()) this.parts.send(member, report);
    }
    this.evaluate(tracked);
  }

  private evaluate(tracked: Tracked): void {
    const voters = this.voters();
    const verdict = judge(this.self, voters, tracked.reports);
    const { logger, clock } = this.parts.runtime;
    if (verdict.outcome === "passed") {
      for (const peer of verdict.dissenters) {
        if (tracked.noted.has(peer)) continue;
        tracked.noted.add(peer);
        logger("warn", "consistency.peer-differs", { peer, index: tracked.index, majority: verdict.hash });
      }
    }
    if (verdict.outcome === "pending" || tracked.decided) return;
    tracked.decided = true;
    if (this.leading === tracked) this.leading = null;
    this.last = { index: tracked.index, outcome: verdict.outcome, atMs: clock.nowMs() };
    const fields = { index: tracked.index, reports: Object.fromEntries(tracked.reports) };
    if (verdict.outcome === "passed") {
      logger("info", "consistency.check-passed", { index: tracked.index });
      this.passedIndex = Math.max(this.passedIndex, tracked.index);
      this.parts.onPassed(tracked.index);
    } else if (verdict.outcome === "no-majority") {
      logger("error", "consistency.no-majority", fields);
      this.parts.onNoMajority();
    } else {
      logger("error", "consistency.damage-found", { ...fields, majority: verdict.hash });
      const ownHash = tracked.reports.get(this.self)!;
      this.parts.onDamage({
        index: tracked.index,
        ownHash,
        majorityHash: verdict.hash,
        agreeing: verdict.agreeing,
      });
    }
  }

  private track(index: LogIndex): Tracked {
    const known = this.tracked.get(index);
    if (known !== undefined) return known;
    if (this.tracked.size >= checksTrackedMax) {
      const oldest = Math.min(...this.tracked.keys()) as LogIndex;
      this.tracked.delete(oldest);
    }
    const tracked: Tracked = {
      index,
      reports: new Map(),
      startedAtMs: this.parts.runtime.clock.nowMs(),
      decided: false,
      noted: new Set(),
    };
    this.tracked.set(index, tracked);
    assert(this.tracked.size <= checksTrackedMax, "tracked checks within their bound");
    return tracked;
  }

  private expire(): void {
    const nowMs = this.parts.runtime.clock.nowMs();
    const timeoutMs = this.parts.config.consistencyCheckTimeoutMs;
    for (const [index, tracked] of this.tracked) {
      if (nowMs - tracked.startedAtMs < timeoutMs) continue;
      this.tracked.delete(index);
      if (this.leading === tracked) this.leading = null;
      if (this.job?.index === index) this.closeJob();
      if (this.pending === index) this.pending = null;
    }
  }

  private closeJob(): void {
    const running = this.job;
    this.job = null;
    if (running === null) return;
    running.cancel();
    running.job.close();
  }
}

/**
 * The hash of the committed content (`GET /v1/content-hash`), computed `rowsPerStep` rows per turn of
 * the event loop on a read transaction of its own, so that hashing a large database never holds
 * heartbeats: done in one call, 300,000 rows and 40 MB of blobs took more than 5 s.
 */
export async function contentHashInSteps(
  runtime: NodeRuntime,
  rowsPerStep: number,
): Promise<{ appliedIndex: number; hash: string }> {
  const job = runtime.store.beginContentHash(rowsPerStep);
  try {
    for (;;) {
      const hash = job.step();
      if (hash !== null) return { appliedIndex: job.appliedIndex, hash };
      await new Promise<void>((resolve) => runtime.timers.after(0, resolve));
    }
  } finally {
    job.close();
  }
}
