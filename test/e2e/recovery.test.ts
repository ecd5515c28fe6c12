/**
 * End to end, real processes on loopback: forced recovery after a majority is lost for good. Two
 * of three nodes die; the survivor cannot elect a leader. `baton recover --force` on it prints the
 * loss report, refuses to go on without confirmation, and with it makes the survivor the only voter
 * of a new cluster incarnation: it leads, keeps every write it held, takes new writes, and a
 * returning old member is refused (different cluster id) instead of joining.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { Cluster, postJson, waitFor } from "./cluster-harness.ts";

const batonBin = path.resolve(import.meta.dirname, "../../bin/baton");
const run = promisify(execFile);

const post = postJson;

describe("forced recovery", { timeout: 120_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("the survivor of a lost majority recovers alone as a new incarnation; old members are refused", async () => {
    const leader = await cluster.waitForLeader();
    await post(leader, "/v1/execute", {
      statements: [{ sql: "CREATE TABLE r(id INTEGER PRIMARY KEY, v TEXT)" }],
    });
    for (let i = 0; i < 20; i++)
      assert.equal(
        (await post(leader, "/v1/execute", { statements: [["INSERT INTO r(v) VALUES (?)", `v${i}`]] }))
          .status,
        200,
      );
    await cluster.convergedIndexes(cluster.nodes);
    const [survivor, lost1, lost2] = [cluster.nodes[2]!, cluster.nodes[0]!, cluster.nodes[1]!];
    // The survivor records when it last heard from each member every few seconds (`review/contacts.json`).
    const contactsFile = path.join(survivor.dataDirectory, "review", "contacts.json");
    await waitFor("the survivor to record a contact", 15_000, async () => {
      const contacts = JSON.parse(fs.readFileSync(contactsFile, "utf8")) as Record<string, number | null>;
      return Object.values(contacts).some((at) => typeof at === "number");
    });
    await cluster.signal(lost1, "SIGKILL");
    await cluster.signal(lost2, "SIGKILL");
    await cluster.signal(survivor, "SIGTERM");

    const flags = [
      "--id",
      survivor.id,
      "--data",
      survivor.dataDirectory,
      "--http",
      `127.0.0.1:${survivor.httpPort}`,
      "--raft",
      `127.0.0.1:${survivor.raftPort}`,
      "--cluster",
      cluster.clusterFlag,
    ];
    // Without confirmation nothing changes.
    const refused = await run(process.execPath, [batonBin, "recover", "--force", ...flags], {
      timeout: 20_000,
    })
      .then(() => null)
      .catch((error: { code: number; stdout: string }) => error);
    assert.ok(refused !== null && refused.code === 1, "no confirmation, no recovery");
    assert.match(refused.stdout, /not known to be committed|every entry it holds is applied/);
    // A follower hears only from the leader: it names each lost member, with a time for the leader.
    for (const lost of [lost1, lost2]) assert.match(refused.stdout, new RegExp(`    ${lost.id}: `));
    assert.match(
      refused.stdout,
      /: \d{4}-\d\d-\d\dT.* s ago\)/,
      "the last contact with the leader it followed",
    );
    assert.ok(!fs.existsSync(path.join(survivor.dataDirectory, "recovery.json")));

    const done = await run(process.execPath, [batonBin, "recover", "--force", "--yes", ...flags], {
      timeout: 20_000,
    });
    assert.match(done.stdout, /incarnation 1/);
    cluster.startNode(survivor);
    const recovered = await cluster.waitForLeader([survivor], 15_000);
    const rows = await waitFor("a read on the recovered node", 10_000, async () => {
      const answer = await post(recovered, "/v1/query", { statements: [{ sql: "SELECT count(*) FROM r" }] });
      return answer.status === 200 ? answer.body : null;
    });
    assert.deepEqual(rows.results[0].rows, [[20]], "every write the survivor held is kept");
    assert.equal(
      (await post(recovered, "/v1/execute", { statements: [["INSERT INTO r(v) VALUES ('after')"]] })).status,
      200,
    );
    const history = fs.readFileSync(path.join(survivor.dataDirectory, "review", "history.jsonl"), "utf8");
    assert.match(history, /forced-recovery/);
    // Written while the node was stopped, replicated once it runs (it leads alone).
    await waitFor("the forced recovery in the replicated history", 10_000, async () => {
      const response = await fetch(`${recovered.url}/v1/history?limit=100`, {
        signal: AbortSignal.timeout(5000),
      });
      const answer = (await response.json()) as { history: { event: string; replicated: boolean }[] };
      return answer.history.some((record) => record.event === "forced-recovery" && record.replicated);
    });

    // An old member returns: it is refused at the handshake and never joins the new incarnation.
    cluster.startNode(lost1);
    await waitFor("the refusal in the recovered node's log", 15_000, async () =>
      /cluster-id-mismatch/.test(cluster.logsOf(survivor)) ? true : null,
    );
    const status = await cluster.status(survivor);
    assert.equal(status.role, "leader");
    assert.deepEqual(
      status.members.map((m) => m.id),
      [survivor.id],
    );
    const old = await cluster.status(lost1).catch(() => null);
    assert.notEqual(old?.role, "leader", "the returning old member does not lead");
  });
});
