/**
 * Views of TLBs, paging-structure caches and CPUs: pure functions from
 * plain snapshots to text (for `text/plain` and the REPL) and HTML (for
 * notebooks). Every interpolated string is escaped; no ANSI codes; output
 * is bounded — big caches are folded to `maxRows` rows with a line saying
 * how many entries were left out.
 *
 * @module
 */

import { hex64, hexPhys } from "../address/address.ts";
import type { TlbCounters, TlbEntry, TlbSnapshot } from "../tlb/tlb.ts";
import type { PscEntry, PscSnapshot } from "../tlb/psc.ts";
import type { CpuSnapshot } from "../cpu/cpu.ts";
import { escapeXml } from "./escape.ts";

/** Options for the views. */
export interface CacheViewOptions {
  /** Most entry rows shown per table (default 32); the rest are folded. */
  maxRows?: number;
}

function maxRowsOf(o: CacheViewOptions): number {
  const m = o.maxRows ?? 32;
  if (!Number.isInteger(m) || m < 0) {
    throw new RangeError(
      `maxRows ${String(m)} is invalid: expected a non-negative integer`,
    );
  }
  return m;
}

function sizeText(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0, v = bytes;
  while (v >= 1024 && v % 1024 === 0 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v} ${units[u]}`;
}

function rightsText(
  r: { writable: boolean; user: boolean; executable: boolean },
): string {
  return `${r.writable ? "W" : "-"}${r.user ? "U" : "-"}${
    r.executable ? "X" : "-"
  }`;
}

/**
 * One TLB entry as a line of text.
 *
 * @example
 * ```ts
 * import { tlbEntryToText } from "./tlb_html.ts";
 * import { LinearAddress } from "../address/address.ts";
 * import assert from "node:assert/strict";
 * const line = tlbEntryToText({
 *   slot: 0, sizeClass: "unified", set: 0, way: 0, va: new LinearAddress(0, 0x400000),
 *   pageSize: 4096, level: 1, pa: 0x9000, pcid: 0, global: true,
 *   rights: { writable: true, user: false, executable: true }, pkey: 0, dirty: false, stamp: 1,
 * });
 * assert.equal(line, "0x400000 4 KiB → 0x9000 PCID 0 G W-X");
 * ```
 */
export function tlbEntryToText(e: TlbEntry): string {
  return `${e.va.toHex()} ${sizeText(e.pageSize)} → ${
    hexPhys(e.pa)
  } PCID ${e.pcid}${e.global ? " G" : ""} ${rightsText(e.rights)}${
    e.dirty ? " D" : ""
  }${e.pkey ? ` key ${e.pkey}` : ""}`;
}

/**
 * One paging-structure-cache entry as a line of text.
 *
 * @example
 * ```ts
 * import { pscEntryToText } from "./tlb_html.ts";
 * import { LinearAddress } from "../address/address.ts";
 * import assert from "node:assert/strict";
 * const line = pscEntryToText({
 *   level: 2, cache: "PDE cache", slot: 0, va: new LinearAddress(0, 0x400000), shift: 21,
 *   pcid: 0, table: 0x3000, rights: { writable: true, user: true, executable: true }, stamp: 1,
 * });
 * assert.equal(line, "PDE cache: 0x400000 (bits ≥ 21) → table 0x3000 PCID 0 WUX");
 * ```
 */
export function pscEntryToText(e: PscEntry): string {
  return `${e.cache}: ${e.va.toHex()} (bits ≥ ${e.shift}) → table ${
    hexPhys(e.table)
  } PCID ${e.pcid} ${rightsText(e.rights)}`;
}

function hitRate(c: TlbCounters): string {
  const n = c.hits + c.misses;
  return n === 0 ? "no lookups" : `${(100 * c.hits / n).toFixed(1)}% hits`;
}

function countersText(c: TlbCounters): string {
  const inv = c.invalidations;
  return `${c.hits} hits, ${c.misses} misses (${
    hitRate(c)
  }), ${c.fills} fills, ${c.evictions} evictions; invalidations: ${inv.address} by address, ${inv.pcid} by PCID, ${inv.all} all, ${inv.fault} for faults (${c.dropped} entries dropped)`;
}

function geometryText(s: TlbSnapshot): string {
  return s.arrays.map((a) =>
    `${a.sizeClass} ${a.entries} entries ${
      a.ways === a.entries
        ? "fully associative"
        : `${a.ways}-way × ${a.sets} sets`
    }`
  ).join("; ");
}

/**
 * A TLB as text: geometry, counters, then one line per valid entry
 * (folded after `maxRows`).
 *
 * @example
 * ```ts
 * import { tlbToText } from "./tlb_html.ts";
 * import { Tlb } from "../tlb/tlb.ts";
 * import assert from "node:assert/strict";
 * const text = tlbToText(new Tlb({ entries: 8, ways: 2 }).snapshot());
 * assert.match(text, /unified 8 entries 2-way × 4 sets/);
 * assert.match(text, /0\/8 valid/);
 * ```
 */
export function tlbToText(
  s: TlbSnapshot,
  options: CacheViewOptions = {},
): string {
  const max = maxRowsOf(options);
  const lines = [
    `${s.name}: ${
      geometryText(s)
    }; ${s.replacement} replacement; ${s.entries.length}/${s.capacity} valid`,
    `  ${countersText(s.counters)}`,
  ];
  for (const e of s.entries.slice(0, max)) {
    lines.push(
      `  [${e.sizeClass} set ${e.set} way ${e.way}] ${tlbEntryToText(e)}`,
    );
  }
  if (s.entries.length > max) {
    lines.push(`  … ${s.entries.length - max} more valid entries not shown`);
  }
  return lines.join("\n");
}

// Styles sit on the table only (cells inherit), keeping big tables small.
const TABLE =
  'border="1" cellpadding="2" style="border-collapse:collapse;font-family:monospace;font-size:12px;text-align:left"';

function row(cells: readonly unknown[], th = false): string {
  const tag = th ? "th" : "td";
  return `<tr>${
    cells.map((c) => `<${tag}>${escapeXml(c)}</${tag}>`).join("")
  }</tr>`;
}

function folded(n: number, what: string): string {
  return n > 0
    ? `<p style="font-family:monospace;font-size:12px;color:#666">… ${n} more ${
      escapeXml(what)
    } not shown (folded)</p>`
    : "";
}

/**
 * A TLB as an HTML table (bounded: at most `maxRows` entry rows).
 *
 * @example
 * ```ts
 * import { tlbToHtml } from "./tlb_html.ts";
 * import { Tlb } from "../tlb/tlb.ts";
 * import assert from "node:assert/strict";
 * const html = tlbToHtml(new Tlb({ name: "<dtlb>" }).snapshot());
 * assert.match(html, /&lt;dtlb&gt;/);
 * assert.doesNotMatch(html, /<dtlb>/);
 * ```
 */
export function tlbToHtml(
  s: TlbSnapshot,
  options: CacheViewOptions = {},
): string {
  const max = maxRowsOf(options);
  const head = `<div><b>${escapeXml(s.name)}</b> — ${
    escapeXml(geometryText(s))
  }; ${
    escapeXml(s.replacement)
  } replacement; ${s.entries.length}/${s.capacity} valid<br><span style="font-size:12px">${
    escapeXml(countersText(s.counters))
  }</span></div>`;
  const rows = s.entries.slice(0, max).map((e) =>
    row([
      e.sizeClass,
      e.set,
      e.way,
      e.va.toHex(),
      sizeText(e.pageSize),
      hexPhys(e.pa),
      e.pcid,
      e.global ? "G" : "",
      rightsText(e.rights),
      e.dirty ? "D" : "",
      e.pkey,
    ])
  );
  const table = s.entries.length === 0
    ? "<p><i>empty</i></p>"
    : `<table ${TABLE}>${
      row(
        [
          "array",
          "set",
          "way",
          "page (VPN)",
          "size",
          "frame",
          "PCID",
          "G",
          "rights",
          "D",
          "key",
        ],
        true,
      )
    }${rows.join("")}</table>`;
  return head + table + folded(s.entries.length - max, "valid entries");
}

/**
 * Paging-structure caches as text.
 *
 * @example
 * ```ts
 * import { pscToText } from "./tlb_html.ts";
 * import { PagingStructureCache } from "../tlb/psc.ts";
 * import assert from "node:assert/strict";
 * assert.match(pscToText(new PagingStructureCache({ pml5e: 0 }).snapshot()), /PDE cache 32, PDPTE cache 4, PML4E cache 2/);
 * ```
 */
export function pscToText(
  s: PscSnapshot,
  options: CacheViewOptions = {},
): string {
  const max = maxRowsOf(options);
  const c = s.counters;
  const sizes = [];
  const names = [
    "",
    "",
    "PDE cache",
    "PDPTE cache",
    "PML4E cache",
    "PML5E cache",
  ];
  for (let l = 2; l < s.sizes.length; l++) {
    if (s.sizes[l] > 0) sizes.push(`${names[l]} ${s.sizes[l]}`);
  }
  const hits = c.hits.map((h, l) => h > 0 ? `${names[l]} ${h}` : "").filter((
    x,
  ) => x).join(", ");
  const lines = [
    `${s.name}: ${
      sizes.join(", ") || "all disabled"
    }; ${s.entries.length} valid`,
    `  hits: ${
      hits || "none"
    }; ${c.misses} misses, ${c.fills} fills, ${c.evictions} evictions, ${c.dropped} dropped`,
  ];
  for (const e of s.entries.slice(0, max)) {
    lines.push(`  ${pscEntryToText(e)}`);
  }
  if (s.entries.length > max) {
    lines.push(`  … ${s.entries.length - max} more valid entries not shown`);
  }
  return lines.join("\n");
}

/**
 * Paging-structure caches as HTML.
 *
 * @example
 * ```ts
 * import { pscToHtml } from "./tlb_html.ts";
 * import { PagingStructureCache } from "../tlb/psc.ts";
 * import assert from "node:assert/strict";
 * assert.match(pscToHtml(new PagingStructureCache().snapshot()), /<pre/);
 * ```
 */
export function pscToHtml(
  s: PscSnapshot,
  options: CacheViewOptions = {},
): string {
  return `<pre style="font-size:12px">${
    escapeXml(pscToText(s, options))
  }</pre>`;
}

function cpuLines(s: CpuSnapshot): string[] {
  const r = s.registers;
  const lines = [
    `CPU: ${s.paging ? s.modeName : "paging disabled (linear = physical)"}`,
    `  CR0=${hexPhys(r.cr0)} CR3=${r.cr3} CR4=${hexPhys(r.cr4)} EFER=${
      hexPhys(r.efer)
    }  [${s.flags.join(" ")}]`,
    `  root=${hexPhys(s.root)} PCID=${s.pcid} CPL=${s.cpl} AC=${
      s.ac ? 1 : 0
    } PKRU=${hex64(0, s.pkru)}`,
  ];
  if (s.pdptes) {
    lines.push(
      `  PDPTE registers: ${s.pdptes.join(" ")}`,
    );
  }
  const c = s.counters;
  lines.push(
    `  ${c.accesses} accesses: ${c.tlbHits} TLB hits, ${c.tlbMisses} misses, ${c.walks} walks (${c.tableReads} table reads, ${c.pscResumes} resumed from PSC, ${c.pdpteResumes} from PDPTE registers), ${c.dirtyRewalks} dirty re-walks, ${c.pageFaults} #PF, ${c.generalProtection} #GP`,
  );
  return lines;
}

/**
 * A CPU (registers, mode, counters, TLB and PSC) as text.
 *
 * @example
 * ```ts
 * import { cpuToText } from "./tlb_html.ts";
 * import { Cpu } from "../cpu/cpu.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const cpu = new Cpu(new PhysicalMemory({ size: 2 ** 24 }), { cr3: 0x1000 });
 * assert.match(cpuToText(cpu.snapshot()), /x86-64 4-level/);
 * ```
 */
export function cpuToText(
  s: CpuSnapshot,
  options: CacheViewOptions = {},
): string {
  return [
    ...cpuLines(s),
    tlbToText(s.tlb, options),
    pscToText(s.psc, options),
  ].join("\n");
}

/**
 * A CPU as HTML.
 *
 * @example
 * ```ts
 * import { cpuToHtml } from "./tlb_html.ts";
 * import { Cpu } from "../cpu/cpu.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const cpu = new Cpu(new PhysicalMemory({ size: 2 ** 24 }), { cr3: 0x1000 });
 * assert.match(cpuToHtml(cpu.snapshot()), /<table/);
 * ```
 */
export function cpuToHtml(
  s: CpuSnapshot,
  options: CacheViewOptions = {},
): string {
  const r = s.registers;
  const regs = `<table ${TABLE}>${
    row(
      ["CR0", "CR3", "CR4", "EFER", "root", "PCID", "CPL", "AC", "PKRU"],
      true,
    )
  }${
    row([
      hexPhys(r.cr0),
      r.cr3,
      hexPhys(r.cr4),
      hexPhys(r.efer),
      hexPhys(s.root),
      s.pcid,
      s.cpl,
      s.ac ? 1 : 0,
      hex64(0, s.pkru),
    ])
  }</table>`;
  const lines = cpuLines(s);
  return `<div><b>${escapeXml(lines[0])}</b><br><span style="font-size:12px">${
    escapeXml(s.flags.join(" "))
  }</span>${regs}${
    s.pdptes
      ? `<div style="font-family:monospace;font-size:12px">PDPTE registers: ${
        escapeXml(s.pdptes.join(" "))
      }</div>`
      : ""
  }<div style="font-size:12px">${
    escapeXml(lines[lines.length - 1].trim())
  }</div>${tlbToHtml(s.tlb, options)}${pscToHtml(s.psc, options)}</div>`;
}
