/**
 * Background file work of one simulated machine (the runtime's `io`): snapshots taken, read, sent
 * and received. The work itself is real (files in the run's directory) and starts at once, at a
 * point fixed by the simulation; its result is handed back only when the cluster calls `deliver`,
 * once per tick, in the order the work was started — so when a result arrives depends on simulated
 * time, never on how fast the real disk was.
 *
 * A crash hands nothing back (the process is gone) but lets the real work finish before the next
 * boot, so no file operation of a dead incarnation lands under a live one.
 */
import type { BackgroundIo } from "../../src/node/runtime.ts";

type Settled =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

type Pending = {
  readonly real: Promise<Settled>;
  readonly hand: (settled: Settled) => void;
};

/** Work started and not yet handed back; beyond it the simulation is broken, not the node. */
const pendingMax = 10_000;

export class SimIo {
  private pending: Pending[] = [];
  private dead = false;

  readonly run: BackgroundIo = <T>(work: () => Promise<T>): Promise<T> => {
    if (this.pending.length >= pendingMax) throw new Error("simulated background work piles up");
    const real: Promise<Settled> = work().then(
      (value) => ({ ok: true, value }),
      (error: unknown) => ({ ok: false, error }),
    );
    return new Promise<T>((resolve, reject) => {
      if (this.dead) return;
      this.pending.push({
        real,
        hand: (settled) => (settled.ok ? resolve(settled.value as T) : reject(settled.error)),
      });
    });
  };

  get busy(): boolean {
    return this.pending.length > 0;
  }

  /** Hands back every result of work started before this call, in start order. */
  async deliver(): Promise<void> {
    if (this.dead || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const results = await Promise.all(batch.map((p) => p.real));
    if (this.dead) return;
    for (const [i, p] of batch.entries()) p.hand(results[i] as Settled);
  }

  /** The machine crashed: nothing more is handed back; resolves once the real work has ended. */
  async kill(): Promise<void> {
    this.dead = true;
    const batch = this.pending;
    this.pending = [];
    await Promise.all(batch.map((p) => p.real));
  }
}
