/**
 * The protection-check record: every check a segment load, far transfer,
 * interrupt or memory access went through, in order, each with the rule
 * it applies and whether it passed, then a closed outcome (design example
 * 6): success (linear and physical address, new CPL) or the exception that
 * stopped it (#GP, #NP, #SS, #TS, #PF) with its error code.
 *
 * @module
 */

import type { Walk } from "../paging/record.ts";
import {
  protectionRecordToHtml,
  protectionRecordToText,
} from "../view/protect_html.ts";

/** Which unit a check belongs to. */
export type CheckStage = "segmentation" | "privilege" | "paging";

/** One check. */
export interface ProtectionCheck {
  /** Unit. */
  readonly stage: CheckStage;
  /** Short name, e.g. "limit", "type", "DPL", "U/S". */
  readonly name: string;
  /** Whether it passed. */
  readonly passed: boolean;
  /** The rule, with its manual section. */
  readonly rule: string;
  /** The values it compared. */
  readonly detail: string;
}

/** The exceptions protection raises. */
export type ExceptionName = "#GP" | "#NP" | "#SS" | "#TS" | "#PF";

/** The exception that stopped an operation. */
export interface ProtectionFault {
  /** Discriminant. */
  readonly kind: "fault";
  /** Exception. */
  readonly exception: ExceptionName;
  /** Error code (a selector error code, or the #PF error code). */
  readonly errorCode: number;
  /** Name of the check that failed. */
  readonly check: string;
  /** Stage of the check that failed. */
  readonly stage: CheckStage;
  /** One line, e.g. "#GP(0): offset 0xfc400000 beyond the segment limit 0xfc3fffff". */
  readonly message: string;
}

/** Success. */
export interface ProtectionOk {
  /** Discriminant. */
  readonly kind: "ok";
  /** Linear address (memory accesses). */
  readonly linear?: number | bigint;
  /** Physical address (when paging ran or is off). */
  readonly pa?: number;
  /** CPL afterwards. */
  readonly cpl: number;
}

/** The closed set of outcomes. */
export type ProtectionOutcome = ProtectionOk | ProtectionFault;

/** Fields of a {@linkcode ProtectionRecord}. */
export interface ProtectionRecordInit {
  /** What was attempted, e.g. "read 4 bytes at DS:0xfc400000". */
  readonly operation: string;
  /** CPL when it started. */
  readonly cpl: number;
  /** Checks in order (the last failed one stopped it). */
  readonly checks: readonly ProtectionCheck[];
  /** Actions performed (transfers and interrupts: stack switch, pushes, …). */
  readonly steps: readonly string[];
  /** Outcome. */
  readonly outcome: ProtectionOutcome;
  /** The page walk, when paging was consulted and walked. */
  readonly walk?: Walk;
  /** What the model leaves out for this operation. */
  readonly notModelled: readonly string[];
}

/**
 * An immutable protection record with rich display.
 *
 * @example
 * ```ts
 * import { ProtectionRecord } from "./record.ts";
 * import assert from "node:assert/strict";
 * const r = new ProtectionRecord({
 *   operation: "read", cpl: 1, steps: [], notModelled: [],
 *   checks: [{ stage: "segmentation", name: "limit", passed: false, rule: "offset ≤ limit", detail: "5 > 4" }],
 *   outcome: { kind: "fault", exception: "#GP", errorCode: 0, check: "limit", stage: "segmentation",
 *     message: "#GP(0): beyond the limit" },
 * });
 * assert.equal(r.ok, false);
 * assert.equal(r.stoppedBy?.name, "limit");
 * assert.match(String(r), /#GP\(0\)/);
 * ```
 */
export class ProtectionRecord {
  /** What was attempted. */
  readonly operation: string;
  /** CPL when it started. */
  readonly cpl: number;
  /** Checks in order. */
  readonly checks: readonly ProtectionCheck[];
  /** Actions performed. */
  readonly steps: readonly string[];
  /** Outcome. */
  readonly outcome: ProtectionOutcome;
  /** The page walk, if one happened. */
  readonly walk: Walk | undefined;
  /** What the model leaves out for this operation. */
  readonly notModelled: readonly string[];

  /** Freeze a record. */
  constructor(init: ProtectionRecordInit) {
    this.operation = init.operation;
    this.cpl = init.cpl;
    this.checks = Object.freeze([...init.checks]);
    this.steps = Object.freeze([...init.steps]);
    this.outcome = init.outcome;
    this.walk = init.walk;
    this.notModelled = Object.freeze([...init.notModelled]);
    Object.freeze(this);
  }

  /** Whether the operation succeeded. */
  get ok(): boolean {
    return this.outcome.kind === "ok";
  }

  /** The check that stopped it, if one did. */
  get stoppedBy(): ProtectionCheck | undefined {
    if (this.outcome.kind === "ok") return undefined;
    for (let i = this.checks.length - 1; i >= 0; i--) {
      if (!this.checks[i].passed) return this.checks[i];
    }
    return undefined;
  }

  /** The physical address on success, if known. */
  get pa(): number | undefined {
    return this.outcome.kind === "ok" ? this.outcome.pa : undefined;
  }

  /** One line. */
  toString(): string {
    const o = this.outcome;
    if (o.kind === "fault") return `${this.operation}: ${o.message}`;
    const parts = [`${this.operation}: ok`];
    if (o.linear !== undefined) parts.push(`linear 0x${o.linear.toString(16)}`);
    if (o.pa !== undefined) parts.push(`physical 0x${o.pa.toString(16)}`);
    parts.push(`CPL ${o.cpl}`);
    return parts.join(", ");
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": protectionRecordToText(this),
      "text/html": protectionRecordToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return protectionRecordToText(this);
  }
}

/**
 * A selector error code (SDM §6.13): the selector's index and TI bits,
 * plus IDT (bit 1) and EXT (bit 0).
 *
 * @example
 * ```ts
 * import { selectorErrorCode } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.equal(selectorErrorCode(0xe023), 0xe020);
 * assert.equal(selectorErrorCode(0x82 * 8, { idt: true }), 0x412);
 * ```
 */
export function selectorErrorCode(
  selector: number,
  options: { idt?: boolean; ext?: boolean } = {},
): number {
  return (selector & 0xfffc) | (options.idt ? 2 : 0) | (options.ext ? 1 : 0);
}
