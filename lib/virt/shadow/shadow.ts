/**
 * Shadow paging (HVM): the hypervisor keeps, in machine memory, page
 * tables that map guest-virtual straight to machine addresses, and points
 * the real CR3 at them while the guest runs (book ch. 6; Xen's
 * `arch/x86/mm/shadow/multi.c`, KVM's `arch/x86/kvm/mmu/mmu.c` with
 * `paging_tmpl.h`).
 *
 * How this model works:
 *
 * - **Hidden page faults build the shadow on demand.** Every guest access
 *   first walks the shadow tables (memvirt's walker over machine memory:
 *   the "hardware" walk). When that walk faults, the hypervisor takes a
 *   `#PF` VM exit and walks the *guest's* tables with the same walker over
 *   guest-physical memory, which sets guest-visible A/D bits exactly as the
 *   architectural walk would. A guest walk that faults is a **true fault**,
 *   reflected to the guest with the walker's error code and CR2; one that
 *   succeeds was a **hidden fault**: the hypervisor translates gfn → mfn
 *   through the domain (P2M or memslots), installs the shadow entries of the
 *   whole path and completes the access.
 * - **Shadow entries copy their guest entry's rights** (P, R/W, U/S, XD) and
 *   the walk ANDs them level by level, as Xen's `sh_propagate` does, so
 *   shadow pages are cached by (guest table gfn, level, role) where the
 *   role only says whether the page shadows a real guest table or
 *   splinters a guest large page (Xen's "fl1" shadows: guest 2 MiB / 1 GiB
 *   pages get 4 KiB shadow entries, since their machine frames are not
 *   contiguous).
 * - **A/D emulation.** A shadow entry exists only while its guest entry has
 *   A set (A is set by the guest walk that created it), and a leaf shadow
 *   entry is writable only while its guest entry is dirty: the first write
 *   through a clean guest PTE takes a hidden fault whose guest walk sets D,
 *   then the shadow entry becomes writable (KVM's `protect_clean_gpte`).
 * - **Write protection keeps the shadow exact.** Every guest frame that is
 *   shadowed as a table is watched and mapped read-only in the shadow. A
 *   guest write to it traps (`"wp-emulation"` exit), is emulated (the write
 *   lands in guest memory) and drops the affected shadow entries (KVM's
 *   `kvm_mmu_pte_write`; Xen's `sh_page_fault` → emulate → validate). A
 *   full-frame write (zeroing or copying: the frame is being reused) or a
 *   P2M change of the frame **unshadows** it.
 * - **TLB emulation (book 6.2–6.3).** Because write protection keeps every
 *   in-sync shadow entry exact, the shadow never gives a translation the
 *   guest's TLB could not have: relaxing and restricting changes take effect
 *   at once, which a TLB is allowed to do. INVLPG is still intercepted and
 *   drops the page's leaf shadow entry (Xen's `sh_invlpg`), and a CR3 load
 *   looks the new root up in the shadow cache (`"cr-access"` exit; a hit
 *   reuses everything below it, KVM's `kvm_mmu_get_page` hash).
 *
 * Options (off by default):
 * - `outOfSync: n` — Xen's out-of-sync L1 shadows: the first trapped entry
 *   write to a leaf table makes its shadow out of sync (up to `n` per vCPU,
 *   Xen keeps 3); later entry writes to it do not trap and the shadow may
 *   be stale exactly as a TLB may, until the guest's INVLPG of the page
 *   (that entry is resynced) or CR3 load (every out-of-sync page is resynced
 *   against a snapshot and write-protected again).
 * - `writeFlooding: n` — KVM's rule: a non-leaf shadow page written `n`
 *   times by emulated writes (KVM: 3) without being used by a hidden fault
 *   in between is zapped, and its guest frame unprotected.
 * - `prefetch: n` — on a hidden fault that fills a leaf entry, also fill
 *   the other valid, accessed guest entries of its aligned group of `n`
 *   (KVM's `PTE_PREFETCH_NUM` is 8).
 * - `maxShadowPages: n` — a shadow cache size limit; the least recently
 *   used shadow page (never the current root) is zapped to make room.
 *
 * Not modelled: PCIDs, multiple vCPUs, CR0.WP = 0 shortcuts (a supervisor
 * write the shadow cannot grant is completed from the guest walk on every
 * access, correctly but with an exit each time), protection keys in the
 * shadow (guest keys are copied but PKRU is always 0 here).
 *
 * @module
 */

import { hex64 } from "../../address/address.ts";
import type { EntryChange } from "../../paging/builder.ts";
import { type PagingMode, pagingMode } from "../../paging/mode.ts";
import type { Memory } from "../../memory/memory.ts";
import {
  ACCESS_WRITE,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../../paging/walker.ts";
import { FRAME_SIZE } from "../frames.ts";
import { GuestMemoryError } from "../guest_memory.ts";
import {
  BaseScheme,
  GUEST_GP,
  GUEST_OK,
  GUEST_PF,
  GUEST_UNBACKED,
  type GuestAccessState,
  type SchemeContext,
  type SchemeOptions,
} from "../scheme.ts";
import {
  shadowPairHtml,
  shadowPairText,
  type ShadowPairView,
  shadowSchemeHtml,
  shadowSchemeText,
} from "../../view/shadow_html.ts";

const P = 1, W = 2, U = 4, A = 0x20, D = 0x40, PS = 0x80;
const NX_HI = 0x80000000;
const PKEY_HI = 0x78000000; // bits 62:59
const TWO32 = 4294967296;
const ENTRIES = 512;

/** Options of {@linkcode ShadowScheme}. */
export interface ShadowOptions extends SchemeOptions {
  /** Out-of-sync L1 shadows per vCPU (Xen OOS; Xen keeps 3). Default 0: off. */
  outOfSync?: number;
  /** Zap a non-leaf shadow page after this many emulated writes without use (KVM: 3). Default 0: off. */
  writeFlooding?: number;
  /** Fill the valid neighbours of a faulting leaf entry in aligned groups of this many (KVM: 8). Default 0: off. */
  prefetch?: number;
  /** Most shadow pages kept; the least recently used is evicted. Default 0: no limit. */
  maxShadowPages?: number;
}

/** One shadow page as the scheme shows it (plain data). */
export interface ShadowPageInfo {
  /** Machine frame of the shadow page. */
  readonly mfn: number;
  /** Guest frame it shadows (a table; for a splinter, the first frame of the large page part it maps). */
  readonly gfn: number;
  /** Level of the shadow page (1 = leaf table). */
  readonly level: number;
  /** "table" (shadows a guest table) or "splinter" (maps part of a guest large page, Xen's fl1). */
  readonly role: "table" | "splinter";
  /** Shadow entries that point at it. */
  readonly parents: number;
  /** Present entries. */
  readonly present: number;
  /** Out of sync (OOS option). */
  readonly outOfSync: boolean;
}

class ShadowPage {
  mfn: number;
  gfn: number;
  level: number;
  fl: boolean;
  key: number;
  /** Machine addresses of the shadow entries that link to this page. */
  parents: number[] = [];
  /** Per entry: the gfn a leaf entry maps, or -1. */
  leafGfn: Int32Array;
  flood = 0;
  lastUse = 0;
  oos = -1; // OOS slot, or -1
  constructor(
    mfn: number,
    gfn: number,
    level: number,
    fl: boolean,
    key: number,
  ) {
    this.mfn = mfn;
    this.gfn = gfn;
    this.level = level;
    this.fl = fl;
    this.key = key;
    this.leafGfn = new Int32Array(ENTRIES).fill(-1);
  }
}

function keyOf(gfn: number, level: number, fl: boolean): number {
  return gfn * 16 + level * 2 + (fl ? 1 : 0);
}

/**
 * Shadow paging as an {@linkcode BaseScheme} (see the module notes).
 *
 * Exit reasons: `"hidden-pf"` (a shadow miss the hypervisor fixed),
 * `"true-pf"` (a guest fault reflected), `"wp-emulation"` (a trapped write
 * to a write-protected guest table, emulated), `"cr-access"` (CR3 load),
 * `"invlpg"`, `"mmio"` (no memory behind a gpa). Extra counters:
 * `hiddenFaults`, `trueFaults`, `emulatedWrites`, `guestWalks`,
 * `shadowWalks`, `shadowPagesAllocated`, `shadowPagesFreed`,
 * `shadowPagesLive`, `shadowBytes` (live shadow memory), `shadowBytesPeak`,
 * `cacheHits` / `cacheMisses` (shadow root found on CR3 load),
 * `spteWrites`, `unshadows`, `oosPages`, `resyncs`, `floodZaps`,
 * `prefetched`, `evictions`.
 *
 * @example A hidden fault, a true fault, a trapped PTE write, a CR3 switch that hits the cache.
 * ```ts
 * import { Host } from "../host.ts";
 * import { ShadowScheme } from "./shadow.ts";
 * import { PageTable } from "../../paging/builder.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const sh = new ShadowScheme();
 * sh.attach({ host, domain: vm, memory: vm.memory, mode });
 * vm.memory.setWriteWatcher((g, n) => sh.frameWritten(g, n));
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.onEntryWrite((c) => sh.entryWritten(c));
 * pt.map(0x40_0000, 0x9000, { user: true });
 * sh.loadCr3(pt.root);
 * assert.equal(sh.access(0x40_0010, { kind: "write", value: 5 }).exits, 1); // hidden #PF
 * assert.equal(sh.access(0x40_0010).exits, 0);                               // shadow hit
 * assert.equal(vm.memory.read32(0x9010), 5);
 * const f = sh.access(0x50_0000);                                           // true #PF
 * assert.equal(f.outcome.kind === "page-fault" && f.outcome.errorCode.value, 0b100);
 * pt.map(0x40_1000, 0xa000, { user: true });                                // trapped, emulated
 * assert.equal(sh.counters.exitsByReason["wp-emulation"], 1);
 * sh.loadCr3(pt.root);
 * assert.equal(sh.counters.extra.cacheHits, 1);
 * ```
 */
export class ShadowScheme extends BaseScheme {
  /** "shadow". */
  readonly name = "shadow";
  /** The options in force. */
  readonly options: Readonly<Required<Omit<ShadowOptions, "eventLog">>>;
  #mode: PagingMode | undefined = undefined;
  #smode: PagingMode | undefined = undefined;
  #gmem: Memory | undefined = undefined;
  #ctx: SchemeContext | undefined = undefined;
  #levels = 4;
  #addrLo = 0;
  #addrHi = 0;
  #root = 0;
  #sroot: ShadowPage | undefined = undefined;
  #gs = new WalkScratch();
  #ss = new WalkScratch();
  #pages = new Map<number, ShadowPage>();
  #byMfn = new Map<number, ShadowPage>();
  #byGfn = new Map<number, ShadowPage[]>();
  #rmap = new Map<number, number[]>();
  #tick = 0;
  // OOS slots: page and snapshot of its guest entries (lo, hi)
  #oosPage: (ShadowPage | undefined)[] = [];
  #oosSnap: Uint32Array[] = [];
  #oosNext = 0;
  #c = {
    hiddenFaults: 0,
    trueFaults: 0,
    emulatedWrites: 0,
    guestWalks: 0,
    shadowWalks: 0,
    shadowTableReads: 0,
    shadowPagesAllocated: 0,
    shadowPagesFreed: 0,
    shadowBytesPeak: 0,
    cacheHits: 0,
    cacheMisses: 0,
    spteWrites: 0,
    unshadows: 0,
    oosPages: 0,
    resyncs: 0,
    floodZaps: 0,
    prefetched: 0,
    evictions: 0,
  };

  /** Create an unattached shadow scheme. */
  constructor(options: ShadowOptions = {}) {
    super(options);
    const opt = (name: keyof ShadowOptions, max: number): number => {
      const v = options[name] ?? 0;
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > max) {
        throw new RangeError(
          `${name} ${String(v)} is invalid: expected an integer in [0, ${max}]`,
        );
      }
      return v as number;
    };
    this.options = Object.freeze({
      outOfSync: opt("outOfSync", 64),
      writeFlooding: opt("writeFlooding", 1000),
      prefetch: opt("prefetch", ENTRIES),
      maxShadowPages: opt("maxShadowPages", 2 ** 24),
    });
    if (
      this.options.prefetch > 0 &&
      (this.options.prefetch & (this.options.prefetch - 1)) !== 0
    ) {
      throw new RangeError(
        `prefetch ${this.options.prefetch} is invalid: expected a power of two (an aligned group of entries)`,
      );
    }
    if (this.options.maxShadowPages > 0 && this.options.maxShadowPages < 8) {
      throw new RangeError(
        `maxShadowPages ${this.options.maxShadowPages} is invalid: expected 0 (no limit) or at least 8 (a root, a path and a splinter pair)`,
      );
    }
    for (let i = 0; i < this.options.outOfSync; i++) {
      this.#oosPage.push(undefined);
      this.#oosSnap.push(new Uint32Array(2 * ENTRIES));
    }
  }

  /** The current guest root table (gpa). */
  get root(): number {
    return this.#root;
  }

  /** Machine address of the current shadow root, or -1 if none is built. */
  get shadowRoot(): number {
    return this.#sroot === undefined ? -1 : this.#sroot.mfn * FRAME_SIZE;
  }

  /** The live shadow pages (plain data), by machine frame. */
  shadowPages(): ShadowPageInfo[] {
    const h = this.context.host.memory;
    return [...this.#byMfn.values()].sort((a, b) => a.mfn - b.mfn).map((p) => {
      let present = 0;
      for (let i = 0; i < ENTRIES; i++) {
        if ((h.read32(p.mfn * FRAME_SIZE + 8 * i) & P) !== 0) present++;
      }
      return {
        mfn: p.mfn,
        gfn: p.gfn,
        level: p.level,
        role: p.fl ? "splinter" as const : "table" as const,
        parents: p.parents.length,
        present,
        outOfSync: p.oos >= 0,
      };
    });
  }

  /** Whether guest frame `gfn` is shadowed as a table (and so write-protected). */
  isShadowed(gfn: number): boolean {
    return this.#byGfn.has(gfn);
  }

  // ---- attach, CR3, INVLPG ----------------------------------------------

  /** Check the format and build the mode the shadow is walked with. */
  protected override onAttach(context: SchemeContext): void {
    const m = context.mode;
    if (m.format.kind !== "x86-64") {
      throw new RangeError(
        `shadow paging here supports x86-64 4- and 5-level guests: "${m.format.name}" is not one`,
      );
    }
    this.#ctx = context;
    this.#mode = m;
    this.#gmem = context.memory.unwatched;
    this.#levels = m.format.levels.length;
    this.#addrLo = m.tables.addrLo;
    this.#addrHi = m.tables.addrHi;
    // The shadow is walked with CR0.WP = 1 whatever the guest's WP: a clean
    // page's read-only shadow entry must stop supervisor writes too.
    this.#smode = pagingMode(m.format, {
      wp: true,
      nxe: m.nxe,
      smep: m.smep,
      smap: m.smap,
      pge: m.pge,
      vendor: m.vendor,
    });
  }

  /** CR-access exit: resync out-of-sync pages, look the new root up in the cache. */
  protected override onLoadCr3(root: number): void {
    this.vmExit(undefined, "cr-access", undefined, root);
    this.#root = root;
    this.#resyncAll();
    const gfn = Math.floor(root / FRAME_SIZE);
    const hit = this.#pages.get(keyOf(gfn, this.#levels, false));
    if (hit !== undefined) {
      this.#c.cacheHits++;
      this.#sroot = hit;
      hit.lastUse = ++this.#tick;
    } else {
      this.#c.cacheMisses++;
      this.#sroot = this.#inRange(gfn)
        ? this.#getPage(gfn, this.#levels, false)
        : undefined;
    }
  }

  /** INVLPG exit: drop the page's leaf shadow entry (Xen's `sh_invlpg`); resync it if out of sync. */
  protected override onInvlpg(vaHi: number, vaLo: number): void {
    this.vmExit(undefined, "invlpg", hex64(vaHi, vaLo));
    const sr = this.#sroot;
    if (sr === undefined) return;
    const h = this.#ctx!.host.memory;
    const t = this.#mode!.tables;
    let sp: ShadowPage | undefined = sr;
    for (let level = this.#levels; sp !== undefined; level--) {
      const idx = idxOf(vaHi, vaLo, t.shift[level]);
      const ea = sp.mfn * FRAME_SIZE + 8 * idx;
      const lo = h.read32(ea);
      if ((lo & P) === 0) return;
      if (level === 1) {
        this.#writeSpte(sp, idx, 0, 0);
        if (sp.oos >= 0) this.#snapEntry(sp, idx);
        return;
      }
      sp = this.#byMfn.get(
        (h.read32(ea + 4) & 0xfffff) * 1048576 + (lo >>> 12),
      );
    }
  }

  // ---- guest writes ------------------------------------------------------

  /** A guest entry write: trapped and emulated if its frame is shadowed (unless out of sync). */
  protected override onEntryWritten(change: EntryChange): void {
    const gpa = change.entryAddress;
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const list = this.#byGfn.get(gfn);
    if (list === undefined) return; // not write-protected: no trap
    if (list.length === 1 && list[0].oos >= 0) return; // writable while out of sync
    this.vmExit(
      undefined,
      "wp-emulation",
      hex64(change.va.hi, change.va.lo),
      gpa,
      `${change.kind} L${change.level}`,
    );
    this.#c.emulatedWrites++;
    this.#guestTableWritten(gpa, 8, false);
    const after = this.#byGfn.get(gfn);
    if (
      this.options.outOfSync > 0 && after !== undefined && after.length === 1 &&
      after[0].level === 1 && !after[0].fl && after[0].oos < 0
    ) {
      this.#makeOos(after[0]);
    }
  }

  /** Any other write to a watched (shadowed) frame: emulated; a full-frame write unshadows. */
  protected override onFrameWritten(gpa: number, length: number): void {
    const gfn = Math.floor(gpa / FRAME_SIZE);
    if (!this.#byGfn.has(gfn)) return;
    this.vmExit(undefined, "wp-emulation", undefined, gpa, `${length} bytes`);
    this.#c.emulatedWrites++;
    this.#guestTableWritten(gpa, length, length >= FRAME_SIZE);
  }

  /** P2M / memslot change: zap the leaf shadow entries of those gfns, unshadow tables among them. */
  protected override onP2mChanged(firstGfn: number, count: number): void {
    const zap = (gfn: number) => {
      this.#zapLeaves(gfn, false);
      if (this.#byGfn.has(gfn)) this.#unshadow(gfn);
    };
    if (count > this.#rmap.size + this.#byGfn.size) {
      const gfns = new Set([...this.#rmap.keys(), ...this.#byGfn.keys()]);
      for (const g of gfns) if (g >= firstGfn && g < firstGfn + count) zap(g);
    } else {
      for (let g = firstGfn; g < firstGfn + count; g++) zap(g);
    }
  }

  /**
   * The guest wrote `length` bytes at `gpa` in a shadowed frame (the write
   * already landed): drop the shadow entries it covers in every shadow of
   * the frame, count a flood, or unshadow the frame.
   */
  #guestTableWritten(gpa: number, length: number, unshadow: boolean): void {
    const gfn = Math.floor(gpa / FRAME_SIZE);
    if (unshadow) {
      this.#unshadow(gfn);
      return;
    }
    const list = this.#byGfn.get(gfn);
    if (list === undefined) return;
    const off = gpa - gfn * FRAME_SIZE;
    const i0 = Math.floor(off / 8), i1 = Math.floor((off + length - 1) / 8);
    for (const sp of [...list]) {
      for (let i = i0; i <= i1 && i < ENTRIES; i++) {
        this.#writeSpte(sp, i, 0, 0);
        if (sp.oos >= 0) this.#snapEntry(sp, i);
      }
      const fl = this.options.writeFlooding;
      if (fl > 0 && sp.level > 1 && ++sp.flood >= fl && sp !== this.#sroot) {
        this.#c.floodZaps++;
        this.logEvent(
          "flood-zap",
          false,
          undefined,
          gfn * FRAME_SIZE,
          `L${sp.level}`,
        );
        this.#zapPage(sp);
      }
    }
  }

  // ---- the access ----------------------------------------------------------

  /** Shadow walk (the hardware's); on a fault, the hypervisor's #PF path. */
  protected performAccess(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const sr = this.#sroot;
    if (sr !== undefined) {
      const ss = this.#ss;
      this.#c.shadowWalks++;
      const r = walkInto(
        ss,
        this.#smode!,
        this.#ctx!.host.memory,
        sr.mfn * FRAME_SIZE,
        vaHi,
        vaLo,
        flags,
        0,
        0,
        0,
        7,
        false,
      );
      this.#c.shadowTableReads += ss.steps;
      if (r === WALK_OK) {
        const leaf = this.#byMfn.get(ss.base[ss.steps - 1] / FRAME_SIZE);
        const gfn = leaf === undefined
          ? -1
          : leaf.leafGfn[ss.index[ss.steps - 1]];
        if (gfn >= 0) {
          state.gpa = gfn * FRAME_SIZE + (vaLo & (FRAME_SIZE - 1));
          return this.dataAccessHpa(state, ss.pa, flags, size, value);
        }
      } else if (r === WALK_GP) {
        state.reason = ss.reason;
        return GUEST_GP;
      }
    }
    return this.#pageFaultPath(state, vaHi, vaLo, flags, size, value);
  }

  /** The hypervisor's #PF handler: guest walk, then reflect or fix. */
  #pageFaultPath(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const gs = this.#gs;
    const va = hex64(vaHi, vaLo);
    let r: number;
    this.#c.guestWalks++;
    try {
      r = walkInto(gs, this.#mode!, this.#gmem!, this.#root, vaHi, vaLo, flags);
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      state.gpa = e.gpa;
      state.problem = e.problem;
      state.inWalk = true;
      this.vmExit(state, "mmio", va, e.gpa, "guest page walk");
      return GUEST_UNBACKED;
    }
    if (r === WALK_PF) {
      this.#c.trueFaults++;
      this.vmExit(
        state,
        "true-pf",
        va,
        undefined,
        `error code 0x${gs.errorCode.toString(16)}`,
      );
      state.errorCode = gs.errorCode;
      state.reason = gs.reason;
      state.level = gs.leafLevel;
      return GUEST_PF;
    }
    if (r === WALK_GP) {
      state.reason = gs.reason;
      return GUEST_GP;
    }
    const gpa = gs.pa;
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const write = (flags & ACCESS_WRITE) !== 0;
    const toTable = write && this.#byGfn.has(gfn);
    // the shadow missed (or was stricter): a hidden fault
    this.#c.hiddenFaults++;
    this.vmExit(state, "hidden-pf", va, gpa);
    const out = this.dataAccess(state, gpa, flags, size, value);
    if (out === GUEST_UNBACKED) {
      this.vmExit(state, "mmio", va, gpa);
      return out;
    }
    if (out !== GUEST_OK) return out;
    this.#install(vaHi, vaLo, Math.floor(state.hpa / FRAME_SIZE), gfn, write);
    if (toTable) {
      // the retried write hits the read-only shadow entry: emulate it
      this.vmExit(state, "wp-emulation", va, gpa, `${size}-byte store`);
      this.#c.emulatedWrites++;
      this.#guestTableWritten(gpa, size, false);
    }
    return out;
  }

  /** Install the shadow path for the guest walk in `#gs` (which succeeded). */
  #install(
    vaHi: number,
    vaLo: number,
    mfn: number,
    gfn: number,
    write: boolean,
  ): void {
    const gs = this.#gs;
    const g = this.#gmem!;
    const t = this.#mode!.tables;
    if (this.#sroot === undefined) {
      const rg = Math.floor(this.#root / FRAME_SIZE);
      this.#sroot = this.#getPage(rg, this.#levels, false);
    }
    let sp: ShadowPage = this.#sroot;
    const tick = ++this.#tick;
    sp.lastUse = tick;
    sp.flood = 0;
    const last = gs.steps - 1;
    for (let i = 0; i <= last; i++) {
      const level = gs.level[i];
      const ea = gs.entryAddr[i];
      // the entry as it is now (the walk may have set A/D)
      const lo = g.read32(ea), hi = g.read32(ea + 4);
      const idx = gs.index[i];
      if (sp.oos >= 0) this.#snapSet(sp, idx, lo, hi);
      let child: ShadowPage;
      let linkLo = P | A | (lo & U);
      const linkHi = hi & NX_HI & (this.#mode!.nxe ? 0xffffffff : 0);
      if (i < last) {
        if ((lo & W) !== 0) linkLo |= W;
        const cg = (hi & this.#addrHi) * 1048576 + ((lo & this.#addrLo) >>> 12);
        child = this.#getPage(cg, level - 1, false, sp);
      } else if (level > 1) {
        // a guest large page: splinter into 4 KiB shadow entries (fl)
        if ((lo & W) !== 0 && (lo & D) !== 0) linkLo |= W;
        const shift = t.shift[level - 1];
        const below = shift - 12; // log2 of frames one child entry maps
        const span = 2 ** below * ENTRIES;
        const base = Math.floor(gfn / span) * span;
        child = this.#getPage(base, level - 1, true, sp);
      } else {
        this.#setLeaf(sp, idx, lo, hi, mfn, gfn, write);
        this.#prefetch(sp, idx);
        return;
      }
      this.#link(sp, idx, child, linkLo, linkHi);
      child.lastUse = tick;
      child.flood = 0;
      sp = child;
    }
    // below a guest large page: splinter levels down to the 4 KiB entry
    while (sp.level >= 1) {
      const idx = idxOf(vaHi, vaLo, t.shift[sp.level]);
      if (sp.level === 1) {
        this.#setLeaf(sp, idx, P | W | U | A | D, 0, mfn, gfn, write);
        return;
      }
      const span = 2 ** (t.shift[sp.level - 1] - 12) * ENTRIES;
      const child = this.#getPage(
        Math.floor(gfn / span) * span,
        sp.level - 1,
        true,
        sp,
      );
      this.#link(sp, idx, child, P | W | U | A, 0);
      child.lastUse = tick;
      sp = child;
    }
  }

  /** Point entry `idx` of `sp` at `child` with the given rights (if not already so). */
  #link(
    sp: ShadowPage,
    idx: number,
    child: ShadowPage,
    lo: number,
    hi: number,
  ): void {
    const nlo = (child.mfn * FRAME_SIZE % TWO32 + lo) >>> 0;
    const nhi = (Math.floor(child.mfn / 1048576) | hi) >>> 0;
    const h = this.#ctx!.host.memory;
    const ea = sp.mfn * FRAME_SIZE + 8 * idx;
    if (h.read32(ea) !== nlo || h.read32(ea + 4) !== nhi) {
      this.#writeSpte(sp, idx, nlo, nhi);
    }
  }

  /**
   * Leaf entry `idx` of `sp` from guest entry `lo:hi` mapping `gfn` at
   * `mfn`: rights copied; writable only when the guest entry is dirty, the
   * frame is not a shadowed table and the domain lets the guest write it.
   */
  #setLeaf(
    sp: ShadowPage,
    idx: number,
    lo: number,
    hi: number,
    mfn: number,
    gfn: number,
    writeChecked: boolean,
  ): void {
    let nlo = (mfn * FRAME_SIZE % TWO32 + (P | A | (lo & (U | 0x18)))) >>> 0;
    if (
      (lo & (W | D)) === (W | D) && !this.#byGfn.has(gfn) &&
      (writeChecked || this.#ctx!.domain.mfnForAccess(gfn, true) === mfn)
    ) nlo = (nlo | W | D) >>> 0;
    const nhi = (Math.floor(mfn / 1048576) |
      (this.#mode!.nxe ? hi & NX_HI : 0) | (hi & PKEY_HI)) >>> 0;
    this.#writeSpte(sp, idx, nlo, nhi);
    sp.leafGfn[idx] = gfn;
    let l = this.#rmap.get(gfn);
    if (l === undefined) this.#rmap.set(gfn, l = []);
    l.push(sp.mfn * FRAME_SIZE + 8 * idx);
  }

  /** Prefetch option: fill valid, accessed neighbours of entry `idx` (never faulting memory in). */
  #prefetch(sp: ShadowPage, idx: number): void {
    const n = this.options.prefetch;
    if (n <= 1 || sp.fl) return;
    const g = this.#gmem!;
    const h = this.#ctx!.host.memory;
    const t = this.#mode!.tables;
    const first = idx - (idx % n);
    for (let i = first; i < first + n; i++) {
      if (i === idx || (h.read32(sp.mfn * FRAME_SIZE + 8 * i) & P) !== 0) {
        continue;
      }
      const ea = sp.gfn * FRAME_SIZE + 8 * i;
      const lo = g.read32(ea), hi = g.read32(ea + 4);
      if ((lo & (P | A)) !== (P | A)) continue;
      if ((lo & t.rsvdLo[2]) !== 0 || (hi & t.rsvdHi[2]) !== 0) continue;
      const gfn = (hi & this.#addrHi) * 1048576 + ((lo & this.#addrLo) >>> 12);
      const mfn = this.#ctx!.domain.lookup(gfn);
      if (mfn === undefined) continue;
      if (sp.oos >= 0) this.#snapSet(sp, i, lo, hi);
      this.#setLeaf(sp, i, lo, hi, mfn, gfn, false);
      this.#c.prefetched++;
    }
  }

  // ---- shadow pages -------------------------------------------------------

  #inRange(gfn: number): boolean {
    return gfn >= 0 && gfn * FRAME_SIZE < this.#ctx!.memory.size;
  }

  /** The shadow of (gfn, level, role), created (zeroed, write-protecting the frame) on a miss. */
  #getPage(
    gfn: number,
    level: number,
    fl: boolean,
    pin?: ShadowPage,
  ): ShadowPage {
    const key = keyOf(gfn, level, fl);
    const hit = this.#pages.get(key);
    if (hit !== undefined) return hit;
    const max = this.options.maxShadowPages;
    if (max > 0 && this.#byMfn.size >= max) this.#evict(pin);
    const ctx = this.#ctx!;
    const mfn = ctx.host.allocHypervisorFrame({ purpose: "shadow pages" });
    const sp = new ShadowPage(mfn, gfn, level, fl, key);
    sp.lastUse = ++this.#tick;
    this.#pages.set(key, sp);
    this.#byMfn.set(mfn, sp);
    this.#c.shadowPagesAllocated++;
    const bytes = this.#byMfn.size * FRAME_SIZE;
    if (bytes > this.#c.shadowBytesPeak) this.#c.shadowBytesPeak = bytes;
    if (!fl) {
      const list = this.#byGfn.get(gfn);
      if (list === undefined) {
        this.#byGfn.set(gfn, [sp]);
        // write-protect: watch the frame, and no writable shadow entry maps it
        ctx.memory.watch(gfn);
        this.#zapLeaves(gfn, true);
      } else list.push(sp);
    }
    this.logEvent(
      "shadow-alloc",
      false,
      undefined,
      gfn * FRAME_SIZE,
      `L${level}${fl ? " splinter" : ""} at mfn 0x${mfn.toString(16)}`,
    );
    return sp;
  }

  /** Evict the least recently used shadow page (not the current root, not `pin`). */
  #evict(pin: ShadowPage | undefined): void {
    let victim: ShadowPage | undefined = undefined;
    for (const sp of this.#byMfn.values()) {
      if (sp === this.#sroot || sp === pin) continue;
      if (victim === undefined || sp.lastUse < victim.lastUse) victim = sp;
    }
    if (victim === undefined) return;
    this.#c.evictions++;
    this.#zapPage(victim);
  }

  /**
   * The one place shadow entries are written: keeps the parent links of
   * shadow pages (for zapping) exact.
   */
  #writeSpte(sp: ShadowPage, idx: number, lo: number, hi: number): void {
    const h = this.#ctx!.host.memory;
    const ea = sp.mfn * FRAME_SIZE + 8 * idx;
    const olo = h.read32(ea), ohi = h.read32(ea + 4);
    if (olo === lo && ohi === hi) return;
    this.#c.spteWrites++;
    if (sp.level > 1 && (olo & P) !== 0) {
      const old = this.#byMfn.get((ohi & 0xfffff) * 1048576 + (olo >>> 12));
      if (old !== undefined) {
        const k = old.parents.indexOf(ea);
        if (k >= 0) old.parents.splice(k, 1);
      }
    }
    h.write32(ea, lo);
    h.write32(ea + 4, hi);
    if (sp.level > 1 && (lo & P) !== 0) {
      const child = this.#byMfn.get((hi & 0xfffff) * 1048576 + (lo >>> 12));
      child?.parents.push(ea);
    }
    if (sp.level === 1 && (lo & P) === 0) sp.leafGfn[idx] = -1;
  }

  /**
   * Leaf shadow entries mapping `gfn` (KVM's rmap): made read-only
   * (`readOnly`) or dropped. Stale rmap entries are pruned on the way.
   */
  #zapLeaves(gfn: number, readOnly: boolean): void {
    const l = this.#rmap.get(gfn);
    if (l === undefined) return;
    const h = this.#ctx!.host.memory;
    const keep: number[] = [];
    for (const ea of l) {
      const sp = this.#byMfn.get(Math.floor(ea / FRAME_SIZE));
      if (sp === undefined || sp.level !== 1) continue;
      const idx = (ea - sp.mfn * FRAME_SIZE) / 8;
      if (sp.leafGfn[idx] !== gfn || keep.includes(ea)) continue;
      const lo = h.read32(ea);
      if ((lo & P) === 0) continue;
      if (readOnly) {
        this.#writeSpte(sp, idx, (lo & ~W) >>> 0, h.read32(ea + 4));
        keep.push(ea);
      } else this.#writeSpte(sp, idx, 0, 0);
    }
    if (keep.length === 0) this.#rmap.delete(gfn);
    else this.#rmap.set(gfn, keep);
  }

  /** Zap a shadow page: unlink it from its parents, clear it, free its frame. */
  #zapPage(sp: ShadowPage): void {
    if (!this.#byMfn.has(sp.mfn)) return;
    for (const ea of [...sp.parents]) {
      const parent = this.#byMfn.get(Math.floor(ea / FRAME_SIZE));
      if (parent !== undefined) {
        this.#writeSpte(parent, (ea - parent.mfn * FRAME_SIZE) / 8, 0, 0);
      }
    }
    for (let i = 0; i < ENTRIES; i++) this.#writeSpte(sp, i, 0, 0);
    if (sp.oos >= 0) {
      this.#oosPage[sp.oos] = undefined;
      sp.oos = -1;
    }
    this.#pages.delete(sp.key);
    this.#byMfn.delete(sp.mfn);
    if (!sp.fl) {
      const list = this.#byGfn.get(sp.gfn)!;
      list.splice(list.indexOf(sp), 1);
      if (list.length === 0) {
        this.#byGfn.delete(sp.gfn);
        this.#ctx!.memory.unwatch(sp.gfn);
      }
    }
    if (sp === this.#sroot) this.#sroot = undefined;
    this.#ctx!.host.freeHypervisorFrame(sp.mfn);
    this.#c.shadowPagesFreed++;
    this.logEvent(
      "shadow-free",
      false,
      undefined,
      sp.gfn * FRAME_SIZE,
      `L${sp.level}${sp.fl ? " splinter" : ""}`,
    );
  }

  /** The frame stopped being a page table (or may have): drop all its shadows. */
  #unshadow(gfn: number): void {
    const list = this.#byGfn.get(gfn);
    if (list === undefined) return;
    this.#c.unshadows++;
    this.logEvent("unshadow", false, undefined, gfn * FRAME_SIZE);
    for (const sp of [...list]) this.#zapPage(sp);
  }

  // ---- out of sync ---------------------------------------------------------

  #makeOos(sp: ShadowPage): void {
    const n = this.options.outOfSync;
    let slot = this.#oosPage.indexOf(undefined);
    if (slot < 0) {
      slot = this.#oosNext;
      this.#oosNext = (this.#oosNext + 1) % n;
      this.#resync(this.#oosPage[slot]!);
    }
    const snap = this.#oosSnap[slot];
    const g = this.#gmem!;
    const base = sp.gfn * FRAME_SIZE;
    for (let i = 0; i < 2 * ENTRIES; i++) snap[i] = g.read32(base + 4 * i);
    this.#oosPage[slot] = sp;
    sp.oos = slot;
    this.#c.oosPages++;
    this.logEvent("out-of-sync", false, undefined, base);
  }

  #snapSet(sp: ShadowPage, idx: number, lo: number, hi: number): void {
    const s = this.#oosSnap[sp.oos];
    s[2 * idx] = lo;
    s[2 * idx + 1] = hi;
  }

  #snapEntry(sp: ShadowPage, idx: number): void {
    const g = this.#gmem!;
    const ea = sp.gfn * FRAME_SIZE + 8 * idx;
    this.#snapSet(sp, idx, g.read32(ea), g.read32(ea + 4));
  }

  /** Bring an out-of-sync page back in sync: drop entries whose guest entry changed; write-protect again. */
  #resync(sp: ShadowPage): void {
    const snap = this.#oosSnap[sp.oos];
    const g = this.#gmem!;
    const base = sp.gfn * FRAME_SIZE;
    for (let i = 0; i < ENTRIES; i++) {
      if (
        g.read32(base + 8 * i) !== snap[2 * i] ||
        g.read32(base + 8 * i + 4) !== snap[2 * i + 1]
      ) this.#writeSpte(sp, i, 0, 0);
    }
    this.#oosPage[sp.oos] = undefined;
    sp.oos = -1;
    this.#c.resyncs++;
  }

  #resyncAll(): void {
    for (const sp of this.#oosPage) if (sp !== undefined) this.#resync(sp);
  }

  // ---- counters and display ----------------------------------------------

  /** Shadow counters (see the class notes). */
  protected override extraCounters(): Record<string, number> {
    const live = this.#byMfn.size;
    return {
      ...this.#c,
      shadowPagesLive: live,
      shadowBytes: live * FRAME_SIZE,
    };
  }

  /** Zero the shadow counters. */
  protected override resetExtraCounters(): void {
    const c = this.#c as Record<string, number>;
    for (const k of Object.keys(c)) c[k] = 0;
  }

  /**
   * A guest table and its shadow side by side (plain data for the view):
   * the guest table at `gpa` (level `level`), and the shadow of it if there
   * is one. Only entries present in either are listed, at most `maxRows`.
   */
  shadowPair(gpa: number, level: number, maxRows = 64): ShadowPairView {
    const ctx = this.context;
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const sp = this.#pages.get(keyOf(gfn, level, false));
    const g = ctx.memory.unwatched;
    const h = ctx.host.memory;
    const rows: ShadowPairView["rows"][number][] = [];
    let omitted = 0;
    for (let i = 0; i < ENTRIES; i++) {
      const glo = g.read32(gfn * FRAME_SIZE + 8 * i);
      const ghi = g.read32(gfn * FRAME_SIZE + 8 * i + 4);
      const slo = sp === undefined ? 0 : h.read32(sp.mfn * FRAME_SIZE + 8 * i);
      const shi = sp === undefined
        ? 0
        : h.read32(sp.mfn * FRAME_SIZE + 8 * i + 4);
      if ((glo | ghi | slo | shi) === 0) continue;
      if (rows.length >= maxRows) {
        omitted++;
        continue;
      }
      const child = (slo & P) !== 0 && level > 1
        ? this.#byMfn.get((shi & 0xfffff) * 1048576 + (slo >>> 12))
        : undefined;
      rows.push({
        index: i,
        guest: (glo | ghi) === 0 ? null : {
          raw: hex64(ghi, glo),
          frame: (ghi & 0xfffff) * 1048576 + (glo >>> 12),
          flags: flagText(glo, ghi, level),
        },
        shadow: (slo | shi) === 0 ? null : {
          raw: hex64(shi, slo),
          frame: (shi & 0xfffff) * 1048576 + (slo >>> 12),
          flags: flagText(slo, shi, level, true),
          target: level === 1
            ? "page"
            : child === undefined
            ? "?"
            : child.fl
            ? "splinter"
            : "shadow table",
        },
      });
    }
    return {
      level,
      gfn,
      mfn: sp === undefined ? null : sp.mfn,
      outOfSync: sp !== undefined && sp.oos >= 0,
      rows,
      omitted,
    };
  }

  /** The shadow of the current root next to the guest's root table. */
  rootPair(maxRows = 64): ShadowPairView {
    return this.shadowPair(this.#root, this.#levels, maxRows);
  }

  /** Render {@linkcode ShadowScheme.shadowPair} as a rich object (HTML + text). */
  showPair(gpa: number, level: number): Record<string, string> {
    const v = this.shadowPair(gpa, level);
    return { "text/plain": shadowPairText(v), "text/html": shadowPairHtml(v) };
  }

  /** Jupyter rich display: counters, exits, shadow cache. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": shadowSchemeText(this.counters, this.#pagesSafe()),
      "text/html": shadowSchemeHtml(
        this.counters,
        this.#pagesSafe(),
        this.events,
      ),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return shadowSchemeText(this.counters, this.#pagesSafe());
  }

  #pagesSafe(): ShadowPageInfo[] {
    return this.attached ? this.shadowPages() : [];
  }
}

function idxOf(vaHi: number, vaLo: number, shift: number): number {
  return shift >= 32
    ? (vaHi >>> (shift - 32)) & 511
    : shift > 23
    ? ((vaLo >>> shift) | (vaHi << (32 - shift))) & 511
    : (vaLo >>> shift) & 511;
}

function flagText(
  lo: number,
  hi: number,
  level: number,
  shadow = false,
): string {
  if ((lo & P) === 0) return "-";
  const f: string[] = ["P"];
  if (lo & W) f.push("RW");
  if (lo & U) f.push("US");
  if (lo & A) f.push("A");
  if ((lo & D) && (level === 1 || (lo & PS))) f.push("D");
  if ((lo & PS) && level > 1) f.push("PS");
  if (!shadow && (lo & 0x100) && (level === 1 || (lo & PS))) f.push("G");
  if (hi & NX_HI) f.push("XD");
  return f.join(" ");
}
