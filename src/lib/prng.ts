/**
 * A small seeded pseudo-random generator (xoshiro128**, seeded through splitmix32).
 *
 * The consensus core and the simulator draw every random number from an instance of this class so
 * that a run is fully determined by its printed seed. Not for cryptographic use.
 */
import { assert } from "./assert.ts";

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), "seed must be a safe integer");
    let state = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    assert((this.s0 | this.s1 | this.s2 | this.s3) !== 0, "prng state must not be all zero");
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** An integer in [min, max], both inclusive. */
  intBetween(min: number, max: number): number {
    assert(Number.isInteger(min) && Number.isInteger(max) && min <= max, "intBetween needs min <= max");
    return min + Math.floor(this.nextFloat() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.nextFloat() < p;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, "pick from an empty list");
    return items[this.intBetween(0, items.length - 1)] as T;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
