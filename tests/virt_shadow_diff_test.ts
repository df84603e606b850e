/**
 * Differential property test: shadow paging (with and without each option)
 * against the reference scheme, on seeded random guest activity from the
 * shared generator. Every operation's guest-visible record must be equal:
 * values, gpas, faults with error code and CR2, and (through the
 * generator's `inspect` operations) every guest page-table entry with its
 * A/D bits. On a mismatch the op list is shrunk and printed.
 */
import type { HypervisorKind } from "../lib/virt/host.ts";
import { randomGuestActivity } from "../lib/virt/guest/activity.ts";
import { type ShadowOptions, ShadowScheme } from "../lib/virt/shadow/mod.ts";
import { assertSameAsReference, GUEST_MEMORY } from "./_diff_harness.ts";

const CONFIGS: { name: string; options: ShadowOptions }[] = [
  { name: "plain", options: {} },
  { name: "out-of-sync", options: { outOfSync: 3 } },
  { name: "write-flooding", options: { writeFlooding: 3 } },
  { name: "prefetch", options: { prefetch: 8 } },
  { name: "cache-limit", options: { maxShadowPages: 12 } },
  {
    name: "all",
    options: {
      outOfSync: 2,
      writeFlooding: 2,
      prefetch: 8,
      maxShadowPages: 16,
    },
  },
];

/** Scale the seed counts (e.g. 10 for a long soak). */
const SCALE = Number(Deno.env.get("SHADOW_DIFF_SCALE") ?? 1);

/**
 * Two workloads: the generator's default mix (short runs, many processes),
 * and a dense one (long runs, access-heavy, no stray INVLPGs, which would
 * hide a stale shadow entry by dropping it): only there do pages stay
 * resident long enough for fork and mprotect to flush with a CR3 reload.
 */
const WORKLOADS = [
  { name: "mixed", seeds: 150, ops: 90, weights: {} },
  {
    name: "dense",
    seeds: 20,
    ops: 300,
    weights: { access: 120, fork: 6, mprotect: 10, invlpg: 0 },
  },
];

for (const w of WORKLOADS) {
  for (const { name, options } of CONFIGS) {
    for (const hypervisor of ["xen", "kvm"] as const) {
      const seeds = Math.max(1, Math.round(w.seeds * SCALE));
      Deno.test(`shadow = reference: ${w.name}, ${name}, ${hypervisor}, ${seeds} seeds × ${w.ops} ops`, () => {
        for (let seed = 1; seed <= seeds; seed++) {
          const ops = randomGuestActivity(seed * 7919 + name.length, w.ops, {
            memory: GUEST_MEMORY,
            kernelHeapPages: 4,
            balloon: hypervisor === "xen",
            weights: w.weights,
          });
          assertSameAsReference(
            ops,
            {
              name: "shadow",
              make: () => new ShadowScheme({ ...options, eventLog: 0 }),
            },
            hypervisor as HypervisorKind,
            `${w.name}, ${name}, ${hypervisor}, seed ${seed}`,
          );
        }
      });
    }
  }
}
