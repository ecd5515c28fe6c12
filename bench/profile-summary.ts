/**
 * Summarizes the `--cpu-prof` profiles that `npm run bench -- --profile DIR` leaves behind: for
 * every node, only the samples inside the measured window (V8 profile times and the window's edges
 * are both CLOCK_MONOTONIC microseconds), self time per function, and self time per area.
 *
 * Usage: npx node bench/profile-summary.ts DIR/<workload>-run<N> [--top 25]
 *
 * Area of a sample: the garbage collector, idle and V8's own "(program)" time are their own areas;
 * a JSON or SQLite native leaf is named by what it does; otherwise the nearest frame of the
 * project's own code (src/…) decides, and a stack with no project frame is named after the Node
 * core module at its leaf. Only the main thread is sampled: the libuv pool's fs writes and fsyncs
 * are in the process's CPU time (`cpuMs` of window.json) but not in the profile.
 */

import fs from "node:fs";
import path from "node:path";
import { projectAreas } from "./profile-areas.ts";

type CallFrame = { functionName: string; url: string; lineNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
type Window = {
  startUs: number;
  endUs: number;
  roles: Record<string, string>;
  cpuMs: Record<string, number>;
  /** The main thread's own CPU time and preemptions in the window (absent in older directories). */
  mainThread?: Record<string, { cpuMs: number; preempted: number }>;
};

const sqliteNatives = new Set(["run", "all", "get", "iterate", "prepare", "exec", "close", "open"]);
const changesetNatives = new Set(["changeset", "applyChangeset", "createSession", "patchset"]);

/** Areas of stacks with no project frame, by the Node core module at the leaf. */
const coreAreas: readonly (readonly [RegExp, string])[] = [
  [/node:internal\/timers|node:timers/, "timers"],
  [/node:_http|node:internal\/http/, "HTTP (Node core)"],
  [/node:net|node:internal\/stream|node:stream|node:internal\/streams/, "sockets/streams (Node core)"],
  [/node:internal\/fs|node:fs/, "fs (Node core)"],
  [/node:internal\/process\/task_queues|node:internal\/async_hooks/, "microtasks/async hooks"],
];

function areaOf(stack: readonly CallFrame[]): string {
  const leaf = stack[0]!;
  if (leaf.functionName === "(garbage collector)") return "GC";
  if (leaf.functionName === "(idle)") return "idle";
  if (leaf.functionName === "(program)") return "(program): V8/native outside JS";
  if (leaf.url === "" && (leaf.functionName === "parse" || leaf.functionName === "stringify")) return "JSON";
  if (leaf.url === "" && changesetNatives.has(leaf.functionName)) return "changeset (build, encode, apply)";
  const project = stack.find((frame) => frame.url.includes("/src/") || frame.url.includes("/node_modules/"));
  if (leaf.url === "" && sqliteNatives.has(leaf.functionName) && project?.url.includes("/src/store/"))
    return "SQLite execute / apply (store)";
  if (project !== undefined) {
    for (const [pattern, area] of projectAreas) if (pattern.test(project.url)) return area;
  }
  const core = stack.find((frame) => frame.url.startsWith("node:"));
  for (const [pattern, area] of coreAreas) if (core !== undefined && pattern.test(core.url)) return area;
  return "other native/core";
}

function frameName(frame: CallFrame): string {
  const file = frame.url === "" ? "(native)" : frame.url.replace(/^.*\/(src|node_modules)\//, "$1/");
  return `${frame.functionName || "(anonymous)"} ${file}${frame.url === "" ? "" : `:${frame.lineNumber + 1}`}`;
}

type NodeSummary = {
  totalMs: number;
  busyMs: number;
  byArea: Map<string, number>;
  byFunction: Map<string, number>;
};

function summarize(profile: Profile, window: Window): NodeSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const stackCache = new Map<number, CallFrame[]>();
  const stackOf = (id: number): CallFrame[] => {
    let stack = stackCache.get(id);
    if (stack === undefined) {
      stack = [];
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const frame = byId.get(at)!.callFrame;
        if (frame.functionName !== "(root)") stack.push(frame);
      }
      stackCache.set(id, stack);
    }
    return stack;
  };
  const summary: NodeSummary = { totalMs: 0, busyMs: 0, byArea: new Map(), byFunction: new Map() };
  let timeUs = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    timeUs += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const durationMs = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if (timeUs < window.startUs || timeUs > window.endUs) continue;
    const stack = stackOf(profile.samples[i]!);
    if (stack.length === 0) continue;
    const area = areaOf(stack);
    summary.totalMs += durationMs;
    if (area !== "idle") summary.busyMs += durationMs;
    summary.byArea.set(area, (summary.byArea.get(area) ?? 0) + durationMs);
    if (area === "idle") continue;
    const nearestProject = stack.find((frame) => frame.url.includes("/src/"));
    const leafName =
      stack[0]!.url === "" && nearestProject !== undefined
        ? `${frameName(stack[0]!)} ← ${frameName(nearestProject)}`
        : frameName(stack[0]!);
    summary.byFunction.set(leafName, (summary.byFunction.get(leafName) ?? 0) + durationMs);
  }
  return summary;
}

function sorted(map: Map<string, number>): [string, number][] {
  return [...map].sort((a, b) => b[1] - a[1]);
}

const directory = process.argv[2];
if (directory === undefined) {
  console.log("Usage: npx node bench/profile-summary.ts DIR/<workload>-run<N> [--top 25]");
  process.exit(2);
}
const topAt = process.argv.indexOf("--top");
const top = topAt > 0 ? Number(process.argv[topAt + 1]) : 25;
const window = JSON.parse(fs.readFileSync(path.join(directory, "window.json"), "utf8")) as Window & {
  opsPerSecond: number;
  workload: string;
};
const seconds = (window.endUs - window.startUs) / 1e6;
const operations = window.opsPerSecond * seconds;
console.log(
  `# ${window.workload}: ${window.opsPerSecond.toFixed(0)} ops/s over ${seconds.toFixed(1)} s measured (profiled run)`,
);
for (const name of Object.keys(window.roles).sort()) {
  const file = fs.readdirSync(path.join(directory, name)).find((f) => f.endsWith(".cpuprofile"));
  if (file === undefined) continue;
  const profile = JSON.parse(fs.readFileSync(path.join(directory, name, file), "utf8")) as Profile;
  const summary = summarize(profile, window);
  const processMs = window.cpuMs[name] ?? Number.NaN;
  console.log(
    `\n## ${name} (${window.roles[name]}): process CPU ${processMs.toFixed(0)} ms = ${((processMs * 1000) / operations).toFixed(0)} µs/op; ` +
      `main thread busy ${summary.busyMs.toFixed(0)} ms of ${summary.totalMs.toFixed(0)} ms sampled ` +
      `(the rest of the process CPU is off the main thread: libuv pool fs/fsync, V8 GC helpers)`,
  );
  const main = window.mainThread?.[name];
  if (main !== undefined) {
    console.log(
      `\nMain thread on the CPU: ${main.cpuMs.toFixed(0)} ms; preempted ${main.preempted} times ` +
        `(${(main.preempted / operations).toFixed(2)} per op). Samples are taken by wall clock: a thread ` +
        "that waits for a core after a system call woke another process (a socket write, most often) " +
        "is sampled in that call when it runs again, so busy ms above on-CPU ms is waiting, not work.",
    );
  }
  console.log("\n| area | ms | share of main-thread busy |\n|---|---|---|");
  for (const [area, areaMs] of sorted(summary.byArea)) {
    if (area === "idle") continue;
    console.log(`| ${area} | ${areaMs.toFixed(0)} | ${((100 * areaMs) / summary.busyMs).toFixed(1)}% |`);
  }
  console.log(`\n| top self-time functions | ms | share |\n|---|---|---|`);
  for (const [name, functionMs] of sorted(summary.byFunction).slice(0, top)) {
    console.log(
      `| ${name} | ${functionMs.toFixed(0)} | ${((100 * functionMs) / summary.busyMs).toFixed(1)}% |`,
    );
  }
}
