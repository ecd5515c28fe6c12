/**
 * The node's tick timer, which also notices when the event loop stopped: a tick that comes
 * `stallWarnMsOf` or more late is logged as `loop.stalled` with how late it was.
 *
 * Why: a stopped loop answers no heartbeat, vote or request. A leader whose followers both stop
 * for an election timeout loses check-quorum although every node is up; a soak showed just that
 * (snapshot takes stopped every node's loop 300-900 ms, `snapshot-file.ts`), and only probes added
 * by hand could show where. The tick timer already runs every `tickMs`, so watching it costs a
 * clock read per tick and no timer of its own.
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
  runtime: Pick<NodeRuntime, "clock" | "timers" | "logger">,
  config: Pick<NodeConfig, "tickMs" | "heartbeatMs" | "missedHeartbeats">,
  tick: () => void,
): Cancel {
  const warnMs = stallWarnMsOf(config);
  let previousMs = runtime.clock.monotonicMs();
  return runtime.timers.every(config.tickMs, () => {
    const nowMs = runtime.clock.monotonicMs();
    const lateMs = nowMs - previousMs - config.tickMs;
    previousMs = nowMs;
    if (lateMs >= warnMs) runtime.logger("warn", "loop.stalled", { lateMs: Math.round(lateMs) });
    tick();
  });
}
