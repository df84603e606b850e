/**
 * Unit tests of the TLB (lib/tlb/tlb.ts) and the paging-structure caches
 * (lib/tlb/psc.ts), driven by real walks over tables built with PageTable.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Tlb, type TlbOptions } from "../lib/tlb/tlb.ts";
import { PagingStructureCache } from "../lib/tlb/psc.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { PhysicalMemory } from "../lib/memory/memory.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import {
  PAE,
  type PagingFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import {
  RIGHT_U,
  RIGHT_W,
  RIGHT_X,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../lib/paging/walker.ts";
import { LinearAddress } from "../lib/address/address.ts";

const KiB4 = 0x1000;

type Displayable = Record<symbol, () => unknown>;
function display(o: object): Record<string, string> {
  return (o as Displayable)[Symbol.for("Jupyter.display")]() as Record<
    string,
    string
  >;
}
function inspect(o: object): string {
  return (o as Displayable)[Symbol.for("Deno.customInspect")]() as string;
}
const MiB2 = 0x20_0000;
const GiB1 = 0x4000_0000;

function table(format: PagingFormat = X86_64_4LEVEL): PageTable {
  return new PageTable(new PhysicalMemory({ size: 2 ** 36 }), {
    mode: pagingMode(format),
  });
}

/** Walk `va` (a number or hex string) in `pt` into a fresh scratch. */
function walked(pt: PageTable, va: number | string, access = 0): WalkScratch {
  const a = LinearAddress.from(va);
  const s = new WalkScratch();
  const r = walkInto(s, pt.mode, pt.memory, pt.root, a.hi, a.lo, access);
  assert.equal(r, WALK_OK, `walk of ${a.toHex()} failed`);
  return s;
}

/** Map `n` 4 KiB pages at 0x400000 + i·stride and return a filler. */
function mapped(n: number, stride = KiB4) {
  const pt = table();
  for (let i = 0; i < n; i++) {
    pt.map(0x40_0000 + i * stride, 0x100_0000 + i * KiB4);
  }
  const va = (i: number) => 0x40_0000 + i * stride;
  return {
    pt,
    va,
    fill: (tlb: Tlb, i: number, pcid = 0) =>
      tlb.fill(walked(pt, va(i)), 0, va(i), pcid),
  };
}

Deno.test("geometry: bad options throw RangeError/TypeError naming the value", () => {
  assert.throws(() => new Tlb({ entries: 48, ways: 4 }), /12 sets/); // not a power of two
  assert.throws(() => new Tlb({ entries: 64, ways: 5 }), /ways 5/);
  assert.throws(() => new Tlb({ entries: 0 }), /entries 0/);
  assert.throws(() => new Tlb({ entries: 1.5 }), RangeError);
  assert.throws(
    () => new Tlb({ replacement: "mru" as "lru" }),
    /replacement "mru"/,
  );
  assert.throws(
    () => new Tlb({ split: "yes" as unknown as boolean }),
    TypeError,
  );
  assert.throws(
    () => new Tlb({ split: { large: { entries: 12, ways: 4 } } }),
    /large-page array/,
  );
  const t = new Tlb({ entries: 16, ways: 16 });
  assert.deepEqual(t.arrays.map((a) => [a.entries, a.ways, a.sets]), [[
    16,
    16,
    1,
  ]]);
  const s = new Tlb({ split: true });
  assert.deepEqual(s.arrays.map((a) => [a.sizeClass, a.entries, a.ways]), [
    ["base", 64, 4],
    ["large", 32, 4],
    ["huge", 4, 4],
  ]);
  assert.equal(s.capacity, 100);
  assert.equal(s.split, true);
});

Deno.test("hit and miss; translate adds the page offset; counters", () => {
  const m = mapped(2);
  const tlb = new Tlb({ entries: 8, ways: 2 });
  assert.equal(tlb.lookup(0, m.va(0), 0), -1);
  const slot = m.fill(tlb, 0);
  assert.equal(tlb.lookup(0, m.va(0) + 0x123, 0), slot);
  assert.equal(tlb.translate(slot, 0, m.va(0) + 0x123), 0x100_0123);
  assert.equal(tlb.lookup(0, m.va(1), 0), -1);
  assert.equal(tlb.validCount, 1);
  const c = tlb.counters;
  assert.deepEqual([c.hits, c.misses, c.fills, c.evictions], [1, 2, 1, 0]);
  tlb.resetCounters();
  assert.deepEqual(
    [tlb.counters.hits, tlb.counters.misses, tlb.counters.fills],
    [0, 0, 0],
  );
  assert.equal(tlb.validCount, 1, "reset keeps entries");
});

Deno.test("an entry records the walk: rights, frame, dirty, level, global", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true, writable: false, executable: false });
  pt.map(0x60_0000, 0xa000, { global: true, dirty: true });
  const tlb = new Tlb();
  const a = tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0);
  const e = tlb.entry(a)!;
  assert.equal(e.pa, 0x9000);
  assert.equal(e.pageSize, KiB4);
  assert.equal(e.level, 1);
  assert.deepEqual(e.rights, {
    writable: false,
    user: true,
    executable: false,
  });
  assert.equal(tlb.rightsOf(a), RIGHT_U);
  assert.equal(e.dirty, false);
  assert.equal(e.global, false);
  const b = tlb.fill(walked(pt, 0x60_0000), 0, 0x60_0000, 0);
  assert.equal(tlb.globalOf(b), true);
  assert.equal(tlb.dirtyOf(b), true);
  assert.equal(tlb.rightsOf(b), RIGHT_W | RIGHT_X);
  assert.equal(tlb.entry(5), undefined);
  assert.throws(() => tlb.entry(-1), /slot -1/);
});

Deno.test("G is cached as global only when the walk says so (CR4.PGE)", () => {
  const memory = new PhysicalMemory({ size: 2 ** 32 });
  const pt = new PageTable(memory, {
    mode: pagingMode(X86_64_4LEVEL, { pge: false }),
  });
  pt.map(0x40_0000, 0x9000, { global: true });
  const tlb = new Tlb();
  const slot = tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 3);
  assert.equal(tlb.globalOf(slot), false);
  assert.equal(tlb.lookup(0, 0x40_0000, 4), -1);
});

Deno.test("set mapping: the set is the low page-number bits", () => {
  // 4 sets × 2 ways; pages 0, 4, 8 share set 0; page 1 is in set 1
  const m = mapped(9);
  const tlb = new Tlb({ entries: 8, ways: 2 });
  const s0 = m.fill(tlb, 0);
  const s1 = m.fill(tlb, 1);
  const s4 = m.fill(tlb, 4);
  const vpn0 = m.va(0) / KiB4;
  assert.equal(tlb.entry(s0)!.set, vpn0 % 4);
  assert.equal(tlb.entry(s1)!.set, (vpn0 + 1) % 4);
  assert.equal(tlb.entry(s4)!.set, tlb.entry(s0)!.set);
  assert.notEqual(tlb.entry(s4)!.way, tlb.entry(s0)!.way);
  m.fill(tlb, 8); // third page in a 2-way set: a conflict eviction
  assert.equal(tlb.counters.evictions, 1);
  assert.equal(tlb.lookup(0, m.va(0), 0), -1, "LRU victim: page 0");
  assert.notEqual(tlb.lookup(0, m.va(1), 0), -1, "other sets untouched");
  assert.equal(tlb.validCount, 3);
});

function policyVictim(replacement: TlbOptions["replacement"]): number[] {
  // one set of 2 ways: fill A, B; touch A; fill C — who survives?
  const m = mapped(3);
  const tlb = new Tlb({ entries: 2, ways: 2, replacement });
  m.fill(tlb, 0);
  m.fill(tlb, 1);
  assert.notEqual(tlb.lookup(0, m.va(0), 0), -1);
  m.fill(tlb, 2);
  return [0, 1, 2].filter((i) => tlb.lookup(0, m.va(i), 0) >= 0);
}

Deno.test("replacement: LRU keeps the recently used page, FIFO the newest", () => {
  assert.deepEqual(policyVictim("lru"), [0, 2]);
  assert.deepEqual(policyVictim("fifo"), [1, 2]);
});

Deno.test("replacement: random is seeded and deterministic", () => {
  const run = (seed: number) => {
    const m = mapped(64);
    const tlb = new Tlb({ entries: 8, ways: 8, replacement: "random", seed });
    for (let i = 0; i < 64; i++) m.fill(tlb, i);
    return tlb.entries().map((e) => e.va.toHex()).sort();
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
  const m = mapped(20);
  const tlb = new Tlb({ entries: 8, ways: 8, replacement: "random" });
  for (let i = 0; i < 20; i++) m.fill(tlb, i);
  assert.equal(tlb.counters.evictions, 12);
  assert.equal(tlb.validCount, 8);
});

Deno.test("fully associative: any N pages fit, whatever their set bits", () => {
  const m = mapped(16, 16 * KiB4); // all would collide in a 16-set TLB
  const full = new Tlb({ entries: 16, ways: 16 });
  const direct = new Tlb({ entries: 16, ways: 1 });
  for (let i = 0; i < 16; i++) {
    m.fill(full, i);
    m.fill(direct, i);
  }
  assert.equal(full.validCount, 16);
  assert.equal(full.counters.evictions, 0);
  assert.equal(direct.validCount, 1);
  assert.equal(direct.counters.evictions, 15);
});

Deno.test("refilling the same page replaces the entry in place (D re-walk)", () => {
  const m = mapped(1);
  const tlb = new Tlb({ entries: 4, ways: 4 });
  const a = m.fill(tlb, 0);
  assert.equal(tlb.dirtyOf(a), false);
  const s = walked(m.pt, m.va(0), 1 /* ACCESS_WRITE */);
  assert.equal(s.dSet, true);
  const b = tlb.fill(s, 0, m.va(0), 0);
  assert.equal(b, a);
  assert.equal(tlb.dirtyOf(b), true);
  assert.equal(tlb.validCount, 1);
  assert.equal(tlb.counters.evictions, 0);
});

Deno.test("size classes: split arrays hold 4 KiB, 2 MiB and 1 GiB pages apart", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x80_0000, 0x20_0000, { size: MiB2 });
  pt.map(GiB1, GiB1, { size: GiB1 });
  const tlb = new Tlb({ split: true });
  const a = tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0);
  const b = tlb.fill(walked(pt, 0x80_0000), 0, 0x80_0000, 0);
  const c = tlb.fill(walked(pt, GiB1), 0, GiB1, 0);
  assert.deepEqual(
    [a, b, c].map((s) => tlb.entry(s)!.sizeClass),
    ["base", "large", "huge"],
  );
  assert.equal(tlb.lookup(0, 0x80_0000 + 0x1f_fff8, 0), b);
  assert.equal(tlb.translate(b, 0, 0x80_0000 + 0x1f_fff8), 0x3f_fff8);
  assert.equal(tlb.lookup(0, GiB1 + 0x3fff_0000, 0), c);
  assert.equal(tlb.translate(c, 0, GiB1 + 0x3fff_0000), 0x7fff_0000);
  assert.equal(tlb.lookup(0, 0x40_0000 + 0xfff, 0), a);
  assert.equal(tlb.lookup(0, 0x40_1000, 0), -1);
});

Deno.test("size classes: a unified TLB probes every page size present", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x80_0000, 0x20_0000, { size: MiB2 });
  const tlb = new Tlb({ entries: 8, ways: 2 });
  const a = tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0);
  const b = tlb.fill(walked(pt, 0x81_2345), 0, 0x81_2345, 0);
  assert.equal(tlb.entry(b)!.sizeClass, "unified");
  assert.equal(tlb.entry(b)!.va.toHex(), "0x800000");
  assert.equal(tlb.lookup(0, 0x80_0000, 0), b);
  assert.equal(tlb.lookup(0, 0x40_0001, 0), a);
  tlb.invlpg(0, 0x9f_ffff, 0);
  assert.equal(
    tlb.lookup(0, 0x80_0000, 0),
    -1,
    "INVLPG anywhere in the 2 MiB page",
  );
  assert.equal(tlb.lookup(0, 0x40_0001, 0), a);
});

Deno.test("size classes: 32-bit 4 MiB pages and PAE 2 MiB pages", () => {
  const p32 = table(X86_32);
  p32.map(0x80_0000, 0x40_0000, { size: 4 * 2 ** 20 });
  const tlb = new Tlb({ split: true });
  const s = tlb.fill(walked(p32, 0xbf_ffff), 0, 0xbf_ffff, 0);
  assert.equal(tlb.entry(s)!.pageSize, 4 * 2 ** 20);
  assert.equal(tlb.entry(s)!.sizeClass, "large");
  assert.equal(tlb.translate(s, 0, 0xbf_ffff), 0x7f_ffff);
  const pae = table(PAE);
  pae.map(0xc000_0000, 0x20_0000, { size: MiB2 });
  const t = tlb.fill(walked(pae, 0xc000_0010), 0, 0xc000_0010, 0);
  assert.equal(tlb.entry(t)!.pageSize, MiB2);
  assert.equal(tlb.lookup(0, 0xc01f_0000, 0), t);
});

Deno.test("kernel-half and 5-level addresses keep their full page number", () => {
  const p5 = table(X86_64_5LEVEL);
  p5.map("0xff11_0000_0000_0000", 0x9000);
  p5.map("0x0011_0000_0000_0000", 0xa000);
  const tlb = new Tlb({ entries: 4, ways: 4 });
  const a = tlb.fill(walked(p5, "0xff11000000000000"), 0xff110000, 0, 0);
  assert.equal(tlb.lookup(0x00110000, 0, 0), -1);
  assert.equal(tlb.lookup(0xff110000, 0x10, 0), a);
  assert.equal(tlb.entry(a)!.va.toHex(), "0xff11000000000000");
});

Deno.test("PCID isolation; global entries match every PCID", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x50_0000, 0xa000, { global: true });
  const tlb = new Tlb();
  const a = tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 1);
  const g = tlb.fill(walked(pt, 0x50_0000), 0, 0x50_0000, 1);
  assert.equal(tlb.lookup(0, 0x40_0000, 1), a);
  assert.equal(tlb.lookup(0, 0x40_0000, 2), -1);
  assert.equal(tlb.lookup(0, 0x50_0000, 2), g);
  assert.equal(tlb.lookup(0, 0x50_0000, 4095), g);
  assert.equal(tlb.pcidOf(a), 1);
  assert.throws(
    () => tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 4096),
    /PCID 4096/,
  );
});

Deno.test("invalidation: INVLPG, per PCID, all; keepGlobal", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x50_0000, 0xa000, { global: true });
  const setup = () => {
    const tlb = new Tlb();
    tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 1);
    tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 2);
    tlb.fill(walked(pt, 0x50_0000), 0, 0x50_0000, 2);
    return tlb;
  };
  const has = (t: Tlb, va: number, pcid: number) =>
    t.entries().some((e) => e.va.lo === va && e.pcid === pcid);
  // INVLPG: that page for the PCID given, and global entries for the page
  let t = setup();
  assert.equal(t.invlpg(0, 0x40_0abc, 1), 1);
  assert.equal(has(t, 0x40_0000, 1), false);
  assert.equal(has(t, 0x40_0000, 2), true);
  assert.equal(
    t.invlpg(0, 0x50_0000, 1),
    1,
    "global of PCID 2 dropped by INVLPG under PCID 1",
  );
  // keepGlobal (INVPCID type 0)
  t = setup();
  assert.equal(t.invlpg(0, 0x50_0000, 2, { keepGlobal: true }), 0);
  // per PCID
  t = setup();
  assert.equal(t.flushPcid(2, { keepGlobal: true }), 1);
  assert.equal(has(t, 0x50_0000, 2), true);
  assert.equal(t.flushPcid(2), 1);
  assert.equal(t.validCount, 1);
  // all
  t = setup();
  assert.equal(t.flushAll({ keepGlobal: true }), 2);
  assert.equal(t.validCount, 1);
  assert.equal(t.flushAll(), 1);
  assert.equal(t.validCount, 0);
  const c = t.counters;
  assert.deepEqual(c.invalidations, { address: 0, pcid: 0, all: 2, fault: 0 });
  assert.equal(c.dropped, 3);
  t = setup();
  assert.equal(
    t.invalidatePage(0, 0x50_0000, 7),
    1,
    "fault: global entries would be used",
  );
  assert.equal(t.counters.invalidations.fault, 1);
  assert.throws(() => t.invlpg(-1, 0, 0), /high half -1/);
  assert.throws(() => t.flushPcid(5000), /PCID 5000/);
});

Deno.test("stale entries keep translating after the tables change", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  const tlb = new Tlb();
  const slot = tlb.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0);
  pt.unmap(0x40_0000);
  pt.map(0x40_0000, 0xf000);
  assert.equal(tlb.lookup(0, 0x40_0008, 0), slot);
  assert.equal(tlb.translate(slot, 0, 0x40_0008), 0x9008, "old frame");
});

Deno.test("fill needs a successful walk", () => {
  const pt = table();
  const s = new WalkScratch();
  assert.equal(
    walkInto(s, pt.mode, pt.memory, pt.root, 0, 0x40_0000, 0),
    WALK_PF,
  );
  assert.throws(() => new Tlb().fill(s, 0, 0x40_0000, 0), /successful walk/);
  assert.throws(
    () => new PagingStructureCache().fill(s, 0, 0x40_0000, 0, pt.mode),
    /successful walk/,
  );
});

Deno.test("display: MIME bundle, escaping, bounded output", () => {
  const m = mapped(100);
  const tlb = new Tlb({ entries: 128, ways: 128, name: "<L1 dTLB>" });
  for (let i = 0; i < 100; i++) m.fill(tlb, i);
  const bundle = display(tlb);
  assert.deepEqual(Object.keys(bundle).sort(), ["text/html", "text/plain"]);
  assert.match(bundle["text/html"], /&lt;L1 dTLB&gt;/);
  assert.doesNotMatch(bundle["text/html"], /<L1/);
  assert.match(bundle["text/html"], /68 more valid entries not shown/);
  assert.match(bundle["text/plain"], /68 more valid entries not shown/);
  assert.ok(bundle["text/html"].length < 20_000);
  for (const v of Object.values(bundle)) {
    assert.equal(v.includes("\u001b"), false, "no ANSI escapes");
  }
  assert.match(inspect(tlb), /100\/128 valid/);
  assert.match(String(tlb), /100\/128 valid, 0 hits, 0 misses/);
});

// ---- paging-structure caches ----------------------------------------------

Deno.test("PSC: a 4-level walk fills PML4E, PDPTE and PDE caches", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x40_1000, 0xa000); // same PT
  pt.map(0x60_0000, 0xb000); // same PD, other PT
  pt.map(0x4000_0000, 0xc000); // same PDPT, other PD
  pt.map(0x80_0000_0000, 0xd000); // other PML4E
  const psc = new PagingStructureCache();
  const s = walked(pt, 0x40_0000);
  assert.equal(psc.fill(s, 0, 0x40_0000, 0, pt.mode), 3);
  const e = psc.entries();
  assert.deepEqual(e.map((x) => x.cache), [
    "PDE cache",
    "PDPTE cache",
    "PML4E cache",
  ]);
  assert.equal(e[0].table, s.base[3], "PDE cache → the page table");
  assert.equal(e[2].table, s.base[1], "PML4E cache → the PDPT");
  assert.equal(psc.lookup(0, 0x40_1000, 0, pt.mode), 2);
  assert.equal(psc.lastTable, s.base[3]);
  assert.equal(psc.lookup(0, 0x60_0000, 0, pt.mode), 3);
  assert.equal(psc.lastTable, s.base[2]);
  assert.equal(psc.lookup(0, 0x4000_0000, 0, pt.mode), 4);
  assert.equal(psc.lastTable, s.base[1]);
  assert.equal(psc.lookup(0x80, 0, 0, pt.mode), 0);
  assert.deepEqual(psc.counters.hits.slice(2), [1, 1, 1, 0]);
  assert.equal(psc.counters.misses, 1);
});

Deno.test("PSC: rights are ANDed down to the cached entry", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  // make the PDE supervisor-only: the PDE-cache entry must say so
  const s0 = walked(pt, 0x40_0000);
  const pdeAddr = s0.entryAddr[2];
  pt.memory.write32(pdeAddr, pt.memory.read32(pdeAddr) & ~4);
  const s = walked(pt, 0x40_0000);
  const psc = new PagingStructureCache();
  psc.fill(s, 0, 0x40_0000, 0, pt.mode);
  assert.equal(psc.lookup(0, 0x40_0000, 0, pt.mode), 2);
  assert.equal(psc.lastRights, RIGHT_W | RIGHT_X);
  assert.equal(psc.lookup(0, 0x40_0000, 0, pt.mode), 2);
  const pdpte = psc.entries().find((e) => e.level === 3)!;
  assert.equal(pdpte.rights.user, true);
});

Deno.test("PSC: leaves are not cached (a 2 MiB PDE is a leaf)", () => {
  const pt = table();
  pt.map(0x80_0000, 0x20_0000, { size: MiB2 });
  pt.map(0x4000_0000, 0, { size: GiB1 });
  const psc = new PagingStructureCache();
  assert.equal(psc.fill(walked(pt, 0x80_0000), 0, 0x80_0000, 0, pt.mode), 2);
  assert.equal(psc.lookup(0, 0x80_0000, 0, pt.mode), 3);
  assert.equal(
    psc.fill(walked(pt, 0x4000_0000), 0, 0x4000_0000, 0, pt.mode),
    1,
  );
  assert.deepEqual(psc.entries().map((e) => e.level), [3, 4]);
});

Deno.test("PSC: size 0 disables a level; the next level up answers", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  const psc = new PagingStructureCache({ pde: 0 });
  assert.equal(psc.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0, pt.mode), 2);
  assert.equal(psc.lookup(0, 0x40_0000, 0, pt.mode), 3);
  const none = new PagingStructureCache({
    pde: 0,
    pdpte: 0,
    pml4e: 0,
    pml5e: 0,
  });
  assert.equal(none.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0, pt.mode), 0);
  assert.equal(none.lookup(0, 0x40_0000, 0, pt.mode), 0);
  assert.throws(
    () => new PagingStructureCache({ pde: -1 }),
    /PDE cache size -1/,
  );
});

Deno.test("PSC: PAE has no PDPTE cache; 32-bit keys PDEs by bits 31:22", () => {
  const pae = table(PAE);
  pae.map(0x40_0000, 0x9000);
  const psc = new PagingStructureCache();
  assert.equal(psc.fill(walked(pae, 0x40_0000), 0, 0x40_0000, 0, pae.mode), 1);
  assert.deepEqual(psc.entries().map((e) => [e.level, e.shift]), [[2, 21]]);
  const p32 = table(X86_32);
  p32.map(0x40_0000, 0x9000);
  const psc32 = new PagingStructureCache();
  assert.equal(
    psc32.fill(walked(p32, 0x40_0000), 0, 0x40_0000, 0, p32.mode),
    1,
  );
  assert.equal(psc32.lookup(0, 0x7f_f000, 0, p32.mode), 2, "same 4 MiB region");
  assert.equal(psc32.lookup(0, 0x80_0000, 0, p32.mode), 0);
});

Deno.test("PSC: 5-level walks fill a PML5E cache", () => {
  const p5 = table(X86_64_5LEVEL);
  p5.map("0x0001_0000_0000_0000", 0x9000);
  p5.map("0x0001_8000_0000_0000", 0xa000); // same PML5E, other PML4E
  const psc = new PagingStructureCache();
  assert.equal(
    psc.fill(walked(p5, "0x1000000000000"), 0x10000, 0, 0, p5.mode),
    4,
  );
  assert.equal(psc.lookup(0x18000, 0, 0, p5.mode), 5);
});

Deno.test("PSC: INVLPG drops every entry of the PCID, whatever the address", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x80_0000_0000, 0xa000);
  const psc = new PagingStructureCache({ pml4e: 4 });
  psc.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 1, pt.mode);
  psc.fill(walked(pt, 0x80_0000_0000), 0x80, 0, 1, pt.mode);
  psc.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 2, pt.mode);
  assert.equal(psc.validCount, 9);
  assert.equal(psc.invlpg(1), 6);
  assert.deepEqual([...new Set(psc.entries().map((e) => e.pcid))], [2]);
  // by address: only the entries that would translate it
  psc.fill(walked(pt, 0x80_0000_0000), 0x80, 0, 2, pt.mode);
  assert.equal(psc.invalidateAddress(0x80, 0x1000, 2), 3);
  assert.equal(psc.lookup(0, 0x40_0000, 2, pt.mode), 2);
  assert.equal(psc.flushAll(), 3);
  assert.deepEqual(psc.counters.invalidations, { address: 1, pcid: 1, all: 1 });
});

Deno.test("PSC: LRU replacement within a level", () => {
  const pt = table();
  for (let i = 0; i < 3; i++) pt.map(0x40_0000 + i * MiB2, 0x9000 + i * KiB4);
  const psc = new PagingStructureCache({ pde: 2 });
  const fill = (i: number) =>
    psc.fill(
      walked(pt, 0x40_0000 + i * MiB2),
      0,
      0x40_0000 + i * MiB2,
      0,
      pt.mode,
    );
  fill(0);
  fill(1);
  assert.equal(psc.lookup(0, 0x40_0000, 0, pt.mode), 2); // touch region 0
  fill(2);
  assert.equal(psc.counters.evictions, 1);
  assert.equal(
    psc.lookup(0, 0x40_0000 + MiB2, 0, pt.mode),
    3,
    "region 1 evicted",
  );
  assert.equal(psc.lookup(0, 0x40_0000, 0, pt.mode), 2);
});

Deno.test("PSC display", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  const psc = new PagingStructureCache({ name: "<psc>" });
  psc.fill(walked(pt, 0x40_0000), 0, 0x40_0000, 0, pt.mode);
  const b = display(psc);
  assert.match(b["text/html"], /&lt;psc&gt;/);
  assert.match(b["text/plain"], /PDE cache: 0x400000 \(bits ≥ 21\)/);
  assert.match(String(psc), /3 valid/);
});
