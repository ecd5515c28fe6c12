/**
 * A node's own history on disk (`history.ts` says what is recorded): `DATA/review/history.jsonl`,
 * one JSON record a line, fsynced as it is written (these events are rare), and
 * `DATA/review/history-replicated.json`, the highest sequence the leader confirmed replicated
 * (written atomically; losing it only means records are sent again, which the replicated table
 * ignores). Forced recoveries, written by `baton recover` while the node is stopped, use the same
 * file and are replicated once the node runs with a leader.
 *
 * Retention: the newest `historyEntriesMax` lines; the file is rewritten (atomically) when it holds
 * twice that many. A damaged line (a torn append) is shown as such, never dropped silently.
 */
import fs from "node:fs";
import path from "node:path";
import { type HistoryRecord, historyEntriesMax, SequencedHistory } from "./history.ts";
import { writeFileDurably } from "./write-file-durably.ts";

export const historyFileName = path.join("review", "history.jsonl");
export const historyReplicatedFileName = path.join("review", "history-replicated.json");

export class FileHistory extends SequencedHistory {
  private readonly file: string;
  private readonly replicatedFile: string;
  private lines: number;

  constructor(dataDirectory: string) {
    const file = path.join(dataDirectory, historyFileName);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const lines = fs.existsSync(file) ? readLines(file) : [];
    const replicatedFile = path.join(dataDirectory, historyReplicatedFileName);
    super(
      lines.slice(-historyEntriesMax).map((line) => parseRecord(line)),
      readThrough(replicatedFile),
    );
    this.file = file;
    this.replicatedFile = replicatedFile;
    this.lines = lines.length;
  }

  recent(limit: number): HistoryRecord[] {
    if (!fs.existsSync(this.file)) return [];
    return readLines(this.file)
      .slice(-limit)
      .reverse()
      .map((line) => parseRecord(line));
  }

  protected write(record: HistoryRecord): void {
    const descriptor = fs.openSync(this.file, "a");
    try {
      fs.writeSync(descriptor, `${JSON.stringify(record)}\n`);
      fs.fdatasyncSync(descriptor);
    } finally {
      fs.closeSync(descriptor);
    }
    this.lines++;
    if (this.lines > 2 * historyEntriesMax) this.trim();
  }

  protected saveThrough(seq: number): void {
    writeFileDurably(this.replicatedFile, JSON.stringify({ replicatedThrough: seq }));
  }

  private trim(): void {
    const kept = readLines(this.file).slice(-historyEntriesMax);
    writeFileDurably(this.file, `${kept.join("\n")}\n`);
    this.lines = kept.length;
  }
}

function readLines(file: string): string[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "");
}

/** The replicated sequence kept in `file`; 0 when there is none or it cannot be read (sent again). */
function readThrough(file: string): number {
  try {
    const value = (JSON.parse(fs.readFileSync(file, "utf8")) as { replicatedThrough?: unknown })
      .replicatedThrough;
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : 0;
  } catch {
    return 0;
  }
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
      seq:
        typeof value.seq === "number" && Number.isSafeInteger(value.seq) && value.seq > 0 ? value.seq : null,
    };
  } catch {
    return { atMs: 0, node: "", term: null, event: "unreadable-line", line: line.slice(0, 200), seq: null };
  }
}
