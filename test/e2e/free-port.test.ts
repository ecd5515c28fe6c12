/**
 * The harness's ports come from below the kernel's ephemeral range, so that no outbound connection
 * takes one before its node binds it (a witness that joined 60 s late once found its port taken).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { test } from "node:test";
import { freePort } from "./free-port.ts";

test("ports for nodes are distinct, free, and outside the range outbound connections draw from", async () => {
  const range = fs.existsSync("/proc/sys/net/ipv4/ip_local_port_range")
    ? fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number)
    : null;
  const ports: number[] = [];
  for (let i = 0; i < 300; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length, "no port is handed out twice");
  if (range !== null) {
    const [low] = range as [number];
    assert.ok(
      ports.every((port) => port < low),
      `every port is below the ephemeral range (${low}): ${ports.filter((p) => p >= low)}`,
    );
  }
  // Each is free: a server can listen on it now.
  for (const port of ports.slice(0, 20)) {
    await new Promise<void>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
    });
  }
});

test("a port held by another listener is skipped", async () => {
  const first = await freePort();
  // Hold the port that would come next in this block, then ask: it must not be handed out.
  const held = net.createServer();
  await new Promise<void>((resolve, reject) => {
    held.once("error", reject);
    held.listen(first + 1, "127.0.0.1", () => resolve());
  });
  try {
    const second = await freePort();
    assert.notEqual(second, first + 1);
  } finally {
    await new Promise<void>((resolve) => held.close(() => resolve()));
  }
});
