/**
 * Event counts → cycles: `estimateCycles(events, model)` prices each
 * counted event with a constant of a {@linkcode CostModel} and returns the
 * breakdown, line by line, so every number can be checked by hand.
 *
 * | component | events × constant |
 * | --- | --- |
 * | data | accesses × `dataAccess` |
 * | tlb | TLB hits × `tlbHit` + TLB misses (re-walks included) × `tlbMiss` |
 * | walk | page-walk references × mean reference cost (the `walk*` mix over `l1`…`dram`) |
 * | guest | guest #PFs × `guestPageFault`, entry writes × `pteWrite`, CR3 loads × `cr3Load`, INVLPGs × `invlpg` (what the guest kernel does natively too) |
 * | transitions | VM exits × (`vmExit` + `vmEntry`); hypercalls × `hypercallTransition` |
 * | handlers | per exit reason × its handler constant ({@linkcode EXIT_REASON_COST}); resyncs × `shadowResync` |
 *
 * Not modelled: data caches (the walk mix is an assumption of the model),
 * overlap of walks with other work (out-of-order execution hides part of a
 * miss), the guest kernel's other work (zeroing and copying pages), and
 * the cost of refilling the TLB after a flush other than through the
 * misses it causes.
 *
 * @module
 */

import type { SchemeCounters } from "../virt/scheme.ts";
import {
  type CostKey,
  type CostModel,
  meanWalkReference,
  validateCostModel,
} from "./profiles.ts";

/**
 * Counted events to price. Every field is a count ≥ 0 (missing = 0).
 *
 * @example
 * ```ts
 * import type { CostEvents } from "./estimate.ts";
 * import assert from "node:assert/strict";
 * const e: CostEvents = { accesses: 10, tlbHits: 8, tlbMisses: 2, walkReferences: 8 };
 * assert.equal(e.exitsByReason, undefined);
 * ```
 */
export interface CostEvents {
  /** Guest data accesses. */
  accesses?: number;
  /** Accesses served by the TLB. */
  tlbHits?: number;
  /** Accesses that walked (misses and re-walks). */
  tlbMisses?: number;
  /** Memory references made by hardware page walks (native/shadow: entries read; nested: 2-D references). */
  walkReferences?: number;
  /** #PF delivered to the guest. */
  guestPageFaults?: number;
  /** Guest page-table entry writes. */
  entryWrites?: number;
  /** Guest CR3 loads. */
  cr3Loads?: number;
  /** Guest INVLPGs. */
  invlpgs?: number;
  /** VM exits (and hypercalls) by reason. */
  exitsByReason?: Readonly<Record<string, number>>;
  /** Out-of-sync shadow pages resynced. */
  resyncs?: number;
}

/** Components of a {@linkcode CycleEstimate}. */
export type CostComponent =
  | "data"
  | "tlb"
  | "walk"
  | "guest"
  | "transitions"
  | "handlers";

/** The components, in display order. */
export const COST_COMPONENTS: readonly CostComponent[] = Object.freeze([
  "data",
  "tlb",
  "walk",
  "guest",
  "transitions",
  "handlers",
]);

/** One line of a breakdown: `count × unit = cycles`. */
export interface CostLine {
  /** Component. */
  readonly component: CostComponent;
  /** What was counted (e.g. "TLB misses", "exit: hidden-pf"). */
  readonly event: string;
  /** The constant(s) used. */
  readonly constant: string;
  /** Count. */
  readonly count: number;
  /** Cycles per event. */
  readonly unit: number;
  /** count × unit. */
  readonly cycles: number;
}

/** Result of {@linkcode estimateCycles}. */
export interface CycleEstimate {
  /** The model's name. */
  readonly model: string;
  /** Its clock rate (GHz). */
  readonly ghz: number;
  /** Lines with a non-zero count. */
  readonly lines: readonly CostLine[];
  /** Cycles by component (every component present). */
  readonly byComponent: Readonly<Record<CostComponent, number>>;
  /** All cycles. */
  readonly total: number;
  /** total / accesses (NaN without accesses). */
  readonly perAccess: number;
}

/**
 * Which handler constant prices each VM exit reason the schemes report
 * (`SchemeCounters.exitsByReason`). Reasons not listed use `otherExit`;
 * reasons starting with `hypercall` are priced as hypercalls (transition
 * `hypercallTransition`, handler `hypercall`) instead of VM exits, and so
 * are the traps of a PV guest into Xen that are not hypercalls ({@linkcode
 * PV_TRAP_REASONS}: a #PF bounced through Xen, a trapped store to a
 * writable page table): a PV guest enters Xen by a ring transition, not a
 * VM exit, so they pay `hypercallTransition` and their own handler.
 *
 * @example
 * ```ts
 * import { EXIT_REASON_COST } from "./estimate.ts";
 * import assert from "node:assert/strict";
 * assert.equal(EXIT_REASON_COST["hidden-pf"], "hiddenFault");
 * assert.equal(EXIT_REASON_COST["ept-violation"], "eptViolation");
 * ```
 */
export const EXIT_REASON_COST: Readonly<Record<string, CostKey>> = Object
  .freeze({
    "hidden-pf": "hiddenFault",
    "true-pf": "trueFaultReflect",
    "page-fault": "hiddenFault",
    "wp-emulation": "emulation",
    "cr-access": "cr3Exit",
    "invlpg": "invlpgExit",
    "ept-violation": "eptViolation",
    "npf": "eptViolation",
    "mmio": "mmioExit",
    "hypercall": "hypercall",
    "pf-bounce": "trueFaultReflect",
    "ptwr": "emulation",
  });

/**
 * Exit reasons that are PV traps into Xen (ring transitions priced as
 * hypercall transitions, see {@linkcode EXIT_REASON_COST}).
 *
 * @example
 * ```ts
 * import { PV_TRAP_REASONS } from "./estimate.ts";
 * import assert from "node:assert/strict";
 * assert.ok(PV_TRAP_REASONS.includes("pf-bounce"));
 * ```
 */
export const PV_TRAP_REASONS: readonly string[] = Object.freeze([
  "pf-bounce",
  "ptwr",
]);

function count(what: string, v: number | undefined): number {
  const n = v ?? 0;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    throw new RangeError(
      `${what} ${String(v)} is invalid: expected a count ≥ 0`,
    );
  }
  return n;
}

/**
 * Price `events` with `model` (see the module notes for the formula).
 *
 * @example By hand: 100 accesses, 90 hits, 10 misses of 24 references each, 2 EPT violations.
 * ```ts
 * import { estimateCycles } from "./estimate.ts";
 * import { COST_MODELS } from "./profiles.ts";
 * import assert from "node:assert/strict";
 * const e = estimateCycles({
 *   accesses: 100, tlbHits: 90, tlbMisses: 10, walkReferences: 240,
 *   exitsByReason: { "ept-violation": 2 },
 * }, COST_MODELS.modern);
 * assert.equal(e.byComponent.data, 100 * 4);
 * assert.equal(e.byComponent.tlb, 10 * 7);
 * assert.equal(e.byComponent.walk, 240 * 21.2);
 * assert.equal(e.byComponent.transitions, 2 * (1000 + 1000));
 * assert.equal(e.byComponent.handlers, 2 * 1500);
 * assert.equal(e.total, 400 + 70 + 5088 + 4000 + 3000);
 * assert.equal(e.perAccess, e.total / 100);
 * ```
 */
export function estimateCycles(
  events: CostEvents,
  model: CostModel,
): CycleEstimate {
  validateCostModel(model);
  if (events === null || typeof events !== "object") {
    throw new TypeError(
      `events ${String(events)} are invalid: expected an object of counts`,
    );
  }
  const k = model.costs;
  const lines: CostLine[] = [];
  const add = (
    component: CostComponent,
    event: string,
    constant: string,
    n: number,
    unit: number,
  ) => {
    if (n === 0) return;
    lines.push({
      component,
      event,
      constant,
      count: n,
      unit,
      cycles: Math.round(n * unit * 1e6) / 1e6,
    });
  };
  const accesses = count("accesses", events.accesses);
  add("data", "accesses", "dataAccess", accesses, k.dataAccess.value);
  add(
    "tlb",
    "TLB hits",
    "tlbHit",
    count("tlbHits", events.tlbHits),
    k.tlbHit.value,
  );
  add(
    "tlb",
    "TLB misses",
    "tlbMiss",
    count("tlbMisses", events.tlbMisses),
    k.tlbMiss.value,
  );
  add(
    "walk",
    "walk references",
    "walk mix × l1/l2/l3/dram",
    count("walkReferences", events.walkReferences),
    meanWalkReference(model),
  );
  add(
    "guest",
    "guest #PF",
    "guestPageFault",
    count("guestPageFaults", events.guestPageFaults),
    k.guestPageFault.value,
  );
  add(
    "guest",
    "entry writes",
    "pteWrite",
    count("entryWrites", events.entryWrites),
    k.pteWrite.value,
  );
  add(
    "guest",
    "CR3 loads",
    "cr3Load",
    count("cr3Loads", events.cr3Loads),
    k.cr3Load.value,
  );
  add(
    "guest",
    "INVLPGs",
    "invlpg",
    count("invlpgs", events.invlpgs),
    k.invlpg.value,
  );
  const reasons = events.exitsByReason ?? {};
  let exits = 0, calls = 0;
  for (const r of Object.keys(reasons).sort()) {
    const n = count(`exits for "${r}"`, reasons[r]);
    const hyper = r.startsWith("hypercall");
    const trap = PV_TRAP_REASONS.includes(r);
    if (hyper || trap) calls += n;
    else exits += n;
    const key: CostKey = hyper
      ? "hypercall"
      : Object.hasOwn(EXIT_REASON_COST, r)
      ? EXIT_REASON_COST[r]
      : "otherExit";
    add(
      "handlers",
      hyper ? r : `exit: ${r}`,
      key,
      n,
      k[key].value,
    );
  }
  add(
    "transitions",
    "VM exits",
    "vmExit + vmEntry",
    exits,
    k.vmExit.value + k.vmEntry.value,
  );
  add(
    "transitions",
    "hypercalls and PV traps",
    "hypercallTransition",
    calls,
    k.hypercallTransition.value,
  );
  add(
    "handlers",
    "shadow resyncs",
    "shadowResync",
    count("resyncs", events.resyncs),
    k.shadowResync.value,
  );
  const byComponent = Object.fromEntries(
    COST_COMPONENTS.map((c) => [c, 0]),
  ) as Record<CostComponent, number>;
  for (const l of lines) byComponent[l.component] += l.cycles;
  for (const c of COST_COMPONENTS) {
    byComponent[c] = Math.round(byComponent[c] * 1e6) / 1e6;
  }
  const total = Math.round(
    COST_COMPONENTS.reduce((s, c) => s + byComponent[c], 0) * 1e6,
  ) / 1e6;
  return {
    model: model.name,
    ghz: model.ghz,
    lines,
    byComponent,
    total,
    perAccess: accesses > 0 ? total / accesses : NaN,
  };
}

/**
 * Page-walk references in a scheme's counters: the 2-D references of
 * nested paging (`extra.references`, which also counts the data reference
 * of every completed access: those are taken off), the shadow tables'
 * entries read by hardware walks (`extra.shadowTableReads`), or the guest
 * entries read by the reference scheme's walks (`extra.guestTableReads`),
 * whichever the scheme has (in that order), less the references a
 * `TlbFront`'s paging-structure cache saved (`extra.pscSkipped`); 0 if
 * none. A scheme plugged in
 * later (Xen PV) should count its hardware walk's reads as
 * `guestTableReads` (or `shadowTableReads`).
 *
 * @example
 * ```ts
 * import { walkReferencesOf } from "./estimate.ts";
 * import { ReferenceScheme } from "../virt/reference.ts";
 * import assert from "node:assert/strict";
 * const c = { ...new ReferenceScheme().counters, accesses: 2 };
 * assert.equal(walkReferencesOf({ ...c, extra: { guestTableReads: 12 } }), 12);
 * assert.equal(walkReferencesOf({ ...c, extra: { guestTableReads: 12, pscSkipped: 5 } }), 7);
 * // nested: 2 completed accesses, 25 references each (24 + the data)
 * assert.equal(walkReferencesOf({ ...c, extra: { references: 50, guestTableReads: 3 } }), 48);
 * ```
 */
export function walkReferencesOf(c: SchemeCounters): number {
  const x = c.extra;
  if (x.references !== undefined) {
    const completed = (x.schemeAccesses ?? c.accesses) - c.guestPageFaults -
      c.generalProtection - c.unbacked;
    return x.references - completed;
  }
  return (x.shadowTableReads ?? x.guestTableReads ?? 0) - (x.pscSkipped ?? 0);
}

/**
 * The {@linkcode CostEvents} of a scheme's counters (a `TlbFront`'s:
 * `extra.tlbHits`, `tlbMisses`, `tlbRewalks`; without a TLB in front
 * every access counts as a miss).
 *
 * @example
 * ```ts
 * import { eventsOfCounters } from "./estimate.ts";
 * import { ReferenceScheme } from "../virt/reference.ts";
 * import assert from "node:assert/strict";
 * const c = { ...new ReferenceScheme().counters, accesses: 10, extra: { tlbHits: 7, tlbMisses: 2, tlbRewalks: 1, guestTableReads: 12 } };
 * const e = eventsOfCounters(c);
 * assert.deepEqual([e.accesses, e.tlbHits, e.tlbMisses, e.walkReferences], [10, 7, 3, 12]);
 * ```
 */
export function eventsOfCounters(c: SchemeCounters): CostEvents {
  const x = c.extra;
  const front = x.tlbHits !== undefined;
  return {
    accesses: c.accesses,
    tlbHits: front ? x.tlbHits : 0,
    tlbMisses: front ? (x.tlbMisses ?? 0) + (x.tlbRewalks ?? 0) : c.accesses,
    walkReferences: walkReferencesOf(c),
    guestPageFaults: c.guestPageFaults,
    entryWrites: c.entryWrites,
    cr3Loads: c.cr3Loads,
    invlpgs: c.invlpgs,
    exitsByReason: c.exitsByReason,
    resyncs: x.resyncs ?? 0,
  };
}
