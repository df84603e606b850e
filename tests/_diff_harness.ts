/**
 * The shared harness of the differential tests (shadow, nested and PV
 * paging against the reference scheme): run one seeded random guest
 * activity under a scheme, find the first record that differs, and on a
 * mismatch shrink the op list and fail with a minimal reproducer and the
 * differing lines.
 */
import assert from "node:assert/strict";
import { Host, type HypervisorKind } from "../lib/virt/host.ts";
import { DIRECT_MAP, GuestOs } from "../lib/virt/guest/os.ts";
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

/** Guest memory of the differential runs. */
export const GUEST_MEMORY = 2 * 2 ** 20;

/** How one side of a comparison runs. */
export interface DiffSide {
  /** Name in messages ("shadow", "nested", "pv"). */
  readonly name: string;
  /** A fresh scheme. */
  readonly make: () => MmuScheme;
  /** The guest kernel (default "hvm"). */
  readonly kernel?: "hvm" | "pv";
}

/** Run `ops` in a fresh guest under `scheme`. */
export function runGuest(
  ops: readonly GuestOp[],
  scheme: MmuScheme,
  hypervisor: HypervisorKind,
  kernel: "hvm" | "pv" = "hvm",
  memory = GUEST_MEMORY,
): ActivityRecord[] {
  const host = new Host({ memory: 32 * 2 ** 20, hypervisor });
  const vm = host.createDomain({ memory });
  const os = new GuestOs(vm, { scheme, kernelHeapPages: 4, kernel });
  return runActivity(os, ops);
}

/** Index of the first record that differs, or -1. */
export function firstDiff(a: ActivityRecord[], b: ActivityRecord[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return i;
  }
  return -1;
}

const DIRECT_SLOT = Number((DIRECT_MAP.toBigInt() >> 39n) & 511n);
const DIRECT_HEX = DIRECT_MAP.toHex().slice(0, 8); // "0xffff88"

/**
 * Make a PV run comparable with an HVM one, on both sides: the direct map
 * is built of 4 KiB pages under PV (Xen gives PV guests no superpages), so
 * the kernel root's direct-map subtree is dropped from `inspect` dumps
 * (its PML4E line stays); and a kernel read through the direct map of a
 * page-table frame sees machine entries under PV (as PV Linux does), so
 * the values of direct-map reads are dropped. Everything else — user
 * tables (read back through the M2P), faults, error codes, CR2, A/D bits —
 * is compared as is.
 */
export function normalizeForPv(records: ActivityRecord[]): ActivityRecord[] {
  return records.map((r) => {
    if (r.op.op === "access" && r.op.va.startsWith(DIRECT_HEX)) {
      const { value: _v, ...rest } = r.result;
      return { ...r, result: rest };
    }
    const state = r.result.state;
    if (!Array.isArray(state)) return r;
    const out: string[] = [];
    let skipDepth = -1;
    for (const line of state as string[]) {
      const depth = line.length - line.trimStart().length;
      if (skipDepth >= 0 && depth > skipDepth) continue;
      skipDepth = -1;
      out.push(line);
      if (
        line.trimStart().startsWith(`PML4E[${DIRECT_SLOT}] `) && depth === 2
      ) {
        skipDepth = depth;
      }
    }
    return { ...r, result: { ...r.result, state: out } };
  });
}

/** The differing op's results; for `inspect` dumps, only the lines that differ. */
export function describeDiff(
  i: number,
  a: unknown,
  b: unknown,
  name: string,
): string {
  const sa = (a as { state?: string[] } | undefined)?.state;
  const sb = (b as { state?: string[] } | undefined)?.state;
  if (Array.isArray(sa) && Array.isArray(sb)) {
    const lines: string[] = [
      `op ${i} (inspect): guest table lines that differ`,
    ];
    for (let k = 0; k < Math.max(sa.length, sb.length); k++) {
      if (sa[k] !== sb[k]) {
        lines.push(`  reference: ${sa[k]}`, `  ${name}: ${sb[k]}`);
      }
    }
    return lines.slice(0, 41).join("\n");
  }
  return `op ${i}: reference ${JSON.stringify(a)}\n      ${name} ${
    JSON.stringify(b)
  }`;
}

/**
 * Run `ops` under the reference and under `side`; on a difference, shrink
 * and fail with the reproducer. `label` names the configuration.
 */
export function assertSameAsReference(
  ops: readonly GuestOp[],
  side: DiffSide,
  hypervisor: HypervisorKind,
  label: string,
  memory = GUEST_MEMORY,
): void {
  const pv = side.kernel === "pv";
  const both = (l: readonly GuestOp[], quiet: boolean) => {
    let ref = runGuest(
      l,
      new ReferenceScheme(quiet ? { eventLog: 0 } : {}),
      hypervisor,
      "hvm",
      memory,
    );
    let other = runGuest(l, side.make(), hypervisor, side.kernel, memory);
    if (pv) {
      ref = normalizeForPv(ref);
      other = normalizeForPv(other);
    }
    return [ref, other] as const;
  };
  const [ref, other] = both(ops, true);
  if (firstDiff(ref, other) < 0) return;
  const small = minimizeActivity(ops, (l) => {
    const [a, b] = both(l, true);
    return firstDiff(a, b) >= 0;
  });
  const [a, b] = both(small, false);
  const i = firstDiff(a, b);
  assert.fail(
    `${side.name} (${label}) differs from the reference; minimal reproducer (${small.length} ops):\n${
      formatActivity(small)
    }\n` + describeDiff(i, a[i]?.result, b[i]?.result, side.name),
  );
}

/**
 * The two workloads of the HVM differential tests: the generator's default
 * mix (short runs, many processes), and a dense one (long runs,
 * access-heavy, no stray INVLPGs, which would hide a stale entry by
 * dropping it): only there do pages stay resident long enough for fork and
 * mprotect to flush with a CR3 reload.
 */
export const DIFF_WORKLOADS: readonly {
  name: string;
  seeds: number;
  ops: number;
  weights: Partial<Record<GuestOp["op"], number>>;
}[] = [
  { name: "mixed", seeds: 150, ops: 90, weights: {} },
  {
    name: "dense",
    seeds: 20,
    ops: 300,
    weights: { access: 120, fork: 6, mprotect: 10, invlpg: 0 },
  },
];

/**
 * Register one `Deno.test` per workload × configuration × hypervisor: each
 * seed's random activity under `make(options)` must equal the reference
 * (ballooning on Xen only). Seeds are `seed · seedStep + name length`;
 * `scale` multiplies the seed counts.
 */
export function registerDiffTests<O>(
  scheme: string,
  configs: readonly { name: string; options: O }[],
  make: (options: O) => MmuScheme,
  seedStep: number,
  scale: number,
): void {
  for (const w of DIFF_WORKLOADS) {
    for (const { name, options } of configs) {
      for (const hypervisor of ["xen", "kvm"] as const) {
        const seeds = Math.max(1, Math.round(w.seeds * scale));
        Deno.test(`${scheme} = reference: ${w.name}, ${name}, ${hypervisor}, ${seeds} seeds × ${w.ops} ops`, () => {
          for (let seed = 1; seed <= seeds; seed++) {
            const ops = randomGuestActivity(
              seed * seedStep + name.length,
              w.ops,
              {
                memory: GUEST_MEMORY,
                kernelHeapPages: 4,
                balloon: hypervisor === "xen",
                weights: w.weights,
              },
            );
            assertSameAsReference(
              ops,
              { name: scheme, make: () => make(options) },
              hypervisor,
              `${w.name}, ${name}, ${hypervisor}, seed ${seed}`,
            );
          }
        });
      }
    }
  }
}
