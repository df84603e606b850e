// Tests for builder/record behaviour added after review: the shared default
// allocator, region labels, mode-aware listings and PKRU in walk records.
import assert from "node:assert/strict";
import {
  decodeModeEntry,
  PAE,
  PageTable,
  pageTableToHtml,
  pagingMode,
  PhysicalMemory,
  X86_32,
  X86_64_4LEVEL,
} from "../mod.ts";

Deno.test("two page tables in one memory never share frames", () => {
  const m = new PhysicalMemory({ size: 2 ** 30 });
  const a = new PageTable(m);
  const b = new PageTable(m);
  a.map(0x40_0000, 0x1000_0000, { user: true });
  b.map(0x40_0000, 0x2000_0000, { user: true });
  const fa = new Set(a.tables().map((t) => t.address));
  for (const t of b.tables()) {
    assert.ok(!fa.has(t.address), `frame ${t.address} shared`);
  }
  assert.equal(a.walk(0x40_0010).pa, 0x1000_0010);
  assert.equal(b.walk(0x40_0010).pa, 0x2000_0010);
  assert.throws(
    () =>
      new PageTable(m, {
        format: { ...X86_64_4LEVEL, pageShift: 13 } as never,
      }),
    RangeError,
  );
});

Deno.test("mapRegions keeps labels and the HTML view shows them escaped", () => {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 26 }), {
    format: X86_32,
  });
  pt.mapRegions([
    { va: 0x0804_8000, pa: 0x10_0000, length: 0x2000, label: "code <x>" },
    { va: 0x0805_0000, pa: 0x20_0000, length: 0x1000 },
  ]);
  assert.deepEqual(pt.regions.map((r) => r.label), ["code <x>"]);
  const html = pageTableToHtml(pt);
  assert.match(html, /code &lt;x&gt;/);
  assert.doesNotMatch(html, /code <x>/);
});

Deno.test("listings do not follow entries with reserved bits; the walker faults there", () => {
  const m = new PhysicalMemory({ size: 2 ** 30 });
  const pt = new PageTable(m, {
    mode: pagingMode(X86_64_4LEVEL, { maxPhyAddr: 40 }),
  });
  pt.map(0x40_0000, 0x5000_0000);
  pt.map(0x40_1000, 0x5000_1000);
  // Set bit 45 (above MAXPHYADDR 40) in the PDE that covers both pages ...
  const pde = pt.walk(0x40_1000, { setAD: false }).steps[2];
  assert.equal(pde.entryName, "PDE");
  m.write32(pde.entryAddress + 4, (Number(pde.entry >> 32n) | (1 << 13)) >>> 0);
  // ... both now fault with RSVD, and the listing agrees: nothing mapped.
  const w = pt.walk(0x40_0000);
  assert.equal(w.outcome.kind, "page-fault");
  if (w.outcome.kind === "page-fault") {
    assert.equal(w.outcome.errorCode.rsvd, true);
  }
  assert.deepEqual([...pt.mappings()], []);
  assert.throws(() => pt.map(0x40_2000, 0x5000_2000), /reserved bits/);
  const e = decodeModeEntry(
    pt.mode,
    2,
    Number(pde.entry & 0xffffffffn),
    1 << 13,
  );
  assert.equal(e.reserved, true);
});

Deno.test("PAE PDPTEs decode without rights; 32-bit PSE=0 ignores PS", () => {
  const e = decodeModeEntry(pagingMode(PAE), 3, 0x1001, 0);
  assert.equal(e.present, true);
  assert.equal("writable" in e, false);
  assert.equal("user" in e, false);
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 26 }), {
    mode: pagingMode(X86_32, { pse: false }),
  });
  pt.map(0x40_1000, 0x5000);
  // set PS in the PDE by hand: ignored with CR4.PSE = 0
  const pdeAddr = pt.walk(0x40_1000, { setAD: false }).steps[0].entryAddress;
  pt.memory.write32(pdeAddr, pt.memory.read32(pdeAddr) | 0x80);
  assert.equal(pt.walk(0x40_1abc).pa, 0x5abc);
  assert.deepEqual([...pt.mappings()].map((x) => [x.va.toHex(), x.pa]), [[
    "0x401000",
    0x5000,
  ]]);
});

Deno.test("walk records keep PKRU; pkey faults set PK", () => {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }), {
    mode: pagingMode(X86_64_4LEVEL, { pke: true }),
  });
  pt.map(0x40_0000, 0x9000, { user: true, pkey: 3 });
  const pkru = 0b10 << (2 * 3); // WD for key 3
  const w = pt.walk(0x40_0000, { kind: "write", user: true, pkru });
  assert.equal(w.pkru, pkru);
  assert.equal(w.outcome.kind, "page-fault");
  if (w.outcome.kind === "page-fault") {
    assert.equal(w.outcome.errorCode.pk, true);
    assert.equal(w.outcome.reason, "pkey");
  }
  assert.equal(pt.walk(0x40_0000, { kind: "read", user: true, pkru }).ok, true);
});
