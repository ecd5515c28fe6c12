/**
 * Failover measurement: how long from a leader's crash until a new leader is recognised by every
 * surviving node, on a quiet network (no drops, only the run's delays and fsync times). The result
 * is compared with the detection-time formula documented in `src/consensus/raft-core.ts`.
 */
import { assert } from "../../src/lib/assert.ts";
import { SimCluster } from "./cluster.ts";
import { electionBoundTicks, electionTimeoutTicksOf, optionsFromSeed } from "./options.ts";
import { quietOverrides } from "./run.ts";

export type FailoverSample = {
  readonly seed: number;
  /** Ticks from the crash to a leader every survivor recognises. */
  readonly ticks: number;
  /** Real (not pre-vote) elections started: more than one means a split vote or a lost race. */
  readonly votingRounds: number;
  /** The formula's worst case without split votes: T(1+j) + 2.5 RTT + 2F, in ticks. */
  readonly worstTicks: number;
  /** The formula's expectation: T(1 + j/(m+1)) − H/2 + 2.5 RTT + 2F, in ticks. */
  readonly expectedTicks: number;
};

export async function measureFailover(seed: number): Promise<FailoverSample> {
  const cluster = new SimCluster(
    optionsFromSeed(seed, { ...quietOverrides(), preVote: true, checkQuorum: true }),
  );
  const o = cluster.options;
  const bound = electionBoundTicks(o);
  await cluster.start();
  assert(
    (await cluster.runUntil(() => cluster.stableLeader() !== null, bound)) !== null,
    `SEED=${seed}: no first leader`,
  );
  // Let it run a while so that the crash falls at a random point of the heartbeat cycle.
  await cluster.run(cluster.prng.intBetween(10, 50));
  const leader = cluster.stableLeader();
  assert(leader !== null, `SEED=${seed}: no leader before the crash`);
  cluster.crash(leader.id);
  const roundsBefore = cluster.votingRounds;
  const survivors = cluster.nodes.filter((node) => node !== leader);
  const recognised = (): boolean => {
    const newLeader = survivors.find((node) => node.core?.summary().role === "leader");
    return (
      newLeader !== undefined && survivors.every((node) => node.core?.summary().leaderId === newLeader.id)
    );
  };
  const ticks = await cluster.runUntil(recognised, bound);
  await cluster.dispose();
  assert(ticks !== null, `SEED=${seed}: no failover within ${bound} ticks`);
  const { base, max } = electionTimeoutTicksOf(o);
  const roundTripTicks = 2 * ((o.delayTicksMin + o.delayTicksMax) / 2);
  const fsyncTicks = o.fsyncTicksMax / 2;
  const followers = survivors.length;
  return {
    seed,
    ticks,
    votingRounds: cluster.votingRounds - roundsBefore,
    worstTicks: max + 2.5 * (2 * o.delayTicksMax) + 2 * o.fsyncTicksMax,
    expectedTicks:
      base + (max - base) / (followers + 1) - o.heartbeatTicks / 2 + 2.5 * roundTripTicks + 2 * fsyncTicks,
  };
}
