/**
 * Write groups on production nodes in the simulator: the batches that reach the leader in one tick
 * share a log entry, and each still gets its own result, error and request-log answer.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NormalizedExecute } from "../../src/api/request-validation.ts";
import { simTickMs } from "./options.ts";
import { finalCheck, livenessPhase } from "./run.ts";
import { awaitLeader, startQuietCluster } from "./scenario-kit.ts";

type Answer = { readonly index?: number; readonly rowid?: unknown; readonly code?: string };

function write(sql: string, requestId: string | null = null): NormalizedExecute {
  return {
    statements: [{ sql, params: [] }],
    durability: "majority",
    requestId,
    expectedTerm: null,
    timeoutMs: 200 * simTickMs,
  };
}

describe("write groups", () => {
  test("batches of one tick share an entry; each keeps its own outcome", async () => {
    const cluster = await startQuietCluster(11, { nodeCount: 3 });
    try {
      const leader = await awaitLeader(cluster);
      const node = leader.node;
      assert.ok(node !== undefined && node !== null);
      let created = false;
      void node
        .execute(write("CREATE TABLE g(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT UNIQUE)"))
        .then(() => {
          created = true;
        });
      assert.notEqual(await cluster.runUntil(() => created, 400), null, "the table was created");
      const requests = [
        write("INSERT INTO g(v) VALUES ('a')"),
        write("INSERT INTO g(v) VALUES ('b')", "same-id"),
        write("INSERT INTO g(v) VALUES ('a')"), // a duplicate value: fails alone
        write("CREATE TABLE h(k INTEGER PRIMARY KEY)"), // DDL: an entry of its own
        write("INSERT INTO g(v) VALUES ('c')"),
        write("INSERT INTO g(v) VALUES ('b')", "same-id"), // a retry: answered with the first's response
      ];
      const answers: (Answer | null)[] = requests.map(() => null);
      requests.forEach((request, i) => {
        node.execute(request).then(
          (response) => {
            answers[i] = { index: response.position.index, rowid: response.results[0]?.lastInsertRowid };
          },
          (error: { code?: string }) => {
            answers[i] = { code: error.code ?? String(error) };
          },
        );
      });
      const settled = await cluster.runUntil(() => answers.every((answer) => answer !== null), 1_000);
      assert.notEqual(settled, null, "every write was answered");
      const [a, b, dup, ddl, c, retry] = answers as Answer[];
      assert.equal(dup?.code, "SQL_ERROR");
      assert.equal(a?.index, b?.index, "the first two share an entry");
      assert.equal(c?.index, a?.index, "the batch after the failing one shares it too");
      assert.deepEqual([a?.rowid, b?.rowid, c?.rowid], [1, 2, 3]);
      assert.deepEqual(retry, b, "the retried request id is answered with the first response");
      assert.ok(ddl?.index !== undefined && ddl.index !== a?.index, "DDL ran in an entry of its own");
      await livenessPhase(cluster);
      await finalCheck(cluster);
      for (const member of cluster.nodes) {
        const rows = member.store?.query([{ sql: "SELECT v FROM g ORDER BY id" }]).results[0]?.rows;
        assert.deepEqual(rows, [["a"], ["b"], ["c"]], `${member.id} holds each write once`);
      }
    } finally {
      await cluster.dispose();
    }
  });
});
