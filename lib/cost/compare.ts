/**
 * The model against the real CPU (issue 3, part 3): run small
 * microbenchmarks through the model, price them with a cost model, and set
 * the predictions beside what `lib/kvm/costs.ts` (`measureCosts`) measured
 * inside a KVM guest on this machine.
 *
 * The model runs them under **shadow paging** behind a TLB, because the
 * KVM that `measureCosts` measures here is a shadow MMU (`kvm_pvm`; on a
 * machine with EPT/NPT the measured numbers would be nested paging's):
 *
 * | benchmark | model | measured |
 * | --- | --- | --- |
 * | table build, per page | demand-zero touches of fresh pages: #PF, the guest's PTE write, the hidden fault | `guestPageFault` + `guestPageTableWriteFirst` |
 * | TLB miss | random reads over 512 pages (a 64-entry TLB): (TLB + walk cycles) / misses | `tlbMiss` (spread − packed pointer chase) |
 * | CR3 switch | context switches between two processes, no accesses | `cr3Switch` |
 *
 * The measured table-build pair is not the same event sequence (the
 * measured fault has no fix-up; the measured write is the first to a
 * table the MMU walked), and every measured number includes the outer
 * hypervisor of a nested machine: read the ratios as orders of magnitude.
 *
 * @module
 */

import type { CostProfile } from "../kvm/costs.ts";
import { createActivityGuest } from "../virt/guest/activity.ts";
import { ShadowScheme } from "../virt/shadow/shadow.ts";
import { TlbFront } from "../virt/tlb_front.ts";
import { randomAccess } from "../workload/generators.ts";
import { runExperiment } from "../workload/experiment.ts";
import { estimateCycles, eventsOfCounters } from "./estimate.ts";
import { COST_MODELS, type CostModel } from "./profiles.ts";

/** One benchmark: the model's prediction and the measurement. */
export interface ComparisonRow {
  /** Benchmark. */
  readonly benchmark: string;
  /** Cycles the model predicts per event. */
  readonly predicted: number;
  /** Cycles measured per event (TSC ticks). */
  readonly measured: number;
  /** measured / predicted. */
  readonly ratio: number;
  /** The cost model used. */
  readonly model: string;
  /** What was compared with what. */
  readonly note: string;
}

/** Options of {@linkcode modelPredictions} and {@linkcode compareWithMeasured}. */
export interface CompareOptions {
  /** Cost model (default `COST_MODELS.modern`; not a model derived from the measurement itself). */
  model?: CostModel;
  /** Events per microbenchmark (default 32). */
  events?: number;
}

/** The model's predictions, cycles per event, for the three microbenchmarks. */
export interface ModelPredictions {
  /** Per page of a table build (fault + PTE write + hidden fault). */
  readonly tableBuild: number;
  /** Per TLB miss (TLB + walk cycles). */
  readonly tlbMiss: number;
  /** Per CR3 switch. */
  readonly cr3Switch: number;
}

/**
 * Run the three microbenchmarks in the model (shadow paging behind a TLB)
 * and price them: cycles per event.
 *
 * @example
 * ```ts
 * import { modelPredictions } from "./compare.ts";
 * import { COST_MODELS } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * const p = modelPredictions({ model: COST_MODELS.modern, events: 8 });
 * // a CR3 switch under shadow paging: MOV CR3 + exit + entry + handler
 * assert.equal(p.cr3Switch, 200 + 1000 + 1000 + 500);
 * assert.ok(p.tableBuild > p.cr3Switch && p.tlbMiss > 0);
 * ```
 */
export function modelPredictions(
  options: CompareOptions = {},
): ModelPredictions {
  const model = options.model ?? COST_MODELS.modern;
  const n = options.events ?? 32;
  if (!Number.isInteger(n) || n < 1 || n > 4096) {
    throw new RangeError(
      `events ${String(n)} is invalid: expected an integer in [1, 4096]`,
    );
  }
  const guest = () => {
    const front = new TlbFront(new ShadowScheme({ eventLog: 0 }), {
      psc: true,
    });
    const { os } = createActivityGuest({
      scheme: front,
      memory: 8 * 2 ** 20 + n * 8192,
    });
    return { os, front };
  };
  // table build: the first page builds the tables, the next n fill PTEs
  const a = guest();
  const p = a.os.spawn();
  a.os.switchTo(p.pid);
  const base = a.os.mmap({ length: (n + 1) * 4096 });
  a.os.access(base, { kind: "write", value: 1 });
  a.front.resetCounters();
  for (let i = 1; i <= n; i++) {
    a.os.access(base + i * 4096, { kind: "write", value: i });
  }
  const build = estimateCycles(eventsOfCounters(a.front.counters), model);
  // CR3 switches between two processes
  const b = guest();
  const p1 = b.os.spawn(), p2 = b.os.spawn();
  b.os.switchTo(p1.pid);
  b.os.switchTo(p2.pid);
  b.front.resetCounters();
  for (let i = 0; i < n; i++) b.os.switchTo(i % 2 === 0 ? p1.pid : p2.pid);
  const cr3 = estimateCycles(eventsOfCounters(b.front.counters), model);
  // TLB misses: random reads over 512 pages
  const r = runExperiment(
    randomAccess({ pages: 512, updates: 16 * n, write: false }),
    {
      model,
      configs: [{
        name: "shadow",
        description: "shadow paging",
        create: () => new ShadowScheme({ eventLog: 0 }),
        psc: true,
      }],
    },
  );
  const est = r.estimates.shadow;
  const misses = r.rows[0].tlbMisses;
  return {
    tableBuild: build.total / n,
    cr3Switch: cr3.total / n,
    tlbMiss: misses > 0
      ? (est.byComponent.tlb + est.byComponent.walk) / misses
      : NaN,
  };
}

/**
 * The model's predictions beside a measured `memvirt-cost-profile/1`
 * (from `measureCosts()`), one row per microbenchmark.
 *
 * @example
 * ```ts
 * import { compareWithMeasured } from "./compare.ts";
 * import assert from "node:assert/strict";
 * const cost = (cycles: number) => ({ cycles, ns: cycles / 3, cpl: 3 as const, events: 1, runs: 1 });
 * const measured = {
 *   schema: "memvirt-cost-profile/1" as const,
 *   machine: { cpu: "Test CPU", kvmModule: "kvm_intel", tscHz: 3e9, measuredAt: "2026-01-01T00:00:00Z" },
 *   unit: "tsc-cycles" as const,
 *   costs: {
 *     userLoop: cost(2), kernelLoop: cost(2), load: cost(5), guestPageFault: cost(4000),
 *     guestPageTableWriteFirst: cost(6000), guestPageTableWrite: cost(2), cr3Switch: cost(5400), tlbMiss: cost(300),
 *   },
 *   workingSets: [], notes: [],
 * };
 * const rows = compareWithMeasured(measured, { events: 8 });
 * assert.deepEqual(rows.map((r) => r.benchmark), ["table build (per page)", "TLB miss", "CR3 switch"]);
 * assert.equal(rows[2].predicted, 2700);
 * assert.equal(rows[2].ratio, 2);
 * assert.equal(rows[0].measured, 10000);
 * ```
 */
export function compareWithMeasured(
  measured: CostProfile,
  options: CompareOptions = {},
): ComparisonRow[] {
  if (
    measured === null || typeof measured !== "object" ||
    measured.schema !== "memvirt-cost-profile/1"
  ) {
    throw new TypeError(
      `measured ${
        String((measured as { schema?: unknown })?.schema ?? measured)
      } is invalid: expected a memvirt-cost-profile/1 object from measureCosts()`,
    );
  }
  const model = options.model ?? COST_MODELS.modern;
  const p = modelPredictions(options);
  const k = measured.costs;
  const row = (
    benchmark: string,
    predicted: number,
    m: number,
    note: string,
  ): ComparisonRow => ({
    benchmark,
    predicted: Math.round(predicted * 10) / 10,
    measured: m,
    ratio: predicted > 0 ? m / (Math.round(predicted * 10) / 10) : NaN,
    model: model.name,
    note,
  });
  return [
    row(
      "table build (per page)",
      p.tableBuild,
      k.guestPageFault.cycles + k.guestPageTableWriteFirst.cycles,
      "model: demand-zero touch under shadow paging; measured: guestPageFault + guestPageTableWriteFirst",
    ),
    row(
      "TLB miss",
      p.tlbMiss,
      k.tlbMiss.cycles,
      "model: (TLB + walk cycles) / misses, random reads over 512 pages; measured: tlbMiss",
    ),
    row(
      "CR3 switch",
      p.cr3Switch,
      k.cr3Switch.cycles,
      "model: context switch under shadow paging; measured: cr3Switch (CPL 0)",
    ),
  ];
}
