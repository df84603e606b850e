/**
 * Shared look of the HTML and SVG views: one colour per paging level (the
 * same in the walk diagram's address bands, its table boxes and the HTML
 * page-table view), font stacks, and deterministic number formatting
 * (never `toLocaleString`, whose output depends on the machine's locale).
 *
 * @module
 */

/**
 * Colours of one paging level.
 *
 * @example
 * ```ts
 * import { type LevelColor, levelColor } from "./style.ts";
 * import assert from "node:assert/strict";
 * const pml4: LevelColor = levelColor(4);
 * assert.match(pml4.fill, /^#[0-9a-f]{6}$/);
 * ```
 */
export interface LevelColor {
  /** Light background. */
  readonly fill: string;
  /** Border and accent. */
  readonly stroke: string;
  /** Text on the light background. */
  readonly text: string;
}

// Indexed by level (1 = leaf table). Level 1 is the same teal in every
// format, so "the PT" looks the same in 32-bit, PAE, 4- and 5-level pictures.
const LEVELS: readonly LevelColor[] = [
  { fill: "#f1f5f9", stroke: "#475569", text: "#1e293b" }, // 0: page offset
  { fill: "#ccfbf1", stroke: "#0f766e", text: "#134e4a" }, // 1: PT
  { fill: "#dbeafe", stroke: "#1d4ed8", text: "#1e3a8a" }, // 2: PD
  { fill: "#ede9fe", stroke: "#6d28d9", text: "#4c1d95" }, // 3: PDPT
  { fill: "#fef3c7", stroke: "#b45309", text: "#78350f" }, // 4: PML4
  { fill: "#fce7f3", stroke: "#be185d", text: "#831843" }, // 5: PML5
  { fill: "#cffafe", stroke: "#0e7490", text: "#164e63" }, // 6
  { fill: "#ecfccb", stroke: "#4d7c0f", text: "#365314" }, // 7
  { fill: "#f5f5f4", stroke: "#57534e", text: "#292524" }, // 8
];

/**
 * The colours of `level` (1 = leaf table; 0 = the page offset). Levels
 * beyond 8 reuse the palette.
 *
 * @example
 * ```ts
 * import { levelColor } from "./style.ts";
 * import assert from "node:assert/strict";
 * assert.equal(levelColor(1).stroke, "#0f766e");
 * assert.notEqual(levelColor(2).fill, levelColor(1).fill);
 * ```
 */
export function levelColor(level: number): LevelColor {
  const i = Number.isInteger(level) && level >= 0 ? level : 0;
  return LEVELS[i < LEVELS.length ? i : 1 + ((i - 1) % (LEVELS.length - 1))];
}

/**
 * Semantic colours shared by the views: success, fault, cached/skipped,
 * "set by this walk", and neutral ink.
 *
 * @example
 * ```ts
 * import { COLORS } from "./style.ts";
 * import assert from "node:assert/strict";
 * assert.equal(COLORS.fault.stroke, "#dc2626");
 * assert.ok(Object.isFrozen(COLORS));
 * ```
 */
export const COLORS: {
  readonly ok: LevelColor;
  readonly fault: LevelColor;
  readonly cached: LevelColor;
  readonly setByWalk: LevelColor;
  readonly ink: string;
  readonly muted: string;
  readonly line: string;
} = Object.freeze({
  ok: { fill: "#dcfce7", stroke: "#15803d", text: "#14532d" },
  fault: { fill: "#fef2f2", stroke: "#dc2626", text: "#991b1b" },
  cached: { fill: "#f3f4f6", stroke: "#9ca3af", text: "#6b7280" },
  setByWalk: { fill: "#fde047", stroke: "#a16207", text: "#422006" },
  ink: "#111827",
  muted: "#64748b",
  line: "#475569",
});

/**
 * Sans-serif font stack (no web fonts: views load nothing).
 *
 * @example
 * ```ts
 * import { FONT_SANS } from "./style.ts";
 * import assert from "node:assert/strict";
 * assert.match(FONT_SANS, /sans-serif$/);
 * ```
 */
export const FONT_SANS =
  "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif";
/**
 * Monospace font stack.
 *
 * @example
 * ```ts
 * import { FONT_MONO } from "./style.ts";
 * import assert from "node:assert/strict";
 * assert.match(FONT_MONO, /monospace$/);
 * ```
 */
export const FONT_MONO =
  "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace";

/**
 * Format a non-negative integer with thousands separators, independent of
 * the locale.
 *
 * @example
 * ```ts
 * import { formatCount } from "./style.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatCount(100000), "100,000");
 * assert.equal(formatCount(7), "7");
 * ```
 */
export function formatCount(n: number): string {
  const s = String(Math.trunc(n));
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * A 32-bit FNV-1a hash of `text` as 8 hex digits: deterministic ids
 * derived from content, never random.
 *
 * @example
 * ```ts
 * import { hashId } from "./style.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hashId("abc"), hashId("abc"));
 * assert.match(hashId("abc"), /^[0-9a-f]{8}$/);
 * ```
 */
export function hashId(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}
