/**
 * A bounded FIFO of message bodies waiting for one peer's connection.
 *
 * Bounds are by count and by bytes (`messagesMax`, `bytesMax`); a message that does not fit is
 * refused, never queued, so memory per peer stays bounded however slow or absent the peer is. The
 * consensus layer retransmits on its own, so refusing (tail drop) loses nothing it relies on.
 * Every entry carries the time it was queued so that stale messages can be discarded after a long
 * disconnect (`expire`) instead of being delivered minutes late or kept forever.
 *
 * Invariant: `bytes` and `length` always equal the sums over the live entries, and never exceed
 * the bounds.
 */
import { assert } from "../lib/assert.ts";
import { type ByteParts, partsBytes } from "../lib/byte-parts.ts";

/** A message as the parts of its body (one, unless the sender passed several) and their length. */
export type QueuedMessage = {
  readonly parts: ByteParts;
  readonly bytes: number;
  readonly queuedAtMs: number;
};
export type SendQueueBounds = { readonly messagesMax: number; readonly bytesMax: number };

export class SendQueue {
  readonly #bounds: SendQueueBounds;
  /** Entries live in `#entries[#head..]`; the dead prefix is compacted away once it is large. */
  #entries: QueuedMessage[] = [];
  #head = 0;
  #bytes = 0;

  constructor(bounds: SendQueueBounds) {
    assert(Number.isSafeInteger(bounds.messagesMax) && bounds.messagesMax >= 1, "messagesMax must be >= 1");
    assert(Number.isSafeInteger(bounds.bytesMax) && bounds.bytesMax >= 1, "bytesMax must be >= 1");
    this.#bounds = bounds;
  }

  get length(): number {
    return this.#entries.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Whether a body of `bodyBytes` would fit now. */
  fits(bodyBytes: number): boolean {
    return this.length + 1 <= this.#bounds.messagesMax && this.#bytes + bodyBytes <= this.#bounds.bytesMax;
  }

  /** Appends the message (a body, or its parts in order) if it fits; returns false (and keeps nothing) otherwise. */
  push(body: Uint8Array | ByteParts, nowMs: number): boolean {
    const parts = body instanceof Uint8Array ? [body] : body;
    const bytes = partsBytes(parts);
    if (!this.fits(bytes)) return false;
    this.#entries.push({ parts, bytes, queuedAtMs: nowMs });
    this.#bytes += bytes;
    assert(
      this.length <= this.#bounds.messagesMax && this.#bytes <= this.#bounds.bytesMax,
      "queue over bound",
    );
    return true;
  }

  peek(): QueuedMessage | undefined {
    return this.#entries[this.#head];
  }

  shift(): QueuedMessage | undefined {
    const entry = this.#entries[this.#head];
    if (entry === undefined) return undefined;
    this.#head += 1;
    this.#bytes -= entry.bytes;
    assert(this.#bytes >= 0, "queued bytes went negative");
    this.#compact();
    return entry;
  }

  /** Removes entries queued before `oldestAllowedMs`; returns how many messages and bytes went. */
  expire(oldestAllowedMs: number): { messages: number; bytes: number } {
    let messages = 0;
    let bytes = 0;
    // FIFO order means queue times are non-decreasing, so expired entries form a prefix.
    for (
      let entry = this.peek();
      entry !== undefined && entry.queuedAtMs < oldestAllowedMs;
      entry = this.peek()
    ) {
      this.shift();
      messages += 1;
      bytes += entry.bytes;
    }
    return { messages, bytes };
  }

  /** Empties the queue; returns how many messages and bytes were discarded. */
  clear(): { messages: number; bytes: number } {
    const discarded = { messages: this.length, bytes: this.#bytes };
    this.#entries = [];
    this.#head = 0;
    this.#bytes = 0;
    return discarded;
  }

  #compact(): void {
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
