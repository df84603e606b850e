/**
 * The one walker against the Intel SDM, Vol. 3 ch. 4, table-driven over
 * every x86 format (32-bit, PAE, 4-level, 5-level) and the OSTEP radix
 * geometry.
 *
 * The expected answers come from *reference predicates written in this file
 * from the SDM text* — a bullet-by-bullet transcription of §4.6 (access
 * rights), §4.6.2 (protection keys), §4.7 (#PF error code) and the entry
 * format tables 4-4 … 4-20 (reserved bits) — and are deliberately
 * structured differently from `checkRights` and the precomputed masks of
 * `mode.ts`, so that a shared misreading is unlikely.
 *
 * Page tables here are written by hand (no builder) so the walker is
 * tested on its own.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PhysicalMemory } from "../lib/memory/memory.ts";
import {
  OSTEP_15BIT,
  PAE,
  type PagingFormat,
  radixFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import { type PagingMode, pagingMode } from "../lib/paging/mode.ts";
import { walk } from "../lib/paging/record.ts";
import {
  ACCESS_AC,
  ACCESS_FETCH,
  ACCESS_IMPLICIT,
  ACCESS_USER,
  ACCESS_WRITE,
  FAULT_REASONS,
  isCanonical,
  PFEC_ID,
  PFEC_P,
  PFEC_PK,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../lib/paging/walker.ts";
import { LinearAddress } from "../lib/address/address.ts";
import { Random } from "../lib/util/random.ts";

// ---------------------------------------------------------------------------
// The formats, as the SDM names them, and what each one has.

type Paging = "32-bit" | "PAE" | "4-level" | "5-level";

interface X86Case {
  paging: Paging;
  format: PagingFormat;
  /** Levels whose entries carry R/W, U/S (and XD): all but PAE's PDPTE. */
  rightsLevels: number[];
  /** XD (bit 63) exists: PAE, 4-level, 5-level. */
  xd: boolean;
  /** Protection keys exist (IA-32e paging only, SDM §4.6.2). */
  pk: boolean;
  /** Leaf levels with page size: [level, bytes]. */
  large: [number, number][];
}

const X86: X86Case[] = [
  {
    paging: "32-bit",
    format: X86_32,
    rightsLevels: [2, 1],
    xd: false,
    pk: false,
    large: [[2, 4 << 20]],
  },
  {
    paging: "PAE",
    format: PAE,
    rightsLevels: [2, 1],
    xd: true,
    pk: false,
    large: [[2, 2 << 20]],
  },
  {
    paging: "4-level",
    format: X86_64_4LEVEL,
    rightsLevels: [4, 3, 2, 1],
    xd: true,
    pk: true,
    large: [[2, 2 << 20], [3, 1 << 30]],
  },
  {
    paging: "5-level",
    format: X86_64_5LEVEL,
    rightsLevels: [5, 4, 3, 2, 1],
    xd: true,
    pk: true,
    large: [[2, 2 << 20], [3, 1 << 30]],
  },
];

// ---------------------------------------------------------------------------
// Hand-built translation paths.

const PAGE = 0x4000_0000; // 1 GiB aligned, below 4 GiB (fits 32-bit paging)

/** A single translation path written by hand into a fresh memory. */
interface Chain {
  mem: PhysicalMemory;
  format: PagingFormat;
  root: number;
  va: LinearAddress;
  leafLevel: number;
  /** Entry address per level. */
  ea: Map<number, number>;
  /** Table address each level's table sits at. */
  table: Map<number, number>;
  /** Expected physical address for `va`. */
  pa: number;
}

/** Index used at `level` (distinct per level, fits every format). */
function indexAt(format: PagingFormat, level: number): number {
  const spec = format.levels[format.levels.length - level];
  return Math.min(2 ** spec.bits - 1, 2 * level + 3);
}

function setBit64(
  e: { lo: number; hi: number },
  bit: number,
  on = true,
): void {
  if (bit < 32) {
    e.lo = on ? (e.lo | (1 << bit)) >>> 0 : (e.lo & ~(1 << bit)) >>> 0;
  } else {
    const m = 1 << (bit - 32);
    e.hi = on ? (e.hi | m) >>> 0 : (e.hi & ~m) >>> 0;
  }
}

function writeEntry(
  mem: PhysicalMemory,
  format: PagingFormat,
  ea: number,
  lo: number,
  hi: number,
): void {
  if (format.entryBytes === 8) {
    mem.write32(ea, lo);
    mem.write32(ea + 4, hi);
  } else if (format.entryBytes === 4) mem.write32(ea, lo);
  else if (format.entryBytes === 2) mem.write16(ea, lo);
  else mem.write8(ea, lo);
}

function readEntry(
  mem: PhysicalMemory,
  format: PagingFormat,
  ea: number,
): { lo: number; hi: number } {
  if (format.entryBytes === 8) {
    return { lo: mem.read32(ea), hi: mem.read32(ea + 4) };
  }
  if (format.entryBytes === 4) return { lo: mem.read32(ea), hi: 0 };
  if (format.entryBytes === 2) return { lo: mem.read16(ea), hi: 0 };
  return { lo: mem.read8(ea), hi: 0 };
}

/**
 * Build root → … → leaf for an x86 format: every entry P = 1, and R/W =
 * U/S = 1 where the entry has them (the most permissive path); A = D = 0;
 * the leaf at `leafLevel` (PS = 1 above level 1) maps PAGE.
 */
function x86Chain(format: PagingFormat, leafLevel = 1): Chain {
  const mem = new PhysicalMemory(); // 2^52 bytes, sparse
  const n = format.levels.length;
  const table = new Map<number, number>();
  const ea = new Map<number, number>();
  let va = 0n;
  for (let level = n; level >= leafLevel; level--) {
    table.set(level, 0x10_0000 * (n - level + 1));
    const spec = format.levels[n - level];
    const idx = indexAt(format, level);
    va += BigInt(idx) << BigInt(spec.shift);
    ea.set(level, table.get(level)! + idx * format.entryBytes);
  }
  // the offset inside the page: 0xabc for 4 KiB, more for large pages
  const leafShift = format.levels[n - leafLevel].shift;
  va += 0x1234_5abcn % (1n << BigInt(leafShift));
  const c: Chain = {
    mem,
    format,
    root: table.get(n)!,
    va: LinearAddress.from(va),
    leafLevel,
    ea,
    table,
    pa: PAGE + Number(va & ((1n << BigInt(leafShift)) - 1n)),
  };
  for (let level = n; level >= leafLevel; level--) {
    const e = baseEntry(c, level);
    writeEntry(mem, format, ea.get(level)!, e.lo, e.hi);
  }
  return c;
}

/** The entry `x86Chain` writes at `level` (before any test tweaks). */
function baseEntry(c: Chain, level: number): { lo: number; hi: number } {
  const target = level === c.leafLevel ? PAGE : c.table.get(level - 1)!;
  const e = { lo: target >>> 0, hi: Math.floor(target / 2 ** 32) };
  setBit64(e, 0); // P
  const pdpte = c.format.kind === "pae" && level === 3;
  if (!pdpte) {
    setBit64(e, 1); // R/W
    setBit64(e, 2); // U/S
  }
  if (level === c.leafLevel && level > 1) setBit64(e, 7); // PS
  return e;
}

function entryAt(c: Chain, level: number): { lo: number; hi: number } {
  return readEntry(c.mem, c.format, c.ea.get(level)!);
}

function putEntry(c: Chain, level: number, e: { lo: number; hi: number }) {
  writeEntry(c.mem, c.format, c.ea.get(level)!, e.lo, e.hi);
}

/** All entries of the path, as one comparable string. */
function snapshot(c: Chain): string {
  return [...c.ea.keys()].map((l) => {
    const e = entryAt(c, l);
    return `${l}:${e.hi.toString(16)}:${e.lo.toString(16)}`;
  }).join(" ");
}

// ---------------------------------------------------------------------------
// Reference predicates: a transcription of the SDM text.

interface Access {
  kind: "read" | "write" | "fetch";
  cpl: 0 | 3;
  implicit: boolean;
  ac: boolean;
}

interface Cr {
  wp: boolean;
  nxe: boolean;
  smep: boolean;
  smap: boolean;
  pke: boolean;
  pkru: number;
}

interface PathFlags {
  /** U/S of every paging-structure entry that has one (root first). */
  us: boolean[];
  /** R/W likewise. */
  rw: boolean[];
  /** XD likewise (empty for 32-bit paging). */
  xd: boolean[];
  /** Protection key of the leaf (4/5-level). */
  pkey: number;
}

/**
 * SDM §4.6.1 "Determination of Access Rights", bullet by bullet, plus
 * §4.6.2 "Protection Keys". Returns whether the access is allowed and
 * whether protection keys deny it.
 */
function sdmAccessAllowed(
  paging: Paging,
  cr: Cr,
  path: PathFlags,
  a: Access,
): { allowed: boolean; pkDenies: boolean } {
  // "Every access to a linear address is either a supervisor-mode access or
  // a user-mode access ... accesses made while CPL < 3 are supervisor-mode
  // accesses, while accesses made while CPL = 3 are user-mode accesses.
  // [Implicit accesses to system data structures] are called implicit
  // supervisor-mode accesses regardless of CPL. Other accesses made while
  // CPL < 3 are called explicit supervisor-mode accesses."
  const supervisorModeAccess = a.cpl < 3 || a.implicit;
  const explicitSupervisor = a.cpl < 3 && !a.implicit;
  // "If the U/S flag (bit 2) is 0 in at least one of the paging-structure
  // entries, the address is a supervisor-mode address. Otherwise, the
  // address is a user-mode address."
  let userModeAddress = true;
  for (const u of path.us) if (!u) userModeAddress = false;
  // "... if the R/W flag (bit 1) is 1 in every paging-structure entry
  // controlling the translation"
  let rwEverywhere = true;
  for (const w of path.rw) if (!w) rwEverywhere = false;
  // "... if the XD flag (bit 63) is 0 in every paging-structure entry
  // controlling the translation"
  let xdNowhere = true;
  for (const x of path.xd) if (x) xdNowhere = false;
  // NXE only exists with PAE and IA-32e paging.
  const nxe = paging !== "32-bit" && cr.nxe;

  let allowed = false;
  if (supervisorModeAccess) {
    if (a.kind === "read") {
      // "Data may be read (implicitly or explicitly) from any
      // supervisor-mode address."
      if (!userModeAddress) allowed = true;
      // "Data reading from user-mode pages: If CR4.SMAP = 0, data may be
      // read from any user-mode address ... If CR4.SMAP = 1, access rights
      // depend on the value of EFLAGS.AC and whether the access is implicit
      // or explicit: If EFLAGS.AC = 1 and the access is explicit, data may
      // be read from any user-mode address ... If EFLAGS.AC = 0 or the
      // access is implicit, data may not be read from any user-mode
      // address."
      else if (!cr.smap) allowed = true;
      else allowed = a.ac && explicitSupervisor;
    } else if (a.kind === "write") {
      // "Data writes to supervisor-mode addresses. If CR0.WP = 0, data may
      // be written to any supervisor-mode address. If CR0.WP = 1, data may
      // be written to any supervisor-mode address with a translation for
      // which the R/W flag is 1 in every paging-structure entry."
      const wpRule = !cr.wp || rwEverywhere;
      if (!userModeAddress) allowed = wpRule;
      // "Data writes to user-mode addresses. If CR4.SMAP = 0: [same WP
      // rule]. If CR4.SMAP = 1: If EFLAGS.AC = 1 and the access is explicit:
      // [same WP rule]. If EFLAGS.AC = 0 or the access is implicit, data
      // may not be written to any user-mode address."
      else if (!cr.smap) allowed = wpRule;
      else allowed = a.ac && explicitSupervisor && wpRule;
    } else {
      // "Instruction fetches from supervisor-mode addresses. For 32-bit
      // paging or if IA32_EFER.NXE = 0, instructions may be fetched from
      // any supervisor-mode address. For PAE paging or 4-level paging with
      // IA32_EFER.NXE = 1, instructions may be fetched from any
      // supervisor-mode address with a translation for which the XD flag
      // is 0 in every paging-structure entry."
      const nxRule = !nxe || xdNowhere;
      if (!userModeAddress) allowed = nxRule;
      // "Instruction fetches from user-mode addresses. Access rights depend
      // on the values of CR4.SMEP: If CR4.SMEP = 0, [same NX rule as for
      // supervisor-mode addresses]. If CR4.SMEP = 1, instructions may not
      // be fetched from any user-mode address."
      else allowed = !cr.smep && nxRule;
    }
  } else {
    // User-mode access (CPL = 3, not implicit).
    if (a.kind === "read") {
      // "Data may be read from any user-mode address." (only)
      allowed = userModeAddress;
    } else if (a.kind === "write") {
      // "Data may be written to any user-mode address with a translation
      // for which the R/W flag is 1 in every paging-structure entry."
      allowed = userModeAddress && rwEverywhere;
    } else {
      // "For 32-bit paging or if IA32_EFER.NXE = 0, instructions may be
      // fetched from any user-mode address. ... with NXE = 1, ... XD flag
      // is 0 in every paging-structure entry."
      allowed = userModeAddress && (!nxe || xdNowhere);
    }
  }

  // §4.6.2: "4-level paging and 5-level paging associate each linear
  // address with a protection key. ... If CR4.PKE = 1, the PKRU register
  // determines, for each protection key, whether user-mode addresses with
  // that protection key may be read or written." AD_i = bit 2i, WD_i =
  // bit 2i+1. "If AD_i = 1, the processor prevents data accesses ... to
  // user-mode addresses with protection key i. If WD_i = 1, ... prevents
  // write accesses by user-mode accesses (and by supervisor-mode accesses
  // if CR0.WP = 1)." Protection keys do not apply to instruction fetches.
  let pkDenies = false;
  const ia32e = paging === "4-level" || paging === "5-level";
  if (ia32e && cr.pke && userModeAddress && a.kind !== "fetch") {
    const ad = Math.floor(cr.pkru / 2 ** (2 * path.pkey)) % 2 === 1;
    const wd = Math.floor(cr.pkru / 2 ** (2 * path.pkey + 1)) % 2 === 1;
    if (ad) pkDenies = true;
    if (wd && a.kind === "write" && (!supervisorModeAccess || cr.wp)) {
      pkDenies = true;
    }
  }
  return { allowed: allowed && !pkDenies, pkDenies };
}

/**
 * SDM §4.7 "Page-Fault Exceptions": the error code for a fault by `a`.
 * `present`: the P flag; `rsvd`: a reserved-bit violation; `pk`: a
 * protection-key violation.
 */
function sdmErrorCode(
  paging: Paging,
  cr: Cr,
  a: Access,
  f: { present: boolean; rsvd: boolean; pk: boolean },
): number {
  let ec = 0;
  // "P flag (bit 0). This flag is 0 if there is no translation for the
  // linear address because the P flag was 0 in one of the paging-structure
  // entries used to translate that address." (reserved-bit faults: 1)
  if (f.present) ec |= 1;
  // "W/R (bit 1). If the access causing the page-fault exception was a
  // write, this flag is 1; otherwise, it is 0."
  if (a.kind === "write") ec |= 2;
  // "U/S (bit 2). If a user-mode access caused the page-fault exception,
  // this flag is 1; it is 0 if a supervisor-mode access did so."
  if (a.cpl === 3 && !a.implicit) ec |= 4;
  // "RSVD flag (bit 3). This flag is 1 if there is no translation for the
  // linear address because a reserved bit was set in one of the
  // paging-structure entries used to translate that address."
  if (f.rsvd) ec |= 8;
  // "I/D flag (bit 4). This flag is 1 if (1) the access causing the
  // page-fault exception was an instruction fetch; and (2) either (a)
  // CR4.SMEP = 1; or (b) both (i) CR4.PAE = 1 (either PAE paging or 4-level
  // paging is in use); and (ii) IA32_EFER.NXE = 1."
  if (
    a.kind === "fetch" &&
    (cr.smep || (paging !== "32-bit" && cr.nxe))
  ) ec |= 16;
  // "PK flag (bit 5). This flag is 1 if (1) IA32_EFER.LMA = CR4.PKE = 1;
  // (2) the access causing the page-fault exception was a data access;
  // (3) the linear address was a user-mode address with protection key i;
  // and (5) the PKRU register is such that either (a) AD_i = 1; or (b) the
  // following all hold: (i) WD_i = 1; (ii) the access is a write access;
  // and (iii) either CR0.WP = 1 or the access causing the page-fault
  // exception was a user-mode access."
  if (f.pk) ec |= 32;
  return ec;
}

function accessFlagsOf(a: Access): number {
  let f = 0;
  if (a.kind === "write") f |= ACCESS_WRITE;
  if (a.kind === "fetch") f |= ACCESS_FETCH;
  if (a.cpl === 3) f |= ACCESS_USER;
  if (a.implicit) f |= ACCESS_IMPLICIT;
  if (a.ac) f |= ACCESS_AC;
  return f;
}

/** Every access: 3 kinds × CPL 0/3 × implicit × AC (no implicit fetches). */
const ACCESSES: Access[] = [];
for (const kind of ["read", "write", "fetch"] as const) {
  for (const cpl of [0, 3] as const) {
    for (const implicit of [false, true]) {
      for (const ac of [false, true]) {
        if (implicit && kind === "fetch") continue; // implicit = data access
        ACCESSES.push({ kind, cpl, implicit, ac });
      }
    }
  }
}

/** CR0.WP × EFER.NXE × CR4.SMEP × CR4.SMAP. */
function crCombos(xd: boolean): Cr[] {
  const out: Cr[] = [];
  for (const wp of [false, true]) {
    for (const nxe of xd ? [false, true] : [false]) {
      for (const smep of [false, true]) {
        for (const smap of [false, true]) {
          out.push({ wp, nxe, smep, smap, pke: false, pkru: 0 });
        }
      }
    }
  }
  return out;
}

function modeOf(c: X86Case, cr: Cr, extra = {}): PagingMode {
  return pagingMode(c.format, {
    wp: cr.wp,
    nxe: cr.nxe,
    smep: cr.smep,
    smap: cr.smap,
    pke: cr.pke,
    ...extra,
  });
}

// ---------------------------------------------------------------------------
// §4.6 access rights: every U/S, R/W, XD combination on every level.

for (const c of X86) {
  Deno.test(`§4.6 rights, exhaustive over U/S R/W XD on each level: ${c.paging}`, () => {
    const chain = x86Chain(c.format);
    const bitsPerLevel = c.xd ? 3 : 2;
    const nLevels = c.rightsLevels.length;
    const combos = 2 ** (bitsPerLevel * nLevels);
    const crs = crCombos(c.xd);
    const modes = crs.map((cr) => modeOf(c, cr));
    // 5-level has 2^15 flag combinations: each sees 4 of the 16 CR
    // combinations (rotating, so every pair is covered many times).
    const modesPerCombo = combos > 4096 ? 4 : crs.length;
    const s = new WalkScratch();
    let checked = 0;
    for (let combo = 0; combo < combos; combo++) {
      const path: PathFlags = { us: [], rw: [], xd: [], pkey: 0 };
      c.rightsLevels.forEach((level, i) => {
        const bits = (combo >>> (i * bitsPerLevel)) & ((1 << bitsPerLevel) - 1);
        const e = baseEntry(chain, level);
        const rw = (bits & 1) !== 0, us = (bits & 2) !== 0;
        const xd = (bits & 4) !== 0;
        setBit64(e, 1, rw);
        setBit64(e, 2, us);
        if (c.xd) setBit64(e, 63, xd);
        putEntry(chain, level, e);
        path.us.push(us);
        path.rw.push(rw);
        if (c.xd) path.xd.push(xd);
      });
      const anyXd = path.xd.some((x) => x);
      for (let m = 0; m < modesPerCombo; m++) {
        const k = modesPerCombo === crs.length
          ? m
          : (combo * 5 + m * 4) % crs.length;
        const cr = crs[k], mode = modes[k];
        for (const a of ACCESSES) {
          const r = walkInto(
            s,
            mode,
            chain.mem,
            chain.root,
            chain.va.hi,
            chain.va.lo,
            accessFlagsOf(a),
            0,
            0,
            0,
            7,
            false,
          );
          const where = () =>
            `${c.paging} combo ${combo.toString(2)} ${JSON.stringify(cr)} ${
              JSON.stringify(a)
            }`;
          // Table 4-11 ff.: with NXE = 0, bit 63 is reserved.
          if (c.xd && !cr.nxe && anyXd) {
            assert.equal(r, WALK_PF, where());
            assert.equal(
              s.errorCode,
              sdmErrorCode(c.paging, cr, a, {
                present: true,
                rsvd: true,
                pk: false,
              }),
              where(),
            );
            assert.equal(FAULT_REASONS[s.reason], "reserved-bit", where());
            checked++;
            continue;
          }
          const want = sdmAccessAllowed(c.paging, cr, path, a);
          if (want.allowed) {
            assert.equal(r, WALK_OK, where());
            assert.equal(s.pa, chain.pa, where());
          } else {
            assert.equal(r, WALK_PF, where());
            assert.equal(
              s.errorCode,
              sdmErrorCode(c.paging, cr, a, {
                present: true,
                rsvd: false,
                pk: want.pkDenies,
              }),
              where(),
            );
            assert.equal(s.leafLevel, 1, where());
          }
          checked++;
        }
      }
    }
    assert.ok(checked >= combos * ACCESSES.length * 4);
  });
}

// §4.6.2 protection keys: every key, every AD/WD pair, user and supervisor.
for (const c of X86.filter((x) => x.pk)) {
  Deno.test(`§4.6.2 protection keys, every key and AD/WD: ${c.paging}`, () => {
    const chain = x86Chain(c.format);
    const rnd = new Random(62);
    const s = new WalkScratch();
    let faults = 0, pkFaults = 0;
    for (let key = 0; key < 16; key++) {
      for (let adwd = 0; adwd < 4; adwd++) {
        // other keys get random rights, so a wrong key index shows up
        let pkru = rnd.nextU32();
        pkru = (pkru & ~(3 << (2 * key))) >>> 0;
        pkru = (pkru | (adwd << (2 * key))) >>> 0;
        for (let pathBits = 0; pathBits < 4; pathBits++) {
          const leafUser = (pathBits & 1) !== 0;
          const leafRw = (pathBits & 2) !== 0;
          const e = baseEntry(chain, 1);
          setBit64(e, 1, leafRw);
          setBit64(e, 2, leafUser);
          e.hi = (e.hi | (key << 27)) >>> 0; // bits 62:59
          putEntry(chain, 1, e);
          const upper = c.rightsLevels.length - 1;
          const path: PathFlags = {
            us: [...Array(upper).fill(true), leafUser],
            rw: [...Array(upper).fill(true), leafRw],
            xd: Array(upper + 1).fill(false),
            pkey: key,
          };
          for (const wp of [false, true]) {
            for (const smap of [false, true]) {
              for (const pke of [false, true]) {
                const cr: Cr = {
                  wp,
                  nxe: true,
                  smep: false,
                  smap,
                  pke,
                  pkru,
                };
                const mode = modeOf(c, cr);
                for (const a of ACCESSES) {
                  const r = walkInto(
                    s,
                    mode,
                    chain.mem,
                    chain.root,
                    chain.va.hi,
                    chain.va.lo,
                    accessFlagsOf(a),
                    pkru,
                    0,
                    0,
                    7,
                    false,
                  );
                  const want = sdmAccessAllowed(c.paging, cr, path, a);
                  const where = `key ${key} adwd ${adwd} path ${pathBits} ${
                    JSON.stringify(cr)
                  } ${JSON.stringify(a)}`;
                  if (want.allowed) {
                    assert.equal(r, WALK_OK, where);
                    assert.equal(s.pkey, pke ? key : 0, where);
                  } else {
                    faults++;
                    if (want.pkDenies) pkFaults++;
                    assert.equal(r, WALK_PF, where);
                    assert.equal(
                      s.errorCode,
                      sdmErrorCode(c.paging, cr, a, {
                        present: true,
                        rsvd: false,
                        pk: want.pkDenies,
                      }),
                      where,
                    );
                    if (
                      want.pkDenies &&
                      sdmAccessAllowed(c.paging, { ...cr, pke: false }, path, a)
                        .allowed
                    ) {
                      assert.equal(FAULT_REASONS[s.reason], "pkey", where);
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    assert.ok(pkFaults > 1000 && faults > pkFaults);
  });
}

Deno.test("§4.6.2 CR4.PKE has no effect with 32-bit and PAE paging", () => {
  for (const c of X86.filter((x) => !x.pk)) {
    const mode = pagingMode(c.format, { pke: true });
    assert.equal(mode.pke, false);
    const chain = x86Chain(c.format);
    const s = new WalkScratch();
    const r = walkInto(
      s,
      mode,
      chain.mem,
      chain.root,
      chain.va.hi,
      chain.va.lo,
      ACCESS_WRITE | ACCESS_USER,
      0xffffffff,
    );
    assert.equal(r, WALK_OK);
  }
});

Deno.test("§4.7 error codes, named cases (I/D only with SMEP, or NXE under PAE/IA-32e)", () => {
  const cases: {
    c: X86Case;
    opts: Record<string, boolean>;
    a: Access;
    leaf: { us: boolean; rw: boolean; xd?: boolean; p?: boolean };
    ec: number | "ok";
  }[] = [];
  const f32 = X86[0], pae = X86[1], l4 = X86[2], l5 = X86[3];
  const userFetch: Access = {
    kind: "fetch",
    cpl: 3,
    implicit: false,
    ac: false,
  };
  const supFetch: Access = {
    kind: "fetch",
    cpl: 0,
    implicit: false,
    ac: false,
  };
  const userWrite: Access = {
    kind: "write",
    cpl: 3,
    implicit: false,
    ac: false,
  };
  const supRead: Access = { kind: "read", cpl: 0, implicit: false, ac: false };
  const implicitRead: Access = {
    kind: "read",
    cpl: 3,
    implicit: true,
    ac: true,
  };
  const supFetchOpts = { smep: false, nxe: false };
  // 32-bit: user fetch from a supervisor page: P|U, no I/D without SMEP
  cases.push({
    c: f32,
    opts: supFetchOpts,
    a: userFetch,
    leaf: { us: false, rw: true },
    ec: 0x05,
  });
  cases.push({
    c: f32,
    opts: { smep: true },
    a: userFetch,
    leaf: { us: false, rw: true },
    ec: 0x15,
  });
  // 32-bit with SMEP: supervisor fetch from a user page
  cases.push({
    c: f32,
    opts: { smep: true },
    a: supFetch,
    leaf: { us: true, rw: true },
    ec: 0x11,
  });
  // PAE/4/5-level: not-present fetch reports I/D only with NXE (or SMEP)
  for (const c of [pae, l4, l5]) {
    cases.push({
      c,
      opts: { nxe: false },
      a: supFetch,
      leaf: { us: false, rw: true, p: false },
      ec: 0x00,
    });
    cases.push({
      c,
      opts: { nxe: true },
      a: supFetch,
      leaf: { us: false, rw: true, p: false },
      ec: 0x10,
    });
    cases.push({
      c,
      opts: { nxe: false, smep: true },
      a: supFetch,
      leaf: { us: false, rw: true, p: false },
      ec: 0x10,
    });
    cases.push({
      c,
      opts: { nxe: true },
      a: userFetch,
      leaf: { us: true, rw: true, xd: true },
      ec: 0x15,
    });
    cases.push({
      c,
      opts: {},
      a: userWrite,
      leaf: { us: true, rw: false },
      ec: 0x07,
    });
    cases.push({
      c,
      opts: { wp: false },
      a: { ...supRead, kind: "write" },
      leaf: { us: false, rw: false },
      ec: "ok",
    });
    cases.push({
      c,
      opts: { wp: true },
      a: { ...supRead, kind: "write" },
      leaf: { us: false, rw: false },
      ec: 0x03,
    });
    // implicit supervisor access at CPL 3 to a user page under SMAP: U/S = 0
    cases.push({
      c,
      opts: { smap: true },
      a: implicitRead,
      leaf: { us: true, rw: true },
      ec: 0x01,
    });
    cases.push({
      c,
      opts: { smap: true },
      a: { ...supRead, ac: true },
      leaf: { us: true, rw: true },
      ec: "ok",
    });
  }
  for (const k of cases) {
    const chain = x86Chain(k.c.format);
    const e = baseEntry(chain, 1);
    setBit64(e, 0, k.leaf.p ?? true);
    setBit64(e, 1, k.leaf.rw);
    setBit64(e, 2, k.leaf.us);
    if (k.leaf.xd) setBit64(e, 63);
    putEntry(chain, 1, e);
    const w = walk(
      {
        memory: chain.mem,
        mode: pagingMode(k.c.format, k.opts),
        root: chain.root,
      },
      chain.va,
      {
        kind: k.a.kind,
        user: k.a.cpl === 3,
        implicit: k.a.implicit,
        ac: k.a.ac,
      },
    );
    const where = `${k.c.paging} ${JSON.stringify(k.opts)} ${
      JSON.stringify(k.a)
    } ${JSON.stringify(k.leaf)}`;
    if (k.ec === "ok") {
      assert.equal(w.outcome.kind, "ok", where);
      continue;
    }
    assert.equal(w.outcome.kind, "page-fault", where);
    if (w.outcome.kind !== "page-fault") continue;
    assert.equal(w.outcome.errorCode.value, k.ec, where);
    assert.equal(w.outcome.errorCode.p, (k.ec & PFEC_P) !== 0);
    assert.equal(w.outcome.errorCode.w, (k.ec & PFEC_W) !== 0);
    assert.equal(w.outcome.errorCode.u, (k.ec & PFEC_U) !== 0);
    assert.equal(w.outcome.errorCode.rsvd, (k.ec & PFEC_RSVD) !== 0);
    assert.equal(w.outcome.errorCode.id, (k.ec & PFEC_ID) !== 0);
    assert.equal(w.outcome.errorCode.pk, (k.ec & PFEC_PK) !== 0);
    assert.equal(w.outcome.cr2.toBigInt(), chain.va.toBigInt());
    assert.equal(w.outcome.level, 1);
    assert.match(w.outcome.message, /#PF\(0x[0-9a-f]+\)/);
  }
});

// ---------------------------------------------------------------------------
// Reserved bits, transcribed from the entry-format tables.

type Role = "rsvd" | "gp" | "addr" | "other" | "skip";

interface RsvdCtx {
  paging: Paging;
  level: number;
  /** The entry maps a page (PS = 1 above level 1, honoured). */
  large: boolean;
  M: number;
  nxe: boolean;
  vendor: "intel" | "amd";
  pse: boolean;
}

const range = (b: number, lo: number, hi: number) => b >= lo && b <= hi;

/** The role of `bit` in an entry, per SDM Tables 4-4 … 4-20. */
function sdmBitRole(x: RsvdCtx, bit: number): Role {
  if (bit === 0) return "skip"; // P, set on the path
  if (x.paging === "32-bit") {
    if (bit >= 32) return "skip";
    // Table 4-4 (PDE mapping a 4-MByte page; "M" is min(MAXPHYADDR, 40)):
    // bits 31:22 address; (M–20):13 bits (M–1):32 of the address;
    // 21:(M–19) reserved; bit 12 PAT.
    if (x.level === 2 && x.large) {
      const m = Math.min(x.M, 40);
      if (bit === 7) return "skip"; // PS
      if (range(bit, 22, 31)) return "addr";
      if (range(bit, 13, m - 20)) return "addr";
      if (range(bit, m - 19, 21)) return "rsvd";
      return "other";
    }
    // Table 4-5: PDE referencing a page table. Bit 7: "If CR4.PSE = 1,
    // must be 0 (otherwise, this entry maps a 4-MByte page); otherwise,
    // ignored." Table 4-6: PTE. No reserved bits; bits 31:12 address.
    if (x.level === 2 && bit === 7 && x.pse) return "skip";
    if (range(bit, 12, 31)) return "addr";
    return "other";
  }
  if (x.paging === "PAE") {
    // Table 4-8 (PDPTE): 2:1 reserved, 8:5 reserved, (M–1):12 address,
    // 63:M reserved. A violation is a #GP at MOV to CR3 (§4.4.1).
    if (x.level === 3) {
      if (range(bit, 1, 2) || range(bit, 5, 8) || range(bit, x.M, 63)) {
        return "gp";
      }
      if (range(bit, 12, x.M - 1)) return "addr";
      return "other";
    }
    // Tables 4-9, 4-10, 4-11: bit 63 XD "(if IA32_EFER.NXE = 1; otherwise,
    // reserved)"; 62:M reserved; 2-MByte PDE: 20:13 reserved, (M–1):21
    // address; bit 12 PAT.
    if (bit === 63) return x.nxe ? "other" : "rsvd";
    if (range(bit, x.M, 62)) return "rsvd";
    if (x.level === 2 && bit === 7) return "skip"; // PS
    if (x.large) {
      if (range(bit, 13, 20)) return "rsvd";
      if (range(bit, 21, x.M - 1)) return "addr";
      return "other";
    }
    if (range(bit, 12, x.M - 1)) return "addr";
    return "other";
  }
  // 4-level and 5-level paging, Tables 4-14 … 4-20 (and 4-13a for PML5E).
  if (bit === 63) return x.nxe ? "other" : "rsvd";
  if (range(bit, 52, 62)) return "other"; // ignored, or PK in leaves
  if (range(bit, x.M, 51)) return "rsvd";
  if (x.level >= 4) {
    // PML5E / PML4E: bit 7 "Reserved (must be 0)"; bit 8 ignored (AMD:
    // reserved, APM Vol. 2 §5.3.3).
    if (bit === 7) return "rsvd";
    if (bit === 8 && x.vendor === "amd") return "rsvd";
    if (range(bit, 12, x.M - 1)) return "addr";
    return "other";
  }
  if (bit === 7 && x.level > 1) return "skip"; // PS
  if (x.large && x.level === 3) {
    // Table 4-16: 1-GByte page: 29:13 reserved, (M–1):30 address, 12 PAT.
    if (range(bit, 13, 29)) return "rsvd";
    if (range(bit, 30, x.M - 1)) return "addr";
    return "other";
  }
  if (x.large && x.level === 2) {
    // Table 4-18: 2-MByte page: 20:13 reserved, (M–1):21 address, 12 PAT.
    if (range(bit, 13, 20)) return "rsvd";
    if (range(bit, 21, x.M - 1)) return "addr";
    return "other";
  }
  if (range(bit, 12, x.M - 1)) return "addr";
  return "other";
}

interface RsvdConfig {
  c: X86Case;
  M: number;
  nxe: boolean;
  vendor: "intel" | "amd";
  pse: boolean;
}

function rsvdConfigs(): RsvdConfig[] {
  const out: RsvdConfig[] = [];
  for (const c of X86) {
    const Ms = c.paging === "32-bit" ? [32, 36, 40, 52] : [36, 46, 52];
    for (const M of Ms) {
      for (const nxe of c.xd ? [false, true] : [false]) {
        for (
          const vendor of c.pk ? ["intel", "amd"] as const : ["intel"] as const
        ) {
          for (const pse of c.paging === "32-bit" ? [false, true] : [true]) {
            out.push({ c, M, nxe, vendor, pse });
          }
        }
      }
    }
  }
  return out;
}

Deno.test("reserved bits: every bit of every entry, per format, MAXPHYADDR, NXE, vendor", () => {
  let rsvdSeen = 0, gpSeen = 0;
  for (const k of rsvdConfigs()) {
    const leaves: [number, number][] = [[1, 4096]];
    for (const [l, size] of k.c.large) {
      if (k.c.paging === "32-bit" && !k.pse) continue;
      leaves.push([l, size]);
    }
    const mode = pagingMode(k.c.format, {
      maxPhyAddr: k.M,
      nxe: k.nxe,
      vendor: k.vendor,
      pse: k.pse,
    });
    for (const [leafLevel] of leaves) {
      const chain = x86Chain(k.c.format, leafLevel);
      const n = k.c.format.levels.length;
      for (let level = n; level >= leafLevel; level--) {
        const ctx: RsvdCtx = {
          paging: k.c.paging,
          level,
          large: level === leafLevel && leafLevel > 1,
          M: k.M,
          nxe: k.nxe,
          vendor: k.vendor,
          pse: k.pse,
        };
        for (let bit = 0; bit < k.c.format.entryBytes * 8; bit++) {
          const role = sdmBitRole(ctx, bit);
          if (role === "skip") continue;
          const orig = entryAt(chain, level);
          const e = { ...orig };
          setBit64(e, bit);
          if (e.lo === orig.lo && e.hi === orig.hi) continue; // already set
          putEntry(chain, level, e);
          const before = snapshot(chain);
          const w = walk(
            { memory: chain.mem, mode, root: chain.root },
            chain.va,
            { kind: "read" },
          );
          const where =
            `${k.c.paging} M=${k.M} nxe=${k.nxe} ${k.vendor} pse=${k.pse} leaf L${leafLevel} entry L${level} bit ${bit}: ${role}, got ${w.toString()}`;
          if (role === "rsvd") {
            rsvdSeen++;
            assert.equal(w.outcome.kind, "page-fault", where);
            if (w.outcome.kind === "page-fault") {
              assert.equal(
                w.outcome.errorCode.value,
                PFEC_P | PFEC_RSVD,
                where,
              );
              assert.equal(w.outcome.reason, "reserved-bit", where);
              assert.equal(w.outcome.level, level, where);
            }
            assert.equal(
              snapshot(chain),
              before,
              "a faulting walk writes nothing",
            );
          } else if (role === "gp") {
            gpSeen++;
            assert.equal(w.outcome.kind, "gp", where);
            if (w.outcome.kind === "gp") {
              assert.equal(w.outcome.reason, "pdpte-reserved", where);
            }
            assert.equal(snapshot(chain), before);
          } else if (role === "addr") {
            // an address bit moves the next table or the page: no RSVD here
            const rsvdHere = w.outcome.kind === "page-fault" &&
              w.outcome.errorCode.rsvd && w.outcome.level === level;
            assert.ok(!rsvdHere && w.outcome.kind !== "gp", where);
            if (level === leafLevel) {
              assert.equal(w.outcome.kind, "ok", where);
              assert.notEqual(w.pa, chain.pa, where);
            }
          } else {
            assert.equal(w.outcome.kind, "ok", where);
            assert.equal(w.pa, chain.pa, where);
          }
          putEntry(chain, level, orig);
        }
      }
    }
  }
  assert.ok(rsvdSeen > 2000, `${rsvdSeen}`);
  assert.ok(gpSeen > 50, `${gpSeen}`);
});

Deno.test("reserved: PS in PML4E/PML5E; PDPTE PS without 1-GiB pages; error code carries W/U/I-D", () => {
  for (const c of X86.filter((x) => x.pk)) {
    for (const level of c.format.levels.length === 5 ? [5, 4] : [4]) {
      const chain = x86Chain(c.format);
      const e = entryAt(chain, level);
      setBit64(e, 7);
      putEntry(chain, level, e);
      const target = {
        memory: chain.mem,
        mode: pagingMode(c.format),
        root: chain.root,
      };
      const w = walk(target, chain.va, { kind: "fetch", user: true });
      assert.equal(w.outcome.kind, "page-fault");
      if (w.outcome.kind === "page-fault") {
        assert.equal(
          w.outcome.errorCode.value,
          PFEC_P | PFEC_RSVD | PFEC_U | PFEC_ID,
        );
        assert.equal(w.outcome.level, level);
      }
      assert.equal(w.steps.length, c.format.levels.length - level + 1);
    }
    // a 1-GiB leaf: fine with gbPages, reserved without (SDM §4.1.4, Table 4-16)
    const chain = x86Chain(c.format, 3);
    const ok = walk({
      memory: chain.mem,
      mode: pagingMode(c.format),
      root: chain.root,
    }, chain.va);
    assert.equal(ok.outcome.kind, "ok");
    assert.equal(ok.outcome.kind === "ok" && ok.outcome.pageSize, 2 ** 30);
    const bad = walk(
      {
        memory: chain.mem,
        mode: pagingMode(c.format, { gbPages: false }),
        root: chain.root,
      },
      chain.va,
      { kind: "write" },
    );
    assert.equal(bad.outcome.kind, "page-fault");
    if (bad.outcome.kind === "page-fault") {
      assert.equal(bad.outcome.errorCode.value, PFEC_P | PFEC_RSVD | PFEC_W);
      assert.equal(bad.outcome.level, 3);
    }
  }
});

Deno.test("32-bit 4-MiB pages: PSE-36 address bits 20:13 become PA bits 39:32", () => {
  const chain = x86Chain(X86_32, 2);
  const e = entryAt(chain, 2);
  e.lo = (e.lo | (0x5a << 13)) >>> 0; // PA bits 39:32 = 0x5a
  putEntry(chain, 2, e);
  const w = walk({
    memory: chain.mem,
    mode: pagingMode(X86_32, { maxPhyAddr: 40 }),
    root: chain.root,
  }, chain.va);
  assert.equal(w.pa, 0x5a * 2 ** 32 + chain.pa);
  assert.equal(w.steps[0].flags.address, 0x5a * 2 ** 32 + PAGE);
  // with MAXPHYADDR 36 only PA bits 35:32 exist: bits 20:17 are reserved
  const w36 = walk({
    memory: chain.mem,
    mode: pagingMode(X86_32, { maxPhyAddr: 36 }),
    root: chain.root,
  }, chain.va);
  assert.equal(w36.outcome.kind, "page-fault");
  const e2 = entryAt(chain, 2);
  e2.lo = ((e2.lo & ~(0xff << 13)) | (0xa << 13)) >>> 0;
  putEntry(chain, 2, e2);
  const w36b = walk({
    memory: chain.mem,
    mode: pagingMode(X86_32, { maxPhyAddr: 36 }),
    root: chain.root,
  }, chain.va);
  assert.equal(w36b.pa, 0xa * 2 ** 32 + chain.pa);
});

Deno.test("32-bit paging with CR4.PSE = 0 ignores PS: the PDE points to a page table", () => {
  const chain = x86Chain(X86_32, 1);
  // PDE: PS = 1 and table address with bits 21..13 set (bit 21 would be
  // reserved, bits 20:13 PSE-36 address bits, for a 4-MiB page)
  const ptAddr = 0x0037_e000;
  const pde = { lo: (ptAddr | 0x87) >>> 0, hi: 0 };
  putEntry(chain, 2, pde);
  const pteAddr = ptAddr + indexAt(X86_32, 1) * 4;
  chain.mem.write32(pteAddr, PAGE | 0x7);
  const target = {
    memory: chain.mem,
    mode: pagingMode(X86_32, { pse: false }),
    root: chain.root,
  };
  const w = walk(target, chain.va, { kind: "write", user: true });
  assert.equal(w.outcome.kind, "ok", w.toString());
  assert.equal(w.pa, chain.pa);
  assert.equal(w.steps.length, 2);
  assert.equal(w.steps[0].leaf, false);
  assert.equal(w.steps[0].flags.address, ptAddr);
  assert.equal(w.steps[0].flags.pageSize, false);
  assert.equal(w.outcome.kind === "ok" && w.outcome.pageSize, 4096);
  // PS in the PDE is left as it was (A was set, nothing else)
  assert.equal(
    chain.mem.read32(chain.ea.get(2)!),
    (ptAddr | 0x87 | 0x20) >>> 0,
  );
  // with CR4.PSE = 1 the same entry maps a 4-MiB page and bit 21 is reserved
  const w2 = walk(
    { ...target, mode: pagingMode(X86_32, { pse: true }) },
    chain.va,
  );
  assert.equal(w2.outcome.kind, "page-fault");
  if (w2.outcome.kind === "page-fault") {
    assert.equal(w2.outcome.errorCode.rsvd, true);
  }
});

// ---------------------------------------------------------------------------
// A/D (SDM §4.8).

for (const c of X86) {
  Deno.test(`§4.8 A/D: A on every level used, D on the leaf for writes, nothing on faults: ${c.paging}`, () => {
    const leaves = [1, ...c.large.map(([l]) => l)];
    for (const leafLevel of leaves) {
      const chain = x86Chain(c.format, leafLevel);
      // MAXPHYADDR 46 so that bit 50 is reserved in every PAE/IA-32e entry
      const mode = pagingMode(c.format, { maxPhyAddr: 46 });
      const target = { memory: chain.mem, mode, root: chain.root };
      const n = c.format.levels.length;
      const reservedBit = c.paging !== "32-bit"
        ? 50
        : leafLevel === 2
        ? 21
        : -1;
      const used = [...chain.ea.keys()];
      const aBit = (l: number) => (entryAt(chain, l).lo >>> 5) & 1;
      const dBit = (l: number) => (entryAt(chain, l).lo >>> 6) & 1;

      // faults first: not present leaf, protection, reserved, none writes
      const leafOrig = entryAt(chain, leafLevel);
      const faults: [
        string,
        (e: { lo: number; hi: number }) => void,
        Parameters<typeof walk>[2],
      ][] = [
        ["not present", (e) => setBit64(e, 0, false), { kind: "write" }],
        ["read-only", (e) => setBit64(e, 1, false), { kind: "write" }],
        ["supervisor", (e) => setBit64(e, 2, false), {
          kind: "read",
          user: true,
        }],
      ];
      if (reservedBit >= 0) {
        faults.push(["reserved", (e) => setBit64(e, reservedBit), {
          kind: "write",
        }]);
      }
      for (const [name, tweak, opts] of faults) {
        const e = { ...leafOrig };
        tweak(e);
        putEntry(chain, leafLevel, e);
        const before = snapshot(chain);
        const w = walk(target, chain.va, opts);
        assert.equal(w.outcome.kind, "page-fault", `${name}: ${w}`);
        assert.equal(snapshot(chain), before, `${name} wrote A/D`);
        putEntry(chain, leafLevel, leafOrig);
      }
      // a side-effect-free lookup writes nothing
      const before = snapshot(chain);
      assert.equal(walk(target, chain.va, { setAD: false }).ok, true);
      assert.equal(snapshot(chain), before);

      // read: A on every level used (not PAE PDPTEs: bit 5 is reserved there)
      const r = walk(target, chain.va, { kind: "read" });
      assert.equal(r.outcome.kind, "ok");
      const expectA = used.filter((l) => !(c.paging === "PAE" && l === 3));
      if (r.outcome.kind === "ok") {
        assert.deepEqual(
          [...r.outcome.accessedSet].sort(),
          [...expectA].sort(),
        );
        assert.equal(r.outcome.dirtySet, false);
      }
      for (const l of used) {
        assert.equal(aBit(l), expectA.includes(l) ? 1 : 0, `A at L${l}`);
        assert.equal(dBit(l), 0, `D at L${l}`);
      }
      assert.deepEqual(
        r.steps.map((s) => s.accessedSet),
        used.map((l) => expectA.includes(l)),
      );
      // the record shows entries as read, before the walk's update
      assert.equal(r.steps.every((s) => s.flags.accessed !== true), true);

      // steady state: nothing more to write
      const again = walk(target, chain.va, { kind: "read" });
      assert.equal(
        again.outcome.kind === "ok" && again.outcome.accessedSet.length,
        0,
      );

      // write: D on the leaf only
      const wr = walk(target, chain.va, { kind: "write" });
      assert.equal(wr.outcome.kind, "ok");
      assert.equal(wr.outcome.kind === "ok" && wr.outcome.dirtySet, true);
      for (const l of used) {
        assert.equal(
          dBit(l),
          l === leafLevel ? 1 : 0,
          `D at L${l} after write`,
        );
      }
      assert.deepEqual(
        wr.steps.map((s) => s.dirtySet),
        used.map((l) => l === leafLevel),
      );
      const wr2 = walk(target, chain.va, { kind: "write" });
      assert.equal(wr2.outcome.kind === "ok" && wr2.outcome.dirtySet, false);
      assert.equal(n, c.format.levels.length);
    }
  });
}

Deno.test("§4.8 a write that faults on rights after a clean translation sets no A and no D", () => {
  for (const c of X86) {
    const chain = x86Chain(c.format);
    const leaf = entryAt(chain, 1);
    setBit64(leaf, 1, false);
    putEntry(chain, 1, leaf);
    const before = snapshot(chain);
    const w = walk(
      { memory: chain.mem, mode: pagingMode(c.format), root: chain.root },
      chain.va,
      {
        kind: "write",
        user: true,
      },
    );
    assert.equal(w.outcome.kind, "page-fault");
    assert.equal(snapshot(chain), before);
    assert.deepEqual(
      w.steps.map((s) => s.accessedSet),
      w.steps.map(() => false),
    );
  }
});

// ---------------------------------------------------------------------------
// Canonical addresses (SDM §3.3.7.1, §4.5).

Deno.test("non-canonical → #GP for 4- and 5-level; canonical kernel and LA57 addresses walk", () => {
  const m4 = pagingMode(X86_64_4LEVEL), m5 = pagingMode(X86_64_5LEVEL);
  const cases: [PagingMode, bigint, boolean][] = [
    [m4, 0xffff_8880_0000_0000n, true],
    [m4, 0x0000_7fff_ffff_ffffn, true],
    [m4, 0xffff_8000_0000_0000n, true],
    [m4, 0x0000_8000_0000_0000n, false],
    [m4, 0xffff_7fff_ffff_ffffn, false],
    [m4, 0x8000_0000_0000_0000n, false],
    [m4, 0x00ff_ffff_ffff_f000n, false],
    [m5, 0x0000_8000_0000_0000n, true],
    [m5, 0x00ff_ffff_ffff_f000n, true],
    [m5, 0xff00_0000_0000_0000n, true],
    [m5, 0xffff_8880_0000_0000n, true],
    [m5, 0x0100_0000_0000_0000n, false],
    [m5, 0xfeff_ffff_ffff_ffffn, false],
    [m5, 0x7fff_ffff_ffff_ffffn, false],
  ];
  for (const [mode, v, canonical] of cases) {
    const va = LinearAddress.from(v);
    assert.equal(isCanonical(mode, va.hi, va.lo), canonical, `${va}`);
    const mem = new PhysicalMemory({ size: 1 << 20 });
    const w = walk({ memory: mem, mode, root: 0x1000 }, va);
    if (canonical) {
      assert.equal(w.outcome.kind, "page-fault", `${va}`);
      assert.equal(w.steps.length, 1);
    } else {
      assert.equal(w.outcome.kind, "gp", `${va}`);
      if (w.outcome.kind === "gp") {
        assert.equal(w.outcome.reason, "non-canonical");
        assert.match(w.outcome.message, /#GP/);
      }
      assert.equal(w.steps.length, 0);
      assert.equal(mem.chunksTouched, 0);
    }
  }
});

Deno.test("LA57: a 57-bit address is translated through the PML5", () => {
  const c = X86[3];
  const chain = x86Chain(c.format);
  // move the PML5 entry to index 0x1f0 (kernel half: bit 56 = 1, sign-extended)
  const rootIdx = 0x1f0;
  const e = entryAt(chain, 5);
  putEntry(chain, 5, { lo: 0, hi: 0 });
  writeEntry(chain.mem, c.format, chain.root + rootIdx * 8, e.lo, e.hi);
  const low = chain.va.toBigInt() & ((1n << 48n) - 1n);
  const va = 0xfe00_0000_0000_0000n | (BigInt(rootIdx) << 48n) | low;
  const w = walk({
    memory: chain.mem,
    mode: pagingMode(c.format),
    root: chain.root,
  }, va);
  assert.equal(w.outcome.kind, "ok", w.toString());
  assert.equal(w.pa, chain.pa);
  assert.equal(w.steps[0].index, rootIdx);
  assert.equal(w.steps[0].entryName, "PML5E");
  assert.equal(w.fields[0].value, rootIdx);
  // the same address is non-canonical under 4-level paging
  const w4 = walk({
    memory: chain.mem,
    mode: pagingMode(X86_64_4LEVEL),
    root: chain.root,
  }, va);
  assert.equal(w4.outcome.kind, "gp");
});

Deno.test("PAE: a PDPTE reserved bit is #GP (at CR3 load), not #PF; no A bit in PDPTEs", () => {
  const chain = x86Chain(PAE);
  const target = { memory: chain.mem, mode: pagingMode(PAE), root: chain.root };
  const e = entryAt(chain, 3);
  setBit64(e, 5); // bit 5 would be A elsewhere; reserved in a PDPTE
  putEntry(chain, 3, e);
  const w = walk(target, chain.va);
  assert.equal(w.outcome.kind, "gp");
  assert.equal(w.outcome.kind === "gp" && w.outcome.reason, "pdpte-reserved");
  setBit64(e, 5, false);
  setBit64(e, 0, false);
  setBit64(e, 5); // not present: the other bits do not matter
  putEntry(chain, 3, e);
  const np = walk(target, chain.va, { kind: "write" });
  assert.equal(np.outcome.kind, "page-fault");
  assert.equal(
    np.outcome.kind === "page-fault" && np.outcome.errorCode.value,
    PFEC_W,
  );
});

// ---------------------------------------------------------------------------
// OSTEP radix geometry.

/**
 * A hand-written OSTEP "paging-multilevel-translate" memory: 128 pages of
 * 32 bytes (4 KiB), PDBR = page 108. Entries are one byte: bit 7 valid,
 * bits 6..0 the PFN. A virtual address is 5 bits PDE index | 5 bits PTE
 * index | 5 bits offset.
 */
function ostepMemory(): PhysicalMemory {
  const mem = new PhysicalMemory({ size: 4096 });
  const page = (pfn: number) => pfn * 32;
  // fill every byte with OSTEP-style junk: invalid entries 0x7f, data bytes
  const rnd = new Random(0);
  for (let a = 0; a < 4096; a++) mem.write8(a, rnd.int(0x1f));
  for (let i = 0; i < 32; i++) {
    mem.write8(page(108) + i, 0x7f); // page directory: all invalid ...
    mem.write8(page(33) + i, 0x7f);
    mem.write8(page(61) + i, 0x7f);
    mem.write8(page(0) + i, 0x7f);
  }
  mem.write8(page(108) + 24, 0xa1); // ... PDE 24 → PT in page 33
  mem.write8(page(108) + 15, 0xbd); // PDE 15 → PT in page 61
  mem.write8(page(108) + 31, 0x80); // PDE 31 → PT in page 0
  mem.write8(page(33) + 8, 0xb5); // PTE 8 → page 53
  mem.write8(page(61) + 13, 0x7f); // PTE 13 invalid
  mem.write8(page(0) + 31, 0xff); // PTE 31 → page 127
  mem.write8(page(53) + 28, 0x08); // the byte the homework "reveals"
  return mem;
}

Deno.test("OSTEP 15-bit radix: geometry", () => {
  const f = OSTEP_15BIT;
  assert.equal(f.vaBits, 15);
  assert.equal(f.pageShift, 5);
  assert.equal(f.entryBytes, 1);
  assert.deepEqual(f.levels.map((l) => [l.level, l.shift, l.bits]), [
    [2, 10, 5],
    [1, 5, 5],
  ]);
  assert.equal(f.bits.present, 7);
  assert.equal(f.frameLow, 0);
  assert.equal(f.frameWidth, 7);
  assert.equal(f.rootBytes, 32);
  assert.equal(pagingMode(f).physLimit, 4096);
});

Deno.test("OSTEP 15-bit radix: a worked homework example", () => {
  const memory = ostepMemory();
  const target = { memory, mode: pagingMode(OSTEP_15BIT), root: 108 * 32 };
  const before = memory.readBytes(0, 4096);

  // VA 0x611c = 11000 01000 11100: PDE index 24, PTE index 8, offset 28.
  // PDE 24 = 0xa1 (valid, PFN 33) → PTE 8 at 33*32+8 = 0x428 = 0xb5
  // (valid, PFN 53) → PA 53*32 + 28 = 0x6bc, holding 0x08.
  const w1 = walk(target, 0x611c);
  assert.equal(w1.outcome.kind, "ok");
  assert.deepEqual(w1.fields.map((x) => x.value), [24, 8, 28]);
  assert.deepEqual(w1.steps.map((s) => [s.entryAddress, Number(s.entry)]), [
    [0xd98, 0xa1],
    [0x428, 0xb5],
  ]);
  assert.equal(w1.steps[0].flags.address, 33 * 32);
  assert.equal(w1.pa, 0x6bc);
  assert.equal(memory.read8(w1.pa!), 0x08);

  // VA 0x3da8 = 01111 01101 01000: PDE 15 = 0xbd (PFN 61) → PTE 13 at
  // 61*32+13 = 0x7ad = 0x7f: not valid → fault at the PTE.
  const w2 = walk(target, 0x3da8);
  assert.equal(w2.outcome.kind, "page-fault");
  if (w2.outcome.kind === "page-fault") {
    assert.equal(w2.outcome.reason, "not-present");
    assert.equal(w2.outcome.level, 1);
    assert.equal(w2.outcome.errorCode.p, false);
  }
  assert.deepEqual(w2.steps.map((s) => s.entryAddress), [0xd8f, 0x7ad]);

  // VA 0x17f5 = 00101 11111 10101: PDE 5 = 0x7f: not valid → fault at the PDE.
  const w3 = walk(target, 0x17f5);
  assert.equal(w3.outcome.kind === "page-fault" && w3.outcome.level, 2);
  assert.equal(w3.steps.length, 1);

  // VA 0x7fff: PDE 31 = 0x80 (valid, PFN 0: a page table in page 0!) →
  // PTE 31 = 0xff (valid, PFN 127) → PA 127*32 + 31 = 0xfff, the last byte.
  const w4 = walk(target, 0x7fff, { kind: "write", user: true });
  assert.equal(w4.pa, 0xfff);

  // out of the 15-bit space: an error, not a fault
  assert.throws(() => walk(target, 0x8000), RangeError);
  // no A/D bits in this geometry: memory unchanged by any walk
  assert.deepEqual(memory.readBytes(0, 4096), before);
});

Deno.test("radix with A/D bits: 16-bit entries, A on every level, D on the leaf", () => {
  const f = radixFormat({
    pageShift: 6,
    levelBits: [5, 5, 5],
    entryBytes: 2,
    validBit: 15,
    frameLow: 0,
    frameWidth: 10,
    accessedBit: 13,
    dirtyBit: 12,
    writableBit: 11,
  });
  const mem = new PhysicalMemory({ size: 2 ** 16 });
  const mode = pagingMode(f);
  // root in frame 1, tables in frames 2 and 3, page in frame 9
  mem.write16(64 + 2 * 3, 0x8000 | 0x800 | 2);
  mem.write16(128 + 2 * 4, 0x8000 | 0x800 | 3);
  mem.write16(192 + 2 * 5, 0x8000 | 9); // read-only leaf
  const va = (3 << 16) | (4 << 11) | (5 << 6) | 17;
  const s = new WalkScratch();
  assert.equal(walkInto(s, mode, mem, 64, 0, va, ACCESS_WRITE), WALK_PF);
  assert.equal(s.errorCode, PFEC_P | PFEC_W);
  assert.equal(mem.read16(64 + 6) & 0x2000, 0);
  assert.equal(walkInto(s, mode, mem, 64, 0, va, 0), WALK_OK);
  assert.equal(s.pa, 9 * 64 + 17);
  assert.equal(s.aSet, 0b111);
  assert.equal(mem.read16(64 + 6), 0x8000 | 0x2000 | 0x800 | 2);
  assert.equal(mem.read16(192 + 10), 0x8000 | 0x2000 | 9);
  mem.write16(192 + 10, 0x8000 | 0x2000 | 0x800 | 9);
  assert.equal(walkInto(s, mode, mem, 64, 0, va, ACCESS_WRITE), WALK_OK);
  assert.equal(s.dSet, true);
  assert.equal(mem.read16(192 + 10), 0x8000 | 0x2000 | 0x1000 | 0x800 | 9);
  assert.equal(mem.read16(128 + 8) & 0x1000, 0, "no D above the leaf");
});

Deno.test("walkInto: per-format and per-mode fast paths never mix up modes or unfrozen descriptors", () => {
  const c = X86[2];
  const chain = x86Chain(c.format);
  const leaf = entryAt(chain, 1);
  setBit64(leaf, 1, false); // read-only user page
  putEntry(chain, 1, leaf);
  const s = new WalkScratch();
  const go = (mode: PagingMode, access: number) =>
    walkInto(
      s,
      mode,
      chain.mem,
      chain.root,
      chain.va.hi,
      chain.va.lo,
      access,
      0,
      0,
      0,
      7,
      false,
    );
  const wp = pagingMode(c.format, { wp: true });
  const noWp = pagingMode(c.format, { wp: false });
  for (let i = 0; i < 3; i++) {
    assert.equal(go(wp, ACCESS_WRITE), WALK_PF);
    assert.equal(go(noWp, ACCESS_WRITE), WALK_OK);
  }
  // a hand-made (unfrozen) mode is honoured as it is now, not as cached
  const loose = { ...pagingMode(c.format) } as {
    -readonly [K in keyof PagingMode]: PagingMode[K];
  };
  assert.equal(go(loose, ACCESS_FETCH), WALK_OK);
  loose.smep = true;
  assert.equal(go(loose, ACCESS_FETCH), WALK_PF);
  assert.equal(s.errorCode, PFEC_P | PFEC_ID);
  loose.smep = false;
  assert.equal(go(loose, ACCESS_FETCH), WALK_OK);
  // an unfrozen format descriptor likewise: move R/W to bit 9 (ignored bit)
  const f = structuredClone(c.format) as PagingFormat;
  const m2 = { ...pagingMode(c.format), format: f } as PagingMode;
  assert.equal(go(m2, ACCESS_WRITE), WALK_PF);
  (f.bits as { writable: number }).writable = 9;
  for (const l of [4, 3, 2, 1]) {
    const e = entryAt(chain, l);
    setBit64(e, 9);
    putEntry(chain, l, e);
  }
  assert.equal(go(m2, ACCESS_WRITE), WALK_OK);
  assert.equal(
    go(wp, ACCESS_WRITE),
    WALK_PF,
    "the frozen format still sees R/W = 0",
  );
});

Deno.test("walkInto: outcome codes and reason names are a closed set", () => {
  assert.deepEqual([WALK_OK, WALK_PF, WALK_GP], [0, 1, 2]);
  assert.equal(new Set(FAULT_REASONS).size, FAULT_REASONS.length);
  assert.equal(FAULT_REASONS[0], "none");
});
