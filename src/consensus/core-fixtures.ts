/**
 * Shared fixtures for the core's unit tests: three voters, an empty initial state, entry and core
 * constructors, and helpers to step messages. Pure (no I/O), like the core itself.
 */
import { Prng } from "../lib/prng.ts";
import { logIndex, type NodeId, nodeId, term } from "../types/ids.ts";
import { EntryKind, type LogEntry } from "../types/log-entry.ts";
import type { RaftConfig } from "./config.ts";
import type { InitialState } from "./core-state.ts";
import type { Effects } from "./effects.ts";
import type { Message } from "./messages.ts";
import { RaftCore } from "./raft-core.ts";

export const [n1, n2, n3] = [nodeId("n1"), nodeId("n2"), nodeId("n3")];
export const voters = [n1, n2, n3];
export const emptyState: InitialState = {
  hardState: { term: term(0), votedFor: null },
  entries: [],
  snapshotIndex: logIndex(0),
  snapshotTerm: term(0),
  appliedIndex: logIndex(0),
};

export function entry(index: number, entryTerm: number, kind: EntryKind = EntryKind.command): LogEntry {
  return { index: logIndex(index), term: term(entryTerm), kind, data: new Uint8Array([index]) };
}

export function core(
  id: NodeId,
  overrides: Partial<RaftConfig> = {},
  initial: Partial<InitialState> = {},
): RaftCore {
  return new RaftCore(
    {
      id,
      voters,
      tickMs: 10,
      heartbeatIntervalMs: 10,
      missedHeartbeats: 10,
      prng: new Prng(1),
      ...overrides,
    },
    { ...emptyState, ...initial },
  );
}

export function message(to: RaftCore, m: Message): Effects {
  return to.step({ type: "message", message: m });
}

export function sent(effects: Effects, type: Message["type"]): Message[] {
  return effects.messages.filter(({ message }) => message.type === type).map(({ message }) => message);
}
