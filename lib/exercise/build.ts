/**
 * Shared machinery for building exercise memories: a seeded frame pool that
 * scatters frames over physical memory (as a real allocator's free list
 * would), an allocator for {@linkcode PageTable} built on it, raw entry
 * access, table enumeration with the linear-address prefix of each table,
 * and option checking with clear messages.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { FrameAllocator, type PhysicalMemory } from "../memory/memory.ts";
import { levelSpec, type PagingFormat } from "../paging/format.ts";
import type { PagingMode } from "../paging/mode.ts";
import {
  decodeEntry,
  isLeafEntry,
  readEntry,
  sizeName,
} from "../paging/record.ts";

// The entry readers live with the paging model; re-exported for the
// exercise modules.
export { isLeafEntry, readEntry };
import type { Random } from "../util/random.ts";

/**
 * A uniformly random integer in [0, n) for n up to 2^53.
 *
 * @example
 * ```ts
 * import { randomBelow } from "./build.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const r = new Random(1);
 * const x = randomBelow(r, 2 ** 40);
 * assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 40);
 * ```
 */
export function randomBelow(rng: Random, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new RangeError(`range ${n} is invalid: expected a safe integer ≥ 1`);
  }
  if (n <= 2 ** 32) return rng.int(n);
  const hiRange = Math.ceil(n / 2 ** 32);
  for (;;) {
    const v = rng.int(hiRange) * 2 ** 32 + rng.nextU32();
    if (v < n) return v;
  }
}

/**
 * A random bigint of `bits` bits (0 ≤ bits ≤ 64).
 *
 * @example
 * ```ts
 * import { randomBits } from "./build.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * assert.ok(randomBits(new Random(3), 12) < 4096n);
 * assert.equal(randomBits(new Random(3), 0), 0n);
 * ```
 */
export function randomBits(rng: Random, bits: number): bigint {
  let v = 0n;
  let left = bits;
  while (left > 0) {
    const take = Math.min(32, left);
    const chunk = take === 32 ? rng.nextU32() : rng.int(2 ** take);
    v = (v << BigInt(take)) | BigInt(chunk);
    left -= take;
  }
  return v;
}

/**
 * Free physical ranges handed out at random, aligned to their size. Used
 * for table frames, data frames and large-page frames alike, so nothing
 * overlaps.
 *
 * @example
 * ```ts
 * import { FramePool } from "./build.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const pool = new FramePool(new Random(0), 4096);
 * const frames = new Set<number>();
 * for (let i = 0; i < 128; i++) frames.add(pool.take(32));
 * assert.equal(frames.size, 128); // every 32-byte frame, each once
 * assert.throws(() => pool.take(32), /out of free frames/);
 * ```
 */
export class FramePool {
  readonly #rng: Random;
  /** Size of physical memory in bytes. */
  readonly limit: number;
  #used: [number, number][] = [];

  /** A pool over `[0, limit)`. */
  constructor(rng: Random, limit: number) {
    this.#rng = rng;
    this.limit = limit;
  }

  /** Whether `[start, start + size)` is free. */
  isFree(start: number, size: number): boolean {
    const end = start + size;
    for (const [s, e] of this.#used) if (start < e && s < end) return false;
    return true;
  }

  /** Mark `[start, start + size)` used. */
  reserve(start: number, size: number): void {
    this.#used.push([start, start + size]);
  }

  /** Return a range taken earlier. */
  release(start: number): void {
    const i = this.#used.findIndex(([s]) => s === start);
    if (i >= 0) this.#used.splice(i, 1);
  }

  /** Take a free, `size`-aligned range below `below` (default the limit). */
  take(size: number, below: number = this.limit): number {
    const slots = Math.floor(below / size);
    if (slots < 1) {
      throw new RangeError(
        `no ${sizeName(size)} frame fits below ${"0x" + below.toString(16)}`,
      );
    }
    for (let i = 0; i < 64; i++) {
      const a = randomBelow(this.#rng, slots) * size;
      if (this.isFree(a, size)) {
        this.reserve(a, size);
        return a;
      }
    }
    if (slots <= 2 ** 20) {
      const start = randomBelow(this.#rng, slots);
      for (let k = 0; k < slots; k++) {
        const a = ((start + k) % slots) * size;
        if (this.isFree(a, size)) {
          this.reserve(a, size);
          return a;
        }
      }
    }
    throw new RangeError(
      `out of free frames: no free ${sizeName(size)} frame below 0x${
        below.toString(16)
      } (${this.#used.length} ranges in use)`,
    );
  }
}

/**
 * A {@linkcode FrameAllocator} whose frames come from a {@linkcode FramePool}
 * (random, seeded), so page tables land at scattered addresses like on a
 * running system rather than at 0x1000, 0x2000, …
 *
 * @example
 * ```ts
 * import { FramePool, PoolAllocator } from "./build.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 20 });
 * const a = new PoolAllocator(memory, new FramePool(new Random(5), 1 << 20), 4096);
 * const f = a.alloc();
 * assert.equal(f % 4096, 0);
 * assert.deepEqual(a.frames, [f]);
 * a.free(f);
 * assert.throws(() => a.free(f), /not allocated/);
 * ```
 */
export class PoolAllocator extends FrameAllocator {
  readonly #pool: FramePool;
  readonly #below: number;
  #mine: number[] = [];

  /** Frames of `frameSize` bytes from `pool`, below `below` (default all). */
  constructor(
    memory: PhysicalMemory,
    pool: FramePool,
    frameSize: number,
    below: number = pool.limit,
  ) {
    super(memory, { frameSize });
    this.#pool = pool;
    this.#below = below;
  }

  /** Frames allocated and not freed, in allocation order. */
  get frames(): number[] {
    return [...this.#mine];
  }

  /** Number of frames currently allocated. */
  override get allocatedCount(): number {
    return this.#mine.length;
  }

  /** Whether the frame at `addr` is currently allocated. */
  override isAllocated(addr: number): boolean {
    return this.#mine.includes(addr);
  }

  /** Allocate a zeroed frame at a random free address. */
  override alloc(): number {
    const a = this.#pool.take(this.frameSize, this.#below);
    this.memory.zero(a, this.frameSize);
    this.#mine.push(a);
    return a;
  }

  /** Return a frame. */
  override free(addr: number): void {
    const i = this.#mine.indexOf(addr);
    if (i < 0) {
      throw new RangeError(
        `frame 0x${addr.toString(16)} is not allocated by this allocator`,
      );
    }
    this.#mine.splice(i, 1);
    this.#pool.release(addr);
  }
}

/** A table page reached from the root, with the address prefix it maps. */
export interface TablePage {
  /** Physical address of the table. */
  readonly address: number;
  /** Level (root = number of levels). */
  readonly level: number;
  /** Linear-address bits above this table's index field (unsigned, not sign-extended). */
  readonly prefix: bigint;
  /** Indices of entries with the present bit clear. */
  readonly notPresent: readonly number[];
}

/**
 * Every table page reachable from `root`, root first, with the linear
 * address prefix each one serves. Follows present, non-leaf entries only.
 *
 * @example
 * ```ts
 * import { reachableTables } from "./build.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 32 }), { mode: pagingMode(X86_32) });
 * pt.map(0x00401000, 0x5000);
 * const t = reachableTables(pt.memory, pt.mode, pt.root);
 * assert.deepEqual(t.map((x) => [x.level, x.prefix]), [[2, 0n], [1, 0x00400000n]]);
 * ```
 */
export function reachableTables(
  memory: PhysicalMemory,
  mode: PagingMode,
  root: number,
): TablePage[] {
  const f = mode.format;
  const out: TablePage[] = [];
  const visit = (address: number, level: number, prefix: bigint) => {
    const spec = levelSpec(f, level);
    const n = 2 ** spec.bits;
    const notPresent: number[] = [];
    const subs: [number, bigint][] = [];
    for (let i = 0; i < n; i++) {
      const [lo, hi] = readEntry(memory, f, address + i * f.entryBytes);
      const e = decodeEntry(f, level, lo, hi);
      if (!e.present) {
        notPresent.push(i);
        continue;
      }
      // A table pointer with reserved address bits (an exercise's doing)
      // may point beyond memory: the walker stops there, and so do we.
      if (
        !isLeafEntry(mode, level, lo, hi) &&
        e.address + f.entryBytes * 2 ** levelSpec(f, level - 1).bits <=
          memory.size
      ) {
        subs.push([e.address, prefix | (BigInt(i) << BigInt(spec.shift))]);
      }
    }
    out.push({ address, level, prefix, notPresent });
    for (const [a, p] of subs) visit(a, level - 1, p);
  };
  visit(root, f.levels.length, 0n);
  return out;
}

/**
 * Turn an unsigned address of `format.vaBits` bits into a linear address,
 * sign-extending for x86-64 (canonical form).
 *
 * @example
 * ```ts
 * import { toLinear } from "./build.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(toLinear(X86_64_4LEVEL, 0x8880_0000_0000n).toHex(), "0xffff888000000000");
 * ```
 */
export function toLinear(format: PagingFormat, va: bigint): LinearAddress {
  let v = va & ((1n << BigInt(format.vaBits)) - 1n);
  if (
    format.canonical === "sign" &&
    ((v >> BigInt(format.vaBits - 1)) & 1n) === 1n
  ) {
    v |= ((1n << 64n) - 1n) ^ ((1n << BigInt(format.vaBits)) - 1n);
  }
  return LinearAddress.from(v);
}

/**
 * The page sizes a mode can map (base page first), as `[size, level]`.
 *
 * @example
 * ```ts
 * import { supportedPageSizes } from "./build.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL, OSTEP_15BIT } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(supportedPageSizes(pagingMode(X86_64_4LEVEL)).map(([s]) => s), [4096, 2 ** 21, 2 ** 30]);
 * assert.deepEqual(supportedPageSizes(pagingMode(OSTEP_15BIT)), [[32, 1]]);
 * ```
 */
export function supportedPageSizes(mode: PagingMode): [number, number][] {
  const f = mode.format;
  const out: [number, number][] = [[2 ** f.pageShift, 1]];
  for (let level = 2; level <= f.levels.length; level++) {
    const l = levelSpec(f, level);
    if (!l.canMapPage || mode.tables.psLeaf[level] !== 1) continue;
    if (f.kind === "x86-64" && level === 3 && !mode.gbPages) continue;
    out.push([2 ** l.shift, level]);
  }
  return out;
}

/**
 * Throw a `TypeError` naming any key of `options` not in `known` (catches
 * typos such as `seeds`).
 *
 * @example
 * ```ts
 * import { checkKeys } from "./build.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => checkKeys({ seeds: 1 }, ["seed"], "f"), /unknown option "seeds"/);
 * ```
 */
export function checkKeys(
  options: object,
  known: readonly string[],
  where: string,
): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${where}: options must be an object`);
  }
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) {
      throw new TypeError(
        `${where}: unknown option "${k}" (known: ${known.join(", ")})`,
      );
    }
  }
}

/**
 * Check an integer option in `[min, max]`, or return the default.
 *
 * @example
 * ```ts
 * import { intOption } from "./build.ts";
 * import assert from "node:assert/strict";
 * assert.equal(intOption(undefined, 5, 1, 10, "questions"), 5);
 * assert.throws(() => intOption(0, 5, 1, 10, "questions"), /questions 0 is invalid/);
 * ```
 */
export function intOption(
  v: unknown,
  dflt: number,
  min: number,
  max: number,
  name: string,
): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(
      `${name} ${
        String(v)
      } is invalid: expected an integer in [${min}, ${max}]`,
    );
  }
  return v;
}

/**
 * Check a fraction option in [0, 1], or return the default.
 *
 * @example
 * ```ts
 * import { fractionOption } from "./build.ts";
 * import assert from "node:assert/strict";
 * assert.equal(fractionOption(undefined, 0.5, "mappedFraction"), 0.5);
 * assert.throws(() => fractionOption(2, 0.5, "mappedFraction"), /mappedFraction 2/);
 * ```
 */
export function fractionOption(
  v: unknown,
  dflt: number,
  name: string,
): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
    throw new RangeError(
      `${name} ${String(v)} is invalid: expected a number in [0, 1]`,
    );
  }
  return v;
}

/**
 * Check that `format` looks like a paging format descriptor.
 *
 * @example
 * ```ts
 * import { checkFormat } from "./build.ts";
 * import { PAE } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * checkFormat(PAE);
 * assert.throws(() => checkFormat("PAE" as never), /format/);
 * ```
 */
export function checkFormat(format: unknown): asserts format is PagingFormat {
  const f = format as PagingFormat;
  if (
    typeof f !== "object" || f === null || !Array.isArray(f.levels) ||
    typeof f.pageShift !== "number" || typeof f.kind !== "string"
  ) {
    throw new TypeError(
      `format ${
        String(format)
      } is invalid: expected a paging format such as OSTEP_15BIT, X86_32, PAE, X86_64_4LEVEL, X86_64_5LEVEL or radixFormat({...})`,
    );
  }
}

/**
 * A uniformly random bigint in [0, n), n ≥ 1.
 *
 * @example
 * ```ts
 * import { randomBigBelow } from "./build.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * assert.ok(randomBigBelow(new Random(9), 1n << 60n) < 1n << 60n);
 * ```
 */
export function randomBigBelow(rng: Random, n: bigint): bigint {
  if (n <= 0n) throw new RangeError(`range ${n} is invalid: expected ≥ 1`);
  const bits = n.toString(2).length;
  for (;;) {
    const v = randomBits(rng, bits);
    if (v < n) return v;
  }
}

/**
 * Write a raw entry `[lo, hi]` at `ea` (for decoy pages, which belong to no
 * page table and so bypass the builder's choke point).
 *
 * @example
 * ```ts
 * import { readEntry, writeRawEntry } from "./build.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const m = new PhysicalMemory({ size: 1 << 16 });
 * writeRawEntry(m, X86_64_4LEVEL, 0x100, 0x2003, 0x8000_0000);
 * assert.deepEqual(readEntry(m, X86_64_4LEVEL, 0x100), [0x2003, 0x8000_0000]);
 * ```
 */
export function writeRawEntry(
  memory: PhysicalMemory,
  format: PagingFormat,
  ea: number,
  lo: number,
  hi: number,
): void {
  const eb = format.entryBytes;
  if (eb === 8) {
    memory.write32(ea, lo);
    memory.write32(ea + 4, hi);
  } else if (eb === 4) memory.write32(ea, lo);
  else if (eb === 2) memory.write16(ea, lo);
  else memory.write8(ea, lo);
}

/**
 * The default MAXPHYADDR of exercises: 32 for 32-bit paging, 36 for PAE,
 * 40 for 4- and 5-level paging (small enough that frame addresses stay
 * readable, large enough to show bits above 4 GiB).
 *
 * @example
 * ```ts
 * import { defaultMaxPhyAddr } from "./build.ts";
 * import { PAE, X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(defaultMaxPhyAddr(PAE), 36);
 * assert.equal(defaultMaxPhyAddr(X86_64_4LEVEL), 40);
 * ```
 */
export function defaultMaxPhyAddr(format: PagingFormat): number {
  return format.kind === "x86-32" ? 32 : format.kind === "pae" ? 36 : 40;
}

/**
 * Lines describing a format's entries, for sheets.
 *
 * @example
 * ```ts
 * import { entryFormatLines } from "./build.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { OSTEP_15BIT, X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.match(entryFormatLines(pagingMode(OSTEP_15BIT))[0], /bit 7 valid, bits 6\.\.0 frame number/);
 * assert.match(entryFormatLines(pagingMode(X86_64_4LEVEL, { maxPhyAddr: 40 })).join("\n"), /bits 39\.\.12/);
 * ```
 */
export function entryFormatLines(mode: PagingMode): string[] {
  const f = mode.format;
  const b = f.bits;
  const eb = f.entryBytes;
  if (f.kind === "radix") {
    const named: [number, string][] = [
      [b.present, "valid"],
      [b.writable, "writable"],
      [b.user, "user"],
      [b.noExec, "no-execute"],
      [b.accessed, "accessed"],
      [b.dirty, "dirty"],
    ];
    const parts = named.filter(([bit]) => bit >= 0).map(([bit, n]) =>
      `bit ${bit} ${n}`
    );
    parts.push(
      `bits ${f.frameLow + f.frameWidth - 1}..${f.frameLow} frame number`,
    );
    return [
      `${eb}-byte entries: ${parts.join(", ")}`,
      `a frame number n means physical address n × ${2 ** f.pageShift}`,
    ];
  }
  const flags = [
    "bit 0 P (present)",
    "1 R/W (writable)",
    "2 U/S (user)",
    "3 PWT",
    "4 PCD",
    "5 A (accessed)",
    "6 D (dirty, leaves)",
    "7 PS (page size: a leaf above level 1)",
    "8 G (global, leaves)",
  ];
  if (b.noExec >= 0) {
    flags.push(`${b.noExec} XD (execute-disable, with EFER.NXE = 1)`);
  }
  if (b.pkey >= 0) {
    flags.push(
      `${b.pkey + 3}..${b.pkey} protection key (leaves, with CR4.PKE = 1)`,
    );
  }
  const lines = [`${eb}-byte entries, little-endian: ${flags.join(", ")}`];
  if (f.kind === "x86-32") {
    lines.push(
      "address bits 31..12 (tables and 4 KiB pages); a 4 MiB PDE (PS = 1, CR4.PSE = 1) holds address bits 31..22 and, in bits 20..13, physical-address bits 39..32 (PSE-36); bit 21 is reserved",
    );
  } else {
    const M = mode.maxPhyAddr;
    lines.push(
      `address bits ${
        M - 1
      }..12 (tables and 4 KiB pages); a large page's address starts at its page size (bits ${
        M - 1
      }..21 for 2 MiB${
        f.kind === "x86-64" ? `, ${M - 1}..30 for 1 GiB` : ""
      }); bits ${
        f.kind === "pae" ? 62 : 51
      }..${M} are reserved (MAXPHYADDR ${M})${
        mode.nxe ? "" : ", and so is bit 63 while EFER.NXE = 0"
      }`,
    );
    if (f.kind === "pae") {
      lines.push(
        "PDPTEs have only P and an address: bits 2..1 and 8..5 are reserved (checked when CR3 is loaded: #GP)",
      );
    } else {
      lines.push(
        `PS is reserved in ${f.levels.length === 5 ? "PML5Es and " : ""}PML4Es`,
      );
    }
  }
  lines.push(
    "#PF error code: bit 0 P (0 = a not-present entry; 1 = a protection or reserved-bit fault), 1 W/R (a write), 2 U/S (a user-mode access), 3 RSVD (a reserved bit set), 4 I/D (an instruction fetch, reported with CR4.SMEP = 1 or, with PAE and 64-bit paging, EFER.NXE = 1), 5 PK (protection key)",
  );
  return lines;
}
