/**
 * Cost models: the constants that turn counted events into cycles, each
 * with the source it comes from. A cost model is plain frozen data; edit a
 * copy with {@linkcode withCosts}. Named models:
 *
 * - `"pentium4-vtx"` — Adams & Agesen, "A Comparison of Software and
 *   Hardware Techniques for x86 Virtualization", ASPLOS 2006: a 3.8 GHz
 *   Pentium 4 672 with VT-x (first-generation hardware virtualization, no
 *   EPT). Transition and fault costs from the paper; handler costs derived
 *   from its totals; cache latencies are not in the paper (assumed).
 * - `"modern"` — the "typical costs" of `FIGURES.md`: a VM exit round trip
 *   of ~2,000 cycles (SplitX, WIOV 2011), STLB hit ~7 cycles (Sandy
 *   Bridge), L1/L2/L3 4/12/44 cycles (Skylake), DRAM ~60 ns at an assumed
 *   3 GHz. Handler costs are assumptions, said so in each source.
 *
 * {@linkcode costModelFromMeasured} turns the `memvirt-cost-profile/1`
 * JSON that `lib/kvm/costs.ts` measures on the real CPU into a model
 * ("this machine").
 *
 * What each constant prices is in {@linkcode COST_KEYS}; how counts and
 * constants combine is in `estimate.ts`.
 *
 * @module
 */

import type { CostProfile } from "../kvm/costs.ts";

/** One constant of a cost model. */
export interface CostConstant {
  /** The value (cycles, or a fraction for the `walk*` hit mix). */
  readonly value: number;
  /** Where it comes from: a citation, "derived: …" or "assumed: …". */
  readonly source: string;
}

/**
 * What each constant prices (unit cycles unless said). The `walk*`
 * fractions say where a page-walk memory reference hits (the model has no
 * data caches; they must sum to 1).
 *
 * @example
 * ```ts
 * import { COST_KEYS } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * assert.ok("vmExit" in COST_KEYS && "walkDram" in COST_KEYS);
 * ```
 */
export const COST_KEYS: Readonly<Record<CostKey, string>> = Object.freeze(
  {
    dataAccess:
      "a guest data access that hits the TLB (the load or store itself)",
    tlbHit: "extra cycles of a TLB hit",
    tlbMiss:
      "fixed cycles of a TLB miss before its walk (second-level TLB lookup)",
    l1: "a memory reference that hits the L1 data cache",
    l2: "a memory reference that hits L2",
    l3: "a memory reference that hits L3",
    dram: "a memory reference that goes to DRAM",
    walkL1: "fraction of page-walk references hitting L1",
    walkL2: "fraction of page-walk references hitting L2",
    walkL3: "fraction of page-walk references hitting L3",
    walkDram: "fraction of page-walk references going to DRAM",
    vmExit: "a VM exit (guest → hypervisor transition)",
    vmEntry: "a VM entry (hypervisor → guest transition)",
    hypercallTransition:
      "a PV hypercall's round trip into the hypervisor (not a VM exit)",
    hypercall: "a hypercall handler's work",
    emulation: "emulating a trapped guest store (a write to a traced PTE)",
    hiddenFault:
      "shadow paging's hidden-fault handler (guest walk, shadow fill)",
    trueFaultReflect:
      "shadow paging's handler for a true guest #PF (guest walk, injection)",
    cr3Exit: "the CR-access exit handler (shadow root lookup)",
    invlpgExit: "the INVLPG exit handler",
    eptViolation: "the EPT violation / #NPF handler (map one gfn)",
    mmioExit: "an exit for a gpa with no memory (device model)",
    otherExit: "the handler of any other exit reason",
    shadowResync: "resyncing one out-of-sync shadow page (Xen OOS)",
    guestPageFault:
      "the guest kernel's own #PF handling (native cost of a true fault)",
    pteWrite: "a guest page-table entry write (native)",
    cr3Load: "a MOV to CR3 (native)",
    invlpg: "an INVLPG (native)",
  } as const,
);

/** Names of the constants of a cost model. */
export type CostKey =
  | "dataAccess"
  | "tlbHit"
  | "tlbMiss"
  | "l1"
  | "l2"
  | "l3"
  | "dram"
  | "walkL1"
  | "walkL2"
  | "walkL3"
  | "walkDram"
  | "vmExit"
  | "vmEntry"
  | "hypercallTransition"
  | "hypercall"
  | "emulation"
  | "hiddenFault"
  | "trueFaultReflect"
  | "cr3Exit"
  | "invlpgExit"
  | "eptViolation"
  | "mmioExit"
  | "otherExit"
  | "shadowResync"
  | "guestPageFault"
  | "pteWrite"
  | "cr3Load"
  | "invlpg";

/**
 * A cost model: named constants with sources (plain frozen data).
 *
 * @example
 * ```ts
 * import { COST_MODELS, type CostModel } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * const m: CostModel = COST_MODELS["pentium4-vtx"];
 * assert.equal(m.costs.vmEntry.value, 2409);
 * assert.match(m.costs.vmEntry.source, /Adams & Agesen/);
 * assert.ok(Object.isFrozen(m.costs));
 * ```
 */
export interface CostModel {
  /** Short name. */
  readonly name: string;
  /** What machine it describes. */
  readonly description: string;
  /** Clock rate in GHz (to show cycles as time), if known. */
  readonly ghz: number;
  /** The constants. */
  readonly costs: Readonly<Record<CostKey, CostConstant>>;
}

const AA = "Adams & Agesen, ASPLOS 2006 (Pentium 4 672, VT-x)";

function freezeModel(m: CostModel): CostModel {
  const costs: Record<string, CostConstant> = {};
  for (const k of Object.keys(COST_KEYS)) {
    const c = (m.costs as Record<string, CostConstant>)[k];
    costs[k] = Object.freeze({ value: c.value, source: c.source });
  }
  return Object.freeze({
    name: m.name,
    description: m.description,
    ghz: m.ghz,
    costs: Object.freeze(costs) as Record<CostKey, CostConstant>,
  });
}

const c = (value: number, source: string): CostConstant => ({ value, source });

const ASSUMED_MIX =
  "assumed: page-walk references mostly hit the caches (no data caches are modelled)";

/** Pentium 4 with VT-x (Adams & Agesen 2006). */
const PENTIUM4: CostModel = {
  name: "pentium4-vtx",
  description:
    "3.8 GHz Pentium 4 672 with VT-x, shadow paging in hardware VMMs (Adams & Agesen, ASPLOS 2006)",
  ghz: 3.8,
  costs: {
    dataAccess: c(4, "assumed: an L1 hit"),
    tlbHit: c(0, "assumed: the L1 TLB lookup overlaps the cache access"),
    tlbMiss: c(
      7,
      "assumed: as the modern profile's STLB hit (~7, Sandy Bridge)",
    ),
    l1: c(4, "assumed (not in the paper)"),
    l2: c(27, "assumed (not in the paper)"),
    l3: c(27, "assumed: the Pentium 4 672 has no L3; priced as L2"),
    dram: c(300, "assumed: ~80 ns at 3.8 GHz (not in the paper)"),
    walkL1: c(0.5, ASSUMED_MIX),
    walkL2: c(0.3, ASSUMED_MIX),
    walkL3: c(0.15, ASSUMED_MIX),
    walkDram: c(0.05, ASSUMED_MIX),
    vmExit: c(1931, `${AA}: page-fault VM exit`),
    vmEntry: c(2409, `${AA}: VM entry`),
    hypercallTransition: c(
      4340,
      "assumed: priced as a VM exit + entry (1,931 + 2,409); a PV guest's hypercall is a cheaper ring transition, no figure in FIGURES.md",
    ),
    hypercall: c(1000, "assumed"),
    emulation: c(
      8393,
      `derived: ${AA} traced PTE write 12,733 − exit 1,931 − entry 2,409`,
    ),
    hiddenFault: c(
      5809,
      "assumed: as the true-fault handler (derived below); the paper gives no hidden-fault figure",
    ),
    trueFaultReflect: c(
      5809,
      `derived: ${AA} true guest #PF 11,242 − native 1,093 − exit 1,931 − entry 2,409`,
    ),
    cr3Exit: c(1000, "assumed"),
    invlpgExit: c(500, "assumed"),
    eptViolation: c(
      2000,
      "assumed: this CPU has no EPT; priced as the modern profile for comparison",
    ),
    mmioExit: c(5000, "assumed"),
    otherExit: c(1000, "assumed"),
    shadowResync: c(2000, "assumed: compare 512 entries with a snapshot"),
    guestPageFault: c(1093, `${AA}: true guest #PF, native`),
    pteWrite: c(1, `${AA}: write to a traced guest PTE, native (~1)`),
    cr3Load: c(200, "assumed"),
    invlpg: c(100, "assumed"),
  },
};

const FIG = "FIGURES.md typical costs";
const GHZ = 3;

/** A modern x86 server (FIGURES.md typical costs). */
const MODERN: CostModel = {
  name: "modern",
  description:
    "a modern x86 server at an assumed 3 GHz with EPT (FIGURES.md typical costs; handler costs assumed)",
  ghz: GHZ,
  costs: {
    dataAccess: c(4, `${FIG}: L1 hit ~4 cycles (Skylake)`),
    tlbHit: c(0, "assumed: the L1 TLB lookup overlaps the cache access"),
    tlbMiss: c(7, `${FIG}: STLB hit ~7 cycles (Sandy Bridge)`),
    l1: c(4, `${FIG}: L1 ~4 cycles (Skylake)`),
    l2: c(12, `${FIG}: L2 ~12 cycles (Skylake)`),
    l3: c(44, `${FIG}: L3 ~44 cycles (Skylake)`),
    dram: c(60 * GHZ, `${FIG}: DRAM ~60 ns local, at an assumed 3 GHz`),
    walkL1: c(0.5, ASSUMED_MIX),
    walkL2: c(0.3, ASSUMED_MIX),
    walkL3: c(0.15, ASSUMED_MIX),
    walkDram: c(0.05, ASSUMED_MIX),
    vmExit: c(
      1000,
      `derived: half of the ~2,000-cycle VM exit round trip (${FIG}; SplitX, WIOV 2011)`,
    ),
    vmEntry: c(
      1000,
      `derived: half of the ~2,000-cycle VM exit round trip (${FIG}; SplitX, WIOV 2011)`,
    ),
    hypercallTransition: c(
      2000,
      "assumed: priced as a VM exit round trip; a PV guest's hypercall is a ring transition, no figure in FIGURES.md",
    ),
    hypercall: c(500, "assumed"),
    emulation: c(2000, "assumed: decode and emulate one store"),
    hiddenFault: c(1500, "assumed: guest walk in software and a shadow fill"),
    trueFaultReflect: c(1000, "assumed: guest walk and event injection"),
    cr3Exit: c(500, "assumed"),
    invlpgExit: c(300, "assumed"),
    eptViolation: c(1500, "assumed: look up the memslot, install a leaf"),
    mmioExit: c(3000, "assumed"),
    otherExit: c(500, "assumed"),
    shadowResync: c(1500, "assumed: compare 512 entries with a snapshot"),
    guestPageFault: c(
      1000,
      "assumed: about the native figure of Adams & Agesen",
    ),
    pteWrite: c(1, "assumed: an ordinary store"),
    cr3Load: c(200, "assumed"),
    invlpg: c(100, "assumed"),
  },
};

/**
 * The named cost models (frozen).
 *
 * @example
 * ```ts
 * import { COST_MODELS } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(COST_MODELS), ["pentium4-vtx", "modern"]);
 * assert.equal(COST_MODELS.modern.costs.l3.value, 44);
 * assert.throws(() => { (COST_MODELS.modern.costs.l3 as { value: number }).value = 1; });
 * ```
 */
export const COST_MODELS: Readonly<Record<string, CostModel>> = Object.freeze({
  "pentium4-vtx": freezeModel(PENTIUM4),
  "modern": freezeModel(MODERN),
});

/**
 * The named model `name` (a `RangeError` names the known ones otherwise).
 *
 * @example
 * ```ts
 * import { costModel } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * assert.equal(costModel("modern").ghz, 3);
 * assert.throws(() => costModel("pdp11"), /cost model "pdp11" is unknown: expected one of pentium4-vtx, modern/);
 * ```
 */
export function costModel(name: string): CostModel {
  const m = COST_MODELS[name];
  if (m === undefined || !Object.hasOwn(COST_MODELS, name)) {
    throw new RangeError(
      `cost model "${String(name)}" is unknown: expected one of ${
        Object.keys(COST_MODELS).join(", ")
      }`,
    );
  }
  return m;
}

/** An edit for {@linkcode withCosts}: a number (source "edited") or a value with its source. */
export type CostEdit = number | CostConstant;

/**
 * Validate a model: every key present, values finite and ≥ 0, the walk
 * mix summing to 1. Returns the model; throws a `RangeError` naming the
 * bad constant otherwise.
 *
 * @example
 * ```ts
 * import { COST_MODELS, validateCostModel } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * assert.equal(validateCostModel(COST_MODELS.modern), COST_MODELS.modern);
 * const bad = { ...COST_MODELS.modern, costs: { ...COST_MODELS.modern.costs, l1: { value: -1, source: "x" } } };
 * assert.throws(() => validateCostModel(bad), /l1 -1 is invalid/);
 * ```
 */
export function validateCostModel(model: CostModel): CostModel {
  if (model === null || typeof model !== "object" || !model.costs) {
    throw new TypeError(
      `cost model ${
        String(model)
      } is invalid: expected { name, description, ghz, costs }`,
    );
  }
  for (const k of Object.keys(model.costs)) {
    if (!Object.hasOwn(COST_KEYS, k)) {
      throw new RangeError(
        `cost "${k}" is unknown: expected one of ${
          Object.keys(COST_KEYS).join(", ")
        }`,
      );
    }
  }
  for (const k of Object.keys(COST_KEYS) as CostKey[]) {
    const v = model.costs[k];
    if (v === undefined) {
      throw new RangeError(`cost model "${model.name}" lacks cost "${k}"`);
    }
    if (
      typeof v.value !== "number" || !Number.isFinite(v.value) || v.value < 0
    ) {
      throw new RangeError(
        `${k} ${String(v.value)} is invalid: expected a finite number ≥ 0`,
      );
    }
    if (typeof v.source !== "string" || v.source === "") {
      throw new TypeError(
        `${k}: source ${
          String(v.source)
        } is invalid: expected a non-empty string`,
      );
    }
    if (k.startsWith("walk") && v.value > 1) {
      throw new RangeError(
        `${k} ${v.value} is invalid: expected a fraction in [0, 1]`,
      );
    }
  }
  const mix = model.costs.walkL1.value + model.costs.walkL2.value +
    model.costs.walkL3.value + model.costs.walkDram.value;
  if (Math.abs(mix - 1) > 1e-9) {
    throw new RangeError(
      `walk hit mix ${
        Math.round(mix * 1e9) / 1e9
      } is invalid: walkL1 + walkL2 + walkL3 + walkDram must sum to 1`,
    );
  }
  if (
    !(typeof model.ghz === "number" && model.ghz > 0 &&
      Number.isFinite(model.ghz))
  ) {
    throw new RangeError(
      `ghz ${String(model.ghz)} is invalid: expected a positive number`,
    );
  }
  return model;
}

/**
 * A frozen copy of `model` with some constants changed: a number keeps
 * "edited" as its source; `{ value, source }` gives both. Unknown keys and
 * bad values throw (the original is never changed).
 *
 * @example
 * ```ts
 * import { COST_MODELS, withCosts } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * const fast = withCosts(COST_MODELS.modern, { vmExit: 500, vmEntry: { value: 400, source: "my CPU" } }, { name: "fast exits" });
 * assert.equal(fast.costs.vmExit.value, 500);
 * assert.equal(fast.costs.vmExit.source, "edited (was 1000: derived: half of the ~2,000-cycle VM exit round trip (FIGURES.md typical costs; SplitX, WIOV 2011))");
 * assert.equal(fast.costs.vmEntry.source, "my CPU");
 * assert.equal(COST_MODELS.modern.costs.vmExit.value, 1000);    // unchanged
 * assert.throws(() => withCosts(COST_MODELS.modern, { vmexit: 1 } as never), /cost "vmexit" is unknown/);
 * assert.throws(() => withCosts(COST_MODELS.modern, { walkL1: 0.9 }), /walk hit mix/);
 * ```
 */
export function withCosts(
  model: CostModel,
  edits: Partial<Record<CostKey, CostEdit>>,
  options: { name?: string; description?: string; ghz?: number } = {},
): CostModel {
  validateCostModel(model);
  if (edits === null || typeof edits !== "object") {
    throw new TypeError(
      `edits ${String(edits)} are invalid: expected an object of cost → number`,
    );
  }
  const costs: Record<string, CostConstant> = { ...model.costs };
  for (const [k, e] of Object.entries(edits)) {
    if (!Object.hasOwn(COST_KEYS, k)) {
      throw new RangeError(
        `cost "${k}" is unknown: expected one of ${
          Object.keys(COST_KEYS).join(", ")
        }`,
      );
    }
    const old = costs[k];
    costs[k] = typeof e === "number"
      ? { value: e, source: `edited (was ${old.value}: ${old.source})` }
      : { value: e?.value, source: e?.source };
  }
  const out = freezeModel({
    name: options.name ?? `${model.name} (edited)`,
    description: options.description ?? model.description,
    ghz: options.ghz ?? model.ghz,
    costs: costs as Record<CostKey, CostConstant>,
  });
  return validateCostModel(out);
}

/**
 * "This machine": a model from the measured `memvirt-cost-profile/1` of
 * `lib/kvm/costs.ts` (`measureCosts`). Measured: the data access (a load
 * that hits the TLB and L1), the guest #PF, a page-table write, the CR3
 * switch, and the TLB-miss penalty (of which the fixed part is the penalty
 * minus a 4-reference walk at the base model's mean reference cost).
 * Everything is measured *inside* a guest, so these numbers include this
 * machine's hypervisor; constants not measured come from `base` (default
 * "modern"), with their sources.
 *
 * @example
 * ```ts
 * import { COST_MODELS, costModelFromMeasured } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * const cost = (cycles: number) => ({ cycles, ns: cycles / 2, cpl: 3 as const, events: 1, runs: 1 });
 * const measured = {
 *   schema: "memvirt-cost-profile/1" as const,
 *   machine: { cpu: "Test CPU", kvmModule: "kvm_intel", tscHz: 2e9, measuredAt: "2026-01-01T00:00:00Z" },
 *   unit: "tsc-cycles" as const,
 *   costs: {
 *     userLoop: cost(2), kernelLoop: cost(2), load: cost(5), guestPageFault: cost(900),
 *     guestPageTableWriteFirst: cost(3000), guestPageTableWrite: cost(2), cr3Switch: cost(150), tlbMiss: cost(100),
 *   },
 *   workingSets: [], notes: [],
 * };
 * const m = costModelFromMeasured(measured);
 * assert.equal(m.costs.guestPageFault.value, 900);
 * assert.match(m.costs.guestPageFault.source, /measured 2026-01-01 on Test CPU \(kvm_intel\)/);
 * assert.equal(m.ghz, 2);
 * assert.equal(m.costs.tlbMiss.value, 15.2); // 100 − 4 × 21.2, the modern mean walk reference
 * // a load measured at 0 cycles is below the loop's resolution: the base value stays
 * const z = costModelFromMeasured({ ...measured, costs: { ...measured.costs, load: cost(0) } });
 * assert.equal(z.costs.dataAccess.value, COST_MODELS.modern.costs.dataAccess.value);
 * assert.match(z.costs.dataAccess.source, /came out 0/);
 * assert.throws(() => costModelFromMeasured({ schema: "x" } as never), /memvirt-cost-profile\/1/);
 * ```
 */
export function costModelFromMeasured(
  profile: CostProfile,
  base: CostModel = COST_MODELS.modern,
): CostModel {
  if (
    profile === null || typeof profile !== "object" ||
    profile.schema !== "memvirt-cost-profile/1" || !profile.costs
  ) {
    throw new TypeError(
      `profile ${
        String((profile as { schema?: unknown })?.schema ?? profile)
      } is invalid: expected a memvirt-cost-profile/1 object from measureCosts()`,
    );
  }
  const m = profile.machine;
  const at = `measured ${
    String(m.measuredAt).slice(0, 10)
  } on ${m.cpu} (${m.kvmModule})`;
  const k = profile.costs;
  const mean = meanWalkReference(base);
  const tlbMiss = Math.round((k.tlbMiss.cycles - 4 * mean) * 1e6) / 1e6;
  // A measurement at or below zero (an L1 hit hidden behind the loop, a
  // miss penalty smaller than the modelled walk) is below what the loop can
  // resolve: keep the base model's constant and say so, rather than price
  // the event at 0.
  const ed = (
    value: number,
    what: string,
    key: CostKey,
  ): CostConstant =>
    value > 0 ? { value, source: `${at}: ${what}` } : {
      value: base.costs[key].value,
      source:
        `${at}: ${what} came out ${value} (below the loop's resolution);` +
        ` kept ${base.name}'s ${base.costs[key].value} (${
          base.costs[key].source
        })`,
    };
  return withCosts(base, {
    dataAccess: ed(k.load.cycles, "costs.load", "dataAccess"),
    guestPageFault: ed(
      k.guestPageFault.cycles,
      "costs.guestPageFault",
      "guestPageFault",
    ),
    pteWrite: ed(
      k.guestPageTableWrite.cycles,
      "costs.guestPageTableWrite",
      "pteWrite",
    ),
    emulation: ed(
      Math.max(
        0,
        k.guestPageTableWriteFirst.cycles - base.costs.vmExit.value -
          base.costs.vmEntry.value,
      ),
      `costs.guestPageTableWriteFirst − ${base.name} exit and entry`,
      "emulation",
    ),
    cr3Load: ed(k.cr3Switch.cycles, "costs.cr3Switch (CPL 0)", "cr3Load"),
    tlbMiss: ed(
      tlbMiss,
      `costs.tlbMiss − 4 walk references at ${base.name}'s mean ${mean}`,
      "tlbMiss",
    ),
  }, {
    name: "this machine",
    description:
      `${m.cpu}, ${m.kvmModule}, ${at}; unmeasured constants from "${base.name}"`,
    ghz: m.tscHz / 1e9,
  });
}

/**
 * Mean cycles of one page-walk memory reference: the walk hit mix applied
 * to the L1/L2/L3/DRAM latencies.
 *
 * @example
 * ```ts
 * import { COST_MODELS, meanWalkReference } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * // 0.5·4 + 0.3·12 + 0.15·44 + 0.05·180
 * assert.equal(meanWalkReference(COST_MODELS.modern), 21.2);
 * ```
 */
export function meanWalkReference(model: CostModel): number {
  const k = model.costs;
  const v = k.walkL1.value * k.l1.value + k.walkL2.value * k.l2.value +
    k.walkL3.value * k.l3.value + k.walkDram.value * k.dram.value;
  return Math.round(v * 1e6) / 1e6;
}
