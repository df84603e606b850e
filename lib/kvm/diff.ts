/**
 * The differential test: memvirt's walker against the real CPU, case by
 * case — outcome (translation and physical address, or #PF with its error
 * code and CR2, or #GP), and every entry on the path afterwards (the A and
 * D bits the CPU wrote). A mismatch comes with a minimal reproducer: the
 * case's control bits, access and path entries, memvirt's walk, and what
 * the CPU did.
 *
 * @module
 */

import { hex64 } from "../address/address.ts";
import { walkToText } from "../view/text.ts";
import { Random } from "../util/random.ts";
import {
  caseSource,
  type CpuFeatures,
  describeCase,
  modelCase,
  type ModelResult,
  type PagingCase,
  randomCase,
  type RandomCaseOptions,
} from "./case.ts";
import type { RealCpu, RealOutcome, RealResult } from "./real.ts";

/** An outcome in the form both sides can be compared in. */
export type ComparableOutcome =
  | { kind: "ok"; pa: number | undefined }
  | { kind: "page-fault"; errorCode: number; cr2: bigint }
  | { kind: "gp"; errorCode: number }
  | { kind: "exception"; vector: number; errorCode: number }
  | { kind: "harness-error"; message: string };

/**
 * The model's outcome in comparable form (a #GP from the walk is #GP(0)).
 *
 * @example
 * ```ts
 * import { modelOutcome } from "./diff.ts";
 * import { modelCase, PVM_EPYC_FEATURES } from "./case.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x0000_0080_0000_0008n, kind: "read", cpl: 3, ac: false,
 *   wp: true, nxe: true, smep: false, smap: false,
 *   entries: [0x31007n, 0x32007n, 0x33007n, 0x200003n],
 * } as const;
 * assert.deepEqual(modelOutcome(modelCase(c, PVM_EPYC_FEATURES)), {
 *   kind: "page-fault", errorCode: 0b101, cr2: 0x8000000008n,
 * });
 * ```
 */
export function modelOutcome(m: ModelResult): ComparableOutcome {
  const o = m.walk.outcome;
  if (o.kind === "ok") return { kind: "ok", pa: o.pa };
  if (o.kind === "gp") return { kind: "gp", errorCode: 0 };
  return {
    kind: "page-fault",
    errorCode: o.errorCode.value,
    cr2: o.cr2.toBigInt(),
  };
}

/**
 * The real CPU's outcome in comparable form (another exception drops its
 * RIP).
 *
 * @example
 * ```ts
 * import { realOutcome } from "./diff.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(
 *   realOutcome({ kind: "exception", vector: 8, errorCode: 0, rip: 0x4000n }),
 *   { kind: "exception", vector: 8, errorCode: 0 },
 * );
 * assert.deepEqual(realOutcome({ kind: "gp", errorCode: 0 }), { kind: "gp", errorCode: 0 });
 * ```
 */
export function realOutcome(o: RealOutcome): ComparableOutcome {
  if (o.kind === "exception") {
    return { kind: "exception", vector: o.vector, errorCode: o.errorCode };
  }
  return o;
}

function same(a: ComparableOutcome, b: ComparableOutcome): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "ok" && b.kind === "ok") return a.pa === b.pa;
  if (a.kind === "page-fault" && b.kind === "page-fault") {
    return a.errorCode === b.errorCode && a.cr2 === b.cr2;
  }
  if (a.kind === "gp" && b.kind === "gp") return a.errorCode === b.errorCode;
  return false;
}

/**
 * One line for an outcome.
 *
 * @example
 * ```ts
 * import { outcomeText } from "./diff.ts";
 * import assert from "node:assert/strict";
 * assert.equal(outcomeText({ kind: "page-fault", errorCode: 0x15, cr2: 0x1000n }), "#PF(0x15) CR2=0x1000");
 * assert.equal(outcomeText({ kind: "ok", pa: 0x200010 }), "ok → 0x200010");
 * ```
 */
export function outcomeText(o: ComparableOutcome): string {
  switch (o.kind) {
    case "ok":
      return `ok → ${o.pa === undefined ? "?" : "0x" + o.pa.toString(16)}`;
    case "page-fault":
      return `#PF(0x${o.errorCode.toString(16)}) CR2=${
        hex64(Number(o.cr2 >> 32n), Number(o.cr2 & 0xffffffffn))
      }`;
    case "gp":
      return `#GP(0x${o.errorCode.toString(16)})`;
    case "exception":
      return `exception ${o.vector} (error code 0x${o.errorCode.toString(16)})`;
    case "harness-error":
      return `harness error: ${o.message}`;
  }
}

/** The comparison of one case. */
export interface CaseComparison {
  /** The case. */
  readonly case: PagingCase;
  /** Whether outcome and entries agree. */
  readonly agree: boolean;
  /** The model's outcome. */
  readonly model: ComparableOutcome;
  /** The real CPU's outcome. */
  readonly real: ComparableOutcome;
  /** What differs (empty when they agree). */
  readonly differences: readonly string[];
  /** The model's walk and entries. */
  readonly modelResult: ModelResult;
  /** The real CPU's result. */
  readonly realResult: RealResult;
}

/**
 * Compare a model result with a real result for case `c`.
 *
 * @example
 * ```ts
 * import { compareResults } from "./diff.ts";
 * import { modelCase, PVM_EPYC_FEATURES } from "./case.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x0000_0080_0000_0008n, kind: "read", cpl: 0, ac: false,
 *   wp: true, nxe: true, smep: false, smap: false,
 *   entries: [0x31007n, 0x32007n, 0x33007n, 0x200003n],
 * } as const;
 * const m = modelCase(c, PVM_EPYC_FEATURES);
 * const good = { outcome: { kind: "ok", pa: 0x200008 }, entriesAfter: m.entriesAfter, entryWrites: 0 } as const;
 * assert.equal(compareResults(c, m, good).agree, true);
 * const noA = { ...good, entriesAfter: c.entries };
 * assert.match(compareResults(c, m, noA).differences.join("\n"), /PML4E after/);
 * ```
 */
export function compareResults(
  c: PagingCase,
  m: ModelResult,
  r: RealResult,
): CaseComparison {
  const model = modelOutcome(m);
  const real = realOutcome(r.outcome);
  const differences: string[] = [];
  if (!same(model, real)) {
    differences.push(
      `outcome: model ${outcomeText(model)}, CPU ${outcomeText(real)}`,
    );
  }
  const names = ["PTE", "PDE", "PDPTE", "PML4E"];
  m.entriesAfter.forEach((e, i) => {
    const got = r.entriesAfter[i];
    if (got !== e) {
      differences.push(
        `${names[3 - i]} after: model 0x${e.toString(16)}, CPU 0x${
          got?.toString(16)
        } (changed bits 0x${((got ?? 0n) ^ e).toString(16)})`,
      );
    }
  });
  return {
    case: c,
    agree: differences.length === 0,
    model,
    real,
    differences,
    modelResult: m,
    realResult: r,
  };
}

/**
 * Run case `c` on the model (configured with `cpu.features`) and on `cpu`,
 * and compare.
 *
 * @example
 * ```ts
 * import { compareCase } from "./diff.ts";
 * import { RealCpu } from "./real.ts";
 * import { kvmAvailable } from "./vm.ts";
 * import assert from "node:assert/strict";
 * if (kvmAvailable()) {
 *   using cpu = RealCpu.create();
 *   const cmp = compareCase(cpu, {
 *     va: 0x0000_0080_0000_0010n, kind: "write", cpl: 0, ac: false,
 *     wp: false, nxe: true, smep: false, smap: false,
 *     entries: [0x31007n, 0x32005n, 0x33007n, 0x200005n], // read-only, WP = 0
 *   });
 *   assert.equal(cmp.agree, true);
 *   assert.deepEqual(cmp.real, { kind: "ok", pa: 0x200010 });
 * }
 * ```
 */
export function compareCase(cpu: RealCpu, c: PagingCase): CaseComparison {
  const m = modelCase(c, cpu.features, cpu.memoryBytes);
  const r = cpu.run(c, m.walk.pa);
  return compareResults(c, m, r);
}

/**
 * A minimal reproducer for a comparison: the case (as text and as
 * TypeScript source for a regression test), memvirt's walk, and both
 * outcomes.
 *
 * @example
 * ```ts
 * import { compareResults, reproducer } from "./diff.ts";
 * import { modelCase, PVM_EPYC_FEATURES } from "./case.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x0000_0080_0000_0008n, kind: "read", cpl: 0, ac: false,
 *   wp: true, nxe: true, smep: false, smap: false,
 *   entries: [0x31007n, 0x32007n, 0x33007n, 0x200003n],
 * } as const;
 * const m = modelCase(c, PVM_EPYC_FEATURES);
 * const bad = { outcome: { kind: "page-fault", errorCode: 1, cr2: c.va }, entriesAfter: c.entries, entryWrites: 0 } as const;
 * const text = reproducer(compareResults(c, m, bad));
 * assert.match(text, /CPL 0 read of 0x8000000008/);
 * assert.match(text, /memvirt's walk/);
 * assert.match(text, /CPU: +#PF\(0x1\)/);
 * ```
 */
export function reproducer(cmp: CaseComparison): string {
  return [
    `MISMATCH: ${cmp.differences.join("; ")}`,
    describeCase(cmp.case),
    `  model: ${outcomeText(cmp.model)}`,
    `  CPU:   ${outcomeText(cmp.real)}`,
    `  case source: ${caseSource(cmp.case)}`,
    "memvirt's walk:",
    walkToText(cmp.modelResult.walk).split("\n").map((l) => "  " + l).join(
      "\n",
    ),
  ].join("\n");
}

/** Options for {@linkcode runDifferential}. */
export interface DifferentialOptions
  extends Omit<RandomCaseOptions, "features"> {
  /** Number of random cases. Default 10,000. */
  count?: number;
  /** Seed. Default 1. */
  seed?: number;
  /** Called with each comparison (e.g. to print reproducers of mismatches). */
  onCase?: (cmp: CaseComparison, index: number) => void;
  /** Keep at most this many mismatches in the summary (default 20). */
  keepMismatches?: number;
}

/** Outcome counts of a differential run. */
export interface DifferentialSummary {
  /** Seed used. */
  readonly seed: number;
  /** Cases run. */
  readonly cases: number;
  /** Cases where model and CPU agree entirely. */
  readonly agreed: number;
  /** The first mismatches. */
  readonly mismatches: readonly CaseComparison[];
  /** Cases per real outcome ("ok", "#PF", "#GP", …) and page-fault reason. */
  readonly byOutcome: Readonly<Record<string, number>>;
  /** VM re-creations after harness errors. */
  readonly resets: number;
  /** Wall-clock milliseconds. */
  readonly ms: number;
  /** The features the model was configured with. */
  readonly features: CpuFeatures;
}

/**
 * Run `count` seeded random cases on the model and on `cpu`.
 *
 * @example
 * ```ts
 * import { runDifferential } from "./diff.ts";
 * import { RealCpu } from "./real.ts";
 * import { kvmAvailable } from "./vm.ts";
 * import assert from "node:assert/strict";
 * if (kvmAvailable()) {
 *   using cpu = RealCpu.create();
 *   const s = runDifferential(cpu, { count: 20, seed: 3 });
 *   assert.equal(s.cases, 20);
 *   assert.equal(s.agreed, 20);
 * }
 * ```
 */
export function runDifferential(
  cpu: RealCpu,
  options: DifferentialOptions = {},
): DifferentialSummary {
  const count = options.count ?? 10_000;
  const seed = options.seed ?? 1;
  const keep = options.keepMismatches ?? 20;
  const rng = new Random(seed);
  const t0 = performance.now();
  const resets0 = cpu.resets;
  const mismatches: CaseComparison[] = [];
  const byOutcome: Record<string, number> = {};
  let agreed = 0;
  for (let i = 0; i < count; i++) {
    const c = randomCase(rng, { ...options, features: cpu.features });
    const cmp = compareCase(cpu, c);
    const w = cmp.modelResult.walk.outcome;
    const key = w.kind === "page-fault" ? `#PF ${w.reason}` : w.kind;
    byOutcome[key] = (byOutcome[key] ?? 0) + 1;
    if (cmp.agree) agreed++;
    else if (mismatches.length < keep) mismatches.push(cmp);
    options.onCase?.(cmp, i);
  }
  return {
    seed,
    cases: count,
    agreed,
    mismatches,
    byOutcome,
    resets: cpu.resets - resets0,
    ms: performance.now() - t0,
    features: cpu.features,
  };
}
