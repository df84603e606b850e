/**
 * A TLB in front of Xen PV direct paging: the guest kernel reaches the
 * hypercalls through the front, Xen's flushes (NEW_BASEPTR, INVLPG_LOCAL,
 * TLB_FLUSH_LOCAL) reach the TLB, mmu_update flushes nothing, stores to
 * frames Xen holds as page tables always reach Xen, and the experiment
 * runner runs a PV configuration beside the others.
 */
import assert from "node:assert/strict";
import {
  createActivityGuest,
  randomGuestActivity,
  runActivity,
} from "../lib/virt/guest/activity.ts";
import { DIRECT_MAP, GuestOs } from "../lib/virt/guest/os.ts";
import { Host } from "../lib/virt/host.ts";
import { PvScheme } from "../lib/virt/pv/scheme.ts";
import { ReferenceScheme } from "../lib/virt/reference.ts";
import { TlbFront } from "../lib/virt/tlb_front.ts";
import { WALK_OK, WalkScratch } from "../lib/paging/walker.ts";
import { defaultConfigs, runExperiment } from "../lib/workload/experiment.ts";
import {
  forkExecChurn,
  mmapChurn,
  pointerChase,
  randomAccess,
} from "../lib/workload/generators.ts";
import { firstDiff } from "./_diff_harness.ts";

function pvGuest(front: TlbFront): GuestOs {
  const host = new Host({ memory: 32 * 2 ** 20 });
  return new GuestOs(host.createDomain({ memory: 4 * 2 ** 20 }), {
    scheme: front,
    kernel: "pv",
  });
}

Deno.test("differential: a TLB in front of PV changes no guest-visible outcome", () => {
  let hits = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const ops = randomGuestActivity(seed * 101 + 7, 300, {
      balloon: false,
      weights: { access: 80 },
    });
    const bare = runActivity(
      createActivityGuest({ scheme: new PvScheme({ eventLog: 0 }) }).os,
      ops,
    );
    // createActivityGuest picks the PV kernel from the scheme's hypercalls
    const front = new TlbFront(new PvScheme({ eventLog: 0 }), {
      tlb: { entries: seed % 2 === 0 ? 8 : 32, ways: 4 },
      psc: seed % 3 === 0,
    });
    const { os } = createActivityGuest({ scheme: front, kernel: "pv" });
    const fronted = runActivity(os, ops);
    assert.equal(firstDiff(bare, fronted), -1, `seed ${seed}`);
    assert.deepEqual((front.inner as PvScheme).mmu.audit(), []);
    hits += front.tlbCounters.hits;
  }
  assert.ok(hits > 100, `the TLBs were used (${hits} hits)`);
});

Deno.test("PV behind a TLB: Xen's flushes reach the TLB once each; mmu_update flushes nothing", () => {
  const front = new TlbFront(new PvScheme(), { tlb: { entries: 16, ways: 4 } });
  const pv = front.inner as PvScheme;
  assert.equal(front.paravirt, pv);
  const os = pvGuest(front);
  const a = os.spawn().pid, b = os.spawn().pid;
  os.switchTo(a);
  const va = os.mmap({ length: 2 * 4096 });
  os.access(va, { kind: "write", value: 1 });
  os.access(va + 4096, { kind: "write", value: 2 });
  front.resetCounters();
  assert.equal(os.access(va).value, 1);
  assert.equal(front.tlbCounters.hits, 1);
  // a context switch: xen_write_cr3 → NEW_BASEPTR, one flush (not two)
  const loads = pv.mmu.counters.baseptrLoads;
  os.switchTo(b);
  os.switchTo(a);
  assert.equal(pv.mmu.counters.baseptrLoads - loads, 2);
  assert.equal(front.tlbCounters.flushes, 2);
  os.access(va);
  assert.equal(front.tlbCounters.misses, 1);
  os.access(va + 4096);
  // INVLPG → MMUEXT_INVLPG_LOCAL: that page only
  os.invlpg(va);
  assert.equal(os.access(va + 4096).value, 2);
  assert.equal(front.tlbCounters.hits, 2);
  assert.equal(os.access(va).value, 1);
  assert.equal(front.tlbCounters.misses, 3);
  // TLB_FLUSH_LOCAL through the hypercall interface: everything non-global
  assert.ok(front.paravirt!.mmuextOp([{ cmd: "tlb-flush-local" }]).ok);
  os.access(va);
  assert.equal(front.tlbCounters.misses, 4);
  // mmu_update of the data PTE (made read-only) flushes nothing: the stale
  // writable entry is still used until the guest flushes, as on hardware
  os.access(va, { kind: "write", value: 5 });
  const s = new WalkScratch();
  assert.equal(
    pv.probeTranslation(s, Math.floor(va / 2 ** 32), va >>> 0, 0),
    WALK_OK,
  );
  const pte = s.entryAddr[s.steps - 1];
  const mem = os.domain.host.memory;
  const lo = mem.read32(pte), hi = mem.read32(pte + 4);
  const r = front.paravirt!.mmuUpdate([{ ptr: pte, lo: lo & ~2, hi }]);
  assert.ok(r.ok, String(r));
  const hitsBefore = front.tlbCounters.hits;
  assert.equal(os.access(va, { kind: "write", value: 6 }).result, "ok");
  assert.equal(front.tlbCounters.hits, hitsBefore + 1);
  os.invlpg(va);
  // after the guest's INVLPG the walk sees the read-only PTE: a #PF, bounced
  const bounces = pv.counters.extra.pfBounces;
  const w = os.access(va, { kind: "write", value: 7 });
  assert.ok(w.faults.length >= 1);
  assert.equal(pv.counters.extra.pfBounces, bounces + w.faults.length);
  assert.throws(
    () =>
      new GuestOs(
        new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }),
        {
          scheme: new TlbFront(new ReferenceScheme()),
          kernel: "pv",
        },
      ),
    /scheme "reference\+tlb" cannot run a PV kernel: expected a PvScheme \(or a TlbFront around one\)/,
  );
});

Deno.test("PV behind a TLB: a store to a frame that became a page table reaches Xen (ptwr) despite a stale writable entry", () => {
  const front = new TlbFront(new PvScheme(), { tlb: { entries: 16, ways: 4 } });
  const pv = front.inner as PvScheme;
  const os = pvGuest(front);
  os.switchTo(os.spawn().pid);
  const va = os.mmap({ length: 4096 });
  const gpa = os.access(va, { kind: "write", value: 0 }).gpa!;
  os.munmap(va, 4096); // the frame is free for the kernel to reuse…
  const dva = DIRECT_MAP.toBigInt() + BigInt(gpa);
  const k = { user: false, kind: "write" as const, value: 0 };
  assert.equal(os.access(dva, k).result, "ok");
  assert.equal(os.access(dva, k).result, "ok");
  assert.ok(front.tlbCounters.hits >= 1); // a writable direct-map entry cached
  // …as an L1 table: direct-map PTE made read-only (mmu_update: no flush), then pinned
  const s = new WalkScratch();
  const dHi = Number(dva >> 32n), dLo = Number(dva & 0xffffffffn);
  assert.equal(pv.probeTranslation(s, dHi, dLo, 0), WALK_OK);
  const pte = s.entryAddr[s.steps - 1];
  const mem = os.domain.host.memory;
  const hc = front.paravirt!;
  assert.ok(
    hc.mmuUpdate([{
      ptr: pte,
      lo: mem.read32(pte) & ~2,
      hi: mem.read32(pte + 4),
    }]).ok,
  );
  const mfn = os.domain.lookup(gpa / 4096)!;
  const pin = hc.mmuextOp([{ cmd: "pin-l1", mfn }]);
  assert.ok(pin.ok, String(pin));
  assert.equal(pv.writeTrapped(mfn), true);
  // the TLB still holds the writable entry, but the store goes to Xen
  const hits = front.tlbCounters.hits;
  const ptwr = pv.counters.exitsByReason.ptwr ?? 0;
  assert.equal(os.access(dva, k).result, "ok");
  assert.equal(front.tlbCounters.hits, hits);
  assert.equal(pv.counters.exitsByReason.ptwr, ptwr + 1);
  assert.deepEqual(pv.mmu.audit(), []);
});

Deno.test("runner: PV runs behind the same TLB as the others", () => {
  for (
    const w of [
      randomAccess({ pages: 96, updates: 400, seed: 2 }),
      pointerChase({ nodes: 80, laps: 2 }),
      mmapChurn({ rounds: 6 }),
    ]
  ) {
    const r = runExperiment(w);
    const pv = r.row("pv"), native = r.row("native");
    assert.equal(pv.scheme, "pv");
    assert.equal(pv.checksum, native.checksum, w.name);
    assert.equal(pv.errors, 0);
    // the same translations are cached and flushed
    assert.equal(pv.tlbHits, native.tlbHits, w.name);
    assert.equal(pv.tlbMisses, native.tlbMisses, w.name);
  }
  // fork churn: native < PV < shadow in exits and cycles (Xen SOSP 2003's ordering)
  const f = runExperiment(forkExecChurn({ rounds: 4, pages: 12, seed: 9 }));
  const [n, p, s] = ["native", "pv", "shadow"].map((c) => f.row(c));
  assert.equal(n.vmExits, 0);
  assert.ok(
    p.vmExits > 0 && p.vmExits < s.vmExits,
    `${p.vmExits} ${s.vmExits}`,
  );
  assert.ok(p.overhead > 1 && p.overhead < s.overhead);
  assert.ok(
    f.exitRows.some((x) => x.config === "pv" && x.reason === "hypercall"),
  );
  // PV needs a Xen host: left out of the defaults under KVM
  assert.ok(!defaultConfigs("kvm").some((c) => c.name === "pv"));
  const k = runExperiment(pointerChase({ nodes: 8, laps: 1 }), {
    hypervisor: "kvm",
  });
  assert.throws(() => k.row("pv"), /"pv" is not in this experiment/);
  // a supplied PV scheme gets a PV kernel
  const sup = runExperiment(pointerChase({ nodes: 8, laps: 1 }), {
    configs: defaultConfigs().slice(0, 1),
    schemes: { "pv-again": () => new PvScheme({ eventLog: 0 }) },
  });
  assert.equal(sup.row("pv-again").checksum, sup.row("native").checksum);
  assert.equal(sup.row("pv-again").scheme, "pv");
});
