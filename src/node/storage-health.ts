/**
 * Wiring of a node's storage health: the consistency checks (`consistency-check.ts`) and the
 * healing they drive (`storage-heal.ts`), and the routing of the peers' storage messages to them.
 */
import { unreachable } from "../lib/assert.ts";
import type { LogIndex, NodeId } from "../types/ids.ts";
import { ConsistencyChecks } from "./consistency-check.ts";
import type { NodeConfig } from "./node-config.ts";
import type { StorageMessage } from "./peer-envelope.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { NodeRuntime } from "./runtime.ts";
import { StorageHeal } from "./storage-heal.ts";

export function storageHealth(parts: {
  config: NodeConfig;
  runtime: NodeRuntime;
  loop: ReplicaLoop;
  send: (peer: NodeId, body: Uint8Array) => void;
  speculativeCount: () => number;
  abortSending: () => void;
  isWitness: () => boolean;
}): { healing: StorageHeal; checks: ConsistencyChecks } {
  const { config } = parts;
  const healing: StorageHeal = new StorageHeal({
    ...parts,
    requestCheck: () => checks.requested(config.id),
  });
  const checks: ConsistencyChecks = new ConsistencyChecks({
    ...parts,
    onDamage: (found) => healing.onDamage(found),
    onPassed: () => healing.checkPassed(),
    onNoMajority: () => healing.checkInconclusive(),
  });
  return { healing, checks };
}

/** Hands a peer's storage message to the checks, or (a damaged peer asks) to the snapshot sender. */
export function routeStorageMessage(
  checks: ConsistencyChecks,
  sendSnapshot: (peer: NodeId, appliedIndex: LogIndex) => void,
  from: NodeId,
  message: StorageMessage,
): void {
  switch (message.kind) {
    case "checkStart":
      checks.onStart(from, message.index);
      return;
    case "checkReport":
      checks.onReport(from, message.index, message.hash);
      return;
    case "checkRequest":
      checks.requested(from);
      return;
    case "snapshotRequest":
      // Only data a majority shares replaces a damaged database: check first when not yet.
      if (checks.passedAtOrAfter(message.appliedIndex)) sendSnapshot(from, message.appliedIndex);
      else checks.requested(from);
      return;
    default:
      unreachable(message, "unknown storage message");
  }
}
