/**
 * Opens and wires one node from its configuration: log, store, core, transport, service, HTTP.
 * Used by `baton start` and by tests that run nodes in-process.
 *
 * Graceful stop: refuse new requests, hand leadership to the most up-to-date follower when this
 * node leads (bounded wait), let in-flight requests finish (bounded), stop ticking, wait for
 * pending log writes, then close the transport, the log and the store.
 */
import path from "node:path";
import type { StartConfig } from "../cli/start-config.ts";
import { HttpApi } from "../http/http-api.ts";
import { Store } from "../store/store.ts";
import { TcpTransport } from "../transport/tcp-transport.ts";
import { type NodeId, nodeId } from "../types/ids.ts";
import { Wal } from "../wal/wal.ts";
import { DatabaseService } from "./database-service.ts";
import { type NodeLog, RaftNode } from "./raft-node.ts";

export type RunningNode = {
  readonly node: RaftNode;
  readonly service: DatabaseService;
  readonly http: HttpApi;
  readonly httpPort: number;
  stop(): Promise<void>;
};

const transferWaitMsMax = 3_000;

function hostPort(address: { host: string; port: number }): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

export async function launchNode(
  config: StartConfig,
  log: NodeLog,
  onFatal: (error: Error) => void,
): Promise<RunningNode> {
  const { wal, recovered } = Wal.open(path.join(config.dataDirectory, "log"));
  if (recovered.tornTailBytes > 0) log("warn", "wal.torn-tail-cut", { bytes: recovered.tornTailBytes });
  const store = Store.open({ path: path.join(config.dataDirectory, "baton.db") });
  const self = nodeId(config.id);
  const peers = config.cluster.filter((m) => m.id !== config.id);
  const peerHttp = new Map<NodeId, string>();
  for (const member of peers)
    if (member.http !== null) peerHttp.set(nodeId(member.id), hostPort(member.http));
  const node = new RaftNode(
    {
      id: self,
      voters: config.cluster.map((m) => nodeId(m.id)),
      dataDirectory: config.dataDirectory,
      httpAddress: hostPort(config.http),
      peerHttp,
      heartbeatMs: config.heartbeatMs,
      missedHeartbeats: config.missedHeartbeats,
      durability: config.durability,
      wal,
      store,
      log,
      onFatal,
      transport: (handlers) =>
        new TcpTransport({
          clusterId: config.clusterId,
          selfId: self,
          listen: config.raft,
          peers: new Map(peers.map((m) => [nodeId(m.id), m.raft])),
          ...handlers,
          onLog: (level, event, fields) => log(level, event, { ...fields }),
        }),
    },
    {
      entries: recovered.entries,
      hardState: recovered.hardState,
      snapshotIndex: recovered.compactionPoint.index,
      snapshotTerm: recovered.compactionPoint.term,
    },
  );
  await node.start();
  const service = new DatabaseService(node);
  const http = new HttpApi(service, {
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
    appliedIndex: store.appliedIndex,
    lastIndex: wal.lastIndex,
  });
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= stopNode(node, service, http, log);
    return stopped;
  };
  return { node, service, http, httpPort: address.port, stop };
}

async function handOver(node: RaftNode, log: NodeLog): Promise<void> {
  const status = node.core.status();
  if (status.role !== "leader") return;
  const target = [...status.members]
    .filter((m) => m.id !== node.id)
    .sort((a, b) => b.matchIndex - a.matchIndex)[0];
  if (target === undefined) return;
  log("info", "node.handing-over-leadership", { target: target.id });
  node.step({ type: "transferLeadership", target: target.id });
  const deadline = Date.now() + transferWaitMsMax;
  while (node.core.status().role === "leader" && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
  log("info", "node.hand-over-finished", {
    role: node.core.status().role,
    leader: node.core.status().leaderId,
  });
}

async function stopNode(
  node: RaftNode,
  service: DatabaseService,
  http: HttpApi,
  log: NodeLog,
): Promise<void> {
  log("info", "node.stopping", {});
  service.beginStop();
  try {
    await handOver(node, log);
  } catch (error) {
    log("warn", "node.hand-over-failed", { error: (error as Error).message });
  }
  await http.stop();
  await node.stop();
  await node.wal
    .close()
    .catch((error: unknown) => log("error", "wal.close-failed", { error: String(error) }));
  node.store.close();
  log("info", "node.stopped", {});
}
