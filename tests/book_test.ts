/**
 * The HTML book and its browser check.
 *
 * - Browser check on hand-made pages: a good page passes; a deliberate
 *   console error, an uncaught exception, an empty chart container and an
 *   empty SVG figure are each reported; screenshots are written.
 * - Pipeline end to end: `tests/data/chart_book/charts.ipynb` is executed
 *   on the Deno kernel, built into HTML with the book template, and every
 *   chart is drawn interactively by vega-embed from the shipped assets;
 *   without the assets the static SVG stays and the check fails, naming
 *   the missing script.
 *
 * Needs Chromium (`apt-get install -y chromium`), and for the pipeline the
 * Jupyter tools and the `deno` kernel (`deno run -A lib/tools/run.ts
 * setup`). Without them these tests are ignored with a message, unless
 * `MEMVIRT_NOTEBOOKS=required` (set by `deno task test`): then they fail.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as path from "node:path";
import {
  checkBook,
  findChromium,
  formatReport,
  missingChromiumMessage,
  type PageReport,
} from "../lib/tools/browser_check.ts";
import {
  buildBook,
  checkPrerequisites,
  describeFailure,
  ROOT,
  runNotebook,
} from "../lib/tools/run.ts";

const required = Deno.env.get("MEMVIRT_NOTEBOOKS") === "required";
const chromium = findChromium();
const prereq = await checkPrerequisites();
const noBrowser = chromium === null && !required;
const noPipeline = (chromium === null || prereq.problems.length > 0) &&
  !required;
if (noBrowser) {
  console.log(`browser check tests ignored: ${missingChromiumMessage()}`);
} else if (noPipeline) {
  console.log(
    `book pipeline test ignored, missing: ${prereq.problems.join("; ")}`,
  );
}

const PNG = [0x89, 0x50, 0x4e, 0x47];

function page(body: string, charts = false): string {
  return `<!DOCTYPE html><html${
    charts ? ' data-mv-charts="done"' : ""
  }><head><meta charset="utf-8"><title>t</title></head><body>${body}</body></html>`;
}

const FIGURE =
  `<div data-mime-type="image/svg+xml"><svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect x="5" y="5" width="100" height="40" fill="#4c78a8"/></svg></div>`;
const DRAWN_CHART =
  `<div class="mv-vega" data-mv-chart="interactive"><div class="mv-vega-embed"><svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect width="80" height="30" fill="orange"/></svg></div></div>`;

Deno.test({
  name: "browser check: good page passes, broken pages are reported",
  ignore: noBrowser,
  async fn() {
    assert.notEqual(chromium, null, missingChromiumMessage());
    const dir = await Deno.makeTempDir({ prefix: "memvirt-bc-" });
    const pages: Record<string, string> = {
      "good.html": page(`<h1>ok</h1>${FIGURE}${DRAWN_CHART}`, true),
      "console-error.html": page(
        `${FIGURE}<script>console.error("deliberate failure 42")</script>`,
      ),
      "exception.html": page(
        `<script>null.boom();</script>${FIGURE}`,
      ),
      "empty-chart.html": page(
        `<div class="mv-vega" data-mv-chart="static"><div class="mv-vega-embed"></div></div>`,
        true,
      ),
      "empty-figure.html": page(
        `<div data-mime-type="image/svg+xml"><svg xmlns="http://www.w3.org/2000/svg" width="50" height="50"></svg></div>`,
      ),
      "missing-image.html": page(`<img src="nowhere.png" alt="x">`),
    };
    for (const [name, html] of Object.entries(pages)) {
      await Deno.writeTextFile(path.join(dir, name), html);
    }
    const report = await checkBook(dir);
    const by = new Map<string, PageReport>(
      report.pages.map((p) => [p.page, p]),
    );
    assert.deepEqual([...by.keys()], Object.keys(pages).sort());
    assert.equal(report.ok, false);
    const expect: Record<string, RegExp | null> = {
      "good.html": null,
      "console-error.html": /^console\.error: deliberate failure 42$/,
      "exception.html":
        /^uncaught exception: TypeError: Cannot read properties of null/,
      "empty-chart.html":
        /^chart 1: vega container has no drawn svg or canvas \(state: static\)$/,
      "empty-figure.html": /^inline SVG figure 1 \(image\/svg\+xml\) is empty$/,
      "missing-image.html": /^browser log \(network\): .*nowhere\.png/,
    }; // deno-fmt-ignore
    for (const [name, re] of Object.entries(expect)) {
      const r = by.get(name)!;
      if (re === null) {
        assert.deepEqual(r.problems, [], formatReport(report));
      } else {
        assert.equal(r.problems.length, 1, `${name}: ${r.problems}`);
        assert.match(r.problems[0], re);
      }
      assert.ok(r.screenshot, name);
      const png = await Deno.readFile(r.screenshot);
      assert.deepEqual([...png.slice(0, 4)], PNG);
    }
    const good = by.get("good.html")!;
    assert.equal(good.charts, 1);
    assert.equal(good.interactive, 1);
    assert.equal(good.figures, 1);
    assert.match(formatReport(report), /FAIL console-error\.html/);
    assert.match(formatReport(report), /5 of 6 page\(s\) failed/);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "browser check: a folder without pages is a RangeError",
  ignore: noBrowser,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memvirt-bc-" });
    await assert.rejects(checkBook(dir), RangeError);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "book: chart notebook → HTML with interactive charts, checked",
  ignore: noPipeline,
  async fn() {
    assert.notEqual(chromium, null, missingChromiumMessage());
    assert.deepEqual(prereq.problems, []);
    const dir = await Deno.makeTempDir({ prefix: "memvirt-book-" });
    const nb = path.join(ROOT, "tests/data/chart_book/charts.ipynb");
    const res = await runNotebook(nb, path.join(dir, "executed/charts.ipynb"));
    if (!res.ok) assert.fail(describeFailure(nb, res));
    assert.equal(
      await buildBook([{ name: "charts", title: "Chart pipeline test" }], dir),
      0,
    );
    const html = await Deno.readTextFile(path.join(dir, "charts.html"));
    // three charts, each with its spec and the static SVG fallback
    assert.equal(html.match(/class="mv-vega-spec"/g)?.length, 3);
    assert.equal(
      html.match(/<div class="mv-vega-static">\s*<svg/g)?.length,
      3,
    );
    assert.doesNotMatch(html, /<script[^>]+src="https?:/, "no network");
    for (const f of ["vega.min.js", "vega-lite.min.js", "vega-embed.min.js"]) {
      assert.ok((await Deno.stat(path.join(dir, "assets", f))).size > 10_000);
    }
    const report = await checkBook(dir);
    assert.ok(report.ok, formatReport(report));
    const charts = report.pages.find((p) => p.page === "charts.html")!;
    assert.equal(charts.charts, 3);
    assert.equal(charts.interactive, 3);
    assert.ok(charts.figures >= 1, "the walk diagram");

    // without vega-embed: static charts remain, and the check says why
    await Deno.remove(path.join(dir, "assets/vega-embed.min.js"));
    const broken = await checkBook(dir, {
      pages: ["charts.html"],
      screenshots: null,
    });
    assert.equal(broken.ok, false);
    const problems = broken.pages[0].problems.join("\n");
    assert.match(problems, /cannot load assets\/vega-embed\.min\.js/);
    assert.match(problems, /chart 3: vega container has no drawn svg/);
    await Deno.remove(dir, { recursive: true });
  },
});
