/**
 * The write gate: writes wait here until the leader may run a batch (see `WritePath.gateOpen`).
 *
 * Waiters are released one at a time, each only while the gate is still open, because every batch
 * that runs changes the state the next one's check reads. The number of waiters and each wait are
 * bounded: past `gateWaitersMax` a write is refused OVERLOADED at once, past its deadline TIMEOUT.
 *
 * A waiter may wait for a condition of its own instead of the gate's (a sandboxed batch waits for
 * the open batches to drain): it is released when that condition holds, and waiters on the gate's
 * own condition still go in arrival order.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { Cancel, Timers } from "./runtime.ts";

type GateWaiter = {
  resolve: () => void;
  reject: (error: Error) => void;
  cancel: Cancel;
  /** The waiter's own condition, or null for the gate's. */
  until: (() => boolean) | null;
};

export class WriteGate {
  private readonly waiters = new Set<GateWaiter>();
  private readonly timers: Timers;
  private readonly waitersMax: number;
  private readonly isOpen: () => boolean;

  constructor(timers: Timers, waitersMax: number, isOpen: () => boolean) {
    this.timers = timers;
    this.waitersMax = waitersMax;
    this.isOpen = isOpen;
  }

  get size(): number {
    return this.waiters.size;
  }

  /**
   * Resolves when the gate is open, or when `until` holds if given (at once if it does), or rejects
   * TIMEOUT / OVERLOADED.
   */
  wait(timeoutMs: number, until: (() => boolean) | null = null): Promise<void> {
    if ((until ?? this.isOpen)()) return Promise.resolve();
    if (this.waiters.size >= this.waitersMax)
      return Promise.reject(
        new BatonError(ErrorCode.OVERLOADED, "too many writes are waiting for the leader"),
      );
    return new Promise((resolve, reject) => {
      const waiter: GateWaiter = {
        resolve,
        reject,
        until,
        cancel: this.timers.after(timeoutMs, () => {
          this.waiters.delete(waiter);
          reject(
            new BatonError(ErrorCode.TIMEOUT, `the leader was not ready for writes within ${timeoutMs} ms`),
          );
        }),
      };
      this.waiters.add(waiter);
    });
  }

  /** Lets waiters through while the gate stays open, and those whose own condition holds. */
  release(): void {
    let open = true;
    for (const waiter of this.waiters) {
      if (waiter.until !== null) {
        if (waiter.until()) this.settle(waiter).resolve();
        continue;
      }
      open &&= this.isOpen();
      if (open) this.settle(waiter).resolve();
    }
  }

  /** Fails every waiter with the error `errorFor` gives (leadership lost, node stopping). */
  refuseAll(errorFor: () => Error): void {
    for (const waiter of this.waiters) this.settle(waiter).reject(errorFor());
  }

  private settle(waiter: GateWaiter): GateWaiter {
    waiter.cancel();
    this.waiters.delete(waiter);
    return waiter;
  }
}
