/**
 * Paging-structure caches (Intel SDM Vol. 3 §4.10.3): one small cache per
 * non-leaf level, so that a TLB miss need not start the walk at the root.
 *
 * An entry of the level-L cache (PML5E, PML4E, PDPTE or PDE cache for
 * L = 5, 4, 3, 2) is keyed by the linear-address bits that select the
 * level-L entry — every bit above that level's shift: 56:48 for a PML5E,
 * 47:39 for a PML4E, 47:30 for a PDPTE, 47:21 for a PDE (31:22 with
 * 32-bit paging) — plus the PCID (§4.10.3.1). It holds the physical address
 * of the table the entry points to and the rights ANDed down to and
 * including that entry. A hit in the level-L cache lets the walk resume at
 * level L − 1; lookups try the PDE cache first (§4.10.3.2: the processor
 * uses the cache that skips the most levels).
 *
 * Entries are created only for entries a successful walk used as table
 * pointers: present, no reserved bit set, PS = 0 (§4.10.3.1). There are no
 * global PSC entries. With PAE paging there is no PDPTE cache: the four
 * PDPTEs live in registers loaded at MOV to CR3 (§4.4.1, §4.10.3.1).
 *
 * Each cache is fully associative with LRU replacement; size 0 disables a
 * level. Lookups and fills allocate nothing.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { decodeRights, type Rights } from "../paging/record.ts";
import type { PagingMode } from "../paging/mode.ts";
import { WALK_OK, type WalkScratch } from "../paging/walker.ts";
import { checkPcid } from "./tlb.ts";
import { pscToHtml, pscToText } from "../view/tlb_html.ts";

/** Entries per level cache (0 disables the level). */
export interface PscOptions {
  /** PDE cache (level 2). Default 32. */
  pde?: number;
  /** PDPTE cache (level 3). Default 4. */
  pdpte?: number;
  /** PML4E cache (level 4). Default 2. */
  pml4e?: number;
  /** PML5E cache (level 5). Default 2. */
  pml5e?: number;
  /** Name shown in displays. Default "paging-structure caches". */
  name?: string;
}

/**
 * Names of the level caches, indexed by the level of the cached entry.
 *
 * @example
 * ```ts
 * import { PSC_NAMES } from "./psc.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PSC_NAMES[2], "PDE cache");
 * assert.equal(PSC_NAMES[4], "PML4E cache");
 * ```
 */
export const PSC_NAMES: readonly string[] = Object.freeze([
  "",
  "",
  "PDE cache",
  "PDPTE cache",
  "PML4E cache",
  "PML5E cache",
]);

/** Lowest and highest level that has a cache. */
const MIN_LEVEL = 2, MAX_LEVEL = 5;

/** Counters of a {@linkcode PagingStructureCache}. */
export interface PscCounters {
  /** Hits by the level of the entry that hit (index 2..5). */
  readonly hits: readonly number[];
  /** Lookups that found nothing. */
  readonly misses: number;
  /** Entries written. */
  readonly fills: number;
  /** Valid entries replaced to make room. */
  readonly evictions: number;
  /** Invalidation operations: by address, by PCID, everything. */
  readonly invalidations: {
    /** By address (page faults, INVPCID type 0). */
    readonly address: number;
    /** By PCID (INVLPG, MOV to CR3, INVPCID type 1). */
    readonly pcid: number;
    /** Everything. */
    readonly all: number;
  };
  /** Valid entries dropped by invalidations. */
  readonly dropped: number;
}

/** One valid PSC entry, decoded. */
export interface PscEntry {
  /** Level of the cached paging-structure entry (2 = PDE). */
  readonly level: number;
  /** Cache name, e.g. "PDE cache". */
  readonly cache: string;
  /** Slot within that cache. */
  readonly slot: number;
  /** First linear address the entry covers (key × 2^shift). */
  readonly va: LinearAddress;
  /** The linear-address shift of the key. */
  readonly shift: number;
  /** PCID. */
  readonly pcid: number;
  /** Physical address of the next table (level − 1). */
  readonly table: number;
  /** Rights ANDed down to this entry. */
  readonly rights: Rights;
  /** LRU stamp. */
  readonly stamp: number;
}

/** Plain-data picture for the views. */
export interface PscSnapshot {
  /** Name. */
  readonly name: string;
  /** Entries per level (index 2..5). */
  readonly sizes: readonly number[];
  /** Valid entries, PDE cache first. */
  readonly entries: readonly PscEntry[];
  /** Counters. */
  readonly counters: PscCounters;
}

function checkSize(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 4096) {
    throw new RangeError(
      `${what} size ${String(n)} is invalid: expected an integer in [0, 4096]`,
    );
  }
  return n;
}

/**
 * The paging-structure caches of one logical processor.
 *
 * @example A PDE-cache hit lets the next walk start at the page table.
 * ```ts
 * import { PagingStructureCache } from "./psc.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { walkInto, WalkScratch, WALK_OK } from "../paging/walker.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
 * pt.map(0x40_0000, 0x9000);
 * pt.map(0x40_1000, 0xa000);
 * const s = new WalkScratch();
 * walkInto(s, pt.mode, pt.memory, pt.root, 0, 0x40_0000, 0);
 * const psc = new PagingStructureCache();
 * assert.equal(psc.fill(s, 0, 0x40_0000, 0, pt.mode), 3); // PML4E, PDPTE, PDE
 * assert.equal(psc.lookup(0, 0x40_1000, 0, pt.mode), 2);  // PDE cache hit
 * const r = walkInto(s, pt.mode, pt.memory, pt.root, 0, 0x40_1000, 0, 0, 1, psc.lastTable, psc.lastRights);
 * assert.equal(r, WALK_OK);
 * assert.equal(s.steps, 1); // only the PTE was read
 * assert.equal(s.pa, 0xa000);
 * assert.equal(psc.lookup(0, 0x40_1000, 5, pt.mode), 0); // other PCID: miss
 * ```
 */
export class PagingStructureCache {
  /** Display name. */
  readonly name: string;
  /** Entries per level (index 2..5; 0 = disabled). */
  readonly sizes: readonly number[];
  #off = new Int32Array(MAX_LEVEL + 1);
  #size = new Int32Array(MAX_LEVEL + 1);
  #valid: Uint8Array;
  #pcid: Uint16Array;
  #keyHi: Uint32Array;
  #keyLo: Uint32Array;
  #shift: Uint8Array;
  #table: Float64Array;
  #rights: Uint8Array;
  #stamp: Float64Array;
  #clock = 0;
  #lastTable = 0;
  #lastRights = 0;
  #hits = new Float64Array(MAX_LEVEL + 1);
  #misses = 0;
  #fills = 0;
  #evictions = 0;
  #invAddress = 0;
  #invPcid = 0;
  #invAll = 0;
  #dropped = 0;

  /** Create empty caches. Throws `RangeError` for a bad size. */
  constructor(options: PscOptions = {}) {
    this.name = options.name ?? "paging-structure caches";
    const sizes = [
      0,
      0,
      checkSize("PDE cache", options.pde ?? 32),
      checkSize("PDPTE cache", options.pdpte ?? 4),
      checkSize("PML4E cache", options.pml4e ?? 2),
      checkSize("PML5E cache", options.pml5e ?? 2),
    ];
    this.sizes = Object.freeze(sizes);
    let total = 0;
    for (let l = MIN_LEVEL; l <= MAX_LEVEL; l++) {
      this.#off[l] = total;
      this.#size[l] = sizes[l];
      total += sizes[l];
    }
    this.#valid = new Uint8Array(total);
    this.#pcid = new Uint16Array(total);
    this.#keyHi = new Uint32Array(total);
    this.#keyLo = new Uint32Array(total);
    this.#shift = new Uint8Array(total);
    this.#table = new Float64Array(total);
    this.#rights = new Uint8Array(total);
    this.#stamp = new Float64Array(total);
  }

  /** Table address of the last hit: where the resumed walk reads next. */
  get lastTable(): number {
    return this.#lastTable;
  }

  /** Rights of the last hit: the walk's `startRights`. */
  get lastRights(): number {
    return this.#lastRights;
  }

  /**
   * Find the lowest level whose cache holds an entry for `vaHi:vaLo` and
   * `pcid` under `mode` (PDE cache first). Returns that level (the walk
   * resumes at `level − 1` with {@linkcode PagingStructureCache.lastTable}
   * and {@linkcode PagingStructureCache.lastRights}), or 0 on a miss.
   * Hot path: arguments are not validated.
   */
  lookup(vaHi: number, vaLo: number, pcid: number, mode: PagingMode): number {
    const f = mode.format;
    const top = Math.min(
      f.levels.length - (f.pdpteRegisters ? 1 : 0),
      MAX_LEVEL,
    );
    const shiftT = mode.tables.shift;
    for (let level = MIN_LEVEL; level <= top; level++) {
      const n = this.#size[level];
      if (n === 0) continue;
      const s = shiftT[level];
      let kLo: number, kHi: number;
      if (s < 32) {
        kLo = ((vaLo >>> s) | (vaHi << (32 - s))) >>> 0;
        kHi = vaHi >>> s;
      } else {
        kLo = vaHi >>> (s - 32);
        kHi = 0;
      }
      const first = this.#off[level];
      for (let i = first; i < first + n; i++) {
        if (
          this.#valid[i] === 1 && this.#keyLo[i] === kLo &&
          this.#keyHi[i] === kHi && this.#pcid[i] === pcid &&
          this.#shift[i] === s
        ) {
          this.#stamp[i] = ++this.#clock;
          this.#lastTable = this.#table[i];
          this.#lastRights = this.#rights[i];
          this.#hits[level]++;
          return level;
        }
      }
    }
    this.#misses++;
    return 0;
  }

  /**
   * Cache every table pointer a successful walk (`s.outcome === WALK_OK`)
   * of `vaHi:vaLo` under `pcid` and `mode` used: each step but the leaf
   * (present, no reserved bits, PS = 0 — or the walk would not have gone
   * on). PAE's level-3 step is skipped (PDPTE registers). Returns the number
   * of entries written.
   */
  fill(
    s: WalkScratch,
    vaHi: number,
    vaLo: number,
    pcid: number,
    mode: PagingMode,
  ): number {
    if (s.outcome !== WALK_OK) {
      throw new RangeError(
        `cannot fill paging-structure caches from a walk with outcome ${s.outcome}: expected a successful walk (WALK_OK)`,
      );
    }
    checkPcid(pcid);
    const f = mode.format;
    const n = f.levels.length;
    let written = 0;
    for (let i = 0; i < s.steps - 1; i++) {
      const level = s.level[i];
      if (level < MIN_LEVEL || level > MAX_LEVEL) continue;
      if (f.pdpteRegisters && level === n) continue;
      const size = this.#size[level];
      if (size === 0) continue;
      const sh = mode.tables.shift[level];
      let kLo: number, kHi: number;
      if (sh < 32) {
        kLo = ((vaLo >>> sh) | (vaHi << (32 - sh))) >>> 0;
        kHi = vaHi >>> sh;
      } else {
        kLo = vaHi >>> (sh - 32);
        kHi = 0;
      }
      const first = this.#off[level];
      let victim = -1;
      for (let j = first; j < first + size; j++) {
        if (
          this.#valid[j] === 1 && this.#keyLo[j] === kLo &&
          this.#keyHi[j] === kHi && this.#pcid[j] === pcid &&
          this.#shift[j] === sh
        ) {
          victim = j;
          break;
        }
      }
      if (victim < 0) {
        for (let j = first; j < first + size; j++) {
          if (this.#valid[j] === 0) {
            victim = j;
            break;
          }
        }
      }
      if (victim < 0) {
        victim = first;
        for (let j = first + 1; j < first + size; j++) {
          if (this.#stamp[j] < this.#stamp[victim]) victim = j;
        }
        this.#evictions++;
      }
      this.#valid[victim] = 1;
      this.#pcid[victim] = pcid;
      this.#keyLo[victim] = kLo;
      this.#keyHi[victim] = kHi;
      this.#shift[victim] = sh;
      this.#table[victim] = s.base[i + 1];
      this.#rights[victim] = s.rights[i];
      this.#stamp[victim] = ++this.#clock;
      this.#fills++;
      written++;
    }
    return written;
  }

  #drop(i: number): void {
    this.#valid[i] = 0;
    this.#dropped++;
  }

  /**
   * INVLPG's effect on these caches (§4.10.4.1): every entry of `pcid`,
   * *whatever linear address it is for*. Returns the number dropped.
   */
  invlpg(pcid: number): number {
    return this.flushPcid(pcid);
  }

  /**
   * Drop the entries of `pcid` that would be used to translate `vaHi:vaLo`
   * (a page fault, §4.10.4.1; INVPCID type 0). Returns the number dropped.
   * Allocation-free.
   */
  invalidateAddress(vaHi: number, vaLo: number, pcid: number): number {
    checkPcid(pcid);
    if (!Number.isInteger(vaHi) || vaHi < 0 || vaHi > 0xffffffff) {
      throw new RangeError(
        `linear address high half ${
          String(vaHi)
        } is invalid: expected an unsigned 32-bit integer`,
      );
    }
    if (!Number.isInteger(vaLo) || vaLo < 0 || vaLo > 0xffffffff) {
      throw new RangeError(
        `linear address low half ${
          String(vaLo)
        } is invalid: expected an unsigned 32-bit integer`,
      );
    }
    this.#invAddress++;
    let n = 0;
    for (let i = 0; i < this.#valid.length; i++) {
      if (this.#valid[i] !== 1 || this.#pcid[i] !== pcid) continue;
      const s = this.#shift[i];
      const kLo = s < 32
        ? ((vaLo >>> s) | (vaHi << (32 - s))) >>> 0
        : vaHi >>> (s - 32);
      const kHi = s < 32 ? vaHi >>> s : 0;
      if (this.#keyLo[i] === kLo && this.#keyHi[i] === kHi) {
        this.#drop(i);
        n++;
      }
    }
    return n;
  }

  /** Drop every entry of `pcid`. Returns the number dropped. */
  flushPcid(pcid: number): number {
    checkPcid(pcid);
    this.#invPcid++;
    let n = 0;
    for (let i = 0; i < this.#valid.length; i++) {
      if (this.#valid[i] === 1 && this.#pcid[i] === pcid) {
        this.#drop(i);
        n++;
      }
    }
    return n;
  }

  /** Drop every entry. Returns the number dropped. */
  flushAll(): number {
    this.#invAll++;
    let n = 0;
    for (let i = 0; i < this.#valid.length; i++) {
      if (this.#valid[i] === 1) {
        this.#drop(i);
        n++;
      }
    }
    return n;
  }

  /** Number of valid entries. */
  get validCount(): number {
    let n = 0;
    for (let i = 0; i < this.#valid.length; i++) n += this.#valid[i];
    return n;
  }

  /** Counters since creation or the last reset. */
  get counters(): PscCounters {
    return {
      hits: Array.from(this.#hits),
      misses: this.#misses,
      fills: this.#fills,
      evictions: this.#evictions,
      invalidations: {
        address: this.#invAddress,
        pcid: this.#invPcid,
        all: this.#invAll,
      },
      dropped: this.#dropped,
    };
  }

  /** Zero the counters (entries are kept). */
  resetCounters(): void {
    this.#hits.fill(0);
    this.#misses = this.#fills = this.#evictions = 0;
    this.#invAddress =
      this.#invPcid =
      this.#invAll =
      this.#dropped =
        0;
  }

  /** Every valid entry, PDE cache first. */
  entries(): PscEntry[] {
    const out: PscEntry[] = [];
    for (let level = MIN_LEVEL; level <= MAX_LEVEL; level++) {
      const first = this.#off[level];
      for (let i = first; i < first + this.#size[level]; i++) {
        if (this.#valid[i] !== 1) continue;
        const s = this.#shift[i];
        const kLo = this.#keyLo[i], kHi = this.#keyHi[i];
        const lo = s < 32 ? (kLo << s) >>> 0 : 0;
        const hi = s < 32
          ? ((kHi << s) | (kLo >>> (32 - s))) >>> 0
          : (kLo << (s - 32)) >>> 0;
        out.push({
          level,
          cache: PSC_NAMES[level],
          slot: i - first,
          va: new LinearAddress(hi, lo),
          shift: s,
          pcid: this.#pcid[i],
          table: this.#table[i],
          rights: decodeRights(this.#rights[i]),
          stamp: this.#stamp[i],
        });
      }
    }
    return out;
  }

  /** Plain-data picture for the views. */
  snapshot(): PscSnapshot {
    return {
      name: this.name,
      sizes: this.sizes,
      entries: this.entries(),
      counters: this.counters,
    };
  }

  /** One-line summary. */
  toString(): string {
    const parts = [];
    for (let l = MIN_LEVEL; l <= MAX_LEVEL; l++) {
      if (this.sizes[l] > 0) parts.push(`${PSC_NAMES[l]} ${this.sizes[l]}`);
    }
    return `${this.name} (${
      parts.join(", ") || "all disabled"
    }): ${this.validCount} valid`;
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const s = this.snapshot();
    return { "text/plain": pscToText(s), "text/html": pscToHtml(s) };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return pscToText(this.snapshot());
  }
}
