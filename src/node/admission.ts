/**
 * Admission control: a node takes on only a bounded amount of client work at once, and none while
 * its event loop runs late.
 *
 * Reads and writes in flight are counted separately and bounded (`readsInFlightMax`,
 * `writesInFlightMax`). A refusal is `OVERLOADED` before any work is done (so a refused write was
 * certainly not applied, and the client backs off for the `Retry-After` and retries), and it costs
 * a counter comparison: the answer is cheap exactly when the node is busy.
 *
 * Event-loop delay: the replica loop's ticks, heartbeats and votes run on the same event loop as
 * client requests, so a loop kept late by client work delays heartbeats. While the loop's recent
 * delay (`LoopDelay`: late throughout the last 600 ms, by each 200 ms window's median) is above
 * `loopDelayShedMs`, new client reads and writes are refused OVERLOADED; the HTTP layer asks
 * (`shed`) before it reads a request's body, so a shed request costs no parsing. The threshold
 * defaults to a quarter of the election timeout (`loopDelayShedMsOf`): shedding starts while
 * heartbeats are late by far less than followers wait. Sustained lateness, not the worst sample,
 * is what is compared, so a lone pause (a collection, one large apply) does not refuse healthy
 * traffic; on this project's 2-core machines single delays of 200 ms occur under ordinary test
 * load without any overload.
 */
import { assert } from "../lib/assert.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";

export type RequestKind = "read" | "write";

export type AdmissionLimits = {
  readonly readsInFlightMax: number;
  readonly writesInFlightMax: number;
};

export type LoopDelayShedding = {
  /** The event loop's recent delay in ms, null when unknown (then nothing is shed for it). */
  readonly recentMs: () => number | null;
  readonly loopDelayShedMs: number;
};

export class Admission {
  private readonly limits: AdmissionLimits;
  private readonly loopDelay: LoopDelayShedding | null;
  private readonly inFlight: Record<RequestKind, number> = { read: 0, write: 0 };
  /** Requests refused since the node started, by reason (for status and metrics). */
  readonly refused = { read: 0, write: 0, loopDelay: 0 };

  constructor(limits: AdmissionLimits, loopDelay: LoopDelayShedding | null = null) {
    assert(loopDelay === null || loopDelay.loopDelayShedMs > 0, "the loop delay threshold is positive");
    this.limits = limits;
    this.loopDelay = loopDelay;
  }

  /** Runs `work` if the node admits one more request of `kind`; otherwise throws OVERLOADED. */
  async run<T>(kind: RequestKind, work: () => Promise<T>): Promise<T> {
    this.shed();
    this.admit(kind);
    try {
      return await work();
    } finally {
      this.inFlight[kind]--;
      assert(this.inFlight[kind] >= 0, `${kind}s in flight went negative`);
    }
  }

  inFlightOf(kind: RequestKind): number {
    return this.inFlight[kind];
  }

  /** The event loop's recent delay, or null when it is not measured. */
  loopDelayMs(): number | null {
    return this.loopDelay?.recentMs() ?? null;
  }

  /** True while new client work is refused for the event loop's delay. */
  shedding(): boolean {
    const delayMs = this.loopDelayMs();
    return delayMs !== null && this.loopDelay !== null && delayMs > this.loopDelay.loopDelayShedMs;
  }

  /** Throws OVERLOADED while the event loop runs late (see the module header). */
  shed(): void {
    if (!this.shedding()) return;
    this.refused.loopDelay++;
    const loopDelayMs = Math.round(this.loopDelayMs() ?? 0);
    const loopDelayShedMs = this.loopDelay?.loopDelayShedMs;
    throw new BatonError(
      ErrorCode.OVERLOADED,
      `this node's event loop runs ${loopDelayMs} ms late (more than ${loopDelayShedMs} ms); retry shortly`,
      { reason: "loop-delay", loopDelayMs, loopDelayShedMs },
    );
  }

  private admit(kind: RequestKind): void {
    const max = kind === "read" ? this.limits.readsInFlightMax : this.limits.writesInFlightMax;
    if (this.inFlight[kind] >= max) {
      this.refused[kind]++;
      throw new BatonError(ErrorCode.OVERLOADED, `this node already runs ${max} ${kind}s; retry shortly`, {
        inFlight: this.inFlight[kind],
        max,
      });
    }
    this.inFlight[kind]++;
  }
}
