/**
 * HTML page-table view: the hierarchy from the root, one block per table
 * (name, level, address, how many entries are present), one row per
 * present entry (index, linear address covered, entry hex, target, flag
 * badges, rights of the whole path), nested with native
 * `<details>`/`<summary>` so folding works with no JavaScript (JupyterLab,
 * classic Notebook, nbconvert HTML, the book).
 *
 * Bounded: at most `maxEntriesPerTable` entries per table and `maxRows`
 * rows in all, chosen breadth-first so that the upper levels always show;
 * every fold says exactly how many entries it hides and the header gives
 * the totals. With `highlight: walk` the entries that walk read are marked
 * (and their `<details>` opened), always shown whatever the limits.
 *
 * Reads entries from memory (pure reads: never writes, never walks with
 * side effects). CSS is inline, scoped under the `mv-pt` class, no
 * scripts; the markup is also well-formed XML.
 *
 * @module
 */

import { type AddressLike, LinearAddress } from "../address/address.ts";
import type { PagingMode } from "../paging/mode.ts";
import {
  decodeEntry,
  type EntryFlags,
  readEntry,
  type Walk,
  type WalkStep,
} from "../paging/record.ts";
import {
  EPT_REASONS,
  type EptMode,
  EptScratch,
  eptWalkInto,
} from "../paging/ept.ts";
import type { EntryMemory } from "../paging/walker.ts";
import { escapeXml } from "./escape.ts";
import {
  COLORS,
  FONT_MONO,
  FONT_SANS,
  formatCount,
  levelColor,
} from "./style.ts";

/**
 * What {@linkcode pageTableToHtml} reads of a page table (a `PageTable`
 * has it all).
 *
 * @example
 * ```ts
 * import { type PageTableSource, pageTableToHtml } from "./table_html.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { OSTEP_15BIT } from "../paging/format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 4096 });
 * memory.write8(0x20 + 0, 0x80 | 2); // root table at 0x20: entry 0 → PT at 0x40
 * const source: PageTableSource = { mode: pagingMode(OSTEP_15BIT), root: 0x20, memory };
 * assert.match(pageTableToHtml(source), /1 of 32 entries present/);
 * ```
 */
export interface PageTableSource {
  /** Paging mode: format, leaf rules, NXE. */
  readonly mode: PagingMode;
  /** Root table address. */
  readonly root: number;
  /** Memory holding the tables (only read). */
  readonly memory: {
    read8(addr: number): number;
    read16(addr: number): number;
    read32(addr: number): number;
  };
  /** Labelled ranges kept by the source (a PageTable keeps its `mapRegions` labels). */
  readonly regions?: readonly RegionLabel[];
}

/**
 * A labelled range of linear addresses, shown beside the entries it
 * overlaps.
 *
 * @example
 * ```ts
 * import { pageTableToHtml, type RegionLabel } from "./table_html.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000);
 * const heap: RegionLabel = { va: 0x1000, length: 0x1000, label: "heap <1>" };
 * assert.match(pageTableToHtml(pt, { regions: [heap] }), /heap &lt;1&gt;/);
 * ```
 */
export interface RegionLabel {
  /** First linear address. */
  readonly va: AddressLike | LinearAddress;
  /** Length in bytes. */
  readonly length: number;
  /** Text to show (escaped). */
  readonly label: string;
}

/**
 * Options for {@linkcode pageTableToHtml}.
 *
 * @example
 * ```ts
 * import { type PageTableHtmlOptions, pageTableToHtml } from "./table_html.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * for (let i = 0; i < 10; i++) pt.map(0x1000 * (i + 1), 0x10000 + 0x1000 * i);
 * const options: PageTableHtmlOptions = { maxEntriesPerTable: 4, title: "tiny" };
 * const html = pageTableToHtml(pt, options);
 * assert.match(html, /… 6 more entries in this table not shown/);
 * assert.match(html, /Showing 7 of 13 present entries; 6 folded/);
 * ```
 */
export interface PageTableHtmlOptions {
  /** Mark the entries this walk read and open their `<details>`. */
  highlight?: Walk;
  /** Entries shown per table before folding (default 64). */
  maxEntriesPerTable?: number;
  /** Entry rows shown in all (default 1000); the walk's path is always shown. */
  maxRows?: number;
  /**
   * Levels of `<details>` open from the root (0 = all closed except the
   * highlighted path). Default: all open when at most 64 rows are shown,
   * else 1.
   */
  openDepth?: number;
  /** Heading (default "Page table"). */
  title?: string;
  /** Labels for address ranges (e.g. the regions given to `mapRegions`). */
  regions?: readonly RegionLabel[];
}

// ------------------------------------------------------------------ scan

interface Entry {
  readonly index: number;
  readonly lo: number;
  readonly hi: number;
  readonly flags: EntryFlags;
  readonly leaf: boolean;
}

interface Scan {
  readonly address: number;
  readonly level: number;
  readonly entries: readonly Entry[];
  readonly error?: string;
}

interface Totals {
  /** Present entries in this table and every table below it. */
  entries: number;
  /** Tables in the subtree, this one included. */
  tables: number;
  /** Leaves by level. */
  leaves: number[];
}

class Reader {
  readonly #pt: PageTableSource;
  readonly #scans = new Map<string, Scan>();
  readonly #totals = new Map<string, Totals>();

  constructor(pt: PageTableSource) {
    this.#pt = pt;
  }

  scan(address: number, level: number): Scan {
    const key = `${level}:${address}`;
    const hit = this.#scans.get(key);
    if (hit) return hit;
    const mode = this.#pt.mode;
    const f = mode.format;
    const spec = f.levels[f.levels.length - level];
    const n =
      level === f.levels.length && f.rootBytes < 2 ** spec.bits * f.entryBytes
        ? f.rootBytes / f.entryBytes
        : 2 ** spec.bits;
    const entries: Entry[] = [];
    let error: string | undefined;
    try {
      for (let i = 0; i < n; i++) {
        const [lo, hi] = this.#read(address + i * f.entryBytes);
        let flags = decodeEntry(f, level, lo, hi);
        if (!flags.present) continue;
        const leaf = isLeaf(mode, level, lo, hi);
        if (!leaf && flags.pageSize) {
          // PS is ignored in this mode (32-bit paging with CR4.PSE = 0, SDM
          // Table 4-5): decode the entry as the walker uses it, a pointer.
          const ps = f.bits.pageSize;
          flags = decodeEntry(
            f,
            level,
            ps < 32 ? (lo & ~(1 << ps)) >>> 0 : lo,
            ps >= 32 ? (hi & ~(1 << (ps - 32))) >>> 0 : hi,
          );
        }
        entries.push({
          index: i,
          lo,
          hi,
          flags,
          leaf,
        });
      }
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    const s: Scan = { address, level, entries, error };
    this.#scans.set(key, s);
    return s;
  }

  totals(address: number, level: number): Totals {
    const key = `${level}:${address}`;
    const hit = this.#totals.get(key);
    if (hit) return hit;
    const s = this.scan(address, level);
    const t: Totals = {
      entries: s.entries.length,
      tables: 1,
      leaves: new Array<number>(level + 1).fill(0),
    };
    for (const e of s.entries) {
      if (e.leaf) {
        t.leaves[level]++;
        continue;
      }
      const sub = this.totals(e.flags.address, level - 1);
      t.entries += sub.entries;
      t.tables += sub.tables;
      sub.leaves.forEach((v, l) => t.leaves[l] += v);
    }
    this.#totals.set(key, t);
    return t;
  }

  #read(ea: number): [number, number] {
    return readEntry(this.#pt.memory, this.#pt.mode.format, ea);
  }
}

function isLeaf(
  mode: PagingMode,
  level: number,
  lo: number,
  hi: number,
): boolean {
  if (level === 1) return true;
  const ps = mode.format.bits.pageSize;
  return ps >= 0 && mode.tables.psLeaf[level] === 1 &&
    ((ps < 32 ? lo >>> ps : hi >>> (ps - 32)) & 1) === 1;
}

function entryRights(mode: PagingMode, level: number, f: EntryFlags): number {
  if (mode.tables.hasRights[level] !== 1) return 7;
  let r = 7;
  if (f.writable === false) r &= ~1;
  if (f.user === false) r &= ~2;
  if ((f.noExec === true && mode.nxe) || f.exec === false) r &= ~4;
  return r;
}

// ---------------------------------------------------------------- layout

interface Node {
  readonly scan: Scan;
  readonly va: bigint;
  readonly rights: number;
  readonly depth: number;
  /** Index the highlighted walk uses in this table, if the node is on its path. */
  readonly pathIndex: number | undefined;
  /** Positions (into scan.entries) shown, ascending. */
  shown: number[];
  /** Why entries were hidden, if they were. */
  limit: "table" | "rows" | undefined;
  readonly children: Map<number, Node | "folded">;
}

const DEFAULT_ENTRIES = 64;
const DEFAULT_ROWS = 1000;

function positiveInt(
  v: number | undefined,
  name: string,
  dflt: number,
): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(
      `${name} ${String(v)} is invalid: expected a positive integer`,
    );
  }
  return v;
}

/**
 * Render a page table as HTML (bounded, foldable, optionally highlighting
 * one walk's path).
 *
 * @example
 * ```ts
 * import { pageTableToHtml } from "./table_html.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000, { user: true });
 * pt.map(0x2000, 0xa000, { writable: false });
 * const w = pt.lookup(0x1234);
 * const html = pageTableToHtml(pt, { highlight: w });
 * assert.match(html, /^<div class="mv-pt" style="--mv-va:18ch;--mv-x:18ch;--mv-f:27ch">/);
 * assert.match(html, /All 5 present entries shown/);
 * assert.equal(html.split('class="mv-r mv-hl').length - 1, w.steps.length);
 * assert.doesNotMatch(html, /<script/);
 * ```
 */
export function pageTableToHtml(
  pt: PageTableSource,
  options: PageTableHtmlOptions = {},
): string {
  const perTable = positiveInt(
    options.maxEntriesPerTable,
    "maxEntriesPerTable",
    DEFAULT_ENTRIES,
  );
  const maxRows = positiveInt(options.maxRows, "maxRows", DEFAULT_ROWS);
  const mode = pt.mode;
  const f = mode.format;
  const reader = new Reader(pt);
  const top = f.levels.length;
  const w = options.highlight;
  const onPath = w !== undefined && w.root === pt.root &&
    w.format.name === f.name;
  const pathIndex = (level: number): number | undefined =>
    onPath ? w!.fields.find((x) => x.level === level)?.value : undefined;

  // Breadth-first: decide which entries to show, so the upper levels are
  // never starved by the first subtree.
  const root: Node = {
    scan: reader.scan(pt.root, top),
    va: 0n,
    rights: 7,
    depth: 0,
    pathIndex: pathIndex(top),
    shown: [],
    limit: undefined,
    children: new Map(),
  };
  let rows = 0;
  const queue: Node[] = [root];
  for (let qi = 0; qi < queue.length; qi++) {
    const node = queue[qi];
    const entries = node.scan.entries;
    const budget = Math.max(0, maxRows - rows);
    const base = Math.min(perTable, entries.length, budget);
    const shown: number[] = [];
    for (let i = 0; i < base; i++) shown.push(i);
    const pathPos = node.pathIndex === undefined
      ? -1
      : entries.findIndex((e) => e.index === node.pathIndex);
    if (pathPos >= base) shown.push(pathPos);
    node.shown = shown;
    rows += shown.length;
    if (shown.length < entries.length) {
      node.limit = base < Math.min(perTable, entries.length) ? "rows" : "table";
    }
    const level = node.scan.level;
    const spec = f.levels[f.levels.length - level];
    for (const pos of shown) {
      const e = entries[pos];
      if (e.leaf) continue;
      const childOnPath = pos === pathPos;
      if (!childOnPath && rows >= maxRows) {
        node.children.set(pos, "folded");
        continue;
      }
      const child: Node = {
        scan: reader.scan(e.flags.address, level - 1),
        va: node.va | (BigInt(e.index) << BigInt(spec.shift)),
        rights: node.rights & entryRights(mode, level, e.flags),
        depth: node.depth + 1,
        pathIndex: childOnPath ? pathIndex(level - 1) : undefined,
        shown: [],
        limit: undefined,
        children: new Map(),
      };
      node.children.set(pos, child);
      queue.push(child);
    }
  }

  const totals = reader.totals(pt.root, top);
  const openDepth = options.openDepth ??
    (rows <= 64 ? Number.POSITIVE_INFINITY : 1);
  const r = new Renderer(
    pt,
    reader,
    options,
    openDepth,
    w && onPath ? w : undefined,
  );
  const body = r.table(root);
  // column widths fit the format: hex digits of a linear address and an entry
  const vaCh = f.canonical === "sign" ? 18 : Math.ceil(f.vaBits / 4) + 2;
  const entryCh = f.entryBytes * 2 + 2;
  const b = f.bits;
  const flagCh = [
    b.present,
    b.writable,
    b.user,
    b.accessed,
    b.dirty,
    b.pageSize,
    b.global,
    Math.max(b.noExec, b.exec),
    b.pkey,
  ].reduce((n, bit) => n + (bit >= 0 ? 3 : 0), 0);
  return `<div class="mv-pt" style="--mv-va:${vaCh}ch;--mv-x:${entryCh}ch;--mv-f:${flagCh}ch">${STYLE}${
    r.header(totals, rows, perTable, maxRows, w, onPath)
  }${body}</div>`;
}

// ---------------------------------------------------------------- render

const STYLE = `<style>${
  [
    `.mv-pt{font:12px/1.5 ${FONT_MONO};color:${COLORS.ink};background:#fff;padding:6px 8px;border:1px solid #e5e7eb;border-radius:6px;overflow-x:auto;text-align:left}`,
    `.mv-pt .mv-h{font-family:${FONT_SANS};margin:0 0 4px}`,
    `.mv-pt .mv-h code,.mv-pt .mv-th code{font-family:${FONT_MONO};background:none;padding:0}`,
    `.mv-pt .mv-t{border-left:3px solid #475569;margin:1px 0 3px 1.2em;padding-left:6px}`,
    `.mv-pt .mv-root{margin-left:0}`,
    `.mv-pt .mv-th{font-family:${FONT_SANS};padding:1px 6px;border-radius:3px;margin:2px 0}`,
    ...[1, 2, 3, 4, 5, 6, 7, 8].map((l) => {
      const c = levelColor(l);
      return `.mv-pt .mv-l${l}{border-left-color:${c.stroke}}.mv-pt .mv-l${l}>.mv-th{background:${c.fill};color:${c.text}}`;
    }),
    `.mv-pt details,.mv-pt summary{margin:0;padding:0}`,
    `.mv-pt summary{list-style:none;cursor:pointer;display:block}`,
    `.mv-pt summary::-webkit-details-marker{display:none}`,
    `.mv-pt summary::before{content:"\\25B8";display:inline-block;width:1.2em;color:#64748b}`,
    `.mv-pt details[open]>summary::before{content:"\\25BE"}`,
    `.mv-pt .mv-leaf::before{content:"";display:inline-block;width:1.2em}`,
    `.mv-pt .mv-r{white-space:nowrap;border-radius:3px}`,
    `.mv-pt .mv-r:hover{background:#f1f5f9}`,
    `.mv-pt .mv-r>span{display:inline-block;margin-right:.8em;vertical-align:top}`,
    `.mv-pt .mv-i{min-width:5ch;text-align:right;color:#64748b}`,
    `.mv-pt .mv-va{min-width:var(--mv-va,18ch)}`,
    `.mv-pt .mv-x{min-width:var(--mv-x,18ch);color:#334155}`,
    `.mv-pt .mv-to{min-width:26ch}`,
    `.mv-pt .mv-f{min-width:var(--mv-f,21ch)}`,
    `.mv-pt .mv-f b{display:inline-block;padding:0 3px;margin-right:2px;border-radius:3px;background:#334155;color:#fff;font-size:10px;line-height:15px}`,
    `.mv-pt .mv-f b.mv-xd{background:#b91c1c}`,
    `.mv-pt .mv-pg{color:${COLORS.ok.text};font-weight:bold}`,
    `.mv-pt .mv-rt{min-width:6ch}`,
    `.mv-pt .mv-lb{font-family:${FONT_SANS};color:#1e3a8a;background:#e0e7ff;border-radius:3px;padding:0 4px}`,
    `.mv-pt .mv-hl{background:${COLORS.setByWalk.fill};outline:1px solid ${COLORS.setByWalk.stroke};font-weight:bold}`,
    `.mv-pt .mv-hl:hover{background:${COLORS.setByWalk.fill}}`,
    `.mv-pt .mv-hc{background:${COLORS.cached.fill};outline:1px dashed ${COLORS.cached.stroke}}`,
    `.mv-pt .mv-miss{background:${COLORS.fault.fill};outline:2px solid ${COLORS.fault.stroke};color:${COLORS.fault.text}}`,
    `.mv-pt .mv-fold{font-family:${FONT_SANS};color:#64748b;font-style:italic;padding-left:1.2em}`,
    `.mv-pt .mv-err{color:${COLORS.fault.text}}`,
    `.mv-pt .mv-key{color:#64748b;font-size:11px}`,
  ].join("")
}</style>`;

function hexAddr(v: number): string {
  return "0x" + v.toString(16);
}

function hexEntry(lo: number, hi: number, bytes: number): string {
  const v = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  return "0x" + v.toString(16).padStart(bytes * 2, "0");
}

function sizeName(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let u = 0, v = bytes;
  while (v >= 1024 && v % 1024 === 0 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v} ${units[u]}`;
}

const MASK64 = (1n << 64n) - 1n;

class Renderer {
  readonly #pt: PageTableSource;
  readonly #reader: Reader;
  readonly #title: string;
  readonly #open: number;
  readonly #walk: Walk | undefined;
  readonly #regions: { start: bigint; end: bigint; label: string }[];

  constructor(
    pt: PageTableSource,
    reader: Reader,
    options: PageTableHtmlOptions,
    openDepth: number,
    walk: Walk | undefined,
  ) {
    this.#pt = pt;
    this.#reader = reader;
    this.#title = options.title ?? "Page table";
    this.#open = openDepth;
    this.#walk = walk;
    this.#regions = (options.regions ?? pt.regions ?? []).map((r) => {
      const start = LinearAddress.from(r.va).toBigInt();
      return {
        start,
        end: start + BigInt(Math.max(0, r.length)),
        label: r.label,
      };
    });
  }

  header(
    t: Totals,
    rows: number,
    perTable: number,
    maxRows: number,
    w: Walk | undefined,
    onPath: boolean,
  ): string {
    const f = this.#pt.mode.format;
    const leaves = t.leaves.reduce((a, b) => a + b, 0);
    const bySize = t.leaves
      .map((n, level) => ({ n, level }))
      .filter((x) => x.n > 0)
      .reverse()
      .map((x) =>
        `${formatCount(x.n)} × ${
          sizeName(2 ** f.levels[f.levels.length - x.level].shift)
        }`
      );
    const title = escapeXml(this.#title);
    const line1 = `<div class="mv-h"><b>${title}</b> · ${
      escapeXml(f.name)
    } · root <code>${hexAddr(this.#pt.root)}</code> · ${
      formatCount(t.tables)
    } ${t.tables === 1 ? "table" : "tables"} · ${formatCount(leaves)} ${
      leaves === 1 ? "leaf" : "leaves"
    }${bySize.length ? ` (${bySize.join(", ")})` : ""}</div>`;
    const folded = t.entries - rows;
    const line2 = folded > 0
      ? `<div class="mv-h">Showing ${formatCount(rows)} of ${
        formatCount(t.entries)
      } present entries; ${formatCount(folded)} folded (at most ${
        formatCount(perTable)
      } per table, ${formatCount(maxRows)} rows in all${
        rows > maxRows ? ", plus the highlighted path" : ""
      }).</div>`
      : `<div class="mv-h">All ${formatCount(t.entries)} present ${
        t.entries === 1 ? "entry" : "entries"
      } shown.</div>`;
    let line3 = "";
    if (w) {
      line3 = onPath
        ? `<div class="mv-h">Highlighted: the ${w.steps.length} ${
          w.steps.length === 1 ? "entry" : "entries"
        } read by the walk ${escapeXml(w.toString())}${
          w.resumed
            ? ` (resumed at level ${w.resumed.level}: upper levels ${
              w.resumed.source === "pdpte-register"
                ? "from the PDPTE registers"
                : "from the paging-structure cache"
            }, dashed)`
            : ""
        }.</div>`
        : `<div class="mv-h mv-err">The highlighted walk (${
          escapeXml(w.toString())
        }) used root ${hexAddr(w.root)} (${
          escapeXml(w.format.name)
        }), not this table: nothing marked.</div>`;
    }
    const key =
      `<div class="mv-h mv-key">Rows: [index] · first linear address · entry · → next table or frame · flags set · rights of the whole path (r, w or -, x or -; u = user, s = supervisor only)</div>`;
    return line1 + line2 + line3 + key;
  }

  /** One table block. */
  table(node: Node): string {
    const mode = this.#pt.mode;
    const f = mode.format;
    const s = node.scan;
    const level = s.level;
    const spec = f.levels[f.levels.length - level];
    const slots = level === f.levels.length &&
        f.rootBytes < 2 ** spec.bits * f.entryBytes
      ? f.rootBytes / f.entryBytes
      : 2 ** spec.bits;
    const out: string[] = [];
    out.push(
      `<div class="mv-t mv-l${Math.min(level, 8)}${
        node.depth === 0 ? " mv-root" : ""
      }"><div class="mv-th"><b>${
        escapeXml(spec.table)
      }</b> · level ${level} · table <code>${hexAddr(s.address)}</code> · ${
        formatCount(s.entries.length)
      } of ${formatCount(slots)} entries present</div>`,
    );
    if (s.error !== undefined) {
      out.push(
        `<div class="mv-fold mv-err">table unreadable: ${
          escapeXml(s.error)
        }</div>`,
      );
    }
    const step = this.#stepAt(node);
    let missing = step !== undefined && !step.flags.present;
    let prev = -1;
    for (const pos of node.shown) {
      const e = s.entries[pos];
      if (missing && step!.index < e.index) {
        out.push(this.#missRow(node, step!.index));
        missing = false;
      }
      if (pos > prev + 1) out.push(fold(pos - prev - 1, false));
      prev = pos;
      out.push(this.#row(node, e, pos, step));
    }
    if (missing) out.push(this.#missRow(node, step!.index));
    const after = s.entries.length - 1 - prev;
    if (after > 0) {
      out.push(fold(after, prev >= 0, node.limit === "rows"));
    }
    if (s.entries.length === 0 && s.error === undefined && !step) {
      out.push(`<div class="mv-fold">no present entries</div>`);
    }
    out.push("</div>");
    return out.join("");
  }

  /** The walk's step in this table, if the node is on the walk's path. */
  #stepAt(node: Node): WalkStep | undefined {
    const w = this.#walk;
    if (!w || node.pathIndex === undefined) return undefined;
    return w.steps.find((x) =>
      x.level === node.scan.level && x.tableBase === node.scan.address
    );
  }

  #missRow(node: Node, index: number): string {
    const w = this.#walk!;
    const why = w.outcome.kind === "ok"
      ? ""
      : ` (${w.outcome.kind === "gp" ? "#GP" : "#PF"})`;
    const spec = this.#pt.mode.format.levels[
      this.#pt.mode.format.levels.length - node.scan.level
    ];
    return `<div class="mv-r mv-hl mv-miss mv-leaf"><span class="mv-i">[${index}]</span><span>${
      escapeXml(spec.entry)
    } not present: the walk stopped here${escapeXml(why)}</span></div>`;
  }

  #row(
    node: Node,
    e: Entry,
    pos: number,
    step: WalkStep | undefined,
  ): string {
    const mode = this.#pt.mode;
    const f = mode.format;
    const level = node.scan.level;
    const spec = f.levels[f.levels.length - level];
    const span = 2 ** spec.shift;
    const va = node.va | (BigInt(e.index) << BigInt(spec.shift));
    const rights = node.rights & entryRights(mode, level, e.flags);
    const child = node.children.get(pos);
    const onPath = node.pathIndex === e.index;
    let cls = "mv-r";
    if (onPath && step && step.index === e.index) {
      cls += " mv-hl";
      const o = this.#walk!.outcome;
      if (o.kind !== "ok" && this.#walk!.steps.at(-1) === step) {
        cls += " mv-miss";
      }
    } else if (onPath) cls += " mv-hc";
    const cells = this.#cells(e, level, va, span, rights);
    if (e.leaf || child === undefined) {
      return `<div class="${cls} mv-leaf">${cells}</div>`;
    }
    if (child === "folded") {
      const t = this.#count(e, level);
      return `<details class="mv-d"><summary class="${cls}">${cells}</summary><div class="mv-fold">… all ${
        formatCount(t)
      } present entries of the ${
        escapeXml(f.levels[f.levels.length - level + 1].table)
      } at <code>${
        hexAddr(e.flags.address)
      }</code> and below not shown (row limit)</div></details>`;
    }
    const open = node.depth < this.#open || child.pathIndex !== undefined;
    return `<details class="mv-d"${
      open ? ' open=""' : ""
    }><summary class="${cls}">${cells}</summary>${this.table(child)}</details>`;
  }

  #count(e: Entry, level: number): number {
    return this.#reader.totals(e.flags.address, level - 1).entries;
  }

  #cells(
    e: Entry,
    level: number,
    va: bigint,
    span: number,
    rights: number,
  ): string {
    const mode = this.#pt.mode;
    const f = mode.format;
    const fl = e.flags;
    let shown = va;
    if (f.canonical === "sign" && (va >> BigInt(f.vaBits - 1)) & 1n) {
      shown = (va | (MASK64 << BigInt(f.vaBits))) & MASK64;
    }
    const vaHex = "0x" + shown.toString(16);
    let to: string;
    if (e.leaf) {
      to = `<span class="mv-to">→ ${hexAddr(fl.address)} <b class="mv-pg">${
        level > 1 ? `${sizeName(span)} page` : sizeName(span)
      }</b></span>`;
    } else {
      const next = f.levels[f.levels.length - level + 1];
      to = `<span class="mv-to">→ ${escapeXml(next.table)} ${
        hexAddr(fl.address)
      }</span>`;
    }
    const rt = `${rights & 1 ? "w" : "-"}${rights & 4 ? "x" : "-"} ${
      rights & 2 ? "u" : "s"
    }`;
    const labels = this.#labels(shown, span);
    return `<span class="mv-i">[${e.index}]</span><span class="mv-va">${vaHex}</span><span class="mv-x">${
      hexEntry(e.lo, e.hi, f.entryBytes)
    }</span>${to}<span class="mv-f">${
      flagBadges(mode, level, fl)
    }</span><span class="mv-rt">r${rt}</span>${labels}`;
  }

  #labels(va: bigint, span: number): string {
    if (this.#regions.length === 0) return "";
    const end = va + BigInt(span);
    const hits = this.#regions.filter((r) => r.start < end && va < r.end);
    return hits.map((r) => `<span class="mv-lb">${escapeXml(r.label)}</span>`)
      .join("");
  }
}

function fold(n: number, more: boolean, rowLimit = false): string {
  return `<div class="mv-fold">… ${formatCount(n)} ${more ? "more " : ""}${
    n === 1 ? "entry" : "entries"
  } in this table not shown${rowLimit ? " (row limit)" : ""}</div>`;
}

function flagBadges(mode: PagingMode, level: number, f: EntryFlags): string {
  const rights = mode.tables.hasRights[level] === 1;
  const out: string[] = [];
  if (f.present) out.push("<b>P</b>");
  if (rights && f.writable) out.push("<b>RW</b>");
  if (rights && f.user) out.push("<b>US</b>");
  if (f.pwt) out.push("<b>PWT</b>");
  if (f.pcd) out.push("<b>PCD</b>");
  if (f.accessed) out.push("<b>A</b>");
  if (f.dirty) out.push("<b>D</b>");
  if (f.pageSize) out.push("<b>PS</b>");
  if (f.global) out.push("<b>G</b>");
  if (rights && f.noExec) out.push('<b class="mv-xd">XD</b>');
  if (rights && f.exec) out.push("<b>X</b>");
  if (f.pkey) out.push(`<b>PK ${f.pkey}</b>`);
  return out.join("");
}

// ------------------------------------------------------------- EPT tables

/**
 * What {@linkcode eptTableToHtml} reads: an EPT mode, its root and the
 * memory holding the tables (only read). A `NestedScheme` with stage
 * "ept" gives `{ mode, root: hostRoot, memory: host.memory }`.
 */
export interface EptTableSource {
  /** The EPT mode (format, A/D, MAXPHYADDR). */
  readonly mode: EptMode;
  /** Root table (hpa). */
  readonly root: number;
  /** Machine memory holding the tables. */
  readonly memory: { read32(addr: number): number };
}

/** Options for {@linkcode eptTableToHtml}. */
export interface EptTableHtmlOptions {
  /** Mark the entries a walk of this gpa reads (a pure lookup: nothing is written). */
  highlightGpa?: number;
  /** Entries shown per table before folding (default 64). */
  maxEntriesPerTable?: number;
  /** Entry rows shown in all (default 1000); the highlighted path always shows. */
  maxRows?: number;
  /** Heading (default "EPT"). */
  title?: string;
}

/** EPT memory types by value (SDM §28.3.7; 2, 3 and 7 are reserved). */
const MEM_TYPES = [
  "UC",
  "WC",
  "rsvd(2)",
  "rsvd(3)",
  "WT",
  "WP",
  "WB",
  "rsvd(7)",
];

/**
 * Render EPT tables as HTML: per entry the gpa it covers, the raw entry,
 * the next table or frame, R/W/X badges (a missing right shown struck
 * out), the memory type and IPAT on leaves, PS, and A/D when the EPTP
 * enables them; plus the R/W/X of the whole path. Bounded and foldable
 * like {@linkcode pageTableToHtml}, whose style it shares.
 *
 * @example
 * ```ts
 * import { eptTableToHtml } from "./table_html.ts";
 * import { EPT_4LEVEL, eptMap, eptMode } from "../paging/ept.ts";
 * import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 20 });
 * const frames = new FrameAllocator(memory);
 * const mode = eptMode(EPT_4LEVEL, { ad: true });
 * const root = frames.alloc();
 * eptMap(mode, memory, () => frames.alloc(), root, 0x3000, 0x9000, { write: false });
 * const html = eptTableToHtml({ mode, root, memory }, { highlightGpa: 0x3abc });
 * assert.match(html, /<b>R<\/b><s>W<\/s><b>X<\/b>/);
 * assert.match(html, /<b class="mv-mt">WB<\/b>/);
 * assert.equal(html.split('class="mv-r mv-hl').length - 1, 4);
 * assert.match(html, /All 4 present entries shown/);
 * ```
 */
export function eptTableToHtml(
  src: EptTableSource,
  options: EptTableHtmlOptions = {},
): string {
  const perTable = positiveInt(
    options.maxEntriesPerTable,
    "maxEntriesPerTable",
    DEFAULT_ENTRIES,
  );
  const maxRows = positiveInt(options.maxRows, "maxRows", DEFAULT_ROWS);
  const mode = src.mode;
  const f = mode.format;
  const top = f.levels.length;
  // the highlighted path: a side-effect-free lookup
  const path = new Map<number, number>(); // table address → index
  let stop = "";
  const hg = options.highlightGpa;
  if (hg !== undefined) {
    if (!Number.isInteger(hg) || hg < 0 || hg >= 2 ** f.gpaBits) {
      throw new RangeError(
        `highlightGpa ${
          String(hg)
        } is invalid: expected an integer in [0, 2^${f.gpaBits})`,
      );
    }
    const s = new EptScratch();
    const r = eptWalkInto(
      s,
      mode,
      src.memory as EntryMemory,
      src.root,
      hg,
      0,
      false,
    );
    for (let i = 0; i < s.steps; i++) {
      path.set(s.entryAddr[i] - (s.entryAddr[i] % 4096), s.entryAddr[i]);
    }
    stop = r === 0
      ? ` → hpa 0x${s.hpa.toString(16)}`
      : `: ${r === 1 ? "EPT violation" : "EPT misconfiguration"} (${
        EPT_REASONS[s.reason] ?? "?"
      }) at level ${s.leafLevel}`;
  }
  const addrOf = (lo: number, hi: number) =>
    (hi & mode.addrHi) * 4294967296 + ((lo & mode.addrLo) >>> 0);
  let rows = 0, present = 0;
  const out: string[] = [];
  const table = (base: number, level: number, gpa: number, rights: number) => {
    const spec = f.levels[top - level];
    const entries: { i: number; lo: number; hi: number }[] = [];
    for (let i = 0; i < 512; i++) {
      const lo = src.memory.read32(base + i * 8);
      const hi = src.memory.read32(base + i * 8 + 4);
      if ((lo & 7) !== 0) entries.push({ i, lo, hi });
    }
    present += entries.length;
    const hl = path.get(base);
    out.push(
      `<div class="mv-t mv-l${level}${
        level === top ? " mv-root" : ""
      }"><div class="mv-th"><b>${
        escapeXml(spec.table)
      }</b> · level ${level} · table <code>${hexAddr(base)}</code> · ${
        formatCount(entries.length)
      } of 512 entries present</div>`,
    );
    let shown = 0, hidden = 0;
    for (const e of entries) {
      const ea = base + e.i * 8;
      const onPath = hl === ea;
      if (!onPath && (shown >= perTable || rows >= maxRows)) {
        hidden++;
        continue;
      }
      shown++;
      rows++;
      const leaf = level === 1 ||
        ((e.lo & 0x80) !== 0 && spec.canMapPage);
      const r = rights & (e.lo & 7);
      const g = gpa + e.i * 2 ** spec.shift;
      const badges = [
        (e.lo & 1) !== 0 ? "<b>R</b>" : "<s>R</s>",
        (e.lo & 2) !== 0 ? "<b>W</b>" : "<s>W</s>",
        (e.lo & 4) !== 0 ? "<b>X</b>" : "<s>X</s>",
      ];
      if (leaf) {
        badges.push(`<b class="mv-mt">${MEM_TYPES[(e.lo >>> 3) & 7]}</b>`);
        if ((e.lo & 0x40) !== 0) badges.push("<b>IPAT</b>");
      }
      if (level > 1 && (e.lo & 0x80) !== 0) badges.push("<b>PS</b>");
      if (mode.ad && (e.lo & 0x100) !== 0) badges.push("<b>A</b>");
      if (mode.ad && leaf && (e.lo & 0x200) !== 0) badges.push("<b>D</b>");
      if ((e.hi & 0x80000000) !== 0) badges.push("<b>SVE</b>");
      const next = addrOf(e.lo, e.hi);
      const to = leaf
        ? `→ ${hexAddr(next)} <b class="mv-pg">${sizeName(2 ** spec.shift)}${
          level > 1 ? " page" : ""
        }</b>`
        : `→ ${escapeXml(f.levels[top - level + 1].table)} ${hexAddr(next)}`;
      const cls = `mv-r${onPath ? " mv-hl" : ""}${leaf ? " mv-leaf" : ""}`;
      const cells = `<span class="mv-i">[${e.i}]</span><span class="mv-va">0x${
        g.toString(16)
      }</span><span class="mv-x">${
        hexEntry(e.lo, e.hi, 8)
      }</span><span class="mv-to">${to}</span><span class="mv-f">${
        badges.join("")
      }</span><span class="mv-rt">${r & 1 ? "r" : "-"}${r & 2 ? "w" : "-"}${
        r & 4 ? "x" : "-"
      }</span>`;
      if (leaf) {
        out.push(`<div class="${cls}">${cells}</div>`);
      } else {
        out.push(
          `<details class="mv-d" open=""><summary class="${cls}">${cells}</summary>`,
        );
        table(next, level - 1, g, r);
        out.push("</details>");
      }
    }
    if (hidden > 0) out.push(fold(hidden, shown > 0, rows >= maxRows));
    if (entries.length === 0) {
      out.push(`<div class="mv-fold">no present entries</div>`);
    }
    out.push("</div>");
  };
  table(src.root, top, 0, 7);
  const head = `<div class="mv-h"><b>${
    escapeXml(options.title ?? "EPT")
  }</b> · ${escapeXml(f.name)}${mode.ad ? " · A/D enabled" : ""} · root <code>${
    hexAddr(src.root)
  }</code></div><div class="mv-h">${
    rows >= present
      ? `All ${formatCount(present)} present ${
        present === 1 ? "entry" : "entries"
      } shown.`
      : `Showing ${formatCount(rows)} of ${
        formatCount(present)
      } present entries of the tables opened; the rest folded (at most ${
        formatCount(perTable)
      } per table, ${formatCount(maxRows)} rows in all).`
  }</div>${
    hg === undefined
      ? ""
      : `<div class="mv-h">Highlighted: the walk of gpa 0x${hg.toString(16)}${
        escapeXml(stop)
      }.</div>`
  }<div class="mv-h mv-key">Rows: [index] · first gpa · entry · → next table or frame · R/W/X (struck out: not granted), memory type and IPAT on leaves, A/D with EPT A/D · R/W/X of the whole path. Not modelled: execute-for-user-mode (bit 10).</div>`;
  return `<div class="mv-pt" style="--mv-va:16ch;--mv-x:18ch;--mv-f:24ch">${STYLE}<style>.mv-pt .mv-f s{display:inline-block;padding:0 3px;margin-right:2px;border-radius:3px;background:#e5e7eb;color:#9ca3af;font-size:10px;line-height:15px}.mv-pt .mv-f b.mv-mt{background:#0f766e}</style>${head}${
    out.join("")
  }</div>`;
}
