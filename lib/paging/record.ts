/**
 * The complete, immutable walk record (design example 5): per level the
 * table base, index, entry address, raw entry, decoded flags and rights so
 * far; then a closed outcome. TLB fill, shadow construction and display
 * consume this record; nobody re-walks.
 *
 * @module
 */

import {
  type AddressLike,
  hex64,
  hexPhys,
  LinearAddress,
} from "../address/address.ts";
import { levelSpec, type PagingFormat } from "./format.ts";
import type { PagingMode } from "./mode.ts";
import {
  ACCESS_AC,
  ACCESS_FETCH,
  ACCESS_IMPLICIT,
  ACCESS_USER,
  ACCESS_WRITE,
  type EntryMemory,
  FAULT_REASONS,
  type FaultReason,
  PFEC_ID,
  PFEC_P,
  PFEC_PK,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  RIGHT_U,
  RIGHT_W,
  RIGHT_X,
  WALK_GP,
  WALK_OK,
  walkInto,
  WalkScratch,
} from "./walker.ts";
import { walkToSvg } from "../view/walk_svg.ts";
import { walkToText } from "../view/text.ts";

/** The kind of memory access. */
export type AccessKind = "read" | "write" | "fetch";

/** An access as users describe it. */
export interface AccessOptions {
  /** read (default), write or fetch. */
  kind?: AccessKind;
  /** CPL = 3 (default false: supervisor). */
  user?: boolean;
  /** Implicit supervisor access (descriptor-table loads): supervisor whatever the CPL. */
  implicit?: boolean;
  /** EFLAGS.AC (matters with SMAP). */
  ac?: boolean;
}

/** Options for {@linkcode walk}. */
export interface WalkOptions extends AccessOptions {
  /** PKRU value (with CR4.PKE). Default 0 (all keys allow everything). */
  pkru?: number;
  /** Set A/D bits on success (default true). False: a side-effect-free lookup. */
  setAD?: boolean;
}

/**
 * Convert an access description to walker flags (ACCESS_*), validating it.
 *
 * @example
 * ```ts
 * import { accessFlags } from "./record.ts";
 * import { ACCESS_USER, ACCESS_WRITE } from "./walker.ts";
 * import assert from "node:assert/strict";
 * assert.equal(accessFlags({ kind: "write", user: true }), ACCESS_WRITE | ACCESS_USER);
 * assert.throws(() => accessFlags({ kind: "exec" as "fetch" }), /"exec"/);
 * ```
 */
export function accessFlags(a: AccessOptions = {}): number {
  const kind = a.kind ?? "read";
  let f = 0;
  if (kind === "write") f |= ACCESS_WRITE;
  else if (kind === "fetch") f |= ACCESS_FETCH;
  else if (kind !== "read") {
    throw new RangeError(
      `access kind "${
        String(kind)
      }" is invalid: expected "read", "write" or "fetch"`,
    );
  }
  if (a.user) f |= ACCESS_USER;
  if (a.implicit) f |= ACCESS_IMPLICIT;
  if (a.ac) f |= ACCESS_AC;
  return f;
}

/** Rights as booleans. */
export interface Rights {
  /** Writable at every level. */
  readonly writable: boolean;
  /** User-accessible at every level (a "user-mode address"). */
  readonly user: boolean;
  /** Executable at every level. */
  readonly executable: boolean;
}

/**
 * Decode RIGHT_* bits.
 *
 * @example
 * ```ts
 * import { decodeRights } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(decodeRights(3), { writable: true, user: true, executable: false });
 * ```
 */
export function decodeRights(r: number): Rights {
  return {
    writable: (r & RIGHT_W) !== 0,
    user: (r & RIGHT_U) !== 0,
    executable: (r & RIGHT_X) !== 0,
  };
}

/** An entry's fields, decoded by the format. Absent bits are omitted. */
export interface EntryFlags {
  /** P / valid. */
  readonly present: boolean;
  /** R/W. */
  readonly writable?: boolean;
  /** U/S. */
  readonly user?: boolean;
  /** PWT. */
  readonly pwt?: boolean;
  /** PCD. */
  readonly pcd?: boolean;
  /** A. */
  readonly accessed?: boolean;
  /** D (leaf only). */
  readonly dirty?: boolean;
  /** PS (levels that can map pages). */
  readonly pageSize?: boolean;
  /** G (leaf only). */
  readonly global?: boolean;
  /** XD / NX. */
  readonly noExec?: boolean;
  /** X (positive sense). */
  readonly exec?: boolean;
  /** Protection key (4/5-level leaf). */
  readonly pkey?: number;
  /** Address of the next table or page frame the entry names. */
  readonly address: number;
}

function bit(lo: number, hi: number, b: number): boolean | undefined {
  if (b < 0) return undefined;
  return b < 32 ? ((lo >>> b) & 1) === 1 : ((hi >>> (b - 32)) & 1) === 1;
}

/**
 * Decode an entry at `level` of `format` from its two dwords.
 *
 * @example
 * ```ts
 * import { decodeEntry } from "./record.ts";
 * import { X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * const e = decodeEntry(X86_64_4LEVEL, 1, 0x1234_5067, 0x8000_0000);
 * assert.equal(e.present && e.writable && e.user && e.accessed && e.dirty, true);
 * assert.equal(e.noExec, true);
 * assert.equal(e.address, 0x12345000);
 * ```
 */
export function decodeEntry(
  format: PagingFormat,
  level: number,
  lo: number,
  hi: number,
): EntryFlags {
  const b = format.bits;
  const spec = levelSpec(format, level);
  const ps = spec.canMapPage && level > 1 ? bit(lo, hi, b.pageSize) : undefined;
  const leaf = level === 1 || ps === true;
  let address: number;
  if (format.kind === "radix") {
    let field = 0;
    for (let k = format.frameWidth - 1; k >= 0; k--) {
      field = field * 2 + (bit(lo, hi, format.frameLow + k) ? 1 : 0);
    }
    address = field * 2 ** format.pageShift;
  } else if (format.kind === "x86-32") {
    address = ps
      ? ((lo & 0xffc00000) >>> 0) + ((lo >>> 13) & 0xff) * 2 ** 32
      : (lo & 0xfffff000) >>> 0;
  } else {
    // A table pointer or 4 KiB leaf holds address bits 51:12; a large leaf
    // holds bits 51:shift (below that: PAT and reserved bits).
    const lowMask = ps ? ~((2 ** spec.shift) - 1) : ~0xfff;
    address = (hi & 0xfffff) * 2 ** 32 + ((lo & lowMask) >>> 0);
  }
  const out: Record<string, unknown> = { present: bit(lo, hi, b.present) };
  const add = (k: string, v: unknown) => {
    if (v !== undefined) out[k] = v;
  };
  add("writable", bit(lo, hi, b.writable));
  add("user", bit(lo, hi, b.user));
  add("pwt", bit(lo, hi, b.pwt));
  add("pcd", bit(lo, hi, b.pcd));
  if (spec.hasAccessed) add("accessed", bit(lo, hi, b.accessed));
  if (leaf) add("dirty", bit(lo, hi, b.dirty));
  add("pageSize", ps);
  if (leaf) add("global", bit(lo, hi, b.global));
  add("noExec", bit(lo, hi, b.noExec));
  add("exec", bit(lo, hi, b.exec));
  if (leaf && b.pkey >= 32) add("pkey", (hi >>> (b.pkey - 32)) & 15);
  out.address = address;
  return out as unknown as EntryFlags;
}

/** An entry decoded under a paging mode (see {@linkcode decodeModeEntry}). */
export interface ModeEntryFlags extends EntryFlags {
  /** A reserved bit is set (the walker faults here with RSVD = 1). */
  readonly reserved: boolean;
  /** The entry maps a page (level 1, or PS = 1 where the mode honours it). */
  readonly leaf: boolean;
}

/**
 * Decode an entry as the walker of `mode` reads it: PS ignored where the
 * mode ignores it (32-bit paging with CR4.PSE = 0, SDM Table 4-5), no rights
 * on PAE PDPTEs (those bits are reserved there, SDM Table 4-8), the address
 * limited to MAXPHYADDR bits, and whether reserved bits are set. Listings
 * and displays use this so that they agree with the walker.
 *
 * @example
 * ```ts
 * import { decodeModeEntry } from "./record.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_32, X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * // PS = 1 in a PDE with CR4.PSE = 0 is ignored: a page-table pointer.
 * const e = decodeModeEntry(pagingMode(X86_32, { pse: false }), 2, 0x0040_1087, 0);
 * assert.equal(e.leaf, false);
 * assert.equal(e.address, 0x0040_1000);
 * // Address bit 46 with MAXPHYADDR 46 is reserved.
 * const r = decodeModeEntry(pagingMode(X86_64_4LEVEL, { maxPhyAddr: 46 }), 1, 0x1003, 0x4000);
 * assert.equal(r.reserved, true);
 * assert.equal(r.address, 0x1000);
 * ```
 */
export function decodeModeEntry(
  mode: PagingMode,
  level: number,
  lo: number,
  hi: number,
): ModeEntryFlags {
  const f = mode.format;
  const t = mode.tables;
  levelSpec(f, level);
  const psBit = f.bits.pageSize;
  const psSet = psBit >= 0 && bit(lo, hi, psBit) === true;
  const ps = psSet && t.psLeaf[level] === 1;
  const dlo = psSet && !ps && f.kind === "x86-32"
    ? (lo & ~(1 << psBit)) >>> 0
    : lo;
  const base = decodeEntry(f, level, dlo, hi) as unknown as Record<
    string,
    unknown
  >;
  const k = 2 * level + (ps ? 1 : 0);
  const reserved = ((lo & t.rsvdLo[k]) | (hi & t.rsvdHi[k])) !== 0;
  const out: Record<string, unknown> = {
    ...base,
    reserved,
    leaf: level === 1 || ps,
  };
  if (f.kind === "x86-64" || f.kind === "pae") {
    const shift = levelSpec(f, level).shift;
    const lowMask = ps ? ~((2 ** shift) - 1) & t.addrLo : t.addrLo;
    out.address = (hi & t.addrHi) * 2 ** 32 + ((lo & lowMask) >>> 0);
  }
  if (t.hasRights[level] !== 1) {
    delete out.writable;
    delete out.user;
    delete out.noExec;
    delete out.exec;
  }
  return out as unknown as ModeEntryFlags;
}

/**
 * Read the entry at `ea` of a `format` table as `[lo, hi]` dwords (hi is 0
 * for entries of 4 bytes or fewer). The one place that knows entry widths
 * outside the walker.
 *
 * @example
 * ```ts
 * import { readEntry } from "./record.ts";
 * import { PAE, OSTEP_15BIT } from "./format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const m = new PhysicalMemory({ size: 1 << 16 });
 * m.write32(0x104, 0x80000000);
 * m.write8(0x20, 0x85);
 * assert.deepEqual(readEntry(m, PAE, 0x100), [0, 0x80000000]);
 * assert.deepEqual(readEntry(m, OSTEP_15BIT, 0x20), [0x85, 0]);
 * ```
 */
export function readEntry(
  memory: Pick<EntryMemory, "read8" | "read16" | "read32">,
  format: PagingFormat,
  ea: number,
): [number, number] {
  const eb = format.entryBytes;
  if (eb === 8) return [memory.read32(ea), memory.read32(ea + 4)];
  if (eb === 4) return [memory.read32(ea), 0];
  if (eb === 2) return [memory.read16(ea), 0];
  return [memory.read8(ea), 0];
}

/**
 * Whether a raw entry at `level` is a leaf in `mode`: level 1, or PS = 1
 * where the mode honours it (not in PML4Es/PML5Es, not in 32-bit PDEs with
 * CR4.PSE = 0).
 *
 * @example
 * ```ts
 * import { isLeafEntry } from "./record.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * const m = pagingMode(X86_64_4LEVEL);
 * assert.equal(isLeafEntry(m, 2, 0x200083, 0), true);  // 2 MiB page
 * assert.equal(isLeafEntry(m, 4, 0x1083, 0), false);    // PS is reserved in a PML4E
 * assert.equal(isLeafEntry(m, 1, 0x1003, 0), true);
 * ```
 */
export function isLeafEntry(
  mode: PagingMode,
  level: number,
  lo: number,
  hi: number,
): boolean {
  if (level === 1) return true;
  const ps = mode.format.bits.pageSize;
  if (ps < 0 || mode.tables.psLeaf[level] !== 1) return false;
  return (ps < 32 ? (lo >>> ps) & 1 : (hi >>> (ps - 32)) & 1) === 1;
}

/** One table read of a walk. */
export interface WalkStep {
  /** Level (1 = leaf table). */
  readonly level: number;
  /** Table name, e.g. "PML4". */
  readonly table: string;
  /** Entry name, e.g. "PML4E". */
  readonly entryName: string;
  /** Physical address of the table. */
  readonly tableBase: number;
  /** Index into the table. */
  readonly index: number;
  /** Physical address of the entry. */
  readonly entryAddress: number;
  /** The entry as read, before this walk's A/D updates. */
  readonly entry: bigint;
  /** Decoded entry. */
  readonly flags: EntryFlags;
  /** Rights accumulated including this entry. */
  readonly rights: Rights;
  /** Whether this entry is the leaf. */
  readonly leaf: boolean;
  /** Whether this walk set the entry's A bit. */
  readonly accessedSet: boolean;
  /** Whether this walk set the entry's D bit. */
  readonly dirtySet: boolean;
}

/** Decoded #PF error code (SDM §4.7). */
export interface PageFaultErrorCode {
  /** The raw value. */
  readonly value: number;
  /** P: 0 = not present, 1 = protection or reserved-bit violation. */
  readonly p: boolean;
  /** W/R: the access was a write. */
  readonly w: boolean;
  /** U/S: a user-mode access (CPL 3, not implicit). */
  readonly u: boolean;
  /** RSVD: a reserved bit was set. */
  readonly rsvd: boolean;
  /** I/D: an instruction fetch (reported with SMEP, or NXE under PAE/64-bit). */
  readonly id: boolean;
  /** PK: a protection-key violation. */
  readonly pk: boolean;
}

/**
 * Decode a #PF error code.
 *
 * @example
 * ```ts
 * import { decodeErrorCode } from "./record.ts";
 * import assert from "node:assert/strict";
 * const e = decodeErrorCode(0b110);
 * assert.equal(e.p, false);
 * assert.equal(e.w && e.u, true);
 * ```
 */
export function decodeErrorCode(value: number): PageFaultErrorCode {
  return {
    value,
    p: (value & PFEC_P) !== 0,
    w: (value & PFEC_W) !== 0,
    u: (value & PFEC_U) !== 0,
    rsvd: (value & PFEC_RSVD) !== 0,
    id: (value & PFEC_ID) !== 0,
    pk: (value & PFEC_PK) !== 0,
  };
}

/** A successful translation. */
export interface Translation {
  /** Discriminant. */
  readonly kind: "ok";
  /** Physical address. */
  readonly pa: number;
  /** Mapped page size in bytes. */
  readonly pageSize: number;
  /** Level of the leaf entry. */
  readonly level: number;
  /** Effective rights (AND along the path). */
  readonly rights: Rights;
  /** Protection key (4/5-level with CR4.PKE), else 0. */
  readonly pkey: number;
  /** Global translation (G = 1 with CR4.PGE). */
  readonly global: boolean;
  /** Levels whose A bit this walk set. */
  readonly accessedSet: readonly number[];
  /** Whether this walk set the leaf's D bit. */
  readonly dirtySet: boolean;
}

/** A page fault (#PF). */
export interface PageFault {
  /** Discriminant. */
  readonly kind: "page-fault";
  /** Decoded error code. */
  readonly errorCode: PageFaultErrorCode;
  /** CR2: the faulting linear address. */
  readonly cr2: LinearAddress;
  /** Level of the entry that stopped the walk (the leaf for rights faults). */
  readonly level: number;
  /** Why. */
  readonly reason: FaultReason;
  /** One-line explanation. */
  readonly message: string;
}

/** A general-protection fault (#GP(0)). */
export interface GeneralProtection {
  /** Discriminant. */
  readonly kind: "gp";
  /** Why: a non-canonical address, or reserved bits in a PAE PDPTE at CR3 load. */
  readonly reason: FaultReason;
  /** One-line explanation. */
  readonly message: string;
}

/** The closed set of walk outcomes. */
export type WalkOutcome = Translation | PageFault | GeneralProtection;

/** One field of the linear address (an index or the offset). */
export interface AddressField {
  /** Level indexed by this field, or 0 for the page offset. */
  readonly level: number;
  /** Name, e.g. "PML4" or "offset". */
  readonly name: string;
  /** Lowest bit. */
  readonly shift: number;
  /** Width in bits. */
  readonly bits: number;
  /** Value of the field. */
  readonly value: number;
}

/** The access of a walk, normalized. */
export interface WalkAccess {
  /** Kind. */
  readonly kind: AccessKind;
  /** CPL 3. */
  readonly user: boolean;
  /** Implicit supervisor access. */
  readonly implicit: boolean;
  /** EFLAGS.AC. */
  readonly ac: boolean;
}

/**
 * One-line explanation of each fault reason.
 *
 * @example
 * ```ts
 * import { FAULT_REASON_TEXT } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.match(FAULT_REASON_TEXT["smap"], /SMAP/);
 * ```
 */
export const FAULT_REASON_TEXT: Readonly<Record<FaultReason, string>> = {
  "none": "",
  "not-present": "entry not present (P = 0)",
  "reserved-bit": "reserved bit set",
  "user-supervisor":
    "user-mode access to a supervisor page (U/S = 0 on the path)",
  "write-protect": "write to a read-only page (R/W = 0 on the path)",
  "no-execute": "instruction fetch from a no-execute page (XD = 1 on the path)",
  "smep": "supervisor fetch from a user page with CR4.SMEP = 1",
  "smap":
    "supervisor data access to a user page with CR4.SMAP = 1 (EFLAGS.AC = 0 or implicit access)",
  "pkey": "protection key denies the access (PKRU)",
  "non-canonical": "non-canonical linear address",
  "pdpte-reserved": "reserved bit in a PAE PDPTE (checked at MOV to CR3)",
};

/** Where a walk began below the root, if it did. */
export interface WalkResume {
  /** Level of the first table read. */
  readonly level: number;
  /** Why the upper levels were skipped. */
  readonly source: "paging-structure-cache" | "pdpte-register";
}

/**
 * A complete walk record with rich display. Build with {@linkcode walk} or
 * from a filled scratch with {@linkcode Walk.fromScratch}.
 */
export class Walk {
  /** The format walked. */
  readonly format: PagingFormat;
  /** The mode (control bits) of the walk. */
  readonly mode: PagingMode;
  /** Root table address (CR3 base). */
  readonly root: number;
  /** The linear address. */
  readonly va: LinearAddress;
  /** The access. */
  readonly access: WalkAccess;
  /** The address split into index fields and offset, root first. */
  readonly fields: readonly AddressField[];
  /** Table reads, in order. */
  readonly steps: readonly WalkStep[];
  /** Outcome. */
  readonly outcome: WalkOutcome;
  /** Set when the walk started below the root. */
  readonly resumed: WalkResume | undefined;
  /** PKRU during the walk (matters with CR4.PKE). */
  readonly pkru: number;

  private constructor(
    init: Omit<Walk, "fault" | "ok" | "pa" | "toString">,
  ) {
    this.format = init.format;
    this.mode = init.mode;
    this.root = init.root;
    this.va = init.va;
    this.access = init.access;
    this.fields = init.fields;
    this.steps = init.steps;
    this.outcome = init.outcome;
    this.resumed = init.resumed;
    this.pkru = init.pkru;
    Object.freeze(this);
  }

  /** Whether the access succeeded. */
  get ok(): boolean {
    return this.outcome.kind === "ok";
  }

  /** The physical address, or undefined on a fault. */
  get pa(): number | undefined {
    return this.outcome.kind === "ok" ? this.outcome.pa : undefined;
  }

  /**
   * Build the record from a scratch filled by `walkInto`.
   * `access` is the ACCESS_* flag set the walk used, `pkru` the PKRU value.
   */
  static fromScratch(
    s: WalkScratch,
    mode: PagingMode,
    root: number,
    va: LinearAddress,
    access: number,
    resumed?: WalkResume,
    pkru = 0,
  ): Walk {
    const f = mode.format;
    const fields: AddressField[] = f.levels.map((l) => ({
      level: l.level,
      name: l.table,
      shift: l.shift,
      bits: l.bits,
      value: fieldValue(va, l.shift, l.bits),
    }));
    fields.push({
      level: 0,
      name: "offset",
      shift: 0,
      bits: f.pageShift,
      value: fieldValue(va, 0, f.pageShift),
    });
    const steps: WalkStep[] = [];
    for (let i = 0; i < s.steps; i++) {
      const level = s.level[i];
      const flags: EntryFlags = decodeModeEntry(mode, level, s.lo[i], s.hi[i]);
      const leaf = s.leafFound && i === s.steps - 1;
      steps.push({
        level,
        table: levelSpec(f, level).table,
        entryName: levelSpec(f, level).entry,
        tableBase: s.base[i],
        index: s.index[i],
        entryAddress: s.entryAddr[i],
        entry: (BigInt(s.hi[i]) << 32n) | BigInt(s.lo[i]),
        flags,
        rights: decodeRights(s.rights[i]),
        leaf,
        accessedSet: (s.aSet & (1 << i)) !== 0,
        dirtySet: s.dSet && i === s.steps - 1,
      });
    }
    const acc: WalkAccess = {
      kind: access & ACCESS_WRITE
        ? "write"
        : access & ACCESS_FETCH
        ? "fetch"
        : "read",
      user: (access & ACCESS_USER) !== 0,
      implicit: (access & ACCESS_IMPLICIT) !== 0,
      ac: (access & ACCESS_AC) !== 0,
    };
    let outcome: WalkOutcome;
    const reason = FAULT_REASONS[s.reason];
    if (s.outcome === WALK_OK) {
      outcome = {
        kind: "ok",
        pa: s.pa,
        pageSize: 2 ** s.pageShift,
        level: s.leafLevel,
        rights: decodeRights(s.finalRights),
        pkey: s.pkey,
        global: s.global,
        accessedSet: steps.filter((x) => x.accessedSet).map((x) => x.level),
        dirtySet: s.dSet,
      };
    } else if (s.outcome === WALK_GP) {
      outcome = {
        kind: "gp",
        reason,
        message: `#GP(0): ${FAULT_REASON_TEXT[reason]} ${va.toHex()}`,
      };
    } else {
      const where = s.leafLevel > 0
        ? ` at ${levelSpec(f, s.leafLevel).entry}`
        : "";
      outcome = {
        kind: "page-fault",
        errorCode: decodeErrorCode(s.errorCode),
        cr2: va,
        level: s.leafLevel,
        reason,
        message: `#PF(0x${s.errorCode.toString(16)}) at ${va.toHex()}: ${
          FAULT_REASON_TEXT[reason]
        }${where}`,
      };
    }
    return new Walk({
      format: f,
      mode,
      root,
      va,
      access: acc,
      fields,
      steps,
      outcome,
      resumed,
      pkru,
    });
  }

  /** One-line summary. */
  toString(): string {
    const o = this.outcome;
    if (o.kind === "ok") {
      return `${this.va.toHex()} → ${hexPhys(o.pa)} (${
        sizeName(o.pageSize)
      } page, ${this.steps.length} table reads)`;
    }
    return o.message;
  }

  /** Jupyter rich display: SVG walk diagram plus text. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return { "text/plain": walkToText(this), "image/svg+xml": walkToSvg(this) };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return walkToText(this);
  }
}

function fieldValue(va: LinearAddress, shift: number, bits: number): number {
  let v = 0;
  for (let k = bits - 1; k >= 0; k--) {
    const b = shift + k;
    const word = b >= 32 ? va.hi : va.lo;
    v = v * 2 + ((word >>> (b & 31)) & 1);
  }
  return v;
}

/**
 * Human name of a page size ("4 KiB", "2 MiB", "32 B").
 *
 * @example
 * ```ts
 * import { sizeName } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.equal(sizeName(2 ** 21), "2 MiB");
 * assert.equal(sizeName(32), "32 B");
 * ```
 */
export function sizeName(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let u = 0;
  let v = bytes;
  while (v >= 1024 && v % 1024 === 0 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v} ${units[u]}`;
}

/** Where to walk: memory, mode and root table. */
export interface WalkTarget {
  /** Memory holding the tables. */
  readonly memory: EntryMemory;
  /** Paging mode (format + control bits). */
  readonly mode: PagingMode;
  /** Root table physical address (CR3 base). */
  readonly root: number;
}

const scratch = new WalkScratch();

/**
 * Walk `target`'s tables for `va` and return the complete record. Sets A/D
 * bits on success unless `setAD: false`. Throws `RangeError` for a linear
 * address wider than the format (32-bit formats) and for a misaligned root.
 *
 * @example
 * ```ts
 * import { walk } from "./record.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_32 } from "./format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 24 });
 * memory.write32(0x1000 + 4 * 1, 0x2000 | 0x7);   // PDE 1 → PT at 0x2000 (P, R/W, U/S)
 * memory.write32(0x2000 + 4 * 2, 0x5000 | 0x5);   // PTE 2 → frame 0x5000 (P, U/S; read-only)
 * const target = { memory, mode: pagingMode(X86_32), root: 0x1000 };
 * const w = walk(target, 0x00402abc);
 * assert.equal(w.pa, 0x5abc);
 * const f = walk(target, 0x00402abc, { kind: "write", user: true });
 * assert.equal(f.outcome.kind, "page-fault");
 * if (f.outcome.kind === "page-fault") assert.equal(f.outcome.errorCode.value, 0b111);
 * ```
 */
export function walk(
  target: WalkTarget,
  va: AddressLike | LinearAddress,
  options: WalkOptions = {},
): Walk {
  const a = LinearAddress.from(va);
  const mode = target.mode;
  checkVa(mode, a);
  checkRoot(mode, target.root);
  const flags = accessFlags(options);
  const pkru = checkPkru(options.pkru ?? 0);
  walkInto(
    scratch,
    mode,
    target.memory,
    target.root,
    a.hi,
    a.lo,
    flags,
    pkru,
    0,
    0,
    7,
    options.setAD ?? true,
  );
  return Walk.fromScratch(
    scratch,
    mode,
    target.root,
    a,
    flags,
    undefined,
    pkru,
  );
}

/**
 * Throw a `RangeError` if `va` is wider than a non-x86-64 format allows
 * (x86-64 non-canonical addresses are not errors: they give #GP outcomes).
 *
 * @example
 * ```ts
 * import { checkVa } from "./record.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_32 } from "./format.ts";
 * import { LinearAddress } from "../address/address.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => checkVa(pagingMode(X86_32), LinearAddress.from(2 ** 32)), /32-bit/);
 * ```
 */
export function checkVa(mode: PagingMode, va: LinearAddress): void {
  const f = mode.format;
  if (f.canonical === "sign") return;
  const vb = f.vaBits;
  const ok = vb >= 64
    ? true
    : vb > 32
    ? (va.hi >>> (vb - 32)) === 0
    : va.hi === 0 && (vb === 32 || (va.lo >>> vb) === 0);
  if (!ok) {
    throw new RangeError(
      `linear address ${va.toHex()} does not fit the ${vb}-bit address space of ${f.name}: expected a value below ${
        hex64(vb >= 32 ? 2 ** (vb - 32) : 0, vb >= 32 ? 0 : 2 ** vb)
      }`,
    );
  }
}

/**
 * Throw a `RangeError` unless `root` is a properly aligned table address
 * below the mode's physical limit.
 *
 * @example
 * ```ts
 * import { checkRoot } from "./record.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL, PAE } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => checkRoot(pagingMode(X86_64_4LEVEL), 0x1010), /misaligned/);
 * checkRoot(pagingMode(PAE), 0x1020); // PAE PDPTs are 32-byte aligned
 * ```
 */
export function checkRoot(mode: PagingMode, root: number): void {
  const f = mode.format;
  if (
    !Number.isInteger(root) || root < 0 || root >= mode.physLimit
  ) {
    throw new RangeError(
      `root table address ${
        String(root)
      } is invalid for ${f.name}: expected an integer in [0, ${
        hexPhys(mode.physLimit)
      })`,
    );
  }
  if (root % f.rootBytes !== 0) {
    throw new RangeError(
      `root table address ${
        hexPhys(root)
      } is misaligned for ${f.name}: expected a multiple of ${f.rootBytes} bytes`,
    );
  }
}

/**
 * Throw a `RangeError` unless `pkru` is an unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * import { checkPkru } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.equal(checkPkru(0x55555554), 0x55555554);
 * assert.throws(() => checkPkru(-1), /PKRU/);
 * ```
 */
export function checkPkru(pkru: number): number {
  if (!Number.isInteger(pkru) || pkru < 0 || pkru > 0xffffffff) {
    throw new RangeError(
      `PKRU ${String(pkru)} is invalid: expected an unsigned 32-bit integer`,
    );
  }
  return pkru;
}
