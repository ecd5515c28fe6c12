/**
 * Closed-loop writers in a process of their own, so that a test process measuring answers (or a
 * probe) is not itself the bottleneck: `writers` loops, each with its own keep-alive connection
 * (`node:http`), each sending `INSERT INTO <table>(note) VALUES (?)` to one node as soon as its
 * previous answer arrived, pausing 20 ms after a refusal. `stop()` closes its stdin, waits for the
 * loops to finish their request in flight (SIGKILL by pid after a bound) and returns how many
 * answers came back with each code ("ok" for 200).
 */
import { spawn } from "node:child_process";
import type { ClusterNode } from "./cluster-harness.ts";

const loadScript = `
const http = require("node:http");
const { url, writers, table, timeoutMs } = JSON.parse(process.argv[1]);
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: writers });
const codes = {};
let running = true;
process.stdin.on("end", () => { running = false; });
process.stdin.resume();
function post(body) {
  return new Promise((resolve) => {
    const request = http.request({ host: target.hostname, port: target.port, path: "/v1/execute", method: "POST", agent,
      timeout: timeoutMs + 10000,
      headers: { "content-type": "application/json", "x-baton-forwarded": "1", "content-length": Buffer.byteLength(body) } },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => {
          if (response.statusCode === 200) return resolve("ok");
          try { resolve(JSON.parse(Buffer.concat(chunks).toString()).error.code); } catch { resolve("HTTP " + response.statusCode); }
        });
        response.on("error", () => resolve("UNREACHABLE"));
      });
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", () => resolve("UNREACHABLE"));
    request.end(body);
  });
}
(async () => {
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; running; i++) {
      const body = JSON.stringify({ statements: [{ sql: "INSERT INTO " + table + "(note) VALUES (?)", params: ["w" + w + "-" + i] }], timeoutMs });
      const code = await post(body);
      codes[code] = (codes[code] ?? 0) + 1;
      if (code !== "ok") await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }));
  agent.destroy();
  process.stdout.write(JSON.stringify(codes));
})();
`;

/** Output the loads may print (a JSON map of codes) and the bound on their stop. */
const stopWaitMs = 30_000;

export function loadFromProcess(
  node: ClusterNode,
  options: { writers: number; table: string; timeoutMs: number },
) {
  const child = spawn(process.execPath, ["-e", loadScript, JSON.stringify({ url: node.url, ...options })], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    async stop(): Promise<Map<string, number>> {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), stopWaitMs);
      await exited;
      clearTimeout(timer);
      return new Map(Object.entries(JSON.parse(output || "{}") as Record<string, number>));
    },
  };
}
