/**
 * The one walker. Every format (x86 32-bit, PAE, 4-level, 5-level, radix
 * teaching geometries) goes through {@linkcode walkInto}, which allocates
 * nothing: it fills a reusable {@linkcode WalkScratch}. The rich, immutable
 * record for display and for other consumers is built from the scratch by
 * `walk()` in `record.ts`.
 *
 * Order of checks (Intel SDM Vol. 3 §4.5–§4.8, and Xen's `guest_walk.c`):
 * translation first (present, reserved bits, level by level), then rights
 * (the AND of every entry on the path checked against the mode's rules),
 * then A/D: A is set on every entry used and D on the leaf for writes, and
 * only when the access succeeds (as KVM's software walker does; hardware may
 * set A bits on a walk that later faults — not modelled).
 *
 * @module
 */

import { bitsOf } from "../address/address.ts";
import type { PagingMode } from "./mode.ts";

/** Memory the walker reads entries from and writes A/D bits to. */
export interface EntryMemory {
  /** Read one byte. */
  read8(addr: number): number;
  /** Read a little-endian 16-bit value. */
  read16(addr: number): number;
  /** Read a little-endian unsigned 32-bit value. */
  read32(addr: number): number;
  /** Write one byte. */
  write8(addr: number, value: number): void;
  /** Write a little-endian 16-bit value. */
  write16(addr: number, value: number): void;
  /** Write a little-endian 32-bit value. */
  write32(addr: number, value: number): void;
}

/** Access flag: a write (else a read, unless {@linkcode ACCESS_FETCH}). */
export const ACCESS_WRITE = 1;
/** Access flag: an instruction fetch. */
export const ACCESS_FETCH = 2;
/** Access flag: CPL = 3. */
export const ACCESS_USER = 4;
/** Access flag: implicit supervisor access (GDT/IDT/TSS loads), whatever the CPL. */
export const ACCESS_IMPLICIT = 8;
/** Access flag: EFLAGS.AC = 1 (lets explicit supervisor accesses reach user pages under SMAP). */
export const ACCESS_AC = 16;

/** Rights bit: writable on every level. */
export const RIGHT_W = 1;
/** Rights bit: user-accessible on every level. */
export const RIGHT_U = 2;
/** Rights bit: executable on every level. */
export const RIGHT_X = 4;

/** Walk outcome code: translation succeeded and the access is allowed. */
export const WALK_OK = 0;
/** Walk outcome code: page fault (#PF). */
export const WALK_PF = 1;
/** Walk outcome code: general protection (#GP). */
export const WALK_GP = 2;

/** #PF error code bits (SDM §4.7). */
export const PFEC_P = 1,
  PFEC_W = 2,
  PFEC_U = 4,
  PFEC_RSVD = 8,
  PFEC_ID = 16,
  PFEC_PK = 32;

/** Fault reasons, as numbers on the hot path; names in {@linkcode FAULT_REASONS}. */
export const Reason = {
  None: 0,
  NotPresent: 1,
  Reserved: 2,
  UserSupervisor: 3,
  WriteProtect: 4,
  NoExecute: 5,
  Smep: 6,
  Smap: 7,
  Pkey: 8,
  NonCanonical: 9,
  PdpteReserved: 10,
} as const;

/** Reason names indexed by the numeric reason. */
export const FAULT_REASONS = [
  "none",
  "not-present",
  "reserved-bit",
  "user-supervisor",
  "write-protect",
  "no-execute",
  "smep",
  "smap",
  "pkey",
  "non-canonical",
  "pdpte-reserved",
] as const;

/** A fault reason name. */
export type FaultReason = (typeof FAULT_REASONS)[number];

/** Maximum levels a format may have (see `validateFormat`). */
export const MAX_LEVELS = 8;

/**
 * Reusable, preallocated state of one walk. Per step `i` (0 = first table
 * read): the level, table base, index, entry address, entry as read, and
 * rights accumulated so far. Then the outcome.
 *
 * @example
 * ```ts
 * import { WalkScratch } from "./walker.ts";
 * import assert from "node:assert/strict";
 * const s = new WalkScratch();
 * assert.equal(s.steps, 0);
 * ```
 */
export class WalkScratch {
  /** Level of each step. */
  readonly level: Uint8Array = new Uint8Array(MAX_LEVELS);
  /** Table base address of each step. */
  readonly base: Float64Array = new Float64Array(MAX_LEVELS);
  /** Index into the table at each step. */
  readonly index: Int32Array = new Int32Array(MAX_LEVELS);
  /** Entry address of each step. */
  readonly entryAddr: Float64Array = new Float64Array(MAX_LEVELS);
  /** Entry low dword as read (before A/D updates). */
  readonly lo: Uint32Array = new Uint32Array(MAX_LEVELS);
  /** Entry high dword as read. */
  readonly hi: Uint32Array = new Uint32Array(MAX_LEVELS);
  /** Rights (RIGHT_*) accumulated after each step. */
  readonly rights: Uint8Array = new Uint8Array(MAX_LEVELS);
  /** Number of steps made. */
  steps = 0;
  /** WALK_OK, WALK_PF or WALK_GP. */
  outcome: number = WALK_OK;
  /** Translated physical address (ok). */
  pa = 0;
  /** log2 of the mapped page size (ok). */
  pageShift = 0;
  /** Level of the leaf (ok) or of the faulting entry (fault; 0 if none). */
  leafLevel = 0;
  /** Final rights (ok, or protection fault). */
  finalRights = 0;
  /** Protection key of the leaf (4/5-level). */
  pkey = 0;
  /** Leaf is global (G = 1 and CR4.PGE = 1). */
  global = false;
  /** Leaf D bit after the walk. */
  dirty = false;
  /** Steps whose A bit this walk set (bit i = step i). */
  aSet = 0;
  /** Whether this walk set the leaf's D bit. */
  dSet = false;
  /** Whether the last step read a leaf (ok, or a rights fault after it). */
  leafFound = false;
  /** #PF error code. */
  errorCode = 0;
  /** Numeric fault reason ({@linkcode Reason}). */
  reason = 0;
}

/**
 * Whether `hi:lo` is a valid linear address for the mode: canonical for
 * x86-64 (bits 63..vaBits-1 all equal, SDM §3.3.7.1), below 2^vaBits
 * otherwise.
 *
 * @example
 * ```ts
 * import { isCanonical } from "./walker.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL, X86_64_5LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * const m4 = pagingMode(X86_64_4LEVEL);
 * assert.equal(isCanonical(m4, 0xffff8880, 0), true);
 * assert.equal(isCanonical(m4, 0x00008000, 0), false);
 * assert.equal(isCanonical(pagingMode(X86_64_5LEVEL), 0x00ff0000, 0), true);
 * ```
 */
export function isCanonical(mode: PagingMode, hi: number, lo: number): boolean {
  const vb = mode.format.vaBits;
  if (mode.format.canonical === "sign") {
    const s = vb - 1 - 32; // bit vaBits-1 within hi
    const top = hi >>> s;
    // all ones in the top 32 - s bits; `>>>` instead of `2 **` (a libm
    // pow call per walk)
    return top === 0 ||
      top === (s >= 0 && s < 32 ? 0xffffffff >>> s : (2 ** (32 - s)) - 1);
  }
  if (vb >= 64) return true;
  if (vb > 32) return (hi >>> (vb - 32)) === 0;
  return hi === 0 && (vb === 32 || (lo >>> vb) === 0);
}

function fault(
  s: WalkScratch,
  mode: PagingMode,
  access: number,
  level: number,
  reason: number,
  extra: number,
): number {
  const user = (access & ACCESS_USER) !== 0 && (access & ACCESS_IMPLICIT) === 0;
  let ec = extra;
  if (access & ACCESS_WRITE) ec |= PFEC_W;
  if (user) ec |= PFEC_U;
  if ((access & ACCESS_FETCH) && mode.reportsFetch) ec |= PFEC_ID;
  s.outcome = WALK_PF;
  s.errorCode = ec;
  s.reason = reason;
  s.leafLevel = level;
  return WALK_PF;
}

/**
 * Check an access against accumulated rights (SDM §4.6). Returns a
 * {@linkcode Reason} (0 = allowed); sets `PFEC_PK` in the returned high
 * bits (`reason | PFEC_PK << 8`) when a protection-key violation is part of
 * the fault. Pure; shared by the walker and the TLB hit path.
 *
 * @example
 * ```ts
 * import { checkRights, RIGHT_U, RIGHT_X, ACCESS_WRITE, ACCESS_USER } from "./walker.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * const m = pagingMode(X86_64_4LEVEL);
 * // user write to a read-only user page: write-protect (reason 4)
 * assert.equal(checkRights(m, RIGHT_U | RIGHT_X, 0, ACCESS_WRITE | ACCESS_USER, 0), 4);
 * ```
 */
export function checkRights(
  mode: PagingMode,
  rights: number,
  pkey: number,
  access: number,
  pkru: number,
): number {
  const user = (access & ACCESS_USER) !== 0 && (access & ACCESS_IMPLICIT) === 0;
  const write = (access & ACCESS_WRITE) !== 0;
  const fetch = (access & ACCESS_FETCH) !== 0;
  const userAddr = (rights & RIGHT_U) !== 0;
  let reason: number = 0;
  if (user) {
    if (!userAddr) reason = Reason.UserSupervisor;
    else if (write && !(rights & RIGHT_W)) reason = Reason.WriteProtect;
    else if (fetch && !(rights & RIGHT_X)) reason = Reason.NoExecute;
  } else if (fetch) {
    if (userAddr && mode.smep) reason = Reason.Smep;
    else if (!(rights & RIGHT_X)) reason = Reason.NoExecute;
  } else {
    if (
      userAddr && mode.smap &&
      ((access & ACCESS_IMPLICIT) !== 0 || (access & ACCESS_AC) === 0)
    ) {
      reason = Reason.Smap;
    } else if (write && mode.wp && !(rights & RIGHT_W)) {
      reason = Reason.WriteProtect;
    }
  }
  // Protection keys (SDM §4.6.2): data accesses to user-mode addresses.
  if (mode.pke && userAddr && !fetch) {
    const ad = (pkru >>> (2 * pkey)) & 1;
    const wd = (pkru >>> (2 * pkey + 1)) & 1;
    if (ad || (wd && write && (user || mode.wp))) {
      return (reason === 0 ? Reason.Pkey : reason) | (PFEC_PK << 8);
    }
  }
  return reason;
}

/**
 * Walk the tables of `mode` rooted at `root` for the linear address
 * `vaHi:vaLo` and the access `access` (ACCESS_* flags), filling `s`.
 * Returns the outcome code. Allocation-free.
 *
 * `startLevel`, `startBase` and `startRights` resume a walk below the root
 * (a paging-structure-cache hit, or PAE's PDPTE registers); by default the
 * walk starts at the root. `setAD: false` makes a software lookup that
 * writes nothing.
 *
 * @example
 * ```ts
 * import { walkInto, WalkScratch, WALK_OK, ACCESS_WRITE } from "./walker.ts";
 * import { pagingMode } from "./mode.ts";
 * import { OSTEP_15BIT } from "./format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const mem = new PhysicalMemory({ size: 4096 });
 * // root table at frame 1 (0x20), leaf table at frame 2 (0x40), page in frame 9
 * mem.write8(0x20 + 0, 0x80 | 2);
 * mem.write8(0x40 + 3, 0x80 | 9);
 * const s = new WalkScratch();
 * const r = walkInto(s, pagingMode(OSTEP_15BIT), mem, 0x20, 0, (3 << 5) | 7, ACCESS_WRITE);
 * assert.equal(r, WALK_OK);
 * assert.equal(s.pa, 9 * 32 + 7);
 * ```
 */
export function walkInto(
  s: WalkScratch,
  mode: PagingMode,
  mem: EntryMemory,
  root: number,
  vaHi: number,
  vaLo: number,
  access: number,
  pkru = 0,
  startLevel = 0,
  startBase = 0,
  startRights = 7,
  setAD = true,
): number {
  const f = mode.format;
  const t = mode.tables;
  const fb = f.bits;
  const eb = f.entryBytes;
  s.steps = 0;
  s.aSet = 0;
  s.dSet = false;
  s.errorCode = 0;
  s.reason = 0;
  s.pkey = 0;
  s.global = false;
  s.dirty = false;
  s.finalRights = 0;
  s.leafLevel = 0;
  s.leafFound = false;
  if (!isCanonical(mode, vaHi, vaLo)) {
    s.outcome = WALK_GP;
    s.reason = Reason.NonCanonical;
    return WALK_GP;
  }
  let level = startLevel === 0 ? f.levels.length : startLevel;
  let base = startLevel === 0 ? root : startBase;
  let rights = startRights;
  // Named bits as (lo, hi) word masks, 0 for an absent bit: tests are then
  // `(lo & mLo) | (hi & mHi)`, which keeps this function small enough for
  // V8 to inline the memory reads.
  const m = bitMasks(f);
  const aLo = m[M_A], aHi = m[M_A + 1], hasA = (aLo | aHi) !== 0;
  // Steps whose entry has an A bit that is still clear: when none is (and
  // no D is due), the A/D pass below is skipped (the steady state).
  let missingA = 0;
  const wLo = m[M_W], wHi = m[M_W + 1], hasW = (wLo | wHi) !== 0;
  const uLo = m[M_U], uHi = m[M_U + 1], hasU = (uLo | uHi) !== 0;
  const xLo = m[M_X], xHi = m[M_X + 1], hasX = (xLo | xHi) !== 0;
  const nxLo = mode.nxe ? m[M_NX] : 0, nxHi = mode.nxe ? m[M_NX + 1] : 0;
  const x86 = f.kind !== "radix";
  const addrLo = t.addrLo, addrHi = t.addrHi;
  // the scratch arrays, loaded once (the memory reads are opaque calls)
  const sLevel = s.level, sBase = s.base, sIndex = s.index;
  const sEntry = s.entryAddr, sLo = s.lo, sHi = s.hi, sRights = s.rights;
  let lo = 0, hi = 0, leafShift = 0, pa = 0;
  for (;;) {
    const shift = t.shift[level];
    const idx = bitsOf(vaHi, vaLo, shift, t.bits[level]);
    const ea = base + idx * eb;
    if (eb === 8) {
      lo = mem.read32(ea);
      hi = mem.read32(ea + 4);
    } else if (eb === 4) {
      lo = mem.read32(ea);
      hi = 0;
    } else if (eb === 2) {
      lo = mem.read16(ea);
      hi = 0;
    } else {
      lo = mem.read8(ea);
      hi = 0;
    }
    const i = s.steps++;
    sLevel[i] = level;
    sBase[i] = base;
    sIndex[i] = idx;
    sEntry[i] = ea;
    sLo[i] = lo;
    sHi[i] = hi;
    sRights[i] = rights;
    if (
      hasA && ((lo & aLo) | (hi & aHi)) === 0 &&
      f.levels[f.levels.length - level].hasAccessed
    ) missingA |= 1 << i;
    if (((lo & m[M_P]) | (hi & m[M_P + 1])) === 0) {
      return fault(s, mode, access, level, Reason.NotPresent, 0);
    }
    const ps = t.psLeaf[level] === 1 &&
        ((lo & m[M_PS]) | (hi & m[M_PS + 1])) !== 0
      ? 1
      : 0;
    // Reserved bits: a level that cannot map a page has PS in its mask. The
    // mask is chosen by the *effective* PS (`ps`): with CR4.PSE = 0 a 32-bit
    // PDE's bit 7 is ignored (SDM Table 4-5) and bits 21:13 are table address.
    const k = 2 * level + ps;
    if ((lo & t.rsvdLo[k]) !== 0 || (hi & t.rsvdHi[k]) !== 0) {
      if (f.pdpteRegisters && level === f.levels.length && startLevel === 0) {
        // PAE PDPTEs are checked when MOV to CR3 loads them: #GP(0).
        s.outcome = WALK_GP;
        s.reason = Reason.PdpteReserved;
        s.leafLevel = level;
        return WALK_GP;
      }
      return fault(s, mode, access, level, Reason.Reserved, PFEC_P | PFEC_RSVD);
    }
    if (t.hasRights[level] === 1) {
      // an absent bit (mask 0) never restricts
      let r = RIGHT_W | RIGHT_U | RIGHT_X;
      if (hasW && ((lo & wLo) | (hi & wHi)) === 0) r &= ~RIGHT_W;
      if (hasU && ((lo & uLo) | (hi & uHi)) === 0) r &= ~RIGHT_U;
      if (((lo & nxLo) | (hi & nxHi)) !== 0) r &= ~RIGHT_X; // XD, with NXE
      if (hasX && ((lo & xLo) | (hi & xHi)) === 0) r &= ~RIGHT_X;
      rights &= r;
      sRights[i] = rights;
    }
    if (level === 1 || ps === 1) {
      s.leafFound = true;
      leafShift = shift;
      // a base-size leaf inline (what leafAddress does for it), so that no
      // call boxes the address halves; large pages and wide shifts call out
      pa = ps === 0 && shift < 32
        ? nextTable(mode, lo, hi) + ((vaLo & LOW_MASK[shift]) >>> 0)
        : leafAddress(mode, lo, hi, ps === 1, vaHi, vaLo, shift);
      break;
    }
    // (nextTable's x86 case, inline)
    base = x86
      ? (hi & addrHi) * 4294967296 + ((lo & addrLo) >>> 0)
      : nextTable(mode, lo, hi);
    level--;
  }
  s.leafLevel = level;
  s.pageShift = leafShift;
  s.pa = pa;
  s.finalRights = rights;
  if (mode.pke) s.pkey = (hi >>> (fb.pkey - 32)) & 15;
  s.global = mode.pge && ((lo & m[M_G]) | (hi & m[M_G + 1])) !== 0;
  s.dirty = ((lo & m[M_D]) | (hi & m[M_D + 1])) !== 0;
  // Without protection keys the verdict depends only on (mode, rights,
  // access): look it up in a table that checkRights itself filled.
  const table = mode.pke ? undefined : verdicts(mode);
  const chk = table === undefined
    ? checkRights(mode, rights, s.pkey, access, pkru)
    : table[((rights & 7) << 5) | (access & 31)];
  if (chk !== 0) {
    return fault(s, mode, access, level, chk & 0xff, PFEC_P | (chk >>> 8));
  }
  s.outcome = WALK_OK;
  if (
    setAD &&
    (missingA !== 0 ||
      ((access & ACCESS_WRITE) !== 0 && fb.dirty >= 0 && !s.dirty))
  ) {
    setAccessedDirty(s, f, mem, access);
  }
  return WALK_OK;
}

/**
 * The A/D pass of a successful walk (SDM §4.8): A on every entry used that
 * has one and lacks it, D on the leaf for writes. Kept out of `walkInto`,
 * which calls it only when there is something to write.
 */
function setAccessedDirty(
  s: WalkScratch,
  f: PagingMode["format"],
  mem: EntryMemory,
  access: number,
): void {
  const fb = f.bits;
  const eb = f.entryBytes;
  const ab = fb.accessed;
  const n = f.levels.length;
  const last = s.steps - 1;
  for (let i = 0; i <= last; i++) {
    let add = 0;
    const elo = s.lo[i], ehi = s.hi[i];
    // (A already set, the steady state, is tested first: cheapest)
    if (
      ab >= 0 && !bitSet(elo, ehi, ab) && f.levels[n - s.level[i]].hasAccessed
    ) {
      add = ab;
      s.aSet |= 1 << i;
    }
    let addD = -1;
    if (
      i === last && (access & ACCESS_WRITE) !== 0 && fb.dirty >= 0 && !s.dirty
    ) {
      addD = fb.dirty;
      s.dSet = true;
      s.dirty = true;
    }
    if ((s.aSet & (1 << i)) !== 0 || addD >= 0) {
      writeBits(
        mem,
        s.entryAddr[i],
        eb,
        elo,
        ehi,
        (s.aSet & (1 << i)) !== 0 ? add : -1,
        addD,
      );
    }
  }
}

function writeBits(
  mem: EntryMemory,
  ea: number,
  eb: number,
  lo: number,
  hi: number,
  bitA: number,
  bitD: number,
): void {
  let nlo = lo, nhi = hi;
  if (bitA >= 0) {
    if (bitA < 32) nlo = (nlo | (1 << bitA)) >>> 0;
    else nhi = (nhi | (1 << (bitA - 32))) >>> 0;
  }
  if (bitD >= 0) {
    if (bitD < 32) nlo = (nlo | (1 << bitD)) >>> 0;
    else nhi = (nhi | (1 << (bitD - 32))) >>> 0;
  }
  if (nlo !== lo) {
    if (eb === 1) mem.write8(ea, nlo);
    else if (eb === 2) mem.write16(ea, nlo);
    else mem.write32(ea, nlo);
  }
  if (nhi !== hi) mem.write32(ea + 4, nhi);
}

const verdictCache = new WeakMap<object, Uint8Array>();
let lastVerdictMode: object | undefined = undefined;
let lastVerdicts: Uint8Array = new Uint8Array(256);

/**
 * `checkRights(mode, rights, 0, access, 0)` for every rights value (3 bits)
 * and access flag set (5 bits), at `(rights << 5) | access`; valid when
 * CR4.PKE = 0 (then the key and PKRU do not matter). Cached per mode;
 * undefined for a mode that is not frozen (pagingMode freezes its result),
 * since it could change: the caller then calls checkRights itself.
 */
function verdicts(mode: PagingMode): Uint8Array | undefined {
  // two entries: a nested walk alternates guest and NPT modes
  return mode === lastVerdictMode
    ? lastVerdicts
    : mode === prevVerdictMode
    ? prevVerdicts
    : computeVerdicts(mode);
}

let prevVerdictMode: object | undefined = undefined;
let prevVerdicts: Uint8Array = lastVerdicts;

function computeVerdicts(mode: PagingMode): Uint8Array | undefined {
  if (!Object.isFrozen(mode)) return undefined;
  prevVerdictMode = lastVerdictMode;
  prevVerdicts = lastVerdicts;
  let v = verdictCache.get(mode);
  if (v === undefined) {
    v = new Uint8Array(256);
    for (let r = 0; r < 8; r++) {
      for (let a = 0; a < 32; a++) {
        v[(r << 5) | a] = checkRights(mode, r, 0, a, 0);
      }
    }
    verdictCache.set(mode, v);
  }
  lastVerdictMode = mode;
  lastVerdicts = v;
  return v;
}

// Offsets into the mask array of `bitMasks` (lo word; hi word at +1).
const M_P = 0,
  M_PS = 2,
  M_W = 4,
  M_U = 6,
  M_NX = 8,
  M_X = 10,
  M_G = 12,
  M_D = 14,
  M_A = 16;

const maskCache = new WeakMap<object, Uint32Array>();
let lastFormat: object | undefined = undefined;
let lastMasks: Uint32Array = new Uint32Array(18);

/**
 * Word masks of a format's named bits. Cached per frozen (validated)
 * format; an unfrozen descriptor is recomputed every time, since it could
 * change between walks.
 */
function bitMasks(f: PagingMode["format"]): Uint32Array {
  return f === lastFormat ? lastMasks : computeMasks(f);
}

function computeMasks(f: PagingMode["format"]): Uint32Array {
  let masks = maskCache.get(f);
  if (masks === undefined) {
    const b = f.bits;
    masks = new Uint32Array(18);
    const bits = [
      b.present,
      b.pageSize,
      b.writable,
      b.user,
      b.noExec,
      b.exec,
      b.global,
      b.dirty,
      b.accessed,
    ];
    bits.forEach((bit, j) => {
      if (bit >= 0 && bit < 32) masks![2 * j] = 2 ** bit;
      else if (bit >= 32 && bit < 64) masks![2 * j + 1] = 2 ** (bit - 32);
    });
    if (!Object.isFrozen(f) || !Object.isFrozen(b)) return masks;
    maskCache.set(f, masks);
  }
  lastFormat = f;
  lastMasks = masks;
  return masks;
}

function bitSet(lo: number, hi: number, bit: number): boolean {
  if (bit < 0) return false;
  return bit < 32 ? ((lo >>> bit) & 1) === 1 : ((hi >>> (bit - 32)) & 1) === 1;
}

function nextTable(mode: PagingMode, lo: number, hi: number): number {
  const f = mode.format;
  if (f.kind !== "radix") {
    return (hi & mode.tables.addrHi) * 4294967296 +
      ((lo & mode.tables.addrLo) >>> 0);
  }
  return fieldOf(lo, hi, f.frameLow, f.frameWidth) * 2 ** f.pageShift;
}

function fieldOf(lo: number, hi: number, low: number, width: number): number {
  if (width <= 31) return bitsOf(hi, lo, low, width);
  const a = bitsOf(hi, lo, low, 16);
  const b = bitsOf(hi, lo, low + 16, width - 16);
  return b * 65536 + a;
}

/** `LOW_MASK[k]` = 2^k − 1 for k in 0..32 (avoids `2 ** k` on the hot path). */
const LOW_MASK = Uint32Array.from({ length: 33 }, (_, k) => 2 ** k - 1);

function leafAddress(
  mode: PagingMode,
  lo: number,
  hi: number,
  large: boolean,
  vaHi: number,
  vaLo: number,
  shift: number,
): number {
  const f = mode.format;
  const off = shift >= 32
    ? (vaHi & LOW_MASK[shift - 32]) * 4294967296 + vaLo
    : (vaLo & LOW_MASK[shift]) >>> 0;
  if (!large) return nextTable(mode, lo, hi) + off;
  if (f.kind === "x86-32") {
    // PSE-36: PA bits 31:22 from PDE 31:22, PA bits 39:32 from PDE 20:13.
    return ((lo & 0xffc00000) >>> 0) +
      ((lo >>> 13) & 0xff) * 4294967296 + off;
  }
  // 2 MiB / 1 GiB: the address field above the page boundary (bit 12 is PAT;
  // the bits between are reserved and were checked).
  const frameLo = shift >= 32 ? 0 : (mode.tables.addrLo & ~LOW_MASK[shift]);
  const frameHi = shift >= 32
    ? mode.tables.addrHi & ~LOW_MASK[shift - 32]
    : mode.tables.addrHi;
  return (hi & frameHi) * 4294967296 + ((lo & frameLo) >>> 0) + off;
}
