/**
 * Peer transport figures: messages/s and MB/s from one `TcpTransport` to another over loopback,
 * for 100 B and 4 KiB bodies. Both transports run in this one process (one event loop), so the
 * figure includes encoding, checksums, batching, decoding and delivery on both sides. The sender
 * keeps its send queue full: when `send` refuses a message it yields one event-loop turn and tries
 * again, as a leader with a backlog would. Each figure is the median of `runs` runs.
 */

import { TcpTransport } from "../src/transport/tcp-transport.ts";
import { nodeId } from "../src/types/ids.ts";
import { median } from "./stats.ts";

export type TransportFigure = { bodyBytes: number; messagesPerSecond: number; megabytesPerSecond: number };

/** Most messages the sender offers between two yields, so the loop lets the socket work. */
const burstMessagesMax = 256;
const setupWaitMsMax = 5000;

async function runOnce(bodyBytes: number, durationMs: number): Promise<TransportFigure> {
  const a = nodeId("a");
  const b = nodeId("b");
  let received = 0;
  const common = { clusterId: "bench", listen: { host: "127.0.0.1", port: 0 } };
  const receiver = new TcpTransport({
    ...common,
    selfId: b,
    peers: new Map([[a, null]]),
    onMessage: () => received++,
  });
  await receiver.start();
  const sender = new TcpTransport({
    ...common,
    selfId: a,
    peers: new Map([[b, receiver.listenAddress()]]),
    onMessage: () => {},
  });
  await sender.start();
  try {
    const setupDeadline = performance.now() + setupWaitMsMax;
    while (!sender.stats().peers[0]!.connected) {
      if (performance.now() > setupDeadline) throw new Error("transports did not connect");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const body = new Uint8Array(bodyBytes).fill(7);
    const started = performance.now();
    const deadline = started + durationMs;
    while (performance.now() < deadline) {
      for (let i = 0; i < burstMessagesMax && sender.send(b, body); i++);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      bodyBytes,
      messagesPerSecond: received / seconds,
      megabytesPerSecond: (received * bodyBytes) / seconds / 1e6,
    };
  } finally {
    await sender.stop();
    await receiver.stop();
  }
}

export async function benchTransport(runs = 3, durationMs = 1500): Promise<TransportFigure[]> {
  const figures: TransportFigure[] = [];
  for (const bodyBytes of [100, 4096]) {
    const samples: TransportFigure[] = [];
    for (let run = 0; run < runs; run++) samples.push(await runOnce(bodyBytes, durationMs));
    figures.push({
      bodyBytes,
      messagesPerSecond: median(samples.map((s) => s.messagesPerSecond)),
      megabytesPerSecond: median(samples.map((s) => s.megabytesPerSecond)),
    });
  }
  return figures;
}

export function printTransportFigures(figures: readonly TransportFigure[]): void {
  console.log("transport (loopback, one process, median of 3 runs)");
  for (const f of figures) {
    const rate = Math.round(f.messagesPerSecond).toLocaleString("en-US");
    console.log(
      `  body ${String(f.bodyBytes).padStart(5)} B: ${rate.padStart(10)} messages/s  ${f.megabytesPerSecond.toFixed(1).padStart(7)} MB/s`,
    );
  }
}

if (import.meta.main) printTransportFigures(await benchTransport());
