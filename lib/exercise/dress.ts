/**
 * Dressing up a built exercise memory so its dump looks real: A bits,
 * non-present garbage entries, OSTEP's 0x7f invalid entries and random
 * data bytes, decoy pages. All randomness comes from the exercise's seeded
 * generator.
 *
 * @module
 */

import type { LinearAddress } from "../address/address.ts";
import type { PhysicalMemory } from "../memory/memory.ts";
import type { PageTable } from "../paging/builder.ts";
import { levelSpec, type PagingFormat } from "../paging/format.ts";
import type { PagingMode } from "../paging/mode.ts";
import { walk } from "../paging/record.ts";
import type { Random } from "../util/random.ts";
import {
  type FramePool,
  isLeafEntry,
  type PoolAllocator,
  reachableTables,
  readEntry,
  toLinear,
  writeRawEntry,
} from "./build.ts";

/** The geometry an exercise is built in. */
export interface Setup {
  /** The format. */
  readonly format: PagingFormat;
  /** The mode tables are built in. */
  readonly mode: PagingMode;
  /** Whether the format is x86 (not a teaching radix format). */
  readonly x86: boolean;
  /** Physical memory size in bytes. */
  readonly memSize: number;
  /** Table frames are placed below this address. */
  readonly tableBelow: number;
  /** Whether the whole memory is dumped (OSTEP style). */
  readonly full: boolean;
  /** Base page size in bytes. */
  readonly pageBytes: number;
}

/** A built exercise memory. */
export interface Built {
  /** The memory. */
  readonly memory: PhysicalMemory;
  /** The page table. */
  readonly pt: PageTable;
  /** The allocator of table (and decoy) frames. */
  readonly alloc: PoolAllocator;
  /** The pool all frames come from. */
  readonly pool: FramePool;
  /** Data frames (filled with random bytes in full dumps). */
  readonly dataFrames: number[];
  /** Per table address, the indices given non-present garbage entries. */
  readonly garbage: Map<number, number[]>;
}

/**
 * Set bit `bit` (−1: none) of a `[lo, hi]` entry in place.
 *
 * @example
 * ```ts
 * import { bitOn } from "./dress.ts";
 * import assert from "node:assert/strict";
 * const w: [number, number] = [0, 0];
 * bitOn(w, 63);
 * assert.deepEqual(w, [0, 0x80000000]);
 * ```
 */
export function bitOn(w: [number, number], bit: number): void {
  if (bit < 0) return;
  if (bit < 32) w[0] = (w[0] | (1 << bit)) >>> 0;
  else w[1] = (w[1] | (1 << (bit - 32))) >>> 0;
}

/**
 * Clear bit `bit` (−1: none) of a `[lo, hi]` entry in place.
 *
 * @example
 * ```ts
 * import { bitOff } from "./dress.ts";
 * import assert from "node:assert/strict";
 * const w: [number, number] = [7, 0];
 * bitOff(w, 1);
 * assert.deepEqual(w, [5, 0]);
 * ```
 */
export function bitOff(w: [number, number], bit: number): void {
  if (bit < 0) return;
  if (bit < 32) w[0] = (w[0] & ~(1 << bit)) >>> 0;
  else w[1] = (w[1] & ~(1 << (bit - 32))) >>> 0;
}

/**
 * Whether bit `bit` of `hi:lo` is set (false for −1).
 *
 * @example
 * ```ts
 * import { bitIs } from "./dress.ts";
 * import assert from "node:assert/strict";
 * assert.equal(bitIs(0, 0x80000000, 63), true);
 * assert.equal(bitIs(1, 0, -1), false);
 * ```
 */
export function bitIs(lo: number, hi: number, bit: number): boolean {
  if (bit < 0) return false;
  return bit < 32 ? ((lo >>> bit) & 1) === 1 : ((hi >>> (bit - 32)) & 1) === 1;
}

/**
 * A plausible non-present entry: an address and some flags, P = 0 (a
 * swapped-out or torn-down entry; students must check P first).
 *
 * @example
 * ```ts
 * import { garbageEntry } from "./dress.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const s = { format: X86_32, mode: pagingMode(X86_32), x86: true, memSize: 2 ** 32, tableBelow: 2 ** 32, full: false, pageBytes: 4096 };
 * const [lo, hi] = garbageEntry(s, new Random(1));
 * assert.equal(lo & 1, 0);
 * assert.ok(lo !== 0 || hi !== 0);
 * ```
 */
export function garbageEntry(
  s: Setup,
  rng: Random,
): [number, number] {
  const f = s.format;
  const w: [number, number] = [0, 0];
  if (!s.x86) {
    const fn = rng.int(2 ** Math.min(f.frameWidth, 31));
    const v = BigInt(fn) << BigInt(f.frameLow);
    w[0] = Number(v & 0xffffffffn) >>> 0;
    w[1] = Number(v >> 32n) >>> 0;
    bitOff(w, f.bits.present);
    if (w[0] === 0 && w[1] === 0) w[0] = 1 << ((f.bits.present + 1) % 8);
    return w;
  }
  const frame = Math.floor(rng.next() * (s.memSize / 4096)) * 4096;
  w[0] = frame % 2 ** 32;
  w[1] = Math.floor(frame / 2 ** 32);
  if (rng.chance(0.7)) bitOn(w, f.bits.writable);
  if (rng.chance(0.6)) bitOn(w, f.bits.user);
  if (rng.chance(0.5)) bitOn(w, f.bits.accessed);
  if (w[0] === 0 && w[1] === 0) w[0] = 0x1000;
  return [w[0] >>> 0, w[1] >>> 0];
}

/**
 * The address of the entry at `level` on the path of `va` (undefined when
 * the walk stops above it). A side-effect-free lookup.
 *
 * @example
 * ```ts
 * import { entryAddressFor } from "./dress.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { LinearAddress } from "../address/address.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000);
 * const va = LinearAddress.from(0x1000);
 * assert.equal(entryAddressFor(pt, va, 4), pt.root);
 * assert.equal(entryAddressFor(pt, LinearAddress.from(2 ** 39), 3), undefined);
 * ```
 */
export function entryAddressFor(
  pt: PageTable,
  va: LinearAddress,
  level: number,
): number | undefined {
  const w = walk(pt, va, { setAD: false });
  return w.steps.find((st) => st.level === level)?.entryAddress;
}

/**
 * Make a built memory look lived-in: set A bits on some table entries (x86),
 * add a few non-present "garbage" entries per table (or, for full OSTEP
 * dumps, write the invalid pattern 0x7f into every invalid entry), and fill
 * data pages of full dumps with random bytes below 31, as OSTEP does.
 *
 * @example
 * ```ts
 * import { dressUp } from "./dress.ts";
 * import { FramePool, PoolAllocator } from "./build.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { OSTEP_15BIT } from "../paging/format.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const rng = new Random(0);
 * const memory = new PhysicalMemory({ size: 4096 });
 * const pool = new FramePool(rng, 4096);
 * const alloc = new PoolAllocator(memory, pool, 32);
 * const mode = pagingMode(OSTEP_15BIT);
 * const pt = new PageTable(memory, { mode, allocator: alloc });
 * const s = { format: OSTEP_15BIT, mode, x86: false, memSize: 4096, tableBelow: 4096, full: true, pageBytes: 32 };
 * dressUp(s, rng, { memory, pt, alloc, pool, dataFrames: [], garbage: new Map() });
 * assert.equal(memory.read8(pt.root + 5), 0x7f);
 * ```
 */
export function dressUp(s: Setup, rng: Random, b: Built): void {
  const f = s.format;
  const { memory, pt } = b;
  const tables = reachableTables(memory, s.mode, pt.root);
  for (const t of tables) {
    const spec = levelSpec(f, t.level);
    const n = 2 ** spec.bits;
    const zero: number[] = [];
    for (let i = 0; i < n; i++) {
      const ea = t.address + i * f.entryBytes;
      const [lo, hi] = readEntry(memory, f, ea);
      if (lo === 0 && hi === 0) {
        zero.push(i);
        continue;
      }
      if (
        s.x86 && bitIs(lo, hi, f.bits.present) &&
        !isLeafEntry(s.mode, t.level, lo, hi) && spec.hasAccessed &&
        !bitIs(lo, hi, f.bits.accessed) && rng.chance(0.75)
      ) {
        const w: [number, number] = [lo, hi];
        bitOn(w, f.bits.accessed);
        pt.writeEntry(
          t.level,
          ea,
          w[0],
          w[1],
          toLinear(f, t.prefix | (BigInt(i) << BigInt(spec.shift))),
        );
      }
    }
    const va = (i: number) =>
      toLinear(f, t.prefix | (BigInt(i) << BigInt(spec.shift)));
    if (s.full) {
      // OSTEP: every invalid entry reads 0x7f (valid clear, frame all ones).
      const pattern = BigInt(2 ** f.frameWidth - 1) << BigInt(f.frameLow);
      const lo = Number(pattern & 0xffffffffn) >>> 0;
      const hi = Number(pattern >> 32n) >>> 0;
      for (const i of zero) {
        pt.writeEntry(t.level, t.address + i * f.entryBytes, lo, hi, va(i));
      }
      continue;
    }
    const k = Math.min(zero.length, rng.int(3));
    const picked = rng.shuffle(zero).slice(0, k).sort((x, y) => x - y);
    for (const i of picked) {
      const [lo, hi] = garbageEntry(s, rng);
      pt.writeEntry(t.level, t.address + i * f.entryBytes, lo, hi, va(i));
    }
    b.garbage.set(t.address, picked);
  }
  if (s.full) {
    // OSTEP fills data pages with random bytes below 31.
    for (const frame of b.dataFrames) {
      const bytes = new Uint8Array(s.pageBytes);
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(31);
      memory.writeBytes(frame, bytes);
    }
  }
}

/**
 * Add `decoys` pages that look like page tables but are not reachable from
 * the root (taken from the allocator, so they are dumped with the tables).
 *
 * @example
 * ```ts
 * import { addDecoys } from "./dress.ts";
 * import { FramePool, PoolAllocator } from "./build.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const rng = new Random(0);
 * const memory = new PhysicalMemory({ size: 2 ** 32 });
 * const pool = new FramePool(rng, 2 ** 32);
 * const alloc = new PoolAllocator(memory, pool, 4096);
 * const mode = pagingMode(X86_32);
 * const pt = new PageTable(memory, { mode, allocator: alloc });
 * const s = { format: X86_32, mode, x86: true, memSize: 2 ** 32, tableBelow: 2 ** 32, full: false, pageBytes: 4096 };
 * addDecoys(s, rng, { memory, pt, alloc, pool, dataFrames: [], garbage: new Map() }, 2);
 * assert.equal(alloc.frames.length, 3); // root + 2 decoys
 * ```
 */
export function addDecoys(
  s: Setup,
  rng: Random,
  b: Built,
  decoys: number,
): void {
  const f = s.format;
  for (let d = 0; d < decoys; d++) {
    let page: number;
    try {
      page = b.alloc.alloc();
    } catch {
      return; // memory full (tiny radix geometries): fewer decoys
    }
    const n = s.pageBytes / f.entryBytes;
    if (s.full) {
      const pattern = BigInt(2 ** f.frameWidth - 1) << BigInt(f.frameLow);
      for (let i = 0; i < n; i++) {
        writeRawEntry(
          b.memory,
          f,
          page + i * f.entryBytes,
          Number(pattern & 0xffffffffn) >>> 0,
          Number(pattern >> 32n) >>> 0,
        );
      }
    }
    const k = 2 + rng.int(4);
    for (let j = 0; j < k; j++) {
      const i = rng.int(n);
      const w: [number, number] = [0, 0];
      if (s.x86) {
        const frame = Math.floor(rng.next() * (s.tableBelow / 4096)) * 4096;
        w[0] = frame % 2 ** 32;
        w[1] = Math.floor(frame / 2 ** 32);
        bitOn(w, f.bits.present);
        if (rng.chance(0.8)) bitOn(w, f.bits.writable);
        if (rng.chance(0.5)) bitOn(w, f.bits.user);
        if (rng.chance(0.7)) bitOn(w, f.bits.accessed);
      } else {
        const fn = BigInt(rng.int(2 ** Math.min(f.frameWidth, 31)));
        const v = fn << BigInt(f.frameLow);
        w[0] = Number(v & 0xffffffffn) >>> 0;
        w[1] = Number(v >> 32n) >>> 0;
        bitOn(w, f.bits.present);
      }
      writeRawEntry(
        b.memory,
        f,
        page + i * f.entryBytes,
        w[0] >>> 0,
        w[1] >>> 0,
      );
    }
  }
}
