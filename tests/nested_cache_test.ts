/**
 * Walk caches of the 2-D walk (guest PSC, nested TLB, host PSC; Bhargava
 * et al., ASPLOS 2008): guest-visible outcomes stay those of the reference
 * (the differential harness of nested_diff_test.ts with caches on),
 * reference counts drop as expected on repeated walks, skipped references
 * are tagged in the record and drawn in the grid, and each invalidation
 * drops exactly what it should.
 */
import assert from "node:assert/strict";
import { FrameAllocator, PhysicalMemory } from "../lib/memory/memory.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { X86_64_4LEVEL } from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { ACCESS_USER, ACCESS_WRITE } from "../lib/paging/walker.ts";
import { EPT_4LEVEL, eptMap, eptMode, nptMode } from "../lib/paging/ept.ts";
import {
  NESTED_OK,
  nestedRefs,
  NestedWalker,
  type NestedWalkerOptions,
} from "../lib/virt/nested/walk.ts";
import { NestedWalkRecord } from "../lib/virt/nested/record.ts";
import { PrefixCache } from "../lib/virt/nested/cache.ts";
import { nestedWalkToSvg } from "../lib/view/nested_svg.ts";
import { Host, type HypervisorKind } from "../lib/virt/host.ts";
import { GuestOs } from "../lib/virt/guest/os.ts";
import {
  type ActivityRecord,
  type GuestOp,
  randomGuestActivity,
  runActivity,
} from "../lib/virt/guest/activity.ts";
import type { MmuScheme } from "../lib/virt/scheme.ts";
import { ReferenceScheme } from "../lib/virt/reference.ts";
import { type NestedOptions, NestedScheme } from "../lib/virt/nested/scheme.ts";

const OFFSET = 2 ** 30;
const ALL: NestedWalkerOptions = {
  guestPsc: { entries: 16 },
  nestedTlb: { entries: 32 },
  hostPsc: { entries: 16 },
};

/** A 4×4 walker (EPT or NPT, hpa = gpa + 1 GiB) with pages at 0x7f_4000_0000.. mapped. */
function setup(stage: "ept" | "npt", caches: NestedWalkerOptions) {
  const gmode = pagingMode(X86_64_4LEVEL);
  const guest = new PhysicalMemory({ size: 8 << 20 });
  const gframes = new FrameAllocator(guest, { start: 4 << 20 });
  const pt = new PageTable(guest, { mode: gmode, allocator: gframes });
  const va = 0x7f_4000_0000;
  for (let i = 0; i < 4; i++) {
    pt.map(va + i * 4096, i * 4096, { user: true, writable: true });
  }
  pt.map(va + 2 ** 30, 0x10000, { user: true }); // another PDPT slot
  const host = new PhysicalMemory({ size: 4 * 2 ** 30 });
  host.writeBytes(OFFSET + (4 << 20), guest.readBytes(4 << 20, 4 << 20));
  const hframes = new FrameAllocator(host, { start: 3 * 2 ** 30 });
  let w: NestedWalker;
  if (stage === "ept") {
    const mode = eptMode(EPT_4LEVEL);
    const root = hframes.alloc();
    for (let gpa = 0; gpa < 8 << 20; gpa += 4096) {
      eptMap(mode, host, () => hframes.alloc(), root, gpa, gpa + OFFSET);
    }
    w = new NestedWalker(gmode, { kind: "ept", mode }, host, root, caches);
  } else {
    const mode = nptMode({ levels: 4 });
    const npt = new PageTable(host, { mode, allocator: hframes });
    for (let gpa = 0; gpa < 8 << 20; gpa += 4096) {
      npt.map(gpa, gpa + OFFSET, { user: true, writable: true });
    }
    w = new NestedWalker(gmode, { kind: "npt", mode }, host, npt.root, caches);
  }
  const walk = (v: number, flags = ACCESS_USER) => {
    const r = w.walk(pt.root, Math.floor(v / 2 ** 32), v >>> 0, flags);
    assert.equal(r, NESTED_OK);
    return r;
  };
  return { w, pt, va, walk, host };
}

const skipped = (w: NestedWalker, why: string) =>
  nestedRefs(w).filter((r) => r.cached === why).length;

for (const stage of ["ept", "npt"] as const) {
  Deno.test(`caches (${stage}): the second walk of a neighbouring page makes 2 references, not 24`, () => {
    const { w, va, walk } = setup(stage, ALL);
    walk(va);
    walk(va); // A bits set now
    // all cached but the PTE itself: PDE hit, PT and data gfns in the nested TLB
    assert.equal(w.tableReads, 1);
    walk(va + 4096);
    // guest PSC hit on the PDE: gL4..gL2 (3 × 5 references) skipped; the
    // PT's gpa is in the nested TLB (4 skipped, the PTE read made); the new
    // data gfn misses the nested TLB but hits the host PSC at its PDE (3
    // skipped, hL1 made)
    assert.equal(w.tableReads, 2);
    assert.equal(skipped(w, "guest-psc"), 15);
    assert.equal(skipped(w, "ntlb"), 4);
    assert.equal(skipped(w, "host-psc"), 3);
    // every cell accounted for, plus the new PTE's A write and the data
    assert.equal(w.refs, 24 + 1 + 1);
    assert.equal(w.made, 2 + 1 + 1);
    // a page in another PDPT slot: the PML4E is cached, 5 refs skipped
    walk(va + 2 ** 30);
    assert.equal(skipped(w, "guest-psc"), 5);
    assert.ok(w.tableReads < 24);
  });

  Deno.test(`caches (${stage}): each cache alone, and the skipped references' order`, () => {
    {
      const { w, va, walk } = setup(stage, { guestPsc: {} });
      walk(va);
      walk(va + 4096);
      assert.equal(w.tableReads, 5 + 4); // PTE row + final gpa
      const refs = nestedRefs(w);
      assert.deepEqual(
        refs.slice(0, 5).map((r) => [r.guest, r.host, r.cached, r.hpa]),
        [
          [4, 4, "guest-psc", -1],
          [4, 3, "guest-psc", -1],
          [4, 2, "guest-psc", -1],
          [4, 1, "guest-psc", -1],
          [4, "guest entry", "guest-psc", -1],
        ],
      );
      assert.equal(refs[15].cached, undefined);
      assert.deepEqual([refs[15].guest, refs[15].host], [1, 4]);
    }
    {
      const { w, va, walk } = setup(stage, { nestedTlb: {} });
      walk(va);
      walk(va);
      assert.equal(w.tableReads, 4); // the four guest entries; every gpa in the nested TLB
      assert.equal(skipped(w, "ntlb"), 20);
    }
    {
      const { w, va, walk } = setup(stage, { hostPsc: {} });
      walk(va);
      walk(va);
      // guest tables share one host PT (gpa 4 MiB..) and the data one too:
      // each host walk hits its PDE and reads hL1 only
      assert.equal(w.tableReads, 4 + 5);
      assert.equal(skipped(w, "host-psc"), 15);
    }
    {
      const { w, va, walk } = setup(stage, {});
      walk(va);
      walk(va + 4096);
      assert.equal(w.tableReads, 24); // off by default
      assert.equal(w.guestPsc, undefined);
    }
  });

  Deno.test(`caches (${stage}): invalidation drops exactly what it should`, () => {
    const { w, va, walk } = setup(stage, ALL);
    walk(va);
    walk(va + 4096);
    const g = w.guestPsc!, nt = w.nestedTlb!, hp = w.hostPsc!;
    const sizes = () => [g.size, nt.size, hp.size];
    const before = sizes();
    assert.ok(before.every((n) => n > 0), String(before));
    // guest INVLPG / CR3 load: guest dimension only
    assert.equal(w.invalidateGuest(), before[0]);
    assert.deepEqual(sizes(), [0, before[1], before[2]]);
    walk(va);
    assert.equal(skipped(w, "guest-psc"), 0);
    assert.equal(w.tableReads, 4); // guest entries read; every gpa in the nested TLB
    // INVEPT single-context of another EPTP drops nothing
    const root = w.hostRoot;
    w.hostRoot = root + 4096 * 1000;
    assert.equal(w.invept("single"), 0);
    w.hostRoot = root;
    const now = sizes();
    assert.equal(w.invept("single"), now[1] + now[2]);
    assert.deepEqual(sizes(), [now[0], 0, 0]);
    walk(va);
    // the PT's host walk refills the host PSC; the data gpa (another 2 MiB
    // of the same 1 GiB) then hits it at the PDPTE
    assert.equal(skipped(w, "ntlb"), 0);
    assert.equal(skipped(w, "host-psc"), 2);
    assert.equal(skipped(w, "guest-psc"), 15);
    assert.equal(w.tableReads, 4 + 1 + 2);
    const again = sizes();
    assert.equal(w.invept("global"), again[1] + again[2]);
    assert.equal(g.size, again[0]);
  });
}

Deno.test("caches: write permission is cached only once the host leaf is dirty (NPT, EPT A/D)", () => {
  const { w, va, walk } = setup("npt", { nestedTlb: {} });
  walk(va); // table pages: read; the guest A/D writes walk the host for W
  walk(va);
  walk(va, ACCESS_USER | ACCESS_WRITE); // the data gfn: clean → walk, set D
  assert.equal(skipped(w, "ntlb"), 16); // four guest rows hit; the data row walked
  walk(va, ACCESS_USER | ACCESS_WRITE);
  assert.equal(skipped(w, "ntlb"), 20);
});

Deno.test("caches: record and grid show skipped cells as cached", () => {
  const { w, va, walk } = setup("ept", ALL);
  walk(va);
  walk(va + 4096);
  const r = NestedWalkRecord.from(w, 0, (va + 4096) >>> 0);
  assert.equal(r.tableReads, 2);
  assert.equal(r.refs.filter((x) => x.cached !== undefined).length, 22);
  assert.match(r.toString(), /guest-psc/);
  assert.match(r.toString(), /2 table references \(22 skipped by caches\)/);
  const svg = nestedWalkToSvg(r);
  assert.match(svg, /data-cached="guest-psc"/);
  assert.match(svg, /data-cached="ntlb"/);
  assert.match(svg, /data-cached="host-psc"/);
  assert.match(svg, /<pattern /);
  assert.equal(svg, nestedWalkToSvg(r)); // deterministic
});

Deno.test("PrefixCache: validation, seeded replacement, counters", () => {
  assert.throws(() => new PrefixCache("x", { entries: 3 }), RangeError);
  assert.throws(
    () => new PrefixCache("x", { entries: 4, ways: 8 }),
    RangeError,
  );
  const run = (seed: number) => {
    const c = new PrefixCache("x", { entries: 4, ways: 4, seed });
    for (let i = 0; i < 12; i++) c.fill(0, 1, 0, i * 4096, i, 7);
    return Array.from(c.value);
  };
  assert.deepEqual(run(7), run(7));
  const c = new PrefixCache("x", { entries: 4, ways: 4 });
  for (let i = 0; i < 6; i++) c.fill(0, 1, 0, i * 4096, i, 1);
  assert.equal(c.counters.evictions, 2);
  assert.equal(c.lookup(0, 1, 0, 5 * 4096, 2), -1); // rights insufficient
  assert.equal(c.lookup(0, 1, 0, 5 * 4096, 1) >= 0, true);
  assert.deepEqual([c.counters.hits, c.counters.misses], [1, 1]);
});

// ---- differential: caches on, guest-visible outcomes = the reference ----

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

const CACHED: { name: string; options: NestedOptions }[] = [
  { name: "EPT 4-level", options: { caches: ALL } },
  { name: "EPT 4-level A/D", options: { ad: true, caches: ALL } },
  { name: "EPT 5-level A/D", options: { levels: 5, ad: true, caches: ALL } },
  { name: "NPT 4-level", options: { stage: "npt", caches: ALL } },
  // tiny caches: constant eviction
  {
    name: "EPT tiny",
    options: {
      caches: {
        guestPsc: { entries: 2, ways: 1 },
        nestedTlb: { entries: 2, ways: 2 },
        hostPsc: { entries: 1 },
      },
    },
  },
];

for (const { name, options } of CACHED) {
  for (const hypervisor of ["xen", "kvm"] as const) {
    Deno.test(`nested with caches = reference: ${name}, ${hypervisor}, 40 seeds × 120 ops`, () => {
      let hits = 0;
      for (let seed = 1; seed <= 40; seed++) {
        const ops = randomGuestActivity(seed * 7919 + name.length, 120, {
          memory: GUEST_MEMORY,
          kernelHeapPages: 4,
          balloon: hypervisor === "xen",
        });
        const ref = run(ops, new ReferenceScheme({ eventLog: 0 }), hypervisor);
        const scheme = new NestedScheme({ ...options, eventLog: 0 });
        const n = run(ops, scheme, hypervisor);
        for (let i = 0; i < ref.length; i++) {
          assert.deepEqual(
            n[i],
            ref[i],
            `seed ${seed}, op ${i}: ${JSON.stringify(ops[i])}`,
          );
        }
        const w = scheme.walker;
        hits += (w.guestPsc?.counters.hits ?? 0) +
          (w.nestedTlb?.counters.hits ?? 0);
      }
      assert.ok(hits > 0, "the caches were used");
    });
  }
}

Deno.test("nested scheme with caches: fewer references than without, same exits", () => {
  const ops = randomGuestActivity(11, 300, {
    memory: GUEST_MEMORY,
    kernelHeapPages: 4,
    weights: { access: 120, invlpg: 0 },
  });
  const plain = new NestedScheme({ eventLog: 0 });
  const cached = new NestedScheme({ eventLog: 0, caches: ALL });
  run(ops, plain, "kvm");
  run(ops, cached, "kvm");
  assert.equal(cached.counters.vmExits, plain.counters.vmExits);
  assert.equal(
    cached.counters.extra.nestedWalks,
    plain.counters.extra.nestedWalks,
  );
  assert.ok(
    cached.counters.extra.references < plain.counters.extra.references / 2,
    `${cached.counters.extra.references} vs ${plain.counters.extra.references}`,
  );
});
