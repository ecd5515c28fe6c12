/**
 * The node's history: every role change, election (with its cause), leadership transfer,
 * configuration change, membership change and switchover an operator asked for, and forced
 * recoveries, with time, node and actor. `baton history` merges the histories of every member.
 *
 * Each node keeps its own, durably, in `DATA/review/history.jsonl` (one JSON object a line,
 * fsynced as it is written: these events are rare). A line is `{atMs, node, term, event, ...}`;
 * forced recoveries, written by `baton recover` while the node is stopped, use the same file.
 * Retention: the newest `historyEntriesMax` lines; the file is rewritten (atomically) when it
 * holds twice that many.
 *
 * Causes of an election won (`leader-elected`): `leader-lost` (a follower's election timer fired:
 * the leader failed or was cut off), `transfer` (the previous leader handed leadership over: a
 * switchover, a graceful stop, a removal of the leader, or a hand-off to a voter of higher
 * priority, which the old leader records as `handoff-started reason=priority`), `operator` (a
 * promotion: manual failover, or the approval of a pending one).
 */
import fs from "node:fs";
import path from "node:path";
import type { CoreEvent } from "../consensus/index.ts";

export const historyFileName = path.join("review", "history.jsonl");
/** Lines kept in the history file. */
export const historyEntriesMax = 10_000;
/** Most records one read returns. */
export const historyReadMax = 1_000;

export type HistoryRecord = {
  readonly atMs: number;
  readonly node: string;
  readonly term: number | null;
  readonly event: string;
  readonly [field: string]: unknown;
};

export interface HistorySink {
  record(entry: HistoryRecord): void;
  /** The newest records, newest first, at most `limit`. */
  recent(limit: number): HistoryRecord[];
}

/** For the simulator and unit tests: keeps the newest records in memory. */
export class MemoryHistory implements HistorySink {
  readonly records: HistoryRecord[] = [];

  record(entry: HistoryRecord): void {
    this.records.push(entry);
    if (this.records.length > historyEntriesMax) this.records.shift();
  }

  recent(limit: number): HistoryRecord[] {
    return this.records.slice(-limit).reverse();
  }
}

export class FileHistory implements HistorySink {
  private readonly file: string;
  private lines: number;

  constructor(dataDirectory: string) {
    this.file = path.join(dataDirectory, historyFileName);
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.lines = fs.existsSync(this.file) ? readLines(this.file).length : 0;
  }

  record(entry: HistoryRecord): void {
    const descriptor = fs.openSync(this.file, "a");
    try {
      fs.writeSync(descriptor, `${JSON.stringify(entry)}\n`);
      fs.fdatasyncSync(descriptor);
    } finally {
      fs.closeSync(descriptor);
    }
    this.lines++;
    if (this.lines > 2 * historyEntriesMax) this.trim();
  }

  recent(limit: number): HistoryRecord[] {
    if (!fs.existsSync(this.file)) return [];
    return readLines(this.file)
      .slice(-limit)
      .reverse()
      .map((line) => parseRecord(line));
  }

  private trim(): void {
    const kept = readLines(this.file).slice(-historyEntriesMax);
    const temporary = `${this.file}.tmp`;
    const descriptor = fs.openSync(temporary, "w");
    try {
      fs.writeSync(descriptor, `${kept.join("\n")}\n`);
      fs.fsyncSync(descriptor);
    } finally {
      fs.closeSync(descriptor);
    }
    fs.renameSync(temporary, this.file);
    this.lines = kept.length;
  }
}

function readLines(file: string): string[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "");
}

/** A line as a record; a damaged line (a torn append) is shown as such, never dropped silently. */
function parseRecord(line: string): HistoryRecord {
  try {
    const value = JSON.parse(line) as Record<string, unknown>;
    const event = typeof value.event === "string" ? value.event : String(value.action ?? "unknown");
    return {
      ...value,
      atMs: Number(value.atMs),
      node: String(value.node ?? ""),
      term: typeof value.term === "number" ? value.term : null,
      event,
    };
  } catch {
    return { atMs: 0, node: "", term: null, event: "unreadable-line", line: line.slice(0, 200) };
  }
}

/**
 * The history record of a core event, or null for events that are not history (votes granted,
 * pre-vote rounds, entries discarded: the log and the orphan quarantine keep those).
 */
export function historyOfEvent(event: CoreEvent, atMs: number): HistoryRecord | null {
  const base = { atMs, node: event.node, term: event.term };
  switch (event.type) {
    case "election-started":
      return event.preVote
        ? null
        : { ...base, event: "election-started", cause: event.transfer ? "transfer" : "leader-lost" };
    case "election-won":
      return event.preVote ? null : { ...base, event: "leader-elected", votes: event.votes };
    case "election-lost":
      return event.preVote ? null : { ...base, event: "election-lost", votes: event.votes };
    case "stepped-down":
      return { ...base, event: "stepped-down", reason: event.reason, cause: event.cause };
    case "transfer-started":
      return { ...base, event: "transfer-started", target: event.target };
    case "transfer-aborted":
      return { ...base, event: "transfer-aborted", target: event.target, reason: event.reason };
    case "config-changed":
      return {
        ...base,
        event: "config-changed",
        index: event.index,
        voters: event.voters,
        learners: event.learners,
      };
    case "membership-change-proposed":
      return {
        ...base,
        event: "membership-change-proposed",
        kind: event.kind,
        target: event.target,
        index: event.index,
      };
    case "failover-config-changed":
      return {
        ...base,
        event: "failover-config-changed",
        index: event.index,
        settings: event.settings,
        members: event.members,
      };
    case "leader-lost":
      return {
        ...base,
        event: "leader-lost",
        lastLeader: event.lastLeader,
        mode: event.mode,
        paused: event.paused,
      };
    case "failover-pending":
      return {
        ...base,
        event: "failover-pending",
        candidate: event.candidate,
        lastIndex: event.lastIndex,
        lastTerm: event.lastTerm,
        relay: event.relay,
        unheardVoters: event.unheardVoters,
        policy: event.policy,
      };
    case "failover-timeout":
      return { ...base, event: "failover-timeout", policy: event.policy, candidate: event.candidate };
    case "promote-started":
      return { ...base, event: "promote-started" };
    case "promote-refused":
      return { ...base, event: "promote-refused", code: event.code, peer: event.peer };
    case "handoff-started":
      return { ...base, event: "handoff-started", target: event.target, reason: event.reason };
    default:
      return null;
  }
}
