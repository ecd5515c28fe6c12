/**
 * The history checker (`src/node/history-replication.ts`): at the end of a run every member's history
 * is replicated (convergence waits for it, `historyPending`), and the replicated table holds exactly
 * what each node was told it holds: every record a member's sink counts as replicated is in the
 * leader's table under its node and sequence, with the same text (`checkHistoryReplicated`). An
 * acknowledgement ahead of its commit, a lost or altered row, or a record left behind breaks it.
 */
import { historyEntriesMax, historyRowOf } from "../../src/node/history.ts";
import {
  historyProposalTimeoutMs,
  historyRetryMsMax,
  historyShipIntervalMs,
} from "../../src/node/history-replication.ts";
import { historyRowsMax } from "../../src/store/index.ts";
import { SimViolation } from "./checkers.ts";
import { simTickMs } from "./options.ts";
import type { SimNodeHost } from "./sim-node.ts";

/**
 * Ticks a member's records may take to be replicated once the cluster is quiet: the longest
 * back-off, a few ship intervals, and a history batch the core gave up on.
 */
export const historyReplicatedBoundTicks = Math.ceil(
  (historyRetryMsMax + 4 * historyShipIntervalMs + historyProposalTimeoutMs) / simTickMs,
);

/** The members whose records are not all replicated yet, with how many; null when none. */
export function historyPending(members: readonly SimNodeHost[]): string | null {
  const pending = members.flatMap((member) => {
    const count = member.node?.loop.history.unreplicated(historyEntriesMax).length ?? 0;
    return count === 0 ? [] : [`${member.id} ${count}`];
  });
  return pending.length === 0 ? null : pending.join(", ");
}

/** Every record a member counts as replicated is in the leader's table, unchanged. */
export function checkHistoryReplicated(leader: SimNodeHost, members: readonly SimNodeHost[]): number {
  const rows = leader.store?.history.recent(historyRowsMax) ?? [];
  const byKey = new Map(rows.map((row) => [`${row.node} ${row.seq}`, row.record]));
  let checked = 0;
  for (const member of members) {
    const sink = member.node?.loop.history;
    if (sink === undefined) continue;
    for (const record of sink.recent(historyEntriesMax)) {
      if (record.seq === null || record.seq > sink.replicatedThrough) continue;
      const kept = byKey.get(`${record.node} ${record.seq}`);
      if (kept !== historyRowOf(record).record)
        throw new SimViolation(
          "history-lost",
          `${member.id}'s ${record.event} (seq ${record.seq}) counts as replicated, but the leader ${leader.id} ${kept === undefined ? "does not hold it" : `holds ${kept}`}`,
        );
      checked++;
    }
  }
  return checked;
}
