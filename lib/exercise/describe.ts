/**
 * Words for sheets: the address layout, the physical memory, control
 * registers, and the "reproduce with" line.
 *
 * @module
 */

import {
  OSTEP_15BIT,
  PAE,
  type PagingFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../paging/format.ts";
import type { PagingMode } from "../paging/mode.ts";
import { sizeName } from "../paging/record.ts";
import { entryNameOf } from "./answer.ts";

/**
 * How a linear address splits into index fields and offset.
 *
 * @example
 * ```ts
 * import { addressLayout } from "./describe.ts";
 * import { OSTEP_15BIT, X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(addressLayout(OSTEP_15BIT), "15 bits: [14:10] PDE index, [9:5] PTE index, [4:0] offset");
 * assert.match(addressLayout(X86_64_4LEVEL), /^48 bits \(bits 63:48 copy bit 47\): \[47:39\] PML4E index/);
 * ```
 */
export function addressLayout(format: PagingFormat): string {
  const parts = format.levels.map((l) =>
    `[${l.shift + l.bits - 1}:${l.shift}] ${entryNameOf(format, l.level)} index`
  );
  parts.push(`[${format.pageShift - 1}:0] offset`);
  const sign = format.canonical === "sign"
    ? ` (bits 63:${format.vaBits} copy bit ${format.vaBits - 1})`
    : "";
  return `${format.vaBits} bits${sign}: ${parts.join(", ")}`;
}

/**
 * Control-register settings of a mode as `name=value` pairs.
 *
 * @example
 * ```ts
 * import { controlBits } from "./describe.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(controlBits(pagingMode(X86_32)).map((p) => `${p.name}=${p.value}`).join(" "),
 *   "CR0.WP=1 CR4.PSE=1 CR4.SMEP=0 CR4.SMAP=0");
 * ```
 */
export function controlBits(
  mode: PagingMode,
): { name: string; value: string }[] {
  const f = mode.format;
  if (f.kind === "radix") return [];
  const b = (x: boolean) => (x ? "1" : "0");
  const out = [{ name: "CR0.WP", value: b(mode.wp) }];
  if (f.bits.noExec >= 0) out.push({ name: "EFER.NXE", value: b(mode.nxe) });
  if (f.kind === "x86-32") out.push({ name: "CR4.PSE", value: b(mode.pse) });
  out.push({ name: "CR4.SMEP", value: b(mode.smep) });
  out.push({ name: "CR4.SMAP", value: b(mode.smap) });
  if (f.bits.pkey >= 0) out.push({ name: "CR4.PKE", value: b(mode.pke) });
  return out;
}

/**
 * Physical memory as words.
 *
 * @example
 * ```ts
 * import { memoryWords } from "./describe.ts";
 * import { OSTEP_15BIT, X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(memoryWords(OSTEP_15BIT, 4096), "4096 bytes = 128 pages of 32 bytes (12-bit physical addresses)");
 * assert.equal(memoryWords(X86_64_4LEVEL, 2 ** 40), "1 TiB (40-bit physical addresses)");
 * ```
 */
export function memoryWords(format: PagingFormat, size: number): string {
  const bits = Math.log2(size);
  if (format.kind === "radix") {
    const page = 2 ** format.pageShift;
    return `${size} bytes = ${
      size / page
    } pages of ${page} bytes (${bits}-bit physical addresses)`;
  }
  return `${sizeName(size)} (${bits}-bit physical addresses)`;
}

const BUILTINS: Record<string, PagingFormat> = {
  OSTEP_15BIT,
  X86_32,
  PAE,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
};

/**
 * A call that rebuilds the same exercise, for the sheet's footer.
 *
 * @example
 * ```ts
 * import { reproduceCall } from "./describe.ts";
 * import { PAE } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(reproduceCall("translationExercise", { format: PAE, seed: 3, pageSizes: [4096] }),
 *   "translationExercise({ format: PAE, seed: 3, pageSizes: [4096] })");
 * ```
 */
export function reproduceCall(
  fn: string,
  options: Record<string, unknown>,
): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    if (k === "format") {
      const name = Object.entries(BUILTINS).find(([, f]) => f === v)?.[0];
      parts.push(
        `format: ${
          name ?? `/* ${(v as PagingFormat).name ?? "custom format"} */`
        }`,
      );
    } else {
      parts.push(`${k}: ${literal(v)}`);
    }
  }
  return `${fn}({ ${parts.join(", ")} })`;
}

function literal(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(literal).join(", ")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "object" && v !== null) {
    return `{ ${
      Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) =>
        `${k}: ${literal(x)}`
      ).join(", ")
    } }`;
  }
  return String(v);
}
