/**
 * Callers waiting for a monotonically growing index (applied index, commit index) to reach a
 * target, each with its own deadline. Bounded: at most `waitersMax` waiters; more are refused with
 * OVERLOADED rather than queued without limit.
 */
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { Cancel, Timers } from "./runtime.ts";

type Waiter = { target: number; resolve: () => void; reject: (error: Error) => void; cancel: Cancel };

export class IndexWaiters {
  private readonly waiters = new Set<Waiter>();
  private readonly waitersMax: number;
  private readonly what: string;
  private readonly timers: Timers;
  private current: number;

  constructor(what: string, initial: number, timers: Timers, waitersMax: number) {
    this.what = what;
    this.current = initial;
    this.timers = timers;
    this.waitersMax = waitersMax;
  }

  get value(): number {
    return this.current;
  }

  /** The highest index someone waits for, or null; lets the node decide to hurry (drain). */
  highestTarget(): number | null {
    let highest: number | null = null;
    for (const waiter of this.waiters) highest = Math.max(highest ?? 0, waiter.target);
    return highest;
  }

  /** Resolves once the index reaches `target`; rejects with TIMEOUT after `timeoutMs`. */
  wait(target: number, timeoutMs: number): Promise<void> {
    if (this.current >= target) return Promise.resolve();
    if (this.waiters.size >= this.waitersMax) {
      return Promise.reject(
        new BatonError(ErrorCode.OVERLOADED, `too many requests waiting for the ${this.what}`),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        target,
        resolve,
        reject,
        cancel: this.timers.after(timeoutMs, () => {
          this.waiters.delete(waiter);
          reject(
            new BatonError(
              ErrorCode.TIMEOUT,
              `the ${this.what} did not reach ${target} within ${timeoutMs} ms (it is ${this.current})`,
              {
                target,
                [this.what.replace(/ (\w)/g, (_m, c: string) => c.toUpperCase())]: this.current,
              },
            ),
          );
        }),
      };
      this.waiters.add(waiter);
    });
  }

  advance(index: number): void {
    assert(index >= this.current, `${this.what} never decreases (${this.current} -> ${index})`);
    this.current = index;
    for (const waiter of this.waiters) {
      if (waiter.target <= index) {
        waiter.cancel();
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Rewinds (the state machine was restored to an earlier point, e.g. speculative rollback). */
  reset(index: number): void {
    this.current = index;
  }

  rejectAll(error: Error): void {
    for (const waiter of this.waiters) {
      waiter.cancel();
      waiter.reject(error);
    }
    this.waiters.clear();
  }
}
