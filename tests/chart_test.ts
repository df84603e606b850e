/**
 * Charts: spec builders give valid Vega-Lite v5 specs that vega-lite
 * compiles, the static SVG is non-empty, deterministic and bounded, the
 * MIME bundle has the three types, bad input is refused clearly, and vega
 * is never in the static import graph of `lib/view/chart.ts` or `mod.ts`.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { compile, type TopLevelSpec } from "vega-lite";
import {
  barChart,
  barSpec,
  Chart,
  dataTable,
  heatmap,
  heatmapSpec,
  lineChart,
  lineSpec,
  type Row,
  scatterChart,
  scatterSpec,
  tidyRows,
  VEGA_LITE_MIME,
  VEGA_LITE_SCHEMA,
  type VegaLiteSpec,
} from "../lib/view/chart.ts";
import { CUSTOM_INSPECT, JUPYTER_DISPLAY } from "../lib/view/display.ts";
import { ROOT } from "../lib/tools/run.ts";

const tidy: Row[] = ["native", "shadow", "nested-4K/4K"].flatMap((
  config,
  i,
) => [
  { config, metric: "refsPerAccess", value: 1 + i * 0.7, extra: "x" },
  { config, metric: "exitsPer1k", value: 3 - i * 0.5, extra: "y" },
]);
const runs: Row[] = [
  { scheme: "shadow", workload: "seq", cycles: 1200, overheadVsNative: 1.3 },
  { scheme: "nested", workload: "seq", cycles: 1500, overheadVsNative: 1.6 },
  { scheme: "shadow", workload: "rand", cycles: 9000, overheadVsNative: 4.1 },
  { scheme: "nested", workload: "rand", cycles: 7000, overheadVsNative: 3.2 },
];

type Enc = Record<string, { field?: string; type?: string; scale?: unknown }>;

interface Case {
  name: string;
  spec: () => VegaLiteSpec;
  /** field of each encoding channel that must be present */
  channels: Record<string, string>;
  /** fields the data rows must hold, exactly */
  fields: string[];
  rows: Row[];
  mark: string | string[];
}

const cases: Case[] = [
  {
    name: "grouped bar",
    spec: () =>
      barSpec(tidy, {
        x: "config",
        y: "value",
        color: "metric",
        title: "Walk cost",
        caption: "Source: test",
      }),
    channels: { x: "config", y: "value", color: "metric", xOffset: "metric" },
    fields: ["config", "value", "metric"],
    rows: tidy,
    mark: "bar",
  },
  {
    name: "stacked bar",
    spec: () =>
      barSpec(runs, {
        x: "workload",
        y: "cycles",
        color: "scheme",
        mode: "stacked",
      }),
    channels: { x: "workload", y: "cycles", color: "scheme" },
    fields: ["workload", "cycles", "scheme"],
    rows: runs,
    mark: "bar",
  },
  {
    name: "line, log-log",
    spec: () =>
      lineSpec(runs, {
        x: "cycles",
        y: "overheadVsNative",
        color: "scheme",
        logX: true,
        logY: true,
      }),
    channels: { x: "cycles", y: "overheadVsNative", color: "scheme" },
    fields: ["cycles", "overheadVsNative", "scheme"],
    rows: runs,
    mark: "line",
  },
  {
    name: "scatter, log x, tooltip",
    spec: () =>
      scatterSpec(runs, {
        x: "cycles",
        y: "overheadVsNative",
        color: "scheme",
        logX: true,
        tooltip: ["scheme", "workload", "cycles"],
      }),
    channels: {
      x: "cycles",
      y: "overheadVsNative",
      color: "scheme",
      shape: "scheme",
    },
    fields: ["cycles", "overheadVsNative", "scheme", "workload"],
    rows: runs,
    mark: "point",
  },
  {
    name: "heatmap",
    spec: () =>
      heatmapSpec(runs, { x: "workload", y: "scheme", value: "cycles" }),
    channels: { x: "workload", y: "scheme" },
    fields: ["workload", "scheme", "cycles"],
    rows: runs,
    mark: ["rect", "text"],
  },
];

for (const c of cases) {
  Deno.test(`chart spec: ${c.name} is a valid v5 spec that compiles`, () => {
    const spec = c.spec();
    assert.equal(spec.$schema, VEGA_LITE_SCHEMA);
    const enc = spec.encoding as Enc;
    for (const [ch, field] of Object.entries(c.channels)) {
      assert.equal(enc[ch]?.field, field, `encoding ${ch}`);
    }
    const marks = Array.isArray(c.mark)
      ? (spec.layer as { mark: { type: string } }[]).map((l) => l.mark.type)
      : (spec.mark as { type: string }).type;
    assert.deepEqual(marks, c.mark);
    const values = (spec.data as { values: Row[] }).values;
    assert.equal(values.length, c.rows.length);
    values.forEach((v, i) => {
      assert.deepEqual(Object.keys(v).sort(), [...c.fields].sort());
      for (const f of c.fields) assert.equal(v[f], c.rows[i][f]);
    });
    const warnings: unknown[] = [];
    const logger = {
      level: () => logger,
      warn: (...a: unknown[]) => (warnings.push(a), logger),
      info: () => logger,
      debug: () => logger,
      error: (...a: unknown[]) => {
        throw new Error(a.join(" "));
      },
    };
    const vg = compile(spec as unknown as TopLevelSpec, {
      logger: logger as never,
    }).spec;
    assert.ok(Array.isArray(vg.marks) && vg.marks.length > 0);
    assert.deepEqual(warnings, []);
  });
}

Deno.test("chart spec: log scales only where asked", () => {
  const enc = lineSpec(runs, { x: "cycles", y: "cycles", logY: true })
    .encoding as Enc;
  assert.equal(enc.x.scale, undefined);
  assert.deepEqual(enc.y.scale, { type: "log" });
  const bar = barSpec(tidy, { x: "config", y: "value", logY: true })
    .encoding as Enc;
  assert.deepEqual(bar.y.scale, { type: "log" });
});

Deno.test("chart spec: titles, captions, axis titles", () => {
  const s = barSpec(tidy, {
    x: "config",
    y: "value",
    title: "T",
    caption: "Source: S",
    xTitle: "configuration",
    yTitle: "refs",
  });
  const title = s.title as { text: string; subtitle: string };
  assert.equal(title.text, "T");
  assert.equal(title.subtitle, "Source: S");
  const enc = s.encoding as Record<string, { title: string }>;
  assert.equal(enc.x.title, "configuration");
  assert.equal(enc.y.title, "refs");
  const onlyCaption = barSpec(tidy, { x: "config", y: "value", caption: "C" });
  assert.equal((onlyCaption.title as { text: string }).text, "C");
  assert.equal(
    barSpec(tidy, { x: "config", y: "value" }).title,
    undefined,
  );
});

Deno.test("chart: bad input is refused with a clear error", () => {
  const table: [string, () => unknown, RegExp, ErrorConstructor][] = [
    [
      "missing field",
      () => barSpec(tidy, { x: "nope", y: "value" }),
      /field "nope" is not in the rows \(fields: config/,
      RangeError,
    ],
    [
      "non-numeric y",
      () => barSpec(tidy, { x: "value", y: "config" }),
      /field "config" is "native": expected a finite number/,
      TypeError,
    ],
    [
      "log of zero",
      () => scatterSpec([{ a: 0, b: 1 }], { x: "a", y: "b", logX: true }),
      /field "a" is 0: a log scale needs values > 0/,
      RangeError,
    ],
    [
      "empty rows",
      () => lineSpec([], { x: "a", y: "b" }),
      /rows are empty/,
      RangeError,
    ],
    [
      "too many rows",
      () => lineSpec(runs, { x: "cycles", y: "cycles", maxRows: 3 }),
      /4 rows, more than maxRows 3/,
      RangeError,
    ],
    [
      "row not an object",
      () => lineSpec([null as unknown as Row], { x: "a", y: "b" }),
      /row 0 is null/,
      TypeError,
    ],
    [
      "rows not an array",
      () => lineSpec("x" as unknown as Row[], { x: "a", y: "b" }),
      /must be an array/,
      TypeError,
    ],
    [
      "bad mode",
      () =>
        barSpec(tidy, { x: "config", y: "value", mode: "side" as "grouped" }),
      /bar mode "side"/,
      RangeError,
    ],
    [
      "bad width",
      () => barSpec(tidy, { x: "config", y: "value", width: 5 }),
      /width 5 is invalid/,
      RangeError,
    ],
    [
      "bad scheme",
      () =>
        heatmapSpec(runs, {
          x: "workload",
          y: "scheme",
          value: "cycles",
          scheme: "a b",
        }),
      /scheme "a b"/,
      RangeError,
    ],
    [
      "bad tidyRows field",
      () => tidyRows(runs, ["scheme"], ["nope"]),
      /value field "nope"/,
      RangeError,
    ],
    [
      "constructor: v4 schema",
      () =>
        new Chart({
          $schema: "https://vega.github.io/schema/vega-lite/v4.json",
        }, "<svg/>"),
      /not the Vega-Lite v5 schema/,
      TypeError,
    ],
    [
      "constructor: not svg",
      () => new Chart(barSpec(tidy, { x: "config", y: "value" }), "<div>"),
      /expected markup starting with <svg/,
      TypeError,
    ],
  ]; // deno-fmt-ignore
  for (const [name, fn, re, type] of table) {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof type, `${name}: ${e}`);
      assert.match((e as Error).message, re, name);
      return true;
    });
  }
});

Deno.test("chart: rendering rejects specs vega-lite cannot compile", async () => {
  await assert.rejects(
    Chart.render({ $schema: VEGA_LITE_SCHEMA, mark: "nope" }),
    /could not be rendered/,
  );
  await assert.rejects(
    Chart.render({ $schema: "v4" } as VegaLiteSpec),
    /not the Vega-Lite v5 schema/,
  );
});

const makers: [string, () => Promise<Chart>][] = [
  ["bar", () => barChart(tidy, { x: "config", y: "value", color: "metric" })],
  [
    "line",
    () =>
      lineChart(runs, { x: "cycles", y: "overheadVsNative", color: "scheme" }),
  ],
  [
    "scatter",
    () =>
      scatterChart(runs, { x: "cycles", y: "overheadVsNative", logX: true }),
  ],
  [
    "heatmap",
    () => heatmap(runs, { x: "workload", y: "scheme", value: "cycles" }),
  ],
];

for (const [name, make] of makers) {
  Deno.test(`chart render: ${name} SVG is non-empty and deterministic`, async () => {
    const a = await make();
    const b = await make();
    assert.equal(a.svg, b.svg, "same input, same bytes");
    assert.match(a.svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(a.svg, /<\/svg>$/);
    assert.ok(/aria-roledescription="(bar|line|point|rect)/.test(a.svg));
    assert.ok(a.svg.length < 60_000, `svg ${a.svg.length} bytes`);
    assert.deepEqual(a.warnings, []);
    const w = Number(/width="(\d+)"/.exec(a.svg)?.[1]);
    assert.ok(w > 300 && w < 700, `width ${w}`);
    // no coordinate with more than 2 decimals in geometry
    assert.doesNotMatch(a.svg, /\sd="[^"]*\d\.\d{3}/);
  });
}

Deno.test("chart render: ids are deterministic and differ between charts", async () => {
  const h1 = await heatmap(runs, {
    x: "workload",
    y: "scheme",
    value: "cycles",
  });
  const h2 = await heatmap(runs, {
    x: "workload",
    y: "scheme",
    value: "overheadVsNative",
  });
  const ids = (svg: string) =>
    [...svg.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(ids(h1.svg).length > 0, "the colour legend has a gradient");
  for (const id of ids(h1.svg)) {
    assert.match(id, /^mvc[0-9a-f]{8}-\d+$/);
    assert.ok(h1.svg.includes(`url(#${id})`), `${id} is used`);
  }
  assert.equal(
    ids(h1.svg).filter((id) => ids(h2.svg).includes(id)).length,
    0,
  );
});

Deno.test("chart: MIME bundle has the Vega-Lite spec, the SVG and text", async () => {
  const c = await barChart(tidy, {
    x: "config",
    y: "value",
    color: "metric",
    title: "Walk cost",
    caption: "Source: test",
  });
  const bundle = c[JUPYTER_DISPLAY]();
  assert.deepEqual(
    Object.keys(bundle).sort(),
    ["image/svg+xml", "text/plain", VEGA_LITE_MIME].sort(),
  );
  assert.equal(VEGA_LITE_MIME, "application/vnd.vegalite.v5+json");
  const spec = bundle[VEGA_LITE_MIME] as VegaLiteSpec;
  assert.equal(spec.$schema, VEGA_LITE_SCHEMA);
  assert.equal(bundle["image/svg+xml"], c.svg);
  assert.match(c.svg, /Walk cost/);
  assert.match(c.svg, /Source: test/);
  const text = String(bundle["text/plain"]);
  assert.equal(text, c[CUSTOM_INSPECT]());
  assert.ok(
    text.startsWith(
      "Walk cost\nSource: test\nconfig" + " ".repeat(8) + "value  metric\n",
    ),
    text,
  );
  assert.ok(text.includes("nested-4K/4K    2.4  refsPerAccess"), text);
  assert.ok(!text.includes("\x1b["));
  // the spec is frozen: the SVG cannot go stale
  assert.ok(Object.isFrozen(c.spec) && Object.isFrozen(c.spec.data));
  assert.throws(() => {
    (c.spec as Record<string, unknown>).mark = "line";
  }, TypeError);
});

Deno.test("chart: text table folds long data", () => {
  const rows = Array.from({ length: 25 }, (_, i) => ({ i, sq: i * i }));
  const t = dataTable(rows).split("\n");
  assert.equal(t.length, 2 + 20 + 1);
  assert.equal(t.at(-1), "… 5 more rows");
  assert.equal(dataTable([]), "(no data)");
  assert.equal(
    dataTable([{ name: "a".repeat(30) }]).split("\n")[2],
    "a".repeat(23) + "…",
  );
});

Deno.test("chart property: spec data are the rows projected on the used fields", () => {
  const row = fc.record({
    k: fc.constantFrom("a", "b", "c", "d"),
    s: fc.constantFrom("x", "y"),
    v: fc.double({ min: 0.001, max: 1e6, noNaN: true }),
    other: fc.string(),
  });
  fc.assert(
    fc.property(
      fc.array(row, { minLength: 1, maxLength: 60 }),
      fc.boolean(),
      (rows, stacked) => {
        const spec = barSpec(rows, {
          x: "k",
          y: "v",
          color: "s",
          mode: stacked ? "stacked" : "grouped",
          logY: true,
        });
        const values = (spec.data as { values: Row[] }).values;
        assert.deepEqual(
          values,
          rows.map(({ k, s, v }) => ({ k, v, s })),
        );
        const enc = spec.encoding as Enc & { y: { stack?: unknown } };
        assert.equal("xOffset" in enc, !stacked);
        assert.equal(enc.y.stack, stacked ? undefined : null);
        const lines = dataTable(values).split("\n").length;
        assert.equal(
          lines,
          2 + Math.min(20, rows.length) + (rows.length > 20 ? 1 : 0),
        );
      },
    ),
    { seed: 20261123, numRuns: 150 },
  );
});

Deno.test("chart property: tidyRows makes one row per value field", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ id: fc.nat(), a: fc.integer(), b: fc.integer() }), {
        maxLength: 30,
      }),
      (rows) => {
        const t = tidyRows(rows, ["id"], ["a", "b"]);
        assert.equal(t.length, rows.length * 2);
        t.forEach((r, i) => {
          const src = rows[Math.floor(i / 2)];
          const f = i % 2 ? "b" : "a";
          assert.deepEqual(r, { id: src.id, metric: f, value: src[f] });
        });
      },
    ),
    { seed: 7, numRuns: 100 },
  );
});

/** Modules reached from `root` through static (non-dynamic) imports. */
async function staticGraph(root: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const deps = new Map<string, string[]>();
  for (const m of info.modules) {
    deps.set(
      m.specifier,
      (m.dependencies ?? [])
        .filter((d: { isDynamic?: boolean }) => !d.isDynamic)
        .map((d: { code?: { specifier?: string } }) => d.code?.specifier)
        .filter((s: string | undefined): s is string => !!s),
    );
  }
  const seen = new Set<string>();
  const todo = [...info.roots];
  while (todo.length) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    todo.push(...(deps.get(s) ?? []));
  }
  return seen;
}

for (const root of ["lib/view/chart.ts", "mod.ts"]) {
  Deno.test(`chart: importing ${root} does not load vega (lazy import)`, async () => {
    const graph = await staticGraph(root);
    assert.ok(graph.size > 1);
    const heavy = [...graph].filter((s) =>
      s.startsWith("npm:") || s.endsWith("/chart_render.ts")
    );
    assert.deepEqual(heavy, [], `statically imported: ${heavy.join(", ")}`);
  });
}

Deno.test("chart: chart.ts reaches vega through a dynamic import", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "lib/view/chart.ts"],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const chart = info.modules.find((m: { specifier: string }) =>
    m.specifier.endsWith("/lib/view/chart.ts")
  );
  const dyn = chart.dependencies.filter((d: { isDynamic?: boolean }) =>
    d.isDynamic
  );
  assert.deepEqual(dyn.map((d: { specifier: string }) => d.specifier), [
    "./chart_render.ts",
  ]);
  const pkgs = Object.keys(info.npmPackages ?? {}).join(" ");
  assert.match(pkgs, /vega@5\./);
  assert.match(pkgs, /vega-lite@5\./);
});
