/**
 * Forced recovery from the loss of a majority (`baton recover --force`), and what a node records so
 * that an operator can judge one.
 *
 * Raft cannot elect a leader without a majority: when most voters are gone for good, the cluster
 * stays unavailable. A forced recovery makes one surviving node the only voter of a new cluster
 * *incarnation*: its log becomes the truth (entries it holds that were never committed become
 * committed; entries others committed that it lacks are lost). The old members must never mix
 * with the new cluster, so the incarnation is part of the cluster id every peer connection
 * announces: an old member that returns is refused at the handshake (`cluster-id-mismatch`), and
 * the recovered node refuses it in turn, both logging why.
 *
 * Files in the data directory:
 *   recovery.json          the incarnation this node runs as (written atomically by `recover`);
 *                          `baton start` then serves cluster id `<id>~r<n>` with itself as the
 *                          only voter, whatever `--cluster` says
 *   review/contacts.json   when this node last heard from each member (written by the running
 *                          node every few seconds), for the loss report
 *   review/history.jsonl   one line per forced recovery
 */
import fs from "node:fs";
import path from "node:path";
import type { StatusResponse } from "../api/api-types.ts";
import { encodeClusterConfig } from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { Store } from "../store/store.ts";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { Wal } from "../wal/wal.ts";
import { FileHistory } from "./history-file.ts";
import { ReplacedFile } from "./replaced-file.ts";
import { writeFileDurably } from "./write-file-durably.ts";

export type Recovery = {
  readonly incarnation: number;
  /** The cluster id before the recovery, without any incarnation suffix. */
  readonly baseClusterId: string;
  readonly recoveredAtMs: number;
  readonly node: string;
};

export const recoveryFileName = "recovery.json";
const contactsFileName = path.join("review", "contacts.json");

export function readRecovery(dataDirectory: string): Recovery | null {
  const file = path.join(dataDirectory, recoveryFileName);
  if (!fs.existsSync(file)) return null;
  let parsed: Partial<Recovery>;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<Recovery>;
  } catch (error) {
    throw new BatonError(ErrorCode.STORE_CORRUPT, `${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (!Number.isSafeInteger(parsed.incarnation) || typeof parsed.baseClusterId !== "string")
    throw new BatonError(ErrorCode.STORE_CORRUPT, `${file} has no incarnation or cluster id`);
  return parsed as Recovery;
}

/** The cluster id a node of incarnation `n` announces. */
export function incarnationClusterId(baseClusterId: string, incarnation: number): string {
  return incarnation === 0 ? baseClusterId : `${baseClusterId}~r${incarnation}`;
}

/** Records when this node last heard from each member; the running node calls `record` every few seconds. */
export class ContactsRecorder {
  readonly #file: ReplacedFile;
  /** What the latest record holds: a member this node has not heard from since keeps its time. */
  #recorded: Record<string, number | null>;

  constructor(dataDirectory: string, onError: (error: Error) => void) {
    this.#file = new ReplacedFile(path.join(dataDirectory, contactsFileName), onError);
    this.#recorded = readContacts(dataDirectory);
  }

  /** Writes off the event loop (`ReplacedFile`). */
  record(status: StatusResponse, nowMs: number): void {
    const contacts: Record<string, number | null> = {};
    for (const member of status.members) {
      if (member.id === status.id) continue;
      const lastContactMs = typeof member.lastContactMs === "number" ? member.lastContactMs : null;
      const isLeader = status.leader?.id === member.id;
      contacts[member.id] = lastContactMs !== null ? nowMs - lastContactMs : isLeader ? nowMs : null;
    }
    for (const [id, at] of Object.entries(this.#recorded)) if (contacts[id] == null) contacts[id] = at;
    this.#recorded = contacts;
    this.#file.replace(JSON.stringify(contacts));
  }

  /** Texts replaced before they were written (`ReplacedFile.superseded`). */
  get superseded(): number {
    return this.#file.superseded;
  }

  /** Resolves once no write is under way (before the node's data directory is closed or removed). */
  settled(): Promise<void> {
    return this.#file.settled();
  }
}

function readContacts(dataDirectory: string): Record<string, number | null> {
  try {
    return JSON.parse(fs.readFileSync(path.join(dataDirectory, contactsFileName), "utf8")) as Record<
      string,
      number | null
    >;
  } catch {
    return {};
  }
}

export type LossReport = {
  readonly node: string;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly appliedIndex: number;
  /** Entries after the applied index: not known to be committed; recovery commits them. */
  readonly uncertain: { readonly from: number; readonly to: number; readonly count: number } | null;
  readonly members: readonly { readonly id: string; readonly lastContactAtMs: number | null }[];
  readonly incarnation: number;
};

/** Reads what the stopped node at `dataDirectory` holds and what a recovery would cost. */
export function planRecovery(dataDirectory: string, node: string, members: readonly string[]): LossReport {
  if (!fs.existsSync(path.join(dataDirectory, "baton.db")))
    throw new BatonError(ErrorCode.BAD_CONFIG, `${dataDirectory} holds no Baton node`);
  const { wal } = Wal.open(path.join(dataDirectory, "log"));
  const store = Store.open({ path: path.join(dataDirectory, "baton.db") });
  try {
    const applied = store.appliedIndex;
    const last = wal.lastIndex;
    const contacts = readContacts(dataDirectory);
    return {
      node,
      lastIndex: last,
      lastTerm: wal.lastTerm,
      appliedIndex: applied,
      uncertain: last > applied ? { from: applied + 1, to: last, count: last - applied } : null,
      members: members
        .filter((id) => id !== node)
        .map((id) => ({ id, lastContactAtMs: contacts[id] ?? null })),
      incarnation: (readRecovery(dataDirectory)?.incarnation ?? 0) + 1,
    };
  } finally {
    store.close();
    void wal.close();
  }
}

/**
 * Writes the recovery (atomically) and its history line, then moves the hard state to a new term
 * with no vote (the vote of the old term may name a member the new incarnation does not have) and
 * appends a configuration entry naming this node the only voter.
 */
export async function applyRecovery(
  dataDirectory: string,
  report: LossReport,
  baseClusterId: string,
  nowMs: number,
): Promise<Recovery> {
  const recovery: Recovery = {
    incarnation: report.incarnation,
    baseClusterId,
    recoveredAtMs: nowMs,
    node: report.node,
  };
  writeFileDurably(path.join(dataDirectory, recoveryFileName), JSON.stringify(recovery));
  // Only now the log: a crash before this point leaves the old log under the new incarnation's
  // cluster id, which no old member can reach, so the node waits harmlessly until `recover` runs
  // again. The configuration entry makes this node the only voter whatever configuration entries
  // the log held (they would otherwise rule over the command line); it commits with the first
  // entry of the node's own term as leader.
  const { wal } = Wal.open(path.join(dataDirectory, "log"));
  try {
    const newTerm = term(Math.max(wal.hardState.term, wal.lastTerm) + 1);
    await wal.saveHardState({ term: newTerm, votedFor: null });
    await wal.append([
      {
        index: logIndex(wal.lastIndex + 1),
        term: newTerm,
        kind: EntryKind.config,
        data: encodeClusterConfig({ voters: [nodeId(report.node)], learners: [] }),
      },
    ]);
  } finally {
    await wal.close();
  }
  const history = new FileHistory(dataDirectory);
  history.record({
    atMs: nowMs,
    term: null,
    event: "forced-recovery",
    actor: "operator",
    ...report,
  });
  await history.settled();
  return recovery;
}
