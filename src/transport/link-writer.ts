/**
 * Writing one peer's queued messages to its active connection, in the order the lanes promise.
 *
 * Each step writes one of, by priority:
 * 1. a batch of urgent messages (at most `batchBytesMax` bytes, or one message);
 * 2. the next piece (one frame of `pieceBytesMax` bytes) of the ordered message being written in
 *    pieces;
 * 3. a batch of ordered messages, stopping before one whose frame is larger than a piece, which
 *    becomes the next message written in pieces.
 * Steps go on while the socket takes more without asking for `drain`. So an urgent message waits
 * behind at most one batch or piece already handed to the socket, never behind a whole large
 * message, and ordered messages leave in order.
 */
import { assert } from "../lib/assert.ts";
import { joinParts, sliceParts } from "../lib/byte-parts.ts";
import type { Connection } from "./connection.ts";
import { frameHeaderBytes, partLengthBytes } from "./frame.ts";
import { countDropped, type PeerLink } from "./peer-link.ts";
import type { SendQueue } from "./send-queue.ts";

/**
 * Sizes of what is written: `batchBytesMax` bounds a batch of frames; a message whose frame is
 * larger than `pieceBytesMax` (at most `batchBytesMax`) is written in frames of that size.
 */
export type WriteBounds = { readonly batchBytesMax: number; readonly pieceBytesMax: number };

/**
 * Steps one call of `writeQueued` takes at most. On loopback the kernel takes megabytes at once, so
 * the socket may never ask for `drain` while a 40 MB message goes out; without this bound one turn
 * of the event loop wrote (and checksummed) all of it.
 */
export const stepsPerCallMax = 4;

/**
 * Writes what `link` has queued to `connection` until the socket needs `drain`, nothing is left, or
 * `stepsPerCallMax` steps were taken; returns true in the last case (the caller writes the rest on
 * a later turn).
 */
export function writeQueued(link: PeerLink, connection: Connection, bounds: WriteBounds): boolean {
  assert(bounds.pieceBytesMax > frameHeaderBytes + partLengthBytes, "a piece holds a byte of its message");
  assert(bounds.pieceBytesMax <= bounds.batchBytesMax, "a piece fits a batch");
  const piecewise = link.piecewise;
  if (piecewise !== null && piecewise.connection !== connection) {
    // The connection that carried its first pieces is gone, and its receiver discarded them.
    countDropped(link, 1, piecewise.bytes);
    link.piecewise = null;
  }
  // Each step writes at least one message or piece, so the loop ends within what is queued.
  for (let steps = 0; connection.writable; steps++) {
    if (steps === stepsPerCallMax) return hasQueued(link);
    if (link.urgent.length > 0) writeBatch(link, link.urgent, connection, bounds);
    else if (link.piecewise !== null) writePiece(link, link.piecewise, bounds.pieceBytesMax);
    else if (link.queue.length === 0) return false;
    else if (frameHeaderBytes + link.queue.peek()!.bytes > bounds.pieceBytesMax) {
      const { parts, bytes } = link.queue.shift()!;
      link.piecewise = { connection, parts, bytes, offset: 0 };
    } else writeBatch(link, link.queue, connection, bounds);
  }
  return false;
}

/**
 * Flushes `link` (with `flush`) once this turn's input was handled (`setImmediate`), so that the
 * messages of a turn leave in one batch; with `urgent`, once the task that queued the message is
 * done (a microtask): an urgent message (a heartbeat, a vote, an answer) never waits for the rest of
 * the turn, and whatever else is queued by then leaves with it.
 */
export function scheduleFlush(link: PeerLink, urgent: boolean, flush: (link: PeerLink) => void): void {
  if (link.active === null || !hasQueued(link)) return;
  if (urgent && !link.urgentFlushQueued) {
    link.urgentFlushQueued = true;
    queueMicrotask(() => {
      link.urgentFlushQueued = false;
      flush(link);
    });
  }
  if (link.flushScheduled) return;
  link.flushScheduled = true;
  setImmediate(() => {
    link.flushScheduled = false;
    flush(link);
  });
}

/** Flushes `link` once the current task ends (as for an urgent message), if it has anything queued. */
export function flushAtTaskEnd(link: PeerLink, flush: (link: PeerLink) => void): void {
  if (link.active === null || !hasQueued(link) || link.urgentFlushQueued) return;
  link.urgentFlushQueued = true;
  queueMicrotask(() => {
    link.urgentFlushQueued = false;
    flush(link);
  });
}

/** Whether `link` has anything left to write. */
export function hasQueued(link: PeerLink): boolean {
  return link.urgent.length > 0 || link.queue.length > 0 || link.piecewise !== null;
}

function writeBatch(link: PeerLink, queue: SendQueue, connection: Connection, bounds: WriteBounds): void {
  const batch: Uint8Array[] = [];
  let batchBytes = 0;
  for (let next = queue.peek(); next !== undefined; next = queue.peek()) {
    const frameBytes = frameHeaderBytes + next.bytes;
    // The first message always fits: larger ordered ones are written in pieces, and `send` puts
    // larger urgent ones in the ordered lane.
    if (batchBytes + frameBytes > bounds.batchBytesMax || frameBytes > bounds.pieceBytesMax) break;
    queue.shift();
    // A small message in parts (not sent so by the node) is joined: a copy of a few KiB at most.
    batch.push(joinParts(next.parts));
    batchBytes += frameBytes;
  }
  assert(batch.length > 0, "a batch step wrote nothing");
  connection.writeMessages(batch);
  link.counters.sentMessages += batch.length;
  link.counters.sentBytes += batchBytes - frameHeaderBytes * batch.length;
}

function writePiece(
  link: PeerLink,
  piecewise: NonNullable<PeerLink["piecewise"]>,
  pieceBytesMax: number,
): void {
  const { parts, bytes, offset } = piecewise;
  // The first piece also carries the message's length.
  const room = pieceBytesMax - frameHeaderBytes - (offset === 0 ? partLengthBytes : 0);
  const end = Math.min(bytes, offset + room);
  assert(end > offset, "a piece step wrote nothing");
  const last = end === bytes;
  assert(!(offset === 0 && last), "a message written in pieces has at least two");
  piecewise.connection.writePart(sliceParts(parts, offset, end), {
    first: offset === 0,
    last,
    messageBytes: bytes,
  });
  piecewise.offset = end;
  link.counters.sentBytes += end - offset;
  if (!last) return;
  link.counters.sentMessages += 1;
  link.piecewise = null;
}
