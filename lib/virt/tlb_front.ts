/**
 * A TLB in front of an {@linkcode MmuScheme}: the wrapper that makes TLB
 * hit rates and walk counts mean something in experiments.
 *
 * The schemes themselves have no TLB on their access path (the reference
 * walks on every access; shadow paging walks the shadow on every access;
 * nested paging makes the 2-D walk on every access). {@linkcode TlbFront}
 * caches what a successful access translated, in a {@linkcode Tlb}, and
 * serves later accesses to the page from it without asking the scheme —
 * as the CPU does. Everything else goes to the wrapped scheme, which then
 * walks, takes its exits and counts its events as before, so its counters
 * now count TLB misses only.
 *
 * Architectural rules kept (Intel SDM Vol. 3 §4.10):
 * - entries are created only from successful translations (§4.10.2.1), with
 *   the rights combined along the guest walk, the leaf's dirty flag and G;
 * - MOV to CR3 drops every non-global entry (every entry unless the
 *   `global` option is on: see {@linkcode TlbFrontOptions.global}); INVLPG drops the page's
 *   entries, global ones too (§4.10.4.1); a #PF drops the faulting page's
 *   entries (§4.10.4.1);
 * - a hit re-checks the cached rights against the access (`checkRights`:
 *   the TLB caches rights, not verdicts). A hit whose rights do not allow
 *   the access is **re-walked** instead of faulting from the stale entry
 *   (the architecture allows either; re-walking keeps guest-visible
 *   outcomes equal to the reference's, which walks every time);
 * - a write through an entry whose cached dirty flag is 0 is re-walked, so
 *   the walk sets D in the guest PTE exactly as the architecture says
 *   (§4.8), and a shadow scheme sees the write it must see.
 *
 * What a hit serves depends on who built the translation:
 * - 4 KiB entries cache the machine address (what the real TLB holds);
 * - larger entries (`maxPageShift` above 12: native only — the reference
 *   scheme's guest large pages) cache the gpa, and the machine frame is
 *   looked up in the domain's P2M on each hit (the model's stand-in for
 *   "gpa = hpa" on bare metal). Shadow paging splinters guest large pages
 *   into 4 KiB shadow entries, so its TLB entries are 4 KiB whatever the
 *   guest page size. Under nested paging an entry is no larger than
 *   min(guest page, second-stage page) (the scheme's
 *   `secondStagePageShift`): 2 MiB only where both are 2 MiB. The default
 *   `maxPageShift` is 30 for the reference and nested paging, 12 otherwise.
 * - A write hit on a frame the scheme watches (a shadowed guest page
 *   table, write-protected in the shadow) goes to the scheme: the shadow's
 *   leaf for it is read-only, so hardware would fault into the hypervisor.
 * - A P2M change flushes the TLB (the hypervisor's INVEPT / full flush).
 *
 * Xen PV direct paging (a `PvScheme` inside): the guest kernel reaches the
 * hypercalls through {@linkcode TlbFront.paravirt}; the flushes Xen makes
 * for them (`MMUEXT_NEW_BASEPTR`, `TLB_FLUSH_LOCAL`: non-global entries;
 * `INVLPG_LOCAL`: the page) come back through the scheme's
 * `onTlbInvalidate`, and `mmu_update` flushes nothing (the PV guest
 * flushes for itself, as on hardware). Translations are probed in the
 * machine tables (`probeTranslation`), and a write hit on a frame Xen
 * holds as a page table goes to the scheme (`writeTrapped`: Xen flushes
 * stale writable mappings when a frame's type changes).
 *
 * After a successful miss the wrapper reads the guest's tables once more
 * without writing anything (`setAD: false`) to learn the rights, D and G of
 * the translation: simulation bookkeeping, not a modelled reference, and
 * not counted.
 *
 * Not modelled: PCIDs/VPIDs (one address space tag), multiple TLB levels
 * (one {@linkcode Tlb}; give it the geometry you want), protection keys on
 * hits (with CR4.PKE the hit path calls `checkRights` with PKRU 0).
 *
 * @module
 */

import type { AddressLike, LinearAddress } from "../address/address.ts";
import type { EntryChange } from "../paging/builder.ts";
import type { PagingMode } from "../paging/mode.ts";
import {
  ACCESS_WRITE,
  checkRights,
  WALK_OK,
  walkInto,
  WalkScratch,
} from "../paging/walker.ts";
import type { EntryMemory } from "../paging/walker.ts";
import { Tlb, type TlbOptions } from "../tlb/tlb.ts";
import { PagingStructureCache, type PscOptions } from "../tlb/psc.ts";
import { schemeToHtml, schemeToText } from "../view/virt_html.ts";
import { FRAME_SIZE } from "./frames.ts";
import {
  GUEST_OK,
  GUEST_PF,
  type GuestAccessOptions,
  type GuestAccessResult,
  GuestAccessState,
  machineDataAccess,
  type MmuScheme,
  outcomeOf,
  parseGuestAccess,
  type PvHypercalls,
  type SchemeContext,
  type SchemeCounters,
  type SchemeEvent,
} from "./scheme.ts";

/** Options for {@linkcode TlbFront}. */
export interface TlbFrontOptions {
  /** The TLB, or options for a new one. Default: 64 entries, 4 ways, LRU. */
  tlb?: Tlb | TlbOptions;
  /**
   * Largest page size (log2) an entry may have: min(guest page, this).
   * Default 30 for the reference scheme (native: guest large pages are
   * TLB large pages) and for schemes with a second stage (nested paging:
   * min(guest page, host page) then applies), 12 for every other scheme
   * (shadow and PV map 4 KiB machine pages).
   */
  maxPageShift?: number;
  /**
   * Keep global entries across CR3 loads (CR4.PGE semantics, §4.10.2.4).
   * Default false: a CR3 load flushes everything. With `true`, a global
   * kernel entry survives a context switch, so the next process's own copy
   * of the kernel's PML4 entry is never walked and never gets its accessed
   * flag — architecturally allowed (A is set only by walks), but a
   * guest-visible difference from the reference scheme, which walks on
   * every access.
   */
  global?: boolean;
  /**
   * A paging-structure cache for the scheme's hardware walks (SDM
   * §4.10.3): `true` for the default sizes, or sizes. Default none. Only
   * counted: a TLB miss whose va hits the cache at level L would resume
   * the walk at level L − 1, so the references to levels top..L are
   * counted in `extra.pscSkipped` (subtract them from the scheme's walk
   * references). Meant for one-dimensional walks (native, shadow); nested
   * paging has its own walk caches (`NestedScheme`'s `caches`).
   */
  psc?: boolean | PscOptions;
}

/**
 * Counters of a {@linkcode TlbFront} (also merged into the scheme
 * counters' `extra` as `tlbHits`, `tlbMisses`, `tlbRewalks`, `tlbFlushes`).
 */
export interface TlbFrontCounters {
  /** Accesses served by the TLB. */
  readonly hits: number;
  /** Walk references a paging-structure cache hit saved (0 without `psc`). */
  readonly pscSkipped: number;
  /** Accesses with no TLB entry (sent to the scheme). */
  readonly misses: number;
  /** Accesses whose entry did not allow them (rights, clean page, watched frame, P2M hole): re-walked by the scheme. */
  readonly rewalks: number;
  /** Full or non-global flushes (CR3 loads, P2M changes). */
  readonly flushes: number;
}

/**
 * A TLB in front of a scheme (see the module notes).
 *
 * @example Native (the reference scheme) with a TLB: the second access hits.
 * ```ts
 * import { TlbFront } from "./tlb_front.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { GuestOs } from "./guest/os.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const front = new TlbFront(new ReferenceScheme());
 * const os = new GuestOs(new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }), { scheme: front });
 * os.switchTo(os.spawn().pid);
 * const a = os.mmap({ length: 4096 });
 * os.access(a, { kind: "write", value: 5 });      // #PF, demand-zero, retry: walks
 * const walks = front.inner.counters.extra.guestWalks;
 * assert.equal(os.access(a).value, 5);            // a hit: no walk
 * assert.equal(front.inner.counters.extra.guestWalks, walks);
 * assert.equal(front.tlbCounters.hits, 1);
 * assert.equal(front.counters.extra.tlbHits, 1);
 * ```
 */
export class TlbFront implements MmuScheme {
  /** The wrapped scheme. */
  readonly inner: MmuScheme;
  /** The TLB. */
  readonly tlb: Tlb;
  /** Largest page size (log2) an entry may have. */
  readonly maxPageShift: number;
  /** Whether global entries survive CR3 loads. */
  readonly global: boolean;
  /** The paging-structure cache counted for the scheme's walks, if any. */
  readonly psc: PagingStructureCache | undefined;
  #ctx: SchemeContext | undefined = undefined;
  #mode: PagingMode | undefined = undefined;
  #gmem: EntryMemory | undefined = undefined;
  #root = 0;
  #probe = new WalkScratch();
  #hpaFrame: Float64Array;
  #verdict = new Uint8Array(256);
  #state = new GuestAccessState();
  #accesses = 0;
  #hits = 0;
  #misses = 0;
  #rewalks = 0;
  #flushes = 0;
  #pscSkipped = 0;
  #top = 4;
  #unsubscribe: (() => void) | undefined = undefined;
  #unsubscribeTlb: (() => void) | undefined = undefined;
  /** The scheme reports its own flushes (PV hypercalls): loadCr3/invlpg leave them to it. */
  #schemeFlushes = false;
  #probeScheme = false;
  #trapWrites = false;
  #hostShift = false;

  /** Wrap `inner` (not yet attached). */
  constructor(inner: MmuScheme, options: TlbFrontOptions = {}) {
    if (
      inner === null || typeof inner !== "object" ||
      typeof inner.accessFast !== "function"
    ) {
      throw new TypeError(
        `scheme ${String(inner)} is invalid: expected an MmuScheme`,
      );
    }
    const m = options.maxPageShift ??
      (inner.name === "reference" ||
          typeof inner.secondStagePageShift === "function"
        ? 30
        : 12);
    if (!Number.isInteger(m) || m < 12 || m > 39) {
      throw new RangeError(
        `maxPageShift ${String(m)} is invalid: expected an integer in [12, 39]`,
      );
    }
    this.inner = inner;
    this.maxPageShift = m;
    this.global = options.global ?? false;
    const psc = options.psc ?? false;
    this.psc = psc === false
      ? undefined
      : new PagingStructureCache(psc === true ? {} : psc);
    this.tlb = options.tlb instanceof Tlb
      ? options.tlb
      : new Tlb({ entries: 64, ways: 4, ...(options.tlb ?? {}) });
    this.#hpaFrame = new Float64Array(this.tlb.capacity);
  }

  /** `"<inner>+tlb"`. */
  get name(): string {
    return `${this.inner.name}+tlb`;
  }

  /** Attach the wrapped scheme, and listen to P2M changes to flush. */
  attach(context: SchemeContext): void {
    if (this.#ctx !== undefined) {
      throw new RangeError(`scheme "${this.name}" is already attached`);
    }
    this.inner.attach(context);
    this.#ctx = context;
    this.#mode = context.mode;
    this.#gmem = context.memory.unwatched;
    const m = context.mode;
    this.#top = m.format.levels.length;
    for (let r = 0; r < 8; r++) {
      for (let a = 0; a < 32; a++) {
        this.#verdict[(r << 5) | a] = checkRights(m, r, 0, a, 0) === 0 ? 0 : 1;
      }
    }
    this.#unsubscribe = context.domain.onP2mChange(() => this.#flushAll());
    const inner = this.inner;
    this.#probeScheme = typeof inner.probeTranslation === "function";
    this.#trapWrites = typeof inner.writeTrapped === "function";
    this.#hostShift = typeof inner.secondStagePageShift === "function";
    if (typeof inner.onTlbInvalidate === "function") {
      this.#schemeFlushes = true;
      this.#unsubscribeTlb = inner.onTlbInvalidate((kind, hi, lo) => {
        if (kind === "page") this.#invalidatePage(hi, lo);
        else this.#flushNonGlobal();
      });
    }
  }

  /** Stop listening to the domain and the scheme. */
  detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#unsubscribeTlb?.();
    this.#unsubscribeTlb = undefined;
  }

  /** The wrapped scheme's hypercalls, if it is paravirtual (a PV `GuestOs` kernel calls them; their flushes reach this TLB). */
  get paravirt(): PvHypercalls | undefined {
    return this.inner.paravirt;
  }

  #flushAll(): void {
    this.#flushes++;
    this.tlb.flushAll();
    this.psc?.flushAll();
  }

  #flushNonGlobal(): void {
    this.#flushes++;
    this.tlb.flushPcid(0, { keepGlobal: this.global });
    this.psc?.flushPcid(0);
  }

  #invalidatePage(vaHi: number, vaLo: number): void {
    this.tlb.invlpg(vaHi >>> 0, vaLo >>> 0, 0);
    this.psc?.invlpg(0);
  }

  /**
   * MOV to CR3: drop the entries (non-global ones only with `global`), then
   * tell the scheme. A PV scheme turns it into `MMUEXT_NEW_BASEPTR`, whose
   * flush it reports back (so the TLB is flushed once, by that report).
   */
  loadCr3(root: number): void {
    this.#root = root;
    if (!this.#schemeFlushes) this.#flushNonGlobal();
    this.inner.loadCr3(root);
  }

  /** INVLPG: drop the page's entries (global too), then tell the scheme (a PV scheme's `MMUEXT_INVLPG_LOCAL` reports it back instead). */
  invlpg(vaHi: number, vaLo: number): void {
    if (!this.#schemeFlushes) this.#invalidatePage(vaHi, vaLo);
    this.inner.invlpg(vaHi, vaLo);
  }

  /** Forwarded (a TLB does not snoop page-table writes). */
  entryWritten(change: EntryChange): void {
    this.inner.entryWritten(change);
  }

  /** Forwarded. */
  frameWritten(gpa: number, length: number): void {
    this.inner.frameWritten(gpa, length);
  }

  /** Flush, and forward (the wrapper's own P2M subscription only flushes). */
  p2mChanged(firstGfn: number, count: number): void {
    this.#flushAll();
    this.inner.p2mChanged(firstGfn, count);
  }

  /** Forwarded to the scheme if it takes the hint. */
  tableFrameAllocated(gpa: number): void {
    this.inner.tableFrameAllocated?.(gpa);
  }

  /** Forwarded to the scheme if it takes the hint. */
  tableFrameFreed(gpa: number): void {
    this.inner.tableFrameFreed?.(gpa);
  }

  /** TLB lookup; a usable hit is served here, anything else goes to the scheme. Allocation-free. */
  accessFast(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    this.#accesses++;
    const tlb = this.tlb;
    const slot = tlb.lookup(vaHi, vaLo, 0);
    if (slot < 0) {
      this.#misses++;
      return this.#miss(state, vaHi, vaLo, flags, size, value);
    }
    const write = (flags & ACCESS_WRITE) !== 0;
    const rights = tlb.rightsOf(slot);
    const mode = this.#mode!;
    const denied = mode.pke
      ? checkRights(mode, rights, tlb.pkeyOf(slot), flags, 0) !== 0
      : this.#verdict[(rights << 5) | (flags & 31)] !== 0;
    if (denied || (write && !tlb.dirtyOf(slot))) {
      this.#rewalks++;
      return this.#miss(state, vaHi, vaLo, flags, size, value);
    }
    const ctx = this.#ctx!;
    const gpa = tlb.translate(slot, vaHi, vaLo);
    const gfn = Math.floor(gpa / FRAME_SIZE);
    let hpa: number;
    const hf = this.#hpaFrame[slot];
    if (hf >= 0) hpa = hf + (vaLo & (FRAME_SIZE - 1));
    else {
      const mfn = ctx.domain.mfnForAccess(gfn, write);
      if (mfn < 0) {
        this.#rewalks++;
        return this.#miss(state, vaHi, vaLo, flags, size, value);
      }
      hpa = mfn * FRAME_SIZE + (gpa - gfn * FRAME_SIZE);
    }
    if (
      write &&
      (ctx.memory.isWatched(gfn) ||
        (this.#trapWrites &&
          this.inner.writeTrapped!(Math.floor(hpa / FRAME_SIZE))))
    ) {
      this.#rewalks++;
      return this.#miss(state, vaHi, vaLo, flags, size, value);
    }
    this.#hits++;
    state.reset();
    state.cr2Hi = vaHi;
    state.cr2Lo = vaLo;
    state.gpa = gpa;
    state.hpa = hpa;
    machineDataAccess(ctx.host.memory, state, hpa, write, size, value);
    state.outcome = GUEST_OK;
    return GUEST_OK;
  }

  #miss(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const psc = this.psc;
    if (psc !== undefined) {
      const level = psc.lookup(vaHi >>> 0, vaLo >>> 0, 0, this.#mode!);
      if (level > 0) this.#pscSkipped += this.#top - level + 1;
    }
    const r = this.inner.accessFast(state, vaHi, vaLo, flags, size, value);
    if (r === GUEST_OK) this.#fill(state, vaHi, vaLo, flags);
    else if (r === GUEST_PF) {
      this.tlb.invalidatePage(vaHi >>> 0, vaLo >>> 0, 0);
      psc?.invalidateAddress(vaHi >>> 0, vaLo >>> 0, 0);
    }
    return r;
  }

  /** Cache the translation the scheme just completed (rights, D, G from the guest tables). */
  #fill(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
  ): void {
    const p = this.#probe;
    const r = this.#probeScheme
      ? this.inner.probeTranslation!(p, vaHi, vaLo, flags)
      : walkInto(
        p,
        this.#mode!,
        this.#gmem!,
        this.#root,
        vaHi,
        vaLo,
        flags,
        0,
        0,
        0,
        7,
        false,
      );
    if (r !== WALK_OK) return;
    this.psc?.fill(p, vaHi >>> 0, vaLo >>> 0, 0, this.#mode!);
    let cap = this.maxPageShift;
    if (p.pageShift > 12 && this.#hostShift) {
      // no larger than the second-stage page (SDM §28.4.2)
      const hs = this.inner.secondStagePageShift!(state.gpa);
      if (hs < cap) cap = hs;
    }
    if (p.pageShift > cap) {
      // splinter: the largest x86 page size that fits (4 KiB, 2 MiB, 1 GiB)
      const sh = cap >= 30 ? 30 : cap >= 21 ? 21 : 12;
      p.pageShift = sh;
      p.leafLevel = sh === 30 ? 3 : sh === 21 ? 2 : 1;
    }
    // the TLB keeps the gpa frame; 4 KiB entries also keep the machine frame
    p.pa = state.gpa;
    const slot = this.tlb.fill(p, vaHi >>> 0, vaLo >>> 0, 0);
    this.#hpaFrame[slot] = p.pageShift === 12
      ? state.hpa - (vaLo & (FRAME_SIZE - 1))
      : -1;
  }

  /** {@linkcode TlbFront.accessFast} with validation and a rich result. */
  access(
    va: AddressLike | LinearAddress,
    options: GuestAccessOptions = {},
  ): GuestAccessResult {
    const ctx = this.#ctx;
    if (ctx === undefined) {
      throw new RangeError(
        `scheme "${this.name}" is not attached to a domain: call attach() first`,
      );
    }
    const { a, kind, user, flags, size, value } = parseGuestAccess(va, options);
    const s = this.#state;
    const r = this.accessFast(s, a.hi, a.lo, flags, size, value);
    return {
      va: a,
      kind,
      user,
      size,
      outcome: outcomeOf(s, r, ctx.mode, flags),
      exits: s.exits,
    };
  }

  /** The TLB's own counters. */
  get tlbCounters(): TlbFrontCounters {
    return {
      hits: this.#hits,
      misses: this.#misses,
      rewalks: this.#rewalks,
      flushes: this.#flushes,
      pscSkipped: this.#pscSkipped,
    };
  }

  /**
   * The scheme's counters with `accesses` = every access (the scheme saw
   * only misses and re-walks: `extra.schemeAccesses`) and the TLB counters
   * in `extra`.
   */
  get counters(): SchemeCounters {
    const c = this.inner.counters;
    return {
      ...c,
      accesses: this.#accesses,
      extra: {
        ...c.extra,
        schemeAccesses: c.accesses,
        tlbHits: this.#hits,
        tlbMisses: this.#misses,
        tlbRewalks: this.#rewalks,
        tlbFlushes: this.#flushes,
        ...(this.psc !== undefined ? { pscSkipped: this.#pscSkipped } : {}),
      },
    };
  }

  /** Zero the scheme's counters, the wrapper's and the TLB's. */
  resetCounters(): void {
    this.inner.resetCounters();
    this.tlb.resetCounters();
    this.psc?.resetCounters();
    this.#pscSkipped = 0;
    this.#accesses =
      this.#hits =
      this.#misses =
      this.#rewalks =
        0;
    this.#flushes = 0;
  }

  /** The scheme's events. */
  get events(): readonly SchemeEvent[] {
    return this.inner.events;
  }

  /** Forget the scheme's events. */
  clearEvents(): void {
    this.inner.clearEvents();
  }

  /** One-line summary. */
  toString(): string {
    const c = this.counters;
    return `${this.name}: ${c.accesses} accesses, ${this.#hits} TLB hits, ${c.vmExits} VM exits`;
  }

  /** Jupyter rich display: counters and recent events. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": schemeToText(this.name, this.counters, this.events),
      "text/html": schemeToHtml(this.name, this.counters, this.events),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return schemeToText(this.name, this.counters, this.events);
  }
}
