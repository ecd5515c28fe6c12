/** Test support: timers that fire only when told to, and count what is still scheduled. */
import type { Cancel, Timers } from "./runtime.ts";

export function manualTimers(): Timers & { fire(): void; scheduled(): number } {
  const pending = new Set<() => void>();
  return {
    after(_delayMs: number, run: () => void): Cancel {
      pending.add(run);
      return () => pending.delete(run);
    },
    every(): Cancel {
      throw new Error("not used");
    },
    soon(run: () => void): Cancel {
      pending.add(run);
      return () => pending.delete(run);
    },
    fire() {
      for (const run of [...pending]) {
        pending.delete(run);
        run();
      }
    },
    scheduled: () => pending.size,
  };
}
