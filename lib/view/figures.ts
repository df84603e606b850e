/**
 * Small displayable figures for notebooks: a table of rows, and the
 * address-space diagram of {@linkcode spacesToSvg}.
 *
 * @module
 */

import { Rich } from "./display.ts";
import { escapeXml } from "./escape.ts";
import {
  type SpaceChain,
  type SpacesOptions,
  spacesToSvg,
} from "./spaces_svg.ts";

/** A table cell value. */
export type Cell = string | number | boolean | bigint | null | undefined;

/** Options for {@linkcode showRows}. */
export interface RowsOptions {
  /** Caption above the table. */
  caption?: string;
  /** Columns to show, in order (default: keys of the first row). */
  columns?: string[];
  /** Rows shown before folding (default 50). */
  maxRows?: number;
}

/**
 * Show an array of plain objects as an HTML table (with a plain-text
 * fallback). Every cell is escaped; rows beyond `maxRows` are folded and
 * counted.
 *
 * @example
 * ```ts
 * import { showRows } from "./figures.ts";
 * import assert from "node:assert/strict";
 * const r = showRows([{ va: "0x1000", pa: "<0x5000>" }], { caption: "demo" });
 * assert.match(r.bundle["text/html"] as string, /&lt;0x5000&gt;/);
 * assert.match(r.text, /va\s+pa/);
 * ```
 */
export function showRows(
  rows: readonly Record<string, Cell>[],
  options: RowsOptions = {},
): Rich {
  const cols = options.columns ?? Object.keys(rows[0] ?? {});
  const max = options.maxRows ?? 50;
  const shown = rows.slice(0, max);
  const str = (v: Cell) => v === undefined || v === null ? "" : String(v);
  const head = cols.map((c) =>
    `<th style="text-align:left;padding:2px 10px;border-bottom:1px solid #999">${
      escapeXml(c)
    }</th>`
  ).join("");
  const body = shown.map((r) =>
    `<tr>${
      cols.map((c) =>
        `<td style="padding:2px 10px;font-family:monospace;text-align:left">${
          escapeXml(str(r[c]))
        }</td>`
      ).join("")
    }</tr>`
  ).join("");
  const more = rows.length > shown.length
    ? `<p style="color:#666">… ${
      rows.length - shown.length
    } more rows not shown</p>`
    : "";
  const cap = options.caption
    ? `<caption style="text-align:left;font-weight:bold;padding:4px 0">${
      escapeXml(options.caption)
    }</caption>`
    : "";
  const html =
    `<table style="border-collapse:collapse;font-size:13px">${cap}<thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>${more}`;
  const widths = cols.map((c) =>
    Math.max(c.length, ...shown.map((r) => str(r[c]).length))
  );
  const line = (vals: string[]) =>
    vals.map((v, i) => v.padEnd(widths[i])).join("  ").trimEnd();
  const text = [
    ...(options.caption ? [options.caption] : []),
    line(cols),
    ...shown.map((r) => line(cols.map((c) => str(r[c])))),
    ...(rows.length > shown.length
      ? [`… ${rows.length - shown.length} more rows not shown`]
      : []),
  ].join("\n");
  return Rich.html(html, text);
}

/**
 * Show address-space chains as an SVG diagram (see {@linkcode spacesToSvg}).
 *
 * @example
 * ```ts
 * import { showSpaces } from "./figures.ts";
 * import assert from "node:assert/strict";
 * const r = showSpaces(
 *   [{ label: "VA 10", group: "P1", points: [10, 50, 10] }],
 *   { columns: ["virtual", "physical", "machine"] },
 * );
 * assert.ok(r.mimeTypes.includes("image/svg+xml"));
 * assert.match(r.text, /VA 10: 0xa → 0x32 → 0xa/);
 * ```
 */
export function showSpaces(
  chains: readonly SpaceChain[],
  options: SpacesOptions,
): Rich {
  const text = [
    ...(options.title ? [options.title] : []),
    `columns: ${options.columns.join(" → ")}`,
    ...chains.map((c) =>
      `${c.label}: ${
        c.points.map((p) =>
          p === undefined ? "no mapping" : "0x" + p.toString(16)
        )
          .join(" → ")
      }`
    ),
  ].join("\n");
  return Rich.svg(spacesToSvg(chains, options), text);
}
