/**
 * Nested paging (Intel EPT, AMD NPT): the 2-D walk by composition
 * ({@linkcode NestedWalker}), its record ({@linkcode NestedWalkRecord}) and
 * the {@linkcode NestedScheme} MMU scheme.
 *
 * @example
 * ```ts
 * import { NestedScheme, NESTED_OK } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new NestedScheme({ stage: "npt" }).stage, "npt");
 * assert.equal(NESTED_OK, 0);
 * ```
 *
 * @module
 */
export * from "./walk.ts";
export * from "./record.ts";
export * from "./scheme.ts";
export * from "./cache.ts";
export * from "./hap.ts";
