/**
 * Host (second-stage) 2 MiB pages in NestedScheme (`hostPages: "2m"`):
 * which faults install a 2 MiB EPT/NPT leaf, the references a 2-D walk
 * saves, zaps on P2M changes, the split when dirty logging starts, the
 * collapse of a 4 KiB table back into a 2 MiB leaf, and — differentially —
 * that the guest sees exactly what it sees under the reference scheme.
 * Also the host's 2 MiB-aligned contiguous placement.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Host, type HypervisorKind } from "../lib/virt/host.ts";
import type { Domain } from "../lib/virt/domain.ts";
import { GuestOs } from "../lib/virt/guest/os.ts";
import {
  randomGuestActivity,
  runActivity,
} from "../lib/virt/guest/activity.ts";
import { type NestedOptions, NestedScheme } from "../lib/virt/nested/scheme.ts";
import { ReferenceScheme } from "../lib/virt/reference.ts";
import type { MmuScheme } from "../lib/virt/scheme.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { X86_64_4LEVEL } from "../lib/paging/format.ts";
import { describeDiff, firstDiff } from "./_diff_harness.ts";

const MiB = 2 ** 20;
const PAGE = 4096;
const mode = pagingMode(X86_64_4LEVEL);

const CONFIGS: {
  name: string;
  options: NestedOptions;
  hostLevels: number;
}[] = [
  { name: "EPT 4-level", options: {}, hostLevels: 4 },
  { name: "EPT 4-level A/D", options: { ad: true }, hostLevels: 4 },
  { name: "EPT 5-level A/D", options: { levels: 5, ad: true }, hostLevels: 5 },
  { name: "NPT 4-level", options: { stage: "npt" }, hostLevels: 4 },
  { name: "NPT 5-level", options: { stage: "npt", levels: 5 }, hostLevels: 5 },
];

interface Setup {
  host: Host<HypervisorKind>;
  vm: Domain;
  hap: NestedScheme;
  pt: ReturnType<typeof guestTable>;
}

function guestTable(vm: Domain) {
  return new PageTable(vm.memory.unwatched, { mode });
}

/** A domain, the scheme attached, a guest page table loaded in CR3. */
function setup(
  options: NestedOptions,
  placement: "contiguous" | "scatter" = "contiguous",
  hypervisor: HypervisorKind = "xen",
  memory = 4 * MiB,
): Setup {
  const host = new Host({ memory: 32 * MiB, hypervisor, seed: 7 });
  // a small domain first, so that the big one cannot start at mfn 0 by luck
  host.createDomain({ memory: 3 * PAGE, placement: "contiguous" });
  const vm = host.createDomain({ memory, placement });
  const hap = new NestedScheme({ ...options, eventLog: 0 });
  hap.attach({ host, domain: vm, memory: vm.memory, mode });
  const pt = guestTable(vm);
  hap.loadCr3(pt.root);
  return { host, vm, hap, pt };
}

/** Gpas of the guest tables that map `va` and of its page. */
function guestGpas(pt: Setup["pt"], va: number): number[] {
  const l = pt.lookup(va);
  return l.steps.map((s) => s.tableBase);
}

for (const { name, options, hostLevels } of CONFIGS) {
  Deno.test(`host 2M ${name}: one touch maps one 2 MiB leaf; a 2-D walk makes one host reference fewer per gpa`, () => {
    const refs: Record<string, number> = {};
    for (const hostPages of ["4k", "2m"] as const) {
      const { vm, hap, pt } = setup({ ...options, hostPages });
      assert.equal(hap.hostPages, hostPages);
      // guest tables and the data page all in the first 2 MiB region
      pt.map(0x40_0000, 0x3000, { user: true, writable: true });
      const gpas = [...guestGpas(pt, 0x40_0000), 0x3000];
      assert.ok(gpas.every((g) => g < 2 * MiB), `gpas ${gpas}`);
      const first = hap.access(0x40_0008, { kind: "write", value: 0x1234 });
      assert.equal(first.outcome.kind, "ok");
      const x = hap.counters.extra;
      if (hostPages === "2m") {
        assert.equal(first.exits, 1);
        assert.equal(x.largeLeavesMapped, 1);
        assert.equal(x.leavesMapped, 1);
        for (const g of gpas) assert.equal(hap.secondStagePageShift(g), 21);
        assert.equal(hap.secondStagePageShift(2 * MiB), 12);
        // the leaf maps the region onto its 2 MiB-aligned machine run
        assert.equal(vm.lookup(0)! % 512, 0);
      } else {
        assert.equal(first.exits, new Set(gpas).size);
        assert.equal(x.largeLeavesMapped, undefined);
        for (const g of gpas) assert.equal(hap.secondStagePageShift(g), 12);
      }
      // an uncached 2-D walk (no caches configured): count its references
      const r = hap.access(0x40_0008);
      assert.equal(r.exits, 0);
      assert.equal(r.outcome.kind === "ok" && r.outcome.value, 0x1234);
      refs[hostPages] = hap.walker.made;
    }
    // first principles: each of the 4 guest table gpas and the final gpa
    // costs one host reference per second-stage level (one fewer with a
    // 2 MiB leaf), plus the 4 guest entry reads and the data reference
    const g = 4;
    assert.equal(refs["4k"], (g + 1) * hostLevels + g + 1);
    assert.equal(refs["2m"], (g + 1) * (hostLevels - 1) + g + 1);
    assert.equal(refs["4k"] - refs["2m"], g + 1);
  });

  Deno.test(`host 2M ${name}: a scattered domain falls back to 4 KiB leaves`, () => {
    const { hap, pt } = setup({ ...options, hostPages: "2m" }, "scatter");
    pt.map(0x1000, 0x5000, { user: true });
    const r = hap.access(0x1000);
    assert.equal(r.outcome.kind, "ok");
    assert.equal(hap.counters.extra.largeLeavesMapped, 0);
    assert.ok(hap.counters.extra.leavesMapped >= 2);
    assert.equal(hap.secondStagePageShift(0x5000), 12);
  });

  Deno.test(`host 2M ${name}: a balloon change inside the region zaps the 2 MiB leaf`, () => {
    const { vm, hap, pt } = setup({ ...options, hostPages: "2m" });
    for (let i = 0; i < 8; i++) {
      pt.map(0x1000 * (i + 1), 0x10_0000 + i * PAGE, {
        user: true,
        writable: true,
      });
      hap.access(0x1000 * (i + 1), { kind: "write", value: 100 + i });
    }
    assert.equal(hap.counters.extra.largeLeavesMapped, 1);
    const frames = hap.counters.extra.secondStageFrames;
    // gfn 0x103 (the 4th data page) goes back to Xen and comes back empty
    vm.balloonOut([0x103]);
    assert.equal(hap.counters.extra.leavesZapped, 1);
    assert.equal(hap.secondStagePageShift(0x10_0000), 12);
    const values = [];
    for (let i = 0; i < 8; i++) {
      const r = hap.access(0x1000 * (i + 1));
      values.push(r.outcome.kind === "ok" ? r.outcome.value : r.outcome.kind);
    }
    assert.deepEqual(values, [100, 101, 102, "unbacked", 104, 105, 106, 107]);
    // no 2 MiB leaf again: the region has a hole now
    assert.equal(hap.counters.extra.largeLeavesMapped, 1);
    assert.equal(hap.secondStagePageShift(0x10_0000), 12);
    assert.equal(hap.counters.extra.secondStageFrames, frames + 1);
    vm.balloonIn([0x103]); // a new frame elsewhere: still not eligible
    const r = hap.access(0x4000);
    assert.equal(r.outcome.kind === "ok" && r.outcome.value, 0);
    assert.equal(hap.counters.extra.largeLeavesMapped, 1);
  });

  const modes = options.ad ? ["write-protect", "pml"] as const : [
    "write-protect",
  ] as const;
  for (const logMode of modes) {
    Deno.test(`host 2M ${name}: ${logMode} dirty logging inside a 2 MiB leaf logs per 4 KiB page`, () => {
      const { hap, pt } = setup({ ...options, hostPages: "2m" });
      for (let i = 0; i < 16; i++) {
        pt.map(0x1000 * (i + 1), 0x10_0000 + i * PAGE, {
          user: true,
          writable: true,
        });
        hap.access(0x1000 * (i + 1), { kind: "write", value: i });
      }
      assert.equal(hap.counters.extra.largeLeavesMapped, 1);
      // log gfns 0x104..0x107 only
      hap.startDirtyLog({ mode: logMode, firstGfn: 0x104, count: 4 });
      assert.equal(hap.counters.extra.largeLeavesSplit, 1);
      assert.equal(hap.secondStagePageShift(0x10_4000), 12);
      assert.equal(hap.secondStagePageShift(0x10_0000), 12);
      for (const i of [2, 5, 7, 5, 12]) {
        const r = hap.access(0x1000 * (i + 1), { kind: "write", value: 50 });
        assert.equal(r.outcome.kind, "ok");
      }
      assert.deepEqual(hap.getDirtyLog().dirty, [0x105, 0x107]);
      assert.deepEqual(hap.getDirtyLog().dirty, []);
      hap.access(0x1000 * 5, { kind: "write", value: 51 }); // gfn 0x104
      assert.deepEqual(hap.getDirtyLog().dirty, [0x104]);
      // no 2 MiB leaf while the region is logged
      assert.equal(hap.counters.extra.largeLeavesMapped, 1);
      const values = [];
      for (let i = 0; i < 16; i++) {
        const r = hap.access(0x1000 * (i + 1));
        values.push(r.outcome.kind === "ok" ? r.outcome.value : -1);
      }
      assert.deepEqual(
        values,
        Array.from(
          { length: 16 },
          (_, i) => i === 4 ? 51 : [2, 5, 7, 12].includes(i) ? 50 : i,
        ),
      );
    });
  }

  Deno.test(`host 2M ${name}: after logging stops, a fault collapses the 4 KiB table`, () => {
    const { hap, pt } = setup({ ...options, hostPages: "2m" });
    hap.startDirtyLog({ mode: "write-protect", firstGfn: 0, count: 512 });
    pt.map(0x1000, 0x10_0000, { user: true, writable: true });
    pt.map(0x2000, 0x10_1000, { user: true, writable: true });
    hap.access(0x1000, { kind: "write", value: 9 });
    assert.equal(hap.counters.extra.largeLeavesMapped, 0);
    assert.equal(hap.secondStagePageShift(0x10_0000), 12);
    hap.stopDirtyLog();
    const frames = hap.counters.extra.secondStageFrames;
    hap.access(0x2000, { kind: "write", value: 10 }); // gfn 0x101: not mapped yet
    const x = hap.counters.extra;
    assert.equal(x.largeLeavesMapped, 1);
    assert.equal(x.tablesCollapsed, 1);
    assert.equal(x.secondStageFrames, frames - 1);
    assert.equal(hap.secondStagePageShift(0x10_0000), 21);
    const r = hap.access(0x1000);
    assert.equal(r.exits, 0);
    assert.equal(r.outcome.kind === "ok" && r.outcome.value, 9);
  });
}

/** A KVM domain of 2 MiB whose frames, once touched in gfn order, are one 2 MiB-aligned run. */
function kvmSetup(readonlyTail: boolean, touchAll = readonlyTail) {
  // 2 MiB reserved: the VMM's pages then start at mfn 512
  const host = new Host({
    memory: 32 * MiB,
    hypervisor: "kvm",
    reserved: 2 * MiB,
  });
  const tail = 64 * 1024;
  const vm = host.createDomain({
    memory: 2 * MiB,
    placement: "contiguous",
    memslots: readonlyTail
      ? [
        { gpa: 0, size: 2 * MiB - tail },
        { gpa: 2 * MiB - tail, size: tail, readonly: true },
      ]
      : [{ gpa: 0, size: 2 * MiB }],
  });
  if (touchAll) { for (let g = 0; g < 512; g++) vm.gpaToHpa(g * PAGE); }
  const hap = new NestedScheme({ hostPages: "2m", eventLog: 0 });
  hap.attach({ host, domain: vm, memory: vm.memory, mode });
  const pt = guestTable(vm);
  hap.loadCr3(pt.root);
  return { vm, hap, pt };
}

Deno.test("host 2M: a KVM domain maps 2 MiB only once the whole region is resident", () => {
  {
    const { vm, hap, pt } = kvmSetup(false);
    pt.map(0x1000, 0x10_0000, { user: true, writable: true });
    hap.access(0x1000, { kind: "write", value: 1 });
    // nothing was faulted in on the side: only the touched pages are resident
    assert.equal(hap.counters.extra.largeLeavesMapped, 0);
    assert.ok(vm.machineFrameCount < 16, `${vm.machineFrameCount} resident`);
    assert.equal(hap.secondStagePageShift(0x10_0000), 12);
  }
  // the VMM touches all of guest memory first (e.g. a memset at boot)
  const { vm, hap, pt } = kvmSetup(false, true);
  assert.equal(vm.lookup(0)! % 512, 0);
  pt.map(0x1000, 0x10_0000, { user: true, writable: true });
  hap.access(0x1000, { kind: "write", value: 1 });
  assert.equal(hap.counters.extra.largeLeavesMapped, 1);
  assert.equal(hap.counters.extra.leavesMapped, 1);
  assert.equal(hap.secondStagePageShift(0x1f_f000), 21);
  const r = hap.access(0x1000);
  assert.equal(r.outcome.kind === "ok" && r.outcome.value, 1);
});

Deno.test("host 2M: a region with a read-only memslot part stays 4 KiB", () => {
  const { vm, hap, pt } = kvmSetup(true);
  const m0 = vm.lookup(0)!;
  assert.ok([...Array(512).keys()].every((g) => vm.lookup(g) === m0 + g));
  pt.map(0x1000, 0x10_0000, { user: true, writable: true });
  pt.map(0x2000, 0x1f_f000, { user: true, writable: true }); // read-only slot
  assert.equal(
    hap.access(0x1000, { kind: "write", value: 3 }).outcome.kind,
    "ok",
  );
  assert.equal(hap.counters.extra.largeLeavesMapped, 0);
  assert.equal(hap.access(0x2000).outcome.kind, "ok");
  assert.equal(
    hap.access(0x2000, { kind: "write", value: 4 }).outcome.kind,
    "unbacked",
  );
  assert.equal(hap.counters.extra.largeLeavesMapped, 0);
  assert.equal(hap.secondStagePageShift(0x10_0000), 12);
});

Deno.test("host 2M: secondStagePageShift and hostPages validate loudly", () => {
  for (const bad of ["1g", "2M", 21, "4K"]) {
    assert.throws(
      () => new NestedScheme({ hostPages: bad as "2m" }),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message.includes(`hostPages "${String(bad)}" is invalid`) &&
        e.message.includes(`"4k" or "2m"`),
    );
  }
  assert.throws(
    () => new NestedScheme({ hostPages: "2m" }).secondStagePageShift(0),
    /not attached/,
  );
  const { hap } = setup({ hostPages: "2m" });
  for (const bad of [-1, 0.5, 2 ** 48, NaN]) {
    assert.throws(
      () => hap.secondStagePageShift(bad),
      (e: unknown) =>
        e instanceof RangeError && e.message.includes(`gpa ${String(bad)} `),
    );
  }
});

// ---- differential: the guest sees what it sees under the reference ----

const DIFF_MEMORY = 4 * MiB;

function runContiguous(
  ops: Parameters<typeof runActivity>[1],
  scheme: MmuScheme,
  hypervisor: HypervisorKind,
) {
  const host = new Host({ memory: 32 * MiB, hypervisor });
  const vm = host.createDomain({
    memory: DIFF_MEMORY,
    placement: "contiguous",
  });
  const os = new GuestOs(vm, { scheme, kernelHeapPages: 4 });
  return runActivity(os, ops);
}

for (const { name, options } of CONFIGS) {
  for (const hypervisor of ["xen", "kvm"] as const) {
    Deno.test(`host 2M = reference: ${name}, ${hypervisor}, contiguous, 25 seeds × 120 ops`, () => {
      let large = 0;
      for (let seed = 1; seed <= 25; seed++) {
        const ops = randomGuestActivity(seed * 7919 + name.length, 120, {
          memory: DIFF_MEMORY,
          kernelHeapPages: 4,
          balloon: hypervisor === "xen",
        });
        const ref = runContiguous(
          ops,
          new ReferenceScheme({ eventLog: 0 }),
          hypervisor,
        );
        const hap = new NestedScheme({
          ...options,
          hostPages: "2m",
          eventLog: 0,
        });
        const got = runContiguous(ops, hap, hypervisor);
        const i = firstDiff(ref, got);
        assert.equal(
          i,
          -1,
          i < 0
            ? ""
            : `seed ${seed}: ${
              describeDiff(i, ref[i]?.result, got[i]?.result, "nested 2m")
            }`,
        );
        large += hap.counters.extra.largeLeavesMapped;
      }
      // Xen populates the contiguous domain at once: 2 MiB leaves happen
      if (hypervisor === "xen") assert.ok(large > 0);
    });
  }
}

Deno.test("host: contiguous domains of 512+ frames start on a 2 MiB boundary", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 600 }), {
        minLength: 1,
        maxLength: 5,
      }),
      (sizes) => {
        const host = new Host({ memory: 32 * MiB, hypervisor: "xen" });
        for (const n of sizes) {
          const before = host.freeFrames;
          const vm = host.createDomain({
            memory: n * PAGE,
            placement: "contiguous",
          });
          const mfn0 = vm.lookup(0)!;
          // one run, gfn i at mfn0 + i
          for (const g of [0, n >> 1, n - 1]) {
            assert.equal(vm.lookup(g), mfn0 + g);
          }
          assert.equal(host.freeFrames, before - n);
          if (n >= 512) assert.equal(mfn0 % 512, 0, `${n} frames at ${mfn0}`);
        }
      },
    ),
    { seed: 2026, numRuns: 40 },
  );
});
