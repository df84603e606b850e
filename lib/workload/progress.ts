/**
 * Progress reporting for long runs (trace replay over millions of
 * accesses).
 *
 * {@linkcode progressReporter} picks where progress goes:
 *
 * - in a Jupyter notebook (Deno kernel), one display that is updated in
 *   place: `Deno.jupyter.display(bundle, { raw: true, display_id })`, then
 *   the same call with `update: true` (Jupyter's `update_display_data`);
 *   `Deno.jupyter` is only looked at when a reporter is created, never at
 *   import time (it throws outside the kernel);
 * - in a terminal, a single line on stderr rewritten with `\r`;
 * - otherwise (tests, pipes, CI) nothing, unless a target is forced.
 *
 * Updates are rate-limited (`minIntervalMs`), so a caller may call
 * {@linkcode ProgressReporter.update} often; callers in hot loops still
 * call it only every N items (trace replay: every `progressEvery`
 * accesses), so the per-item cost is nil.
 *
 * @module
 */

import { escapeXml } from "../view/escape.ts";

/** One progress observation. */
export interface ProgressUpdate {
  /** Items done so far. */
  done: number;
  /** Total items, if known. */
  total?: number;
  /** Fraction done in [0, 1], if known otherwise (e.g. bytes of a file read). */
  fraction?: number;
  /** Milliseconds since the start. */
  elapsedMs: number;
}

/** Where a reporter writes. */
export type ProgressTarget = "jupyter" | "terminal" | "silent";

/** Something that shows progress. */
export interface ProgressReporter {
  /** Where it writes. */
  readonly target: ProgressTarget;
  /** Show an observation (rate-limited). */
  update(p: ProgressUpdate): void;
  /** Show the final observation (always shown) and end the line/display. */
  finish(p: ProgressUpdate): void;
}

/** Options for {@linkcode progressReporter}. */
export interface ProgressOptions {
  /** Label in front of the figures. Default "progress". */
  label?: string;
  /** Unit of the items. Default "accesses". */
  unit?: string;
  /** Force a target; default: Jupyter if in the kernel, terminal if stderr is a TTY, else silent. */
  target?: ProgressTarget;
  /** Least time between two shown updates. Default 250 ms. */
  minIntervalMs?: number;
  /** Where terminal output goes (default stderr); for tests. */
  write?: (text: string) => void;
  /** Jupyter display function (default `Deno.jupyter.display`); for tests. */
  display?: (
    bundle: Record<string, string>,
    options: JupyterDisplayOptions,
  ) => unknown;
}

/** Options passed to the Jupyter display function. */
export interface JupyterDisplayOptions {
  /** Show the bundle as is. */
  raw: boolean;
  /** The display to create or update. */
  display_id: string;
  /** Update the display instead of creating one. */
  update?: boolean;
}

type Display = NonNullable<ProgressOptions["display"]>;

/** `Deno.jupyter.display`, if running in the Jupyter kernel (never throws). */
function jupyterDisplay(): Display | undefined {
  try {
    const j = (Deno as unknown as { jupyter?: { display?: unknown } }).jupyter;
    return typeof j?.display === "function" ? j.display as Display : undefined;
  } catch {
    return undefined; // "Deno.jupyter is only available in `deno jupyter`"
  }
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * Format an observation as one line: label, count, percentage (when
 * known), rate, elapsed time.
 *
 * @example
 * ```ts
 * import { progressText } from "./progress.ts";
 * import assert from "node:assert/strict";
 * assert.equal(
 *   progressText({ done: 2_500_000, total: 10_000_000, elapsedMs: 1000 }, "replay", "accesses"),
 *   "replay: 2,500,000 / 10,000,000 accesses (25.0%), 2.50 M/s, 1.0 s",
 * );
 * ```
 */
export function progressText(
  p: ProgressUpdate,
  label = "progress",
  unit = "accesses",
): string {
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  const frac = p.total !== undefined && p.total > 0
    ? p.done / p.total
    : p.fraction;
  const rate = p.elapsedMs > 0 ? p.done / p.elapsedMs / 1000 : 0;
  return `${label}: ${fmt(p.done)}${
    p.total !== undefined ? ` / ${fmt(p.total)}` : ""
  } ${unit}${frac !== undefined ? ` (${(100 * frac).toFixed(1)}%)` : ""}, ${
    rate.toFixed(2)
  } M/s, ${(p.elapsedMs / 1000).toFixed(1)} s`;
}

let displays = 0;

/**
 * A progress reporter for the current environment (see the module doc).
 * Pass `target` to force one; `"silent"` reports nothing.
 *
 * @example A forced terminal reporter writing into a string.
 * ```ts
 * import { progressReporter } from "./progress.ts";
 * import assert from "node:assert/strict";
 * let out = "";
 * const r = progressReporter({ target: "terminal", label: "replay", minIntervalMs: 0, write: (t) => out += t });
 * r.update({ done: 10, elapsedMs: 1 });
 * r.finish({ done: 20, elapsedMs: 2 });
 * assert.equal(r.target, "terminal");
 * assert.match(out, /^\rreplay: 10 accesses.*\rreplay: 20 accesses.*\n$/s);
 * ```
 *
 * @example A Jupyter reporter updates one display in place.
 * ```ts
 * import { progressReporter } from "./progress.ts";
 * import assert from "node:assert/strict";
 * const calls: { update?: boolean; display_id: string }[] = [];
 * const r = progressReporter({ target: "jupyter", minIntervalMs: 0, display: (_b, o) => calls.push(o) });
 * r.update({ done: 1, elapsedMs: 1 });
 * r.update({ done: 2, elapsedMs: 2 });
 * r.finish({ done: 3, elapsedMs: 3 });
 * assert.deepEqual(calls.map((c) => c.update ?? false), [false, true, true]);
 * assert.equal(new Set(calls.map((c) => c.display_id)).size, 1);
 * ```
 */
export function progressReporter(
  options: ProgressOptions = {},
): ProgressReporter {
  const label = options.label ?? "progress";
  const unit = options.unit ?? "accesses";
  const minInterval = options.minIntervalMs ?? 250;
  if (!(minInterval >= 0)) {
    throw new RangeError(
      `minIntervalMs ${
        String(minInterval)
      } is invalid: expected a non-negative number`,
    );
  }
  let target = options.target;
  let display = options.display;
  if (
    target !== undefined && target !== "jupyter" && target !== "terminal" &&
    target !== "silent"
  ) {
    throw new RangeError(
      `progress target "${
        String(target)
      }" is invalid: expected "jupyter", "terminal" or "silent"`,
    );
  }
  if (target === undefined || (target === "jupyter" && !display)) {
    const d = display ?? jupyterDisplay();
    if (d) {
      target ??= "jupyter";
      display = d;
    } else if (target === "jupyter") {
      throw new RangeError(
        'progress target "jupyter" needs the Deno Jupyter kernel (Deno.jupyter is not available here)',
      );
    } else {
      target = stderrIsTerminal() ? "terminal" : "silent";
    }
  }
  const t = target;
  if (t === "silent") {
    return { target: t, update() {}, finish() {} };
  }
  let last = -Infinity;
  if (t === "terminal") {
    const enc = new TextEncoder();
    const write = options.write ??
      ((s: string) => {
        Deno.stderr.writeSync(enc.encode(s));
      });
    let width = 0;
    const show = (p: ProgressUpdate, end: string) => {
      const line = progressText(p, label, unit);
      write("\r" + line.padEnd(width) + end);
      width = line.length;
    };
    return {
      target: t,
      update(p) {
        const now = performance.now();
        if (now - last < minInterval) return;
        last = now;
        show(p, "");
      },
      finish(p) {
        show(p, "\n");
      },
    };
  }
  const id = `memvirt-progress-${++displays}-${Date.now()}`;
  let shown = false;
  const show = (p: ProgressUpdate) => {
    const text = progressText(p, label, unit);
    const frac = p.total !== undefined && p.total > 0
      ? p.done / p.total
      : p.fraction;
    const bar = frac === undefined
      ? ""
      : `<progress max="1" value="${
        Math.min(1, Math.max(0, frac)).toFixed(4)
      }" style="width:12em"></progress> `;
    const bundle = {
      "text/plain": text,
      "text/html": `<div class="memvirt-progress">${bar}<code>${
        escapeXml(text)
      }</code></div>`,
    };
    const r = display!(bundle, {
      raw: true,
      display_id: id,
      ...(shown ? { update: true } : {}),
    });
    shown = true;
    // the kernel returns a promise; a failed update must not break the run
    if (r instanceof Promise) r.catch(() => {});
  };
  return {
    target: t,
    update(p) {
      const now = performance.now();
      if (now - last < minInterval) return;
      last = now;
      show(p);
    },
    finish(p) {
      show(p);
    },
  };
}
