/**
 * Shadow paging: {@linkcode ShadowScheme} (see `shadow.ts`).
 *
 * @example
 * ```ts
 * import { ShadowScheme } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new ShadowScheme({ outOfSync: 3 }).options.outOfSync, 3);
 * ```
 *
 * @module
 */
export {
  type ShadowOptions,
  type ShadowPageInfo,
  ShadowScheme,
} from "./shadow.ts";
