/**
 * Second-stage (guest-physical → host-physical) formats as data.
 *
 * Intel **EPT** (SDM Vol. 3 §28.3): R/W/X in bits 2:0 (an entry is present
 * when any of them is set), memory type in bits 5:3 and ignore-PAT in bit
 * 6 of leaves, page size in bit 7, accessed and dirty in bits 8 and 9 when
 * the EPTP enables them (§28.3.5), 2 MiB and 1 GiB leaves, 4- and 5-level
 * EPTP. Misconfigurations (§28.3.3.1: a present entry the processor cannot
 * use) are kept apart from violations (§28.3.3.2: not present, or the
 * access is not permitted). {@linkcode eptWalkInto} is the EPT walker:
 * allocation-free, like `walkInto`, filling an {@linkcode EptScratch}.
 *
 * AMD **NPT** (APM Vol. 2 §15.25) needs no new format: the nested tables
 * are x86-64 tables walked as *user* accesses (U/S and NX apply; guest
 * page-table reads are user reads). {@linkcode nptMode} builds that mode.
 *
 * @module
 */

import type { LevelSpec } from "./format.ts";
import { X86_64_4LEVEL, X86_64_5LEVEL } from "./format.ts";
import { type PagingMode, pagingMode } from "./mode.ts";
import type { EntryMemory } from "./walker.ts";
import { PhysicalMemory } from "../memory/memory.ts";

/** Named EPT entry bits (SDM Tables 28-1 to 28-6). */
export interface EptBits {
  /** Read access (bit 0). */
  readonly read: number;
  /** Write access (bit 1). */
  readonly write: number;
  /** Execute access (bit 2; supervisor-mode execute with mode-based control). */
  readonly exec: number;
  /** Lowest bit of the 3-bit memory type field (leaves). */
  readonly memType: number;
  /** Ignore PAT (leaves). */
  readonly ignorePat: number;
  /** Page size: a leaf above level 1. */
  readonly pageSize: number;
  /** Accessed (with EPT A/D enabled). */
  readonly accessed: number;
  /** Dirty (leaves, with EPT A/D enabled). */
  readonly dirty: number;
}

/** An EPT format descriptor. */
export interface EptFormat {
  /** Display name. */
  readonly name: string;
  /** Always "ept". */
  readonly kind: "ept";
  /** Guest-physical address width covered (48 or 57). */
  readonly gpaBits: number;
  /** log2 of the base page (12). */
  readonly pageShift: number;
  /** Entry width in bytes (8). */
  readonly entryBytes: number;
  /** Levels, root first (level 1 = EPT page table). */
  readonly levels: readonly LevelSpec[];
  /** Named bits. */
  readonly bits: EptBits;
  /** Address field: lowest bit. */
  readonly frameLow: number;
  /** Address field width before MAXPHYADDR trimming. */
  readonly frameWidth: number;
  /** Memory types that are reserved on leaves (SDM §28.3.7: 2, 3, 7). */
  readonly reservedMemTypes: readonly number[];
}

function lvl(
  level: number,
  table: string,
  entry: string,
  shift: number,
  canMapPage: boolean,
): LevelSpec {
  return Object.freeze({
    level,
    table,
    entry,
    shift,
    bits: 9,
    canMapPage,
    hasAccessed: true,
  });
}

/**
 * Validate an EPT descriptor loudly (RangeError) and freeze it.
 *
 * @example
 * ```ts
 * import { EPT_4LEVEL, validateEptFormat } from "./ept.ts";
 * import assert from "node:assert/strict";
 * assert.throws(
 *   () => validateEptFormat({ ...EPT_4LEVEL, bits: { ...EPT_4LEVEL.bits, dirty: 8 } }),
 *   /dirty bit 8 overlaps accessed/,
 * );
 * ```
 */
export function validateEptFormat(f: EptFormat): EptFormat {
  const fail = (msg: string): never => {
    throw new RangeError(`EPT format "${f.name}": ${msg}`);
  };
  if (f.kind !== "ept") fail(`kind "${String(f.kind)}": expected "ept"`);
  if (f.entryBytes !== 8) fail(`entryBytes ${f.entryBytes}: expected 8`);
  if (f.pageShift !== 12) fail(`pageShift ${f.pageShift}: expected 12`);
  if (f.levels.length < 1 || f.levels.length > 5) {
    fail(`${f.levels.length} levels: expected 1 to 5`);
  }
  let shift = f.pageShift;
  for (let i = f.levels.length - 1; i >= 0; i--) {
    const l = f.levels[i];
    if (l.level !== f.levels.length - i) {
      fail(`level at position ${i} is numbered ${l.level}`);
    }
    if (l.shift !== shift) {
      fail(`level ${l.level} shift ${l.shift}: expected ${shift}`);
    }
    if (l.bits !== 9) {
      fail(`level ${l.level} has ${l.bits} index bits: expected 9`);
    }
    shift += l.bits;
  }
  if (shift !== f.gpaBits) {
    fail(`levels cover ${shift} address bits but gpaBits is ${f.gpaBits}`);
  }
  const owner = new Map<number, string>();
  const claim = (bit: number, name: string, width = 1) => {
    for (let k = bit; k < bit + width; k++) {
      if (!Number.isInteger(k) || k < 0 || k > 63) {
        fail(`${name} bit ${bit} lies outside a 64-bit entry`);
      }
      const prev = owner.get(k);
      if (prev !== undefined) fail(`${name} bit ${k} overlaps ${prev}`);
      owner.set(k, name);
    }
  };
  for (const [name, bit] of Object.entries(f.bits)) {
    claim(bit, name, name === "memType" ? 3 : 1);
  }
  if (f.frameLow !== 12 || f.frameLow + f.frameWidth > 52) {
    fail(
      `address field ${f.frameLow}..${
        f.frameLow + f.frameWidth - 1
      }: expected 12..51 at most`,
    );
  }
  for (let k = f.frameLow; k < f.frameLow + f.frameWidth; k++) {
    if (owner.has(k)) fail(`address bit ${k} overlaps ${owner.get(k)}`);
  }
  for (const t of f.reservedMemTypes) {
    if (!Number.isInteger(t) || t < 0 || t > 7) {
      fail(`reserved memory type ${t}: expected 0..7`);
    }
  }
  return deepFreeze(f);
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}

const EPT_BITS: EptBits = {
  read: 0,
  write: 1,
  exec: 2,
  memType: 3,
  ignorePat: 6,
  pageSize: 7,
  accessed: 8,
  dirty: 9,
};

/**
 * 4-level EPT (page-walk length 4): EPT PML4, PDPT (1 GiB leaves), PD
 * (2 MiB leaves), PT.
 *
 * @example
 * ```ts
 * import { EPT_4LEVEL } from "./ept.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(EPT_4LEVEL.levels.map((l) => l.entry), ["EPT PML4E", "EPT PDPTE", "EPT PDE", "EPT PTE"]);
 * assert.equal(EPT_4LEVEL.gpaBits, 48);
 * ```
 */
export const EPT_4LEVEL: EptFormat = validateEptFormat({
  name: "EPT 4-level",
  kind: "ept",
  gpaBits: 48,
  pageShift: 12,
  entryBytes: 8,
  levels: [
    lvl(4, "EPT PML4", "EPT PML4E", 39, false),
    lvl(3, "EPT PDPT", "EPT PDPTE", 30, true),
    lvl(2, "EPT PD", "EPT PDE", 21, true),
    lvl(1, "EPT PT", "EPT PTE", 12, false),
  ],
  bits: EPT_BITS,
  frameLow: 12,
  frameWidth: 40,
  reservedMemTypes: [2, 3, 7],
});

/**
 * 5-level EPT (page-walk length 5): an EPT PML5 above the PML4.
 *
 * @example
 * ```ts
 * import { EPT_5LEVEL } from "./ept.ts";
 * import assert from "node:assert/strict";
 * assert.equal(EPT_5LEVEL.levels.length, 5);
 * assert.equal(EPT_5LEVEL.gpaBits, 57);
 * ```
 */
export const EPT_5LEVEL: EptFormat = validateEptFormat({
  ...EPT_4LEVEL,
  name: "EPT 5-level",
  gpaBits: 57,
  levels: [lvl(5, "EPT PML5", "EPT PML5E", 48, false), ...EPT_4LEVEL.levels],
});

/** Options for {@linkcode eptMode} (EPTP and VMX capability bits). */
export interface EptModeOptions {
  /** EPTP bit 6: accessed and dirty flags for EPT. Default false. */
  ad?: boolean;
  /** IA32_VMX_EPT_VPID_CAP bit 0: execute-only translations. Default true. */
  executeOnly?: boolean;
  /** 1 GiB EPT pages supported (capability bit 17). Default true. */
  gbPages?: boolean;
  /** MAXPHYADDR (32..52). Default 52. */
  maxPhyAddr?: number;
}

/** A frozen EPT mode: format, EPTP controls, precomputed masks. */
export interface EptMode {
  /** The format. */
  readonly format: EptFormat;
  /** EPT A/D enabled. */
  readonly ad: boolean;
  /** Execute-only entries are legal. */
  readonly executeOnly: boolean;
  /** 1 GiB pages supported. */
  readonly gbPages: boolean;
  /** MAXPHYADDR. */
  readonly maxPhyAddr: number;
  /** Reserved-bit masks, low dword, at `2 * level + ps`. */
  readonly rsvdLo: Uint32Array;
  /** Reserved-bit masks, high dword, at `2 * level + ps`. */
  readonly rsvdHi: Uint32Array;
  /** Address mask (table or 4 KiB leaf), low dword. */
  readonly addrLo: number;
  /** Address mask, high dword. */
  readonly addrHi: number;
}

function bitsMask(from: number, to: number): [number, number] {
  let lo = 0, hi = 0;
  for (let b = from; b <= to; b++) {
    if (b < 32) lo |= 1 << b;
    else hi |= 1 << (b - 32);
  }
  return [lo >>> 0, hi >>> 0];
}

/**
 * The EPT mode for a format and EPTP/capability options. Throws
 * RangeError for a bad MAXPHYADDR.
 *
 * @example
 * ```ts
 * import { EPT_4LEVEL, eptMode } from "./ept.ts";
 * import assert from "node:assert/strict";
 * const m = eptMode(EPT_4LEVEL, { ad: true });
 * assert.equal(m.ad, true);
 * assert.throws(() => eptMode(EPT_4LEVEL, { maxPhyAddr: 60 }), /MAXPHYADDR 60/);
 * ```
 */
export function eptMode(
  format: EptFormat,
  options: EptModeOptions = {},
): EptMode {
  const M = options.maxPhyAddr ?? 52;
  if (!Number.isInteger(M) || M < 32 || M > 52) {
    throw new RangeError(
      `MAXPHYADDR ${M} is invalid: expected an integer in [32, 52]`,
    );
  }
  const gbPages = options.gbPages ?? true;
  const n = format.levels.length;
  const rsvdLo = new Uint32Array(2 * (n + 1));
  const rsvdHi = new Uint32Array(2 * (n + 1));
  const set = (k: number, m: [number, number]) => {
    rsvdLo[k] |= m[0];
    rsvdHi[k] |= m[1];
  };
  const high = M <= 51 ? bitsMask(M, 51) : [0, 0] as [number, number];
  for (let level = 1; level <= n; level++) {
    set(2 * level, high);
    set(2 * level + 1, high);
    // non-leaf entries: bits 7:3 reserved (SDM Tables 28-1..28-5); bit 7
    // there is the page-size bit, which makes the entry a leaf where allowed
    if (level > 1) set(2 * level, bitsMask(3, 7));
  }
  // large leaves: address bits below the page boundary are reserved
  set(2 * 2 + 1, bitsMask(12, 20));
  set(2 * 3 + 1, bitsMask(12, 29));
  return Object.freeze({
    format,
    ad: options.ad ?? false,
    executeOnly: options.executeOnly ?? true,
    gbPages,
    maxPhyAddr: M,
    rsvdLo,
    rsvdHi,
    addrLo: bitsMask(12, 31)[0],
    addrHi: bitsMask(32, M - 1)[1],
  });
}

/**
 * The EPTP value for a root table at `root` (SDM §24.6.11): memory type WB
 * (6) in bits 2:0, page-walk length − 1 in bits 5:3, A/D enable in bit 6.
 *
 * @example
 * ```ts
 * import { EPT_4LEVEL, eptMode, eptp } from "./ept.ts";
 * import assert from "node:assert/strict";
 * assert.equal(eptp(eptMode(EPT_4LEVEL, { ad: true }), 0x5000), 0x505e);
 * assert.throws(() => eptp(eptMode(EPT_4LEVEL), 0x5008), /4 KiB-aligned/);
 * ```
 */
export function eptp(mode: EptMode, root: number): number {
  if (!Number.isInteger(root) || root < 0 || root % 4096 !== 0) {
    throw new RangeError(
      `EPT root ${String(root)} is invalid: expected a 4 KiB-aligned address`,
    );
  }
  return root + 6 + ((mode.format.levels.length - 1) << 3) +
    (mode.ad ? 64 : 0);
}

/** EPT access flag: data read. */
export const EPT_READ = 1;
/** EPT access flag: data write. */
export const EPT_WRITE = 2;
/** EPT access flag: instruction fetch. */
export const EPT_FETCH = 4;

/** EPT walk outcome: translated and permitted. */
export const EPT_OK = 0;
/** EPT walk outcome: EPT violation (SDM §28.3.3.2). */
export const EPT_VIOLATION = 1;
/** EPT walk outcome: EPT misconfiguration (SDM §28.3.3.1). */
export const EPT_MISCONFIG = 2;

/** Why an EPT walk stopped, by number; names in {@linkcode EPT_REASONS}. */
export const EptReason = {
  None: 0,
  NotPresent: 1,
  Permission: 2,
  WriteWithoutRead: 3,
  ExecuteOnly: 4,
  MemoryType: 5,
  ReservedBit: 6,
} as const;

/** Names of {@linkcode EptReason} values. */
export const EPT_REASONS = [
  "none",
  "not-present",
  "permission",
  "write-without-read",
  "execute-only-unsupported",
  "reserved-memory-type",
  "reserved-bit",
] as const;

/** A reason name. */
export type EptReasonName = (typeof EPT_REASONS)[number];

/**
 * Reusable state of one EPT walk (per step: level, entry address, entry
 * halves, R/W/X AND so far; then the outcome).
 *
 * @example
 * ```ts
 * import { EptScratch } from "./ept.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new EptScratch().steps, 0);
 * ```
 */
export class EptScratch {
  /** Level of each step. */
  readonly level: Uint8Array = new Uint8Array(8);
  /** Entry address (hpa) of each step. */
  readonly entryAddr: Float64Array = new Float64Array(8);
  /** Entry low dword as read. */
  readonly lo: Uint32Array = new Uint32Array(8);
  /** Entry high dword as read. */
  readonly hi: Uint32Array = new Uint32Array(8);
  /** R/W/X (bits 0..2) accumulated after each step. */
  readonly rights: Uint8Array = new Uint8Array(8);
  /** Steps made. */
  steps = 0;
  /** EPT_OK, EPT_VIOLATION or EPT_MISCONFIG. */
  outcome: number = EPT_OK;
  /** {@linkcode EptReason}. */
  reason = 0;
  /** Translated host-physical address (ok). */
  hpa = 0;
  /** log2 of the mapped page size (ok). */
  pageShift = 0;
  /** Level of the leaf, or of the entry that stopped the walk. */
  leafLevel = 0;
  /** AND of R/W/X over the entries read (0 for a not-present stop). */
  finalRights = 0;
  /** Memory type of the leaf (ok). */
  memType = 0;
  /** Steps whose A bit this walk set (bit i = step i). */
  aSet = 0;
  /** Whether this walk set the leaf's D bit. */
  dSet = false;
}

const LOW = Uint32Array.from({ length: 33 }, (_, k) => 2 ** k - 1);

/**
 * Walk the EPT rooted at `root` for guest-physical address `gpa` and the
 * access `access` (EPT_* flags), filling `s`; returns the outcome.
 * Allocation-free and BigInt-free. With EPT A/D enabled (and `setAD`), a
 * successful walk sets A on every entry used and D on the leaf for writes
 * (SDM §28.3.5).
 *
 * Order (SDM §28.3.3): per level, not present → violation; present but
 * unusable → misconfiguration; then the R/W/X AND is checked against the
 * access → violation.
 *
 * @example
 * ```ts
 * import { EPT_4LEVEL, EPT_MISCONFIG, EPT_OK, EPT_READ, EPT_VIOLATION, EPT_WRITE, eptMap, eptMode, eptWalkInto, EptScratch } from "./ept.ts";
 * import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const mem = new PhysicalMemory({ size: 1 << 20 });
 * const frames = new FrameAllocator(mem);
 * const root = frames.alloc();
 * const mode = eptMode(EPT_4LEVEL, { ad: true });
 * eptMap(mode, mem, () => frames.alloc(), root, 0x3000, 0x9000, { write: false });
 * const s = new EptScratch();
 * assert.equal(eptWalkInto(s, mode, mem, root, 0x3abc, EPT_READ), EPT_OK);
 * assert.equal(s.hpa, 0x9abc);
 * assert.equal(eptWalkInto(s, mode, mem, root, 0x3abc, EPT_WRITE), EPT_VIOLATION);
 * mem.write32(s.entryAddr[3], 0x9002);          // W without R
 * assert.equal(eptWalkInto(s, mode, mem, root, 0x3abc, EPT_READ), EPT_MISCONFIG);
 * ```
 */
export function eptWalkInto(
  s: EptScratch,
  mode: EptMode,
  mem: EntryMemory,
  root: number,
  gpa: number,
  access: number,
  setAD = true,
  startLevel = 0,
  startBase = 0,
  startRights = 7,
): number {
  // startLevel/startBase/startRights: resume below a cached prefix (a
  // paging-structure-cache hit, SDM §28.4.2): the walk begins at that level
  // with that table and the R/W/X AND so far.
  const gHi = Math.floor(gpa / 4294967296);
  const gLo = gpa >>> 0;
  s.steps = 0;
  s.reason = 0;
  s.aSet = 0;
  s.dSet = false;
  s.memType = 0;
  s.finalRights = 0;
  s.leafLevel = 0;
  let level = startLevel === 0 ? mode.format.levels.length : startLevel;
  let base = startLevel === 0 ? root : startBase;
  let rights = startLevel === 0 ? 7 : startRights;
  let missingA = 0;
  let lo = 0, hi = 0;
  let shift = 12;
  // mode fields and scratch arrays in locals: the memory reads are calls
  // the compiler cannot see through, after which it would reload them
  const rsvdLo = mode.rsvdLo, rsvdHi = mode.rsvdHi;
  const addrLo = mode.addrLo, addrHi = mode.addrHi;
  const sLevel = s.level, sEntry = s.entryAddr, sLo = s.lo, sHi = s.hi;
  const sRights = s.rights;
  const pm = mem instanceof PhysicalMemory ? mem : undefined;
  let i = 0;
  for (;; i++) {
    shift = 3 + 9 * level; // 12 + 9·(level − 1)
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
    sLevel[i] = level;
    sEntry[i] = ea;
    sLo[i] = lo;
    sHi[i] = hi;
    const rwx = lo & 7;
    if (rwx === 0) {
      sRights[i] = 0;
      s.steps = i + 1;
      return stop(s, level, EPT_VIOLATION, EptReason.NotPresent, 0);
    }
    rights &= rwx;
    sRights[i] = rights;
    // SDM §28.3.3.1: W without R; X alone without execute-only support
    if ((rwx & 3) === 2 || (rwx === 4 && !mode.executeOnly)) {
      s.steps = i + 1;
      return stop(
        s,
        level,
        EPT_MISCONFIG,
        rwx === 4 ? EptReason.ExecuteOnly : EptReason.WriteWithoutRead,
        rights,
      );
    }
    const ps = level > 1 && (lo & 0x80) !== 0 &&
        (level === 2 || (level === 3 && mode.gbPages))
      ? 1
      : 0;
    const k = 2 * level + ps;
    if ((lo & rsvdLo[k]) !== 0 || (hi & rsvdHi[k]) !== 0) {
      s.steps = i + 1;
      return stop(s, level, EPT_MISCONFIG, EptReason.ReservedBit, rights);
    }
    if ((lo & 0x100) === 0) missingA |= 1 << i;
    if (level === 1 || ps === 1) {
      s.steps = i + 1;
      const mt = (lo >>> 3) & 7;
      if (mt === 2 || mt === 3 || mt === 7) {
        return stop(s, level, EPT_MISCONFIG, EptReason.MemoryType, rights);
      }
      s.memType = mt;
      break;
    }
    base = (hi & addrHi) * 4294967296 + ((lo & addrLo) >>> 0);
    level--;
  }
  s.leafLevel = level;
  s.finalRights = rights;
  if ((access & ~rights & 7) !== 0) {
    s.outcome = EPT_VIOLATION;
    s.reason = EptReason.Permission;
    return EPT_VIOLATION;
  }
  // leaf address: frame bits above the page boundary, offset below
  if (shift === 12) {
    s.hpa = (hi & addrHi) * 4294967296 + ((lo & addrLo) >>> 0) +
      (gLo & 0xfff);
  } else {
    const frameLo = shift >= 32 ? 0 : (addrLo & ~LOW[shift]) >>> 0;
    const frameHi = shift >= 32 ? addrHi & ~LOW[shift - 32] : addrHi;
    const off = shift >= 32
      ? (gHi & LOW[shift - 32]) * 4294967296 + gLo
      : (gLo & LOW[shift]) >>> 0;
    s.hpa = (hi & frameHi) * 4294967296 + ((lo & frameLo) >>> 0) + off;
  }
  s.pageShift = shift;
  s.outcome = EPT_OK;
  if (mode.ad && setAD) {
    const wantD = (access & EPT_WRITE) !== 0 && (lo & 0x200) === 0;
    if (missingA !== 0 || wantD) {
      for (let j = 0; j < s.steps; j++) {
        let v = s.lo[j];
        if ((missingA & (1 << j)) !== 0) {
          v |= 0x100;
          s.aSet |= 1 << j;
        }
        if (j === s.steps - 1 && wantD) {
          v |= 0x200;
          s.dSet = true;
        }
        if (v !== s.lo[j]) mem.write32(s.entryAddr[j], v >>> 0);
      }
    }
  }
  return EPT_OK;
}

function stop(
  s: EptScratch,
  level: number,
  outcome: number,
  reason: number,
  rights: number,
): number {
  s.leafLevel = level;
  s.outcome = outcome;
  s.reason = reason;
  s.finalRights = rights;
  return outcome;
}

/** Options for {@linkcode eptMap}. */
export interface EptMapOptions {
  /** Read permission (default true). */
  read?: boolean;
  /** Write permission (default true). */
  write?: boolean;
  /** Execute permission (default true). */
  exec?: boolean;
  /** Memory type of the leaf (default 6, WB). */
  memType?: number;
  /** log2 of the page size: 12, 21 or 30 (default 12). */
  pageShift?: number;
  /** Ignore-PAT bit (default false). */
  ignorePat?: boolean;
}

/**
 * Map `gpa` → `hpa` in the EPT rooted at `root` (in `mem`), allocating
 * missing tables with `alloc` (which returns a zeroed 4 KiB frame's
 * address). Tables above the leaf get R/W/X = 7. Returns the leaf entry's
 * address. Not a hot-path function; validates loudly.
 *
 * @example
 * ```ts
 * import { EPT_4LEVEL, eptMap, eptMode } from "./ept.ts";
 * import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const mem = new PhysicalMemory({ size: 1 << 22 });
 * const frames = new FrameAllocator(mem);
 * const root = frames.alloc();
 * const ea = eptMap(eptMode(EPT_4LEVEL), mem, () => frames.alloc(), root, 0x20_0000, 0x20_0000, { pageShift: 21 });
 * assert.equal(mem.read32(ea), 0x20_0000 | 0x80 | (6 << 3) | 7);
 * assert.throws(() => eptMap(eptMode(EPT_4LEVEL), mem, () => frames.alloc(), root, 0x1000, 0x2000, { memType: 3 }), /memory type 3/);
 * ```
 */
export function eptMap(
  mode: EptMode,
  mem: EntryMemory,
  alloc: () => number,
  root: number,
  gpa: number,
  hpa: number,
  options: EptMapOptions = {},
): number {
  const shift = options.pageShift ?? 12;
  if (shift !== 12 && shift !== 21 && !(shift === 30 && mode.gbPages)) {
    throw new RangeError(
      `page shift ${shift} is invalid: expected 12, 21${
        mode.gbPages ? " or 30" : ""
      }`,
    );
  }
  const size = 2 ** shift;
  if (gpa % size !== 0 || hpa % size !== 0 || gpa < 0 || hpa < 0) {
    throw new RangeError(
      `gpa 0x${gpa.toString(16)} and hpa 0x${
        hpa.toString(16)
      } must be ${size}-byte aligned`,
    );
  }
  if (gpa >= 2 ** mode.format.gpaBits || hpa >= 2 ** mode.maxPhyAddr) {
    throw new RangeError(
      `gpa 0x${gpa.toString(16)} or hpa 0x${hpa.toString(16)} is out of range`,
    );
  }
  const mt = options.memType ?? 6;
  if (mode.format.reservedMemTypes.includes(mt) || mt < 0 || mt > 7) {
    throw new RangeError(
      `memory type ${mt} is invalid: expected 0, 1, 4, 5 or 6 (2, 3, 7 are reserved)`,
    );
  }
  const r = options.read ?? true,
    w = options.write ?? true,
    x = options.exec ?? true;
  if (w && !r) throw new RangeError("write without read is a misconfiguration");
  if (x && !r && !w && !mode.executeOnly) {
    throw new RangeError("execute-only is not supported by this EPT mode");
  }
  const leafLevel = (shift - 12) / 9 + 1;
  let base = root;
  for (let level = mode.format.levels.length; level > leafLevel; level--) {
    const idx = Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
    const ea = base + idx * 8;
    const lo = mem.read32(ea), hi = mem.read32(ea + 4);
    if ((lo & 7) === 0) {
      const t = alloc();
      mem.write32(ea, (t % 4294967296 | 7) >>> 0);
      mem.write32(ea + 4, Math.floor(t / 4294967296));
      base = t;
    } else if (level > 1 && (lo & 0x80) !== 0) {
      throw new RangeError(
        `gpa 0x${
          gpa.toString(16)
        } is already mapped by a large page at level ${level}`,
      );
    } else {
      base = (hi & mode.addrHi) * 4294967296 + ((lo & mode.addrLo) >>> 0);
    }
  }
  const idx = Math.floor(gpa / size) % 512;
  const ea = base + idx * 8;
  const leafLo = (hpa % 4294967296) + (r ? 1 : 0) + (w ? 2 : 0) + (x ? 4 : 0) +
    (mt << 3) + (options.ignorePat ? 64 : 0) + (leafLevel > 1 ? 128 : 0);
  mem.write32(ea, leafLo >>> 0);
  mem.write32(ea + 4, Math.floor(hpa / 4294967296));
  return ea;
}

/**
 * The AMD NPT mode: x86-64 tables (4- or 5-level) with NX enabled, walked
 * as user accesses (APM Vol. 2 §15.25.5). `vendor: "amd"`.
 *
 * @example
 * ```ts
 * import { nptMode } from "./ept.ts";
 * import assert from "node:assert/strict";
 * assert.equal(nptMode().format.levels.length, 4);
 * assert.equal(nptMode({ levels: 5 }).vendor, "amd");
 * assert.throws(() => nptMode({ levels: 3 as 4 }), /levels 3/);
 * ```
 */
export function nptMode(
  options: { levels?: 4 | 5; maxPhyAddr?: number; gbPages?: boolean } = {},
): PagingMode {
  const n = options.levels ?? 4;
  if (n !== 4 && n !== 5) {
    throw new RangeError(`NPT levels ${String(n)} is invalid: expected 4 or 5`);
  }
  return pagingMode(n === 4 ? X86_64_4LEVEL : X86_64_5LEVEL, {
    vendor: "amd",
    nxe: true,
    wp: true,
    maxPhyAddr: options.maxPhyAddr ?? 52,
    gbPages: options.gbPages ?? true,
  });
}
