/**
 * Closed-loop writers for end-to-end tests, two kinds:
 * - `startWriteLoad`: through the client library, each writer inserting unique keys at `majority`
 *   until stopped and remembering every insert that was acknowledged, so a test can check none
 *   was lost. Needs a table `items(k TEXT NOT NULL UNIQUE, pad BLOB)`.
 * - `startCountingLoad`: raw requests to one node (marked forwarded, so it answers itself rather
 *   than forwarding or redirecting), counting the answers by code ("ok" for 200), each writer
 *   pausing 20 ms after a refusal; for tests that judge what a node answers under load.
 */
import { connect } from "../../src/client/index.ts";
import type { ClusterNode } from "./cluster-harness.ts";

export type WriteLoad = {
  readonly acknowledged: Set<string>;
  readonly failed: number;
  stop(): Promise<void>;
};

export function startWriteLoad(urls: readonly string[], writers: number, tag: string): WriteLoad {
  const client = connect({ nodes: [...urls] });
  let running = true;
  let failed = 0;
  const acknowledged = new Set<string>();
  const done = Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; running; i++) {
        const key = `${tag}-${w}-${i}`;
        try {
          await client.execute(
            [{ sql: "INSERT INTO items(k, pad) VALUES (?, randomblob(100))", params: [key] }],
            {
              durability: "majority",
              timeoutMs: 5000,
            },
          );
          acknowledged.add(key);
        } catch {
          failed++;
        }
      }
    }),
  );
  return {
    acknowledged,
    get failed() {
      return failed;
    },
    async stop() {
      running = false;
      await done;
      await client.close();
    },
  };
}

export type CountingLoad = {
  /** Answers so far by code: "ok" for 200, else the error's code, `HTTP n`, or UNREACHABLE. */
  readonly codes: Map<string, number>;
  /** Ends every loop after its request in flight. */
  stop(): Promise<void>;
};

/**
 * `writers` closed loops of `/v1/execute` requests to `node`: writer `w`'s `i`th request is
 * `body(w, i)`, each bounded by `requestBoundMs` (a request past it counts UNREACHABLE).
 */
export function startCountingLoad(
  node: ClusterNode,
  writers: number,
  body: (writer: number, i: number) => object,
  requestBoundMs: number,
): CountingLoad {
  const codes = new Map<string, number>();
  let running = true;
  const send = async (request: object): Promise<string> => {
    try {
      const response = await fetch(`${node.url}/v1/execute`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-baton-forwarded": "1" },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(requestBoundMs),
      });
      const answer = (await response.json()) as { error?: { code?: string } } | null;
      return response.status === 200 ? "ok" : (answer?.error?.code ?? `HTTP ${response.status}`);
    } catch {
      return "UNREACHABLE";
    }
  };
  const done = Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; running; i++) {
        const code = await send(body(w, i));
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (code !== "ok") await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }),
  );
  return {
    codes,
    async stop() {
      running = false;
      await done;
    },
  };
}
