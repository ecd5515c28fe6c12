/**
 * A fresh 3-member etcd cluster for one measurement, the reference Baton is compared with: the
 * `etcd` binary on PATH (Debian: `apt-get install -y etcd-server`), every member on 127.0.0.1 with
 * default settings, data in a temporary directory removed by `stop()`, members stopped by pid.
 *
 * Clients use etcd's v3 HTTP/JSON gateway (keys and values base64): a write is a put of a 100-byte
 * value, a read a `serializable: false` range (linearizable, etcd's default), a batch one txn of
 * puts (etcd allows 128 operations per txn by default).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { freePort, stopChild } from "./baton-cluster.ts";
import { type LoadRequest, post } from "./load.ts";
import { keysMax, type RunningCluster, valueText, waitFor } from "./system-under-test.ts";

const membersCount = 3;
const leaderWaitMs = 20_000;

/** The installed etcd's version line, or null when there is no `etcd` binary on PATH. */
export function etcdVersion(): string | null {
  try {
    return execFileSync("etcd", ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "";
  } catch {
    return null;
  }
}

type Member = { name: string; clientPort: number; peerPort: number; child: ChildProcess };

export async function startEtcdCluster(): Promise<RunningCluster> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "etcd-bench-"));
  const members: Member[] = [];
  for (let i = 1; i <= membersCount; i++) {
    members.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort(), child: null! });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
  for (const member of members) {
    const client = `http://127.0.0.1:${member.clientPort}`;
    const peer = `http://127.0.0.1:${member.peerPort}`;
    member.child = spawn(
      "etcd",
      ["--name", member.name, "--data-dir", path.join(root, member.name)]
        .concat(["--listen-client-urls", client, "--advertise-client-urls", client])
        .concat(["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer])
        .concat(["--initial-cluster", initialCluster, "--initial-cluster-token", "bench"])
        .concat(["--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"]),
      { stdio: "ignore" },
    );
  }
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((m) => stopChild(m.child)));
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    const leader = await findLeader(members);
    return {
      system: "etcd",
      leader: { host: "127.0.0.1", port: leader.clientPort },
      processes: members.map((m) => ({
        role: m === leader ? "leader" : "follower",
        name: m.name,
        pid: m.child.pid!,
      })),
      writeRequest: (key) => jsonRequest("/v3/kv/put", putOf(key)),
      readRequest: (key) => jsonRequest("/v3/kv/range", { key: base64(`k${key}`), serializable: false }),
      batchRequest: (firstKey, rows) =>
        jsonRequest("/v3/kv/txn", {
          success: Array.from({ length: rows }, (_, row) => ({
            requestPut: putOf((firstKey + row) % keysMax),
          })),
        }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function findLeader(members: Member[]): Promise<Member> {
  const agent = new http.Agent();
  try {
    return await waitFor("an etcd leader", leaderWaitMs, async () => {
      for (const member of members) {
        const target = { host: "127.0.0.1", port: member.clientPort };
        const answer = await post(agent, target, { path: "/v3/maintenance/status", body: "{}" });
        if (answer.status !== 200) continue;
        const status = JSON.parse(answer.body) as { leader?: string; header?: { member_id?: string } };
        if (status.leader !== undefined && status.leader === status.header?.member_id) return member;
      }
      return null;
    });
  } finally {
    agent.destroy();
  }
}

const base64 = (text: string): string => Buffer.from(text).toString("base64");
const valueBase64 = base64(valueText);

function putOf(key: number): { key: string; value: string } {
  return { key: base64(`k${key}`), value: valueBase64 };
}

function jsonRequest(urlPath: string, body: unknown): LoadRequest {
  return { path: urlPath, body: JSON.stringify(body) };
}
