/**
 * Views of a `hap_enable` trace ({@linkcode HapEnableTrace} of
 * lib/virt/nested/hap.ts): numbered text and an HTML table (step, Xen
 * code, what it does, the state it creates). Pure; every string escaped.
 *
 * @module
 */

import { escapeXml } from "./escape.ts";
import { FONT_MONO, FONT_SANS } from "./style.ts";

/** What the views need of a trace (a `HapEnableTrace` has it). */
export interface HapTraceLike {
  /** The domain's name. */
  readonly domain: string;
  /** "ept" or "npt". */
  readonly stage: string;
  /** The steps. */
  readonly steps: readonly {
    readonly n: number;
    readonly phase: string;
    readonly code: string;
    readonly what: string;
    readonly state: Readonly<Record<string, string | number>>;
  }[];
}

/**
 * The trace as numbered text lines.
 *
 * @example
 * ```ts
 * import { hapTraceToText } from "./hap_html.ts";
 * import assert from "node:assert/strict";
 * const t = { domain: "vm1", stage: "ept", steps: [{ n: 1, phase: "domain", code: "domain_pause(d)", what: "Pause.", state: { paused: "yes" } }] };
 * assert.equal(hapTraceToText(t), "hap_enable(vm1), ept:\n 1. domain_pause(d) — Pause. [paused: yes]");
 * ```
 */
export function hapTraceToText(t: HapTraceLike): string {
  const lines = [`hap_enable(${t.domain}), ${t.stage}:`];
  for (const s of t.steps) {
    const st = Object.entries(s.state).map(([k, v]) => `${k}: ${v}`).join(
      ", ",
    );
    lines.push(`${String(s.n).padStart(2)}. ${s.code} — ${s.what} [${st}]`);
  }
  return lines.join("\n");
}

/**
 * The trace as an HTML table, domain steps then per-vCPU steps.
 *
 * @example
 * ```ts
 * import { hapTraceToHtml } from "./hap_html.ts";
 * import assert from "node:assert/strict";
 * const t = { domain: "<vm>", stage: "npt", steps: [{ n: 1, phase: "vcpu", code: "f(v)", what: "x", state: { a: 1 } }] };
 * const html = hapTraceToHtml(t);
 * assert.match(html, /&lt;vm&gt;/);
 * assert.match(html, /<td>a<\/td><td><code>1<\/code><\/td>/);
 * ```
 */
export function hapTraceToHtml(t: HapTraceLike): string {
  const rows: string[] = [];
  let phase = "";
  for (const s of t.steps) {
    if (s.phase !== phase) {
      phase = s.phase;
      rows.push(
        `<tr><th colspan="4" style="text-align:left;background:#eef">${
          phase === "domain"
            ? "hap_enable(d, mode)"
            : "per vCPU: hap_update_paging_modes(v)"
        }</th></tr>`,
      );
    }
    const state = Object.entries(s.state).map(([k, v]) =>
      `<tr><td>${escapeXml(k)}</td><td><code>${
        escapeXml(String(v))
      }</code></td></tr>`
    ).join("");
    rows.push(
      `<tr><td>${s.n}</td><td><code>${escapeXml(s.code)}</code></td><td>${
        escapeXml(s.what)
      }</td><td><table style="font-size:90%">${state}</table></td></tr>`,
    );
  }
  const style =
    `<style>.memvirt-hap{font:13px/1.4 ${FONT_SANS}}.memvirt-hap code{font:12px ${FONT_MONO}}.memvirt-hap>table>tbody>tr>td,.memvirt-hap>table>tr>td{vertical-align:top;padding:3px 8px;border-top:1px solid #e5e7eb}.memvirt-hap table table td{padding:0 6px 0 0;border:0}</style>`;
  return `<div class="memvirt-hap">${style}<p><b>hap_enable</b> for domain <b>${
    escapeXml(t.domain)
  }</b> (${
    escapeXml(t.stage.toUpperCase())
  })</p><table style="border-collapse:collapse"><tr><th>#</th><th>Xen code</th><th>what it does</th><th>state it creates</th></tr>${
    rows.join("")
  }</table></div>`;
}
