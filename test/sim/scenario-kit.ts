/**
 * What the scripted scenario tests share: a quiet cluster (no random faults or load, pre-vote and
 * check-quorum on) started and set up for a seed, and the leader every member recognises.
 */
import assert from "node:assert/strict";
import { SimCluster } from "./cluster.ts";
import { electionBoundTicks, optionsFromSeed, type SimOptions } from "./options.ts";
import { quietOverrides, setupPhase } from "./run.ts";
import type { SimNodeHost } from "./sim-node.ts";

export async function startQuietCluster(
  seed: number,
  overrides: Partial<SimOptions> = {},
): Promise<SimCluster> {
  const cluster = new SimCluster(
    optionsFromSeed(seed, { ...quietOverrides(), preVote: true, checkQuorum: true, ...overrides }),
  );
  await cluster.start();
  await setupPhase(cluster);
  return cluster;
}

/** The leader every member recognises, once there is one (a node that just started needs a heartbeat). */
export async function awaitLeader(cluster: SimCluster): Promise<SimNodeHost> {
  await cluster.runUntil(() => cluster.stableLeader() !== null, electionBoundTicks(cluster.options));
  const leader = cluster.stableLeader();
  assert.ok(leader !== null, `SEED=${cluster.options.seed}: no stable leader`);
  return leader;
}
