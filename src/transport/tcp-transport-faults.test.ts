import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { nodeId } from "../types/ids.ts";
import {
  encodeFrame,
  FrameType,
  frameHeaderBytes,
  frameMagic,
  partLengthBytes,
  protocolVersion,
} from "./frame.ts";
import {
  connectRaw,
  handshakeRaw,
  hasLog,
  helloFrame,
  isConnected,
  makeNode,
  type Node,
  peerStats,
  startCluster,
  stopAll,
  waitFor,
  withTimeout,
} from "./tcp-test-kit.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** a and b connected, plus "c", a configured member that only ever appears as a raw socket. */
async function clusterWithRawSlot(overrides = {}): Promise<[Node, Node]> {
  const nodes = await startCluster(["a", "b"], overrides, ["c"]);
  const [a, b] = nodes as [Node, Node];
  await waitFor("a-b connected", () => isConnected(a, "b") && isConnected(b, "a"));
  return [a, b];
}

/** a still serves b after whatever happened to another connection. */
async function assertStillServes(a: Node, b: Node, label: string): Promise<void> {
  const before = b.received.length;
  assert.equal(a.transport.send(b.id, text(label)), true);
  await waitFor(`b receives ${label}`, () => b.received.length === before + 1);
  assert.equal(decode(b.received.at(-1)!.body), label);
}

describe("TcpTransport under faults", () => {
  test("an oversized frame closes that connection with a logged reason; other peers are unaffected", async () => {
    const [a, b] = await clusterWithRawSlot({ frameBytesMax: 64 * 1024 });
    try {
      const raw = await handshakeRaw(a, "c");
      const header = new Uint8Array(frameHeaderBytes);
      const view = new DataView(header.buffer);
      view.setUint32(0, frameMagic);
      view.setUint8(4, protocolVersion);
      view.setUint8(5, FrameType.message);
      view.setUint32(8, 64 * 1024);
      raw.socket.write(header);
      await withTimeout("raw closed", raw.closed);
      assert.ok(hasLog(a, "transport.frame.rejected", { reason: "oversized", peer: "c" }));
      await waitFor("c disconnected", () => !isConnected(a, "c"));
      assert.equal(peerStats(a, "c").protocolErrors, 1);
      await assertStillServes(a, b, "still here");
    } finally {
      await stopAll([a, b]);
    }
  });

  test("a message in pieces is joined around the frames between them; one named past frameBytesMax closes the connection", async () => {
    const [a, b] = await clusterWithRawSlot({ frameBytesMax: 64 * 1024 });
    try {
      const raw = await handshakeRaw(a, "c");
      const named = (length: number, piece: string): Uint8Array => {
        const bytes = new Uint8Array(partLengthBytes + piece.length);
        new DataView(bytes.buffer).setUint32(0, length);
        bytes.set(text(piece), partLengthBytes);
        return bytes;
      };
      raw.socket.write(
        Buffer.concat([
          encodeFrame(FrameType.part, named(6, "pie")),
          encodeFrame(FrameType.message, text("between")),
          encodeFrame(FrameType.part, text("ce")),
          encodeFrame(FrameType.lastPart, text("s")),
        ]),
      );
      await waitFor("two messages", () => a.received.length === 2);
      assert.deepEqual(
        a.received.map((r) => decode(r.body)),
        ["between", "pieces"],
      );
      raw.socket.write(encodeFrame(FrameType.part, named(64 * 1024, "too long")));
      await withTimeout("raw closed", raw.closed);
      assert.ok(hasLog(a, "transport.frame.rejected", { reason: "oversized", peer: "c" }));
      assert.equal(a.received.length, 2, "nothing of the oversized message delivered");
      await assertStillServes(a, b, "after pieces");
    } finally {
      await stopAll([a, b]);
    }
  });

  test("a frame with a bad checksum is not delivered and closes the connection", async () => {
    const [a, b] = await clusterWithRawSlot();
    try {
      const raw = await handshakeRaw(a, "c");
      const good = encodeFrame(FrameType.message, text("good"));
      const bad = encodeFrame(FrameType.message, text("evil"));
      bad[frameHeaderBytes]! ^= 0x20;
      raw.socket.write(Buffer.concat([good, bad]));
      await withTimeout("raw closed", raw.closed);
      assert.deepEqual(
        a.received.filter((r) => r.from === "c").map((r) => decode(r.body)),
        ["good"],
      );
      assert.ok(hasLog(a, "transport.frame.rejected", { reason: "bad-checksum" }));
      await assertStillServes(a, b, "after bad checksum");
    } finally {
      await stopAll([a, b]);
    }
  });

  test("a dialler from another cluster is refused, logged on both sides, and never connects", async () => {
    const [a, b] = await clusterWithRawSlot();
    const stranger = makeNode("c", new Map([[a.id, a.transport.listenAddress()]]), {
      clusterId: "other-cluster",
    });
    try {
      await withTimeout("start stranger", stranger.transport.start());
      await waitFor("refused", () =>
        hasLog(a, "transport.handshake.refused", { reason: "cluster-id-mismatch" }),
      );
      await waitFor("stranger logs a refusal", () =>
        stranger.logs.some(
          (l) => l.event.startsWith("transport.handshake.refused") || l.event.endsWith("refused-by-peer"),
        ),
      );
      assert.equal(isConnected(a, "c"), false);
      assert.equal(isConnected(stranger, "a"), false);
      // The refusal is logged before the refused socket finishes closing, when it is counted.
      await waitFor("the refused connection counted", () => a.transport.stats().refusedConnections >= 1);
      assert.ok(!a.peerStates.some((s) => s.peer === "c"));
      await assertStillServes(a, b, "after stranger");
    } finally {
      await stopAll([a, b, stranger]);
    }
  });

  test("a dialler the acceptor does not know is refused and never reports the peer connected", async () => {
    const nodes = await startCluster(["a"], {}, ["c"]);
    const [a] = nodes as [Node];
    const stranger = makeNode("c", new Map([[nodeId("b"), null]]));
    try {
      await withTimeout("start stranger", stranger.transport.start());
      a.transport.setPeerAddress(nodeId("c"), stranger.transport.listenAddress());
      await waitFor("a is refused", () => hasLog(a, "transport.connection.refused-by-peer"));
      assert.ok(hasLog(stranger, "transport.handshake.refused", { reason: "unknown-node-id" }));
      assert.deepEqual(a.peerStates, []);
      assert.ok(peerStats(a, "c").protocolErrors >= 1);
    } finally {
      await stopAll([a, stranger]);
    }
  });

  test("an unknown node id is refused with a refuse frame naming the reason", async () => {
    const [a, b] = await clusterWithRawSlot();
    try {
      const raw = await connectRaw(a.transport.listenAddress().port);
      raw.socket.write(helloFrame("intruder"));
      await withTimeout("raw closed", raw.closed);
      const refusal = raw.frames.find((f) => f.type === FrameType.refuse);
      assert.equal(refusal === undefined ? null : decode(refusal.body), "unknown-node-id");
      assert.ok(hasLog(a, "transport.handshake.refused", { reason: "unknown-node-id" }));
      await assertStillServes(a, b, "after intruder");
    } finally {
      await stopAll([a, b]);
    }
  });

  test("a wrong protocol version, a non-hello first frame, or garbage closes the connection", async () => {
    const [a, b] = await clusterWithRawSlot();
    try {
      const wrongVersion = helloFrame("c");
      wrongVersion[4] = protocolVersion + 1;
      const cases: [Uint8Array, string][] = [
        [wrongVersion, "unsupported-version"],
        [encodeFrame(FrameType.message, text("too early")), "expected-hello"],
        [text("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad-magic"],
      ];
      for (const [bytes, reason] of cases) {
        const raw = await connectRaw(a.transport.listenAddress().port);
        raw.socket.write(bytes);
        await withTimeout(`closed for ${reason}`, raw.closed);
        assert.ok(hasLog(a, "transport.frame.rejected", { reason }), reason);
      }
      assert.equal(a.transport.stats().refusedConnections, cases.length);
      assert.equal(isConnected(a, "c"), false);
      await assertStillServes(a, b, "after garbage");
    } finally {
      await stopAll([a, b]);
    }
  });

  test("a peer that stops reading: the queue stays within its bounds, drops are counted, others flow", async () => {
    const sendQueueBytesMax = 256 * 1024;
    const batchBytesMax = 64 * 1024;
    const [a, b] = await clusterWithRawSlot({ sendQueueBytesMax, batchBytesMax, frameBytesMax: 64 * 1024 });
    const raw = await handshakeRaw(a, "c");
    raw.socket.pause();
    const c = nodeId("c");
    const body = new Uint8Array(4096);
    const pumpedBytesMax = 256 * 1024 * 1024;
    // Socket buffer bound: one batch beyond the stream's high-water mark, plus one frame's header.
    const socketBufferedBytesMax = 64 * 1024 + batchBytesMax + 4096;
    try {
      let pumpedBytes = 0;
      while (peerStats(a, "c").droppedMessages === 0) {
        assert.ok(pumpedBytes < pumpedBytesMax, "the stalled peer never caused a drop");
        for (let i = 0; i < 8; i++) a.transport.send(c, body);
        pumpedBytes += 8 * body.length;
        const stats = peerStats(a, "c");
        assert.ok(stats.queuedBytes <= sendQueueBytesMax, `queued ${stats.queuedBytes}`);
        assert.ok(
          stats.socketBufferedBytes <= socketBufferedBytesMax,
          `socket buffered ${stats.socketBufferedBytes}`,
        );
        await new Promise((resolve) => setImmediate(resolve));
      }
      const stalled = peerStats(a, "c");
      assert.ok(stalled.sentBytes < pumpedBytes);
      assert.equal(stalled.connected, true);
      assert.ok(stalled.queuedBytes > sendQueueBytesMax - body.length);
      await assertStillServes(a, b, "while c is stalled");
    } finally {
      await stopAll([a, b]);
      raw.socket.destroy();
    }
  });

  test("fuzz: random bytes, with or without a valid hello first, never crash the node", async () => {
    const [a, b] = await clusterWithRawSlot({ handshakeTimeoutMs: 200 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.boolean(), fc.uint8Array({ maxLength: 3000 }), async (withHello, garbage) => {
          const raw = await connectRaw(a.transport.listenAddress().port);
          raw.socket.end(withHello ? Buffer.concat([helloFrame("c"), garbage]) : garbage);
          await withTimeout("fuzzed connection closes", raw.closed);
        }),
        { numRuns: 25 },
      );
      await waitFor("c released", () => !isConnected(a, "c"));
      await assertStillServes(a, b, "after fuzzing");
    } finally {
      await stopAll([a, b]);
    }
  });

  test("a connection that never sends its hello is closed after the handshake timeout", async () => {
    const [a, b] = await clusterWithRawSlot({ handshakeTimeoutMs: 100 });
    try {
      // Counted from here: with a 100 ms handshake bound, a stall on a busy machine can already have
      // refused one of a's and b's own handshakes while they connected.
      const refusedBefore = a.transport.stats().refusedConnections;
      const raw = await connectRaw(a.transport.listenAddress().port);
      await withTimeout("silent connection closed", raw.closed);
      await waitFor("timeout logged", () => hasLog(a, "transport.handshake.timeout"));
      await waitFor("counted as refused", () => a.transport.stats().refusedConnections >= refusedBefore + 1);
    } finally {
      await stopAll([a, b]);
    }
  });
});
