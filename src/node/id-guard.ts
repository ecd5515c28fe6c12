/**
 * No AUTOINCREMENT id handed out twice (the store's `id-reservations.ts` holds the mechanism).
 *
 * The leader keeps, per AUTOINCREMENT table, a reservation `high` committed in the log: ids up to
 * it may have been handed out. Rules:
 * - the first batch of a leader's term first raises the counters to the reservations (so a new
 *   leader starts above every id an old one may have acknowledged) and reads them: with nothing
 *   speculative open they are exactly the committed ones. Every batch raises until one that raised
 *   is accepted into the log in this term: a raising batch that failed, was refused, or lost its
 *   index to another entry (a configuration change while it ran in the sandbox) leaves the next one
 *   to raise. An accepted entry stays in the leader's log for its whole term and is applied before
 *   the next batch runs. Raising twice only skips ids;
 * - after a batch, a table whose counter came within half a block of what is reserved (committed
 *   or already proposed) gets a new reservation, `counter + idReservationBlock`, proposed at
 *   `majority` in the same turn;
 * - a write acknowledged below `majority` (`local`, `one`) whose ids pass the committed
 *   reservation waits until a reservation covering them commits; a `majority` or `all` write needs
 *   none, because once committed its counters are in every later leader's state.
 * Leadership lost: waiting writes are told their ids are not protected (NOT_CONFIRMED; the write
 * itself may still survive, a retry with its requestId finds out).
 */
import type { Durability } from "../consensus/config.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { SequenceEntry } from "../store/index.ts";
import type { NodeConfig } from "./node-config.ts";
import type { Cancel, Timers } from "./runtime.ts";

type Waiter = {
  readonly needs: readonly SequenceEntry[];
  readonly resolve: () => void;
  readonly reject: (error: BatonError) => void;
  readonly cancel: Cancel;
};

export class IdGuard {
  private readonly block: bigint;
  private readonly enabled: boolean;
  private readonly timers: Timers;
  private readonly waitersMax: number;
  private committed = new Map<string, bigint>();
  private proposed = new Map<string, bigint>();
  private readonly waiters = new Set<Waiter>();
  /** The term in which a batch that raised the counters was accepted into the log. */
  private raisedTerm = -1;

  /** A node's guard: its reservation block, its bound on writes in flight (and the injected bug's switch). */
  static forNode(config: NodeConfig, timers: Timers): IdGuard {
    return new IdGuard({
      block: config.idReservationBlock,
      enabled: config.unsafeNodeBugs?.noIdReservations !== true,
      timers,
      waitersMax: config.writesInFlightMax,
    });
  }

  constructor(parts: { block: number; enabled: boolean; timers: Timers; waitersMax: number }) {
    this.block = BigInt(parts.block);
    this.enabled = parts.enabled;
    this.timers = parts.timers;
    this.waitersMax = parts.waitersMax;
  }

  /** Whether the batch about to run in `term` must raise the counters first (see the header). */
  mustRaise(term: number): boolean {
    return this.enabled && term !== this.raisedTerm;
  }

  /** A batch that raised the counters was accepted into the log in `term`. */
  raised(term: number): void {
    this.raisedTerm = term;
  }

  /**
   * After a batch: learn the committed reservations (when it read them) and return the ids that
   * need a committed reservation, and the reservations to propose now (null when none).
   */
  afterBatch(
    counters: readonly SequenceEntry[],
    reservations: readonly SequenceEntry[] | null,
  ): { needs: SequenceEntry[]; reserve: SequenceEntry[] | null } {
    if (!this.enabled) return { needs: [], reserve: null };
    if (reservations !== null) for (const r of reservations) this.noteCommitted(r);
    const needs: SequenceEntry[] = [];
    const reserve: SequenceEntry[] = [];
    for (const counter of counters) {
      const committed = this.committed.get(counter.name) ?? 0n;
      if (counter.value > committed) needs.push(counter);
      const ahead = this.proposed.get(counter.name) ?? committed;
      if (counter.value + this.block / 2n > ahead) {
        const high = counter.value + this.block;
        reserve.push({ name: counter.name, value: high });
        this.proposed.set(counter.name, high);
      }
    }
    return { needs, reserve: reserve.length > 0 ? reserve : null };
  }

  /** A reservation proposal was refused or not committed: it may be proposed again. */
  proposalFailed(entries: readonly SequenceEntry[]): void {
    for (const entry of entries) {
      if (this.proposed.get(entry.name) === entry.value)
        this.proposed.set(entry.name, this.committed.get(entry.name) ?? 0n);
    }
  }

  /** A reservation committed. */
  committedReservation(entries: readonly SequenceEntry[]): void {
    for (const entry of entries) this.noteCommitted(entry);
    for (const waiter of [...this.waiters]) {
      if (this.covered(waiter.needs)) {
        this.waiters.delete(waiter);
        waiter.cancel();
        waiter.resolve();
      }
    }
  }

  /** Whether a write at `durability` with these ids may be acknowledged now. */
  mustWait(durability: Durability, needs: readonly SequenceEntry[]): boolean {
    return (durability === "local" || durability === "one") && !this.covered(needs);
  }

  /** Waits (bounded) until a committed reservation covers `needs`. */
  waitCovered(needs: readonly SequenceEntry[], index: number, timeoutMs: number): Promise<void> {
    if (this.covered(needs)) return Promise.resolve();
    if (this.waiters.size >= this.waitersMax)
      return Promise.reject(notProtected(index, "too many writes wait"));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        needs,
        resolve,
        reject,
        cancel: this.timers.after(timeoutMs, () => {
          this.waiters.delete(waiter);
          reject(notProtected(index, `no reservation committed within ${timeoutMs} ms`));
        }),
      };
      this.waiters.add(waiter);
    });
  }

  /** Leadership ended: forget the term's knowledge; waiting writes are not acknowledged. */
  reset(): void {
    this.committed = new Map();
    this.proposed = new Map();
    this.raisedTerm = -1;
    for (const waiter of [...this.waiters]) {
      waiter.cancel();
      waiter.reject(notProtected(null, "leadership was lost"));
    }
    this.waiters.clear();
  }

  private noteCommitted(entry: SequenceEntry): void {
    if (entry.value > (this.committed.get(entry.name) ?? 0n)) this.committed.set(entry.name, entry.value);
    if (entry.value > (this.proposed.get(entry.name) ?? 0n)) this.proposed.set(entry.name, entry.value);
  }

  private covered(needs: readonly SequenceEntry[]): boolean {
    return needs.every((need) => need.value <= (this.committed.get(need.name) ?? 0n));
  }
}

function notProtected(index: number | null, why: string): BatonError {
  return new BatonError(
    ErrorCode.NOT_CONFIRMED,
    `the write${index === null ? "" : ` at index ${index}`} is durable here, but its AUTOINCREMENT ids are not yet covered by a committed reservation (${why}); it is not undone — retry with the same requestId to learn its outcome`,
    { ...(index === null ? {} : { index }), reason: "ids-not-reserved" },
  );
}
