/**
 * Views of Xen PV direct paging: the page-type table (frames, owner, type,
 * counts, pinned), a hypercall's result batch and a multicall's calls, as
 * text and HTML. Pure
 * functions of plain records; they never touch the model.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";
import { FONT_MONO, FONT_SANS } from "./style.ts";

/**
 * One row of the page-type table (a `PageInfo` plus who owns the frame
 * and which gfn the M2P gives it).
 *
 * @example
 * ```ts
 * import type { PageTypeRow } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const r: PageTypeRow = { mfn: 7, gfn: 2, owner: "dom1", type: "l1", typeCount: 1, refCount: 1, pinned: true, validated: true };
 * assert.equal(r.type, "l1");
 * ```
 */
export interface PageTypeRow {
  /** Machine frame. */
  readonly mfn: number;
  /** Its gfn by the M2P, if any. */
  readonly gfn: number | undefined;
  /** Owner in words: "dom1", "dom2", … for a domain, "Xen" for a hypervisor frame, "free" for an unallocated one. */
  readonly owner: string;
  /** Page type name. */
  readonly type: string;
  /** Type count. */
  readonly typeCount: number;
  /** General reference count. */
  readonly refCount: number;
  /** Pinned. */
  readonly pinned: boolean;
  /** Validated. */
  readonly validated: boolean;
}

/**
 * What the batch views need of a hypercall result.
 *
 * @example
 * ```ts
 * import type { PvBatchView } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const b: PvBatchView = { hypercall: "mmu_update", done: 0, rc: "EPERM", results: [] };
 * assert.equal(b.rc, "EPERM");
 * ```
 */
export interface PvBatchView {
  /** Hypercall name. */
  readonly hypercall: string;
  /** Requests done. */
  readonly done: number;
  /** 0 or the refusal code. */
  readonly rc: 0 | string;
  /** Per-request results. */
  readonly results: readonly {
    readonly index: number;
    readonly what: string;
    readonly code: string;
    readonly reason: string;
  }[];
}

const hex = (n: number | undefined): string =>
  n === undefined ? "-" : "0x" + n.toString(16);

/**
 * The page-type table as text (at most `max` rows; the rest counted).
 *
 * @example
 * ```ts
 * import { pageTypesToText } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const t = pageTypesToText([{ mfn: 7, gfn: 2, owner: "dom1", type: "l4", typeCount: 2, refCount: 2, pinned: true, validated: true }]);
 * assert.match(t, /0x7 +0x2 +dom1 +l4 +2 +2 +pinned/);
 * ```
 */
export function pageTypesToText(
  rows: readonly PageTypeRow[],
  max = 40,
): string {
  const lines = [
    `page types: ${rows.length} frame(s) in use`,
    "mfn      gfn      owner  type      tc  rc  flags",
  ];
  for (const r of rows.slice(0, max)) {
    lines.push(
      `${hex(r.mfn).padEnd(8)} ${hex(r.gfn).padEnd(8)} ${r.owner.padEnd(6)} ${
        r.type.padEnd(9)
      } ${String(r.typeCount).padStart(2)} ${String(r.refCount).padStart(3)}  ${
        [r.pinned ? "pinned" : "", r.validated ? "validated" : ""].filter((x) =>
          x
        ).join(",")
      }`,
    );
  }
  if (rows.length > max) {
    lines.push(`… ${rows.length - max} more frames not shown`);
  }
  return lines.join("\n");
}

const TYPE_FILL: Record<string, string> = {
  l1: "#dbeafe",
  l2: "#bfdbfe",
  l3: "#93c5fd",
  l4: "#60a5fa",
  writable: "#dcfce7",
  "seg-desc": "#fef3c7",
  none: "#f8fafc",
};

/**
 * The page-type table as an HTML table (page tables in blues, writable
 * frames in green).
 *
 * @example
 * ```ts
 * import { pageTypesToHtml } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const h = pageTypesToHtml([{ mfn: 7, gfn: undefined, owner: "<x>", type: "l1", typeCount: 1, refCount: 1, pinned: false, validated: true }]);
 * assert.match(h, /&lt;x&gt;/);
 * assert.match(h, /<table/);
 * ```
 */
export function pageTypesToHtml(
  rows: readonly PageTypeRow[],
  max = 64,
): string {
  const td = `style="border:1px solid #cbd5e1;padding:2px 6px;font-family:${
    escapeXml(FONT_MONO)
  }"`;
  const body = rows.slice(0, max).map((r) =>
    `<tr style="background:${TYPE_FILL[r.type] ?? "#fff"}"><td ${td}>${
      escapeXml(hex(r.mfn))
    }</td><td ${td}>${escapeXml(hex(r.gfn))}</td><td ${td}>${
      escapeXml(r.owner)
    }</td><td ${td}>${
      escapeXml(r.type)
    }</td><td ${td}>${r.typeCount}</td><td ${td}>${r.refCount}</td><td ${td}>${
      r.pinned ? "pinned" : ""
    }</td><td ${td}>${r.validated ? "validated" : ""}</td></tr>`
  ).join("");
  const more = rows.length > max
    ? `<p>… ${rows.length - max} more frames not shown</p>`
    : "";
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  }"><b>page types</b> (${rows.length} frame(s) in use)` +
    `<table style="border-collapse:collapse"><tr><th>mfn</th><th>gfn</th><th>owner</th><th>type</th><th>type count</th><th>refs</th><th>pinned</th><th>validated</th></tr>${body}</table>${more}</div>`;
}

/**
 * A hypercall batch as text: one line per request with its code.
 *
 * @example
 * ```ts
 * import { pvBatchToText } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const t = pvBatchToText({ hypercall: "mmu_update", done: 1, rc: "EPERM", results: [
 *   { index: 0, what: "L1 0x5[0] = 0x7007", code: "ok", reason: "" },
 *   { index: 1, what: "L1 0x5[1] = 0x9007", code: "EPERM", reason: "foreign frame" },
 *   { index: 2, what: "L1 0x5[2] = 0x0", code: "not-run", reason: "" }] });
 * assert.match(t, /1 of 3 done, -EPERM/);
 * assert.match(t, /EPERM +L1 0x5\[1\].*foreign frame/);
 * ```
 */
export function pvBatchToText(b: PvBatchView): string {
  const lines = [
    `${b.hypercall}: ${b.done} of ${b.results.length} done${
      b.rc === 0 ? "" : `, -${b.rc}`
    }`,
  ];
  for (const r of b.results) {
    lines.push(
      `  ${String(r.index).padStart(3)} ${r.code.padEnd(7)} ${r.what}${
        r.reason ? ` — ${r.reason}` : ""
      }`,
    );
  }
  return lines.join("\n");
}

/**
 * A hypercall batch as HTML (refused request in red, not-run greyed).
 *
 * @example
 * ```ts
 * import { pvBatchToHtml } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const h = pvBatchToHtml({ hypercall: "mmu_update", done: 0, rc: "EINVAL", results: [
 *   { index: 0, what: "L2 <a>", code: "EINVAL", reason: "PSE & co" }] });
 * assert.match(h, /L2 &lt;a&gt;/);
 * assert.match(h, /PSE &amp; co/);
 * ```
 */
export function pvBatchToHtml(b: PvBatchView): string {
  const td = `style="border:1px solid #cbd5e1;padding:2px 6px;font-family:${
    escapeXml(FONT_MONO)
  }"`;
  const fill = (c: string) =>
    c === "ok" ? "#dcfce7" : c === "not-run" ? "#f1f5f9" : "#fee2e2";
  const rows = b.results.map((r) =>
    `<tr style="background:${
      fill(r.code)
    }"><td ${td}>${r.index}</td><td ${td}>${escapeXml(r.code)}</td><td ${td}>${
      escapeXml(r.what)
    }</td><td ${td}>${escapeXml(r.reason)}</td></tr>`
  ).join("");
  return `<div style="font-family:${escapeXml(FONT_SANS)}"><b>${
    escapeXml(b.hypercall)
  }</b>: ${b.done} of ${b.results.length} done${
    b.rc === 0 ? "" : `, <b>-${escapeXml(b.rc)}</b>`
  }<table style="border-collapse:collapse"><tr><th>#</th><th>result</th><th>request</th><th>reason</th></tr>${rows}</table></div>`;
}

/**
 * What the multicall views need: the carried calls' results.
 *
 * @example
 * ```ts
 * import type { PvMulticallView } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const m: PvMulticallView = { calls: [{ hypercall: "mmuext_op", done: 1, rc: 0, results: [] }] };
 * assert.equal(m.calls.length, 1);
 * ```
 */
export interface PvMulticallView {
  /** One batch per carried call. */
  readonly calls: readonly PvBatchView[];
}

function multicallSummary(m: PvMulticallView): string {
  const bad = m.calls.filter((c) => c.rc !== 0).length;
  const ops = m.calls.reduce((n, c) => n + c.results.length, 0);
  return `multicall: ${m.calls.length} call${
    m.calls.length === 1 ? "" : "s"
  }, ${ops} operation${ops === 1 ? "" : "s"}, ${
    bad === 0 ? "all ok" : `${bad} refused`
  }`;
}

/**
 * A multicall as text: a summary line (one entry into Xen), then each
 * carried call indented.
 *
 * @example
 * ```ts
 * import { pvMulticallToText } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const t = pvMulticallToText({ calls: [
 *   { hypercall: "mmu_update", done: 1, rc: 0, results: [{ index: 0, what: "L1 0x5[0] = 0x7005", code: "ok", reason: "" }] },
 *   { hypercall: "mmuext_op", done: 0, rc: "EINVAL", results: [{ index: 0, what: "unpin 0x5", code: "EINVAL", reason: "not pinned" }] }] });
 * assert.match(t, /^multicall: 2 calls, 2 operations, 1 refused/);
 * assert.match(t, /\n  \[1\] mmuext_op: 0 of 1 done, -EINVAL/);
 * ```
 */
export function pvMulticallToText(m: PvMulticallView): string {
  const lines = [multicallSummary(m)];
  m.calls.forEach((c, i) => {
    for (const [k, l] of pvBatchToText(c).split("\n").entries()) {
      lines.push(k === 0 ? `  [${i}] ${l}` : `    ${l}`);
    }
  });
  return lines.join("\n");
}

/**
 * A multicall as HTML: the summary, then each call's table.
 *
 * @example
 * ```ts
 * import { pvMulticallToHtml } from "./pv_html.ts";
 * import assert from "node:assert/strict";
 * const h = pvMulticallToHtml({ calls: [
 *   { hypercall: "mmuext_op", done: 1, rc: 0, results: [{ index: 0, what: "pin-l4 <0x9>", code: "ok", reason: "" }] }] });
 * assert.match(h, /multicall: 1 call, 1 operation, all ok/);
 * assert.match(h, /pin-l4 &lt;0x9&gt;/);
 * ```
 */
export function pvMulticallToHtml(m: PvMulticallView): string {
  return `<div style="font-family:${escapeXml(FONT_SANS)}"><b>${
    escapeXml(multicallSummary(m))
  }</b> (one entry into Xen)<ol start="0" style="margin:2px 0">${
    m.calls.map((c) => `<li>${pvBatchToHtml(c)}</li>`).join("")
  }</ol></div>`;
}
