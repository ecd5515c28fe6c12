/**
 * Reconnect delays: capped exponential backoff with jitter.
 *
 * The ceiling doubles with every failed attempt from `delayMsMin` up to `delayMsMax`; the delay is
 * drawn uniformly between `delayMsMin` and that ceiling ("full jitter" above a floor). Jitter keeps
 * the nodes of a cluster that lost each other at the same moment from redialling in lock step, and
 * the floor keeps a peer that accepts and immediately drops connections from being hammered.
 * Randomness is injected (a function returning a float in [0, 1)) so tests are deterministic.
 */
import { assert } from "../lib/assert.ts";

/** Doubling stops here; 2^30 times any sane minimum is far above any sane maximum. */
const attemptExponentMax = 30;

export type BackoffBounds = { readonly delayMsMin: number; readonly delayMsMax: number };

export function reconnectDelayMs(attempt: number, bounds: BackoffBounds, random: () => number): number {
  assert(
    Number.isSafeInteger(attempt) && attempt >= 0,
    `attempt must be a non-negative integer, got ${attempt}`,
  );
  assert(bounds.delayMsMin >= 0 && bounds.delayMsMin <= bounds.delayMsMax, "backoff needs 0 <= min <= max");
  const exponent = Math.min(attempt, attemptExponentMax);
  const ceilingMs = Math.min(bounds.delayMsMax, Math.max(bounds.delayMsMin, 1) * 2 ** exponent);
  const draw = random();
  assert(draw >= 0 && draw < 1, `random() must return a float in [0, 1), got ${draw}`);
  const delayMs = Math.round(
    bounds.delayMsMin + draw * (Math.max(ceilingMs, bounds.delayMsMin) - bounds.delayMsMin),
  );
  assert(delayMs >= bounds.delayMsMin && delayMs <= bounds.delayMsMax, "reconnect delay escaped its bounds");
  return delayMs;
}
