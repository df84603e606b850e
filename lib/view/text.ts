/**
 * Plain-text views (the `text/plain` part of every MIME bundle and the REPL
 * display). Pure functions of records; no ANSI escape codes.
 *
 * @module
 */

import { hex64, hexPhys } from "../address/address.ts";
import { sizeName, type Walk } from "../paging/record.ts";

/**
 * A walk as a few lines of text: the address split into fields, one line per
 * table read, then the outcome.
 *
 * @example
 * ```ts
 * import { walkToText } from "./text.ts";
 * import { walk } from "../paging/record.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 20 });
 * const w = walk({ memory, mode: pagingMode(X86_32), root: 0x1000 }, 0x1234);
 * assert.match(walkToText(w), /PDE\[0\] .* not present/);
 * ```
 */
export function walkToText(w: Walk): string {
  const lines: string[] = [];
  const fields = w.fields.map((f) => `${f.name}=${f.value}`).join(" ");
  const acc = `${w.access.user ? "user" : "supervisor"} ${w.access.kind}`;
  lines.push(`walk ${w.va.toHex()} (${acc}, ${w.format.name}): ${fields}`);
  if (w.resumed) {
    lines.push(
      `  resumed at level ${w.resumed.level} (${w.resumed.source})`,
    );
  }
  for (const s of w.steps) {
    const e = hex64(Number(s.entry >> 32n), Number(s.entry & 0xffffffffn));
    const what = !s.flags.present
      ? "not present"
      : s.leaf || s.level === 1 || s.flags.pageSize === true
      ? `page → ${hexPhys(s.flags.address)}`
      : `table → ${hexPhys(s.flags.address)}`;
    const ad = [s.accessedSet ? "A set" : "", s.dirtySet ? "D set" : ""]
      .filter((x) => x).join(", ");
    lines.push(
      `  ${s.entryName}[${s.index}] @${
        hexPhys(s.entryAddress)
      } = ${e}  ${what}${ad ? ` (${ad})` : ""}`,
    );
  }
  lines.push(`  ${w.toString()}`);
  return lines.join("\n");
}

/** What {@linkcode pageTableToText} needs of a page table. */
export interface PageTableLike {
  /** Paging mode (for the format name). */
  readonly mode: { readonly format: { readonly name: string } };
  /** Root table address. */
  readonly root: number;
  /** Present leaves. */
  mappings(): Iterable<
    {
      readonly va: { toHex(): string };
      readonly pa: number;
      readonly size: number;
      readonly rights: {
        readonly writable: boolean;
        readonly user: boolean;
        readonly executable: boolean;
      };
    }
  >;
}

/**
 * A page table as text: one line per mapping, folded after `maxLines`.
 *
 * @example
 * ```ts
 * import { pageTableToText } from "./text.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000, { user: true });
 * assert.match(pageTableToText(pt), /0x1000 → 0x9000 4 KiB rwx u/);
 * ```
 */
export function pageTableToText(pt: PageTableLike, maxLines = 40): string {
  const lines = [
    `page table (${pt.mode.format.name}) root ${hexPhys(pt.root)}`,
  ];
  let n = 0;
  for (const m of pt.mappings()) {
    n++;
    if (n <= maxLines) {
      const r = m.rights;
      lines.push(
        `  ${m.va.toHex()} → ${hexPhys(m.pa)} ${sizeName(m.size)} r${
          r.writable ? "w" : "-"
        }${r.executable ? "x" : "-"} ${r.user ? "u" : "s"}`,
      );
    }
  }
  if (n > maxLines) lines.push(`  … ${n - maxLines} more mappings folded`);
  if (n === 0) lines.push("  (no mappings)");
  return lines.join("\n");
}
