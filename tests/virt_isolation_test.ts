/**
 * Isolation: whatever gpa a domain uses — random, out of range, ballooned
 * out, between memslots, or named by its own page tables — it reaches only
 * its own frames, or gets a clear error (raw memory) or a modelled outcome
 * (guest accesses). Never another domain's frame, never a crash.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type Domain,
  GuestMemoryError,
  GuestOs,
  Host,
  type HypervisorKind,
  ReferenceScheme,
} from "../lib/virt/mod.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import { X86_64_4LEVEL } from "../lib/paging/format.ts";

const MiB = 2 ** 20;

/** A host with three domains, one of them with holes. */
function setup(kind: HypervisorKind, seed: number): {
  host: Host<HypervisorKind>;
  doms: Domain[];
} {
  const host = new Host<HypervisorKind>({
    memory: 32 * MiB,
    hypervisor: kind,
    seed,
  });
  const a = host.createDomain({
    name: "a",
    memory: MiB,
    addressSpace: 2 * MiB,
  });
  const b = host.createDomain({ name: "b", memory: MiB });
  const c = host.createDomain({
    name: "c",
    memory: 512 * 1024,
    addressSpace: 4 * MiB,
  });
  // holes: ballooned-out gfns in a (Xen) or released pages (KVM); a gap in c
  a.balloonOut([5, 6, 7, 100]);
  if (kind === "kvm" && "addMemslot" in c) {
    (c as import("../lib/virt/mod.ts").KvmDomain).addMemslot({
      gpa: 3 * MiB,
      size: 64 * 1024,
    });
  }
  return { host, doms: [a, b, c] };
}

for (const kind of ["xen", "kvm"] as const) {
  Deno.test(`${kind}: random gpas reach only the domain's own frames, or give a clear error`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 2 }),
            fc.oneof(
              fc.integer({ min: 0, max: 5 * MiB }),
              fc.integer({ min: -10, max: 2 ** 53 }),
              fc.double(),
            ),
            fc.boolean(),
          ),
          { minLength: 1, maxLength: 50 },
        ),
        (seed, probes) => {
          const { host, doms } = setup(kind, seed);
          for (const [k, gpa, write] of probes) {
            const d = doms[k];
            try {
              const hpa = d.gpaToHpa(gpa, write);
              const o = host.ownerOf(Math.floor(hpa / 4096));
              assert.equal(
                o.kind === "domain" && o.domain,
                d,
                `gpa ${gpa} of ${d.name}`,
              );
              assert.equal(hpa % 4096, gpa % 4096);
              if (write) d.memory.write8(gpa, 0x5a);
              else d.memory.read8(gpa);
            } catch (e) {
              assert.ok(e instanceof RangeError, `${e}`);
              if (Number.isInteger(gpa) && gpa >= 0) {
                assert.ok(e instanceof GuestMemoryError, `${e}`);
                assert.match(
                  e.message,
                  new RegExp(
                    `domain "${d.name}": guest-physical address 0x${
                      gpa.toString(16)
                    } `,
                  ),
                );
              } else {
                assert.match(
                  e.message,
                  new RegExp(
                    `address ${
                      String(gpa).replace(/[.+]/g, "\\$&")
                    } is invalid`,
                  ),
                );
              }
            }
          }
          assert.deepEqual(host.checkConsistency(), []);
        },
      ),
      { seed: kind === "xen" ? 1 : 2, numRuns: 80 },
    );
  });

  Deno.test(`${kind}: writes in one domain never change another's memory`, () => {
    const { host, doms } = setup(kind, 3);
    const [a, b] = doms;
    const pattern = new Uint8Array(MiB).map((_, i) => (i * 7 + 3) & 0xff);
    b.memory.writeBytes(0, pattern);
    const rng = fc.sample(fc.integer({ min: 0, max: 3 * MiB }), {
      seed: 5,
      numRuns: 4000,
    });
    let errors = 0;
    for (const gpa of rng) {
      try {
        a.memory.write32(gpa - (gpa % 4), 0xffffffff);
      } catch (e) {
        assert.ok(e instanceof GuestMemoryError);
        errors++;
      }
    }
    assert.ok(errors > 0 && errors < rng.length, `${errors} errors`);
    assert.deepEqual(b.memory.readBytes(0, MiB), pattern);
    assert.deepEqual(host.checkConsistency(), []);
  });

  Deno.test(`${kind}: guest tables naming bad gpas give modelled outcomes, not another domain's data`, () => {
    const host = new Host<HypervisorKind>({
      memory: 32 * MiB,
      hypervisor: kind,
      seed: 8,
    });
    const a = host.createDomain({
      name: "a",
      memory: MiB,
      addressSpace: 2 * MiB,
    });
    const b = host.createDomain({ name: "b", memory: MiB });
    b.memory.write32(0x2000, 0xb0b0b0b0);
    const mode = pagingMode(X86_64_4LEVEL);
    const ref = new ReferenceScheme();
    ref.attach({ host, domain: a, memory: a.memory, mode });
    const pt = new PageTable(a.memory.unwatched, { mode });
    // a page of a's whose gfn is numerically b's mfn: still a's own frame
    const bMfn = Math.floor(b.gpaToHpa(0x2000) / 4096) % 256;
    pt.map(0x1000, bMfn * 4096, { user: true });
    pt.map(0x2000, 0x1f_f000, { user: true }); // beyond a's memory (unbacked)
    pt.map(0x3000, 0x40_0000, { user: true }); // beyond a's whole space
    a.balloonOut([9]);
    pt.map(0x4000, 0x9000, { user: true }); // ballooned out
    ref.loadCr3(pt.root);
    const own = ref.access(0x1000);
    assert.equal(own.outcome.kind, "ok");
    if (own.outcome.kind === "ok") {
      const o = host.ownerOf(Math.floor(own.outcome.hpa / 4096));
      assert.equal(o.kind === "domain" && o.domain, a);
      assert.notEqual(own.outcome.value, 0xb0b0b0b0);
    }
    for (
      const [va, problem] of [[0x2000, "unbacked"], [0x3000, "out-of-range"], [
        0x4000,
        kind === "xen" ? "unbacked" : "ok",
      ]] as const
    ) {
      const r = ref.access(va, { kind: "write", value: 1 });
      if (problem === "ok") {
        assert.equal(r.outcome.kind, "ok"); // KVM: a released page faults back in
        continue;
      }
      assert.equal(r.outcome.kind, "unbacked", `va ${va}`);
      if (r.outcome.kind === "unbacked") {
        assert.equal(r.outcome.problem, problem);
        assert.equal(r.outcome.inWalk, false);
      }
    }
    // a page-table entry pointing at a gpa with no memory: the walk stops
    const w = pt.lookup(0x1000);
    const pdpte = w.steps[1].entryAddress;
    a.memory.write32(pdpte, 0x1f_0007); // PDPT entry -> "PD" at an unbacked gpa
    const r = ref.access(0x1000);
    assert.equal(r.outcome.kind, "unbacked");
    if (r.outcome.kind === "unbacked") {
      assert.equal(r.outcome.inWalk, true);
      assert.match(r.outcome.message, /during the guest page walk/);
    }
    assert.equal(ref.counters.exitsByReason.mmio, kind === "xen" ? 4 : 3);
    assert.equal(b.memory.read32(0x2000), 0xb0b0b0b0);
    assert.deepEqual(host.checkConsistency(), []);
  });
}

Deno.test("a guest OS cannot reach another domain through its accesses", () => {
  const host = new Host({ memory: 64 * MiB, seed: 2 });
  const secret = host.createDomain({ name: "secret", memory: 2 * MiB });
  secret.memory.writeBytes(0, new Uint8Array(2 * MiB).fill(0xee));
  const os = new GuestOs(host.createDomain({ name: "guest", memory: 2 * MiB }));
  const p = os.spawn();
  os.switchTo(p.pid);
  // kernel reads through the whole direct map and beyond it
  for (let gpa = 0; gpa < 3 * MiB; gpa += 4096 * 7) {
    const r = os.access(`0xffff8880${gpa.toString(16).padStart(8, "0")}`, {
      user: false,
    });
    if (gpa < 2 * MiB) {
      assert.equal(r.result, "ok");
      assert.notEqual(r.value, 0xeeeeeeee);
    } else assert.equal(r.result, "oops"); // not mapped in the direct map
  }
  assert.deepEqual(host.checkConsistency(), []);
});
