/**
 * The node's tick timer, which also notices when the event loop stopped: a tick that comes
 * `stallWarnMsOf` or more late is logged as `loop.stalled` with how late it was.
 *
 * Why: a stopped loop answers no heartbeat, vote or request. A leader whose followers both stop
 * for an election timeout loses check-quorum although every node is up; a soak showed just that
 * (snapshot takes stopped every node's loop 300-900 ms, `snapshot-file.ts`), and only probes added
 * by hand could show where. The tick timer already runs every `tickMs`, so watching it costs a
 * clock read per tick and no timer of its own.
 *
 * With the process's loop-delay probe (`LoopDelay.threadCpuMs`, production only), a stall is logged
 * with `cpuMs`, the CPU the loop's thread used over the late interval: near `lateMs`, the loop was
 * busy (JavaScript, a collection, a native call on the CPU); far below it, the loop waited (a
 * blocking system call, a lock, a page fault, or no free core). A 9 s stall seen beside other tests
 * during a 40 MB batch showed no system call of the loop's over 0.15 s in `perf trace`; this tells
 * the two apart.
 */
import type { NodeConfig } from "./node-config.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";

/** The smallest lateness logged, whatever the timing: below it, ordinary scheduling noise. */
export const stallWarnMsMin = 100;

/** A third of the election timeout: a stall that long spends a third of the followers' patience. */
export function stallWarnMsOf(config: Pick<NodeConfig, "heartbeatMs" | "missedHeartbeats">): number {
  return Math.max(stallWarnMsMin, Math.round((config.heartbeatMs * config.missedHeartbeats) / 3));
}

/** Runs `tick` every `config.tickMs`, logging each tick that came `stallWarnMsOf(config)` late. */
export function watchedTicker(
  runtime: Pick<NodeRuntime, "clock" | "timers" | "logger" | "loopDelay">,
  config: Pick<NodeConfig, "tickMs" | "heartbeatMs" | "missedHeartbeats">,
  tick: () => void,
): Cancel {
  const warnMs = stallWarnMsOf(config);
  const probe = runtime.loopDelay;
  let previousMs = runtime.clock.monotonicMs();
  let previousCpuMs = probe?.threadCpuMs() ?? 0;
  return runtime.timers.every(config.tickMs, () => {
    const nowMs = runtime.clock.monotonicMs();
    const lateMs = nowMs - previousMs - config.tickMs;
    previousMs = nowMs;
    const cpuMs = probe === undefined ? null : probe.threadCpuMs() - previousCpuMs;
    if (cpuMs !== null) previousCpuMs += cpuMs;
    if (lateMs >= warnMs)
      runtime.logger("warn", "loop.stalled", {
        lateMs: Math.round(lateMs),
        ...(cpuMs === null ? {} : { cpuMs: Math.round(cpuMs) }),
      });
    tick();
  });
}
