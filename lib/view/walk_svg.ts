/**
 * SVG walk diagram: a picture of one page walk, drawn from its record
 * (never by walking again).
 *
 * Top to bottom: the linear address split into coloured fields (one colour
 * per level, the same colour as that level's table box below; bit ranges,
 * binary digits and values shown); one row per table read with the table
 * (name, level, base), the indexed entry (index, entry address, entry hex,
 * flag badges, rights accumulated so far) and an arrow to the next table;
 * then the outcome: page frame + offset → physical address, or the fault
 * with its #PF error code decoded (Intel SDM Vol. 3 §4.7) or #GP.
 *
 * Levels the walk skipped because it resumed below the root (a
 * paging-structure-cache hit, SDM §4.10.3, or PAE's PDPTE registers,
 * §4.4.1) are drawn greyed and dashed as "cached". A/D bits this walk set
 * are yellow badges. The level that stopped the walk is red.
 *
 * Output is deterministic (ids derive from `idPrefix` or from a hash of the
 * walk; integer coordinates), standalone (xmlns, width/height/viewBox, no
 * external resources, presentation attributes only so nothing leaks into
 * a notebook page's styles) and every interpolated string is escaped.
 *
 * @module
 */

import { type Attrs, attrs, el, num, text } from "./svg.ts";
import { sizeName } from "../paging/record.ts";
import { hexPhys } from "../address/address.ts";
import type { FaultReason } from "../paging/walker.ts";
import type {
  EntryFlags,
  PageFaultErrorCode,
  Walk,
  WalkStep,
} from "../paging/record.ts";
import { escapeXml } from "./escape.ts";
import {
  COLORS,
  FONT_MONO,
  FONT_SANS,
  hashId,
  type LevelColor,
  levelColor,
} from "./style.ts";

/**
 * Options for {@linkcode walkToSvg}.
 *
 * @example
 * ```ts
 * import { walkToSvg, type WalkSvgOptions } from "./walk_svg.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000);
 * const options: WalkSvgOptions = { idPrefix: "fig2", title: "Figure 2", legend: false };
 * const svg = walkToSvg(pt.lookup(0x1234), options);
 * assert.match(svg, /Figure 2/);
 * assert.doesNotMatch(svg, /data-role="legend"/);
 * ```
 */
export interface WalkSvgOptions {
  /**
   * Prefix of every `id` in the SVG (marker definitions, title). Must
   * start with a letter or `_` and contain only letters, digits, `_`, `-`
   * and `.`. Default: `"mv-w"` plus a hash of the walk, so different walks
   * on one page get different ids and the same walk always the same.
   */
  idPrefix?: string;
  /** Heading shown above the diagram (default: the walk's address). */
  title?: string;
  /** Total width in pixels (default 880, at least 800). */
  width?: number;
  /** Draw the legend at the bottom (default true). */
  legend?: boolean;
}

// ---------------------------------------------------------------- markup

/**
 * A `<tspan>` with plain-text content. Spaces at either end go outside the
 * tspan as one plain space: renderers drop spaces at tspan edges (librsvg
 * even drops no-break spaces there) but keep one between elements.
 */
function span(content: string, a: Attrs = {}): string {
  const lead = /^\s/.test(content) ? " " : "";
  const trail = /\S\s+$/.test(content) ? " " : "";
  const core = content.trim();
  return lead + (core ? el("tspan", a, escapeXml(core)) : "") + trail;
}

/** A `<text>` made of tspans (already markup). */
function spans(x: number, y: number, body: string, a: Attrs = {}): string {
  return el("text", { x, y, ...a }, body);
}

const MONO_W = 0.602; // DejaVu Sans Mono advance / font size
const SANS_W = 0.56; // average sans-serif advance / font size (estimate)

function monoWidth(s: string, size: number): number {
  return s.length * size * MONO_W;
}

function sansWidth(s: string, size: number): number {
  return s.length * size * SANS_W;
}

/** Greedy word wrap to lines of at most `max` characters. */
function wrap(s: string, max: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of s.split(/\s+/).filter((x) => x !== "")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= max) line += " " + word;
    else {
      out.push(line);
      line = word;
    }
  }
  if (line !== "" || out.length === 0) out.push(line);
  return out;
}

// ---------------------------------------------------------------- numbers

function hexEntry(e: bigint, bytes: number): string {
  return "0x" + e.toString(16).padStart(bytes * 2, "0");
}

function binary(v: number | bigint, bits: number): string {
  return v.toString(2).padStart(bits, "0");
}

function bitRange(hi: number, lo: number): string {
  return hi === lo ? `bit ${lo}` : `bits ${hi}:${lo}`;
}

const REASON: Record<FaultReason, string> = {
  "none": "",
  "not-present": "entry not present (P = 0)",
  "reserved-bit": "reserved bit set",
  "user-supervisor": "user access to a supervisor page (U/S = 0 on the path)",
  "write-protect": "write to a read-only page (R/W = 0 on the path)",
  "no-execute": "fetch from a no-execute page (XD = 1 on the path)",
  "smep": "supervisor fetch from a user page (CR4.SMEP = 1)",
  "smap": "supervisor data access to a user page (CR4.SMAP = 1)",
  "pkey": "protection key denies the access (PKRU)",
  "non-canonical": "non-canonical linear address",
  "pdpte-reserved": "reserved bit in a PAE PDPTE (checked at MOV to CR3)",
};

// ---------------------------------------------------------------- layout

const ROW_H = 66; // full row (table box and entry box)
const ROW_GAP = 30; // room for the arrow to the next table
const SMALL_H = 26; // "not reached" and "cached" rows
const TABLE_W = 200;
const LINK_W = 76; // table box → entry box arrow
const M = 16;

interface Ctx {
  w: Walk;
  id: string;
  width: number;
  entryX: number;
  entryW: number;
  out: string[];
}

interface Band {
  label: string;
  level: number; // colour; 0 = offset; -1 = sign extension
  hi: number;
  lo: number;
  bin: string;
  value: string;
  state: "normal" | "offset-part" | "bad";
  x: number;
  w: number;
}

function stepReason(w: Walk): FaultReason | undefined {
  const o = w.outcome;
  return o.kind === "ok" ? undefined : o.reason;
}

/**
 * Render a walk record as a standalone SVG diagram.
 *
 * @example
 * ```ts
 * import { walkToSvg } from "./walk_svg.ts";
 * import { walk } from "../paging/record.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 20 });
 * memory.write32(0x1000 + 4 * 1, 0x2000 | 0x7); // PDE 1 → PT at 0x2000
 * memory.write32(0x2000 + 4 * 2, 0x5000 | 0x5); // PTE 2 → frame 0x5000, read-only
 * const target = { memory, mode: pagingMode(X86_32), root: 0x1000 };
 * const ok = walkToSvg(walk(target, 0x00402abc), { idPrefix: "demo" });
 * assert.match(ok, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
 * assert.match(ok, /0x5abc/); // the physical address
 * assert.match(ok, /id="demo-arrow"/);
 * const fault = walkToSvg(walk(target, 0x00402abc, { kind: "write", user: true }));
 * assert.match(fault, /error code/);
 * assert.equal(fault, walkToSvg(walk(target, 0x00402abc, { kind: "write", user: true })));
 * ```
 */
export function walkToSvg(w: Walk, options: WalkSvgOptions = {}): string {
  const width = Math.max(800, Math.round(options.width ?? 880));
  const id = options.idPrefix ?? defaultId(w);
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(id)) {
    throw new RangeError(
      `idPrefix "${id}" is invalid: expected a letter or "_" followed by letters, digits, "_", "-" or "."`,
    );
  }
  const entryX = M + TABLE_W + LINK_W;
  const c: Ctx = {
    w,
    id,
    width,
    entryX,
    entryW: width - M - entryX,
    out: [],
  };
  let y = header(c, options.title);
  y = addressBar(c, y + 8);
  y = walkRows(c, y + 14);
  if (options.legend ?? true) y = legend(c, y + 18);
  const height = y + 12;
  const summary = w.toString();
  return `<svg xmlns="http://www.w3.org/2000/svg"${
    attrs({
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": `${id}-title`,
      "font-family": FONT_SANS,
      "font-size": 12,
      fill: COLORS.ink,
    })
  }>${el("title", { id: `${id}-title` }, escapeXml(summary))}${defs(id)}${
    el("rect", { width, height, fill: "#ffffff" })
  }${c.out.join("")}</svg>`;
}

function defaultId(w: Walk): string {
  const steps = w.steps.map((s) => `${s.entryAddress}:${s.entry}`).join(",");
  return "mv-w" +
    hashId(
      `${w.format.name}|${w.root}|${w.va.toHex()}|${w.access.kind}|${w.access.user}|${steps}|${w.outcome.kind}|${w.resumed?.level}`,
    );
}

function defs(id: string): string {
  const marker = (name: string, color: string) =>
    el(
      "marker",
      {
        id: `${id}-${name}`,
        viewBox: "0 0 10 10",
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: "auto-start-reverse",
      },
      el("path", { d: "M0,0 L10,5 L0,10 z", fill: color }),
    );
  return el(
    "defs",
    {},
    marker("arrow", COLORS.line) + marker("arrow-grey", COLORS.cached.stroke) +
      marker("arrow-ok", COLORS.ok.stroke),
  );
}

function accessText(w: Walk): string {
  const a = w.access;
  const who = a.implicit
    ? "implicit supervisor"
    : a.user
    ? "user"
    : "supervisor";
  return `${who} ${a.kind}${a.ac ? " (EFLAGS.AC = 1)" : ""}`;
}

function header(c: Ctx, title: string | undefined): number {
  const w = c.w;
  c.out.push(
    text(M, 26, title ?? `Page walk of ${w.va.toHex()}`, {
      "font-size": 17,
      "font-weight": "bold",
    }),
  );
  const mode = w.mode;
  const notes = [
    mode.wp ? "" : "CR0.WP = 0",
    mode.smep ? "CR4.SMEP = 1" : "",
    mode.smap ? "CR4.SMAP = 1" : "",
    mode.pke ? "CR4.PKE = 1" : "",
  ].filter((x) => x !== "");
  c.out.push(
    spans(
      M,
      46,
      span(`${w.format.name} · ${accessText(w)} · root table (CR3) `) +
        span(hexPhys(w.root), { "font-family": FONT_MONO }) +
        (notes.length ? span(` · ${notes.join(", ")}`) : ""),
      { "font-size": 12, fill: COLORS.muted },
    ),
  );
  return 50;
}

// ------------------------------------------------------------ address bar

const BAND_H = 72;

function addressBar(c: Ctx, y0: number): number {
  const w = c.w;
  const f = w.format;
  const leaf = w.steps.find((s) => s.leaf);
  const leafShift = leaf ? shiftOf(w, leaf.level) : f.pageShift;
  const bands: Band[] = [];
  if (f.canonical === "sign" && f.vaBits < 64) {
    const top = w.va.toBigInt() >> BigInt(f.vaBits);
    const n = 64 - f.vaBits;
    const bad = w.outcome.kind === "gp" &&
      w.outcome.reason === "non-canonical";
    bands.push({
      label: "sign extension",
      level: -1,
      hi: 63,
      lo: f.vaBits,
      bin: binary(top, n),
      value: bad ? "not canonical" : `= bit ${f.vaBits - 1}`,
      state: bad ? "bad" : "normal",
      x: 0,
      w: 0,
    });
  }
  for (const fl of w.fields) {
    const hex = "0x" + fl.value.toString(16);
    bands.push({
      label: fl.level === 0 ? "offset" : fl.name,
      level: fl.level,
      hi: fl.shift + fl.bits - 1,
      lo: fl.shift,
      bin: binary(fl.value, fl.bits),
      value: fl.level === 0 ? hex : `${fl.value} · ${hex}`,
      state: fl.level > 0 && fl.shift < leafShift ? "offset-part" : "normal",
      x: 0,
      w: 0,
    });
  }
  layoutBands(bands, M, c.width - 2 * M);
  for (const b of bands) {
    c.out.push(
      `<g${attrs({ "data-field": b.label, "data-bits": `${b.hi}:${b.lo}` })}>`,
    );
    const col = b.state === "bad"
      ? COLORS.fault
      : b.level < 0
      ? COLORS.cached
      : b.state === "offset-part"
      ? levelColor(0)
      : levelColor(b.level);
    const edge = b.level > 0 ? levelColor(b.level).stroke : col.stroke;
    c.out.push(
      el("rect", {
        x: b.x,
        y: y0,
        width: b.w,
        height: BAND_H,
        fill: col.fill,
        stroke: edge,
        "stroke-width": b.state === "bad" ? 2.5 : 1.2,
        "stroke-dasharray": b.state === "offset-part" ? "4 3" : undefined,
      }),
    );
    const cx = b.x + b.w / 2;
    const mid = { "text-anchor": "middle" };
    c.out.push(
      text(cx, y0 + 17, b.label, {
        ...mid,
        "font-weight": "bold",
        fill: b.level > 0 ? levelColor(b.level).text : col.text,
      }),
      text(cx, y0 + 31, bitRange(b.hi, b.lo), {
        ...mid,
        "font-size": 10,
        fill: COLORS.muted,
      }),
    );
    if (monoWidth(b.bin, 11) <= b.w - 8) {
      c.out.push(
        text(cx, y0 + 47, b.bin, {
          ...mid,
          "font-family": FONT_MONO,
          "font-size": 11,
          fill: COLORS.ink,
        }),
      );
    }
    const value = monoWidth(b.value, 12) <= b.w - 8
      ? b.value
      : b.value.split(" · ")[0];
    c.out.push(
      text(cx, y0 + 64, value, {
        ...mid,
        "font-family": FONT_MONO,
        "font-weight": "bold",
        fill: b.state === "bad" ? COLORS.fault.text : COLORS.ink,
      }),
      "</g>",
    );
  }
  let y = y0 + BAND_H;
  // A large page: the index fields below the leaf are part of the offset.
  if (leaf && leafShift > f.pageShift) {
    const first = bands.find((b) => b.state === "offset-part");
    if (first) {
      const x1 = first.x + 3, x2 = M + (c.width - 2 * M) - 3;
      const off = w.va.toBigInt() & ((1n << BigInt(leafShift)) - 1n);
      const col = COLORS.ok.stroke;
      c.out.push(
        el("path", {
          d: `M${num(x1)},${y + 4} v7 H${num(x2)} v-7`,
          fill: "none",
          stroke: col,
          "stroke-width": 1.5,
        }),
        text(
          (x1 + x2) / 2,
          y + 25,
          `offset within the ${sizeName(2 ** leafShift)} page: ${
            bitRange(leafShift - 1, 0)
          } = 0x${off.toString(16)}`,
          { "text-anchor": "middle", "font-size": 11, fill: COLORS.ok.text },
        ),
      );
      y += 28;
    }
  }
  return y;
}

function shiftOf(w: Walk, level: number): number {
  const l = w.format.levels[w.format.levels.length - level];
  return l ? l.shift : w.format.pageShift;
}

/** Widths proportional to bits + 6, but never below what the text needs. */
function layoutBands(bands: Band[], x0: number, total: number): void {
  const need = bands.map((b) =>
    Math.max(
      sansWidth(b.label, 12) * 1.1,
      monoWidth(b.value.split(" · ")[0], 12),
      monoWidth(b.bin, 11) > 140 ? 0 : monoWidth(b.bin, 11),
      40,
    ) + 12
  );
  const weight = bands.map((b) => b.hi - b.lo + 1 + 6);
  const fixed = new Array<boolean>(bands.length).fill(false);
  for (let round = 0; round < bands.length; round++) {
    let free = total, wsum = 0;
    bands.forEach((_, i) => {
      if (fixed[i]) free -= need[i];
      else wsum += weight[i];
    });
    let changed = false;
    bands.forEach((b, i) => {
      if (fixed[i]) {
        b.w = need[i];
        return;
      }
      b.w = free * weight[i] / wsum;
      if (b.w < need[i]) {
        fixed[i] = true;
        changed = true;
      }
    });
    if (!changed) break;
  }
  let x = x0;
  bands.forEach((b, i) => {
    b.x = Math.round(x);
    const end = i === bands.length - 1 ? x0 + total : Math.round(x + b.w);
    b.w = end - b.x;
    x = end;
  });
}

// ------------------------------------------------------------------ rows

type Item =
  | { kind: "cached"; level: number }
  | { kind: "step"; step: WalkStep }
  | { kind: "unreached"; level: number };

function walkRows(c: Ctx, y0: number): number {
  const w = c.w;
  const f = w.format;
  const leaf = w.steps.find((s) => s.leaf);
  const items: Item[] = [];
  if (w.steps.length > 0 || w.outcome.kind !== "gp") {
    for (const l of f.levels) {
      const step = w.steps.find((s) => s.level === l.level);
      if (w.resumed && l.level > w.resumed.level) {
        items.push({ kind: "cached", level: l.level });
      } else if (step) items.push({ kind: "step", step });
      else if (leaf && l.level < leaf.level) continue;
      else items.push({ kind: "unreached", level: l.level });
    }
  }
  let y = y0;
  if (items.length > 0) {
    // CR3 names the root table.
    const label = `CR3 → ${hexPhys(w.root)}`;
    const tw = monoWidth(label, 11) + 16;
    const tx = M + (TABLE_W - tw) / 2;
    const grey = items[0].kind !== "step";
    c.out.push(
      el("rect", {
        x: Math.round(tx),
        y,
        width: Math.round(tw),
        height: 20,
        rx: 10,
        fill: grey ? COLORS.cached.fill : "#ffffff",
        stroke: grey ? COLORS.cached.stroke : COLORS.line,
      }),
      text(M + TABLE_W / 2, y + 14, label, {
        "text-anchor": "middle",
        "font-family": FONT_MONO,
        "font-size": 11,
        fill: grey ? COLORS.cached.text : COLORS.ink,
      }),
    );
    y = vArrow(c, y + 20, y + 34, grey);
  }
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const next = items[i + 1];
    if (it.kind === "cached") {
      c.out.push(`<g data-role="cached" data-level="${it.level}">`);
      cachedRow(c, it.level, y);
      c.out.push("</g>");
      y += SMALL_H + 10;
      if (next) {
        const to = y + 24;
        vArrow(c, y, to, true);
        if (next.kind === "step") {
          c.out.push(
            spans(
              M + TABLE_W / 2 + 10,
              y + 15,
              span("resumes at ") +
                span(hexPhys(next.step.tableBase), {
                  "font-family": FONT_MONO,
                }) +
                span(
                  w.resumed?.source === "pdpte-register"
                    ? " (from the PDPTE register)"
                    : " (from the paging-structure cache)",
                ),
              { "font-size": 10, fill: COLORS.cached.text },
            ),
          );
        }
        y = to;
      }
    } else if (it.kind === "step") {
      const fault = isFaultStep(w, it.step) ? ' data-fault="true"' : "";
      c.out.push(`<g data-role="step" data-level="${it.step.level}"${fault}>`);
      stepRow(c, it.step, y);
      c.out.push("</g>");
      y += ROW_H;
      const s = it.step;
      const linked = s.flags.present && !isFaultStep(w, s) &&
        (next?.kind === "step" || (s.leaf && w.outcome.kind === "ok"));
      if (linked) {
        elbow(c, y, y + ROW_GAP, s.leaf);
        y += ROW_GAP;
      } else y += 10;
    } else {
      c.out.push(`<g data-role="unreached" data-level="${it.level}">`);
      unreachedRow(c, it.level, y);
      c.out.push("</g>");
      y += SMALL_H + 6;
    }
  }
  c.out.push(`<g data-role="outcome" data-kind="${w.outcome.kind}">`);
  const end = outcomeBox(c, items.length > 0 ? y + 4 : y);
  c.out.push("</g>");
  return end;
}

function vArrow(c: Ctx, y1: number, y2: number, grey: boolean): number {
  const x = M + TABLE_W / 2;
  c.out.push(
    el("line", {
      x1: x,
      y1,
      x2: x,
      y2: y2 - 1,
      stroke: grey ? COLORS.cached.stroke : COLORS.line,
      "stroke-width": 1.5,
      "stroke-dasharray": grey ? "4 3" : undefined,
      "marker-end": `url(#${c.id}-${grey ? "arrow-grey" : "arrow"})`,
    }),
  );
  return y2;
}

/** From an entry box's bottom to the next table (or frame) box's top. */
function elbow(c: Ctx, y1: number, y2: number, ok: boolean): void {
  const xs = c.entryX + 34, xe = M + TABLE_W / 2, ym = y1 + (y2 - y1) / 2;
  c.out.push(
    el("path", {
      d: `M${num(xs)},${num(y1)} V${num(ym)} H${num(xe)} V${num(y2 - 1)}`,
      fill: "none",
      stroke: ok ? COLORS.ok.stroke : COLORS.line,
      "stroke-width": 1.5,
      "marker-end": `url(#${c.id}-${ok ? "arrow-ok" : "arrow"})`,
    }),
  );
}

function isFaultStep(w: Walk, s: WalkStep): boolean {
  const o = w.outcome;
  const last = w.steps[w.steps.length - 1] === s;
  if (o.kind === "page-fault") return last && o.level === s.level;
  return o.kind === "gp" && last;
}

function tableBox(
  c: Ctx,
  y: number,
  h: number,
  col: LevelColor,
  dashed: boolean,
): void {
  c.out.push(
    el("rect", {
      x: M,
      y,
      width: TABLE_W,
      height: h,
      rx: 6,
      fill: col.fill,
      stroke: col.stroke,
      "stroke-width": 1.2,
      "stroke-dasharray": dashed ? "4 3" : undefined,
    }),
  );
  if (!dashed) {
    c.out.push(
      el("rect", { x: M, y, width: 6, height: h, rx: 2, fill: col.stroke }),
    );
  }
}

function cachedRow(c: Ctx, level: number, y: number): void {
  const w = c.w;
  const spec = w.format.levels[w.format.levels.length - level];
  const field = w.fields.find((fl) => fl.level === level);
  const g = COLORS.cached;
  tableBox(c, y, SMALL_H + 10, g, true);
  c.out.push(
    spans(
      M + 14,
      y + 23,
      span(spec.table, { "font-weight": "bold" }) +
        span(` · level ${level} · cached`, { "font-size": 11 }),
      { fill: g.text },
    ),
  );
  c.out.push(
    el("rect", {
      x: c.entryX,
      y,
      width: c.entryW,
      height: SMALL_H + 10,
      rx: 6,
      fill: g.fill,
      stroke: g.stroke,
      "stroke-dasharray": "4 3",
    }),
  );
  const why = w.resumed?.source === "pdpte-register"
    ? "held in the PDPTE registers since MOV to CR3"
    : "its translation came from the paging-structure cache";
  c.out.push(
    spans(
      c.entryX + 10,
      y + 23,
      span(`${spec.entry}[${field?.value ?? "?"}]`, {
        "font-family": FONT_MONO,
        "font-weight": "bold",
      }) + span(` not read from memory: ${why}`),
      { fill: g.text, "font-size": 11 },
    ),
  );
}

function unreachedRow(c: Ctx, level: number, y: number): void {
  const w = c.w;
  const spec = w.format.levels[w.format.levels.length - level];
  const g = COLORS.cached;
  const o = w.outcome;
  const why = o.kind === "gp"
    ? "#GP before the walk got here"
    : "the walk stopped above";
  c.out.push(
    el("rect", {
      x: M,
      y,
      width: c.width - 2 * M,
      height: SMALL_H,
      rx: 6,
      fill: "#fafafa",
      stroke: "#d1d5db",
      "stroke-dasharray": "2 3",
    }),
    spans(
      M + 14,
      y + 17,
      span(spec.table, { "font-weight": "bold" }) +
        span(` · level ${level} · not reached (${why})`),
      { fill: g.text, "font-size": 11 },
    ),
  );
}

interface Badge {
  key: keyof EntryFlags;
  label: string;
  title: string;
}

const BADGES: readonly Badge[] = [
  { key: "present", label: "P", title: "P: present" },
  { key: "writable", label: "RW", title: "R/W: writes allowed" },
  { key: "user", label: "US", title: "U/S: user-mode access allowed" },
  { key: "accessed", label: "A", title: "A: accessed" },
  { key: "dirty", label: "D", title: "D: dirty (written)" },
  { key: "pageSize", label: "PS", title: "PS: this entry maps a page" },
  { key: "global", label: "G", title: "G: global translation" },
  { key: "noExec", label: "XD", title: "XD: execute-disable" },
  { key: "exec", label: "X", title: "X: executable" },
];

type BadgeStyle = "on" | "off" | "set-now" | "culprit-on" | "culprit-off";

function badge(
  c: Ctx,
  x: number,
  y: number,
  label: string,
  style: BadgeStyle,
  title: string,
): number {
  const wd = Math.round(monoWidth(label, 10) + 10);
  const s = {
    "on": { fill: "#334155", stroke: "#334155", text: "#ffffff" },
    "off": { fill: "#ffffff", stroke: "#cbd5e1", text: "#94a3b8" },
    "set-now": {
      fill: COLORS.setByWalk.fill,
      stroke: COLORS.setByWalk.stroke,
      text: COLORS.setByWalk.text,
    },
    "culprit-on": {
      fill: COLORS.fault.stroke,
      stroke: COLORS.fault.stroke,
      text: "#ffffff",
    },
    "culprit-off": {
      fill: "#ffffff",
      stroke: COLORS.fault.stroke,
      text: COLORS.fault.stroke,
    },
  }[style];
  c.out.push(
    el(
      "g",
      { "data-flag": label, "data-state": style },
      el("title", {}, escapeXml(title)) +
        el("rect", {
          x,
          y,
          width: wd,
          height: 16,
          rx: 3,
          fill: s.fill,
          stroke: s.stroke,
          "stroke-width": style.startsWith("culprit") ? 2 : 1,
        }) +
        text(x + wd / 2, y + 12, label, {
          "text-anchor": "middle",
          "font-family": FONT_MONO,
          "font-size": 10,
          "font-weight": "bold",
          fill: s.text,
        }),
    ),
  );
  return x + wd + 4;
}

/** The entry and badge that explain a fault, if one does. */
function culprit(
  w: Walk,
): { step: WalkStep; key: keyof EntryFlags } | undefined {
  const o = w.outcome;
  if (o.kind !== "page-fault") return undefined;
  const steps = w.steps;
  const last = steps[steps.length - 1];
  const first = (p: (s: WalkStep) => boolean) => steps.find(p);
  let step: WalkStep | undefined;
  let key: keyof EntryFlags | undefined;
  switch (o.reason) {
    case "not-present":
      return last ? { step: last, key: "present" } : undefined;
    case "write-protect":
      step = first((s) => !s.rights.writable);
      key = "writable";
      break;
    case "user-supervisor":
      step = first((s) => !s.rights.user);
      key = "user";
      break;
    case "no-execute":
      step = first((s) => !s.rights.executable);
      key = step?.flags.exec !== undefined ? "exec" : "noExec";
      break;
    case "smep":
    case "smap":
      step = last;
      key = "user";
      break;
    case "pkey":
      step = last;
      key = "pkey";
      break;
    default:
      return undefined;
  }
  return step && key ? { step, key } : undefined;
}

/** Teaching formats name frames by number (OSTEP: "PFN 0x0c"). */
function pfn(w: Walk, address: number): string {
  if (w.format.kind !== "radix") return "";
  const n = Math.floor(address / 2 ** w.format.pageShift);
  return span(` (PFN ${n} = 0x${n.toString(16)})`, { fill: COLORS.muted });
}

function reservedBits(w: Walk, s: WalkStep): number[] {
  const t = w.mode.tables;
  const ps = w.format.bits.pageSize;
  const psSet = ps >= 0 && ((s.entry >> BigInt(ps)) & 1n) === 1n;
  const k = 2 * s.level + (psSet ? 1 : 0);
  const mask = (BigInt(t.rsvdHi[k] ?? 0) << 32n) | BigInt(t.rsvdLo[k] ?? 0);
  const hit = s.entry & mask;
  const out: number[] = [];
  for (let b = 0; b < 64; b++) if ((hit >> BigInt(b)) & 1n) out.push(b);
  return out;
}

function stepRow(c: Ctx, s: WalkStep, y: number): void {
  const w = c.w;
  const f = w.format;
  const col = levelColor(s.level);
  const fault = isFaultStep(w, s);
  const spec = f.levels[f.levels.length - s.level];
  tableBox(c, y, ROW_H, col, false);
  c.out.push(
    spans(
      M + 14,
      y + 21,
      span(s.table, { "font-weight": "bold", "font-size": 14 }) +
        span(`  level ${s.level}`, { "font-size": 11, fill: COLORS.muted }),
      { fill: col.text },
    ),
    spans(
      M + 14,
      y + 39,
      span("base ") +
        span(hexPhys(s.tableBase), {
          "font-family": FONT_MONO,
          "font-weight": "bold",
        }),
      { "font-size": 11 },
    ),
    text(
      M + 14,
      y + 56,
      `${2 ** spec.bits} entries × ${f.entryBytes} B`,
      { "font-size": 10, fill: COLORS.muted },
    ),
  );
  // table base + index × entry size = entry address
  const ly = y + 34;
  c.out.push(
    el("line", {
      x1: M + TABLE_W,
      y1: ly,
      x2: c.entryX - 2,
      y2: ly,
      stroke: col.stroke,
      "stroke-width": 1.5,
      "marker-end": `url(#${c.id}-arrow)`,
    }),
    text(
      M + TABLE_W + LINK_W / 2,
      ly - 6,
      `+ ${s.index} × ${f.entryBytes}`,
      {
        "text-anchor": "middle",
        "font-family": FONT_MONO,
        "font-size": 10,
        fill: col.text,
      },
    ),
    text(M + TABLE_W + LINK_W / 2, ly + 14, "index", {
      "text-anchor": "middle",
      "font-size": 10,
      fill: COLORS.muted,
    }),
  );
  // the entry
  c.out.push(
    el("rect", {
      x: c.entryX,
      y,
      width: c.entryW,
      height: ROW_H,
      rx: 6,
      fill: fault ? COLORS.fault.fill : "#ffffff",
      stroke: fault ? COLORS.fault.stroke : col.stroke,
      "stroke-width": fault ? 2.5 : 1.5,
    }),
  );
  const ex = c.entryX + 10;
  const bin = f.entryBytes <= 2
    ? ` (${binary(s.entry, f.entryBytes * 8).replace(/(....)(?=.)/g, "$1 ")})`
    : "";
  c.out.push(
    spans(
      ex,
      y + 20,
      span(`${s.entryName}[${s.index}]`, {
        "font-weight": "bold",
        fill: col.text,
      }) +
        span(` @ ${hexPhys(s.entryAddress)}`, { fill: COLORS.muted }) +
        span(" = ") +
        span(hexEntry(s.entry, f.entryBytes), { "font-weight": "bold" }) +
        span(bin, { fill: COLORS.muted }),
      { "font-family": FONT_MONO, "font-size": 12 },
    ),
  );
  // flag badges
  const cul = culprit(w);
  const hasRights = w.mode.tables.hasRights[s.level] === 1;
  let bx = ex;
  const by = y + 28;
  for (const b of BADGES) {
    const v = s.flags[b.key];
    if (v === undefined) continue;
    if (!s.flags.present && b.key !== "present") continue;
    if (
      !hasRights &&
      (b.key === "writable" || b.key === "user" || b.key === "noExec" ||
        b.key === "exec")
    ) continue;
    const setNow = (b.key === "accessed" && s.accessedSet) ||
      (b.key === "dirty" && s.dirtySet);
    const isCulprit = cul?.step === s && cul.key === b.key;
    const style: BadgeStyle = isCulprit
      ? (v ? "culprit-on" : "culprit-off")
      : setNow
      ? "set-now"
      : v
      ? "on"
      : "off";
    const title = `${b.title} = ${setNow ? "1 (set by this walk)" : v ? 1 : 0}`;
    bx = badge(c, bx, by, b.label, style, title);
  }
  if (
    s.flags.present && s.flags.pkey !== undefined &&
    (w.mode.pke || s.flags.pkey !== 0)
  ) {
    const isCulprit = cul?.step === s && cul.key === "pkey";
    bx = badge(
      c,
      bx,
      by,
      `PK ${s.flags.pkey}`,
      isCulprit ? "culprit-on" : s.flags.pkey ? "on" : "off",
      `protection key ${s.flags.pkey}`,
    );
  }
  // rights accumulated so far (the AND down the path); radix formats
  // without permission bits have nothing to accumulate
  const fb = f.bits;
  const rightsBits = fb.writable >= 0 || fb.user >= 0 || fb.noExec >= 0 ||
    fb.exec >= 0;
  if (s.flags.present && rightsBits) {
    let rx = Math.max(bx + 14, ex + 250);
    c.out.push(
      text(rx, by + 12, "rights so far", {
        "font-size": 10,
        fill: COLORS.muted,
      }),
    );
    rx += 70;
    const chips: [string, boolean, string][] = [
      ["W", s.rights.writable, "writable"],
      ["U", s.rights.user, "user-accessible"],
      ["X", s.rights.executable, "executable"],
    ];
    for (const [label, on, what] of chips) {
      const cw = 18;
      c.out.push(
        el(
          "g",
          {},
          el("title", {}, escapeXml(`${on ? "" : "not "}${what} so far`)) +
            el("rect", {
              x: rx,
              y: by,
              width: cw,
              height: 16,
              rx: 8,
              fill: on ? COLORS.ok.fill : "#ffffff",
              stroke: on ? COLORS.ok.stroke : "#cbd5e1",
            }) +
            text(rx + cw / 2, by + 12, label, {
              "text-anchor": "middle",
              "font-family": FONT_MONO,
              "font-size": 10,
              "font-weight": "bold",
              fill: on ? COLORS.ok.text : "#94a3b8",
            }) +
            (on ? "" : el("line", {
              x1: rx + 4,
              y1: by + 13,
              x2: rx + cw - 4,
              y2: by + 3,
              stroke: "#94a3b8",
            })),
        ),
      );
      rx += cw + 4;
    }
  }
  // what the entry leads to, or why the walk stopped here
  const ty = y + 59;
  if (fault) {
    const reason = stepReason(w) ?? "none";
    let detail = REASON[reason];
    if (reason === "reserved-bit" || reason === "pdpte-reserved") {
      const rb = reservedBits(w, s);
      if (rb.length) {
        detail += ` (${rb.length > 1 ? "bits" : "bit"} ${rb.join(", ")})`;
      }
    }
    const line = `✗ walk stops here: ${detail}`;
    c.out.push(
      text(ex, ty, line, {
        "font-size": sansWidth(line, 11) * 1.1 > c.entryW - 20 ? 10 : 11,
        "font-weight": "bold",
        fill: COLORS.fault.text,
      }),
    );
  } else if (s.leaf) {
    const size = sizeName(2 ** spec.shift);
    c.out.push(
      spans(
        ex,
        ty,
        span(`→ ${size} page at `) +
          span(hexPhys(s.flags.address), {
            "font-family": FONT_MONO,
            "font-weight": "bold",
          }) +
          pfn(w, s.flags.address) +
          span(s.level > 1 ? " (PS = 1: a large page)" : ""),
        { "font-size": 11 },
      ),
    );
  } else if (s.flags.present) {
    const next = f.levels[f.levels.length - s.level + 1];
    c.out.push(
      spans(
        ex,
        ty,
        span(`→ next table ${next?.table ?? ""} at `) +
          span(hexPhys(s.flags.address), {
            "font-family": FONT_MONO,
            "font-weight": "bold",
          }) + pfn(w, s.flags.address),
        { "font-size": 11 },
      ),
    );
  }
  const ad = [s.accessedSet ? "A" : "", s.dirtySet ? "D" : ""].filter((x) => x);
  if (ad.length) {
    c.out.push(
      text(
        c.entryX + c.entryW - 10,
        y + 20,
        `${ad.join(" and ")} set by this walk`,
        {
          "text-anchor": "end",
          "font-size": 11,
          "font-weight": "bold",
          fill: COLORS.setByWalk.stroke,
        },
      ),
    );
  }
}

// --------------------------------------------------------------- outcome

function errorCodeChips(
  c: Ctx,
  x: number,
  y: number,
  e: PageFaultErrorCode,
): void {
  const bits: [string, boolean, string][] = [
    ["P", e.p, "bit 0 P: protection violation (0: not present)"],
    ["W", e.w, "bit 1 W/R: write access"],
    ["U", e.u, "bit 2 U/S: user-mode access"],
    ["RSVD", e.rsvd, "bit 3 RSVD: reserved bit set"],
    ["I/D", e.id, "bit 4 I/D: instruction fetch"],
    ["PK", e.pk, "bit 5 PK: protection-key violation"],
  ];
  for (const [label, on, title] of bits) {
    x = badge(
      c,
      x,
      y,
      `${label}=${on ? 1 : 0}`,
      on ? "culprit-on" : "off",
      `${title} = ${on ? 1 : 0}`,
    );
  }
}

function outcomeBox(c: Ctx, y: number): number {
  const w = c.w;
  const o = w.outcome;
  const maxChars = Math.floor((c.entryW - 20) / (11 * SANS_W));
  if (o.kind === "ok") {
    const g = COLORS.ok;
    const leafShift = Math.log2(o.pageSize);
    const frame = o.pa - (o.pa % o.pageSize);
    const off = o.pa - frame;
    tableBox(c, y, ROW_H, g, false);
    c.out.push(
      text(M + 14, y + 21, "page frame", {
        "font-weight": "bold",
        "font-size": 14,
        fill: g.text,
      }),
      text(M + 14, y + 39, hexPhys(frame), {
        "font-family": FONT_MONO,
        "font-weight": "bold",
        "font-size": 11,
      }),
      text(M + 14, y + 56, `${sizeName(o.pageSize)} page`, {
        "font-size": 10,
        fill: COLORS.muted,
      }),
    );
    const ly = y + 34;
    c.out.push(
      el("line", {
        x1: M + TABLE_W,
        y1: ly,
        x2: c.entryX - 2,
        y2: ly,
        stroke: g.stroke,
        "stroke-width": 1.5,
        "marker-end": `url(#${c.id}-arrow-ok)`,
      }),
      text(M + TABLE_W + LINK_W / 2, ly - 6, `+ ${hexPhys(off)}`, {
        "text-anchor": "middle",
        "font-family": FONT_MONO,
        "font-size": 10,
        fill: g.text,
      }),
      text(M + TABLE_W + LINK_W / 2, ly + 14, "offset", {
        "text-anchor": "middle",
        "font-size": 10,
        fill: COLORS.muted,
      }),
    );
    const r = o.rights;
    const aSet = w.steps.filter((s) => s.accessedSet).map((s) => s.entryName);
    const dSet = w.steps.filter((s) => s.dirtySet).map((s) => s.entryName);
    const lines = [
      `${r.writable ? "read/write" : "read-only"}, ${
        r.user ? "user" : "supervisor-only"
      }, ${r.executable ? "executable" : "no-execute"}${
        o.global ? ", global" : ""
      }${w.mode.pke ? `, protection key ${o.pkey}` : ""}`,
    ];
    const ad = [
      aSet.length ? `A set in ${aSet.join(", ")}` : "",
      dSet.length ? `D set in ${dSet.join(", ")}` : "",
    ].filter((x) => x).join("; ");
    const h = ad ? ROW_H + 16 : ROW_H;
    c.out.push(
      el("rect", {
        x: c.entryX,
        y,
        width: c.entryW,
        height: h,
        rx: 6,
        fill: g.fill,
        stroke: g.stroke,
        "stroke-width": 2,
      }),
      spans(
        c.entryX + 10,
        y + 22,
        span(hexPhys(o.pa), {
          "font-family": FONT_MONO,
          "font-weight": "bold",
          "font-size": 17,
        }) +
          span("  physical address", { "font-size": 12, fill: g.text }),
        { fill: COLORS.ink },
      ),
      text(
        c.entryX + 10,
        y + 40,
        `= frame ${hexPhys(frame)} + offset ${hexPhys(off)} (${
          bitRange(leafShift - 1, 0)
        })`,
        { "font-family": FONT_MONO, "font-size": 11 },
      ),
      text(c.entryX + 10, y + 57, lines[0], { "font-size": 11 }),
    );
    if (ad) {
      c.out.push(
        text(c.entryX + 10, y + 73, `${ad} (by this walk)`, {
          "font-size": 11,
          "font-weight": "bold",
          fill: COLORS.setByWalk.stroke,
        }),
      );
    }
    return y + h;
  }
  const red = COLORS.fault;
  const lines: string[] = [];
  let title: string, sub: string;
  if (o.kind === "page-fault") {
    title = "#PF";
    sub = "page fault (vector 14)";
    const e = o.errorCode;
    const parts = [
      `P=${e.p ? 1 : 0}: ${e.p ? "protection violation" : "not present"}`,
      `W=${e.w ? 1 : 0}: ${e.w ? "write" : "read"}`,
      `U=${e.u ? 1 : 0}: ${e.u ? "user mode" : "supervisor mode"}`,
    ];
    if (e.rsvd) parts.push("RSVD=1: reserved bit set");
    if (e.id) parts.push("I/D=1: instruction fetch");
    if (e.pk) parts.push("PK=1: protection key");
    lines.push(...wrap(parts.join(" · "), maxChars));
    const at = o.level > 0
      ? ` at ${w.steps.find((s) => s.level === o.level)?.entryName ?? ""}`
      : "";
    lines.push(
      ...wrap(`CR2 = ${o.cr2.toHex()} · ${REASON[o.reason]}${at}`, maxChars),
    );
  } else {
    title = "#GP(0)";
    sub = "general protection (vector 13)";
    lines.push(...wrap(REASON[o.reason] + ": " + w.va.toHex(), maxChars));
    const f = w.format;
    lines.push(
      ...wrap(
        o.reason === "non-canonical"
          ? `bits 63:${f.vaBits - 1} must all equal bit ${
            f.vaBits - 1
          }; no table is read and no #PF is raised`
          : "PAE loads the four PDPTEs into registers at MOV to CR3 and checks them there: a reserved bit gives #GP, not #PF",
        maxChars,
      ),
    );
  }
  const top = o.kind === "page-fault" ? 30 : 8;
  const h = Math.max(ROW_H, top + 18 * lines.length + 10);
  tableBox(c, y, h, red, false);
  c.out.push(
    text(M + 14, y + 28, title, {
      "font-size": 22,
      "font-weight": "bold",
      fill: red.stroke,
    }),
    text(M + 14, y + 48, sub, { "font-size": 11, fill: red.text }),
    el("rect", {
      x: c.entryX,
      y,
      width: c.entryW,
      height: h,
      rx: 6,
      fill: red.fill,
      stroke: red.stroke,
      "stroke-width": 2,
    }),
  );
  if (o.kind === "page-fault") {
    const hex = "0x" + o.errorCode.value.toString(16);
    c.out.push(
      spans(
        c.entryX + 10,
        y + 21,
        span("error code ") +
          span(hex, { "font-family": FONT_MONO, "font-weight": "bold" }),
        { "font-size": 13, fill: red.text },
      ),
    );
    errorCodeChips(
      c,
      c.entryX + 20 + sansWidth("error code ", 13) + monoWidth(hex, 13),
      y + 8,
      o.errorCode,
    );
  }
  lines.forEach((line, i) => {
    c.out.push(
      text(c.entryX + 10, y + top + 14 + 18 * i, line, {
        "font-size": 11,
        fill: red.text,
      }),
    );
  });
  return y + h;
}

// ---------------------------------------------------------------- legend

function legend(c: Ctx, y: number): number {
  let x = M;
  c.out.push('<g data-role="legend">');
  const label = (s: string) => {
    c.out.push(
      text(x, y + 12, s, { "font-size": 10, fill: COLORS.muted }),
    );
    x += sansWidth(s, 10) + 16;
  };
  x = badge(c, x, y, "P", "on", "bit set");
  label("bit set");
  x = badge(c, x, y, "P", "off", "bit clear");
  label("bit clear");
  x = badge(c, x, y, "A", "set-now", "set by this walk");
  label("set by this walk");
  x = badge(c, x, y, "RW", "culprit-off", "the bit that caused the fault");
  label("caused the fault");
  c.out.push(
    el("rect", {
      x,
      y,
      width: 24,
      height: 16,
      rx: 3,
      fill: COLORS.cached.fill,
      stroke: COLORS.cached.stroke,
      "stroke-dasharray": "4 3",
    }),
  );
  x += 30;
  label("cached or not reached");
  c.out.push("</g>");
  return y + 16;
}
