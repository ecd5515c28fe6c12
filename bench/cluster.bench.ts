/**
 * `npm run bench`: Baton alone, the workloads of the etcd comparison (see bench/README.md) against
 * a fresh 3-node cluster of real `bin/baton start` processes per workload and run, driven by the
 * keep-alive `node:http` closed-loop generator of `load.ts` in this process. Prints ops/s (rows/s
 * for batches), p50/p99 and the CPU each process used per operation, medians over `--runs`.
 *
 * `--profile DIR` starts the nodes with `--cpu-prof` (profiles in DIR/<workload>-run<N>/<node id>,
 * with `window.json` naming the roles and the measured window) for `bench/profile-summary.ts`;
 * `--node-options S` passes other flags to the nodes (for example `--perf-basic-prof` for `perf`).
 */
import path from "node:path";
import { startBatonCluster } from "./baton-cluster.ts";
import { cpuCells, measurementLine, ms, optionsHelp, parseOptions, rate, summarize } from "./bench-report.ts";
import { describeWorkload, type Measurement, measure, parseWorkloads } from "./workloads.ts";

if (process.argv.includes("--help")) {
  console.log(
    `Usage: npm run bench -- [options]\n${optionsHelp}\n  --profile DIR    --cpu-prof every node\n  --node-options S NODE_OPTIONS of the nodes`,
  );
  process.exit(0);
}
const options = parseOptions(process.argv.slice(2));
const workloads = parseWorkloads(options.workloads);
console.log(
  `Baton, 3 nodes on 127.0.0.1, ${options.batonArgs.length > 0 ? options.batonArgs.join(" ") : "default timing"}; ${options.warmupMs / 1000} s warm-up, ` +
    `${options.durationMs / 1000} s measured, ${options.runs} run(s), fresh cluster per measurement`,
);
const measurements: Measurement[] = [];
for (let run = 1; run <= options.runs; run++) {
  for (const workload of workloads) {
    const profileDirectory =
      options.profileDirectory === null
        ? undefined
        : path.resolve(options.profileDirectory, `${workload.name}-run${run}`);
    const start = () =>
      startBatonCluster({
        nodeOptions: options.nodeOptions,
        ...(profileDirectory === undefined ? {} : { profileDirectory }),
        extraArgs: options.batonArgs,
      });
    const windowFile =
      profileDirectory === undefined ? undefined : path.join(profileDirectory, "window.json");
    const measurement = await measure(start, workload, { ...options, run, windowFile });
    measurements.push(measurement);
    console.log(measurementLine(measurement));
  }
}
console.log(
  `\nMedians of ${options.runs} run(s). CPU µs per operation: leader / follower / follower / load generator / servers' sum`,
);
console.log("| workload | ops/s | p50 ms | p99 ms | CPU µs/op L / F / F / load / servers | errors |");
console.log("|---|---|---|---|---|---|");
for (const workload of workloads) {
  const summary = summarize(measurements.filter((m) => m.workload === workload.name));
  console.log(
    `| ${workload.name}: ${describeWorkload(workload)} | ${rate(workload.name, summary)} | ${ms(summary.p50Ms)} | ` +
      `${ms(summary.p99Ms)} | ${cpuCells(summary)} | ${summary.errors} |`,
  );
}
