/**
 * SVG walk diagram (placeholder; replaced by the full diagram).
 *
 * @module
 */

import type { Walk } from "../paging/record.ts";
import { escapeXml } from "./escape.ts";

/**
 * Render a walk as SVG.
 *
 * @example
 * ```ts
 * import { walkToSvg } from "./walk_svg.ts";
 * import { walk } from "../paging/record.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 20 });
 * const w = walk({ memory, mode: pagingMode(X86_32), root: 0x1000 }, 0x1234);
 * assert.match(walkToSvg(w), /^<svg/);
 * ```
 */
export function walkToSvg(w: Walk): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="20"><text x="0" y="15">${
    escapeXml(w.toString())
  }</text></svg>`;
}
