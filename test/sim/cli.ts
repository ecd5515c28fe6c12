/**
 * The simulator's command line.
 *
 *   node test/sim/cli.ts --seeds 10000 [--first 1]   a campaign of runs with a summary
 *   node test/sim/cli.ts --seed N [--quiet]          replay one run with its full trace
 *   node test/sim/cli.ts --failover 1000             leader-crash failover times against the formula
 *   node test/sim/cli.ts ... --bug commitOldTermByCounting|voteWithoutLogCheck      (core bugs)
 *   node test/sim/cli.ts ... --bug ackBeforeSync|applyBeforeCommit|linearizableWithoutReadIndex|commitSpeculationEarly
 *   node test/sim/cli.ts ... --bug noIdReservations|rejoinWithoutRemoval           (node bugs)
 *   node test/sim/cli.ts --seeds 10000 --jobs 2                                    split over 2 processes
 *
 * Every failure prints `SEED=n` first. The campaign exits non-zero when any run failed.
 */
import { fork } from "node:child_process";
import { parseArgs } from "node:util";
import type { UnsafeTestBugs } from "../../src/consensus/config.ts";
import type { UnsafeNodeBugs } from "../../src/node/node-config.ts";
import { measureFailover } from "./failover.ts";
import { describeOptions, electionBoundTicks } from "./options.ts";
import { type RunResult, runSeed } from "./run.ts";
import { formatSummary, summarize } from "./summary.ts";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    seeds: { type: "string" },
    failover: { type: "string" },
    first: { type: "string" },
    bug: { type: "string" },
    quiet: { type: "boolean", default: false },
    jobs: { type: "string", default: "1" },
    child: { type: "boolean", default: false },
  },
});

const coreBugs = new Set(["commitOldTermByCounting", "voteWithoutLogCheck"]);
const overrides =
  values.bug === undefined
    ? {}
    : coreBugs.has(values.bug)
      ? { unsafeTestBugs: { [values.bug]: true } as UnsafeTestBugs }
      : { unsafeNodeBugs: { [values.bug]: true } as UnsafeNodeBugs };

async function replay(seed: number): Promise<number> {
  console.log(`SEED=${seed} replay`);
  const result = await runSeed(seed, overrides, !values.quiet);
  if (!values.quiet) for (const line of result.trace ?? []) console.log(line);
  console.log(`SEED=${seed} ${describeOptions(result.options)}`);
  console.log(
    `liveness bound ${electionBoundTicks(result.options)} ticks; elections ${result.elections}; ticks to elect after heal ${result.ticksToElectAfterHeal}`,
  );
  console.log(`faults ${JSON.stringify(result.faults)} losses ${JSON.stringify(result.losses)}`);
  console.log(`snapshot and storage events ${JSON.stringify(result.storageEvents)}`);
  console.log(
    `membership ${JSON.stringify(result.membership)}; configuration entries committed ${result.configEntriesCommitted}`,
  );
  console.log(`failover ${JSON.stringify(result.failover)}`);
  console.log(result.ok ? "OK" : `FAILED\n${result.failure}`);
  return result.ok ? 0 : 1;
}

async function runSlice(count: number, first: number, each: (result: RunResult) => void): Promise<void> {
  for (let seed = first; seed < first + count; seed++)
    each({ ...(await runSeed(seed, overrides)), trace: null });
}

/** One child process per job, each running a contiguous slice of the seeds and sending back its results. */
function runInChildren(
  count: number,
  first: number,
  jobs: number,
  each: (result: RunResult) => void,
): Promise<void> {
  const sliceSize = Math.ceil(count / jobs);
  const children = Array.from({ length: jobs }, (_, job) => {
    const sliceFirst = first + job * sliceSize;
    const sliceCount = Math.min(sliceSize, first + count - sliceFirst);
    const args = ["--child", "--first", String(sliceFirst), "--seeds", String(sliceCount)];
    if (values.bug !== undefined) args.push("--bug", values.bug);
    const child = fork(import.meta.filename, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    child.on("message", (message) => each(message as RunResult));
    return new Promise<void>((resolve, reject) =>
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`job ${job} exited ${code}`)))),
    );
  });
  return Promise.all(children).then(() => {});
}

async function campaign(count: number, first: number, jobs: number): Promise<number> {
  const results: RunResult[] = [];
  const started = performance.now();
  const each = (result: RunResult): void => {
    if (!result.ok) console.log(result.failure?.split("\n").slice(0, 4).join("\n"));
    results.push(result);
    if (results.length % 1000 === 0)
      console.error(`... ${results.length} runs, ${Math.round((performance.now() - started) / 1000)} s`);
  };
  if (jobs > 1) await runInChildren(count, first, jobs, each);
  else await runSlice(count, first, each);
  console.log(formatSummary(summarize(results), performance.now() - started));
  return results.every((result) => result.ok) ? 0 : 1;
}

async function failover(count: number): Promise<number> {
  const samples: Awaited<ReturnType<typeof measureFailover>>[] = [];
  for (let i = 1; i <= count; i++) samples.push(await measureFailover(i));
  const mean = (values: number[]): string => (values.reduce((a, b) => a + b, 0) / values.length).toFixed(1);
  const median = (values: number[]): number =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  const clean = samples.filter((sample) => sample.votingRounds === 1);
  const ratios = samples.map((sample) => sample.ticks / sample.worstTicks).sort((a, b) => a - b);
  const withinWorst = clean.filter((sample) => sample.ticks <= sample.worstTicks).length;
  console.log(`failover after a leader crash, ${count} seeds (quiet network, sim timings):`);
  console.log(
    `  measured ticks: mean ${mean(samples.map((s) => s.ticks))}, median ${median(samples.map((s) => s.ticks))}`,
  );
  console.log(
    `  formula expectation: mean ${mean(samples.map((s) => s.expectedTicks))}, median ${median(samples.map((s) => s.expectedTicks))}`,
  );
  console.log(
    `  one voting round: ${clean.length} of ${count}; of those, within the worst-case formula: ${withinWorst}`,
  );
  console.log(
    `  one voting round: measured mean ${mean(clean.map((s) => s.ticks))} vs expected ${mean(clean.map((s) => s.expectedTicks))}`,
  );
  console.log(
    `  measured / worst case: p50 ${ratios[Math.floor(count / 2)]?.toFixed(2)}, p99 ${ratios[Math.ceil(0.99 * count) - 1]?.toFixed(2)}, max ${ratios.at(-1)?.toFixed(2)}`,
  );
  return 0;
}

if (values.seed !== undefined) process.exitCode = await replay(Number(values.seed));
else if (values.failover !== undefined) process.exitCode = await failover(Number(values.failover));
else if (values.child)
  await runSlice(Number(values.seeds), Number(values.first), (result) => process.send?.(result));
else
  process.exitCode = await campaign(
    Number(values.seeds ?? 100),
    Number(values.first ?? 1),
    Number(values.jobs),
  );
