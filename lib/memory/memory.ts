/**
 * Sparse physical memory and a frame allocator.
 *
 * Memory is stored in 4 KiB chunks created on the first non-zero write, so
 * a 64 GiB machine costs memory in proportion to the chunks touched.
 * Untouched memory reads as zeros. Addresses are plain numbers below the
 * memory's size (at most 2^52, the architectural MAXPHYADDR limit).
 *
 * @module
 */

import { hexPhys, MAX_PHYS_BITS } from "../address/address.ts";

const CHUNK_SHIFT = 12;
const CHUNK = 1 << CHUNK_SHIFT;
/**
 * Direct-mapped cache of chunk lookups (chunk index → bytes and a 32-bit
 * view of them, or undefined for an untouched chunk), so that a page walk,
 * which touches one chunk per level, rarely pays for a `Map` lookup.
 * Coherent because every chunk is created by #getOrCreate and dropped by
 * zero(), which both update it. 1024 slots cover the ~650 table pages of
 * the walk benchmark; 256 did not.
 */
const CACHE_SLOTS = 1024;
/** Aligned 32-bit reads use a Uint32Array view, which is host-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Byte-addressable memory as page tables, walkers and frame allocators use
 * it. {@linkcode PhysicalMemory} implements it; so does a domain's
 * guest-physical view (`lib/virt`), which translates every address through
 * the domain's P2M or memslots, so that a guest can build its page tables
 * in its own guest-physical memory with the same `PageTable`.
 *
 * @example
 * ```ts
 * import { type Memory, PhysicalMemory } from "./memory.ts";
 * import assert from "node:assert/strict";
 * const m: Memory = new PhysicalMemory({ size: 8192, name: "tiny" });
 * m.write32(0x1000, 0x01020304);
 * assert.equal(m.read8(0x1000), 4);
 * assert.equal(m.name, "tiny");
 * ```
 */
export interface Memory {
  /** Size in bytes: addresses are in [0, size). */
  readonly size: number;
  /** Name used in messages. */
  readonly name: string;
  /** Read one byte. */
  read8(addr: number): number;
  /** Read a little-endian 16-bit value. */
  read16(addr: number): number;
  /** Read a little-endian unsigned 32-bit value. */
  read32(addr: number): number;
  /** Write one byte (the low 8 bits of `value`). */
  write8(addr: number, value: number): void;
  /** Write a little-endian 16-bit value. */
  write16(addr: number, value: number): void;
  /** Write a little-endian 32-bit value. */
  write32(addr: number, value: number): void;
  /** Copy `length` bytes out, starting at `addr`. */
  readBytes(addr: number, length: number): Uint8Array;
  /** Copy `data` in, starting at `addr`. */
  writeBytes(addr: number, data: Uint8Array): void;
  /** Zero `length` bytes at `addr`. */
  zero(addr: number, length: number): void;
}

/**
 * What a page table needs of a frame allocator (a {@linkcode FrameAllocator}
 * has it all): frames of `frameSize` bytes in `memory`, by address.
 *
 * @example
 * ```ts
 * import { FrameAllocator, type FrameSource, PhysicalMemory } from "./memory.ts";
 * import assert from "node:assert/strict";
 * const source: FrameSource = new FrameAllocator(new PhysicalMemory({ size: 1 << 16 }));
 * const a = source.alloc();
 * assert.equal(source.isAllocated(a), true);
 * assert.equal(source.allocatedCount, 1);
 * ```
 */
export interface FrameSource {
  /** The memory the frames belong to. */
  readonly memory: Memory;
  /** Frame size in bytes. */
  readonly frameSize: number;
  /** Frames currently allocated. */
  readonly allocatedCount: number;
  /** Allocate a zeroed frame and return its address. */
  alloc(): number;
  /** Return a frame. */
  free(addr: number): void;
  /** Whether the frame at `addr` is allocated. */
  isAllocated(addr: number): boolean;
}

/** Options for {@linkcode PhysicalMemory}. */
export interface PhysicalMemoryOptions {
  /** Size in bytes; default 2^52 (the whole architectural space). */
  size?: number;
  /** Name used in error messages, e.g. "machine" or "guest 1". */
  name?: string;
}

/**
 * Byte-addressable sparse physical memory, little-endian.
 *
 * @example
 * ```ts
 * import { PhysicalMemory } from "./memory.ts";
 * import assert from "node:assert/strict";
 * const m = new PhysicalMemory({ size: 64 * 2 ** 30 });
 * assert.equal(m.read32(0x1234_5000), 0); // untouched reads as zero
 * m.write32(0xf_ffff_f000, 0xdeadbeef);
 * assert.equal(m.read32(0xf_ffff_f000), 0xdeadbeef);
 * assert.equal(m.read8(0xf_ffff_f003), 0xde);
 * assert.equal(m.chunksTouched, 1); // 64 GiB machine, one 4 KiB chunk stored
 * assert.throws(() => m.read8(64 * 2 ** 30), /beyond the end/);
 * ```
 */
export class PhysicalMemory implements Memory {
  /** Size in bytes. */
  readonly size: number;
  /** Name used in messages. */
  readonly name: string;
  #chunks = new Map<number, Uint8Array>();
  #cacheIdx = new Float64Array(CACHE_SLOTS).fill(-1);
  #cacheBytes: (Uint8Array | undefined)[] = new Array(CACHE_SLOTS).fill(
    undefined,
  );
  #cacheWords: (Uint32Array | undefined)[] = new Array(CACHE_SLOTS).fill(
    undefined,
  );

  /** Create an empty (all-zero) memory. */
  constructor(options: PhysicalMemoryOptions = {}) {
    const size = options.size ?? 2 ** MAX_PHYS_BITS;
    if (!Number.isInteger(size) || size <= 0 || size > 2 ** MAX_PHYS_BITS) {
      throw new RangeError(
        `memory size ${
          String(size)
        } is invalid: expected an integer in (0, 2^52]`,
      );
    }
    this.size = size;
    this.name = options.name ?? "physical memory";
  }

  /** Number of 4 KiB chunks that hold data (the memory actually used). */
  get chunksTouched(): number {
    return this.#chunks.size;
  }

  #check(addr: number, bytes: number): void {
    if (!(addr >= 0 && addr + bytes <= this.size) || !Number.isInteger(addr)) {
      throw new RangeError(
        `${this.name}: address ${
          typeof addr === "number" && Number.isInteger(addr) && addr >= 0
            ? hexPhys(addr)
            : String(addr)
        } (${bytes} bytes) is beyond the end of memory (size ${
          hexPhys(this.size)
        }) or not a non-negative integer`,
      );
    }
  }

  #get(idx: number): Uint8Array | undefined {
    // idx < 2^40: `&` keeps its low bits exactly
    const slot = idx & (CACHE_SLOTS - 1);
    if (this.#cacheIdx[slot] === idx) return this.#cacheBytes[slot];
    const c = this.#chunks.get(idx);
    this.#cacheIdx[slot] = idx;
    this.#cacheBytes[slot] = c;
    this.#cacheWords[slot] = c === undefined
      ? undefined
      : new Uint32Array(c.buffer);
    return c;
  }

  #getOrCreate(idx: number): Uint8Array {
    let c = this.#get(idx);
    if (c === undefined) {
      c = new Uint8Array(CHUNK);
      this.#chunks.set(idx, c);
      const slot = idx & (CACHE_SLOTS - 1);
      this.#cacheIdx[slot] = idx;
      this.#cacheBytes[slot] = c;
      this.#cacheWords[slot] = new Uint32Array(c.buffer);
    }
    return c;
  }

  /** Read one byte. */
  read8(addr: number): number {
    this.#check(addr, 1);
    const idx = Math.floor(addr / CHUNK);
    const c = this.#get(idx);
    return c === undefined ? 0 : c[addr - idx * CHUNK];
  }

  /** Read a little-endian 16-bit value. */
  read16(addr: number): number {
    return this.read8(addr) | (this.read8(addr + 1) << 8);
  }

  /** Read a little-endian unsigned 32-bit value. */
  read32(addr: number): number {
    // The page walker's hot path, kept small enough for V8 to inline it:
    // an in-range integer address inside a cached chunk. Everything else
    // (checks that throw, uncached or untouched chunks, reads that cross a
    // chunk) goes to #read32Slow. Not `addr % CHUNK`: addresses above 2^31
    // are doubles, and a double modulo is a slow runtime call.
    const idx = Math.floor(addr / CHUNK);
    const slot = idx & (CACHE_SLOTS - 1);
    const off = addr - idx * CHUNK;
    if (
      this.#cacheIdx[slot] === idx && (off & 3) === 0 && addr >= 0 &&
      addr + 4 <= this.size && Number.isInteger(addr) && LITTLE_ENDIAN
    ) {
      const w = this.#cacheWords[slot];
      return w === undefined ? 0 : w[off >>> 2];
    }
    return this.#read32Slow(addr);
  }

  /**
   * The high half of the entry that {@linkcode PhysicalMemory.readEntryLo}
   * read last.
   */
  entryHi = 0;

  /**
   * Read the little-endian 8-byte entry at 8-aligned `addr` with one chunk
   * lookup (page walkers read both halves of every entry): returns the low
   * 32 bits and leaves the high 32 bits in {@linkcode PhysicalMemory.entryHi}.
   * Same checks and errors as two `read32` calls.
   *
   * @example
   * ```ts
   * import { PhysicalMemory } from "./memory.ts";
   * import assert from "node:assert/strict";
   * const m = new PhysicalMemory({ size: 1 << 16 });
   * m.write32(0x1008, 0x1003);
   * m.write32(0x100c, 0x8000_0000);
   * assert.equal(m.readEntryLo(0x1008), 0x1003);
   * assert.equal(m.entryHi, 0x8000_0000);
   * assert.throws(() => m.readEntryLo(1 << 16), /beyond the end/);
   * ```
   */
  readEntryLo(addr: number): number {
    const idx = Math.floor(addr / CHUNK);
    const slot = idx & (CACHE_SLOTS - 1);
    const off = addr - idx * CHUNK;
    if (
      this.#cacheIdx[slot] === idx && (off & 7) === 0 && addr >= 0 &&
      addr + 8 <= this.size && Number.isInteger(addr) && LITTLE_ENDIAN
    ) {
      const w = this.#cacheWords[slot];
      if (w === undefined) {
        this.entryHi = 0;
        return 0;
      }
      this.entryHi = w[(off >>> 2) + 1];
      return w[off >>> 2];
    }
    const lo = this.read32(addr);
    this.entryHi = this.read32(addr + 4);
    return lo;
  }

  #read32Slow(addr: number): number {
    this.#check(addr, 4);
    const idx = Math.floor(addr / CHUNK);
    const off = addr - idx * CHUNK;
    if (off <= CHUNK - 4) {
      const c = this.#get(idx);
      if (c === undefined) return 0;
      return (c[off] | (c[off + 1] << 8) | (c[off + 2] << 16) |
        (c[off + 3] << 24)) >>> 0;
    }
    return (this.read16(addr) | (this.read16(addr + 2) << 16)) >>> 0;
  }

  /** Write one byte (the low 8 bits of `value`). */
  write8(addr: number, value: number): void {
    this.#check(addr, 1);
    const idx = Math.floor(addr / CHUNK);
    if ((value & 0xff) === 0 && this.#get(idx) === undefined) return;
    this.#getOrCreate(idx)[addr % CHUNK] = value;
  }

  /** Write a little-endian 16-bit value. */
  write16(addr: number, value: number): void {
    this.write8(addr, value);
    this.write8(addr + 1, value >>> 8);
  }

  /** Write a little-endian 32-bit value. */
  write32(addr: number, value: number): void {
    this.#check(addr, 4);
    const off = addr % CHUNK;
    if (off > CHUNK - 4) {
      this.write16(addr, value);
      this.write16(addr + 2, value >>> 16);
      return;
    }
    const idx = Math.floor(addr / CHUNK);
    if (value === 0 && this.#get(idx) === undefined) return;
    const c = this.#getOrCreate(idx);
    c[off] = value;
    c[off + 1] = value >>> 8;
    c[off + 2] = value >>> 16;
    c[off + 3] = value >>> 24;
  }

  /** Copy `length` bytes out, starting at `addr`. */
  readBytes(addr: number, length: number): Uint8Array {
    this.#check(addr, length);
    const out = new Uint8Array(length);
    for (let i = 0; i < length;) {
      const a = addr + i;
      const off = a % CHUNK;
      const n = Math.min(CHUNK - off, length - i);
      const c = this.#get(Math.floor(a / CHUNK));
      if (c !== undefined) out.set(c.subarray(off, off + n), i);
      i += n;
    }
    return out;
  }

  /** Copy `data` in, starting at `addr`. */
  writeBytes(addr: number, data: Uint8Array): void {
    this.#check(addr, data.length);
    for (let i = 0; i < data.length;) {
      const a = addr + i;
      const off = a % CHUNK;
      const n = Math.min(CHUNK - off, data.length - i);
      const src = data.subarray(i, i + n);
      const idx = Math.floor(a / CHUNK);
      if (this.#get(idx) !== undefined || src.some((b) => b !== 0)) {
        this.#getOrCreate(idx).set(src, off);
      }
      i += n;
    }
  }

  /** Zero `length` bytes at `addr`, dropping chunks that become empty. */
  zero(addr: number, length: number): void {
    this.#check(addr, length);
    for (let i = 0; i < length;) {
      const a = addr + i;
      const off = a % CHUNK;
      const n = Math.min(CHUNK - off, length - i);
      const idx = Math.floor(a / CHUNK);
      if (n === CHUNK) {
        this.#chunks.delete(idx);
        const slot = idx & (CACHE_SLOTS - 1);
        if (this.#cacheIdx[slot] === idx) {
          this.#cacheIdx[slot] = -1;
          this.#cacheBytes[slot] = undefined;
        }
      } else {
        this.#get(idx)?.fill(0, off, off + n);
      }
      i += n;
    }
  }

  /** Bytes actually stored (chunks touched × 4 KiB). */
  get bytesStored(): number {
    return this.#chunks.size * CHUNK;
  }
}

/** Exposed for modules that need the internal chunk size. */
export const MEMORY_CHUNK_BYTES: number = CHUNK;

/** Options for {@linkcode FrameAllocator}. */
export interface FrameAllocatorOptions {
  /** Frame size in bytes (power of two); default 4096. */
  frameSize?: number;
  /** First allocatable address (frame aligned); default 0. */
  start?: number;
  /** End (exclusive) of the allocatable range; default the memory size. */
  end?: number;
}

/**
 * Hands out zeroed frames of a {@linkcode PhysicalMemory}. Bump allocation
 * with a free list, so a large memory costs nothing until frames are
 * allocated. Double frees and frees of foreign frames are errors.
 *
 * @example
 * ```ts
 * import { FrameAllocator, PhysicalMemory } from "./memory.ts";
 * import assert from "node:assert/strict";
 * const mem = new PhysicalMemory({ size: 1 << 20 });
 * const alloc = new FrameAllocator(mem, { start: 0x1000 });
 * const a = alloc.alloc();
 * assert.equal(a, 0x1000);
 * alloc.free(a);
 * assert.throws(() => alloc.free(a), /not allocated/);
 * assert.equal(alloc.alloc(), 0x1000); // reused
 * ```
 */
export class FrameAllocator<M extends Memory = PhysicalMemory>
  implements FrameSource {
  /** The memory the frames belong to. */
  readonly memory: M;
  /** Frame size in bytes. */
  readonly frameSize: number;
  /** First allocatable address. */
  readonly start: number;
  /** End of the allocatable range (exclusive). */
  readonly end: number;
  #next: number;
  #free: number[] = [];
  #allocated = new Set<number>();

  /** Create an allocator over `[start, end)` of `memory`. */
  constructor(memory: M, options: FrameAllocatorOptions = {}) {
    const fs = options.frameSize ?? 4096;
    // (not `fs & (fs - 1)`: bitwise operators truncate to 32 bits, which
    // accepted e.g. 3 * 2^31)
    if (!Number.isInteger(fs) || fs < 1 || !Number.isInteger(Math.log2(fs))) {
      throw new RangeError(
        `frame size ${String(fs)} is invalid: expected a power of two`,
      );
    }
    const start = options.start ?? 0;
    const end = options.end ?? memory.size;
    if (start % fs !== 0 || start < 0 || end > memory.size || end < start) {
      throw new RangeError(
        `allocator range [${hexPhys(start)}, ${
          hexPhys(end)
        }) is invalid: expected frame-aligned bounds within memory size ${
          hexPhys(memory.size)
        }`,
      );
    }
    this.memory = memory;
    this.frameSize = fs;
    this.start = start;
    this.end = end;
    this.#next = start;
  }

  /** Number of frames currently allocated. */
  get allocatedCount(): number {
    return this.#allocated.size;
  }

  /** Whether the frame at `addr` is currently allocated. */
  isAllocated(addr: number): boolean {
    return this.#allocated.has(addr);
  }

  /** Allocate a zeroed frame and return its physical address. */
  alloc(): number {
    let a: number;
    if (this.#free.length > 0) {
      a = this.#free.pop()!;
    } else {
      if (this.#next + this.frameSize > this.end) {
        throw new RangeError(
          `${this.memory.name}: out of frames (range [${hexPhys(this.start)}, ${
            hexPhys(this.end)
          }) exhausted, ${this.#allocated.size} allocated)`,
        );
      }
      a = this.#next;
      this.#next += this.frameSize;
    }
    this.#allocated.add(a);
    this.memory.zero(a, this.frameSize);
    return a;
  }

  /** Return a frame to the allocator. */
  free(addr: number): void {
    if (!this.#allocated.has(addr)) {
      throw new RangeError(
        `${this.memory.name}: frame ${
          hexPhys(addr)
        } is not allocated by this allocator (double free or unknown frame)`,
      );
    }
    this.#allocated.delete(addr);
    this.#free.push(addr);
  }
}

const defaults = new WeakMap<Memory, FrameAllocator<Memory>>();

/**
 * The allocator shared by everything that builds in `memory` without being
 * given an allocator (so two page tables in one memory never get the same
 * frames). Created on first use with `frameSize`; asking again with a
 * different frame size is an error, because two allocators over one memory
 * would hand out overlapping frames.
 *
 * @example
 * ```ts
 * import { defaultAllocator, PhysicalMemory } from "./memory.ts";
 * import assert from "node:assert/strict";
 * const m = new PhysicalMemory({ size: 1 << 20 });
 * assert.equal(defaultAllocator(m), defaultAllocator(m));
 * assert.throws(() => defaultAllocator(m, 32), /4096-byte frames/);
 * ```
 */
export function defaultAllocator<M extends Memory = PhysicalMemory>(
  memory: M,
  frameSize = 4096,
): FrameAllocator<M> {
  let a = defaults.get(memory) as FrameAllocator<M> | undefined;
  if (a === undefined) {
    a = new FrameAllocator(memory, { frameSize });
    defaults.set(memory, a);
  } else if (a.frameSize !== frameSize) {
    throw new RangeError(
      `${memory.name} already has a default allocator with ${a.frameSize}-byte frames; ` +
        `pass an allocator explicitly to use ${frameSize}-byte frames in it`,
    );
  }
  return a;
}
