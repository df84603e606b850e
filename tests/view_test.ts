/**
 * View tests: escaping, well-formed standalone SVG and HTML, the walk
 * diagram's content (every step, the faulting level, cached levels, A/D
 * set by the walk, the decoded error code), the bounded page-table view
 * (100,000 mappings under 1 MB, folds stated exactly), highlighting exactly
 * a walk's entries, purity, and the display helpers.
 *
 * Well-formedness is checked with the small XML parser below (no
 * dependency): both views emit markup that is also well-formed XML.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PhysicalMemory } from "../lib/memory/memory.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { OSTEP_15BIT, X86_32 } from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import type { Walk } from "../lib/paging/record.ts";
import { walkToSvg } from "../lib/view/walk_svg.ts";
import { pageTableToHtml } from "../lib/view/table_html.ts";
import {
  CUSTOM_INSPECT,
  JUPYTER_DISPLAY,
  Rich,
  showPageTable,
  showWalk,
} from "../lib/view/display.ts";
import {
  table32,
  table4,
  table5,
  tableOstep,
  tablePae,
  WALKS,
} from "./golden/fixtures.ts";

// ------------------------------------------------------- a tiny XML parser

interface XNode {
  name: string;
  attrs: Record<string, string>;
  children: XNode[];
  /** Text directly inside this element (entities decoded), concatenated. */
  text: string;
}

const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/y;

function decode(s: string, where: string): string {
  for (let i = s.indexOf("&"); i >= 0; i = s.indexOf("&", i + 1)) {
    ENTITY.lastIndex = i;
    if (!ENTITY.test(s)) {
      throw new SyntaxError(`bare "&" ${where}: ${s.slice(i, i + 20)}`);
    }
  }
  return s.replace(
    /&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g,
    (_, e: string) =>
      e === "amp"
        ? "&"
        : e === "lt"
        ? "<"
        : e === "gt"
        ? ">"
        : e === "quot"
        ? '"'
        : e === "apos"
        ? "'"
        : String.fromCodePoint(
          e.startsWith("#x") ? parseInt(e.slice(2), 16) : parseInt(e.slice(1)),
        ),
  );
}

/** Parse well-formed XML (one root element); throws `SyntaxError` otherwise. */
function parseXml(src: string): XNode {
  const root: XNode = { name: "#doc", attrs: {}, children: [], text: "" };
  const stack: XNode[] = [root];
  let i = 0;
  const top = () => stack[stack.length - 1];
  while (i < src.length) {
    const lt = src.indexOf("<", i);
    const textEnd = lt < 0 ? src.length : lt;
    if (textEnd > i) {
      const t = src.slice(i, textEnd);
      if (t.includes(">") && top() === root) {
        throw new SyntaxError(`stray ">" at ${i}`);
      }
      if (top() === root && t.trim() !== "") {
        throw new SyntaxError(`text outside the root element at ${i}`);
      }
      top().text += decode(t, `in text at ${i}`);
    }
    if (lt < 0) break;
    if (src.startsWith("<!--", lt)) {
      const end = src.indexOf("-->", lt);
      if (end < 0) throw new SyntaxError(`unclosed comment at ${lt}`);
      i = end + 3;
      continue;
    }
    if (src.startsWith("</", lt)) {
      const m = /^<\/([A-Za-z_][\w:.-]*)\s*>/.exec(src.slice(lt));
      if (!m) throw new SyntaxError(`bad end tag at ${lt}`);
      const open = stack.pop();
      if (!open || open === root || open.name !== m[1]) {
        throw new SyntaxError(
          `</${m[1]}> at ${lt} closes <${open?.name ?? "nothing"}>`,
        );
      }
      i = lt + m[0].length;
      continue;
    }
    const m =
      /^<([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*\s*=\s*"[^"<]*")*)\s*(\/?)>/
        .exec(src.slice(lt));
    if (!m) {
      throw new SyntaxError(
        `bad start tag at ${lt}: ${src.slice(lt, lt + 60)}`,
      );
    }
    const node: XNode = { name: m[1], attrs: {}, children: [], text: "" };
    for (const a of m[2].matchAll(/([A-Za-z_:][\w:.-]*)\s*=\s*"([^"<]*)"/g)) {
      if (a[1] in node.attrs) {
        throw new SyntaxError(`duplicate attribute ${a[1]} at ${lt}`);
      }
      node.attrs[a[1]] = decode(a[2], `in attribute ${a[1]} at ${lt}`);
    }
    if (top() === root && root.children.length > 0) {
      throw new SyntaxError(`second root element <${m[1]}> at ${lt}`);
    }
    top().children.push(node);
    if (m[3] !== "/") stack.push(node);
    i = lt + m[0].length;
  }
  if (stack.length !== 1) {
    throw new SyntaxError(`unclosed <${top().name}>`);
  }
  if (root.children.length !== 1) throw new SyntaxError("no root element");
  return root.children[0];
}

function* all(n: XNode): Generator<XNode> {
  yield n;
  for (const c of n.children) yield* all(c);
}

function textOf(n: XNode): string {
  return n.text + n.children.map(textOf).join("");
}

function hasClass(n: XNode, c: string): boolean {
  return (n.attrs.class ?? "").split(/\s+/).includes(c);
}

Deno.test("the test's XML parser rejects malformed markup", () => {
  assert.equal(parseXml('<a x="1"><b/>t &amp; u</a>').name, "a");
  for (
    const bad of [
      "<a><b></a></b>",
      "<a>",
      "<a>x & y</a>",
      '<a x="1" x="2"/>',
      "<a x=1/>",
      "<a/><b/>",
      "<a><script>if (a < b) {}</script></a>",
    ]
  ) {
    assert.throws(() => parseXml(bad), SyntaxError, bad);
  }
});

// ---------------------------------------------------------------- SVG

const HOSTILE = `<script>alert("x")</script> & 'quoted' "label"`;

function svgOf(name: string, options = {}): { svg: string; w: Walk } {
  const w = WALKS[name]();
  return { svg: walkToSvg(w, options), w };
}

Deno.test("walkToSvg: every fixture is a well-formed standalone SVG", () => {
  for (const name of Object.keys(WALKS)) {
    const { svg } = svgOf(name);
    const doc = parseXml(svg);
    assert.equal(doc.name, "svg", name);
    assert.equal(doc.attrs.xmlns, "http://www.w3.org/2000/svg", name);
    const { width, height, viewBox } = doc.attrs;
    assert.match(width, /^\d+$/, name);
    assert.match(height, /^\d+$/, name);
    assert.equal(viewBox, `0 0 ${width} ${height}`, name);
    // nothing external, nothing executable
    assert.doesNotMatch(svg, /href|<script|@import|url\((?!#)|<foreignObject/i);
    // ids unique, every url(#id) reference defined
    const ids = [...all(doc)].map((n) => n.attrs.id).filter((x) => x);
    assert.equal(new Set(ids).size, ids.length, name);
    for (const ref of svg.matchAll(/url\(#([^)]+)\)/g)) {
      assert.ok(ids.includes(ref[1]), `${name}: url(#${ref[1]}) undefined`);
    }
    // fixed number formatting: integers or one decimal
    for (const n of all(doc)) {
      for (const k of ["x", "y", "width", "height", "x1", "y1", "x2", "y2"]) {
        if (n.attrs[k] !== undefined) {
          assert.match(n.attrs[k], /^-?\d+(\.\d)?$/, `${name} ${k}`);
        }
      }
      const size = n.attrs["font-size"];
      if (size !== undefined) assert.ok(Number(size) >= 10, `${name} font`);
    }
  }
});

Deno.test("walkToSvg: deterministic, with ids from idPrefix or a content hash", () => {
  const a = svgOf("walk-4level-ok").svg;
  assert.equal(a, svgOf("walk-4level-ok").svg);
  const b = svgOf("walk-4level-fault").svg;
  const idA = /id="([^"]+)-title"/.exec(a)![1];
  const idB = /id="([^"]+)-title"/.exec(b)![1];
  assert.notEqual(idA, idB);
  const c = svgOf("walk-4level-ok", { idPrefix: "fig3" }).svg;
  for (const m of c.matchAll(/id="([^"]+)"/g)) {
    assert.ok(m[1].startsWith("fig3-"), m[1]);
  }
  assert.throws(
    () => svgOf("walk-4level-ok", { idPrefix: '"><script>' }),
    /idPrefix/,
  );
  assert.throws(
    () => svgOf("walk-4level-ok", { idPrefix: "1abc" }),
    /idPrefix/,
  );
});

Deno.test("walkToSvg: a hostile title is escaped", () => {
  const { svg } = svgOf("walk-4level-ok", { title: HOSTILE });
  assert.ok(!svg.includes("<script"));
  assert.ok(!svg.includes(`"label"`));
  assert.ok(svg.includes("&lt;script&gt;alert(&quot;x&quot;)"));
  const doc = parseXml(svg);
  assert.ok([...all(doc)].some((n) => n.name === "text" && n.text === HOSTILE));
});

function roles(doc: XNode, role: string): XNode[] {
  return [...all(doc)].filter((n) => n.attrs["data-role"] === role);
}

Deno.test("walkToSvg: every step appears with its entry, address and index", () => {
  for (const name of Object.keys(WALKS)) {
    const { svg, w } = svgOf(name);
    const doc = parseXml(svg);
    const steps = roles(doc, "step");
    assert.equal(steps.length, w.steps.length, name);
    w.steps.forEach((s, i) => {
      const t = textOf(steps[i]);
      assert.equal(steps[i].attrs["data-level"], String(s.level), name);
      assert.ok(t.includes(`${s.entryName}[${s.index}]`), `${name}: ${t}`);
      assert.ok(t.includes(`0x${s.entryAddress.toString(16)}`), name);
      assert.ok(t.includes(`0x${s.tableBase.toString(16)}`), name);
      const hex = s.entry.toString(16).padStart(w.format.entryBytes * 2, "0");
      assert.ok(t.includes(`0x${hex}`), `${name}: entry ${hex}`);
    });
    // one address band per level plus the offset (plus sign extension)
    const bands = [...all(doc)].filter((n) => n.attrs["data-field"]);
    const sign = w.format.canonical === "sign" ? 1 : 0;
    assert.equal(bands.length, w.format.levels.length + 1 + sign, name);
    for (const f of w.fields) {
      const band = bands.find((b) =>
        b.attrs["data-bits"] === `${f.shift + f.bits - 1}:${f.shift}`
      );
      assert.ok(band, `${name}: band for ${f.name}`);
      assert.ok(textOf(band).includes(`0x${f.value.toString(16)}`), name);
    }
  }
});

Deno.test("walkToSvg: 2-, 3-, 4- and 5-level walks draw their levels", () => {
  const cases: [string, number[]][] = [
    ["walk-ostep", [2, 1]],
    ["walk-x86-32-4mib", [2]],
    ["walk-pae", [3, 2, 1]],
    ["walk-4level-ok", [4, 3, 2, 1]],
    ["walk-5level", [5, 4, 3, 2, 1]],
  ];
  for (const [name, levels] of cases) {
    const doc = parseXml(svgOf(name).svg);
    assert.deepEqual(
      roles(doc, "step").map((g) => Number(g.attrs["data-level"])),
      levels,
      name,
    );
    const out = roles(doc, "outcome")[0];
    assert.equal(out.attrs["data-kind"], "ok", name);
  }
  // the OSTEP picture shows 1-byte entries in binary and frame numbers
  const ostep = svgOf("walk-ostep").svg;
  assert.match(ostep, /0x81/);
  assert.match(ostep, /1000 0001/);
  assert.match(ostep, /PFN 96 = 0x60/);
  assert.match(ostep, /0xc14/);
});

Deno.test("walkToSvg: the faulting level is red, with the error code decoded", () => {
  const { svg, w } = svgOf("walk-4level-fault");
  assert.equal(w.outcome.kind, "page-fault");
  const doc = parseXml(svg);
  const faulty = roles(doc, "step").filter((g) => g.attrs["data-fault"]);
  assert.equal(faulty.length, 1);
  assert.equal(faulty[0].attrs["data-level"], "1");
  assert.match(textOf(faulty[0]), /walk stops here: write to a read-only page/);
  // the entry that removed W is the culprit badge
  const culprit = [...all(faulty[0])].filter((n) =>
    n.attrs["data-state"]?.startsWith("culprit")
  );
  assert.deepEqual(culprit.map((n) => n.attrs["data-flag"]), ["RW"]);
  const out = roles(doc, "outcome")[0];
  assert.equal(out.attrs["data-kind"], "page-fault");
  const t = textOf(out);
  assert.match(t, /error code\s*0x7/);
  for (const chip of ["P=1", "W=1", "U=1", "RSVD=0", "I/D=0", "PK=0"]) {
    assert.ok(t.includes(chip), chip);
  }
  assert.match(t, /P=1: protection violation · W=1: write · U=1: user mode/);
  assert.match(t, /CR2 = 0x401008/);

  // not present: the level that stopped the walk; the rest not reached
  const np = parseXml(svgOf("walk-4level-not-present").svg);
  const npSteps = roles(np, "step");
  assert.equal(npSteps.at(-1)!.attrs["data-fault"], "true");
  assert.equal(npSteps.at(-1)!.attrs["data-level"], "2");
  assert.deepEqual(
    roles(np, "unreached").map((g) => g.attrs["data-level"]),
    ["1"],
  );
  assert.match(textOf(roles(np, "outcome")[0]), /P=0: not present/);

  // a reserved bit names the bit
  const rs = svgOf("walk-4level-reserved").svg;
  assert.match(rs, /reserved bit set \(bit 7\)/);
  assert.match(rs, /RSVD=1/);
  assert.match(rs, /I\/D=1/);
});

Deno.test("walkToSvg: the badge that caused a rights fault is marked", () => {
  const cases: [string, string, RegExp][] = [
    ["walk-4level-smap", "US", /error code\s*0x3/],
    ["walk-4level-pkey", "PK 3", /error code\s*0x27/],
    ["walk-4level-not-present", "P", /error code\s*0x4/],
  ];
  for (const [name, flag, code] of cases) {
    const doc = parseXml(svgOf(name).svg);
    const culprit = roles(doc, "step").flatMap((g) =>
      [...all(g)].filter((n) => n.attrs["data-state"]?.startsWith("culprit"))
    );
    assert.deepEqual(culprit.map((n) => n.attrs["data-flag"]), [flag], name);
    assert.match(textOf(roles(doc, "outcome")[0]), code, name);
  }
});

Deno.test("walkToSvg: #GP for a non-canonical address reads no table", () => {
  const { svg } = svgOf("walk-4level-gp");
  const doc = parseXml(svg);
  assert.equal(roles(doc, "step").length, 0);
  assert.equal(roles(doc, "outcome")[0].attrs["data-kind"], "gp");
  assert.match(svg, /#GP\(0\)/);
  assert.match(svg, /not canonical/);
  assert.match(svg, /bits 63:47 must all equal bit 47/);
});

Deno.test("walkToSvg: levels skipped by a resumed walk are drawn as cached", () => {
  const psc = parseXml(svgOf("walk-4level-psc").svg);
  assert.deepEqual(
    roles(psc, "cached").map((g) => g.attrs["data-level"]),
    ["4", "3"],
  );
  assert.match(textOf(roles(psc, "cached")[0]), /paging-structure cache/);
  assert.deepEqual(
    roles(psc, "step").map((g) => g.attrs["data-level"]),
    ["2", "1"],
  );
  const pae = parseXml(svgOf("walk-pae-pdpte-register").svg);
  assert.deepEqual(
    roles(pae, "cached").map((g) => g.attrs["data-level"]),
    ["3"],
  );
  assert.match(textOf(roles(pae, "cached")[0]), /PDPTE\[3\].*PDPTE registers/);
});

Deno.test("walkToSvg: A/D bits set by this walk are highlighted", () => {
  for (const name of Object.keys(WALKS)) {
    const { svg, w } = svgOf(name);
    const doc = parseXml(svg);
    const steps = roles(doc, "step");
    w.steps.forEach((s, i) => {
      const setNow = [...all(steps[i])]
        .filter((n) => n.attrs["data-state"] === "set-now")
        .map((n) => n.attrs["data-flag"]);
      const expect = [
        ...(s.accessedSet ? ["A"] : []),
        ...(s.dirtySet ? ["D"] : []),
      ];
      assert.deepEqual(setNow, expect, `${name} step ${i}`);
    });
  }
  const ok = svgOf("walk-4level-ok").svg;
  assert.match(ok, /A set in PML4E, PDPTE, PDE, PTE; D set in PTE/);
});

Deno.test("walkToSvg: large pages bracket the offset bits", () => {
  const svg = svgOf("walk-x86-32-4mib").svg;
  assert.match(svg, /offset within the 4 MiB page: bits 21:0 = 0x123456/);
  assert.match(svg, /0x523456/); // 0x400000 + 0x123456
});

// ---------------------------------------------------------------- HTML

function html(pt: PageTable, options = {}): { html: string; doc: XNode } {
  const h = pageTableToHtml(pt, options);
  return { html: h, doc: parseXml(h) };
}

function rows(doc: XNode): XNode[] {
  return [...all(doc)].filter((n) => hasClass(n, "mv-r"));
}

Deno.test("pageTableToHtml: well-formed, scoped CSS, no scripts, for every format", () => {
  for (const pt of [table4(), table32(), tablePae(), tableOstep(), table5()]) {
    const { html: h, doc } = html(pt);
    assert.equal(doc.name, "div");
    assert.equal(doc.attrs.class, "mv-pt");
    assert.doesNotMatch(h, /<script|javascript:|on\w+=|@import|url\(/i);
    const css = /<style>(.*?)<\/style>/s.exec(h)![1];
    for (const rule of css.split("}").filter((r) => r.trim())) {
      for (const sel of rule.split("{")[0].split(",")) {
        assert.match(sel.trim(), /^\.mv-pt( |$)/, sel);
      }
    }
    // every present entry shown for these small tables
    const n = [...pt.tables()].reduce((a, t) => a + t.present, 0);
    assert.equal(rows(doc).length, n, pt.format.name);
    assert.match(h, new RegExp(`All ${n} present entries shown`));
  }
});

Deno.test("pageTableToHtml: marks large pages and shows rights of the path", () => {
  const { html: h } = html(table4());
  assert.match(h, /2 MiB page/);
  assert.match(h, /<b>PS<\/b>/);
  assert.match(h, /1 × 2 MiB, 4 × 4 KiB/);
  assert.match(h, /0xffff888000000000/); // sign-extended
  assert.match(h, /r-x u/); // user text page: read-only
  const { html: h32 } = html(table32());
  assert.match(h32, /4 MiB page/);
});

Deno.test("pageTableToHtml: labels and titles are escaped", () => {
  const { html: h, doc } = html(table4(), {
    title: HOSTILE,
    regions: [{ va: 0x40_0000, length: 0x2000, label: HOSTILE }],
  });
  assert.ok(!h.includes("<script"));
  assert.ok(!h.includes(`"label"`));
  const labels = [...all(doc)].filter((n) => hasClass(n, "mv-lb"));
  // PML4E[0], PDPTE[0], PDE[2] and the two PTEs overlap the region
  assert.equal(labels.length, 5);
  for (const l of labels) assert.equal(l.text, HOSTILE);
  assert.ok([...all(doc)].some((n) => n.name === "b" && n.text === HOSTILE));
});

function highlighted(doc: XNode): { cls: string; index: number }[] {
  return rows(doc)
    .filter((n) => hasClass(n, "mv-hl"))
    .map((n) => ({
      cls: n.attrs.class,
      index: Number(
        /\[(\d+)\]/.exec(textOf(n.children[0]))![1],
      ),
    }));
}

Deno.test("pageTableToHtml: highlight marks exactly the walk's entries and opens them", () => {
  const pt = table4();
  for (
    const va of [0x40_1008, 0x60_0010, 0x7fff_ffff_f123, "0xffff888000001000"]
  ) {
    const w = pt.lookup(va);
    const { doc } = html(pt, { highlight: w, openDepth: 0 });
    const hl = highlighted(doc);
    assert.deepEqual(hl.map((h) => h.index), w.steps.map((s) => s.index));
    // the path's <details> are open, every other one closed (openDepth 0)
    for (const d of [...all(doc)].filter((n) => n.name === "details")) {
      const onPath = hasClass(d.children[0], "mv-hl");
      assert.equal("open" in d.attrs, onPath);
    }
  }
  // a walk that stops at a missing entry shows that entry, in red
  const nf = pt.walk(0x80_0000, { user: true });
  const { doc } = html(pt, { highlight: nf });
  const hl = highlighted(doc);
  assert.deepEqual(hl.map((h) => h.index), nf.steps.map((s) => s.index));
  assert.ok(hl.at(-1)!.cls.includes("mv-miss"));
  assert.match(textOf(doc), /PDE not present: the walk stopped here \(#PF\)/);
  // a resumed walk: read entries marked, cached ones dashed
  const psc = WALKS["walk-4level-psc"]();
  const pscDoc = html(table4(), { highlight: psc }).doc;
  assert.equal(highlighted(pscDoc).length, 2);
  assert.equal(rows(pscDoc).filter((n) => hasClass(n, "mv-hc")).length, 2);
  // a walk of another table marks nothing and says so
  const other = tablePae().lookup(0xc000_1000);
  const { html: oh, doc: od } = html(pt, { highlight: other });
  assert.equal(highlighted(od).length, 0);
  assert.match(oh, /not this table: nothing marked/);
});

function bigTable(): PageTable {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 34 }));
  pt.mapRegions([{
    va: 0x1000_0000,
    pa: 0x1_0000_0000,
    length: 100_000 * 4096,
  }]);
  return pt;
}

Deno.test("pageTableToHtml: 100,000 mappings render under 1 MB, folds stated exactly", () => {
  const pt = bigTable();
  const w = pt.lookup(0x1000_0000 + 77_777 * 4096);
  const before = pt.entryWrites;
  const h = pageTableToHtml(pt, { highlight: w });
  assert.equal(pt.entryWrites, before);
  const bytes = new TextEncoder().encode(h).length;
  assert.ok(bytes < 1_000_000, `${bytes} bytes`);
  const doc = parseXml(h);
  const shown = rows(doc).length;
  // 1 PML4E + 1 PDPTE + 196 PDEs + 100,000 PTEs
  const m = /Showing ([\d,]+) of 100,198 present entries; ([\d,]+) folded/
    .exec(h);
  assert.ok(m, "totals stated at the top");
  const num = (s: string) => Number(s.replaceAll(",", ""));
  assert.equal(num(m[1]), shown);
  assert.equal(num(m[1]) + num(m[2]), 100_198);
  assert.match(h, /100,000 leaves \(100,000 × 4 KiB\)/);
  assert.match(h, /199 tables/);
  assert.ok(shown <= 1000 + w.steps.length);
  // each table block: rows shown + folded = entries present
  for (const t of [...all(doc)].filter((n) => hasClass(n, "mv-t"))) {
    const head = textOf(t.children[0]);
    const present = num(/([\d,]+) of [\d,]+ entries present/.exec(head)![1]);
    let count = 0;
    for (const c of t.children.slice(1)) {
      if (hasClass(c, "mv-r")) count++;
      else if (c.name === "details") count++;
      else if (hasClass(c, "mv-fold")) {
        const f = /… ([\d,]+) (?:more )?entr(?:y|ies) in this table not shown/
          .exec(textOf(c));
        assert.ok(f, textOf(c));
        count += num(f[1]);
      }
    }
    assert.equal(count, present, head);
  }
  assert.match(h, /… 448 more entries in this table not shown/);
  // the highlighted PTE is far beyond the per-table limit but shown
  assert.deepEqual(
    highlighted(doc).map((x) => x.index),
    w.steps.map((s) => s.index),
  );
});

Deno.test("pageTableToHtml: maxEntriesPerTable and maxRows bound the rows", () => {
  const pt = bigTable();
  const { doc, html: h } = html(pt, { maxEntriesPerTable: 8, maxRows: 50 });
  assert.equal(rows(doc).length, 50);
  assert.match(h, /Showing 50 of 100,198 present entries; 100,148 folded/);
  assert.match(h, /… 188 more entries in this table not shown/);
  assert.match(h, /\(row limit\)/);
  assert.throws(() => pageTableToHtml(pt, { maxRows: 0 }), /maxRows 0/);
  assert.throws(
    () => pageTableToHtml(pt, { maxEntriesPerTable: 1.5 }),
    /maxEntriesPerTable 1.5/,
  );
});

Deno.test("pageTableToHtml: a PS bit ignored by the mode (CR4.PSE = 0) is not a large page", () => {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 24 }), {
    mode: pagingMode(X86_32, { pse: false }),
  });
  pt.map(0x0040_1000, 0x5000);
  const pde = pt.root + 4 * 1;
  pt.memory.write32(pde, pt.memory.read32(pde) | 0x80); // PS = 1, ignored
  const w = pt.lookup(0x0040_1abc);
  assert.equal(w.pa, 0x5abc);
  const { html: h, doc } = html(pt, { highlight: w });
  assert.doesNotMatch(h, /MiB page/);
  assert.match(h, /→ PT 0x1000/);
  assert.deepEqual(highlighted(doc).map((x) => x.index), [1, 1]);
});

Deno.test("pageTableToHtml: a table beyond memory is reported, not thrown", () => {
  const memory = new PhysicalMemory({ size: 2 ** 20 });
  const pt = new PageTable(memory);
  memory.write32(pt.root, 0x4000_0000 | 7); // PML4E[0] → far beyond memory
  const { html: h } = html(pt);
  assert.match(h, /table unreadable: .*beyond the end of memory/);
});

Deno.test("views are pure: rendering writes no entry and no memory", () => {
  const pt = table4();
  const snapshot = () =>
    [...pt.tables()].map((t) => {
      const out: number[] = [];
      for (let i = 0; i < 4096; i += 4) {
        out.push(pt.memory.read32(t.address + i));
      }
      return out.join(",");
    }).join("|");
  const before = snapshot();
  const writes = pt.entryWrites;
  const w = pt.lookup(0x40_1000);
  pageTableToHtml(pt, { highlight: w });
  walkToSvg(w);
  showPageTable(pt, { highlight: w });
  showWalk(w);
  assert.equal(snapshot(), before);
  assert.equal(pt.entryWrites, writes);
  assert.ok(Object.isFrozen(w));
});

// ------------------------------------------------------------- display

Deno.test("display: Rich bundles for notebooks and the REPL", () => {
  const pt = table4();
  const w = pt.walk(0x40_1008, { kind: "write", user: true });
  const t = showPageTable(pt, { highlight: w, maxLines: 2 });
  const b = t[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(b).sort(), ["text/html", "text/plain"]);
  assert.match(String(b["text/plain"]), /more mappings folded/);
  assert.match(String(b["text/plain"]), /highlighted walk: #PF\(0x7\)/);
  assert.match(String(b["text/html"]), /mv-hl/);
  assert.equal(t[CUSTOM_INSPECT](), b["text/plain"]);
  const s = showWalk(w, { idPrefix: "x" });
  const sb = s[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(sb).sort(), ["image/svg+xml", "text/plain"]);
  assert.ok(String(sb["image/svg+xml"]).startsWith("<svg"));
  assert.equal(Deno.inspect(s), s.text);
  for (const v of Object.values({ ...b, ...sb })) {
    assert.ok(!String(v).includes("\x1b["), "no ANSI codes");
  }
  // the bundle handed to Jupyter is a plain copy
  (sb as Record<string, unknown>)["text/plain"] = "changed";
  assert.notEqual(s.text, "changed");
  assert.throws(() => new Rich({ "text/html": "x" } as never), TypeError);
});

Deno.test("display: the model's own rich displays use these views", () => {
  const pt = new PageTable(new PhysicalMemory({ size: 4096 }), {
    format: OSTEP_15BIT,
  });
  pt.map(0x20, 0x40);
  const d = pt[Symbol.for("Jupyter.display") as never] as () => Record<
    string,
    string
  >;
  assert.match(d.call(pt)["text/html"], /class="mv-pt"/);
  const w = new PageTable(new PhysicalMemory({ size: 2 ** 24 }), {
    format: X86_32,
  }).lookup(0x1000);
  const wd = w[Symbol.for("Jupyter.display") as never] as () => Record<
    string,
    string
  >;
  assert.match(wd.call(w)["image/svg+xml"], /^<svg xmlns=/);
});
