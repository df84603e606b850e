/**
 * Address-space diagrams: columns of address spaces (virtual, guest
 * physical, machine, …) with one coloured chain of arrows per translated
 * address, in the style of the book's Figures 2-4 and 2-5. Pure function of
 * plain data; deterministic output.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";

/** One translated address followed through the spaces. */
export interface SpaceChain {
  /** Label at the left end, e.g. "VM1 P1 VA 0x400000". */
  readonly label: string;
  /** Group (e.g. the VM); chains of a group share a colour. */
  readonly group: string;
  /** The address in each column; `undefined` ends the chain (a fault). */
  readonly points: readonly (number | undefined)[];
}

/** Options for {@linkcode spacesToSvg}. */
export interface SpacesOptions {
  /** Column titles, left to right. */
  readonly columns: readonly string[];
  /** Per column: [low, high) address range; default from the data. */
  readonly ranges?: readonly ([number, number] | undefined)[];
  /** Title above the diagram. */
  readonly title?: string;
  /** Shaded bands per column, e.g. the machine ranges owned by each VM. */
  readonly bands?: readonly {
    readonly column: number;
    readonly from: number;
    readonly to: number;
    readonly label: string;
    readonly group: string;
  }[];
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/**
 * Draw address spaces as vertical bars and each chain as arrows between
 * them.
 *
 * @example
 * ```ts
 * import { spacesToSvg } from "./spaces_svg.ts";
 * import assert from "node:assert/strict";
 * const svg = spacesToSvg(
 *   [{ label: "P1 VA 10", group: "VM1", points: [10, 50, 10] }],
 *   { columns: ["virtual", "physical", "machine"], ranges: [[0, 64], [0, 64], [0, 64]] },
 * );
 * assert.match(svg, /^<svg/);
 * assert.equal((svg.match(/<line /g) ?? []).length, 2); // two arrows, no leader line
 * ```
 */
export function spacesToSvg(
  chains: readonly SpaceChain[],
  options: SpacesOptions,
): string {
  const cols = options.columns;
  if (cols.length < 2) {
    throw new RangeError(
      `spacesToSvg needs at least 2 columns, got ${cols.length}`,
    );
  }
  for (const [i, c] of chains.entries()) {
    if (c.points.length > cols.length) {
      throw new RangeError(
        `chain ${i} ("${c.label}") has ${c.points.length} points for ${cols.length} columns`,
      );
    }
  }
  const groups = [...new Set(chains.map((c) => c.group))];
  const colour = (g: string) => PALETTE[groups.indexOf(g) % PALETTE.length];
  const ranges = cols.map((_, i) => {
    const given = options.ranges?.[i];
    if (given) return given;
    const vals = chains.map((c) => c.points[i]).filter((v): v is number =>
      v !== undefined
    );
    const bandVals = (options.bands ?? []).filter((b) => b.column === i)
      .flatMap((b) => [b.from, b.to]);
    const all = [...vals, ...bandVals];
    if (all.length === 0) return [0, 1] as [number, number];
    const lo = Math.min(...all), hi = Math.max(...all);
    return [lo, hi === lo ? lo + 1 : hi + (hi - lo) / 20] as [number, number];
  });
  const labelW = 190, colGap = 210, barW = 18, top = 56;
  const h = Math.max(300, chains.length * 15 + 20);
  const width = labelW + (cols.length - 1) * colGap + 140;
  const height = top + h + 52;
  const x = (i: number) => labelW + i * colGap;
  const y = (i: number, v: number) => {
    const [lo, hi] = ranges[i];
    return top + ((v - lo) / (hi - lo)) * h;
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  if (options.title) {
    out.push(
      `<text x="10" y="20" font-size="14" font-weight="bold">${
        escapeXml(options.title)
      }</text>`,
    );
  }
  cols.forEach((c, i) => {
    out.push(
      `<rect x="${
        x(i)
      }" y="${top}" width="${barW}" height="${h}" fill="#f2f2f2" stroke="#555"/>`,
    );
    out.push(
      `<text x="${x(i) + barW / 2}" y="${
        top - 10
      }" text-anchor="middle" font-weight="bold">${escapeXml(c)}</text>`,
    );
    const [lo, hi] = ranges[i];
    out.push(
      `<text x="${x(i) + barW + 4}" y="${top + 4}" fill="#777" font-size="10">${
        escapeXml(hexish(lo))
      }</text>`,
    );
    out.push(
      `<text x="${x(i) + barW / 2}" y="${
        top + h + 14
      }" text-anchor="middle" fill="#777" font-size="10">${
        escapeXml(hexish(hi))
      }</text>`,
    );
  });
  for (const b of options.bands ?? []) {
    const y0 = y(b.column, b.from), y1 = y(b.column, b.to);
    out.push(
      `<rect x="${x(b.column)}" y="${y0.toFixed(1)}" width="${barW}" height="${
        Math.max(1, y1 - y0).toFixed(1)
      }" fill="${colour(b.group)}" fill-opacity="0.25"/>`,
    );
    out.push(
      `<text x="${x(b.column) + barW + 4}" y="${
        ((y0 + y1) / 2 + 4).toFixed(1)
      }" fill="${colour(b.group)}" font-size="11">${escapeXml(b.label)}</text>`,
    );
  }
  // Labels at the left, pushed apart so that chains starting at the same
  // address stay readable; a leader line joins a moved label to its point.
  const labelY = new Map<number, number>();
  const starts = chains.map((c, i) => ({ i, p: c.points[0] }))
    .filter((e): e is { i: number; p: number } => e.p !== undefined)
    .map((e) => ({ i: e.i, y: y(0, e.p) }))
    .sort((a, b) => a.y - b.y || a.i - b.i);
  let prev = -Infinity;
  for (const e of starts) {
    const ly = Math.max(e.y, prev + 15);
    labelY.set(e.i, ly);
    prev = ly;
  }
  chains.forEach((c, ci) => {
    const col = colour(c.group);
    const p0 = c.points[0];
    if (p0 !== undefined) {
      const ly = labelY.get(ci)!;
      const py = y(0, p0);
      if (Math.abs(ly - py) > 0.5) {
        out.push(
          `<line x1="${x(0) - 4}" y1="${ly.toFixed(1)}" x2="${
            x(0) + barW / 2
          }" y2="${
            py.toFixed(1)
          }" stroke="${col}" stroke-width="0.8" stroke-dasharray="2,2"/>`,
        );
      }
      out.push(
        `<text x="${x(0) - 6}" y="${
          (ly + 4).toFixed(1)
        }" text-anchor="end" fill="${col}">${escapeXml(c.label)}</text>`,
      );
    }
    for (let i = 0; i + 1 < c.points.length; i++) {
      const a = c.points[i], b = c.points[i + 1];
      if (a === undefined) break;
      if (b === undefined) {
        out.push(
          `<text x="${x(i) + barW + 6}" y="${
            (y(i, a) + 4).toFixed(1)
          }" fill="#c00">✗ no mapping</text>`,
        );
        break;
      }
      out.push(
        `<line x1="${x(i) + barW}" y1="${y(i, a).toFixed(1)}" x2="${
          x(i + 1)
        }" y2="${
          y(i + 1, b).toFixed(1)
        }" stroke="${col}" stroke-width="1.6" marker-end="url(#mv-sp-arrow)"/>`,
      );
    }
    c.points.forEach((p, i) => {
      if (p === undefined) return;
      out.push(
        `<circle cx="${x(i) + barW / 2}" cy="${
          y(i, p).toFixed(1)
        }" r="3.5" fill="${col}"/>`,
      );
    });
  });
  out.push(
    `<defs><marker id="mv-sp-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>`,
  );
  // legend
  groups.forEach((g, i) => {
    out.push(
      `<rect x="${10 + i * 110}" y="${
        height - 22
      }" width="12" height="12" fill="${colour(g)}"/><text x="${
        28 + i * 110
      }" y="${height - 12}">${escapeXml(g)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("");
}

function hexish(v: number): string {
  return "0x" + Math.round(v).toString(16);
}
