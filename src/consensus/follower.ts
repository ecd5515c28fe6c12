/**
 * Follower side of replication: AppendEntries (Raft §5.3), heartbeats, and snapshot installation
 * (Raft §7).
 *
 * Invariants: a follower never truncates a committed entry (asserted); it replies with a match
 * index only in a message marked `afterPersist`, so the leader counts it only once durable; the
 * commit index it learns is capped at the last entry the message proved to match (Raft figure 2:
 * min(leaderCommit, index of last new entry)); a rejection carries a conflict hint (term and first
 * index of that term) so the leader can skip a term per round trip instead of an entry.
 */
import { assert } from "../lib/assert.ts";
import { type LogIndex, logIndex, type Term, term } from "../types/ids.ts";
import type { LogEntry } from "../types/log-entry.ts";
import { sameMembersAndSettings } from "./cluster-config.ts";
import { advanceCommitIndex, type CoreState, refreshApplyThrough, resetElectionTimer } from "./core-state.ts";
import { onSnapshotReset } from "./durability.ts";
import type { EffectsBuilder } from "./effects.ts";
import type { AppendEntriesMessage, HeartbeatMessage, InstallSnapshotMessage } from "./messages.ts";

function heardFromLeader(s: CoreState, leader: AppendEntriesMessage["from"]): void {
  assert(s.role === "follower" && s.leaderId === leader, "only a follower of the sender hears it");
  s.electionElapsedTicks = 0;
}

function respond(
  s: CoreState,
  out: EffectsBuilder,
  to: AppendEntriesMessage["from"],
  fields: {
    success: boolean;
    matchIndex: LogIndex;
    rejectedIndex: LogIndex;
    conflictTerm: Term;
    conflictIndex: LogIndex;
  },
): void {
  out.send({
    type: "appendEntriesResponse",
    from: s.config.id,
    to,
    term: s.term,
    appliedIndex: s.appliedIndex,
    ...fields,
  });
}

function reject(s: CoreState, out: EffectsBuilder, message: AppendEntriesMessage): void {
  const prev = message.prevLogIndex;
  const ourTerm = s.log.termAt(prev);
  const zero = logIndex(0);
  if (ourTerm === undefined) {
    respond(s, out, message.from, {
      success: false,
      matchIndex: zero,
      rejectedIndex: prev,
      conflictTerm: term(0),
      conflictIndex: logIndex(s.log.lastIndex + 1),
    });
    return;
  }
  const conflictIndex = s.log.firstIndexOfTermRun(prev, s.commitIndex);
  respond(s, out, message.from, {
    success: false,
    matchIndex: zero,
    rejectedIndex: prev,
    conflictTerm: ourTerm,
    conflictIndex,
  });
}

/** Appends the message's entries after the matching prefix, truncating a divergent suffix first. */
function appendMatching(s: CoreState, out: EffectsBuilder, message: AppendEntriesMessage): void {
  let firstNew = 0;
  for (; firstNew < message.entries.length; firstNew++) {
    const entry = message.entries[firstNew];
    assert(
      entry !== undefined && entry.index === message.prevLogIndex + 1 + firstNew,
      "entries must be contiguous",
    );
    const ourTerm = s.log.termAt(entry.index);
    if (ourTerm === entry.term) continue;
    if (ourTerm !== undefined) {
      // Raft §5.3: delete the conflicting entry and all that follow it. Committed entries match the
      // leader's log (Leader Completeness, §5.4), so a conflict is always above the commit index.
      assert(entry.index > s.commitIndex, `conflict at committed index ${entry.index}`);
      const dropped = s.log.truncateAfter(logIndex(entry.index - 1));
      out.truncate(logIndex(entry.index - 1), dropped);
      s.durableIndex = logIndex(Math.min(s.durableIndex, entry.index - 1));
      out.event({
        type: "entries-discarded",
        node: s.config.id,
        term: s.term,
        fromIndex: entry.index,
        toIndex: logIndex(entry.index + dropped.length - 1),
      });
    }
    break;
  }
  for (let i = firstNew; i < message.entries.length; i++) {
    const entry = message.entries[i];
    assert(entry !== undefined, "entry hole");
    s.log.append(entry);
    out.append(entry);
  }
}

export function handleAppendEntries(s: CoreState, out: EffectsBuilder, message: AppendEntriesMessage): void {
  heardFromLeader(s, message.from);
  s.appliedReportsWanted = message.reportApplied === true;
  const lastCovered = logIndex(message.prevLogIndex + message.entries.length);
  if (lastCovered <= s.commitIndex) {
    // Everything it carries is already committed here, hence identical: just report our position.
    if (message.quiet === true) return;
    respond(s, out, message.from, {
      success: true,
      matchIndex: s.commitIndex,
      rejectedIndex: logIndex(0),
      conflictTerm: term(0),
      conflictIndex: logIndex(0),
    });
    return;
  }
  if (message.prevLogIndex < s.commitIndex) {
    // Skip the committed head of the batch: it matches by Leader Completeness and may be compacted here.
    const skip = s.commitIndex - message.prevLogIndex;
    const pivot = message.entries[skip - 1];
    assert(pivot !== undefined && pivot.index === s.commitIndex, "committed pivot entry");
    handleAppendEntries(s, out, {
      ...message,
      prevLogIndex: pivot.index,
      prevLogTerm: pivot.term,
      entries: message.entries.slice(skip),
    });
    return;
  }
  const ourPrevTerm = s.log.termAt(message.prevLogIndex);
  const skipCheck = s.config.unsafeTestBugs.appendWithoutLogCheck === true && ourPrevTerm !== undefined;
  if (ourPrevTerm !== message.prevLogTerm && !skipCheck) {
    reject(s, out, message);
    return;
  }
  appendMatching(s, out, message);
  // Raft figure 2: commitIndex = min(leaderCommit, index of last new entry).
  advanceCommitIndex(s, logIndex(Math.min(message.leaderCommit, lastCovered)));
  if (message.quiet === true) return;
  respond(s, out, message.from, {
    success: true,
    matchIndex: lastCovered,
    rejectedIndex: logIndex(0),
    conflictTerm: term(0),
    conflictIndex: logIndex(0),
  });
}

export function handleHeartbeat(s: CoreState, out: EffectsBuilder, message: HeartbeatMessage): void {
  heardFromLeader(s, message.from);
  // The leader caps leaderCommit at our acknowledged (durable, matching) match index.
  assert(message.leaderCommit <= s.log.lastIndex, "heartbeat commit beyond our log");
  advanceCommitIndex(s, message.leaderCommit);
  if (message.dataFloor !== undefined)
    s.dataFloorHeard = logIndex(Math.max(s.dataFloorHeard, message.dataFloor));
  out.send({
    type: "heartbeatResponse",
    from: s.config.id,
    to: message.from,
    term: s.term,
    readRound: message.readRound,
    appliedIndex: s.appliedIndex,
  });
}

/**
 * The host already restored the snapshot's data (it does so only when the snapshot is newer than its
 * applied index). Keep our log's suffix if it continues the snapshot, otherwise start over from it.
 */
export function handleInstallSnapshot(
  s: CoreState,
  out: EffectsBuilder,
  message: InstallSnapshotMessage,
): void {
  if (s.role === "follower" && s.leaderId === message.from) resetElectionTimer(s);
  const { snapshotIndex, snapshotTerm } = message;
  const zeroes = { rejectedIndex: logIndex(0), conflictTerm: term(0), conflictIndex: logIndex(0) };
  if (snapshotIndex <= s.appliedIndex) {
    respond(s, out, message.from, { success: true, matchIndex: s.commitIndex, ...zeroes });
    return;
  }
  out.restoreSnapshot({ index: snapshotIndex, term: snapshotTerm });
  if (s.log.termAt(snapshotIndex) === snapshotTerm) {
    // Log Matching (Raft §5.3): our log up to the snapshot is the leader's, configuration included.
    // Addresses aside: a configuration that comes from no entry (the bootstrap one) carries the
    // addresses each node was started with, which may be spelled differently.
    assert(
      sameMembersAndSettings(s.log.configAt(snapshotIndex), message.snapshotConfig),
      `snapshot configuration at ${snapshotIndex} differs from the log's`,
    );
    if (snapshotIndex > s.log.snapshotIndex) s.log.compact(snapshotIndex, snapshotTerm);
  } else {
    resetLogToSnapshot(s, out, message);
  }
  s.durableIndex = logIndex(Math.max(s.durableIndex, snapshotIndex));
  s.appliedIndex = snapshotIndex;
  s.applyThrough = logIndex(Math.max(s.applyThrough, snapshotIndex));
  advanceCommitIndex(s, snapshotIndex);
  refreshApplyThrough(s);
  out.event({
    type: "snapshot-installed",
    node: s.config.id,
    term: s.term,
    index: snapshotIndex,
    snapshotTerm,
  });
  respond(s, out, message.from, { success: true, matchIndex: snapshotIndex, ...zeroes });
}

/** Our log cannot join the snapshot: drop all of it, reporting the entries that were never committed. */
function resetLogToSnapshot(s: CoreState, out: EffectsBuilder, message: InstallSnapshotMessage): void {
  const { snapshotIndex, snapshotTerm, snapshotConfig } = message;
  // Leader Completeness (Raft §5.4): a leader holds every committed entry, so a snapshot always joins its log.
  assert(s.role !== "leader", "a snapshot would reset a leader's log");
  const uncommitted: LogEntry[] = [];
  for (let index = s.commitIndex + 1; index <= s.log.lastIndex; index++) {
    const entry = s.log.entryAt(index);
    assert(entry !== undefined, "log hole while resetting");
    uncommitted.push(entry);
  }
  const first = uncommitted[0];
  const last = uncommitted.at(-1);
  if (first !== undefined && last !== undefined) {
    out.event({
      type: "entries-discarded",
      node: s.config.id,
      term: s.term,
      fromIndex: first.index,
      toIndex: last.index,
    });
  }
  if (s.log.lastIndex > snapshotIndex) {
    // The host's log must also lose what lies beyond the snapshot point.
    out.truncate(snapshotIndex, uncommitted);
  } else {
    out.discarded.push(...uncommitted);
  }
  // Raft §7: the snapshot's configuration replaces whatever our discarded log said.
  s.log.resetToSnapshot(snapshotIndex, snapshotTerm, snapshotConfig);
  s.durableIndex = snapshotIndex;
  onSnapshotReset(s, out);
}
