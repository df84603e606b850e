/**
 * Reading students' answers: a forgiving input form, with clear errors that
 * name the question and the value when an answer cannot be read.
 *
 * An answer is one of:
 *
 * - a physical address: a number, a bigint, or a string such as `"0x1abc"`,
 *   `"6844"`, `"pa 0x1abc"`, `"0x6bc value 0x08"` (the value is optional);
 * - a page fault: a string such as `"fault"`, `"fault at PTE"`,
 *   `"PDE not valid"`, `"#PF 0x6"`, `"#PF(0x7) at PDE"`, `"#PF P|W|U at
 *   level 2"`, or an object `{ fault: "page-fault", level: 2, errorCode: 7 }`;
 * - a general-protection fault: `"#GP"` or `{ fault: "gp" }`;
 * - no answer: `undefined`, `null`, `""` or `"?"`.
 *
 * Error codes are hex (`0x6`), binary (`0b110`), a single decimal digit, or
 * flag names joined by `|` or `+` (`P|W|U`, `RSVD`, `I/D`, `PK`). A bare
 * number of two or more decimal digits is refused as ambiguous: error codes
 * are conventionally written in hex.
 *
 * @module
 */

import type { PagingFormat } from "../paging/format.ts";

/** An error code as users may write it. */
export type ErrorCodeInput =
  | number
  | string
  | readonly string[]
  | {
    value?: number;
    p?: boolean;
    w?: boolean;
    u?: boolean;
    rsvd?: boolean;
    id?: boolean;
    pk?: boolean;
  };

/** A fault answer as an object. */
export interface FaultAnswer {
  /** `"page-fault"` (also `"#PF"`, `"pf"`, `"fault"`, `true`) or `"gp"` (`"#GP"`). */
  fault: string | boolean;
  /** Level (1 = leaf table) or an entry name such as `"PDE"`. */
  level?: number | string;
  /** The #PF error code. */
  errorCode?: ErrorCodeInput;
}

/** A translation answer as an object. */
export interface AddressAnswer {
  /** Physical address. */
  pa: number | bigint | string;
  /** Optional: the value stored there (OSTEP's "and fetches what value"). */
  value?: number | bigint | string;
}

/** Anything {@linkcode parseAnswer} accepts. */
export type AnswerInput =
  | number
  | bigint
  | string
  | null
  | undefined
  | AddressAnswer
  | FaultAnswer;

/** A parsed answer. */
export type ParsedAnswer =
  | { readonly kind: "none" }
  | { readonly kind: "pa"; readonly pa: number; readonly value?: number }
  | {
    readonly kind: "page-fault";
    readonly level?: number;
    readonly errorCode?: number;
  }
  | { readonly kind: "gp" };

/**
 * #PF error-code flag names (SDM §4.7), lower case, and their bits.
 *
 * @example
 * ```ts
 * import { ERROR_CODE_FLAGS } from "./answer.ts";
 * import assert from "node:assert/strict";
 * assert.equal(ERROR_CODE_FLAGS["u/s"], 4);
 * assert.equal(ERROR_CODE_FLAGS["i/d"], 16);
 * ```
 */
export const ERROR_CODE_FLAGS: Readonly<Record<string, number>> = Object
  .freeze({
    p: 1,
    w: 2,
    "w/r": 2,
    "r/w": 2,
    wr: 2,
    u: 4,
    "u/s": 4,
    us: 4,
    rsvd: 8,
    rsv: 8,
    "i/d": 16,
    id: 16,
    pk: 32,
  });

/**
 * Format an error code as flag names, e.g. `P|W|U` (or `0` when none).
 *
 * @example
 * ```ts
 * import { errorCodeFlags } from "./answer.ts";
 * import assert from "node:assert/strict";
 * assert.equal(errorCodeFlags(0x7), "P|W|U");
 * assert.equal(errorCodeFlags(0x19), "P|RSVD|I/D");
 * assert.equal(errorCodeFlags(0), "0");
 * ```
 */
export function errorCodeFlags(code: number): string {
  const names: [number, string][] = [
    [1, "P"],
    [2, "W"],
    [4, "U"],
    [8, "RSVD"],
    [16, "I/D"],
    [32, "PK"],
  ];
  const out = names.filter(([b]) => (code & b) !== 0).map(([, n]) => n);
  let rest = code & ~0x3f;
  for (let b = 6; rest !== 0 && b < 32; b++) {
    if (rest & (1 << b)) {
      out.push(`bit${b}`);
      rest &= ~(1 << b);
    }
  }
  return out.length === 0 ? "0" : out.join("|");
}

/**
 * Entry names for `level` used in answers and answer keys: the format's
 * own entry name, except that the root of a two-level teaching format is
 * called "PDE" (OSTEP's page directory).
 *
 * @example
 * ```ts
 * import { entryNameOf } from "./answer.ts";
 * import { OSTEP_15BIT, X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(entryNameOf(OSTEP_15BIT, 2), "PDE");
 * assert.equal(entryNameOf(X86_64_4LEVEL, 3), "PDPTE");
 * ```
 */
export function entryNameOf(format: PagingFormat, level: number): string {
  if (format.kind === "radix" && format.levels.length === 2 && level === 2) {
    return "PDE";
  }
  const spec = format.levels[format.levels.length - level];
  return spec === undefined ? `level ${level}` : spec.entry;
}

const GENERIC_LEVELS: Record<string, number> = {
  pte: 1,
  pt: 1,
  pde: 2,
  pd: 2,
  directory: 2,
  pdpte: 3,
  pdpe: 3,
  pdpt: 3,
  pdp: 3,
  pml4e: 4,
  pml4: 4,
  pml5e: 5,
  pml5: 5,
};

function levelAliases(format: PagingFormat): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(GENERIC_LEVELS)) m.set(k, v);
  for (const l of format.levels) {
    m.set(l.entry.toLowerCase().replaceAll(" ", ""), l.level);
    m.set(l.table.toLowerCase().replaceAll(" ", ""), l.level);
  }
  return m;
}

// Words that may appear in an answer and carry no information.
const NOISE = new Set([
  "at",
  "in",
  "on",
  "the",
  "a",
  "an",
  "of",
  "is",
  "entry",
  "fault",
  "faults",
  "page",
  "pagefault",
  "page-fault",
  "#pf",
  "pf",
  "np",
  "invalid",
  "not",
  "valid",
  "present",
  "error",
  "code",
  "errorcode",
  "ec",
  "err",
  "with",
  "table",
  "reserved",
  "bit",
  "protection",
  "violation",
  "pa",
  "translates",
  "to",
  "physical",
  "address",
  "value",
  "val",
]);

const FAULT_WORDS = new Set([
  "fault",
  "faults",
  "pf",
  "#pf",
  "pagefault",
  "page-fault",
  "invalid",
  "np",
]);

function fail(question: number, input: unknown, why: string): never {
  const shown = typeof input === "string"
    ? JSON.stringify(input)
    : typeof input === "bigint"
    ? `${input}n`
    : typeof input === "object" && input !== null
    ? safeJson(input)
    : String(input);
  throw new RangeError(`question ${question}: answer ${shown} ${why}`);
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(
      v,
      (_k, x) => typeof x === "bigint" ? `${x}n` : x,
    );
  } catch {
    return String(v);
  }
}

/**
 * Parse one number token: `0x…` hex, `0b…` binary or decimal digits
 * (underscores allowed). Returns `undefined` for a word. Throws for hex
 * digits written without `0x` (ambiguous) and for values beyond 2^53.
 */
function numberToken(
  tok: string,
  question: number,
  input: unknown,
): number | undefined {
  const t = tok.replaceAll("_", "");
  let big: bigint | undefined;
  if (/^0x[0-9a-f]+$/.test(t)) big = BigInt(t);
  else if (/^0b[01]+$/.test(t)) big = BigInt(t);
  else if (/^[0-9]+$/.test(t)) big = BigInt(t);
  else if (/^[0-9a-f]+$/.test(t) && /[0-9]/.test(t) && /[a-f]/.test(t)) {
    fail(
      question,
      input,
      `has "${tok}", which looks like hex without a prefix: write 0x${t}`,
    );
  } else return undefined;
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    fail(question, input, `has "${tok}", which is beyond 2^53`);
  }
  return Number(big);
}

function flagsToken(tok: string): number | undefined {
  const parts = tok.split(/[|+]/).filter((p) => p !== "");
  if (parts.length === 0) return undefined;
  let v = 0;
  for (const p of parts) {
    const b = ERROR_CODE_FLAGS[p];
    if (b === undefined) return undefined;
    v |= b;
  }
  return v;
}

function errorCodeNumber(
  n: number,
  tok: string,
  question: number,
  input: unknown,
): number {
  if (/^[0-9]{2,}$/.test(tok.replaceAll("_", "")) && n > 9) {
    fail(
      question,
      input,
      `has the error code "${tok}", which is ambiguous: write it in hex (0x${tok}) or binary (0b…); error codes are usually hex, e.g. 0x${
        n.toString(16)
      } is decimal ${n}`,
    );
  }
  if (n > 0xffffffff) {
    fail(question, input, `has the error code ${tok}, beyond 32 bits`);
  }
  return n;
}

function checkLevel(
  level: number,
  format: PagingFormat,
  question: number,
  input: unknown,
  name?: string,
): number {
  const n = format.levels.length;
  if (!Number.isInteger(level) || level < 1 || level > n) {
    fail(
      question,
      input,
      `names ${
        name !== undefined ? `"${name}" (level ${level})` : `level ${level}`
      }, which ${format.name} does not have: its entries are ${
        format.levels.map((l) =>
          `${entryNameOf(format, l.level)} (level ${l.level})`
        )
          .join(", ")
      }`,
    );
  }
  return level;
}

function levelFromString(
  s: string,
  format: PagingFormat,
  question: number,
  input: unknown,
): number {
  const t = s.trim().toLowerCase().replaceAll(" ", "");
  const m = /^(?:level|lvl|l)?(\d+)e?$/.exec(t);
  if (m) return checkLevel(Number(m[1]), format, question, input);
  const v = levelAliases(format).get(t);
  if (v === undefined) {
    fail(
      question,
      input,
      `names the entry "${s}", which is not an entry name: use ${
        format.levels.map((l) => entryNameOf(format, l.level)).join(", ")
      } or "level N"`,
    );
  }
  return checkLevel(v, format, question, input, s);
}

function parseErrorCodeInput(
  ec: ErrorCodeInput,
  question: number,
  input: unknown,
): number {
  if (typeof ec === "number") {
    if (!Number.isInteger(ec) || ec < 0 || ec > 0xffffffff) {
      fail(
        question,
        input,
        `has errorCode ${ec}: expected an integer in [0, 0xffffffff]`,
      );
    }
    return ec;
  }
  if (typeof ec === "string") {
    const t = ec.trim().toLowerCase().replaceAll(" ", "");
    const f = flagsToken(t);
    if (f !== undefined) return f;
    const n = numberToken(t, question, input);
    if (n === undefined) {
      fail(
        question,
        input,
        `has errorCode "${ec}": expected a number (0x6) or flags (P|W|U)`,
      );
    }
    return errorCodeNumber(n, t, question, input);
  }
  if (Array.isArray(ec)) {
    let v = 0;
    for (const name of ec) {
      const b = typeof name === "string"
        ? ERROR_CODE_FLAGS[name.trim().toLowerCase()]
        : undefined;
      if (b === undefined) {
        fail(
          question,
          input,
          `has the error-code flag ${
            JSON.stringify(name)
          }: expected P, W, U, RSVD, I/D or PK`,
        );
      }
      v |= b;
    }
    return v;
  }
  if (typeof ec === "object" && ec !== null) {
    const o = ec as Record<string, unknown>;
    const known = ["value", "p", "w", "u", "rsvd", "id", "pk"];
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) {
        fail(
          question,
          input,
          `has errorCode key "${k}": expected ${known.join(", ")}`,
        );
      }
    }
    if (o.value !== undefined) {
      return parseErrorCodeInput(o.value as number, question, input);
    }
    let v = 0;
    const bits: [string, number][] = [
      ["p", 1],
      ["w", 2],
      ["u", 4],
      ["rsvd", 8],
      ["id", 16],
      ["pk", 32],
    ];
    for (const [k, b] of bits) if (o[k] === true) v |= b;
    return v;
  }
  return fail(
    question,
    input,
    `has errorCode of type ${typeof ec}: expected a number, a string or a list of flags`,
  );
}

function parseNumberInput(
  v: unknown,
  what: string,
  question: number,
  input: unknown,
): number {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || v < 0) {
      fail(
        question,
        input,
        `has ${what} ${v}: expected a non-negative integer`,
      );
    }
    return v;
  }
  if (typeof v === "bigint") {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
      fail(question, input, `has ${what} ${v}n: expected a value in [0, 2^53)`);
    }
    return Number(v);
  }
  if (typeof v === "string") {
    const t = v.trim().toLowerCase();
    const n = numberToken(t, question, input);
    if (n === undefined) {
      fail(
        question,
        input,
        `has ${what} "${v}": expected hex (0x1abc) or decimal digits`,
      );
    }
    return n;
  }
  return fail(
    question,
    input,
    `has ${what} of type ${typeof v}: expected a number, bigint or string`,
  );
}

function parseObject(
  o: Record<string, unknown>,
  format: PagingFormat,
  question: number,
): ParsedAnswer {
  const keys = Object.keys(o);
  if ("pa" in o) {
    for (const k of keys) {
      if (k !== "pa" && k !== "value") {
        fail(
          question,
          o,
          `has the key "${k}": an address answer has the keys pa and value`,
        );
      }
    }
    const pa = parseNumberInput(o.pa, "pa", question, o);
    if (o.value === undefined) return { kind: "pa", pa };
    return {
      kind: "pa",
      pa,
      value: parseNumberInput(o.value, "value", question, o),
    };
  }
  if ("fault" in o) {
    for (const k of keys) {
      if (k !== "fault" && k !== "level" && k !== "errorCode") {
        fail(
          question,
          o,
          `has the key "${k}": a fault answer has the keys fault, level and errorCode`,
        );
      }
    }
    const f = o.fault;
    const fs = typeof f === "string"
      ? f.trim().toLowerCase().replace(/[\s_]+/g, "-")
      : f;
    if (fs === "gp" || fs === "#gp" || fs === "general-protection") {
      if (o.level !== undefined || o.errorCode !== undefined) {
        fail(
          question,
          o,
          "gives a level or an error code for #GP: #GP(0) happens before any table is read",
        );
      }
      return { kind: "gp" };
    }
    if (
      fs === true || fs === "page-fault" || fs === "pf" || fs === "#pf" ||
      fs === "fault" || fs === "pagefault"
    ) {
      let level: number | undefined;
      if (typeof o.level === "number") {
        level = checkLevel(o.level, format, question, o);
      } else if (typeof o.level === "string") {
        level = levelFromString(o.level, format, question, o);
      } else if (o.level !== undefined) {
        fail(
          question,
          o,
          `has level of type ${typeof o
            .level}: expected a number or an entry name`,
        );
      }
      const errorCode = o.errorCode === undefined
        ? undefined
        : parseErrorCodeInput(o.errorCode as ErrorCodeInput, question, o);
      return { kind: "page-fault", level, errorCode };
    }
    fail(
      question,
      o,
      `has fault ${
        JSON.stringify(f)
      }: expected "page-fault" (or "#PF") or "gp" (or "#GP")`,
    );
  }
  return fail(
    question,
    o,
    'is an object without pa or fault: expected { pa: 0x1abc } or { fault: "page-fault", level: 2, errorCode: 0x6 }',
  );
}

function parseString(
  s: string,
  format: PagingFormat,
  question: number,
): ParsedAnswer {
  const lower = s.trim().toLowerCase();
  if (lower === "" || lower === "?" || lower === "-") return { kind: "none" };
  const tokens = lower
    .replace(/#\s*(pf|gp)/g, " #$1 ")
    .replace(/\s*([|+])\s*/g, "$1")
    .split(/[\s,;:()[\]{}=]+/)
    .map((t) => t.replace(/[.!]+$/, ""))
    // arrows and other punctuation ("-->", "→") carry no information
    .filter((t) => /[a-z0-9#]/.test(t));
  const aliases = levelAliases(format);
  const isGp = tokens.some((t) => t === "#gp" || t === "gp") ||
    /general[\s-]*protection/.test(lower);
  const levelTok = (t: string): number | undefined => {
    const m = /^(?:l|lvl|level)(\d+)e?$/.exec(t);
    if (m) return Number(m[1]);
    return aliases.get(t);
  };
  const isFault = !isGp &&
    tokens.some((t) =>
      FAULT_WORDS.has(t) || t.startsWith("#pf") || levelTok(t) !== undefined
    );
  if (isGp) {
    if (tokens.some((t) => t === "#pf" || t === "pf")) {
      fail(question, s, "names both #GP and #PF: choose one");
    }
    return { kind: "gp" };
  }
  if (isFault) {
    let level: number | undefined;
    let levelName: string | undefined;
    let code: number | undefined;
    let flags: number | undefined;
    const setCode = (v: number) => {
      if (code !== undefined && code !== v) {
        fail(
          question,
          s,
          `gives two error codes (0x${code.toString(16)} and 0x${
            v.toString(16)
          })`,
        );
      }
      code = v;
    };
    const setLevel = (v: number, name: string) => {
      if (level !== undefined && level !== v) {
        fail(
          question,
          s,
          `names two entries (${levelName} and ${name}): name the one that faults`,
        );
      }
      level = v;
      levelName = name;
    };
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t === "level" || t === "lvl" || t === "l") {
        const nt = tokens[i + 1];
        const n = nt === undefined ? undefined : numberToken(nt, question, s);
        if (n === undefined) {
          fail(question, s, `says "${t}" without a level number after it`);
        }
        setLevel(checkLevel(n, format, question, s), `level ${n}`);
        i++;
        continue;
      }
      const lv = levelTok(t);
      if (lv !== undefined) {
        setLevel(checkLevel(lv, format, question, s, t.toUpperCase()), t);
        continue;
      }
      const f = flagsToken(t);
      if (f !== undefined) {
        flags = (flags ?? 0) | f;
        continue;
      }
      const n = numberToken(t, question, s);
      if (n !== undefined) {
        setCode(errorCodeNumber(n, t, question, s));
        continue;
      }
      if (/[0-9]/.test(t)) {
        fail(question, s, `has "${t}", which is neither a number nor a name`);
      }
      // other words ("because", "the", "fault") carry no information
    }
    if (code !== undefined && flags !== undefined && code !== flags) {
      fail(
        question,
        s,
        `gives the error code twice, differently (0x${
          code.toString(16)
        } and flags 0x${flags.toString(16)})`,
      );
    }
    return { kind: "page-fault", level, errorCode: code ?? flags };
  }
  // A physical address, optionally followed by the value stored there.
  const nums: number[] = [];
  for (const t of tokens) {
    const n = numberToken(t, question, s);
    if (n !== undefined) {
      nums.push(n);
      continue;
    }
    if (/[0-9]/.test(t)) {
      fail(
        question,
        s,
        `has "${t}", which is not a number: write hex with 0x (0x1abc) or decimal digits`,
      );
    }
    if (!NOISE.has(t) && !/^[a-z]+$/.test(t)) {
      fail(question, s, `has "${t}", which is not understood`);
    }
  }
  if (nums.length === 0) {
    fail(
      question,
      s,
      'is not understood: expected a physical address ("0x1abc"), a fault ("fault at PTE", "#PF 0x6 at PDE") or "#GP"',
    );
  }
  if (nums.length > 2) {
    fail(
      question,
      s,
      "has more than two numbers: expected a physical address and, optionally, the value stored there",
    );
  }
  return nums.length === 1
    ? { kind: "pa", pa: nums[0] }
    : { kind: "pa", pa: nums[0], value: nums[1] };
}

/**
 * Parse one answer for question number `question` (1-based, used in error
 * messages) of an exercise in `format`. Throws `RangeError`/`TypeError`
 * naming the question and the value when the answer cannot be read.
 *
 * @example
 * ```ts
 * import { parseAnswer } from "./answer.ts";
 * import { X86_64_4LEVEL, OSTEP_15BIT } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const f = X86_64_4LEVEL;
 * assert.deepEqual(parseAnswer("0x1abc", f, 1), { kind: "pa", pa: 0x1abc });
 * assert.deepEqual(parseAnswer(6844, f, 1), { kind: "pa", pa: 0x1abc });
 * assert.deepEqual(parseAnswer("#PF 0x6 at PDE", f, 2), { kind: "page-fault", level: 2, errorCode: 6 });
 * assert.deepEqual(parseAnswer("#PF(P|W|U) level 1", f, 2), { kind: "page-fault", level: 1, errorCode: 7 });
 * assert.deepEqual(parseAnswer({ fault: "#PF", errorCode: "0x7", level: "PTE" }, f, 3),
 *   { kind: "page-fault", level: 1, errorCode: 7 });
 * assert.deepEqual(parseAnswer("#GP", f, 4), { kind: "gp" });
 * assert.deepEqual(parseAnswer("Fault (PDE not valid)", OSTEP_15BIT, 5), { kind: "page-fault", level: 2, errorCode: undefined });
 * assert.deepEqual(parseAnswer("0x6bc value 0x08", OSTEP_15BIT, 6), { kind: "pa", pa: 0x6bc, value: 8 });
 * assert.deepEqual(parseAnswer("--> Translates to Physical Address 0x6bc --> Value: 0x08.", OSTEP_15BIT, 6), { kind: "pa", pa: 0x6bc, value: 8 });
 * assert.throws(() => parseAnswer("1abc", f, 7), /question 7: answer "1abc" .* write 0x1abc/);
 * assert.throws(() => parseAnswer("#PF 10", f, 8), /question 8: .*ambiguous/);
 * assert.throws(() => parseAnswer("fault at PML5E", f, 9), /question 9: .*PML5E.*does not have/);
 * ```
 */
export function parseAnswer(
  input: AnswerInput,
  format: PagingFormat,
  question: number,
): ParsedAnswer {
  if (input === undefined || input === null) return { kind: "none" };
  if (typeof input === "number" || typeof input === "bigint") {
    return { kind: "pa", pa: parseNumberInput(input, "pa", question, input) };
  }
  if (typeof input === "string") return parseString(input, format, question);
  if (typeof input === "object" && !Array.isArray(input)) {
    return parseObject(
      input as unknown as Record<string, unknown>,
      format,
      question,
    );
  }
  throw new TypeError(
    `question ${question}: answer ${
      Array.isArray(input) ? safeJson(input) : String(input)
    } has type ${
      Array.isArray(input) ? "array" : typeof input
    }: expected a physical address (number or "0x…" string), a fault ("#PF 0x6 at PTE", { fault: "page-fault", … }) or "#GP"`,
  );
}

/**
 * A short, normalized rendering of a parsed answer for verdict tables.
 *
 * @example
 * ```ts
 * import { describeAnswer } from "./answer.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(describeAnswer({ kind: "page-fault", level: 1, errorCode: 7 }, X86_32), "#PF 0x7 at PTE");
 * assert.equal(describeAnswer({ kind: "pa", pa: 0x5abc }, X86_32), "PA 0x5abc");
 * ```
 */
export function describeAnswer(a: ParsedAnswer, format: PagingFormat): string {
  switch (a.kind) {
    case "none":
      return "—";
    case "gp":
      return "#GP";
    case "pa":
      return `PA 0x${a.pa.toString(16)}${
        a.value !== undefined ? `, value 0x${a.value.toString(16)}` : ""
      }`;
    case "page-fault": {
      const code = a.errorCode !== undefined
        ? ` 0x${a.errorCode.toString(16)}`
        : "";
      const at = a.level !== undefined
        ? ` at ${entryNameOf(format, a.level)}`
        : "";
      return `#PF${code}${at}`;
    }
  }
}
