/**
 * Compact per-frame tables: the storage behind P2M (gfn → mfn), M2P
 * (mfn → gfn) and machine-frame ownership.
 *
 * Xen keeps its P2M as a radix tree of pages of entries (the PV "p2m list"
 * is three levels of frames), so that a sparse, large guest-physical space
 * costs memory only where it is populated. {@linkcode FrameTable} does the
 * same with 1024-entry `Uint32Array` chunks created on the first write: a
 * 1 TiB machine with one populated frame costs one 4 KiB chunk, and a
 * lookup is two array reads with no allocation and no BigInt.
 *
 * @module
 */

/**
 * Bytes per machine or guest frame.
 *
 * @example
 * ```ts
 * import { FRAME_SHIFT, FRAME_SIZE } from "./frames.ts";
 * import assert from "node:assert/strict";
 * assert.equal(FRAME_SIZE, 2 ** FRAME_SHIFT);
 * ```
 */
export const FRAME_SIZE = 4096;
/**
 * log2 of {@linkcode FRAME_SIZE}.
 *
 * @example
 * ```ts
 * import { FRAME_SHIFT } from "./frames.ts";
 * import assert from "node:assert/strict";
 * assert.equal(Math.floor(0x5123 / 2 ** FRAME_SHIFT), 5); // gfn of gpa 0x5123
 * ```
 */
export const FRAME_SHIFT = 12;
/**
 * Owner code of a free machine frame.
 *
 * @example
 * ```ts
 * import { OWNER_FREE } from "./frames.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 2 ** 20 });
 * assert.equal(host.ownerIdOf(255), OWNER_FREE);
 * ```
 */
export const OWNER_FREE = 0;
/**
 * Owner code of a machine frame the hypervisor (Xen, or the host kernel under KVM) keeps for itself.
 *
 * @example
 * ```ts
 * import { OWNER_HYPERVISOR } from "./frames.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 2 ** 20 }); // the bottom 64 KiB are reserved
 * assert.equal(host.ownerIdOf(0), OWNER_HYPERVISOR);
 * ```
 */
export const OWNER_HYPERVISOR = 0x7fffffff;

/**
 * The "no entry" value of a {@linkcode FrameTable} (Xen's `INVALID_MFN` for 32-bit entries).
 *
 * @example
 * ```ts
 * import { FrameTable, INVALID_FRAME } from "./frames.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new FrameTable(8).get(3), INVALID_FRAME);
 * ```
 */
export const INVALID_FRAME = 0xffffffff;

const CHUNK_SHIFT = 10;
const CHUNK = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK - 1;

/**
 * Largest number of frames a table may index (2^30: 4 TiB of 4 KiB frames).
 *
 * @example
 * ```ts
 * import { FrameTable, MAX_TABLE_FRAMES } from "./frames.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => new FrameTable(MAX_TABLE_FRAMES + 1), RangeError);
 * ```
 */
export const MAX_TABLE_FRAMES = 2 ** 30;

/**
 * A sparse array of unsigned 32-bit values indexed by frame number, with a
 * default value for untouched entries. Values must be in [0, 2^32).
 *
 * @example
 * ```ts
 * import { FrameTable, INVALID_FRAME } from "./frames.ts";
 * import assert from "node:assert/strict";
 * const p2m = new FrameTable(1 << 20, "P2M of vm1");  // 4 GiB of gfns
 * assert.equal(p2m.get(12345), INVALID_FRAME);
 * p2m.set(12345, 77);
 * assert.equal(p2m.get(12345), 77);
 * assert.equal(p2m.count, 1);
 * assert.equal(p2m.chunks, 1);                      // one 4 KiB chunk stored
 * p2m.set(12345, INVALID_FRAME);
 * assert.equal(p2m.count, 0);
 * assert.throws(() => p2m.get(1 << 20), /P2M of vm1: index 1048576 is out of range/);
 * ```
 */
export class FrameTable {
  /** Number of indices: valid indices are [0, length). */
  readonly length: number;
  /** Name used in messages. */
  readonly name: string;
  /** The value of untouched entries. */
  readonly empty: number;
  #chunks: (Uint32Array | undefined)[];
  #count = 0;

  /**
   * Create a table of `length` entries, all `empty` (default
   * {@linkcode INVALID_FRAME}).
   */
  constructor(length: number, name = "frame table", empty = INVALID_FRAME) {
    if (
      !Number.isInteger(length) || length < 1 || length > MAX_TABLE_FRAMES
    ) {
      throw new RangeError(
        `${name}: length ${
          String(length)
        } is invalid: expected an integer in [1, 2^30]`,
      );
    }
    if (!Number.isInteger(empty) || empty < 0 || empty > 0xffffffff) {
      throw new RangeError(
        `${name}: empty value ${
          String(empty)
        } is invalid: expected an unsigned 32-bit integer`,
      );
    }
    this.length = length;
    this.name = name;
    this.empty = empty;
    this.#chunks = new Array(Math.ceil(length / CHUNK)).fill(undefined);
  }

  /** Entries whose value differs from `empty`. */
  get count(): number {
    return this.#count;
  }

  /** Chunks stored (each 1024 entries, 4 KiB). */
  get chunks(): number {
    let n = 0;
    for (const c of this.#chunks) if (c !== undefined) n++;
    return n;
  }

  #check(i: number): void {
    if (!(i >= 0 && i < this.length) || !Number.isInteger(i)) {
      throw new RangeError(
        `${this.name}: index ${String(i)} is out of range [0, ${this.length})`,
      );
    }
  }

  /** The value at `i` (hot path: no allocation). */
  get(i: number): number {
    const c = this.#chunks[i >>> CHUNK_SHIFT];
    if (c !== undefined && i >= 0 && i < this.length) return c[i & CHUNK_MASK];
    this.#check(i);
    return this.empty;
  }

  /** Set the value at `i`. */
  set(i: number, value: number): void {
    this.#check(i);
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(
        `${this.name}: value ${
          String(value)
        } at index ${i} is invalid: expected an unsigned 32-bit integer`,
      );
    }
    const k = i >>> CHUNK_SHIFT;
    let c = this.#chunks[k];
    if (c === undefined) {
      if (value === this.empty) return;
      c = new Uint32Array(CHUNK);
      if (this.empty !== 0) c.fill(this.empty);
      this.#chunks[k] = c;
    }
    const old = c[i & CHUNK_MASK];
    if (old === value) return;
    if (old === this.empty) this.#count++;
    else if (value === this.empty) this.#count--;
    c[i & CHUNK_MASK] = value;
  }

  /**
   * Indices in `[from, to)` whose value is not `empty`, in order, skipping
   * untouched chunks.
   */
  *entries(from = 0, to = this.length): Generator<[number, number]> {
    const lo = Math.max(0, from), hi = Math.min(this.length, to);
    for (let k = lo >>> CHUNK_SHIFT; k * CHUNK < hi; k++) {
      const c = this.#chunks[k];
      if (c === undefined) continue;
      const start = Math.max(lo, k * CHUNK),
        end = Math.min(hi, (k + 1) * CHUNK);
      for (let i = start; i < end; i++) {
        const v = c[i & CHUNK_MASK];
        if (v !== this.empty) yield [i, v];
      }
    }
  }

  /**
   * The first index `i` in `[from, to)` with `get(i) === value`, or -1.
   * Untouched chunks hold `empty`, so searching for `empty` is fast there.
   */
  find(value: number, from: number, to: number): number {
    const lo = Math.max(0, from), hi = Math.min(this.length, to);
    for (let i = lo; i < hi;) {
      const k = i >>> CHUNK_SHIFT;
      const c = this.#chunks[k];
      const end = Math.min(hi, (k + 1) * CHUNK);
      if (c === undefined) {
        if (value === this.empty) return i;
        i = end;
        continue;
      }
      for (; i < end; i++) if (c[i & CHUNK_MASK] === value) return i;
    }
    return -1;
  }
}

/**
 * A maximal run of consecutive gfns mapped to consecutive mfns.
 *
 * @example
 * ```ts
 * import { type FrameRun, runsOf } from "./frames.ts";
 * import assert from "node:assert/strict";
 * const r: FrameRun[] = runsOf([[0, 10], [1, 11], [2, 40]]);
 * assert.deepEqual(r, [{ gfn: 0, mfn: 10, count: 2 }, { gfn: 2, mfn: 40, count: 1 }]);
 * ```
 */
export interface FrameRun {
  /** First guest frame. */
  readonly gfn: number;
  /** First machine frame. */
  readonly mfn: number;
  /** Frames in the run. */
  readonly count: number;
}

/**
 * Merge `[gfn, mfn]` pairs (in gfn order) into maximal runs.
 *
 * @example
 * ```ts
 * import { runsOf } from "./frames.ts";
 * import assert from "node:assert/strict";
 * assert.equal(runsOf([[5, 100], [6, 101], [7, 102], [9, 103]]).length, 2);
 * ```
 */
export function runsOf(pairs: Iterable<[number, number]>): FrameRun[] {
  const out: FrameRun[] = [];
  let g = -2, m = -2, n = 0;
  for (const [gfn, mfn] of pairs) {
    if (n > 0 && gfn === g + n && mfn === m + n) {
      n++;
      continue;
    }
    if (n > 0) out.push({ gfn: g, mfn: m, count: n });
    g = gfn;
    m = mfn;
    n = 1;
  }
  if (n > 0) out.push({ gfn: g, mfn: m, count: n });
  return out;
}
