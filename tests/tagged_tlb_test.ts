/**
 * The VPID/EPTP-tagged TLB: switching VMs without flushing never returns
 * another VM's translation (property test, seeded), and each INVVPID /
 * INVEPT scope drops exactly what SDM §28.4.3.1 says.
 */
import assert from "node:assert/strict";
import { TaggedTlb, taggedTlbDisplay } from "../lib/tlb/tagged.ts";
import { Random } from "../lib/util/random.ts";

Deno.test("tagged TLB: VM switches without a flush never return another VM's translation", () => {
  const rnd = new Random(42);
  // 4 VMs (VPID v+1, EPTP root (v+1)·0x10000), 2 PCIDs each, 32 pages
  const truth = new Map<string, number>();
  const tlb = new TaggedTlb({ combined: { entries: 64, ways: 4 } });
  const key = (v: number, p: number, page: number) => `${v}:${p}:${page}`;
  let hits = 0;
  for (let step = 0; step < 20000; step++) {
    const v = rnd.int(4), p = rnd.int(2), page = rnd.int(32);
    const vpid = v + 1, eptp = (v + 1) * 0x10000, va = page * 4096;
    const slot = tlb.lookupCombined(vpid, p, eptp, 0, va + 8);
    const want = truth.get(key(v, p, page));
    if (slot >= 0) {
      hits++;
      assert.equal(tlb.translateCombined(slot, va + 8), want! + 8);
    } else {
      // a miss "walks": each VM's own frame for the page
      const hpa = (v * 1000 + p * 100 + page) * 4096;
      truth.set(key(v, p, page), hpa);
      tlb.fillCombined(vpid, p, eptp, 0, va, hpa, 7, false);
    }
  }
  assert.ok(hits > 1000, `hits ${hits}`);
  assert.equal(tlb.counters.combinedHits, hits);
});

Deno.test("tagged TLB: globals match any PCID of their VPID, never another VPID", () => {
  const t = new TaggedTlb();
  t.fillCombined(1, 5, 0x1000, 0, 0x7000, 0xa000, 7, true);
  assert.notEqual(t.lookupCombined(1, 9, 0x1000, 0, 0x7000), -1);
  assert.equal(t.lookupCombined(2, 5, 0x1000, 0, 0x7000), -1);
  assert.equal(t.lookupCombined(1, 5, 0x2000, 0, 0x7000), -1); // other EPTP
});

/** A populated TLB: VPIDs 0..2, PCIDs 0..1, EPTPs A and B, global and not, plus gpa mappings. */
function populated() {
  const t = new TaggedTlb({
    combined: { entries: 256, ways: 256 },
    guestPhysical: { entries: 64, ways: 64 },
  });
  const A = 0x10000, B = 0x20000;
  for (const vpid of [0, 1, 2]) {
    for (const pcid of [0, 1]) {
      for (const eptp of [A, B]) {
        for (const page of [1, 2]) {
          const global = page === 2 && pcid === 0;
          t.fillCombined(
            vpid,
            pcid,
            eptp,
            0,
            page * 4096,
            0x100000 + page * 4096,
            7,
            global,
          );
        }
      }
    }
  }
  for (const eptp of [A, B]) {
    for (const gfn of [1, 2, 3]) {
      t.fillGpa(eptp, gfn * 4096, 0x200000 + gfn * 4096, 7);
    }
  }
  return { t, A, B };
}

type E = ReturnType<TaggedTlb["entries"]>[number];
function droppedBy(before: E[], after: E[]): E[] {
  const k = (e: E) => JSON.stringify(e);
  const rest = new Set(after.map(k));
  return before.filter((e) => !rest.has(k(e)));
}

Deno.test("INVVPID individual-address: that VPID's page, every PCID and EPTP, globals too", () => {
  const { t } = populated();
  const before = t.entries();
  const n = t.invvpid("individual-address", 1, 0, 0x1000 + 0x123);
  const d = droppedBy(before, t.entries());
  assert.equal(n, d.length);
  assert.equal(d.length, 4); // 2 PCIDs × 2 EPTPs
  assert.ok(
    d.every((e) =>
      e.kind === "combined" && e.vpid === 1 && e.page === "0x00001000"
    ),
  );
  const n2 = t.invvpid("individual-address", 1, 0, 0x2000);
  assert.equal(n2, 4); // globals included
});

Deno.test("INVVPID single-context: all of that VPID's combined mappings; no gpa mappings", () => {
  const { t } = populated();
  const before = t.entries();
  t.invvpid("single-context", 2);
  const d = droppedBy(before, t.entries());
  assert.equal(d.length, 8);
  assert.ok(d.every((e) => e.kind === "combined" && e.vpid === 2));
  assert.equal(
    t.entries().filter((e) => e.kind === "guest-physical").length,
    6,
  );
});

Deno.test("INVVPID all-contexts: every VPID but 0000H", () => {
  const { t } = populated();
  const before = t.entries();
  t.invvpid("all-contexts", 0);
  const d = droppedBy(before, t.entries());
  assert.equal(d.length, 16);
  assert.ok(d.every((e) => e.kind === "combined" && e.vpid !== 0));
  assert.equal(t.entries().filter((e) => e.kind === "combined").length, 8);
});

Deno.test("INVVPID single-context-retaining-globals: that VPID's non-global mappings", () => {
  const { t } = populated();
  const before = t.entries();
  t.invvpid("single-context-retaining-globals", 1);
  const d = droppedBy(before, t.entries());
  assert.equal(d.length, 6); // 8 minus the 2 global (page 2, PCID 0, × 2 EPTPs)
  assert.ok(d.every((e) => e.vpid === 1 && !e.global));
  assert.equal(t.entries().filter((e) => e.vpid === 1).length, 2);
});

Deno.test("INVEPT single-context: that EPTP's guest-physical and combined mappings, every VPID", () => {
  const { t, A, B } = populated();
  const before = t.entries();
  const n = t.invept("single-context", A);
  const d = droppedBy(before, t.entries());
  assert.equal(n, 3 + 12);
  assert.ok(d.every((e) => e.eptp === A));
  assert.ok(t.entries().every((e) => e.eptp === B));
});

Deno.test("INVEPT global: everything", () => {
  const { t } = populated();
  assert.equal(t.invept("global"), 24 + 6);
  assert.equal(t.entries().length, 0);
  assert.deepEqual(
    [t.counters.invept, t.counters.dropped],
    [1, 30],
  );
});

Deno.test("tagged TLB: validation, seeded replacement, display", () => {
  assert.throws(() => new TaggedTlb({ combined: { entries: 6 } }), RangeError);
  assert.throws(
    () => new TaggedTlb().fillCombined(65536, 0, 0, 0, 0, 0, 7, false),
    /VPID/,
  );
  assert.throws(
    () => new TaggedTlb().fillCombined(1, 4096, 0, 0, 0, 0, 7, false),
    /PCID/,
  );
  const run = (seed: number) => {
    const t = new TaggedTlb({ combined: { entries: 4, ways: 4 }, seed });
    for (let i = 0; i < 20; i++) {
      t.fillCombined(1, 0, 0, 0, i * 4096, i * 4096, 7, false);
    }
    return t.entries().map((e) => e.page);
  };
  assert.deepEqual(run(3), run(3));
  const { t } = populated();
  const d = taggedTlbDisplay(t.snapshot(), 5);
  assert.match(d["text/plain"], /25 more entries not shown/);
  assert.equal(d["text/plain"].includes("\x1b"), false);
  const j = (t as unknown as Record<symbol, () => Record<string, string>>)
    [Symbol.for("Jupyter.display")]();
  assert.match(j["text/html"], /<table>/);
});
