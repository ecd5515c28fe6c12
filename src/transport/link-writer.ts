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
import type { Connection } from "./connection.ts";
import { frameHeaderBytes, partLengthBytes } from "./frame.ts";
import { countDropped, type PeerLink } from "./peer-link.ts";
import type { SendQueue } from "./send-queue.ts";

/**
 * Sizes of what is written: `batchBytesMax` bounds a batch of frames; a message whose frame is
 * larger than `pieceBytesMax` (at most `batchBytesMax`) is written in frames of that size.
 */
export type WriteBounds = { readonly batchBytesMax: number; readonly pieceBytesMax: number };

/** Writes what `link` has queued to `connection` until the socket needs `drain` or nothing is left. */
export function writeQueued(link: PeerLink, connection: Connection, bounds: WriteBounds): void {
  assert(bounds.pieceBytesMax > frameHeaderBytes + partLengthBytes, "a piece holds a byte of its message");
  assert(bounds.pieceBytesMax <= bounds.batchBytesMax, "a piece fits a batch");
  const piecewise = link.piecewise;
  if (piecewise !== null && piecewise.connection !== connection) {
    // The connection that carried its first pieces is gone, and its receiver discarded them.
    countDropped(link, 1, piecewise.body.length);
    link.piecewise = null;
  }
  // Each step writes at least one message or piece, so the loop ends within what is queued.
  while (connection.writable) {
    if (link.urgent.length > 0) writeBatch(link, link.urgent, connection, bounds);
    else if (link.piecewise !== null) writePiece(link, link.piecewise, bounds.pieceBytesMax);
    else if (link.queue.length === 0) return;
    else if (frameHeaderBytes + link.queue.peek()!.body.length > bounds.pieceBytesMax) {
      link.piecewise = { connection, body: link.queue.shift()!.body, offset: 0 };
    } else writeBatch(link, link.queue, connection, bounds);
  }
}

/** Whether `link` has anything left to write. */
export function hasQueued(link: PeerLink): boolean {
  return link.urgent.length > 0 || link.queue.length > 0 || link.piecewise !== null;
}

function writeBatch(link: PeerLink, queue: SendQueue, connection: Connection, bounds: WriteBounds): void {
  const batch: Uint8Array[] = [];
  let batchBytes = 0;
  for (let next = queue.peek(); next !== undefined; next = queue.peek()) {
    const frameBytes = frameHeaderBytes + next.body.length;
    // The first message always fits: larger ordered ones are written in pieces, and `send` puts
    // larger urgent ones in the ordered lane.
    if (batchBytes + frameBytes > bounds.batchBytesMax || frameBytes > bounds.pieceBytesMax) break;
    queue.shift();
    batch.push(next.body);
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
  const { body, offset } = piecewise;
  // The first piece also carries the message's length.
  const room = pieceBytesMax - frameHeaderBytes - (offset === 0 ? partLengthBytes : 0);
  const end = Math.min(body.length, offset + room);
  assert(end > offset, "a piece step wrote nothing");
  const last = end === body.length;
  assert(!(offset === 0 && last), "a message written in pieces has at least two");
  piecewise.connection.writePart(body.subarray(offset, end), {
    first: offset === 0,
    last,
    messageBytes: body.length,
  });
  piecewise.offset = end;
  link.counters.sentBytes += end - offset;
  if (!last) return;
  link.counters.sentMessages += 1;
  link.piecewise = null;
}
