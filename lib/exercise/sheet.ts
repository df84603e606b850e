/**
 * The problem sheet as plain data, and its plain-text rendering. The HTML
 * rendering of the same data is in `../view/exercise_html.ts`; both are
 * pure functions of the sheet, so the same seed gives byte-identical text.
 *
 * @module
 */

import type { LinearAddress } from "../address/address.ts";
import type { PagingFormat } from "../paging/format.ts";
import type { PhysicalMemory } from "../memory/memory.ts";

/** A named parameter line ("page size: 32 bytes"). */
export interface SheetParameter {
  /** Name. */
  readonly name: string;
  /** Value, as shown. */
  readonly value: string;
}

/** One non-zero entry shown in a dumped page. */
export interface DumpEntry {
  /** Index in the page, in entries. */
  readonly index: number;
  /** Byte offset in the page. */
  readonly offset: number;
  /** The entry in hex, zero-padded to the entry width. */
  readonly hex: string;
}

/** One page of the memory dump. */
export interface DumpPage {
  /** Physical address of the page. */
  readonly address: number;
  /** Label, e.g. "page  12" or "page 0x1a3000". */
  readonly label: string;
  /** Every byte of the page (small pages, OSTEP style). */
  readonly bytes?: readonly number[];
  /** The non-zero entries (large pages). */
  readonly entries?: readonly DumpEntry[];
  /** Entries per page (for the "N zero entries not shown" note). */
  readonly entryCount: number;
  /** Entry width in bytes. */
  readonly entryBytes: number;
  /** Non-zero entries left out to bound the output. */
  readonly folded: number;
}

/** A question as shown. */
export interface SheetQuestion {
  /** 1-based number. */
  readonly number: number;
  /** The question line. */
  readonly text: string;
  /** Per-question CPU state (fault exercises), shown as a table. */
  readonly cpu?: readonly SheetParameter[];
}

/** A complete problem sheet. */
export interface ExerciseSheet {
  /** Title line. */
  readonly title: string;
  /** Instructions. */
  readonly intro: readonly string[];
  /** Parameters (always including the seed). */
  readonly parameters: readonly SheetParameter[];
  /** Lines describing the entry format. */
  readonly entryFormat: readonly string[];
  /** Notes on how the dump is shown. */
  readonly dumpNotes: readonly string[];
  /** The pages shown. */
  readonly dump: readonly DumpPage[];
  /** The question header. */
  readonly ask: string;
  /** The questions. */
  readonly questions: readonly SheetQuestion[];
  /** How to get the same sheet again, and the answers. */
  readonly footer: readonly string[];
}

/**
 * Most non-zero entries shown per page before folding (keeps sheets
 * bounded; exercise tables hold a handful).
 *
 * @example
 * ```ts
 * import { MAX_ENTRIES_PER_PAGE } from "./sheet.ts";
 * import assert from "node:assert/strict";
 * assert.equal(MAX_ENTRIES_PER_PAGE, 64);
 * ```
 */
export const MAX_ENTRIES_PER_PAGE = 64;

/**
 * Format a linear address for a sheet: zero-padded to the address width,
 * with `_` between 32-bit halves of 64-bit addresses.
 *
 * @example
 * ```ts
 * import { formatVa } from "./sheet.ts";
 * import { LinearAddress } from "../address/address.ts";
 * import { OSTEP_15BIT, X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatVa(OSTEP_15BIT, LinearAddress.from(0x611c)), "0x611c");
 * assert.equal(formatVa(X86_64_4LEVEL, LinearAddress.from("0x7f1234567000")), "0x00007f12_34567000");
 * ```
 */
export function formatVa(format: PagingFormat, va: LinearAddress): string {
  const digits = format.canonical === "sign"
    ? 16
    : Math.max(1, Math.ceil(format.vaBits / 4));
  const h = va.toBigInt().toString(16).padStart(digits, "0");
  if (h.length <= 8) return `0x${h}`;
  return `0x${h.slice(0, h.length - 8)}_${h.slice(h.length - 8)}`;
}

/**
 * Read a page of `memory` as a dump page: every byte for pages of at most
 * 64 bytes, else the non-zero entries (at most
 * {@linkcode MAX_ENTRIES_PER_PAGE}, the rest folded and counted).
 *
 * @example
 * ```ts
 * import { dumpPage } from "./sheet.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import { X86_32, OSTEP_15BIT } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const m = new PhysicalMemory({ size: 1 << 16 });
 * m.write32(0x1008, 0x2067);
 * const p = dumpPage(m, X86_32, 0x1000, "page 0x1000");
 * assert.deepEqual(p.entries, [{ index: 2, offset: 8, hex: "0x00002067" }]);
 * assert.equal(dumpPage(m, OSTEP_15BIT, 0x20, "page 1").bytes?.length, 32);
 * ```
 */
export function dumpPage(
  memory: PhysicalMemory,
  format: PagingFormat,
  address: number,
  label: string,
): DumpPage {
  const pageBytes = 2 ** format.pageShift;
  const eb = format.entryBytes;
  const entryCount = pageBytes / eb;
  if (pageBytes <= 64) {
    return {
      address,
      label,
      bytes: [...memory.readBytes(address, pageBytes)],
      entryCount,
      entryBytes: eb,
      folded: 0,
    };
  }
  const raw = memory.readBytes(address, pageBytes);
  const entries: DumpEntry[] = [];
  let folded = 0;
  for (let i = 0; i < entryCount; i++) {
    let v = 0n;
    let nz = false;
    for (let b = eb - 1; b >= 0; b--) {
      const byte = raw[i * eb + b];
      if (byte !== 0) nz = true;
      v = (v << 8n) | BigInt(byte);
    }
    if (!nz) continue;
    if (entries.length >= MAX_ENTRIES_PER_PAGE) {
      folded++;
      continue;
    }
    entries.push({
      index: i,
      offset: i * eb,
      hex: `0x${v.toString(16).padStart(eb * 2, "0")}`,
    });
  }
  return { address, label, entries, entryCount, entryBytes: eb, folded };
}

/**
 * One dumped page as text lines.
 *
 * @example
 * ```ts
 * import { dumpPageToText } from "./sheet.ts";
 * import assert from "node:assert/strict";
 * const lines = dumpPageToText({ address: 0x1000, label: "page 0x1000", entries: [{ index: 2, offset: 8, hex: "0x00002067" }], entryCount: 1024, entryBytes: 4, folded: 0 });
 * assert.equal(lines[1], "  [   2] +0x008  0x00002067");
 * ```
 */
export function dumpPageToText(p: DumpPage): string[] {
  if (p.bytes !== undefined) {
    return [
      `${p.label}: ${
        p.bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ")
      }`,
    ];
  }
  const entries = p.entries ?? [];
  const zero = p.entryCount - entries.length - p.folded;
  const idxW = String(p.entryCount - 1).length;
  const offW = (p.entryCount * p.entryBytes - 1).toString(16).length;
  const lines = [
    `${p.label} (${p.entryCount} × ${p.entryBytes}-byte entries; ${zero} zero entries not shown)`,
  ];
  for (const e of entries) {
    lines.push(
      `  [${String(e.index).padStart(idxW, " ")}] +0x${
        e.offset.toString(16).padStart(offW, "0")
      }  ${e.hex}`,
    );
  }
  if (entries.length === 0) lines.push("  (all entries zero)");
  if (p.folded > 0) {
    lines.push(`  … ${p.folded} more non-zero entries folded`);
  }
  return lines;
}

/**
 * The whole sheet as plain text (no ANSI codes).
 *
 * @example
 * ```ts
 * import { sheetToText } from "./sheet.ts";
 * import assert from "node:assert/strict";
 * const text = sheetToText({
 *   title: "T", intro: ["Translate."], parameters: [{ name: "seed", value: "0" }],
 *   entryFormat: [], dumpNotes: [], dump: [], ask: "Q", footer: [],
 *   questions: [{ number: 1, text: "VA 0x611c" }],
 * });
 * assert.match(text, /seed +0/);
 * assert.match(text, / 1\. VA 0x611c/);
 * ```
 */
export function sheetToText(sheet: ExerciseSheet): string {
  const out: string[] = [sheet.title, ""];
  for (const l of sheet.intro) out.push(l);
  if (sheet.intro.length > 0) out.push("");
  out.push("Parameters");
  const w = Math.max(...sheet.parameters.map((p) => p.name.length), 4);
  for (const p of sheet.parameters) {
    out.push(`  ${p.name.padEnd(w)}  ${p.value}`);
  }
  if (sheet.entryFormat.length > 0) {
    out.push("", "Entry format");
    for (const l of sheet.entryFormat) out.push(`  ${l}`);
  }
  if (sheet.dump.length > 0) {
    out.push("", "Memory");
    for (const l of sheet.dumpNotes) out.push(`  (${l})`);
    for (const p of sheet.dump) out.push(...dumpPageToText(p));
  }
  out.push("", sheet.ask);
  const nw = String(sheet.questions.length).length;
  for (const q of sheet.questions) {
    out.push(`  ${String(q.number).padStart(nw)}. ${q.text}`);
    if (q.cpu !== undefined && q.cpu.length > 0) {
      out.push(
        `  ${" ".repeat(nw)}  ${
          q.cpu.map((c) => `${c.name}=${c.value}`).join("  ")
        }`,
      );
    }
  }
  if (sheet.footer.length > 0) {
    out.push("");
    for (const l of sheet.footer) out.push(l);
  }
  return out.join("\n");
}
