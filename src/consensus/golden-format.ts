/**
 * Text rendering of messages, events and Effects for the golden scenario files.
 *
 * One line per fact, stable field order, so that a diff of a golden file reads as a diff of
 * behaviour. Pure formatting: nothing here feeds back into the core.
 */
import type { LogEntry } from "../types/log-entry.ts";
import { EntryKind } from "../types/log-entry.ts";
import type { Effects } from "./effects.ts";
import type { CoreEvent } from "./events.ts";
import type { Message } from "./messages.ts";

const kindNames: Record<number, string> = {
  [EntryKind.command]: "command",
  [EntryKind.noop]: "noop",
  [EntryKind.config]: "config",
};
const textDecoder = new TextDecoder();

export function formatEntry(entry: LogEntry): string {
  const kind = kindNames[entry.kind] ?? `kind${entry.kind}`;
  const data = entry.data.byteLength > 0 ? ` ${JSON.stringify(textDecoder.decode(entry.data))}` : "";
  return `${entry.index}/${entry.term} ${kind}${data}`;
}

function messageDetail(m: Message): string {
  switch (m.type) {
    case "preVote":
    case "requestVote":
      return `last=${m.lastLogIndex}/${m.lastLogTerm}${m.type === "requestVote" && m.transfer ? " transfer" : ""}`;
    case "preVoteResponse":
    case "requestVoteResponse":
      return m.granted ? "granted" : "rejected";
    case "appendEntries":
      return `prev=${m.prevLogIndex}/${m.prevLogTerm} commit=${m.leaderCommit} entries=[${m.entries.map(formatEntry).join(", ")}]${m.quiet === true ? " quiet" : ""}${m.reportApplied === true ? " report-applied" : ""}`;
    case "appendEntriesResponse":
      return m.success
        ? `ok match=${m.matchIndex} applied=${m.appliedIndex}`
        : `reject at=${m.rejectedIndex} hint=${m.conflictIndex}/${m.conflictTerm} applied=${m.appliedIndex}`;
    case "heartbeat":
      return `commit=${m.leaderCommit} round=${m.readRound}${m.dataFloor === undefined ? "" : ` floor=${m.dataFloor}`}`;
    case "heartbeatResponse":
      return `round=${m.readRound} applied=${m.appliedIndex}${m.report === true ? " report" : ""}`;
    case "timeoutNow":
      return "";
    case "readIndex":
      return `read=${m.readId}`;
    case "readIndexResponse":
      return `read=${m.readId} ${m.refusal === null ? `index=${m.index}` : `refused ${m.refusal}`}`;
    case "installSnapshot":
      return `snapshot=${m.snapshotIndex}/${m.snapshotTerm} voters=[${m.snapshotConfig.voters.join(",")}] learners=[${m.snapshotConfig.learners.join(",")}]`;
  }
}

export function formatMessage(m: Message): string {
  const detail = messageDetail(m);
  return `${m.from}->${m.to} ${m.type} term=${m.term}${detail === "" ? "" : ` ${detail}`}`;
}

function formatValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(formatValue).join(",")}]`;
  if (typeof value === "object" && value !== null) return JSON.stringify(value);
  return String(value);
}

export function formatEvent(event: CoreEvent): string {
  const { type, node, term, ...rest } = event;
  const fields = Object.entries(rest).map(([key, value]) => `${key}=${formatValue(value)}`);
  return [`event ${node} ${type} term=${term}`, ...fields].join(" ");
}

/** The Effects of one step, one fact per line, in the host's processing order. */
export function formatEffects(effects: Effects): string[] {
  const lines: string[] = [];
  if (effects.snapshotRestored)
    lines.push(`snapshot-restored ${effects.snapshotRestored.index}/${effects.snapshotRestored.term}`);
  if (effects.truncateAfter !== undefined) lines.push(`truncate-after ${effects.truncateAfter}`);
  if (effects.entries.length > 0) lines.push(`append ${effects.entries.map(formatEntry).join(", ")}`);
  if (effects.hardState)
    lines.push(`hard-state term=${effects.hardState.term} vote=${effects.hardState.votedFor ?? "none"}`);
  for (const { message, afterPersist } of effects.messages) {
    lines.push(`${afterPersist ? "send-after-persist" : "send"} ${formatMessage(message)}`);
  }
  if (effects.commitIndex !== undefined) lines.push(`commit ${effects.commitIndex}`);
  if (effects.applyThrough !== undefined) lines.push(`apply-through ${effects.applyThrough}`);
  for (const p of effects.proposals) {
    lines.push(
      p.accepted
        ? `proposal ${p.proposalId} accepted ${p.index}/${p.term} ${p.durability}`
        : `proposal ${p.proposalId} rejected ${p.code} leader=${p.leaderId ?? "none"}`,
    );
  }
  for (const a of effects.acknowledged)
    lines.push(`ack ${a.proposalId} ${a.index}/${a.term} ${a.durability}`);
  for (const n of effects.notConfirmed) {
    lines.push(
      `not-confirmed ${n.proposalId} ${n.index}/${n.term} ${n.durability} ${n.reason} durable=${n.durableVoters}/${n.voters}`,
    );
  }
  for (const r of effects.membershipRejected)
    lines.push(`membership-rejected ${r.proposalId} ${r.code} leader=${r.leaderId ?? "none"}`);
  for (const r of effects.failoverChangeRejected)
    lines.push(`failover-change-rejected ${r.proposalId} ${r.code} leader=${r.leaderId ?? "none"}`);
  for (const r of effects.readReady) lines.push(`read-ready ${r.requestId} index=${r.index}`);
  for (const r of effects.readRejected)
    lines.push(`read-rejected ${r.requestId} ${r.code} leader=${r.leaderId ?? "none"}`);
  for (const p of effects.promotions)
    lines.push(
      p.started
        ? `promotion ${p.requestId} started`
        : `promotion ${p.requestId} refused ${p.code} peer=${p.peer ?? "none"}`,
    );
  for (const n of effects.snapshotNeeded)
    lines.push(`snapshot-needed peer=${n.peer} index=${n.index}/${n.term}`);
  if (effects.roleChange) {
    const { role, term, leaderId } = effects.roleChange;
    lines.push(`role ${role} term=${term} leader=${leaderId ?? "none"}`);
  }
  if (effects.discarded.length > 0) lines.push(`discarded ${effects.discarded.map(formatEntry).join(", ")}`);
  for (const event of effects.events) lines.push(formatEvent(event));
  return lines;
}
