/**
 * What the benchmark needs of a running cluster, Baton's or etcd's: where the leader serves, which
 * processes to account CPU to, and the request of each workload in that system's own API.
 */

import http from "node:http";
import { type Answer, type LoadRequest, type LoadTarget, post } from "./load.ts";

export type ClusterProcess = {
  /** `leader` or `follower`, as known when the measurement started. */
  readonly role: "leader" | "follower";
  readonly name: string;
  readonly pid: number;
};

export type RunningCluster = {
  readonly system: string;
  /** The leader's client address: all load goes there, as a leader-aware client would send it. */
  readonly leader: LoadTarget;
  readonly processes: readonly ClusterProcess[];
  /** A single-row write of key `key` (0 ≤ key < keysMax) at `majority`. */
  writeRequest(key: number): LoadRequest;
  /** A linearizable point read of key `key`. */
  readRequest(key: number): LoadRequest;
  /** One transaction writing `rows` consecutive keys from `firstKey`, at `majority`. */
  batchRequest(firstKey: number, rows: number): LoadRequest;
  /** Stops every process by its pid and removes the data directory. */
  stop(): Promise<void>;
};

/** The key space of every workload: a 1,000-key table (Baton) or key range (etcd). */
export const keysMax = 1_000;
/** Every written value is 100 bytes. */
export const valueText = "v".repeat(100);

/** Writes every key once, in 100-row transactions, so that reads find rows. */
export async function prefill(cluster: RunningCluster): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let firstKey = 0; firstKey < keysMax; firstKey += 100) {
      expectOk(await post(agent, cluster.leader, cluster.batchRequest(firstKey, 100)), "prefill");
    }
  } finally {
    agent.destroy();
  }
}

export function expectOk(answer: Answer, what: string): void {
  if (answer.status !== 200) throw new Error(`${what}: ${answer.status} ${answer.body.slice(0, 300)}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 50 ms until it returns a value, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | null>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => null);
    if (value !== null) return value;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
