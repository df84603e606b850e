/**
 * The 2-D (nested) page walk by composition (DESIGN.md example 7): the one
 * guest walker (`walkInto`) reads guest entries through a memory interface;
 * here that interface is the {@linkcode NestedWalker} itself, which turns
 * each guest table address (a gpa) into a host address with a second-stage
 * walk (EPT, SDM Vol. 3 §28.3; or AMD NPT, APM Vol. 2 §15.25) before
 * reading it. The final gpa takes one more second-stage walk. Every memory
 * reference is recorded in order with its tags (guest level or data; host
 * level or guest entry), so counts come out of the record:
 * n·(m+1) + m = (n+1)(m+1) − 1 reads for n guest and m host levels — 24
 * for 4×4 — not counting the data access itself (FIGURES.md convention).
 *
 * Outcomes are kept apart: a guest #PF (no exit: delivered to the guest),
 * an EPT violation (exit, with its qualification), an EPT
 * misconfiguration, or an AMD #NPF (exit, EXITINFO1 error code).
 *
 * Speed (issue 6: ≥ 1 M uncached 4×4 walks/s): the NPT host walk takes
 * {@linkcode nptFastWalk} for its common case (checked against `walkInto`
 * by a property test) and EPT walks read each entry with one chunk lookup
 * (`PhysicalMemory.readEntryLo`); nothing allocates per walk.
 *
 * Modelling choices (documented simplifications):
 * - The guest walk writes its A/D bits (guest-physical memory) after the
 *   walk succeeds, as the guest walker does natively; each A/D write is
 *   recorded as one reference (tag "write"); its second-stage translation
 *   is checked for write permission by an unrecorded host walk (the
 *   hardware reuses the translation it made for the read).
 * - With EPT A/D enabled, every guest paging-structure access is treated
 *   as a write (SDM §28.3.5 and §28.3.3.2), so it needs EPT write
 *   permission and sets the EPT dirty flag, and an EPT violation on it
 *   reports both read and write in the qualification.
 * - NPT: guest table reads are user reads, guest A/D updates user writes
 *   (APM §15.25.5).
 *
 * @module
 */

import {
  EPT_FETCH,
  EPT_MISCONFIG,
  EPT_OK,
  EPT_READ,
  EPT_REASONS,
  EPT_WRITE,
  type EptMode,
  EptScratch,
  eptWalkInto,
} from "../../paging/ept.ts";
import type { PagingMode } from "../../paging/mode.ts";
import { X86_64_4LEVEL, X86_64_5LEVEL } from "../../paging/format.ts";
import { PhysicalMemory } from "../../memory/memory.ts";
import {
  PrefixCache,
  type PrefixCacheOptions,
  prefixHi,
  prefixLo,
} from "./cache.ts";
import {
  ACCESS_FETCH,
  ACCESS_USER,
  ACCESS_WRITE,
  type EntryMemory,
  FAULT_REASONS,
  isCanonical,
  PFEC_ID,
  PFEC_P,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  RIGHT_U,
  RIGHT_W,
  RIGHT_X,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../../paging/walker.ts";

/** Nested walk outcome: translated; `hpa` is the data's host address. */
export const NESTED_OK = 0;
/** Nested walk outcome: guest #PF (delivered to the guest, no VM exit). */
export const NESTED_GUEST_PF = 1;
/** Nested walk outcome: guest #GP (non-canonical address). */
export const NESTED_GUEST_GP = 2;
/** Nested walk outcome: EPT violation (VM exit, basic reason 48). */
export const NESTED_EPT_VIOLATION = 3;
/** Nested walk outcome: EPT misconfiguration (VM exit, basic reason 49). */
export const NESTED_EPT_MISCONFIG = 4;
/** Nested walk outcome: AMD nested page fault (#VMEXIT code 0x400). */
export const NESTED_NPF = 5;

/** EPT-violation exit qualification bits (SDM Table 28-7). */
export const EXITQ_READ = 1,
  EXITQ_WRITE = 2,
  EXITQ_FETCH = 4,
  EXITQ_READABLE = 8,
  EXITQ_WRITABLE = 16,
  EXITQ_EXECUTABLE = 32,
  EXITQ_GLA_VALID = 128,
  EXITQ_FINAL = 256;

/** The second stage: Intel EPT or AMD NPT, with its mode. */
export type SecondStage =
  | { readonly kind: "ept"; readonly mode: EptMode }
  | { readonly kind: "npt"; readonly mode: PagingMode };

/** Most references one nested walk can record (5×5, A/D writes, data). */
export const MAX_REFS = 64;

/** Reference tag: made (not skipped). */
export const SKIP_NONE = 0;
/** Reference tag: skipped, a guest paging-structure-cache hit covered it. */
export const SKIP_GUEST_PSC = 1;
/** Reference tag: skipped, a nested-TLB hit translated the gpa. */
export const SKIP_NTLB = 2;
/** Reference tag: skipped, a host paging-structure-cache hit covered it. */
export const SKIP_HOST_PSC = 3;
/** Names of the SKIP_* tags, by value. */
export const SKIP_NAMES = ["", "guest-psc", "ntlb", "host-psc"] as const;
/** Why a reference was skipped. */
export type SkipReason = "guest-psc" | "ntlb" | "host-psc";

/**
 * Walk caches of a {@linkcode NestedWalker} (Bhargava et al., ASPLOS
 * 2008): each present option enables that cache (all off by default).
 */
export interface NestedWalkerOptions {
  /** Guest paging-structure cache: guest upper entries by gla prefix → next guest table's gpa. */
  guestPsc?: PrefixCacheOptions;
  /** Nested TLB: gfn → host frame with R/W/X. */
  nestedTlb?: PrefixCacheOptions;
  /** Host paging-structure cache: second-stage upper entries by gpa prefix → next host table's hpa. */
  hostPsc?: PrefixCacheOptions;
}

/**
 * A reusable, allocation-free 2-D walker. Also the guest walker's
 * {@linkcode EntryMemory}: its reads and writes are guest-physical and go
 * through the second stage.
 *
 * @example A 4×4 walk: 24 references, then the data.
 * ```ts
 * import { NestedWalker, NESTED_OK } from "./walk.ts";
 * import { EPT_4LEVEL, eptMap, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { ACCESS_USER } from "../../paging/walker.ts";
 * import { PageTable } from "../../paging/builder.ts";
 * import { FrameAllocator, PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const gmode = pagingMode(X86_64_4LEVEL);
 * const guest = new PhysicalMemory({ size: 1 << 20 });          // guest-physical
 * const pt = new PageTable(guest, { mode: gmode });
 * pt.map(0x40_0000, 0x8000, { user: true, accessed: true });
 * const host = new PhysicalMemory({ size: 4 << 20 });
 * const frames = new FrameAllocator(host, { end: 1 << 20 });
 * const emode = eptMode(EPT_4LEVEL);
 * const root = frames.alloc();
 * for (let gfn = 0; gfn < 256; gfn++) {                            // identity + 1 MiB
 *   eptMap(emode, host, () => frames.alloc(), root, gfn * 4096, gfn * 4096 + (1 << 20) * 2);
 *   host.writeBytes(gfn * 4096 + (1 << 20) * 2, guest.readBytes(gfn * 4096, 4096));
 * }
 * const w = new NestedWalker(gmode, { kind: "ept", mode: emode }, host, root);
 * assert.equal(w.walk(pt.root, 0, 0x40_0010, ACCESS_USER), NESTED_OK);
 * assert.equal(w.hpa, 0x8010 + (1 << 20) * 2);
 * assert.equal(w.tableReads, 24);
 * ```
 */
export class NestedWalker implements EntryMemory {
  /** Guest paging mode. */
  readonly guestMode: PagingMode;
  /** The second stage. */
  readonly stage: SecondStage;
  /** Machine memory (host tables and guest frames). */
  readonly memory: EntryMemory;
  /** Second-stage root (hpa). */
  hostRoot: number;
  /** The guest walk's scratch (the guest-level record). */
  readonly guest: WalkScratch = new WalkScratch();
  /** Per reference: guest level (1..n), or 0 for the final gpa / data. */
  readonly refGuest: Uint8Array = new Uint8Array(MAX_REFS);
  /** Per reference: host level (1..m), or 0 for the guest entry / data access. */
  readonly refHost: Uint8Array = new Uint8Array(MAX_REFS);
  /** Per reference: host-physical address. */
  readonly refAddr: Float64Array = new Float64Array(MAX_REFS);
  /** Per reference: 1 for a write (guest A/D update), else 0. */
  readonly refWrite: Uint8Array = new Uint8Array(MAX_REFS);
  /** Per reference: SKIP_NONE (made) or why it was skipped (SKIP_*); a skipped reference's address is -1. */
  readonly refSkip: Uint8Array = new Uint8Array(MAX_REFS);
  /** References recorded (made and skipped). */
  refs = 0;
  /** References made (recorded and not skipped). */
  made = 0;
  /** Guest paging-structure cache, if enabled. */
  readonly guestPsc: PrefixCache | undefined;
  /** Nested TLB (gfn → host frame), if enabled. */
  readonly nestedTlb: PrefixCache | undefined;
  /** Host paging-structure cache, if enabled. */
  readonly hostPsc: PrefixCache | undefined;
  /** Outcome (NESTED_*). */
  outcome: number = NESTED_OK;
  /** The data's gpa (ok), or the gpa whose second-stage walk faulted. */
  gpa = 0;
  /** The data's hpa (ok). */
  hpa = 0;
  /** Second-stage fault on a guest table access (else on the final access). */
  onTableWalk = false;
  /** Guest level whose entry access faulted in the second stage (0: final). */
  faultGuestLevel = 0;
  /** Second-stage level that stopped the walk. */
  hostLevel = 0;
  /** EPT reason (EptReason) or NPT walker Reason of the second-stage stop. */
  hostReason = 0;
  /** EPT-violation exit qualification (EXITQ_* bits). */
  exitQualification = 0;
  /** #NPF EXITINFO1 low 32 bits (a #PF error code). */
  npfErrorCode = 0;
  /**
   * After a successful walk: the second stage's rights for the data page
   * as a TLB may cache them (EPT_READ/WRITE/FETCH bits; W only once the
   * host leaf is dirty where the second stage has D bits, so a cached
   * write never skips a D update; NPT: 0 for a supervisor-only leaf).
   */
  finalHostRights = 0;
  /**
   * Page-modification logging (SDM §28.3.6): when set, called with the
   * 4 KiB-aligned gpa each time a second-stage walk sets an EPT leaf's
   * dirty flag (EPT A/D only). The nested scheme's PML buffer hangs here.
   */
  onDirty: ((gpa: number) => void) | undefined = undefined;
  #e = new EptScratch();
  #n = new WalkScratch();
  #faulted = false;
  #entryGpa = -1;
  #entryHpa = 0;
  #guestLevel = 0;
  #access = 0;
  #ept: EptMode | undefined;
  #npt: PagingMode | undefined;
  /** NPT tables whose common case {@linkcode nptFastWalk} handles. */
  #nptFast = false;
  /** EPT A/D: guest paging-structure accesses are writes. */
  #tableAccess: number;
  #hostLevels: number;

  /** Guest mode (4- or 5-level x86-64), second stage, machine memory, root; caches in `options`. */
  constructor(
    guestMode: PagingMode,
    stage: SecondStage,
    memory: EntryMemory,
    hostRoot: number,
    options: NestedWalkerOptions = {},
  ) {
    if (guestMode.format.kind !== "x86-64") {
      throw new RangeError(
        `guest format "${guestMode.format.name}" is not supported: expected 4- or 5-level x86-64`,
      );
    }
    if (stage.kind !== "ept" && stage.kind !== "npt") {
      throw new RangeError(
        `second stage "${
          String((stage as { kind: unknown }).kind)
        }": expected "ept" or "npt"`,
      );
    }
    this.guestMode = guestMode;
    this.stage = stage;
    this.memory = memory;
    this.hostRoot = hostRoot;
    this.#ept = stage.kind === "ept" ? stage.mode : undefined;
    this.#npt = stage.kind === "npt" ? stage.mode : undefined;
    const nf = stage.mode.format;
    this.#nptFast = stage.kind === "npt" && stage.mode.nxe &&
      !stage.mode.pke && (nf === X86_64_4LEVEL || nf === X86_64_5LEVEL);
    // SDM §28.3.3.2: with EPT A/D, guest paging-structure accesses are writes
    this.#tableAccess = stage.kind === "ept" && stage.mode.ad
      ? EPT_READ | EPT_WRITE
      : EPT_READ;
    this.#hostLevels = stage.mode.format.levels.length;
    this.guestPsc = options.guestPsc === undefined
      ? undefined
      : new PrefixCache("guest-psc", options.guestPsc);
    this.nestedTlb = options.nestedTlb === undefined
      ? undefined
      : new PrefixCache("ntlb", options.nestedTlb);
    this.hostPsc = options.hostPsc === undefined
      ? undefined
      : new PrefixCache("host-psc", options.hostPsc);
  }

  /** Second-stage levels. */
  get hostLevels(): number {
    return this.#hostLevels;
  }

  /**
   * Guest INVLPG or MOV to CR3: drop the guest-dimension caches of this
   * vCPU's context. SDM §4.10.4.1: INVLPG invalidates all paging-structure
   * cache entries of the current PCID whatever their linear address; a CR3
   * load (without PCIDs) all of them. Returns the entries dropped.
   */
  invalidateGuest(): number {
    return this.guestPsc?.invalidateAll() ?? 0;
  }

  /**
   * INVEPT (SDM §28.4.3.1): "single" drops the guest-physical mappings
   * (nested TLB) and host paging-structure-cache entries of this walker's
   * EPTP (its current `hostRoot`); "global" drops those of every EPTP.
   * Guest-PSC entries hold gpas only (no EPT information), so they stay.
   * Returns the entries dropped.
   */
  invept(kind: "single" | "global"): number {
    if (kind === "global") {
      return (this.nestedTlb?.invalidateAll() ?? 0) +
        (this.hostPsc?.invalidateAll() ?? 0);
    }
    return (this.nestedTlb?.invalidateContext(this.hostRoot) ?? 0) +
      (this.hostPsc?.invalidateContext(this.hostRoot) ?? 0);
  }

  /** Guest-table and second-stage reads of the last walk (not the data access, not A/D writes). */
  get tableReads(): number {
    let n = 0;
    for (let i = 0; i < this.refs; i++) {
      if (
        this.refWrite[i] === 0 && this.refSkip[i] === SKIP_NONE &&
        !(this.refGuest[i] === 0 && this.refHost[i] === 0)
      ) n++;
    }
    return n;
  }

  /**
   * Walk guest tables at gpa `guestRoot` for `vaHi:vaLo` and the guest
   * access `flags` (ACCESS_*), every guest reference through the second
   * stage, then the final gpa. Records the data reference on success
   * (the caller performs it at {@linkcode NestedWalker.hpa}). Returns
   * NESTED_*. Allocation-free.
   */
  walk(guestRoot: number, vaHi: number, vaLo: number, flags: number): number {
    this.refs = this.made = 0;
    this.#faulted = false;
    this.#entryGpa = -1;
    const n = this.guestMode.format.levels.length;
    this.#access = flags;
    this.onTableWalk = false;
    this.faultGuestLevel = 0;
    this.hostLevel = this.hostReason = 0;
    this.exitQualification = this.npfErrorCode = 0;
    this.gpa = this.hpa = 0;
    this.finalHostRights = 0;
    const g = this.guest;
    const gm = this.guestMode;
    // Guest PSC: the longest cached prefix (lowest level) first; a hit at
    // level L skips guest levels n..L, each a host walk plus the entry read.
    let startLevel = 0, startBase = 0, startRights = 7;
    const gp = this.guestPsc;
    if (gp !== undefined && isCanonical(gm, vaHi, vaLo)) {
      const shifts = gm.tables.shift;
      for (let level = 2; level <= n; level++) {
        const sh = shifts[level];
        const slot = gp.lookup(
          guestRoot,
          level,
          prefixHi(vaHi, vaLo, sh),
          prefixLo(vaHi, vaLo, sh),
          0,
        );
        if (slot >= 0) {
          startLevel = level - 1;
          startBase = gp.value[slot];
          startRights = gp.rights[slot];
          const m = this.#hostLevels;
          for (let gl = n; gl >= level; gl--) {
            this.#skipHost(gl, m, 1, SKIP_GUEST_PSC);
            this.#skip(gl, 0, SKIP_GUEST_PSC);
          }
          break;
        }
      }
    }
    this.#guestLevel = (startLevel === 0 ? n : startLevel) + 1;
    const r = walkInto(
      g,
      gm,
      this,
      guestRoot,
      vaHi,
      vaLo,
      flags,
      0,
      startLevel,
      startBase,
      startRights,
    );
    if (this.#faulted) return this.outcome;
    if (r === WALK_PF) return this.outcome = NESTED_GUEST_PF;
    if (r === WALK_GP) return this.outcome = NESTED_GUEST_GP;
    if (r !== WALK_OK) throw new Error(`internal: walk outcome ${r}`);
    if (gp !== undefined) {
      // fill from the upper (non-leaf) entries this walk read; their A
      // flags are set now (SDM §4.10.3.1)
      const shifts = gm.tables.shift;
      for (let i = 0; i < g.steps - 1; i++) {
        const level = g.level[i], sh = shifts[level];
        gp.fill(
          guestRoot,
          level,
          prefixHi(vaHi, vaLo, sh),
          prefixLo(vaHi, vaLo, sh),
          g.base[i + 1],
          g.rights[i],
        );
      }
    }
    const gpa = g.pa;
    const a = (flags & ACCESS_WRITE) !== 0
      ? EPT_WRITE
      : (flags & ACCESS_FETCH) !== 0
      ? EPT_FETCH
      : EPT_READ;
    if (!this.#hostWalk(gpa, 0, a, false, true)) return this.outcome;
    this.gpa = gpa;
    this.#ref(0, 0, this.hpa, (flags & ACCESS_WRITE) !== 0 ? 1 : 0);
    return this.outcome = NESTED_OK;
  }

  #ref(guest: number, host: number, addr: number, write: number): void {
    const i = this.refs;
    if (i >= MAX_REFS) return;
    this.refGuest[i] = guest;
    this.refHost[i] = host;
    this.refAddr[i] = addr;
    this.refWrite[i] = write;
    this.refSkip[i] = SKIP_NONE;
    this.refs = i + 1;
    this.made++;
  }

  /** Record a host walk's `steps` entry reads for guest level `guest`. */
  #refSteps(
    guest: number,
    level: Uint8Array,
    entryAddr: Float64Array,
    steps: number,
  ): void {
    const i0 = this.refs;
    const n = Math.min(steps, MAX_REFS - i0);
    if (n <= 0) return;
    const rg = this.refGuest, rh = this.refHost, ra = this.refAddr;
    const rw = this.refWrite, rs = this.refSkip;
    for (let j = 0; j < n; j++) {
      const i = i0 + j;
      rg[i] = guest;
      rh[i] = level[j];
      ra[i] = entryAddr[j];
      rw[i] = 0;
      rs[i] = SKIP_NONE;
    }
    this.refs = i0 + n;
    this.made += n;
  }

  /** Record host levels `from` down to `to` of guest level `guest` as skipped. */
  #skipHost(guest: number, from: number, to: number, why: number): void {
    const i0 = this.refs;
    const n = Math.min(from - to + 1, MAX_REFS - i0);
    if (n <= 0) return;
    const rg = this.refGuest, rh = this.refHost, ra = this.refAddr;
    const rw = this.refWrite, rs = this.refSkip;
    for (let j = 0; j < n; j++) {
      const i = i0 + j;
      rg[i] = guest;
      rh[i] = from - j;
      ra[i] = -1;
      rw[i] = 0;
      rs[i] = why;
    }
    this.refs = i0 + n;
  }

  #skip(guest: number, host: number, why: number): void {
    const i = this.refs;
    if (i >= MAX_REFS) return;
    this.refGuest[i] = guest;
    this.refHost[i] = host;
    this.refAddr[i] = -1;
    this.refWrite[i] = 0;
    this.refSkip[i] = why;
    this.refs = i + 1;
  }

  /**
   * One second-stage walk of `gpa` for guest level `gl` (0 = final) with
   * EPT access `a`; records its references if `record`. On success sets
   * `hpa`; on a fault fills the exit fields and returns false.
   */
  #hostWalk(
    gpa: number,
    gl: number,
    a: number,
    table: boolean,
    record: boolean,
  ): boolean {
    const mem = this.memory;
    const ctx = this.hostRoot;
    const m = this.#hostLevels;
    const gHi = Math.floor(gpa / 4294967296), gLo = gpa >>> 0;
    // Nested TLB: a hit whose rights allow the access skips the host walk.
    // (Entries only carry W once the leaf is dirty, so skipping never skips
    // an A/D update the walk would make.)
    const nt = this.nestedTlb;
    if (nt !== undefined) {
      const slot = nt.lookup(ctx, 0, gHi, (gLo & 0xfffff000) >>> 0, a & 7);
      if (slot >= 0) {
        if (record) {
          this.#skipHost(gl, m, 1, SKIP_NTLB);
        }
        this.hpa = nt.value[slot] + (gLo & 0xfff);
        if (!table) this.finalHostRights = nt.rights[slot];
        return true;
      }
    }
    // Host PSC: resume below the longest cached gpa prefix.
    let sl = 0, sb = 0, sr = 7;
    const hp = this.hostPsc;
    if (hp !== undefined) {
      for (let level = 2; level <= m; level++) {
        const sh = 3 + 9 * level; // 12 + 9·(level − 1)
        const slot = hp.lookup(
          ctx,
          level,
          prefixHi(gHi, gLo, sh),
          prefixLo(gHi, gLo, sh),
          0,
        );
        if (slot >= 0) {
          sl = level - 1;
          sb = hp.value[slot];
          sr = hp.rights[slot];
          if (record) this.#skipHost(gl, m, level, SKIP_HOST_PSC);
          break;
        }
      }
    }
    const ept = this.#ept;
    if (ept !== undefined) {
      const s = this.#e;
      const r = eptWalkInto(s, ept, mem, ctx, gpa, a, true, sl, sb, sr);
      if (record) this.#refSteps(gl, s.level, s.entryAddr, s.steps);
      if (r === EPT_OK) {
        this.hpa = s.hpa;
        if (s.dSet && this.onDirty !== undefined) {
          this.onDirty(gpa - (gLo & 0xfff));
        }
        if (!table) {
          const clean = ept.ad && !s.dSet &&
            (s.lo[s.steps - 1] & 0x200) === 0;
          this.finalHostRights = s.finalRights & (clean ? 5 : 7);
        }
        if (nt !== undefined || hp !== undefined) this.#fillEpt(ept, gHi, gLo);
        return true;
      }
      this.#fault(gpa, gl, table, s.leafLevel, s.reason);
      if (r === EPT_MISCONFIG) {
        this.outcome = NESTED_EPT_MISCONFIG;
      } else {
        this.outcome = NESTED_EPT_VIOLATION;
        let q = a | EXITQ_GLA_VALID | (table ? 0 : EXITQ_FINAL);
        q |= (s.finalRights & 7) << 3;
        this.exitQualification = q;
      }
      return false;
    }
    const s = this.#n;
    const acc = ACCESS_USER | ((a & EPT_WRITE) !== 0 ? ACCESS_WRITE : 0) |
      ((a & EPT_FETCH) !== 0 ? ACCESS_FETCH : 0);
    const r = this.#nptFast &&
        nptFastWalk(s, this.#npt!, mem, ctx, gHi, gLo, acc, sl, sb, sr)
      ? WALK_OK
      : walkInto(s, this.#npt!, mem, ctx, gHi, gLo, acc, 0, sl, sb, sr);
    if (record) this.#refSteps(gl, s.level, s.entryAddr, s.steps);
    if (r === WALK_OK) {
      this.hpa = s.pa;
      if (!table) {
        const fr = s.finalRights;
        this.finalHostRights = (fr & RIGHT_U) === 0 ? 0 : EPT_READ |
          ((fr & RIGHT_W) !== 0 && s.dirty ? EPT_WRITE : 0) |
          ((fr & RIGHT_X) !== 0 ? EPT_FETCH : 0);
      }
      if (nt !== undefined || hp !== undefined) this.#fillNpt(gHi, gLo);
      return true;
    }
    this.#fault(gpa, gl, table, s.leafLevel, s.reason);
    this.outcome = NESTED_NPF;
    // a gpa beyond the nested tables' reach (#GP natively) reports RSVD
    this.npfErrorCode = r === WALK_GP
      ? PFEC_P | PFEC_RSVD | PFEC_U
      : s.errorCode | PFEC_U;
    return false;
  }

  /** Fill the nested TLB and host PSC from a successful EPT walk. */
  #fillEpt(mode: EptMode, gHi: number, gLo: number): void {
    const s = this.#e, ctx = this.hostRoot, last = s.steps - 1;
    const nt = this.nestedTlb, hp = this.hostPsc;
    if (nt !== undefined) {
      let rights = s.finalRights & 7;
      // with EPT A/D, W is cached only once the leaf is dirty (a write
      // through a clean entry must walk to set D, SDM §28.3.5)
      if (mode.ad && (s.lo[last] & 0x200) === 0) rights &= ~EPT_WRITE;
      nt.fill(
        ctx,
        0,
        gHi,
        (gLo & 0xfffff000) >>> 0,
        s.hpa - (gLo & 0xfff),
        rights,
      );
    }
    if (hp !== undefined) {
      for (let i = 0; i < last; i++) {
        const level = s.level[i], sh = 3 + 9 * level;
        const next = (s.hi[i] & mode.addrHi) * 4294967296 +
          ((s.lo[i] & mode.addrLo) >>> 0);
        hp.fill(
          ctx,
          level,
          prefixHi(gHi, gLo, sh),
          prefixLo(gHi, gLo, sh),
          next,
          s.rights[i],
        );
      }
    }
  }

  /** Fill the nested TLB and host PSC from a successful NPT walk. */
  #fillNpt(gHi: number, gLo: number): void {
    const s = this.#n, ctx = this.hostRoot, last = s.steps - 1;
    const nt = this.nestedTlb, hp = this.hostPsc;
    const fr = s.finalRights;
    // NPT walks are user accesses (APM §15.25.5): a supervisor-only leaf
    // allows nothing; W only once the leaf is dirty
    if (nt !== undefined && (fr & RIGHT_U) !== 0) {
      const rights = EPT_READ |
        ((fr & RIGHT_W) !== 0 && s.dirty ? EPT_WRITE : 0) |
        ((fr & RIGHT_X) !== 0 ? EPT_FETCH : 0);
      nt.fill(
        ctx,
        0,
        gHi,
        (gLo & 0xfffff000) >>> 0,
        s.pa - (gLo & 0xfff),
        rights,
      );
    }
    if (hp !== undefined) {
      for (let i = 0; i < last; i++) {
        const level = s.level[i], sh = 3 + 9 * level;
        hp.fill(
          ctx,
          level,
          prefixHi(gHi, gLo, sh),
          prefixLo(gHi, gLo, sh),
          s.base[i + 1],
          s.rights[i],
        );
      }
    }
  }

  #fault(
    gpa: number,
    gl: number,
    table: boolean,
    level: number,
    reason: number,
  ): void {
    this.#faulted = true;
    this.gpa = gpa;
    this.onTableWalk = table;
    this.faultGuestLevel = gl;
    this.hostLevel = level;
    this.hostReason = reason;
  }

  /** The host address of guest entry `addr` (a gpa), walking the second stage once per entry. */
  #entry(addr: number, write: boolean): number {
    // (not `addr % 8`: a double modulo is a slow runtime call)
    const start = addr - ((addr >>> 0) & 7);
    if (addr !== start && start === this.#entryGpa) {
      return this.#entryHpa + (addr - start); // the entry's other half
    }
    if (write) {
      if (start !== this.#entryGpa) {
        // the walker writes A/D in step order; find the entry's level
        const g = this.guest;
        for (let i = 0; i < g.steps; i++) {
          if (g.entryAddr[i] === start) this.#guestLevel = g.level[i];
        }
      }
      const gl = this.#guestLevel;
      const ept = this.#ept !== undefined;
      if (
        !this.#hostWalk(
          start,
          gl,
          ept ? EPT_READ | EPT_WRITE : EPT_WRITE,
          true,
          false,
        )
      ) {
        return -1;
      }
      this.#entryGpa = start;
      this.#entryHpa = this.hpa;
      this.#ref(gl, 0, this.hpa + (addr - start), 1);
      return this.hpa + (addr - start);
    }
    const gl = --this.#guestLevel;
    if (!this.#hostWalk(start, gl, this.#tableAccess, true, true)) return -1;
    this.#entryGpa = start;
    this.#entryHpa = this.hpa;
    this.#ref(gl, 0, this.hpa, 0);
    return this.hpa + (addr - start);
  }

  /** EntryMemory: a guest entry read (gpa). Returns 0 (not present) once the second stage faulted. */
  read32(addr: number): number {
    if (this.#faulted) return 0;
    if (addr - 4 === this.#entryGpa && (addr & 7) === 4) {
      return this.memory.read32(this.#entryHpa + 4); // the entry's high half
    }
    const h = this.#entry(addr, false);
    return h < 0 ? 0 : this.memory.read32(h);
  }

  /** EntryMemory: 16-bit read (unused by 8-byte formats). */
  read16(addr: number): number {
    if (this.#faulted) return 0;
    const h = this.#entry(addr, false);
    return h < 0 ? 0 : this.memory.read16(h);
  }

  /** EntryMemory: 8-bit read (unused by 8-byte formats). */
  read8(addr: number): number {
    if (this.#faulted) return 0;
    const h = this.#entry(addr, false);
    return h < 0 ? 0 : this.memory.read8(h);
  }

  /** EntryMemory: a guest A/D write (dropped once the second stage faulted). */
  write32(addr: number, value: number): void {
    if (this.#faulted) return;
    const h = this.#entry(addr, true);
    if (h >= 0) this.memory.write32(h, value);
  }

  /** EntryMemory: 16-bit write. */
  write16(addr: number, value: number): void {
    if (this.#faulted) return;
    const h = this.#entry(addr, true);
    if (h >= 0) this.memory.write16(h, value);
  }

  /** EntryMemory: 8-bit write. */
  write8(addr: number, value: number): void {
    if (this.#faulted) return;
    const h = this.#entry(addr, true);
    if (h >= 0) this.memory.write8(h, value);
  }

  /** Whether the last walk's access was a write / fetch (for exits). */
  get accessFlags(): number {
    return this.#access;
  }
}

/**
 * The NPT host walk's common case, without the generality of `walkInto`
 * (which dominated the NPT profile): x86-64 tables (NXE on, PKE off), a
 * gpa below 2^47, every entry present with A set and no reserved bit, a
 * 4 KiB leaf, rights allowing the user access, D already set for a write.
 * Exactly then `walkInto` returns WALK_OK and writes nothing; this fills
 * the same scratch fields and returns true. Anything else returns false
 * having written nothing, and the caller runs `walkInto` (large pages,
 * faults, A/D updates). tests/nested_walk_test.ts checks the two agree on
 * random entries.
 *
 * @example
 * ```ts
 * import { nptFastWalk } from "./walk.ts";
 * import { nptMode } from "../../paging/ept.ts";
 * import { PageTable } from "../../paging/builder.ts";
 * import { ACCESS_USER, ACCESS_WRITE, walkInto, WalkScratch, WALK_OK } from "../../paging/walker.ts";
 * import { PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const mem = new PhysicalMemory({ size: 1 << 20 });
 * const mode = nptMode();
 * const npt = new PageTable(mem, { mode });
 * npt.map(0x5000, 0x9000, { user: true, writable: true, executable: true });
 * const s = new WalkScratch();
 * assert.equal(nptFastWalk(s, mode, mem, npt.root, 0, 0x5010, ACCESS_USER), false); // A clear
 * assert.equal(walkInto(s, mode, mem, npt.root, 0, 0x5010, ACCESS_USER), WALK_OK); // sets A
 * assert.equal(nptFastWalk(s, mode, mem, npt.root, 0, 0x5010, ACCESS_USER), true);
 * assert.equal(s.pa, 0x9010);
 * assert.equal(nptFastWalk(s, mode, mem, npt.root, 0, 0x5010, ACCESS_USER | ACCESS_WRITE), false); // D clear
 * ```
 */
export function nptFastWalk(
  s: WalkScratch,
  mode: PagingMode,
  mem: EntryMemory,
  root: number,
  gHi: number,
  gLo: number,
  access: number,
  startLevel = 0,
  startBase = 0,
  startRights = 7,
): boolean {
  if (gHi >= 0x8000) return false;
  const t = mode.tables;
  const rsvdLo = t.rsvdLo, rsvdHi = t.rsvdHi;
  const addrLo = t.addrLo, addrHi = t.addrHi;
  let level = startLevel === 0 ? mode.format.levels.length : startLevel;
  let base = startLevel === 0 ? root : startBase;
  let rights = startRights;
  let i = 0, lo = 0, hi = 0;
  const pm = mem instanceof PhysicalMemory ? mem : undefined;
  for (;;) {
    const shift = 3 + 9 * level;
    const idx = shift >= 32
      ? (gHi >>> (shift - 32)) & 511
      : shift > 23
      ? ((gLo >>> shift) | (gHi << (32 - shift))) & 511
      : (gLo >>> shift) & 511;
    const ea = base + idx * 8;
    if (pm !== undefined) {
      lo = pm.readEntryLo(ea);
      hi = pm.entryHi;
    } else {
      lo = mem.read32(ea);
      hi = mem.read32(ea + 4);
    }
    // P (bit 0) and A (bit 5); PS (bit 7) above level 1: let walkInto decide
    if (
      (lo & 0x21) !== 0x21 || (level > 1 && (lo & 0x80) !== 0) ||
      (lo & rsvdLo[2 * level]) !== 0 || (hi & rsvdHi[2 * level]) !== 0
    ) return false;
    // W bit 1, U bit 2, NX bit 63 → RIGHT_W 1, RIGHT_U 2, RIGHT_X 4
    rights &= ((lo >>> 1) & 3) | ((hi & 0x80000000) !== 0 ? 0 : 4);
    s.level[i] = level;
    s.base[i] = base;
    s.index[i] = idx;
    s.entryAddr[i] = ea;
    s.lo[i] = lo;
    s.hi[i] = hi;
    s.rights[i] = rights;
    i++;
    base = (hi & addrHi) * 4294967296 + ((lo & addrLo) >>> 0);
    if (level === 1) break;
    level--;
  }
  const dirty = (lo & 0x40) !== 0;
  if (
    (rights & RIGHT_U) === 0 ||
    ((access & ACCESS_WRITE) !== 0 && ((rights & RIGHT_W) === 0 || !dirty)) ||
    ((access & ACCESS_FETCH) !== 0 && (rights & RIGHT_X) === 0)
  ) return false;
  s.steps = i;
  s.aSet = 0;
  s.dSet = false;
  s.errorCode = 0;
  s.reason = 0;
  s.pkey = 0;
  s.global = mode.pge && (lo & 0x100) !== 0;
  s.dirty = dirty;
  s.finalRights = rights;
  s.leafLevel = 1;
  s.leafFound = true;
  s.pageShift = 12;
  s.pa = base + (gLo & 0xfff);
  s.outcome = WALK_OK;
  return true;
}

/** One memory reference of a nested walk, tagged. */
export interface NestedRef {
  /** 1-based order. */
  readonly n: number;
  /** Guest level of the entry this reference serves, or "data" (final gpa / data). */
  readonly guest: number | "data";
  /** Host (second-stage) level, or "guest entry" / "data" for the reference itself. */
  readonly host: number | "guest entry" | "data";
  /** Read or write (guest A/D update; the data write). */
  readonly op: "read" | "write";
  /** Host-physical address referenced (-1 when skipped). */
  readonly hpa: number;
  /** Present when the reference was skipped: which cache made it unnecessary. */
  readonly cached?: SkipReason;
}

/** Decoded EPT-violation exit qualification (SDM Table 28-7). */
export interface EptQualification {
  /** The raw bits. */
  readonly raw: number;
  /** Bit 0: data read. */
  readonly read: boolean;
  /** Bit 1: data write (also set for guest-table accesses with EPT A/D). */
  readonly write: boolean;
  /** Bit 2: instruction fetch. */
  readonly fetch: boolean;
  /** Bits 3..5: the AND of R/W/X over the EPT entries used. */
  readonly readable: boolean;
  /** Bit 4. */
  readonly writable: boolean;
  /** Bit 5. */
  readonly executable: boolean;
  /** Bit 7: the guest linear-address field is valid. */
  readonly linearValid: boolean;
  /** Bit 8 (with bit 7): 1 = the final translation, 0 = a guest paging-structure access. */
  readonly finalTranslation: boolean;
}

/** Decoded #NPF EXITINFO1 (APM §15.25.6). */
export interface NpfErrorCode {
  /** The low 32 bits (a #PF error code). */
  readonly low: number;
  /** Bit 0: the nested entry was present. */
  readonly present: boolean;
  /** Bit 1: write. */
  readonly write: boolean;
  /** Bit 2: user (always, for nested walks). */
  readonly user: boolean;
  /** Bit 3: reserved bit set. */
  readonly reserved: boolean;
  /** Bit 4: instruction fetch. */
  readonly fetch: boolean;
  /** Bit 32: fault on the final gpa translation. */
  readonly finalGpa: boolean;
  /** Bit 33: fault on a guest page-table access. */
  readonly guestTable: boolean;
}

/** The outcome of a nested walk: a closed tagged union. */
export type NestedOutcome =
  | { readonly kind: "ok"; readonly gpa: number; readonly hpa: number }
  | {
    readonly kind: "page-fault";
    readonly errorCode: number;
    readonly reason: string;
    readonly level: number;
  }
  | { readonly kind: "gp"; readonly reason: string }
  | {
    readonly kind: "ept-violation";
    readonly gpa: number;
    readonly onTableWalk: boolean;
    readonly guestLevel: number;
    readonly hostLevel: number;
    readonly reason: string;
    readonly qualification: EptQualification;
  }
  | {
    readonly kind: "ept-misconfig";
    readonly gpa: number;
    readonly guestLevel: number;
    readonly hostLevel: number;
    readonly reason: string;
  }
  | {
    readonly kind: "npf";
    readonly gpa: number;
    readonly guestLevel: number;
    readonly hostLevel: number;
    readonly reason: string;
    readonly errorCode: NpfErrorCode;
  };

/**
 * Decode an EPT-violation exit qualification.
 *
 * @example
 * ```ts
 * import { decodeQualification } from "./walk.ts";
 * import assert from "node:assert/strict";
 * const q = decodeQualification(0x183);
 * assert.equal(q.read && q.write && q.finalTranslation, true);
 * assert.equal(q.readable, false);
 * ```
 */
export function decodeQualification(raw: number): EptQualification {
  return {
    raw,
    read: (raw & EXITQ_READ) !== 0,
    write: (raw & EXITQ_WRITE) !== 0,
    fetch: (raw & EXITQ_FETCH) !== 0,
    readable: (raw & EXITQ_READABLE) !== 0,
    writable: (raw & EXITQ_WRITABLE) !== 0,
    executable: (raw & EXITQ_EXECUTABLE) !== 0,
    linearValid: (raw & EXITQ_GLA_VALID) !== 0,
    finalTranslation: (raw & EXITQ_FINAL) !== 0,
  };
}

/**
 * The outcome of the walker's last walk as plain data.
 *
 * @example
 * ```ts
 * import { NestedWalker, nestedOutcome } from "./walk.ts";
 * import { EPT_4LEVEL, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const host = new PhysicalMemory({ size: 1 << 16 });
 * const w = new NestedWalker(pagingMode(X86_64_4LEVEL), { kind: "ept", mode: eptMode(EPT_4LEVEL) }, host, 0x1000);
 * w.walk(0x2000, 0, 0x1000, 0);               // empty EPT: the guest root's gpa faults
 * const o = nestedOutcome(w);
 * assert.equal(o.kind === "ept-violation" && o.onTableWalk && o.guestLevel, 4);
 * assert.equal(o.kind === "ept-violation" && o.gpa, 0x2000);
 * ```
 */
export function nestedOutcome(w: NestedWalker): NestedOutcome {
  switch (w.outcome) {
    case NESTED_OK:
      return { kind: "ok", gpa: w.gpa, hpa: w.hpa };
    case NESTED_GUEST_PF:
      return {
        kind: "page-fault",
        errorCode: w.guest.errorCode,
        reason: FAULT_REASONS[w.guest.reason] ?? "unknown",
        level: w.guest.leafLevel,
      };
    case NESTED_GUEST_GP:
      return { kind: "gp", reason: FAULT_REASONS[w.guest.reason] ?? "unknown" };
    case NESTED_EPT_VIOLATION:
      return {
        kind: "ept-violation",
        gpa: w.gpa,
        onTableWalk: w.onTableWalk,
        guestLevel: w.faultGuestLevel,
        hostLevel: w.hostLevel,
        reason: EPT_REASONS[w.hostReason] ?? "unknown",
        qualification: decodeQualification(w.exitQualification),
      };
    case NESTED_EPT_MISCONFIG:
      return {
        kind: "ept-misconfig",
        gpa: w.gpa,
        guestLevel: w.faultGuestLevel,
        hostLevel: w.hostLevel,
        reason: EPT_REASONS[w.hostReason] ?? "unknown",
      };
    default: {
      const e = w.npfErrorCode;
      return {
        kind: "npf",
        gpa: w.gpa,
        guestLevel: w.faultGuestLevel,
        hostLevel: w.hostLevel,
        reason: FAULT_REASONS[w.hostReason] ?? "unknown",
        errorCode: {
          low: e,
          present: (e & PFEC_P) !== 0,
          write: (e & PFEC_W) !== 0,
          user: (e & PFEC_U) !== 0,
          reserved: (e & PFEC_RSVD) !== 0,
          fetch: (e & PFEC_ID) !== 0,
          finalGpa: !w.onTableWalk,
          guestTable: w.onTableWalk,
        },
      };
    }
  }
}

/**
 * The references of the walker's last walk as plain tagged data.
 *
 * @example
 * ```ts
 * import { NestedWalker, nestedRefs } from "./walk.ts";
 * import { EPT_4LEVEL, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const host = new PhysicalMemory({ size: 1 << 16 });
 * const w = new NestedWalker(pagingMode(X86_64_4LEVEL), { kind: "ept", mode: eptMode(EPT_4LEVEL) }, host, 0x1000);
 * w.walk(0x2000, 0, 0x1000, 0);
 * assert.deepEqual(nestedRefs(w)[0], { n: 1, guest: 4, host: 4, op: "read", hpa: 0x1000 });
 * ```
 */
export function nestedRefs(w: NestedWalker): NestedRef[] {
  const out: NestedRef[] = [];
  for (let i = 0; i < w.refs; i++) {
    const g = w.refGuest[i], h = w.refHost[i];
    const skip = w.refSkip[i];
    const ref: NestedRef = {
      n: i + 1,
      guest: g === 0 ? "data" : g,
      host: h !== 0 ? h : g === 0 ? "data" : "guest entry",
      op: w.refWrite[i] === 1 ? "write" : "read",
      hpa: w.refAddr[i],
    };
    out.push(
      skip === SKIP_NONE
        ? ref
        : { ...ref, cached: SKIP_NAMES[skip] as SkipReason },
    );
  }
  return out;
}
