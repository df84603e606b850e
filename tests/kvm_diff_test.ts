/**
 * The differential test of memvirt's walker against the real CPU.
 *
 * 1. Recorded cases (no `/dev/kvm` needed): outcomes and entries-after
 *    that the real CPU produced on the development machine (AMD EPYC,
 *    `kvm_pvm`, MAXPHYADDR 48, no 1 GiB pages, SMEP/SMAP), each chosen for
 *    one rule, replayed on the model configured like that CPU. These are
 *    the regression tests for any model fix found by the differential run.
 * 2. The same recorded cases on this machine's CPU, when KVM is available
 *    and the CPU has the same features (so the recordings stay honest).
 * 3. A quick seeded random subset (400 cases) on the real CPU. The full run
 *    (≥ 10,000 cases) is `deno task kvm-diff`.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type CpuFeatures,
  modelCase,
  type PagingCase,
  PVM_EPYC_FEATURES,
} from "../lib/kvm/case.ts";
import {
  type ComparableOutcome,
  compareCase,
  modelOutcome,
  reproducer,
  runDifferential,
} from "../lib/kvm/diff.ts";
import { RealCpu } from "../lib/kvm/real.ts";
import { kvmStatus } from "../lib/kvm/vm.ts";
import { cpuModelName } from "../lib/kvm/host.ts";

const status = kvmStatus();
if (!status.available) {
  console.log(
    `KVM unavailable: ${status.reason} — real-CPU tests in kvm_diff_test.ts are ignored (the recorded cases still run)`,
  );
}

interface Recorded {
  readonly name: string;
  readonly case: PagingCase;
  readonly cpu: ComparableOutcome;
  readonly entriesAfter: readonly bigint[];
}

/** Recorded on AMD EPYC under kvm_pvm (features: PVM_EPYC_FEATURES). */
const RECORDED: readonly Recorded[] = [
  {
    name: "AMD: PML4E bit 8 is reserved",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31127n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0x8000000010n },
    entriesAfter: [0x31127n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "PML4E bit 7 (PS) is reserved",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x310a7n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0x8000000010n },
    entriesAfter: [0x310a7n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "no 1 GiB pages: PDPTE PS is reserved",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0xe7n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0xe7n],
  },
  {
    name: "bit 8 of a non-leaf PDPTE is ignored",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32127n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "ok", pa: 0x200010 },
    entriesAfter: [0x31027n, 0x32127n, 0x33027n, 0x200027n],
  },
  {
    name: "bit 48 (MAXPHYADDR 48) is reserved",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x33027n, 0x1000000200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x1000000200027n],
  },
  {
    name: "bits 52..62 are ignored",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [
        0x7ff0000000031027n,
        0x7ff0000000032027n,
        0x7ff0000000033027n,
        0x7f0000000200027n,
      ],
    },
    cpu: { kind: "ok", pa: 0x200010 },
    entriesAfter: [
      0x7ff0000000031027n,
      0x7ff0000000032027n,
      0x7ff0000000033027n,
      0x7f0000000200027n,
    ],
  },
  {
    name: "XD with EFER.NXE = 0 is reserved (fetch: no I/D bit)",
    case: {
      va: 0x8000000010n,
      kind: "fetch",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: false,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x8000000000033027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x8000000000033027n, 0x200027n],
  },
  {
    name: "XD on the PDE stops a user fetch",
    case: {
      va: 0x8000000010n,
      kind: "fetch",
      cpl: 3,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x8000000000033027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x15, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x8000000000033027n, 0x200027n],
  },
  {
    name: "CR0.WP = 0: supervisor write to a read-only page succeeds, sets D",
    case: {
      va: 0x8000000010n,
      kind: "write",
      cpl: 0,
      ac: false,
      wp: false,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31025n, 0x32025n, 0x33025n, 0x200025n],
    },
    cpu: { kind: "ok", pa: 0x200010 },
    entriesAfter: [0x31025n, 0x32025n, 0x33025n, 0x200065n],
  },
  {
    name: "CR0.WP = 1: the same write faults",
    case: {
      va: 0x8000000010n,
      kind: "write",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31025n, 0x32025n, 0x33025n, 0x200025n],
    },
    cpu: { kind: "page-fault", errorCode: 0x3, cr2: 0x8000000010n },
    entriesAfter: [0x31025n, 0x32025n, 0x33025n, 0x200025n],
  },
  {
    name: "SMAP with EFLAGS.AC = 1: supervisor read of a user page succeeds",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: true,
      wp: true,
      nxe: true,
      smep: false,
      smap: true,
      entries: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "ok", pa: 0x200010 },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "SMAP with EFLAGS.AC = 0: the same read faults",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: true,
      entries: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x1, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "SMAP does not apply to fetches",
    case: {
      va: 0x8000000010n,
      kind: "fetch",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: true,
      entries: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "ok", pa: 0x200010 },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "SMEP: supervisor fetch from a user page",
    case: {
      va: 0x8000000010n,
      kind: "fetch",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: true,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x11, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "a faulting walk sets no A bit",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31007n, 0x32007n, 0x33007n, 0x200006n],
    },
    cpu: { kind: "page-fault", errorCode: 0x0, cr2: 0x8000000010n },
    entriesAfter: [0x31007n, 0x32007n, 0x33007n, 0x200006n],
  },
  {
    name: "a 2 MiB write sets A on the path and D on the leaf",
    case: {
      va: 0x8000000010n,
      kind: "write",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31007n, 0x32007n, 0x400087n],
    },
    cpu: { kind: "ok", pa: 0x400010 },
    entriesAfter: [0x31027n, 0x32027n, 0x4000e7n],
  },
  {
    name: "a read sets A but not D",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 3,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31007n, 0x32007n, 0x33007n, 0x200007n],
    },
    cpu: { kind: "ok", pa: 0x200010 },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "2 MiB leaf: bit 13 is reserved",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x4020a7n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x4020a7n],
  },
  {
    name: "2 MiB leaf: bit 12 is PAT, not address",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x4010a7n],
    },
    cpu: { kind: "ok", pa: 0x400010 },
    entriesAfter: [0x31027n, 0x32027n, 0x4010a7n],
  },
  {
    name: "U/S = 0 in the PML4E only",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 3,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31023n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x5, cr2: 0x8000000010n },
    entriesAfter: [0x31023n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name: "non-canonical address: #GP(0)",
    case: {
      va: 0x100008000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
    },
    cpu: { kind: "gp", errorCode: 0 },
    entriesAfter: [0x31027n, 0x32027n, 0x33027n, 0x200027n],
  },
  {
    name:
      "1 GiB leaf without PS read as a table: the walk reaches the harness GDT",
    case: {
      va: 0xffffa78000708978n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: false,
      nxe: true,
      smep: true,
      smap: false,
      entries: [0x31423n, 0xa0000000001063n],
    },
    cpu: { kind: "page-fault", errorCode: 0x9, cr2: 0xffffa78000708978n },
    entriesAfter: [0x31423n, 0xa0000000001063n],
  },
  {
    name:
      "2 MiB leaf without PS: its frame (data pattern, P = 0) is read as a PT",
    case: {
      va: 0x8000000010n,
      kind: "read",
      cpl: 0,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x32027n, 0x400027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x0, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x32027n, 0x400027n],
  },
  {
    name: "a table beyond guest memory reads as not present",
    case: {
      va: 0x8000000010n,
      kind: "write",
      cpl: 3,
      ac: false,
      wp: true,
      nxe: true,
      smep: false,
      smap: false,
      entries: [0x31027n, 0x100000027n],
    },
    cpu: { kind: "page-fault", errorCode: 0x6, cr2: 0x8000000010n },
    entriesAfter: [0x31027n, 0x100000027n],
  },
];

Deno.test("recorded real-CPU cases: the model agrees (no KVM needed)", () => {
  for (const r of RECORDED) {
    const m = modelCase(r.case, PVM_EPYC_FEATURES);
    assert.deepEqual(modelOutcome(m), r.cpu, r.name);
    assert.deepEqual(m.entriesAfter, r.entriesAfter, r.name);
  }
});

function sameFeatures(a: CpuFeatures, b: CpuFeatures): boolean {
  return a.vendor === b.vendor && a.maxPhyAddr === b.maxPhyAddr &&
    a.gbPages === b.gbPages && a.nx === b.nx && a.smep === b.smep &&
    a.smap === b.smap;
}

Deno.test({
  name: "recorded cases still hold on this CPU",
  ignore: !status.available,
  fn() {
    using cpu = RealCpu.create();
    if (!sameFeatures(cpu.features, PVM_EPYC_FEATURES)) {
      console.log(
        `this CPU's paging features differ from the recording machine's: ${
          JSON.stringify(cpu.features)
        } — replay skipped`,
      );
      return;
    }
    for (const r of RECORDED) {
      const cmp = compareCase(cpu, r.case);
      assert.ok(cmp.agree, `${r.name}\n${reproducer(cmp)}`);
      assert.deepEqual(cmp.real, r.cpu, r.name);
      assert.deepEqual(cmp.realResult.entriesAfter, r.entriesAfter, r.name);
    }
  },
});

Deno.test({
  name:
    "quick differential run: 400 seeded random cases agree with the real CPU",
  ignore: !status.available,
  fn() {
    using cpu = RealCpu.create();
    const s = runDifferential(cpu, { count: 400, seed: 20240601 });
    const text = s.mismatches.map(reproducer).join("\n\n");
    console.log(
      `kvm-diff quick: ${s.agreed}/${s.cases} agreed on ${cpuModelName()} in ${
        s.ms.toFixed(0)
      } ms`,
    );
    assert.equal(s.agreed, s.cases, text);
    // the subset reaches every outcome class
    for (
      const k of [
        "ok",
        "#PF not-present",
        "#PF reserved-bit",
        "#PF user-supervisor",
        "#PF write-protect",
      ]
    ) {
      assert.ok((s.byOutcome[k] ?? 0) > 0, `no "${k}" case in the subset`);
    }
  },
});
