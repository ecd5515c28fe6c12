/**
 * Where a node process's memory is, seen from outside it (benchmarks only).
 *
 * - `/proc/<pid>/status` splits resident memory into anonymous pages (V8's heap, malloc: SQLite's
 *   page caches, buffers), file-backed pages (the binary, memory-mapped files) and shared memory
 *   (SQLite's `-shm` index).
 * - When the node was started with `--inspect=127.0.0.1:0`, `inspectMemory` asks it, over the
 *   DevTools protocol, for `process.memoryUsage()` and V8's heap statistics: the V8 heap apart from
 *   native memory. Each question is bounded by `inspectTimeoutMs`.
 */
import fs from "node:fs";

/** Resident memory by kind, in bytes. */
export type ResidentBreakdown = {
  readonly rss: number;
  readonly anonymous: number;
  readonly file: number;
  readonly shared: number;
};

export function residentBreakdown(pid: number): ResidentBreakdown | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    return match === null ? 0 : Number(match[1]) * 1024;
  };
  return {
    rss: field("VmRSS"),
    anonymous: field("RssAnon"),
    file: field("RssFile"),
    shared: field("RssShmem"),
  };
}

/** What `process.memoryUsage()` and `v8.getHeapStatistics()` say inside the node, in bytes. */
export type InspectedMemory = {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly mallocedMemory: number;
};

/** The longest one question to a node's inspector may take. */
export const inspectTimeoutMs = 5_000;

const inspectExpression = `(() => {
  const m = process.memoryUsage();
  const v8 = process.getBuiltinModule("node:v8").getHeapStatistics();
  return JSON.stringify({ rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external,
    arrayBuffers: m.arrayBuffers, mallocedMemory: v8.malloced_memory });
})()`;

/**
 * The inspector's WebSocket address a node printed on stderr, if any: the latest line of its own
 * (a restarted node prints a new one). Its query processes inherit the option and print theirs too,
 * but those reach the node's log inside its JSON log lines, never at the start of a line.
 */
export function inspectorUrl(logText: string): string | null {
  const matches = [...logText.matchAll(/^Debugger listening on (ws:\/\/[^\s"\\]+)$/gm)];
  return matches.at(-1)?.[1] ?? null;
}

/** Evaluates `expression` in the node behind `url` and returns its string value. */
export async function inspectEvaluate(url: string, expression: string): Promise<string> {
  const socket = new WebSocket(url);
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("inspector did not answer in time")), inspectTimeoutMs);
      socket.addEventListener("error", () => reject(new Error(`inspector ${url} failed`)));
      socket.addEventListener("open", () =>
        socket.send(
          JSON.stringify({ id: 1, method: "Runtime.evaluate", params: { expression, returnByValue: true } }),
        ),
      );
      socket.addEventListener("message", (event) => {
        const message = JSON.parse(String(event.data)) as {
          id?: number;
          result?: { result?: { value?: unknown } };
        };
        if (message.id !== 1) return;
        clearTimeout(timer);
        const value = message.result?.result?.value;
        if (typeof value === "string") resolve(value);
        else reject(new Error(`inspector answered ${JSON.stringify(message).slice(0, 200)}`));
      });
    });
  } finally {
    socket.close();
  }
}

export async function inspectMemory(url: string): Promise<InspectedMemory | null> {
  try {
    return JSON.parse(await inspectEvaluate(url, inspectExpression)) as InspectedMemory;
  } catch {
    return null;
  }
}
