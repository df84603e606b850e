/** The 2-D walk grid: deterministic, escaped, bounded; faults and large pages drawn. */
import assert from "node:assert/strict";
import { NestedScheme } from "../lib/virt/nested/scheme.ts";
import { NestedWalkRecord } from "../lib/virt/nested/record.ts";
import { nestedWalkToSvg } from "../lib/view/nested_svg.ts";
import { Host } from "../lib/virt/host.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { X86_64_4LEVEL, X86_64_5LEVEL } from "../lib/paging/format.ts";

function guest(
  options: { levels?: 4 | 5; stage?: "ept" | "npt"; size?: number } = {},
) {
  const host = new Host({ memory: 64 * 2 ** 20, hypervisor: "kvm" });
  const vm = host.createDomain({ memory: 8 * 2 ** 20 });
  const mode = pagingMode(options.levels === 5 ? X86_64_5LEVEL : X86_64_4LEVEL);
  const hap = new NestedScheme({
    stage: options.stage,
    levels: options.levels,
    eventLog: 0,
  });
  hap.attach({ host, domain: vm, memory: vm.memory, mode });
  const pt = new PageTable(vm.memory.unwatched, { mode });
  pt.map(0x7f12_3440_0000, 0x40_0000, {
    user: true,
    size: options.size ?? 4096,
  });
  hap.loadCr3(pt.root);
  return { hap, pt };
}

const HI = 0x7f12, LO = 0x34400008;

Deno.test("grid: 24 numbered cells for a 4×4 walk, deterministic output", () => {
  const { hap } = guest();
  hap.access(0x7f12_3440_0008);
  hap.walker.walk(hap.root, HI, LO, 4);
  const r = NestedWalkRecord.from(hap.walker, HI, LO);
  assert.equal(r.tableReads, 24);
  const svg = nestedWalkToSvg(r);
  for (let k = 1; k <= 24; k++) assert.match(svg, new RegExp(`>${k}</text>`));
  assert.doesNotMatch(svg, />25</);
  assert.equal(svg, nestedWalkToSvg(NestedWalkRecord.from(hap.walker, HI, LO)));
  assert.ok(svg.length < 40_000);
  const d = (r as unknown as Record<symbol, () => Record<string, string>>)[
    Symbol.for("Jupyter.display")
  ]();
  assert.deepEqual(Object.keys(d).sort(), ["image/svg+xml", "text/plain"]);
});

Deno.test("grid: a 2 MiB guest page leaves the gL1 row unreached; 5-level guest × 5-level EPT has 35", () => {
  const { hap } = guest({ size: 2 ** 21 });
  hap.access(0x7f12_3440_0008);
  hap.walker.walk(hap.root, HI, LO, 4);
  const r = NestedWalkRecord.from(hap.walker, HI, LO);
  assert.equal(r.tableReads, 19);
  assert.equal(r.rows[3].gpa, undefined);
  const g5 = guest({ levels: 5 });
  g5.hap.access(0x7f12_3440_0008);
  g5.hap.walker.walk(g5.hap.root, HI, LO, 4);
  const r5 = NestedWalkRecord.from(g5.hap.walker, HI, LO);
  assert.equal(r5.tableReads, 35);
  assert.match(nestedWalkToSvg(r5), />35</);
});

Deno.test("grid: the faulting cell is marked with the reason; strings are escaped", () => {
  const { hap } = guest({ stage: "npt" });
  hap.walker.walk(hap.root, HI, LO, 4); // nothing mapped in the NPT yet
  const r = NestedWalkRecord.from(hap.walker, HI, LO);
  assert.equal(r.outcome.kind, "npf");
  const svg = nestedWalkToSvg(r, { title: `<script>"&'` });
  assert.match(svg, /#NPF/);
  assert.match(svg, /not-present/);
  assert.match(svg, /&lt;script&gt;&quot;&amp;&#39;/);
  assert.doesNotMatch(svg, /<script/);
  assert.match(r.toString(), /#NPF \(not-present\).*guest page table/);
});

Deno.test("grid: a guest #PF is marked in the guest-entry column", () => {
  const { hap } = guest();
  hap.access(0x7f12_3440_0008);
  hap.walker.walk(hap.root, 0x7f12, 0x34600000, 4);
  const r = NestedWalkRecord.from(hap.walker, 0x7f12, 0x34600000);
  assert.equal(r.outcome.kind, "page-fault");
  assert.match(nestedWalkToSvg(r), /guest #PF/);
});
