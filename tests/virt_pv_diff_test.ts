/**
 * Differential property test: a Xen PV guest (direct paging, entries
 * written by hypercall, machine frames in its tables) against the
 * reference scheme and against shadow paging, on seeded random guest
 * activity from the shared generator. Every operation's guest-visible
 * record must be equal — values, gpas, faults with error code and CR2, and
 * every guest page-table entry with its A/D bits, read back through the
 * M2P — except what `normalizeForPv` documents (the direct map's 4 KiB
 * structure, values read through the direct map). No ballooning (not
 * modelled for PV guests). After each run the hypervisor's invariant
 * checker must find nothing.
 */
import assert from "node:assert/strict";
import {
  type GuestOp,
  randomGuestActivity,
} from "../lib/virt/guest/activity.ts";
import { PvScheme } from "../lib/virt/pv/mod.ts";
import { ShadowScheme } from "../lib/virt/shadow/mod.ts";
import {
  assertSameAsReference,
  firstDiff,
  GUEST_MEMORY,
  normalizeForPv,
  runGuest,
} from "./_diff_harness.ts";

const SCALE = Number(Deno.env.get("PV_DIFF_SCALE") ?? 1);

const WORKLOADS: {
  name: string;
  seeds: number;
  ops: number;
  weights: Partial<Record<GuestOp["op"], number>>;
}[] = [
  { name: "mixed", seeds: 80, ops: 90, weights: {} },
  {
    name: "dense",
    seeds: 10,
    ops: 300,
    weights: { access: 120, fork: 6, mprotect: 10, invlpg: 0 },
  },
];

function activity(
  seed: number,
  n: number,
  weights: Partial<Record<GuestOp["op"], number>>,
) {
  return randomGuestActivity(seed, n, {
    memory: GUEST_MEMORY,
    kernelHeapPages: 4,
    balloon: false,
    weights,
  });
}

for (const w of WORKLOADS) {
  const seeds = Math.max(1, Math.round(w.seeds * SCALE));
  Deno.test(`pv = reference: ${w.name}, ${seeds} seeds × ${w.ops} ops`, () => {
    for (let seed = 1; seed <= seeds; seed++) {
      const ops = activity(seed * 7907 + 3, w.ops, w.weights);
      const schemes: PvScheme[] = [];
      assertSameAsReference(
        ops,
        {
          name: "pv",
          kernel: "pv",
          make: () => {
            const s = new PvScheme({ eventLog: 0 });
            schemes.push(s);
            return s;
          },
        },
        "xen",
        `${w.name}, seed ${seed}`,
      );
      for (const s of schemes) assert.deepEqual(s.mmu.audit(), []);
    }
  });
}

Deno.test("pv = shadow: mixed, 20 seeds × 90 ops", () => {
  for (let seed = 1; seed <= Math.max(1, Math.round(20 * SCALE)); seed++) {
    const ops = activity(seed * 31 + 1, 90, {});
    const pv = normalizeForPv(
      runGuest(ops, new PvScheme({ eventLog: 0 }), "xen", "pv"),
    );
    const sh = normalizeForPv(
      runGuest(ops, new ShadowScheme({ eventLog: 0 }), "xen"),
    );
    assert.equal(firstDiff(sh, pv), -1, `seed ${seed}`);
  }
});

Deno.test("pv: entry writes are hypercalls, batched for fork/munmap/exec; trees pinned by multicall", () => {
  const ops = activity(11, 300, { fork: 10, exec: 4, munmap: 8 });
  const pv = new PvScheme({ eventLog: 0 });
  runGuest(ops, pv, "xen", "pv");
  const c = pv.mmu.counters;
  assert.ok(c.updates > c.mmuUpdateCalls, "some batches hold several updates");
  assert.equal(pv.counters.exitsByReason["hypercall"], c.hypercalls);
  assert.equal(c.refused.EINVAL + c.refused.EPERM + c.refused.EBUSY, 0);
  assert.equal(pv.counters.entryWrites, 0); // never a direct write
  assert.ok(c.pins > 0 && c.unpins > 0 && c.validations >= c.pins);
  // whole trees are pinned and unpinned in multicalls of several calls
  assert.ok(c.multicalls > 0 && c.multicalledCalls > 2 * c.multicalls);
  assert.equal(
    pv.counters.exitsByReason["pf-bounce"],
    pv.counters.guestPageFaults,
  );
});
