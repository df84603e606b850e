/**
 * Shadow paging unit tests: hidden vs true faults, write-protect emulation,
 * CR3 switches that hit the shadow cache, INVLPG, A/D emulation, large
 * pages, unshadowing, the options, counters and displays.
 */
import assert from "node:assert/strict";
import { Host } from "../lib/virt/host.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { X86_64_4LEVEL } from "../lib/paging/format.ts";
import { type ShadowOptions, ShadowScheme } from "../lib/virt/shadow/mod.ts";
import { exitTimelineSvg } from "../lib/view/shadow_html.ts";
import { FrameAllocator, type Memory } from "../lib/memory/memory.ts";

const PTE_D = 0x40, PTE_A = 0x20;

function display(o: object, name: string): unknown {
  return (o as Record<symbol, () => unknown>)[Symbol.for(name)]();
}

function setup(options: ShadowOptions = {}, hypervisor: "xen" | "kvm" = "xen") {
  const host = new Host({ memory: 16 * 2 ** 20, hypervisor });
  const vm = host.createDomain({ memory: 4 * 2 ** 20 });
  const mode = pagingMode(X86_64_4LEVEL);
  const sh = new ShadowScheme(options);
  sh.attach({ host, domain: vm, memory: vm.memory, mode });
  vm.memory.setWriteWatcher((g, n) => sh.frameWritten(g, n));
  // guest tables from 1 MiB up, data pages below
  const frames = new FrameAllocator<Memory>(vm.memory.unwatched, {
    start: 0x10_0000,
    end: 0x20_0000,
  });
  const table = () => {
    const pt = new PageTable<Memory, FrameAllocator<Memory>>(
      vm.memory.unwatched,
      { mode, allocator: frames },
    );
    pt.onEntryWrite((c) => sh.entryWritten(c));
    return pt;
  };
  return { host, vm, mode, sh, table };
}

function pte(
  pt: PageTable<Memory, FrameAllocator<Memory>>,
  va: number,
): number {
  const steps = pt.lookup(va).steps;
  const last = steps[steps.length - 1];
  return Number(last.entry & 0xfffn);
}

Deno.test("hidden faults build the shadow; true faults are reflected with error code and CR2", () => {
  const { sh, table, vm } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  const w = sh.access(0x40_0ff0, { kind: "write", value: 0xabcd });
  assert.equal(w.outcome.kind, "ok");
  assert.equal(w.exits, 1);
  assert.equal(vm.memory.read32(0x9ff0), 0xabcd);
  const r = sh.access(0x40_0ff0);
  assert.equal(r.exits, 0); // shadow hit
  assert.equal(r.outcome.kind === "ok" && r.outcome.value, 0xabcd);
  assert.equal(r.outcome.kind === "ok" && r.outcome.gpa, 0x9ff0);
  const f = sh.access(0x40_1008, { kind: "write" });
  assert.equal(f.outcome.kind, "page-fault");
  if (f.outcome.kind === "page-fault") {
    assert.equal(f.outcome.errorCode.value, 0b110); // W | U, not present
    assert.equal(f.outcome.cr2.toHex(), "0x401008");
  }
  const k = sh.access(0x40_0000, { kind: "fetch", user: true });
  assert.equal(k.outcome.kind, "ok"); // executable page
  const s = sh.access(0x40_0000, { user: true, kind: "write", value: 1 });
  assert.equal(s.outcome.kind, "ok");
  const c = sh.counters;
  assert.equal(c.extra.hiddenFaults, 1);
  assert.equal(c.extra.trueFaults, 1);
  assert.equal(c.exitsByReason["hidden-pf"], 1);
  assert.equal(c.exitsByReason["true-pf"], 1);
  assert.equal(c.guestPageFaults, 1);
  assert.equal(
    sh.access("0x0000800000000000").outcome.kind,
    "gp",
  );
});

Deno.test("supervisor-only and read-only pages fault exactly as the guest says", () => {
  const { sh, table } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: false });
  pt.map(0x40_1000, 0xa000, { user: true, writable: false });
  sh.loadCr3(pt.root);
  assert.equal(sh.access(0x40_0000, { user: false }).outcome.kind, "ok");
  const u = sh.access(0x40_0000, { user: true });
  assert.equal(
    u.outcome.kind === "page-fault" && u.outcome.errorCode.value,
    0b101,
  );
  assert.equal(sh.access(0x40_1000).outcome.kind, "ok");
  const w = sh.access(0x40_1000, { kind: "write" });
  assert.equal(
    w.outcome.kind === "page-fault" && w.outcome.errorCode.value,
    0b111,
  );
});

Deno.test("guest PTE writes to a shadowed table trap, are emulated and keep the shadow exact", () => {
  const { sh, table, vm } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  vm.memory.write32(0x9000, 1);
  vm.memory.write32(0xa000, 2);
  sh.loadCr3(pt.root);
  assert.equal(
    sh.access(0x40_0000).outcome.kind === "ok" && sh.access(0x40_0000).exits,
    0,
  );
  const ptGfn = pt.lookup(0x40_0000).steps[3].tableBase / 4096;
  assert.equal(sh.isShadowed(ptGfn), true);
  assert.equal(vm.memory.isWatched(ptGfn), true);
  // remap without any INVLPG: write protection makes the change visible at once
  pt.unmap(0x40_0000);
  pt.map(0x40_0000, 0xa000, { user: true });
  const r = sh.access(0x40_0000);
  assert.equal(r.outcome.kind === "ok" && r.outcome.value, 2);
  const wp = sh.counters.exitsByReason["wp-emulation"];
  assert.ok(wp >= 2); // at least the PTE clear and the PTE install
  assert.equal(sh.counters.extra.emulatedWrites, wp);
  // a write to a table that is not shadowed does not trap
  const before = sh.counters.vmExits;
  pt.map(0x7000_0000, 0xb000, { user: true }); // new tables (not shadowed yet) + the PDPTE (shadowed)
  assert.equal(sh.counters.vmExits - before, 1);
});

Deno.test("a guest store to its own page table through an alias is emulated", () => {
  const { sh, table, vm } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  const ptGpa = pt.lookup(0x40_0000).steps[3].tableBase;
  pt.map(0x50_0000, ptGpa, { user: true }); // alias of the PT page
  vm.memory.write32(0xa000, 77);
  // rewrite PTE 0 (0x400000) through the alias: now maps 0xa000
  const w = sh.access(0x50_0000, { kind: "write", value: 0xa067 });
  assert.equal(w.outcome.kind, "ok");
  assert.equal(sh.counters.exitsByReason["wp-emulation"] >= 2, true);
  const r = sh.access(0x40_0000);
  assert.equal(r.outcome.kind === "ok" && r.outcome.value, 77);
});

Deno.test("CR3 switches find cached shadows", () => {
  const { sh, table } = setup();
  const a = table(), b = table();
  a.map(0x40_0000, 0x9000, { user: true });
  b.map(0x40_0000, 0xa000, { user: true });
  sh.loadCr3(a.root);
  sh.access(0x40_0000);
  sh.loadCr3(b.root);
  sh.access(0x40_0000);
  const exits = sh.counters.exitsByReason["hidden-pf"];
  for (let i = 0; i < 3; i++) {
    sh.loadCr3(a.root);
    assert.equal(sh.access(0x40_0000).exits, 0);
    sh.loadCr3(b.root);
    assert.equal(sh.access(0x40_0000).exits, 0);
  }
  const c = sh.counters;
  assert.equal(c.extra.cacheMisses, 2);
  assert.equal(c.extra.cacheHits, 6);
  assert.equal(c.exitsByReason["cr-access"], 8);
  assert.equal(c.exitsByReason["hidden-pf"], exits);
});

Deno.test("INVLPG is an exit that drops the page's shadow entry", () => {
  const { sh, table } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  assert.equal(sh.access(0x40_0000).exits, 0);
  sh.invlpg(0, 0x40_0000);
  assert.equal(sh.counters.exitsByReason.invlpg, 1);
  assert.equal(sh.access(0x40_0000).exits, 1); // refilled by a hidden fault
  sh.invlpg(0, 0x7777_0000); // nothing there: harmless
});

Deno.test("A/D emulation: clean pages are read-only in the shadow until the guest entry is dirty", () => {
  const { sh, table } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  assert.equal(pte(pt, 0x40_0000) & (PTE_A | PTE_D), 0);
  sh.access(0x40_0000); // hidden fault: A set by the guest walk
  assert.equal(pte(pt, 0x40_0000) & (PTE_A | PTE_D), PTE_A);
  const pair = sh.shadowPair(pt.lookup(0x40_0000).steps[3].tableBase, 1);
  assert.equal(pair.rows[0].shadow?.flags.includes("RW"), false);
  assert.equal(sh.access(0x40_0000, { kind: "write", value: 3 }).exits, 1);
  assert.equal(pte(pt, 0x40_0000) & PTE_D, PTE_D);
  assert.equal(sh.access(0x40_0000, { kind: "write", value: 4 }).exits, 0);
  const pair2 = sh.shadowPair(pt.lookup(0x40_0000).steps[3].tableBase, 1);
  assert.equal(pair2.rows[0].shadow?.flags.includes("RW"), true);
  assert.equal(sh.counters.extra.hiddenFaults, 2);
});

Deno.test("guest large pages are splintered into 4 KiB shadow entries", () => {
  const { sh, table, vm } = setup();
  const pt = table();
  pt.map(0x4000_0000, 0x20_0000, { user: true, size: 2 ** 21 });
  vm.memory.write32(0x20_0000 + 0x5004, 9);
  sh.loadCr3(pt.root);
  const r = sh.access(0x4000_5004);
  assert.equal(r.outcome.kind === "ok" && r.outcome.gpa, 0x20_5004);
  assert.equal(r.outcome.kind === "ok" && r.outcome.value, 9);
  assert.equal(sh.access(0x4000_5004).exits, 0);
  assert.ok(
    sh.shadowPages().some((p) => p.role === "splinter" && p.gfn === 0x200),
  );
  assert.equal(sh.access(0x4000_6000, { kind: "write", value: 1 }).exits, 1); // sets D
  assert.equal(sh.access(0x4000_7000, { kind: "write", value: 1 }).exits, 1); // next 4 KiB
  assert.equal(sh.access(0x4000_7000, { kind: "write", value: 2 }).exits, 0);
});

Deno.test("a table frame that is zeroed for reuse is unshadowed", () => {
  const { sh, table, vm } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  const ptGpa = pt.lookup(0x40_0000).steps[3].tableBase;
  pt.unmap(0x40_0000);
  vm.memory.zero(ptGpa, 4096); // reused as data: a full-frame write
  assert.equal(sh.isShadowed(ptGpa / 4096), false);
  assert.equal(vm.memory.isWatched(ptGpa / 4096), false);
  assert.equal(sh.counters.extra.unshadows, 1);
});

Deno.test("P2M changes zap shadow entries (ballooning)", () => {
  const { sh, table, vm } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  vm.balloonOut([9]);
  const r = sh.access(0x40_0000);
  assert.equal(r.outcome.kind, "unbacked");
  assert.equal(sh.counters.exitsByReason.mmio, 1);
});

Deno.test("counters: shadow pages and their memory match the host's hypervisor frames", () => {
  const { sh, table, host } = setup();
  const pt = table();
  for (let i = 0; i < 4; i++) {
    pt.map(0x40_0000 + i * 2 ** 30, 0x9000, { user: true });
  }
  sh.loadCr3(pt.root);
  for (let i = 0; i < 4; i++) sh.access(0x40_0000 + i * 2 ** 30);
  const c = sh.counters.extra;
  assert.equal(c.shadowPagesLive, 1 + 1 + 4 * 2); // PML4, PDPT, 4 × (PD, PT)
  assert.equal(c.shadowBytes, c.shadowPagesLive * 4096);
  assert.equal(host.hypervisorFrames()["shadow pages"], c.shadowPagesLive);
  assert.equal(c.shadowPagesAllocated - c.shadowPagesFreed, c.shadowPagesLive);
  sh.resetCounters();
  assert.equal(sh.counters.extra.hiddenFaults, 0);
  assert.equal(sh.counters.extra.shadowPagesLive, 10); // state, not a counter
});

Deno.test("option outOfSync: later PTE writes to an out-of-sync L1 do not trap; CR3 resyncs", () => {
  const { sh, table } = setup({ outOfSync: 3 });
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  pt.map(0x40_1000, 0xa000, { user: true }); // trapped; the L1 goes out of sync
  const e = sh.counters.exitsByReason["wp-emulation"];
  for (let i = 2; i < 10; i++) {
    pt.map(0x40_0000 + i * 4096, 0xa000, { user: true });
  }
  assert.equal(sh.counters.exitsByReason["wp-emulation"], e);
  assert.equal(sh.counters.extra.oosPages, 1);
  // stale like a TLB: a remap is seen after INVLPG (or CR3)
  pt.unmap(0x40_0000);
  pt.map(0x40_0000, 0xb000, { user: true });
  sh.invlpg(0, 0x40_0000);
  const r = sh.access(0x40_0000);
  assert.equal(r.outcome.kind === "ok" && r.outcome.gpa, 0xb000);
  sh.loadCr3(pt.root);
  assert.equal(sh.counters.extra.resyncs, 1);
  assert.equal(sh.shadowPages().some((p) => p.outOfSync), false);
});

Deno.test("option writeFlooding: a non-leaf shadow written repeatedly without use is zapped", () => {
  const { sh, table } = setup({ writeFlooding: 3 });
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  const pd = pt.lookup(0x40_0000).steps[2].tableBase / 4096;
  assert.equal(sh.isShadowed(pd), true);
  for (let i = 1; i <= 3; i++) {
    pt.map(0x40_0000 + i * 2 ** 21, 0x9000, { user: true });
  }
  assert.equal(sh.counters.extra.floodZaps, 1);
  assert.equal(sh.isShadowed(pd), false);
  assert.equal(sh.access(0x40_0000).outcome.kind, "ok");
});

Deno.test("option prefetch: accessed neighbours are filled on a hidden fault", () => {
  const { sh, table, vm } = setup({ prefetch: 8 });
  const pt = table();
  for (let i = 0; i < 8; i++) {
    pt.map(0x40_0000 + i * 4096, 0x9000 + i * 4096, { user: true });
  }
  // make them accessed (as if used before), then start over with an empty shadow
  const base = pt.lookup(0x40_0000).steps[3].tableBase;
  for (let i = 0; i < 8; i++) {
    vm.memory.unwatched.write32(
      base + 8 * i,
      vm.memory.read32(base + 8 * i) | PTE_A,
    );
  }
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  assert.equal(sh.counters.extra.prefetched, 7);
  for (let i = 1; i < 8; i++) {
    assert.equal(sh.access(0x40_0000 + i * 4096).exits, 0);
  }
});

Deno.test("option maxShadowPages: the cache stays within its limit", () => {
  const { sh, table, host } = setup({ maxShadowPages: 8 });
  const pt = table();
  for (let i = 0; i < 6; i++) {
    pt.map(i * 2 ** 39 + 0x40_0000, 0x9000, { user: true });
  }
  sh.loadCr3(pt.root);
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 6; i++) {
      assert.equal(sh.access(i * 2 ** 39 + 0x40_0000).outcome.kind, "ok");
      assert.ok(sh.counters.extra.shadowPagesLive <= 8);
    }
  }
  assert.ok(sh.counters.extra.evictions > 0);
  assert.equal(
    host.hypervisorFrames()["shadow pages"],
    sh.counters.extra.shadowPagesLive,
  );
  assert.throws(
    () => new ShadowScheme({ maxShadowPages: 3 }),
    /maxShadowPages 3/,
  );
  assert.throws(() => new ShadowScheme({ prefetch: 6 }), /power of two/);
});

Deno.test("KVM memslots: the same results, pages faulted in lazily", () => {
  const { sh, table, vm } = setup({}, "kvm");
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  assert.equal(
    sh.access(0x40_0000, { kind: "write", value: 5 }).outcome.kind,
    "ok",
  );
  assert.equal(vm.memory.read32(0x9000), 5);
});

Deno.test("displays: shadow pair, scheme bundle, exit timeline", () => {
  const { sh, table } = setup();
  const pt = table();
  pt.map(0x40_0000, 0x9000, { user: true });
  sh.loadCr3(pt.root);
  sh.access(0x40_0000);
  sh.access(0x50_0000);
  const pair = sh.shadowPair(pt.lookup(0x40_0000).steps[3].tableBase, 1);
  assert.equal(pair.rows.length, 1);
  assert.equal(pair.rows[0].guest?.frame, 9); // a gfn
  assert.notEqual(pair.rows[0].shadow?.frame, 9); // an mfn
  assert.equal(sh.rootPair().level, 4);
  const shown = sh.showPair(pt.root, 4);
  assert.match(shown["text/html"], /<table/);
  const bundle = display(sh, "Jupyter.display") as Record<string, string>;
  assert.ok(bundle["text/plain"].includes("hidden-pf 1"));
  assert.ok(bundle["text/html"].includes("<svg"));
  for (const v of Object.values(bundle)) assert.ok(!v.includes("\u001b"));
  const text = display(sh, "Deno.customInspect") as string;
  assert.match(text, /shadow scheme/);
  const svg = exitTimelineSvg(sh.events, { maxEvents: 2 });
  assert.match(svg, /earlier ones not shown/);
  assert.ok(
    (display(new ShadowScheme(), "Deno.customInspect") as string).length > 0,
  );
});
