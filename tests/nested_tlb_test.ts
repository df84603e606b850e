/**
 * The VPID/ASID-tagged TLB wired into the nested scheme: VMs sharing one
 * physical CPU's TLB switch without a flush and never see each other's
 * translations; guest CR3 loads and INVLPG drop what SDM §4.10.4.1 and
 * §28.4.3.1 say for the current VPID only; second-stage changes INVEPT the
 * VM's EPTP; VPID 0 flushes on every VM entry and exit; cached entries
 * keep guest-visible outcomes exact (a write through an entry cached
 * before D was set walks again), and the whole scheme stays equal to the
 * reference on random guest activity.
 */
import assert from "node:assert/strict";
import { PageTable } from "../lib/paging/builder.ts";
import type { Memory } from "../lib/memory/memory.ts";
import { X86_64_4LEVEL } from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { Host, type HypervisorKind } from "../lib/virt/host.ts";
import type { Domain } from "../lib/virt/domain.ts";
import { type NestedOptions, NestedScheme } from "../lib/virt/nested/scheme.ts";
import { TaggedTlb } from "../lib/tlb/tagged.ts";
import { Random } from "../lib/util/random.ts";
import { GuestOs } from "../lib/virt/guest/os.ts";
import {
  type ActivityRecord,
  type GuestOp,
  randomGuestActivity,
  runActivity,
} from "../lib/virt/guest/activity.ts";
import type { MmuScheme } from "../lib/virt/scheme.ts";
import { ReferenceScheme } from "../lib/virt/reference.ts";

const mode = pagingMode(X86_64_4LEVEL);
const VA = 0x40_0000;

interface Vm {
  scheme: NestedScheme;
  pt: PageTable<Memory>;
  domain: Domain;
}

/** `n` VMs on one host sharing `tlb`; VM i maps 8 pages at VA → gpa 0x10000.. with value i·1000+page there. */
function vms(n: number, tlb: TaggedTlb, options: NestedOptions[] = []): Vm[] {
  const host = new Host({ memory: 64 * 2 ** 20, hypervisor: "kvm" });
  const out: Vm[] = [];
  for (let i = 0; i < n; i++) {
    const domain = host.createDomain({ memory: 2 ** 20 });
    const scheme = new NestedScheme({ tlb, vpid: i + 1, ...options[i] });
    scheme.attach({ host, domain, memory: domain.memory, mode });
    const pt = new PageTable(domain.memory.unwatched, { mode });
    for (let p = 0; p < 8; p++) {
      pt.map(VA + p * 4096, 0x10000 + p * 4096, {
        user: true,
        writable: true,
        global: p === 7,
      });
      domain.memory.unwatched.write32(0x10000 + p * 4096, i * 1000 + p);
    }
    scheme.loadCr3(pt.root);
    out.push({ scheme, pt, domain });
  }
  return out;
}

function read(s: NestedScheme, va: number): number {
  const r = s.access(va);
  assert.equal(r.outcome.kind, "ok");
  return r.outcome.kind === "ok" ? r.outcome.value : -1;
}

Deno.test("shared TLB: switching VMs without a flush never returns another VM's translation (seeded)", () => {
  const tlb = new TaggedTlb({ combined: { entries: 32, ways: 4 } });
  const all = vms(3, tlb);
  const rnd = new Random(6);
  const truth = all.map((_, i) =>
    Array.from({ length: 8 }, (_, p) => i * 1000 + p)
  );
  let current = -1;
  for (let step = 0; step < 3000; step++) {
    const i = rnd.int(3), p = rnd.int(8);
    if (i !== current) {
      assert.equal(all[i].scheme.enter(), 0, "no flush on a VM switch");
      current = i;
    }
    const s = all[i].scheme, va = VA + p * 4096 + 4 * rnd.int(4);
    if (rnd.int(4) === 0) {
      const v = rnd.int(1 << 30);
      assert.equal(
        s.access(va, { kind: "write", value: v }).outcome.kind,
        "ok",
      );
      if (va % 4096 === 0) truth[i][p] = v;
    } else if (va % 4096 === 0) {
      assert.equal(read(s, va), truth[i][p], `VM ${i} page ${p}`);
    } else {
      read(s, va);
    }
  }
  const hits = all.reduce((n, v) => n + v.scheme.counters.extra.tlbHits, 0);
  assert.ok(hits > 2000, `TLB hits ${hits}`);
  assert.equal(tlb.counters.transitionFlushes, 0);
});

Deno.test("guest CR3 load drops only the current VPID's non-global entries; INVLPG only its page (globals too)", () => {
  const tlb = new TaggedTlb({ combined: { entries: 64, ways: 64 } });
  const [a, b] = vms(2, tlb);
  for (const v of [a, b]) {
    for (let p = 0; p < 8; p++) read(v.scheme, VA + p * 4096);
  }
  const combined = () => tlb.entries().filter((e) => e.kind === "combined");
  assert.equal(combined().length, 16);
  a.scheme.loadCr3(a.pt.root);
  // VM a keeps its global page only; VM b keeps everything
  const left = tlb.entries().filter((e) => e.kind === "combined");
  const kept = left.filter((e) => e.vpid === 1);
  assert.equal(kept.length, 1);
  assert.equal(kept[0].global, true);
  assert.equal(kept[0].hpa % 4096, 0);
  assert.equal(
    kept[0].hpa,
    a.domain.mfnForAccess(0x17, false) * 4096, // page 7's frame
  );
  assert.equal(left.filter((e) => e.vpid === 2).length, 8);
  // INVLPG of the global page in VM b: that page of VPID 2 only
  b.scheme.invlpg(0, VA + 7 * 4096);
  assert.equal(tlb.entries().filter((e) => e.vpid === 2).length, 7);
  assert.equal(tlb.entries().filter((e) => e.vpid === 1).length, 1);
  const before = b.scheme.counters.extra.tlbMisses;
  read(b.scheme, VA + 7 * 4096);
  read(b.scheme, VA + 6 * 4096);
  assert.equal(b.scheme.counters.extra.tlbMisses, before + 1); // page 7 walked again, page 6 hit
});

Deno.test("a stale entry is used until INVLPG (the guest's duty), then the new mapping", () => {
  const tlb = new TaggedTlb();
  const [a] = vms(1, tlb);
  assert.equal(read(a.scheme, VA), 0);
  a.pt.unmap(VA);
  a.pt.map(VA, 0x10000 + 3 * 4096, { user: true, writable: true });
  assert.equal(read(a.scheme, VA), 0, "TLB hit on the old translation");
  a.scheme.invlpg(0, VA);
  assert.equal(read(a.scheme, VA), 3);
});

Deno.test("second-stage change: INVEPT single-context drops this VM's EPTP only", () => {
  const tlb = new TaggedTlb({ combined: { entries: 64, ways: 64 } });
  const [a, b] = vms(2, tlb);
  for (const v of [a, b]) {
    for (let p = 0; p < 4; p++) read(v.scheme, VA + p * 4096);
  }
  const inveptBefore = tlb.counters.invept;
  a.scheme.p2mChanged(0x10, 1);
  assert.equal(tlb.counters.invept, inveptBefore + 1);
  assert.equal(tlb.entries().filter((e) => e.vpid === 1).length, 0);
  assert.equal(tlb.entries().filter((e) => e.vpid === 2).length, 4);
  assert.equal(read(a.scheme, VA + 4096), 1); // walks (and faults the leaf) again
});

Deno.test("VPID 0: every VM entry and exit flushes VPID 0's entries", () => {
  const tlb = new TaggedTlb();
  const [a] = vms(1, tlb, [{ vpid: 0 }]);
  read(a.scheme, VA); // exits on the way: each flushed
  read(a.scheme, VA);
  assert.equal(a.scheme.counters.extra.tlbHits, 1);
  assert.ok(tlb.counters.transitionFlushes >= a.scheme.counters.vmExits);
  assert.equal(a.scheme.enter(), 1); // the cached page
  read(a.scheme, VA);
  assert.equal(a.scheme.counters.extra.tlbHits, 1); // walked again
  assert.throws(
    () => new NestedScheme({ stage: "npt", vpid: 0, tlb }),
    /ASID 0 is invalid/,
  );
  assert.throws(() => new NestedScheme({ vpid: 65536 }), /vpid 65536/);
});

Deno.test("exact outcomes: an entry filled by a read has no W until D is set; the write walks and sets D", () => {
  for (const options of [{}, { ad: true }, { stage: "npt" as const }]) {
    const tlb = new TaggedTlb();
    const [a] = vms(1, tlb, [options]);
    read(a.scheme, VA);
    assert.equal(a.pt.lookup(VA).steps[3].flags.dirty, false);
    const misses = a.scheme.counters.extra.tlbMisses;
    a.scheme.access(VA, { kind: "write", value: 5 });
    assert.equal(a.scheme.counters.extra.tlbMisses, misses + 1);
    assert.equal(a.pt.lookup(VA).steps[3].flags.dirty, true);
    a.scheme.access(VA, { kind: "write", value: 6 });
    assert.equal(a.scheme.counters.extra.tlbMisses, misses + 1); // now a hit
    assert.equal(read(a.scheme, VA), 6);
    // a supervisor-only page is never served to a user access from the TLB
    a.pt.map(VA + 0x10_0000, 0x20000, { user: false });
    assert.equal(
      a.scheme.access(VA + 0x10_0000, { user: false }).outcome.kind,
      "ok",
    );
    assert.equal(
      a.scheme.access(VA + 0x10_0000, { user: true }).outcome.kind,
      "page-fault",
    );
  }
});

// ---- differential: TLB (and caches) on, outcomes = the reference ----

const GUEST_MEMORY = 2 * 2 ** 20;

function run(
  ops: readonly GuestOp[],
  scheme: MmuScheme,
  hypervisor: HypervisorKind,
): ActivityRecord[] {
  const host = new Host({ memory: 32 * 2 ** 20, hypervisor });
  const vm = host.createDomain({ memory: GUEST_MEMORY });
  const os = new GuestOs(vm, { scheme, kernelHeapPages: 4 });
  return runActivity(os, ops);
}

/**
 * The record with accessed flags (bit 5) masked in `inspect` dumps: a TLB
 * hit on a global translation after a CR3 load does not walk the new
 * address space's tables, so it does not set their A flags (SDM §4.8: A
 * is set by walks), while the TLB-less reference walks them every time.
 */
function maskAccessed(r: ActivityRecord): unknown {
  return JSON.parse(
    JSON.stringify(r).replace(
      /(E\[\d+\] = )0x([0-9a-f]+)/g,
      (_m, lhs: string, hex: string) =>
        `${lhs}0x${(BigInt("0x" + hex) & ~0x20n).toString(16)}`,
    ),
  );
}

for (const stage of ["ept", "npt"] as const) {
  for (const hypervisor of ["xen", "kvm"] as const) {
    Deno.test(`nested with a tagged TLB = reference: ${stage}, ${hypervisor}, 30 seeds × 120 ops`, () => {
      let hits = 0;
      for (let seed = 1; seed <= 30; seed++) {
        const ops = randomGuestActivity(seed * 104729 + stage.length, 120, {
          memory: GUEST_MEMORY,
          kernelHeapPages: 4,
          balloon: hypervisor === "xen",
        });
        const ref = run(ops, new ReferenceScheme({ eventLog: 0 }), hypervisor);
        const scheme = new NestedScheme({
          stage,
          eventLog: 0,
          tlb: new TaggedTlb({ combined: { entries: 16, ways: 4 } }),
          vpid: 1 + (seed % 7),
          caches: { guestPsc: {}, nestedTlb: {} },
        });
        const n = run(ops, scheme, hypervisor);
        for (let i = 0; i < ref.length; i++) {
          assert.deepEqual(
            maskAccessed(n[i]),
            maskAccessed(ref[i]),
            `seed ${seed}, op ${i}: ${JSON.stringify(ops[i])}`,
          );
        }
        hits += scheme.counters.extra.tlbHits;
      }
      assert.ok(hits > 100, `TLB hits ${hits}`);
    });
  }
}
