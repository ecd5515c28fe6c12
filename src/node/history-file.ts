/**
 * A node's own history on disk (`history.ts` says what is recorded): `DATA/review/history.jsonl`,
 * one JSON record a line, and `DATA/review/history-replicated.json`, the highest sequence the
 * leader confirmed replicated (replaced whole; losing it only means records are sent again, which
 * the replicated table ignores). Forced recoveries, written by `baton recover` while the node is
 * stopped, use the same file and are replicated once the node runs with a leader.
 *
 * Off the event loop: a record is appended at once and fdatasynced on libuv's thread pool (one sync
 * at a time covers every line appended before it), and the replicated mark is written there too
 * (`ReplacedFile`). Records come at elections and role changes, exactly when heartbeats matter, and
 * while the disk was busy one fsync on the main thread took 1.26 s (an election under way stalls).
 * A failed sync is a storage failure: `onFailure` receives it, and the node stops.
 *
 * Retention: the newest `historyEntriesMax` lines; the file is rewritten (atomically) when it holds
 * twice that many. A damaged line (a torn append) is shown as such, never dropped silently.
 */
import fs from "node:fs";
import path from "node:path";
import { type HistoryRecord, historyEntriesMax, SequencedHistory } from "./history.ts";
import { ReplacedFile } from "./replaced-file.ts";
import { writeFileDurably } from "./write-file-durably.ts";

export const historyFileName = path.join("review", "history.jsonl");
export const historyReplicatedFileName = path.join("review", "history-replicated.json");

export class FileHistory extends SequencedHistory {
  private readonly file: string;
  private lines: number;

  private readonly replicated: ReplacedFile;
  private readonly onFailure: (error: Error) => void;
  /** The fdatasync under way, and whether lines were appended after it began. */
  private syncing: Promise<void> | null = null;
  private appendedSinceSync = false;

  /** `onFailure`: a failed fdatasync of the history file (the default throws it, out of the loop). */
  constructor(
    dataDirectory: string,
    onFailure: (error: Error) => void = (error) => {
      throw error;
    },
  ) {
    const file = path.join(dataDirectory, historyFileName);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const lines = fs.existsSync(file) ? readLines(file) : [];
    const replicatedFile = path.join(dataDirectory, historyReplicatedFileName);
    super(
      lines.slice(-historyEntriesMax).map((line) => parseRecord(line)),
      readThrough(replicatedFile),
    );
    this.file = file;
    this.lines = lines.length;
    this.onFailure = onFailure;
    this.replicated = new ReplacedFile(replicatedFile, onFailure);
  }

  /** Resolves once every record is synced and the replicated mark written (before the node stops). */
  async settled(): Promise<void> {
    while (this.syncing !== null) await this.syncing;
    await this.replicated.settled();
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
    } finally {
      fs.closeSync(descriptor);
    }
    this.lines++;
    if (this.lines > 2 * historyEntriesMax) this.trim();
    this.appendedSinceSync = true;
    this.syncing ??= this.syncAppended().finally(() => {
      this.syncing = null;
    });
  }

  private async syncAppended(): Promise<void> {
    while (this.appendedSinceSync) {
      this.appendedSinceSync = false;
      try {
        await this.datasync(this.file);
      } catch (error) {
        this.onFailure(error as Error);
        return;
      }
    }
  }

  /** fdatasyncs `file` on the thread pool (a seam for tests of a failing disk). */
  protected async datasync(file: string): Promise<void> {
    const handle = await fs.promises.open(file, "r");
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  protected saveThrough(seq: number): void {
    this.replicated.replace(JSON.stringify({ replicatedThrough: seq }));
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
