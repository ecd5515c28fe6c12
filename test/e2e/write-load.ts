/**
 * Closed-loop writers for end-to-end tests: each inserts unique keys at `majority` until stopped
 * and remembers every insert that was acknowledged, so a test can check none was lost. Needs a
 * table `items(k TEXT NOT NULL UNIQUE, pad BLOB)`.
 */
import { connect } from "../../src/client/index.ts";

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
