/**
 * Descriptor tables (GDT, LDT, IDT) held in memory: a base address and a
 * limit in bytes, as GDTR/LDTR/IDTR hold them (SDM Vol. 3 §2.4, §3.5.1).
 * An entry is readable when `index × 8 + 7 ≤ limit`; beyond that a
 * selector is "outside the descriptor table limit" (#GP(selector)).
 *
 * Simplification (said in displays): the table base is a *physical*
 * address here; on hardware GDTR/LDTR/IDTR hold linear addresses and the
 * processor reads descriptors through paging as implicit supervisor
 * accesses (SDM §4.6).
 *
 * @module
 */

import type { Memory } from "../memory/memory.ts";
import {
  decodeDescriptor,
  type DescriptorFields,
  encodeDescriptor,
} from "./descriptor.ts";

/** Options for {@linkcode DescriptorTable}. */
export interface DescriptorTableOptions {
  /** Physical address of entry 0 (8-byte aligned). */
  base: number;
  /** Limit in bytes (the GDTR/IDTR limit: size − 1). Default 8 × 8 − 1. */
  limit?: number;
  /** Which table (used in messages and displays). Default "gdt". */
  kind?: "gdt" | "ldt" | "idt";
}

/**
 * A descriptor table in memory.
 *
 * @example
 * ```ts
 * import { DescriptorTable } from "./table.ts";
 * import { segmentDescriptor } from "./descriptor.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const gdt = new DescriptorTable(new PhysicalMemory({ size: 1 << 20 }), { base: 0x1000, limit: 4 * 8 - 1 });
 * gdt.write(1, ...segmentDescriptor({ kind: "code" }));
 * assert.deepEqual(gdt.read(1), [0x0000ffff, 0x00cf9a00]);
 * assert.equal(gdt.read(4), undefined); // beyond the limit
 * assert.throws(() => gdt.write(4, 0, 0), /index 4 .* limit 0x1f/);
 * ```
 */
export class DescriptorTable {
  /** Memory holding the table. */
  readonly memory: Memory;
  /** Physical address of entry 0. */
  readonly base: number;
  /** Limit in bytes (size − 1). */
  readonly limit: number;
  /** "gdt", "ldt" or "idt". */
  readonly kind: "gdt" | "ldt" | "idt";

  /** Create a view of the table at `options.base`; the memory is not cleared. */
  constructor(memory: Memory, options: DescriptorTableOptions) {
    const base = options.base;
    if (!Number.isInteger(base) || base < 0 || base % 8 !== 0) {
      throw new RangeError(
        `descriptor table base ${
          String(base)
        } is invalid: expected a non-negative multiple of 8`,
      );
    }
    const limit = options.limit ?? 63;
    if (!Number.isInteger(limit) || limit < 7 || limit > 0xffff) {
      throw new RangeError(
        `descriptor table limit ${
          String(limit)
        } is invalid: expected an integer in [7, 0xffff]`,
      );
    }
    if (base + limit >= memory.size) {
      throw new RangeError(
        `descriptor table [0x${base.toString(16)}, 0x${
          (base + limit).toString(16)
        }] lies beyond the end of ${memory.name}`,
      );
    }
    const kind = options.kind ?? "gdt";
    if (kind !== "gdt" && kind !== "ldt" && kind !== "idt") {
      throw new RangeError(
        `descriptor table kind "${
          String(kind)
        }" is invalid: expected "gdt", "ldt" or "idt"`,
      );
    }
    this.memory = memory;
    this.base = base;
    this.limit = limit;
    this.kind = kind;
  }

  /** Number of whole entries within the limit. */
  get entries(): number {
    return Math.floor((this.limit + 1) / 8);
  }

  /** Whether entry `index` lies within the limit (`index × 8 + 7 ≤ limit`). */
  contains(index: number): boolean {
    return Number.isInteger(index) && index >= 0 &&
      index * 8 + 7 <= this.limit;
  }

  /** The entry's dwords `[lo, hi]`, or `undefined` beyond the limit. */
  read(index: number): [number, number] | undefined {
    if (!this.contains(index)) return undefined;
    const a = this.base + index * 8;
    return [this.memory.read32(a), this.memory.read32(a + 4)];
  }

  /** The entry decoded, or `undefined` beyond the limit. */
  fields(index: number): DescriptorFields | undefined {
    const e = this.read(index);
    return e ? decodeDescriptor(e[0], e[1]) : undefined;
  }

  /** Write entry `index`; `RangeError` beyond the limit (nothing written). */
  write(index: number, lo: number, hi: number): void {
    if (!this.contains(index)) {
      throw new RangeError(
        `${this.kind.toUpperCase()} index ${
          String(index)
        } is invalid: entry lies beyond the table limit 0x${
          this.limit.toString(16)
        }`,
      );
    }
    // validate both dwords before writing either
    decodeDescriptor(lo, hi);
    const a = this.base + index * 8;
    this.memory.write32(a, lo >>> 0);
    this.memory.write32(a + 4, hi >>> 0);
  }

  /** Write entry `index` from fields. */
  writeFields(index: number, f: DescriptorFields): void {
    const [lo, hi] = encodeDescriptor(f);
    this.write(index, lo, hi);
  }

  /** Indices of the entries that are not all zero, in order. */
  usedIndices(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.entries; i++) {
      const a = this.base + i * 8;
      if (this.memory.read32(a) !== 0 || this.memory.read32(a + 4) !== 0) {
        out.push(i);
      }
    }
    return out;
  }
}
