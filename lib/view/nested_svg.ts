/**
 * The 2-D walk grid: the project's signature picture of nested paging.
 *
 * Rows are the guest dimension (gL4, gL3, gL2, gL1 for a 4-level guest,
 * then "data": the final gpa), columns the host dimension (hL4..hL1: the
 * second-stage entries read to translate that row's gpa, then the row's
 * own read: the guest entry, or the data itself). Each cell carries the
 * number of its reference in the order the hardware makes it: 1..24 for a
 * 4×4 walk (the data access is drawn but not numbered: FIGURES.md counts
 * 24, not 25). A thin line threads the cells in that order. Colours are
 * the house level colours of the walk diagram (`style.ts`): host cells in
 * their EPT level's colour, guest-entry cells in the guest level's colour.
 * A/D bits the walk wrote get a yellow badge; the cell where the walk
 * stopped is red with the reason; cells the walk never needed (large
 * pages) or never reached (after a fault) are grey and dashed; references
 * a walk cache made unnecessary (guest PSC, nested TLB, host PSC;
 * Bhargava et al. 2008) are hatched, unnumbered, and say which cache.
 *
 * Deterministic (integer coordinates, ids from a hash of the record),
 * standalone, bounded (at most 6 × 6 cells), every string escaped.
 *
 * @module
 */

import { attrs, el, text } from "./svg.ts";
import { hex64 } from "../address/address.ts";
import type { NestedWalkRecord } from "../virt/nested/record.ts";
import { nestedOutcomeText } from "../virt/nested/record.ts";
import { escapeXml } from "./escape.ts";
import { COLORS, FONT_MONO, FONT_SANS, hashId, levelColor } from "./style.ts";

/** Options for {@linkcode nestedWalkToSvg}. */
export interface NestedSvgOptions {
  /** Title above the grid (default: describes the walk). */
  title?: string;
  /** Id prefix (default: a hash of the record). */
  idPrefix?: string;
  /** Draw the legend (default true). */
  legend?: boolean;
}

const hx = (a: number) => hex64(Math.floor(a / 2 ** 32), a >>> 0);

const CELL_W = 104, CELL_H = 62, GAP = 14, LABEL_W = 150, M = 20;

/**
 * Draw a nested walk record as the 2-D walk grid (SVG text).
 *
 * @example
 * ```ts
 * import { nestedWalkToSvg } from "./nested_svg.ts";
 * import { NestedWalker } from "../virt/nested/walk.ts";
 * import { NestedWalkRecord } from "../virt/nested/record.ts";
 * import { EPT_4LEVEL, eptMode } from "../paging/ept.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const host = new PhysicalMemory({ size: 1 << 16 });
 * const w = new NestedWalker(pagingMode(X86_64_4LEVEL), { kind: "ept", mode: eptMode(EPT_4LEVEL) }, host, 0x1000);
 * w.walk(0x2000, 0, 0x1000, 0);
 * const svg = nestedWalkToSvg(NestedWalkRecord.from(w, 0, 0x1000), { title: "<fig>" });
 * assert.match(svg, /&lt;fig&gt;/);
 * assert.match(svg, /not-present/);
 * assert.equal(svg, nestedWalkToSvg(NestedWalkRecord.from(w, 0, 0x1000), { title: "<fig>" }));
 * assert.throws(() => nestedWalkToSvg(NestedWalkRecord.from(w, 0, 0x1000), { idPrefix: "1 x" }), /idPrefix/);
 * ```
 */
export function nestedWalkToSvg(
  r: NestedWalkRecord,
  options: NestedSvgOptions = {},
): string {
  const id = options.idPrefix ?? "mv-n" +
      hashId(
        `${r.va}|${r.guestFormat}|${r.hostFormat}|${r.access}|${
          r.refs.map((x) =>
            `${x.guest}:${x.host}:${x.op}:${x.hpa}${
              x.cached === undefined ? "" : `:${x.cached}`
            }`
          ).join(",")
        }|${r.outcome.kind}`,
      );
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(id)) {
    throw new RangeError(
      `idPrefix "${id}" is invalid: expected a letter or "_" followed by letters, digits, "_", "-" or "."`,
    );
  }
  const n = Math.min(r.guestLevels, 5), m = Math.min(r.hostLevels, 5);
  const cols = m + 1, rows = n + 1;
  const gridX = M + LABEL_W, headerY = 84, gridY = headerY + 40;
  const width = gridX + cols * (CELL_W + GAP) + M;
  const out: string[] = [];
  const stageName = r.stage === "ept" ? "EPT" : "NPT";
  // title and subtitle
  const title = options.title ??
    `2-D walk of ${r.va} (${r.access}): ${r.tableReads} references`;
  out.push(
    text(M, 30, title, {
      "font-size": 18,
      "font-weight": 700,
      fill: COLORS.ink,
    }),
    text(
      M,
      52,
      `guest ${r.guestFormat} × ${r.hostFormat}; n·m + n + m = ${
        n * m + n + m
      } for a full walk; the data access is not counted`,
      { fill: COLORS.muted },
    ),
  );
  // dimension captions
  out.push(
    text(
      gridX,
      headerY - 8,
      `host dimension: ${stageName} walk of the row's gpa →`,
      { "font-size": 11, "font-style": "italic", fill: COLORS.muted },
    ),
    text(M, headerY + 20, "guest dimension ↓", {
      "font-size": 11,
      "font-style": "italic",
      fill: COLORS.muted,
    }),
  );
  // column headers
  const colX = (c: number) => gridX + c * (CELL_W + GAP);
  const rowY = (k: number) => gridY + k * (CELL_H + GAP);
  for (let c = 0; c < cols; c++) {
    const x = colX(c) + CELL_W / 2;
    const label = c < m ? `hL${m - c}` : "the read";
    const sub = c < m ? `${stageName} level ${m - c}` : "guest entry / data";
    const col = c < m ? levelColor(m - c) : COLORS.ok;
    out.push(
      el("rect", {
        x: colX(c),
        y: headerY,
        width: CELL_W,
        height: 30,
        rx: 4,
        fill: col.fill,
        stroke: col.stroke,
      }),
      text(x, headerY + 13, label, {
        "text-anchor": "middle",
        "font-weight": 700,
        fill: col.text,
      }),
      text(x, headerY + 25, sub, {
        "text-anchor": "middle",
        "font-size": 10,
        fill: col.text,
      }),
    );
  }
  // cell contents from the references
  const num = new Map<string, number>();
  const kinds = new Map<string, string>();
  const cachedBy = new Map<string, string>();
  let k = 0;
  for (const ref of r.refs) {
    if (ref.op === "write" && ref.guest !== "data") continue; // A/D badge
    const row = ref.guest === "data" ? n : r.guestLevels - ref.guest;
    const col = typeof ref.host === "number" ? r.hostLevels - ref.host : m;
    if (row < 0 || row > n || col < 0 || col > m) continue;
    const key = `${row},${col}`;
    if (ref.cached !== undefined) cachedBy.set(key, ref.cached);
    else if (ref.host === "data") kinds.set(key, "data");
    else {
      k++;
      num.set(key, k);
    }
  }
  const o = r.outcome;
  let faultKey = "", faultLabel = "", faultKind = "";
  if (
    o.kind === "ept-violation" || o.kind === "ept-misconfig" || o.kind === "npf"
  ) {
    const row = o.guestLevel === 0 ? n : r.guestLevels - o.guestLevel;
    faultKey = `${row},${r.hostLevels - o.hostLevel}`;
    faultKind = o.kind === "ept-misconfig"
      ? "EPT misconfig"
      : o.kind === "npf"
      ? "#NPF"
      : "EPT violation";
    faultLabel = o.reason;
  } else if (o.kind === "page-fault") {
    faultKey = `${r.guestLevels - o.level},${m}`;
    faultKind = "guest #PF";
    faultLabel = o.reason;
  }
  for (let row = 0; row < rows; row++) {
    const y = rowY(row);
    const rr = r.rows[row];
    const gl = row < n ? r.guestLevels - row : 0;
    const gcol = row < n ? levelColor(gl) : COLORS.ok;
    out.push(
      el("rect", {
        x: M,
        y,
        width: LABEL_W - 12,
        height: CELL_H,
        rx: 6,
        fill: gcol.fill,
        stroke: gcol.stroke,
      }),
      text(M + 10, y + 22, row < n ? `gL${gl}` : "data", {
        "font-weight": 700,
        "font-size": 15,
        fill: gcol.text,
      }),
      text(M + 52, y + 22, row < n ? rr?.name ?? "" : "final gpa", {
        fill: gcol.text,
      }),
      text(
        M + 10,
        y + 44,
        rr?.gpa !== undefined ? `gpa ${hx(rr.gpa)}` : "not reached",
        { "font-family": FONT_MONO, "font-size": 11, fill: gcol.text },
      ),
    );
    for (let col = 0; col < cols; col++) {
      const key = `${row},${col}`;
      const x = colX(col);
      const number = num.get(key);
      const isData = kinds.get(key) === "data";
      const fault = key === faultKey;
      const cachedHit = cachedBy.get(key);
      const used = number !== undefined || isData;
      let c = col < m ? levelColor(r.hostLevels - col) : gcol;
      if (fault) c = COLORS.fault;
      else if (!used) c = COLORS.cached;
      if (cachedHit !== undefined && !used && !fault) {
        out.push(
          el("rect", {
            x,
            y,
            width: CELL_W,
            height: CELL_H,
            rx: 6,
            fill: `url(#${id}-hatch)`,
            stroke: COLORS.cached.stroke,
            "stroke-width": 1.5,
            "data-cached": cachedHit,
          }),
          text(x + CELL_W / 2, y + 28, "cached", {
            "text-anchor": "middle",
            "font-size": 13,
            "font-weight": 700,
            fill: COLORS.cached.text,
          }),
          text(x + CELL_W / 2, y + 46, cachedHit, {
            "text-anchor": "middle",
            "font-size": 11,
            fill: COLORS.cached.text,
          }),
        );
        continue;
      }
      out.push(
        el("rect", {
          x,
          y,
          width: CELL_W,
          height: CELL_H,
          rx: 6,
          fill: used || fault ? c.fill : "#ffffff",
          stroke: c.stroke,
          "stroke-width": fault ? 3 : used ? 1.5 : 1,
          "stroke-dasharray": used || fault ? undefined : "4 3",
        }),
      );
      const cx = x + CELL_W / 2;
      if (number !== undefined) {
        out.push(
          text(cx, y + (fault ? 24 : 38), String(number), {
            "text-anchor": "middle",
            "font-size": fault ? 18 : 24,
            "font-weight": 700,
            fill: c.text,
          }),
        );
      } else if (isData) {
        out.push(
          text(cx, y + 36, "data", {
            "text-anchor": "middle",
            "font-size": 18,
            "font-weight": 700,
            fill: c.text,
          }),
        );
      } else if (!fault) {
        out.push(
          text(cx, y + 36, "—", {
            "text-anchor": "middle",
            "font-size": 14,
            fill: COLORS.cached.text,
          }),
        );
      }
      if (fault) {
        out.push(
          text(cx, y + 40, faultKind, {
            "text-anchor": "middle",
            "font-size": 10,
            "font-weight": 700,
            fill: COLORS.fault.text,
          }),
          text(cx, y + 54, faultLabel.slice(0, 24), {
            "text-anchor": "middle",
            "font-size": 10,
            "font-weight": 700,
            fill: COLORS.fault.text,
          }),
        );
      }
      if (col === m && rr?.adWritten) {
        out.push(
          el("rect", {
            x: x + CELL_W - 30,
            y: y + 4,
            width: 26,
            height: 16,
            rx: 3,
            fill: COLORS.setByWalk.fill,
            stroke: COLORS.setByWalk.stroke,
          }),
          text(x + CELL_W - 17, y + 16, "A/D", {
            "text-anchor": "middle",
            "font-size": 9,
            "font-weight": 700,
            fill: COLORS.setByWalk.text,
          }),
        );
      }
    }
  }
  let y = rowY(rows) + 8;
  const oc = o.kind === "ok" ? COLORS.ok : COLORS.fault;
  out.push(
    text(M, y + 6, nestedOutcomeText(o).slice(0, 140), {
      "font-weight": 700,
      fill: oc.text,
    }),
  );
  y += 20;
  if (options.legend ?? true) {
    out.push(
      text(
        M,
        y + 13,
        "numbers: order of the references; colour: the level of the entry read",
        { "font-size": 11, fill: COLORS.muted },
      ),
    );
    y += 22;
    const items: [string, { fill: string; stroke: string }, boolean][] = [
      ["A/D written by this walk", COLORS.setByWalk, false],
      ["stopped here", COLORS.fault, false],
      ["not needed / not reached", COLORS.cached, true],
    ];
    if (cachedBy.size > 0) {
      items.push([
        "skipped: a cache hit",
        { fill: `url(#${id}-hatch)`, stroke: COLORS.cached.stroke },
        false,
      ]);
    }
    let x = M;
    for (const [label, c, dashed] of items) {
      out.push(
        el("rect", {
          x,
          y: y + 2,
          width: 14,
          height: 14,
          rx: 3,
          fill: dashed ? "#ffffff" : c.fill,
          stroke: c.stroke,
          "stroke-dasharray": dashed ? "3 2" : undefined,
        }),
        text(x + 20, y + 13, label, { "font-size": 11, fill: COLORS.muted }),
      );
      x += 30 + label.length * 6;
    }
    y += 24;
  }
  const height = y + 8;
  const marker = el(
    "marker",
    {
      id: `${id}-arrow`,
      viewBox: "0 0 10 10",
      refX: 9,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: "auto-start-reverse",
    },
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: COLORS.line }),
  );
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
  }>${el("title", { id: `${id}-title` }, escapeXml(title))}${
    el("defs", {}, marker)
  }${
    cachedBy.size > 0
      ? el(
        "defs",
        {},
        el(
          "pattern",
          {
            id: `${id}-hatch`,
            width: 8,
            height: 8,
            patternUnits: "userSpaceOnUse",
            patternTransform: "rotate(45)",
          },
          el("rect", { width: 8, height: 8, fill: COLORS.cached.fill }) +
            el("line", {
              x1: 0,
              y1: 0,
              x2: 0,
              y2: 8,
              stroke: COLORS.cached.stroke,
              "stroke-width": 3,
            }),
        ),
      )
      : ""
  }${el("rect", { width, height, fill: "#ffffff" })}${out.join("")}</svg>`;
}
