/**
 * The heavy half of the charts: compiles a Vega-Lite v5 spec with
 * `vega-lite` and renders it to a static SVG with `vega` (headless,
 * `renderer: "none"`, so no DOM and no canvas: text widths are vega's
 * estimates, which makes the output the same on every machine).
 *
 * {@linkcode "./chart.ts"} imports this module lazily (dynamic `import()`),
 * so importing `mod.ts` never loads vega.
 *
 * Element ids in the SVG (vega numbers gradients and clip paths with a
 * process-wide counter) are renamed to `<prefix>-<n>` in order of
 * appearance, so the same spec gives the same bytes in any process, and
 * two different charts inlined in one HTML page do not share ids.
 *
 * @module
 */

import process from "node:process";
import type { TopLevelSpec } from "vega-lite";

type VegaModule = typeof import("vega");
type VegaLiteModule = typeof import("vega-lite");

let libs: Promise<[VegaModule, VegaLiteModule]> | null = null;

/** Load vega and vega-lite once (quieting node-fetch's punycode notice). */
function load(): Promise<[VegaModule, VegaLiteModule]> {
  if (libs === null) {
    libs = (async () => {
      const proc = process as { noDeprecation?: boolean };
      const prev = proc.noDeprecation;
      proc.noDeprecation = true;
      try {
        return await Promise.all([import("vega"), import("vega-lite")]);
      } finally {
        proc.noDeprecation = prev;
      }
    })();
  }
  return libs;
}

/** What {@linkcode renderVegaLite} produced. */
export interface RenderResult {
  /** The static SVG (ids renamed, see the module doc). */
  readonly svg: string;
  /** Warnings from vega-lite's compiler and from vega, in order. */
  readonly warnings: readonly string[];
}

interface CollectingLogger {
  warnings: string[];
  errors: string[];
  logger: Record<string, (...args: unknown[]) => unknown>;
}

/** A vega-style logger (plain closures: vega calls them unbound). */
function collectingLogger(): CollectingLogger {
  const warnings: string[] = [];
  const errors: string[] = [];
  let level = 2;
  const logger: Record<string, (...args: unknown[]) => unknown> = {
    level: (v?: unknown) => {
      if (v === undefined) return level;
      level = Number(v);
      return logger;
    },
    error: (...args: unknown[]) => {
      errors.push(args.map(String).join(" "));
      return logger;
    },
    warn: (...args: unknown[]) => {
      warnings.push(args.map(String).join(" "));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  return { warnings, errors, logger };
}

/** FNV-1a (32 bit) of a string, as 8 hex digits. */
function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** Rename every `id` (and its `url(#…)`/`href="#…"` uses) in order. */
function renameIds(svg: string, prefix: string): string {
  const map = new Map<string, string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) {
    if (!map.has(m[1])) map.set(m[1], `${prefix}-${map.size}`);
  }
  if (map.size === 0) return svg;
  return svg
    .replace(
      /(\sid=")([^"]+)(")/g,
      (_, a, id, b) => a + (map.get(id) ?? id) + b,
    )
    .replace(/url\(#([^)]+)\)/g, (all, id) => {
      const to = map.get(id);
      return to === undefined ? all : `url(#${to})`;
    })
    .replace(/(href=")#([^"]+)(")/g, (all, a, id, b) => {
      const to = map.get(id);
      return to === undefined ? all : `${a}#${to}${b}`;
    });
}

const GEOMETRY =
  /\s(?:d|transform|x|y|x1|x2|y1|y2|cx|cy|r|width|height|points)="[^"]*"/g;

/** Round coordinates in geometry attributes to 2 decimals (smaller SVG). */
function roundGeometry(svg: string): string {
  return svg.replace(
    GEOMETRY,
    (attr) =>
      attr.replace(/-?\d+\.\d{3,}(?:e-?\d+)?/g, (n) => {
        const r = Math.round(Number(n) * 100) / 100;
        return String(r === 0 ? 0 : r);
      }),
  );
}

/**
 * Compile a Vega-Lite v5 spec and render it to a static SVG, headlessly.
 * Throws `TypeError` when vega-lite or vega reports an error for the spec.
 *
 * @example
 * ```ts
 * import { renderVegaLite } from "./chart_render.ts";
 * import assert from "node:assert/strict";
 * const spec = {
 *   $schema: "https://vega.github.io/schema/vega-lite/v5.json",
 *   data: { values: [{ k: "a", v: 1 }, { k: "b", v: 2 }] },
 *   mark: "bar",
 *   encoding: {
 *     x: { field: "k", type: "nominal" },
 *     y: { field: "v", type: "quantitative" },
 *   },
 * };
 * const a = await renderVegaLite(spec);
 * const b = await renderVegaLite(spec);
 * assert.match(a.svg, /^<svg[^>]*>/);
 * assert.equal(a.svg, b.svg); // deterministic
 * await assert.rejects(renderVegaLite({ ...spec, mark: "nope" }), TypeError);
 * ```
 */
export async function renderVegaLite(
  spec: Readonly<Record<string, unknown>>,
): Promise<RenderResult> {
  const [vega, vl] = await load();
  const log = collectingLogger();
  let svg: string;
  try {
    const compiled = vl.compile(spec as unknown as TopLevelSpec, {
      logger: log.logger as never,
    }).spec;
    const view = new vega.View(vega.parse(compiled), {
      renderer: "none",
      logger: log.logger as never,
      logLevel: vega.Warn,
    });
    try {
      svg = await view.toSVG();
    } finally {
      view.finalize();
    }
  } catch (err) {
    throw new TypeError(
      `Vega-Lite spec could not be rendered: ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
  }
  if (log.errors.length) {
    throw new TypeError(
      `Vega-Lite spec could not be rendered: ${log.errors.join("; ")}`,
    );
  }
  const prefix = `mvc${hash(JSON.stringify(spec))}`;
  return { svg: roundGeometry(renameIds(svg, prefix)), warnings: log.warnings };
}
