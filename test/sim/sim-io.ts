/**
 * Background file work of one simulated machine (the runtime's `io`): snapshots taken, read, sent
 * and received. The work itself is real (files in the run's directory). One piece runs at a time:
 * it starts when asked if nothing else is running (else it waits in a queue and starts right after
 * the previous result was handed back), and its result is handed back only when the cluster calls
 * `handBack`, once per tick, after `ready` resolved for every machine. Every piece therefore starts at a point fixed by the simulation (its
 * synchronous part, which pins what it reads, runs there) and its effects on files happen in a fixed
 * order — when a result arrives depends on simulated time, never on how fast the real disk was.
 *
 * A crash hands nothing back (the process is gone) but lets the running piece finish before the
 * next boot, so no file operation of a dead incarnation lands under a live one.
 */
import type { BackgroundIo } from "../../src/node/runtime.ts";

type Settled =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

type Piece = {
  readonly work: () => Promise<unknown>;
  readonly hand: (settled: Settled) => void;
};

/** Pieces waiting to start; beyond it the simulation is broken, not the node. */
const queuedMax = 10_000;

export class SimIo {
  private running: {
    readonly piece: Piece;
    readonly real: Promise<Settled>;
    settled: Settled | null;
  } | null = null;
  private readonly queue: Piece[] = [];
  private dead = false;

  readonly run: BackgroundIo = <T>(work: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (this.dead) return;
      if (this.queue.length >= queuedMax) throw new Error("simulated background work piles up");
      const piece: Piece = {
        work,
        hand: (settled) => (settled.ok ? resolve(settled.value as T) : reject(settled.error)),
      };
      if (this.running === null && this.queue.length === 0) this.start(piece);
      else this.queue.push(piece);
    });

  get busy(): boolean {
    return this.running !== null || this.queue.length > 0;
  }

  /** Resolves once the running piece (if any) has ended; hands nothing back. */
  async ready(): Promise<void> {
    await this.running?.real;
  }

  /**
   * Hands back the running piece's result, if it has ended, then starts the next one. Synchronous:
   * the cluster calls it for every machine, in order, after `ready` resolved for all of them.
   */
  handBack(): void {
    const running = this.running;
    if (this.dead || running === null || running.settled === null) return;
    this.running = null;
    running.piece.hand(running.settled);
    const next = this.queue.shift();
    if (next !== undefined) this.start(next);
  }

  /** The machine crashed: nothing more is handed back or started; resolves once the running piece ended. */
  async kill(): Promise<void> {
    this.dead = true;
    this.queue.length = 0;
    await this.running?.real;
  }

  private start(piece: Piece): void {
    const running: { piece: Piece; real: Promise<Settled>; settled: Settled | null } = {
      piece,
      real: Promise.resolve(),
      settled: null,
    } as never;
    running.real = piece.work().then(
      (value) => {
        running.settled = { ok: true, value };
        return running.settled;
      },
      (error: unknown) => {
        running.settled = { ok: false, error };
        return running.settled;
      },
    );
    this.running = running;
  }
}
