/**
 * Building page tables: map, unmap and protect 4 KiB and large pages, or a
 * whole address space from a list of regions.
 *
 * Every entry write goes through {@linkcode PageTable.writeEntry}, the one
 * choke point (KVM's `handle_changed_spte`, Xen's `mod_l1_entry`), which
 * classifies the change (install, remove, remap, restrict, relax, flags)
 * and tells listeners. The builder never touches the TLB: after a change
 * that needs a flush, a stale TLB entry stays visible until software
 * invalidates it (INVLPG, MOV to CR3) — a teaching point.
 *
 * @module
 */

import {
  type AddressLike,
  hex64,
  hexPhys,
  LinearAddress,
} from "../address/address.ts";
import {
  defaultAllocator,
  type FrameAllocator,
  type FrameSource,
  type Memory,
  type PhysicalMemory,
} from "../memory/memory.ts";
import {
  levelSpec,
  pageSizeAt,
  type PagingFormat,
  X86_64_4LEVEL,
} from "./format.ts";
import { type PagingMode, pagingMode } from "./mode.ts";
import {
  checkRoot,
  checkVa,
  decodeModeEntry,
  type EntryFlags,
  isLeafEntry,
  readEntry,
  sizeName,
  type Walk,
  walk,
  type WalkOptions,
} from "./record.ts";
import { isCanonical } from "./walker.ts";
import { pageTableToHtml } from "../view/table_html.ts";
import { pageTableToText } from "../view/text.ts";

/** Leaf attributes for {@linkcode PageTable.map}. */
export interface LeafOptions {
  /** R/W (default true). */
  writable?: boolean;
  /** U/S (default false: supervisor only). */
  user?: boolean;
  /** Executable, i.e. XD = 0 (default true). */
  executable?: boolean;
  /** G (default false). */
  global?: boolean;
  /** Protection key 0..15 (4/5-level; default 0). */
  pkey?: number;
  /** PWT (default false). */
  pwt?: boolean;
  /** PCD (default false). */
  pcd?: boolean;
  /** Pre-set A (default false). */
  accessed?: boolean;
  /** Pre-set D (default false). */
  dirty?: boolean;
}

/** Options for {@linkcode PageTable.map}. */
export interface MapOptions extends LeafOptions {
  /** Page size in bytes (default the base page size). */
  size?: number;
}

/** A region for {@linkcode PageTable.mapRegions}. */
export interface Region extends LeafOptions {
  /** First linear address (page aligned). */
  va: AddressLike;
  /** First physical address (page aligned). */
  pa: number;
  /** Length in bytes (a multiple of the base page size). */
  length: number;
  /** Page size in bytes, or "auto" for the largest aligned pages (default base size). */
  pageSize?: number | "auto";
  /** Label shown in displays. */
  label?: string;
}

/** How an entry write changed the entry. */
export type EntryChangeKind =
  | "none"
  | "install"
  | "remove"
  | "remap"
  | "restrict"
  | "relax"
  | "flags";

/** What one entry write did. */
export interface EntryChange {
  /** Classification. */
  readonly kind: EntryChangeKind;
  /** Whether cached translations may now be stale (TLB flush needed). */
  readonly needsFlush: boolean;
  /** Level of the entry. */
  readonly level: number;
  /** Physical address of the entry. */
  readonly entryAddress: number;
  /** First linear address the entry covers. */
  readonly va: LinearAddress;
  /** Bytes of linear address space the entry covers. */
  readonly span: number;
  /** Entry before. */
  readonly old: bigint;
  /** Entry after. */
  readonly new: bigint;
}

/**
 * The {@linkcode EntryChange} that {@linkcode PageTable.writeEntry} returns
 * and hands to listeners. The 64-bit `old`/`new` values are built from the
 * stored halves only when read, so that the map path (trace replay maps on
 * first touch) creates no BigInt.
 */
class Change implements EntryChange {
  readonly kind: EntryChangeKind;
  readonly needsFlush: boolean;
  readonly level: number;
  readonly entryAddress: number;
  readonly va: LinearAddress;
  readonly span: number;
  readonly #olo: number;
  readonly #ohi: number;
  readonly #nlo: number;
  readonly #nhi: number;

  constructor(
    kind: EntryChangeKind,
    needsFlush: boolean,
    level: number,
    entryAddress: number,
    va: LinearAddress,
    span: number,
    olo: number,
    ohi: number,
    nlo: number,
    nhi: number,
  ) {
    this.kind = kind;
    this.needsFlush = needsFlush;
    this.level = level;
    this.entryAddress = entryAddress;
    this.va = va;
    this.span = span;
    this.#olo = olo;
    this.#ohi = ohi;
    this.#nlo = nlo;
    this.#nhi = nhi;
  }

  get old(): bigint {
    return (BigInt(this.#ohi) << 32n) | BigInt(this.#olo);
  }

  get new(): bigint {
    return (BigInt(this.#nhi) << 32n) | BigInt(this.#nlo);
  }

  /** REPL display: every field, as the plain record it stands for. */
  [Symbol.for("Deno.customInspect")](
    inspect: (v: unknown, o: unknown) => string,
    options: unknown,
  ): string {
    return inspect({
      kind: this.kind,
      needsFlush: this.needsFlush,
      level: this.level,
      entryAddress: this.entryAddress,
      va: this.va,
      span: this.span,
      old: this.old,
      new: this.new,
    }, options);
  }
}

/** A present leaf, as listed by {@linkcode PageTable.mappings}. */
export interface Mapping {
  /** First linear address. */
  readonly va: LinearAddress;
  /** First physical address. */
  readonly pa: number;
  /** Page size in bytes. */
  readonly size: number;
  /** Level of the leaf. */
  readonly level: number;
  /** Physical address of the leaf entry. */
  readonly entryAddress: number;
  /** Decoded leaf. */
  readonly flags: EntryFlags;
  /** Rights of the whole path: writable, user, executable. */
  readonly rights: { writable: boolean; user: boolean; executable: boolean };
}

/** A page-table page, as listed by {@linkcode PageTable.tables}. */
export interface TableInfo {
  /** Physical address. */
  readonly address: number;
  /** Level (the root has the highest). */
  readonly level: number;
  /** Present entries. */
  readonly present: number;
}

/**
 * Options for {@linkcode PageTable}. `A` is the allocator's type: any
 * {@linkcode FrameSource}, e.g. a guest OS's allocator of guest frames.
 */
export interface PageTableOptions<A extends FrameSource = FrameAllocator> {
  /** Paging mode; default `pagingMode(format)`. */
  mode?: PagingMode;
  /** Format when no mode is given; default 4-level. */
  format?: PagingFormat;
  /** Allocator for table frames; default the memory's shared allocator (`defaultAllocator`). */
  allocator?: A;
  /** Use an existing root table at this address instead of allocating one. */
  root?: number;
}

/** Listener for entry writes. */
export type EntryListener = (change: EntryChange) => void;

/**
 * A page table in physical memory, with a builder API and rich display.
 *
 * @example
 * ```ts
 * import { PageTable } from "./builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 32 }));
 * pt.map("0xffff888000000000", 0x4000_0000, { size: 2 ** 21 });
 * pt.map(0x40_1000, 0x8000_5000, { user: true, writable: false });
 * assert.equal(pt.walk("0xffff888000001234").pa, 0x4000_1234);
 * assert.equal(pt.walk(0x40_1008, { kind: "write", user: true }).outcome.kind, "page-fault");
 * assert.throws(() => pt.map(0x40_1000, 0x8000_6000), /already mapped/);
 * assert.throws(() => pt.map(0x40_2000, 0x8000_6800), /misaligned/);
 * ```
 */
export class PageTable<
  M extends Memory = PhysicalMemory,
  A extends FrameSource = FrameAllocator,
> {
  /** Memory holding the tables (any {@linkcode Memory}: machine or guest-physical). */
  readonly memory: M;
  /** Paging mode. */
  readonly mode: PagingMode;
  /** Root table address. */
  readonly root: number;
  /** Allocator for table frames. */
  readonly allocator: A;
  #listeners: EntryListener[] = [];
  #regions: { va: LinearAddress; length: number; label: string }[] = [];
  #changes = 0;
  // Derived from the (immutable) mode once, for the map/unmap path: bytes
  // per entry, number of levels, and per level (index `level`) the shift,
  // index mask and span of one entry.
  readonly #eb: number;
  readonly #nLevels: number;
  readonly #shift: number[] = [];
  readonly #bits: number[] = [];
  readonly #span: number[] = [];
  readonly #presentBit: number;
  readonly #psBit: number;
  // "x86-64"/"pae": table address from the mode's address masks;
  // "x86-32": bits 31:12; otherwise decodeModeEntry.
  readonly #addrKind: 0 | 1 | 2;
  // The last page size map() validated and its level.
  #lastSize = -1;
  #lastLevel = 0;
  // The high half of the entry #rd read last.
  #hi = 0;

  /** Create an empty table (allocating the root unless `root` is given). */
  constructor(memory: M, options: PageTableOptions<A> = {}) {
    this.memory = memory;
    this.mode = options.mode ?? pagingMode(options.format ?? X86_64_4LEVEL);
    const f = this.mode.format;
    // One shared allocator per memory unless told otherwise: two tables in
    // one memory must never receive the same frames.
    this.allocator = options.allocator ??
      (defaultAllocator(memory, 2 ** f.pageShift) as unknown as A);
    if (this.allocator.memory !== memory) {
      throw new RangeError(
        "the allocator belongs to a different memory than the page table",
      );
    }
    this.#eb = f.entryBytes;
    this.#nLevels = f.levels.length;
    for (const l of f.levels) {
      this.#shift[l.level] = l.shift;
      this.#bits[l.level] = l.bits;
      this.#span[l.level] = 2 ** l.shift;
    }
    this.#presentBit = f.bits.present;
    this.#psBit = f.bits.pageSize;
    this.#addrKind = f.kind === "x86-64" || f.kind === "pae"
      ? 1
      : f.kind === "x86-32"
      ? 2
      : 0;
    if (options.root !== undefined) {
      checkRoot(this.mode, options.root);
      this.root = options.root;
    } else {
      this.root = this.#allocTable();
      checkRoot(this.mode, this.root);
    }
  }

  /** The format. */
  get format(): PagingFormat {
    return this.mode.format;
  }

  /**
   * Labelled ranges given to {@linkcode PageTable.mapRegions} (kept for
   * displays; unmapping does not remove them).
   */
  get regions(): readonly {
    va: LinearAddress;
    length: number;
    label: string;
  }[] {
    return this.#regions;
  }

  /** Number of entry writes so far. */
  get entryWrites(): number {
    return this.#changes;
  }

  /** Subscribe to entry writes; returns an unsubscribe function. */
  onEntryWrite(listener: EntryListener): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  #allocTable(): number {
    const a = this.allocator.alloc();
    if (a + this.mode.format.rootBytes > this.mode.physLimit) {
      throw new RangeError(
        `table frame ${hexPhys(a)} lies above the physical limit ${
          hexPhys(this.mode.physLimit)
        } of ${this.mode.format.name}`,
      );
    }
    return a;
  }

  #read(ea: number): [number, number] {
    return readEntry(this.memory, this.mode.format, ea);
  }

  /**
   * The one choke point for entry writes: write `lo:hi` at `entryAddress`
   * (an entry at `level` covering linear address `va`), classify the
   * change and tell listeners.
   */
  writeEntry(
    level: number,
    entryAddress: number,
    lo: number,
    hi: number,
    va: LinearAddress,
  ): EntryChange {
    // A bad level throws before anything is written.
    const span = this.#span[level] ?? pageSizeAt(this.mode.format, level);
    const olo = this.#rd(entryAddress) >>> 0, ohi = this.#hi >>> 0;
    const eb = this.#eb;
    const m = this.memory;
    if (eb === 8) {
      m.write32(entryAddress, lo);
      m.write32(entryAddress + 4, hi);
    } else if (eb === 4) m.write32(entryAddress, lo);
    else if (eb === 2) m.write16(entryAddress, lo);
    else m.write8(entryAddress, lo);
    const nlo = lo >>> 0, nhi = hi >>> 0;
    const op = this.#present(olo, ohi);
    let kind: EntryChangeKind;
    if (olo === nlo && ohi === nhi) kind = "none";
    else if (!op) kind = this.#present(nlo, nhi) ? "install" : "flags";
    else if (!this.#present(nlo, nhi)) kind = "remove";
    else kind = classifyPresent(this.mode, level, olo, ohi, nlo, nhi);
    const change = new Change(
      kind,
      kind === "remove" || kind === "remap" || kind === "restrict" ||
        // Not-present entries are never cached (SDM §4.10.2.3, §4.10.3.1),
        // so rewriting one that stays not present needs no flush.
        (kind === "flags" && op &&
          flagsNeedFlush(this.mode, olo, ohi, lo, hi)),
      level,
      entryAddress,
      va,
      span,
      olo,
      ohi,
      nlo,
      nhi,
    );
    this.#changes++;
    const ls = this.#listeners;
    for (let i = 0; i < ls.length; i++) ls[i](change);
    return change;
  }

  /** Read the entry at `ea`: returns its low half, leaves the high half in #hi. */
  #rd(ea: number): number {
    const eb = this.#eb, m = this.memory;
    if (eb === 8) {
      const lo = m.read32(ea);
      this.#hi = m.read32(ea + 4);
      return lo;
    }
    this.#hi = 0;
    return eb === 4 ? m.read32(ea) : eb === 2 ? m.read16(ea) : m.read8(ea);
  }

  /** The P bit (what decodeModeEntry reports as `present`). */
  #present(lo: number, hi: number): boolean {
    const b = this.#presentBit;
    return b >= 0 &&
      (b < 32 ? (lo >>> b) & 1 : (hi >>> (b - 32)) & 1) === 1;
  }

  /** PS set where the mode honours it (decodeModeEntry's `ps`). */
  #ps(level: number, lo: number, hi: number): boolean {
    const b = this.#psBit;
    return b >= 0 && this.mode.tables.psLeaf[level] === 1 &&
      (b < 32 ? (lo >>> b) & 1 : (hi >>> (b - 32)) & 1) === 1;
  }

  /** Reserved bits set (decodeModeEntry's `reserved`). */
  #reserved(level: number, lo: number, hi: number): boolean {
    const t = this.mode.tables;
    const k = 2 * level + (this.#ps(level, lo, hi) ? 1 : 0);
    return ((lo & t.rsvdLo[k]) | (hi & t.rsvdHi[k])) !== 0;
  }

  /** The address of the table a present non-leaf entry points to. */
  #tableAddress(level: number, lo: number, hi: number): number {
    const k = this.#addrKind;
    if (k === 1) {
      const t = this.mode.tables;
      return (hi & t.addrHi) * 2 ** 32 + ((lo & t.addrLo) >>> 0);
    }
    if (k === 2) return (lo & 0xfffff000) >>> 0;
    return decodeModeEntry(this.mode, level, lo, hi).address;
  }

  /** Index of `va` in a table at `level`. */
  #index(va: LinearAddress, level: number): number {
    const shift = this.#shift[level], bits = this.#bits[level];
    if (bits > 30) return indexOf(va, shift, bits);
    const mask = (1 << bits) - 1;
    if (shift >= 32) return (va.hi >>> (shift - 32)) & mask;
    if (shift + bits <= 32) return (va.lo >>> shift) & mask;
    return ((va.lo >>> shift) | (va.hi << (32 - shift))) & mask;
  }

  #parseVa(va: AddressLike | LinearAddress): LinearAddress {
    const a = LinearAddress.from(va);
    checkVa(this.mode, a);
    if (!isCanonical(this.mode, a.hi, a.lo)) {
      throw new RangeError(
        `linear address ${a.toHex()} is non-canonical for ${this.format.name}: bits 63..${
          this.format.vaBits - 1
        } must all equal bit ${this.format.vaBits - 1}`,
      );
    }
    return a;
  }

  #levelForSize(size: number): number {
    const f = this.mode.format;
    for (const l of f.levels) {
      if (2 ** l.shift !== size) continue;
      if (l.level === 1) return 1;
      if (!l.canMapPage || this.mode.tables.psLeaf[l.level] !== 1) break;
      if (f.kind === "x86-64" && l.level === 3 && !this.mode.gbPages) break;
      return l.level;
    }
    const ok = f.levels.filter((l) =>
      l.level === 1 ||
      (l.canMapPage && this.mode.tables.psLeaf[l.level] === 1 &&
        !(f.kind === "x86-64" && l.level === 3 && !this.mode.gbPages))
    ).map((l) => sizeName(2 ** l.shift));
    throw new RangeError(
      `page size ${
        String(size)
      } is not supported by ${f.name} in this mode: expected one of ${
        ok.join(", ")
      }`,
    );
  }

  /** Entry address for `va` at `level`, creating tables on the way. */
  #slot(va: LinearAddress, level: number, create: boolean): number | undefined {
    const f = this.mode.format;
    let base = this.root;
    for (let l = this.#nLevels;; l--) {
      const ea = base + this.#index(va, l) * this.#eb;
      if (l === level) return ea;
      const lo = this.#rd(ea), hi = this.#hi;
      if (!this.#present(lo, hi)) {
        if (!create) return undefined;
        const t = this.#allocTable();
        const [nlo, nhi] = encodeTable(this.mode, l, t);
        this.writeEntry(l, ea, nlo, nhi, alignDown(va, this.#shift[l]));
        base = t;
        continue;
      }
      if (this.#reserved(l, lo, hi)) {
        if (!create) return undefined;
        const spec = levelSpec(f, l);
        throw new RangeError(
          `cannot map ${va.toHex()}: ${spec.entry} at ${
            hexPhys(ea)
          } has reserved bits set (the MMU would fault there); fix or clear it first`,
        );
      }
      if (this.#isLeaf(l, lo, hi)) {
        if (!create) return undefined;
        const spec = levelSpec(f, l);
        const e = decodeModeEntry(this.mode, l, lo, hi);
        throw new RangeError(
          `cannot map ${va.toHex()}: it lies inside a ${
            sizeName(2 ** spec.shift)
          } page already mapped by ${spec.entry} at ${hexPhys(ea)} (${
            alignDown(va, spec.shift).toHex()
          } → ${hexPhys(e.address)})`,
        );
      }
      base = this.#tableAddress(l, lo, hi);
    }
  }

  #isLeaf(level: number, lo: number, hi: number): boolean {
    return isLeafEntry(this.mode, level, lo, hi);
  }

  /**
   * Map the page at `va` to physical `pa`. Throws `RangeError` on
   * misalignment, unsupported size, overlap with an existing mapping, or a
   * frame beyond what the format can address.
   */
  map(
    va: AddressLike | LinearAddress,
    pa: number,
    options: MapOptions = {},
  ): EntryChange {
    const f = this.mode.format;
    const size = options.size ?? 2 ** f.pageShift;
    let level = this.#lastLevel;
    if (size !== this.#lastSize) {
      level = this.#levelForSize(size);
      this.#lastSize = size;
      this.#lastLevel = level;
    }
    const a = this.#parseVa(va);
    if (!Number.isInteger(pa) || pa < 0) {
      throw new RangeError(
        `physical address ${
          String(pa)
        } is invalid: expected a non-negative integer`,
      );
    }
    if (a.lo % Math.min(size, 2 ** 32) !== 0 || pa % size !== 0) {
      throw new RangeError(
        `cannot map ${a.toHex()} → ${hexPhys(pa)}: misaligned for a ${
          sizeName(size)
        } page (both addresses must be multiples of ${hexPhys(size)})`,
      );
    }
    const limit = f.kind === "x86-32" && level === 2
      ? 2 ** Math.min(this.mode.maxPhyAddr, 40)
      : this.mode.physLimit;
    if (pa + size > limit) {
      throw new RangeError(
        `cannot map to ${
          hexPhys(pa)
        }: ${f.name} with MAXPHYADDR ${this.mode.maxPhyAddr} addresses frames below ${
          hexPhys(limit)
        }`,
      );
    }
    // Encode first: a bad attribute (pkey, XD without NXE) must throw before
    // any table is created or a subtree freed below.
    const [lo, hi] = encodeLeaf(this.mode, level, pa, options);
    const ea = this.#slot(a, level, true)!;
    const olo = this.#rd(ea), ohi = this.#hi;
    if (this.#present(olo, ohi)) {
      const old = decodeModeEntry(this.mode, level, olo, ohi);
      if (this.#isLeaf(level, olo, ohi)) {
        throw new RangeError(
          `cannot map ${a.toHex()}: already mapped to ${
            hexPhys(old.address)
          } by ${levelSpec(f, level).entry} at ${hexPhys(ea)}`,
        );
      }
      const n = this.#countPresent(old.address, level - 1);
      if (n > 0) {
        throw new RangeError(
          `cannot map a ${
            sizeName(size)
          } page at ${a.toHex()}: ${n} smaller mapping(s) already exist inside it (unmap them first)`,
        );
      }
      this.#freeTree(old.address, level - 1);
    }
    return this.writeEntry(level, ea, lo, hi, a);
  }

  #countPresent(table: number, level: number): number {
    const f = this.mode.format;
    const n = 2 ** levelSpec(f, level).bits;
    let c = 0;
    for (let i = 0; i < n; i++) {
      const [lo, hi] = this.#read(table + i * f.entryBytes);
      const e = decodeModeEntry(this.mode, level, lo, hi);
      if (!e.present) continue;
      c += this.#isLeaf(level, lo, hi) || e.reserved
        ? 1
        : this.#countPresent(e.address, level - 1);
    }
    return c;
  }

  #freeTree(table: number, level: number): void {
    const f = this.mode.format;
    if (level > 1) {
      const n = 2 ** levelSpec(f, level).bits;
      for (let i = 0; i < n; i++) {
        const [lo, hi] = this.#read(table + i * f.entryBytes);
        const e = decodeModeEntry(this.mode, level, lo, hi);
        if (e.present && !e.reserved && !this.#isLeaf(level, lo, hi)) {
          this.#freeTree(e.address, level - 1);
        }
      }
    }
    if (this.allocator.isAllocated(table)) this.allocator.free(table);
  }

  /** Find the leaf mapping `va`: level, entry address and raw entry. */
  #findLeaf(
    a: LinearAddress,
  ): { level: number; ea: number; lo: number; hi: number } | undefined {
    let base = this.root;
    for (let l = this.#nLevels; l >= 1; l--) {
      const ea = base + this.#index(a, l) * this.#eb;
      const lo = this.#rd(ea), hi = this.#hi;
      if (!this.#present(lo, hi) || this.#reserved(l, lo, hi)) return undefined;
      if (this.#isLeaf(l, lo, hi)) return { level: l, ea, lo, hi };
      base = this.#tableAddress(l, lo, hi);
    }
    return undefined;
  }

  /**
   * Remove the mapping that covers `va` (which must be the page's first
   * address). Returns the entry change. Throws if nothing is mapped there.
   */
  unmap(va: AddressLike | LinearAddress): EntryChange {
    const a = this.#parseVa(va);
    const leaf = this.#findLeaf(a);
    if (!leaf) {
      throw new RangeError(
        `cannot unmap ${a.toHex()}: nothing is mapped there`,
      );
    }
    const shift = this.#shift[leaf.level];
    const start = alignDown(a, shift);
    if (start.hi !== a.hi || start.lo !== a.lo) {
      throw new RangeError(
        `cannot unmap ${a.toHex()}: it is inside a ${
          sizeName(2 ** shift)
        } page that starts at ${alignDown(a, shift).toHex()}`,
      );
    }
    return this.writeEntry(leaf.level, leaf.ea, 0, 0, a);
  }

  /**
   * Change the attributes of the mapping that covers `va`, keeping its
   * frame. Unspecified attributes keep their values.
   */
  protect(va: AddressLike | LinearAddress, changes: LeafOptions): EntryChange {
    const a = this.#parseVa(va);
    const leaf = this.#findLeaf(a);
    if (!leaf) {
      throw new RangeError(
        `cannot protect ${a.toHex()}: nothing is mapped there`,
      );
    }
    const f = this.format;
    const e = decodeModeEntry(this.mode, leaf.level, leaf.lo, leaf.hi);
    const merged: LeafOptions = {
      writable: changes.writable ?? e.writable ?? true,
      user: changes.user ?? e.user ?? true,
      executable: changes.executable ??
        (e.noExec !== undefined ? !e.noExec : e.exec ?? true),
      global: changes.global ?? e.global ?? false,
      pkey: changes.pkey ?? e.pkey ?? 0,
      pwt: changes.pwt ?? e.pwt ?? false,
      pcd: changes.pcd ?? e.pcd ?? false,
      accessed: changes.accessed ?? e.accessed ?? false,
      dirty: changes.dirty ?? e.dirty ?? false,
    };
    const [lo, hi] = encodeLeaf(this.mode, leaf.level, e.address, merged);
    return this.writeEntry(
      leaf.level,
      leaf.ea,
      lo,
      hi,
      alignDown(a, levelSpec(f, leaf.level).shift),
    );
  }

  /**
   * Map a list of regions. `pageSize: "auto"` uses the largest page size
   * whose alignment both addresses allow at each step. All regions are
   * checked for alignment and mutual overlap before anything is written,
   * so a bad region leaves the table untouched.
   */
  mapRegions(regions: readonly Region[]): number {
    const f = this.format;
    const base = 2 ** f.pageShift;
    const plans: { va: LinearAddress; pa: number; size: number; r: Region }[] =
      [];
    regions.forEach((r, i) => {
      const v = this.#parseVa(r.va);
      if (
        !Number.isInteger(r.length) || r.length <= 0 || r.length % base !== 0
      ) {
        throw new RangeError(
          `region ${i}${r.label ? ` (${r.label})` : ""}: length ${
            String(r.length)
          } is invalid: expected a positive multiple of ${base}`,
        );
      }
      // The whole region must lie in one valid stretch of the address
      // space: no wrap past 2^64, no crossing of the x86-64 non-canonical
      // hole, nothing beyond 2^vaBits (checked here, before any write).
      const first = v.toBigInt();
      const last = first + BigInt(r.length) - 1n;
      const top = (a: bigint) => (a >> BigInt(f.vaBits - 1)) & 1n;
      if (
        last >= 1n << 64n ||
        (f.canonical === "sign" && top(first) !== top(last)) ||
        !isCanonical(
          this.mode,
          Number(last >> 32n),
          Number(last & 0xffffffffn),
        ) ||
        (f.canonical === "zero" && last >= 1n << BigInt(f.vaBits))
      ) {
        throw new RangeError(
          `region ${i}${r.label ? ` (${r.label})` : ""}: ${v.toHex()} + ${
            hexPhys(r.length)
          } runs past the end of its part of the ${f.vaBits}-bit address space`,
        );
      }
      let off = 0;
      while (off < r.length) {
        const va = addOffset(v, off);
        const pa = r.pa + off;
        let size: number;
        if (r.pageSize === "auto") {
          size = this.#autoSize(va, pa, r.length - off);
        } else {
          size = r.pageSize ?? base;
          this.#levelForSize(size);
          if (r.length % size !== 0) {
            throw new RangeError(
              `region ${i}${r.label ? ` (${r.label})` : ""}: length ${
                hexPhys(r.length)
              } is not a multiple of its page size ${sizeName(size)}`,
            );
          }
        }
        if (va.lo % Math.min(size, 2 ** 32) !== 0 || pa % size !== 0) {
          throw new RangeError(
            `region ${i}${r.label ? ` (${r.label})` : ""}: ${va.toHex()} → ${
              hexPhys(pa)
            } is misaligned for ${sizeName(size)} pages`,
          );
        }
        plans.push({ va, pa, size, r });
        off += size;
      }
    });
    // mutual overlap and overlap with existing mappings, before writing
    const sorted = [...plans].sort((x, y) =>
      x.va.toBigInt() < y.va.toBigInt() ? -1 : 1
    );
    for (let i = 1; i < sorted.length; i++) {
      const p = sorted[i - 1], q = sorted[i];
      if (p.va.toBigInt() + BigInt(p.size) > q.va.toBigInt()) {
        throw new RangeError(
          `regions overlap at ${q.va.toHex()}${
            q.r.label ? ` (${q.r.label})` : ""
          }${p.r.label ? ` and ${p.r.label}` : ""}`,
        );
      }
    }
    for (const p of plans) {
      // Everything map() would reject, checked before any write: the frame
      // (sign, limit), the attributes (encodeLeaf), and any existing leaf
      // that covers the page *or lies inside it* (a large page over an
      // existing 4 KiB mapping), not just one at its first address.
      const what = `region${p.r.label ? ` ${p.r.label}` : ""}`;
      const level = this.#levelForSize(p.size);
      const limit = f.kind === "x86-32" && level === 2
        ? 2 ** Math.min(this.mode.maxPhyAddr, 40)
        : this.mode.physLimit;
      if (!Number.isInteger(p.pa) || p.pa < 0 || p.pa + p.size > limit) {
        throw new RangeError(
          `${what}: physical address ${
            String(p.pa)
          } is invalid: expected a non-negative integer with the page below ${
            hexPhys(limit)
          }`,
        );
      }
      encodeLeaf(this.mode, level, p.pa, p.r);
      if (this.#findLeaf(p.va) || this.#occupied(p.va, level)) {
        throw new RangeError(
          `${what} overlaps an existing mapping at ${p.va.toHex()}`,
        );
      }
    }
    for (const p of plans) this.map(p.va, p.pa, { ...p.r, size: p.size });
    for (const r of regions) {
      if (r.label !== undefined) {
        this.#regions.push({
          va: LinearAddress.from(r.va),
          length: r.length,
          label: r.label,
        });
      }
    }
    return plans.length;
  }

  /** Whether a present leaf lies inside the `level` entry's span at `va`. */
  #occupied(va: LinearAddress, level: number): boolean {
    const ea = this.#slot(va, level, false);
    if (ea === undefined) return false;
    const [lo, hi] = this.#read(ea);
    const e = decodeModeEntry(this.mode, level, lo, hi);
    if (!e.present) return false;
    return this.#isLeaf(level, lo, hi) ||
      this.#countPresent(e.address, level - 1) > 0;
  }

  #autoSize(va: LinearAddress, pa: number, remaining: number): number {
    const f = this.format;
    for (const l of f.levels) {
      const size = 2 ** l.shift;
      if (size > remaining) continue;
      if (l.level > 1) {
        if (!l.canMapPage || this.mode.tables.psLeaf[l.level] !== 1) continue;
        if (f.kind === "x86-64" && l.level === 3 && !this.mode.gbPages) {
          continue;
        }
      }
      if (va.lo % Math.min(size, 2 ** 32) === 0 && pa % size === 0) {
        return size;
      }
    }
    return 2 ** f.pageShift;
  }

  /**
   * Walk the table for `va` as the MMU would (A/D bits set on success
   * unless `setAD: false`).
   */
  walk(va: AddressLike | LinearAddress, options: WalkOptions = {}): Walk {
    return walk(this, va, options);
  }

  /** A side-effect-free supervisor read lookup (no A/D writes). */
  lookup(va: AddressLike | LinearAddress): Walk {
    return walk(this, va, { setAD: false });
  }

  /**
   * Every present leaf, in address order, with path rights. Linear
   * addresses are sign-extended for x86-64. Paths through an entry with
   * reserved bits are skipped: nothing is mapped there for the MMU.
   */
  *mappings(): Generator<Mapping> {
    yield* this.#walkTree(this.root, this.format.levels.length, 0, 0, 7);
  }

  *#walkTree(
    table: number,
    level: number,
    hi: number,
    lo: number,
    rights: number,
  ): Generator<Mapping> {
    const f = this.format;
    const spec = levelSpec(f, level);
    const n = 2 ** spec.bits;
    for (let i = 0; i < n; i++) {
      const ea = table + i * f.entryBytes;
      const [elo, ehi] = this.#read(ea);
      const e = decodeModeEntry(this.mode, level, elo, ehi);
      if (!e.present || e.reserved) continue;
      const [vhi, vlo] = placeIndex(hi, lo, i, spec.shift);
      let r = rights;
      if (this.mode.tables.hasRights[level] === 1) {
        if (e.writable === false) r &= ~1;
        if (e.user === false) r &= ~2;
        if ((e.noExec === true && this.mode.nxe) || e.exec === false) r &= ~4;
      }
      if (this.#isLeaf(level, elo, ehi)) {
        yield {
          va: signExtend(f, vhi, vlo),
          pa: e.address,
          size: 2 ** spec.shift,
          level,
          entryAddress: ea,
          flags: entryFlagsOnly(e),
          rights: {
            writable: (r & 1) !== 0,
            user: (r & 2) !== 0,
            executable: (r & 4) !== 0,
          },
        };
      } else {
        yield* this.#walkTree(e.address, level - 1, vhi, vlo, r);
      }
    }
  }

  /**
   * Every table page reachable from the root, root first (entries with
   * reserved bits are counted as present but not followed: the MMU would
   * fault on them).
   */
  tables(): TableInfo[] {
    const out: TableInfo[] = [];
    const f = this.format;
    const visit = (t: number, level: number) => {
      const spec = levelSpec(f, level);
      let present = 0;
      const subs: number[] = [];
      for (let i = 0; i < 2 ** spec.bits; i++) {
        const [lo, hi] = this.#read(t + i * f.entryBytes);
        const e = decodeModeEntry(this.mode, level, lo, hi);
        if (!e.present) continue;
        present++;
        if (!e.reserved && !this.#isLeaf(level, lo, hi)) subs.push(e.address);
      }
      out.push({ address: t, level, present });
      for (const s of subs) visit(s, level - 1);
    };
    visit(this.root, f.levels.length);
    return out;
  }

  /** Jupyter rich display: the HTML page-table view. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": pageTableToText(this),
      "text/html": pageTableToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return pageTableToText(this);
  }
}

/** The decoded fields without the mode-derived `reserved`/`leaf` marks. */
function entryFlagsOnly(e: EntryFlags): EntryFlags {
  const out = { ...e } as Record<string, unknown>;
  delete out.reserved;
  delete out.leaf;
  return out as unknown as EntryFlags;
}

function indexOf(a: LinearAddress, shift: number, bits: number): number {
  let v = 0;
  for (let k = bits - 1; k >= 0; k--) {
    const b = shift + k;
    v = v * 2 + (((b >= 32 ? a.hi : a.lo) >>> (b & 31)) & 1);
  }
  return v;
}

function placeIndex(
  hi: number,
  lo: number,
  idx: number,
  shift: number,
): [number, number] {
  const v = BigInt(idx) << BigInt(shift);
  return [
    (hi | Number((v >> 32n) & 0xffffffffn)) >>> 0,
    (lo | Number(v & 0xffffffffn)) >>> 0,
  ];
}

function signExtend(f: PagingFormat, hi: number, lo: number): LinearAddress {
  if (f.canonical === "sign") {
    const b = f.vaBits - 1 - 32;
    if ((hi >>> b) & 1) hi = (hi | ~((2 ** (b + 1)) - 1)) >>> 0;
  }
  return new LinearAddress(hi >>> 0, lo >>> 0);
}

function alignDown(a: LinearAddress, shift: number): LinearAddress {
  if (shift >= 32) {
    return new LinearAddress(
      (a.hi & ~((2 ** (shift - 32)) - 1)) >>> 0,
      0,
    );
  }
  return new LinearAddress(a.hi, (a.lo & ~((2 ** shift) - 1)) >>> 0);
}

function addOffset(a: LinearAddress, off: number): LinearAddress {
  const v = (a.toBigInt() + BigInt(off)) & 0xffffffffffffffffn;
  return new LinearAddress(Number(v >> 32n), Number(v & 0xffffffffn));
}

function setBit(w: [number, number], bit: number, on: boolean | undefined) {
  if (bit < 0 || !on) return;
  if (bit < 32) w[0] = (w[0] | (1 << bit)) >>> 0;
  else w[1] = (w[1] | (1 << (bit - 32))) >>> 0;
}

/**
 * Encode a table pointer at `level` to the table at `table`. Intermediate
 * entries are permissive (P, R/W, U/S; XD clear), as operating systems
 * build them: restrictions are set on leaves. PAE PDPTEs carry only P.
 *
 * @example
 * ```ts
 * import { encodeTable } from "./builder.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL, PAE } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeTable(pagingMode(X86_64_4LEVEL), 4, 0x1_0000_3000), [0x3007, 1]);
 * assert.deepEqual(encodeTable(pagingMode(PAE), 3, 0x3000), [0x3001, 0]);
 * ```
 */
export function encodeTable(
  mode: PagingMode,
  level: number,
  table: number,
): [number, number] {
  const f = mode.format;
  const w: [number, number] = [0, 0];
  setBit(w, f.bits.present, true);
  if (mode.tables.hasRights[level] === 1) {
    setBit(w, f.bits.writable, true);
    setBit(w, f.bits.user, true);
    setBit(w, f.bits.exec, true);
  }
  placeFrame(mode, w, table, false);
  return w;
}

/**
 * Encode a leaf at `level` mapping `pa` with the given attributes.
 *
 * @example
 * ```ts
 * import { encodeLeaf } from "./builder.ts";
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * const [lo, hi] = encodeLeaf(pagingMode(X86_64_4LEVEL), 2, 0x4020_0000, { user: true, executable: false });
 * assert.equal(lo, 0x4020_0000 | 0x87); // P, R/W, U/S, PS
 * assert.equal(hi, 0x8000_0000);        // XD
 * ```
 */
export function encodeLeaf(
  mode: PagingMode,
  level: number,
  pa: number,
  o: LeafOptions,
): [number, number] {
  const f = mode.format;
  const b = f.bits;
  const w: [number, number] = [0, 0];
  setBit(w, b.present, true);
  setBit(w, b.writable, o.writable ?? true);
  setBit(w, b.user, o.user ?? false);
  if (b.noExec >= 0) {
    if (!(o.executable ?? true)) {
      if (!mode.nxe) {
        throw new RangeError(
          `cannot make a page non-executable with EFER.NXE = 0 (bit ${b.noExec} would be reserved)`,
        );
      }
      setBit(w, b.noExec, true);
    }
  } else if (b.exec >= 0) setBit(w, b.exec, o.executable ?? true);
  setBit(w, b.global, o.global);
  setBit(w, b.pwt, o.pwt);
  setBit(w, b.pcd, o.pcd);
  setBit(w, b.accessed, o.accessed);
  setBit(w, b.dirty, o.dirty);
  if (level > 1) setBit(w, b.pageSize, true);
  if (o.pkey !== undefined && o.pkey !== 0) {
    if (b.pkey < 0 || !Number.isInteger(o.pkey) || o.pkey < 0 || o.pkey > 15) {
      throw new RangeError(
        `protection key ${
          String(o.pkey)
        } is invalid for ${f.name}: expected 0..15 with 4/5-level paging`,
      );
    }
    w[1] = (w[1] | (o.pkey << (b.pkey - 32))) >>> 0;
  }
  placeFrame(mode, w, pa, level > 1);
  return w;
}

function placeFrame(
  mode: PagingMode,
  w: [number, number],
  addr: number,
  large: boolean,
): void {
  const f = mode.format;
  if (f.kind === "radix") {
    const fn = addr / 2 ** f.pageShift;
    if (!Number.isInteger(fn) || fn >= 2 ** f.frameWidth) {
      throw new RangeError(
        `frame address ${
          hexPhys(addr)
        } does not fit the ${f.frameWidth}-bit frame field of ${f.name}: expected a multiple of ${
          2 ** f.pageShift
        } below ${hexPhys(2 ** (f.frameWidth + f.pageShift))}`,
      );
    }
    const v = BigInt(fn) << BigInt(f.frameLow);
    w[0] = (w[0] | Number(v & 0xffffffffn)) >>> 0;
    w[1] = (w[1] | Number(v >> 32n)) >>> 0;
    return;
  }
  if (f.kind === "x86-32" && large) {
    w[0] = (w[0] | (addr % 2 ** 32)) >>> 0;
    w[0] = (w[0] | (Math.floor(addr / 2 ** 32) << 13)) >>> 0;
    return;
  }
  w[0] = (w[0] | (addr % 2 ** 32)) >>> 0;
  w[1] = (w[1] | Math.floor(addr / 2 ** 32)) >>> 0;
}

function entryRights(
  mode: PagingMode,
  level: number,
  lo: number,
  hi: number,
): number {
  if (mode.tables.hasRights[level] !== 1) return 7;
  const b = mode.format.bits;
  const get = (bit: number) =>
    bit < 0
      ? undefined
      : (bit < 32 ? (lo >>> bit) & 1 : (hi >>> (bit - 32)) & 1) === 1;
  let r = 7;
  if (get(b.writable) === false) r &= ~1;
  if (get(b.user) === false) r &= ~2;
  if ((mode.nxe && get(b.noExec) === true) || get(b.exec) === false) r &= ~4;
  return r;
}

/** Classify a change between two different present entries. */
function classifyPresent(
  mode: PagingMode,
  level: number,
  olo: number,
  ohi: number,
  nlo: number,
  nhi: number,
): EntryChangeKind {
  const op = decodeModeEntry(mode, level, olo, ohi);
  const np = decodeModeEntry(mode, level, nlo, nhi);
  if (op.address !== np.address || op.pageSize !== np.pageSize) return "remap";
  const or = entryRights(mode, level, olo, ohi);
  const nr = entryRights(mode, level, nlo, nhi);
  if ((or & ~nr) !== 0) return "restrict";
  if ((nr & ~or) !== 0) return "relax";
  return "flags";
}

function flagsNeedFlush(
  mode: PagingMode,
  olo: number,
  ohi: number,
  nlo: number,
  nhi: number,
): boolean {
  // Only A or D going 0 → 1 leaves cached translations valid.
  const b = mode.format.bits;
  let ad = 0;
  if (b.accessed >= 0 && b.accessed < 32) ad |= 1 << b.accessed;
  if (b.dirty >= 0 && b.dirty < 32) ad |= 1 << b.dirty;
  const changedLo = (olo ^ nlo) >>> 0;
  const onlyAdSet = (changedLo & ~ad) === 0 && ohi === nhi &&
    (nlo & changedLo) === changedLo;
  return !onlyAdSet;
}

/**
 * Format a 64-bit entry value as hex (for messages and displays).
 *
 * @example
 * ```ts
 * import { hexEntry } from "./builder.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hexEntry(0x8000000000001067n), "0x8000000000001067");
 * ```
 */
export function hexEntry(e: bigint): string {
  return hex64(Number(e >> 32n), Number(e & 0xffffffffn));
}
