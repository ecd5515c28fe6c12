import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { describe, test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { nodeId } from "../types/ids.ts";
import { frameHeaderBytes } from "./frame.ts";
import {
  connectRaw,
  handshakeRaw,
  hasLog,
  helloFrame,
  isConnected,
  makeNode,
  type Node,
  peerStats,
  randomBody,
  startCluster,
  stopAll,
  waitFor,
  withTimeout,
} from "./tcp-test-kit.ts";
import { TcpTransport } from "./tcp-transport.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

function connectedPairs(nodes: readonly Node[]): boolean {
  return nodes.every((n) => nodes.every((m) => m === n || isConnected(n, m.id)));
}

describe("TcpTransport", () => {
  test("three transports exchange messages in both directions, in order per pair", async () => {
    const nodes = await startCluster(["a", "b", "c"]);
    try {
      await waitFor("full mesh", () => connectedPairs(nodes));
      const perPair = 50;
      for (const from of nodes) {
        for (const to of nodes) {
          if (from === to) continue;
          for (let i = 0; i < perPair; i++)
            assert.equal(from.transport.send(to.id, text(`${from.id}>${to.id}#${i}`)), true);
        }
      }
      await waitFor("all messages", () => nodes.every((n) => n.received.length === 2 * perPair));
      for (const node of nodes) {
        for (const from of nodes) {
          if (from === node) continue;
          const got = node.received.filter((r) => r.from === from.id).map((r) => decode(r.body));
          assert.deepEqual(
            got,
            Array.from({ length: perPair }, (_, i) => `${from.id}>${node.id}#${i}`),
          );
        }
        const stats = node.transport.stats();
        assert.equal(
          stats.peers.reduce((sum, p) => sum + p.sentMessages, 0),
          2 * perPair,
        );
        assert.equal(
          stats.peers.reduce((sum, p) => sum + p.droppedMessages, 0),
          0,
        );
      }
    } finally {
      await stopAll(nodes);
    }
  });

  test("an urgent message leaves when the task that sent it ends; ordered ones wait for the turn's flush", async () => {
    await withConnectedPair(async (a, b, sentBeforeTurn) => {
      const orderedOnly = sentBeforeTurn();
      assert.equal(a.transport.send(b.id, text("ordered-1")), true);
      assert.equal(await orderedOnly, 0, "an ordered message waits for the turn's flush");
      await waitFor("ordered-1", () => b.received.length === 1);
      const withUrgent = sentBeforeTurn();
      assert.equal(a.transport.send(b.id, text("ordered-2")), true);
      assert.equal(a.transport.send(b.id, text("urgent-1"), "urgent"), true);
      assert.equal(await withUrgent, 3, "the urgent message left at once, with what was queued");
      await waitFor("all three", () => b.received.length === 3);
      assert.deepEqual(
        b.received.map((r) => decode(r.body)),
        ["ordered-1", "urgent-1", "ordered-2"],
      );
    });
  });

  test("flushAtTaskEnd sends what is queued when the task ends, not at the turn's flush", async () => {
    await withConnectedPair(async (a, b, sentBeforeTurn) => {
      const sent = () => peerStats(a, "b").sentMessages;
      const flushed = sentBeforeTurn();
      assert.equal(a.transport.send(b.id, text("ordered-1")), true);
      assert.equal(a.transport.send(b.id, text("ordered-2")), true);
      a.transport.flushAtTaskEnd();
      assert.equal(sent(), 0, "nothing is written while the task runs");
      assert.equal(await flushed, 2, "both left before the turn's flush");
      a.transport.flushAtTaskEnd();
      await waitFor("both", () => b.received.length === 2);
      assert.deepEqual(
        b.received.map((r) => decode(r.body)),
        ["ordered-1", "ordered-2"],
      );
      assert.equal(sent(), 2, "a flush with nothing queued writes nothing");
    });
  });

  test("a message just under frameBytesMax arrives intact; one byte more is refused and counted", async () => {
    const frameBytesMax = 4 * 1024 * 1024;
    const nodes = await startCluster(["a", "b"], { frameBytesMax, sendQueueBytesMax: 2 * frameBytesMax });
    const [a, b] = nodes as [Node, Node];
    try {
      await waitFor("connected", () => connectedPairs(nodes));
      const largest = randomBody(frameBytesMax - frameHeaderBytes, 42);
      assert.equal(a.transport.send(b.id, largest), true);
      assert.equal(a.transport.send(b.id, new Uint8Array(largest.length + 1)), false);
      assert.equal(a.transport.send(b.id, text("after")), true);
      await waitFor("large message", () => b.received.length === 2);
      assert.ok(Buffer.from(b.received[0]!.body).equals(largest));
      assert.equal(decode(b.received[1]!.body), "after");
      assert.equal(peerStats(a, "b").droppedMessages, 1);
      assert.ok(hasLog(a, "transport.send.too-large"));
    } finally {
      await stopAll(nodes);
    }
  });

  test("a message larger than a batch goes in pieces: urgent ones sent after it arrive first, ordered ones after it", async () => {
    const nodes = await startCluster(["a", "b"], {
      frameBytesMax: 16 * 1024 * 1024,
      sendQueueBytesMax: 32 * 1024 * 1024,
      batchBytesMax: 64 * 1024,
    });
    const [a, b] = nodes as [Node, Node];
    try {
      await waitFor("connected", () => connectedPairs(nodes));
      const large = randomBody(8 * 1024 * 1024, 7);
      // Sent as three parts (as a message with a referenced entry is): it arrives as one body.
      const parts = [large.subarray(0, 1000), large.subarray(1000, 5_000_000), large.subarray(5_000_000)];
      assert.equal(a.transport.send(b.id, parts), true);
      assert.equal(a.transport.send(b.id, text("ordered after")), true);
      // Urgent messages sent on later turns, while the large one is being written.
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(a.transport.send(b.id, text(`urgent ${i}`), "urgent"), true);
      }
      await waitFor("all messages", () => b.received.length === 7);
      const order = b.received.map((r) => (r.body.length === large.length ? "large" : decode(r.body)));
      const largeAt = order.indexOf("large");
      assert.deepEqual(
        order.filter((o) => o.startsWith("urgent")),
        ["urgent 0", "urgent 1", "urgent 2", "urgent 3", "urgent 4"],
      );
      assert.ok(order.slice(0, largeAt).includes("urgent 0"), `urgent 0 passed the large message: ${order}`);
      assert.ok(order.indexOf("ordered after") > largeAt, `ordered after the large message: ${order}`);
      assert.ok(Buffer.from(b.received[largeAt]!.body).equals(large));
      const stats = peerStats(a, "b");
      assert.equal(stats.sentMessages, 7);
      assert.equal(stats.queuedMessages, 0);
      assert.equal(stats.droppedMessages, 0);
    } finally {
      await stopAll(nodes);
    }
  });

  test("simultaneous dials by both sides resolve to one shared connection, dialled by the lower id", async () => {
    const nodes = await startCluster(["b", "a"]);
    const [b, a] = nodes as [Node, Node];
    try {
      await waitFor("connected", () => connectedPairs(nodes));
      // Both dialled at once (startCluster sets both addresses in one turn): each side saw two
      // handshaken connections and closed the same one.
      await waitFor("duplicate resolved on both sides", () =>
        [a, b].every((n) => hasLog(n, "transport.connection.duplicate")),
      );
      const onA = peerStats(a, "b").connection!;
      const onB = peerStats(b, "a").connection!;
      assert.equal(onA.dialedBy, "a");
      assert.equal(onB.dialedBy, "a");
      assert.equal(onA.localPort, onB.remotePort);
      assert.equal(onA.remotePort, onB.localPort);
      assert.equal(peerStats(a, "b").connects, 1);
      assert.equal(peerStats(b, "a").connects, 1);
      a.transport.send(b.id, text("ping"));
      b.transport.send(a.id, text("pong"));
      await waitFor("both directions", () => a.received.length === 1 && b.received.length === 1);
      assert.equal(
        peerStats(a, "b").connection?.localPort,
        onA.localPort,
        "the kept connection stays in use",
      );
    } finally {
      await stopAll(nodes);
    }
  });

  test("a peer that restarts on the same port is reconnected and reachable again", async () => {
    const nodes = await startCluster(["a", "b"]);
    const [a, b] = nodes as [Node, Node];
    let restarted: Node | null = null;
    try {
      await waitFor("connected", () => connectedPairs(nodes));
      const bAddress = b.transport.listenAddress();
      await withTimeout("stop b", b.transport.stop());
      await waitFor("a sees b down", () => !isConnected(a, "b"));
      assert.deepEqual(a.peerStates.at(-1), { peer: nodeId("b"), state: "disconnected" });
      // Queued while b was down: meant for the process that stopped, never for its successor.
      assert.equal(a.transport.send(b.id, text("for the old b")), true);
      restarted = makeNode("b", new Map([[a.id, a.transport.listenAddress()]]), { listen: bAddress });
      await withTimeout("restart b", restarted.transport.start());
      const b2 = restarted;
      await waitFor("reconnected", () => isConnected(a, "b") && isConnected(b2, "a"));
      a.transport.send(b.id, text("hello again"));
      b2.transport.send(a.id, text("back"));
      await waitFor("messages after restart", () => b2.received.length === 1 && a.received.length === 1);
      assert.deepEqual(
        b2.received.map((m) => decode(m.body)),
        ["hello again"],
        "the restarted peer gets nothing queued for its predecessor",
      );
      assert.ok(hasLog(a, "transport.queue.dropped-for-restarted-peer", { peer: "b", messages: 1 }));
      assert.ok(peerStats(a, "b").reconnects >= 1);
    } finally {
      await stopAll(restarted === null ? nodes : [...nodes, restarted]);
    }
  });

  test("a hello with a new incarnation replaces the peer's old connection (the peer restarted)", async () => {
    const nodes = await startCluster(["a"], {}, ["c"]);
    const [a] = nodes as [Node];
    try {
      const first = await handshakeRaw(a, "c", "0000000000000001");
      const second = await handshakeRaw(a, "c", "0000000000000002");
      await withTimeout("old connection closed", first.closed);
      assert.equal(second.isClosed(), false);
      assert.ok(hasLog(a, "transport.connection.duplicate", { verdict: "peer-restarted" }));
      assert.equal(peerStats(a, "c").connection?.remotePort, second.socket.localPort);
      second.socket.destroy();
    } finally {
      await stopAll(nodes);
    }
  });

  test("a duplicate from the higher id loses to our dial, unless ours has been up long enough to be stale", async () => {
    let nowMs = 1000;
    const handshakeTimeoutMs = 1000;
    const accepted: Socket[] = [];
    const fakePeer = createServer((socket) => {
      accepted.push(socket);
      socket.on("error", () => {});
      socket.resume();
      socket.write(helloFrame("c", { incarnation: "00000000000000cc" }));
    });
    await withTimeout(
      "fake peer listens",
      new Promise<void>((resolve) => fakePeer.listen(0, "127.0.0.1", resolve)),
    );
    const port = (fakePeer.address() as { port: number }).port;
    const a = makeNode("a", new Map([[nodeId("c"), { host: "127.0.0.1", port }]]), {
      nowMs: () => nowMs,
      handshakeTimeoutMs,
    });
    try {
      await withTimeout("start a", a.transport.start());
      await waitFor("a dialled c", () => isConnected(a, "c"));
      const dialled = accepted[0]!;
      const early = await handshakeRawSameIncarnation(a);
      await withTimeout("early duplicate closed", early.closed);
      assert.ok(hasLog(a, "transport.connection.duplicate", { verdict: "keep-current" }));
      assert.equal(peerStats(a, "c").connection?.dialedBy, "a");
      nowMs += 3 * handshakeTimeoutMs;
      const late = await handshakeRawSameIncarnation(a);
      await waitFor("stale connection replaced", () =>
        hasLog(a, "transport.connection.duplicate", { verdict: "stale" }),
      );
      await withTimeout(
        "dialled socket closed",
        new Promise((resolve) => (dialled.closed ? resolve(null) : dialled.once("close", resolve))),
      );
      assert.equal(peerStats(a, "c").connection?.remotePort, late.socket.localPort);
      assert.equal(peerStats(a, "c").connection?.dialedBy, "c");
      late.socket.destroy();
    } finally {
      await withTimeout("stop a", a.transport.stop());
      for (const socket of accepted) socket.destroy();
      await withTimeout("fake peer closes", new Promise((resolve) => fakePeer.close(resolve)));
    }
  });

  test("messages queued for an unreachable peer are bounded and expire instead of being kept", async () => {
    const nodes = await startCluster(["a"], { queuedMessageAgeMsMax: 50, sendQueueMessagesMax: 10 }, ["c"]);
    const [a] = nodes as [Node];
    try {
      const accepted = Array.from({ length: 15 }, (_, i) => a.transport.send(nodeId("c"), text(`m${i}`)));
      assert.equal(accepted.filter(Boolean).length, 10);
      assert.equal(peerStats(a, "c").queuedMessages, 10);
      await waitFor("queue expired", () => peerStats(a, "c").queuedMessages === 0);
      const stats = peerStats(a, "c");
      assert.equal(stats.expiredMessages, 10);
      assert.equal(stats.droppedMessages, 15);
      assert.equal(stats.queuedBytes, 0);
    } finally {
      await stopAll(nodes);
    }
  });

  test("start() on a port in use fails with TRANSPORT_LISTEN_FAILED; bad options fail with BAD_CONFIG", async () => {
    const nodes = await startCluster(["a"]);
    const [a] = nodes as [Node];
    try {
      const clash = makeNode("b", new Map(), { listen: a.transport.listenAddress() });
      await assert.rejects(clash.transport.start(), (error) =>
        isBatonError(error, "TRANSPORT_LISTEN_FAILED"),
      );
      await clash.transport.stop();
      assert.throws(
        () => makeNode("b", new Map(), { frameBytesMax: 1 << 20, sendQueueBytesMax: 1000 }),
        (error) => isBatonError(error, "BAD_CONFIG"),
      );
      assert.throws(
        () => new TcpTransport({ ...baseOptions(), peers: new Map([[nodeId("a"), null]]) }),
        (error) => isBatonError(error, "BAD_CONFIG"),
      );
    } finally {
      await stopAll(nodes);
    }
  });

  test("peers added and removed at runtime: refused before, dialled once added, cut off once removed", async () => {
    const a = makeNode("a", new Map());
    await a.transport.start();
    const b = makeNode("b", new Map([[nodeId("a"), a.transport.listenAddress()]]));
    await b.transport.start();
    const nodes = [a, b];
    try {
      await waitFor("a refuses b, which it does not know", () => hasLog(a, "transport.handshake.refused"));
      assert.equal(a.transport.send(nodeId("b"), text("too early")), false);
      assert.equal(a.transport.stats().unknownPeerDrops, 1);
      const { host, port } = b.transport.listenAddress();
      a.transport.addPeer(nodeId("b"), `${host}:${port}`);
      await waitFor("a and b connected", () => isConnected(a, "b") && isConnected(b, "a"));
      assert.equal(a.transport.send(nodeId("b"), text("hello b")), true);
      await waitFor("b receives", () => b.received.some((r) => decode(r.body) === "hello b"));
      a.transport.addPeer(nodeId("b"), `${host}:${port}`); // the same address again changes nothing
      assert.ok(isConnected(a, "b"));
      a.transport.removePeer(nodeId("b"));
      assert.equal(a.transport.send(nodeId("b"), text("after removal")), false);
      assert.equal(a.transport.stats().unknownPeerDrops, 2);
      assert.deepEqual(
        a.transport.stats().peers.map((p) => p.peer),
        [],
      );
      await waitFor("b sees a gone", () => !isConnected(b, "a"));
      b.transport.send(nodeId("a"), text("to a, no longer its peer"));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(!a.received.some((r) => decode(r.body) === "to a, no longer its peer"));
    } finally {
      await stopAll(nodes);
    }
  });

  test("send() after stop() is refused and counted; stop() is idempotent", async () => {
    const nodes = await startCluster(["a", "b"]);
    const [a, b] = nodes as [Node, Node];
    await waitFor("connected", () => connectedPairs(nodes));
    await stopAll(nodes);
    await withTimeout("second stop", a.transport.stop());
    assert.equal(a.transport.send(b.id, text("late")), false);
    assert.equal(peerStats(a, "b").droppedMessages, 1);
    assert.equal(peerStats(a, "b").connected, false);
  });
});

/** A raw connection to `a` introducing itself as "c" with the fake peer's incarnation. */
async function handshakeRawSameIncarnation(a: Node) {
  const raw = await connectRaw(a.transport.listenAddress().port);
  raw.socket.write(helloFrame("c", { incarnation: "00000000000000cc" }));
  await waitFor("a answers", () => raw.frames.length > 0);
  return raw;
}

function baseOptions() {
  return {
    clusterId: "c",
    selfId: nodeId("a"),
    listen: { host: "127.0.0.1", port: 0 },
    peers: new Map(),
    onMessage: () => {},
  };
}

/**
 * Runs `body` with two connected transports, `a` and `b`; `sentBeforeTurn` resolves to the messages
 * `a` has sent to `b` by the end of a callback queued now, which runs before a flush scheduled for
 * the turn by sends that follow it.
 */
async function withConnectedPair(
  body: (a: Node, b: Node, sentBeforeTurn: () => Promise<number>) => Promise<void>,
): Promise<void> {
  const nodes = await startCluster(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    await waitFor("connected", () => connectedPairs(nodes));
    const sent = () => peerStats(a, "b").sentMessages;
    await body(a, b, () => new Promise<number>((resolve) => setImmediate(() => resolve(sent()))));
  } finally {
    await stopAll(nodes);
  }
}
