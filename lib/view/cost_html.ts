/**
 * Views of cost models, cycle estimates and experiment results: pure
 * functions to text (REPL, `text/plain`) and HTML (notebooks). Every
 * constant is shown with its source; every interpolated string is escaped;
 * no ANSI codes.
 *
 * @module
 */

import type { CycleEstimate } from "../cost/estimate.ts";
import type { CostKey, CostModel } from "../cost/profiles.ts";
import { COST_KEYS } from "../cost/profiles.ts";
import type { ExperimentRow } from "../workload/experiment.ts";
import { escapeXml } from "./escape.ts";
import { COLORS, FONT_MONO, FONT_SANS, formatCount } from "./style.ts";

const TH =
  `style="text-align:left;padding:2px 10px;border-bottom:1px solid #999"`;
const TD = `style="padding:2px 10px;font-family:${
  escapeXml(FONT_MONO)
};text-align:left;vertical-align:top"`;
const TDS = `style="padding:2px 10px;text-align:left;vertical-align:top"`;

function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  prose: ReadonlySet<number> = new Set(),
): string {
  const body = rows.map((r) =>
    `<tr>${
      r.map((c, i) => `<td ${prose.has(i) ? TDS : TD}>${escapeXml(c)}</td>`)
        .join("")
    }</tr>`
  ).join("");
  return `<table style="border-collapse:collapse;font-size:13px"><thead><tr>${
    head.map((h) => `<th ${TH}>${escapeXml(h)}</th>`).join("")
  }</tr></thead><tbody>${body}</tbody></table>`;
}

function wrap(title: string, inner: string, foot = ""): string {
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  };font-size:13px;color:${COLORS.ink}"><div style="font-weight:bold;margin:4px 0">${
    escapeXml(title)
  }</div>${inner}${
    foot === ""
      ? ""
      : `<p style="color:${COLORS.muted};margin:4px 0">${escapeXml(foot)}</p>`
  }</div>`;
}

/** A number for display: integers with thousands separators, others to 3 significant decimals. */
function num(v: number): string {
  if (!Number.isFinite(v)) return "—";
  if (Number.isInteger(v)) return formatCount(v);
  const a = Math.abs(v);
  return a >= 1000
    ? formatCount(Math.round(v))
    : a >= 100
    ? v.toFixed(1)
    : a >= 1
    ? v.toFixed(2)
    : v.toFixed(3);
}

function textTable(head: readonly string[], rows: readonly string[][]): string {
  const w = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  const line = (r: readonly string[]) =>
    r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/**
 * A cost model as text: every constant with its value and source.
 *
 * @example
 * ```ts
 * import { costModelToText } from "./cost_html.ts";
 * import { COST_MODELS } from "../cost/profiles.ts";
 * import assert from "node:assert/strict";
 * const t = costModelToText(COST_MODELS["pentium4-vtx"]);
 * assert.match(t, /vmEntry\s+2,409\s+Adams & Agesen/);
 * ```
 */
export function costModelToText(model: CostModel): string {
  const rows = (Object.keys(COST_KEYS) as CostKey[]).map((k) => [
    k,
    num(model.costs[k].value),
    model.costs[k].source,
  ]);
  return `cost model "${model.name}": ${model.description} (${model.ghz} GHz)\n` +
    textTable(["constant", "value", "source"], rows);
}

/**
 * A cost model as an HTML table: constant, value, what it prices, source.
 *
 * @example
 * ```ts
 * import { costModelToHtml } from "./cost_html.ts";
 * import { COST_MODELS, withCosts } from "../cost/profiles.ts";
 * import assert from "node:assert/strict";
 * const h = costModelToHtml(withCosts(COST_MODELS.modern, { l1: { value: 5, source: "<mine>" } }));
 * assert.match(h, /&lt;mine&gt;/);
 * assert.match(h, /SplitX, WIOV 2011/);
 * ```
 */
export function costModelToHtml(model: CostModel): string {
  const rows = (Object.keys(COST_KEYS) as CostKey[]).map((k) => [
    k,
    num(model.costs[k].value),
    COST_KEYS[k],
    model.costs[k].source,
  ]);
  return wrap(
    `cost model "${model.name}"`,
    table(["constant", "value", "prices", "source"], rows, new Set([2, 3])),
    `${model.description}; ${model.ghz} GHz. Values in cycles (walk* are fractions).`,
  );
}

function estimateRows(e: CycleEstimate): string[][] {
  return e.lines.map((l) => [
    l.component,
    l.event,
    num(l.count),
    `${num(l.unit)} (${l.constant})`,
    num(l.cycles),
  ]);
}

/**
 * A cycle estimate as text: one line per priced event, then the total.
 *
 * @example
 * ```ts
 * import { estimateToText } from "./cost_html.ts";
 * import { estimateCycles } from "../cost/estimate.ts";
 * import { COST_MODELS } from "../cost/profiles.ts";
 * import assert from "node:assert/strict";
 * const t = estimateToText(estimateCycles({ accesses: 10, exitsByReason: { "hidden-pf": 1 } }, COST_MODELS.modern));
 * assert.match(t, /exit: hidden-pf\s+1\s+1,500 \(hiddenFault\)/);
 * assert.match(t, /total 3,540 cycles/);
 * ```
 */
export function estimateToText(e: CycleEstimate): string {
  return `cycles by cost model "${e.model}"\n` +
    textTable(
      ["component", "event", "count", "cycles each", "cycles"],
      estimateRows(e),
    ) +
    `\ntotal ${num(e.total)} cycles (${
      num(e.total / e.ghz / 1000)
    } µs at ${e.ghz} GHz)` +
    (Number.isFinite(e.perAccess) ? `, ${num(e.perAccess)} per access` : "");
}

/**
 * A cycle estimate as an HTML table.
 *
 * @example
 * ```ts
 * import { estimateToHtml } from "./cost_html.ts";
 * import { estimateCycles } from "../cost/estimate.ts";
 * import { COST_MODELS } from "../cost/profiles.ts";
 * import assert from "node:assert/strict";
 * const h = estimateToHtml(estimateCycles({ accesses: 10, tlbMisses: 2, walkReferences: 8 }, COST_MODELS.modern));
 * assert.match(h, /<td[^>]*>walk references<\/td>/);
 * assert.match(h, /total 223.6 cycles/);
 * ```
 */
export function estimateToHtml(e: CycleEstimate): string {
  return wrap(
    `cycles by cost model "${e.model}"`,
    table(
      ["component", "event", "count", "cycles each", "cycles"],
      estimateRows(e),
    ),
    `total ${num(e.total)} cycles (${
      num(e.total / e.ghz / 1000)
    } µs at ${e.ghz} GHz)` +
      (Number.isFinite(e.perAccess) ? `, ${num(e.perAccess)} per access` : ""),
  );
}

/** What {@linkcode experimentToHtml} shows (an `ExperimentResult`). */
export interface ExperimentView {
  /** Workload. */
  readonly workload: { readonly name: string; readonly description: string };
  /** Cost model name. */
  readonly model: string;
  /** Rows. */
  readonly rows: readonly ExperimentRow[];
  /** Notes. */
  readonly notes: readonly string[];
}

const COLUMNS: readonly [string, (r: ExperimentRow) => string][] = [
  ["config", (r) => r.config],
  ["accesses", (r) => num(r.accesses)],
  ["TLB hit rate", (r) => num(r.tlbHitRate)],
  ["TLB misses", (r) => num(r.tlbMisses)],
  ["refs/miss", (r) => num(r.refsPerMiss)],
  ["guest #PF", (r) => num(r.guestPageFaults)],
  ["VM exits", (r) => num(r.vmExits)],
  ["cycles/access", (r) => num(r.cyclesPerAccess)],
  [
    "overhead",
    (r) => Number.isFinite(r.overhead) ? `${num(r.overhead)}×` : "—",
  ],
];

/**
 * Experiment results as text.
 *
 * @example
 * ```ts
 * import { experimentToText } from "./cost_html.ts";
 * import { runExperiment } from "../workload/experiment.ts";
 * import { pointerChase } from "../workload/generators.ts";
 * import assert from "node:assert/strict";
 * const t = experimentToText(runExperiment(pointerChase({ nodes: 8, laps: 1 })));
 * assert.match(t, /^native\s/m);
 * assert.match(t, /overhead/);
 * ```
 */
export function experimentToText(r: ExperimentView): string {
  return `${r.workload.name}: ${r.workload.description} (cost model "${r.model}")\n` +
    textTable(
      COLUMNS.map((c) => c[0]),
      r.rows.map((row) => COLUMNS.map((c) => c[1](row))),
    ) + "\n" + r.notes.map((n) => `note: ${n}`).join("\n");
}

/**
 * Experiment results as an HTML table.
 *
 * @example
 * ```ts
 * import { experimentToHtml } from "./cost_html.ts";
 * import { runExperiment } from "../workload/experiment.ts";
 * import { pointerChase } from "../workload/generators.ts";
 * import assert from "node:assert/strict";
 * const h = experimentToHtml(runExperiment(pointerChase({ nodes: 8, laps: 1 })));
 * assert.match(h, /<th[^>]*>refs\/miss<\/th>/);
 * assert.match(h, /nested\+caches/);
 * ```
 */
export function experimentToHtml(r: ExperimentView): string {
  return wrap(
    `${r.workload.name} — cost model "${r.model}"`,
    `<p style="margin:2px 0">${escapeXml(r.workload.description)}</p>` +
      table(
        COLUMNS.map((c) => c[0]),
        r.rows.map((row) => COLUMNS.map((c) => c[1](row))),
      ),
    r.notes.join(" · "),
  );
}
