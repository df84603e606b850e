/**
 * Translation caches of the 2-D walk (Bhargava et al., "Accelerating
 * Two-Dimensional Page Walks for Virtualized Systems", ASPLOS 2008):
 *
 * - a **guest paging-structure cache**: a guest upper-level entry (PML5E,
 *   PML4E, PDPTE, PDE) cached by guest linear-address prefix → the gpa of
 *   the next guest table and the rights so far (SDM Vol. 3 §4.10.3, in the
 *   guest dimension). A hit skips that guest level's entry read *and* the
 *   whole host walk that translated the entry's gpa;
 * - a **nested TLB**: gfn → host frame with the R/W/X rights the second
 *   stage allows (guest-physical mappings, SDM §28.4.1), so that the host
 *   walk of a guest table's gpa (and of the final gpa) is skipped;
 * - a **host paging-structure cache**: second-stage upper-level entries by
 *   gpa prefix → the hpa of the next host table (SDM §28.4.2), shortening
 *   the host walks the nested TLB misses.
 *
 * All three are one structure, {@linkcode PrefixCache}: set-associative
 * typed arrays keyed by (context, level, address prefix), seeded random
 * replacement, counters — the design of `lib/tlb/psc.ts`, kept separate
 * here because the keys are two-dimensional (a guest context or an EPTP).
 *
 * @module
 */

/** Options for one {@linkcode PrefixCache}. */
export interface PrefixCacheOptions {
  /** Entries (a power of two, 1..4096). Default 32. */
  entries?: number;
  /** Ways per set (a power of two dividing `entries`). Default 4. */
  ways?: number;
  /** Replacement seed (any integer). Default 1. */
  seed?: number;
}

/** Counters of a {@linkcode PrefixCache}. */
export interface PrefixCacheCounters {
  /** Lookups made. */
  readonly lookups: number;
  /** Lookups that found a usable entry. */
  readonly hits: number;
  /** Lookups that did not. */
  readonly misses: number;
  /** Entries written. */
  readonly fills: number;
  /** Valid entries replaced by a fill. */
  readonly evictions: number;
  /** Invalidation operations. */
  readonly invalidations: number;
  /** Valid entries dropped by invalidations. */
  readonly dropped: number;
}

/**
 * A small set-associative cache keyed by (context, level, prefix) with a
 * number value and 3 bits of rights. Lookups and fills are allocation-free
 * and BigInt-free; the prefix is passed as two 32-bit halves with the bits
 * below the level's shift already cleared ({@linkcode prefixHi} /
 * {@linkcode prefixLo}).
 *
 * @example
 * ```ts
 * import { PrefixCache } from "./cache.ts";
 * import assert from "node:assert/strict";
 * const c = new PrefixCache("guest-psc", { entries: 8, ways: 2 });
 * assert.equal(c.lookup(0x1000, 2, 0, 0x40_0000, 0), -1);
 * c.fill(0x1000, 2, 0, 0x40_0000, 0x9000, 7);
 * const slot = c.lookup(0x1000, 2, 0, 0x40_0000, 0);
 * assert.equal(c.value[slot], 0x9000);
 * assert.equal(c.lookup(0x2000, 2, 0, 0x40_0000, 0), -1);     // other context
 * assert.equal(c.invalidateContext(0x1000), 1);
 * assert.deepEqual([c.counters.hits, c.counters.misses, c.size], [1, 2, 0]);
 * ```
 */
export class PrefixCache {
  /** Name used in records and displays ("guest-psc", "ntlb", "host-psc"). */
  readonly name: string;
  /** Entries. */
  readonly entries: number;
  /** Ways per set. */
  readonly ways: number;
  /** Per slot: valid. */
  readonly valid: Uint8Array;
  /** Per slot: context (guest root / EPTP root). */
  readonly ctx: Float64Array;
  /** Per slot: level of the cached entry (0 for a nested-TLB entry). */
  readonly level: Uint8Array;
  /** Per slot: prefix, high 32 bits. */
  readonly keyHi: Uint32Array;
  /** Per slot: prefix, low 32 bits. */
  readonly keyLo: Uint32Array;
  /** Per slot: the value (next table's address, or a host frame). */
  readonly value: Float64Array;
  /** Per slot: rights (3 bits; their meaning is the owner's). */
  readonly rights: Uint8Array;
  #sets: number;
  #rng: number;
  #lookups = 0;
  #hits = 0;
  #fills = 0;
  #evictions = 0;
  #invalidations = 0;
  #dropped = 0;

  /** Create an empty cache; validates loudly. */
  constructor(name: string, options: PrefixCacheOptions = {}) {
    const entries = options.entries ?? 32;
    const ways = options.ways ?? Math.min(4, entries);
    const pow2 = (x: number) =>
      Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;
    if (!pow2(entries) || entries > 4096) {
      throw new RangeError(
        `${name}: entries ${
          String(entries)
        } is invalid: expected a power of two in [1, 4096]`,
      );
    }
    if (!pow2(ways) || ways > entries) {
      throw new RangeError(
        `${name}: ways ${
          String(ways)
        } is invalid: expected a power of two ≤ entries (${entries})`,
      );
    }
    const seed = options.seed ?? 1;
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(
        `${name}: seed ${String(seed)} is not a safe integer`,
      );
    }
    this.name = name;
    this.entries = entries;
    this.ways = ways;
    this.#sets = entries / ways;
    this.#rng = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.valid = new Uint8Array(entries);
    this.ctx = new Float64Array(entries);
    this.level = new Uint8Array(entries);
    this.keyHi = new Uint32Array(entries);
    this.keyLo = new Uint32Array(entries);
    this.value = new Float64Array(entries);
    this.rights = new Uint8Array(entries);
  }

  #set(level: number, hi: number, lo: number): number {
    const h = (lo >>> 12) ^ (lo >>> 21) ^ (lo >>> 30) ^ (hi << 2) ^
      (hi >>> 7) ^ (hi >>> 16) ^ level;
    return (h & (this.#sets - 1)) * this.ways;
  }

  /**
   * The slot holding (ctx, level, hi:lo) whose rights include every bit of
   * `need`, or -1 (counted as a miss).
   */
  lookup(
    ctx: number,
    level: number,
    hi: number,
    lo: number,
    need: number,
  ): number {
    this.#lookups++;
    const base = this.#set(level, hi, lo), end = base + this.ways;
    const valid = this.valid, keyLo = this.keyLo, keyHi = this.keyHi;
    for (let i = base; i < end; i++) {
      if (
        keyLo[i] === lo && valid[i] === 1 && keyHi[i] === hi &&
        this.level[i] === level && this.ctx[i] === ctx &&
        (need & ~this.rights[i]) === 0
      ) {
        this.#hits++;
        return i;
      }
    }
    return -1;
  }

  /** Write (ctx, level, hi:lo) → value, rights: replaces a matching entry, else an invalid way, else a seeded random way. */
  fill(
    ctx: number,
    level: number,
    hi: number,
    lo: number,
    value: number,
    rights: number,
  ): void {
    this.#fills++;
    const base = this.#set(level, hi, lo);
    let slot = -1;
    for (let i = base; i < base + this.ways; i++) {
      if (this.valid[i] === 0) {
        if (slot < 0) slot = i;
      } else if (
        this.keyLo[i] === lo && this.keyHi[i] === hi &&
        this.level[i] === level && this.ctx[i] === ctx
      ) {
        slot = i;
        break;
      }
    }
    if (slot < 0) {
      let x = this.#rng; // xorshift32: seeded, allocation-free
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.#rng = x >>> 0;
      slot = base + (this.#rng & (this.ways - 1));
      this.#evictions++;
    }
    this.valid[slot] = 1;
    this.ctx[slot] = ctx;
    this.level[slot] = level;
    this.keyHi[slot] = hi;
    this.keyLo[slot] = lo;
    this.value[slot] = value;
    this.rights[slot] = rights;
  }

  /** Drop every entry of context `ctx`; returns how many. */
  invalidateContext(ctx: number): number {
    this.#invalidations++;
    let n = 0;
    for (let i = 0; i < this.entries; i++) {
      if (this.valid[i] === 1 && this.ctx[i] === ctx) {
        this.valid[i] = 0;
        n++;
      }
    }
    this.#dropped += n;
    return n;
  }

  /** Drop every entry of context `ctx` whose (level-0) key is the page `hi:lo`; returns how many. */
  invalidateKey(ctx: number, level: number, hi: number, lo: number): number {
    this.#invalidations++;
    let n = 0;
    const base = this.#set(level, hi, lo);
    for (let i = base; i < base + this.ways; i++) {
      if (
        this.valid[i] === 1 && this.ctx[i] === ctx && this.level[i] === level &&
        this.keyHi[i] === hi && this.keyLo[i] === lo
      ) {
        this.valid[i] = 0;
        n++;
      }
    }
    this.#dropped += n;
    return n;
  }

  /** Drop everything; returns how many valid entries were dropped. */
  invalidateAll(): number {
    this.#invalidations++;
    let n = 0;
    for (let i = 0; i < this.entries; i++) {
      n += this.valid[i];
      this.valid[i] = 0;
    }
    this.#dropped += n;
    return n;
  }

  /** Valid entries. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.entries; i++) n += this.valid[i];
    return n;
  }

  /** The counters as plain data. */
  get counters(): PrefixCacheCounters {
    return {
      lookups: this.#lookups,
      hits: this.#hits,
      misses: this.#lookups - this.#hits,
      fills: this.#fills,
      evictions: this.#evictions,
      invalidations: this.#invalidations,
      dropped: this.#dropped,
    };
  }

  /** Zero the counters (the entries stay). */
  resetCounters(): void {
    this.#lookups =
      this.#hits =
      this.#fills =
      this.#evictions =
        0;
    this.#invalidations = this.#dropped = 0;
  }
}

/**
 * High half of `hi:lo` with the bits below `shift` cleared.
 *
 * @example
 * ```ts
 * import { prefixHi, prefixLo } from "./cache.ts";
 * import assert from "node:assert/strict";
 * assert.equal(prefixHi(0x7f, 0x4012_3456, 39), 0);
 * assert.equal(prefixHi(0x7f, 0x4012_3456, 30), 0x7f);
 * assert.equal(prefixLo(0x7f, 0x4012_3456, 21), 0x4000_0000);
 * ```
 */
export function prefixHi(hi: number, _lo: number, shift: number): number {
  return shift <= 32 ? hi >>> 0 : (hi & ~((1 << (shift - 32)) - 1)) >>> 0;
}

/** Low half of `hi:lo` with the bits below `shift` cleared (see {@linkcode prefixHi}). */
export function prefixLo(_hi: number, lo: number, shift: number): number {
  return shift >= 32 ? 0 : (lo & ~((1 << shift) - 1)) >>> 0;
}
