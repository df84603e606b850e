/**
 * EPT tables in the HTML table view: R/W/X badges (struck out when not
 * granted), memory type and IPAT on leaves, A/D only with EPT A/D, the
 * highlighted path of a gpa (also a faulting one), folding, escaping.
 */
import assert from "node:assert/strict";
import { FrameAllocator, PhysicalMemory } from "../lib/memory/memory.ts";
import { EPT_4LEVEL, EPT_5LEVEL, eptMap, eptMode } from "../lib/paging/ept.ts";
import { eptTableToHtml } from "../lib/view/table_html.ts";

function ept(ad: boolean, levels: 4 | 5 = 4) {
  const memory = new PhysicalMemory({ size: 1 << 22 });
  const frames = new FrameAllocator(memory, { start: 1 << 21 });
  const mode = eptMode(levels === 4 ? EPT_4LEVEL : EPT_5LEVEL, { ad });
  const root = frames.alloc();
  const map = (gpa: number, hpa: number, o = {}) =>
    eptMap(mode, memory, () => frames.alloc(), root, gpa, hpa, o);
  return { memory, mode, root, map };
}

Deno.test("EPT view: badges per entry, path rights, memory types", () => {
  const { memory, mode, root, map } = ept(false);
  map(0x1000, 0x8000, { write: false });
  map(0x2000, 0x9000, { exec: false, memType: 0 });
  map(0x20_0000, 0x40_0000, { pageShift: 21 });
  const html = eptTableToHtml({ mode, root, memory });
  assert.match(
    html,
    /→ 0x8000 <b class="mv-pg">4 KiB<\/b>.*?<b>R<\/b><s>W<\/s><b>X<\/b><b class="mv-mt">WB<\/b>.*?r-x/,
  );
  assert.match(
    html,
    /<b>R<\/b><b>W<\/b><s>X<\/s><b class="mv-mt">UC<\/b>.*?rw-/,
  );
  assert.match(
    html,
    /2 MiB page<\/b><\/span><span class="mv-f"><b>R<\/b><b>W<\/b><b>X<\/b><b class="mv-mt">WB<\/b><b>PS<\/b>/,
  );
  assert.doesNotMatch(html, /<b>A<\/b>|<b>D<\/b>/); // no EPT A/D: no A/D badges
  assert.match(html, /All 6 present entries shown/);
  assert.doesNotMatch(html, /<script/);
});

Deno.test("EPT view: A/D badges with EPT A/D; highlight of a mapped and an unmapped gpa", () => {
  const { memory, mode, root, map } = ept(true, 5);
  map(0x1000, 0x8000);
  const lo = memory.read32(0x20_0000); // root entry: set its A bit by hand
  memory.write32(0x20_0000, lo | 0x100);
  const ok = eptTableToHtml({ mode, root, memory }, { highlightGpa: 0x1abc });
  assert.equal(ok.split('class="mv-r mv-hl').length - 1, 5);
  assert.match(ok, /the walk of gpa 0x1abc → hpa 0x8abc/);
  assert.match(ok, /A\/D enabled/);
  assert.equal(ok.split("<b>A</b>").length - 1, 1);
  const bad = eptTableToHtml({ mode, root, memory }, { highlightGpa: 0x5000 });
  assert.match(bad, /EPT violation \(not-present\) at level 1/);
  assert.throws(
    () => eptTableToHtml({ mode, root, memory }, { highlightGpa: -1 }),
    /highlightGpa -1 is invalid/,
  );
});

Deno.test("EPT view: folding keeps the highlighted path; titles are escaped", () => {
  const { memory, mode, root, map } = ept(false);
  for (let i = 0; i < 40; i++) map(i * 4096, 0x10_0000 + i * 4096);
  const html = eptTableToHtml({ mode, root, memory }, {
    maxEntriesPerTable: 8,
    highlightGpa: 39 * 4096,
    title: "<b>vm</b>",
  });
  assert.match(html, /… 31 more entries in this table not shown/);
  assert.match(html, /\[39\]<\/span><span class="mv-va">0x27000/);
  assert.match(html, /&lt;b&gt;vm&lt;\/b&gt;/);
  assert.throws(
    () => eptTableToHtml({ mode, root, memory }, { maxRows: 0 }),
    /maxRows 0 is invalid/,
  );
});
