/**
 * Groups the on-CPU samples of a `perf record -g` of one node (see perf-profile.sh) by area, with
 * the same areas as profile-summary.ts, so that the two profiles can be compared. Unlike
 * `--cpu-prof` (main thread, wall time), perf counts CPU time only, on every thread, kernel
 * included: a socket write that hands the CPU to the receiving process costs little here.
 *
 * Usage: perf script --no-inline -i DIR/n1.perf.data | npx node bench/perf-areas.ts
 *
 * Area of a main-thread sample: a GC, JSON, changeset or SQLite native frame below the nearest
 * project frame names it; else that project frame's file; else the Node core module or libuv
 * function nearest the leaf. Other threads are their own areas.
 */
import { readFileSync } from "node:fs";
import { projectAreas } from "./profile-areas.ts";

/** Natives named by what they do, when found below the nearest project frame. */
const nativeAreas: readonly (readonly [RegExp, string])[] = [
  [/Heap::CollectGarbage|Scavenger|MarkCompact|Heap::PerformGarbageCollection/, "GC"],
  [/JsonStringifier|JsonParser/, "JSON"],
  [/sqlite3session|sqlite3changeset|Session::Changeset/, "changeset (build, encode, apply)"],
  [/sqlite3|unixShmLock|unixLock/, "SQLite execute / apply (store)"],
];

const coreAreas: readonly (readonly [RegExp, string])[] = [
  [/node:internal\/timers|node:timers|uv__run_timers/, "timers"],
  [/node:_http|node:internal\/http|llhttp|http_parser/, "HTTP (Node core)"],
  [
    /node:net|node:internal\/stream|node:stream|uv__write|uv__read|StreamBase|LibuvStreamWrap/,
    "sockets/streams (Node core)",
  ],
  [/node:internal\/fs|node:fs|uv__fs|FSReqCallback/, "fs (Node core)"],
  [/RunMicrotasks|task_queues/, "microtasks/async hooks"],
  // Nearest the root: a sample that reached none of the above is the loop waiting or waking up.
  [/epoll_pwait|uv__io_poll|uv__async_io|uv__work_done/, "event loop (epoll, wakeups)"],
];

function areaOf(thread: string, frames: readonly string[]): string {
  if (thread.startsWith("libuv-worker")) return "libuv pool thread (log write, fsync)";
  if (!thread.startsWith("node-MainThread") && !thread.startsWith("node")) return `thread ${thread}`;
  if (thread !== "node-MainThread") return "V8 helper threads (GC, compiler)";
  const projectAt = frames.findIndex((f) => f.includes("/src/") || f.includes("/node_modules/pino"));
  const below = projectAt < 0 ? frames : frames.slice(0, projectAt);
  for (const frame of below) for (const [pattern, area] of nativeAreas) if (pattern.test(frame)) return area;
  if (projectAt >= 0)
    for (const [pattern, area] of projectAreas) if (pattern.test(frames[projectAt]!)) return area;
  for (const frame of frames) for (const [pattern, area] of coreAreas) if (pattern.test(frame)) return area;
  return "V8/libuv/other native";
}

const text = readFileSync(0, "utf8");
const byArea = new Map<string, { samples: number; kernel: number }>();
let total = 0;
for (const block of text.split(/\n\s*\n/)) {
  const lines = block.split("\n").filter((l) => l.trim() !== "");
  const header = lines[0];
  if (header === undefined || !/cpu-clock/.test(header)) continue;
  const thread = header.trim().split(/\s+/)[0] ?? "";
  const frames = lines.slice(1).map((l) => l.trim());
  const area = areaOf(thread, frames);
  const kernel = /\(\[kernel/.test(frames[0] ?? "") ? 1 : 0;
  const slot = byArea.get(area) ?? { samples: 0, kernel: 0 };
  slot.samples++;
  slot.kernel += kernel;
  byArea.set(area, slot);
  total++;
}
console.log(
  `| area (perf, on-CPU, all threads; ${total} samples) | share of process CPU | of which in the kernel |`,
);
console.log("|---|---|---|");
for (const [area, { samples, kernel }] of [...byArea].sort((a, b) => b[1].samples - a[1].samples)) {
  console.log(
    `| ${area} | ${((100 * samples) / total).toFixed(1)}% | ${((100 * kernel) / Math.max(1, samples)).toFixed(0)}% |`,
  );
}
