/**
 * Views of memory protection: a protection-check record (each check with
 * pass/fail and its rule), a descriptor table (GDT/LDT/IDT), Xen's
 * descriptor check, the x86-64 system-call bounce, and the 32-bit Xen
 * address-space strip (SVG) with the guest segment limits. Pure functions
 * of plain data; every string escaped; output bounded.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";
import { COLORS, FONT_MONO, FONT_SANS } from "./style.ts";
import { el, text } from "./svg.ts";
import type {
  ProtectionCheck,
  ProtectionOutcome,
  ProtectionRecord,
} from "../protect/record.ts";
import type { DescriptorTable } from "../protect/table.ts";
import {
  decodeDescriptor,
  decodeGate,
  describeSegment,
  hexDescriptor,
} from "../protect/descriptor.ts";

const hex = (v: number | bigint) => "0x" + v.toString(16);

/** What the record views read (a `ProtectionRecord` has it all). */
export type ProtectionRecordView = Pick<
  ProtectionRecord,
  "operation" | "checks" | "steps" | "outcome" | "notModelled"
>;

function outcomeText(o: ProtectionOutcome): string {
  if (o.kind === "fault") return o.message;
  const parts = ["ok"];
  if (o.linear !== undefined) parts.push(`linear ${hex(o.linear)}`);
  if (o.pa !== undefined) parts.push(`physical ${hex(o.pa)}`);
  parts.push(`CPL ${o.cpl}`);
  return parts.join(", ");
}

/**
 * A record as text: one line per check, then the steps and the outcome.
 *
 * @example
 * ```ts
 * import { protectionRecordToText } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const t = protectionRecordToText({ operation: "read", steps: [], notModelled: [],
 *   checks: [{ stage: "segmentation", name: "limit", passed: true, rule: "offset ≤ limit", detail: "4 ≤ 9" }],
 *   outcome: { kind: "ok", linear: 4, pa: 0x1004, cpl: 1 } });
 * assert.match(t, /✓ segmentation\s+limit/);
 * assert.match(t, /physical 0x1004/);
 * ```
 */
export function protectionRecordToText(r: ProtectionRecordView): string {
  const lines = [r.operation];
  for (const c of r.checks) {
    lines.push(
      `  ${c.passed ? "✓" : "✗"} ${c.stage.padEnd(12)} ${
        c.name.padEnd(16)
      } ${c.detail}`,
    );
  }
  for (const s of r.steps) lines.push(`  → ${s}`);
  lines.push(`  = ${outcomeText(r.outcome)}`);
  if (r.notModelled.length > 0) {
    lines.push(`  (not modelled: ${r.notModelled.join("; ")})`);
  }
  return lines.join("\n");
}

const TD =
  `style="border:1px solid #cbd5e1;padding:2px 6px;vertical-align:top"`;

function checkRow(c: ProtectionCheck): string {
  const col = c.passed ? COLORS.ok : COLORS.fault;
  return `<tr style="background:${col.fill}"><td ${TD}><b style="color:${col.stroke}">${
    c.passed ? "✓" : "✗"
  }</b></td><td ${TD}>${escapeXml(c.stage)}</td><td ${TD}><b>${
    escapeXml(c.name)
  }</b></td><td ${TD}>${escapeXml(c.rule)}</td><td ${TD} style="font-family:${
    escapeXml(FONT_MONO)
  }">${escapeXml(c.detail)}</td></tr>`;
}

/**
 * A record as an HTML table: each check (✓/✗, unit, name, rule, values),
 * the steps performed, the outcome, and what is not modelled.
 *
 * @example
 * ```ts
 * import { protectionRecordToHtml } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const h = protectionRecordToHtml({ operation: "read <x>", steps: ["push CS"], notModelled: ["TSS I/O bitmap"],
 *   checks: [{ stage: "segmentation", name: "limit", passed: false, rule: "offset ≤ limit", detail: "9 > 4" }],
 *   outcome: { kind: "fault", exception: "#GP", errorCode: 0, check: "limit", stage: "segmentation", message: "#GP(0x0): beyond" } });
 * assert.match(h, /read &lt;x&gt;/);
 * assert.match(h, /✗/);
 * assert.match(h, /not modelled: TSS I\/O bitmap/);
 * ```
 */
export function protectionRecordToHtml(r: ProtectionRecordView): string {
  const o = r.outcome;
  const col = o.kind === "ok" ? COLORS.ok : COLORS.fault;
  const rows = r.checks.map(checkRow).join("");
  const steps = r.steps.length === 0
    ? ""
    : `<ol style="margin:4px 0">${
      r.steps.map((s) => `<li>${escapeXml(s)}</li>`).join("")
    }</ol>`;
  const nm = r.notModelled.length === 0
    ? ""
    : `<div style="color:${COLORS.muted};font-size:90%">not modelled: ${
      escapeXml(r.notModelled.join("; "))
    }</div>`;
  return `<div class="mv-protect" style="font-family:${
    escapeXml(FONT_SANS)
  };font-size:13px"><div style="font-weight:bold;margin-bottom:4px">${
    escapeXml(r.operation)
  }</div><table style="border-collapse:collapse"><tr><th ${TD}></th><th ${TD}>unit</th><th ${TD}>check</th><th ${TD}>rule</th><th ${TD}>values</th></tr>${rows}</table>${steps}<div style="margin-top:4px;padding:3px 6px;border-left:4px solid ${col.stroke};background:${col.fill};color:${col.text}">${
    escapeXml(outcomeText(o))
  }</div>${nm}</div>`;
}

/** One decoded row of a descriptor table view. */
interface TableRow {
  index: number;
  raw: string;
  what: string;
  base: string;
  limit: string;
  dpl: number;
  flags: string;
}

function tableRows(t: DescriptorTable, max: number): {
  rows: TableRow[];
  used: number;
} {
  const used = t.usedIndices();
  const rows: TableRow[] = [];
  for (const i of used.slice(0, max)) {
    const [lo, hi] = t.read(i)!;
    const d = decodeDescriptor(lo, hi);
    const info = describeSegment(d);
    const gate = decodeGate(lo, hi);
    const flags = [
      d.present ? "P" : "not present",
      d.s ? (d.g ? "G" : "") : "",
      d.s ? (d.db ? "D/B" : "") : "",
      d.s && d.l ? "L" : "",
      d.s && info.accessed ? "A" : "",
    ].filter((x) => x !== "").join(" ");
    rows.push({
      index: i,
      raw: hexDescriptor(lo, hi),
      what: gate
        ? `${info.name} → ${hex(gate.selector)}:${hex(gate.offset)}`
        : info.name,
      base: gate ? "" : hex(d.base),
      limit: gate ? "" : hex(info.effectiveLimit),
      dpl: d.dpl,
      flags,
    });
  }
  return { rows, used: used.length };
}

/**
 * The non-empty entries of a descriptor table as text (at most
 * `maxRows`; the rest are counted).
 *
 * @example
 * ```ts
 * import { descriptorTableToText } from "./protect_html.ts";
 * import { DescriptorTable } from "../protect/table.ts";
 * import { segmentDescriptor } from "../protect/descriptor.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const gdt = new DescriptorTable(new PhysicalMemory({ size: 1 << 16 }), { base: 0 });
 * gdt.write(2, ...segmentDescriptor({ kind: "data", dpl: 3 }));
 * assert.match(descriptorTableToText(gdt), /\[2\] sel 0x10 .*data RW/);
 * ```
 */
export function descriptorTableToText(
  t: DescriptorTable,
  options: { maxRows?: number } = {},
): string {
  const { rows, used } = tableRows(t, options.maxRows ?? 32);
  const lines = [
    `${t.kind.toUpperCase()} at ${hex(t.base)}, limit ${
      hex(t.limit)
    }: ${used} of ${t.entries} entries in use`,
  ];
  for (const r of rows) {
    lines.push(
      `[${r.index}] sel ${hex(r.index * 8)} ${r.raw} ${r.what}${
        r.base ? ` base ${r.base} limit ${r.limit}` : ""
      } DPL ${r.dpl} ${r.flags}`,
    );
  }
  if (used > rows.length) {
    lines.push(`… ${used - rows.length} more entries not shown`);
  }
  return lines.join("\n");
}

/**
 * The non-empty entries of a descriptor table as an HTML table: index,
 * selector, raw value, type, base, effective limit, DPL, flags (empty
 * entries are counted in the header, not listed).
 *
 * @example
 * ```ts
 * import { descriptorTableToHtml } from "./protect_html.ts";
 * import { DescriptorTable } from "../protect/table.ts";
 * import { segmentDescriptor } from "../protect/descriptor.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const gdt = new DescriptorTable(new PhysicalMemory({ size: 1 << 16 }), { base: 0 });
 * gdt.write(1, ...segmentDescriptor({ kind: "code", dpl: 1, conforming: true }));
 * const h = descriptorTableToHtml(gdt, { labels: { 1: "ring-1 <code>" } });
 * assert.match(h, /code RX conforming/);
 * assert.match(h, /ring-1 &lt;code&gt;/);
 * assert.match(h, /1 of 8 entries in use/);
 * ```
 */
export function descriptorTableToHtml(
  t: DescriptorTable,
  options: { maxRows?: number; labels?: Record<number, string> } = {},
): string {
  const { rows, used } = tableRows(t, options.maxRows ?? 32);
  const mono = `font-family:${escapeXml(FONT_MONO)}`;
  const body = rows.map((r) => {
    const label = options.labels?.[r.index];
    return `<tr><td ${TD}>${r.index}</td><td ${TD} style="${mono}">${
      escapeXml(hex(r.index * 8))
    }</td><td ${TD} style="${mono}">${escapeXml(r.raw)}</td><td ${TD}>${
      escapeXml(r.what)
    }${
      label ? ` <i>(${escapeXml(label)})</i>` : ""
    }</td><td ${TD} style="${mono}">${
      escapeXml(r.base)
    }</td><td ${TD} style="${mono}">${
      escapeXml(r.limit)
    }</td><td ${TD}>${r.dpl}</td><td ${TD}>${escapeXml(r.flags)}</td></tr>`;
  }).join("");
  const more = used > rows.length
    ? `<div style="color:${COLORS.muted}">… ${
      used - rows.length
    } more entries not shown</div>`
    : "";
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  };font-size:13px"><div><b>${escapeXml(t.kind.toUpperCase())}</b> at ${
    escapeXml(hex(t.base))
  }, limit ${
    escapeXml(hex(t.limit))
  }: ${used} of ${t.entries} entries in use (empty entries not listed)</div><table style="border-collapse:collapse"><tr><th ${TD}>#</th><th ${TD}>selector</th><th ${TD}>descriptor</th><th ${TD}>type</th><th ${TD}>base</th><th ${TD}>limit</th><th ${TD}>DPL</th><th ${TD}>flags</th></tr>${body}</table>${more}<div style="color:${COLORS.muted};font-size:90%">not modelled: descriptor tables at physical addresses (GDTR holds a linear address on hardware)</div></div>`;
}

/** What the descriptor-check views read (an `xen.ts` DescriptorCheck has it). */
export interface DescriptorCheckView {
  /** Verdict. */
  readonly verdict: "accepted" | "truncated" | "refused";
  /** Why. */
  readonly reason: string;
  /** As given. */
  readonly given: readonly [number, number];
  /** As installed. */
  readonly installed?: readonly [number, number];
  /** Checks. */
  readonly checks: readonly ProtectionCheck[];
}

/**
 * Xen's descriptor check as text.
 *
 * @example
 * ```ts
 * import { descriptorCheckToText } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const t = descriptorCheckToText({ verdict: "refused", reason: "DPL 0", given: [0, 0x9200], checks: [] });
 * assert.match(t, /refused: DPL 0/);
 * ```
 */
export function descriptorCheckToText(c: DescriptorCheckView): string {
  const lines = [
    `check_descriptor ${
      hexDescriptor(c.given[0], c.given[1])
    }: ${c.verdict}: ${c.reason}`,
  ];
  for (const k of c.checks) {
    lines.push(`  ${k.passed ? "✓" : "✗"} ${k.name.padEnd(18)} ${k.detail}`);
  }
  if (c.installed && c.verdict === "truncated") {
    lines.push(`  installed ${hexDescriptor(c.installed[0], c.installed[1])}`);
  }
  return lines.join("\n");
}

/**
 * Xen's descriptor check as HTML.
 *
 * @example
 * ```ts
 * import { descriptorCheckToHtml } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const h = descriptorCheckToHtml({ verdict: "truncated", reason: "cut", given: [0xffff, 0xcff200],
 *   installed: [0xc3ff, 0xcff200], checks: [] });
 * assert.match(h, /0x00cff2000000c3ff/);
 * ```
 */
export function descriptorCheckToHtml(c: DescriptorCheckView): string {
  const col = c.verdict === "refused"
    ? COLORS.fault
    : c.verdict === "truncated"
    ? COLORS.setByWalk
    : COLORS.ok;
  const inst = c.installed && c.verdict === "truncated"
    ? ` → installed <code>${
      escapeXml(hexDescriptor(c.installed[0], c.installed[1]))
    }</code>`
    : "";
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  };font-size:13px"><div>check_descriptor <code>${
    escapeXml(hexDescriptor(c.given[0], c.given[1]))
  }</code>${inst}</div><table style="border-collapse:collapse">${
    c.checks.map(checkRow).join("")
  }</table><div style="margin-top:4px;padding:3px 6px;border-left:4px solid ${col.stroke};background:${col.fill}"><b>${
    escapeXml(c.verdict)
  }</b>: ${escapeXml(c.reason)}</div></div>`;
}

/** What the bounce views read of a step. */
export interface BounceStepView {
  /** Step name. */
  readonly name: string;
  /** Who runs. */
  readonly actor: string;
  /** CPL. */
  readonly cpl: number;
  /** Table CR3 names. */
  readonly table: string;
  /** CR3 root. */
  readonly cr3: number;
  /** What happens. */
  readonly action: string;
  /** A probe access. */
  readonly probe?: { toString(): string; readonly ok: boolean };
}

/**
 * The system-call bounce as text.
 *
 * @example
 * ```ts
 * import { bounceToText } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const t = bounceToText([{ name: "syscall", actor: "guest-user", cpl: 3, table: "user", cr3: 0x1000, action: "SYSCALL" }]);
 * assert.match(t, /1\. syscall .*ring 3, user table/);
 * ```
 */
export function bounceToText(steps: readonly BounceStepView[]): string {
  return steps.map((s, i) =>
    `${i + 1}. ${s.name} [${s.actor}, ring ${s.cpl}, ${s.table} table, CR3 ${
      hex(s.cr3)
    }] ${s.action}${s.probe ? `\n     probe: ${s.probe.toString()}` : ""}`
  ).join("\n");
}

/**
 * The system-call bounce as an HTML table (one row per step: actor, ring,
 * CR3 table, action, probe access).
 *
 * @example
 * ```ts
 * import { bounceToHtml } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const h = bounceToHtml([{ name: "<s>", actor: "xen", cpl: 0, table: "kernel", cr3: 0x2000, action: "switch" }]);
 * assert.match(h, /&lt;s&gt;/);
 * assert.match(h, /ring 0/);
 * ```
 */
export function bounceToHtml(steps: readonly BounceStepView[]): string {
  const actorColor: Record<string, string> = {
    "xen": "#fee2e2",
    "guest-kernel": "#dbeafe",
    "guest-user": "#dcfce7",
  };
  const rows = steps.map((s, i) => {
    const prev = steps[i - 1];
    const switched = prev !== undefined && prev.cr3 !== s.cr3;
    const probe = s.probe
      ? `<span style="color:${
        s.probe.ok ? COLORS.ok.stroke : COLORS.fault.stroke
      }">${escapeXml(s.probe.toString())}</span>`
      : "";
    return `<tr style="background:${actorColor[s.actor] ?? "#fff"}"><td ${TD}>${
      i + 1
    }</td><td ${TD}><b>${escapeXml(s.name)}</b></td><td ${TD}>${
      escapeXml(s.actor)
    }</td><td ${TD}>ring ${s.cpl}</td><td ${TD}>${switched ? "<b>→ " : ""}${
      escapeXml(s.table)
    } table${switched ? "</b>" : ""}</td><td ${TD}>${
      escapeXml(s.action)
    }</td><td ${TD} style="font-size:90%">${probe}</td></tr>`;
  }).join("");
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  };font-size:13px"><table style="border-collapse:collapse"><tr><th ${TD}>#</th><th ${TD}>step</th><th ${TD}>who</th><th ${TD}>CPL</th><th ${TD}>CR3</th><th ${TD}>what happens</th><th ${TD}>probe access</th></tr>${rows}</table><div style="color:${COLORS.muted};font-size:90%">not modelled: SYSCALL/SYSRET MSRs, SWAPGS, bounce-frame contents, event upcalls</div></div>`;
}

/** A labelled range of a 32-bit address space for {@linkcode xen32LayoutSvg}. */
export interface StripRegion {
  /** First address. */
  readonly from: number;
  /** End (exclusive). */
  readonly to: number;
  /** Label. */
  readonly label: string;
  /** Who owns it: "guest-user", "guest-kernel", "xen-shared" (guest-visible Xen data) or "xen". */
  readonly owner: string;
}

/** Input of {@linkcode xen32LayoutSvg}. */
export interface XenStripInput {
  /** Ranges, bottom to top. */
  readonly regions: readonly StripRegion[];
  /** Segment limits to draw as bars (effective limits, inclusive). */
  readonly limits: readonly { label: string; limit: number; ring: number }[];
  /** Accesses to mark: address and whether it passed. */
  readonly marks?: readonly { address: number; label: string; ok: boolean }[];
  /** Title. */
  readonly title?: string;
}

const OWNER_FILL: Record<string, string> = {
  "guest-user": "#dcfce7",
  "guest-kernel": "#dbeafe",
  "xen-shared": "#fef3c7",
  "xen": "#fecaca",
};

/**
 * The 32-bit address space as a vertical strip, 0 at the bottom and 4 GiB
 * at the top, each region drawn the same height (not to scale, so that
 * Xen's 64 MiB is visible); beside it one bar per segment limit (ring 0, 1, 3) and optional
 * marks for accesses (✓ / ✗).
 *
 * @example
 * ```ts
 * import { xen32LayoutSvg } from "./protect_html.ts";
 * import assert from "node:assert/strict";
 * const svg = xen32LayoutSvg({
 *   regions: [{ from: 0, to: 0xfc00_0000, label: "guest", owner: "guest-kernel" },
 *             { from: 0xfc00_0000, to: 2 ** 32, label: "Xen <hole>", owner: "xen" }],
 *   limits: [{ label: "ring 1", limit: 0xfbff_ffff, ring: 1 }],
 *   marks: [{ address: 0xfc40_0000, label: "ring-1 read", ok: false }],
 * });
 * assert.match(svg, /^<svg/);
 * assert.match(svg, /Xen &lt;hole&gt;/);
 * assert.match(svg, /0xfbffffff/);
 * ```
 */
export function xen32LayoutSvg(input: XenStripInput): string {
  const W = 940, top = 40, H = 460, x0 = 330, stripW = 170;
  const bottom = top + H;
  // not to scale: every region gets the same height, linear inside it, so
  // that Xen's 64 MiB is as visible as the guest's 3 GiB
  const regs = [...input.regions].sort((p, q) => p.from - q.from);
  const band = H / Math.max(1, regs.length);
  const yOf = (a: number) => {
    for (const [i, r] of regs.entries()) {
      if (a >= r.from && a <= r.to) {
        return bottom - (i + (a - r.from) / (r.to - r.from)) * band;
      }
    }
    return a < (regs[0]?.from ?? 0) ? bottom : top;
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${
      bottom + 50
    }" viewBox="0 0 ${W} ${bottom + 50}" font-family="${
      escapeXml(FONT_SANS)
    }" font-size="12">`,
  );
  out.push(el("rect", { width: W, height: bottom + 50, fill: "#fff" }));
  if (input.title) {
    out.push(
      text(10, 20, input.title, { "font-size": 14, "font-weight": "bold" }),
    );
  }
  for (const r of input.regions) {
    const y1 = yOf(r.to), y0 = yOf(r.from);
    out.push(el("rect", {
      x: x0,
      y: y1,
      width: stripW,
      height: Math.max(1, y0 - y1),
      fill: OWNER_FILL[r.owner] ?? "#f1f5f9",
      stroke: COLORS.line,
    }));
    out.push(text(x0 + stripW / 2, (y0 + y1) / 2 + 4, r.label, {
      "text-anchor": "middle",
    }));
    out.push(text(x0 + 4, y0 - 4, hex(r.from), {
      "font-family": FONT_MONO,
      "font-size": 10,
      fill: COLORS.muted,
    }));
  }
  out.push(text(x0 + 4, top + 12, "0xffffffff", {
    "font-family": FONT_MONO,
    "font-size": 10,
    fill: COLORS.muted,
  }));
  const ringColor = ["#b91c1c", "#1d4ed8", "#7c3aed", "#15803d"];
  input.limits.forEach((l, i) => {
    const bx = x0 + stripW + 24 + i * 46;
    const yTop = yOf(l.limit + 1);
    const c = ringColor[l.ring] ?? COLORS.line;
    out.push(el("rect", {
      x: bx,
      y: yTop,
      width: 14,
      height: bottom - yTop,
      fill: c,
      "fill-opacity": 0.25,
      stroke: c,
    }));
    out.push(el("line", {
      x1: bx - 4,
      y1: yTop,
      x2: bx + 18,
      y2: yTop,
      stroke: c,
      "stroke-width": 2,
    }));
    out.push(text(bx + 7, bottom + 14, `ring ${l.ring}`, {
      "text-anchor": "middle",
      fill: c,
    }));
    out.push(
      text(W - 10, top + 60 + i * 16, `${l.label}: limit ${hex(l.limit)}`, {
        "text-anchor": "end",
        fill: c,
      }),
    );
  });
  // marks: dots on the strip's left edge, labels stacked in a column to the
  // left (at least 15 px apart) with leader lines
  const marks = [...(input.marks ?? [])].map((m) => ({ m, y: yOf(m.address) }))
    .sort((p, q) => p.y - q.y);
  let prevY = -Infinity;
  for (const { m, y } of marks) {
    const ly = Math.max(y, prevY + 15);
    prevY = ly;
    const c = m.ok ? COLORS.ok.stroke : COLORS.fault.stroke;
    out.push(el("line", {
      x1: x0 - 84,
      y1: ly - 4,
      x2: x0,
      y2: y,
      stroke: c,
      "stroke-width": 0.8,
      "stroke-dasharray": "2,2",
    }));
    out.push(el("circle", { cx: x0, cy: y, r: 4, fill: c }));
    out.push(text(x0 - 88, ly, `${m.ok ? "✓" : "✗"} ${m.label}`, {
      "text-anchor": "end",
      fill: c,
      "font-size": 11,
    }));
  }
  out.push(
    text(
      10,
      bottom + 36,
      "regions not to scale. Bars: how far each ring's segments reach (SDM §5.3 limit check, before paging)",
      {
        fill: COLORS.muted,
        "font-size": 11,
      },
    ),
  );
  out.push("</svg>");
  return out.join("");
}
