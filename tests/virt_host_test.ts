/**
 * Host, machine frames, Xen domains: P2M/M2P consistency under random
 * allocate / balloon / destroy sequences, placement, errors.
 *
 * Reproduce a property failure with the seed and path fast-check prints.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  FrameTable,
  GuestMemoryError,
  Host,
  INVALID_FRAME,
  runsOf,
  XenDomain,
} from "../lib/virt/mod.ts";

const MiB = 2 ** 20;

Deno.test("FrameTable agrees with a Map under random sets", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: 5000 }),
          fc.oneof(
            fc.constant(INVALID_FRAME),
            fc.integer({ min: 0, max: 0xfffffffe }),
          ),
        ),
        { maxLength: 300 },
      ),
      (sets) => {
        const t = new FrameTable(5001, "t");
        const m = new Map<number, number>();
        for (const [i, v] of sets) {
          t.set(i, v);
          if (v === INVALID_FRAME) m.delete(i);
          else m.set(i, v);
        }
        assert.equal(t.count, m.size);
        for (const [i, v] of m) assert.equal(t.get(i), v);
        assert.deepEqual(
          [...t.entries()],
          [...m].sort((a, b) => a[0] - b[0]),
        );
        for (let i = 0; i < 5001; i += 97) {
          assert.equal(t.get(i), m.get(i) ?? INVALID_FRAME);
        }
      },
    ),
    { seed: 11, numRuns: 100 },
  );
  assert.throws(() => new FrameTable(0), /length 0 is invalid/);
  assert.throws(() => new FrameTable(10).set(3, -1), /value -1 at index 3/);
  assert.throws(() => new FrameTable(10).get(10), /index 10 is out of range/);
});

Deno.test("runsOf merges consecutive pairs", () => {
  assert.deepEqual(runsOf([]), []);
  assert.deepEqual(runsOf([[0, 5], [1, 6], [2, 8], [4, 9]]), [
    { gfn: 0, mfn: 5, count: 2 },
    { gfn: 2, mfn: 8, count: 1 },
    { gfn: 4, mfn: 9, count: 1 },
  ]);
});

/** Every invariant a host and its Xen domains must keep. */
function checkHost(host: Host): void {
  assert.deepEqual(host.checkConsistency(), []);
  let used = 0;
  for (const d of host.domains) {
    assert.ok(d instanceof XenDomain);
    let n = 0;
    for (const [gfn, mfn] of d.p2mPairs()) {
      n++;
      assert.equal(host.m2p(mfn), gfn, `M2P of ${mfn}`);
      const o = host.ownerOf(mfn);
      assert.equal(o.kind === "domain" && o.domain, d);
      assert.equal(d.lookup(gfn), mfn);
    }
    assert.equal(n, d.backedFrames);
    assert.equal(d.machineFrameCount, d.backedFrames);
    used += n;
  }
  const hyp = Object.values(host.hypervisorFrames()).reduce((a, b) => a + b, 0);
  assert.equal(host.freeFrames + used + hyp, host.frameCount);
}

type HostOp =
  | { k: "create"; pages: number; extra: number; contiguous: boolean }
  | { k: "out"; d: number; pick: number[] }
  | { k: "in"; d: number; pick: number[] }
  | { k: "to"; d: number; frac: number }
  | { k: "destroy"; d: number }
  | { k: "hyp"; n: number };

const hostOp: fc.Arbitrary<HostOp> = fc.oneof(
  fc.record({
    k: fc.constant("create" as const),
    pages: fc.integer({ min: 1, max: 300 }),
    extra: fc.integer({ min: 0, max: 100 }),
    contiguous: fc.boolean(),
  }),
  fc.record({
    k: fc.constant("out" as const),
    d: fc.nat(),
    pick: fc.array(fc.nat(), { maxLength: 40 }),
  }),
  fc.record({
    k: fc.constant("in" as const),
    d: fc.nat(),
    pick: fc.array(fc.nat(), { maxLength: 40 }),
  }),
  fc.record({
    k: fc.constant("to" as const),
    d: fc.nat(),
    frac: fc.double({ min: 0, max: 1, noNaN: true }),
  }),
  fc.record({ k: fc.constant("destroy" as const), d: fc.nat() }),
  fc.record({
    k: fc.constant("hyp" as const),
    n: fc.integer({ min: 1, max: 20 }),
  }),
);

Deno.test("P2M and M2P stay consistent under random allocate / balloon / destroy sequences", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1000 }),
      fc.array(hostOp, { minLength: 1, maxLength: 40 }),
      (seed, ops) => {
        const host = new Host({ memory: 4 * MiB, seed, reserved: 64 * 1024 });
        const hypFrames: number[] = [];
        for (const op of ops) {
          const doms = host.domains as XenDomain[];
          const free = host.freeFrames;
          try {
            switch (op.k) {
              case "create":
                host.createDomain({
                  memory: op.pages * 4096,
                  addressSpace: (op.pages + op.extra) * 4096,
                  placement: op.contiguous ? "contiguous" : "scatter",
                });
                break;
              case "out": {
                if (doms.length === 0) break;
                const d = doms[op.d % doms.length];
                const pop = [...d.p2mPairs()].map(([g]) => g);
                const gfns = [
                  ...new Set(
                    op.pick.map((i) => pop[i % Math.max(1, pop.length)]),
                  ),
                ]
                  .filter((g) => g !== undefined);
                d.balloonOut(gfns);
                for (const g of gfns) assert.equal(d.p2m(g), undefined);
                break;
              }
              case "in": {
                if (doms.length === 0) break;
                const d = doms[op.d % doms.length];
                const holes: number[] = [];
                for (let g = 0; g < d.gfnCount; g++) {
                  if (!d.isBacked(g)) holes.push(g);
                }
                const gfns = [
                  ...new Set(
                    op.pick.map((i) => holes[i % Math.max(1, holes.length)]),
                  ),
                ]
                  .filter((g) => g !== undefined);
                d.balloonIn(gfns);
                for (const g of gfns) assert.notEqual(d.p2m(g), undefined);
                break;
              }
              case "to": {
                if (doms.length === 0) break;
                const d = doms[op.d % doms.length];
                const target = Math.floor(op.frac * d.gfnCount);
                d.balloonTo(target);
                assert.equal(d.backedFrames, target);
                break;
              }
              case "destroy": {
                if (doms.length === 0) break;
                const d = doms[op.d % doms.length];
                const held = d.machineFrameCount;
                host.destroyDomain(d);
                assert.equal(host.freeFrames, free + held);
                assert.equal(d.destroyed, true);
                break;
              }
              case "hyp":
                for (let i = 0; i < op.n; i++) {
                  hypFrames.push(
                    host.allocHypervisorFrame({ purpose: "shadow pages" }),
                  );
                }
                if (hypFrames.length > 30) {
                  for (const m of hypFrames.splice(0, 10)) {
                    host.freeHypervisorFrame(m);
                  }
                }
                break;
            }
          } catch (e) {
            // running out of machine memory is allowed, and must change nothing
            if (
              !(e instanceof RangeError) ||
              !/out of machine memory/.test(e.message)
            ) {
              throw e;
            }
            assert.equal(
              host.freeFrames,
              free,
              "a failed operation changed the free count",
            );
          }
          checkHost(host);
        }
      },
    ),
    { seed: 4242, numRuns: 150 },
  );
});

Deno.test("contiguous placement gives one run; scatter is seeded", () => {
  const host = new Host({ memory: 64 * MiB, seed: 9 });
  const c = host.createDomain({ memory: 8 * MiB, placement: "contiguous" });
  assert.deepEqual(c.p2mRuns().length, 1);
  const p2m = (seed: number) => {
    const h = new Host({ memory: 64 * MiB, seed });
    const d = h.createDomain({ memory: 2 * MiB });
    return [...d.p2mPairs()];
  };
  assert.deepEqual(p2m(3), p2m(3));
  assert.notDeepEqual(p2m(3), p2m(4));
  const runs = host.createDomain({ memory: 8 * MiB }).p2mRuns();
  assert.ok(runs.length > 1000, `scattered: ${runs.length} runs`);
});

Deno.test("running out of machine memory fails cleanly", () => {
  const host = new Host({ memory: 2 * MiB, reserved: 0 });
  const a = host.createDomain({ memory: MiB, addressSpace: 4 * MiB });
  const free = host.freeFrames;
  assert.throws(
    () => host.createDomain({ memory: 2 * MiB }),
    /cannot create domain "vm2" with 2 MiB: out of machine memory \(256 frames free, 512 needed\)/,
  );
  assert.equal(host.freeFrames, free);
  assert.equal(host.domains.length, 1);
  const holes = Array.from({ length: 300 }, (_, i) => 256 + i);
  assert.throws(() => a.balloonIn(holes), /out of machine memory/);
  assert.equal(a.backedFrames, 256);
  checkHost(host);
  // the domain id was not used up by the failure
  assert.equal(host.createDomain({ memory: 4096 }).id, 2);
});

Deno.test("bad host and domain options are rejected naming the value", () => {
  assert.throws(
    () => new Host({ memory: 12345 }),
    /host memory 12345 is invalid/,
  );
  assert.throws(() => new Host({ memory: 2 ** 41 }), RangeError);
  assert.throws(
    () => new Host({ hypervisor: "vmware" as "xen" }),
    /hypervisor "vmware" is invalid: expected "xen" or "kvm"/,
  );
  assert.throws(
    () => new Host({ memory: MiB, reserved: MiB }),
    /reserved 1048576/,
  );
  const host = new Host({ memory: 16 * MiB });
  assert.throws(
    () => host.createDomain({ memory: 100 }),
    /memory 100 is invalid/,
  );
  assert.throws(() => host.createDomain({ memory: 0 }), RangeError);
  assert.throws(
    () => host.createDomain({ memory: MiB, addressSpace: 4096 }),
    /addressSpace 4096 is invalid/,
  );
  assert.throws(
    () => host.createDomain({ memory: MiB, placement: "random" as "scatter" }),
    /placement "random"/,
  );
  assert.throws(
    () => host.createDomain({ memory: MiB, memslots: [] }),
    /memslots are a KVM notion/,
  );
  assert.throws(() => host.createDomain(null as never), TypeError);
  const d = host.createDomain({ name: "x", memory: MiB });
  assert.throws(() => d.balloonOut([1, 1]), /gfn 0x1 is listed twice/);
  assert.throws(() => d.balloonOut([-1]), /gfn -1 is invalid/);
  assert.throws(() => d.balloonIn([3]), /gfn 0x3: it is already populated/);
  assert.throws(
    () => d.p2m(256),
    /gfn 256 is invalid: expected an integer in \[0, 256\)/,
  );
  assert.throws(() => host.ownerOf(4096), /machine frame 4096 is invalid/);
  assert.throws(
    () => host.freeHypervisorFrame(d.p2m(0)!),
    /owned by domain 1 "x", not owned by the hypervisor/,
  );
  assert.deepEqual(host.checkConsistency(), []);
});

Deno.test("a destroyed domain's memory gives a clear error", () => {
  const host = new Host({ memory: 16 * MiB });
  const d = host.createDomain({ name: "gone", memory: MiB });
  d.memory.write32(0x100, 7);
  host.destroyDomain(d);
  assert.throws(() => d.memory.read32(0x100), GuestMemoryError);
  assert.throws(
    () => d.memory.read32(0x100),
    /domain "gone": guest-physical address 0x100 belongs to a destroyed domain/,
  );
  assert.throws(() => host.destroyDomain(d), /not a live domain/);
  assert.throws(() => d.balloonIn([0]), /was destroyed/);
  assert.deepEqual(host.checkConsistency(), []);
});

Deno.test("hypervisor frames are counted by purpose and freed", () => {
  const host = new Host({ memory: 16 * MiB });
  const base = host.hypervisorFrames();
  assert.deepEqual(base, { Xen: 256 });
  const m = host.allocHypervisorFrame({ purpose: "shadow pages" });
  assert.deepEqual(host.ownerOf(m), {
    kind: "hypervisor",
    purpose: "shadow pages",
  });
  assert.equal(host.hypervisorFrames()["shadow pages"], 1);
  host.freeHypervisorFrame(m);
  assert.deepEqual(host.hypervisorFrames(), base);
  assert.throws(() => host.freeHypervisorFrame(m), /it is free/);
  assert.equal(host.m2p(0), undefined);
});
