/**
 * A short real-process campaign in the normal test suite: 3 nodes, about 35 seconds of clients, with
 * kill -9, SIGSTOP/SIGCONT, a failed fsync and, when this process may create network namespaces
 * (root), an isolated leader. Without root the partition is skipped with the reason printed, and the
 * rest runs on loopback. The campaign stops exactly the processes it started and removes its
 * namespaces, mounts and directories, also when it fails (then the run directory is kept and named).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCampaign } from "./campaign.ts";
import { defaultOptions } from "./options.ts";

test("a short fault campaign finds no anomaly", { timeout: 240_000 }, async (t) => {
  const seed = Number(process.env.BATON_NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const lines: string[] = [];
  const result = await runCampaign(
    {
      ...defaultOptions,
      seed,
      durationMs: 35_000,
      nodeCount: 3,
      faults: ["kill", "pause", "partition-leader", "fsync-fail"],
      clientCount: 4,
      faultGapMsMin: 1_000,
      faultGapMsMax: 2_000,
      faultHoldMsMin: 1_500,
      faultHoldMsMax: 3_500,
      quiet: true,
    },
    (line) => lines.push(line),
  );
  for (const line of lines) t.diagnostic(line);
  for (const line of result.text.split("\n")) t.diagnostic(line);
  for (const [kind, why] of Object.entries(result.summary.skipped)) t.diagnostic(`skipped ${kind}: ${why}`);
  assert.ok(
    result.passed,
    `SEED=${seed} (BATON_NEMESIS_SEED=${seed} replays): ${result.summary.anomalies.length} anomalies; kept in ${result.runDirectory}\n${result.text}`,
  );
  const injected = Object.keys(result.summary.faults);
  for (const kind of ["kill", "pause", "fsync-fail"])
    assert.ok(injected.includes(kind), `${kind} was injected`);
  if (result.summary.network === "namespaces") assert.ok(injected.includes("partition-leader"));
  const appends = result.summary.operations["append library"];
  assert.ok((appends?.ok ?? 0) > 50, `library appends acknowledged: ${JSON.stringify(appends)}`);
});
