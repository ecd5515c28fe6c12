/**
 * The write gate: writes wait here until the leader may run a batch (see `WritePath.gateOpen`).
 *
 * Waiters are released in arrival order while the gate is open, and each checks the gate again when
 * it runs, because every batch that runs changes the state the next one's check reads. A writer that
 * finds the gate closed again waits with the ticket it got on arrival, so it keeps its place ahead
 * of later arrivals (without it, a writer could be sent to the back at every drain and starve). The
 * number of waiters and each wait are bounded: past `gateWaitersMax` a write is refused OVERLOADED at
 * once, past its deadline TIMEOUT.
 *
 * A waiter may wait for a condition of its own instead of the gate's (a sandboxed batch waits for
 * the open batches to drain): it is released when that condition holds, and waiters on the gate's
 * own condition still go in arrival order.
 */
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { Cancel, Timers } from "./runtime.ts";

type GateWaiter = {
  /** Arrival order: waiters are kept sorted by it. */
  ticket: number;
  resolve: () => void;
  reject: (error: Error) => void;
  cancel: Cancel;
  /** The waiter's own condition, or null for the gate's. */
  until: (() => boolean) | null;
};

export class WriteGate {
  /** Sorted by ticket. */
  private waiters: GateWaiter[] = [];
  private nextTicket = 1;
  private readonly timers: Timers;
  private readonly waitersMax: number;
  private readonly isOpen: () => boolean;

  constructor(timers: Timers, waitersMax: number, isOpen: () => boolean) {
    this.timers = timers;
    this.waitersMax = waitersMax;
    this.isOpen = isOpen;
  }

  get size(): number {
    return this.waiters.length;
  }

  /** A place in the arrival order, to wait with again and again (`wait`'s `ticket`). */
  ticket(): number {
    return this.nextTicket++;
  }

  /**
   * Resolves when the gate is open, or when `until` holds if given (at once if it does), or rejects
   * TIMEOUT / OVERLOADED.
   */
  wait(timeoutMs: number, options: { until?: () => boolean; ticket?: number } = {}): Promise<void> {
    const until = options.until ?? null;
    if ((until ?? this.isOpen)()) return Promise.resolve();
    if (this.waiters.length >= this.waitersMax)
      return Promise.reject(
        new BatonError(ErrorCode.OVERLOADED, "too many writes are waiting for the leader"),
      );
    return new Promise((resolve, reject) => {
      const waiter: GateWaiter = {
        ticket: options.ticket ?? this.ticket(),
        resolve,
        reject,
        until,
        cancel: this.timers.after(timeoutMs, () => {
          this.remove(waiter);
          reject(
            new BatonError(ErrorCode.TIMEOUT, `the leader was not ready for writes within ${timeoutMs} ms`),
          );
        }),
      };
      this.insert(waiter);
    });
  }

  /** Inserts in ticket order; a new arrival goes last at once. */
  private insert(waiter: GateWaiter): void {
    const waiters = this.waiters;
    let at = waiters.length;
    while (at > 0 && waiters[at - 1]!.ticket > waiter.ticket) at--;
    waiters.splice(at, 0, waiter);
  }

  private remove(waiter: GateWaiter): void {
    const at = this.waiters.indexOf(waiter);
    if (at !== -1) this.waiters.splice(at, 1);
  }

  /** Lets waiters through while the gate stays open, and those whose own condition holds. */
  release(): void {
    let open = true;
    const kept: GateWaiter[] = [];
    const released: GateWaiter[] = [];
    for (const waiter of this.waiters) {
      const go = waiter.until === null ? (open &&= this.isOpen()) : waiter.until();
      (go ? released : kept).push(waiter);
    }
    this.waiters = kept;
    for (const waiter of released) {
      waiter.cancel();
      waiter.resolve();
    }
  }

  /** Fails every waiter with the error `errorFor` gives (leadership lost, node stopping). */
  refuseAll(errorFor: () => Error): void {
    const refused = this.waiters;
    this.waiters = [];
    for (const waiter of refused) {
      waiter.cancel();
      waiter.reject(errorFor());
    }
  }
}
