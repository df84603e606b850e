/**
 * The cost model: event counts → cycles through named, sourced, editable
 * cost models ({@linkcode COST_MODELS}, {@linkcode withCosts},
 * {@linkcode costModelFromMeasured}), the estimate with its line-by-line
 * breakdown ({@linkcode estimateCycles}), and the comparison of the
 * model's predictions with this machine's measured costs
 * ({@linkcode compareWithMeasured}).
 *
 * @example
 * ```ts
 * import { COST_MODELS, estimateCycles, withCosts } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const m = withCosts(COST_MODELS.modern, { vmExit: 0, vmEntry: 0 });
 * const e = estimateCycles({ exitsByReason: { "cr-access": 2 } }, m);
 * assert.equal(e.total, 2 * 500);   // handlers only
 * ```
 *
 * @module
 */
export * from "./profiles.ts";
export * from "./estimate.ts";
export * from "./compare.ts";
