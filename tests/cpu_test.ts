/**
 * Tests of lib/cpu/cpu.ts: registers and modes, the TLB/PSC access path,
 * and the invalidation rules of Intel SDM Vol. 3 §4.10.4.1.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type AccessResult,
  Cpu,
  type CpuOptions,
  CR0,
  CR4,
  EFER,
  type InstructionResult,
} from "../lib/cpu/cpu.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { type FrameAllocator, PhysicalMemory } from "../lib/memory/memory.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import {
  OSTEP_15BIT,
  PAE,
  type PagingFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import {
  ACCESS_USER,
  ACCESS_WRITE,
  Reason,
  WALK_GP,
  WALK_OK,
  WALK_PF,
} from "../lib/paging/walker.ts";

type Displayable = Record<symbol, () => unknown>;

function table(
  format: PagingFormat = X86_64_4LEVEL,
  memory = new PhysicalMemory({ size: 2 ** 36 }),
  allocator?: FrameAllocator,
): PageTable {
  return new PageTable(memory, {
    mode: pagingMode(format),
    ...(allocator ? { allocator } : {}),
  });
}

function cpuFor(pt: PageTable, options: CpuOptions = {}): Cpu {
  return new Cpu(pt.memory, { mode: pt.mode, cr3: pt.root, ...options });
}

function ok(r: InstructionResult): asserts r is InstructionResult & {
  kind: "ok";
} {
  assert.equal(r.kind, "ok", r.kind === "gp" ? r.message : "");
}

function pfReason(r: AccessResult): string {
  assert.equal(r.outcome.kind, "page-fault");
  return r.outcome.kind === "page-fault" ? r.outcome.reason : "";
}

/** Two 4-level address spaces in one memory with PCIDE: A (PCID 1), B (PCID 2). */
function twoSpaces() {
  const memory = new PhysicalMemory({ size: 2 ** 36 });
  const a = table(X86_64_4LEVEL, memory);
  const b = table(X86_64_4LEVEL, memory, a.allocator);
  a.map(0x40_0000, 0x10_0000, { user: true });
  b.map(0x40_0000, 0x20_0000, { user: true });
  for (const pt of [a, b]) {
    pt.map("0xffff888000000000", 0x30_0000, { global: true });
  }
  const cpu = new Cpu(memory, {
    mode: a.mode,
    pcide: true,
    cr3: a.root | 1,
    psc: { pml4e: 4 },
  });
  return { memory, a, b, cpu };
}

// ---- construction and modes -------------------------------------------------

Deno.test("construction: registers select the format (SDM §4.1.1)", () => {
  const memory = new PhysicalMemory({ size: 2 ** 32 });
  const def = new Cpu(memory, { cr3: 0x1000 });
  assert.equal(def.mode?.format, X86_64_4LEVEL);
  assert.equal(def.cr0 & (CR0.PG | CR0.PE | CR0.WP), CR0.PG | CR0.PE | CR0.WP);
  assert.equal(
    def.efer & (EFER.LME | EFER.LMA | EFER.NXE),
    EFER.LME | EFER.LMA | EFER.NXE,
  );
  assert.equal(def.cr4 & CR4.PAE, CR4.PAE);
  assert.equal(def.root, 0x1000);
  const cases: [PagingFormat, number, number][] = [
    [X86_32, CR4.PSE | CR4.PGE, 0],
    [PAE, CR4.PAE | CR4.PSE | CR4.PGE, EFER.NXE],
    [
      X86_64_5LEVEL,
      CR4.PAE | CR4.PSE | CR4.PGE | CR4.LA57,
      EFER.LME | EFER.LMA | EFER.NXE,
    ],
  ];
  for (const [format, cr4, efer] of cases) {
    const cpu = new Cpu(memory, { format, cr3: 0x2000 });
    assert.equal(cpu.mode?.format, format);
    assert.equal(cpu.cr4, cr4, format.name);
    assert.equal(cpu.efer, efer, format.name);
  }
  // raw registers alone
  const raw = new Cpu(memory, {
    cr0: CR0.PE | CR0.PG,
    cr4: CR4.PAE,
    efer: 0,
    cr3: 0x3000,
  });
  assert.equal(raw.mode?.format, PAE);
  assert.equal(raw.mode?.wp, false);
  assert.equal(raw.mode?.nxe, false);
  const off = new Cpu(memory, { cr0: CR0.PE });
  assert.equal(off.paging, false);
  assert.equal(off.mode, undefined);
});

Deno.test("construction: bad input throws naming the value", () => {
  const memory = new PhysicalMemory({ size: 2 ** 32 });
  assert.throws(() => new Cpu({} as PhysicalMemory), TypeError);
  assert.throws(() => new Cpu(memory, { cr0: CR0.PG }), /PG = 1 requires PE/);
  assert.throws(
    () => new Cpu(memory, { cr0: CR0.PE | CR0.PG, cr4: 0, efer: EFER.LME }),
    /requires CR4.PAE/,
  );
  assert.throws(
    () => new Cpu(memory, { format: PAE, cr4: 0 }),
    /select x86 32-bit but the format is PAE/,
  );
  assert.throws(() => new Cpu(memory, { format: PAE, pcide: true }), /PCIDE/);
  assert.throws(() => new Cpu(memory, { cpl: 4 }), /CPL 4/);
  assert.throws(() => new Cpu(memory, { pkru: -1 }), /PKRU -1/);
  assert.throws(() => new Cpu(memory, { cr4: 1 << 15 }), /reserved/);
  assert.throws(() => new Cpu(memory, { maxPhyAddr: 60 }), /MAXPHYADDR 60/);
  assert.throws(
    () => new Cpu(memory, { cr3: 2n ** 60n }),
    /bits 63:52 are reserved/,
  );
  assert.throws(
    () => new Cpu(memory, { tlb: { entries: 3, ways: 2 } }),
    /ways 2/,
  );
  const cpu = new Cpu(memory);
  assert.throws(() => cpu.access(0, { kind: "exec" as "read" }), /"exec"/);
  assert.throws(() => cpu.writeCr0(2 ** 32), /CR0 4294967296/);
  assert.throws(() => cpu.writeCr0(0.5), /CR0 0.5/);
  assert.throws(() => cpu.writeCr4("x" as unknown as number), TypeError);
  assert.throws(() => cpu.invpcid(1.5), /INVPCID type 1.5/);
  assert.throws(() => (cpu.ac = 1 as unknown as boolean), TypeError);
});

Deno.test("radix teaching formats run through the same TLB path", () => {
  const memory = new PhysicalMemory({ size: 4096 });
  memory.write8(0x20 + 0, 0x80 | 2); // root at frame 1 → leaf table at frame 2
  memory.write8(0x40 + 3, 0x80 | 9); // page 3 → frame 9
  const cpu = new Cpu(memory, { format: OSTEP_15BIT, cr3: 0x20 });
  const r1 = cpu.access((3 << 5) | 7);
  assert.equal(r1.tlb, "miss");
  assert.equal(r1.outcome.kind === "ok" && r1.outcome.pa, 9 * 32 + 7);
  const r2 = cpu.access((3 << 5) | 1);
  assert.equal(r2.tlb, "hit");
  assert.equal(r2.outcome.kind === "ok" && r2.outcome.pa, 9 * 32 + 1);
  assert.throws(() => cpu.access(1 << 15), /15-bit/);
});

// ---- the access path -------------------------------------------------------

Deno.test("miss, then hit; accessFast fields and counters", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  const cpu = cpuFor(pt, { cpl: 3 });
  const r = cpu.access(0x40_0123);
  assert.equal(r.tlb, "miss");
  assert.equal(r.walk?.steps.length, 4);
  assert.equal(r.tableReads, 4);
  assert.equal(r.outcome.kind === "ok" && r.outcome.pa, 0x9123);
  const h = cpu.access(0x40_0456);
  assert.equal(h.tlb, "hit");
  assert.equal(h.walk, undefined);
  assert.equal(h.slot, r.slot);
  assert.deepEqual(h.outcome, {
    ...r.outcome,
    pa: 0x9456,
    accessedSet: [],
  });
  assert.equal(cpu.accessFast(0, 0x40_0789, ACCESS_USER), WALK_OK);
  assert.equal(cpu.lastPa, 0x9789);
  assert.equal(cpu.lastTlbHit, true);
  assert.equal(cpu.lastPageShift, 12);
  assert.equal(cpu.lastLevel, 1);
  assert.equal(cpu.accessFast(0, 0x50_0000, ACCESS_USER), WALK_PF);
  assert.equal(cpu.lastErrorCode, 0b100);
  assert.equal(cpu.lastReason, Reason.NotPresent);
  assert.equal(cpu.lastTlbHit, false);
  const c = cpu.counters;
  assert.deepEqual(
    [c.accesses, c.tlbHits, c.tlbMisses, c.walks, c.pageFaults],
    [4, 2, 2, 2, 1],
  );
  assert.equal(cpu.tlb.counters.hits, 2);
  cpu.resetCounters();
  assert.equal(cpu.counters.accesses, 0);
  assert.equal(cpu.tlb.counters.hits, 0);
  assert.equal(cpu.psc.counters.misses, 0);
});

Deno.test("stale TLB: a write succeeds after the page became read-only, until INVLPG", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  const cpu = cpuFor(pt, { cpl: 3 });
  assert.equal(cpu.access(0x40_0010, { kind: "write" }).outcome.kind, "ok");
  const change = pt.protect(0x40_0000, { writable: false });
  assert.equal(change.needsFlush, true);
  const stale = cpu.access(0x40_0010, { kind: "write" });
  assert.equal(stale.tlb, "hit");
  assert.equal(stale.outcome.kind, "ok", "the TLB still says writable");
  const inv = cpu.invlpg(0x40_0000);
  ok(inv);
  assert.equal(inv.tlbDropped, 1);
  const after = cpu.access(0x40_0010, { kind: "write" });
  assert.equal(after.tlb, "miss");
  assert.equal(pfReason(after), "write-protect");
  assert.equal(
    after.outcome.kind === "page-fault" && after.outcome.errorCode.value,
    0b111,
  );
});

Deno.test("stale TLB: a spurious fault from cached rights invalidates the entry (§4.10.4.1)", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true, writable: false });
  const cpu = cpuFor(pt, { cpl: 3 });
  assert.equal(cpu.access(0x40_0000).tlb, "miss");
  pt.protect(0x40_0000, { writable: true }); // relaxing: no INVLPG
  const f = cpu.access(0x40_0000, { kind: "write" });
  assert.equal(f.tlb, "hit");
  assert.equal(pfReason(f), "write-protect", "reported from the cached rights");
  assert.equal(cpu.tlb.validCount, 0, "the fault dropped the entry");
  assert.equal(cpu.tlb.counters.invalidations.fault, 1);
  const retry = cpu.access(0x40_0000, { kind: "write" });
  assert.equal(retry.tlb, "miss");
  assert.equal(retry.outcome.kind, "ok", "the fault does not recur");
});

Deno.test("rights are re-checked against the current mode on every hit", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true, writable: false });
  const cpu = cpuFor(pt, { wp: false });
  assert.equal(cpu.access(0x40_0000).tlb, "miss");
  // CR0.WP = 0: supervisor writes to read-only pages are allowed
  assert.equal(cpu.access(0x40_0000, { kind: "write" }).outcome.kind, "ok");
  ok(cpu.writeCr0(cpu.cr0 | CR0.WP));
  assert.equal(cpu.mode?.wp, true);
  // refill (the write above faulted nothing; the entry is still cached)
  assert.equal(cpu.access(0x40_0000).tlb, "hit");
  const w = cpu.access(0x40_0000, { kind: "write" });
  assert.equal(w.tlb, "hit");
  assert.equal(pfReason(w), "write-protect");
  // SMAP set without a flush: the hit is checked under SMAP
  assert.equal(cpu.access(0x40_0000).tlb, "miss");
  const r = cpu.writeCr4(cpu.cr4 | CR4.SMAP);
  ok(r);
  assert.equal(r.tlbDropped, 0);
  const s = cpu.access(0x40_0000);
  assert.equal(s.tlb, "hit");
  assert.equal(pfReason(s), "smap");
  assert.equal(cpu.access(0x40_0000).tlb, "miss");
  assert.equal(cpu.access(0x40_0000, { ac: true }).outcome.kind, "ok");
  cpu.ac = true;
  assert.equal(cpu.access(0x40_0000).outcome.kind, "ok");
  assert.equal(pfReason(cpu.access(0x40_0000, { implicit: true })), "smap");
});

Deno.test("PKRU is checked on TLB hits without a flush (§4.6.2)", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true, pkey: 3 });
  const cpu = cpuFor(pt, { pke: true, cpl: 3 });
  assert.equal(cpu.access(0x40_0000, { kind: "write" }).outcome.kind, "ok");
  cpu.pkru = 0b10 << (2 * 3); // WD for key 3
  const w = cpu.access(0x40_0000, { kind: "write" });
  assert.equal(w.tlb, "hit");
  assert.equal(pfReason(w), "pkey");
  assert.equal(w.outcome.kind === "page-fault" && w.outcome.errorCode.pk, true);
  assert.equal(cpu.access(0x40_0000).outcome.kind, "ok");
});

Deno.test("a write hitting a clean entry re-walks and sets D", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  const cpu = cpuFor(pt, { cpl: 3 });
  assert.equal(cpu.access(0x40_0000).tlb, "miss");
  assert.equal(cpu.tlb.dirtyOf(cpu.lastSlot), false);
  assert.equal(pt.lookup(0x40_0000).steps[3].flags.dirty, false);
  const w = cpu.access(0x40_0000, { kind: "write" });
  assert.equal(w.tlb, "miss");
  assert.equal(w.dirtyRewalk, true);
  assert.equal(w.outcome.kind === "ok" && w.outcome.dirtySet, true);
  assert.equal(w.walk?.resumed?.source, "paging-structure-cache");
  assert.equal(pt.lookup(0x40_0000).steps[3].flags.dirty, true);
  assert.equal(cpu.tlb.validCount, 1, "the entry was replaced in place");
  assert.equal(cpu.tlb.dirtyOf(w.slot), true);
  const again = cpu.access(0x40_0000, { kind: "write" });
  assert.equal(again.tlb, "hit");
  assert.equal(cpu.counters.dirtyRewalks, 1);
});

Deno.test("paging disabled: identity; non-canonical: #GP; width checks", () => {
  const memory = new PhysicalMemory({ size: 2 ** 32 });
  const off = new Cpu(memory, { cr0: CR0.PE });
  const r = off.access(0x1234_5678);
  assert.equal(r.tlb, "bypass");
  assert.equal(r.outcome.kind === "ok" && r.outcome.pa, 0x1234_5678);
  assert.throws(() => off.access(2 ** 32), /paging disabled/);
  assert.equal(off.accessFast(1, 0, 0), WALK_GP);
  const pt = table();
  const cpu = cpuFor(pt);
  const g = cpu.access("0x0000800000000000");
  assert.equal(g.outcome.kind, "gp");
  assert.equal(g.outcome.kind === "gp" && g.outcome.reason, "non-canonical");
  assert.equal(g.tlb, "bypass");
  assert.equal(cpu.counters.generalProtection, 1);
  const c32 = cpuFor(table(X86_32));
  assert.throws(() => c32.access(2 ** 32), /32-bit/);
  assert.equal(c32.accessFast(1, 0, 0), WALK_GP);
});

// ---- paging-structure caches through the CPU ------------------------------

Deno.test("PSC resume skips levels: the record says where it started", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x40_1000, 0xa000); // same PT
  pt.map(0x60_0000, 0xb000); // same PD
  pt.map(0x4000_0000, 0xc000); // same PDPT
  const cpu = cpuFor(pt);
  const first = cpu.access(0x40_0000);
  assert.equal(first.walk?.resumed, undefined);
  assert.equal(first.walk?.steps.length, 4);
  const cases: [number, number, number][] = [
    [0x40_1000, 1, 1],
    [0x60_0000, 2, 2],
    [0x4000_0000, 3, 3],
  ];
  for (const [va, level, steps] of cases) {
    const r = cpu.access(va);
    assert.equal(r.tlb, "miss");
    assert.deepEqual(r.walk?.resumed, {
      level,
      source: "paging-structure-cache",
    });
    assert.equal(r.walk?.steps.length, steps);
    assert.equal(r.walk?.steps[0].level, level);
    assert.equal(r.outcome.kind, "ok");
  }
  assert.equal(cpu.counters.pscResumes, 3);
  assert.equal(cpu.counters.tableReads, 4 + 1 + 2 + 3);
  // PSC disabled: every miss walks from the root
  const bare = cpuFor(pt, { psc: { pde: 0, pdpte: 0, pml4e: 0, pml5e: 0 } });
  bare.access(0x40_0000);
  const r = bare.access(0x40_1000);
  assert.equal(r.walk?.resumed, undefined);
  assert.equal(r.walk?.steps.length, 4);
});

Deno.test("PSC resume with 5-level paging starts below the PML5", () => {
  const pt = table(X86_64_5LEVEL);
  pt.map("0x0001000000000000", 0x9000);
  pt.map("0x0001008000000000", 0xa000); // same PML5E, other PML4E
  const cpu = cpuFor(pt);
  assert.equal(cpu.access("0x0001000000000000").walk?.steps.length, 5);
  const r = cpu.access("0x0001008000000000");
  assert.deepEqual(r.walk?.resumed, {
    level: 4,
    source: "paging-structure-cache",
  });
  assert.equal(r.walk?.steps.length, 4);
});

Deno.test("stale PSC: a resumed walk uses the old table until INVLPG", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map(0x40_1000, 0xa000); // same page table
  const cpu = cpuFor(pt);
  cpu.access(0x40_0000); // fills the PDE cache: 0x400000/2M → that page table
  // clear the PDE in memory (the page table itself stays) — no INVLPG
  const pdeAddr = pt.lookup(0x40_1000).steps[2].entryAddress;
  pt.memory.write32(pdeAddr, 0);
  pt.memory.write32(pdeAddr + 4, 0);
  assert.equal(pt.lookup(0x40_1000).outcome.kind, "page-fault");
  const stale = cpu.access(0x40_1000);
  assert.equal(stale.tlb, "miss");
  assert.deepEqual(stale.walk?.resumed, {
    level: 1,
    source: "paging-structure-cache",
  });
  assert.equal(stale.outcome.kind === "ok" && stale.outcome.pa, 0xa000);
  // INVLPG drops the TLB entry for the page and ALL of PCID 0's PSC entries
  const inv = cpu.invlpg(0x40_1000);
  ok(inv);
  assert.deepEqual([inv.tlbDropped, inv.pscDropped], [1, 3]);
  const r = cpu.access(0x40_1000);
  assert.equal(r.walk?.resumed, undefined);
  assert.equal(pfReason(r), "not-present");
  assert.equal(r.outcome.kind === "page-fault" && r.outcome.level, 2);
  // the TLB entry for 0x400000 was not invalidated: stale but translating
  const old = cpu.access(0x40_0000);
  assert.equal(old.tlb, "hit");
  assert.equal(old.outcome.kind === "ok" && old.outcome.pa, 0x9000);
});

Deno.test("a fault from a PSC-resumed walk drops that address's PSC entries", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  const cpu = cpuFor(pt);
  cpu.access(0x40_0000);
  assert.equal(cpu.psc.validCount, 3);
  const f = cpu.access(0x40_5000);
  assert.equal(f.walk?.resumed?.level, 1);
  assert.equal(pfReason(f), "not-present");
  assert.equal(cpu.psc.validCount, 0);
  assert.equal(cpu.access(0x40_5000).walk?.resumed, undefined);
});

// ---- PAE PDPTE registers ----------------------------------------------------

Deno.test("PAE: walks start from the PDPTE registers loaded at MOV to CR3", () => {
  const pt = table(PAE);
  pt.map(0x40_0000, 0x9000);
  pt.map(0x4000_0000, 0xa000); // PDPTE 1
  const cpu = cpuFor(pt, { psc: { pde: 0 } });
  assert.equal(cpu.pdptes?.length, 4);
  const r = cpu.access(0x40_0000);
  assert.deepEqual(r.walk?.resumed, { level: 2, source: "pdpte-register" });
  assert.equal(r.walk?.steps.length, 2);
  assert.equal(r.outcome.kind === "ok" && r.outcome.pa, 0x9000);
  assert.equal(cpu.counters.pdpteResumes, 1);
  // a not-present PDPTE faults at access time, without a walk
  const f = cpu.access(0xc000_0000);
  assert.equal(f.walk, undefined);
  assert.equal(f.tlb, "miss");
  assert.equal(pfReason(f), "not-present");
  assert.equal(f.outcome.kind === "page-fault" && f.outcome.level, 3);
  assert.equal(
    f.outcome.kind === "page-fault" && f.outcome.message,
    pt.walk(0xc000_0000).outcome.kind === "page-fault"
      ? (pt.walk(0xc000_0000).outcome as { message: string }).message
      : "",
  );
});

Deno.test("PAE: the PDPTE registers are not re-read until MOV to CR3", () => {
  const pt = table(PAE);
  pt.map(0x40_0000, 0x9000);
  const cpu = cpuFor(pt, { psc: { pde: 0 } });
  // map a page in a new PDPTE slot: memory changes, the registers do not
  pt.map(0x8000_0000, 0xb000);
  assert.equal(pt.walk(0x8000_0000).outcome.kind, "ok");
  assert.equal(pfReason(cpu.access(0x8000_0000)), "not-present");
  const r = cpu.movCr3(pt.root);
  ok(r);
  assert.equal(r.pdptesLoaded, true);
  assert.equal(cpu.access(0x8000_0000).outcome.kind, "ok");
});

Deno.test("PAE: a reserved bit in a present PDPTE makes MOV to CR3 #GP and changes nothing", () => {
  const pt = table(PAE);
  pt.map(0x40_0000, 0x9000);
  const cpu = cpuFor(pt);
  const other = table(PAE, pt.memory, pt.allocator);
  other.map(0x40_0000, 0xa000);
  pt.memory.write32(other.root + 8 * 0, pt.memory.read32(other.root) | 0x2); // bit 1 reserved
  const before = cpu.cr3;
  const r = cpu.movCr3(other.root);
  assert.equal(r.kind, "gp");
  assert.equal(r.kind === "gp" && r.reason, "pdpte-reserved");
  assert.equal(cpu.cr3, before);
  assert.equal(
    cpu.access(0x40_0000).outcome.kind === "ok" && cpu.lastPa,
    0x9000,
  );
  // a reserved bit in a NOT-present PDPTE is fine
  pt.memory.write32(other.root + 8 * 3, 0x2);
  pt.memory.write32(other.root + 8 * 0, pt.memory.read32(other.root) & ~0x2);
  ok(cpu.movCr3(other.root));
  assert.equal(
    cpu.access(0x40_0000).outcome.kind === "ok" && cpu.lastPa,
    0xa000,
  );
  // construction with a bad PDPTE throws
  pt.memory.write32(other.root, pt.memory.read32(other.root) | 0x2);
  assert.throws(() => cpuFor(other), /PDPTE 0/);
});

Deno.test("PAE: MOV to CR4/CR0 that changes PGE or PG reloads the PDPTEs", () => {
  const pt = table(PAE);
  pt.map(0x40_0000, 0x9000);
  const cpu = cpuFor(pt, { psc: { pde: 0 } });
  pt.map(0x8000_0000, 0xb000);
  const r = cpu.writeCr4(cpu.cr4 & ~CR4.PGE);
  ok(r);
  assert.equal(r.pdptesLoaded, true);
  assert.equal(cpu.access(0x8000_0000).outcome.kind, "ok");
  const s = cpu.writeCr4(cpu.cr4 | CR4.SMAP); // SMAP is not in the list
  ok(s);
  assert.equal(s.pdptesLoaded, false);
  ok(cpu.writeCr0(cpu.cr0 & ~CR0.PG));
  assert.equal(cpu.pdptes, undefined);
  const p = cpu.writeCr0(cpu.cr0 | CR0.PG);
  ok(p);
  assert.equal(p.pdptesLoaded, true);
});

// ---- MOV to CR3 and PCIDs ---------------------------------------------------

Deno.test("MOV to CR3 without PCIDs flushes non-global entries; globals survive", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map("0xffff888000000000", 0xa000, { global: true });
  const cpu = cpuFor(pt);
  cpu.access(0x40_0000);
  cpu.access("0xffff888000000000");
  assert.equal(cpu.psc.validCount > 0, true);
  const r = cpu.movCr3(pt.root);
  ok(r);
  assert.equal(r.tlbDropped, 1);
  assert.equal(cpu.psc.validCount, 0);
  assert.equal(cpu.access("0xffff888000000000").tlb, "hit");
  assert.equal(cpu.access(0x40_0000).tlb, "miss");
  // bit 63 is reserved without PCIDE
  const g = cpu.movCr3(pt.root, { noFlush: true });
  assert.equal(g.kind === "gp" && g.reason, "cr3-reserved");
  const h = cpu.movCr3(BigInt(pt.root) | (1n << 52n));
  assert.equal(
    h.kind === "gp" && h.reason,
    "cr3-reserved",
    "bit 52 ≥ MAXPHYADDR",
  );
});

Deno.test("MOV to CR3 reserved bits depend on MAXPHYADDR; legacy CR3 is 32 bits", () => {
  const pt = table();
  const cpu = cpuFor(pt, { maxPhyAddr: 46 });
  const g = cpu.movCr3(2 ** 46 + pt.root);
  assert.equal(g.kind === "gp" && g.reason, "cr3-reserved");
  ok(cpu.movCr3(2 ** 45 + pt.root));
  assert.equal(cpu.root, 2 ** 45 + pt.root);
  const c32 = cpuFor(table(X86_32));
  assert.throws(() => c32.movCr3(2 ** 32), /32 bits/);
});

Deno.test("PCIDs: isolation, no-flush bit 63, flush of the new PCID only", () => {
  const { a, b, cpu } = twoSpaces();
  assert.equal(cpu.pcid, 1);
  const ra = cpu.access(0x40_0000);
  assert.equal(ra.outcome.kind === "ok" && ra.outcome.pa, 0x10_0000);
  // switch to B (PCID 2) without flushing: A's entry stays, tagged PCID 1
  const s1 = cpu.movCr3(BigInt(b.root | 2) | (1n << 63n));
  ok(s1);
  assert.equal(s1.tlbDropped, 0);
  assert.equal(cpu.pcid, 2);
  assert.equal(cpu.cr3 >> 63n, 0n, "bit 63 is not stored");
  const rb = cpu.access(0x40_0000);
  assert.equal(rb.tlb, "miss", "PCID 1's entry is not used under PCID 2");
  assert.equal(rb.outcome.kind === "ok" && rb.outcome.pa, 0x20_0000);
  // back to A with noFlush: A's entry hits
  ok(cpu.movCr3(a.root | 1, { noFlush: true }));
  const ra2 = cpu.access(0x40_0000);
  assert.equal(ra2.tlb, "hit");
  assert.equal(ra2.outcome.kind === "ok" && ra2.outcome.pa, 0x10_0000);
  // to B with a flush: only PCID 2's entries go
  const s2 = cpu.movCr3(b.root | 2);
  ok(s2);
  assert.equal(s2.tlbDropped, 1);
  assert.equal(cpu.tlb.entries().filter((e) => e.pcid === 1).length, 1);
  assert.equal(cpu.psc.entries().some((e) => e.pcid === 1), true);
  assert.equal(cpu.psc.entries().some((e) => e.pcid === 2), false);
});

Deno.test("PCIDs: a global entry is used under every PCID and survives CR3 writes", () => {
  const { b, cpu } = twoSpaces();
  const g1 = cpu.access("0xffff888000000010");
  assert.equal(g1.outcome.kind === "ok" && g1.outcome.global, true);
  ok(cpu.movCr3(b.root | 2));
  const g2 = cpu.access("0xffff888000000010");
  assert.equal(g2.tlb, "hit");
  assert.equal(cpu.tlb.entry(g2.slot)!.pcid, 1, "filled under PCID 1");
  // INVLPG under PCID 2 drops it (global entries of any PCID)
  const r = cpu.invlpg("0xffff888000000000");
  ok(r);
  assert.equal(r.tlbDropped, 1);
});

Deno.test("INVLPG: all page sizes, current PCID's PSC entries whatever the address; non-canonical is a no-op", () => {
  const { cpu } = twoSpaces();
  cpu.access(0x40_0000);
  const before = cpu.psc.validCount;
  assert.ok(before > 0);
  const r = cpu.invlpg(0x1234_5000); // unrelated address
  ok(r);
  assert.equal(r.tlbDropped, 0);
  assert.equal(r.pscDropped, before);
  assert.equal(cpu.access(0x40_0000).tlb, "hit");
  const n = cpu.invlpg("0x0000800000000000");
  ok(n);
  assert.equal(n.tlbDropped + n.pscDropped, 0);
});

const KERNEL_PSC_1 = [
  "2@1:0xffff888000000000",
  "3@1:0xffff888000000000",
  "4@1:0xffff888000000000",
];
const USER_PSC_2 = ["2@2:0x400000", "3@2:0x0", "4@2:0x0"];

/** Entries left after an INVPCID of `type`, as "va@pcid" strings. */
function afterInvpcid(
  type: number,
  descriptor: { pcid?: number; va?: number | string } = {},
): { tlb: string[]; psc: string[]; r: InstructionResult } {
  const { a, b, cpu } = twoSpaces();
  a.map(0x40_1000, 0x11_0000, { user: true });
  cpu.access(0x40_0000); // PCID 1
  cpu.access(0x40_1000); // PCID 1
  cpu.access("0xffff888000000000"); // global, filled under PCID 1
  ok(cpu.movCr3(b.root | 2, { noFlush: true }));
  cpu.access(0x40_0000); // PCID 2
  const r = cpu.invpcid(type, descriptor);
  return {
    r,
    tlb: cpu.tlb.entries().map((e) =>
      `${e.va.toHex()}@${e.pcid}${e.global ? "G" : ""}`
    )
      .sort(),
    psc: cpu.psc.entries().map((e) => `${e.level}@${e.pcid}:${e.va.toHex()}`)
      .sort(),
  };
}

Deno.test("INVPCID type 0: one address of one PCID, globals kept, that address's PSC entries", () => {
  const t = afterInvpcid(0, { pcid: 1, va: 0x40_0000 });
  ok(t.r);
  assert.deepEqual(
    t.tlb,
    ["0x401000@1", "0x400000@2", "0xffff888000000000@1G"].sort(),
  );
  // PCID 1's PSC entries for 0x400000 are gone, its kernel-half ones stay
  assert.deepEqual(t.psc, [...KERNEL_PSC_1, ...USER_PSC_2].sort());
  const g = afterInvpcid(0, { pcid: 1, va: "0xffff888000000000" });
  assert.equal(g.tlb.includes("0xffff888000000000@1G"), true, "global kept");
});

Deno.test("INVPCID type 1: one PCID, globals kept", () => {
  const t = afterInvpcid(1, { pcid: 1 });
  ok(t.r);
  assert.deepEqual(t.tlb, ["0x400000@2", "0xffff888000000000@1G"].sort());
  assert.deepEqual(t.psc, [...USER_PSC_2].sort());
});

Deno.test("INVPCID type 2: everything, globals included", () => {
  const t = afterInvpcid(2);
  ok(t.r);
  assert.deepEqual(t.tlb, []);
  assert.deepEqual(t.psc, []);
});

Deno.test("INVPCID type 3: everything but globals", () => {
  const t = afterInvpcid(3);
  ok(t.r);
  assert.deepEqual(t.tlb, ["0xffff888000000000@1G"]);
  assert.deepEqual(t.psc, []);
});

Deno.test("INVPCID #GP cases (Vol. 2 INVPCID)", () => {
  const { cpu } = twoSpaces();
  const cases: [number, { pcid?: number; va?: string }, string][] = [
    [4, {}, "invpcid-type"],
    [1, { pcid: 4096 }, "invpcid-descriptor"],
    [0, { pcid: 1, va: "0x0000800000000000" }, "invpcid-descriptor"],
  ];
  for (const [type, d, reason] of cases) {
    const r = cpu.invpcid(type, d);
    assert.equal(r.kind === "gp" && r.reason, reason, `type ${type}`);
  }
  const plain = cpuFor(table());
  const r = plain.invpcid(1, { pcid: 3 });
  assert.equal(
    r.kind === "gp" && r.reason,
    "invpcid-descriptor",
    "PCID ≠ 0 with PCIDE = 0",
  );
  ok(plain.invpcid(1, { pcid: 0 }));
});

// ---- MOV to CR0 / CR4, WRMSR EFER -------------------------------------------

Deno.test("MOV to CR0: clearing PG flushes everything; re-enabling paging", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000);
  pt.map("0xffff888000000000", 0xa000, { global: true });
  const cpu = cpuFor(pt);
  cpu.access(0x40_0000);
  cpu.access("0xffff888000000000");
  const r = cpu.writeCr0(cpu.cr0 & ~CR0.PG);
  ok(r);
  assert.equal(r.tlbDropped, 2);
  assert.equal(cpu.psc.validCount, 0);
  assert.equal(cpu.paging, false);
  assert.equal(cpu.efer & EFER.LMA, 0, "leaving IA-32e mode");
  assert.equal(
    cpu.access(0x40_0000).outcome.kind === "ok" && cpu.lastPa,
    0x40_0000,
  );
  ok(cpu.writeCr0(cpu.cr0 | CR0.PG));
  assert.equal(cpu.efer & EFER.LMA, EFER.LMA);
  assert.equal(
    cpu.access(0x40_0000).outcome.kind === "ok" && cpu.lastPa,
    0x9000,
  );
  // WP alone: no invalidation
  const w = cpu.writeCr0(cpu.cr0 & ~CR0.WP);
  ok(w);
  assert.equal(w.tlbDropped, 0);
  // #GP cases
  assert.equal(cpu.writeCr0(CR0.PG).kind, "gp");
  assert.equal(cpu.writeCr0(CR0.PE | CR0.PG | CR0.NW).kind, "gp");
  ok(cpu.writeCr0(CR0.PE));
  ok(cpu.writeCr4(cpu.cr4 & ~CR4.PAE));
  const g = cpu.writeCr0(CR0.PE | CR0.PG);
  assert.equal(g.kind === "gp" && g.reason, "cr0-invalid", "LME without PAE");
});

Deno.test("MOV to CR4: PGE and PCIDE 1→0 flush all; PAE and SMEP 0→1 the current PCID", () => {
  const fresh = () => {
    const s = twoSpaces();
    s.cpu.access(0x40_0000);
    s.cpu.access("0xffff888000000000");
    ok(s.cpu.movCr3(s.b.root | 2, { noFlush: true }));
    s.cpu.access(0x40_0000);
    return s.cpu;
  };
  let cpu = fresh();
  assert.equal(cpu.tlb.validCount, 3);
  let r = cpu.writeCr4(cpu.cr4 & ~CR4.PGE);
  ok(r);
  assert.equal(r.tlbDropped, 3);
  assert.equal(cpu.psc.validCount, 0);
  cpu = fresh();
  r = cpu.writeCr4(cpu.cr4 & ~CR4.PCIDE);
  ok(r);
  assert.equal(r.tlbDropped, 3);
  assert.equal(cpu.pcid, 0);
  cpu = fresh();
  r = cpu.writeCr4(cpu.cr4 | CR4.SMEP);
  ok(r);
  assert.equal(r.tlbDropped, 1, "only PCID 2 (current)");
  assert.deepEqual(cpu.tlb.entries().map((e) => e.pcid), [1, 1]);
  cpu = fresh();
  r = cpu.writeCr4(cpu.cr4 & ~CR4.SMEP); // SMEP 1 → 0: no invalidation
  ok(r);
  assert.equal(r.tlbDropped, 0);
  r = cpu.writeCr4(cpu.cr4 | CR4.PKE | CR4.SMAP);
  ok(r);
  assert.equal(r.tlbDropped + r.pscDropped, 0);
  // PAE change (legacy mode: 32-bit ↔ PAE): the current PCID's entries, globals included
  const pt = table(X86_32);
  pt.map(0x40_0000, 0x9000, { global: true });
  const c32 = cpuFor(pt);
  c32.access(0x40_0000);
  r = c32.writeCr4(c32.cr4 | CR4.PAE);
  ok(r);
  assert.equal(r.tlbDropped, 1);
  assert.equal(c32.mode?.format, PAE);
});

Deno.test("MOV to CR4: #GP cases", () => {
  const { cpu } = twoSpaces();
  const cases: [number, string][] = [
    [cpu.cr4 | (1 << 15), "cr4-reserved"],
    [cpu.cr4 & ~CR4.PAE, "cr4-invalid"],
    [cpu.cr4 | CR4.LA57, "cr4-invalid"],
  ];
  for (const [v, reason] of cases) {
    const r = cpu.writeCr4(v);
    assert.equal(r.kind === "gp" && r.reason, reason);
  }
  // PCIDE 0 → 1 needs CR3[11:0] = 0 and IA-32e mode
  const pt = table();
  const c = cpuFor(pt);
  ok(c.movCr3(pt.root | 0x18)); // PWT | PCD bits
  assert.equal(c.writeCr4(c.cr4 | CR4.PCIDE).kind, "gp");
  ok(c.movCr3(pt.root));
  ok(c.writeCr4(c.cr4 | CR4.PCIDE));
  const pae = cpuFor(table(PAE));
  assert.equal(pae.writeCr4(pae.cr4 | CR4.PCIDE).kind, "gp");
});

Deno.test("WRMSR EFER: LME is fixed while paging; NXE needs no flush (stale rights)", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { executable: false });
  const cpu = cpuFor(pt);
  assert.equal(cpu.writeEfer(cpu.efer & ~EFER.LME).kind, "gp");
  assert.equal(cpu.writeEfer(cpu.efer | (1 << 20)).kind, "gp");
  assert.equal(
    pfReason(cpu.access(0x40_0000, { kind: "fetch" })),
    "no-execute",
  );
  cpu.access(0x40_0000);
  const r = cpu.writeEfer(cpu.efer & ~EFER.NXE);
  ok(r);
  assert.equal(r.tlbDropped, 0);
  assert.equal(cpu.mode?.nxe, false);
  // the cached entry still says "not executable"; a fresh walk now sees a reserved bit
  assert.equal(
    pfReason(cpu.access(0x40_0000, { kind: "fetch" })),
    "no-execute",
  );
  assert.equal(
    pfReason(cpu.access(0x40_0000, { kind: "fetch" })),
    "reserved-bit",
  );
  // EFER.LMA is read-only
  ok(cpu.writeEfer(cpu.efer & ~EFER.LMA));
  assert.equal(cpu.efer & EFER.LMA, EFER.LMA);
});

Deno.test("the mode is derived once and reused while the role is unchanged", () => {
  const pt = table();
  const cpu = cpuFor(pt);
  const m = cpu.mode;
  ok(cpu.movCr3(pt.root));
  ok(cpu.writeCr4(cpu.cr4 | CR4.PKE));
  const m2 = cpu.mode;
  assert.notEqual(m2, m);
  ok(cpu.writeCr4(cpu.cr4 & ~CR4.PKE));
  assert.equal(cpu.mode, m, "the same frozen mode object comes back");
});

// ---- display ------------------------------------------------------------------

Deno.test("display: MIME bundle and REPL text, escaped, no ANSI", () => {
  const pt = table(PAE);
  pt.map(0x40_0000, 0x9000);
  const cpu = cpuFor(pt, { tlb: { name: "<dtlb>" } });
  cpu.access(0x40_0000);
  const b = (cpu as unknown as Displayable)
    [Symbol.for("Jupyter.display")]() as Record<
      string,
      string
    >;
  assert.deepEqual(Object.keys(b).sort(), ["text/html", "text/plain"]);
  assert.match(b["text/plain"], /PAE/);
  assert.match(b["text/plain"], /PDPTE registers/);
  assert.match(b["text/html"], /&lt;dtlb&gt;/);
  assert.doesNotMatch(b["text/html"], /<dtlb>/);
  for (const v of Object.values(b)) {
    assert.equal(v.includes("\u001b"), false, "no ANSI escapes");
  }
  const text = (cpu as unknown as Displayable)
    [Symbol.for("Deno.customInspect")]() as string;
  assert.match(text, /1 accesses: 0 TLB hits, 1 misses/);
  assert.match(String(cpu), /CPU \(PAE/);
  const snap = cpu.snapshot();
  assert.equal(snap.flags.includes("CR4.PAE"), true);
  assert.equal(snap.pdptes?.length, 4);
});

Deno.test("accessFast: write and user flags, no allocation contract (smoke)", () => {
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  const cpu = cpuFor(pt);
  assert.equal(
    cpu.accessFast(0, 0x40_0000, ACCESS_USER | ACCESS_WRITE),
    WALK_OK,
  );
  assert.equal(cpu.lastTlbHit, false);
  for (let i = 0; i < 1000; i++) {
    assert.equal(
      cpu.accessFast(0, 0x40_0000 + i, ACCESS_USER | ACCESS_WRITE),
      WALK_OK,
    );
  }
  assert.equal(cpu.lastPa, 0x9000 + 999);
  assert.equal(cpu.counters.tlbHits, 1000);
});
