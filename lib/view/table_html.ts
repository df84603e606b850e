/**
 * HTML page-table view (placeholder; replaced by the full view).
 *
 * @module
 */

import { escapeXml } from "./escape.ts";
import { type PageTableLike, pageTableToText } from "./text.ts";

/**
 * Render a page table as HTML.
 *
 * @example
 * ```ts
 * import { pageTableToHtml } from "./table_html.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * assert.match(pageTableToHtml(pt), /<pre/);
 * ```
 */
export function pageTableToHtml(pt: PageTableLike): string {
  return `<pre>${escapeXml(pageTableToText(pt))}</pre>`;
}
