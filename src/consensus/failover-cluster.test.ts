/**
 * Randomized safety test of failover over a seeded cluster of cores (`core-cluster.ts`, the same
 * harness as the membership test).
 *
 * Five cores share a lossy, reordering network; nodes 1–3 start as the voters. Besides the
 * membership test's actions (deliver or drop a message, tick, read, write, membership change,
 * transfer, campaign, cut or heal a link, restart, compact), every step may change the failover
 * settings (mode auto, manual or approve, pause, approve timeout and policy), change a member's
 * attributes (priority, zone, never-promote, witness), or promote a node. So leaders are replaced
 * by timers, by operators, by approve timeouts, by relays through witnesses and never-promote
 * voters, and by priority transfers, while membership changes and restarts go on.
 *
 * Checkers (`cluster-checkers.ts`) after every step: election safety, committed-prefix agreement and
 * leader completeness (committed entries are never lost, priority transfers and relays included),
 * the removed-leader rule, read linearizability, the operator rule (where failover needs an
 * operator, nobody takes office without an operator command) and the witness rule (a witness never
 * serves a client). Each checker is shown to catch an injected bug (`UnsafeTestBugs`) at a seed,
 * and that seed is clean without the bug. A failure prints `SEED=…`; `SEED=n` replays one seed,
 * `FAILOVER_SEEDS=n` runs more, `FAILOVER_STATS=1` prints what the histories contained.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Prng } from "../lib/prng.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { membershipChangeKinds } from "./cluster-config.ts";
import type { UnsafeTestBugs } from "./config.ts";
import { type ClusterSetup, CoreCluster, weightedActor } from "./core-cluster.ts";
import type { Effects } from "./effects.ts";
import {
  approvePolicies,
  type FailoverChange,
  type FailoverSettings,
  failoverDefaults,
  type MemberAttributes,
  memberDefaults,
} from "./failover-config.ts";
import { formatEffects, formatMessage } from "./golden-format.ts";
import type { Input } from "./inputs.ts";

const ids = ["1", "2", "3", "4", "5"].map(nodeId);
/** Longer election timeouts than the membership test's, so that leaders last long enough to be replaced on purpose. */
const setup: ClusterSetup = { ids, bootstrapVoters: ids.slice(0, 3), missedHeartbeats: 8 };
/** Seeds run by default; each is a whole, independent cluster history. */
const seedCount = Number(process.env.FAILOVER_SEEDS ?? 200);
/** Actions per seed. */
const stepsPerSeed = 800;
/** Seeds tried per injected bug before declaring its checker blind to it. */
const bugSeedBudget = Number(process.env.FAILOVER_BUG_SEEDS ?? 300);

function randomSettings(random: Prng): Partial<FailoverSettings> {
  // The cores tick every millisecond: the approve timeout is in ticks here, short enough to expire.
  const approve = { approvePolicy: random.pick(approvePolicies), approveTimeoutMs: random.intBetween(2, 12) };
  const roll = random.intBetween(0, 7);
  if (roll < 2) return { mode: "auto" };
  if (roll < 4) return { mode: "manual" };
  if (roll < 6) return { mode: "approve", ...approve };
  return roll < 7 ? { paused: random.chance(0.4) } : approve;
}

function randomAttributes(random: Prng): Partial<MemberAttributes> {
  switch (random.intBetween(0, 3)) {
    case 0:
      return { priority: random.intBetween(0, 3) };
    case 1:
      return { witness: random.chance(0.4) };
    case 2:
      return { neverPromote: random.chance(0.3) };
    default:
      return { zone: random.pick(["east", "east", "west", null]) };
  }
}

function randomFailoverChange(cluster: CoreCluster): FailoverChange {
  const random = cluster.random;
  if (random.chance(0.4)) return { kind: "settings", settings: randomSettings(random) };
  return { kind: "member", node: random.pick(ids), attributes: randomAttributes(random) };
}

/** The actions and their weights; `id` is a node drawn for the step. */
const act = weightedActor([
  [55, (cluster) => cluster.deliverOne()],
  [25, (cluster, id) => cluster.step(id, { type: "tick" })],
  [4, (cluster, id) => cluster.read(cluster.random.chance(0.5) ? cluster.leaderOr(id) : id)],
  [
    9,
    (cluster, id) => {
      const data = new TextEncoder().encode(`w${++cluster.proposals}`);
      const proposalId = `p${cluster.proposals}`;
      cluster.step(cluster.leaderOr(id), { type: "propose", proposalId, kind: EntryKind.command, data });
    },
  ],
  [
    3,
    (cluster, id) => {
      const change = { kind: cluster.random.pick(membershipChangeKinds), node: cluster.random.pick(ids) };
      cluster.step(cluster.leaderOr(id), {
        type: "changeMembership",
        proposalId: `c${++cluster.proposals}`,
        change,
      });
    },
  ],
  [
    10,
    (cluster, id) => {
      const change = randomFailoverChange(cluster);
      cluster.step(cluster.leaderOr(id), {
        type: "changeFailover",
        proposalId: `f${++cluster.proposals}`,
        change,
      });
    },
  ],
  [4, (cluster, id) => cluster.step(id, { type: "promoteLeader", requestId: `q${++cluster.proposals}` })],
  [
    2,
    (cluster, id) =>
      cluster.step(
        cluster.leaderOr(id),
        cluster.random.chance(0.5)
          ? { type: "transferLeadership", target: id }
          : { type: "transferLeadership" },
      ),
  ],
  [1, (cluster, id) => cluster.step(id, { type: "campaign" })],
  [3, (cluster, id) => cluster.toggleLink(id, cluster.random.pick(ids))],
  [1, (cluster, id) => cluster.restart(id)],
  [1, (cluster, id) => cluster.compact(id)],
]);

/** With `FAILOVER_TRACE=1`, every input and its Effects are printed (for reading a replayed seed). */
function trace(id: NodeId, input: Input, effects: Effects): void {
  const label = input.type === "message" ? `receive ${formatMessage(input.message)}` : JSON.stringify(input);
  console.log(`> ${id} ${label}`);
  for (const line of formatEffects(effects)) console.log(`  ${line}`);
}

/**
 * Half the seeds start in mode auto with no attributes (the cluster must get there by changes);
 * the others start from random settings and attributes, so that every mode meets leader losses
 * early, before a change back to auto.
 */
function initialFailover(seed: number): ClusterSetup["initialFailover"] {
  const random = new Prng(seed * 7919 + 17);
  if (random.chance(0.5)) return undefined;
  const failover = { ...failoverDefaults, ...randomSettings(random) };
  const members = ids
    .map((id) => ({
      id,
      ...memberDefaults,
      zone: random.pick(["east", "west"]),
      ...randomAttributes(random),
    }))
    .filter((entry) => entry.id !== ids[0] || (!entry.witness && !entry.neverPromote));
  return { failover, members };
}

function runSeed(seed: number, bugs?: UnsafeTestBugs): CoreCluster {
  const tracing = process.env.FAILOVER_TRACE === "1" ? { trace } : {};
  const start = initialFailover(seed);
  const options = {
    ...setup,
    ...tracing,
    ...(bugs === undefined ? {} : { bugs }),
    ...(start === undefined ? {} : { initialFailover: start }),
  };
  return new CoreCluster(seed, options).run(seed, stepsPerSeed, act);
}

test("failover keeps election safety, committed entries, the operator rule and the witness rule", () => {
  const only = process.env.SEED;
  const seeds = only === undefined ? Array.from({ length: seedCount }, (_, i) => i + 1) : [Number(only)];
  const totals = new Map<string, number>();
  const add = (name: string, count: number) => totals.set(name, (totals.get(name) ?? 0) + count);
  for (const seed of seeds) {
    const cluster = runSeed(seed);
    add("commits", cluster.checkers.committed.size);
    add("leader terms", cluster.checkers.leaders.size);
    add("operator rule checks", cluster.checkers.operatorRuleChecks);
    add("changes", cluster.changesAccepted);
    add("steps with a leader", cluster.stepsWithLeader);
    for (const [name, count] of cluster.eventCounts) add(name, count);
  }
  if (process.env.FAILOVER_STATS === "1") console.log(Object.fromEntries([...totals].sort()));
  if (only !== undefined) return;
  // The histories must not be vacuous: every way a leader changes happens, and the rules are judged.
  const atLeast = (name: string, floor: number) =>
    assert.ok((totals.get(name) ?? 0) >= floor, `only ${totals.get(name) ?? 0} ${name}`);
  atLeast("commits", seeds.length * 10);
  atLeast("leader terms", seeds.length);
  atLeast("steps with a leader", (seeds.length * stepsPerSeed) / 3);
  atLeast("operator rule checks", seeds.length / 2);
  atLeast("promote-started", seeds.length / 2);
  atLeast("leader-lost", seeds.length / 2);
  atLeast("failover-pending", 5);
  atLeast("failover-timeout", 10);
  atLeast("handoff-started:priority", 10);
  atLeast("handoff-started:not-eligible", 10);
  // Rare: it needs mode auto, zones on the lost leader and two other voters, and a timer to fire first.
  atLeast("election-deferred", 1);
});

/** Each checker against the bug it must catch: the first seed whose failure is that checker's. */
const injected: readonly (readonly [keyof UnsafeTestBugs, string])[] = [
  ["campaignWhenNotAutomatic", "operator rule"],
  ["ineligibleLeaderKeepsOffice", "witness rule"],
  ["voteTwiceInTerm", "election safety"],
  ["voteWithoutLogCheck", "leader completeness"],
  ["appendWithoutLogCheck", "committed prefix"],
  ["readWithoutRound", "read linearizability"],
  ["removedLeaderStays", "removed leader"],
];

for (const [bug, rule] of injected) {
  test(`the ${rule} checker catches the injected bug ${bug}`, (t) => {
    // Seeds where something else stopped the run first (the core's own assertions, another checker).
    const otherwise: string[] = [];
    for (let seed = 1; seed <= bugSeedBudget; seed++) {
      let failure: string | null = null;
      try {
        runSeed(seed, { [bug]: true });
      } catch (error) {
        failure = (error as Error).message;
      }
      if (failure === null) continue;
      if (!failure.includes(`: ${rule}: `)) {
        otherwise.push(failure);
        continue;
      }
      assert.match(failure, new RegExp(`^SEED=${seed} `));
      t.diagnostic(
        `${bug} caught by ${rule} at ${failure} (${otherwise.length} earlier seeds stopped otherwise)`,
      );
      runSeed(seed);
      return;
    }
    assert.fail(
      `no seed in 1..${bugSeedBudget} exposed ${bug} to the ${rule} checker; first others: ${otherwise.slice(0, 3).join(" | ")}`,
    );
  });
}
