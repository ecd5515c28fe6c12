/**
 * The history: every role change, election (with its cause), leadership transfer, configuration
 * change, membership change, failover (pending, timed out, approved) and operator action, and forced
 * recoveries, with time, node, term and actor. `history-replication.ts` makes it durable beyond the
 * node: records go into the replicated table `_baton_history` through the leader.
 *
 * Each node first records its own events in its sink (`history-file.ts`: `DATA/review/history.jsonl`,
 * fsynced; the simulator keeps them in memory), numbered by a per-node sequence `seq`: the record's
 * key, with the node, in the replicated table. A sequence is `max(previous + 1, atMs × 1000)`: it
 * rises by one within a life of the node, and a node whose history file was lost (a wiped disk)
 * starts above every sequence it used before, as long as its clock did not go back past the time it
 * last recorded (nor it recorded a thousand records in one millisecond). The sink also
 * keeps which of its records are known to be replicated (`replicatedThrough`): those after it are
 * sent again until the leader confirms them.
 *
 * Causes of an election won (`leader-elected`): `leader-lost` (a follower's election timer fired:
 * the leader failed or was cut off), `transfer` (the previous leader handed leadership over: a
 * switchover, a graceful stop, a removal of the leader, or a hand-off to a voter of higher
 * priority, which the old leader records as `handoff-started reason=priority`), `operator` (a
 * promotion: manual failover, or the approval of a pending one).
 */
import type { CoreEvent, CoreEventType } from "../consensus/index.ts";
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type HistoryRow, historyRecordBytesMax } from "../store/index.ts";

/** Records a sink keeps (the file: lines; the replicated table keeps its own bound). */
export const historyEntriesMax = 10_000;
/** Most records one read returns. */
export const historyReadMax = 1_000;
/** Records one push to the leader carries, and one history batch the leader proposes. */
export const historyBatchRecordsMax = 64;
/** Bytes of one push: its rows' JSON (each record within `historyRecordBytesMax`) and their keys. */
export const historyPushBytesMax = historyBatchRecordsMax * (historyRecordBytesMax + 256);

/** Sequences a node may use per millisecond of its clock before running ahead of it (see above). */
export const sequencesPerMs = 1_000;

/** An event as a component records it. */
export type HistoryEvent = {
  readonly atMs: number;
  readonly node: string;
  readonly term: number | null;
  readonly event: string;
  readonly [field: string]: unknown;
};

/** An event as kept: with its sequence (null only for a line without one: damaged or older). */
export type HistoryRecord = HistoryEvent & { readonly seq: number | null };

/** A record as a read answers it: in the replicated history, or so far only on the node that made it. */
export type HistoryEntry = HistoryRecord & { readonly replicated: boolean };

export interface HistorySink {
  /** Records an event durably; returns it with the sequence it was given. */
  record(event: HistoryEvent): HistoryRecord;
  /** The newest records, newest first, at most `limit`. */
  recent(limit: number): HistoryRecord[];
  /** The oldest records not known to be replicated, oldest first, at most `limit`. */
  unreplicated(limit: number): HistoryRecord[];
  /**
   * Every record through `seq` is in the replicated history (committed). Only rises; a sequence this
   * sink never gave (an acknowledgement meant for the node's life before its file was lost) is ignored.
   */
  markReplicated(seq: number): void;
  /** The highest sequence known to be replicated; 0 when none is. */
  readonly replicatedThrough: number;
}

/** Sequences and the records not yet replicated, the part every sink shares. */
export abstract class SequencedHistory implements HistorySink {
  private lastSeq: number;
  private through: number;
  /** Records after `through`, oldest first; at most `historyEntriesMax`. */
  private readonly pending: HistoryRecord[];

  /** `existing`: the records kept from before, oldest first; `through`: what was known replicated. */
  protected constructor(existing: readonly HistoryRecord[], through: number) {
    this.lastSeq = existing.reduce((last, record) => Math.max(last, record.seq ?? 0), 0);
    this.through = Math.min(through, this.lastSeq);
    this.pending = existing.filter((record) => record.seq !== null && record.seq > this.through);
    this.pending.splice(0, Math.max(0, this.pending.length - historyEntriesMax));
  }

  get replicatedThrough(): number {
    return this.through;
  }

  record(event: HistoryEvent): HistoryRecord {
    const seq = Math.max(this.lastSeq + 1, Math.floor(event.atMs) * sequencesPerMs);
    assert(Number.isSafeInteger(seq) && seq > this.lastSeq, "history sequences rise");
    const record: HistoryRecord = { ...event, seq };
    this.write(record);
    this.lastSeq = seq;
    this.pending.push(record);
    if (this.pending.length > historyEntriesMax) this.pending.shift();
    return record;
  }

  unreplicated(limit: number): HistoryRecord[] {
    return this.pending.slice(0, limit);
  }

  markReplicated(seq: number): void {
    if (seq <= this.through || seq > this.lastSeq) return;
    this.through = seq;
    const kept = this.pending.findIndex((record) => (record.seq ?? 0) > seq);
    this.pending.splice(0, kept === -1 ? this.pending.length : kept);
    assert(
      this.pending.every((record) => (record.seq ?? 0) > seq),
      "no replicated record is pending",
    );
    this.saveThrough(seq);
  }

  abstract recent(limit: number): HistoryRecord[];
  /** Keeps a record durably before it counts as recorded. */
  protected abstract write(record: HistoryRecord): void;
  /** Keeps the replicated sequence (losing it only means records are sent again). */
  protected abstract saveThrough(seq: number): void;
}

/** For the simulator and unit tests: keeps the newest records in memory. */
export class MemoryHistory extends SequencedHistory {
  readonly records: HistoryRecord[] = [];

  constructor() {
    super([], 0);
  }

  recent(limit: number): HistoryRecord[] {
    return this.records.slice(-limit).reverse();
  }

  protected write(record: HistoryRecord): void {
    this.records.push(record);
    if (this.records.length > historyEntriesMax) this.records.shift();
  }

  protected saveThrough(): void {}
}

/**
 * A record as the replicated table holds it: its JSON text, within `historyRecordBytesMax`. A record
 * larger than that (a forced recovery's loss report) is replicated with its first fields only and
 * `truncated: true`; the node's own file keeps it whole.
 */
export function historyRowOf(record: HistoryRecord): HistoryRow {
  const { atMs, node, term, event, seq } = record;
  assert(seq !== null, "only records with a sequence are replicated");
  let text = JSON.stringify(record);
  if (Buffer.byteLength(text, "utf8") > historyRecordBytesMax) {
    text = JSON.stringify({ atMs, node, term, event, seq, truncated: true });
    assert(Buffer.byteLength(text, "utf8") <= historyRecordBytesMax, "a truncated record fits");
  }
  return { node, seq, atMs: Math.floor(atMs), record: text };
}

/**
 * The rows of a push (peer-envelope.ts), checked: at most `historyBatchRecordsMax`, each with a node,
 * a positive sequence, a time and a record within its bound; anything else is `BAD_MESSAGE`.
 */
export function decodeHistoryRows(json: Uint8Array): HistoryRow[] {
  const malformed = (why: string): BatonError =>
    new BatonError(ErrorCode.BAD_MESSAGE, `malformed history push: ${why}`);
  if (json.byteLength > historyPushBytesMax) throw malformed(`more than ${historyPushBytesMax} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(json).toString("utf8"));
  } catch {
    throw malformed("not JSON");
  }
  if (!Array.isArray(value) || value.length > historyBatchRecordsMax)
    throw malformed(`not an array of at most ${historyBatchRecordsMax} rows`);
  return value.map((item: unknown) => {
    const row = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>;
    const { node, seq, atMs, record } = row;
    if (typeof node !== "string" || node.length === 0 || node.length > 200) throw malformed("a row's node");
    if (!Number.isSafeInteger(seq) || (seq as number) < 1) throw malformed("a row's sequence");
    if (!Number.isSafeInteger(atMs)) throw malformed("a row's time");
    if (typeof record !== "string" || Buffer.byteLength(record, "utf8") > historyRecordBytesMax)
      throw malformed("a row's record");
    return { node, seq: seq as number, atMs: atMs as number, record };
  });
}

/** A replicated row as a record (the row's key wins over what its text says). */
export function historyEntryOfRow(row: HistoryRow): HistoryEntry {
  let value: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(row.record) as unknown;
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
      value = parsed as Record<string, unknown>;
  } catch {
    value = { event: "unreadable-record" };
  }
  const event = typeof value.event === "string" ? value.event : "unknown";
  const term = typeof value.term === "number" ? value.term : null;
  return { ...value, atMs: row.atMs, node: row.node, term, event, seq: row.seq, replicated: true };
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
export function historyOfEvent(event: CoreEvent, atMs: number): HistoryEvent | null {
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

/** Records the core's events in a sink, an election won with the cause of its start. */
export class EventHistory {
  private readonly sink: HistorySink;
  /** Why this node's latest real election started (its `leader-elected` record carries it). */
  private electionCause: string | null = null;
  /** An operator promoted this node: its next election is theirs. */
  private promoted = false;

  constructor(sink: HistorySink) {
    this.sink = sink;
  }

  note(event: CoreEvent, atMs: number): void {
    if (event.type === "promote-started") this.promoted = true;
    if (event.type === "election-started" && !event.preVote) {
      this.electionCause = event.transfer ? "transfer" : this.promoted ? "operator" : "leader-lost";
      this.promoted = false;
    }
    const record = historyOfEvent(event, atMs);
    if (record === null) return;
    this.sink.record(
      record.event === "leader-elected" ? { ...record, cause: this.electionCause ?? "unknown" } : record,
    );
  }
}
