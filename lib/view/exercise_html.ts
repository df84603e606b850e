/**
 * HTML for exercises: the problem sheet (parameters table, memory dump in
 * monospace, numbered questions), the checker's verdicts, and the answer
 * key with walk diagrams. Pure functions of plain data; every interpolated
 * string is escaped.
 *
 * @module
 */

import type {
  DumpPage,
  ExerciseSheet,
  SheetParameter,
} from "../exercise/sheet.ts";
import { dumpPageToText } from "../exercise/sheet.ts";
import type { Walk } from "../paging/record.ts";
import { escapeXml } from "./escape.ts";
import { walkToSvg } from "./walk_svg.ts";

const BOX =
  "font-family: system-ui, sans-serif; line-height: 1.35; max-width: 60em";
const TABLE = "border-collapse: collapse; margin: 0.4em 0";
const TD = "border: 1px solid #ccc; padding: 2px 8px; text-align: left";
const PRE =
  "font-family: ui-monospace, monospace; font-size: 12px; background: #f6f6f6; padding: 6px; overflow-x: auto";

function paramTable(rows: readonly SheetParameter[]): string {
  return `<table style="${TABLE}">${
    rows.map((p) =>
      `<tr><th style="${TD}">${escapeXml(p.name)}</th><td style="${TD}">${
        escapeXml(p.value)
      }</td></tr>`
    ).join("")
  }</table>`;
}

function dumpHtml(pages: readonly DumpPage[]): string {
  const lines: string[] = [];
  for (const p of pages) lines.push(...dumpPageToText(p));
  return `<pre style="${PRE}">${escapeXml(lines.join("\n"))}</pre>`;
}

/**
 * The problem sheet as HTML.
 *
 * @example
 * ```ts
 * import { exerciseSheetToHtml } from "./exercise_html.ts";
 * import assert from "node:assert/strict";
 * const html = exerciseSheetToHtml({
 *   title: "<T>", intro: [], parameters: [{ name: "seed", value: "0" }],
 *   entryFormat: [], dumpNotes: [], dump: [], ask: "Translate:", footer: [],
 *   questions: [{ number: 1, text: "VA 0x611c" }],
 * });
 * assert.match(html, /&lt;T&gt;/);
 * assert.match(html, /<ol/);
 * ```
 */
export function exerciseSheetToHtml(sheet: ExerciseSheet): string {
  const parts: string[] = [`<div style="${BOX}">`];
  parts.push(`<h3 style="margin: 0.2em 0">${escapeXml(sheet.title)}</h3>`);
  for (const l of sheet.intro) parts.push(`<p>${escapeXml(l)}</p>`);
  parts.push(paramTable(sheet.parameters));
  if (sheet.entryFormat.length > 0) {
    parts.push(
      `<p><b>Entry format</b></p><ul>${
        sheet.entryFormat.map((l) => `<li>${escapeXml(l)}</li>`).join("")
      }</ul>`,
    );
  }
  if (sheet.dump.length > 0) {
    parts.push(`<p><b>Memory</b></p>`);
    for (const n of sheet.dumpNotes) {
      parts.push(`<p style="margin: 0.2em 0">${escapeXml(n)}</p>`);
    }
    parts.push(dumpHtml(sheet.dump));
  }
  parts.push(`<p><b>${escapeXml(sheet.ask)}</b></p><ol>`);
  for (const q of sheet.questions) {
    let cpu = "";
    if (q.cpu !== undefined && q.cpu.length > 0) {
      cpu = `<br><code>${
        q.cpu.map((c) => `${escapeXml(c.name)}=${escapeXml(c.value)}`).join(
          " &nbsp;",
        )
      }</code>`;
    }
    parts.push(
      `<li value="${q.number}"><code>${escapeXml(q.text)}</code>${cpu}</li>`,
    );
  }
  parts.push(`</ol>`);
  for (const l of sheet.footer) {
    parts.push(`<p style="color: #555">${escapeXml(l)}</p>`);
  }
  parts.push(`</div>`);
  return parts.join("\n");
}

/** What {@linkcode checkResultToHtml} reads. */
export interface CheckResultLike {
  /** Summary line. */
  readonly summary: string;
  /** Verdicts. */
  readonly verdicts: readonly {
    readonly question: number;
    readonly status: string;
    readonly given: string;
    readonly message: string;
  }[];
  /** Questions, for their text. */
  readonly questions: readonly {
    readonly number: number;
    readonly text: string;
  }[];
}

const MARK: Record<string, [string, string]> = {
  correct: ["✓", "#1a7f37"],
  partial: ["½", "#9a6700"],
  wrong: ["✗", "#cf222e"],
  unanswered: ["·", "#666"],
};

/**
 * The checker's verdicts as an HTML table.
 *
 * @example
 * ```ts
 * import { checkResultToHtml } from "./exercise_html.ts";
 * import assert from "node:assert/strict";
 * const html = checkResultToHtml({
 *   summary: "0 of 1 correct",
 *   verdicts: [{ question: 1, status: "wrong", given: "PA <0x1>", message: "frame & offset" }],
 *   questions: [{ number: 1, text: "VA 0x611c" }],
 * });
 * assert.match(html, /PA &lt;0x1&gt;/);
 * assert.match(html, /frame &amp; offset/);
 * ```
 */
export function checkResultToHtml(r: CheckResultLike): string {
  const rows = r.verdicts.map((v) => {
    const [m, color] = MARK[v.status] ?? ["?", "#000"];
    const q = r.questions.find((x) => x.number === v.question);
    return `<tr><td style="${TD}">${v.question}</td><td style="${TD}"><code>${
      escapeXml(q?.text ?? "")
    }</code></td><td style="${TD}"><code>${
      escapeXml(v.given)
    }</code></td><td style="${TD}; color: ${color}; font-weight: bold">${m} ${
      escapeXml(v.status)
    }</td><td style="${TD}">${escapeXml(v.message)}</td></tr>`;
  });
  return `<div style="${BOX}"><p><b>${
    escapeXml(r.summary)
  }</b></p><table style="${TABLE}"><tr><th style="${TD}">#</th><th style="${TD}">question</th><th style="${TD}">your answer</th><th style="${TD}">verdict</th><th style="${TD}">explanation</th></tr>${
    rows.join("")
  }</table></div>`;
}

/** What {@linkcode answerKeyToHtml} reads. */
export interface AnswerKeyLike {
  /** Entries in question order. */
  readonly entries: readonly {
    readonly question: { readonly number: number; readonly text: string };
    readonly walk: Walk;
    readonly expected: {
      readonly answer: string;
      readonly explanation: string;
    };
  }[];
}

/**
 * Walk diagrams embedded at most in an answer key (the rest: `reveal(n)`).
 *
 * @example
 * ```ts
 * import { MAX_EMBEDDED_DIAGRAMS } from "./exercise_html.ts";
 * import assert from "node:assert/strict";
 * assert.equal(MAX_EMBEDDED_DIAGRAMS, 12);
 * ```
 */
export const MAX_EMBEDDED_DIAGRAMS = 12;

/**
 * The answer key as HTML: a table of answers, then each walk diagram in a
 * collapsible block (at most {@linkcode MAX_EMBEDDED_DIAGRAMS}).
 *
 * @example
 * ```ts
 * import { answerKeyToHtml } from "./exercise_html.ts";
 * import { translationExercise } from "../exercise/translate.ts";
 * import assert from "node:assert/strict";
 * const ex = translationExercise({ seed: 1, questions: 2 });
 * const html = answerKeyToHtml(ex.answers());
 * assert.match(html, /<details/);
 * assert.match(html, /<svg/);
 * ```
 */
export function answerKeyToHtml(key: AnswerKeyLike): string {
  const rows = key.entries.map((e) =>
    `<tr><td style="${TD}">${e.question.number}</td><td style="${TD}"><code>${
      escapeXml(e.question.text)
    }</code></td><td style="${TD}"><code>${
      escapeXml(e.expected.answer)
    }</code></td><td style="${TD}">${
      escapeXml(e.expected.explanation)
    }</td></tr>`
  );
  const diagrams = key.entries.slice(0, MAX_EMBEDDED_DIAGRAMS).map((e) =>
    `<details><summary>walk for question ${e.question.number}</summary>${
      walkToSvg(e.walk)
    }</details>`
  );
  const folded = key.entries.length - diagrams.length;
  return `<div style="${BOX}"><p><b>Answers</b></p><table style="${TABLE}"><tr><th style="${TD}">#</th><th style="${TD}">question</th><th style="${TD}">answer</th><th style="${TD}">why</th></tr>${
    rows.join("")
  }</table>${diagrams.join("\n")}${
    folded > 0
      ? `<p>${folded} more walk diagrams folded: use <code>reveal(n)</code>.</p>`
      : ""
  }</div>`;
}
