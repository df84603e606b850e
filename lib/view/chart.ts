/**
 * Charts from tidy rows: Vega-Lite v5 specs plus a static SVG.
 *
 * A {@linkcode Chart} is displayed in Jupyter as a MIME bundle with
 * `application/vnd.vegalite.v5+json` (JupyterLab and VS Code draw it
 * interactively), `image/svg+xml` (classic Notebook, nbconvert HTML,
 * GitHub) and `text/plain` (a small fixed-width table of the data).
 *
 * The Jupyter display hook is synchronous but rendering the SVG needs vega,
 * which this module imports lazily (so importing `mod.ts` stays fast). So
 * charts are made by async factories that render the SVG first; in a
 * notebook cell write
 *
 * ```ts ignore
 * await barChart(rows, { x: "config", y: "value", color: "metric" })
 * ```
 *
 * The spec builders ({@linkcode barSpec}, {@linkcode lineSpec},
 * {@linkcode scatterSpec}, {@linkcode heatmapSpec}) are synchronous and
 * pure; they take the field names as options, so any row shape works, e.g.
 * `{config: "nested-4K/4K", metric: "refsPerAccess", value: 1.7}` or
 * `{scheme, workload, cycles, overheadVsNative}`. Wide rows can be made
 * tidy with {@linkcode tidyRows}. Only the fields a chart uses (encodings
 * and tooltip) are copied into its spec, and at most `maxRows` rows
 * (default 2000) are accepted, so outputs stay bounded.
 *
 * Not modelled: interactive selections, faceting, temporal axes; the
 * static SVG uses vega's estimated text widths (no fonts are measured).
 *
 * @module
 */

import { CUSTOM_INSPECT, JUPYTER_DISPLAY, type MimeBundle } from "./display.ts";

/** The Vega-Lite v5 schema URL every spec carries. */
export const VEGA_LITE_SCHEMA =
  "https://vega.github.io/schema/vega-lite/v5.json";

/** The MIME type of a Vega-Lite v5 spec in a Jupyter bundle. */
export const VEGA_LITE_MIME = "application/vnd.vegalite.v5+json";

/** A Vega-Lite v5 top-level spec (JSON). */
export interface VegaLiteSpec {
  /** Always {@linkcode VEGA_LITE_SCHEMA}. */
  readonly $schema: string;
  /** Anything else Vega-Lite accepts. */
  readonly [key: string]: unknown;
}

/** A tidy data row: one observation, fields by name. */
export type Row = Readonly<Record<string, unknown>>;

/** Options shared by every chart builder. */
export interface ChartOptions {
  /** Chart title. */
  title?: string;
  /** Caption / source line, shown under the title (e.g. "Source: …"). */
  caption?: string;
  /** Plot width in pixels (default 400). */
  width?: number;
  /** Plot height in pixels (default 240). */
  height?: number;
  /** X axis title (default: the field name). */
  xTitle?: string;
  /** Y axis title (default: the field name). */
  yTitle?: string;
  /** Colour legend title (default: the field name). */
  colorTitle?: string;
  /** Fields shown in the tooltip (default: every encoded field). */
  tooltip?: readonly string[];
  /** Most rows accepted (default 2000); more is a `RangeError`. */
  maxRows?: number;
}

/** Options of {@linkcode barSpec} / {@linkcode barChart}. */
export interface BarOptions extends ChartOptions {
  /** Category field (one bar, or group of bars, per value). */
  x: string;
  /** Numeric value field. */
  y: string;
  /** Optional series field: bars grouped or stacked by it. */
  color?: string;
  /** With `color`: side by side ("grouped", default) or "stacked". */
  mode?: "grouped" | "stacked";
  /** Log scale on the value axis (values must be > 0). */
  logY?: boolean;
}

/** Options of {@linkcode lineSpec} / {@linkcode lineChart}. */
export interface LineOptions extends ChartOptions {
  /** X field (numbers: quantitative axis; anything else: ordinal). */
  x: string;
  /** Numeric y field. */
  y: string;
  /** Optional series field: one line per value. */
  color?: string;
  /** Log scale on x (values must be > 0). */
  logX?: boolean;
  /** Log scale on y (values must be > 0). */
  logY?: boolean;
  /** Draw a point at each row (default true). */
  points?: boolean;
}

/** Options of {@linkcode scatterSpec} / {@linkcode scatterChart}. */
export interface ScatterOptions extends ChartOptions {
  /** Numeric x field. */
  x: string;
  /** Numeric y field. */
  y: string;
  /** Optional series field (colour and shape). */
  color?: string;
  /** Log scale on x (values must be > 0). */
  logX?: boolean;
  /** Log scale on y (values must be > 0). */
  logY?: boolean;
}

/** Options of {@linkcode heatmapSpec} / {@linkcode heatmap}. */
export interface HeatmapOptions extends ChartOptions {
  /** Column category field. */
  x: string;
  /** Row category field. */
  y: string;
  /** Numeric field giving each cell's colour. */
  value: string;
  /** Write each cell's value in it (default true). */
  labels?: boolean;
  /** Vega colour scheme name (default "blues"). */
  scheme?: string;
}

const DEFAULT_MAX_ROWS = 2000;

function isNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** Check rows and fields; return copies holding only `fields`. */
function pick(
  rows: readonly Row[],
  fields: readonly string[],
  numeric: readonly string[],
  positive: readonly string[],
  maxRows: number,
): Record<string, unknown>[] {
  if (!Array.isArray(rows)) {
    throw new TypeError(
      `chart rows must be an array of objects, got ${typeof rows}`,
    );
  }
  if (!Number.isInteger(maxRows) || maxRows < 1) {
    throw new RangeError(
      `chart maxRows ${maxRows} is invalid: expected a positive integer`,
    );
  }
  if (rows.length === 0) {
    throw new RangeError("chart rows are empty: expected at least one row");
  }
  if (rows.length > maxRows) {
    throw new RangeError(
      `chart has ${rows.length} rows, more than maxRows ${maxRows}: aggregate first or raise maxRows`,
    );
  }
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      throw new TypeError(
        `chart row ${i} is ${
          r === null ? "null" : typeof r
        }: expected an object`,
      );
    }
    for (const k of Object.keys(r)) seen.add(k);
  });
  for (const f of fields) {
    if (typeof f !== "string" || f === "") {
      throw new TypeError(
        `chart field name ${String(f)} is invalid: expected a non-empty string`,
      );
    }
    if (!seen.has(f)) {
      throw new RangeError(
        `chart field "${f}" is not in the rows (fields: ${
          [...seen].join(", ")
        })`,
      );
    }
  }
  rows.forEach((r, i) => {
    for (const f of numeric) {
      const v = r[f];
      if (v !== null && v !== undefined && !isNumber(v)) {
        throw new TypeError(
          `chart row ${i} field "${f}" is ${
            JSON.stringify(v)
          }: expected a finite number`,
        );
      }
    }
    for (const f of positive) {
      const v = r[f];
      if (isNumber(v) && v <= 0) {
        throw new RangeError(
          `chart row ${i} field "${f}" is ${v}: a log scale needs values > 0`,
        );
      }
    }
  });
  return rows.map((r) => {
    const o: Record<string, unknown> = {};
    for (const f of fields) if (r[f] !== undefined) o[f] = r[f];
    return o;
  });
}

function fieldType(
  rows: readonly Row[],
  field: string,
): "quantitative" | "ordinal" {
  return rows.every((r) => r[field] == null || isNumber(r[field]))
    ? "quantitative"
    : "ordinal";
}

function size(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 20 || v > 4000) {
    throw new RangeError(
      `chart ${what} ${v} is invalid: expected an integer from 20 to 4000`,
    );
  }
  return v;
}

function unique(xs: readonly (string | undefined)[]): string[] {
  return [...new Set(xs.filter((x): x is string => x !== undefined))];
}

/** Common top-level parts: schema, title/caption, size, data, tooltip. */
function frame(
  opts: ChartOptions,
  fields: readonly string[],
  numeric: readonly string[],
  positive: readonly string[],
  rows: readonly Row[],
): {
  top: Record<string, unknown> & { $schema: string };
  tooltip: Record<string, unknown>[];
} {
  const tipFields = opts.tooltip ?? fields;
  const all = unique([...fields, ...tipFields]);
  const values = pick(
    rows,
    all,
    numeric,
    positive,
    opts.maxRows ?? DEFAULT_MAX_ROWS,
  );
  const top: Record<string, unknown> & { $schema: string } = {
    $schema: VEGA_LITE_SCHEMA,
  };
  if (opts.title !== undefined || opts.caption !== undefined) {
    const title: Record<string, unknown> = { anchor: "start" };
    const caption = {
      color: "#555",
      fontStyle: "italic",
      fontWeight: "normal",
    };
    if (opts.title === undefined) {
      // vega drops a subtitle with an empty title: the caption stands alone
      title.text = opts.caption;
      Object.assign(title, caption, { fontSize: 11 });
    } else {
      title.text = opts.title;
      if (opts.caption !== undefined) {
        title.subtitle = opts.caption;
        title.subtitleColor = caption.color;
        title.subtitleFontStyle = caption.fontStyle;
      }
    }
    top.title = title;
  }
  top.width = size(opts.width, 400, "width");
  top.height = size(opts.height, 240, "height");
  top.data = { values };
  const tooltip = tipFields.map((f) => ({
    field: f,
    type: fieldType(values, f) === "quantitative" ? "quantitative" : "nominal",
  }));
  return { top, tooltip };
}

function axisTitle(t: string | undefined, field: string): string {
  return t ?? field;
}

/**
 * A bar chart spec from tidy rows: one bar per `x` category, or with
 * `color` a group of bars (`mode: "grouped"`, the default) or a stack
 * (`mode: "stacked"`). Categories keep the rows' order.
 *
 * @example
 * ```ts
 * import { barSpec, VEGA_LITE_SCHEMA } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const rows = [
 *   { config: "native", metric: "refs", value: 4 },
 *   { config: "nested", metric: "refs", value: 24 },
 * ];
 * const spec = barSpec(rows, { x: "config", y: "value", color: "metric", title: "Walk length" });
 * assert.equal(spec.$schema, VEGA_LITE_SCHEMA);
 * const enc = spec.encoding as Record<string, { field: string }>;
 * assert.equal(enc.x.field, "config");
 * assert.equal(enc.xOffset.field, "metric"); // grouped
 * assert.throws(() => barSpec(rows, { x: "nope", y: "value" }), /field "nope"/);
 * ```
 */
export function barSpec(rows: readonly Row[], opts: BarOptions): VegaLiteSpec {
  const mode = opts.mode ?? "grouped";
  if (mode !== "grouped" && mode !== "stacked") {
    throw new RangeError(
      `bar mode "${mode}" is invalid: expected "grouped" or "stacked"`,
    );
  }
  const fields = unique([opts.x, opts.y, opts.color]);
  const { top, tooltip } = frame(
    opts,
    fields,
    [opts.y],
    opts.logY ? [opts.y] : [],
    rows,
  );
  const y: Record<string, unknown> = {
    field: opts.y,
    type: "quantitative",
    title: axisTitle(opts.yTitle, opts.y),
  };
  if (opts.logY) y.scale = { type: "log" };
  if (opts.color !== undefined && mode === "grouped") y.stack = null;
  const encoding: Record<string, unknown> = {
    x: {
      field: opts.x,
      type: "nominal",
      sort: null,
      title: axisTitle(opts.xTitle, opts.x),
      axis: { labelAngle: -30, labelLimit: 160 },
    },
    y,
    tooltip,
  };
  if (opts.color !== undefined) {
    encoding.color = {
      field: opts.color,
      type: "nominal",
      sort: null,
      title: axisTitle(opts.colorTitle, opts.color),
    };
    if (mode === "grouped") {
      encoding.xOffset = { field: opts.color, type: "nominal", sort: null };
    }
  }
  return { ...top, mark: { type: "bar" }, encoding } as VegaLiteSpec;
}

/**
 * A line chart spec from tidy rows: one line per `color` value (if given),
 * points on by default, optional log scales.
 *
 * @example
 * ```ts
 * import { lineSpec } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const rows = [1, 2, 4, 8].map((pages) => ({ pages, misses: 100 / pages }));
 * const spec = lineSpec(rows, { x: "pages", y: "misses", logX: true, logY: true });
 * const enc = spec.encoding as Record<string, { type: string; scale?: { type: string } }>;
 * assert.equal(enc.x.type, "quantitative");
 * assert.equal(enc.x.scale?.type, "log");
 * assert.throws(() => lineSpec([{ pages: 0, misses: 1 }], { x: "pages", y: "misses", logX: true }), /> 0/);
 * ```
 */
export function lineSpec(
  rows: readonly Row[],
  opts: LineOptions,
): VegaLiteSpec {
  const fields = unique([opts.x, opts.y, opts.color]);
  const positive = [
    ...(opts.logX ? [opts.x] : []),
    ...(opts.logY ? [opts.y] : []),
  ];
  const numeric = unique([opts.y, ...(opts.logX ? [opts.x] : [])]);
  const { top, tooltip } = frame(opts, fields, numeric, positive, rows);
  const values = (top.data as { values: Row[] }).values;
  const xType = fieldType(values, opts.x);
  const x: Record<string, unknown> = {
    field: opts.x,
    type: xType,
    title: axisTitle(opts.xTitle, opts.x),
  };
  if (xType === "ordinal") x.sort = null;
  if (opts.logX) x.scale = { type: "log" };
  const y: Record<string, unknown> = {
    field: opts.y,
    type: "quantitative",
    title: axisTitle(opts.yTitle, opts.y),
  };
  if (opts.logY) y.scale = { type: "log" };
  const encoding: Record<string, unknown> = { x, y, tooltip };
  if (opts.color !== undefined) {
    encoding.color = {
      field: opts.color,
      type: "nominal",
      sort: null,
      title: axisTitle(opts.colorTitle, opts.color),
    };
  }
  return {
    ...top,
    mark: { type: "line", point: opts.points ?? true },
    encoding,
  } as VegaLiteSpec;
}

/**
 * A scatter plot spec from tidy rows, optional log scales on either axis
 * and a series field drawn with colour and shape.
 *
 * @example
 * ```ts
 * import { scatterSpec } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const rows = [{ ws: 4096, cpa: 1.2, s: "shadow" }, { ws: 1 << 20, cpa: 9.5, s: "nested" }];
 * const spec = scatterSpec(rows, { x: "ws", y: "cpa", color: "s", logX: true });
 * const enc = spec.encoding as Record<string, { field: string }>;
 * assert.equal(enc.shape.field, "s");
 * assert.deepEqual((spec.data as { values: unknown[] }).values, rows);
 * assert.throws(() => scatterSpec([{ ws: "big", cpa: 1 }], { x: "ws", y: "cpa" }), /"big"/);
 * ```
 */
export function scatterSpec(
  rows: readonly Row[],
  opts: ScatterOptions,
): VegaLiteSpec {
  const fields = unique([opts.x, opts.y, opts.color]);
  const positive = [
    ...(opts.logX ? [opts.x] : []),
    ...(opts.logY ? [opts.y] : []),
  ];
  const { top, tooltip } = frame(
    opts,
    fields,
    [opts.x, opts.y],
    positive,
    rows,
  );
  const axis = (
    field: string,
    title: string | undefined,
    log: boolean | undefined,
  ) => {
    const a: Record<string, unknown> = {
      field,
      type: "quantitative",
      title: axisTitle(title, field),
    };
    if (log) a.scale = { type: "log" };
    return a;
  };
  const encoding: Record<string, unknown> = {
    x: axis(opts.x, opts.xTitle, opts.logX),
    y: axis(opts.y, opts.yTitle, opts.logY),
    tooltip,
  };
  if (opts.color !== undefined) {
    const series = {
      field: opts.color,
      type: "nominal",
      sort: null,
      title: axisTitle(opts.colorTitle, opts.color),
    };
    encoding.color = series;
    encoding.shape = series;
  }
  return {
    ...top,
    mark: { type: "point", filled: true, size: 60 },
    encoding,
  } as VegaLiteSpec;
}

/**
 * A heatmap spec from tidy rows: `x` × `y` categories, each cell coloured
 * by `value` and (by default) labelled with it.
 *
 * @example
 * ```ts
 * import { heatmapSpec } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const rows = [
 *   { guest: "4K", host: "4K", refs: 24 }, { guest: "4K", host: "2M", refs: 19 },
 *   { guest: "2M", host: "4K", refs: 19 }, { guest: "2M", host: "2M", refs: 15 },
 * ];
 * const spec = heatmapSpec(rows, { x: "host", y: "guest", value: "refs" });
 * const layer = spec.layer as { mark: { type: string } }[];
 * assert.deepEqual(layer.map((l) => l.mark.type), ["rect", "text"]);
 * ```
 */
export function heatmapSpec(
  rows: readonly Row[],
  opts: HeatmapOptions,
): VegaLiteSpec {
  const fields = unique([opts.x, opts.y, opts.value]);
  const { top, tooltip } = frame(opts, fields, [opts.value], [], rows);
  if (opts.scheme !== undefined && !/^[a-z][a-z0-9-]*$/i.test(opts.scheme)) {
    throw new RangeError(
      `heatmap scheme "${opts.scheme}" is invalid: expected a vega scheme name such as "blues"`,
    );
  }
  const encoding = {
    x: {
      field: opts.x,
      type: "ordinal",
      sort: null,
      title: axisTitle(opts.xTitle, opts.x),
      axis: { labelAngle: 0 },
    },
    y: {
      field: opts.y,
      type: "ordinal",
      sort: null,
      title: axisTitle(opts.yTitle, opts.y),
    },
  };
  const rect = {
    mark: { type: "rect" },
    encoding: {
      color: {
        field: opts.value,
        type: "quantitative",
        title: axisTitle(opts.colorTitle, opts.value),
        scale: { scheme: opts.scheme ?? "blues" },
      },
      tooltip,
    },
  };
  const layer: unknown[] = [rect];
  if (opts.labels ?? true) {
    // light text on the darker half of the colour range
    const vs = (top.data as { values: Row[] }).values
      .map((r) => r[opts.value])
      .filter(isNumber);
    const mid = vs.length ? (Math.min(...vs) + Math.max(...vs)) / 2 : 0;
    layer.push({
      mark: { type: "text", baseline: "middle", fontSize: 11 },
      encoding: {
        text: { field: opts.value, type: "quantitative" },
        color: {
          condition: {
            test: `datum[${JSON.stringify(opts.value)}] > ${mid}`,
            value: "white",
          },
          value: "black",
        },
        tooltip,
      },
    });
  }
  return { ...top, encoding, layer } as VegaLiteSpec;
}

/**
 * Turn wide rows into tidy (long) rows: for each row and each of
 * `valueFields`, one row with the `idFields`, `metric` (the field's name)
 * and `value`.
 *
 * @example
 * ```ts
 * import { tidyRows } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const wide = [{ scheme: "shadow", cycles: 120, exits: 3 }];
 * assert.deepEqual(tidyRows(wide, ["scheme"], ["cycles", "exits"]), [
 *   { scheme: "shadow", metric: "cycles", value: 120 },
 *   { scheme: "shadow", metric: "exits", value: 3 },
 * ]);
 * ```
 */
export function tidyRows(
  rows: readonly Row[],
  idFields: readonly string[],
  valueFields: readonly string[],
  names: { metric?: string; value?: string } = {},
): Record<string, unknown>[] {
  const metric = names.metric ?? "metric";
  const value = names.value ?? "value";
  if (!Array.isArray(rows)) {
    throw new TypeError(`tidyRows rows must be an array, got ${typeof rows}`);
  }
  const out: Record<string, unknown>[] = [];
  for (const r of rows) {
    for (const f of valueFields) {
      if (!(f in r)) {
        throw new RangeError(
          `tidyRows value field "${f}" is not in row ${JSON.stringify(r)}`,
        );
      }
      const o: Record<string, unknown> = {};
      for (const id of idFields) o[id] = r[id];
      o[metric] = f;
      o[value] = r[f];
      out.push(o);
    }
  }
  return out;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  }
  return String(v).replace(/\s+/g, " ");
}

/**
 * A fixed-width text table of rows (the charts' plain-text fallback):
 * numbers right-aligned, cells cut at 24 characters, rows after `maxRows`
 * folded into a "… N more rows" line.
 *
 * @example
 * ```ts
 * import { dataTable } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const t = dataTable([{ k: "a", v: 1.5 }, { k: "bb", v: 10 }, { k: "c", v: 2 }], 2);
 * assert.equal(t, "k   v\n--  ---\na   1.5\nbb   10\n… 1 more row");
 * ```
 */
export function dataTable(rows: readonly Row[], maxRows = 20): string {
  const fields = unique(rows.flatMap((r) => Object.keys(r)));
  if (fields.length === 0) return "(no data)";
  const shown = rows.slice(0, maxRows);
  const clip = (s: string) => s.length > 24 ? s.slice(0, 23) + "…" : s;
  const body = shown.map((r) => fields.map((f) => clip(cell(r[f]))));
  const head = fields.map(clip);
  const numericCol = fields.map((f) =>
    shown.every((r) => r[f] == null || typeof r[f] === "number")
  );
  const widths = head.map((h, i) =>
    Math.max(h.length, ...body.map((b) => b[i].length))
  );
  const line = (cells: string[], header: boolean) =>
    cells.map((c, i) =>
      numericCol[i] && !header ? c.padStart(widths[i]) : c.padEnd(widths[i])
    ).join("  ").trimEnd();
  const lines = [
    line(head, true),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...body.map((b) => line(b, false)),
  ];
  const more = rows.length - shown.length;
  if (more > 0) lines.push(`… ${more} more row${more === 1 ? "" : "s"}`);
  return lines.join("\n");
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}

function specText(spec: VegaLiteSpec): string {
  const title = spec.title as
    | string
    | { text?: unknown; subtitle?: unknown }
    | undefined;
  const lines: string[] = [];
  if (typeof title === "string") lines.push(title);
  if (typeof title === "object" && typeof title.text === "string") {
    lines.push(title.text);
  }
  if (typeof title === "object" && typeof title.subtitle === "string") {
    lines.push(title.subtitle);
  }
  const data = spec.data as { values?: Row[] } | undefined;
  lines.push(
    Array.isArray(data?.values)
      ? dataTable(data.values)
      : "(chart data not inline)",
  );
  return lines.join("\n");
}

/**
 * A rendered chart: a Vega-Lite v5 spec with its static SVG. Make one with
 * {@linkcode Chart.render} or the helpers ({@linkcode barChart}, …); the
 * constructor takes an SVG you already have.
 *
 * @example
 * ```ts
 * import { barSpec, Chart, VEGA_LITE_MIME } from "./chart.ts";
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import assert from "node:assert/strict";
 * const spec = barSpec([{ k: "a", v: 1 }, { k: "b", v: 3 }], { x: "k", y: "v", title: "T" });
 * const chart = await Chart.render(spec);
 * const bundle = chart[JUPYTER_DISPLAY]();
 * assert.deepEqual(Object.keys(bundle).sort(), ["image/svg+xml", "text/plain", VEGA_LITE_MIME].sort());
 * assert.equal(bundle[VEGA_LITE_MIME], chart.spec);
 * assert.match(chart.svg, /<svg/);
 * assert.match(chart.text, /^T\nk  v\n/);
 * ```
 */
export class Chart {
  /** The Vega-Lite v5 spec (deeply frozen). */
  readonly spec: VegaLiteSpec;
  /** The static SVG rendering. */
  readonly svg: string;
  /** Plain-text fallback: title, caption and a table of the data. */
  readonly text: string;
  /** Warnings vega-lite or vega gave while rendering. */
  readonly warnings: readonly string[];

  /** Pair a spec with its SVG; `TypeError` unless it is a v5 spec and an SVG. */
  constructor(
    spec: VegaLiteSpec,
    svg: string,
    warnings: readonly string[] = [],
  ) {
    if (spec === null || typeof spec !== "object") {
      throw new TypeError(`chart spec is ${spec}: expected a Vega-Lite object`);
    }
    if (spec.$schema !== VEGA_LITE_SCHEMA) {
      throw new TypeError(
        `chart spec $schema ${
          JSON.stringify(spec.$schema)
        } is not the Vega-Lite v5 schema ${VEGA_LITE_SCHEMA}`,
      );
    }
    if (typeof svg !== "string" || !svg.startsWith("<svg")) {
      throw new TypeError(
        `chart svg ${
          JSON.stringify(String(svg).slice(0, 20))
        } is invalid: expected markup starting with <svg`,
      );
    }
    this.spec = deepFreeze(structuredClone(spec));
    this.svg = svg;
    this.text = specText(this.spec);
    this.warnings = Object.freeze([...warnings]);
  }

  /**
   * Render `spec` (lazily loading vega) and wrap it. Rejects with
   * `TypeError` when the spec is not v5 or does not compile.
   */
  static async render(spec: VegaLiteSpec): Promise<Chart> {
    if (spec?.$schema !== VEGA_LITE_SCHEMA) {
      throw new TypeError(
        `chart spec $schema ${
          JSON.stringify(spec?.$schema)
        } is not the Vega-Lite v5 schema ${VEGA_LITE_SCHEMA}`,
      );
    }
    const { renderVegaLite } = await import("./chart_render.ts");
    const { svg, warnings } = await renderVegaLite(spec);
    return new Chart(spec, svg, warnings);
  }

  /** The MIME bundle: Vega-Lite spec, static SVG, plain text. */
  get bundle(): MimeBundle {
    return {
      "text/plain": this.text,
      "image/svg+xml": this.svg,
      [VEGA_LITE_MIME]: this.spec,
    };
  }

  /** Jupyter rich display: the three-type MIME bundle. */
  [JUPYTER_DISPLAY](): Record<string, unknown> {
    return { ...this.bundle };
  }

  /** REPL display: the plain text. */
  [CUSTOM_INSPECT](): string {
    return this.text;
  }

  /** The plain text. */
  toString(): string {
    return this.text;
  }
}

/**
 * Render any Vega-Lite v5 spec into a {@linkcode Chart}
 * (same as {@linkcode Chart.render}).
 *
 * @example
 * ```ts
 * import { renderChart, scatterSpec } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const c = await renderChart(scatterSpec([{ a: 1, b: 2 }], { x: "a", y: "b" }));
 * assert.match(c.svg, /<path/);
 * ```
 */
export function renderChart(spec: VegaLiteSpec): Promise<Chart> {
  return Chart.render(spec);
}

/**
 * A bar chart (see {@linkcode barSpec}), rendered.
 *
 * @example
 * ```ts
 * import { barChart } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const rows = [
 *   { config: "4K/4K", metric: "refsPerAccess", value: 1.7 },
 *   { config: "2M/2M", metric: "refsPerAccess", value: 1.2 },
 * ];
 * const c = await barChart(rows, { x: "config", y: "value", caption: "Source: memvirt" });
 * assert.match(c.svg, /Source: memvirt/);
 * ```
 */
export function barChart(
  rows: readonly Row[],
  opts: BarOptions,
): Promise<Chart> {
  return Chart.render(barSpec(rows, opts));
}

/**
 * A line chart (see {@linkcode lineSpec}), rendered.
 *
 * @example
 * ```ts
 * import { lineChart } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const rows = [1, 2, 3].map((n) => ({ n, t: n * n, s: "sq" }));
 * const c = await lineChart(rows, { x: "n", y: "t", color: "s", title: "squares" });
 * assert.match(c.svg, /squares/);
 * ```
 */
export function lineChart(
  rows: readonly Row[],
  opts: LineOptions,
): Promise<Chart> {
  return Chart.render(lineSpec(rows, opts));
}

/**
 * A scatter plot (see {@linkcode scatterSpec}), rendered.
 *
 * @example
 * ```ts
 * import { scatterChart } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const c = await scatterChart([{ x: 10, y: 100 }, { x: 1000, y: 3 }], { x: "x", y: "y", logX: true, logY: true });
 * assert.match(c.text, /1000/);
 * ```
 */
export function scatterChart(
  rows: readonly Row[],
  opts: ScatterOptions,
): Promise<Chart> {
  return Chart.render(scatterSpec(rows, opts));
}

/**
 * A heatmap (see {@linkcode heatmapSpec}), rendered.
 *
 * @example
 * ```ts
 * import { heatmap } from "./chart.ts";
 * import assert from "node:assert/strict";
 * const c = await heatmap([{ g: "4K", h: "2M", r: 19 }], { x: "h", y: "g", value: "r" });
 * assert.match(c.svg, />19</);
 * ```
 */
export function heatmap(
  rows: readonly Row[],
  opts: HeatmapOptions,
): Promise<Chart> {
  return Chart.render(heatmapSpec(rows, opts));
}
