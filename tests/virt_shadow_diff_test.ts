/**
 * Differential property test: shadow paging (with and without each option)
 * against the reference scheme, on seeded random guest activity from the
 * shared generator. Every operation's guest-visible record must be equal:
 * values, gpas, faults with error code and CR2, and (through the
 * generator's `inspect` operations) every guest page-table entry with its
 * A/D bits. On a mismatch the op list is shrunk and printed.
 */
import assert from "node:assert/strict";
import { Host, type HypervisorKind } from "../lib/virt/host.ts";
import { GuestOs } from "../lib/virt/guest/os.ts";
import {
  type ActivityRecord,
  formatActivity,
  type GuestOp,
  minimizeActivity,
  randomGuestActivity,
  runActivity,
} from "../lib/virt/guest/activity.ts";
import type { MmuScheme } from "../lib/virt/scheme.ts";
import { ReferenceScheme } from "../lib/virt/reference.ts";
import { type ShadowOptions, ShadowScheme } from "../lib/virt/shadow/mod.ts";

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

/** Index of the first record that differs, or -1. */
function firstDiff(a: ActivityRecord[], b: ActivityRecord[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return i;
  }
  return -1;
}

function check(
  ops: readonly GuestOp[],
  options: ShadowOptions,
  hypervisor: HypervisorKind,
): number {
  const ref = run(ops, new ReferenceScheme({ eventLog: 0 }), hypervisor);
  const sh = run(
    ops,
    new ShadowScheme({ ...options, eventLog: 0 }),
    hypervisor,
  );
  return firstDiff(ref, sh);
}

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
          const at = check(ops, options, hypervisor);
          if (at >= 0) {
            const small = minimizeActivity(
              ops,
              (l) => check(l, options, hypervisor) >= 0,
            );
            const ref = run(small, new ReferenceScheme(), hypervisor);
            const sh = run(small, new ShadowScheme(options), hypervisor);
            const i = firstDiff(ref, sh);
            assert.fail(
              `shadow (${w.name}, ${name}, ${hypervisor}) differs from the reference, seed ${seed}; ` +
                `minimal reproducer (${small.length} ops):\n${
                  formatActivity(small)
                }\n` +
                describeDiff(i, ref[i]?.result, sh[i]?.result),
            );
          }
        }
      });
    }
  }
}

/** The differing op's results; for `inspect` dumps, only the lines that differ. */
function describeDiff(i: number, a: unknown, b: unknown): string {
  const sa = (a as { state?: string[] } | undefined)?.state;
  const sb = (b as { state?: string[] } | undefined)?.state;
  if (Array.isArray(sa) && Array.isArray(sb)) {
    const lines: string[] = [
      `op ${i} (inspect): guest table lines that differ`,
    ];
    for (let k = 0; k < Math.max(sa.length, sb.length); k++) {
      if (sa[k] !== sb[k]) {
        lines.push(`  reference: ${sa[k]}`, `  shadow:    ${sb[k]}`);
      }
    }
    return lines.slice(0, 41).join("\n");
  }
  return `op ${i}: reference ${JSON.stringify(a)}\n      shadow    ${
    JSON.stringify(b)
  }`;
}
