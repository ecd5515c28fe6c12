/**
 * Checker for the list-append workload. Clients append unique integers to a few keys (each key holds
 * a list) and read whole lists back; once the cluster has settled the harness reads every key's final
 * list. The checker is pure: it takes that history and those final lists and returns every violation
 * it finds, each under its own permanent `kind`, with a tally of acknowledged writes that were lost.
 *
 *  - `duplicate`: no value appears twice in a final list or in a read. A client may retry a write under
 *    the same request id, and the database promises to apply it at most once.
 *  - `phantom`: every value seen in a read or a final list was appended to that key by some attempt
 *    whose outcome is not `failed`. A failed attempt is a definite "not applied".
 *  - `future-read`: no read returns a value it completed before any attempt that could have applied
 *    it was invoked.
 *  - `not-prefix`: every successful read, at any consistency, is a prefix of its key's final list,
 *    because every read in this database sees only committed state and committed state is never undone.
 *  - `lost-write`: every value acknowledged at `majority` or `all` is in the final list. Values
 *    acknowledged at `local` or `one` may be lost across failovers: those are tallied in `lost`.
 *  - `stale-read`: a linearizable read is at least as long as every linearizable read of its key that
 *    completed before it was invoked. Reads are prefixes of the final list (else `not-prefix` fires),
 *    so the longer read contains every value the shorter one saw: a value once seen by a linearizable
 *    read is seen by every linearizable read invoked after that one completed.
 *  - `missed-write`: a linearizable read invoked after an append to its key was acknowledged at
 *    `majority` or `all` contains that value. The requirement is the value's position in the final
 *    list; a value missing from the final list is reported once, as a `lost-write`, not per read.
 *
 * Time is the simulator's integer tick. "After" is strict: two events in one tick have no known order.
 * Cost is O(n log n) in operations plus the total length of the lists read. The real-time rules never
 * compare reads pairwise: each key's linearizable reads are swept in invocation order against the
 * completions before them, keeping only the longest length any of those completions requires.
 */
import type { Consistency, Durability } from "../../src/api/api-types.ts";
import { assert } from "../../src/lib/assert.ts";

/** `failed`: definitely not applied (refused before running). `unknown`: may or may not have been. */
export type Outcome = "ok" | "failed" | "unknown";

/** One attempt to append `value` to `key`; a retry of the same write is another attempt, same value. */
export type AppendOp = {
  readonly kind: "append";
  readonly client: number;
  readonly key: number;
  readonly value: number;
  readonly durability: Durability;
  readonly invokedAt: number;
  readonly completedAt: number | null;
  readonly outcome: Outcome;
};

/** One read of a key's whole list; `values` is set when the outcome is `ok`. */
export type ReadOp = {
  readonly kind: "read";
  readonly client: number;
  readonly key: number;
  readonly consistency: Consistency;
  readonly node: string;
  readonly invokedAt: number;
  readonly completedAt: number | null;
  readonly outcome: Outcome;
  readonly values: readonly number[] | null;
};

export type ListAppendOp = AppendOp | ReadOp;

/** Violation kinds are permanent (callers and tests match on them); messages may change. */
export const ListAppendViolationKind = {
  duplicate: "duplicate",
  phantom: "phantom",
  futureRead: "future-read",
  notPrefix: "not-prefix",
  lostWrite: "lost-write",
  staleRead: "stale-read",
  missedWrite: "missed-write",
} as const;
export type ListAppendViolationKind = (typeof ListAppendViolationKind)[keyof typeof ListAppendViolationKind];

export type Violation = { readonly kind: ListAppendViolationKind; readonly message: string };

export type ListAppendLossCounts = Record<Durability, { acknowledged: number; lost: number }>;

export type ListAppendResult = {
  violations: Violation[];
  /** Per durability level: values acknowledged at that level (their strongest `ok` attempt), and lost. */
  lost: ListAppendLossCounts;
  /** Read operations in the history, whatever their outcome. */
  reads: number;
  /** Append attempts in the history, whatever their outcome (a retried value counts once per attempt). */
  appends: number;
};

/**
 * Violations listed per kind; past this a broken final list (which makes every read of its key fail
 * `not-prefix`) would bury the report, so further ones are only counted, in one closing entry.
 */
export const violationsPerKindMax = 100;

const durabilityStrength: Record<Durability, number> = { local: 0, one: 1, majority: 2, all: 3 };

/** What all attempts at one (key, value) add up to. */
type AppendSummary = {
  /** Earliest invocation among attempts that might have applied the value (outcome not `failed`). */
  firstApplicableInvokedAt: number | null;
  /** Strongest durability among `ok` attempts, or null when no attempt was acknowledged. */
  acknowledgedDurability: Durability | null;
  /** Earliest completion among `ok` attempts at `majority` or `all`: from then on every read must see it. */
  durableAt: number | null;
};

type AppendIndex = Map<number, Map<number, AppendSummary>>;

/** Collects violations, listing at most `violationsPerKindMax` of each kind. */
class ViolationLog {
  private readonly listed: Violation[] = [];
  private readonly countByKind = new Map<ListAppendViolationKind, number>();

  add(kind: ListAppendViolationKind, message: string): void {
    const count = (this.countByKind.get(kind) ?? 0) + 1;
    this.countByKind.set(kind, count);
    if (count <= violationsPerKindMax) this.listed.push({ kind, message });
  }

  result(): Violation[] {
    const closing: Violation[] = [];
    for (const [kind, count] of this.countByKind) {
      if (count > violationsPerKindMax)
        closing.push({ kind, message: `${count - violationsPerKindMax} more ${kind} violations not listed` });
    }
    return [...this.listed, ...closing];
  }
}

/** Checks a list-append history against the final lists read from the settled cluster. */
export function checkListAppend(
  history: readonly ListAppendOp[],
  finalLists: ReadonlyMap<number, readonly number[]>,
): ListAppendResult {
  const appends = history.filter((op): op is AppendOp => op.kind === "append");
  const reads = history.filter((op): op is ReadOp => op.kind === "read");
  reads.forEach(assertReadWellFormed);
  appends.forEach(assertAppendWellFormed);
  const index = indexAppends(appends);
  const log = new ViolationLog();
  checkLists(reads, finalLists, index, log);
  checkPrefixes(reads, finalLists, log);
  const lost = checkDurability(index, finalLists, log);
  checkRealTime(reads, finalLists, index, log);
  return { violations: log.result(), lost, reads: reads.length, appends: appends.length };
}

function assertReadWellFormed(read: ReadOp): void {
  assert(
    read.completedAt === null || read.completedAt >= read.invokedAt,
    `read by client ${read.client} completed at ${read.completedAt}, before it was invoked at ${read.invokedAt}`,
  );
  assert(
    read.outcome !== "ok" || (read.values !== null && read.completedAt !== null),
    `read by client ${read.client} invoked at ${read.invokedAt} is ok but has no values or completion`,
  );
}

function assertAppendWellFormed(append: AppendOp): void {
  assert(
    append.completedAt === null || append.completedAt >= append.invokedAt,
    `append of ${append.value} completed at ${append.completedAt}, before it was invoked at ${append.invokedAt}`,
  );
  assert(
    append.outcome !== "ok" || append.completedAt !== null,
    `append of ${append.value} invoked at ${append.invokedAt} is ok but has no completion`,
  );
}

/** Folds every attempt into one summary per (key, value). */
function indexAppends(appends: readonly AppendOp[]): AppendIndex {
  const index: AppendIndex = new Map();
  for (const append of appends) {
    let byValue = index.get(append.key);
    if (byValue === undefined) index.set(append.key, (byValue = new Map()));
    let summary = byValue.get(append.value);
    if (summary === undefined) {
      summary = { firstApplicableInvokedAt: null, acknowledgedDurability: null, durableAt: null };
      byValue.set(append.value, summary);
    }
    if (append.outcome !== "failed")
      summary.firstApplicableInvokedAt = Math.min(
        summary.firstApplicableInvokedAt ?? Infinity,
        append.invokedAt,
      );
    if (append.outcome !== "ok") continue;
    const strongest = summary.acknowledgedDurability;
    if (strongest === null || durabilityStrength[append.durability] > durabilityStrength[strongest])
      summary.acknowledgedDurability = append.durability;
    if (durabilityStrength[append.durability] >= durabilityStrength.majority)
      summary.durableAt = Math.min(summary.durableAt ?? Infinity, append.completedAt!);
  }
  return index;
}

function describeRead(read: ReadOp): string {
  return (
    `${read.consistency} read of key ${read.key} by client ${read.client} on ${read.node} ` +
    `[${read.invokedAt}, ${read.completedAt}]`
  );
}

/**
 * Duplicates, phantoms and future reads, in every successful read and every final list. A duplicate
 * or phantom value is reported once per key, where it is first seen, since one bad apply shows up in
 * every later read.
 */
function checkLists(
  reads: readonly ReadOp[],
  finalLists: ReadonlyMap<number, readonly number[]>,
  index: AppendIndex,
  log: ViolationLog,
): void {
  const reported = new Set<string>();
  const once = (kind: ListAppendViolationKind, key: number, value: number, message: string): void => {
    const id = `${kind}/${key}/${value}`;
    if (reported.has(id)) return;
    reported.add(id);
    log.add(kind, message);
  };
  for (const read of reads) {
    if (read.outcome !== "ok") continue;
    checkList(read.key, read.values!, describeRead(read), index, once);
    checkFutureRead(read, index, log);
  }
  for (const [key, list] of finalLists) checkList(key, list, `the final list of key ${key}`, index, once);
}

function checkList(
  key: number,
  list: readonly number[],
  where: string,
  index: AppendIndex,
  once: (kind: ListAppendViolationKind, key: number, value: number, message: string) => void,
): void {
  const seen = new Set<number>();
  for (const value of list) {
    if (seen.has(value)) once("duplicate", key, value, `${where} holds ${value} more than once`);
    seen.add(value);
    const summary = index.get(key)?.get(value);
    if (summary === undefined) {
      once("phantom", key, value, `${where} holds ${value}, which no attempt appended to key ${key}`);
    } else if (summary.firstApplicableInvokedAt === null) {
      once("phantom", key, value, `${where} holds ${value}, whose every attempt failed`);
    }
  }
}

/** A read that completed before any attempt at a value was invoked cannot have seen that value. */
function checkFutureRead(read: ReadOp, index: AppendIndex, log: ViolationLog): void {
  const byValue = index.get(read.key);
  for (const value of read.values!) {
    const invokedAt = byValue?.get(value)?.firstApplicableInvokedAt ?? null;
    if (invokedAt !== null && invokedAt > read.completedAt!)
      log.add("future-read", `${describeRead(read)} holds ${value}, first appended at ${invokedAt}`);
  }
}

function checkPrefixes(
  reads: readonly ReadOp[],
  finalLists: ReadonlyMap<number, readonly number[]>,
  log: ViolationLog,
): void {
  for (const read of reads) {
    if (read.outcome !== "ok") continue;
    const values = read.values!;
    const final = finalLists.get(read.key) ?? [];
    const differsAt = firstDifference(values, final);
    if (differsAt === null) continue;
    const found = differsAt < final.length ? `${final[differsAt]}` : "its end";
    log.add(
      "not-prefix",
      `${describeRead(read)} is not a prefix of the final list: position ${differsAt} holds ` +
        `${values[differsAt]} where the final list holds ${found}`,
    );
  }
}

/** The first position where `values` departs from being a prefix of `final`, or null if it is one. */
function firstDifference(values: readonly number[], final: readonly number[]): number | null {
  for (let position = 0; position < values.length; position++) {
    if (position >= final.length || values[position] !== final[position]) return position;
  }
  return null;
}

function checkDurability(
  index: AppendIndex,
  finalLists: ReadonlyMap<number, readonly number[]>,
  log: ViolationLog,
): ListAppendLossCounts {
  const lost: ListAppendLossCounts = {
    local: { acknowledged: 0, lost: 0 },
    one: { acknowledged: 0, lost: 0 },
    majority: { acknowledged: 0, lost: 0 },
    all: { acknowledged: 0, lost: 0 },
  };
  for (const [key, byValue] of index) {
    const final = new Set(finalLists.get(key) ?? []);
    for (const [value, summary] of byValue) {
      const durability = summary.acknowledgedDurability;
      if (durability === null) continue;
      lost[durability].acknowledged++;
      if (final.has(value)) continue;
      lost[durability].lost++;
      if (summary.durableAt !== null)
        log.add(
          "lost-write",
          `${value}, appended to key ${key} and acknowledged at ${durability} at ${summary.durableAt}, ` +
            `is missing from the final list`,
        );
    }
  }
  return lost;
}

/** A completion that every linearizable read invoked strictly after `at` must reach in length. */
type Requirement = {
  readonly at: number;
  readonly lengthMin: number;
  readonly kind: "stale-read" | "missed-write";
  readonly cause: string;
};

function checkRealTime(
  reads: readonly ReadOp[],
  finalLists: ReadonlyMap<number, readonly number[]>,
  index: AppendIndex,
  log: ViolationLog,
): void {
  const readsByKey = new Map<number, ReadOp[]>();
  for (const read of reads) {
    if (read.outcome !== "ok" || read.consistency !== "linearizable") continue;
    let list = readsByKey.get(read.key);
    if (list === undefined) readsByKey.set(read.key, (list = []));
    list.push(read);
  }
  for (const [key, keyReads] of readsByKey) {
    const requirements = [
      ...keyReads.map(readRequirement),
      ...writeRequirements(index.get(key), finalLists.get(key) ?? []),
    ];
    sweepKey(keyReads, requirements, log);
  }
}

function readRequirement(read: ReadOp): Requirement {
  return {
    at: read.completedAt!,
    lengthMin: read.values!.length,
    kind: "stale-read",
    cause: `${describeRead(read)}, which saw ${read.values!.length} values`,
  };
}

/** Each value acknowledged at `majority` or `all` requires reads to reach its place in the final list. */
function writeRequirements(
  byValue: Map<number, AppendSummary> | undefined,
  final: readonly number[],
): Requirement[] {
  if (byValue === undefined) return [];
  const positionOf = new Map<number, number>();
  final.forEach((value, position) => {
    if (!positionOf.has(value)) positionOf.set(value, position);
  });
  const requirements: Requirement[] = [];
  for (const [value, summary] of byValue) {
    const position = positionOf.get(value);
    if (summary.durableAt === null || position === undefined) continue;
    requirements.push({
      at: summary.durableAt,
      lengthMin: position + 1,
      kind: "missed-write",
      cause: `the append of ${value}, acknowledged at ${summary.acknowledgedDurability} at ${summary.durableAt}`,
    });
  }
  return requirements;
}

/**
 * Sweeps one key's linearizable reads in invocation order. Before each read, every requirement that
 * completed strictly before its invocation joins the running maximum; only the strongest one matters.
 */
function sweepKey(reads: readonly ReadOp[], requirements: Requirement[], log: ViolationLog): void {
  const byInvocation = [...reads].sort((a, b) => a.invokedAt - b.invokedAt);
  requirements.sort((a, b) => a.at - b.at);
  let strongest: Requirement | null = null;
  let next = 0;
  for (const read of byInvocation) {
    while (next < requirements.length && requirements[next]!.at < read.invokedAt) {
      const candidate = requirements[next++]!;
      if (strongest === null || candidate.lengthMin > strongest.lengthMin) strongest = candidate;
    }
    if (strongest === null || read.values!.length >= strongest.lengthMin) continue;
    log.add(
      strongest.kind,
      `${describeRead(read)} saw ${read.values!.length} values, fewer than the ${strongest.lengthMin} ` +
        `required by ${strongest.cause}`,
    );
  }
}
