/**
 * The segmentation unit and privilege levels: segment-register loads with
 * their checks, far JMP/CALL (direct and through call gates), software and
 * hardware interrupts through IDT gates with the ring transition through
 * the TSS stack, and the checks every memory reference makes (null
 * selector, type, limit) before paging sees the linear address
 * `base + offset`. Intel SDM Vol. 3 ch. 3 and ch. 5 (§5.3 limit checking,
 * §5.4 type checking, §5.5–5.8 privilege levels, gates, stack switching),
 * §6.12 (interrupt procedure calls); Vol. 2 pseudocode of MOV, JMP, CALL,
 * INT n; AMD APM Vol. 2 ch. 4.
 *
 * 64-bit mode (`longMode: true`): base and limit of CS, DS, ES and SS are
 * ignored (base 0, no limit checks), FS and GS contribute only their base
 * (from the FS.base/GS.base MSRs), data-segment attributes are ignored and
 * a null DS/ES/FS/GS may be used (AMD APM §4.8.2, SDM §3.4.4, §5.3.1);
 * paging does the protecting, and a non-canonical linear address raises
 * #GP(0) (#SS(0) through SS).
 *
 * Every operation returns a {@linkcode ProtectionRecord} and changes the
 * state only on success.
 *
 * Not modelled: task switches (task gates, TSS descriptors as jump
 * targets), the TSS I/O permission bitmap, call-gate parameter copying
 * (counted, not copied), the stack pushes themselves (listed as steps, no
 * memory written), IRET/RET privilege checks (use
 * {@linkcode Segmentation.enter}), 16-bit gates' narrower pushes, LDT
 * loads through LLDT (give the LDT as an option), SYSCALL/SYSENTER.
 *
 * @module
 */

import {
  decodeDescriptor,
  decodeGate,
  describeSegment,
  type DescriptorFields,
  parseSelector,
  type SegmentInfo,
  type Selector,
} from "./descriptor.ts";
import type { DescriptorTable } from "./table.ts";
import {
  type CheckStage,
  type ExceptionName,
  type ProtectionCheck,
  type ProtectionFault,
  ProtectionRecord,
  selectorErrorCode,
} from "./record.ts";

/** Segment register names. */
export type SegmentRegisterName = "CS" | "SS" | "DS" | "ES" | "FS" | "GS";

/**
 * The six segment registers, in SDM order.
 *
 * @example
 * ```ts
 * import { SEGMENT_REGISTERS } from "./segment.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(SEGMENT_REGISTERS.slice(0, 2), ["CS", "SS"]);
 * ```
 */
export const SEGMENT_REGISTERS: readonly SegmentRegisterName[] = Object.freeze(
  ["CS", "SS", "DS", "ES", "FS", "GS"],
);

/** A segment register: the visible selector and the hidden descriptor cache. */
export interface SegmentRegister {
  /** Visible part. */
  readonly selector: number;
  /** Cached descriptor, or `null` when a null selector was loaded (unusable). */
  readonly descriptor: DescriptorFields | null;
  /** Derived meaning of the cached descriptor, or `null`. */
  readonly info: SegmentInfo | null;
}

/** The stack pointers a 32-bit TSS holds for rings 0–2 (SDM §7.2.1). */
export interface TaskStacks {
  /** Ring-0 stack segment selector. */
  readonly ss0: number;
  /** Ring-0 stack pointer. */
  readonly esp0: number;
  /** Ring-1 stack segment selector. */
  readonly ss1: number;
  /** Ring-1 stack pointer. */
  readonly esp1: number;
  /** Ring-2 stack segment selector. */
  readonly ss2: number;
  /** Ring-2 stack pointer. */
  readonly esp2: number;
}

/** Options for {@linkcode Segmentation}. */
export interface SegmentationOptions {
  /** The GDT. */
  gdt: DescriptorTable;
  /** The LDT (default none: TI = 1 selectors fault). */
  ldt?: DescriptorTable;
  /** The IDT (needed for {@linkcode Segmentation.interrupt}). */
  idt?: DescriptorTable;
  /** The TSS stack pointers (needed for inward ring transitions). */
  tss?: TaskStacks;
  /** 64-bit mode (IA-32e with CS.L = 1). Default false: 32-bit protected mode. */
  longMode?: boolean;
  /** IA32_FS_BASE (64-bit mode; default 0). */
  fsBase?: bigint;
  /** IA32_GS_BASE (64-bit mode; default 0). */
  gsBase?: bigint;
}

/** A memory reference through a segment. */
export interface SegmentAccess {
  /** Segment register (default DS; fetches use CS). */
  sreg?: SegmentRegisterName;
  /** read (default), write or fetch. */
  kind?: "read" | "write" | "fetch";
  /** Access size in bytes (default 1). */
  size?: number;
}

/** The result of the segmentation stage of an access. */
export interface SegmentationResult {
  /** Checks made. */
  readonly checks: ProtectionCheck[];
  /** The linear address, or the fault. */
  readonly linear: number | bigint | ProtectionFault;
}

const NOT_MODELLED_TRANSFER = [
  "task switches",
  "call-gate parameter copying (counted only)",
  "stack pushes are listed, not written to memory",
];

const hex = (v: number | bigint) => "0x" + v.toString(16);

/** Check accumulator. */
class Checks {
  readonly list: ProtectionCheck[] = [];
  pass(stage: CheckStage, name: string, rule: string, detail: string): void {
    this.list.push({ stage, name, passed: true, rule, detail });
  }
  fail(
    stage: CheckStage,
    name: string,
    rule: string,
    detail: string,
    exception: ExceptionName,
    errorCode: number,
    why: string,
  ): ProtectionFault {
    this.list.push({ stage, name, passed: false, rule, detail });
    return {
      kind: "fault",
      exception,
      errorCode,
      check: name,
      stage,
      message: `${exception}(${hex(errorCode)}): ${why}`,
    };
  }
  /** Record `ok ? pass : fail`; returns the fault or undefined. */
  test(
    ok: boolean,
    stage: CheckStage,
    name: string,
    rule: string,
    detail: string,
    exception: ExceptionName,
    errorCode: number,
    why: string,
  ): ProtectionFault | undefined {
    if (ok) {
      this.pass(stage, name, rule, detail);
      return undefined;
    }
    return this.fail(stage, name, rule, detail, exception, errorCode, why);
  }
}

function checkReg(reg: unknown): SegmentRegisterName {
  if (!SEGMENT_REGISTERS.includes(reg as SegmentRegisterName)) {
    throw new RangeError(
      `segment register "${String(reg)}" is invalid: expected one of ${
        SEGMENT_REGISTERS.join(", ")
      }`,
    );
  }
  return reg as SegmentRegisterName;
}

function checkCpl(cpl: unknown): number {
  if (typeof cpl !== "number" || !Number.isInteger(cpl) || cpl < 0 || cpl > 3) {
    throw new RangeError(
      `CPL ${String(cpl)} is invalid: expected 0, 1, 2 or 3`,
    );
  }
  return cpl;
}

const NULL_REG: SegmentRegister = Object.freeze({
  selector: 0,
  descriptor: null,
  info: null,
});

/**
 * A processor's segmentation state: CPL, the six segment registers, the
 * descriptor tables and the TSS stacks.
 *
 * @example Loading data segments from ring 3.
 * ```ts
 * import { Segmentation } from "./segment.ts";
 * import { DescriptorTable } from "./table.ts";
 * import { makeSelector, segmentDescriptor } from "./descriptor.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const gdt = new DescriptorTable(new PhysicalMemory({ size: 1 << 20 }), { base: 0x1000 });
 * gdt.write(1, ...segmentDescriptor({ kind: "code", dpl: 3 }));
 * gdt.write(2, ...segmentDescriptor({ kind: "data", dpl: 3 }));
 * gdt.write(3, ...segmentDescriptor({ kind: "data", dpl: 0 }));
 * const seg = new Segmentation({ gdt });
 * seg.enter(3, { cs: makeSelector(1, { rpl: 3 }), ss: makeSelector(2, { rpl: 3 }) });
 * assert.equal(seg.load("DS", makeSelector(2, { rpl: 3 })).ok, true);
 * const bad = seg.load("ES", makeSelector(3, { rpl: 3 }));
 * assert.equal(bad.outcome.kind === "fault" && bad.outcome.exception, "#GP");
 * assert.equal(bad.stoppedBy?.name, "privilege");
 * ```
 */
export class Segmentation {
  /** The GDT. */
  readonly gdt: DescriptorTable;
  /** The LDT, if any. */
  readonly ldt: DescriptorTable | undefined;
  /** The IDT, if any. */
  readonly idt: DescriptorTable | undefined;
  /** 64-bit mode. */
  readonly longMode: boolean;
  #tss: TaskStacks | undefined;
  #cpl = 0;
  #regs: Record<SegmentRegisterName, SegmentRegister> = {
    CS: NULL_REG,
    SS: NULL_REG,
    DS: NULL_REG,
    ES: NULL_REG,
    FS: NULL_REG,
    GS: NULL_REG,
  };
  #fsBase: bigint;
  #gsBase: bigint;

  /** Create the unit; every segment register starts null at CPL 0. */
  constructor(options: SegmentationOptions) {
    if (!options || !options.gdt) {
      throw new TypeError(
        "Segmentation options are invalid: expected { gdt: DescriptorTable, … }",
      );
    }
    this.gdt = options.gdt;
    this.ldt = options.ldt;
    this.idt = options.idt;
    this.longMode = options.longMode ?? false;
    this.#tss = options.tss;
    this.#fsBase = options.fsBase ?? 0n;
    this.#gsBase = options.gsBase ?? 0n;
  }

  /** Current privilege level. */
  get cpl(): number {
    return this.#cpl;
  }

  /** The TSS stacks, if given. */
  get tss(): TaskStacks | undefined {
    return this.#tss;
  }

  /** Set the TSS stacks (Xen's `stack_switch` hypercall sets ss1/esp1). */
  set tss(value: TaskStacks | undefined) {
    this.#tss = value;
  }

  /** A segment register. */
  register(name: SegmentRegisterName): SegmentRegister {
    return this.#regs[checkReg(name)];
  }

  /** FS.base and GS.base (64-bit mode). */
  get fsGsBase(): { fs: bigint; gs: bigint } {
    return { fs: this.#fsBase, gs: this.#gsBase };
  }

  #table(sel: Selector): DescriptorTable | undefined {
    return sel.table === "gdt" ? this.gdt : this.ldt;
  }

  #read(
    c: Checks,
    sel: Selector,
    stage: CheckStage,
    what: string,
    exception: ExceptionName = "#GP",
    ext = false,
  ): DescriptorFields | ProtectionFault {
    const t = this.#table(sel);
    const name = sel.table.toUpperCase();
    const limit = t ? t.limit : -1;
    const f = c.test(
      t !== undefined && t.contains(sel.index),
      stage,
      "table limit",
      `index × 8 + 7 ≤ ${name} limit (SDM §3.4.2)`,
      t === undefined
        ? `no ${name} loaded`
        : `${sel.index} × 8 + 7 = ${hex(sel.index * 8 + 7)} vs ${hex(limit)}`,
      exception,
      selectorErrorCode(sel.value, { ext }),
      `${what} selector ${hex(sel.value)} is outside the ${name}${
        t === undefined ? " (none loaded)" : ` limit ${hex(limit)}`
      }`,
    );
    if (f) return f;
    const [lo, hi] = t!.read(sel.index)!;
    return decodeDescriptor(lo, hi);
  }

  #setAccessed(sel: Selector, d: DescriptorFields): DescriptorFields {
    if (!d.s || (d.type & 1)) return d;
    const t = this.#table(sel)!;
    const nd = { ...d, type: d.type | 1 };
    t.writeFields(sel.index, nd);
    return nd;
  }

  #install(
    reg: SegmentRegisterName,
    selector: number,
    d: DescriptorFields | null,
  ): void {
    this.#regs[reg] = Object.freeze({
      selector,
      descriptor: d,
      info: d ? describeSegment(d) : null,
    });
  }

  #loadChecks(
    c: Checks,
    reg: SegmentRegisterName,
    sel: Selector,
    cpl: number,
  ): ProtectionFault | DescriptorFields | null {
    const S: CheckStage = "segmentation";
    const code = selectorErrorCode(sel.value);
    if (reg === "SS") {
      const nullOk = this.longMode && cpl < 3 && sel.rpl === cpl;
      if (sel.isNull) {
        const f = c.test(
          nullOk,
          S,
          "null selector",
          "SS may not be loaded with a null selector (64-bit mode: allowed at CPL < 3 with RPL = CPL)",
          `selector ${hex(sel.value)}`,
          "#GP",
          0,
          "null selector loaded into SS",
        );
        return f ?? null;
      }
      const d = this.#read(c, sel, S, "SS");
      if ("kind" in d) return d;
      const info = describeSegment(d);
      let f = c.test(
        sel.rpl === cpl,
        "privilege",
        "RPL",
        "stack segment: RPL = CPL (SDM §5.7)",
        `RPL ${sel.rpl}, CPL ${cpl}`,
        "#GP",
        code,
        `SS selector RPL ${sel.rpl} ≠ CPL ${cpl}`,
      );
      if (f) return f;
      f = c.test(
        info.kind === "data" && info.writable,
        S,
        "type",
        "stack segment must be a writable data segment (SDM §5.4.1)",
        info.name,
        "#GP",
        code,
        `SS descriptor is ${info.name}, not a writable data segment`,
      );
      if (f) return f;
      f = c.test(
        d.dpl === cpl,
        "privilege",
        "DPL",
        "stack segment: DPL = CPL (SDM §5.7)",
        `DPL ${d.dpl}, CPL ${cpl}`,
        "#GP",
        code,
        `SS descriptor DPL ${d.dpl} ≠ CPL ${cpl}`,
      );
      if (f) return f;
      f = c.test(
        d.present,
        S,
        "present",
        "segment must be present (P = 1), else #SS(selector)",
        `P = ${d.present ? 1 : 0}`,
        "#SS",
        code,
        `stack segment ${hex(sel.value)} not present`,
      );
      return f ?? d;
    }
    if (sel.isNull) {
      c.pass(
        S,
        "null selector",
        "DS/ES/FS/GS may be loaded with a null selector (a later reference faults)",
        `selector ${hex(sel.value)}`,
      );
      return null;
    }
    const d = this.#read(c, sel, S, reg);
    if ("kind" in d) return d;
    const info = describeSegment(d);
    let f = c.test(
      info.kind === "data" || (info.kind === "code" && info.readable),
      S,
      "type",
      "DS/ES/FS/GS need a data or readable code segment (SDM §5.4.1)",
      info.name,
      "#GP",
      code,
      `${reg} cannot hold ${info.name}`,
    );
    if (f) return f;
    if (info.kind === "data" || !info.conforming) {
      const eff = Math.max(cpl, sel.rpl);
      f = c.test(
        eff <= d.dpl,
        "privilege",
        "privilege",
        "data or non-conforming code: max(CPL, RPL) ≤ DPL (SDM §5.6)",
        `max(CPL ${cpl}, RPL ${sel.rpl}) = ${eff}, DPL ${d.dpl}`,
        "#GP",
        code,
        `max(CPL ${cpl}, RPL ${sel.rpl}) = ${eff} > DPL ${d.dpl}`,
      );
      if (f) return f;
    } else {
      c.pass(
        "privilege",
        "privilege",
        "conforming code segment: no privilege check for data loads (SDM §5.6)",
        `DPL ${d.dpl}`,
      );
    }
    f = c.test(
      d.present,
      S,
      "present",
      "segment must be present (P = 1), else #NP(selector)",
      `P = ${d.present ? 1 : 0}`,
      "#NP",
      code,
      `segment ${hex(sel.value)} not present`,
    );
    return f ?? d;
  }

  /**
   * MOV/POP to a data or stack segment register (SDM Vol. 2 MOV
   * pseudocode). CS cannot be loaded this way (use
   * {@linkcode Segmentation.farTransfer}). On success the descriptor's
   * accessed bit is set in memory.
   */
  load(reg: SegmentRegisterName, selector: number): ProtectionRecord {
    checkReg(reg);
    if (reg === "CS") {
      throw new RangeError(
        'segment register "CS" is invalid for load: expected SS, DS, ES, FS or GS (CS changes through far JMP/CALL, interrupts and IRET)',
      );
    }
    const sel = parseSelector(selector);
    const c = new Checks();
    const cpl = this.#cpl;
    const r = this.#loadChecks(c, reg, sel, cpl);
    const op = `MOV ${reg}, ${hex(selector)} at CPL ${cpl}`;
    if (r !== null && "kind" in r) {
      return new ProtectionRecord({
        operation: op,
        cpl,
        checks: c.list,
        steps: [],
        outcome: r,
        notModelled: [],
      });
    }
    const d = r === null ? null : this.#setAccessed(sel, r);
    this.#install(reg, selector, d);
    return new ProtectionRecord({
      operation: op,
      cpl,
      checks: c.list,
      steps: [
        d === null
          ? `${reg} ← null selector (unusable)`
          : `${reg} ← ${hex(selector)}; hidden part ← base ${
            hex(d.base)
          }, limit ${hex(describeSegment(d).effectiveLimit)}, ${
            describeSegment(d).name
          }, DPL ${d.dpl}`,
      ],
      outcome: { kind: "ok", cpl },
      notModelled: [],
    });
  }

  /**
   * Put the processor at `cpl` with these selectors, as system software
   * does at a mode switch or a return to an outer ring (IRET/RET checks
   * are not modelled). CS must be a code segment whose DPL is `cpl`
   * (non-conforming) or ≤ `cpl` (conforming); the others are loaded with
   * the MOV checks at the new CPL. Throws `RangeError` (state unchanged)
   * if any load would fault.
   */
  enter(
    cpl: number,
    selectors: {
      cs: number;
      ss?: number;
      ds?: number;
      es?: number;
      fs?: number;
      gs?: number;
    },
  ): void {
    checkCpl(cpl);
    const csSel = parseSelector(selectors.cs);
    const c = new Checks();
    const csd = csSel.isNull
      ? undefined
      : this.#read(c, csSel, "segmentation", "CS");
    if (csd === undefined || "kind" in csd) {
      throw new RangeError(
        `CS selector ${
          hex(selectors.cs)
        } is invalid: expected a code segment in the ${csSel.table.toUpperCase()}`,
      );
    }
    const info = describeSegment(csd);
    if (
      info.kind !== "code" ||
      (info.conforming ? csd.dpl > cpl : csd.dpl !== cpl) ||
      !csd.present
    ) {
      throw new RangeError(
        `CS selector ${
          hex(selectors.cs)
        } is invalid for CPL ${cpl}: its descriptor is ${info.name}, DPL ${csd.dpl}${
          csd.present ? "" : ", not present"
        }`,
      );
    }
    const loads: [SegmentRegisterName, DescriptorFields | null, number][] = [];
    for (const reg of ["SS", "DS", "ES", "FS", "GS"] as const) {
      const v = selectors[reg.toLowerCase() as "ss"];
      if (v === undefined) continue;
      const cc = new Checks();
      const r = this.#loadChecks(cc, reg, parseSelector(v), cpl);
      if (r !== null && "kind" in r) {
        throw new RangeError(
          `${reg} selector ${hex(v)} is invalid at CPL ${cpl}: ${r.message}`,
        );
      }
      loads.push([reg, r, v]);
    }
    this.#cpl = cpl;
    this.#install("CS", (selectors.cs & ~3) | cpl, csd);
    for (const [reg, d, v] of loads) this.#install(reg, v, d);
  }

  /**
   * The segmentation stage of a memory reference: null-selector, type and
   * limit checks, then linear = base + offset (SDM §3.4, §5.3, §5.4). No
   * state changes. In 64-bit mode only FS/GS bases apply and the checks
   * are skipped (canonical checks happen in paging).
   */
  translate(
    offset: number | bigint,
    access: SegmentAccess = {},
  ): SegmentationResult {
    const kind = access.kind ?? "read";
    if (kind !== "read" && kind !== "write" && kind !== "fetch") {
      throw new RangeError(
        `access kind "${
          String(kind)
        }" is invalid: expected "read", "write" or "fetch"`,
      );
    }
    const reg = checkReg(access.sreg ?? (kind === "fetch" ? "CS" : "DS"));
    if (kind === "fetch" && reg !== "CS") {
      throw new RangeError(
        `segment register "${reg}" is invalid for an instruction fetch: expected CS`,
      );
    }
    const size = access.size ?? 1;
    if (!Number.isInteger(size) || size < 1 || size > 16) {
      throw new RangeError(
        `access size ${
          String(size)
        } is invalid: expected an integer in [1, 16]`,
      );
    }
    const c = new Checks();
    const S: CheckStage = "segmentation";
    const sr = this.#regs[reg];
    if (this.longMode) {
      const off = BigInt(offset);
      if (off < 0n || off >= 1n << 64n) {
        throw new RangeError(
          `offset ${hex(off)} is invalid: expected a 64-bit value`,
        );
      }
      const base = reg === "FS"
        ? this.#fsBase
        : reg === "GS"
        ? this.#gsBase
        : 0n;
      c.pass(
        S,
        "64-bit mode",
        "64-bit mode: no limit or type checks; base 0 except FS/GS (SDM §3.4.4, AMD APM §4.8.2)",
        `${reg} base ${hex(base)}`,
      );
      const lin = (base + off) & ((1n << 64n) - 1n);
      return { checks: c.list, linear: lin };
    }
    if (
      typeof offset !== "number" || !Number.isInteger(offset) || offset < 0 ||
      offset > 0xffffffff
    ) {
      throw new RangeError(
        `offset ${
          String(offset)
        } is invalid: expected an integer in [0, 0xffffffff] (32-bit protected mode)`,
      );
    }
    const stackFault: ExceptionName = reg === "SS" ? "#SS" : "#GP";
    const d = sr.descriptor;
    const info = sr.info;
    let f = c.test(
      d !== null,
      S,
      "null selector",
      "a reference through a segment register holding a null selector faults (SDM §5.4.1)",
      `${reg} = ${hex(sr.selector)}`,
      stackFault,
      0,
      `${reg} holds a null selector`,
    );
    if (f) return { checks: c.list, linear: f };
    const ty = info!;
    let typeOk: boolean;
    let typeRule: string;
    if (kind === "write") {
      typeOk = ty.kind === "data" && ty.writable;
      typeRule =
        "writes need a writable data segment: never a code segment (SDM §5.4.1)";
    } else if (kind === "read") {
      typeOk = ty.readable;
      typeRule =
        "reads need a data segment or a readable code segment (SDM §5.4.1)";
    } else {
      typeOk = ty.kind === "code";
      typeRule = "fetches come from a code segment";
    }
    f = c.test(
      typeOk,
      S,
      "type",
      typeRule,
      `${kind} through ${reg} (${ty.name})`,
      stackFault,
      0,
      `${kind} through ${reg}: ${ty.name} does not allow it`,
    );
    if (f) return { checks: c.list, linear: f };
    const last = offset + size - 1;
    const lim = ty.effectiveLimit;
    if (ty.expandDown) {
      const upper = d!.db ? 0xffffffff : 0xffff;
      f = c.test(
        offset > lim && last <= upper,
        S,
        "limit",
        `expand-down: limit < offset and offset + size − 1 ≤ ${
          d!.db ? "0xffffffff (B = 1)" : "0xffff (B = 0)"
        } (SDM §5.3)`,
        `bytes ${hex(offset)}..${hex(last)}, limit ${hex(lim)}${
          d!.g ? " (G = 1)" : ""
        }`,
        stackFault,
        0,
        `bytes ${hex(offset)}..${hex(last)} outside expand-down segment (${
          hex(lim)
        }, ${hex(upper)}]`,
      );
    } else {
      f = c.test(
        last <= lim,
        S,
        "limit",
        "offset + size − 1 ≤ effective limit (SDM §5.3)",
        `bytes ${hex(offset)}..${hex(last)}, limit ${hex(lim)}${
          d!.g ? " (G = 1: limit × 4096 + 0xfff)" : ""
        }`,
        stackFault,
        0,
        `bytes ${hex(offset)}..${hex(last)} beyond the ${reg} limit ${
          hex(lim)
        }`,
      );
    }
    if (f) return { checks: c.list, linear: f };
    const lin = (d!.base + offset) >>> 0;
    c.pass(
      S,
      "linear address",
      "linear = base + offset (mod 2^32)",
      `${hex(d!.base)} + ${hex(offset)} = ${hex(lin)}`,
    );
    return { checks: c.list, linear: lin };
  }

  #stackSwitch(
    c: Checks,
    steps: string[],
    newCpl: number,
    ext: boolean,
  ): { ss: number; d: DescriptorFields; esp: number } | ProtectionFault {
    const P: CheckStage = "privilege";
    const tss = this.#tss;
    if (!tss) {
      return c.fail(
        P,
        "TSS stack",
        "an inward transfer loads SS:ESP for the new CPL from the TSS (SDM §5.8.5)",
        "no TSS",
        "#TS",
        ext ? 1 : 0,
        "no TSS to take the inner stack from",
      );
    }
    const ssv = newCpl === 0 ? tss.ss0 : newCpl === 1 ? tss.ss1 : tss.ss2;
    const esp = newCpl === 0 ? tss.esp0 : newCpl === 1 ? tss.esp1 : tss.esp2;
    steps.push(
      `read TSS.ss${newCpl}:esp${newCpl} = ${hex(ssv)}:${
        hex(esp)
      } (the ring-${newCpl} stack)`,
    );
    const sel = parseSelector(ssv);
    let f = c.test(
      !sel.isNull,
      P,
      "TSS SS",
      "the new stack selector is not null (SDM §5.8.5)",
      `TSS.ss${newCpl} = ${hex(ssv)}`,
      "#TS",
      ext ? 1 : 0,
      `TSS.ss${newCpl} is a null selector`,
    );
    if (f) return f;
    const d = this.#read(c, sel, P, `TSS.ss${newCpl}`, "#TS", ext);
    if ("kind" in d) return d;
    const info = describeSegment(d);
    const code = selectorErrorCode(ssv, { ext });
    f = c.test(
      sel.rpl === newCpl && d.dpl === newCpl && info.kind === "data" &&
        info.writable,
      P,
      "TSS SS",
      "new SS: RPL = DPL = new CPL, writable data segment (SDM §5.8.5)",
      `RPL ${sel.rpl}, DPL ${d.dpl}, ${info.name}, new CPL ${newCpl}`,
      "#TS",
      code,
      `TSS.ss${newCpl} ${
        hex(ssv)
      } is not a writable ring-${newCpl} data segment`,
    );
    if (f) return f;
    f = c.test(
      d.present,
      P,
      "TSS SS present",
      "new stack segment present, else #SS(selector)",
      `P = ${d.present ? 1 : 0}`,
      "#SS",
      code,
      `stack segment ${hex(ssv)} not present`,
    );
    if (f) return f;
    return { ss: ssv, d, esp };
  }

  #codeTarget(
    c: Checks,
    csv: number,
    how: "jmp" | "call" | "gate-call" | "gate-jmp",
    ext: boolean,
  ): DescriptorFields | ProtectionFault {
    const S: CheckStage = "segmentation";
    const P: CheckStage = "privilege";
    const sel = parseSelector(csv);
    const cpl = this.#cpl;
    let f = c.test(
      !sel.isNull,
      S,
      "null selector",
      "the target code-segment selector is not null",
      `selector ${hex(csv)}`,
      "#GP",
      ext ? 1 : 0,
      "null code-segment selector",
    );
    if (f) return f;
    const d = this.#read(c, sel, S, "code segment", "#GP", ext);
    if ("kind" in d) return d;
    const info = describeSegment(d);
    const code = selectorErrorCode(csv, { ext });
    f = c.test(
      info.kind === "code",
      S,
      "type",
      "the target must be a code segment",
      info.name,
      "#GP",
      code,
      `target ${hex(csv)} is ${info.name}, not a code segment`,
    );
    if (f) return f;
    if (how === "jmp" || how === "call") {
      if (info.conforming) {
        f = c.test(
          d.dpl <= cpl,
          P,
          "DPL",
          "conforming code: DPL ≤ CPL; RPL ignored; CPL unchanged (SDM §5.8.1.2)",
          `DPL ${d.dpl}, CPL ${cpl}`,
          "#GP",
          code,
          `conforming code DPL ${d.dpl} > CPL ${cpl}`,
        );
      } else {
        f = c.test(
          sel.rpl <= cpl && d.dpl === cpl,
          P,
          "DPL",
          "non-conforming code: RPL ≤ CPL and DPL = CPL (SDM §5.8.1.1)",
          `RPL ${sel.rpl}, DPL ${d.dpl}, CPL ${cpl}`,
          "#GP",
          code,
          `non-conforming code: RPL ${sel.rpl}, DPL ${d.dpl} at CPL ${cpl}`,
        );
      }
    } else if (how === "gate-jmp") {
      f = c.test(
        info.conforming ? d.dpl <= cpl : d.dpl === cpl,
        P,
        "DPL",
        "JMP through a call gate: conforming DPL ≤ CPL, non-conforming DPL = CPL (SDM §5.8.4)",
        `DPL ${d.dpl}, CPL ${cpl}`,
        "#GP",
        code,
        `JMP through a gate to DPL ${d.dpl} code at CPL ${cpl}`,
      );
    } else {
      f = c.test(
        d.dpl <= cpl,
        P,
        "DPL",
        "CALL through a gate / interrupt: code DPL ≤ CPL (SDM §5.8.4, §6.12.1.1)",
        `DPL ${d.dpl}, CPL ${cpl}`,
        "#GP",
        code,
        `target code DPL ${d.dpl} > CPL ${cpl}`,
      );
    }
    if (f) return f;
    f = c.test(
      d.present,
      S,
      "present",
      "code segment present, else #NP(selector)",
      `P = ${d.present ? 1 : 0}`,
      "#NP",
      code,
      `code segment ${hex(csv)} not present`,
    );
    return f ?? d;
  }

  /**
   * Far JMP or CALL to `selector:offset` (SDM Vol. 2 JMP/CALL pseudocode,
   * Vol. 3 §5.8): directly to a code segment, or through a call gate (a
   * CALL to a more privileged non-conforming segment switches to the
   * inner stack from the TSS). Task gates and TSS targets throw
   * `RangeError` (task switches are not modelled).
   */
  farTransfer(
    kind: "jmp" | "call",
    selector: number,
    offset = 0,
  ): ProtectionRecord {
    if (kind !== "jmp" && kind !== "call") {
      throw new RangeError(
        `transfer kind "${String(kind)}" is invalid: expected "jmp" or "call"`,
      );
    }
    const sel = parseSelector(selector);
    const c = new Checks();
    const steps: string[] = [];
    const cpl = this.#cpl;
    const op = `far ${kind.toUpperCase()} ${hex(selector)}:${
      hex(offset)
    } at CPL ${cpl}`;
    const done = (
      outcome: ProtectionFault | { kind: "ok"; cpl: number },
    ) =>
      new ProtectionRecord({
        operation: op,
        cpl,
        checks: c.list,
        steps,
        outcome,
        notModelled: NOT_MODELLED_TRANSFER,
      });
    let f = c.test(
      !sel.isNull,
      "segmentation",
      "null selector",
      "far JMP/CALL to a null selector → #GP(0)",
      `selector ${hex(selector)}`,
      "#GP",
      0,
      "null selector",
    );
    if (f) return done(f);
    const d = this.#read(c, sel, "segmentation", "target");
    if ("kind" in d) return done(d);
    const lo = this.#table(sel)!.read(sel.index)!;
    const gate = decodeGate(lo[0], lo[1]);
    if (d.s) {
      const t = this.#codeTarget(c, selector, kind, false);
      if ("kind" in t) return done(t);
      const lim = describeSegment(t).effectiveLimit;
      f = c.test(
        offset <= lim,
        "segmentation",
        "limit",
        "the new EIP lies within the code segment limit → else #GP(0)",
        `EIP ${hex(offset)}, limit ${hex(lim)}`,
        "#GP",
        0,
        `EIP ${hex(offset)} beyond the code segment limit ${hex(lim)}`,
      );
      if (f) return done(f);
      if (kind === "call") steps.push("push CS, EIP on the current stack");
      steps.push(
        `CS ← ${hex((selector & ~3) | cpl)} (RPL ← CPL ${cpl}), EIP ← ${
          hex(offset)
        }`,
      );
      this.#install("CS", (selector & ~3) | cpl, this.#setAccessed(sel, t));
      return done({ kind: "ok", cpl });
    }
    if (gate === undefined || gate.gate !== "call") {
      if (gate?.gate === "task" || (!d.s && (d.type & 5) === 1)) {
        throw new RangeError(
          `far ${kind} to ${
            hex(selector)
          }: task switches (task gates, TSS descriptors) are not modelled`,
        );
      }
      f = c.fail(
        "segmentation",
        "type",
        "a far JMP/CALL target is a code segment, call gate, task gate or TSS",
        describeSegment(d).name,
        "#GP",
        selectorErrorCode(selector),
        `${describeSegment(d).name} is not a valid far ${kind} target`,
      );
      return done(f);
    }
    // call gate (SDM §5.8.4)
    f = c.test(
      gate.dpl >= cpl && gate.dpl >= sel.rpl,
      "privilege",
      "gate DPL",
      "call gate: CPL ≤ gate DPL and RPL ≤ gate DPL (SDM §5.8.4)",
      `gate DPL ${gate.dpl}, CPL ${cpl}, RPL ${sel.rpl}`,
      "#GP",
      selectorErrorCode(selector),
      `call gate DPL ${gate.dpl} < max(CPL ${cpl}, RPL ${sel.rpl})`,
    );
    if (f) return done(f);
    f = c.test(
      gate.present,
      "segmentation",
      "gate present",
      "call gate present, else #NP(gate selector)",
      `P = ${gate.present ? 1 : 0}`,
      "#NP",
      selectorErrorCode(selector),
      `call gate ${hex(selector)} not present`,
    );
    if (f) return done(f);
    steps.push(
      `call gate ${hex(selector)} → ${hex(gate.selector)}:${hex(gate.offset)}`,
    );
    const t = this.#codeTarget(
      c,
      gate.selector,
      kind === "jmp" ? "gate-jmp" : "gate-call",
      false,
    );
    if ("kind" in t) return done(t);
    const tinfo = describeSegment(t);
    f = c.test(
      gate.offset <= tinfo.effectiveLimit,
      "segmentation",
      "limit",
      "the gate's entry point lies within the code segment limit → else #GP(0)",
      `EIP ${hex(gate.offset)}, limit ${hex(tinfo.effectiveLimit)}`,
      "#GP",
      0,
      `entry ${hex(gate.offset)} beyond the code segment limit`,
    );
    if (f) return done(f);
    const newCpl = kind === "call" && !tinfo.conforming ? t.dpl : cpl;
    const inward = newCpl < cpl;
    let ssInstall: { ss: number; d: DescriptorFields } | undefined;
    if (inward) {
      const s = this.#stackSwitch(c, steps, newCpl, false);
      if ("kind" in s) return done(s);
      ssInstall = s;
      steps.push(`SS:ESP ← ${hex(s.ss)}:${hex(s.esp)}`);
      steps.push("push old SS, old ESP on the new stack");
      steps.push(
        `copy ${gate.paramCount} parameter dword(s) from the old stack (not modelled)`,
      );
    }
    if (kind === "call") steps.push("push CS, EIP");
    const cs = (gate.selector & ~3) | newCpl;
    steps.push(
      `CS ← ${hex(cs)}, EIP ← ${hex(gate.offset)}, CPL ${cpl} → ${newCpl}`,
    );
    this.#cpl = newCpl;
    this.#install("CS", cs, t);
    if (ssInstall) this.#install("SS", ssInstall.ss, ssInstall.d);
    return done({ kind: "ok", cpl: newCpl });
  }

  /**
   * Deliver interrupt `vector` through the IDT (SDM §6.12.1, INT n
   * pseudocode): for a software interrupt (`INT n`, the default) the gate
   * DPL must be ≥ CPL; the target code DPL must be ≤ CPL; a transfer to a
   * more privileged non-conforming segment switches to the TSS stack.
   * Interrupt gates clear IF, trap gates do not.
   */
  interrupt(
    vector: number,
    options: { software?: boolean; errorCode?: number } = {},
  ): ProtectionRecord {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) {
      throw new RangeError(
        `interrupt vector ${
          String(vector)
        } is invalid: expected an integer in [0, 255]`,
      );
    }
    const software = options.software ?? true;
    const ext = !software;
    const idt = this.idt;
    if (!idt) {
      throw new RangeError("interrupt: no IDT was given to Segmentation");
    }
    const c = new Checks();
    const steps: string[] = [];
    const cpl = this.#cpl;
    const op = `${software ? "INT " : "interrupt "}${
      hex(vector)
    } at CPL ${cpl}`;
    const vcode = vector * 8 + 2 + (ext ? 1 : 0);
    const done = (outcome: ProtectionFault | { kind: "ok"; cpl: number }) =>
      new ProtectionRecord({
        operation: op,
        cpl,
        checks: c.list,
        steps,
        outcome,
        notModelled: NOT_MODELLED_TRANSFER,
      });
    let f = c.test(
      idt.contains(vector),
      "segmentation",
      "IDT limit",
      "vector × 8 + 7 ≤ IDT limit (SDM §6.10)",
      `${hex(vector * 8 + 7)} vs ${hex(idt.limit)}`,
      "#GP",
      vcode,
      `vector ${hex(vector)} beyond the IDT limit`,
    );
    if (f) return done(f);
    const [lo, hi] = idt.read(vector)!;
    const gate = decodeGate(lo, hi);
    if (gate?.gate === "task") {
      throw new RangeError(
        `interrupt ${hex(vector)}: task gates are not modelled`,
      );
    }
    f = c.test(
      gate !== undefined && gate.gate !== "call",
      "segmentation",
      "gate type",
      "an IDT entry is an interrupt, trap or task gate (SDM §6.11)",
      gate ? `${gate.gate} gate` : "not a gate",
      "#GP",
      vcode,
      `IDT entry ${hex(vector)} is not an interrupt or trap gate`,
    );
    if (f) return done(f);
    const g = gate!;
    if (software) {
      f = c.test(
        g.dpl >= cpl,
        "privilege",
        "gate DPL",
        "INT n: CPL ≤ gate DPL (hardware interrupts and exceptions skip this check) (SDM §6.12.1.1)",
        `gate DPL ${g.dpl}, CPL ${cpl}`,
        "#GP",
        vcode,
        `INT ${hex(vector)}: gate DPL ${g.dpl} < CPL ${cpl}`,
      );
      if (f) return done(f);
    } else {
      c.pass(
        "privilege",
        "gate DPL",
        "hardware interrupts and exceptions ignore the gate DPL (SDM §6.12.1.1)",
        `gate DPL ${g.dpl}`,
      );
    }
    f = c.test(
      g.present,
      "segmentation",
      "gate present",
      "gate present, else #NP",
      `P = ${g.present ? 1 : 0}`,
      "#NP",
      vcode,
      `IDT gate ${hex(vector)} not present`,
    );
    if (f) return done(f);
    steps.push(
      `IDT[${hex(vector)}]: ${g.gate} gate → ${hex(g.selector)}:${
        hex(g.offset)
      }, DPL ${g.dpl}`,
    );
    const t = this.#codeTarget(c, g.selector, "gate-call", ext);
    if ("kind" in t) return done(t);
    const tinfo = describeSegment(t);
    f = c.test(
      g.offset <= tinfo.effectiveLimit,
      "segmentation",
      "limit",
      "the handler lies within the code segment limit → else #GP(0)",
      `EIP ${hex(g.offset)}, limit ${hex(tinfo.effectiveLimit)}`,
      "#GP",
      0,
      `handler ${hex(g.offset)} beyond the code segment limit`,
    );
    if (f) return done(f);
    const newCpl = tinfo.conforming ? cpl : t.dpl;
    let ssInstall: { ss: number; d: DescriptorFields } | undefined;
    const err = options.errorCode !== undefined ? ", error code" : "";
    if (newCpl < cpl) {
      const s = this.#stackSwitch(c, steps, newCpl, ext);
      if ("kind" in s) return done(s);
      ssInstall = s;
      steps.push(`SS:ESP ← ${hex(s.ss)}:${hex(s.esp)}`);
      steps.push(
        `push old SS, ESP, EFLAGS, CS, EIP${err} on the ring-${newCpl} stack`,
      );
    } else {
      steps.push(
        `push EFLAGS, CS, EIP${err} on the current stack (same privilege)`,
      );
    }
    steps.push(
      g.gate === "interrupt"
        ? "EFLAGS.IF ← 0 (interrupt gate); TF, NT, RF, VM ← 0"
        : "EFLAGS.IF unchanged (trap gate); TF, NT, RF, VM ← 0",
    );
    const cs = (g.selector & ~3) | newCpl;
    steps.push(
      `CS ← ${hex(cs)}, EIP ← ${hex(g.offset)}, CPL ${cpl} → ${newCpl}`,
    );
    this.#cpl = newCpl;
    this.#install("CS", cs, t);
    if (ssInstall) this.#install("SS", ssInstall.ss, ssInstall.d);
    return done({ kind: "ok", cpl: newCpl });
  }
}
