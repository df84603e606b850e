/**
 * KVM's MMU on top of the nested scheme: memslot add / remove / move zap
 * the affected second-stage range and the next access faults it back from
 * the new memslot; dirty logging for live migration in both KVM modes
 * (write-protect; PML with the 512-entry page-modification log and its
 * "log full" exit), with KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG
 * semantics, checked against the set of pages the guest really wrote.
 */
import assert from "node:assert/strict";
import { PageTable } from "../lib/paging/builder.ts";
import type { Memory } from "../lib/memory/memory.ts";
import { X86_64_4LEVEL } from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { Host } from "../lib/virt/host.ts";
import type { KvmDomain } from "../lib/virt/domain.ts";
import {
  type DirtyLogMode,
  type NestedOptions,
  NestedScheme,
  PML_ENTRIES,
} from "../lib/virt/nested/scheme.ts";
import { Random } from "../lib/util/random.ts";
import { TaggedTlb } from "../lib/tlb/tagged.ts";

const mode = pagingMode(X86_64_4LEVEL);
const VA = 0x4000_0000;

function guest(options: NestedOptions, memory = 2 ** 22) {
  const host = new Host({ memory: 64 * 2 ** 20, hypervisor: "kvm" });
  const vm = host.createDomain({
    memory,
    addressSpace: 2 ** 24,
  }) as KvmDomain;
  const scheme = new NestedScheme({ eventLog: 0, ...options });
  scheme.attach({ host, domain: vm, memory: vm.memory, mode });
  const pt = new PageTable(vm.memory.unwatched as Memory, { mode });
  scheme.loadCr3(pt.root);
  return { host, vm, scheme, pt };
}

Deno.test("memslot move: the old gpas are zapped and unbacked; the data reappears at the new gpa", () => {
  for (const stage of ["ept", "npt"] as const) {
    const { vm, scheme, pt } = guest({ stage });
    const slot = vm.addMemslot({ gpa: 0x80_0000, size: 0x10000 });
    pt.map(VA, 0x80_1000, { user: true, writable: true });
    assert.equal(
      scheme.access(VA + 8, { kind: "write", value: 77 }).outcome.kind,
      "ok",
    );
    const zapped = scheme.counters.extra.leavesZapped;
    vm.moveMemslot(slot.id, 0xc0_0000);
    assert.ok(scheme.counters.extra.leavesZapped > zapped, stage);
    const r = scheme.access(VA + 8);
    assert.equal(r.outcome.kind, "unbacked");
    assert.equal(scheme.counters.exitsByReason["mmio"], 1);
    // the guest follows the move (new PTE, INVLPG): same data, faulted back in
    pt.unmap(VA);
    pt.map(VA, 0xc0_1000, { user: true, writable: true });
    scheme.invlpg(0, VA);
    const before = scheme.counters.extra.leavesMapped;
    const again = scheme.access(VA + 8);
    assert.equal(again.outcome.kind === "ok" && again.outcome.value, 77);
    assert.equal(scheme.counters.extra.leavesMapped, before + 1);
    // remove: unbacked; a new slot there: fresh zeroed memory
    vm.removeMemslot(slot.id);
    assert.equal(scheme.access(VA + 8).outcome.kind, "unbacked");
    vm.addMemslot({ gpa: 0xc0_0000, size: 0x10000 });
    const fresh = scheme.access(VA + 8);
    assert.equal(fresh.outcome.kind === "ok" && fresh.outcome.value, 0);
  }
});

/** Map `n` pages at VA → gpa 0x10_0000 + i·4 KiB and write each once (guest A/D set, leaves in). */
function populated(options: NestedOptions, n: number) {
  const g = guest(options);
  for (let i = 0; i < n; i++) {
    g.pt.map(VA + i * 4096, 0x10_0000 + i * 4096, {
      user: true,
      writable: true,
    });
  }
  for (let i = 0; i < n; i++) {
    g.scheme.access(VA + i * 4096, { kind: "write", value: i });
  }
  return g;
}

/** The gfns of the guest tables a walk of `va` reads. */
function tableGfns(pt: PageTable<Memory>, va: number): number[] {
  return pt.lookup(va).steps.map((s) => Math.floor(s.tableBase / 4096));
}

const MODES: { name: string; options: NestedOptions; log: DirtyLogMode }[] = [
  { name: "EPT write-protect", options: {}, log: "write-protect" },
  {
    name: "NPT write-protect",
    options: { stage: "npt" },
    log: "write-protect",
  },
  {
    name: "EPT A/D write-protect",
    options: { ad: true },
    log: "write-protect",
  },
  { name: "EPT A/D PML", options: { ad: true }, log: "pml" },
  // re-arming must flush what cached W (nested TLB, tagged TLB)
  {
    name: "EPT write-protect, caches and TLB",
    options: { caches: { nestedTlb: {}, guestPsc: {} }, tlb: new TaggedTlb() },
    log: "write-protect",
  },
  {
    name: "EPT A/D PML, caches and TLB",
    options: {
      ad: true,
      caches: { nestedTlb: {}, hostPsc: {} },
      tlb: new TaggedTlb(),
    },
    log: "pml",
  },
];

for (const { name, options, log } of MODES) {
  Deno.test(`dirty log (${name}): each round's bitmap is exactly the pages written (seeded)`, () => {
    const N = 64;
    const { scheme, pt } = populated(options, N);
    scheme.startDirtyLog({ mode: log });
    const rnd = new Random(name.length);
    let faults = 0;
    for (let round = 0; round < 12; round++) {
      const written = new Set<number>(), walked = new Set<number>();
      for (let k = 0; k < 40; k++) {
        const i = rnd.int(N), va = VA + i * 4096 + 4 * rnd.int(1024);
        const write = rnd.int(3) === 0;
        const r = scheme.access(
          va,
          write ? { kind: "write", value: round * 100 + k } : {},
        );
        assert.equal(r.outcome.kind, "ok");
        if (!write) {
          assert.equal(
            r.outcome.kind === "ok" && r.outcome.value,
            scheme.context.domain.memory.read32(0x10_0000 + (va - VA)),
          );
        }
        if (write) written.add(0x100 + i);
        for (const t of tableGfns(pt, va)) walked.add(t);
      }
      // with EPT A/D every guest table access is a write (SDM §28.3.3.2):
      // the tables walked are dirty too
      const expected = new Set(written);
      if (options.ad) { for (const t of walked) expected.add(t); }
      const got = scheme.getDirtyLog();
      assert.deepEqual(got.dirty, [...expected].sort((a, b) => a - b));
      assert.equal(got.mode, log);
      for (const g of got.dirty) {
        assert.equal((got.bitmap[g >> 3] >> (g & 7)) & 1, 1);
      }
      faults += scheme.counters.extra.dirtyLogFaults;
    }
    if (log === "pml") {
      assert.equal(scheme.counters.extra.dirtyLogFaults, 0);
      assert.ok(scheme.counters.extra.pmlLogged > 0);
    } else assert.ok(faults > 0);
  });
}

Deno.test("PML: the 513th logged page takes one 'log full' exit; nothing is lost", () => {
  const N = 700;
  const { scheme, pt } = populated({ ad: true }, N);
  scheme.startDirtyLog({ mode: "pml" });
  const tables = new Set<number>();
  for (let i = 0; i < N; i++) {
    scheme.access(VA + i * 4096, { kind: "write", value: 1 });
    for (const t of tableGfns(pt, VA + i * 4096)) tables.add(t);
  }
  const logged = scheme.counters.extra.pmlLogged;
  assert.equal(logged, N + tables.size);
  assert.equal(scheme.counters.exitsByReason["pml-full"], 1);
  assert.equal(scheme.counters.extra.pmlFullExits, 1);
  assert.equal(scheme.pmlBuffer.gpas.length, logged - PML_ENTRIES);
  assert.equal(
    scheme.pmlBuffer.index,
    PML_ENTRIES - 1 - (logged - PML_ENTRIES),
  );
  const d = scheme.getDirtyLog();
  assert.equal(d.dirty.length, logged);
  for (let i = 0; i < N; i++) assert.ok(d.dirty.includes(0x100 + i));
  assert.equal(scheme.pmlBuffer.gpas.length, 0); // drained by the get
});

Deno.test("manual protect: GET only reads; CLEAR clears a range and re-arms it", () => {
  const { scheme } = populated({}, 8);
  scheme.startDirtyLog({ mode: "write-protect", manualProtect: true });
  for (const i of [1, 2, 5]) {
    scheme.access(VA + i * 4096, { kind: "write", value: 9 });
  }
  assert.deepEqual(scheme.getDirtyLog().dirty, [0x101, 0x102, 0x105]);
  assert.deepEqual(scheme.getDirtyLog().dirty, [0x101, 0x102, 0x105]);
  assert.equal(scheme.clearDirtyLog(0x100, 3), 2);
  assert.deepEqual(scheme.getDirtyLog().dirty, [0x105]);
  // page 5 was not re-armed: its write does not fault; page 1 was: it does
  const exits = scheme.counters.vmExits;
  scheme.access(VA + 5 * 4096, { kind: "write", value: 1 });
  assert.equal(scheme.counters.vmExits, exits);
  scheme.access(VA + 1 * 4096, { kind: "write", value: 1 });
  assert.equal(scheme.counters.vmExits, exits + 1);
  assert.deepEqual(scheme.getDirtyLog().dirty, [0x101, 0x105]);
});

Deno.test("dirty logging: validation", () => {
  const npt = guest({ stage: "npt" }).scheme;
  assert.throws(
    () => npt.startDirtyLog({ mode: "pml" }),
    /needs EPT with A\/D/,
  );
  const { scheme } = guest({});
  assert.throws(() => scheme.getDirtyLog(), /dirty logging is off/);
  assert.throws(
    () => scheme.startDirtyLog({ firstGfn: 4000, count: 100 }),
    /dirty-log range \[4000, \+100\) is invalid/,
  );
  assert.throws(
    () => scheme.startDirtyLog({ mode: "pages" as DirtyLogMode }),
    /mode "pages" is invalid/,
  );
  scheme.startDirtyLog({ firstGfn: 16, count: 16 });
  assert.equal(scheme.dirtyLogMode, "write-protect");
  assert.throws(() => scheme.clearDirtyLog(16, 1), /needs manualProtect/);
  scheme.stopDirtyLog();
  assert.equal(scheme.dirtyLogMode, undefined);
});
