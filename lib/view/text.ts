/**
 * Plain-text views (the `text/plain` part of every MIME bundle and the REPL
 * display). Pure functions of records; no ANSI escape codes.
 *
 * @module
 */

import { hex64, hexPhys } from "../address/address.ts";
import type { Walk } from "../paging/record.ts";

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
      : s.leaf
      ? `leaf → ${hexPhys(s.flags.address)}`
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
