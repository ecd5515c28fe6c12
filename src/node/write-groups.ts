/**
 * Write groups: the in-process write batches that pass the write gate in one turn of the event loop
 * share one log entry. A batch costs the leader a SQLite session, a changeset, a proposal and a log
 * record, and each follower a record and an apply; under many concurrent writers those per-entry
 * costs were larger than the writes themselves. Grouping keeps every batch's own result, error and
 * request id (leader-group.ts in the store); only the entry is shared.
 *
 * - A batch joins the pending list when it passed the gate; the list runs at `Timers.soon`, after
 *   the turn's other input was handled, as consecutive groups (`groupsOf`).
 * - A group holds batches of one durability level (the entry's), at most `writeGroupBatchesMax`.
 *   A batch handed back `alone` (its changes with others' passed the payload bound) gets a group of
 *   its own. A batch whose request id another batch of this run carries runs again later: by then
 *   the first is remembered, and the retry is answered from the request log.
 * - The pending list is bounded by the writes in flight (`writesInFlightMax`, admission.ts): every
 *   member is one of them.
 * - Every member is settled by the run: a result, an error, or `again` (it left no trace; the writer
 *   checks the gate again and rejoins).
 */
import type { NormalizedExecute } from "../api/request-validation.ts";
import type { Cancel, Timers } from "./runtime.ts";

/** Batches in one group (one log entry) at most. */
export const writeGroupBatchesMax = 64;

/** A write that ran in a group: where its entry is and how to wait for it. */
export type GroupedWrite<T> = { readonly kind: "ran"; readonly write: T };
/** Nothing of the write was applied: check the gate again and rejoin (`alone`: in a group of its own). */
export type RunAgain = { readonly kind: "again"; readonly alone: boolean };

export type GroupMember<T> = {
  readonly request: NormalizedExecute;
  readonly deadlineMs: number;
  /** The term in which the batch passed the gate. */
  readonly term: number;
  readonly alone: boolean;
  readonly resolve: (outcome: GroupedWrite<T> | RunAgain) => void;
  readonly reject: (error: unknown) => void;
};

export const runAgain: RunAgain = { kind: "again", alone: false };

export class WriteGroups<T> {
  private pending: GroupMember<T>[] = [];
  private scheduled: Cancel | null = null;
  private readonly timers: Timers;
  private readonly run: (members: readonly GroupMember<T>[]) => void;

  /** `run` settles every member of the group it is given; a throw fails those it did not settle. */
  constructor(timers: Timers, run: (members: readonly GroupMember<T>[]) => void) {
    this.timers = timers;
    this.run = run;
  }

  join(request: NormalizedExecute, deadlineMs: number, term: number, alone: boolean) {
    return new Promise<GroupedWrite<T> | RunAgain>((resolve, reject) => {
      this.pending.push({ request, deadlineMs, term, alone, resolve, reject });
      this.scheduled ??= this.timers.soon(() => this.runPending());
    });
  }

  private runPending(): void {
    this.scheduled = null;
    const pending = this.pending;
    this.pending = [];
    for (const group of groupsOf(pending)) {
      try {
        this.run(group);
      } catch (error) {
        for (const member of group) member.reject(error);
      }
    }
  }
}

/** Splits the pending members into groups in arrival order (see the module header). */
export function groupsOf<T>(pending: readonly GroupMember<T>[]): GroupMember<T>[][] {
  const groups: GroupMember<T>[][] = [];
  const open = new Map<string, GroupMember<T>[]>();
  const requestIds = new Set<string>();
  for (const member of pending) {
    const { requestId, durability } = member.request;
    if (requestId !== null) {
      if (requestIds.has(requestId)) {
        member.resolve(runAgain);
        continue;
      }
      requestIds.add(requestId);
    }
    if (member.alone) {
      groups.push([member]);
      continue;
    }
    const key = durability ?? "";
    let group = open.get(key);
    if (group === undefined || group.length >= writeGroupBatchesMax) {
      group = [];
      open.set(key, group);
      groups.push(group);
    }
    group.push(member);
  }
  return groups;
}
