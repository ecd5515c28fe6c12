/**
 * Node's own flags for a node process (`baton start`). V8 reads them only when the process starts,
 * so a process started without them replaces itself with one that has them (`process.execve`: same
 * pid, same arguments, same environment) before it opens anything.
 *
 * - `--max-semi-space-size=8` (MiB): V8 grows its young generation under allocation pressure, here
 *   up to 32 MiB per semi-space (64 MiB of new space), and keeps it. A node under steady writes did
 *   exactly that somewhere between its second and its thirtieth minute: its heap grew from 30 to 80
 *   MB while 14-44 MB was in use, and its resident memory by 1.64× (`npm run bench:soak`, issue 8).
 *   With 8 MiB the heap stayed at 34-37 MB for 30 minutes.
 * - `--invocation-count-for-maglev=100`, `--invocation-count-for-turbofan=600`,
 *   `--minimum-invocations-after-ic-update=100` (V8's defaults: 400, 3,000, 500): a write runs each
 *   function of its path about once, so with V8's defaults the path reached optimized code only some
 *   5-10 s into a load of one writer (600 writes a second), and a node that just became leader ran
 *   its write path unoptimized for as long. At one writer, p50 by 4-second slice of a 40 s run went
 *   1.80, 1.73, 1.49, 1.33, 1.37 ms... with the defaults. With these flags (`npm run bench`, one
 *   writer, 8 s after 1 s of warm-up, four interleaved pairs): p50 1.16, 1.31, 1.12, 1.40 ms against
 *   1.55, 1.44, 1.50, 1.46; the servers' CPU per write 1,777-2,286 µs against 1,963-2,264. The cost:
 *   V8 compiles more, earlier, on its worker threads (p99 6.2-7.9 ms against 5.3-6.3 in those runs).
 * - `--concurrent-turbofan-max-threads=1` (V8's default: 4): at most one TurboFan compile at a time
 *   per process. In the first seconds of a load (and of a new leader's term) every node compiles its
 *   write path at once; with up to four compiles each, twelve compile threads on a small machine
 *   together outweighed the event loops in the scheduler, however low their `nice`
 *   (`v8-worker-priority.ts`). Interleaved pairs of `npm run bench` (one fresh cluster each, 8 s
 *   after 1 s of warm-up), one writer, 18 pairs: the first 2 s of the window at p50 0.87x, requests
 *   1.04x, p50 0.99x, the servers' CPU per write 0.97x (medians of each pair's ratio); 64 writers,
 *   16 pairs: requests 1.01x (0.75-1.42), no difference this machine can show.
 *
 * A flag the operator already gave (on the command line or in `NODE_OPTIONS`), or a variable already
 * in the environment, is left as given; `BATON_NODE_FLAGS=off` turns the whole mechanism off. Where `execve` is unavailable (Windows) the
 * node runs on with V8's defaults.
 *
 * A process that samples itself with a profiling timer (`--cpu-prof`, `--prof`) is not replaced:
 * the timer survives `execve`, and its first SIGPROF killed the new image before V8 had installed
 * a handler ("Profiling timer expired"), every time. Such a node runs on with V8's defaults.
 */

/** The flags, as `--name=value`. */
export const nodeProcessFlags: readonly string[] = [
  "--max-semi-space-size=8",
  "--invocation-count-for-maglev=100",
  "--invocation-count-for-turbofan=600",
  "--minimum-invocations-after-ic-update=100",
  "--concurrent-turbofan-max-threads=1",
];

/**
 * Environment the C library reads only when the process starts, set the same way (unless already set).
 *
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates its own arena, up to 8 per core,
 *   and an arena keeps what was freed in it. A node has many such threads (the libuv pool copying
 *   snapshots and running fsyncs, the checkpoint thread, V8's workers), and its resident memory kept
 *   growing after its data stopped growing. A 30-minute soak with two arenas (`npm run bench:soak`,
 *   issue 8): 1.14× on the node that followed throughout, 1.07× on one that went from leader to
 *   follower, and its resident memory came down at times (166 → 154 MB), which it never did before;
 *   the soak before, without, saw 1.23-1.25× on followers. Suggestive rather than proven (the two
 *   runs differ in more than this), and a common setting for Node servers.
 */
export const nodeProcessEnv: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };

/** The variables of `nodeProcessEnv` that `env` does not set. */
export function missingNodeEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(Object.entries(nodeProcessEnv).filter(([name]) => env[name] === undefined));
}

/** The flags of `nodeProcessFlags` that neither `execArgv` nor `nodeOptions` sets, by name. */
export function missingNodeFlags(execArgv: readonly string[], nodeOptions: string): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((flag) => nameOf(flag));
  return nodeProcessFlags.filter((flag) => !given.includes(nameOf(flag)));
}

/** Flags that start a profiling timer (SIGPROF) in this process, which `execve` would keep running. */
const profilingFlags: readonly string[] = ["--cpu-prof", "--prof"];

/** Whether the process may replace itself: not while a profiling timer runs (see the header). */
export function mayReplaceProcess(execArgv: readonly string[], nodeOptions: string): boolean {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((flag) => nameOf(flag));
  return !given.some((name) => profilingFlags.includes(name));
}

function nameOf(flag: string): string {
  // V8 accepts both spellings of a flag name: --max-semi-space-size and --max_semi_space_size.
  return (flag.split("=")[0] ?? flag).replaceAll("_", "-");
}

/**
 * Replaces this process with one that has every flag of `nodeProcessFlags` (never returns then), or
 * returns when there is nothing to add or no way to add it.
 */
export function execWithNodeFlags(): void {
  if (process.env.BATON_NODE_FLAGS === "off") return;
  if (!mayReplaceProcess(process.execArgv, process.env.NODE_OPTIONS ?? "")) return;
  const missing = missingNodeFlags(process.execArgv, process.env.NODE_OPTIONS ?? "");
  const env = missingNodeEnv(process.env);
  if ((missing.length === 0 && Object.keys(env).length === 0) || typeof process.execve !== "function") return;
  const args = [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)];
  try {
    process.execve(process.execPath, args, { ...(process.env as Record<string, string>), ...env });
  } catch {
    // No execve on this platform: run with V8's defaults.
  }
}
