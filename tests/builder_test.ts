/**
 * The page-table builder: map/unmap/protect for every page size of every
 * x86 format, errors that leave the table unchanged, mapRegions, and the
 * one choke point for entry writes (writeEntry classification).
 *
 * @module
 */

import assert from "node:assert/strict";
import { FrameAllocator, PhysicalMemory } from "../lib/memory/memory.ts";
import {
  OSTEP_15BIT,
  PAE,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import {
  encodeLeaf,
  encodeTable,
  type EntryChange,
  hexEntry,
  PageTable,
  type PageTableOptions,
} from "../lib/paging/builder.ts";
import { LinearAddress } from "../lib/address/address.ts";

const KiB = 1024, MiB = 2 ** 20, GiB = 2 ** 30;

function table(opts: PageTableOptions = {}, size = 2 ** 40): PageTable {
  return new PageTable(new PhysicalMemory({ size }), opts);
}

/** Everything observable about a table, for before/after comparisons. */
function state(pt: PageTable): string {
  return JSON.stringify({
    mappings: [...pt.mappings()].map((m) => ({ ...m, va: m.va.toHex() })),
    tables: pt.tables(),
    writes: pt.entryWrites,
    allocated: pt.allocator.allocatedCount,
  });
}

function assertUnchanged(pt: PageTable, f: () => unknown, re: RegExp): void {
  const before = state(pt);
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof RangeError, String(e));
    assert.match(e.message, re);
    return true;
  });
  assert.equal(state(pt), before, `table changed by a failed call (${re})`);
}

interface SizeCase {
  name: string;
  opts: PageTableOptions;
  size: number;
  va: bigint;
  pa: number;
  level: number;
}

const SIZES: SizeCase[] = [
  {
    name: "4-level 4 KiB",
    opts: {},
    size: 4 * KiB,
    va: 0x7f12_3456_7000n,
    pa: 0x12_3456_7000,
    level: 1,
  },
  {
    name: "4-level 2 MiB",
    opts: {},
    size: 2 * MiB,
    va: 0x0000_4000_0020_0000n,
    pa: 0x8_0040_0000,
    level: 2,
  },
  {
    name: "4-level 1 GiB",
    opts: {},
    size: GiB,
    va: 0xffff_8880_0000_0000n,
    pa: 0x40_0000_0000,
    level: 3,
  },
  {
    name: "5-level 4 KiB",
    opts: { format: X86_64_5LEVEL },
    size: 4 * KiB,
    va: 0xff11_2233_4455_6000n,
    pa: 0x7000,
    level: 1,
  },
  {
    name: "5-level 1 GiB",
    opts: { format: X86_64_5LEVEL },
    size: GiB,
    va: 0x00aa_0000_4000_0000n,
    pa: GiB,
    level: 3,
  },
  {
    name: "32-bit 4 KiB",
    opts: { format: X86_32 },
    size: 4 * KiB,
    va: 0xc010_3000n,
    pa: 0xfee0_0000,
    level: 1,
  },
  {
    name: "32-bit 4 MiB",
    opts: { format: X86_32 },
    size: 4 * MiB,
    va: 0xc040_0000n,
    pa: 0x1_0040_0000,
    level: 2,
  },
  {
    name: "PAE 4 KiB",
    opts: { format: PAE },
    size: 4 * KiB,
    va: 0xbfff_f000n,
    pa: 0x9_0000_1000,
    level: 1,
  },
  {
    name: "PAE 2 MiB",
    opts: { format: PAE },
    size: 2 * MiB,
    va: 0x8060_0000n,
    pa: 0x2_0000_0000,
    level: 2,
  },
];

for (const c of SIZES) {
  Deno.test(`map / walk / protect / unmap: ${c.name}`, () => {
    const pt = table(c.opts);
    const change = pt.map(c.va, c.pa, { size: c.size, user: true });
    assert.equal(change.kind, "install");
    assert.equal(change.level, c.level);
    assert.equal(change.span, c.size);
    assert.equal(change.needsFlush, false);
    const ms = [...pt.mappings()];
    assert.equal(ms.length, 1);
    assert.equal(ms[0].va.toBigInt(), c.va);
    assert.equal(ms[0].pa, c.pa);
    assert.equal(ms[0].size, c.size);
    assert.equal(ms[0].level, c.level);
    assert.deepEqual(ms[0].rights, {
      writable: true,
      user: true,
      executable: true,
    });
    // every byte of the page translates
    for (const off of [0, 8, c.size / 2 + 3, c.size - 1]) {
      const w = pt.walk(c.va + BigInt(off), { kind: "write", user: true });
      assert.equal(w.outcome.kind, "ok", w.toString());
      assert.equal(w.pa, c.pa + off);
      assert.equal(w.outcome.kind === "ok" && w.outcome.pageSize, c.size);
      assert.equal(w.outcome.kind === "ok" && w.outcome.level, c.level);
    }
    // just outside: not mapped
    assert.equal(pt.lookup(c.va + BigInt(c.size)).ok, false);
    // protect: read-only, supervisor, no-execute where there is XD
    const xd = pt.format.bits.noExec >= 0;
    const p = pt.protect(c.va + 5n, {
      writable: false,
      executable: xd ? false : undefined,
    });
    assert.equal(p.kind, "restrict");
    assert.equal(p.needsFlush, true);
    assert.equal(p.va.toBigInt(), c.va, "protect reports the page start");
    const wf = pt.walk(c.va, { kind: "write", user: true });
    assert.equal(wf.outcome.kind, "page-fault");
    assert.equal(pt.walk(c.va, { kind: "read", user: true }).pa, c.pa);
    if (xd) {
      assert.equal(pt.walk(c.va, { kind: "fetch" }).outcome.kind, "page-fault");
    }
    const m2 = [...pt.mappings()][0];
    assert.equal(m2.pa, c.pa, "protect keeps the frame");
    assert.equal(m2.rights.writable, false);
    assert.equal(m2.flags.user, true, "unspecified attributes are kept");
    assert.equal(m2.flags.accessed, true, "A set by the walks is kept");
    assert.equal(m2.flags.dirty, true, "D set by the write walk is kept");
    const relax = pt.protect(c.va, { writable: true });
    assert.equal(relax.kind, "relax");
    assert.equal(relax.needsFlush, false);
    // unmap: must name the page start
    assertUnchanged(
      pt,
      () => pt.unmap(c.va + 8n),
      /is inside a .* page that starts at/,
    );
    const u = pt.unmap(c.va);
    assert.equal(u.kind, "remove");
    assert.equal(u.needsFlush, true);
    assert.equal([...pt.mappings()].length, 0);
    const nf = pt.walk(c.va);
    assert.equal(nf.outcome.kind, "page-fault");
    assert.equal(
      nf.outcome.kind === "page-fault" && nf.outcome.reason,
      "not-present",
    );
    assertUnchanged(pt, () => pt.unmap(c.va), /nothing is mapped there/);
    assertUnchanged(
      pt,
      () => pt.protect(c.va, { writable: true }),
      /nothing is mapped there/,
    );
    // the slot can be mapped again
    pt.map(c.va, c.pa, { size: c.size });
    assert.equal(pt.lookup(c.va).pa, c.pa);
  });
}

Deno.test("overlaps give clear RangeErrors and leave the table unchanged", () => {
  const pt = table();
  pt.map(0x4000_0000, 0x1_0000_0000, { size: 2 * MiB });
  pt.map(0x4020_3000, 0x5000);
  pt.map(0x8000_0000, 0x4000_0000, { size: GiB });
  assertUnchanged(
    pt,
    () => pt.map(0x4000_0000, 0x2000_0000, { size: 2 * MiB }),
    /already mapped to 0x100000000 by PDE at 0x[0-9a-f]+/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x4010_0000, 0x9000),
    /lies inside a 2 MiB page already mapped by PDE/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x9234_5000, 0x9000),
    /lies inside a 1 GiB page already mapped by PDPTE/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x4020_3000, 0x6000),
    /already mapped to 0x5000 by PTE/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x4020_0000, 0x20_0000, { size: 2 * MiB }),
    /1 smaller mapping\(s\) already exist inside it/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x4000_0000, 0, { size: GiB }),
    /2 smaller mapping|already exist/,
  );
});

Deno.test("misalignment, bad sizes and frames out of reach: RangeErrors, table unchanged", () => {
  const pt = table();
  pt.map(0x1000, 0x1000);
  const before = state(pt);
  assertUnchanged(
    pt,
    () => pt.map(0x20_1000, 0x40_0000, { size: 2 * MiB }),
    /misaligned for a 2 MiB page/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x20_0000, 0x40_1000, { size: 2 * MiB }),
    /misaligned for a 2 MiB page \(both addresses must be multiples of 0x200000\)/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x2800, 0x3000),
    /misaligned for a 4 KiB page/,
  );
  assertUnchanged(pt, () => pt.map(0x3000, 0x3800), /misaligned/);
  assertUnchanged(
    pt,
    () => pt.map(0x4000_0000, 0, { size: 4 * MiB }),
    /page size 4194304 is not supported by x86-64 4-level in this mode: expected one of 1 GiB, 2 MiB, 4 KiB/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x4000, 2 ** 52),
    /MAXPHYADDR 52 addresses frames below 0x10000000000000/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x4000, -4096),
    /physical address -4096 is invalid/,
  );
  assertUnchanged(pt, () => pt.map(0x4000, 4096.5), /invalid/);
  assertUnchanged(
    pt,
    () => pt.map("0x0000800000000000", 0x1000),
    /non-canonical for x86-64 4-level/,
  );
  assertUnchanged(
    pt,
    () => pt.map(0x5000, 0x5000, { pkey: 16 }),
    /protection key 16 is invalid/,
  );
  assert.equal(state(pt), before);

  // 1 GiB pages need CPUID support; 4 MiB pages need CR4.PSE
  const noGb = table({ mode: pagingMode(X86_64_4LEVEL, { gbPages: false }) });
  assertUnchanged(
    noGb,
    () => noGb.map(0, 0, { size: GiB }),
    /expected one of 2 MiB, 4 KiB/,
  );
  const noPse = table({ mode: pagingMode(X86_32, { pse: false }) });
  assertUnchanged(
    noPse,
    () => noPse.map(0, 0, { size: 4 * MiB }),
    /expected one of 4 KiB/,
  );
  const pae = table({ format: PAE });
  assertUnchanged(
    pae,
    () => pae.map(0, 0, { size: GiB }),
    /not supported by PAE/,
  );
  // 32-bit: 4 KiB frames below 4 GiB, 4 MiB frames below 2^min(M, 40)
  const x32 = table({ mode: pagingMode(X86_32, { maxPhyAddr: 36 }) });
  assertUnchanged(
    x32,
    () => x32.map(0x1000, 2 ** 32),
    /addresses frames below 0x100000000/,
  );
  assertUnchanged(
    x32,
    () => x32.map(0x40_0000, 2 ** 36, { size: 4 * MiB }),
    /below 0x1000000000/,
  );
  x32.map(0x40_0000, 2 ** 36 - 4 * MiB, { size: 4 * MiB });
  assert.equal(x32.walk(0x40_0123).pa, 2 ** 36 - 4 * MiB + 0x123);
  assertUnchanged(
    x32,
    () => x32.map(2 ** 32, 0),
    /does not fit the 32-bit address space/,
  );
  // XD needs EFER.NXE
  const noNx = table({ mode: pagingMode(X86_64_4LEVEL, { nxe: false }) });
  assertUnchanged(
    noNx,
    () => noNx.map(0x1000, 0x1000, { executable: false }),
    /EFER.NXE = 0/,
  );
  // MAXPHYADDR limits 64-bit frames
  const m36 = table({ mode: pagingMode(X86_64_4LEVEL, { maxPhyAddr: 36 }) });
  assertUnchanged(m36, () => m36.map(0x1000, 2 ** 36), /MAXPHYADDR 36/);
});

Deno.test("a failed map never frees or leaks table frames (bad leaf attributes after an unmap)", () => {
  // Exposed a bug: map() freed the empty page table under a 2 MiB slot and
  // only then rejected the attributes, leaving the PDE pointing at a freed
  // frame that the next allocation handed out again.
  const pt = table();
  pt.map(0x20_0000, 0x5000);
  pt.unmap(0x20_0000); // the PT stays, empty
  assertUnchanged(
    pt,
    () => pt.map(0x20_0000, 0x40_0000, { size: 2 * MiB, pkey: 99 }),
    /protection key 99/,
  );
  pt.map(0x80_0000_0000, 0x9000); // allocates new tables
  assert.deepEqual(
    [...pt.mappings()].map((m) => [m.va.toHex(), m.pa]),
    [["0x8000000000", 0x9000]],
  );
  assert.equal(pt.walk(0x20_0000).outcome.kind, "page-fault");
  // and with nothing there at all: no tables created for a rejected map
  const fresh = table({ mode: pagingMode(X86_64_4LEVEL, { nxe: false }) });
  assertUnchanged(
    fresh,
    () => fresh.map(0x7000_0000_0000, 0x1000, { executable: false }),
    /NXE/,
  );
  assert.equal(fresh.tables().length, 1);
});

Deno.test("a large page may replace an empty table; its frames are freed", () => {
  const pt = table();
  pt.map(0x20_3000, 0x5000);
  const tablesBefore = pt.allocator.allocatedCount;
  pt.unmap(0x20_3000);
  const c = pt.map(0x20_0000, 0x40_0000, { size: 2 * MiB });
  assert.equal(c.kind, "remap", "a table pointer became a leaf");
  assert.equal(c.needsFlush, true);
  assert.equal(pt.allocator.allocatedCount, tablesBefore - 1);
  assert.equal(pt.walk(0x20_3456).pa, 0x40_3456);
});

Deno.test("mapRegions with auto page sizes uses the largest aligned pages", () => {
  const pt = table();
  const n = pt.mapRegions([
    {
      va: GiB - 8 * KiB,
      pa: 3 * GiB - 8 * KiB,
      length: 8 * KiB + GiB + 2 * MiB + 12 * KiB,
      pageSize: "auto",
      label: "kernel",
    },
    {
      va: "0xffff888000000000",
      pa: 0,
      length: 4 * MiB,
      pageSize: "auto",
      writable: false,
    },
    {
      va: 0x7000_0000_0000,
      pa: 0x1000,
      length: 4 * MiB,
      pageSize: "auto",
      user: true,
    },
  ]);
  const ms = [...pt.mappings()];
  assert.equal(n, ms.length);
  const sizes = (lo: bigint, hi: bigint) =>
    ms.filter((m) => m.va.toBigInt() >= lo && m.va.toBigInt() < hi).map((m) =>
      m.size
    );
  assert.deepEqual(sizes(0n, 2n ** 40n), [
    4 * KiB,
    4 * KiB,
    GiB,
    2 * MiB,
    4 * KiB,
    4 * KiB,
    4 * KiB,
  ]);
  assert.deepEqual(sizes(0xffff_8000_0000_0000n, 2n ** 64n), [
    2 * MiB,
    2 * MiB,
  ]);
  // pa only 4 KiB aligned: all 4 KiB pages
  assert.deepEqual(
    new Set(sizes(0x7000_0000_0000n, 0x7001_0000_0000n)),
    new Set([4 * KiB]),
  );
  assert.equal(sizes(0x7000_0000_0000n, 0x7001_0000_0000n).length, 1024);
  // contiguous translation across page-size boundaries
  for (
    const off of [
      0,
      8 * KiB - 1,
      8 * KiB,
      GiB + 8 * KiB - 1,
      GiB + 8 * KiB,
      GiB + 2 * MiB + 8 * KiB + 5,
    ]
  ) {
    assert.equal(
      pt.lookup(GiB - 8 * KiB + off).pa,
      3 * GiB - 8 * KiB + off,
      `offset ${off}`,
    );
  }
  assert.equal(
    pt.walk("0xffff888000001000", { kind: "write" }).outcome.kind,
    "page-fault",
  );
  // fixed page sizes
  const pt2 = table();
  assert.equal(
    pt2.mapRegions([{ va: 0, pa: 0, length: 8 * MiB, pageSize: 2 * MiB }]),
    4,
  );
  assert.equal(pt2.mapRegions([]), 0);
});

Deno.test("mapRegions validates everything first: all or nothing", () => {
  const pt = table();
  pt.map(0x40_1000, 0x5000); // an existing 4 KiB page inside 0x400000..0x600000
  pt.map(0x8000_0000, 0, { size: GiB });
  const good = {
    va: 0,
    pa: 0x100_0000,
    length: 2 * MiB,
    pageSize: "auto" as const,
    label: "ok",
  };
  const cases: [string, Parameters<PageTable["mapRegions"]>[0], RegExp][] = [
    [
      "mutual overlap",
      [good, { va: MiB, pa: 0, length: 2 * MiB, label: "b" }],
      /regions overlap at 0x100000 \(b\) and ok/,
    ],
    ["existing page at the start", [good, {
      va: 0x40_1000,
      pa: 0,
      length: 4 * KiB,
    }], /overlaps an existing mapping at 0x401000/],
    ["inside an existing large page", [good, {
      va: 0x8000_1000,
      pa: 0,
      length: 4 * KiB,
    }], /overlaps an existing mapping/],
    // (exposed a bug: only the first address of each planned page was checked)
    ["existing page inside a planned large page", [good, {
      va: 0x40_0000,
      pa: 0x20_0000,
      length: 2 * MiB,
      pageSize: "auto",
      label: "big",
    }], /region big overlaps an existing mapping at 0x400000/],
    // (exposed a bug: attributes and frames were only checked while writing)
    ["bad attribute in a later region", [good, {
      va: 0x100_0000,
      pa: 0,
      length: 4 * KiB,
      pkey: 77,
    }], /protection key 77/],
    ["negative frame in a later region", [good, {
      va: 0x100_0000,
      pa: -4096,
      length: 4 * KiB,
    }], /physical address -4096 is invalid/],
    ["frame beyond MAXPHYADDR in a later region", [good, {
      va: 0x100_0000,
      pa: 2 ** 52 - 4096,
      length: 8 * KiB,
    }], /invalid|MAXPHYADDR|below/],
    ["length not a page multiple", [good, {
      va: 0x100_0000,
      pa: 0,
      length: 100,
    }], /length 100 is invalid/],
    ["length not a multiple of the page size", [good, {
      va: 0x100_0000,
      pa: 0,
      length: 4 * KiB,
      pageSize: 2 * MiB,
    }], /not a multiple of its page size 2 MiB/],
    ["misaligned fixed size", [good, {
      va: 0x101_0000,
      pa: 0,
      length: 2 * MiB,
      pageSize: 2 * MiB,
    }], /misaligned for 2 MiB pages/],
    ["unsupported page size", [good, {
      va: 0x100_0000,
      pa: 0,
      length: 4 * MiB,
      pageSize: 4 * MiB,
    }], /not supported/],
    [
      "non-canonical",
      [good, { va: "0x800000000000", pa: 0, length: 4096 }],
      /non-canonical/,
    ],
    // (exposed a bug: a region crossing the canonical hole was written up to
    // the hole, and one running past 2^64 wrapped around to address 0)
    ["across the canonical hole", [good, {
      va: "0x7ffffffff000",
      pa: 0,
      length: 8 * KiB,
    }], /runs past the end of its part of the 48-bit address space/],
    ["wrapping past 2^64", [good, {
      va: "0xfffffffffffff000",
      pa: 0,
      length: 8 * KiB,
    }], /runs past the end/],
    ["longer than the address space", [good, {
      va: 0x100_0000,
      pa: 0,
      length: 2 ** 60,
    }], /runs past the end/],
  ];
  for (const [what, regions, re] of cases) {
    const before = state(pt);
    assert.throws(() => pt.mapRegions(regions), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${what}: ${e}`);
      assert.match(e.message, re, what);
      return true;
    });
    assert.equal(state(pt), before, `${what}: the table changed`);
  }
  assert.equal(pt.mapRegions([good]), 1);
  const pae = table({ format: PAE });
  assert.throws(
    () => pae.mapRegions([{ va: 0xffff_f000, pa: 0, length: 8 * KiB }]),
    /runs past the end of its part of the 32-bit address space/,
  );
  assert.equal([...pae.mappings()].length, 0);
});

Deno.test("writeEntry classifies every change and says when a flush is needed", () => {
  const pt = table();
  const seen: EntryChange[] = [];
  const off = pt.onEntryWrite((c) => seen.push(c));
  pt.map(0x7000_0000_1000, 0x5000, { user: true });
  // PML4E, PDPTE, PDE installed on the way, then the PTE
  assert.deepEqual(seen.map((c) => [c.level, c.kind, c.needsFlush]), [
    [4, "install", false],
    [3, "install", false],
    [2, "install", false],
    [1, "install", false],
  ]);
  assert.equal(seen[0].va.toHex(), "0x700000000000");
  assert.equal(seen[0].span, 2 ** 39);
  assert.equal(seen[3].old, 0n);
  assert.equal(hexEntry(seen[3].new), "0x5007");
  const pte = seen[3].entryAddress;
  const va = LinearAddress.from(0x7000_0000_1000);
  const W = (lo: number, hi = 0) => pt.writeEntry(1, pte, lo, hi, va);
  const cases: [number, number, string, boolean][] = [
    [0x5007, 0, "none", false],
    [0x5027, 0, "flags", false], // A 0 → 1 only
    [0x5067, 0, "flags", false], // D 0 → 1 only
    [0x5027, 0, "flags", true], // D 1 → 0
    [0x5127, 0, "flags", true], // G
    [0x5137, 0, "flags", true], // PCD
    [0x5125, 0, "restrict", true], // R/W 1 → 0
    [0x5121, 0, "restrict", true], // U/S 1 → 0
    [0x5121, 0x8000_0000, "restrict", true], // XD 0 → 1
    [0x5127, 0, "relax", false], // R/W, U/S 1 and XD 0 again
    [0x5123, 0x8000_0000, "restrict", true], // U/S off, XD on
    [0x5127, 0x0800_0000, "relax", false], // key 1: rights as before the restrict
    [0x5127, 0, "flags", true], // protection key changed
    [0x6127, 0, "remap", true],
    [0x6127, 1, "remap", true],
    [0, 0, "remove", true],
    [0x1234_0000, 0, "flags", false], // not present → not present: never cached
    [0x6007, 0, "install", false],
  ];
  for (const [lo, hi, kind, flush] of cases) {
    const c = W(lo, hi);
    assert.equal(c.kind, kind, `${hexEntry(c.old)} → ${hexEntry(c.new)}`);
    assert.equal(
      c.needsFlush,
      flush,
      `${hexEntry(c.old)} → ${hexEntry(c.new)}`,
    );
    assert.equal(c.new, (BigInt(hi) << 32n) | BigInt(lo));
  }
  assert.equal(seen.length, 4 + cases.length);
  off();
  pt.protect(0x7000_0000_1000, { writable: false });
  assert.equal(seen.length, 4 + cases.length, "unsubscribed");
  assert.equal(pt.entryWrites, 4 + cases.length + 1);
  // a PDE table pointer pointing elsewhere is a remap too
  const pde = pt.writeEntry(2, 0, 0, 0, va);
  assert.equal(pde.level, 2);
});

Deno.test("protect changes exactly the requested attributes", () => {
  const pt = table();
  pt.map(0x1000, 0x2000, {
    user: true,
    writable: false,
    executable: false,
    global: true,
    pkey: 5,
    pcd: true,
  });
  const c = pt.protect(0x1000, { pkey: 7 });
  assert.equal(c.kind, "flags");
  const m = [...pt.mappings()][0];
  assert.deepEqual(
    { ...m.flags },
    {
      present: true,
      writable: false,
      user: true,
      pwt: false,
      pcd: true,
      accessed: false,
      dirty: false,
      global: true,
      noExec: true,
      pkey: 7,
      address: 0x2000,
    },
  );
  assertUnchanged(
    pt,
    () => pt.protect(0x1000, { pkey: -1 }),
    /protection key -1/,
  );
});

Deno.test("mappings() sign-extends kernel addresses and lists leaves in address order", () => {
  const pt = table();
  pt.map("0xffff888000000000", 0x4000_0000, { size: 2 * MiB });
  pt.map("0xffffffffffe00000", 0x20_0000, { size: 2 * MiB });
  pt.map(0x7fff_ffff_f000, 0x3000);
  pt.map(0, 0x1000);
  const ms = [...pt.mappings()];
  assert.deepEqual(ms.map((m) => m.va.toHex()), [
    "0x0",
    "0x7ffffffff000",
    "0xffff888000000000",
    "0xffffffffffe00000",
  ]);
  assert.equal(ms[2].va.hi, 0xffff8880);
  const p5 = table({ format: X86_64_5LEVEL });
  p5.map("0xff80000000000000", 0x1000);
  p5.map("0x00ff000000000000", 0x2000);
  assert.deepEqual([...p5.mappings()].map((m) => m.va.toHex()), [
    "0xff000000000000",
    "0xff80000000000000",
  ]);
  // 32-bit and PAE addresses are never sign-extended
  const p32 = table({ format: X86_32 });
  p32.map(0xffc0_0000, 0, { size: 4 * MiB });
  assert.equal([...p32.mappings()][0].va.toHex(), "0xffc00000");
  const pae = table({ format: PAE });
  pae.map(0xffff_f000, 0x1000);
  assert.equal([...pae.mappings()][0].va.toHex(), "0xfffff000");
});

Deno.test("tables(), encodeTable/encodeLeaf and the constructor's checks", () => {
  const pt = table({ format: PAE });
  pt.map(0xc000_0000, 0x1000);
  const ts = pt.tables();
  assert.deepEqual(ts.map((t) => [t.level, t.present]), [[3, 1], [2, 1], [
    1,
    1,
  ]]);
  assert.deepEqual(encodeTable(pagingMode(PAE), 3, 0x5000), [0x5001, 0]);
  assert.deepEqual(encodeTable(pagingMode(X86_64_4LEVEL), 4, 0x5000), [
    0x5007,
    0,
  ]);
  assert.deepEqual(encodeLeaf(pagingMode(X86_32), 2, 0x1_0040_0000, {}), [
    0x0040_2083,
    0,
  ]);
  assert.deepEqual(
    encodeLeaf(pagingMode(X86_64_4LEVEL), 1, 0x1000, { pkey: 15 }),
    [0x1003, 0x7800_0000],
  );
  const mem = new PhysicalMemory({ size: 1 << 20 });
  assert.throws(
    () =>
      new PageTable(mem, {
        allocator: new FrameAllocator(new PhysicalMemory({ size: 1 << 20 })),
      }),
    /different memory/,
  );
  assert.throws(() => new PageTable(mem, { root: 0x1010 }), /misaligned/);
  assert.throws(
    () => new PageTable(mem, { format: PAE, root: 0x1010 }),
    /misaligned for PAE/,
  );
  assert.equal(new PageTable(mem, { format: PAE, root: 0x1020 }).root, 0x1020);
  // a 32-bit table cannot live above 4 GiB
  const high = new PhysicalMemory({ size: 2 ** 33 });
  assert.throws(
    () =>
      new PageTable(high, {
        format: X86_32,
        allocator: new FrameAllocator(high, { start: 2 ** 32 }),
      }),
    /above the physical limit/,
  );
});

Deno.test("builder on the OSTEP geometry: 32-byte tables from a 4 KiB memory", () => {
  const mem = new PhysicalMemory({ size: 4096 });
  const pt = new PageTable(mem, { format: OSTEP_15BIT });
  assert.equal(pt.root, 0);
  pt.map(0x611c & ~31, 53 * 32);
  assert.equal(pt.walk(0x611c).pa, 53 * 32 + 28);
  assert.equal(mem.read8(0 + 24), 0x80 | 1, "PDE 24 → PT in frame 1");
  assert.equal(mem.read8(32 + 8), 0x80 | 53);
  assert.throws(() => pt.map(0x20, 128 * 32), /addresses frames below 0x1000/);
  assert.throws(() => pt.map(0x8000, 0), /15-bit address space/);
  assert.throws(() => pt.map(0x40, 0, { size: 1024 }), /not supported/);
});
