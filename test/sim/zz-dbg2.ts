import { SimCluster } from "./cluster.ts";
import { optionsFromSeed } from "./options.ts";
import { livenessPhase, setupPhase } from "./run.ts";

const seed = Number(process.argv[2]);
const cluster = new SimCluster(optionsFromSeed(seed));
await cluster.start();
await setupPhase(cluster);
await cluster.run(cluster.options.safetyTicks, {
  load: true,
  faults: true,
  members: "schedule",
  failover: "schedule",
});
try {
  await livenessPhase(cluster);
} catch (e) {
  console.log(String(e).slice(0, 300));
}
for (const n of cluster.nodes) {
  const s = n.core?.status();
  console.log(
    n.id,
    n.alive,
    cluster.held.has(n.id),
    s?.role,
    s?.term,
    s?.leaderId,
    "last",
    s?.lastIndex,
    "commit",
    s?.commitIndex,
    "applied",
    n.store?.appliedIndex,
    JSON.stringify(s?.clusterConfig?.voters),
    JSON.stringify(s?.clusterConfig?.members),
    "held",
    s?.candidacyHeld,
    "storage",
    JSON.stringify(n.node?.status().storage),
  );
  if (s?.role === "leader") console.log("  members", JSON.stringify(s.members));
}
const events: Record<string, number> = {};
for (const n of cluster.nodes)
  for (const e of n.events.slice(-300)) events[`${n.id} ${e}`] = (events[`${n.id} ${e}`] ?? 0) + 1;
console.log(JSON.stringify(events));
await cluster.dispose();
