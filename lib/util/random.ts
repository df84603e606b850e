/**
 * A small seeded PRNG (SplitMix32-style mixing over a 32-bit state, as in
 * "mulberry32"): every random thing in memvirt takes a seed so notebooks
 * and tests are deterministic.
 *
 * @module
 */

/**
 * Seeded pseudo-random generator. Not cryptographic.
 *
 * @example
 * ```ts
 * import { Random } from "./random.ts";
 * import assert from "node:assert/strict";
 * const a = new Random(42), b = new Random(42);
 * assert.equal(a.next(), b.next());
 * const x = a.int(10);
 * assert.ok(Number.isInteger(x) && x >= 0 && x < 10);
 * ```
 */
export class Random {
  #s: number;

  /** Create a generator from a seed (any safe integer). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(
        `seed ${String(seed)} is invalid: expected a safe integer`,
      );
    }
    this.#s = (seed ^ 0x9e3779b9) >>> 0;
  }

  /** Next unsigned 32-bit value. */
  nextU32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Next float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Integer in [0, n) for 0 < n ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new RangeError(
        `range ${String(n)} is invalid: expected an integer in [1, 2^32]`,
      );
    }
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) {
      throw new RangeError("cannot pick from an empty list");
    }
    return items[this.int(items.length)];
  }

  /** Shuffle a copy of `items` (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
