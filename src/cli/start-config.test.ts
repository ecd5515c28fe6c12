import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isBatonError } from "../lib/errors.ts";
import { resolveStartConfig, startHelp } from "./start-config.ts";

const cluster = "n1=127.0.0.1:4101,n2=127.0.0.1:4102/127.0.0.1:4002,n3=127.0.0.1:4103";

test("flags resolve into a complete configuration with defaults", () => {
  const config = resolveStartConfig(["--id", "n1", "--data", "/tmp/d", "--cluster", cluster], {});
  assert.equal(config.id, "n1");
  assert.equal(config.heartbeatMs, 100);
  assert.equal(config.missedHeartbeats, 6);
  assert.equal(config.durability, "majority");
  assert.equal(config.queryProcessesMax, 2);
  assert.equal(config.queryMsMax, 5000);
  assert.equal(config.readsInFlightMax, 512);
  assert.equal(config.writesInFlightMax, 2048);
  assert.deepEqual(config.http, { host: "127.0.0.1", port: 4001 });
  assert.deepEqual(
    config.cluster.map((m) => [m.id, m.raft.port, m.http?.port ?? null]),
    [
      ["n1", 4101, 4001],
      ["n2", 4102, 4002],
      ["n3", 4103, null],
    ],
  );
});

test("precedence: flag over environment over config file over default", () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "baton-config-")), "baton.json");
  fs.writeFileSync(
    file,
    JSON.stringify({
      id: "n1",
      data: "/from-file",
      "heartbeat-ms": 50,
      "missed-heartbeats": 4,
      durability: "one",
    }),
  );
  const env = { BATON_CONFIG: file, BATON_HEARTBEAT_MS: "70", BATON_DURABILITY: "all" };
  const config = resolveStartConfig(["--durability", "local"], env);
  assert.equal(config.dataDirectory, "/from-file");
  assert.equal(config.missedHeartbeats, 4);
  assert.equal(config.heartbeatMs, 70);
  assert.equal(config.durability, "local");
  fs.rmSync(path.dirname(file), { recursive: true });
});

for (const [name, argv, fragment] of [
  ["an unknown flag", ["--id", "n1", "--data", "d", "--bogus", "1"], "bogus"],
  ["a missing id", ["--data", "d"], "--id is required"],
  ["a bad port", ["--id", "n1", "--data", "d", "--http", "127.0.0.1:99999"], "--http"],
  ["a bad durability", ["--id", "n1", "--data", "d", "--durability", "most"], "--durability"],
  ["a non-numeric heartbeat", ["--id", "n1", "--data", "d", "--heartbeat-ms", "fast"], "--heartbeat-ms"],
  ["a node missing from the cluster", ["--id", "n9", "--data", "d", "--cluster", cluster], "not a member"],
  ["a duplicate member", ["--id", "n1", "--data", "d", "--cluster", "n1=a:1,n1=b:2"], "duplicate"],
] as const) {
  test(`${name} is a BAD_CONFIG error naming the option`, () => {
    assert.throws(
      () => resolveStartConfig([...argv], {}),
      (error: unknown) => isBatonError(error, "BAD_CONFIG") && error.message.includes(fragment),
    );
  });
}

test("help lists every option with its environment variable", () => {
  const help = startHelp();
  for (const name of ["--heartbeat-ms", "BATON_MISSED_HEARTBEATS", "--cluster", "--config"])
    assert.ok(help.includes(name), name);
});

test("the tick period is explicit configuration, and the heartbeat must be a whole number of ticks", () => {
  const base = ["--id", "n1", "--data", "/tmp/x", "--cluster", "n1=127.0.0.1:4101"];
  assert.equal(resolveStartConfig(base, {}).tickMs, 10);
  assert.equal(resolveStartConfig([...base, "--tick-ms", "5", "--heartbeat-ms", "15"], {}).tickMs, 5);
  assert.throws(
    () => resolveStartConfig([...base, "--heartbeat-ms", "15"], {}),
    (error: unknown) =>
      isBatonError(error, "BAD_CONFIG") && /whole number of ticks/.test((error as Error).message),
  );
});

test("the admission bounds are flags, positive integers", () => {
  const base = ["--id", "n1", "--data", "/tmp/d", "--cluster", cluster];
  const config = resolveStartConfig(
    [...base, "--writes-in-flight-max", "64", "--reads-in-flight-max", "32"],
    {},
  );
  assert.equal(config.writesInFlightMax, 64);
  assert.equal(config.readsInFlightMax, 32);
  assert.throws(
    () => resolveStartConfig([...base, "--writes-in-flight-max", "0"], {}),
    (error: unknown) => isBatonError(error, "BAD_CONFIG"),
  );
});
