/**
 * Tiny SVG builders shared by the diagrams: attributes escaped, numbers
 * formatted the same way everywhere (at most one decimal, never "-0"), so
 * output is deterministic.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";

/** Attributes of an element; `undefined` values are left out. */
export type Attrs = Record<string, string | number | undefined>;

/**
 * Fixed number formatting: at most one decimal, never "-0".
 *
 * @example
 * ```ts
 * import { num } from "./svg.ts";
 * import assert from "node:assert/strict";
 * assert.equal(num(12.345), "12.3");
 * assert.equal(num(-0.01), "0");
 * ```
 */
export function num(v: number): string {
  const r = Math.round(v * 10) / 10;
  return String(r === 0 ? 0 : r);
}

/**
 * Serialize attributes (strings escaped, numbers through {@linkcode num}).
 *
 * @example
 * ```ts
 * import { attrs } from "./svg.ts";
 * import assert from "node:assert/strict";
 * assert.equal(attrs({ x: 1.25, class: '"a"', y: undefined }), ' x="1.3" class="&quot;a&quot;"');
 * ```
 */
export function attrs(a: Attrs): string {
  let s = "";
  for (const [k, v] of Object.entries(a)) {
    if (v === undefined) continue;
    s += ` ${k}="${typeof v === "number" ? num(v) : escapeXml(v)}"`;
  }
  return s;
}

/**
 * An element; `body` is markup (already escaped), none makes it self-closing.
 *
 * @example
 * ```ts
 * import { el } from "./svg.ts";
 * import assert from "node:assert/strict";
 * assert.equal(el("rect", { width: 2 }), '<rect width="2"/>');
 * assert.equal(el("g", {}, "<x/>"), "<g><x/></g>");
 * ```
 */
export function el(name: string, a: Attrs, body?: string): string {
  return body === undefined
    ? `<${name}${attrs(a)}/>`
    : `<${name}${attrs(a)}>${body}</${name}>`;
}

/**
 * A `<text>` whose content is plain text (escaped here).
 *
 * @example
 * ```ts
 * import { text } from "./svg.ts";
 * import assert from "node:assert/strict";
 * assert.equal(text(1, 2, "<a>"), '<text x="1" y="2">&lt;a&gt;</text>');
 * ```
 */
export function text(
  x: number,
  y: number,
  content: string,
  a: Attrs = {},
): string {
  return el("text", { x, y, ...a }, escapeXml(content));
}
