/**
 * Views of shadow paging: a guest page table next to its shadow (the guest
 * entry holds a gfn, the shadow entry an mfn), and the scheme's counters
 * and shadow cache. Pure functions of plain data; every string escaped; no
 * ANSI; output bounded (rows are capped by the model, lists here too).
 *
 * @module
 */

import { escapeXml } from "./escape.ts";
import { COLORS, FONT_MONO, FONT_SANS } from "./style.ts";
import type { SchemeCounters, SchemeEvent } from "../virt/scheme.ts";

/** One side of a row: a guest or shadow entry. */
export interface ShadowPairEntry {
  /** The entry as hex. */
  readonly raw: string;
  /** The frame it names (gfn for the guest, mfn for the shadow). */
  readonly frame: number;
  /** Decoded flags ("P RW US A D XD"), "-" if not present. */
  readonly flags: string;
  /** Shadow only: what the entry points at ("page", "shadow table", "splinter"). */
  readonly target?: string;
}

/** A guest table and its shadow, entry by entry (built by `ShadowScheme.shadowPair`). */
export interface ShadowPairView {
  /** Level of the table (1 = leaf table). */
  readonly level: number;
  /** The guest table's gfn. */
  readonly gfn: number;
  /** The shadow page's mfn, or null when the table is not shadowed. */
  readonly mfn: number | null;
  /** Whether the shadow is out of sync. */
  readonly outOfSync: boolean;
  /** Entries present on either side. */
  readonly rows: readonly {
    readonly index: number;
    readonly guest: ShadowPairEntry | null;
    readonly shadow: ShadowPairEntry | null;
  }[];
  /** Rows left out (bounded output). */
  readonly omitted: number;
}

/** A shadow page as listed by the scheme (see `ShadowPageInfo`). */
export interface ShadowPageRow {
  /** Machine frame. */
  readonly mfn: number;
  /** Guest frame. */
  readonly gfn: number;
  /** Level. */
  readonly level: number;
  /** "table" or "splinter". */
  readonly role: string;
  /** Parent links. */
  readonly parents: number;
  /** Present entries. */
  readonly present: number;
  /** Out of sync. */
  readonly outOfSync: boolean;
}

const NAMES = ["", "PT", "PD", "PDPT", "PML4", "PML5"];

function hex(n: number): string {
  return "0x" + n.toString(16);
}

/**
 * The pair as text.
 *
 * @example
 * ```ts
 * import { shadowPairText } from "./shadow_html.ts";
 * import assert from "node:assert/strict";
 * const t = shadowPairText({ level: 1, gfn: 5, mfn: 9, outOfSync: false, omitted: 0, rows: [
 *   { index: 0, guest: { raw: "0x7067", frame: 7, flags: "P RW US A D" },
 *     shadow: { raw: "0x12067", frame: 0x12, flags: "P RW US A D", target: "page" } },
 * ] });
 * assert.match(t, /gfn 0x7 .*mfn 0x12/);
 * ```
 */
export function shadowPairText(v: ShadowPairView): string {
  const name = NAMES[v.level] ?? `L${v.level}`;
  const lines = [
    `guest ${name} at gfn ${hex(v.gfn)} | shadow ${
      v.mfn === null ? "(none)" : `at mfn ${hex(v.mfn)}`
    }${v.outOfSync ? " (out of sync)" : ""}`,
  ];
  for (const r of v.rows) {
    const g = r.guest === null
      ? "(empty)"
      : `gfn ${hex(r.guest.frame)} ${r.guest.flags}`;
    const s = r.shadow === null
      ? "(empty)"
      : `mfn ${hex(r.shadow.frame)} ${r.shadow.flags}${
        r.shadow.target ? " -> " + r.shadow.target : ""
      }`;
    lines.push(`[${String(r.index).padStart(3)}] ${g.padEnd(36)} | ${s}`);
  }
  if (v.omitted > 0) lines.push(`… ${v.omitted} more entries not shown`);
  return lines.join("\n");
}

/**
 * The pair as an HTML table: guest entries (gfns) on the left, shadow
 * entries (mfns) on the right; entries the shadow has not filled yet are
 * greyed, writable-in-guest but read-only-in-shadow ones marked (A/D
 * emulation or write protection).
 *
 * @example
 * ```ts
 * import { shadowPairHtml } from "./shadow_html.ts";
 * import assert from "node:assert/strict";
 * const h = shadowPairHtml({ level: 1, gfn: 5, mfn: null, outOfSync: false, omitted: 2, rows: [
 *   { index: 3, guest: { raw: "0x7067", frame: 7, flags: "P <x>" }, shadow: null },
 * ] });
 * assert.match(h, /&lt;x&gt;/);
 * assert.match(h, /2 more entries/);
 * ```
 */
export function shadowPairHtml(v: ShadowPairView): string {
  const name = escapeXml(NAMES[v.level] ?? `L${v.level}`);
  const td = `style="border:1px solid #cbd5e1;padding:2px 6px;font-family:${
    escapeXml(FONT_MONO)
  }"`;
  const rows = v.rows.map((r) => {
    const g = r.guest;
    const s = r.shadow;
    const ro = g !== null && s !== null && / RW/.test(g.flags) &&
      !/ RW/.test(s.flags);
    const sStyle = s === null
      ? `background:${COLORS.cached.fill};color:${COLORS.cached.text}`
      : ro
      ? `background:${COLORS.setByWalk.fill}`
      : `background:${COLORS.ok.fill}`;
    return `<tr><td ${td}>${r.index}</td>` +
      `<td ${td}>${g === null ? "" : escapeXml(g.raw)}</td>` +
      `<td ${td}>${g === null ? "" : "gfn " + escapeXml(hex(g.frame))}</td>` +
      `<td ${td}>${g === null ? "" : escapeXml(g.flags)}</td>` +
      `<td ${td} style="${sStyle}">${
        s === null ? "not filled" : escapeXml(s.raw)
      }</td>` +
      `<td ${td}>${s === null ? "" : "mfn " + escapeXml(hex(s.frame))}</td>` +
      `<td ${td}>${s === null ? "" : escapeXml(s.flags)}${
        ro ? " (read-only in shadow)" : ""
      }</td>` +
      `<td ${td}>${s === null ? "" : escapeXml(s.target ?? "")}</td></tr>`;
  }).join("");
  const head = `<tr><th>#</th><th colspan="3">guest ${name} (gfn ${
    escapeXml(hex(v.gfn))
  })</th><th colspan="4">shadow ${
    v.mfn === null ? "(not shadowed)" : `(mfn ${escapeXml(hex(v.mfn))})`
  }${v.outOfSync ? " out of sync" : ""}</th></tr>`;
  const more = v.omitted > 0
    ? `<p style="color:${COLORS.muted}">… ${v.omitted} more entries not shown</p>`
    : "";
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  }"><table style="border-collapse:collapse">${head}${rows}</table>${more}</div>`;
}

/**
 * Counters and the shadow cache as text.
 *
 * @example
 * ```ts
 * import { shadowSchemeText } from "./shadow_html.ts";
 * import assert from "node:assert/strict";
 * const c = { accesses: 3, guestPageFaults: 1, generalProtection: 0, unbacked: 0, cr3Loads: 1,
 *   invlpgs: 0, entryWrites: 0, frameWrites: 0, p2mChanges: 0, vmExits: 3,
 *   exitsByReason: { "hidden-pf": 2, "cr-access": 1 }, extra: { shadowPagesLive: 4 } };
 * assert.match(shadowSchemeText(c, []), /hidden-pf 2/);
 * ```
 */
export function shadowSchemeText(
  c: SchemeCounters,
  pages: readonly ShadowPageRow[],
  maxPages = 16,
): string {
  const lines = [
    `shadow scheme: ${c.accesses} accesses, ${c.vmExits} VM exits, ${c.guestPageFaults} guest #PF`,
    `exits: ${
      Object.entries(c.exitsByReason).map(([k, n]) => `${k} ${n}`).join(", ") ||
      "none"
    }`,
    `extra: ${
      Object.entries(c.extra).filter(([, n]) => n !== 0).map(([k, n]) =>
        `${k} ${n}`
      ).join(", ") || "none"
    }`,
  ];
  for (const p of pages.slice(0, maxPages)) {
    lines.push(
      `  mfn ${hex(p.mfn)}: L${p.level} ${p.role} of gfn ${
        hex(p.gfn)
      }, ${p.present} present, ${p.parents} parent(s)${
        p.outOfSync ? ", out of sync" : ""
      }`,
    );
  }
  if (pages.length > maxPages) {
    lines.push(`  … ${pages.length - maxPages} more shadow pages`);
  }
  return lines.join("\n");
}

/**
 * Counters, shadow cache and the exit timeline as HTML.
 *
 * @example
 * ```ts
 * import { shadowSchemeHtml } from "./shadow_html.ts";
 * import assert from "node:assert/strict";
 * const c = { accesses: 0, guestPageFaults: 0, generalProtection: 0, unbacked: 0, cr3Loads: 0,
 *   invlpgs: 0, entryWrites: 0, frameWrites: 0, p2mChanges: 0, vmExits: 0,
 *   exitsByReason: {}, extra: {} };
 * const h = shadowSchemeHtml(c, [{ mfn: 1, gfn: 2, level: 4, role: "<t>", parents: 0, present: 0, outOfSync: false }], []);
 * assert.match(h, /&lt;t&gt;/);
 * assert.ok(!h.includes("\u001b"));
 * ```
 */
export function shadowSchemeHtml(
  c: SchemeCounters,
  pages: readonly ShadowPageRow[],
  events: readonly SchemeEvent[],
  maxPages = 32,
): string {
  const cell = `style="border:1px solid #cbd5e1;padding:2px 6px"`;
  const kv = (o: Readonly<Record<string, number>>) =>
    Object.entries(o).map(([k, n]) =>
      `<tr><td ${cell}>${escapeXml(k)}</td><td ${cell}>${n}</td></tr>`
    ).join("");
  const pageRows = pages.slice(0, maxPages).map((p) =>
    `<tr><td ${cell}>${
      escapeXml(hex(p.mfn))
    }</td><td ${cell}>L${p.level}</td><td ${cell}>${
      escapeXml(p.role)
    }</td><td ${cell}>${
      escapeXml(hex(p.gfn))
    }</td><td ${cell}>${p.present}</td><td ${cell}>${p.parents}</td><td ${cell}>${
      p.outOfSync ? "out of sync" : ""
    }</td></tr>`
  ).join("");
  const more = pages.length > maxPages
    ? `<p>… ${pages.length - maxPages} more shadow pages</p>`
    : "";
  return `<div style="font-family:${escapeXml(FONT_SANS)}">` +
    `<b>shadow scheme</b>: ${c.accesses} accesses, ${c.vmExits} VM exits, ${c.guestPageFaults} guest #PF` +
    `<div style="display:flex;gap:16px;align-items:flex-start">` +
    `<table style="border-collapse:collapse"><tr><th colspan="2">exits by reason</th></tr>${
      kv(c.exitsByReason)
    }</table>` +
    `<table style="border-collapse:collapse"><tr><th colspan="2">shadow counters</th></tr>${
      kv(c.extra)
    }</table>` +
    `<table style="border-collapse:collapse"><tr><th>mfn</th><th>level</th><th>role</th><th>gfn</th><th>present</th><th>parents</th><th></th></tr>${pageRows}</table>` +
    `</div>${more}${exitTimelineSvg(events)}</div>`;
}

/** Options for {@linkcode exitTimelineSvg}. */
export interface ExitTimelineOptions {
  /** Most events drawn (the most recent). Default 200. */
  maxEvents?: number;
  /** Width in pixels. Default 720. */
  width?: number;
}

const LANES: readonly [string, string][] = [
  ["hidden-pf", "#2563eb"],
  ["true-pf", "#dc2626"],
  ["wp-emulation", "#d97706"],
  ["cr-access", "#7c3aed"],
  ["invlpg", "#0d9488"],
  ["mmio", "#64748b"],
];

/**
 * A timeline of the VM exits in an event log: one lane per exit reason,
 * one tick per exit, in order (x = event sequence). Other events
 * (shadow allocations, unshadows, out-of-sync) are drawn as small marks on
 * an "other" lane.
 *
 * @example
 * ```ts
 * import { exitTimelineSvg } from "./shadow_html.ts";
 * import assert from "node:assert/strict";
 * const svg = exitTimelineSvg([
 *   { seq: 0, kind: "cr-access", exit: true },
 *   { seq: 1, kind: "hidden-pf", exit: true, va: "0x400000" },
 *   { seq: 2, kind: "shadow-alloc", exit: false, detail: "<L1>" },
 * ]);
 * assert.match(svg, /^<svg/);
 * assert.match(svg, /hidden-pf \(1\)/);
 * assert.match(svg, /other \(0\)/); // the shadow-alloc event is not an exit
 * assert.match(svg, /&lt;L1&gt;/);
 * ```
 */
export function exitTimelineSvg(
  events: readonly SchemeEvent[],
  options: ExitTimelineOptions = {},
): string {
  const max = options.maxEvents ?? 200;
  const width = options.width ?? 720;
  const ev = events.slice(Math.max(0, events.length - max));
  const laneH = 18, left = 120, top = 8;
  const lanes = [...LANES, ["other", "#9ca3af"] as [string, string]];
  const height = top + lanes.length * laneH + 20;
  const n = Math.max(1, ev.length);
  const step = (width - left - 10) / n;
  const counts = new Map<string, number>();
  // Lane labels count exits only: a lane also shows non-exit events (e.g.
  // the guest's INVLPG as issued, next to the exit it causes).
  for (const e of ev) {
    if (!e.exit) continue;
    const k = LANES.some(([l]) => l === e.kind) ? e.kind : "other";
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const parts: string[] = [];
  lanes.forEach(([name, color], i) => {
    const y = top + i * laneH;
    parts.push(
      `<text x="4" y="${y + 12}" font-size="11" fill="${color}">${
        escapeXml(`${name} (${counts.get(name) ?? 0})`)
      }</text>`,
      `<line x1="${left}" y1="${y + 9}" x2="${width - 10}" y2="${
        y + 9
      }" stroke="#e5e7eb"/>`,
    );
  });
  ev.forEach((e, j) => {
    let lane = LANES.findIndex(([l]) => l === e.kind);
    if (lane < 0) lane = LANES.length;
    const x = left + j * step + step / 2;
    const y = top + lane * laneH;
    const color = lanes[lane][1];
    const title = `#${e.seq} ${e.kind}${e.va ? " va " + e.va : ""}${
      e.gpa !== undefined ? " gpa 0x" + e.gpa.toString(16) : ""
    }${e.detail ? " — " + e.detail : ""}`;
    parts.push(
      `<rect x="${(x - Math.max(1, step / 3)).toFixed(1)}" y="${
        y + 3
      }" width="${Math.max(2, (2 * step) / 3).toFixed(1)}" height="${
        e.exit ? 12 : 6
      }" fill="${color}"><title>${escapeXml(title)}</title></rect>`,
    );
  });
  const folded = events.length - ev.length;
  parts.push(
    `<text x="${left}" y="${
      height - 4
    }" font-size="10" fill="${COLORS.muted}">${
      escapeXml(
        `${ev.length} events${
          folded > 0 ? ` (${folded} earlier ones not shown)` : ""
        }, oldest left`,
      )
    }</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${
    escapeXml(FONT_SANS)
  }">${parts.join("")}</svg>`;
}
