import assert from "node:assert/strict";
import { test } from "node:test";
import type { Store } from "../store/store.ts";
import { nodeId } from "../types/ids.ts";
import { type NodeConfig, nodeDefaults } from "./node-config.ts";
import { NodeStatusView } from "./node-status.ts";
import { PeerDirectory } from "./peer-directory.ts";
import type { ReplicaLoop } from "./replica-loop.ts";

const config: NodeConfig = {
  ...nodeDefaults,
  id: nodeId("n2"),
  voters: [nodeId("n1"), nodeId("n2"), nodeId("n3")],
  httpAddress: "127.0.0.1:4002",
  peerHttp: new Map(),
  heartbeatMs: 100,
  missedHeartbeats: 10,
  durability: "majority",
};

/** A loop as readiness sees it: its role and leader, the term of its commit, its lag and whether it stopped. */
function loopWith(state: {
  role: string;
  leaderId: string | null;
  lagMs: number | null;
  committedInTerm?: boolean;
  damaged?: { index: number; ownHash: string; majorityHash: string; detectedAtMs: number };
  verified?: boolean;
}) {
  return {
    fatal: null,
    lagMs: () => state.lagMs,
    core: {
      summary: () => ({ role: state.role, leaderId: state.leaderId, term: 3, commitIndex: 10 }),
      termAt: () => (state.committedInTerm === false ? 2 : 3),
    },
  } as unknown as ReplicaLoop;
}

function readiness(state: Parameters<typeof loopWith>[0]) {
  const peers = new PeerDirectory(config.id, config.httpAddress, new Map());
  return new NodeStatusView(loopWith(state), {} as Store, peers, config, {
    snapshots: () => {
      throw new Error("readiness reads no snapshot status");
    },
    admission: () => {
      throw new Error("readiness reads no admission status");
    },
    storage: () => ({
      lostEntriesUntil: null,
      damaged: state.damaged ?? null,
      verified: state.verified ?? true,
      lastCheck: null,
    }),
  }).readiness(false);
}

test("a follower that knows a leader but lags past readyLagMsMax is not ready", () => {
  assert.equal(readiness({ role: "follower", leaderId: "n1", lagMs: 100 }).ready, true);
  const lagging = readiness({ role: "follower", leaderId: "n1", lagMs: nodeDefaults.readyLagMsMax + 1 });
  assert.equal(lagging.ready, false);
  assert.match(lagging.reason ?? "", /lags the leader/);
  assert.equal(readiness({ role: "follower", leaderId: "n1", lagMs: null }).ready, false, "never caught up");
  assert.equal(readiness({ role: "candidate", leaderId: null, lagMs: 100 }).ready, false);
});

test("a leader is ready only once it has committed an entry of its term", () => {
  assert.equal(readiness({ role: "leader", leaderId: "n2", lagMs: null }).ready, true);
  assert.equal(
    readiness({ role: "leader", leaderId: "n2", lagMs: null, committedInTerm: false }).ready,
    false,
  );
});

test("a node whose database failed a consistency check is not ready, whatever its role", () => {
  const damaged = { index: 7, ownHash: "aa", majorityHash: "bb", detectedAtMs: 0 };
  for (const role of ["leader", "follower"]) {
    const answer = readiness({ role, leaderId: "n1", lagMs: 0, damaged });
    assert.equal(answer.ready, false, role);
    assert.match(answer.reason ?? "", /database damaged/);
  }
});

test("a node that has not verified its database since it started is not ready", () => {
  const answer = readiness({ role: "follower", leaderId: "n1", lagMs: 0, verified: false });
  assert.equal(answer.ready, false);
  assert.match(answer.reason ?? "", /not verified/);
});
