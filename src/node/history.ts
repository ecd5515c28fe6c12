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
import type { CoreEvent, CoreEventType } from "../consensus/index.ts";

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
 * Core events recorded with all their fields but ticks (a node's own clock, which means nothing to a
 * reader of the history).
 */
const recordedAsTheyAre: ReadonlySet<CoreEventType> = new Set<CoreEventType>([
  "stepped-down",
  "transfer-started",
  "transfer-aborted",
  "config-changed",
  "membership-change-proposed",
  "failover-config-changed",
  "leader-lost",
  "failover-pending",
  "failover-timeout",
  "promote-started",
  "promote-refused",
  "handoff-started",
]);

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
  }
  if (!recordedAsTheyAre.has(event.type)) return null;
  const {
    type,
    node: _node,
    term: _term,
    ...fields
  } = event as CoreEvent & {
    leaderHeardTick?: number;
    deadlineTick?: number;
  };
  delete fields.leaderHeardTick;
  delete fields.deadlineTick;
  return { ...base, event: type, ...fields };
}
