/**
 * Golden files for the views: a handful of fixed walks (SVG) and page
 * tables (HTML) from `tests/golden/fixtures.ts`, compared byte for byte
 * with `tests/golden/*.svg.golden` and `*.html.golden`. (The `.golden`
 * suffix keeps `deno fmt` from reformatting them: it formats `.svg` and
 * `.html` files. To look at one, copy it to a `.svg`/`.html` name.)
 *
 * After an intended change to a view, regenerate and review the diff:
 *
 *     UPDATE_GOLDEN=1 deno test -A tests/view_golden_test.ts
 *
 * @module
 */

import assert from "node:assert/strict";
import { walkToSvg } from "../lib/view/walk_svg.ts";
import { pageTableToHtml } from "../lib/view/table_html.ts";
import {
  GOLDEN_WALKS,
  resumed,
  table32,
  table4,
  table5,
  tableOstep,
  tablePae,
  WALKS,
} from "./golden/fixtures.ts";

const DIR = new URL("./golden/", import.meta.url);
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

function golden(file: string, actual: string): void {
  const url = new URL(file, DIR);
  if (UPDATE) {
    Deno.writeTextFileSync(url, actual);
    return;
  }
  let expected: string;
  try {
    expected = Deno.readTextFileSync(url);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      assert.fail(
        `golden file tests/golden/${file} is missing: run UPDATE_GOLDEN=1 deno test -A tests/view_golden_test.ts`,
      );
    }
    throw e;
  }
  if (actual !== expected) {
    let i = 0;
    while (i < actual.length && actual[i] === expected[i]) i++;
    assert.fail(
      `tests/golden/${file} differs at character ${i}:\n` +
        `  expected …${JSON.stringify(expected.slice(i, i + 80))}\n` +
        `  actual   …${JSON.stringify(actual.slice(i, i + 80))}\n` +
        "if the change is intended, regenerate with UPDATE_GOLDEN=1 and review the diff",
    );
  }
}

for (const name of GOLDEN_WALKS) {
  Deno.test(`golden SVG: ${name}`, () => {
    golden(`${name}.svg.golden`, walkToSvg(WALKS[name]()));
  });
}

const TABLES: Record<string, () => string> = {
  "table-4level": () => {
    const pt = table4();
    const w = pt.walk(0x40_1008, { kind: "write", user: true });
    return pageTableToHtml(pt, {
      highlight: w,
      regions: [
        { va: 0x40_0000, length: 0x2000, label: "text" },
        { va: "0xffff888000000000", length: 2 ** 21, label: "direct map" },
      ],
    });
  },
  "table-x86-32": () => pageTableToHtml(table32()),
  "table-pae": () => {
    const pt = tablePae();
    const pd = pt.lookup(0xc000_1000).steps[1].tableBase;
    const w = resumed(pt, 0xc000_1234, 2, pd, "pdpte-register");
    return pageTableToHtml(pt, { highlight: w });
  },
  "table-ostep": () => {
    const pt = tableOstep();
    return pageTableToHtml(pt, { highlight: pt.walk(0x1234) });
  },
  "table-5level": () => pageTableToHtml(table5()),
};

for (const [name, render] of Object.entries(TABLES)) {
  Deno.test(`golden HTML: ${name}`, () => {
    golden(`${name}.html.golden`, render());
  });
}
