/**
 * The leader's view of one follower's replication (after etcd's Progress, thesis §10.2).
 *
 * States:
 *  - `probe`:     the leader does not know where the follower's log matches; it sends one
 *                 AppendEntries at a time and waits for its answer (or the next heartbeat answer).
 *  - `replicate`: the logs match up to `matchIndex`; the leader streams entries optimistically
 *                 (pipelining), advancing `nextIndex` as it sends, up to `inflightMax` messages.
 *  - `snapshot`:  the follower needs entries the leader compacted away; nothing is sent until the
 *                 host reports the snapshot sent (or failed).
 *
 * Invariants: `matchIndex < nextIndex`; `matchIndex` never decreases while this leader leads;
 * in-flight markers are increasing and all above `matchIndex`; at most `inflightMax` of them.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex } from "../types/ids.ts";

export type ReplicationState = "probe" | "replicate" | "snapshot";

export class Progress {
  state: ReplicationState = "probe";
  matchIndex: LogIndex = logIndex(0);
  nextIndex: LogIndex;
  /** Probe state: an AppendEntries is outstanding, so send no other until an answer arrives. */
  probeSent = false;
  /** Replicate state: last index carried by each AppendEntries still in flight, oldest first. */
  readonly inflight: LogIndex[] = [];
  /** Snapshot state: the index the snapshot must cover. */
  pendingSnapshotIndex: LogIndex = logIndex(0);
  /** The follower's applied index, as last reported. */
  appliedIndex: LogIndex = logIndex(0);
  /** The tick at which the leader last heard anything from this follower in its term. */
  lastHeardTick: number;
  /** The highest commit index sent to this follower, so a new one is sent without waiting for a heartbeat. */
  sentCommitIndex: LogIndex = logIndex(0);
  /** The highest linearizable-read round this follower has acknowledged. */
  readRoundAcknowledged = 0;
  /** When it acknowledged that round, in the leader's count of acknowledgements (earlier, lower). */
  readRoundAcknowledgedAt = 0;
  /**
   * Transfers to this follower in this term that ended without it taking office (`transfer.ts`).
   * The leader's next choice of a target prefers followers with fewer (`handoff.ts`), so one that
   * cannot campaign (its candidacy held) is not chosen again and again while another could.
   */
  transfersFailed = 0;
  private readonly inflightMax: number;

  constructor(nextIndex: LogIndex, nowTick: number, inflightMax: number) {
    assert(nextIndex >= 1, "next index starts at 1");
    assert(inflightMax >= 1, "inflight bound must be positive");
    this.nextIndex = nextIndex;
    this.lastHeardTick = nowTick;
    this.inflightMax = inflightMax;
  }

  /** Whether the leader must hold back AppendEntries with entries for this follower. */
  isPaused(): boolean {
    if (this.state === "probe") return this.probeSent;
    if (this.state === "replicate") return this.inflight.length >= this.inflightMax;
    return true;
  }

  becomeProbe(): void {
    // After a snapshot the follower's log starts at the snapshot, so probe from just after it.
    const next =
      this.state === "snapshot"
        ? Math.max(this.matchIndex + 1, this.pendingSnapshotIndex + 1)
        : this.matchIndex + 1;
    this.state = "probe";
    this.nextIndex = logIndex(next);
    this.probeSent = false;
    this.inflight.length = 0;
    this.pendingSnapshotIndex = logIndex(0);
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.nextIndex = logIndex(this.matchIndex + 1);
    this.probeSent = false;
    this.inflight.length = 0;
  }

  becomeSnapshot(snapshotIndex: LogIndex): void {
    assert(snapshotIndex > this.matchIndex, "snapshot would not advance the follower");
    this.state = "snapshot";
    this.pendingSnapshotIndex = snapshotIndex;
    this.inflight.length = 0;
    this.probeSent = false;
  }

  /** Records that an AppendEntries carrying entries through `lastIndex` (or none) was sent. */
  sent(lastIndex: LogIndex | undefined): void {
    if (this.state === "probe") {
      this.probeSent = true;
      return;
    }
    assert(this.state === "replicate", "sending entries while waiting for a snapshot");
    if (lastIndex === undefined) return;
    assert(lastIndex >= this.nextIndex, "sent entries must advance next index");
    assert(this.inflight.length < this.inflightMax, "inflight bound exceeded");
    this.inflight.push(lastIndex);
    this.nextIndex = logIndex(lastIndex + 1);
  }

  /** A success reply: returns whether `matchIndex` advanced. */
  acknowledge(matchIndex: LogIndex): boolean {
    let advanced = false;
    if (matchIndex > this.matchIndex) {
      this.matchIndex = matchIndex;
      advanced = true;
    }
    if (this.nextIndex <= this.matchIndex) this.nextIndex = logIndex(this.matchIndex + 1);
    while (this.inflight.length > 0 && (this.inflight[0] ?? 0) <= this.matchIndex) this.inflight.shift();
    this.probeSent = false;
    return advanced;
  }

  /**
   * A rejection of the AppendEntries whose prevLogIndex was `rejectedIndex`; `hintNextIndex` is where
   * the conflict hint says to retry. Returns false for stale rejections (of messages sent before the
   * leader already moved on), which must be ignored.
   */
  reject(rejectedIndex: LogIndex, hintNextIndex: LogIndex): boolean {
    if (this.state === "snapshot" || rejectedIndex <= this.matchIndex) return false;
    if (this.state === "probe" && rejectedIndex !== this.nextIndex - 1) return false;
    const next = Math.max(this.matchIndex + 1, Math.min(hintNextIndex, rejectedIndex));
    assert(next <= rejectedIndex, "a rejection must move next index backwards");
    this.becomeProbe();
    this.nextIndex = logIndex(next);
    return true;
  }

  /** Frees one in-flight slot when the follower answers a heartbeat but not our appends (one was lost). */
  freeOldestInflight(): void {
    this.inflight.shift();
  }
}
