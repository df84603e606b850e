/**
 * The experiment runner: one call runs the same {@linkcode Workload} under
 * several MMU virtualization configurations — native, shadow paging with
 * and without out-of-sync L1 shadows, nested paging with and without walk
 * caches, Xen PV direct paging (and anything else you plug in) — each
 * behind the same
 * TLB ({@linkcode TlbFront}), and returns **tidy rows** a Vega-Lite chart
 * consumes directly:
 *
 * - `rows`: one row per configuration with flat numeric columns (accesses,
 *   TLB hits and misses, hit rate, walk references per miss and per
 *   access, guest #PFs, VM exits, estimated cycles, overhead vs native);
 * - `exitRows`: one row per configuration × exit reason;
 * - `cycleRows`: one row per configuration × cost component.
 *
 * How a run goes: a fresh host, domain and {@linkcode GuestOs} per
 * configuration (same seed, so the same machine frames), the workload's
 * `setup` ops, then the counters are zeroed and the measured `ops` run.
 * Every configuration sees the identical operation stream; the `checksum`
 * column (over every access result) shows that they also saw identical
 * guest-visible results.
 *
 * Adding a scheme: `runExperiment(w, { schemes: { "shadow-prefetch": () =>
 * new ShadowScheme({ prefetch: 8 }) } })` appends a configuration to the
 * defaults; `configs` replaces them. A scheme with `paravirt` hypercalls
 * (a `PvScheme`) gets a Xen PV guest kernel (`GuestOs` `kernel: "pv"`),
 * which updates its tables by hypercall; its TLB learns of Xen's flushes
 * from the scheme (see `TlbFront`).
 *
 * What the model supports, and what it does not:
 * - guest page size: 4 KiB user pages, or the guest's 2 MiB direct map
 *   (workload `randomAccess({ pageSize: "2m" })`); native then gets 2 MiB
 *   TLB entries, shadow paging splinters them into 4 KiB shadow entries,
 *   nested paging walks a 3-level guest walk (19 references, not 24);
 * - host (second-stage) 2 MiB pages: the "-h2m" configurations place the
 *   guest's frames contiguously and `NestedScheme` (`hostPages: "2m"`)
 *   maps each fully backed, 2 MiB-aligned region with one leaf; a TLB
 *   entry is then min(guest page, host page), so 2 MiB only for the
 *   direct map's 2 MiB guest pages; the 2-D walk shortens in the host
 *   dimension (4 KiB guest pages: 19 references, not 24; 2 MiB on both
 *   sides: 15);
 * - walk caches: nested paging without, and with a guest paging-structure
 *   cache, a nested TLB and a host PSC (Bhargava et al. 2008), each 32
 *   entries; native and shadow walks get the CPU's paging-structure cache
 *   (`TlbFront`'s `psc`: PDE 32, PDPTE 4, PML4E 2 entries), so that
 *   "nested+caches" is not compared with a native CPU that lacks one.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import {
  type CostComponent,
  type CycleEstimate,
  estimateCycles,
  eventsOfCounters,
} from "../cost/estimate.ts";
import { COST_MODELS, type CostModel } from "../cost/profiles.ts";
import { Tlb, type TlbOptions } from "../tlb/tlb.ts";
import {
  createActivityGuest,
  type GuestOp,
  runActivity,
} from "../virt/guest/activity.ts";
import type { HypervisorKind, Placement } from "../virt/host.ts";
import { PvScheme } from "../virt/pv/scheme.ts";
import type { NestedWalkerOptions } from "../virt/nested/walk.ts";
import { NestedScheme } from "../virt/nested/scheme.ts";
import { ReferenceScheme } from "../virt/reference.ts";
import type { GuestAccessOptions, MmuScheme } from "../virt/scheme.ts";
import { ShadowScheme } from "../virt/shadow/shadow.ts";
import { TlbFront } from "../virt/tlb_front.ts";
import { experimentToHtml, experimentToText } from "../view/cost_html.ts";
import type { Workload } from "./generators.ts";

/**
 * One configuration of an experiment.
 *
 * @example
 * ```ts
 * import type { ExperimentConfig } from "./experiment.ts";
 * import { ShadowScheme } from "../virt/shadow/shadow.ts";
 * import assert from "node:assert/strict";
 * const c: ExperimentConfig = { name: "shadow-prefetch", description: "shadow, prefetch 8", create: () => new ShadowScheme({ prefetch: 8, eventLog: 0 }) };
 * assert.equal(c.create().name, "shadow");
 * ```
 */
export interface ExperimentConfig {
  /** Row name. */
  readonly name: string;
  /** One line. */
  readonly description: string;
  /** A fresh, unattached scheme (the runner puts a TLB in front). */
  readonly create: () => MmuScheme;
  /** Largest TLB page size (log2); default as {@linkcode TlbFront}: 30 for the reference, else 12. */
  readonly maxPageShift?: number;
  /** Count a paging-structure cache for one-dimensional walks (see `TlbFront`'s `psc`). Default false. */
  readonly psc?: boolean;
  /** Placement of the guest's machine frames (default "scatter"; "contiguous" for 2 MiB host pages). */
  readonly placement?: Placement;
}

/**
 * The nested walk caches of the "nested+caches" configuration: guest PSC,
 * nested TLB and host PSC, 32 entries, 4 ways each.
 *
 * @example
 * ```ts
 * import { NESTED_CACHES } from "./experiment.ts";
 * import assert from "node:assert/strict";
 * assert.equal(NESTED_CACHES.nestedTlb?.entries, 32);
 * ```
 */
export const NESTED_CACHES: Readonly<NestedWalkerOptions> = Object.freeze({
  guestPsc: { entries: 32, ways: 4 },
  nestedTlb: { entries: 32, ways: 4 },
  hostPsc: { entries: 32, ways: 4 },
});

/**
 * A nested-paging configuration: EPT (or NPT) with 4 KiB or 2 MiB host
 * (second-stage) pages, with or without {@linkcode NESTED_CACHES}. Named
 * "nested", "nested+caches", and with 2 MiB host pages "nested-h2m",
 * "nested+caches-h2m" (an NPT one gets "-npt" appended). 2 MiB host pages
 * need 2 MiB-aligned contiguous machine memory, so those configurations
 * place the guest's frames contiguously (the hypervisor then maps every
 * fully backed 2 MiB region with one leaf, as Xen HAP and KVM with huge
 * pages do).
 *
 * @example
 * ```ts
 * import { nestedConfig } from "./experiment.ts";
 * import assert from "node:assert/strict";
 * const c = nestedConfig({ hostPages: "2m", caches: true });
 * assert.equal(c.name, "nested+caches-h2m");
 * assert.equal(c.placement, "contiguous");
 * assert.equal(c.create().name, "nested");
 * assert.throws(() => nestedConfig({ hostPages: "1g" as never }), /hostPages "1g" is invalid/);
 * ```
 */
export function nestedConfig(
  options: {
    /** "4k" (default) or "2m". */
    hostPages?: "4k" | "2m";
    /** Walk caches and a nested TLB ({@linkcode NESTED_CACHES}). Default false. */
    caches?: boolean;
    /** "ept" (default) or "npt". */
    stage?: "ept" | "npt";
  } = {},
): ExperimentConfig {
  const hostPages = options.hostPages ?? "4k";
  if (hostPages !== "4k" && hostPages !== "2m") {
    throw new RangeError(
      `hostPages "${String(hostPages)}" is invalid: expected "4k" or "2m"`,
    );
  }
  const stage = options.stage ?? "ept";
  if (stage !== "ept" && stage !== "npt") {
    throw new RangeError(
      `stage "${String(stage)}" is invalid: expected "ept" or "npt"`,
    );
  }
  const caches = options.caches ?? false;
  const big = hostPages === "2m";
  const dims = `${stage.toUpperCase()}, 4×4 walk`;
  return {
    name: `nested${caches ? "+caches" : ""}${big ? "-h2m" : ""}${
      stage === "npt" ? "-npt" : ""
    }`,
    description: `nested paging (${dims}${big ? ", 2 MiB host pages" : ""}), ${
      caches
        ? "with guest PSC, nested TLB and host PSC (32 entries each)"
        : "no walk caches"
    }`,
    create: () =>
      new NestedScheme({
        eventLog: 0,
        stage,
        hostPages,
        ...(caches ? { caches: structuredClone(NESTED_CACHES) } : {}),
      }),
    ...(big ? { placement: "contiguous" as const } : {}),
  };
}

/**
 * The default configurations: native, shadow, shadow with 3 out-of-sync
 * L1 shadows (Xen's number), Xen PV direct paging — each with a
 * paging-structure cache — and nested paging (EPT, 4 levels) without and
 * with {@linkcode NESTED_CACHES}, over 4 KiB and over 2 MiB host pages
 * ({@linkcode nestedConfig}). PV needs a Xen host: with `hypervisor`
 * "kvm" it is left out.
 *
 * @example
 * ```ts
 * import { defaultConfigs } from "./experiment.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(defaultConfigs().map((c) => c.name), ["native", "shadow", "shadow-oos", "pv", "nested", "nested+caches", "nested-h2m", "nested+caches-h2m"]);
 * assert.ok(!defaultConfigs("kvm").some((c) => c.name === "pv"));
 * ```
 */
export function defaultConfigs(
  hypervisor: HypervisorKind = "xen",
): ExperimentConfig[] {
  const pv: ExperimentConfig[] = hypervisor === "xen"
    ? [{
      name: "pv",
      description:
        "Xen PV direct paging: machine-frame tables updated by hypercall; a paging-structure cache",
      create: () => new PvScheme({ eventLog: 0 }),
      psc: true,
    }]
    : [];
  return [
    {
      name: "native",
      description:
        "the reference scheme: the guest's own tables, no exits; a paging-structure cache",
      create: () => new ReferenceScheme({ eventLog: 0 }),
      psc: true,
    },
    {
      name: "shadow",
      description:
        "shadow paging (HVM), write-protected guest tables; a paging-structure cache",
      create: () => new ShadowScheme({ eventLog: 0 }),
      psc: true,
    },
    {
      name: "shadow-oos",
      description:
        "shadow paging with 3 out-of-sync L1 shadows (Xen); a paging-structure cache",
      create: () => new ShadowScheme({ eventLog: 0, outOfSync: 3 }),
      psc: true,
    },
    ...pv,
    nestedConfig(),
    nestedConfig({ caches: true }),
    nestedConfig({ hostPages: "2m" }),
    nestedConfig({ hostPages: "2m", caches: true }),
  ];
}

/** Progress of {@linkcode runExperiment}. */
export interface ExperimentProgress {
  /** Configuration being run. */
  readonly config: string;
  /** Its index. */
  readonly index: number;
  /** Configurations in all. */
  readonly configs: number;
  /** Measured ops done in this configuration. */
  readonly done: number;
  /** Measured ops in all. */
  readonly total: number;
}

/** Options of {@linkcode runExperiment}. */
export interface ExperimentOptions {
  /** Configurations (default {@linkcode defaultConfigs}). */
  configs?: readonly ExperimentConfig[];
  /** More configurations by name: a factory of a fresh scheme each (e.g. `{ pv: () => new PvScheme() }`). */
  schemes?: Readonly<Record<string, () => MmuScheme>>;
  /** Cost model (default `COST_MODELS.modern`). */
  model?: CostModel;
  /** TLB geometry (default 64 entries, 4 ways, LRU). */
  tlb?: TlbOptions;
  /** Keep global TLB entries across CR3 loads (default false; see `TlbFront`). */
  globalPages?: boolean;
  /** Hypervisor of the host (default "xen"). */
  hypervisor?: HypervisorKind;
  /** Guest memory in bytes (default the workload's `guestMemory`). */
  guestMemory?: number;
  /** Machine memory in bytes (default 2 × guest memory + 32 MiB). */
  hostMemory?: number;
  /** Seed of machine-frame placement (default 1). */
  seed?: number;
  /** The configuration overhead is relative to (default the first whose scheme is the reference; else none). */
  baseline?: string;
  /** Called every `progressEvery` measured ops and at the end of each configuration. */
  onProgress?: (p: ExperimentProgress) => void;
  /** Ops between progress calls (default 10,000). */
  progressEvery?: number;
}

/**
 * One configuration's results (flat columns).
 *
 * @example
 * ```ts
 * import { defaultConfigs, runExperiment, type ExperimentRow } from "./experiment.ts";
 * import { sequentialScan } from "./generators.ts";
 * import assert from "node:assert/strict";
 * // 128 pages, 16 accesses each, one pass; a 64-entry TLB: one miss per page,
 * // one reference per walk (the PDE cache holds the one leaf table's pointer)
 * const [r]: readonly ExperimentRow[] = runExperiment(sequentialScan({ pages: 128, passes: 1 }), { configs: defaultConfigs().slice(0, 1) }).rows;
 * assert.deepEqual([r.config, r.accesses, r.tlbMisses, r.walkReferences, r.vmExits], ["native", 2048, 128, 128, 0]);
 * assert.equal(r.tlbHitRate, 1920 / 2048);
 * ```
 */
export interface ExperimentRow {
  /** Workload name. */
  readonly workload: string;
  /** Configuration name. */
  readonly config: string;
  /** The scheme's name ("reference", "shadow", "nested", "pv"…). */
  readonly scheme: string;
  /** Guest data accesses measured. */
  readonly accesses: number;
  /** Accesses served by the TLB. */
  readonly tlbHits: number;
  /** Accesses that walked (misses and re-walks). */
  readonly tlbMisses: number;
  /** tlbHits / accesses. */
  readonly tlbHitRate: number;
  /** Hardware page-walk memory references. */
  readonly walkReferences: number;
  /** walkReferences / tlbMisses (NaN without misses). */
  readonly refsPerMiss: number;
  /** walkReferences / accesses. */
  readonly refsPerAccess: number;
  /** #PF delivered to the guest. */
  readonly guestPageFaults: number;
  /** Guest page-table entry writes. */
  readonly entryWrites: number;
  /** Guest CR3 loads. */
  readonly cr3Loads: number;
  /** Guest INVLPGs. */
  readonly invlpgs: number;
  /** VM exits (all reasons). */
  readonly vmExits: number;
  /** VM exits per 1,000 accesses. */
  readonly exitsPerKiloAccess: number;
  /** Estimated cycles. */
  readonly cycles: number;
  /** cycles / accesses. */
  readonly cyclesPerAccess: number;
  /** cycles / the baseline's cycles (1 for the baseline; NaN without one). */
  readonly overhead: number;
  /** Operations that failed (a RangeError recorded, e.g. out of memory). */
  readonly errors: number;
  /** Hash of every access result: equal across configurations when they saw the same. */
  readonly checksum: number;
}

/**
 * The results of {@linkcode runExperiment}; displays as a table.
 *
 * @example
 * ```ts
 * import { runExperiment } from "./experiment.ts";
 * import { pointerChase } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const r = runExperiment(pointerChase({ nodes: 96, laps: 2 }));
 * const native = r.row("native"), nested = r.row("nested");
 * assert.equal(native.overhead, 1);
 * assert.equal(native.vmExits, 0);
 * assert.equal(nested.refsPerMiss, 24);                 // 4×4, no caches
 * assert.ok(r.row("nested+caches").refsPerMiss < 24);
 * assert.equal(new Set(r.rows.map((x) => x.checksum)).size, 1);
 * ```
 */
export class ExperimentResult {
  /** The workload's name, description and parameters. */
  readonly workload: Pick<Workload, "name" | "description" | "params">;
  /** The cost model's name. */
  readonly model: string;
  /** One row per configuration. */
  readonly rows: readonly ExperimentRow[];
  /** One row per configuration × exit reason. */
  readonly exitRows: readonly {
    readonly config: string;
    readonly reason: string;
    readonly exits: number;
  }[];
  /** One row per configuration × cost component. */
  readonly cycleRows: readonly {
    readonly config: string;
    readonly component: CostComponent;
    readonly cycles: number;
  }[];
  /** The full estimate of each configuration. */
  readonly estimates: Readonly<Record<string, CycleEstimate>>;
  /** Wall-clock milliseconds per configuration (not deterministic: kept out of the rows). */
  readonly timings: Readonly<Record<string, number>>;
  /** What the runner assumed and what is not modelled. */
  readonly notes: readonly string[];

  /** Assemble (used by {@linkcode runExperiment}). */
  constructor(init: {
    workload: Pick<Workload, "name" | "description" | "params">;
    model: string;
    rows: ExperimentRow[];
    exitRows: { config: string; reason: string; exits: number }[];
    cycleRows: { config: string; component: CostComponent; cycles: number }[];
    estimates: Record<string, CycleEstimate>;
    timings: Record<string, number>;
    notes: string[];
  }) {
    this.workload = init.workload;
    this.model = init.model;
    this.rows = init.rows;
    this.exitRows = init.exitRows;
    this.cycleRows = init.cycleRows;
    this.estimates = init.estimates;
    this.timings = init.timings;
    this.notes = init.notes;
  }

  /** The row of configuration `name` (a `RangeError` lists the names otherwise). */
  row(name: string): ExperimentRow {
    const r = this.rows.find((x) => x.config === name);
    if (r === undefined) {
      throw new RangeError(
        `configuration "${name}" is not in this experiment: expected one of ${
          this.rows.map((x) => x.config).join(", ")
        }`,
      );
    }
    return r;
  }

  /** Plain text table. */
  toString(): string {
    return experimentToText(this);
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": experimentToText(this),
      "text/html": experimentToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return experimentToText(this);
  }
}

/** A measured op, compiled once for every configuration. */
type Compiled =
  | { access: true; va: LinearAddress; options: GuestAccessOptions }
  | { access: false; op: GuestOp };

function compile(ops: readonly GuestOp[]): Compiled[] {
  return ops.map((op) =>
    op.op === "access"
      ? {
        access: true,
        va: LinearAddress.from(op.va),
        options: {
          kind: op.kind,
          user: op.user,
          size: op.size,
          value: op.value,
        },
      }
      : { access: false, op }
  );
}

const RESULT_CODE: Record<string, number> = {
  ok: 1,
  segv: 2,
  efault: 3,
  oops: 4,
  oom: 5,
  gp: 6,
  unbacked: 7,
};

/**
 * Run `workload` under every configuration (see the module notes).
 *
 * @example Fork churn: shadow paging exits far more than nested paging.
 * ```ts
 * import { runExperiment } from "./experiment.ts";
 * import { forkExecChurn } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const seen: string[] = [];
 * const r = runExperiment(forkExecChurn({ rounds: 3, pages: 8 }), {
 *   onProgress: (p) => { if (p.done === p.total) seen.push(p.config); },
 * });
 * assert.deepEqual(seen, ["native", "shadow", "shadow-oos", "pv", "nested", "nested+caches", "nested-h2m", "nested+caches-h2m"]);
 * assert.ok(r.row("shadow").vmExits > r.row("nested").vmExits);
 * assert.ok(r.row("shadow").overhead > 1);
 * assert.ok(r.exitRows.some((x) => x.config === "shadow" && x.reason === "wp-emulation"));
 * ```
 */
export function runExperiment(
  workload: Workload,
  options: ExperimentOptions = {},
): ExperimentResult {
  if (
    workload === null || typeof workload !== "object" ||
    !Array.isArray(workload.ops) || !Array.isArray(workload.setup)
  ) {
    throw new TypeError(
      `workload ${
        String(workload)
      } is invalid: expected a Workload from lib/workload/generators.ts`,
    );
  }
  const configs: ExperimentConfig[] = [
    ...(options.configs ?? defaultConfigs(options.hypervisor ?? "xen")),
  ];
  for (const [name, create] of Object.entries(options.schemes ?? {})) {
    if (typeof create !== "function") {
      throw new TypeError(
        `schemes.${name} is invalid: expected a function returning a fresh MmuScheme`,
      );
    }
    configs.push({ name, description: `${name} (supplied)`, create });
  }
  const names = new Set<string>();
  for (const c of configs) {
    if (names.has(c.name)) {
      throw new RangeError(
        `configuration name "${c.name}" is used twice: expected unique names`,
      );
    }
    names.add(c.name);
  }
  const model = options.model ?? COST_MODELS.modern;
  const guestMemory = options.guestMemory ?? workload.guestMemory;
  const hostMemory = options.hostMemory ?? 2 * guestMemory + 32 * 2 ** 20;
  const every = options.progressEvery ?? 10_000;
  if (!Number.isInteger(every) || every < 1) {
    throw new RangeError(
      `progressEvery ${String(every)} is invalid: expected a positive integer`,
    );
  }
  const compiled = compile(workload.ops);
  const total = compiled.length;
  const rows: ExperimentRow[] = [];
  const exitRows: { config: string; reason: string; exits: number }[] = [];
  const cycleRows: {
    config: string;
    component: CostComponent;
    cycles: number;
  }[] = [];
  const estimates: Record<string, CycleEstimate> = {};
  const timings: Record<string, number> = {};
  const schemeNames: Record<string, string> = {};
  const raw: Omit<ExperimentRow, "overhead">[] = [];
  configs.forEach((cfg, index) => {
    const t0 = performance.now();
    const inner = cfg.create();
    const front = new TlbFront(inner, {
      tlb: new Tlb({ entries: 64, ways: 4, ...(options.tlb ?? {}) }),
      global: options.globalPages ?? false,
      psc: cfg.psc ?? false,
      ...(cfg.maxPageShift !== undefined
        ? { maxPageShift: cfg.maxPageShift }
        : {}),
    });
    const { os } = createActivityGuest({
      hypervisor: options.hypervisor ?? "xen",
      scheme: front,
      kernel: inner.paravirt !== undefined ? "pv" : "hvm",
      memory: guestMemory,
      hostMemory,
      seed: options.seed ?? 1,
      ...(cfg.placement !== undefined ? { placement: cfg.placement } : {}),
    });
    let errors = 0;
    for (const r of runActivity(os, workload.setup)) {
      if ("error" in r.result) errors++;
    }
    front.resetCounters();
    let checksum = 17;
    for (let i = 0; i < total; i++) {
      const c = compiled[i];
      if (c.access) {
        const r = os.access(c.va, c.options);
        checksum = (Math.imul(checksum, 31) + (RESULT_CODE[r.result] ?? 9)) |
          0;
        checksum = (Math.imul(checksum, 31) + ((r.value ?? 0) | 0)) | 0;
        checksum = (Math.imul(checksum, 31) + r.faults.length) | 0;
      } else {
        const [rec] = runActivity(os, [c.op]);
        if ("error" in rec.result) errors++;
        checksum = (Math.imul(checksum, 31) + ("error" in rec.result ? 1 : 0)) |
          0;
      }
      if (options.onProgress && (i + 1) % every === 0 && i + 1 < total) {
        options.onProgress({
          config: cfg.name,
          index,
          configs: configs.length,
          done: i + 1,
          total,
        });
      }
    }
    options.onProgress?.({
      config: cfg.name,
      index,
      configs: configs.length,
      done: total,
      total,
    });
    const counters = front.counters;
    const ev = eventsOfCounters(counters);
    const est = estimateCycles(ev, model);
    estimates[cfg.name] = est;
    schemeNames[cfg.name] = inner.name;
    const acc = counters.accesses;
    const misses = ev.tlbMisses ?? 0;
    const refs = ev.walkReferences ?? 0;
    raw.push({
      workload: workload.name,
      config: cfg.name,
      scheme: inner.name,
      accesses: acc,
      tlbHits: ev.tlbHits ?? 0,
      tlbMisses: misses,
      tlbHitRate: acc > 0 ? (ev.tlbHits ?? 0) / acc : NaN,
      walkReferences: refs,
      refsPerMiss: misses > 0 ? refs / misses : NaN,
      refsPerAccess: acc > 0 ? refs / acc : NaN,
      guestPageFaults: counters.guestPageFaults,
      entryWrites: counters.entryWrites,
      cr3Loads: counters.cr3Loads,
      invlpgs: counters.invlpgs,
      vmExits: counters.vmExits,
      exitsPerKiloAccess: acc > 0 ? counters.vmExits * 1000 / acc : NaN,
      cycles: est.total,
      cyclesPerAccess: est.perAccess,
      errors,
      checksum,
    });
    for (const [reason, n] of Object.entries(counters.exitsByReason)) {
      exitRows.push({ config: cfg.name, reason, exits: n });
    }
    for (const [component, cycles] of Object.entries(est.byComponent)) {
      cycleRows.push({
        config: cfg.name,
        component: component as CostComponent,
        cycles,
      });
    }
    timings[cfg.name] = Math.round(performance.now() - t0);
  });
  const baseName = options.baseline ??
    configs.find((c) => schemeNames[c.name] === "reference")?.name;
  if (baseName !== undefined && !names.has(baseName)) {
    throw new RangeError(
      `baseline "${baseName}" is not a configuration: expected one of ${
        [...names].join(", ")
      }`,
    );
  }
  const base = raw.find((r) => r.config === baseName);
  for (const r of raw) {
    rows.push({
      ...r,
      overhead: base === undefined
        ? NaN
        : r === base
        ? 1
        : base.cycles > 0
        ? r.cycles / base.cycles
        : NaN,
    });
  }
  return new ExperimentResult({
    workload: {
      name: workload.name,
      description: workload.description,
      params: workload.params,
    },
    model: model.name,
    rows,
    exitRows,
    cycleRows,
    estimates,
    timings,
    notes: [
      `every configuration behind the same TLB (${
        options.tlb?.entries ?? 64
      } entries); setup ops not measured`,
      `cycles: cost model "${model.name}"; overhead relative to ${
        baseName ?? "nothing (no baseline)"
      }`,
      "walk references: native = guest entries read, shadow = shadow entries read by hardware walks (both less what the paging-structure cache saves), nested = 2-D references made",
      "host 2 MiB pages (-h2m): the guest's frames placed contiguously, 2 MiB second-stage leaves; guest large pages exist only in the kernel's direct map",
    ],
  });
}
