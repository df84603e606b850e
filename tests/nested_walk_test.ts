/**
 * The 2-D walk: reference counts by formula over every combination of
 * guest and host depth (levels and page sizes), reproducing FIGURES.md's
 * "2-D walk length" table; the order and tags of the references; and the
 * outcomes kept apart (guest #PF, EPT violation with its qualification,
 * EPT misconfiguration, #NPF with its error code), EPT A/D.
 */
import assert from "node:assert/strict";
import { FrameAllocator, PhysicalMemory } from "../lib/memory/memory.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { X86_64_4LEVEL, X86_64_5LEVEL } from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import {
  ACCESS_FETCH,
  ACCESS_USER,
  ACCESS_WRITE,
} from "../lib/paging/walker.ts";
import {
  EPT_4LEVEL,
  EPT_5LEVEL,
  EPT_MISCONFIG,
  EPT_READ,
  EPT_VIOLATION,
  eptMap,
  eptMode,
  EptReason,
  EptScratch,
  eptWalkInto,
  nptMode,
  validateEptFormat,
} from "../lib/paging/ept.ts";
import {
  NESTED_EPT_MISCONFIG,
  NESTED_EPT_VIOLATION,
  NESTED_GUEST_PF,
  NESTED_NPF,
  NESTED_OK,
  nestedOutcome,
  nestedRefs,
  NestedWalker,
} from "../lib/virt/nested/walk.ts";

const GiB = 2 ** 30;
const OFFSET = GiB; // hpa = gpa + 1 GiB
const SIZES: Record<number, number> = { 12: 4096, 21: 2 ** 21, 30: GiB };

/** Guest depth: 4-level with 1G/2M/4K pages, 5-level with 4K → 2..5 levels referenced. */
const GUEST = [
  { n: 2, levels: 4, shift: 30 },
  { n: 3, levels: 4, shift: 21 },
  { n: 4, levels: 4, shift: 12 },
  { n: 5, levels: 5, shift: 12 },
  { n: 3, levels: 5, shift: 30 },
  { n: 4, levels: 5, shift: 21 },
];
const HOST = [
  { m: 2, levels: 4, shift: 30 },
  { m: 3, levels: 4, shift: 21 },
  { m: 4, levels: 4, shift: 12 },
  { m: 5, levels: 5, shift: 12 },
  { m: 3, levels: 5, shift: 30 },
  { m: 4, levels: 5, shift: 21 },
];

/** A guest with `va` mapped by a page of 2^gshift, under EPT or NPT mapped with 2^hshift pages. */
function setup(
  g: { levels: number; shift: number },
  h: { levels: number; shift: number },
  stage: "ept" | "npt",
  options: { ad?: boolean; leaf?: { write?: boolean } } = {},
) {
  const gmode = pagingMode(g.levels === 4 ? X86_64_4LEVEL : X86_64_5LEVEL);
  const guest = new PhysicalMemory({ size: 8 << 20 });
  const gframes = new FrameAllocator(guest, { start: 4 << 20 });
  const pt = new PageTable(guest, { mode: gmode, allocator: gframes });
  const va = 0x7f_4000_0000;
  pt.map(va, 0, { user: true, size: SIZES[g.shift] });
  const host = new PhysicalMemory({ size: 4 * GiB });
  // copy the guest tables (gpa 4..8 MiB) to hpa = gpa + 1 GiB
  host.writeBytes(OFFSET + (4 << 20), guest.readBytes(4 << 20, 4 << 20));
  const hframes = new FrameAllocator(host, { start: 3 * GiB });
  const span = Math.max(8 << 20, SIZES[h.shift]);
  let root: number;
  let stageDesc;
  if (stage === "ept") {
    const mode = eptMode(h.levels === 4 ? EPT_4LEVEL : EPT_5LEVEL, {
      ad: options.ad,
    });
    root = hframes.alloc();
    for (let gpa = 0; gpa < span; gpa += SIZES[h.shift]) {
      eptMap(mode, host, () => hframes.alloc(), root, gpa, gpa + OFFSET, {
        pageShift: h.shift,
        write: gpa === 0 ? options.leaf?.write ?? true : true,
      });
    }
    stageDesc = { kind: "ept" as const, mode };
  } else {
    const mode = nptMode({ levels: h.levels as 4 | 5 });
    const npt = new PageTable(host, { mode, allocator: hframes });
    for (let gpa = 0; gpa < span; gpa += SIZES[h.shift]) {
      npt.map(gpa, gpa + OFFSET, {
        user: true,
        size: SIZES[h.shift],
        writable: gpa === 0 ? options.leaf?.write ?? true : true,
      });
    }
    root = npt.root;
    stageDesc = { kind: "npt" as const, mode };
  }
  const w = new NestedWalker(gmode, stageDesc, host, root);
  return { w, pt, va, host, guestRoot: pt.root };
}

for (const stage of ["ept", "npt"] as const) {
  Deno.test(`2-D walk length = n·m + n + m over guest × host depths (${stage})`, () => {
    for (const g of GUEST) {
      for (const h of HOST) {
        if (stage === "npt" && h.levels === 5 && h.shift !== 12) continue;
        const { w, va, guestRoot } = setup(g, h, stage);
        assert.equal(
          w.walk(guestRoot, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER),
          NESTED_OK,
        );
        // second walk: every A bit set, nothing written
        assert.equal(
          w.walk(guestRoot, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER),
          NESTED_OK,
        );
        const n = g.n, m = h.m;
        const label = `guest ${n} × host ${m}`;
        assert.equal(w.tableReads, n * m + n + m, label);
        assert.equal(w.tableReads, (n + 1) * (m + 1) - 1, label);
        assert.equal(w.hpa, (va % SIZES[g.shift]) + OFFSET, label);
        // order and tags: per guest level m host reads then the guest entry; then the final gpa
        const refs = nestedRefs(w);
        let k = 0;
        const top = g.levels;
        for (let gl = top; gl > top - n; gl--) {
          for (let hl = h.levels; hl > h.levels - m; hl--) {
            assert.deepEqual(
              [refs[k].guest, refs[k].host],
              [gl, hl],
              `${label} ref ${k + 1}`,
            );
            k++;
          }
          assert.deepEqual([refs[k].guest, refs[k].host], [gl, "guest entry"]);
          k++;
        }
        for (let hl = h.levels; hl > h.levels - m; hl--) {
          assert.deepEqual([refs[k].guest, refs[k].host], ["data", hl]);
          k++;
        }
        assert.deepEqual([refs[k].guest, refs[k].host, refs[k].op], [
          "data",
          "data",
          "read",
        ]);
        assert.equal(refs.length, k + 1);
      }
    }
  });
}

Deno.test("the FIGURES.md table: 2-D walk length by guest and host depth", () => {
  const table = [
    [8, 11, 14, 17],
    [11, 15, 19, 23],
    [14, 19, 24, 29],
    [17, 23, 29, 35],
  ];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const { w, va, guestRoot } = setup(GUEST[i], HOST[j], "ept");
      w.walk(guestRoot, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER);
      w.walk(guestRoot, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER);
      assert.equal(w.tableReads, table[i][j], `row ${i + 2}, column ${j + 2}`);
    }
  }
});

Deno.test("first walk: guest A/D writes are recorded as writes and land in guest memory", () => {
  const { w, va, guestRoot, host, pt } = setup(GUEST[2], HOST[2], "ept");
  assert.equal(
    w.walk(
      guestRoot,
      Math.floor(va / 2 ** 32),
      va >>> 0,
      ACCESS_USER | ACCESS_WRITE,
    ),
    NESTED_OK,
  );
  const writes = nestedRefs(w).filter((r) =>
    r.op === "write" && r.guest !== "data"
  );
  assert.equal(writes.length, 4); // A on four guest entries (D with A on the PTE)
  const leaf = pt.lookup(va).steps[3].entryAddress;
  assert.equal(host.read32(leaf + OFFSET) & 0x60, 0x60); // A and D in the guest PTE
  assert.equal(w.tableReads, 24);
});

Deno.test("guest #PF: no exit, the guest's error code", () => {
  const { w, guestRoot } = setup(GUEST[2], HOST[2], "ept");
  assert.equal(
    w.walk(guestRoot, 0, 0x1000, ACCESS_USER | ACCESS_WRITE),
    NESTED_GUEST_PF,
  );
  const o = nestedOutcome(w);
  assert.equal(o.kind, "page-fault");
  assert.equal(o.kind === "page-fault" && o.errorCode, 0b110);
});

Deno.test("EPT violation on a guest table walk: qualification bits 7 = 1, 8 = 0", () => {
  const { w, va, guestRoot } = setup(GUEST[2], HOST[2], "ept");
  w.hostRoot = new FrameAllocator(w.memory as PhysicalMemory, {
    start: 3.5 * GiB,
  }).alloc(); // empty EPT
  assert.equal(
    w.walk(guestRoot, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER),
    NESTED_EPT_VIOLATION,
  );
  const o = nestedOutcome(w);
  assert.ok(o.kind === "ept-violation");
  assert.equal(o.onTableWalk, true);
  assert.equal(o.guestLevel, 4);
  assert.equal(o.gpa, guestRoot + 8 * (Math.floor(va / 2 ** 39) % 512));
  assert.equal(o.reason, "not-present");
  assert.deepEqual(
    [
      o.qualification.read,
      o.qualification.write,
      o.qualification.linearValid,
      o.qualification.finalTranslation,
      o.qualification.readable,
    ],
    [true, false, true, false, false],
  );
  assert.equal(w.refs, 1); // the EPT PML4E read that found nothing
});

Deno.test("EPT violation on the final access: a write to a read-only gpa; with EPT A/D table reads are writes", () => {
  const { w, va, guestRoot } = setup(GUEST[2], HOST[2], "ept", {
    leaf: { write: false },
  });
  const hi = Math.floor(va / 2 ** 32), lo = va >>> 0;
  assert.equal(w.walk(guestRoot, hi, lo, ACCESS_USER), NESTED_OK);
  assert.equal(
    w.walk(guestRoot, hi, lo, ACCESS_USER | ACCESS_WRITE),
    NESTED_EPT_VIOLATION,
  );
  const o = nestedOutcome(w);
  assert.ok(o.kind === "ept-violation");
  assert.equal(o.onTableWalk, false);
  assert.equal(o.gpa, va % 4096);
  assert.equal(o.reason, "permission");
  assert.deepEqual(
    [
      o.qualification.write,
      o.qualification.finalTranslation,
      o.qualification.readable,
      o.qualification.writable,
      o.qualification.executable,
    ],
    [true, true, true, false, true],
  );
  assert.equal(o.qualification.raw, 0x2 | 0x8 | 0x20 | 0x80 | 0x100);
  // fetch: qualification bit 2
  const { w: w2, guestRoot: r2 } = setup(GUEST[2], HOST[2], "ept");
  assert.equal(w2.walk(r2, hi, lo, ACCESS_USER | ACCESS_FETCH), NESTED_OK);
});

Deno.test("EPT A/D: guest table reads are writes (host D set on table pages; read-only table page → violation with R and W)", () => {
  const { w, va, guestRoot, pt } = setup(GUEST[2], HOST[2], "ept", {
    ad: true,
  });
  const hi = Math.floor(va / 2 ** 32), lo = va >>> 0;
  assert.equal(w.walk(guestRoot, hi, lo, ACCESS_USER), NESTED_OK);
  const s = new EptScratch();
  const mode = (w.stage as { mode: ReturnType<typeof eptMode> }).mode;
  eptWalkInto(s, mode, w.memory, w.hostRoot, pt.root, EPT_READ, false);
  assert.equal(
    s.lo[3] & 0x300,
    0x300,
    "A and D on the EPT PTE of the guest root table",
  );
  eptWalkInto(s, mode, w.memory, w.hostRoot, 0, EPT_READ, false);
  assert.equal(
    s.lo[3] & 0x300,
    0x100,
    "A only on the data page's EPT PTE (a read)",
  );
  // make the guest root's page read-only in the EPT
  eptWalkInto(s, mode, w.memory, w.hostRoot, pt.root, EPT_READ, false);
  (w.memory as PhysicalMemory).write32(s.entryAddr[3], s.lo[3] & ~2);
  assert.equal(w.walk(guestRoot, hi, lo, ACCESS_USER), NESTED_EPT_VIOLATION);
  const o = nestedOutcome(w);
  assert.ok(o.kind === "ept-violation");
  assert.deepEqual(
    [o.qualification.read, o.qualification.write, o.onTableWalk],
    [true, true, true],
  );
});

Deno.test("EPT misconfigurations are not violations", () => {
  const mem = new PhysicalMemory({ size: 1 << 22 });
  const frames = new FrameAllocator(mem);
  const root = frames.alloc();
  const mode = eptMode(EPT_4LEVEL, { executeOnly: false });
  const ea = eptMap(mode, mem, () => frames.alloc(), root, 0x3000, 0x9000);
  const s = new EptScratch();
  const cases: [number, number, number][] = [
    [0x9002 | (6 << 3), EPT_MISCONFIG, EptReason.WriteWithoutRead],
    [0x9004 | (6 << 3), EPT_MISCONFIG, EptReason.ExecuteOnly],
    [0x9001 | (2 << 3), EPT_MISCONFIG, EptReason.MemoryType],
    [0x9001 | (3 << 3), EPT_MISCONFIG, EptReason.MemoryType],
    [0x9001 | (7 << 3), EPT_MISCONFIG, EptReason.MemoryType],
    [0x9000, EPT_VIOLATION, EptReason.NotPresent],
  ];
  for (const [entry, outcome, reason] of cases) {
    mem.write32(ea, entry);
    assert.equal(
      eptWalkInto(s, mode, mem, root, 0x3000, EPT_READ),
      outcome,
      entry.toString(16),
    );
    assert.equal(s.reason, reason);
  }
  mem.write32(ea, 0x9001 | (6 << 3));
  mem.write32(ea + 4, 1 << 15); // bit 47 ≥ MAXPHYADDR 46: reserved (bits 63:52 are ignored)
  assert.equal(
    eptWalkInto(
      s,
      eptMode(EPT_4LEVEL, { maxPhyAddr: 46 }),
      mem,
      root,
      0x3000,
      EPT_READ,
    ),
    EPT_MISCONFIG,
  );
  assert.equal(s.reason, EptReason.ReservedBit);
  mem.write32(ea + 4, 0);
  // non-leaf reserved bits 7:3 (PML4E bit 7)
  mem.write32(root, mem.read32(root) | 0x80);
  assert.equal(
    eptWalkInto(s, mode, mem, root, 0x3000, EPT_READ),
    EPT_MISCONFIG,
  );
  assert.equal(s.leafLevel, 4);
  // execute-only is fine where supported
  mem.write32(root, mem.read32(root) & ~0x80);
  mem.write32(ea, 0x9004 | (6 << 3));
  assert.equal(eptWalkInto(s, eptMode(EPT_4LEVEL), mem, root, 0x3000, 4), 0);
});

Deno.test("nested walk reports an EPT misconfiguration as such", () => {
  const { w, va, guestRoot } = setup(GUEST[2], HOST[2], "ept");
  const s = new EptScratch();
  const mode = (w.stage as { mode: ReturnType<typeof eptMode> }).mode;
  eptWalkInto(s, mode, w.memory, w.hostRoot, 0, EPT_READ, false);
  (w.memory as PhysicalMemory).write32(
    s.entryAddr[3],
    (s.lo[3] & ~0x38) | (2 << 3),
  );
  assert.equal(
    w.walk(guestRoot, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER),
    NESTED_EPT_MISCONFIG,
  );
  const o = nestedOutcome(w);
  assert.deepEqual(
    o.kind === "ept-misconfig" && [o.reason, o.hostLevel, o.guestLevel],
    ["reserved-memory-type", 1, 0],
  );
});

Deno.test("#NPF: EXITINFO1 error code with final-gpa / guest-table bits; NPT U/S applies", () => {
  const { w, va, guestRoot } = setup(GUEST[2], HOST[2], "npt", {
    leaf: { write: false },
  });
  const hi = Math.floor(va / 2 ** 32), lo = va >>> 0;
  assert.equal(
    w.walk(guestRoot, hi, lo, ACCESS_USER | ACCESS_WRITE),
    NESTED_NPF,
  );
  let o = nestedOutcome(w);
  assert.ok(o.kind === "npf");
  assert.deepEqual(
    [
      o.errorCode.present,
      o.errorCode.write,
      o.errorCode.user,
      o.errorCode.finalGpa,
      o.errorCode.guestTable,
    ],
    [true, true, true, true, false],
  );
  // a supervisor guest access still walks the NPT as a user access
  w.hostRoot = new FrameAllocator(w.memory as PhysicalMemory, {
    start: 3.5 * GiB,
  }).alloc();
  assert.equal(w.walk(guestRoot, hi, lo, 0), NESTED_NPF);
  o = nestedOutcome(w);
  assert.ok(o.kind === "npf");
  assert.deepEqual(
    [
      o.errorCode.present,
      o.errorCode.user,
      o.errorCode.guestTable,
      o.guestLevel,
    ],
    [false, true, true, 4],
  );
});

Deno.test("EPT descriptors are validated loudly", () => {
  assert.throws(
    () => validateEptFormat({ ...EPT_4LEVEL, gpaBits: 40 }),
    RangeError,
  );
  assert.throws(
    () => validateEptFormat({ ...EPT_5LEVEL, entryBytes: 4 }),
    /entryBytes 4/,
  );
  assert.throws(
    () =>
      validateEptFormat({
        ...EPT_4LEVEL,
        bits: { ...EPT_4LEVEL.bits, ignorePat: 4 },
      }),
    /overlaps memType/,
  );
  assert.throws(() => nptMode({ levels: 2 as 4 }), RangeError);
  const mem = new PhysicalMemory({ size: 1 << 20 });
  const fr = new FrameAllocator(mem);
  const root = fr.alloc();
  assert.throws(
    () =>
      eptMap(eptMode(EPT_4LEVEL), mem, () => fr.alloc(), root, 0, 0, {
        read: false,
      }),
    /write without read/,
  );
  assert.throws(
    () =>
      eptMap(
        eptMode(EPT_4LEVEL, { gbPages: false }),
        mem,
        () => fr.alloc(),
        root,
        0,
        0,
        { pageShift: 30 },
      ),
    /page shift 30/,
  );
});

Deno.test("nptFastWalk agrees with walkInto whenever it answers (random NPT entries, seeded)", async () => {
  const fc = (await import("fast-check")).default;
  const { nptFastWalk } = await import("../lib/virt/nested/walk.ts");
  const { walkInto, WalkScratch, WALK_OK } = await import(
    "../lib/paging/walker.ts"
  );
  // 4 tables at 0x1000.. 0x4000 chained through index 1; the leaf maps 0x9000
  const lowBits = fc.integer({ min: 0, max: 0xfff });
  const highBits = fc.constantFrom(0, 0x8000_0000, 0x0010_0000, 0x7ff0_0000);
  let answered = 0;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(lowBits, highBits, fc.integer({ min: 0, max: 3 })), {
        minLength: 4,
        maxLength: 4,
      }),
      fc.constantFrom(
        ACCESS_USER,
        ACCESS_USER | ACCESS_WRITE,
        ACCESS_USER | ACCESS_FETCH,
      ),
      fc.constantFrom(4, 5),
      (entries, access, levels) => {
        const mode = nptMode({ levels: levels as 4 | 5 });
        const mem = new PhysicalMemory({ size: 1 << 20 });
        const gpa = levels === 4
          ? 2 ** 39 + 2 ** 30 + 2 ** 21 + 0x1abc
          : 2 ** 30 + 2 ** 21 + 0x1abc; // (index 0 at level 5 and 4)
        for (let l: number = levels; l >= 1; l--) {
          const table = 0x1000 * (levels - l + 1);
          const idx = Math.floor(gpa / 2 ** (12 + 9 * (l - 1))) % 512;
          const [low, hi, usual] = entries[Math.min(levels - l, 3)];
          // mostly P, W, U, A, D set (the fast path's case), else random
          const flags = usual > 0 ? low | 0x67 : low;
          const next = l === 1 ? 0x9000 : table + 0x1000;
          mem.write32(table + idx * 8, next | flags);
          mem.write32(table + idx * 8 + 4, hi);
        }
        const a = new WalkScratch(), b = new WalkScratch();
        const fast = nptFastWalk(
          a,
          mode,
          mem,
          0x1000,
          Math.floor(gpa / 2 ** 32),
          gpa >>> 0,
          access,
        );
        const before = mem.readBytes(0, 0x6000);
        const r = walkInto(
          b,
          mode,
          mem,
          0x1000,
          Math.floor(gpa / 2 ** 32),
          gpa >>> 0,
          access,
        );
        if (!fast) return;
        answered++;
        assert.equal(r, WALK_OK);
        assert.deepEqual(mem.readBytes(0, 0x6000), before); // walkInto wrote nothing
        for (
          const k of [
            "steps",
            "pa",
            "pageShift",
            "leafLevel",
            "finalRights",
            "dirty",
            "global",
            "aSet",
            "dSet",
          ] as const
        ) assert.equal(a[k], b[k], k);
        for (let i = 0; i < b.steps; i++) {
          assert.equal(a.entryAddr[i], b.entryAddr[i]);
          assert.equal(a.rights[i], b.rights[i]);
          assert.equal(a.base[i], b.base[i]);
          assert.equal(a.level[i], b.level[i]);
        }
      },
    ),
    { seed: 6, numRuns: 3000 },
  );
  assert.ok(answered > 20, `fast path answered only ${answered} times`);
});
