/**
 * Displayable values for notebooks and the REPL. A {@linkcode Rich} holds
 * a MIME bundle and shows it through `[Symbol.for("Jupyter.display")]`
 * (the Deno kernel calls it on a cell's last value) and
 * `[Symbol.for("Deno.customInspect")]` (`deno repl`, `console.log`).
 * Nothing here touches `Deno.jupyter`, which throws outside the kernel.
 *
 * ```ts ignore
 * showPageTable(pt, { highlight: w });   // last expression of a cell
 * showWalk(w);
 * ```
 *
 * @module
 */

import type { Walk } from "../paging/record.ts";
import {
  type PageTableHtmlOptions,
  type PageTableSource,
  pageTableToHtml,
} from "./table_html.ts";
import { type PageTableLike, pageTableToText, walkToText } from "./text.ts";
import { type WalkSvgOptions, walkToSvg } from "./walk_svg.ts";

/**
 * The key the Deno Jupyter kernel calls for a rich display
 * (`Symbol.for("Jupyter.display")`), typed so that `value[JUPYTER_DISPLAY]()`
 * type-checks.
 *
 * @example
 * ```ts
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import assert from "node:assert/strict";
 * assert.equal(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
 * ```
 */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display");

/**
 * The key `deno repl` and `Deno.inspect` call (`Symbol.for("Deno.customInspect")`).
 *
 * @example
 * ```ts
 * import { CUSTOM_INSPECT } from "./display.ts";
 * import assert from "node:assert/strict";
 * assert.equal(CUSTOM_INSPECT, Symbol.for("Deno.customInspect"));
 * ```
 */
export const CUSTOM_INSPECT: unique symbol = Symbol.for("Deno.customInspect");

/**
 * A MIME bundle: always `text/plain`, plus any richer types.
 *
 * @example
 * ```ts
 * import { type MimeBundle, Rich } from "./display.ts";
 * import assert from "node:assert/strict";
 * const bundle: MimeBundle = { "text/plain": "x", "text/markdown": "**x**" };
 * assert.deepEqual(new Rich(bundle).mimeTypes, ["text/plain", "text/markdown"]);
 * ```
 */
export interface MimeBundle {
  /** Plain text (no ANSI codes): the fallback every frontend can show. */
  readonly "text/plain": string;
  /** Richer representations, by MIME type (strings, or JSON values for `+json` types). */
  readonly [mime: string]: unknown;
}

/**
 * A value that displays as a MIME bundle in Jupyter and as its plain text
 * in the REPL.
 *
 * @example
 * ```ts
 * import { CUSTOM_INSPECT, JUPYTER_DISPLAY, Rich } from "./display.ts";
 * import assert from "node:assert/strict";
 * const r = Rich.html("<b>hi</b>", "hi");
 * const bundle = r[JUPYTER_DISPLAY]();
 * assert.deepEqual(bundle, { "text/plain": "hi", "text/html": "<b>hi</b>" });
 * assert.equal(r[CUSTOM_INSPECT](), "hi");
 * assert.equal(Deno.inspect(r), "hi");
 * assert.throws(() => new Rich({} as never), /text\/plain/);
 * ```
 */
export class Rich {
  readonly #bundle: MimeBundle;

  /** Wrap `bundle`; throws `TypeError` unless it has a string `text/plain`. */
  constructor(bundle: MimeBundle) {
    if (typeof bundle?.["text/plain"] !== "string") {
      throw new TypeError(
        'MIME bundle is invalid: expected a string "text/plain" entry',
      );
    }
    this.#bundle = Object.freeze({ ...bundle });
  }

  /** HTML with a plain-text fallback. */
  static html(html: string, text: string): Rich {
    return new Rich({ "text/plain": text, "text/html": html });
  }

  /** SVG with a plain-text fallback. */
  static svg(svg: string, text: string): Rich {
    return new Rich({ "text/plain": text, "image/svg+xml": svg });
  }

  /** The bundle (frozen). */
  get bundle(): MimeBundle {
    return this.#bundle;
  }

  /** The plain-text representation. */
  get text(): string {
    return this.#bundle["text/plain"];
  }

  /** The MIME types held, `text/plain` first. */
  get mimeTypes(): string[] {
    return Object.keys(this.#bundle).sort((a, b) =>
      a === "text/plain" ? -1 : b === "text/plain" ? 1 : a < b ? -1 : 1
    );
  }

  /** Jupyter rich display: a plain copy of the bundle. */
  [JUPYTER_DISPLAY](): Record<string, unknown> {
    return { ...this.#bundle };
  }

  /** REPL display: the plain text. */
  [CUSTOM_INSPECT](): string {
    return this.text;
  }

  /** The plain text. */
  toString(): string {
    return this.text;
  }
}

/**
 * Options for {@linkcode showPageTable}.
 *
 * @example
 * ```ts
 * import { showPageTable, type ShowPageTableOptions } from "./display.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000);
 * pt.map(0x2000, 0xa000);
 * const options: ShowPageTableOptions = { maxLines: 1 };
 * assert.match(showPageTable(pt, options).text, /1 more mappings folded/);
 * ```
 */
export interface ShowPageTableOptions extends PageTableHtmlOptions {
  /** Mappings listed in the plain-text fallback before folding (default 40). */
  maxLines?: number;
}

/**
 * A page table as a displayable value: the HTML view (optionally
 * highlighting a walk's path) plus the text listing.
 *
 * @example
 * ```ts
 * import { showPageTable } from "./display.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000, { user: true });
 * const w = pt.lookup(0x1234);
 * const shown = showPageTable(pt, { highlight: w });
 * assert.deepEqual(shown.mimeTypes, ["text/plain", "text/html"]);
 * assert.match(shown.text, /0x1000 → 0x9000/);
 * assert.match(shown.text, /highlighted walk: 0x1234 → 0x9234/);
 * assert.match(String(shown.bundle["text/html"]), /mv-hl/);
 * ```
 */
export function showPageTable(
  pt: PageTableSource & PageTableLike,
  options: ShowPageTableOptions = {},
): Rich {
  const { maxLines, ...html } = options;
  let text = pageTableToText(pt, maxLines ?? 40);
  if (options.highlight) {
    text += `\nhighlighted walk: ${options.highlight.toString()}`;
  }
  return Rich.html(pageTableToHtml(pt, html), text);
}

/**
 * A walk as a displayable value: the SVG diagram plus the text trace.
 *
 * @example
 * ```ts
 * import { showWalk } from "./display.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
 * pt.map(0x1000, 0x9000);
 * const shown = showWalk(pt.lookup(0x1234), { idPrefix: "w1" });
 * assert.deepEqual(shown.mimeTypes, ["text/plain", "image/svg+xml"]);
 * assert.match(String(shown.bundle["image/svg+xml"]), /id="w1-title"/);
 * assert.match(shown.text, /PTE\[1\]/);
 * ```
 */
export function showWalk(w: Walk, options: WalkSvgOptions = {}): Rich {
  return Rich.svg(walkToSvg(w, options), walkToText(w));
}
