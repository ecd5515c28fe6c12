/**
 * The safety checkers' membership and snapshot rules on hand-made nodes: each must fail the case it
 * forbids, and pass the one next to it that Raft allows.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Effects } from "../../src/consensus/effects.ts";
import { EntryKind, type LogEntry } from "../../src/types/log-entry.ts";
import { SafetyChecker, SimViolation } from "./checkers.ts";
import type { DurableImage } from "./quorum-checker.ts";
import type { SimNodeHost } from "./sim-node.ts";

type FakeState = {
  role: "leader" | "follower";
  term: number;
  voters: string[];
  learners: string[];
  entries: LogEntry[];
  snapshotIndex: number;
  appliedIndex: number;
  hash: string;
};

function entry(index: number, term: number, text: string): LogEntry {
  return { index, term, kind: EntryKind.command, data: new TextEncoder().encode(text) } as LogEntry;
}

function fakeNode(id: string, state: FakeState): SimNodeHost {
  const core = {
    status: () => ({
      role: state.role,
      term: state.term,
      snapshotIndex: state.snapshotIndex,
      appliedIndex: state.appliedIndex,
      lastIndex: state.entries.at(-1)?.index ?? state.snapshotIndex,
      clusterConfig: { voters: state.voters, learners: state.learners },
    }),
    entryAt: (index: number) => state.entries.find((e) => e.index === index),
    termAt: (index: number) => state.entries.find((e) => e.index === index)?.term,
  };
  const store = { appliedIndex: state.appliedIndex, contentHash: () => state.hash };
  return { id, incarnation: 1, core, store } as unknown as SimNodeHost;
}

function effects(parts: Partial<Effects>): Effects {
  return {
    entries: [],
    messages: [],
    acknowledged: [],
    events: [],
    discarded: [],
    ...parts,
  } as unknown as Effects;
}

function state(overrides: Partial<FakeState>): FakeState {
  return {
    role: "follower",
    term: 2,
    voters: ["n1", "n2", "n3"],
    learners: [],
    entries: [],
    snapshotIndex: 0,
    appliedIndex: 0,
    hash: "h0",
    ...overrides,
  };
}

function violation(kind: string): (error: unknown) => boolean {
  return (error) => error instanceof SimViolation && error.kind === kind;
}

const everyDiskHolds: DurableImage = { entries: [], compactedThrough: 1_000, snapshotIndex: () => 0 };

test("a learner or a removed node never becomes leader", () => {
  const checker = new SafetyChecker(() => everyDiskHolds);
  const become = { roleChange: { role: "leader", term: 3, leaderId: "n1" } } as Partial<Effects>;
  checker.onEffects(fakeNode("n1", state({ role: "leader", term: 3 })), effects(become));
  const learner = state({ role: "leader", term: 4, voters: ["n1", "n2"], learners: ["n3"] });
  assert.throws(
    () =>
      checker.onEffects(
        fakeNode("n3", learner),
        effects({ roleChange: { role: "leader", term: 4, leaderId: "n3" } } as Partial<Effects>),
      ),
    violation("election-safety"),
  );
  const removed = state({ role: "leader", term: 5, voters: ["n1", "n2"] });
  assert.throws(
    () =>
      checker.onEffects(
        fakeNode("n4", removed),
        effects({ roleChange: { role: "leader", term: 5, leaderId: "n4" } } as Partial<Effects>),
      ),
    violation("election-safety"),
  );
});

test("a leader's commit is judged against the disks of its configuration's voters", () => {
  const disks = new Map<string, DurableImage>([
    ["n1", { entries: [{ index: 1, term: 2 }], compactedThrough: 0, snapshotIndex: () => 0 }],
    ["n2", { entries: [], compactedThrough: 0, snapshotIndex: () => 0 }],
    ["n3", { entries: [{ index: 1, term: 2 }], compactedThrough: 0, snapshotIndex: () => 0 }],
  ]);
  const checker = new SafetyChecker((id) => disks.get(id) ?? null);
  const leader = state({ role: "leader", term: 2, entries: [entry(1, 2, "a")] });
  checker.onEffects(fakeNode("n1", leader), effects({ commitIndex: 1 } as Partial<Effects>));
  // With n3 a learner, the voters n1 and n2 hold it once: no majority of two.
  const other = state({
    role: "leader",
    term: 2,
    voters: ["n1", "n2"],
    learners: ["n3"],
    entries: [entry(1, 2, "a")],
  });
  assert.throws(
    () =>
      new SafetyChecker((id) => disks.get(id) ?? null).onEffects(
        fakeNode("n1", other),
        effects({ commitIndex: 1 } as Partial<Effects>),
      ),
    violation("commit-without-quorum"),
  );
  // A follower's commit index comes from its leader's count, not its own: not judged here.
  const follower = state({ voters: ["n1", "n2"], learners: ["n3"], entries: [entry(1, 2, "a")] });
  new SafetyChecker((id) => disks.get(id) ?? null).onEffects(
    fakeNode("n2", follower),
    effects({ commitIndex: 1 } as Partial<Effects>),
  );
});

test("a snapshot install must agree with the committed entry at its index and with the content there", () => {
  const checker = new SafetyChecker(() => everyDiskHolds);
  const committed = state({ entries: [entry(1, 2, "a"), entry(2, 2, "b")] });
  checker.onEffects(fakeNode("n1", committed), effects({ commitIndex: 2 } as Partial<Effects>));
  checker.checkContent(fakeNode("n1", { ...committed, appliedIndex: 2, hash: "h2" }));
  const installed = state({ snapshotIndex: 2, appliedIndex: 2, hash: "h2" });
  checker.onEffects(
    fakeNode("n2", installed),
    effects({ snapshotRestored: { index: 2, term: 2 } } as Partial<Effects>),
  );
  assert.throws(
    () =>
      checker.onEffects(
        fakeNode("n3", { ...installed, hash: "other" }),
        effects({ snapshotRestored: { index: 2, term: 2 } } as Partial<Effects>),
      ),
    violation("state-machine-safety"),
  );
  assert.throws(
    () =>
      checker.onEffects(
        fakeNode("n3", installed),
        effects({ snapshotRestored: { index: 2, term: 3 } } as Partial<Effects>),
      ),
    violation("committed-prefix"),
  );
});
