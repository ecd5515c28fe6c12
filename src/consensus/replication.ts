/**
 * Leader-side log replication: building AppendEntries and heartbeats, the commit rule, and the
 * conflict-hint arithmetic (Raft §5.3 with the fast back-off of thesis §5.3 / etcd).
 *
 * Batching: one AppendEntries carries up to `appendEntriesBatchEntriesMax` entries and
 * `appendEntriesBatchBytesMax` bytes. Pipelining: in the replicate state up to
 * `appendEntriesInflightMax` are outstanding per follower. The leader never truncates or rewrites
 * its own log (Raft §5.3, Leader Append-Only); it counts itself toward a quorum only through its
 * durable index, so it may ship entries before its own fsync completes.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type NodeId } from "../types/ids.ts";
import { memberAttributesOf } from "./cluster-config.ts";
import { advanceCommitIndex, type CoreState, progressOf } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import type { AppendEntriesResponseMessage } from "./messages.ts";
import type { Progress } from "./progress.ts";
import { computeCommitIndex } from "./quorum.ts";

/**
 * Sends `peer` the next AppendEntries if its progress allows. With `sendIfEmpty` an entry-less
 * message still goes out (to carry a new commit index or to probe). Returns whether one was sent.
 */
export function sendAppend(s: CoreState, out: EffectsBuilder, peer: NodeId, sendIfEmpty: boolean): boolean {
  assert(s.role === "leader", "only a leader replicates");
  const progress = progressOf(s, peer);
  if (progress.isPaused()) return false;
  const prevLogIndex = logIndex(progress.nextIndex - 1);
  const prevLogTerm = s.log.termAt(prevLogIndex);
  if (prevLogTerm === undefined) {
    // Raft §7: the entries this follower needs were compacted; it must receive a snapshot.
    assert(prevLogIndex < s.log.snapshotIndex, "a hole in the leader's log");
    requestSnapshot(s, out, peer);
    return false;
  }
  const { appendEntriesBatchEntriesMax, appendEntriesBatchBytesMax } = s.config;
  const entries =
    progress.nextIndex <= s.log.lastIndex
      ? s.log.slice(
          progress.nextIndex,
          s.log.lastIndex,
          appendEntriesBatchEntriesMax,
          appendEntriesBatchBytesMax,
        )
      : [];
  const commitNews = s.commitIndex > progress.sentCommitIndex;
  if (entries.length === 0 && !sendIfEmpty && (!commitNews || newsWaits(s, out, progress))) return false;
  const message = {
    type: "appendEntries" as const,
    from: s.config.id,
    to: peer,
    term: s.term,
    prevLogIndex,
    prevLogTerm,
    entries,
    leaderCommit: s.commitIndex,
  };
  // Commit news alone, to a follower known to hold what it was sent: no success answer wanted.
  const quiet = entries.length === 0 && !sendIfEmpty && progress.state === "replicate";
  const reportApplied = s.allProposalsPending > 0;
  out.send(
    quiet || reportApplied
      ? { ...message, ...(quiet ? { quiet: true } : {}), ...(reportApplied ? { reportApplied: true } : {}) }
      : message,
  );
  progress.sent(entries.at(-1)?.index);
  progress.sentCommitIndex = logIndex(Math.max(progress.sentCommitIndex, s.commitIndex));
  return true;
}

/**
 * With `deferCommitNews`, commit news alone to a follower in the replicate state waits for the next
 * AppendEntries with entries or the host's `commitNews` step (`Effects.commitNewsDue`) when the whole
 * log is committed (no write in the pipeline). Not while entries wait for their commit (deferred there too, 64
 * writers lost about 2% of their rate), nor while an `all` proposal waits for applied reports.
 */
function newsWaits(s: CoreState, out: EffectsBuilder, progress: Progress): boolean {
  if (!s.config.deferCommitNews || out.commitNewsNow || s.allProposalsPending > 0) return false;
  return progress.state === "replicate" && s.commitIndex === s.log.lastIndex;
}

/** Whether a follower that could be sent an AppendEntries now has not been told the commit index. */
export function commitNewsPending(s: CoreState): boolean {
  if (s.role !== "leader") return false;
  for (const progress of s.progress.values())
    if (progress.state === "replicate" && progress.sentCommitIndex < s.commitIndex && !progress.isPaused())
      return true;
  return false;
}

/** Streams as many batches as the follower's in-flight window allows (bounded by that window). */
export function sendAppendsWhileOpen(s: CoreState, out: EffectsBuilder, peer: NodeId): void {
  const sendsMax = s.config.appendEntriesInflightMax;
  for (let sends = 0; sends < sendsMax; sends++) {
    if (!sendAppend(s, out, peer, false)) return;
  }
}

/**
 * A new proposal's entry, to every member whose window allows it at once: fewer than
 * `appendEntriesEagerInflightMax` AppendEntries in flight (probing or waiting for a snapshot, the
 * usual rules apply). Any other gets it with everything proposed meanwhile, in one message, when an
 * answer frees its window (`sendAppendsWhileOpen`), or after the next heartbeat's answer if answers
 * were lost. Under concurrent writes this sends one message per answer instead of one per write,
 * and each follower persists and answers the entries of a round trip together.
 */
export function broadcastProposal(s: CoreState, out: EffectsBuilder): void {
  for (const [peer, progress] of s.progress) {
    if (progress.state === "replicate" && progress.inflight.length >= s.config.appendEntriesEagerInflightMax)
      continue;
    sendAppend(s, out, peer, false);
  }
}

/** To every other member, learners included (they receive the log like voters). */
export function broadcastAppend(s: CoreState, out: EffectsBuilder, sendIfEmpty: boolean): void {
  for (const peer of s.progress.keys()) {
    if (!sendAppend(s, out, peer, sendIfEmpty)) continue;
    sendAppendsWhileOpen(s, out, peer);
  }
}

function requestSnapshot(s: CoreState, out: EffectsBuilder, peer: NodeId): void {
  const progress = progressOf(s, peer);
  const index = s.log.snapshotIndex;
  const snapshotTerm = s.log.snapshotTerm;
  // Raft §7 / dissertation §5.1: the snapshot carries the configuration as of its last index.
  const snapshotConfig = s.log.snapshotConfig;
  progress.becomeSnapshot(index);
  out.snapshotNeeded.push({
    peer,
    index,
    term: snapshotTerm,
    snapshotConfig,
    message: {
      type: "installSnapshot",
      from: s.config.id,
      to: peer,
      term: s.term,
      snapshotIndex: index,
      snapshotTerm,
      snapshotConfig,
    },
  });
}

/**
 * Heartbeats to every peer; the commit index sent is capped at what each follower is known to hold.
 * A witness's also names the data floor (`leaderDataFloor`) when positive.
 */
export function broadcastHeartbeat(s: CoreState, out: EffectsBuilder): void {
  sendHeartbeats(s, out, s.progress.keys());
}

/** `broadcastHeartbeat`, to `peers` only. */
export function sendHeartbeats(s: CoreState, out: EffectsBuilder, peers: Iterable<NodeId>): void {
  const config = s.log.config;
  const witnessed = config.members?.some((member) => member.witness) === true;
  const dataFloor = witnessed ? leaderDataFloor(s) : logIndex(0);
  for (const peer of peers) {
    const progress = progressOf(s, peer);
    const leaderCommit = logIndex(Math.min(progress.matchIndex, s.commitIndex));
    progress.sentCommitIndex = logIndex(Math.max(progress.sentCommitIndex, leaderCommit));
    const floor = dataFloor > 0 && memberAttributesOf(config, peer).witness ? { dataFloor } : {};
    out.send({
      type: "heartbeat",
      from: s.config.id,
      to: peer,
      term: s.term,
      leaderCommit,
      readRound: s.readRound,
      ...floor,
    });
  }
}

/**
 * The data floor, as this leader knows it: the highest index that every voter holding data (not a
 * witness) holds durably, and committed. A witness keeps the log above it, because an entry beyond
 * it may exist, among the voters, only in the witness's log and the leader's: were the leader lost,
 * the witness would be the only one to hand it on, and it holds no data to send as a snapshot.
 */
export function leaderDataFloor(s: CoreState): LogIndex {
  assert(s.role === "leader", "only a leader knows its followers' match indexes");
  const config = s.log.config;
  let floor: number = s.commitIndex;
  for (const voter of config.voters) {
    if (memberAttributesOf(config, voter).witness) continue;
    floor = Math.min(floor, voter === s.config.id ? s.durableIndex : progressOf(s, voter).matchIndex);
  }
  return logIndex(floor);
}

/**
 * Applies the commit rule (Raft §5.3, §5.4.2) over the voters of the leader's latest configuration,
 * committed or not (dissertation §4.1). Learners never count; nor does the leader itself once that
 * configuration no longer makes it a voter (§4.2.2). Returns whether the commit index advanced.
 */
export function maybeAdvanceCommit(s: CoreState): boolean {
  assert(s.role === "leader", "only a leader counts replicas");
  const matchIndexes = s.log.config.voters.map((voter) =>
    voter === s.config.id ? s.durableIndex : progressOf(s, voter).matchIndex,
  );
  const next = computeCommitIndex({
    matchIndexes,
    commitIndex: s.commitIndex,
    currentTerm: s.term,
    termAt: (index) => s.log.termAt(index),
    commitOldTermByCounting: s.config.unsafeTestBugs.commitOldTermByCounting === true,
  });
  return advanceCommitIndex(s, next);
}

/**
 * Where to retry after a rejection. If the leader holds entries of the follower's conflicting term,
 * retry just after its last one; otherwise skip the follower's whole run of that term.
 */
export function nextIndexFromHint(s: CoreState, response: AppendEntriesResponseMessage): LogIndex {
  if (response.conflictTerm === 0) return response.conflictIndex;
  const last = s.log.lastIndexOfTerm(response.conflictTerm, response.rejectedIndex);
  return last === undefined ? response.conflictIndex : logIndex(last + 1);
}
