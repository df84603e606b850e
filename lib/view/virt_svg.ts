/**
 * The P2M strip: how domains' guest frames are scattered over machine
 * memory (book ch. 4). Machine memory is a bar coloured by owner; above it
 * each domain's guest-physical space is a bar of its own; bands join each
 * run of consecutive gfns to where it lives in machine memory.
 *
 * Pure function of plain data. Bounded whatever the sizes: bars are drawn
 * from at most `maxBins` bins (each showing its three biggest owners, the
 * rest grey), each domain from at most `maxLines` runs
 * (the model aggregates beyond that and says so), at most 8 domain rows.
 * Every label is escaped.
 *
 * @module
 */

import type { HostSnapshot } from "../virt/host.ts";
import { escapeXml } from "./escape.ts";
import { COLORS, FONT_SANS, formatCount } from "./style.ts";

/**
 * Machine memory in a bin: frames by owner ("hypervisor" or a domain id).
 *
 * @example
 * ```ts
 * import type { MachineBin } from "./virt_svg.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 2 ** 20 });
 * const [bin]: MachineBin[] = host.machineBins(1);
 * assert.deepEqual(bin, { firstMfn: 0, frames: 256, free: 240, owners: { hypervisor: 16 } });
 * ```
 */
export interface MachineBin {
  /** First machine frame of the bin. */
  readonly firstMfn: number;
  /** Frames in the bin. */
  readonly frames: number;
  /** Free frames in the bin. */
  readonly free: number;
  /** Used frames by owner key ("hypervisor", or the domain id as a string). */
  readonly owners: Readonly<Record<string, number>>;
}

/**
 * One domain's row of the strip.
 *
 * @example
 * ```ts
 * import type { P2mStripRow } from "./virt_svg.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20, placement: "contiguous" });
 * const row: P2mStripRow = vm.stripRow();
 * assert.deepEqual([row.totalRuns, row.aggregated, row.backedRanges], [1, false, [[0, 256]]]);
 * ```
 */
export interface P2mStripRow {
  /** Domain id (picks the colour). */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** "xen" or "kvm". */
  readonly backing: string;
  /** Gfns in the guest-physical space. */
  readonly gfnCount: number;
  /** Backed gfn ranges as `[first, count]`. */
  readonly backedRanges: readonly (readonly [number, number])[];
  /** Runs drawn (gfn → mfn, count), possibly aggregated. */
  readonly runs: readonly {
    readonly gfn: number;
    readonly mfn: number;
    readonly count: number;
  }[];
  /** Runs in all. */
  readonly totalRuns: number;
  /** Whether `runs` is an aggregation (one band per gfn bin). */
  readonly aggregated: boolean;
}

/**
 * Options for {@linkcode p2mStripSvg}.
 *
 * @example
 * ```ts
 * import type { P2mStripOptions } from "./virt_svg.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * host.createDomain({ memory: 2 ** 20 });
 * const options: P2mStripOptions = { width: 400, maxBins: 32, title: "small" };
 * assert.match(host.p2mStrip(options), /^<svg [^>]*width="400"/);
 * ```
 */
export interface P2mStripOptions {
  /** Width in pixels (default 760). */
  width?: number;
  /** Machine-memory bins (default 256). */
  maxBins?: number;
  /** Bands per domain before the model aggregates (default 200). */
  maxLines?: number;
  /** Title (default "P2M: guest frames in machine memory"). */
  title?: string;
}

/**
 * Colours of one domain.
 *
 * @example
 * ```ts
 * import { type DomainColor, domainColor } from "./virt_svg.ts";
 * import assert from "node:assert/strict";
 * const c: DomainColor = domainColor(2);
 * assert.match(c.fill, /^#[0-9a-f]{6}$/);
 * ```
 */
export interface DomainColor {
  /** Light fill. */
  readonly fill: string;
  /** Strong colour. */
  readonly stroke: string;
}

const PALETTE: readonly DomainColor[] = [
  { fill: "#dbeafe", stroke: "#2563eb" },
  { fill: "#dcfce7", stroke: "#16a34a" },
  { fill: "#fef3c7", stroke: "#d97706" },
  { fill: "#fce7f3", stroke: "#db2777" },
  { fill: "#ede9fe", stroke: "#7c3aed" },
  { fill: "#ccfbf1", stroke: "#0d9488" },
  { fill: "#fee2e2", stroke: "#dc2626" },
  { fill: "#e0e7ff", stroke: "#4f46e5" },
];

/**
 * Colour of hypervisor-owned frames.
 *
 * @example
 * ```ts
 * import { HYPERVISOR_COLOR } from "./virt_svg.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * assert.ok(new Host({ memory: 2 ** 20 }).p2mStrip().includes(`fill="${HYPERVISOR_COLOR}"`));
 * ```
 */
export const HYPERVISOR_COLOR = "#475569";
/**
 * Colour of free frames.
 *
 * @example
 * ```ts
 * import { FREE_COLOR } from "./virt_svg.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * assert.ok(new Host({ memory: 2 ** 20 }).p2mStrip().includes(`fill="${FREE_COLOR}"`));
 * ```
 */
export const FREE_COLOR = "#f1f5f9";
/**
 * Colour of a bin's frames beyond its three biggest owners.
 *
 * @example
 * ```ts
 * import { MIXED_COLOR } from "./virt_svg.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 4 * 2 ** 20, seed: 1 });
 * for (let i = 0; i < 5; i++) host.createDomain({ memory: 2 ** 19 }); // five owners per bin
 * assert.ok(host.p2mStrip({ maxBins: 4 }).includes(`fill="${MIXED_COLOR}"`));
 * ```
 */
export const MIXED_COLOR = "#94a3b8";

/**
 * The colours of domain `id` (a fixed palette of 8, reused cyclically).
 *
 * @example
 * ```ts
 * import { domainColor } from "./virt_svg.ts";
 * import assert from "node:assert/strict";
 * assert.equal(domainColor(1).stroke, "#2563eb");
 * assert.equal(domainColor(9).stroke, domainColor(1).stroke);
 * ```
 */
export function domainColor(id: number): DomainColor {
  const i = Number.isInteger(id) && id > 0 ? (id - 1) % PALETTE.length : 0;
  return PALETTE[i];
}

const f1 = (x: number) => (Math.round(x * 10) / 10).toString();

/** Spans of equal state over `n` pixel bins: [from, to, state]. */
function spans(states: Uint8Array): [number, number, number][] {
  const out: [number, number, number][] = [];
  let s = 0;
  for (let i = 1; i <= states.length; i++) {
    if (i === states.length || states[i] !== states[s]) {
      out.push([s, i, states[s]]);
      s = i;
    }
  }
  return out;
}

/**
 * The strip as an SVG document (see the module notes).
 *
 * @example
 * ```ts
 * import { p2mStripSvg } from "./virt_svg.ts";
 * import assert from "node:assert/strict";
 * const host = {
 *   name: "h", hypervisor: "xen" as const, frames: 16, freeFrames: 10,
 *   hypervisorFrames: { Xen: 2 }, domains: [],
 *   bins: [{ firstMfn: 0, frames: 16, free: 10, owners: { hypervisor: 2, "1": 4 } }],
 *   counters: { framesAllocated: 6, framesFreed: 0, domainsCreated: 1 },
 * };
 * const row = {
 *   id: 1, name: "<vm>", backing: "xen", gfnCount: 4, backedRanges: [[0, 4] as const],
 *   runs: [{ gfn: 0, mfn: 5, count: 4 }], totalRuns: 1, aggregated: false,
 * };
 * const svg = p2mStripSvg(host, [row]);
 * assert.match(svg, /^<svg /);
 * assert.match(svg, /&lt;vm&gt;/);
 * assert.doesNotMatch(svg, /<vm>/);
 * ```
 */
export function p2mStripSvg(
  host: HostSnapshot,
  rows: readonly P2mStripRow[],
  options: P2mStripOptions = {},
): string {
  const W = options.width ?? 760;
  if (!Number.isInteger(W) || W < 200 || W > 4000) {
    throw new RangeError(
      `width ${String(W)} is invalid: expected an integer in [200, 4000]`,
    );
  }
  const maxRows = 8;
  const shownRows = rows.slice(0, maxRows);
  const L = 120, R = 12;
  const plotW = W - L - R;
  const rowH = 16, gap = 54, top = 34;
  const machineY = top + shownRows.length * (rowH + gap);
  const machineH = 26;
  const legendY = machineY + machineH + 30;
  const H = legendY + 26;
  const parts: string[] = [];
  const title = options.title ?? "P2M: guest frames in machine memory";
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${
      escapeXml(FONT_SANS)
    }" font-size="11">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${L}" y="16" font-size="13" font-weight="bold" fill="${COLORS.ink}">${
      escapeXml(title)
    }</text>`,
  );
  const frames = Math.max(1, host.frames);
  const mx = (mfn: number) => L + plotW * mfn / frames;
  // bands first, so that bars are drawn over them
  shownRows.forEach((r, k) => {
    const y = top + k * (rowH + gap) + rowH;
    const c = domainColor(r.id);
    const gx = (g: number) => L + plotW * g / Math.max(1, r.gfnCount);
    for (const run of r.runs) {
      const a0 = gx(run.gfn);
      let a1 = gx(run.gfn + run.count);
      const b0 = mx(run.mfn);
      let b1 = mx(run.mfn + run.count);
      if (a1 - a0 < 0.8) a1 = a0 + 0.8;
      if (b1 - b0 < 0.8) b1 = b0 + 0.8;
      parts.push(
        `<polygon points="${f1(a0)},${y} ${f1(a1)},${y} ${f1(b1)},${machineY} ${
          f1(b0)
        },${machineY}" fill="${c.stroke}" fill-opacity="0.28" stroke="none"/>`,
      );
    }
  });
  // domain rows
  shownRows.forEach((r, k) => {
    const y = top + k * (rowH + gap);
    const c = domainColor(r.id);
    const nb = Math.min(512, Math.max(1, Math.floor(plotW)));
    const st = new Uint8Array(nb); // 0 unbacked, 1 backed, 2 resident
    const g2b = (g: number) => Math.floor(nb * g / Math.max(1, r.gfnCount));
    for (const [g, n] of r.backedRanges) {
      for (let b = g2b(g); b <= Math.min(nb - 1, g2b(g + n - 1)); b++) {
        if (st[b] === 0) st[b] = 1;
      }
    }
    for (const run of r.runs) {
      for (
        let b = g2b(run.gfn);
        b <= Math.min(nb - 1, g2b(run.gfn + run.count - 1));
        b++
      ) st[b] = 2;
    }
    parts.push(
      `<rect x="${L}" y="${y}" width="${
        f1(plotW)
      }" height="${rowH}" fill="#ffffff" stroke="#cbd5e1"/>`,
    );
    for (const [a, b, s] of spans(st)) {
      if (s === 0) continue;
      parts.push(
        `<rect x="${f1(L + plotW * a / nb)}" y="${y}" width="${
          f1(plotW * (b - a) / nb)
        }" height="${rowH}" fill="${s === 2 ? c.stroke : c.fill}"${
          s === 2 ? ' fill-opacity="0.75"' : ""
        }/>`,
      );
    }
    parts.push(
      `<text x="${L - 6}" y="${
        y + 12
      }" text-anchor="end" fill="${COLORS.ink}">${
        escapeXml(`${r.name} (${r.backing})`)
      }</text>`,
      `<text x="${L}" y="${
        y + rowH + 11
      }" fill="${COLORS.muted}" font-size="9">gfn 0</text>`,
      `<text x="${L + plotW}" y="${
        y + rowH + 11
      }" text-anchor="end" fill="${COLORS.muted}" font-size="9">${
        escapeXml(
          `gfn ${formatCount(r.gfnCount)}${
            r.aggregated
              ? ` · ${formatCount(r.totalRuns)} runs, one band per bin`
              : ` · ${formatCount(r.totalRuns)} run(s)`
          }`,
        )
      }</text>`,
    );
  });
  // machine bar: each bin stacked by owner
  parts.push(
    `<rect x="${L}" y="${machineY}" width="${
      f1(plotW)
    }" height="${machineH}" fill="${FREE_COLOR}" stroke="#94a3b8"/>`,
  );
  for (const bin of host.bins) {
    const x0 = mx(bin.firstMfn),
      w = Math.max(0.5, mx(bin.firstMfn + bin.frames) - x0);
    let yy = machineY;
    // the three biggest owners of the bin, the rest as one "mixed" block
    const byCount = Object.entries(bin.owners).sort((a, b) =>
      b[1] - a[1] || (a[0] < b[0] ? -1 : 1)
    );
    const top = byCount.slice(0, 3);
    const rest = byCount.slice(3).reduce((n, [, c]) => n + c, 0);
    if (rest > 0) top.push(["mixed", rest]);
    top.sort((a, b) =>
      a[0] === "hypervisor"
        ? -1
        : b[0] === "hypervisor"
        ? 1
        : a[0] === "mixed"
        ? 1
        : b[0] === "mixed"
        ? -1
        : Number(a[0]) - Number(b[0])
    );
    for (const [key, count] of top) {
      const h = machineH * count / Math.max(1, bin.frames);
      const fill = key === "hypervisor"
        ? HYPERVISOR_COLOR
        : key === "mixed"
        ? MIXED_COLOR
        : domainColor(Number(key)).stroke;
      parts.push(
        `<rect x="${f1(x0)}" y="${f1(yy)}" width="${f1(w)}" height="${
          f1(h)
        }" fill="${fill}"/>`,
      );
      yy += h;
    }
  }
  parts.push(
    `<text x="${L - 6}" y="${
      machineY + 17
    }" text-anchor="end" fill="${COLORS.ink}">machine</text>`,
    `<text x="${L}" y="${
      machineY + machineH + 12
    }" fill="${COLORS.muted}" font-size="9">mfn 0</text>`,
    `<text x="${L + plotW}" y="${
      machineY + machineH + 12
    }" text-anchor="end" fill="${COLORS.muted}" font-size="9">${
      escapeXml(
        `mfn ${formatCount(host.frames)} · ${
          formatCount(host.freeFrames)
        } free`,
      )
    }</text>`,
  );
  // legend
  const legend: [string, string][] = [
    [host.hypervisor === "xen" ? "Xen" : "host kernel", HYPERVISOR_COLOR],
    ["free", FREE_COLOR],
    ...shownRows.map((r) =>
      [r.name, domainColor(r.id).stroke] as [string, string]
    ),
  ];
  let lx = L;
  for (const [name, color] of legend) {
    const label = name.length > 24 ? name.slice(0, 23) + "…" : name;
    parts.push(
      `<rect x="${lx}" y="${legendY}" width="10" height="10" fill="${color}" stroke="#94a3b8"/>`,
      `<text x="${lx + 14}" y="${legendY + 9}" fill="${COLORS.ink}">${
        escapeXml(label)
      }</text>`,
    );
    lx += 24 + 6.5 * label.length;
    if (lx > W - 80) break;
  }
  if (rows.length > shownRows.length) {
    parts.push(
      `<text x="${W - R}" y="${
        legendY + 9
      }" text-anchor="end" fill="${COLORS.muted}">${
        escapeXml(
          `… ${rows.length - shownRows.length} more domain(s) not drawn`,
        )
      }</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("");
}
