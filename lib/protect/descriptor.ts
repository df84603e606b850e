/**
 * Segment selectors, segment descriptors and gate descriptors: the 8-byte
 * formats of Intel SDM Vol. 3 §3.4.2 (selector), §3.4.5 (segment
 * descriptor, Figure 3-8), §3.4.5.1 (type field, Table 3-1), §3.5
 * (system descriptor types, Table 3-2), §5.8.3 (call gate, Figure 5-8) and
 * §6.11 (IDT gate descriptors, Figure 6-2); AMD APM Vol. 2 §4.7–4.8.
 *
 * A descriptor is two little-endian dwords `[lo, hi]` (numbers, no
 * BigInt). {@linkcode encodeDescriptor} and {@linkcode decodeDescriptor}
 * are exact inverses over every 64-bit value; {@linkcode describeSegment}
 * derives what the type bits mean (code/data, conforming, expand-down,
 * readable/writable, accessed) and the effective limit (G bit).
 *
 * Not modelled: 16-byte system descriptors of IA-32e mode (64-bit TSS/LDT
 * descriptors and 64-bit gates); 16-bit gates are decoded but the
 * privilege model uses them like 32-bit ones.
 *
 * @module
 */

/** The fields of a segment (or system) descriptor, as stored. */
export interface DescriptorFields {
  /** Segment base, 32 bits (bytes 2–4 and 7). */
  readonly base: number;
  /** Raw 20-bit limit (scaled by 4 KiB when `g`). */
  readonly limit: number;
  /** Type field, 4 bits (meaning depends on `s`). */
  readonly type: number;
  /** S: 1 = code or data segment, 0 = system descriptor. */
  readonly s: boolean;
  /** Descriptor privilege level 0..3. */
  readonly dpl: number;
  /** P: segment present. */
  readonly present: boolean;
  /** AVL: available to software. */
  readonly avl: boolean;
  /** L: 64-bit code segment (IA-32e mode). */
  readonly l: boolean;
  /** D/B: default operation size (code) / big (stack, expand-down upper bound). */
  readonly db: boolean;
  /** G: granularity, limit in 4 KiB units. */
  readonly g: boolean;
}

/** A segment selector, decoded (SDM §3.4.2). */
export interface Selector {
  /** The 16-bit value. */
  readonly value: number;
  /** Descriptor index (bits 15:3). */
  readonly index: number;
  /** Table indicator: GDT (TI = 0) or LDT (TI = 1). */
  readonly table: "gdt" | "ldt";
  /** Requested privilege level (bits 1:0). */
  readonly rpl: number;
  /** A null selector: index 0 in the GDT (values 0..3). */
  readonly isNull: boolean;
}

/** What a segment descriptor's type bits mean (SDM Table 3-1, 3-2). */
export interface SegmentInfo {
  /** Code segment, data segment or system descriptor. */
  readonly kind: "code" | "data" | "system";
  /** Code: conforming (C). */
  readonly conforming: boolean;
  /** Code: readable (R); data: always readable. */
  readonly readable: boolean;
  /** Data: writable (W); code: never. */
  readonly writable: boolean;
  /** Data: expand-down (E). */
  readonly expandDown: boolean;
  /** Accessed (A), code and data only. */
  readonly accessed: boolean;
  /** Effective limit in bytes: `limit` or `limit × 4096 + 4095` with G. */
  readonly effectiveLimit: number;
  /** Short name, e.g. "code RX conforming", "data RW expand-down", "32-bit call gate". */
  readonly name: string;
}

/** A gate descriptor (call, interrupt, trap or task gate), decoded. */
export interface GateFields {
  /** Gate type: "call", "interrupt", "trap" or "task". */
  readonly gate: "call" | "interrupt" | "trap" | "task";
  /** 32-bit gate (false: 16-bit). */
  readonly size32: boolean;
  /** Target code-segment selector (the TSS selector for a task gate). */
  readonly selector: number;
  /** Entry point offset (0 for a task gate). */
  readonly offset: number;
  /** Call gate: dword parameters copied on a stack switch (0..31). */
  readonly paramCount: number;
  /** Gate DPL. */
  readonly dpl: number;
  /** P. */
  readonly present: boolean;
}

/** Options for {@linkcode segmentDescriptor}. */
export interface SegmentOptions {
  /** "code" or "data". */
  kind: "code" | "data";
  /** Base (default 0). */
  base?: number;
  /**
   * Effective limit in bytes (default 0xffffffff). With `g` unset it must
   * fit 20 bits; with `g` it must end in 0xfff.
   */
  limit?: number;
  /** Granularity: default true when the limit needs it, else false. */
  g?: boolean;
  /** DPL (default 0). */
  dpl?: number;
  /** Code: readable (default true). */
  readable?: boolean;
  /** Code: conforming (default false). */
  conforming?: boolean;
  /** Data: writable (default true). */
  writable?: boolean;
  /** Data: expand-down (default false). */
  expandDown?: boolean;
  /** Present (default true). */
  present?: boolean;
  /** Accessed (default false). */
  accessed?: boolean;
  /** D/B (default true: 32-bit). */
  db?: boolean;
  /** L: 64-bit code (default false). */
  l?: boolean;
}

/** Options for {@linkcode gateDescriptor}. */
export interface GateOptions {
  /** "call", "interrupt", "trap" or "task". */
  gate: "call" | "interrupt" | "trap" | "task";
  /** Target selector. */
  selector: number;
  /** Entry offset (default 0). */
  offset?: number;
  /** DPL (default 0). */
  dpl?: number;
  /** Call gate parameter count (default 0). */
  paramCount?: number;
  /** Present (default true). */
  present?: boolean;
  /** 32-bit gate (default true). */
  size32?: boolean;
}

/**
 * System descriptor type names (S = 0), SDM Table 3-2 (32-bit modes).
 *
 * @example
 * ```ts
 * import { SYSTEM_TYPES } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * assert.equal(SYSTEM_TYPES[0xe], "32-bit interrupt gate");
 * ```
 */
export const SYSTEM_TYPES: readonly string[] = Object.freeze([
  "reserved (0)",
  "16-bit TSS (available)",
  "LDT",
  "16-bit TSS (busy)",
  "16-bit call gate",
  "task gate",
  "16-bit interrupt gate",
  "16-bit trap gate",
  "reserved (8)",
  "32-bit TSS (available)",
  "reserved (10)",
  "32-bit TSS (busy)",
  "32-bit call gate",
  "reserved (13)",
  "32-bit interrupt gate",
  "32-bit trap gate",
]);

function u32(name: string, v: unknown): number {
  if (
    typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff
  ) {
    throw new RangeError(
      `${name} ${String(v)} is invalid: expected an integer in [0, 0xffffffff]`,
    );
  }
  return v;
}

function field(name: string, v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(
      `${name} ${String(v)} is invalid: expected an integer in [0, ${max}]`,
    );
  }
  return v;
}

function flag(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") {
    throw new TypeError(`${name} ${String(v)} is invalid: expected a boolean`);
  }
  return v;
}

/**
 * Decode a 16-bit selector.
 *
 * @example
 * ```ts
 * import { parseSelector } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const s = parseSelector(0xe019); // Xen's FLAT_RING1_CS
 * assert.deepEqual([s.index, s.table, s.rpl, s.isNull], [0x1c03, "gdt", 1, false]);
 * assert.equal(parseSelector(3).isNull, true);   // RPL is ignored
 * assert.equal(parseSelector(4).isNull, false);  // LDT entry 0 is not null
 * assert.throws(() => parseSelector(0x10000), /0x10000/);
 * ```
 */
export function parseSelector(value: number): Selector {
  const v = field(`selector 0x${Number(value).toString(16)}`, value, 0xffff);
  const table = (v & 4) ? "ldt" : "gdt";
  return {
    value: v,
    index: v >>> 3,
    table,
    rpl: v & 3,
    isNull: (v & 0xfffc) === 0,
  };
}

/**
 * Build a selector from an index.
 *
 * @example
 * ```ts
 * import { makeSelector } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * assert.equal(makeSelector(0x1c05, { rpl: 3 }), 0xe02b); // FLAT_RING3_CS
 * assert.equal(makeSelector(1, { ldt: true, rpl: 3 }), 0xf);
 * ```
 */
export function makeSelector(
  index: number,
  options: { ldt?: boolean; rpl?: number } = {},
): number {
  field("selector index", index, 0x1fff);
  const rpl = field("RPL", options.rpl ?? 0, 3);
  return (index << 3) | (options.ldt ? 4 : 0) | rpl;
}

/**
 * Encode descriptor fields as `[lo, hi]` dwords (SDM Figure 3-8). Throws
 * `RangeError` naming a field that does not fit.
 *
 * @example
 * ```ts
 * import { encodeDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * // Xen's ring-0 flat code segment 0x00cf9a000000ffff
 * const [lo, hi] = encodeDescriptor({ base: 0, limit: 0xfffff, type: 0xa, s: true, dpl: 0,
 *   present: true, avl: false, l: false, db: true, g: true });
 * assert.deepEqual([lo, hi], [0x0000ffff, 0x00cf9a00]);
 * assert.throws(() => encodeDescriptor({ base: 0, limit: 0x100000, type: 0, s: true, dpl: 0,
 *   present: true, avl: false, l: false, db: true, g: true }), /limit 1048576/);
 * ```
 */
export function encodeDescriptor(f: DescriptorFields): [number, number] {
  const base = u32("base", f.base);
  const limit = field("limit", f.limit, 0xfffff);
  const type = field("type", f.type, 15);
  const dpl = field("DPL", f.dpl, 3);
  const lo = ((limit & 0xffff) | ((base & 0xffff) << 16)) >>> 0;
  const hi = (((base >>> 16) & 0xff) |
    (type << 8) |
    (flag("S", f.s) ? 1 << 12 : 0) |
    (dpl << 13) |
    (flag("P", f.present) ? 1 << 15 : 0) |
    (limit & 0xf0000) |
    (flag("AVL", f.avl) ? 1 << 20 : 0) |
    (flag("L", f.l) ? 1 << 21 : 0) |
    (flag("D/B", f.db) ? 1 << 22 : 0) |
    (flag("G", f.g) ? 1 << 23 : 0) |
    (base & 0xff000000)) >>> 0;
  return [lo, hi];
}

/**
 * Decode `[lo, hi]` dwords into descriptor fields (every value decodes).
 *
 * @example
 * ```ts
 * import { decodeDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const d = decodeDescriptor(0x0000c3ff, 0x00cfb200); // Xen's FLAT_RING1_DS
 * assert.deepEqual([d.base, d.limit, d.dpl, d.type, d.g], [0, 0xfc3ff, 1, 2, true]);
 * ```
 */
export function decodeDescriptor(lo: number, hi: number): DescriptorFields {
  u32("descriptor low dword", lo);
  u32("descriptor high dword", hi);
  return {
    base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0,
    limit: (lo & 0xffff) | (hi & 0xf0000),
    type: (hi >>> 8) & 15,
    s: ((hi >>> 12) & 1) === 1,
    dpl: (hi >>> 13) & 3,
    present: ((hi >>> 15) & 1) === 1,
    avl: ((hi >>> 20) & 1) === 1,
    l: ((hi >>> 21) & 1) === 1,
    db: ((hi >>> 22) & 1) === 1,
    g: ((hi >>> 23) & 1) === 1,
  };
}

/**
 * The effective limit in bytes: the raw limit, or `limit × 4096 + 4095`
 * when G = 1 (SDM §3.4.5).
 *
 * @example
 * ```ts
 * import { effectiveLimit } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * assert.equal(effectiveLimit({ limit: 0xfc3ff, g: true }), 0xfc3f_ffff);
 * assert.equal(effectiveLimit({ limit: 0xfff, g: false }), 0xfff);
 * ```
 */
export function effectiveLimit(
  f: Pick<DescriptorFields, "limit" | "g">,
): number {
  return f.g ? f.limit * 4096 + 4095 : f.limit;
}

/**
 * What the type bits mean, and the effective limit.
 *
 * @example
 * ```ts
 * import { decodeDescriptor, describeSegment } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const code = describeSegment(decodeDescriptor(0x0000ffff, 0x00cf9a00));
 * assert.equal(code.kind, "code");
 * assert.equal(code.readable && !code.writable && !code.conforming, true);
 * assert.equal(code.effectiveLimit, 0xffffffff);
 * assert.equal(describeSegment(decodeDescriptor(0, 0x00008c00)).name, "32-bit call gate");
 * ```
 */
export function describeSegment(f: DescriptorFields): SegmentInfo {
  const t = f.type;
  const lim = effectiveLimit(f);
  if (!f.s) {
    return {
      kind: "system",
      conforming: false,
      readable: false,
      writable: false,
      expandDown: false,
      accessed: false,
      effectiveLimit: lim,
      name: SYSTEM_TYPES[t],
    };
  }
  const accessed = (t & 1) === 1;
  if (t & 8) {
    const conforming = (t & 4) !== 0;
    const readable = (t & 2) !== 0;
    return {
      kind: "code",
      conforming,
      readable,
      writable: false,
      expandDown: false,
      accessed,
      effectiveLimit: lim,
      name: `code ${readable ? "RX" : "X"}${conforming ? " conforming" : ""}${
        f.l ? " 64-bit" : ""
      }`,
    };
  }
  const expandDown = (t & 4) !== 0;
  const writable = (t & 2) !== 0;
  return {
    kind: "data",
    conforming: false,
    readable: true,
    writable,
    expandDown,
    accessed,
    effectiveLimit: lim,
    name: `data ${writable ? "RW" : "R"}${expandDown ? " expand-down" : ""}`,
  };
}

/**
 * Build a code or data segment descriptor from friendly options; the
 * effective `limit` is converted to the raw field (G chosen when needed).
 *
 * @example
 * ```ts
 * import { decodeDescriptor, describeSegment, segmentDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const [lo, hi] = segmentDescriptor({ kind: "data", dpl: 3, limit: 0xfc3f_ffff });
 * assert.deepEqual([lo, hi], [0x0000c3ff, 0x00cff200]); // Xen's FLAT_RING3_DS
 * const info = describeSegment(decodeDescriptor(lo, hi));
 * assert.equal(info.effectiveLimit, 0xfc3f_ffff);
 * assert.throws(() => segmentDescriptor({ kind: "data", limit: 0x10_0123 }), /0x100123/);
 * ```
 */
export function segmentDescriptor(options: SegmentOptions): [number, number] {
  const kind = options.kind;
  if (kind !== "code" && kind !== "data") {
    throw new RangeError(
      `segment kind "${String(kind)}" is invalid: expected "code" or "data"`,
    );
  }
  const limit = u32("limit", options.limit ?? 0xffffffff);
  const g = options.g ?? limit > 0xfffff;
  let raw: number;
  if (g) {
    if ((limit & 0xfff) !== 0xfff) {
      throw new RangeError(
        `limit 0x${
          limit.toString(16)
        } is invalid with G = 1: expected a value ending in 0xfff (4 KiB units)`,
      );
    }
    raw = Math.floor(limit / 4096);
  } else {
    if (limit > 0xfffff) {
      throw new RangeError(
        `limit 0x${
          limit.toString(16)
        } is invalid with G = 0: expected at most 0xfffff`,
      );
    }
    raw = limit;
  }
  let type = options.accessed ? 1 : 0;
  if (kind === "code") {
    type |= 8;
    if (options.readable ?? true) type |= 2;
    if (options.conforming) type |= 4;
  } else {
    if (options.writable ?? true) type |= 2;
    if (options.expandDown) type |= 4;
  }
  return encodeDescriptor({
    base: options.base ?? 0,
    limit: raw,
    type,
    s: true,
    dpl: options.dpl ?? 0,
    present: options.present ?? true,
    avl: false,
    l: options.l ?? false,
    db: options.db ?? true,
    g,
  });
}

const GATE_TYPE: Record<string, number> = {
  call: 4,
  interrupt: 6,
  trap: 7,
  task: 5,
};

/**
 * Encode a gate descriptor (SDM Figures 5-8 and 6-2).
 *
 * @example
 * ```ts
 * import { decodeGate, gateDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const [lo, hi] = gateDescriptor({ gate: "trap", selector: 0xe019, offset: 0xc010_2000, dpl: 3 });
 * assert.equal(hi & 0xffff, 0xef00); // P, DPL 3, 32-bit trap gate
 * assert.deepEqual(decodeGate(lo, hi)?.offset, 0xc010_2000);
 * ```
 */
export function gateDescriptor(options: GateOptions): [number, number] {
  const base = GATE_TYPE[options.gate];
  if (base === undefined) {
    throw new RangeError(
      `gate "${
        String(options.gate)
      }" is invalid: expected "call", "interrupt", "trap" or "task"`,
    );
  }
  const size32 = options.size32 ?? true;
  const type = options.gate === "task" ? 5 : base | (size32 ? 8 : 0);
  const sel = field("gate selector", options.selector, 0xffff);
  const offset = options.gate === "task"
    ? 0
    : u32("gate offset", options.offset ?? 0);
  const params = field(
    "call gate parameter count",
    options.paramCount ?? 0,
    31,
  );
  const dpl = field("gate DPL", options.dpl ?? 0, 3);
  const lo = ((offset & 0xffff) | (sel << 16)) >>> 0;
  const hi = ((offset & 0xffff0000) |
    ((options.present ?? true) ? 1 << 15 : 0) |
    (dpl << 13) |
    (type << 8) |
    (options.gate === "call" ? params : 0)) >>> 0;
  return [lo, hi];
}

/**
 * Decode a gate descriptor, or `undefined` when `[lo, hi]` is not a gate
 * (S = 1, or a system type that is not a call/interrupt/trap/task gate).
 *
 * @example
 * ```ts
 * import { decodeGate } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const g = decodeGate(0x0008_1000, 0xc000_8e00);
 * assert.deepEqual(g, { gate: "interrupt", size32: true, selector: 8, offset: 0xc000_1000,
 *   paramCount: 0, dpl: 0, present: true });
 * assert.equal(decodeGate(0x0000ffff, 0x00cf9a00), undefined); // a code segment
 * ```
 */
export function decodeGate(lo: number, hi: number): GateFields | undefined {
  u32("descriptor low dword", lo);
  u32("descriptor high dword", hi);
  if ((hi >>> 12) & 1) return undefined;
  const t = (hi >>> 8) & 15;
  const kind = t === 5
    ? "task"
    : (t & 7) === 4
    ? "call"
    : (t & 7) === 6
    ? "interrupt"
    : (t & 7) === 7
    ? "trap"
    : undefined;
  if (kind === undefined) return undefined;
  return {
    gate: kind,
    size32: kind === "task" ? true : (t & 8) !== 0,
    selector: lo >>> 16,
    offset: kind === "task" ? 0 : ((hi & 0xffff0000) | (lo & 0xffff)) >>> 0,
    paramCount: kind === "call" ? hi & 31 : 0,
    dpl: (hi >>> 13) & 3,
    present: ((hi >>> 15) & 1) === 1,
  };
}

/**
 * A descriptor as 16 hex digits, high dword first (the way `.quad`
 * initialisers in kernels write them).
 *
 * @example
 * ```ts
 * import { hexDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hexDescriptor(0x0000ffff, 0x00cf9a00), "0x00cf9a000000ffff");
 * ```
 */
export function hexDescriptor(lo: number, hi: number): string {
  return "0x" + (hi >>> 0).toString(16).padStart(8, "0") +
    (lo >>> 0).toString(16).padStart(8, "0");
}
