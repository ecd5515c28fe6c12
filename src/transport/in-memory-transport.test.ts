import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type NodeId, nodeId } from "../types/ids.ts";
import { InMemoryNetwork, InMemoryTransport } from "./in-memory-transport.ts";
import { waitFor } from "./tcp-test-kit.ts";
import type { PeerState } from "./transport.ts";

type Harness = {
  network: InMemoryNetwork;
  transports: Map<string, InMemoryTransport>;
  received: Map<string, string[]>;
  states: Map<string, string[]>;
};

async function cluster(
  ids: string[],
  options: { delivery?: "auto" | "manual"; sendQueueMessagesMax?: number } = {},
) {
  const network = new InMemoryNetwork(options.delivery === undefined ? {} : { delivery: options.delivery });
  const harness: Harness = { network, transports: new Map(), received: new Map(), states: new Map() };
  for (const id of ids) {
    harness.received.set(id, []);
    harness.states.set(id, []);
    const transport = new InMemoryTransport({
      network,
      selfId: nodeId(id),
      peers: ids.filter((other) => other !== id).map(nodeId),
      ...(options.sendQueueMessagesMax === undefined
        ? {}
        : { sendQueueMessagesMax: options.sendQueueMessagesMax }),
      onMessage: (from: NodeId, body: Uint8Array) =>
        harness.received.get(id)!.push(`${from}:${new TextDecoder().decode(body)}`),
      onPeerState: (peer: NodeId, state: PeerState) => harness.states.get(id)!.push(`${peer}:${state}`),
    });
    harness.transports.set(id, transport);
  }
  for (const transport of harness.transports.values()) await transport.start();
  return harness;
}

const text = (s: string) => new TextEncoder().encode(s);
const t = (h: Harness, id: string) => h.transports.get(id)!;

describe("InMemoryTransport", () => {
  test("delivers copies in order and reports peers connected once both ends run", async () => {
    const h = await cluster(["a", "b", "c"]);
    assert.deepEqual(h.states.get("a"), ["b:connected", "c:connected"]);
    const body = text("one");
    assert.equal(t(h, "a").send(nodeId("b"), body), true);
    body.fill(0);
    assert.equal(t(h, "a").send(nodeId("b"), text("two")), true);
    assert.equal(t(h, "c").send(nodeId("b"), text("three")), true);
    await waitFor("delivery", () => h.received.get("b")!.length === 3);
    assert.deepEqual(h.received.get("b"), ["a:one", "a:two", "c:three"]);
    const stats = t(h, "b")
      .stats()
      .peers.find((p) => p.peer === "a")!;
    assert.equal(stats.receivedMessages, 2);
    assert.equal(stats.connected, true);
  });

  test("a cut link refuses sends, drops messages in flight, and heals", async () => {
    const h = await cluster(["a", "b"], { delivery: "manual" });
    assert.equal(t(h, "a").send(nodeId("b"), text("in flight")), true);
    h.network.setLinkUp(nodeId("a"), nodeId("b"), false);
    assert.deepEqual(h.states.get("b"), ["a:connected", "a:disconnected"]);
    assert.equal(t(h, "a").send(nodeId("b"), text("refused")), false);
    assert.equal(h.network.deliver(), 1);
    assert.deepEqual(h.received.get("b"), []);
    assert.equal(t(h, "a").stats().peers[0]!.droppedMessages, 2);
    h.network.heal();
    assert.equal(t(h, "a").send(nodeId("b"), text("after heal")), true);
    h.network.deliver();
    assert.deepEqual(h.received.get("b"), ["a:after heal"]);
    assert.equal(t(h, "b").stats().peers[0]!.reconnects, 1);
  });

  test("manual delivery lets a test step messages one at a time; in-flight messages are bounded", async () => {
    const h = await cluster(["a", "b"], { delivery: "manual", sendQueueMessagesMax: 2 });
    const sent = ["m1", "m2", "m3"].map((m) => t(h, "a").send(nodeId("b"), text(m)));
    assert.deepEqual(sent, [true, true, false]);
    assert.equal(h.network.inFlightMessages, 2);
    assert.equal(h.network.deliver(1), 1);
    assert.deepEqual(h.received.get("b"), ["a:m1"]);
    assert.equal(t(h, "a").send(nodeId("b"), text("m4")), true);
    h.network.deliver();
    assert.deepEqual(h.received.get("b"), ["a:m1", "a:m2", "a:m4"]);
  });

  test("a stopped node disconnects from its peers and receives nothing more", async () => {
    const h = await cluster(["a", "b"], { delivery: "manual" });
    t(h, "a").send(nodeId("b"), text("late"));
    await t(h, "b").stop();
    assert.deepEqual(h.states.get("a"), ["b:connected", "b:disconnected"]);
    h.network.deliver();
    assert.deepEqual(h.received.get("b"), []);
    assert.equal(t(h, "a").send(nodeId("b"), text("refused")), false);
    assert.equal(t(h, "b").send(nodeId("a"), text("refused")), false);
  });
});
