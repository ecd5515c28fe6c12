/**
 * The one way the node waits on a promise with a deadline: on the runtime's timers (so the
 * simulator's time bounds it too), with the loser's timer always cancelled.
 */
import type { Timers } from "./runtime.ts";

/** Settles like `promise`, or rejects with `onTimeout()` after `timeoutMs`, whichever comes first. */
export async function within<T>(
  timers: Timers,
  promise: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
): Promise<T> {
  let cancel = (): void => {};
  const timedOut = new Promise<never>((_, reject) => {
    cancel = timers.after(timeoutMs, () => reject(onTimeout()));
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    cancel();
  }
}
