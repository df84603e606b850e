/**
 * Escaping for HTML and SVG. Every interpolated string goes through here:
 * labels are user input, and Deno's `html`/`svg` tagged templates do not
 * escape.
 *
 * @module
 */

const MAP: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Escape text for HTML/XML element content and attribute values.
 *
 * @example
 * ```ts
 * import { escapeXml } from "./escape.ts";
 * import assert from "node:assert/strict";
 * assert.equal(escapeXml(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
 * ```
 */
export function escapeXml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => MAP[c]);
}
