/**
 * One memory reference through both protection units, in the order the
 * processor applies them (SDM Vol. 3 §3.1, Figure 3-1): segmentation
 * (null selector, type, limit → linear address), then paging through the
 * existing {@linkcode Cpu} (TLB and the one walker), whose user/supervisor
 * decision follows the CPL: CPL 0, 1, 2 are supervisor-mode accesses,
 * CPL 3 user-mode (SDM §4.6) — so a ring-1 guest kernel counts as
 * supervisor for paging.
 *
 * @module
 */

import type { Cpu } from "../cpu/cpu.ts";
import { FAULT_REASON_TEXT } from "../paging/record.ts";
import { levelSpec } from "../paging/format.ts";
import {
  type ProtectionCheck,
  type ProtectionOutcome,
  ProtectionRecord,
} from "./record.ts";
import type {
  SegmentAccess,
  Segmentation,
  SegmentRegisterName,
} from "./segment.ts";

/** What {@linkcode checkAccess} runs on. */
export interface ProtectionMachine {
  /** The segmentation unit (its CPL decides user vs supervisor). */
  readonly segmentation: Segmentation;
  /** The processor's paging side; absent = paging disabled (linear = physical). */
  readonly cpu?: Cpu;
}

const hex = (v: number | bigint) => "0x" + v.toString(16);

const REASON_CHECK: Record<string, string> = {
  "not-present": "present",
  "reserved-bit": "reserved bits",
  "user-supervisor": "U/S",
  "write-protect": "R/W",
  "no-execute": "XD",
  "smep": "SMEP",
  "smap": "SMAP",
  "pkey": "protection key",
  "non-canonical": "canonical",
};

/**
 * Run segmentation then paging for one reference and return the record:
 * which check stopped it and why, or the linear and physical address.
 * The CPU's CPL is set to the segmentation CPL first (they are one
 * processor).
 *
 * @example A ring-1 kernel reads a supervisor page; ring 3 may not.
 * ```ts
 * import { checkAccess } from "./access.ts";
 * import { Segmentation } from "./segment.ts";
 * import { DescriptorTable } from "./table.ts";
 * import { makeSelector, segmentDescriptor } from "./descriptor.ts";
 * import { Cpu } from "../cpu/cpu.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const memory = new PhysicalMemory({ size: 1 << 24 });
 * const gdt = new DescriptorTable(memory, { base: 0xf0_0000 });
 * for (const ring of [1, 3]) {
 *   gdt.write(ring, ...segmentDescriptor({ kind: "code", dpl: ring }));
 *   gdt.write(ring + 1, ...segmentDescriptor({ kind: "data", dpl: ring }));
 * }
 * const pt = new PageTable(memory, { format: X86_32 });
 * pt.map(0xc000_0000, 0x20_0000); // supervisor page
 * const machine = { segmentation: new Segmentation({ gdt }), cpu: new Cpu(memory, { format: X86_32, cr3: pt.root }) };
 * machine.segmentation.enter(1, { cs: makeSelector(1, { rpl: 1 }), ds: makeSelector(2, { rpl: 1 }) });
 * assert.equal(checkAccess(machine, 0xc000_0010).pa, 0x20_0010);
 * machine.segmentation.enter(3, { cs: makeSelector(3, { rpl: 3 }), ds: makeSelector(4, { rpl: 3 }) });
 * const r = checkAccess(machine, 0xc000_0010);
 * assert.equal(r.stoppedBy?.name, "U/S");
 * ```
 */
export function checkAccess(
  machine: ProtectionMachine,
  offset: number | bigint,
  access: SegmentAccess = {},
): ProtectionRecord {
  const seg = machine.segmentation;
  const kind = access.kind ?? "read";
  const sreg: SegmentRegisterName = access.sreg ??
    (kind === "fetch" ? "CS" : "DS");
  const size = access.size ?? 1;
  const cpl = seg.cpl;
  const op = `${kind} ${size} byte${size === 1 ? "" : "s"} at ${sreg}:${
    hex(offset)
  } (CPL ${cpl})`;
  const s = seg.translate(offset, { ...access, sreg, kind, size });
  const checks: ProtectionCheck[] = [...s.checks];
  const notModelled = [
    "descriptor-table reads are physical (GDTR holds a physical address here)",
  ];
  if (typeof s.linear === "object") {
    return new ProtectionRecord({
      operation: op,
      cpl,
      checks,
      steps: [],
      outcome: s.linear,
      notModelled,
    });
  }
  const linear = s.linear;
  const cpu = machine.cpu;
  if (!cpu || !cpu.paging) {
    checks.push({
      stage: "paging",
      name: "paging off",
      passed: true,
      rule: "CR0.PG = 0: the linear address is the physical address",
      detail: hex(linear),
    });
    if (typeof linear === "bigint" || linear > 0xffffffff) {
      throw new RangeError(
        `linear address ${
          hex(linear)
        } is invalid with paging disabled: expected a 32-bit address`,
      );
    }
    return new ProtectionRecord({
      operation: op,
      cpl,
      checks,
      steps: [],
      outcome: { kind: "ok", linear, pa: linear, cpl },
      notModelled,
    });
  }
  cpu.cpl = cpl;
  const user = cpl === 3;
  checks.push({
    stage: "paging",
    name: "mode",
    passed: true,
    rule:
      "CPL 0, 1, 2 → supervisor-mode access; CPL 3 → user-mode access (SDM §4.6)",
    detail: `CPL ${cpl} → ${user ? "user" : "supervisor"}`,
  });
  const r = cpu.access(linear, { kind, user });
  const o = r.outcome;
  let outcome: ProtectionOutcome;
  if (o.kind === "ok") {
    checks.push({
      stage: "paging",
      name: "present",
      passed: true,
      rule: "every entry on the path has P = 1 (SDM §4.7)",
      detail: r.tlb === "hit"
        ? "TLB hit"
        : `${r.walk?.steps.length ?? 0} table reads`,
    });
    checks.push({
      stage: "paging",
      name: "U/S",
      passed: true,
      rule: "a user-mode access needs U/S = 1 at every level (SDM §4.6.1)",
      detail: user
        ? "U/S = 1 on the path"
        : `supervisor access (page is ${
          o.rights.user ? "user" : "supervisor"
        })`,
    });
    if (kind === "write") {
      checks.push({
        stage: "paging",
        name: "R/W",
        passed: true,
        rule:
          "a write needs R/W = 1 at every level (supervisor too, with CR0.WP = 1) (SDM §4.6.1)",
        detail: "R/W = 1 on the path",
      });
    }
    if (kind === "fetch") {
      checks.push({
        stage: "paging",
        name: "XD",
        passed: true,
        rule: "a fetch needs XD = 0 on the path (SDM §4.6.1)",
        detail: "executable",
      });
    }
    outcome = { kind: "ok", linear, pa: o.pa, cpl };
  } else if (o.kind === "page-fault") {
    const name = REASON_CHECK[o.reason] ?? o.reason;
    const where = o.level > 0 && r.walk
      ? ` at ${levelSpec(r.walk.format, o.level).entry}`
      : "";
    checks.push({
      stage: "paging",
      name,
      passed: false,
      rule: `${FAULT_REASON_TEXT[o.reason]} → #PF (SDM §4.7)`,
      detail: `${o.reason}${where}, error code ${hex(o.errorCode.value)}`,
    });
    outcome = {
      kind: "fault",
      exception: "#PF",
      errorCode: o.errorCode.value,
      check: name,
      stage: "paging",
      message: o.message,
    };
  } else {
    const exception = sreg === "SS" ? "#SS" : "#GP";
    checks.push({
      stage: "paging",
      name: "canonical",
      passed: false,
      rule: "64-bit linear addresses must be canonical (SDM §3.3.7.1)",
      detail: hex(linear),
    });
    outcome = {
      kind: "fault",
      exception,
      errorCode: 0,
      check: "canonical",
      stage: "paging",
      message: `${exception}(0x0): non-canonical linear address ${hex(linear)}`,
    };
  }
  return new ProtectionRecord({
    operation: op,
    cpl,
    checks,
    steps: [],
    outcome,
    walk: r.walk,
    notModelled,
  });
}
