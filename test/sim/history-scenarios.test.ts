/**
 * The replicated history on production nodes (`src/node/history-replication.ts`): a leader's records
 * (its election, an operator's action it ran) reach the replicated table while it leads, so when it
 * is lost every survivor still answers them, and so does the node itself once back: a simulated node
 * keeps its own history in memory, so its restart loses every record of its own, as a wiped disk
 * would. Records made while no leader existed (mode approve: the loss, the pending failover, its
 * timeout and the election it ended with) are replicated once a leader exists again.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { HistoryEntry } from "../../src/node/history.ts";
import { historyShipIntervalMs } from "../../src/node/history-replication.ts";
import { simTickMs } from "./options.ts";
import { finalCheck, livenessPhase } from "./run.ts";
import { awaitLeader, startQuietCluster } from "./scenario-kit.ts";
import type { SimNodeHost } from "./sim-node.ts";

const requestTimeoutMs = 500 * simTickMs;
/** Mode approve's wait for an operator; past it the policy (promote) applies. */
const approveTimeoutMs = 2_000;
/** Ticks for records to reach the table: a few ship intervals, and a commit. */
const replicatedTicksMax = (8 * historyShipIntervalMs) / simTickMs;

function historyOf(node: SimNodeHost): HistoryEntry[] {
  const service = node.node;
  assert.ok(service !== null && service !== undefined, `${node.id} runs`);
  return service.history(1_000);
}

function has(
  entries: readonly HistoryEntry[],
  node: string,
  event: string,
  extra: (entry: HistoryEntry) => boolean = () => true,
): boolean {
  return entries.some((e) => e.node === node && e.event === event && e.replicated && extra(e));
}

describe("the replicated history on production nodes", () => {
  test("a lost leader's election and operator actions outlive it; the leaderless time's records are replicated after it", async () => {
    for (const seed of [1, 2, 3]) {
      const cluster = await startQuietCluster(seed, { nodeCount: 3 });
      try {
        const leader = await awaitLeader(cluster);
        let changed: unknown = null;
        leader.node
          ?.failoverSettings(
            { mode: "approve", approveTimeoutMs: approveTimeoutMs, approvePolicy: "promote" },
            requestTimeoutMs,
            "sim-operator",
          )
          .then((value) => {
            changed = value;
          });
        assert.notEqual(await cluster.runUntil(() => changed !== null, 500), null, `SEED=${seed}: changed`);
        const replicated = await cluster.runUntil(() => {
          const own = historyOf(leader).filter((e) => e.node === leader.id);
          return own.length > 0 && own.every((e) => e.replicated);
        }, replicatedTicksMax);
        assert.notEqual(replicated, null, `SEED=${seed}: the leader's records were replicated`);
        cluster.hold(leader.id);
        await cluster.runUntil(() => cluster.stableLeader() !== null, (4 * approveTimeoutMs) / simTickMs);
        const next = await awaitLeader(cluster);
        const survivors = cluster.nodes.filter((node) => node !== leader);
        /** What `survivor` does not answer as replicated yet, of what this scenario recorded. */
        const missing = (survivor: SimNodeHost): string[] => {
          const entries = historyOf(survivor);
          const wanted: [string, string][] = [
            [leader.id, "leader-elected"],
            [leader.id, "failover-settings"],
            [next.id, "election-started"],
            [next.id, "failover-timeout"],
            [next.id, "leader-elected"],
            ...survivors.map((other): [string, string] => [other.id, "leader-lost"]),
          ];
          return wanted.filter(([node, event]) => !has(entries, node, event)).map((w) => w.join(" "));
        };
        await cluster.runUntil(() => survivors.every((s) => missing(s).length === 0), replicatedTicksMax);
        for (const survivor of survivors)
          assert.deepEqual(missing(survivor), [], `SEED=${seed}: replicated, as ${survivor.id} answers`);
        assert.ok(
          has(historyOf(next), leader.id, "failover-settings", (e) => e.actor === "sim-operator"),
          "the actor is recorded",
        );
        await cluster.release(leader.id);
        const back = await cluster.runUntil(
          () =>
            has(historyOf(leader), leader.id, "failover-settings") &&
            has(historyOf(leader), next.id, "failover-timeout"),
          replicatedTicksMax,
        );
        assert.notEqual(back, null, `SEED=${seed}: the restarted node answers its lost records`);
        await livenessPhase(cluster);
        await finalCheck(cluster);
      } finally {
        await cluster.dispose();
      }
    }
  });
});
