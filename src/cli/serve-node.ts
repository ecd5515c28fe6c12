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
import { ContactsRecorder, incarnationClusterId, readRecovery } from "../node/recovery.ts";
import type { NodeLog } from "../node/runtime.ts";
import { joinIfNew, promoteUntilVoter } from "./join.ts";

export type RunningNode = {
  readonly node: BatonNode;
  readonly http: HttpApi;
  readonly httpPort: number;
  stop(): Promise<void>;
};

/** How long a stopping leader waits for its hand-over to finish. */
const transferWaitMsMax = 3_000;

/** How often the running node records when it last heard from each member (`recovery.ts`). */
const contactsEveryMs = 5_000;

export async function launchNode(
  requested: LaunchConfig & {
    readonly bodyBytesMax: number;
    readonly join?: string | null;
    readonly joinAs?: "voter" | "learner" | "witness";
  },
  log: NodeLog,
  onFatal: (error: Error) => void,
): Promise<RunningNode> {
  const joining = await joinIfNew(
    { ...requested, join: requested.join ?? null, joinAs: requested.joinAs ?? "voter" },
    log,
  );
  const config = afterRecovery(joining.config, log);
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
  const recorder = new ContactsRecorder(config.dataDirectory, (error) =>
    log("warn", "node.contacts-not-recorded", { error: error.message }),
  );
  const contacts = setInterval(() => recorder.record(node.status(), Date.now()), contactsEveryMs);
  contacts.unref();
  const stopPromoting =
    joining.join === null
      ? () => {}
      : promoteUntilVoter(
          config.dataDirectory,
          joining.join,
          config.id,
          hostPort({ host: config.http.host, port: address.port }),
          log,
        );
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    clearInterval(contacts);
    stopPromoting();
    // A contacts write under way finishes before the process exits (no stray temporary file).
    stopped ??= Promise.all([stopServing(node, http, opened.close, log), recorder.settled()]).then(() => {});
    return stopped;
  };
  return { node, http, httpPort: address.port, stop };
}

/** A node recovered by force serves its own incarnation, alone (`recovery.ts`). */
function afterRecovery<T extends LaunchConfig>(config: T, log: NodeLog): T {
  const recovery = readRecovery(config.dataDirectory);
  if (recovery === null) return config;
  const clusterId = incarnationClusterId(recovery.baseClusterId, recovery.incarnation);
  log("warn", "node.recovered-incarnation", {
    incarnation: recovery.incarnation,
    clusterId,
    recoveredAtMs: recovery.recoveredAtMs,
    ignoredMembers: config.cluster.filter((m) => m.id !== config.id).map((m) => m.id),
  });
  return { ...config, clusterId, cluster: config.cluster.filter((m) => m.id === config.id) };
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
