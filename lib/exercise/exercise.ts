/**
 * The exercise object shared by {@linkcode translationExercise} and
 * {@linkcode faultExercise}: a built memory, a list of questions, the
 * problem sheet, a checker with explanations, and a reveal that returns the
 * worked walk. Answers are computed with `setAD: false`, so neither
 * generating, checking nor revealing writes to the exercise's memory.
 *
 * @module
 */

import type { LinearAddress } from "../address/address.ts";
import type { PhysicalMemory } from "../memory/memory.ts";
import { levelSpec, type PagingFormat } from "../paging/format.ts";
import type { PagingMode } from "../paging/mode.ts";
import {
  type AccessKind,
  decodeEntry,
  sizeName,
  type Walk,
  walk,
} from "../paging/record.ts";
import {
  answerKeyToHtml,
  checkResultToHtml,
  exerciseSheetToHtml,
} from "../view/exercise_html.ts";
import { walkToText } from "../view/text.ts";
import {
  type AnswerInput,
  describeAnswer,
  entryNameOf,
  errorCodeFlags,
  parseAnswer,
  type ParsedAnswer,
} from "./answer.ts";
import { isLeafEntry, readEntry } from "./build.ts";
import {
  type ExerciseSheet,
  type SheetParameter,
  sheetToText,
} from "./sheet.ts";

/** The access a question asks about. */
export interface QuestionAccess {
  /** read, write or fetch. */
  readonly kind: AccessKind;
  /** CPL 3. */
  readonly user: boolean;
  /** Implicit supervisor access (e.g. a GDT load). */
  readonly implicit: boolean;
  /** EFLAGS.AC. */
  readonly ac: boolean;
}

/** A question: an access to a linear address in a given mode. */
export interface ExerciseQuestion {
  /** 1-based number, as on the sheet. */
  readonly number: number;
  /** The linear address. */
  readonly va: LinearAddress;
  /** The access. */
  readonly access: QuestionAccess;
  /** The paging mode (control registers) of this question. */
  readonly mode: PagingMode;
  /** PKRU for this question. */
  readonly pkru: number;
  /** The question line on the sheet. */
  readonly text: string;
  /** Per-question CPU state shown on the sheet (fault exercises). */
  readonly cpu?: readonly SheetParameter[];
  /** How the question was built (shown only in the answer key). */
  readonly scenario?: string;
}

/** What the generators hand to {@linkcode Exercise}. */
export interface ExerciseInit {
  /** Which generator. */
  readonly kind: "translation" | "fault";
  /** The seed. */
  readonly seed: number;
  /** The format. */
  readonly format: PagingFormat;
  /** The default mode (the sheet's control registers). */
  readonly mode: PagingMode;
  /** The built memory. */
  readonly memory: PhysicalMemory;
  /** Root table address (CR3 / PDBR). */
  readonly root: number;
  /** Questions, numbered from 1. */
  readonly questions: readonly ExerciseQuestion[];
  /** The sheet. */
  readonly sheet: ExerciseSheet;
  /** Physical pages the exercise built (tables, decoys, data pages shown). */
  readonly pages: readonly number[];
  /** Whether the value at the physical address is asked (full dumps). */
  readonly askValue: boolean;
}

/** What a correct answer to one question is. */
export interface ExpectedAnswer {
  /** Outcome kind. */
  readonly kind: "ok" | "page-fault" | "gp";
  /** Physical address (ok). */
  readonly pa?: number;
  /** Page size of the translation (ok). */
  readonly pageSize?: number;
  /** Byte stored at `pa`, when the sheet asks for it. */
  readonly value?: number;
  /** The entry to name (page fault): the first entry that denies the access. */
  readonly level?: number;
  /** Every level accepted as "the entry that faults" (rights faults: any entry whose bits deny the access, and the leaf, where the CPU reports it). */
  readonly levels?: readonly number[];
  /** #PF error code. */
  readonly errorCode?: number;
  /** The canonical answer string (accepted by the checker). */
  readonly answer: string;
  /** One-line explanation. */
  readonly explanation: string;
}

/** A kind of mistake the checker recognizes. */
export type Mistake =
  | "wrong-frame"
  | "wrong-offset"
  | "wrong-page-size"
  | "gave-frame-number"
  | "gave-entry-address"
  | "gave-virtual-address"
  | "wrong-value"
  | "missed-fault"
  | "ignored-rights"
  | "followed-invalid-entry"
  | "spurious-fault"
  | "wrong-fault-kind"
  | "wrong-level"
  | "missing-level"
  | "wrong-error-code"
  | "missing-error-code";

/** The verdict on one answer. */
export interface Verdict {
  /** 1-based question number. */
  readonly question: number;
  /** correct, partial (right kind of outcome, a part missing or wrong), wrong, unanswered. */
  readonly status: "correct" | "partial" | "wrong" | "unanswered";
  /** The answer as understood. */
  readonly given: string;
  /** The mistakes found (empty when correct). */
  readonly mistakes: readonly Mistake[];
  /** A short explanation of what was wrong (or "correct"). */
  readonly message: string;
}

/**
 * The result of {@linkcode Exercise.check}: one verdict per question, with
 * rich display (an HTML table in Jupyter, text in the REPL).
 *
 * @example
 * ```ts
 * import { translationExercise } from "./translate.ts";
 * import assert from "node:assert/strict";
 * const ex = translationExercise({ seed: 0, questions: 2 });
 * const r = ex.check([ex.answers().strings[0]]);
 * assert.equal(r.correct, 1);
 * assert.equal(r.unanswered, 1);
 * assert.match(r.toString(), /^check: 1 of 2 correct/);
 * ```
 */
export class CheckResult {
  /** Verdicts in question order. */
  readonly verdicts: readonly Verdict[];
  /** The questions checked. */
  readonly questions: readonly ExerciseQuestion[];

  /** Build from verdicts (made by {@linkcode Exercise.check}). */
  constructor(
    verdicts: readonly Verdict[],
    questions: readonly ExerciseQuestion[],
  ) {
    this.verdicts = Object.freeze([...verdicts]);
    this.questions = questions;
    Object.freeze(this);
  }

  /** Number of correct answers. */
  get correct(): number {
    return this.verdicts.filter((v) => v.status === "correct").length;
  }

  /** Number of partially correct answers. */
  get partial(): number {
    return this.verdicts.filter((v) => v.status === "partial").length;
  }

  /** Number of wrong answers. */
  get wrong(): number {
    return this.verdicts.filter((v) => v.status === "wrong").length;
  }

  /** Number of questions without an answer. */
  get unanswered(): number {
    return this.verdicts.filter((v) => v.status === "unanswered").length;
  }

  /** One-line summary. */
  get summary(): string {
    return `${this.correct} of ${this.verdicts.length} correct, ${this.partial} partial, ${this.wrong} wrong, ${this.unanswered} unanswered`;
  }

  /** Plain-text report. */
  toString(): string {
    const mark = { correct: "✓", partial: "½", wrong: "✗", unanswered: "·" };
    const w = String(this.verdicts.length).length;
    const lines = [`check: ${this.summary}`];
    for (const v of this.verdicts) {
      lines.push(
        `  ${String(v.question).padStart(w)} ${
          mark[v.status]
        } ${v.given} — ${v.message}`,
      );
    }
    return lines.join("\n");
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": this.toString(),
      "text/html": checkResultToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }
}

/** One entry of an {@linkcode AnswerKey}. */
export interface AnswerKeyEntry {
  /** The question. */
  readonly question: ExerciseQuestion;
  /** The worked walk (display: the SVG walk diagram). */
  readonly walk: Walk;
  /** What is expected. */
  readonly expected: ExpectedAnswer;
}

/**
 * All answers of an exercise, with the worked walks; rich display (a table
 * and the walk diagrams in Jupyter).
 *
 * @example
 * ```ts
 * import { translationExercise } from "./translate.ts";
 * import assert from "node:assert/strict";
 * const key = translationExercise({ seed: 0, questions: 3 }).answers();
 * assert.equal(key.strings.length, 3);
 * assert.equal(key.walks.length, 3);
 * assert.match(key.toString(), /^answers\n/);
 * ```
 */
export class AnswerKey {
  /** One entry per question. */
  readonly entries: readonly AnswerKeyEntry[];
  /** The format (for names). */
  readonly format: PagingFormat;

  /** Build (made by {@linkcode Exercise.answers}). */
  constructor(entries: readonly AnswerKeyEntry[], format: PagingFormat) {
    this.entries = Object.freeze([...entries]);
    this.format = format;
    Object.freeze(this);
  }

  /** The canonical answer strings, in question order (all pass the checker). */
  get strings(): string[] {
    return this.entries.map((e) => e.expected.answer);
  }

  /** The walks, in question order. */
  get walks(): Walk[] {
    return this.entries.map((e) => e.walk);
  }

  /** Plain-text answer key, with each worked walk. */
  toString(): string {
    const w = String(this.entries.length).length;
    const lines = ["answers"];
    for (const e of this.entries) {
      const q = e.question;
      lines.push(
        `  ${String(q.number).padStart(w)}. ${q.text}`,
        `  ${" ".repeat(w)}  → ${e.expected.answer}: ${e.expected.explanation}`,
      );
      for (const l of walkToText(e.walk).split("\n")) {
        lines.push(`  ${" ".repeat(w)}    ${l}`);
      }
    }
    return lines.join("\n");
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": this.toString(),
      "text/html": answerKeyToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }
}

/** Answers for {@linkcode Exercise.check}: a list (question i+1 at index i) or an object keyed by question number. */
export type Answers =
  | readonly AnswerInput[]
  | { readonly [question: number]: AnswerInput };

/**
 * An exercise: memory, questions, sheet, checker and reveal. Built by
 * {@linkcode translationExercise} or {@linkcode faultExercise}; questions
 * are numbered from 1 as on the sheet.
 *
 * @example
 * ```ts
 * import { translationExercise } from "./translate.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const ex = translationExercise({ format: X86_32, seed: 2, questions: 4 });
 * const first = ex.expected(1);
 * const v = ex.check([first.answer]).verdicts[0];
 * assert.equal(v.status, "correct");
 * assert.equal(ex.reveal(1).outcome.kind, first.kind);
 * assert.throws(() => ex.reveal(5), /questions are numbered 1\.\.4/);
 * ```
 */
export class Exercise {
  /** Which generator built it. */
  readonly kind: "translation" | "fault";
  /** The seed (stated on the sheet). */
  readonly seed: number;
  /** The format. */
  readonly format: PagingFormat;
  /** The sheet's paging mode (questions may have their own). */
  readonly mode: PagingMode;
  /** The memory holding the tables. */
  readonly memory: PhysicalMemory;
  /** Root table address (CR3 base / PDBR). */
  readonly root: number;
  /** The questions. */
  readonly questions: readonly ExerciseQuestion[];
  /** The problem sheet as data. */
  readonly sheet: ExerciseSheet;
  /** Physical pages built for the exercise (tables, decoys, shown data). */
  readonly pages: readonly number[];
  /** Whether the value stored at the physical address is asked. */
  readonly askValue: boolean;
  readonly #walks: readonly Walk[];
  readonly #expected: readonly ExpectedAnswer[];

  /** Build from a generator's result. Computes every answer (no A/D writes). */
  constructor(init: ExerciseInit) {
    this.kind = init.kind;
    this.seed = init.seed;
    this.format = init.format;
    this.mode = init.mode;
    this.memory = init.memory;
    this.root = init.root;
    this.questions = Object.freeze([...init.questions]);
    this.sheet = init.sheet;
    this.pages = Object.freeze([...init.pages]);
    this.askValue = init.askValue;
    this.#walks = this.questions.map((q) => this.#walk(q));
    this.#expected = this.questions.map((q, i) =>
      expectedOf(this, q, this.#walks[i])
    );
    Object.freeze(this);
  }

  #walk(q: ExerciseQuestion): Walk {
    return walk(
      { memory: this.memory, mode: q.mode, root: this.root },
      q.va,
      {
        kind: q.access.kind,
        user: q.access.user,
        implicit: q.access.implicit,
        ac: q.access.ac,
        pkru: q.pkru,
        setAD: false,
      },
    );
  }

  #question(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > this.questions.length) {
      throw new RangeError(
        `question ${
          String(n)
        } does not exist: questions are numbered 1..${this.questions.length}`,
      );
    }
    return n - 1;
  }

  /**
   * The worked walk for question `n` (1-based): a {@linkcode Walk} record
   * whose Jupyter display is the walk diagram. Computed with `setAD: false`:
   * revealing never changes the exercise.
   */
  reveal(n: number): Walk {
    return this.#walks[this.#question(n)];
  }

  /** What is expected for question `n` (1-based). */
  expected(n: number): ExpectedAnswer {
    return this.#expected[this.#question(n)];
  }

  /** All answers, with worked walks. */
  answers(): AnswerKey {
    return new AnswerKey(
      this.questions.map((q, i) => ({
        question: q,
        walk: this.#walks[i],
        expected: this.#expected[i],
      })),
      this.format,
    );
  }

  /**
   * Check answers: a list (index 0 = question 1) or an object keyed by
   * question number. Each answer is a physical address (`0x1abc`, a number)
   * or a fault (`"fault at PTE"`, `"#PF 0x6 at PDE"`, `"#GP"`, `{ fault:
   * "page-fault", level: 2, errorCode: 6 }`); see `answer.ts`. Throws
   * `RangeError`/`TypeError` naming the question and the value for input
   * that cannot be read.
   */
  check(answers: Answers): CheckResult {
    const n = this.questions.length;
    const given: AnswerInput[] = new Array(n).fill(undefined);
    if (Array.isArray(answers)) {
      if (answers.length > n) {
        throw new RangeError(
          `answers has ${answers.length} entries but the exercise has ${n} questions`,
        );
      }
      answers.forEach((a, i) => (given[i] = a));
    } else if (typeof answers === "object" && answers !== null) {
      for (const [k, v] of Object.entries(answers)) {
        const q = Number(k);
        if (!Number.isInteger(q) || q < 1 || q > n) {
          throw new RangeError(
            `answers has the key "${k}": questions are numbered 1..${n}`,
          );
        }
        given[q - 1] = v as AnswerInput;
      }
    } else {
      throw new TypeError(
        `answers ${
          String(answers)
        } is invalid: expected a list (index 0 = question 1) or an object keyed by question number`,
      );
    }
    const parsed = given.map((a, i) => parseAnswer(a, this.format, i + 1));
    const verdicts = parsed.map((p, i) =>
      grade(
        this,
        this.questions[i],
        this.#walks[i],
        this.#expected[i],
        p,
      )
    );
    return new CheckResult(verdicts, this.questions);
  }

  /** The sheet as plain text. */
  toString(): string {
    return sheetToText(this.sheet);
  }

  /** Jupyter rich display: the problem sheet. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": sheetToText(this.sheet),
      "text/html": exerciseSheetToHtml(this.sheet),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return sheetToText(this.sheet);
  }
}

// ---------------------------------------------------------------------------
// Expected answers

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}

function vaBig(q: ExerciseQuestion): bigint {
  return q.va.toBigInt();
}

function offsetIn(q: ExerciseQuestion, size: number): number {
  return Number(vaBig(q) & BigInt(size - 1));
}

/** Levels whose entry denies the access in a rights fault. */
function culprits(w: Walk, reason: string): number[] {
  const t = w.mode.tables;
  const out: number[] = [];
  for (const s of w.steps) {
    if (t.hasRights[s.level] !== 1) continue;
    if (reason === "user-supervisor" && s.flags.user === false) {
      out.push(s.level);
    }
    if (reason === "write-protect" && s.flags.writable === false) {
      out.push(s.level);
    }
    if (
      reason === "no-execute" &&
      ((s.flags.noExec === true && w.mode.nxe) || s.flags.exec === false)
    ) out.push(s.level);
  }
  return out;
}

/** The address the walk would give if the rights check were skipped. */
function translationIgnoringRights(
  q: ExerciseQuestion,
  w: Walk,
): number | undefined {
  const last = w.steps[w.steps.length - 1];
  if (last === undefined || !last.leaf) return undefined;
  const size = 2 ** levelSpec(w.format, last.level).shift;
  return last.flags.address + offsetIn(q, size);
}

/** The address reached by following entries while ignoring present bits. */
function translationIgnoringPresent(
  ex: Exercise,
  q: ExerciseQuestion,
): number | undefined {
  const f = ex.format;
  const va = vaBig(q);
  let base = ex.root;
  try {
    for (let level = f.levels.length; level >= 1; level--) {
      const spec = levelSpec(f, level);
      const idx = Number(
        (va >> BigInt(spec.shift)) & BigInt(2 ** spec.bits - 1),
      );
      const ea = base + idx * f.entryBytes;
      if (ea + f.entryBytes > ex.memory.size) return undefined;
      const [lo, hi] = readEntry(ex.memory, f, ea);
      const e = decodeEntry(f, level, lo, hi);
      if (isLeafEntry(q.mode, level, lo, hi)) {
        return e.address + offsetIn(q, 2 ** spec.shift);
      }
      base = e.address;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function describeAccess(q: ExerciseQuestion): string {
  const a = q.access;
  const who = a.implicit
    ? "implicit supervisor"
    : a.user
    ? "user"
    : "supervisor";
  return `${who} ${a.kind}`;
}

const REASON_SHORT: Record<string, string> = {
  "not-present": "not present",
  "reserved-bit": "reserved bit set",
  "user-supervisor": "user access to a supervisor page",
  "write-protect": "write to a read-only page",
  "no-execute": "fetch from a no-execute page",
  "smep": "supervisor fetch from a user page (SMEP)",
  "smap": "supervisor data access to a user page (SMAP)",
  "pkey": "protection key denies the access (PKRU)",
  "non-canonical": "non-canonical address",
  "pdpte-reserved": "reserved bit in a PAE PDPTE (checked when CR3 is loaded)",
};

function expectedOf(
  ex: Exercise,
  q: ExerciseQuestion,
  w: Walk,
): ExpectedAnswer {
  const f = ex.format;
  const o = w.outcome;
  const x86 = f.kind !== "radix";
  const scenario = q.scenario !== undefined ? ` (${q.scenario})` : "";
  if (o.kind === "ok") {
    const value = ex.askValue ? ex.memory.read8(o.pa) : undefined;
    const off = offsetIn(q, o.pageSize);
    return {
      kind: "ok",
      pa: o.pa,
      pageSize: o.pageSize,
      value,
      answer: `${hex(o.pa)}${
        value !== undefined ? ` value ${hex2(value)}` : ""
      }`,
      explanation: `${entryNameOf(f, o.level)} maps a ${
        sizeName(o.pageSize)
      } page at ${hex(o.pa - off)}; offset ${hex(off)}${
        value !== undefined ? `; the byte there is ${hex2(value)}` : ""
      }${scenario}`,
    };
  }
  if (o.kind === "gp") {
    return {
      kind: "gp",
      answer: "#GP",
      explanation: `${REASON_SHORT[o.reason] ?? o.reason}: #GP(0)${scenario}`,
    };
  }
  const reason = o.reason;
  let levels = [o.level];
  let level = o.level;
  if (
    reason === "user-supervisor" || reason === "write-protect" ||
    reason === "no-execute"
  ) {
    const c = culprits(w, reason);
    if (c.length > 0) {
      level = Math.max(...c);
      levels = [...new Set([...c, o.level])].sort((a, b) => b - a);
    }
  }
  const code = o.errorCode.value;
  const name = entryNameOf(f, level);
  const answer = x86 ? `#PF ${hex(code)} at ${name}` : `fault at ${name}`;
  const step = w.steps.find((st) => st.level === level);
  const entry = step !== undefined
    ? `${name}[${step.index}] = ${hexEntry(step.entry, f.entryBytes)}`
    : name;
  const also = levels.filter((l) => l !== level);
  const where = also.length > 0
    ? ` (the CPU reports it after reading the leaf; also accepted: ${
      also.map((l) => entryNameOf(f, l)).join(", ")
    })`
    : "";
  return {
    kind: "page-fault",
    level,
    levels,
    errorCode: code,
    answer,
    explanation: `${entry}: ${REASON_SHORT[reason] ?? reason}${
      x86 ? `; error code ${hex(code)} = ${errorCodeFlags(code)}` : ""
    }${where}${scenario}`,
  };
}

function hexEntry(e: bigint, bytes: number): string {
  return `0x${e.toString(16).padStart(bytes * 2, "0")}`;
}

// ---------------------------------------------------------------------------
// Grading

const BIT_TEXT: [
  number,
  string,
  (exp: boolean, q: ExerciseQuestion) => string,
][] = [
  [
    1,
    "P",
    (e) =>
      e
        ? "P should be 1: the entry that stops the access is present (a protection or reserved-bit fault)"
        : "P should be 0: the fault is a not-present entry",
  ],
  [
    2,
    "W/R",
    (e) =>
      e
        ? "W/R should be 1: the access is a write"
        : "W/R should be 0: the access is not a write",
  ],
  [
    4,
    "U/S",
    (e, q) =>
      e
        ? "U/S should be 1: the access is made in user mode (CPL 3)"
        : `U/S should be 0: the access is a supervisor access${
          q.access.implicit ? " (implicit accesses count as supervisor)" : ""
        }`,
  ],
  [
    8,
    "RSVD",
    (e) =>
      e
        ? "RSVD should be 1: a present entry on the path has a reserved bit set"
        : "RSVD should be 0: no reserved bit is set on the path",
  ],
  [
    16,
    "I/D",
    (e, q) =>
      e
        ? "I/D should be 1: an instruction fetch, reported because CR4.SMEP = 1 or EFER.NXE = 1"
        : q.access.kind === "fetch"
        ? "I/D should be 0: this mode does not report fetches (that needs CR4.SMEP = 1, or EFER.NXE = 1 with PAE or 64-bit paging)"
        : "I/D should be 0: the access is not an instruction fetch",
  ],
  [
    32,
    "PK",
    (e) =>
      e
        ? "PK should be 1: the page's protection key denies the access (PKRU)"
        : "PK should be 0: no protection-key violation",
  ],
];

function errorCodeDiff(
  exp: number,
  got: number,
  q: ExerciseQuestion,
): string[] {
  const out: string[] = [];
  for (const [b, , text] of BIT_TEXT) {
    if ((exp & b) !== (got & b)) out.push(text((exp & b) !== 0, q));
  }
  const extra = (got & ~exp) & ~0x3f;
  for (let b = 6; b < 32; b++) {
    if ((extra >>> b) & 1) out.push(`bit ${b} is not set by this fault`);
  }
  return out;
}

function grade(
  ex: Exercise,
  q: ExerciseQuestion,
  w: Walk,
  exp: ExpectedAnswer,
  ans: ParsedAnswer,
): Verdict {
  const f = ex.format;
  const given = describeAnswer(ans, f);
  const v = (
    status: Verdict["status"],
    mistakes: Mistake[],
    message: string,
  ): Verdict => ({ question: q.number, status, given, mistakes, message });
  if (ans.kind === "none") return v("unanswered", [], "no answer");
  const x86 = f.kind !== "radix";

  if (exp.kind === "ok") {
    if (ans.kind === "pa") return gradeAddress(ex, q, w, exp, ans, v);
    const onPath = ans.kind === "page-fault" && ans.level !== undefined &&
      w.steps.some((s) => s.level === ans.level);
    return v(
      "wrong",
      ["spurious-fault"],
      `this access does not fault: every entry on the path is present and allows a ${
        describeAccess(q)
      }${
        onPath
          ? ` (the ${
            entryNameOf(f, ans.kind === "page-fault" ? ans.level! : 1)
          } is present)`
          : ""
      }`,
    );
  }

  if (exp.kind === "gp") {
    if (ans.kind === "gp") return v("correct", [], "correct");
    if (ans.kind === "pa") {
      return v(
        "wrong",
        ["missed-fault"],
        "this access faults: the address is not canonical (bits 63 down to the top address bit must all be equal), so the CPU raises #GP before reading any table",
      );
    }
    return v(
      "wrong",
      ["wrong-fault-kind"],
      "not a page fault: the address is not canonical, so the CPU raises #GP(0) before reading any table",
    );
  }

  // exp.kind === "page-fault"
  if (ans.kind === "gp") {
    return v(
      "wrong",
      ["wrong-fault-kind"],
      x86
        ? "not #GP: the address is canonical and the walk itself faults, a page fault (#PF)"
        : "not #GP: the walk faults (a page fault)",
    );
  }
  if (ans.kind === "pa") {
    const wouldBe = translationIgnoringRights(q, w);
    if (wouldBe !== undefined && wouldBe === ans.pa) {
      return v(
        "wrong",
        ["ignored-rights"],
        "the translation is right, but the access is not allowed: it faults (check R/W, U/S and XD along the path, the protection key, and the control registers)",
      );
    }
    const naive = translationIgnoringPresent(ex, q);
    if (naive !== undefined && naive === ans.pa) {
      return v(
        "wrong",
        ["followed-invalid-entry"],
        `you followed an entry whose ${
          x86 ? "present (P)" : "valid"
        } bit is clear: the walk stops there with a fault`,
      );
    }
    const untranslated = q.va.toNumber() === ans.pa
      ? " (and that is the virtual address itself, untranslated)"
      : "";
    return v(
      "wrong",
      ["missed-fault"],
      `this access faults: some entry on the path is not present or does not allow the access${untranslated}`,
    );
  }
  const mistakes: Mistake[] = [];
  const notes: string[] = [];
  const levels = exp.levels ?? [exp.level!];
  if (ans.level === undefined) {
    mistakes.push("missing-level");
    notes.push("name the entry that faults (e.g. PTE or level 1)");
  } else if (!levels.includes(ans.level)) {
    mistakes.push("wrong-level");
    const name = entryNameOf(f, ans.level);
    const reached = w.steps.some((s) => s.level === ans.level);
    notes.push(
      !reached
        ? `the walk never reaches the ${name}: it stops at a higher level`
        : `the ${name} is not the entry that stops this access: it is present and allows it`,
    );
  }
  if (ans.errorCode === undefined) {
    if (x86) {
      mistakes.push("missing-error-code");
      notes.push("give the #PF error code too");
    }
  } else if (ans.errorCode !== exp.errorCode) {
    mistakes.push("wrong-error-code");
    notes.push(
      `error code ${hex(ans.errorCode)} (${
        errorCodeFlags(ans.errorCode)
      }) is wrong: ${
        errorCodeDiff(exp.errorCode!, ans.errorCode, q).join("; ")
      }`,
    );
  }
  if (mistakes.length === 0) return v("correct", [], "correct");
  return v(
    "partial",
    mistakes,
    `it does fault, but ${notes.join("; ")}`,
  );
}

function gradeAddress(
  ex: Exercise,
  q: ExerciseQuestion,
  w: Walk,
  exp: ExpectedAnswer,
  ans: { kind: "pa"; pa: number; value?: number },
  v: (s: Verdict["status"], m: Mistake[], msg: string) => Verdict,
): Verdict {
  const f = ex.format;
  const pa = exp.pa!;
  const size = exp.pageSize!;
  const base = 2 ** f.pageShift;
  if (ans.pa === pa) {
    if (
      ans.value !== undefined && exp.value !== undefined &&
      ans.value !== exp.value
    ) {
      return v(
        "partial",
        ["wrong-value"],
        `the address is right, but the byte stored at ${hex(pa)} is not ${
          hex(ans.value)
        }: read byte ${pa % base} of page ${Math.floor(pa / base)} in the dump`,
      );
    }
    return v("correct", [], "correct");
  }
  const off = offsetIn(q, size);
  const frame = pa - off;
  const vaNum = q.va.toNumber();
  if (ans.pa === Math.floor(pa / base) || ans.pa === frame / base) {
    return v(
      "wrong",
      ["gave-frame-number"],
      `that is a frame number; the physical address is frame × ${base} + offset`,
    );
  }
  const step = w.steps.find((s) => s.entryAddress === ans.pa);
  if (step !== undefined) {
    return v(
      "wrong",
      ["gave-entry-address"],
      `that is the address of the ${
        entryNameOf(f, step.level)
      } read on the way, not the address the access reaches`,
    );
  }
  if (vaNum !== undefined && ans.pa === vaNum) {
    return v(
      "wrong",
      ["gave-virtual-address"],
      "that is the virtual address itself: translate it through the tables",
    );
  }
  if (size > base && ans.pa === frame + offsetIn(q, base)) {
    return v(
      "wrong",
      ["wrong-page-size"],
      `the leaf maps a ${sizeName(size)} page: the offset is the low ${
        Math.log2(size)
      } bits of the address, not ${f.pageShift}`,
    );
  }
  const aoff = ans.pa % size;
  const aframe = ans.pa - aoff;
  if (aframe === frame) {
    return v(
      "wrong",
      ["wrong-offset"],
      `the page frame is right, but the offset is wrong: it is the low ${
        Math.log2(size)
      } bits of the virtual address (a ${sizeName(size)} page)`,
    );
  }
  if (aoff === off) {
    return v(
      "wrong",
      ["wrong-frame"],
      "the offset is right, but the page frame is wrong: follow the entries from the root again",
    );
  }
  return v(
    "wrong",
    ["wrong-frame", "wrong-offset"],
    `both the page frame and the offset are wrong (the offset is the low ${
      Math.log2(size)
    } bits of the virtual address)`,
  );
}

/**
 * A question's access as words ("user write", "implicit supervisor read").
 *
 * @example
 * ```ts
 * import { accessWords } from "./exercise.ts";
 * import assert from "node:assert/strict";
 * assert.equal(accessWords({ kind: "write", user: true, implicit: false, ac: false }), "user write");
 * assert.equal(accessWords({ kind: "read", user: false, implicit: false, ac: true }), "supervisor read with EFLAGS.AC = 1");
 * ```
 */
export function accessWords(access: QuestionAccess): string {
  const who = access.implicit
    ? "implicit supervisor"
    : access.user
    ? "user"
    : "supervisor";
  return `${who} ${access.kind}${access.ac ? " with EFLAGS.AC = 1" : ""}`;
}
