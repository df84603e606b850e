/**
 * memvirt on the real CPU: the same page tables, run through `/dev/kvm`
 * (Linux x86-64, `--allow-ffi`), and the differential test of memvirt's
 * walker against the CPU. Everything skips with "KVM unavailable: <reason>"
 * where KVM cannot be used.
 *
 * @example
 * ```ts
 * import { kvmAvailable, modelCase, PVM_EPYC_FEATURES, RealCpu } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x0000_0080_0000_0010n, kind: "write", cpl: 3, ac: false,
 *   wp: true, nxe: true, smep: true, smap: true,
 *   entries: [0x31007n, 0x32007n, 0x33007n, 0x200005n], // PTE read-only
 * } as const;
 * const model = modelCase(c, PVM_EPYC_FEATURES);
 * assert.equal(model.walk.outcome.kind, "page-fault");
 * if (kvmAvailable()) {
 *   using cpu = RealCpu.create();
 *   const real = cpu.run(c);
 *   assert.deepEqual(real.outcome, { kind: "page-fault", errorCode: 0b111, cr2: c.va });
 * }
 * ```
 *
 * @module
 */

export type {
  CpuidEntry,
  GprName,
  KvmRegs,
  KvmSegment,
  KvmSregs,
} from "./ffi.ts";
export {
  buildCaseTables,
  caseEntryAddress,
  CaseMemory,
  caseMode,
  caseSource,
  caseTableAddress,
  type CpuFeatures,
  cpuidFeatures,
  describeCase,
  modelCase,
  type ModelResult,
  type PagingCase,
  PVM_EPYC_FEATURES,
  randomCase,
  type RandomCaseOptions,
} from "./case.ts";
export {
  type Cost,
  COST_CODE,
  type CostCodeOffsets,
  costCodePage,
  type CostProfile,
  measureCosts,
  type MeasureOptions,
  type WorkingSetCost,
} from "./costs.ts";
export {
  type CaseComparison,
  type ComparableOutcome,
  compareCase,
  compareResults,
  type DifferentialOptions,
  type DifferentialSummary,
  modelOutcome,
  outcomeText,
  realOutcome,
  reproducer,
  runDifferential,
} from "./diff.ts";
export {
  type GuestLayout,
  type HarnessImage,
  harnessImage,
  LAYOUT,
  patternAddress,
  patternAt,
} from "./guest.ts";
export { cpuModelName, kvmModuleName } from "./host.ts";
export {
  type HandlerReport,
  RealCpu,
  type RealCpuOptions,
  type RealOutcome,
  type RealResult,
} from "./real.ts";
export {
  kvmAvailable,
  type KvmExit,
  type KvmStatus,
  kvmStatus,
  KvmUnavailableError,
  KvmVm,
  type KvmVmOptions,
} from "./vm.ts";
