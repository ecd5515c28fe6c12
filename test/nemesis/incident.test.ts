/**
 * The failover incident of issue 11, on real processes with a real partition (`incident.ts`): the
 * leader of a 3-node cluster cut off from both peers for 4 s, twice, while writers at `local`,
 * `one` and `majority` still reach it. No acknowledged id is ever reused; nothing acknowledged at
 * `one` or `majority` is lost; whatever `local` loses is in the deposed leader's quarantine, as
 * rows; the replicas converge. Needs root for the network namespaces; skipped with the reason
 * otherwise. `BATON_INCIDENT_KEEP=1` keeps the run directory (node data and logs) of a failed run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { incidentDefaults, runIncident } from "./incident.ts";
import { namespaceSupport } from "./net-lab.ts";

test("the partitioned-leader incident: no id reused, nothing acknowledged lost silently, replicas converge", {
  timeout: 180_000,
}, async (t) => {
  const why = namespaceSupport((process.pid % 46656).toString(36));
  if (why !== null) {
    t.skip(`needs network namespaces: ${why}`);
    return;
  }
  const started = performance.now();
  const lines: string[] = [];
  const keepOnFailure = process.env.BATON_INCIDENT_KEEP === "1";
  const result = await runIncident({ ...incidentDefaults, keepOnFailure }, (line) => lines.push(line));
  for (const line of lines) t.diagnostic(line);
  for (const f of result.figures)
    t.diagnostic(
      `${f.level.padEnd(8)} acknowledged ${f.acknowledged}, lost ${f.lost} (quarantined ${f.quarantined}), ids reused ${f.reused}, moved ${f.moved}; ids ${f.idRuns}`,
    );
  t.diagnostic(`elections ${result.elections}; cuts ${JSON.stringify(result.cuts)}`);
  t.diagnostic(`not acknowledged: ${JSON.stringify(result.failures)}`);
  t.diagnostic(`run time ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const kept = result.kept ? `; kept in ${result.runDirectory}` : "";
  assert.deepEqual(result.problems, [], `${result.problems.length} problems${kept}`);
  for (const f of result.figures) {
    assert.ok(f.acknowledged > 0, `${f.level}: writes were acknowledged`);
    assert.equal(f.reused, 0);
    assert.equal(f.lost, f.quarantined, `${f.level}: every lost write is quarantined`);
    if (f.level !== "local") assert.equal(f.lost, 0, `${f.level}: nothing acknowledged is lost`);
  }
});
