/**
 * Tests of lib/protect: descriptor and selector codecs (round-trip
 * properties), segment loads over rings × RPL × DPL, limit and type checks
 * at the boundary offsets, far transfers and interrupts, the ring →
 * user/supervisor rule of paging, and Xen's protection on 32-bit (segment
 * limits, check_descriptor) and x86-64 (separate page tables, the
 * system-call bounce). Intel SDM Vol. 3 ch. 3, 5, §4.6.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkAccess,
  checkDescriptor,
  decodeDescriptor,
  decodeGate,
  describeSegment,
  DescriptorTable,
  effectiveLimit,
  encodeDescriptor,
  gateDescriptor,
  makeSelector,
  parseSelector,
  Segmentation,
  segmentDescriptor,
  type SegmentOptions,
  XEN32,
  xen32Layout,
  xen64Layout,
} from "../lib/protect/mod.ts";
import { PhysicalMemory } from "../lib/memory/memory.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { X86_32 } from "../lib/paging/format.ts";
import { Cpu } from "../lib/cpu/cpu.ts";
import {
  descriptorTableToHtml,
  protectionRecordToHtml,
  xen32LayoutSvg,
} from "../lib/view/protect_html.ts";

const params = (seed: number, numRuns = 300) => ({
  seed,
  numRuns,
  endOnFailure: true,
});

// ---- codecs -----------------------------------------------------------

Deno.test("selectors decode index, TI, RPL and null", () => {
  const cases: [number, number, "gdt" | "ldt", number, boolean][] = [
    [0x0000, 0, "gdt", 0, true],
    [0x0003, 0, "gdt", 3, true],
    [0x0004, 0, "ldt", 0, false],
    [0x0008, 1, "gdt", 0, false],
    [0x000f, 1, "ldt", 3, false],
    [0xe019, 0x1c03, "gdt", 1, false],
    [0xffff, 0x1fff, "ldt", 3, false],
  ];
  for (const [v, index, table, rpl, isNull] of cases) {
    const s = parseSelector(v);
    assert.deepEqual([s.index, s.table, s.rpl, s.isNull], [
      index,
      table,
      rpl,
      isNull,
    ], `selector 0x${v.toString(16)}`);
    assert.equal(makeSelector(index, { ldt: table === "ldt", rpl }), v);
  }
  assert.throws(() => parseSelector(-1), RangeError);
  assert.throws(() => makeSelector(0x2000), /selector index 8192/);
});

Deno.test("descriptor codec: decode∘encode and encode∘decode are identities (property)", () => {
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  fc.assert(
    fc.property(u32, u32, (lo, hi) => {
      assert.deepEqual(encodeDescriptor(decodeDescriptor(lo, hi)), [lo, hi]);
    }),
    params(31),
  );
  const fields = fc.record({
    base: u32,
    limit: fc.integer({ min: 0, max: 0xfffff }),
    type: fc.integer({ min: 0, max: 15 }),
    s: fc.boolean(),
    dpl: fc.integer({ min: 0, max: 3 }),
    present: fc.boolean(),
    avl: fc.boolean(),
    l: fc.boolean(),
    db: fc.boolean(),
    g: fc.boolean(),
  });
  fc.assert(
    fc.property(fields, (f) => {
      const [lo, hi] = encodeDescriptor(f);
      assert.deepEqual(decodeDescriptor(lo, hi), { ...f });
    }),
    params(32),
  );
});

Deno.test("descriptor codec: known values and field positions", () => {
  // Linux/Xen flat segments
  assert.deepEqual(segmentDescriptor({ kind: "code", dpl: 0 }), [
    0x0000ffff,
    0x00cf9a00,
  ]);
  assert.deepEqual(segmentDescriptor({ kind: "data", dpl: 3 }), [
    0x0000ffff,
    0x00cff200,
  ]);
  const d = decodeDescriptor(
    ...encodeDescriptor({
      base: 0x12345678,
      limit: 0xabcde,
      type: 0x6,
      s: true,
      dpl: 2,
      present: true,
      avl: true,
      l: false,
      db: false,
      g: false,
    }),
  );
  assert.equal(d.base, 0x12345678);
  const [lo, hi] = encodeDescriptor(d);
  assert.equal(lo >>> 16, 0x5678); // base 15:0
  assert.equal(hi & 0xff, 0x34); // base 23:16
  assert.equal(hi >>> 24, 0x12); // base 31:24
  assert.equal(lo & 0xffff, 0xbcde); // limit 15:0
  assert.equal((hi >>> 16) & 0xf, 0xa); // limit 19:16
  const info = describeSegment(d);
  assert.deepEqual(
    [info.kind, info.writable, info.expandDown, info.effectiveLimit],
    ["data", true, true, 0xabcde],
  );
  assert.equal(effectiveLimit({ limit: 0, g: true }), 0xfff);
  assert.equal(effectiveLimit({ limit: 0xfffff, g: true }), 0xffffffff);
  const g = decodeGate(
    ...gateDescriptor({
      gate: "call",
      selector: 0x1b,
      offset: 0x8000_1234,
      dpl: 3,
      paramCount: 5,
    }),
  )!;
  assert.deepEqual(
    [g.gate, g.selector, g.offset, g.dpl, g.paramCount],
    ["call", 0x1b, 0x8000_1234, 3, 5],
  );
  assert.throws(() => segmentDescriptor({ kind: "data", dpl: 4 }), /DPL 4/);
  assert.throws(
    () => segmentDescriptor({ kind: "stack" as "data" }),
    /"stack"/,
  );
});

// ---- a small machine ---------------------------------------------------

/** GDT: 1..4 code rings 0..3, 5..8 data rings 0..3, then test entries from 16. */
function machine(options: { ldt?: boolean } = {}) {
  const memory = new PhysicalMemory({ size: 1 << 24 });
  const gdt = new DescriptorTable(memory, {
    base: 0xf0_0000,
    limit: 64 * 8 - 1,
  });
  for (let ring = 0; ring < 4; ring++) {
    gdt.write(1 + ring, ...segmentDescriptor({ kind: "code", dpl: ring }));
    gdt.write(5 + ring, ...segmentDescriptor({ kind: "data", dpl: ring }));
  }
  const ldt = options.ldt
    ? new DescriptorTable(memory, {
      base: 0xf1_0000,
      limit: 4 * 8 - 1,
      kind: "ldt",
    })
    : undefined;
  const idt = new DescriptorTable(memory, {
    base: 0xf2_0000,
    limit: 256 * 8 - 1,
    kind: "idt",
  });
  const seg = new Segmentation({
    gdt,
    ldt,
    idt,
    tss: {
      ss0: makeSelector(5),
      esp0: 0x9000,
      ss1: makeSelector(6, { rpl: 1 }),
      esp1: 0x8000,
      ss2: makeSelector(7, { rpl: 2 }),
      esp2: 0x7000,
    },
  });
  const enter = (ring: number) =>
    seg.enter(ring, {
      cs: makeSelector(1 + ring, { rpl: ring }),
      ss: makeSelector(5 + ring, { rpl: ring }),
    });
  return { memory, gdt, ldt, idt, seg, enter };
}

Deno.test("data segment loads: ok iff max(CPL, RPL) ≤ DPL, over all rings, RPLs and DPLs", () => {
  const { seg, enter } = machine();
  for (let cpl = 0; cpl < 4; cpl++) {
    for (let rpl = 0; rpl < 4; rpl++) {
      for (let dpl = 0; dpl < 4; dpl++) {
        enter(cpl);
        const sel = makeSelector(5 + dpl, { rpl });
        const r = seg.load("DS", sel);
        const want = Math.max(cpl, rpl) <= dpl;
        assert.equal(r.ok, want, `CPL ${cpl} RPL ${rpl} DPL ${dpl}`);
        if (!want) {
          assert.equal(
            r.outcome.kind === "fault" && r.outcome.exception,
            "#GP",
          );
          assert.equal(
            r.outcome.kind === "fault" && r.outcome.errorCode,
            sel & 0xfffc,
          );
          assert.equal(r.stoppedBy?.name, "privilege");
        } else {
          assert.equal(seg.register("DS").selector, sel);
        }
      }
    }
  }
});

Deno.test("stack segment loads: ok iff RPL = CPL = DPL and writable", () => {
  const { seg, enter, gdt } = machine();
  gdt.write(
    16,
    ...segmentDescriptor({ kind: "data", dpl: 2, writable: false }),
  );
  for (let cpl = 0; cpl < 4; cpl++) {
    for (let rpl = 0; rpl < 4; rpl++) {
      for (let dpl = 0; dpl < 4; dpl++) {
        enter(cpl);
        const r = seg.load("SS", makeSelector(5 + dpl, { rpl }));
        assert.equal(
          r.ok,
          rpl === cpl && dpl === cpl,
          `CPL ${cpl} RPL ${rpl} DPL ${dpl}`,
        );
      }
    }
  }
  enter(2);
  const ro = seg.load("SS", makeSelector(16, { rpl: 2 }));
  assert.equal(ro.stoppedBy?.name, "type");
  const nul = seg.load("SS", 0);
  assert.equal(nul.outcome.kind === "fault" && nul.outcome.errorCode, 0);
  assert.equal(nul.stoppedBy?.name, "null selector");
});

Deno.test("segment loads: null, out-of-table, LDT vs GDT, types, not present", () => {
  const { seg, enter, gdt, ldt } = machine({ ldt: true });
  gdt.write(
    16,
    ...segmentDescriptor({ kind: "code", dpl: 0, readable: false }),
  );
  gdt.write(
    17,
    ...segmentDescriptor({ kind: "code", dpl: 0, conforming: true }),
  );
  gdt.write(18, ...segmentDescriptor({ kind: "data", dpl: 3, present: false }));
  gdt.write(19, ...gateDescriptor({ gate: "call", selector: 8, dpl: 3 }));
  ldt!.write(
    1,
    ...segmentDescriptor({ kind: "data", dpl: 3, base: 0x5000, limit: 0xfff }),
  );
  const noLdt = machine().seg;
  noLdt.enter(3, { cs: makeSelector(4, { rpl: 3 }) });
  enter(3);
  type Row = [string, number, string | null, string | null];
  const rows: Row[] = [
    // [what, selector, exception or null, failing check]
    ["null into DS", 0, null, null],
    ["null with RPL 3", 3, null, null],
    ["past the GDT limit", makeSelector(64, { rpl: 3 }), "#GP", "table limit"],
    ["execute-only code", makeSelector(16, { rpl: 3 }), "#GP", "type"],
    [
      "conforming readable code, DPL 0",
      makeSelector(17, { rpl: 3 }),
      null,
      null,
    ],
    ["not present", makeSelector(18, { rpl: 3 }), "#NP", "present"],
    ["call gate into DS", makeSelector(19, { rpl: 3 }), "#GP", "type"],
    ["LDT entry 1", makeSelector(1, { ldt: true, rpl: 3 }), null, null],
    [
      "LDT entry 4 past its limit",
      makeSelector(4, { ldt: true, rpl: 3 }),
      "#GP",
      "table limit",
    ],
  ];
  for (const [what, sel, exc, check] of rows) {
    const r = seg.load("DS", sel);
    assert.equal(r.ok, exc === null, what);
    if (exc !== null) {
      assert.equal(
        r.outcome.kind === "fault" && r.outcome.exception,
        exc,
        what,
      );
      assert.equal(
        r.outcome.kind === "fault" && r.outcome.errorCode,
        sel & 0xfffc,
        what,
      );
      assert.equal(r.stoppedBy?.name, check, what);
    }
  }
  assert.equal(seg.register("DS").descriptor?.base, 0x5000); // last ok load was the LDT one
  const r = noLdt.load("DS", makeSelector(1, { ldt: true, rpl: 3 }));
  assert.equal(r.stoppedBy?.name, "table limit");
  assert.match(r.outcome.kind === "fault" ? r.outcome.message : "", /LDT/);
  // the failed loads changed nothing; a successful one sets the accessed bit
  assert.equal((ldt!.read(1)![1] >>> 8) & 1, 1);
  assert.equal((gdt.read(18)![1] >>> 8) & 1, 0);
  const ss = seg.load("SS", makeSelector(18, { rpl: 3 }));
  assert.equal(ss.outcome.kind === "fault" && ss.outcome.exception, "#SS");
});

// ---- limit and type checks ---------------------------------------------

Deno.test("limit checks at the boundaries: expand-up, expand-down, G bit, B bit, SS", () => {
  const { seg, enter, gdt } = machine();
  type Row = [string, SegmentOptions, number, number, boolean];
  const rows: Row[] = [
    ["up, byte limit 0xfff", { kind: "data", limit: 0xfff }, 0xfff, 1, true],
    ["up, limit + 1", { kind: "data", limit: 0xfff }, 0x1000, 1, false],
    [
      "up, dword ending at the limit",
      { kind: "data", limit: 0xfff },
      0xffc,
      4,
      true,
    ],
    [
      "up, dword crossing the limit",
      { kind: "data", limit: 0xfff },
      0xffd,
      4,
      false,
    ],
    [
      "up, G = 1 raw 0 → 0xfff",
      { kind: "data", limit: 0xfff, g: true },
      0xfff,
      1,
      true,
    ],
    [
      "up, G = 1 limit + 1",
      { kind: "data", limit: 0xfff, g: true },
      0x1000,
      1,
      false,
    ],
    ["up, G = 1 0x1fff", { kind: "data", limit: 0x1fff }, 0x1fff, 1, true],
    ["up, 4 GiB", { kind: "data" }, 0xffffffff, 1, true],
    [
      "down, at the limit",
      { kind: "data", limit: 0xfff, expandDown: true },
      0xfff,
      1,
      false,
    ],
    [
      "down, limit + 1",
      { kind: "data", limit: 0xfff, expandDown: true },
      0x1000,
      1,
      true,
    ],
    [
      "down B = 1, top",
      { kind: "data", limit: 0xfff, expandDown: true },
      0xfffffffc,
      4,
      true,
    ],
    [
      "down B = 1, past the top",
      { kind: "data", limit: 0xfff, expandDown: true },
      0xfffffffd,
      4,
      false,
    ],
    [
      "down B = 0, 0xffff",
      { kind: "data", limit: 0xfff, expandDown: true, db: false },
      0xffff,
      1,
      true,
    ],
    [
      "down B = 0, 0x10000",
      { kind: "data", limit: 0xfff, expandDown: true, db: false },
      0x10000,
      1,
      false,
    ],
    [
      "down G = 1, limit 0x1fff",
      { kind: "data", limit: 0x1fff, expandDown: true, g: true },
      0x1fff,
      1,
      false,
    ],
    [
      "down G = 1, 0x2000",
      { kind: "data", limit: 0x1fff, expandDown: true, g: true },
      0x2000,
      1,
      true,
    ],
  ];
  for (const [what, opts, offset, size, ok] of rows) {
    gdt.write(16, ...segmentDescriptor({ ...opts, dpl: 0, base: 0x1000 }));
    enter(0);
    assert.equal(seg.load("ES", makeSelector(16)).ok, true, what);
    const r = checkAccess({ segmentation: seg }, offset, { sreg: "ES", size });
    assert.equal(r.ok, ok, what);
    if (ok) {
      assert.equal(
        r.outcome.kind === "ok" && r.outcome.linear,
        (0x1000 + offset) >>> 0,
        what,
      );
    } else {
      assert.equal(r.stoppedBy?.name, "limit", what);
      assert.equal(
        r.outcome.kind === "fault" && r.outcome.exception,
        "#GP",
        what,
      );
    }
  }
  // through SS the limit fault is #SS(0)
  gdt.write(17, ...segmentDescriptor({ kind: "data", dpl: 0, limit: 0xfff }));
  enter(0);
  assert.equal(seg.load("SS", makeSelector(17)).ok, true);
  const s = checkAccess({ segmentation: seg }, 0x1000, { sreg: "SS" });
  assert.equal(s.outcome.kind === "fault" && s.outcome.exception, "#SS");
});

Deno.test("type checks on use: code is never writable, execute-only is not readable", () => {
  const { seg, enter, gdt } = machine();
  gdt.write(
    16,
    ...segmentDescriptor({ kind: "data", dpl: 0, writable: false }),
  );
  gdt.write(17, ...segmentDescriptor({ kind: "code", dpl: 0, readable: true }));
  gdt.write(
    18,
    ...segmentDescriptor({ kind: "code", dpl: 0, readable: false }),
  );
  type Row = [string, number, "read" | "write" | "fetch", boolean];
  const rows: Row[] = [
    ["read read-only data", 16, "read", true],
    ["write read-only data", 16, "write", false],
    ["read readable code", 17, "read", true],
    ["write readable code", 17, "write", false],
    ["fetch readable code", 17, "fetch", true],
    ["read execute-only code", 18, "read", false],
    ["fetch execute-only code", 18, "fetch", true],
  ];
  for (const [what, index, kind, ok] of rows) {
    enter(0);
    if (kind === "fetch") seg.enter(0, { cs: makeSelector(index) });
    else if (index !== 18) {
      assert.equal(seg.load("DS", makeSelector(index)).ok, true);
    } else seg.enter(0, { cs: makeSelector(index) }); // execute-only: only CS can hold it
    const sreg = kind === "fetch" || index === 18 ? "CS" : "DS";
    const r = checkAccess({ segmentation: seg }, 0x10, { sreg, kind });
    assert.equal(r.ok, ok, what);
    if (!ok) assert.equal(r.stoppedBy?.name, "type", what);
  }
  enter(3);
  seg.load("DS", 0);
  const n = checkAccess({ segmentation: seg }, 0);
  assert.equal(n.stoppedBy?.name, "null selector");
});

// ---- privilege: transfers and interrupts -------------------------------

Deno.test("far JMP/CALL: conforming vs non-conforming, call gates, TSS stack switch", () => {
  const { seg, enter, gdt } = machine();
  gdt.write(
    16,
    ...segmentDescriptor({ kind: "code", dpl: 1, conforming: true }),
  );
  gdt.write(
    17,
    ...gateDescriptor({
      gate: "call",
      selector: makeSelector(1),
      offset: 0x100,
      dpl: 3,
      paramCount: 2,
    }),
  );
  gdt.write(
    18,
    ...gateDescriptor({
      gate: "call",
      selector: makeSelector(1),
      offset: 0x100,
      dpl: 0,
    }),
  );
  // direct non-conforming: only DPL = CPL and RPL ≤ CPL
  for (let cpl = 0; cpl < 4; cpl++) {
    for (let dpl = 0; dpl < 4; dpl++) {
      for (const rpl of [0, 3]) {
        enter(cpl);
        const r = seg.farTransfer("jmp", makeSelector(1 + dpl, { rpl }), 0x10);
        assert.equal(
          r.ok,
          dpl === cpl && rpl <= cpl,
          `jmp CPL ${cpl} DPL ${dpl} RPL ${rpl}`,
        );
        if (r.ok) assert.equal(seg.register("CS").selector & 3, cpl);
      }
    }
    // conforming DPL 1: ok iff DPL ≤ CPL, CPL unchanged
    enter(cpl);
    const c = seg.farTransfer("call", makeSelector(16, { rpl: 3 }));
    assert.equal(c.ok, 1 <= cpl, `conforming at CPL ${cpl}`);
    assert.equal(seg.cpl, cpl);
  }
  // call gate DPL 3 to ring 0 from ring 3: inward, stack from TSS.ss0
  enter(3);
  const g = seg.farTransfer("call", makeSelector(17, { rpl: 3 }));
  assert.equal(g.ok, true);
  assert.equal(seg.cpl, 0);
  assert.equal(seg.register("SS").selector, makeSelector(5));
  assert.ok(g.steps.some((s) => /TSS\.ss0:esp0/.test(s)));
  assert.ok(g.steps.some((s) => /copy 2 parameter/.test(s)));
  // JMP through the same gate to a more privileged non-conforming segment: #GP
  enter(3);
  const j = seg.farTransfer("jmp", makeSelector(17, { rpl: 3 }));
  assert.equal(j.stoppedBy?.name, "DPL");
  assert.equal(seg.cpl, 3);
  // gate DPL 0 from ring 3: #GP(gate selector)
  const d = seg.farTransfer("call", makeSelector(18, { rpl: 3 }));
  assert.equal(d.stoppedBy?.name, "gate DPL");
  assert.equal(
    d.outcome.kind === "fault" && d.outcome.errorCode,
    makeSelector(18),
  );
});

Deno.test("INT n: gate DPL vs CPL, inward transfer through the TSS, hardware skips the DPL check", () => {
  const { seg, enter, idt } = machine();
  idt.write(
    0x80,
    ...gateDescriptor({
      gate: "trap",
      selector: makeSelector(2),
      offset: 0x10,
      dpl: 3,
    }),
  );
  idt.write(
    0x82,
    ...gateDescriptor({
      gate: "interrupt",
      selector: makeSelector(1),
      offset: 0x20,
      dpl: 1,
    }),
  );
  for (let cpl = 0; cpl < 4; cpl++) {
    enter(cpl);
    const r = seg.interrupt(0x82);
    assert.equal(r.ok, cpl <= 1, `INT 0x82 at CPL ${cpl}`);
    if (!r.ok) {
      assert.equal(
        r.outcome.kind === "fault" && r.outcome.errorCode,
        0x82 * 8 + 2,
      );
      assert.equal(r.stoppedBy?.name, "gate DPL");
    } else assert.equal(seg.cpl, 0);
  }
  enter(3);
  const hw = seg.interrupt(0x82, { software: false });
  assert.equal(hw.ok, true);
  enter(3);
  const t = seg.interrupt(0x80);
  assert.equal(t.ok, true);
  assert.equal(seg.cpl, 1);
  assert.equal(seg.register("SS").selector, makeSelector(6, { rpl: 1 }));
  assert.ok(t.steps.some((s) => /TSS\.ss1:esp1 = 0x31:0x8000/.test(s)));
  assert.ok(t.steps.some((s) => /IF unchanged \(trap gate\)/.test(s)));
  enter(0);
  const same = seg.interrupt(0x80); // DPL 1 code from CPL 0: DPL > CPL
  assert.equal(same.stoppedBy?.name, "DPL");
  enter(1);
  const intra = seg.interrupt(0x80);
  assert.ok(intra.steps.some((s) => /same privilege/.test(s)));
  assert.equal(seg.interrupt(0x81).stoppedBy?.name, "gate type"); // empty entry
});

// ---- paging: rings → supervisor / user --------------------------------

Deno.test("paging: CPL 0, 1, 2 are supervisor, CPL 3 is user (SDM §4.6)", () => {
  const { memory, seg, enter } = machine();
  const pt = new PageTable(memory, { format: X86_32 });
  pt.map(0x40_0000, 0x10_0000); // supervisor RW
  pt.map(0x40_1000, 0x10_1000, { user: true, writable: false });
  const cpu = new Cpu(memory, { format: X86_32, cr3: pt.root, wp: true });
  const m = { segmentation: seg, cpu };
  type Row = [number, number, "read" | "write", string | null];
  const rows: Row[] = [];
  for (let ring = 0; ring < 4; ring++) {
    rows.push([ring, 0x40_0000, "read", ring === 3 ? "U/S" : null]);
    rows.push([ring, 0x40_0000, "write", ring === 3 ? "U/S" : null]);
    rows.push([ring, 0x40_1000, "read", null]);
    rows.push([ring, 0x40_1000, "write", "R/W"]); // CR0.WP = 1: supervisor too
    rows.push([ring, 0x40_2000, "read", "present"]);
  }
  for (const [ring, va, kind, stop] of rows) {
    enter(ring);
    seg.load("DS", makeSelector(5 + ring, { rpl: ring }));
    const r = checkAccess(m, va, { kind });
    assert.equal(
      r.stoppedBy?.name,
      stop ?? undefined,
      `ring ${ring} ${kind} 0x${va.toString(16)}`,
    );
    const mode = r.checks.find((c) => c.name === "mode")!;
    assert.match(mode.detail, ring === 3 ? /user/ : /supervisor/);
    if (stop !== null) {
      assert.equal(r.outcome.kind === "fault" && r.outcome.exception, "#PF");
      assert.equal(
        r.outcome.kind === "fault" && (r.outcome.errorCode & 4) !== 0,
        ring === 3,
      );
    }
  }
});

// ---- Xen, 32-bit --------------------------------------------------------

Deno.test("Xen 32-bit: the segment limit stops rings 1 and 3 before paging; Xen itself passes", () => {
  const xen = xen32Layout();
  type Row = [
    "xen" | "guest-kernel" | "guest-user",
    number,
    "read" | "write" | "fetch",
    number,
    string | null,
    string,
  ];
  const rows: Row[] = [
    ["guest-kernel", 0xfc40_0000, "read", 1, "limit", "segmentation"],
    ["guest-kernel", 0xfc3f_fffd, "read", 4, "limit", "segmentation"],
    ["guest-kernel", 0xff00_0000, "fetch", 1, "limit", "segmentation"],
    ["guest-user", 0xfc40_0000, "read", 1, "limit", "segmentation"],
    ["guest-kernel", 0xfc3f_fffc, "read", 4, "present", "paging"], // inside the segment, unmapped
    ["guest-kernel", 0xfc00_0000, "write", 1, "R/W", "paging"], // the read-only M2P
    ["guest-kernel", 0xfc00_0000, "read", 1, null, ""],
    ["guest-user", 0xfc00_0000, "read", 1, "U/S", "paging"],
    ["guest-user", 0xc020_0000, "read", 1, "U/S", "paging"], // guest kernel data
    ["guest-kernel", 0xc020_0000, "write", 4, null, ""],
    ["guest-kernel", 0xc010_0000, "write", 1, "R/W", "paging"], // kernel text is read-only
    ["guest-user", 0x0804_c000, "write", 4, null, ""],
    ["xen", 0xfc40_0000, "read", 4, null, ""],
    ["xen", 0xff00_0000, "fetch", 1, null, ""],
  ];
  for (const [who, va, kind, size, stop, stage] of rows) {
    xen.enter(who);
    const r = xen.access(va, { kind, size });
    const what = `${who} ${kind} ${size} at 0x${va.toString(16)}`;
    assert.equal(r.stoppedBy?.name, stop ?? undefined, what);
    if (stop !== null) {
      assert.equal(r.stoppedBy?.stage, stage, what);
      if (stage === "segmentation") {
        assert.equal(
          r.outcome.kind === "fault" && r.outcome.exception,
          "#GP",
          what,
        );
        assert.equal(r.walk, undefined, `${what}: paging never ran`);
      }
    }
  }
  xen.enter("xen");
  assert.equal(xen.access(0xfc40_0000).pa, 0x70_0000);
  // the book's picture: segments end at the hole
  const book = xen32Layout({ guestSegmentMax: XEN32.HYPERVISOR_VIRT_START });
  book.enter("guest-kernel");
  assert.equal(book.access(0xfc00_0000).stoppedBy?.name, "limit");
  assert.equal(book.access(0xfbff_ffff).stoppedBy?.stage, "paging"); // in the segment, not mapped
  book.enter("xen");
  assert.equal(book.access(0xfc00_0000).ok, true);
});

Deno.test("Xen 32-bit: segment registers and gates keep the guest out of ring 0", () => {
  const xen = xen32Layout();
  const seg = xen.segmentation;
  xen.enter("guest-kernel");
  assert.equal(
    seg.load("DS", XEN32.HYPERVISOR_DS).stoppedBy?.name,
    "privilege",
  );
  assert.equal(seg.load("DS", XEN32.FLAT_RING3_DS).ok, true); // DPL 3 ≥ CPL 1
  xen.enter("guest-user");
  assert.equal(
    seg.load("DS", XEN32.FLAT_RING1_DS).stoppedBy?.name,
    "privilege",
  );
  const hc = seg.interrupt(XEN32.HYPERCALL_VECTOR);
  assert.equal(hc.stoppedBy?.name, "gate DPL");
  const sys = seg.interrupt(0x80); // fast system call straight to ring 1
  assert.equal(sys.ok, true);
  assert.equal(seg.cpl, 1);
  assert.equal(seg.register("SS").selector, XEN32.FLAT_RING1_DS);
  const hc1 = seg.interrupt(XEN32.HYPERCALL_VECTOR); // the guest kernel may
  assert.equal(hc1.ok, true);
  assert.equal(seg.cpl, 0);
  assert.equal(seg.register("SS").selector, XEN32.HYPERVISOR_DS);
});

Deno.test("Xen 32-bit: check_descriptor refuses DPL 0, over-limit G = 0, bad system types; truncates G = 1", () => {
  const xen = xen32Layout();
  const max = XEN32.RO_MPT_VIRT_END;
  type Row = [
    string,
    [number, number],
    "accepted" | "truncated" | "refused",
    RegExp,
  ];
  const rows: Row[] = [
    [
      "DPL 0 data",
      segmentDescriptor({ kind: "data", dpl: 0, limit: 0xfff }),
      "refused",
      /DPL 0/,
    ],
    [
      "DPL 0 but not present",
      segmentDescriptor({ kind: "data", dpl: 0, present: false }),
      "accepted",
      /not present/,
    ],
    [
      "flat 4 GiB ring 1",
      segmentDescriptor({ kind: "data", dpl: 1 }),
      "truncated",
      /0xfc3fffff/,
    ],
    [
      "byte-granular reaching Xen",
      segmentDescriptor({
        kind: "data",
        dpl: 3,
        base: 0xfc38_0000,
        limit: 0xfffff,
        g: false,
      }),
      "refused",
      /G = 0/,
    ],
    [
      "ends exactly at the max",
      segmentDescriptor({ kind: "code", dpl: 1, limit: max - 1 }),
      "accepted",
      /below/,
    ],
    [
      "one page more",
      segmentDescriptor({ kind: "code", dpl: 1, limit: max + 0xfff }),
      "truncated",
      /truncated/,
    ],
    [
      "base inside Xen",
      segmentDescriptor({
        kind: "data",
        dpl: 3,
        base: 0xfc40_0000,
        limit: 0xfff,
        g: false,
      }),
      "refused",
      /base/,
    ],
    [
      "expand-down from 0",
      segmentDescriptor({
        kind: "data",
        dpl: 3,
        expandDown: true,
        limit: 0xfff,
        g: true,
      }),
      "truncated",
      /truncated/,
    ],
    ["TSS", [0x0000_0067, 0x0000_a900], "refused", /only call gates/],
    [
      "interrupt gate",
      gateDescriptor({
        gate: "interrupt",
        selector: XEN32.FLAT_RING1_CS,
        dpl: 3,
      }),
      "refused",
      /only call gates/,
    ],
    [
      "call gate to Xen's CS",
      gateDescriptor({ gate: "call", selector: XEN32.HYPERVISOR_CS, dpl: 3 }),
      "refused",
      /not a guest code selector/,
    ],
    [
      "call gate to ring-1 CS",
      gateDescriptor({ gate: "call", selector: XEN32.FLAT_RING1_CS, dpl: 3 }),
      "accepted",
      /call gate/,
    ],
  ];
  for (const [what, [lo, hi], verdict, reason] of rows) {
    const c = checkDescriptor(lo, hi);
    assert.equal(c.verdict, verdict, what);
    assert.match(c.reason, reason, what);
    if (verdict === "truncated") {
      const f = decodeDescriptor(c.installed![0], c.installed![1]);
      const info = describeSegment(f);
      if (info.expandDown) {
        assert.ok(f.base + info.effectiveLimit >= 0xffffffff - 0xfff, what);
      } else {assert.ok(
          f.base + info.effectiveLimit < max,
          `${what}: ends below Xen`,
        );}
    }
    if (verdict === "refused") assert.equal(c.installed, undefined, what);
  }
  // through the hypercall: installed, then usable only up to the limit
  const idx = 10;
  const flat = xen.updateDescriptor(
    idx,
    ...segmentDescriptor({ kind: "data", dpl: 1 }),
  );
  assert.equal(flat.verdict, "truncated");
  xen.enter("guest-kernel");
  assert.equal(xen.segmentation.load("DS", (idx << 3) | 1).ok, true);
  assert.equal(xen.access(0xfc40_0000).stoppedBy?.name, "limit");
  const before = xen.gdt.read(11);
  const bad = xen.updateDescriptor(
    11,
    ...segmentDescriptor({ kind: "data", dpl: 0 }),
  );
  assert.equal(bad.verdict, "refused");
  assert.deepEqual(xen.gdt.read(11), before); // nothing written
  const mine = xen.updateDescriptor(
    XEN32.FIRST_RESERVED_GDT_ENTRY + 1,
    ...segmentDescriptor({ kind: "code", dpl: 1 }),
  );
  assert.equal(mine.verdict, "refused");
  assert.match(mine.reason, /reserved GDT page/);
});

// ---- Xen, x86-64 --------------------------------------------------------

Deno.test("Xen x86-64: guest user cannot reach guest-kernel memory because the user table does not map it", () => {
  const xen = xen64Layout();
  const a = xen.addresses;
  xen.enter("guest-user");
  const r = xen.access(a.kernelData);
  assert.equal(r.outcome.kind === "fault" && r.outcome.exception, "#PF");
  assert.equal(r.stoppedBy?.name, "present");
  assert.equal(r.outcome.kind === "fault" && (r.outcome.errorCode & 1), 0); // P = 0: not a protection fault
  assert.equal(r.outcome.kind === "fault" && (r.outcome.errorCode & 4), 4); // a user access
  // the page is a user page in the kernel table: U/S would have allowed it
  const k = xen.kernelTable.lookup(a.kernelData);
  assert.equal(k.outcome.kind === "ok" && k.outcome.rights.user, true);
  assert.equal(xen.userTable.lookup(a.kernelData).ok, false);
  xen.enter("guest-kernel");
  assert.equal(xen.segmentation.cpl, 3); // the guest kernel runs in ring 3
  assert.equal(xen.access(a.kernelData, { kind: "write" }).ok, true);
  assert.equal(xen.access(a.userData, { kind: "write" }).ok, true);
  // Xen's range: supervisor-only, in both tables
  for (const who of ["guest-user", "guest-kernel"] as const) {
    xen.enter(who);
    assert.equal(xen.access(a.xenText).stoppedBy?.name, "U/S", who);
  }
  xen.enter("guest-user");
  xen.enter("xen");
  assert.equal(xen.table, "user");
  assert.equal(xen.access(a.xenText, { kind: "fetch" }).ok, true);
  for (let slot = 256; slot <= 271; slot++) {
    // the same PML4 entry (the A bit, bit 5, is set per table by walks)
    const k4 = xen.memory.read32(xen.kernelTable.root + slot * 8) & ~0x20;
    assert.equal(
      xen.memory.read32(xen.userTable.root + slot * 8) & ~0x20,
      k4,
      `slot ${slot} shared`,
    );
  }
});

Deno.test("Xen x86-64: the system-call bounce switches CR3 twice and rings four times", () => {
  const xen = xen64Layout();
  const b = xen.syscallBounce();
  const k = xen.kernelTable.root, u = xen.userTable.root;
  assert.deepEqual(b.steps.map((s) => s.cpl), [3, 0, 0, 0, 3, 3, 3, 0, 0, 3]);
  assert.deepEqual(b.steps.map((s) => s.cr3), [u, u, k, k, k, k, k, k, u, u]);
  assert.deepEqual(b.steps.map((s) => s.actor), [
    "guest-user",
    "xen",
    "xen",
    "xen",
    "guest-kernel",
    "guest-kernel",
    "guest-kernel",
    "xen",
    "xen",
    "guest-user",
  ]);
  assert.equal(b.cr3Switches, 2);
  assert.equal(b.ringTransitions, 4);
  assert.equal(b.steps[0].probe?.stoppedBy?.name, "present");
  assert.equal(b.steps[4].probe?.ok, true);
  assert.equal(b.steps[9].probe?.stoppedBy?.name, "present");
  assert.equal(xen.actor, "guest-user");
  assert.equal(xen.table, "user");
});

// ---- views ---------------------------------------------------------------

Deno.test("views: record HTML shows every check and rule; GDT view; Xen strip SVG", () => {
  const xen = xen32Layout();
  xen.enter("guest-kernel");
  const r = xen.access(0xfc40_0000);
  const h = protectionRecordToHtml(r);
  for (const c of r.checks) {
    assert.ok(h.includes(c.name.replace("&", "&amp;")), c.name);
  }
  assert.match(h, /offset \+ size − 1 ≤ effective limit/);
  assert.match(h, /#GP/);
  const display =
    (r as unknown as Record<symbol, () => Record<string, string>>)[
      Symbol.for("Jupyter.display")
    ];
  assert.match(display.call(r)["text/plain"], /✗ segmentation\s+limit/);
  const g = descriptorTableToHtml(xen.gdt);
  assert.match(g, /6 of 7680 entries in use/);
  assert.match(g, /0x00cf9a000000ffff/);
  assert.match(g, /0x00cfb2000000c3ff/);
  const svg = xen32LayoutSvg({
    regions: xen.regions,
    limits: xen.segmentLimits,
  });
  assert.match(svg, /0xfc3fffff/);
  assert.match(svg, /Xen \(ring 0\)/);
});
