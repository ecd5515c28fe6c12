/**
 * The fixed cost of a cluster that serves nothing: CPU each process uses per second when idle
 * (ticks, heartbeats, timers), for Baton and, when installed, etcd. Divided by a load's ops/s it
 * bounds how much of that load's CPU per operation is background.
 *
 * Measured after `settle` seconds (default 30): in its first seconds a Baton node still compiles its
 * hot code on V8's threads (40% of an idle follower's samples 8 s after the start), which is not
 * the cost of idling; etcd's Go binary has no such phase.
 *
 * Usage: npx node bench/idle-cpu.ts [seconds] [settle]
 */
import { startBatonCluster } from "./baton-cluster.ts";
import { etcdVersion, startEtcdCluster } from "./etcd-cluster.ts";
import { processCpuMs } from "./load.ts";
import { type RunningCluster, sleep } from "./system-under-test.ts";

const seconds = Number(process.argv[2] ?? 10);
const settleMs = Number(process.argv[3] ?? 30) * 1000;
const starts: (() => Promise<RunningCluster>)[] = [startBatonCluster];
if (etcdVersion() !== null) starts.push(startEtcdCluster);
for (const start of starts) {
  const cluster = await start();
  try {
    await sleep(settleMs);
    const before = cluster.processes.map((p) => processCpuMs(p.pid));
    await sleep(seconds * 1000);
    const after = cluster.processes.map((p) => processCpuMs(p.pid));
    const perSecond = cluster.processes.map((p, i) => ({
      p,
      ms: ((after[i] ?? 0) - (before[i] ?? 0)) / seconds,
    }));
    const total = perSecond.reduce((sum, { ms }) => sum + ms, 0);
    console.log(
      `${cluster.system} idle, ${seconds} s after ${settleMs / 1000} s: ${perSecond.map(({ p, ms }) => `${p.name} (${p.role}) ${ms.toFixed(1)}`).join(", ")}; total ${total.toFixed(1)} ms of CPU per second`,
    );
  } finally {
    await cluster.stop();
  }
}
