/**
 * The per-peer state `TcpTransport` keeps: address, bounded send queue, the active connection and
 * the one being dialled, reconnect backoff, and counters for `stats()`.
 *
 * Invariants (kept by `TcpTransport`): `active`, when set, is an accepted connection to this peer;
 * `dialing`, when set, is our outbound connection that has not finished its handshake; at most one
 * reconnect timer is pending, and none while `active` or `dialing` is set.
 */
import { assert } from "../lib/assert.ts";
import type { ByteParts } from "../lib/byte-parts.ts";
import type { NodeId } from "../types/ids.ts";
import type { Connection } from "./connection.ts";
import { SendQueue, type SendQueueBounds } from "./send-queue.ts";
import type { PeerAddress } from "./tcp-transport-options.ts";
import type { PeerStats } from "./transport.ts";

export type PeerCounters = {
  droppedMessages: number;
  droppedBytes: number;
  expiredMessages: number;
  sentMessages: number;
  sentBytes: number;
  receivedMessages: number;
  receivedBytes: number;
  connects: number;
  protocolErrors: number;
};

/** A message larger than one batch, being written in pieces on one connection. */
export type PiecewiseMessage = {
  readonly connection: Connection;
  /** The message's body, as the parts it was sent in, and its length. */
  readonly parts: ByteParts;
  readonly bytes: number;
  /** Bytes of the body already written. */
  offset: number;
};

export type PeerLink = {
  readonly id: NodeId;
  address: PeerAddress | null;
  /** The ordered lane. */
  readonly queue: SendQueue;
  /** The urgent lane: written before the ordered lane's next batch or piece. */
  readonly urgent: SendQueue;
  /**
   * The ordered message being written in pieces, if any. It belongs to one connection: when that
   * connection is no longer the active one, the rest is dropped (its receiver discarded the pieces).
   */
  piecewise: PiecewiseMessage | null;
  /** The handshaken connection used for sending, if any. */
  active: Connection | null;
  /** When `active` became the active connection (`nowMs` clock). */
  activeSinceMs: number;
  /** Our outbound connection still in connect or handshake, if any. */
  dialing: Connection | null;
  reconnectTimer: NodeJS.Timeout | null;
  /** Failed dials since the last established connection; drives the backoff. */
  dialAttempt: number;
  /** A flush is due at `setImmediate` (the turn's batch). */
  flushScheduled: boolean;
  /** A flush is due when the current task ends (an urgent message is queued). */
  urgentFlushQueued: boolean;
  /** The incarnation of the peer's process this link last handshook with, or null before any. */
  incarnation: string | null;
  readonly counters: PeerCounters;
};

export function createPeerLink(
  id: NodeId,
  address: PeerAddress | null,
  queueBounds: SendQueueBounds,
  urgentBounds: SendQueueBounds,
): PeerLink {
  const link: PeerLink = {
    id,
    address,
    queue: new SendQueue(queueBounds),
    urgent: new SendQueue(urgentBounds),
    piecewise: null,
    active: null,
    activeSinceMs: 0,
    dialing: null,
    reconnectTimer: null,
    dialAttempt: 0,
    flushScheduled: false,
    urgentFlushQueued: false,
    incarnation: null,
    counters: {
      droppedMessages: 0,
      droppedBytes: 0,
      expiredMessages: 0,
      sentMessages: 0,
      sentBytes: 0,
      receivedMessages: 0,
      receivedBytes: 0,
      connects: 0,
      protocolErrors: 0,
    },
  };
  assert(link.queue.length === 0 && link.queue.bytes === 0, "a new link starts with an empty queue");
  return link;
}

/** Counts `messages` messages of `bodyBytes` bytes in total as dropped on `link`. */
export function countDropped(link: PeerLink, messages: number, bodyBytes: number): void {
  assert(messages >= 0 && bodyBytes >= 0, "drop counts are non-negative");
  link.counters.droppedMessages += messages;
  link.counters.droppedBytes += bodyBytes;
}

/**
 * The peer handshook as `incarnation`. When that is a new process (it restarted), what was queued
 * for its predecessor while it was down was built from that process's state and is dropped, as a
 * lost connection loses messages: a restarted node must never get, say, a commit index its
 * predecessor had but it lacks (its disk may be new). Returns the messages dropped.
 */
export function forgetPreviousIncarnation(link: PeerLink, incarnation: string): number {
  const previous = link.incarnation;
  link.incarnation = incarnation;
  if (previous === null || previous === incarnation) return 0;
  return discardQueued(link);
}

/** Empties both lanes and drops a message being written in pieces; counts and returns the messages. */
export function discardQueued(link: PeerLink): number {
  let messages = 0;
  for (const queue of [link.queue, link.urgent]) {
    const discarded = queue.clear();
    countDropped(link, discarded.messages, discarded.bytes);
    messages += discarded.messages;
  }
  if (link.piecewise !== null) {
    countDropped(link, 1, link.piecewise.bytes);
    link.piecewise = null;
    messages += 1;
  }
  return messages;
}

/** Discards queued messages (both lanes) queued before `oldestAllowedMs`; counts and returns them. */
export function expireQueued(link: PeerLink, oldestAllowedMs: number): number {
  let messages = 0;
  for (const queue of [link.queue, link.urgent]) {
    const expired = queue.expire(oldestAllowedMs);
    link.counters.expiredMessages += expired.messages;
    countDropped(link, expired.messages, expired.bytes);
    messages += expired.messages;
  }
  return messages;
}

/** The link's figures for `stats()`; `selfId` is this node's id. */
export function peerStats(link: PeerLink, selfId: NodeId): PeerStats {
  const active = link.active;
  const piecewise = link.piecewise;
  return {
    peer: link.id,
    connected: active !== null,
    connection: active?.info(selfId) ?? null,
    queuedMessages: link.queue.length + link.urgent.length + (piecewise === null ? 0 : 1),
    queuedBytes:
      link.queue.bytes + link.urgent.bytes + (piecewise === null ? 0 : piecewise.bytes - piecewise.offset),
    socketBufferedBytes: active?.socket.writableLength ?? 0,
    ...link.counters,
    reconnects: Math.max(0, link.counters.connects - 1),
  };
}
