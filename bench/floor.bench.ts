/**
 * `npm run bench:floor`: write workloads against the replication floor (`floor-node.ts`: the least
 * a durable majority write does in Node), Baton and, when installed, etcd, interleaved (the order
 * rotates from run to run), a fresh cluster per measurement. Prints each system's medians and its
 * ratios to etcd's in the same run, so that a latency or throughput target for Baton can be set
 * against what Node on this machine can reach at all. Reads are not measured (the floor has none).
 */
import { startBatonCluster } from "./baton-cluster.ts";
import { cpuCells, measurementLine, ms, optionsHelp, parseOptions, rate, summarize } from "./bench-report.ts";
import { etcdVersion, startEtcdCluster } from "./etcd-cluster.ts";
import { startFloorCluster } from "./floor-cluster.ts";
import { median } from "./stats.ts";
import type { RunningCluster } from "./system-under-test.ts";
import { describeWorkload, type Measurement, measure, parseWorkloads } from "./workloads.ts";

if (process.argv.includes("--help")) {
  console.log(`Usage: npm run bench:floor -- [options]   (default workloads w1,w64)\n${optionsHelp}`);
  process.exit(0);
}
const options = parseOptions(process.argv.slice(2));
const workloads = parseWorkloads(process.argv.includes("--workloads") ? options.workloads : "w1,w64");
const reads = workloads.filter((w) => w.kind === "read");
if (reads.length > 0) {
  console.error(`bench:floor measures writes only; drop ${reads.map((w) => w.name).join(", ")}`);
  process.exit(2);
}
const version = etcdVersion();
const systems: Record<string, () => Promise<RunningCluster>> = {
  floor: startFloorCluster,
  baton: () => startBatonCluster({ extraArgs: options.batonArgs }),
  ...(version === null ? {} : { etcd: startEtcdCluster }),
};
const names = Object.keys(systems);
console.log(
  `Replication floor vs Baton${version === null ? " (no etcd binary on PATH: etcd not measured)" : ` vs ${version}`}, ` +
    `3 processes each on 127.0.0.1; ${options.warmupMs / 1000} s warm-up, ${options.durationMs / 1000} s measured, ` +
    `${options.runs} interleaved run(s), fresh cluster per measurement`,
);
const measurements: Measurement[] = [];
for (let run = 1; run <= options.runs; run++) {
  for (const workload of workloads) {
    const order = names.map((_, i) => names[(i + run - 1) % names.length]!);
    for (const system of order) {
      const measurement = await measure(systems[system]!, workload, { ...options, run });
      measurements.push(measurement);
      console.log(measurementLine(measurement));
    }
  }
}
/** The median over runs of `system`'s figure over the reference's, measured in the same run. */
function pairedRatio(
  system: string,
  reference: string,
  workload: string,
  pick: (m: Measurement) => number,
): number {
  const ratios: number[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const of = (s: string) =>
      measurements.find((m) => m.system === s && m.workload === workload && m.run === run);
    const a = of(system);
    const b = of(reference);
    if (a !== undefined && b !== undefined) ratios.push(pick(a) / pick(b));
  }
  return median(ratios);
}
const reference = version === null ? "baton" : "etcd";
console.log(
  `\nMedians of ${options.runs} run(s). Ratios are paired: the median over runs of each run's own ratio to ${reference}.`,
);
console.log(
  `| workload | system | ops/s | p50 ms | p99 ms | ops/s ratio | p50 ratio | CPU µs/op L / F / F / load / servers |`,
);
console.log("|---|---|---|---|---|---|---|---|");
for (const workload of workloads) {
  for (const system of names) {
    const summary = summarize(
      measurements.filter((m) => m.system === system && m.workload === workload.name),
    );
    const ops = pairedRatio(system, reference, workload.name, (m) => m.opsPerSecond).toFixed(2);
    const p50 = pairedRatio(system, reference, workload.name, (m) => m.p50Ms).toFixed(2);
    console.log(
      `| ${workload.name}: ${describeWorkload(workload)} | ${system} | ${rate(workload.name, summary)} | ${ms(summary.p50Ms)} | ` +
        `${ms(summary.p99Ms)} | ${ops}× | ${p50}× | ${cpuCells(summary)} |`,
    );
  }
}
