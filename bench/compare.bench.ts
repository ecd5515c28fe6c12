/**
 * `npm run bench:compare`: the workloads of `npm run bench` against Baton and against a local
 * 3-member etcd (`etcd-cluster.ts`), interleaved (the order of the two alternates from run to run),
 * a fresh cluster for every measurement, and the ratios Baton/etcd of the medians. Only ratios from
 * one run are worth quoting: this machine is shared and its absolute speed drifts.
 * Without an `etcd` binary on PATH it says so and exits 0.
 */
import { startBatonCluster } from "./baton-cluster.ts";
import {
  cpuCells,
  measurementLine,
  ms,
  optionsHelp,
  parseOptions,
  rate,
  type Summary,
  summarize,
} from "./bench-report.ts";
import { etcdVersion, startEtcdCluster } from "./etcd-cluster.ts";
import { median } from "./stats.ts";
import type { RunningCluster } from "./system-under-test.ts";
import { describeWorkload, type Measurement, measure, parseWorkloads } from "./workloads.ts";

if (process.argv.includes("--help")) {
  console.log(`Usage: npm run bench:compare -- [options]\n${optionsHelp}`);
  process.exit(0);
}
const version = etcdVersion();
if (version === null) {
  console.log(
    "bench:compare: no `etcd` binary on PATH, nothing compared. Install one (Debian: apt-get install -y etcd-server) and run again; `npm run bench` measures Baton alone.",
  );
  process.exit(0);
}
const options = parseOptions(process.argv.slice(2));
const workloads = parseWorkloads(options.workloads);
const systems: Record<string, () => Promise<RunningCluster>> = {
  baton: () => startBatonCluster({ extraArgs: options.batonArgs }),
  etcd: startEtcdCluster,
};
console.log(
  `Baton (3 nodes${options.batonArgs.length > 0 ? `, ${options.batonArgs.join(" ")}` : ""}) vs ${version} (3 members), 127.0.0.1, default settings; ${options.warmupMs / 1000} s warm-up, ` +
    `${options.durationMs / 1000} s measured, ${options.runs} interleaved run(s), fresh cluster per measurement`,
);
const measurements: Measurement[] = [];
for (let run = 1; run <= options.runs; run++) {
  for (const workload of workloads) {
    const order = run % 2 === 1 ? ["baton", "etcd"] : ["etcd", "baton"];
    for (const system of order) {
      const measurement = await measure(systems[system]!, workload, { ...options, run });
      measurements.push(measurement);
      console.log(measurementLine(measurement));
    }
  }
}
/** The median over runs of Baton's figure over etcd's, the two measured back to back in the same run. */
function pairedRatio(workload: string, figure: (m: Measurement) => number): number {
  const ratios: number[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const of = (system: string) =>
      measurements.find((m) => m.system === system && m.workload === workload && m.run === run);
    const baton = of("baton");
    const etcd = of("etcd");
    if (baton !== undefined && etcd !== undefined) ratios.push(figure(baton) / figure(etcd));
  }
  return median(ratios);
}
const summaries = workloads.map((workload) => {
  const of = (system: string): Summary =>
    summarize(measurements.filter((m) => m.system === system && m.workload === workload.name));
  return { workload, baton: of("baton"), etcd: of("etcd") };
});
console.log(
  `\nMedians of ${options.runs} run(s); ratios are Baton/etcd of those medians (ops/s: higher is better for Baton; p50: lower is better).`,
);
console.log(
  "Paired: the median over runs of each run's own Baton/etcd ratio (measured back to back), which cancels the machine's drift.",
);
console.log(
  "| workload | Baton ops/s · p50 · p99 ms | etcd ops/s · p50 · p99 ms | ops/s ratio | p50 ratio | paired ops/s ratio | paired p50 ratio |",
);
console.log("|---|---|---|---|---|---|---|");
for (const { workload, baton, etcd } of summaries) {
  const cell = (s: Summary): string => `${rate(workload.name, s)} · ${ms(s.p50Ms)} · ${ms(s.p99Ms)}`;
  console.log(
    `| ${workload.name}: ${describeWorkload(workload)} | ${cell(baton)} | ${cell(etcd)} | ` +
      `${(baton.opsPerSecond / etcd.opsPerSecond).toFixed(2)}× | ${(baton.p50Ms / etcd.p50Ms).toFixed(2)}× | ` +
      `${pairedRatio(workload.name, (m) => m.opsPerSecond).toFixed(2)}× | ` +
      `${pairedRatio(workload.name, (m) => m.p50Ms).toFixed(2)}× |`,
  );
}
console.log("\nCPU µs per operation (medians): leader / follower / follower / load generator / servers' sum");
console.log("| workload | Baton | etcd | servers' CPU/op ratio |");
console.log("|---|---|---|---|");
for (const { workload, baton, etcd } of summaries) {
  console.log(
    `| ${workload.name} | ${cpuCells(baton)} | ${cpuCells(etcd)} | ${(baton.cpu.servers / etcd.cpu.servers).toFixed(2)}× |`,
  );
}
const errors = summaries.reduce((sum, s) => sum + s.baton.errors + s.etcd.errors, 0);
if (errors > 0) console.log(`\n${errors} failed requests in measured windows (see the lines above).`);
