/**
 * Facts about the host this process runs on, for reports: the CPU's model
 * name and which KVM module provides `/dev/kvm`. Both need `-A` (Deno
 * grants reads of `/proc` and `/sys` only with all permissions) and answer
 * "unknown" without it.
 *
 * @module
 */

/**
 * The CPU's model name from `/proc/cpuinfo`, or "unknown".
 *
 * @example
 * ```ts
 * import { cpuModelName } from "./host.ts";
 * import assert from "node:assert/strict";
 * assert.equal(typeof cpuModelName(), "string");
 * ```
 */
export function cpuModelName(): string {
  try {
    const t = Deno.readTextFileSync("/proc/cpuinfo");
    return /^model name\s*:\s*(.*)$/m.exec(t)?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * The loaded KVM vendor module (`kvm_intel`, `kvm_amd`, `kvm_pvm`, …) from
 * `/sys/module`, or "unknown". `kvm_pvm` is software virtualization with
 * KVM's shadow MMU: no VMX/SVM underneath.
 *
 * @example
 * ```ts
 * import { kvmModuleName } from "./host.ts";
 * import assert from "node:assert/strict";
 * assert.match(kvmModuleName(), /^(kvm_\w+|unknown)$/);
 * ```
 */
export function kvmModuleName(): string {
  for (const m of ["kvm_intel", "kvm_amd", "kvm_pvm"]) {
    try {
      Deno.statSync(`/sys/module/${m}`);
      return m;
    } catch { /* not loaded, or no permission */ }
  }
  return "unknown";
}
