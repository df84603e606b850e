/**
 * A VPID/ASID-tagged TLB for a host running several VMs (Intel SDM Vol. 3
 * §28.4; AMD APM Vol. 2 §15.16 calls the tag an ASID).
 *
 * With EPT, SDM §28.4.1 distinguishes three kinds of cached mappings; this
 * model keeps the two that exist under EPT:
 *
 * - **combined mappings**: guest linear → host physical, tagged by VPID,
 *   PCID and EPTP (the whole 2-D walk's result); global translations
 *   (G = 1) match any PCID of their VPID (§4.10.2.4);
 * - **guest-physical mappings**: gpa → hpa, tagged by EPTP only (derived
 *   from the EPT alone; the nested TLB of Bhargava et al. 2008).
 *
 * (Linear mappings, used only with EPT off, are not modelled.)
 *
 * Because entries carry their VM's tags, a VM switch (VM entry with another
 * VPID and EPTP) needs **no flush** (§28.4.2): a lookup simply never
 * matches another VM's entries. Invalidation (SDM §28.4.3.1 and the
 * INVVPID / INVEPT instruction pages, Vol. 3C ch. 31):
 *
 * | operation | drops |
 * | --- | --- |
 * | INVVPID individual-address (0) | combined mappings of that VPID for that linear page, every PCID and EPTP, globals included |
 * | INVVPID single-context (1) | all combined mappings of that VPID (every EPTP) |
 * | INVVPID all-contexts (2) | combined mappings of every VPID except 0000H |
 * | INVVPID single-context-retaining-globals (3) | that VPID's combined mappings except global ones |
 * | INVEPT single-context (1) | guest-physical and combined mappings of that EPTP (every VPID, PCID) |
 * | INVEPT global (2) | all guest-physical and combined mappings |
 *
 * Guest operations (no VM exit under EPT): {@linkcode TaggedTlb.guestInvlpg}
 * drops the current VPID's mappings of one page (every EPTP, globals
 * too), {@linkcode TaggedTlb.guestCr3Load} its non-global mappings;
 * {@linkcode TaggedTlb.vmTransition} flushes VPID 0 on each VM entry and
 * exit when VPIDs are off. `NestedScheme` (lib/virt/nested) drives them.
 *
 * INVVPID never drops guest-physical mappings: they carry no VPID. The
 * manual allows an implementation to drop *more*; this model drops exactly
 * the minimum, so tests can check each scope precisely.
 *
 * Lookups and fills are allocation-free and BigInt-free (typed arrays,
 * set-associative, seeded random replacement, counters — as `tlb.ts`).
 *
 * @module
 */

import { escapeXml } from "../view/escape.ts";

/** Geometry of one array. */
export interface TaggedArrayOptions {
  /** Entries (a power of two, 1..65536). */
  entries?: number;
  /** Ways per set (a power of two dividing `entries`). */
  ways?: number;
}

/** Options for {@linkcode TaggedTlb}. */
export interface TaggedTlbOptions {
  /** Combined (gla → hpa) array. Default 64 entries, 4 ways. */
  combined?: TaggedArrayOptions;
  /** Guest-physical (gpa → hpa) array. Default 32 entries, 4 ways. */
  guestPhysical?: TaggedArrayOptions;
  /** Replacement seed. Default 1. */
  seed?: number;
}

/** INVVPID types (SDM Vol. 3C, INVVPID). */
export type InvvpidType =
  | "individual-address"
  | "single-context"
  | "all-contexts"
  | "single-context-retaining-globals";

/** INVEPT types (SDM Vol. 3C, INVEPT). */
export type InveptType = "single-context" | "global";

/** Counters of a {@linkcode TaggedTlb}. */
export interface TaggedTlbCounters {
  /** Combined lookups / hits. */
  readonly combinedLookups: number;
  /** Combined hits. */
  readonly combinedHits: number;
  /** Guest-physical lookups. */
  readonly gpaLookups: number;
  /** Guest-physical hits. */
  readonly gpaHits: number;
  /** Entries written. */
  readonly fills: number;
  /** Valid entries replaced. */
  readonly evictions: number;
  /** INVVPID operations. */
  readonly invvpid: number;
  /** INVEPT operations. */
  readonly invept: number;
  /** VM entries/exits that flushed (VPID 0 only, {@linkcode TaggedTlb.vmTransition}). */
  readonly transitionFlushes: number;
  /** Guest INVLPG and CR3 loads ({@linkcode TaggedTlb.guestInvlpg}, {@linkcode TaggedTlb.guestCr3Load}). */
  readonly guestInvalidations: number;
  /** Valid entries dropped by invalidations. */
  readonly dropped: number;
}

/** One valid entry as plain data (for displays and tests). */
export interface TaggedEntry {
  /** "combined" or "guest-physical". */
  readonly kind: "combined" | "guest-physical";
  /** VPID (combined only; else -1). */
  readonly vpid: number;
  /** PCID (combined only; else -1). */
  readonly pcid: number;
  /** EPTP (its root hpa). */
  readonly eptp: number;
  /** Page number: linear (combined) or guest-physical, as hex. */
  readonly page: string;
  /** Host frame address. */
  readonly hpa: number;
  /** Rights (3 bits, the owner's meaning). */
  readonly rights: number;
  /** Global translation (combined only). */
  readonly global: boolean;
}

/** A plain snapshot: geometry, counters and the valid entries. */
export interface TaggedTlbSnapshot {
  /** Combined array size. */
  readonly combinedEntries: number;
  /** Guest-physical array size. */
  readonly gpaEntries: number;
  /** Counters. */
  readonly counters: TaggedTlbCounters;
  /** Valid entries, combined first. */
  readonly entries: readonly TaggedEntry[];
}

class TagArray {
  readonly n: number;
  readonly ways: number;
  readonly sets: number;
  readonly valid: Uint8Array;
  readonly vpid: Uint16Array;
  readonly pcid: Uint16Array;
  readonly eptp: Float64Array;
  readonly pageHi: Uint32Array;
  readonly pageLo: Uint32Array;
  readonly hpa: Float64Array;
  readonly gpa: Float64Array;
  readonly rights: Uint8Array;
  readonly global: Uint8Array;
  constructor(name: string, o: TaggedArrayOptions, dn: number, dw: number) {
    const n = o.entries ?? dn;
    const ways = o.ways ?? Math.min(dw, n);
    const pow2 = (x: number) =>
      Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;
    if (!pow2(n) || n > 65536) {
      throw new RangeError(
        `${name}.entries ${
          String(n)
        } is invalid: expected a power of two in [1, 65536]`,
      );
    }
    if (!pow2(ways) || ways > n) {
      throw new RangeError(
        `${name}.ways ${
          String(ways)
        } is invalid: expected a power of two ≤ entries (${n})`,
      );
    }
    this.n = n;
    this.ways = ways;
    this.sets = n / ways;
    this.valid = new Uint8Array(n);
    this.vpid = new Uint16Array(n);
    this.pcid = new Uint16Array(n);
    this.eptp = new Float64Array(n);
    this.pageHi = new Uint32Array(n);
    this.pageLo = new Uint32Array(n);
    this.hpa = new Float64Array(n);
    this.gpa = new Float64Array(n);
    this.rights = new Uint8Array(n);
    this.global = new Uint8Array(n);
  }
  set(hi: number, lo: number): number {
    return (((lo >>> 12) ^ (hi << 8)) & (this.sets - 1)) * this.ways;
  }
}

function checkTag(name: string, v: number, bits: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw new RangeError(
      `${name} ${String(v)} is invalid: expected an integer in [0, ${
        2 ** bits - 1
      }]`,
    );
  }
  return v;
}

/**
 * A TLB holding combined (VPID, PCID, EPTP)-tagged gla → hpa entries and
 * EPTP-tagged gpa → hpa entries.
 *
 * @example Two VMs share the TLB without a flush on switch.
 * ```ts
 * import { TaggedTlb } from "./tagged.ts";
 * import assert from "node:assert/strict";
 * const tlb = new TaggedTlb();
 * tlb.fillCombined(1, 0, 0x10000, 0, 0x40_0000, 0x8000, 7, false); // VM 1
 * tlb.fillCombined(2, 0, 0x20000, 0, 0x40_0000, 0x9000, 7, false); // VM 2, same gla
 * const s1 = tlb.lookupCombined(1, 0, 0x10000, 0, 0x40_0123);
 * assert.equal(tlb.translateCombined(s1, 0x40_0123), 0x8123);
 * const s2 = tlb.lookupCombined(2, 0, 0x20000, 0, 0x40_0123);
 * assert.equal(tlb.translateCombined(s2, 0x40_0123), 0x9123);
 * assert.equal(tlb.lookupCombined(2, 0, 0x10000, 0, 0x40_0123), -1); // VPID 2 never sees EPTP 1's entry
 * assert.equal(tlb.invvpid("single-context", 1), 1);
 * assert.equal(tlb.lookupCombined(1, 0, 0x10000, 0, 0x40_0123), -1);
 * assert.notEqual(tlb.lookupCombined(2, 0, 0x20000, 0, 0x40_0123), -1);
 * ```
 */
export class TaggedTlb {
  #c: TagArray;
  #g: TagArray;
  #rng: number;
  #cLookups = 0;
  #cHits = 0;
  #gLookups = 0;
  #gHits = 0;
  #fills = 0;
  #evictions = 0;
  #invvpid = 0;
  #invept = 0;
  #guestOps = 0;
  #transitionFlushes = 0;
  #dropped = 0;

  /** Create an empty TLB; validates loudly. */
  constructor(options: TaggedTlbOptions = {}) {
    this.#c = new TagArray("combined", options.combined ?? {}, 64, 4);
    this.#g = new TagArray("guestPhysical", options.guestPhysical ?? {}, 32, 4);
    const seed = options.seed ?? 1;
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`seed ${String(seed)} is not a safe integer`);
    }
    this.#rng = (seed ^ 0x9e3779b9) >>> 0 || 1;
  }

  #victim(a: TagArray, base: number): number {
    for (let i = base; i < base + a.ways; i++) if (a.valid[i] === 0) return i;
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0;
    this.#evictions++;
    return base + (this.#rng & (a.ways - 1));
  }

  /**
   * Combined lookup (SDM §28.4.2): an entry matches with the current VPID
   * and EPTP and either the current PCID or G = 1. Returns the slot or -1.
   */
  lookupCombined(
    vpid: number,
    pcid: number,
    eptp: number,
    vaHi: number,
    vaLo: number,
  ): number {
    this.#cLookups++;
    const a = this.#c;
    const lo = (vaLo & 0xfffff000) >>> 0, hi = vaHi >>> 0;
    const base = a.set(hi, lo);
    for (let i = base; i < base + a.ways; i++) {
      if (
        a.valid[i] === 1 && a.pageLo[i] === lo && a.pageHi[i] === hi &&
        a.vpid[i] === vpid && a.eptp[i] === eptp &&
        (a.pcid[i] === pcid || a.global[i] === 1)
      ) {
        this.#cHits++;
        return i;
      }
    }
    return -1;
  }

  /** The hpa a combined slot gives for `vaLo`'s page offset. */
  translateCombined(slot: number, vaLo: number): number {
    return this.#c.hpa[slot] + (vaLo & 0xfff);
  }

  /** Rights of a combined slot. */
  rightsCombined(slot: number): number {
    return this.#c.rights[slot];
  }

  /**
   * The gpa a combined slot gives for `vaLo`'s page offset (the
   * intermediate address of the 2-D walk, kept for records), or -1 when
   * the fill gave none.
   */
  gpaCombined(slot: number, vaLo: number): number {
    const g = this.#c.gpa[slot];
    return g < 0 ? -1 : g + (vaLo & 0xfff);
  }

  /**
   * Cache a combined (4 KiB) translation; `hpa` (and `gpa`, if known) are
   * the frame addresses.
   */
  fillCombined(
    vpid: number,
    pcid: number,
    eptp: number,
    vaHi: number,
    vaLo: number,
    hpa: number,
    rights: number,
    global: boolean,
    gpa = -1,
  ): void {
    checkTag("VPID", vpid, 16);
    checkTag("PCID", pcid, 12);
    this.#fills++;
    const a = this.#c;
    const lo = (vaLo & 0xfffff000) >>> 0, hi = vaHi >>> 0;
    const base = a.set(hi, lo);
    let slot = -1;
    for (let i = base; i < base + a.ways; i++) {
      if (
        a.valid[i] === 1 && a.pageLo[i] === lo && a.pageHi[i] === hi &&
        a.vpid[i] === vpid && a.pcid[i] === pcid && a.eptp[i] === eptp
      ) slot = i;
    }
    if (slot < 0) slot = this.#victim(a, base);
    a.valid[slot] = 1;
    a.vpid[slot] = vpid;
    a.pcid[slot] = pcid;
    a.eptp[slot] = eptp;
    a.pageHi[slot] = hi;
    a.pageLo[slot] = lo;
    a.hpa[slot] = hpa - (hpa % 4096);
    a.gpa[slot] = gpa < 0 ? -1 : gpa - (gpa % 4096);
    a.rights[slot] = rights & 7;
    a.global[slot] = global ? 1 : 0;
  }

  /** Guest-physical lookup (tagged by EPTP only). Returns the slot or -1. */
  lookupGpa(eptp: number, gpa: number): number {
    this.#gLookups++;
    const a = this.#g;
    const hi = Math.floor(gpa / 4294967296) >>> 0;
    const lo = (gpa & 0xfffff000) >>> 0;
    const base = a.set(hi, lo);
    for (let i = base; i < base + a.ways; i++) {
      if (
        a.valid[i] === 1 && a.pageLo[i] === lo && a.pageHi[i] === hi &&
        a.eptp[i] === eptp
      ) {
        this.#gHits++;
        return i;
      }
    }
    return -1;
  }

  /** The hpa a guest-physical slot gives for `gpa`. */
  translateGpa(slot: number, gpa: number): number {
    return this.#g.hpa[slot] + (gpa % 4096);
  }

  /** Cache a guest-physical (4 KiB) mapping. */
  fillGpa(eptp: number, gpa: number, hpa: number, rights: number): void {
    this.#fills++;
    const a = this.#g;
    const hi = Math.floor(gpa / 4294967296) >>> 0;
    const lo = (gpa & 0xfffff000) >>> 0;
    const base = a.set(hi, lo);
    let slot = -1;
    for (let i = base; i < base + a.ways; i++) {
      if (
        a.valid[i] === 1 && a.pageLo[i] === lo && a.pageHi[i] === hi &&
        a.eptp[i] === eptp
      ) slot = i;
    }
    if (slot < 0) slot = this.#victim(a, base);
    a.valid[slot] = 1;
    a.vpid[slot] = 0;
    a.pcid[slot] = 0;
    a.eptp[slot] = eptp;
    a.pageHi[slot] = hi;
    a.pageLo[slot] = lo;
    a.hpa[slot] = hpa - (hpa % 4096);
    a.rights[slot] = rights & 7;
    a.global[slot] = 0;
  }

  #drop(a: TagArray, pred: (i: number) => boolean): number {
    let n = 0;
    for (let i = 0; i < a.n; i++) {
      if (a.valid[i] === 1 && pred(i)) {
        a.valid[i] = 0;
        n++;
      }
    }
    this.#dropped += n;
    return n;
  }

  /**
   * INVVPID (SDM Vol. 3C INVVPID; §28.4.3.1): drops combined mappings only
   * (guest-physical ones carry no VPID). `vaHi:vaLo` is needed for
   * "individual-address". Returns the entries dropped.
   */
  invvpid(type: InvvpidType, vpid: number, vaHi = 0, vaLo = 0): number {
    checkTag("VPID", vpid, 16);
    this.#invvpid++;
    const a = this.#c;
    switch (type) {
      case "individual-address": {
        // every PCID and EPTP, globals included
        const lo = (vaLo & 0xfffff000) >>> 0, hi = vaHi >>> 0;
        return this.#drop(
          a,
          (i) => a.vpid[i] === vpid && a.pageLo[i] === lo && a.pageHi[i] === hi,
        );
      }
      case "single-context":
        return this.#drop(a, (i) => a.vpid[i] === vpid);
      case "all-contexts":
        // "all VPIDs except VPID 0000H" (the host's own tag)
        return this.#drop(a, (i) => a.vpid[i] !== 0);
      case "single-context-retaining-globals":
        return this.#drop(a, (i) => a.vpid[i] === vpid && a.global[i] === 0);
      default:
        throw new RangeError(`INVVPID type "${String(type)}" is invalid`);
    }
  }

  /**
   * A guest INVLPG (no VM exit under EPT; SDM §28.4.3.1): operations that
   * invalidate TLB entries architecturally drop the combined mappings of
   * the *current* VPID only, but for every EPTP; INVLPG drops the page's
   * mappings whatever their PCID, globals included. (The same scope as
   * INVVPID individual-address, counted as a guest operation.) Returns
   * the entries dropped.
   *
   * @example
   * ```ts
   * import { TaggedTlb } from "./tagged.ts";
   * import assert from "node:assert/strict";
   * const tlb = new TaggedTlb();
   * tlb.fillCombined(1, 0, 0x1000, 0, 0x40_0000, 0x8000, 7, true);
   * tlb.fillCombined(2, 0, 0x2000, 0, 0x40_0000, 0x9000, 7, false);
   * assert.equal(tlb.guestInvlpg(1, 0, 0x40_0abc), 1); // VM 2's entry stays
   * assert.equal(tlb.lookupCombined(2, 0, 0x2000, 0, 0x40_0000) >= 0, true);
   * ```
   */
  guestInvlpg(vpid: number, vaHi: number, vaLo: number): number {
    checkTag("VPID", vpid, 16);
    this.#guestOps++;
    const a = this.#c;
    const lo = (vaLo & 0xfffff000) >>> 0, hi = vaHi >>> 0;
    let n = 0;
    for (let i = 0; i < a.n; i++) {
      if (
        a.valid[i] === 1 && a.vpid[i] === vpid && a.pageLo[i] === lo &&
        a.pageHi[i] === hi
      ) {
        a.valid[i] = 0;
        n++;
      }
    }
    this.#dropped += n;
    return n;
  }

  /**
   * A guest MOV to CR3 with CR4.PCIDE = 0 (SDM §4.10.4.1, §28.4.3.1): drops
   * the current VPID's combined mappings for PCID `pcid` (every EPTP)
   * except global ones. Returns the entries dropped.
   *
   * @example
   * ```ts
   * import { TaggedTlb } from "./tagged.ts";
   * import assert from "node:assert/strict";
   * const tlb = new TaggedTlb();
   * tlb.fillCombined(1, 0, 0x1000, 0, 0x40_0000, 0x8000, 7, true);  // global
   * tlb.fillCombined(1, 0, 0x1000, 0, 0x50_0000, 0x9000, 7, false);
   * tlb.fillCombined(2, 0, 0x2000, 0, 0x50_0000, 0xa000, 7, false); // another VM
   * assert.equal(tlb.guestCr3Load(1), 1);
   * assert.equal(tlb.entries().length, 2);
   * ```
   */
  guestCr3Load(vpid: number, pcid = 0): number {
    checkTag("VPID", vpid, 16);
    checkTag("PCID", pcid, 12);
    this.#guestOps++;
    const a = this.#c;
    let n = 0;
    for (let i = 0; i < a.n; i++) {
      if (
        a.valid[i] === 1 && a.vpid[i] === vpid && a.pcid[i] === pcid &&
        a.global[i] === 0
      ) {
        a.valid[i] = 0;
        n++;
      }
    }
    this.#dropped += n;
    return n;
  }

  /**
   * A VM entry or exit of a vCPU tagged `vpid`. With the "enable VPID"
   * control set (`vpid` ≠ 0) it drops nothing: that is the point of the
   * tags. With it clear (`vpid` 0), SDM §28.4.3.1: VM entries and exits
   * drop the combined mappings of VPID 0000H for every EPTP. Returns the
   * entries dropped.
   *
   * @example
   * ```ts
   * import { TaggedTlb } from "./tagged.ts";
   * import assert from "node:assert/strict";
   * const tlb = new TaggedTlb();
   * tlb.fillCombined(1, 0, 0x1000, 0, 0x40_0000, 0x8000, 7, false);
   * tlb.fillCombined(0, 0, 0x2000, 0, 0x40_0000, 0x9000, 7, false);
   * assert.equal(tlb.vmTransition(1), 0);
   * assert.equal(tlb.vmTransition(0), 1);
   * assert.equal(tlb.counters.transitionFlushes, 1);
   * ```
   */
  vmTransition(vpid: number): number {
    checkTag("VPID", vpid, 16);
    if (vpid !== 0) return 0;
    this.#transitionFlushes++;
    const a = this.#c;
    let n = 0;
    for (let i = 0; i < a.n; i++) {
      if (a.valid[i] === 1 && a.vpid[i] === 0) {
        a.valid[i] = 0;
        n++;
      }
    }
    this.#dropped += n;
    return n;
  }

  /**
   * INVEPT (SDM Vol. 3C INVEPT; §28.4.3.1): "single-context" drops the
   * guest-physical and combined mappings of `eptp` (every VPID and PCID);
   * "global" drops them for every EPTP. Returns the entries dropped.
   */
  invept(type: InveptType, eptp = 0): number {
    this.#invept++;
    if (type === "global") {
      return this.#drop(this.#g, () => true) + this.#drop(this.#c, () => true);
    }
    if (type !== "single-context") {
      throw new RangeError(`INVEPT type "${String(type)}" is invalid`);
    }
    const g = this.#g, c = this.#c;
    return this.#drop(g, (i) => g.eptp[i] === eptp) +
      this.#drop(c, (i) => c.eptp[i] === eptp);
  }

  /** The counters as plain data. */
  get counters(): TaggedTlbCounters {
    return {
      combinedLookups: this.#cLookups,
      combinedHits: this.#cHits,
      gpaLookups: this.#gLookups,
      gpaHits: this.#gHits,
      fills: this.#fills,
      evictions: this.#evictions,
      invvpid: this.#invvpid,
      invept: this.#invept,
      guestInvalidations: this.#guestOps,
      transitionFlushes: this.#transitionFlushes,
      dropped: this.#dropped,
    };
  }

  /** Valid entries as plain data, combined first. */
  entries(): TaggedEntry[] {
    const out: TaggedEntry[] = [];
    for (
      const [kind, a] of [["combined", this.#c], [
        "guest-physical",
        this.#g,
      ]] as const
    ) {
      for (let i = 0; i < a.n; i++) {
        if (a.valid[i] === 0) continue;
        const c = kind === "combined";
        out.push({
          kind,
          vpid: c ? a.vpid[i] : -1,
          pcid: c ? a.pcid[i] : -1,
          eptp: a.eptp[i],
          page: "0x" + (a.pageHi[i] === 0 ? "" : a.pageHi[i].toString(16) +
            "_") +
            a.pageLo[i].toString(16).padStart(8, "0"),
          hpa: a.hpa[i],
          rights: a.rights[i],
          global: c && a.global[i] === 1,
        });
      }
    }
    return out;
  }

  /** A plain snapshot. */
  snapshot(): TaggedTlbSnapshot {
    return {
      combinedEntries: this.#c.n,
      gpaEntries: this.#g.n,
      counters: this.counters,
      entries: this.entries(),
    };
  }

  /** Jupyter rich display (via {@linkcode taggedTlbDisplay}). */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return taggedTlbDisplay(this.snapshot());
  }

  /** `deno repl` display. */
  [Symbol.for("Deno.customInspect")](): string {
    return taggedTlbDisplay(this.snapshot())["text/plain"];
  }
}

const hx = (a: number) => "0x" + a.toString(16);

/**
 * A MIME bundle (text/plain, text/html) for a snapshot: a pure view, at most
 * `limit` entries listed (the rest counted).
 *
 * @example
 * ```ts
 * import { TaggedTlb, taggedTlbDisplay } from "./tagged.ts";
 * import assert from "node:assert/strict";
 * const t = new TaggedTlb();
 * t.fillCombined(3, 1, 0x5000, 0, 0x1000, 0x7000, 5, true);
 * t.fillGpa(0x5000, 0x2000, 0x9000, 7);
 * const d = taggedTlbDisplay(t.snapshot());
 * assert.match(d["text/plain"], /VPID 3 PCID 1 EPTP 0x5000 .* global/);
 * assert.match(d["text/html"], /<table/);
 * ```
 */
export function taggedTlbDisplay(
  s: TaggedTlbSnapshot,
  limit = 32,
): Record<string, string> {
  const c = s.counters;
  const head =
    `tagged TLB: ${s.combinedEntries} combined + ${s.gpaEntries} guest-physical entries; ` +
    `combined ${c.combinedHits}/${c.combinedLookups} hits, guest-physical ${c.gpaHits}/${c.gpaLookups}; ` +
    `INVVPID ${c.invvpid}, INVEPT ${c.invept}, dropped ${c.dropped}`;
  const shown = s.entries.slice(0, limit);
  const line = (e: TaggedEntry) =>
    e.kind === "combined"
      ? `VPID ${e.vpid} PCID ${e.pcid} EPTP ${hx(e.eptp)} gla ${e.page} → hpa ${
        hx(e.hpa)
      } rights ${e.rights}${e.global ? " global" : ""}`
      : `EPTP ${hx(e.eptp)} gpa ${e.page} → hpa ${
        hx(e.hpa)
      } rights ${e.rights}`;
  const more = s.entries.length > limit
    ? [`… ${s.entries.length - limit} more entries not shown`]
    : [];
  const rows = shown.map((e) =>
    `<tr><td>${escapeXml(e.kind)}</td><td>${e.vpid < 0 ? "" : e.vpid}</td><td>${
      e.pcid < 0 ? "" : e.pcid
    }</td><td>${escapeXml(hx(e.eptp))}</td><td>${escapeXml(e.page)}</td><td>${
      escapeXml(hx(e.hpa))
    }</td><td>${e.rights}</td><td>${e.global ? "G" : ""}</td></tr>`
  ).join("");
  return {
    "text/plain": [head, ...shown.map(line), ...more].join("\n"),
    "text/html": `<div><p>${escapeXml(head)}</p><table><thead><tr>` +
      "<th>kind</th><th>VPID</th><th>PCID</th><th>EPTP</th><th>page</th><th>hpa</th><th>rights</th><th>G</th>" +
      `</tr></thead><tbody>${rows}</tbody></table>${
        more.length > 0 ? `<p>${escapeXml(more[0])}</p>` : ""
      }</div>`,
  };
}
