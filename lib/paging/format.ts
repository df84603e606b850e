/**
 * Paging formats as data: one frozen, validated descriptor per format, read
 * by the one walker (the design of KVM's `paging_tmpl.h`, where one walker
 * is instantiated per format, but here the format is a value).
 *
 * Built-in: x86 32-bit (Intel SDM Vol. 3 §4.3), PAE (§4.4), 4-level and
 * 5-level (§4.5), and {@linkcode radixFormat} for teaching geometries.
 *
 * @module
 */

/** Named entry bits. A position is a bit number in the entry, or -1. */
export interface EntryBits {
  /** Present / valid. */
  readonly present: number;
  /** Writable when set (x86 R/W). -1 = always writable. */
  readonly writable: number;
  /** User-accessible when set (x86 U/S). -1 = always user. */
  readonly user: number;
  /** Execute-disable when set (x86 XD, bit 63). Mutually exclusive with `exec`. */
  readonly noExec: number;
  /** Executable when set (positive sense). Mutually exclusive with `noExec`. */
  readonly exec: number;
  /** Accessed, set by the walker on every entry used. */
  readonly accessed: number;
  /** Dirty, set by the walker on the leaf for writes. */
  readonly dirty: number;
  /** Page size: a leaf above level 1. */
  readonly pageSize: number;
  /** Global (leaf only, with CR4.PGE). */
  readonly global: number;
  /** Page-level write-through. */
  readonly pwt: number;
  /** Page-level cache disable. */
  readonly pcd: number;
  /** Lowest bit of the 4-bit protection key (leaf only, 4/5-level). */
  readonly pkey: number;
}

/** One level of a format. Level 1 is the leaf table. */
export interface LevelSpec {
  /** Level number; 1 = the table that maps base pages. */
  readonly level: number;
  /** Table name, e.g. "PML4", "PD". */
  readonly table: string;
  /** Entry name, e.g. "PML4E", "PDE". */
  readonly entry: string;
  /** Lowest linear-address bit this level indexes. */
  readonly shift: number;
  /** Number of index bits. */
  readonly bits: number;
  /** Whether an entry at this level may map a page (PS = 1). */
  readonly canMapPage: boolean;
  /** Whether entries at this level have an accessed bit (PAE PDPTEs do not). */
  readonly hasAccessed: boolean;
}

/** A paging format descriptor. Build with one of the constructors below. */
export interface PagingFormat {
  /** Display name. */
  readonly name: string;
  /** Family: drives the few x86 irregularities. */
  readonly kind: "x86-32" | "pae" | "x86-64" | "radix";
  /** Linear-address width in bits. */
  readonly vaBits: number;
  /** log2 of the base page size. */
  readonly pageShift: number;
  /** Entry width in bytes: 1, 2, 4 or 8. */
  readonly entryBytes: number;
  /** Levels, root first (`levels[0].level === levels.length`). */
  readonly levels: readonly LevelSpec[];
  /** Named bit positions. */
  readonly bits: EntryBits;
  /** Frame field: lowest bit in the entry. */
  readonly frameLow: number;
  /**
   * Frame field width in bits, before MAXPHYADDR trimming. The table or
   * page address is `field << pageShift`.
   */
  readonly frameWidth: number;
  /** `"sign"`: x86-64 canonical check; `"zero"`: address must be < 2^vaBits. */
  readonly canonical: "sign" | "zero";
  /** Bytes the root table occupies (its required alignment). */
  readonly rootBytes: number;
  /** PAE: the top-level entries are loaded into PDPTE registers on MOV to CR3. */
  readonly pdpteRegisters: boolean;
}

const NONE = -1;

function x86Bits(nxBit: number, pkey: number): EntryBits {
  return {
    present: 0,
    writable: 1,
    user: 2,
    pwt: 3,
    pcd: 4,
    accessed: 5,
    dirty: 6,
    pageSize: 7,
    global: 8,
    noExec: nxBit,
    exec: NONE,
    pkey,
  };
}

function lvl(
  level: number,
  table: string,
  entry: string,
  shift: number,
  bits: number,
  canMapPage: boolean,
  hasAccessed = true,
): LevelSpec {
  return { level, table, entry, shift, bits, canMapPage, hasAccessed };
}

/**
 * Validate a descriptor loudly and freeze it (deeply).
 * Throws `RangeError` for overlapping bit assignments, both exec and noExec,
 * bits beyond the entry width, inconsistent level shifts, and so on.
 *
 * @example
 * ```ts
 * import { validateFormat, X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.throws(
 *   () => validateFormat({ ...X86_64_4LEVEL, bits: { ...X86_64_4LEVEL.bits, exec: 58 } }),
 *   /both exec .* and noExec/,
 * );
 * ```
 */
export function validateFormat(f: PagingFormat): PagingFormat {
  const fail = (msg: string): never => {
    throw new RangeError(`paging format "${f.name}": ${msg}`);
  };
  if (![1, 2, 4, 8].includes(f.entryBytes)) {
    fail(`entryBytes ${f.entryBytes} is invalid: expected 1, 2, 4 or 8`);
  }
  const width = f.entryBytes * 8;
  if (!Number.isInteger(f.pageShift) || f.pageShift < 1 || f.pageShift > 30) {
    fail(`pageShift ${f.pageShift} is invalid: expected an integer in [1, 30]`);
  }
  if (f.levels.length < 1 || f.levels.length > 8) {
    fail(`${f.levels.length} levels: expected 1 to 8`);
  }
  let shift = f.pageShift;
  for (let i = f.levels.length - 1; i >= 0; i--) {
    const l = f.levels[i];
    if (l.level !== f.levels.length - i) {
      fail(
        `level at position ${i} is numbered ${l.level}: expected ${
          f.levels.length - i
        } (root first, leaf table = 1)`,
      );
    }
    if (l.shift !== shift) {
      fail(`level ${l.level} shift ${l.shift}: expected ${shift}`);
    }
    if (!Number.isInteger(l.bits) || l.bits < 1 || l.bits > 20) {
      fail(`level ${l.level} has ${l.bits} index bits: expected 1 to 20`);
    }
    shift += l.bits;
  }
  if (shift !== f.vaBits) {
    fail(
      `levels cover ${shift} address bits but vaBits is ${f.vaBits}`,
    );
  }
  if (f.vaBits > 64) fail(`vaBits ${f.vaBits} exceeds 64`);
  const b = f.bits;
  if (b.exec !== NONE && b.noExec !== NONE) {
    fail(
      `both exec (bit ${b.exec}) and noExec (bit ${b.noExec}) are set: a format has one sense of execute permission`,
    );
  }
  if (b.present === NONE) fail("present bit is required");
  const owner = new Map<number, string>();
  const claim = (bit: number, name: string) => {
    if (bit === NONE) return;
    if (!Number.isInteger(bit) || bit < 0 || bit >= width) {
      fail(
        `${name} bit ${bit} lies outside a ${width}-bit entry (expected 0..${
          width - 1
        } or -1)`,
      );
    }
    const prev = owner.get(bit);
    if (prev !== undefined) fail(`${name} bit ${bit} overlaps ${prev}`);
    owner.set(bit, name);
  };
  for (const [name, bit] of Object.entries(b)) {
    if (name === "pkey") {
      if (bit !== NONE) { for (let k = 0; k < 4; k++) claim(bit + k, "pkey"); }
    } else claim(bit, name);
  }
  if (
    !Number.isInteger(f.frameLow) || !Number.isInteger(f.frameWidth) ||
    f.frameLow < 0 || f.frameWidth < 1 || f.frameLow + f.frameWidth > width
  ) {
    fail(
      `frame field bits ${f.frameLow}..${
        f.frameLow + f.frameWidth - 1
      } exceed the ${width}-bit entry`,
    );
  }
  for (let k = f.frameLow; k < f.frameLow + f.frameWidth; k++) {
    const prev = owner.get(k);
    // x86 large-page leaves reuse low frame bits for PAT; tables don't, so
    // only a clash with a bit that every entry uses is an error.
    if (prev !== undefined) fail(`frame field bit ${k} overlaps ${prev}`);
  }
  // Every table of a multi-level format lives in one page frame (the
  // builder allocates one frame per table, the root included), so every
  // level must fit, not only the leaf table. A single-level format's root is
  // a linear page table and may be larger.
  for (const l of f.levels) {
    const tableBytes = (2 ** l.bits) * f.entryBytes;
    if (f.levels.length > 1 && tableBytes > 2 ** f.pageShift) {
      fail(
        `a level-${l.level} table (${tableBytes} bytes) does not fit in one ${
          2 ** f.pageShift
        }-byte page`,
      );
    }
  }
  if (
    f.levels.some((l) => l.canMapPage && l.level > 1) && b.pageSize === NONE
  ) {
    fail("levels that can map pages need a pageSize bit");
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

/**
 * x86 32-bit paging (SDM §4.3): 10/10/12, 4-byte entries, 4 MiB pages when
 * CR4.PSE = 1 (with PSE-36 high address bits in PDE bits 20:13).
 *
 * @example
 * ```ts
 * import { X86_32 } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(X86_32.levels.map((l) => l.bits), [10, 10]);
 * ```
 */
export const X86_32: PagingFormat = validateFormat({
  name: "x86 32-bit",
  kind: "x86-32",
  vaBits: 32,
  pageShift: 12,
  entryBytes: 4,
  levels: [
    lvl(2, "PD", "PDE", 22, 10, true),
    lvl(1, "PT", "PTE", 12, 10, false),
  ],
  bits: x86Bits(NONE, NONE),
  frameLow: 12,
  frameWidth: 20,
  canonical: "zero",
  rootBytes: 4096,
  pdpteRegisters: false,
});

/**
 * PAE paging (SDM §4.4): 2/9/9/12, 8-byte entries, 2 MiB pages, a 32-byte
 * PDPT whose four entries are loaded into PDPTE registers on MOV to CR3.
 *
 * @example
 * ```ts
 * import { PAE } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PAE.rootBytes, 32);
 * assert.deepEqual(PAE.levels.map((l) => l.entry), ["PDPTE", "PDE", "PTE"]);
 * ```
 */
export const PAE: PagingFormat = validateFormat({
  name: "PAE",
  kind: "pae",
  vaBits: 32,
  pageShift: 12,
  entryBytes: 8,
  levels: [
    lvl(3, "PDPT", "PDPTE", 30, 2, false, false),
    lvl(2, "PD", "PDE", 21, 9, true),
    lvl(1, "PT", "PTE", 12, 9, false),
  ],
  bits: x86Bits(63, NONE),
  frameLow: 12,
  frameWidth: 40,
  canonical: "zero",
  rootBytes: 32,
  pdpteRegisters: true,
});

/**
 * 4-level paging (SDM §4.5): 9/9/9/9/12, 2 MiB and 1 GiB pages, 48-bit
 * canonical linear addresses, protection keys in leaf bits 62:59.
 *
 * @example
 * ```ts
 * import { X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(X86_64_4LEVEL.vaBits, 48);
 * assert.equal(X86_64_4LEVEL.levels[0].entry, "PML4E");
 * ```
 */
export const X86_64_4LEVEL: PagingFormat = validateFormat({
  name: "x86-64 4-level",
  kind: "x86-64",
  vaBits: 48,
  pageShift: 12,
  entryBytes: 8,
  levels: [
    lvl(4, "PML4", "PML4E", 39, 9, false),
    lvl(3, "PDPT", "PDPTE", 30, 9, true),
    lvl(2, "PD", "PDE", 21, 9, true),
    lvl(1, "PT", "PTE", 12, 9, false),
  ],
  bits: x86Bits(63, 59),
  frameLow: 12,
  frameWidth: 40,
  canonical: "sign",
  rootBytes: 4096,
  pdpteRegisters: false,
});

/**
 * 5-level paging (LA57, SDM §4.5): a PML5 above the PML4, 57-bit linear
 * addresses.
 *
 * @example
 * ```ts
 * import { X86_64_5LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(X86_64_5LEVEL.vaBits, 57);
 * assert.equal(X86_64_5LEVEL.levels.length, 5);
 * ```
 */
export const X86_64_5LEVEL: PagingFormat = validateFormat({
  ...X86_64_4LEVEL,
  name: "x86-64 5-level",
  vaBits: 57,
  levels: [
    lvl(5, "PML5", "PML5E", 48, 9, false),
    ...X86_64_4LEVEL.levels,
  ],
});

/** Options for {@linkcode radixFormat}. */
export interface RadixOptions {
  /** Display name. */
  name?: string;
  /** log2 of the page size in bytes (e.g. 5 for 32-byte pages). */
  pageShift: number;
  /** Index bits per level, root first (e.g. [5, 5]). */
  levelBits: number[];
  /** Entry width in bytes; default 1. */
  entryBytes?: number;
  /** Valid bit position; default the entry's top bit. */
  validBit?: number;
  /** Frame-number field: lowest bit (default 0) and width. */
  frameLow?: number;
  /** Frame-number width in bits; default everything below the valid bit. */
  frameWidth?: number;
  /** Optional permission and status bits (default: absent = allowed). */
  writableBit?: number;
  /** User bit position, or absent. */
  userBit?: number;
  /** Execute-disable bit position, or absent. */
  noExecBit?: number;
  /** Accessed bit position, or absent. */
  accessedBit?: number;
  /** Dirty bit position, or absent. */
  dirtyBit?: number;
}

/**
 * A generic radix format for teaching geometries. The table or frame
 * address is `frameNumber << pageShift`.
 *
 * @example OSTEP's multi-level paging homework: a 15-bit address space,
 * 32-byte pages, one-byte entries, bit 7 valid, bits 6..0 the frame.
 * ```ts
 * import { radixFormat } from "./format.ts";
 * import assert from "node:assert/strict";
 * const f = radixFormat({ pageShift: 5, levelBits: [5, 5] });
 * assert.equal(f.vaBits, 15);
 * assert.equal(f.bits.present, 7);
 * assert.equal(f.frameWidth, 7);
 * assert.throws(() => radixFormat({ pageShift: 5, levelBits: [5, 5], validBit: 3, frameWidth: 7 }), /overlaps/);
 * ```
 */
export function radixFormat(options: RadixOptions): PagingFormat {
  const entryBytes = options.entryBytes ?? 1;
  const validBit = options.validBit ?? entryBytes * 8 - 1;
  const frameLow = options.frameLow ?? 0;
  const frameWidth = options.frameWidth ??
    Math.max(1, Math.min(validBit, 40) - frameLow);
  const n = options.levelBits.length;
  const levels: LevelSpec[] = [];
  let shift = options.pageShift;
  for (let i = n - 1; i >= 0; i--) {
    const level = n - i;
    levels.unshift(
      lvl(
        level,
        // OSTEP's and the book's words for two levels; L3E… above that.
        level === 1 ? "PT" : level === 2 ? "PD" : `L${level} table`,
        level === 1 ? "PTE" : level === 2 ? "PDE" : `L${level}E`,
        shift,
        options.levelBits[i],
        false,
        options.accessedBit !== undefined,
      ),
    );
    shift += options.levelBits[i];
  }
  const rootBytes = (2 ** options.levelBits[0]) * entryBytes;
  return validateFormat({
    name: options.name ??
      `radix ${shift}-bit, ${2 ** options.pageShift}-byte pages, ${
        options.levelBits.join("/")
      }`,
    kind: "radix",
    vaBits: shift,
    pageShift: options.pageShift,
    entryBytes,
    levels,
    bits: {
      present: validBit,
      writable: options.writableBit ?? NONE,
      user: options.userBit ?? NONE,
      noExec: options.noExecBit ?? NONE,
      exec: NONE,
      accessed: options.accessedBit ?? NONE,
      dirty: options.dirtyBit ?? NONE,
      pageSize: NONE,
      global: NONE,
      pwt: NONE,
      pcd: NONE,
      pkey: NONE,
    },
    frameLow,
    frameWidth,
    canonical: "zero",
    rootBytes: Math.max(rootBytes, 1),
    pdpteRegisters: false,
  });
}

/**
 * The OSTEP "paging-multilevel-translate" geometry: 32 KiB address space,
 * 32-byte pages, 1-byte entries (valid = bit 7, frame = bits 6..0), two
 * levels of 5 index bits, 4 KiB of physical memory (128 frames).
 *
 * @example
 * ```ts
 * import { OSTEP_15BIT } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(2 ** OSTEP_15BIT.vaBits, 32768);
 * ```
 */
export const OSTEP_15BIT: PagingFormat = radixFormat({
  name: "OSTEP 15-bit (32-byte pages, 1-byte entries)",
  pageShift: 5,
  levelBits: [5, 5],
});

/**
 * Page size in bytes mapped by a leaf at `level` of `format`.
 *
 * @example
 * ```ts
 * import { pageSizeAt, X86_64_4LEVEL, X86_32 } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(pageSizeAt(X86_64_4LEVEL, 3), 2 ** 30);
 * assert.equal(pageSizeAt(X86_32, 2), 4 * 2 ** 20);
 * ```
 */
export function pageSizeAt(format: PagingFormat, level: number): number {
  const l = format.levels[format.levels.length - level];
  if (l === undefined) {
    throw new RangeError(
      `level ${level} is invalid for ${format.name}: expected 1..${format.levels.length}`,
    );
  }
  return 2 ** l.shift;
}

/**
 * The spec of `level` (1 = leaf table) of `format`.
 *
 * @example
 * ```ts
 * import { levelSpec, X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(levelSpec(X86_64_4LEVEL, 2).entry, "PDE");
 * ```
 */
export function levelSpec(format: PagingFormat, level: number): LevelSpec {
  const l = format.levels[format.levels.length - level];
  if (l === undefined) {
    throw new RangeError(
      `level ${level} is invalid for ${format.name}: expected 1..${format.levels.length}`,
    );
  }
  return l;
}
