/**
 * Runs one node and serves its HTTP API: what `baton start` does, and what tests that run nodes
 * in-process use.
 *
 * Graceful stop: refuse new requests, hand leadership to the most up-to-date follower when this
 * node leads (bounded wait), let in-flight HTTP requests finish (bounded), stop ticking, wait for
 * pending log writes, then close the transport, the log and the store.
 */
import { HttpApi } from "../http/http-api.ts";
import type { BatonNode } from "../node/baton-node.ts";
import { hostPort, type LaunchConfig, openNode } from "../node/launch.ts";
import type { NodeLog } from "../node/runtime.ts";

export type RunningNode = {
  readonly node: BatonNode;
  readonly http: HttpApi;
  readonly httpPort: number;
  stop(): Promise<void>;
};

/** How long a stopping leader waits for its hand-over to finish. */
const transferWaitMsMax = 3_000;

export async function launchNode(
  config: LaunchConfig & { readonly bodyBytesMax: number },
  log: NodeLog,
  onFatal: (error: Error) => void,
): Promise<RunningNode> {
  const opened = await openNode(config, log, onFatal);
  const { node } = opened;
  const http = new HttpApi(node, {
    host: config.http.host,
    port: config.http.port,
    bodyBytesMax: config.bodyBytesMax,
    onLog: (level, event, fields) => log(level, event, fields),
  });
  const address = await http.start();
  log("info", "node.started", {
    id: config.id,
    http: hostPort({ host: config.http.host, port: address.port }),
    raft: hostPort(config.raft),
    appliedIndex: node.runtime.store.appliedIndex,
    lastIndex: opened.lastIndexAtOpen,
  });
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= stopServing(node, http, opened.close, log);
    return stopped;
  };
  return { node, http, httpPort: address.port, stop };
}

async function stopServing(
  node: BatonNode,
  http: HttpApi,
  close: () => Promise<void>,
  log: NodeLog,
): Promise<void> {
  log("info", "node.stopping", {});
  node.beginStop();
  try {
    await node.handOver(transferWaitMsMax);
    log("info", "node.hand-over-finished", { role: node.loop.core.summary().role });
  } catch (error) {
    log("warn", "node.hand-over-failed", { error: (error as Error).message });
  }
  await http.stop();
  await close();
  log("info", "node.stopped", {});
}
