/**
 * A tagged, set-associative translation lookaside buffer (Intel SDM Vol. 3
 * §4.10.2).
 *
 * What an entry caches (§4.10.2.2): the page number (VPN) and page size,
 * the physical frame, the access rights combined along the walk (R/W and
 * U/S ANDed, XD ORed — here the abstract `RIGHT_*` bits of the walker), the
 * protection key, the dirty flag of the leaf, whether the translation is
 * global (G = 1 with CR4.PGE = 1, §4.10.2.4) and the PCID that was current
 * when it was created (§4.10.1). Entries are created only from successful
 * walks, whose accessed flags are then all 1 (§4.10.2.1).
 *
 * The TLB caches *rights*, not the result of a rights check: the CPU
 * re-checks them against the current mode on every hit (CR0.WP, SMEP, SMAP,
 * PKRU can change without a flush). It never looks at the page tables
 * again, so an entry keeps translating after the tables change until
 * software invalidates it — the stale-TLB teaching point (§4.10.4.2).
 *
 * Geometry: `entries` split into `entries / ways` sets (a power of two);
 * `ways === entries` is fully associative. A unified TLB keeps every page
 * size in one array and probes it once per page size present (as a unified
 * second-level TLB does); `split` gives separate arrays for base pages,
 * large pages (2 MiB / 4 MiB) and huge pages (1 GiB), like a real L1 DTLB.
 * The set index is the low bits of the page number *at that page size*.
 *
 * All state lives in typed arrays: no allocation and no BigInt on
 * {@linkcode Tlb.lookup}, {@linkcode Tlb.fill} or the slot accessors.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { decodeRights, type Rights } from "../paging/record.ts";
import { WALK_OK, type WalkScratch } from "../paging/walker.ts";
import { Random } from "../util/random.ts";
import { tlbToHtml, tlbToText } from "../view/tlb_html.ts";

/** Replacement policy of a set. */
export type Replacement = "lru" | "fifo" | "random";

/** Size of one TLB array. */
export interface TlbArrayOptions {
  /** Number of entries (1..65536). */
  entries: number;
  /** Associativity; must divide `entries` into a power-of-two number of sets. Default: fully associative. */
  ways?: number;
}

/** Array sizes for a split TLB. */
export interface TlbSplitOptions {
  /** Base pages (4 KiB; level-1 leaves). Default 64 entries, 4 ways. */
  base?: TlbArrayOptions;
  /** Large pages (2 MiB / 4 MiB; level-2 leaves). Default 32 entries, 4 ways. */
  large?: TlbArrayOptions;
  /** Huge pages (1 GiB; level-3 leaves). Default 4 entries, 4 ways. */
  huge?: TlbArrayOptions;
}

/** Options for {@linkcode Tlb}. */
export interface TlbOptions {
  /** Entries of the unified array (or of the base-page array when split). Default 64. */
  entries?: number;
  /** Associativity (ways === entries: fully associative). Default 4. */
  ways?: number;
  /** Replacement policy. Default "lru". */
  replacement?: Replacement;
  /** `true` or per-class sizes: separate arrays per page-size class. Default false (unified). */
  split?: boolean | TlbSplitOptions;
  /** Seed of the random replacement policy. Default 1. */
  seed?: number;
  /** Name shown in displays. Default "TLB". */
  name?: string;
}

/** Page-size class of an entry. */
export type TlbSizeClass = "unified" | "base" | "large" | "huge";

/** Geometry of one TLB array. */
export interface TlbArrayInfo {
  /** Class name. */
  readonly sizeClass: TlbSizeClass;
  /** Entries. */
  readonly entries: number;
  /** Ways per set. */
  readonly ways: number;
  /** Sets. */
  readonly sets: number;
  /** First slot of the array. */
  readonly firstSlot: number;
}

/** Event counters of a {@linkcode Tlb}. */
export interface TlbCounters {
  /** Lookups that found an entry. */
  readonly hits: number;
  /** Lookups that found none. */
  readonly misses: number;
  /** Entries written by {@linkcode Tlb.fill}. */
  readonly fills: number;
  /** Valid entries replaced to make room (capacity or conflict misses). */
  readonly evictions: number;
  /** Invalidation operations by kind. */
  readonly invalidations: {
    /** Per address (INVLPG, INVPCID type 0). */
    readonly address: number;
    /** Per PCID (MOV to CR3, INVPCID type 1). */
    readonly pcid: number;
    /** Everything (INVPCID types 2 and 3, CR0/CR4 writes). */
    readonly all: number;
    /** For a faulting page (§4.10.4.1). */
    readonly fault: number;
  };
  /** Valid entries dropped by invalidations. */
  readonly dropped: number;
}

/** One valid TLB entry, decoded (for displays and tests). */
export interface TlbEntry {
  /** Slot index (what {@linkcode Tlb.lookup} returns). */
  readonly slot: number;
  /** Array the slot belongs to. */
  readonly sizeClass: TlbSizeClass;
  /** Set within the array. */
  readonly set: number;
  /** Way within the set. */
  readonly way: number;
  /** First linear address of the page (VPN × page size). */
  readonly va: LinearAddress;
  /** Page size in bytes. */
  readonly pageSize: number;
  /** Level of the leaf that mapped the page. */
  readonly level: number;
  /** Physical address of the page frame. */
  readonly pa: number;
  /** PCID that was current when the entry was created. */
  readonly pcid: number;
  /** Global: used whatever the current PCID (§4.10.2.4). */
  readonly global: boolean;
  /** Rights combined along the walk. */
  readonly rights: Rights;
  /** Protection key. */
  readonly pkey: number;
  /** Cached dirty flag of the leaf. */
  readonly dirty: boolean;
  /** Replacement stamp (last use for LRU, fill time for FIFO). */
  readonly stamp: number;
}

/** Plain-data picture of a TLB for the views. */
export interface TlbSnapshot {
  /** Display name. */
  readonly name: string;
  /** Replacement policy. */
  readonly replacement: Replacement;
  /** Arrays. */
  readonly arrays: readonly TlbArrayInfo[];
  /** Total entries. */
  readonly capacity: number;
  /** Valid entries, in slot order. */
  readonly entries: readonly TlbEntry[];
  /** Counters. */
  readonly counters: TlbCounters;
}

/** Options for invalidations that may keep global entries. */
export interface FlushOptions {
  /** Keep global entries (default false: drop them too). */
  keepGlobal?: boolean;
}

const MAX_SHIFTS = 8; // distinct page shifts tracked per array
const MAX_PCID = 4095;

const DEFAULT_SPLIT: Required<TlbSplitOptions> = {
  base: { entries: 64, ways: 4 },
  large: { entries: 32, ways: 4 },
  huge: { entries: 4, ways: 4 },
};

function checkArray(
  what: string,
  entries: number,
  ways: number,
): void {
  if (!Number.isInteger(entries) || entries < 1 || entries > 65536) {
    throw new RangeError(
      `${what}: entries ${
        String(entries)
      } is invalid: expected an integer in [1, 65536]`,
    );
  }
  if (!Number.isInteger(ways) || ways < 1 || entries % ways !== 0) {
    throw new RangeError(
      `${what}: ways ${
        String(ways)
      } is invalid: expected a positive divisor of ${entries} entries`,
    );
  }
  const sets = entries / ways;
  if ((sets & (sets - 1)) !== 0) {
    throw new RangeError(
      `${what}: ${entries} entries / ${ways} ways = ${sets} sets: expected a power-of-two number of sets`,
    );
  }
}

function checkU32(what: string, x: number): void {
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) {
    throw new RangeError(
      `${what} ${String(x)} is invalid: expected an unsigned 32-bit integer`,
    );
  }
}

/**
 * Throw a `RangeError` unless `pcid` is a PCID (an integer in [0, 4095]).
 *
 * @example
 * ```ts
 * import { checkPcid } from "./tlb.ts";
 * import assert from "node:assert/strict";
 * assert.equal(checkPcid(7), 7);
 * assert.throws(() => checkPcid(4096), /PCID 4096/);
 * ```
 */
export function checkPcid(pcid: number): number {
  if (!Number.isInteger(pcid) || pcid < 0 || pcid > MAX_PCID) {
    throw new RangeError(
      `PCID ${String(pcid)} is invalid: expected an integer in [0, 4095]`,
    );
  }
  return pcid;
}

/**
 * A tagged TLB. Fill it from a successful walk's {@linkcode WalkScratch},
 * look translations up by linear address and PCID, invalidate by address,
 * PCID or everything.
 *
 * @example Fill from a walk, hit, and see the stale entry outlive a table change.
 * ```ts
 * import { Tlb } from "./tlb.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { walkInto, WalkScratch, WALK_OK } from "../paging/walker.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
 * pt.map(0x40_0000, 0x9000);
 * const s = new WalkScratch();
 * assert.equal(walkInto(s, pt.mode, pt.memory, pt.root, 0, 0x40_0123, 0), WALK_OK);
 * const tlb = new Tlb({ entries: 16, ways: 4 });
 * const slot = tlb.fill(s, 0, 0x40_0123, 0);
 * assert.equal(tlb.lookup(0, 0x40_0fff, 0), slot);
 * assert.equal(tlb.translate(slot, 0, 0x40_0fff), 0x9fff);
 * assert.equal(tlb.lookup(0, 0x40_0fff, 1), -1); // another PCID
 * pt.unmap(0x40_0000);                             // no invalidation…
 * assert.equal(tlb.lookup(0, 0x40_0000, 0), slot);  // …the stale entry still translates
 * assert.equal(tlb.invlpg(0, 0x40_0000, 0), 1);
 * assert.equal(tlb.lookup(0, 0x40_0000, 0), -1);
 * assert.deepEqual([tlb.counters.hits, tlb.counters.misses], [2, 2]);
 * ```
 */
export class Tlb {
  /** Display name. */
  readonly name: string;
  /** Replacement policy. */
  readonly replacement: Replacement;
  /** Total number of entries. */
  readonly capacity: number;
  /** Whether base, large and huge pages have separate arrays. */
  readonly split: boolean;
  #lru: boolean;
  #random: boolean;
  #rng: Random;
  #nArrays: number;
  #classOf: Uint8Array; // leaf level → array
  #off: Int32Array;
  #ways: Int32Array;
  #setMask: Int32Array;
  #shiftCount: Int32Array; // [array * 64 + shift]
  #shiftList: Uint8Array; // [array * MAX_SHIFTS + k], ascending
  #shiftLen: Uint8Array;
  // per slot
  #valid: Uint8Array;
  #tagHi: Uint32Array;
  #tagLo: Uint32Array;
  #pcid: Uint16Array;
  #global: Uint8Array;
  #shift: Uint8Array;
  #level: Uint8Array;
  #frame: Float64Array;
  #rights: Uint8Array;
  #pkey: Uint8Array;
  #dirty: Uint8Array;
  #stamp: Float64Array;
  #clock = 0;
  // counters
  #hits = 0;
  #misses = 0;
  #fills = 0;
  #evictions = 0;
  #invAddress = 0;
  #invPcid = 0;
  #invAll = 0;
  #invFault = 0;
  #dropped = 0;

  /** Create an empty TLB. Throws `RangeError` for impossible geometries. */
  constructor(options: TlbOptions = {}) {
    const rep = options.replacement ?? "lru";
    if (rep !== "lru" && rep !== "fifo" && rep !== "random") {
      throw new RangeError(
        `replacement "${
          String(rep)
        }" is invalid: expected "lru", "fifo" or "random"`,
      );
    }
    this.name = options.name ?? "TLB";
    this.replacement = rep;
    this.#lru = rep === "lru";
    this.#random = rep === "random";
    this.#rng = new Random(options.seed ?? 1);
    const arrays: { cls: TlbSizeClass; entries: number; ways: number }[] = [];
    const split = options.split ?? false;
    if (split === false) {
      const entries = options.entries ?? 64;
      const ways = options.ways ?? Math.min(4, entries);
      checkArray("TLB", entries, ways);
      arrays.push({ cls: "unified", entries, ways });
    } else if (split === true || typeof split === "object") {
      const o = split === true ? {} : split;
      const base = o.base ??
        (options.entries !== undefined
          ? { entries: options.entries, ways: options.ways }
          : DEFAULT_SPLIT.base);
      const large = o.large ?? DEFAULT_SPLIT.large;
      const huge = o.huge ?? DEFAULT_SPLIT.huge;
      for (
        const [cls, a] of [["base", base], ["large", large], [
          "huge",
          huge,
        ]] as const
      ) {
        if (a === null || typeof a !== "object") {
          throw new TypeError(
            `TLB split.${cls} is ${
              String(a)
            }: expected an object { entries, ways }`,
          );
        }
        const ways = a.ways ?? a.entries;
        checkArray(`TLB ${cls}-page array`, a.entries, ways);
        arrays.push({ cls, entries: a.entries, ways });
      }
    } else {
      throw new TypeError(
        `TLB split ${
          String(split)
        } is invalid: expected a boolean or { base, large, huge }`,
      );
    }
    this.split = arrays.length > 1;
    const n = arrays.length;
    this.#nArrays = n;
    this.#off = new Int32Array(n);
    this.#ways = new Int32Array(n);
    this.#setMask = new Int32Array(n);
    this.#shiftCount = new Int32Array(n * 64);
    this.#shiftList = new Uint8Array(n * MAX_SHIFTS);
    this.#shiftLen = new Uint8Array(n);
    this.#classOf = new Uint8Array(16);
    let total = 0;
    arrays.forEach((a, i) => {
      this.#off[i] = total;
      this.#ways[i] = a.ways;
      this.#setMask[i] = a.entries / a.ways - 1;
      total += a.entries;
    });
    for (let level = 0; level < 16; level++) {
      this.#classOf[level] = n === 1 ? 0 : Math.max(0, Math.min(level, 3) - 1);
    }
    this.#arrayInfo = arrays.map((a, i) => ({
      sizeClass: a.cls,
      entries: a.entries,
      ways: a.ways,
      sets: a.entries / a.ways,
      firstSlot: this.#off[i],
    }));
    this.capacity = total;
    this.#valid = new Uint8Array(total);
    this.#tagHi = new Uint32Array(total);
    this.#tagLo = new Uint32Array(total);
    this.#pcid = new Uint16Array(total);
    this.#global = new Uint8Array(total);
    this.#shift = new Uint8Array(total);
    this.#level = new Uint8Array(total);
    this.#frame = new Float64Array(total);
    this.#rights = new Uint8Array(total);
    this.#pkey = new Uint8Array(total);
    this.#dirty = new Uint8Array(total);
    this.#stamp = new Float64Array(total);
  }

  #arrayInfo: TlbArrayInfo[];

  /** Geometry of each array. */
  get arrays(): readonly TlbArrayInfo[] {
    return this.#arrayInfo;
  }

  /** Number of valid entries. */
  get validCount(): number {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) n += this.#valid[i];
    return n;
  }

  /**
   * Find the entry translating `vaHi:vaLo` for `pcid`: one whose page
   * number matches at its page size and whose PCID is `pcid` or which is
   * global. Tries every page size present, smallest first. Returns the
   * slot, or -1. Counts a hit or a miss; with LRU, a hit refreshes the
   * entry's stamp. Hot path: arguments are not validated (unsigned 32-bit
   * halves and a PCID are expected).
   */
  lookup(vaHi: number, vaLo: number, pcid: number): number {
    const valid = this.#valid, tagLo = this.#tagLo, tagHi = this.#tagHi;
    const shiftA = this.#shift, pcidA = this.#pcid, glob = this.#global;
    const nArrays = this.#nArrays;
    for (let c = 0; c < nArrays; c++) {
      const n = this.#shiftLen[c];
      const ways = this.#ways[c];
      for (let k = 0; k < n; k++) {
        const s = this.#shiftList[c * MAX_SHIFTS + k];
        let vLo: number, vHi: number;
        // page shifts are ≥ 1 (validateFormat), so `32 - s` is < 32
        if (s < 32) {
          vLo = ((vaLo >>> s) | (vaHi << (32 - s))) >>> 0;
          vHi = vaHi >>> s;
        } else {
          vLo = vaHi >>> (s - 32);
          vHi = 0;
        }
        let i = this.#off[c] + (vLo & this.#setMask[c]) * ways;
        const end = i + ways;
        for (; i < end; i++) {
          if (
            tagLo[i] === vLo && valid[i] === 1 && tagHi[i] === vHi &&
            shiftA[i] === s && (pcidA[i] === pcid || glob[i] === 1)
          ) {
            this.#hits++;
            if (this.#lru) this.#stamp[i] = ++this.#clock;
            return i;
          }
        }
      }
    }
    this.#misses++;
    return -1;
  }

  /**
   * Cache the translation of a successful walk (`s.outcome === WALK_OK`)
   * of `vaHi:vaLo` under `pcid`. Global only if the walk says so (G = 1
   * with CR4.PGE). An entry already translating that page for that PCID is
   * overwritten in place (a re-walk to set D); otherwise a free way is used,
   * or the policy picks a victim (an eviction). Returns the slot.
   */
  fill(s: WalkScratch, vaHi: number, vaLo: number, pcid: number): number {
    if (s.outcome !== WALK_OK) {
      throw new RangeError(
        `cannot fill the TLB from a walk with outcome ${s.outcome}: expected a successful walk (WALK_OK)`,
      );
    }
    checkU32("linear address high half", vaHi);
    checkU32("linear address low half", vaLo);
    checkPcid(pcid);
    const sh = s.pageShift;
    const c = this.#classOf[s.leafLevel];
    let vLo: number, vHi: number, off: number;
    if (sh < 32) {
      vLo = ((vaLo >>> sh) | (vaHi << (32 - sh))) >>> 0;
      vHi = vaHi >>> sh;
      off = (vaLo & ((1 << sh) - 1)) >>> 0;
    } else {
      vLo = vaHi >>> (sh - 32);
      vHi = 0;
      off = (vaHi & (2 ** (sh - 32) - 1)) * 4294967296 + vaLo;
    }
    const ways = this.#ways[c];
    const first = this.#off[c] + (vLo & this.#setMask[c]) * ways;
    const end = first + ways;
    let victim = -1;
    for (let i = first; i < end; i++) {
      if (
        this.#valid[i] === 1 && this.#tagLo[i] === vLo &&
        this.#tagHi[i] === vHi && this.#shift[i] === sh &&
        (this.#pcid[i] === pcid || this.#global[i] === 1)
      ) {
        victim = i;
        break;
      }
    }
    if (victim < 0) {
      for (let i = first; i < end; i++) {
        if (this.#valid[i] === 0) {
          victim = i;
          break;
        }
      }
    }
    if (victim < 0) {
      if (this.#random) {
        victim = first + this.#rng.int(ways);
      } else {
        victim = first;
        for (let i = first + 1; i < end; i++) {
          if (this.#stamp[i] < this.#stamp[victim]) victim = i;
        }
      }
      this.#evictions++;
    }
    if (this.#valid[victim] === 1) this.#dropShift(c, this.#shift[victim]);
    this.#valid[victim] = 1;
    this.#tagLo[victim] = vLo;
    this.#tagHi[victim] = vHi;
    this.#pcid[victim] = pcid;
    this.#global[victim] = s.global ? 1 : 0;
    this.#shift[victim] = sh;
    this.#level[victim] = s.leafLevel;
    this.#frame[victim] = s.pa - off;
    this.#rights[victim] = s.finalRights;
    this.#pkey[victim] = s.pkey;
    this.#dirty[victim] = s.dirty ? 1 : 0;
    this.#stamp[victim] = ++this.#clock;
    this.#addShift(c, sh);
    this.#fills++;
    return victim;
  }

  #addShift(c: number, sh: number): void {
    if (this.#shiftCount[c * 64 + sh]++ !== 0) return;
    const base = c * MAX_SHIFTS;
    const n = this.#shiftLen[c];
    if (n === MAX_SHIFTS) {
      throw new RangeError(
        `${this.name}: more than ${MAX_SHIFTS} page sizes in one array`,
      );
    }
    let k = n;
    while (k > 0 && this.#shiftList[base + k - 1] > sh) {
      this.#shiftList[base + k] = this.#shiftList[base + k - 1];
      k--;
    }
    this.#shiftList[base + k] = sh;
    this.#shiftLen[c] = n + 1;
  }

  #dropShift(c: number, sh: number): void {
    if (--this.#shiftCount[c * 64 + sh] !== 0) return;
    const base = c * MAX_SHIFTS;
    const n = this.#shiftLen[c];
    let k = 0;
    while (k < n && this.#shiftList[base + k] !== sh) k++;
    for (; k < n - 1; k++) {
      this.#shiftList[base + k] = this.#shiftList[base + k + 1];
    }
    this.#shiftLen[c] = n - 1;
  }

  #arrayOfSlot(slot: number): number {
    let c = this.#nArrays - 1;
    while (c > 0 && slot < this.#off[c]) c--;
    return c;
  }

  #drop(i: number): void {
    this.#valid[i] = 0;
    this.#dropShift(this.#arrayOfSlot(i), this.#shift[i]);
    this.#dropped++;
  }

  #checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity) {
      throw new RangeError(
        `TLB slot ${String(slot)} is invalid: expected an integer in [0, ${
          this.capacity - 1
        }]`,
      );
    }
  }

  /** Whether `slot` holds a valid entry. */
  isValid(slot: number): boolean {
    return this.#valid[slot] === 1;
  }

  /** Rights (`RIGHT_*` bits) cached in `slot`. */
  rightsOf(slot: number): number {
    return this.#rights[slot];
  }

  /** Protection key cached in `slot`. */
  pkeyOf(slot: number): number {
    return this.#pkey[slot];
  }

  /** Cached dirty flag of `slot`. */
  dirtyOf(slot: number): boolean {
    return this.#dirty[slot] === 1;
  }

  /** Whether `slot` is global. */
  globalOf(slot: number): boolean {
    return this.#global[slot] === 1;
  }

  /** log2 of the page size of `slot`. */
  shiftOf(slot: number): number {
    return this.#shift[slot];
  }

  /** Level of the leaf that `slot` was filled from. */
  levelOf(slot: number): number {
    return this.#level[slot];
  }

  /** Physical address of the frame of `slot`. */
  frameOf(slot: number): number {
    return this.#frame[slot];
  }

  /** PCID of `slot`. */
  pcidOf(slot: number): number {
    return this.#pcid[slot];
  }

  /** Physical address of `vaHi:vaLo` through `slot` (frame + page offset). */
  translate(slot: number, vaHi: number, vaLo: number): number {
    const s = this.#shift[slot];
    if (s < 32) return this.#frame[slot] + ((vaLo & ((1 << s) - 1)) >>> 0);
    return this.#frame[slot] + (vaHi & (2 ** (s - 32) - 1)) * 4294967296 +
      vaLo;
  }

  /**
   * Drop the entries for the page containing `vaHi:vaLo`, at every page
   * size: those of `pcid` and (unless `keepGlobal`) global ones of any
   * PCID. INVLPG is `keepGlobal: false` (§4.10.4.1); INVPCID type 0 is
   * `keepGlobal: true`. Returns the number dropped.
   */
  invlpg(
    vaHi: number,
    vaLo: number,
    pcid: number,
    options: FlushOptions = {},
  ): number {
    this.#invAddress++;
    return this.#dropPage(vaHi, vaLo, pcid, options.keepGlobal ?? false);
  }

  #dropPage(
    vaHi: number,
    vaLo: number,
    pcid: number,
    keepGlobal: boolean,
  ): number {
    checkU32("linear address high half", vaHi);
    checkU32("linear address low half", vaLo);
    checkPcid(pcid);
    let n = 0;
    for (let c = 0; c < this.#nArrays; c++) {
      const ways = this.#ways[c];
      // walk the shift list backwards: dropping the last entry of a page
      // size removes that size from the list, shifting only later positions
      for (let k = this.#shiftLen[c] - 1; k >= 0; k--) {
        const s = this.#shiftList[c * MAX_SHIFTS + k];
        let vLo: number, vHi: number;
        if (s < 32) {
          vLo = ((vaLo >>> s) | (vaHi << (32 - s))) >>> 0;
          vHi = vaHi >>> s;
        } else {
          vLo = vaHi >>> (s - 32);
          vHi = 0;
        }
        const first = this.#off[c] + (vLo & this.#setMask[c]) * ways;
        for (let i = first; i < first + ways; i++) {
          if (
            this.#valid[i] === 1 && this.#tagLo[i] === vLo &&
            this.#tagHi[i] === vHi && this.#shift[i] === s
          ) {
            const g = this.#global[i] === 1;
            const drop = g ? !keepGlobal : this.#pcid[i] === pcid;
            if (drop) {
              this.#drop(i);
              n++;
            }
          }
        }
      }
    }
    return n;
  }

  /**
   * Drop every entry tagged with `pcid` (global ones too unless
   * `keepGlobal`). MOV to CR3 is `keepGlobal: true` (§4.10.4.1). Returns
   * the number dropped.
   */
  flushPcid(pcid: number, options: FlushOptions = {}): number {
    checkPcid(pcid);
    const keepGlobal = options.keepGlobal ?? false;
    this.#invPcid++;
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      if (
        this.#valid[i] === 1 && this.#pcid[i] === pcid &&
        !(keepGlobal && this.#global[i] === 1)
      ) {
        this.#drop(i);
        n++;
      }
    }
    return n;
  }

  /** Drop every entry (all PCIDs), global ones too unless `keepGlobal`. Returns the number dropped. */
  flushAll(options: FlushOptions = {}): number {
    const keepGlobal = options.keepGlobal ?? false;
    this.#invAll++;
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      if (this.#valid[i] === 1 && !(keepGlobal && this.#global[i] === 1)) {
        this.#drop(i);
        n++;
      }
    }
    return n;
  }

  /**
   * Drop every entry that would translate `vaHi:vaLo` for `pcid` — those
   * of `pcid` and global ones, at every page size — because an access to
   * it page-faulted (§4.10.4.1: a #PF invalidates the TLB entries for the
   * faulting page number, so a fault caused only by a stale entry does not
   * recur). Counted as a fault invalidation. Returns the number dropped.
   */
  invalidatePage(vaHi: number, vaLo: number, pcid: number): number {
    const n = this.#dropPage(vaHi, vaLo, pcid, false);
    this.#invFault++;
    return n;
  }

  /** Counters since creation or the last {@linkcode Tlb.resetCounters}. */
  get counters(): TlbCounters {
    return {
      hits: this.#hits,
      misses: this.#misses,
      fills: this.#fills,
      evictions: this.#evictions,
      invalidations: {
        address: this.#invAddress,
        pcid: this.#invPcid,
        all: this.#invAll,
        fault: this.#invFault,
      },
      dropped: this.#dropped,
    };
  }

  /** Zero the counters (entries are kept). */
  resetCounters(): void {
    this.#hits =
      this.#misses =
      this.#fills =
      this.#evictions =
        0;
    this.#invAddress =
      this.#invPcid =
      this.#invAll =
      this.#invFault =
        0;
    this.#dropped = 0;
  }

  /** The decoded entry in `slot`, or undefined if it is invalid. */
  entry(slot: number): TlbEntry | undefined {
    this.#checkSlot(slot);
    if (this.#valid[slot] !== 1) return undefined;
    const c = this.#arrayOfSlot(slot);
    const rel = slot - this.#off[c];
    const ways = this.#ways[c];
    const s = this.#shift[slot];
    const vLo = this.#tagLo[slot], vHi = this.#tagHi[slot];
    let hi: number, lo: number;
    if (s < 32) {
      lo = (vLo << s) >>> 0;
      hi = ((vHi << s) | (vLo >>> (32 - s))) >>> 0;
    } else {
      hi = (vLo << (s - 32)) >>> 0;
      lo = 0;
    }
    return {
      slot,
      sizeClass: this.#arrayInfo[c].sizeClass,
      set: Math.floor(rel / ways),
      way: rel % ways,
      va: new LinearAddress(hi, lo),
      pageSize: 2 ** s,
      level: this.#level[slot],
      pa: this.#frame[slot],
      pcid: this.#pcid[slot],
      global: this.#global[slot] === 1,
      rights: decodeRights(this.#rights[slot]),
      pkey: this.#pkey[slot],
      dirty: this.#dirty[slot] === 1,
      stamp: this.#stamp[slot],
    };
  }

  /** Every valid entry, in slot order. */
  entries(): TlbEntry[] {
    const out: TlbEntry[] = [];
    for (let i = 0; i < this.capacity; i++) {
      if (this.#valid[i] === 1) out.push(this.entry(i)!);
    }
    return out;
  }

  /** Plain-data picture for the views. */
  snapshot(): TlbSnapshot {
    return {
      name: this.name,
      replacement: this.replacement,
      arrays: this.#arrayInfo,
      capacity: this.capacity,
      entries: this.entries(),
      counters: this.counters,
    };
  }

  /** One-line summary. */
  toString(): string {
    const c = this.counters;
    const geo = this.#arrayInfo.map((a) =>
      `${a.sizeClass === "unified" ? "" : a.sizeClass + " "}${a.entries}×${
        a.ways === a.entries ? "full" : a.ways + "-way"
      }`
    ).join(", ");
    return `${this.name} (${geo}, ${this.replacement}): ${this.validCount}/${this.capacity} valid, ${c.hits} hits, ${c.misses} misses`;
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const s = this.snapshot();
    return { "text/plain": tlbToText(s), "text/html": tlbToHtml(s) };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return tlbToText(this.snapshot());
  }
}
