/**
 * A snapshot offer for a position a follower has just applied, in the same turn as the message that
 * let it apply it (two frames of one read, or two packets due in one tick): the store is there
 * already, the core's applied index not yet (the "applied" report is queued). Stepping the offer's
 * installSnapshot into the core then made it restore a snapshot the store never received and
 * compact the log past every snapshot file, and the node refused to start again ("the log is
 * compacted through N but no snapshot covers it"). Found by the simulator at SEED=430.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { InstallSnapshotMessage } from "../../src/consensus/index.ts";
import { encodeConsensus, encodeSnapshotStream } from "../../src/node/peer-envelope.ts";
import { listSnapshots } from "../../src/node/snapshot-files.ts";
import { logIndex, term } from "../../src/types/ids.ts";
import { SimCluster, settle } from "./cluster.ts";
import { optionsFromSeed } from "./options.ts";
import { finalCheck, livenessPhase, quietOverrides, setupPhase } from "./run.ts";
import type { SimNodeHost } from "./sim-node.ts";

test("an offer for a position the store holds but the core has not yet counted applied is not installed", async () => {
  const cluster = new SimCluster(
    optionsFromSeed(11, { ...quietOverrides(), nodeCount: 3, preVote: true, checkQuorum: true }),
  );
  try {
    await cluster.start();
    await setupPhase(cluster);
    const leader = cluster.stableLeader() as SimNodeHost;
    const follower = cluster.nodes.find((node) => node !== leader) as SimNodeHost;
    const write = cluster.workload.appendOnce(leader, "majority");
    // Cut the follower off once it holds the write's entry but does not yet know it committed.
    const holdsUncommitted = (): boolean => {
      const summary = follower.core?.summary();
      return summary !== undefined && summary.lastIndex > summary.commitIndex;
    };
    assert.notEqual(await cluster.runUntil(holdsUncommitted, 200), null, "the follower got the entry");
    cluster.network.cut(leader.id, follower.id);
    assert.notEqual(await cluster.runUntil(() => write.outcome === "ok", 200), null, "the write committed");
    const leaderCore = leader.core;
    const followerCore = follower.core;
    assert.ok(leaderCore !== null && followerCore !== null);
    const index = logIndex(followerCore.summary().lastIndex);
    const entryTerm = term(followerCore.termAt(index) as number);
    const leaderTerm = term(leaderCore.summary().term);
    const envelope = { from: leader.id, to: follower.id, term: leaderTerm };
    const install: InstallSnapshotMessage = {
      ...envelope,
      type: "installSnapshot",
      snapshotIndex: index,
      snapshotTerm: entryTerm,
      snapshotConfig: leaderCore.summary().clusterConfig,
    };
    // One synchronous turn: the commit arrives (the store applies through `index`), then the offer.
    const commit = {
      ...envelope,
      type: "appendEntries" as const,
      prevLogIndex: index,
      prevLogTerm: entryTerm,
    };
    follower.deliver(leader.id, encodeConsensus({ ...commit, entries: [], leaderCommit: index }));
    assert.equal(follower.store?.appliedIndex, index, "the store applied the entry in this turn");
    follower.deliver(leader.id, encodeSnapshotStream({ kind: "offer", totalBytes: 1_000, install }));
    await settle();
    assert.equal(followerCore.status().snapshotIndex, 0, "no snapshot was restored");
    assert.deepEqual(listSnapshots(follower.snapshotDirectory), []);
    await cluster.run(20);
    cluster.crash(follower.id);
    await cluster.restart(follower.id);
    assert.ok(follower.alive, "the follower starts again from its data directory");
    cluster.network.healPartitions();
    await livenessPhase(cluster);
    await finalCheck(cluster);
  } finally {
    await cluster.dispose();
  }
});
