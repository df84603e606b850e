/**
 * Real costs of memory-virtualization events, measured inside a KVM guest
 * with `rdtsc` (issue 3, part 3): a guest page fault handled by the guest,
 * a write to a live guest page table, a CR3 switch, and a TLB miss over a
 * large working set — under this machine's hypervisor, whatever it is. The
 * result is a plain-JSON {@linkcode CostProfile} that a cost model can
 * load.
 *
 * Method: one measuring loop (`call body; dec rcx; jnz`) between two
 * `lfence; rdtsc`; the loop's own cost (empty body, same privilege) is
 * subtracted; each number is the median of several runs. Tables for the
 * measurements are built with memvirt's {@linkcode PageTable} in the
 * guest's scratch memory before the guest first uses them.
 *
 * What `kvm_pvm` does to the numbers (measured, see `kernelLoop` and
 * `userLoop`): it runs guest *user* code natively, but a guest kernel that
 * is not PVM-aware (like this one: no PVM event entry, no PVM address
 * range) runs emulated, at thousands of cycles per instruction. So
 * everything that can run at CPL 3 is measured there: loads, the working
 * set sweep, page-table writes (through a user alias of the table page —
 * the trap is the same), and page faults (the handler itself is kernel
 * code, so it is emulated and included). Only the CR3 switch needs CPL 0:
 * it is the marginal cost of `mov cr3` in the emulated kernel loop.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
import { X86_64_4LEVEL } from "../paging/format.ts";
import { pagingMode } from "../paging/mode.ts";
import { PageTable } from "../paging/builder.ts";
import { DONE_VECTOR, harnessImage, LAYOUT, SEL } from "./guest.ts";
import { cpuModelName, kvmModuleName } from "./host.ts";
import { RealCpu } from "./real.ts";
import { Random } from "../util/random.ts";
import type { KvmRegs } from "./ffi.ts";

/** Offsets of the routines in the cost code page (`LAYOUT.costCode`). */
export interface CostCodeOffsets {
  /** The measuring loop. */
  readonly bench: number;
  /** Body: nothing (the loop's own cost). */
  readonly empty: number;
  /** Body: MOV to CR3, alternating two roots. */
  readonly cr3: number;
  /** Body: a page-table entry write. */
  readonly ptWrite: number;
  /** Body: one load. */
  readonly load: number;
  /** Body: one step of a pointer chase (`mov r13, [r12 + r13]`). */
  readonly walk: number;
  /** The #PF handler that skips the faulting load. */
  readonly pfHandler: number;
  /** Kernel stub that enters the measuring loop at CPL 3 (`iretq`). */
  readonly enterUser: number;
}

/**
 * Where each routine lies in the cost code page.
 *
 * @example
 * ```ts
 * import { COST_CODE } from "./costs.ts";
 * import assert from "node:assert/strict";
 * assert.equal(COST_CODE.bench, 0);
 * assert.ok(COST_CODE.enterUser < 0x1000);
 * ```
 */
export const COST_CODE: CostCodeOffsets = Object.freeze({
  bench: 0x000,
  empty: 0x100,
  cr3: 0x110,
  ptWrite: 0x120,
  load: 0x130,
  walk: 0x140,
  pfHandler: 0x180,
  enterUser: 0x1a0,
});

/**
 * The cost code page. The measuring loop (in: rbx = body, rcx =
 * iterations; out: rbp = TSC ticks, then `ud2`, which the harness's
 * exception handler reports):
 *
 * ```
 * 000  0f ae e8          lfence
 * 003  0f 31             rdtsc
 * 005  48 c1 e2 20       shl  rdx, 32
 * 009  48 09 d0          or   rax, rdx
 * 00c  49 89 c1          mov  r9, rax
 * 00f  ff d3       l:    call rbx
 * 011  48 ff c9          dec  rcx
 * 014  75 f9             jnz  l
 * 016  0f ae e8          lfence
 * 019  0f 31             rdtsc
 * 01b  48 c1 e2 20       shl  rdx, 32
 * 01f  48 09 d0          or   rax, rdx
 * 022  4c 29 c8          sub  rax, r9
 * 025  48 89 c5          mov  rbp, rax
 * 028  0f 0b             ud2
 * ```
 *
 * Bodies, each ending in `ret` (c3):
 *
 * ```
 * 100  c3                ret                       ; empty: the loop's cost
 * 110  0f 22 de          mov  cr3, rsi             ; CR3 switch between
 * 113  48 87 fe          xchg rsi, rdi             ;   two roots
 * 116  c3                ret
 * 120  48 89 3e          mov  [rsi], rdi           ; page-table write
 * 123  4c 31 ff          xor  rdi, r15             ;   (toggle an ignored bit)
 * 126  c3                ret
 * 130  48 8b 06          mov  rax, [rsi]           ; one load (#PF if absent)
 * 133  c3                ret
 * 140  4f 8b 2c 2c       mov  r13, [r12 + r13]     ; pointer chase: each
 * 144  c3                ret                       ;   node holds the next
 * ```
 *
 * The #PF handler for the fault measurement skips the 3-byte load:
 *
 * ```
 * 180  48 83 44 24 08 03 add  qword [rsp+8], 3     ; RIP past the load
 * 186  48 83 c4 08       add  rsp, 8               ; drop the error code
 * 18a  48 cf             iretq
 * ```
 *
 * Entering the loop at CPL 3 (in: r14 = the loop's user address):
 *
 * ```
 * 1a0  6a 1b             push 0x1b                 ; SS = user data
 * 1a2  68 00 10 01 00    push 0x11000              ; RSP = user stack top
 * 1a7  6a 02             push 2                    ; RFLAGS
 * 1a9  6a 23             push 0x23                 ; CS = user code
 * 1ab  41 56             push r14                  ; RIP
 * 1ad  48 cf             iretq
 * ```
 *
 * @example
 * ```ts
 * import { COST_CODE, costCodePage } from "./costs.ts";
 * import assert from "node:assert/strict";
 * const p = costCodePage();
 * assert.equal(p.length, 4096);
 * assert.deepEqual([...p.subarray(COST_CODE.bench, COST_CODE.bench + 3)], [0x0f, 0xae, 0xe8]);
 * assert.equal(p[COST_CODE.empty], 0xc3);
 * assert.equal(0x16 + (p[0x15] << 24 >> 24), COST_CODE.bench + 0x0f); // jnz back to the call
 * ```
 */
export function costCodePage(): Uint8Array {
  const p = new Uint8Array(4096).fill(0xcc);
  // deno-fmt-ignore
  const bench = [
    0x0f, 0xae, 0xe8,
    0x0f, 0x31,
    0x48, 0xc1, 0xe2, 0x20,
    0x48, 0x09, 0xd0,
    0x49, 0x89, 0xc1,
    0xff, 0xd3,
    0x48, 0xff, 0xc9,
    0x75, 0xf9,
    0x0f, 0xae, 0xe8,
    0x0f, 0x31,
    0x48, 0xc1, 0xe2, 0x20,
    0x48, 0x09, 0xd0,
    0x4c, 0x29, 0xc8,
    0x48, 0x89, 0xc5,
    0x0f, 0x0b,
  ];
  p.set(bench, COST_CODE.bench);
  p.set([0xc3], COST_CODE.empty);
  p.set([0x0f, 0x22, 0xde, 0x48, 0x87, 0xfe, 0xc3], COST_CODE.cr3);
  p.set([0x48, 0x89, 0x3e, 0x4c, 0x31, 0xff, 0xc3], COST_CODE.ptWrite);
  p.set([0x48, 0x8b, 0x06, 0xc3], COST_CODE.load);
  p.set([0x4f, 0x8b, 0x2c, 0x2c, 0xc3], COST_CODE.walk);
  p.set(
    [0x48, 0x83, 0x44, 0x24, 0x08, 0x03, 0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf],
    COST_CODE.pfHandler,
  );
  p.set(
    [0x6a, SEL.userData, 0x68, ...le32(LAYOUT.userStackTop), 0x6a, 0x02],
    COST_CODE.enterUser,
  );
  p.set([0x6a, SEL.userCode, 0x41, 0x56, 0x48, 0xcf], COST_CODE.enterUser + 9);
  return p;
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** One measured quantity. */
export interface Cost {
  /** Median TSC cycles per event (the loop's own cost subtracted; ≥ 0). */
  readonly cycles: number;
  /** The same in nanoseconds (at the measured TSC rate). */
  readonly ns: number;
  /** Privilege level the events were measured at. */
  readonly cpl: 0 | 3;
  /** Events per run. */
  readonly events: number;
  /** Runs (the median is over these). */
  readonly runs: number;
}

/**
 * Per-access cost of a pointer chase through `pages` nodes (one cache line
 * each, random order): spread one node per 4 KiB page, or packed into
 * `pages / 64` pages. Same lines, same cache footprint; only the number of
 * pages — and so of TLB entries needed — differs.
 */
export interface WorkingSetCost {
  /** Nodes (cache lines) in the chase. */
  readonly pages: number;
  /** Cycles per access with one node per page (`pages` pages). */
  readonly spread: number;
  /** Cycles per access with 64 nodes per page (`pages / 64` pages). */
  readonly packed: number;
}

/** A "this machine" cost profile (plain JSON). */
export interface CostProfile {
  /** Format tag. */
  readonly schema: "memvirt-cost-profile/1";
  /** Where and how it was measured. */
  readonly machine: {
    /** CPU model name (`/proc/cpuinfo`). */
    readonly cpu: string;
    /** KVM vendor module (`kvm_pvm`, `kvm_amd`, `kvm_intel`). */
    readonly kvmModule: string;
    /** TSC rate in Hz, measured against the host clock. */
    readonly tscHz: number;
    /** ISO date of the measurement. */
    readonly measuredAt: string;
  };
  /** Unit of `cycles`: TSC ticks. */
  readonly unit: "tsc-cycles";
  /** The events. */
  readonly costs: {
    /** One iteration of the measuring loop at CPL 3 (call/ret, dec, jnz); subtracted from CPL-3 numbers. */
    readonly userLoop: Cost;
    /** The same loop at CPL 0; subtracted from CPL-0 numbers (large where the hypervisor emulates guest kernel code). */
    readonly kernelLoop: Cost;
    /** A load that hits the TLB and the L1 cache. */
    readonly load: Cost;
    /** A guest #PF (not-present PTE) from CPL 3, delivered to the guest kernel's handler, which returns with `iretq`. */
    readonly guestPageFault: Cost;
    /** The first write to an entry of a guest page table the MMU has just walked. */
    readonly guestPageTableWriteFirst: Cost;
    /** Each of 1,000 back-to-back writes to one guest page-table entry. */
    readonly guestPageTableWrite: Cost;
    /** MOV to CR3 (no PCID), alternating between two roots. */
    readonly cr3Switch: Cost;
    /** Extra cycles per access when accesses miss the TLB (4 KiB vs 2 MiB pages, largest working set). */
    readonly tlbMiss: Cost;
  };
  /** The working-set sweep behind `tlbMiss` (CPL 3). */
  readonly workingSets: readonly WorkingSetCost[];
  /** How to read the numbers. */
  readonly notes: readonly string[];
}

/** Options for {@linkcode measureCosts}. */
export interface MeasureOptions {
  /** Runs per quantity (median taken). Default 7. */
  runs?: number;
  /**
   * Working sets to sweep, in nodes = pages (powers of two in [64,
   * 65536]). Default 64 … 32768 (128 MiB); guest memory is sized to fit.
   */
  workingSets?: readonly number[];
}

// Linear addresses of the measurement mappings (PML4 slot 1; all user pages).
const USER_CODE = 0x80_c000_0000; // alias of the cost code page
const ALIAS_4K = 0x82_0000_0000; // data frames, 4 KiB pages
const WRITE_TARGETS = 0x80_4000_0000; // 32 × (one page per PT; the next entry absent)
const TABLE_ALIAS = 0x81_4000_0000; // user-writable aliases of those PT frames
const FAULT_PAGE = 0x80_8000_0000; // one mapped page; the next one absent
const N_TARGETS = 32;

/** Round to tenths; a difference below zero is noise and reads as 0. */
function tenths(x: number): number {
  return Math.max(0, Math.round(x * 10) / 10) || 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Measure this machine's costs in a fresh guest. Throws
 * `KvmUnavailableError` where KVM cannot be used. Takes a few seconds.
 *
 * @example
 * ```ts
 * import { measureCosts } from "./costs.ts";
 * import { kvmAvailable } from "./vm.ts";
 * import assert from "node:assert/strict";
 * if (kvmAvailable()) {
 *   const p = measureCosts({ runs: 3, workingSets: [64, 1024] });
 *   assert.equal(p.schema, "memvirt-cost-profile/1");
 *   assert.ok(p.machine.tscHz > 1e8);
 *   assert.ok(p.costs.guestPageFault.cycles > p.costs.load.cycles);
 *   assert.equal(JSON.parse(JSON.stringify(p)).workingSets.length, 2);
 * }
 * ```
 */
export function measureCosts(options: MeasureOptions = {}): CostProfile {
  const runs = options.runs ?? 7;
  const sets = options.workingSets ?? [64, 512, 2048, 8192, 32768];
  for (const s of sets) {
    if (!Number.isInteger(Math.log2(s)) || s < 64 || s > 65536) {
      throw new RangeError(
        `working set ${s} is invalid: expected a power of two in [64, 65536] pages`,
      );
    }
  }
  const maxPages = Math.max(512, ...sets);
  using cpu = RealCpu.create({
    memoryBytes: Math.max(LAYOUT.memoryBytes, LAYOUT.data + maxPages * 0x1000),
  });
  const vm = cpu.vm;
  const mem = vm.memory;
  const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  mem.set(costCodePage(), LAYOUT.costCode);
  // #PF (vector 14) → the skipping handler, in this guest only.
  const h = LAYOUT.costCode + COST_CODE.pfHandler;
  dv.setUint16(LAYOUT.idt + 16 * 14, h & 0xffff, true);
  dv.setUint16(LAYOUT.idt + 16 * 14 + 6, h >>> 16, true);
  // Tables: root in scratch, slot 0 = the harness, the rest built here.
  const tables = new PhysicalMemory({ size: cpu.memoryBytes, name: "costs" });
  const root = LAYOUT.scratch;
  const pt = new PageTable(tables, {
    mode: pagingMode(X86_64_4LEVEL, { nxe: false }),
    root,
    allocator: new FrameAllocator(tables, {
      start: root + 0x1000,
      end: LAYOUT.scratchEnd,
    }),
  });
  const img = harnessImage(cpu.memoryBytes);
  pt.writeEntry(4, root, img.linkLo, img.linkHi, LinearAddress.from(0));
  const u = { accessed: true, dirty: true, user: true };
  pt.map(USER_CODE, LAYOUT.costCode, { ...u, writable: false });
  for (let i = 0; i < maxPages; i++) {
    pt.map(ALIAS_4K + i * 0x1000, LAYOUT.data + i * 0x1000, u);
  }
  for (let k = 0; k < N_TARGETS; k++) {
    pt.map(WRITE_TARGETS + k * 0x200000, LAYOUT.data, u);
  }
  pt.map(FAULT_PAGE, LAYOUT.data, u);
  const leafTable = (va: number) =>
    pt.lookup(va).steps.find((s) => s.level === 1)!.tableBase;
  for (let k = 0; k < N_TARGETS; k++) {
    pt.map(
      TABLE_ALIAS + k * 0x1000,
      leafTable(WRITE_TARGETS + k * 0x200000),
      u,
    );
  }
  // Copy the new table frames (the root's slot 0 leads into the harness
  // tables, which this memory does not hold: skip those).
  for (const t of pt.tables()) {
    if (t.address < LAYOUT.scratch || t.address >= LAYOUT.scratchEnd) continue;
    mem.set(tables.readBytes(t.address, 0x1000), t.address);
  }
  // the user alias of the PTE that follows the mapped page of target k
  const targetPte = (k: number) => TABLE_ALIAS + k * 0x1000 + 8;
  const sregs = { ...cpu.baseSregs(), cr3: BigInt(root) };

  const bench = (
    cpl: 0 | 3,
    body: number,
    iterations: number,
    set: Partial<Record<keyof KvmRegs, bigint>> = {},
  ): number => {
    vm.setSregs(sregs);
    const r = vm.getRegs();
    Object.assign(r, set);
    const code = cpl === 3 ? USER_CODE : LAYOUT.costCode;
    r.rbx = BigInt(code + body);
    r.rcx = BigInt(iterations);
    r.r14 = BigInt(code + COST_CODE.bench);
    r.rip = BigInt(
      LAYOUT.costCode + (cpl === 3 ? COST_CODE.enterUser : COST_CODE.bench),
    );
    r.rsp = BigInt(LAYOUT.kernelStackTop);
    r.rflags = 2n;
    vm.setRegs(r);
    const e = vm.run();
    const g = vm.getRegs();
    if (
      e.kind !== "io" || e.port !== LAYOUT.reportPort ||
      g.r8 !== BigInt(DONE_VECTOR) ||
      g.r11 !== BigInt(code + COST_CODE.bench + 0x28)
    ) {
      throw new Error(
        `cost measurement stopped unexpectedly: ${
          JSON.stringify(e, bigJ)
        }, vector ${g.r8}, RIP 0x${g.r11.toString(16)}`,
      );
    }
    if (vm.run().kind !== "hlt") throw new Error("cost loop did not halt");
    return Number(g.rbp);
  };

  // TSC rate: a long user-mode loop timed by the host clock.
  const t0 = performance.now();
  const longTicks = bench(3, COST_CODE.empty, 100_000_000);
  const tscHz = longTicks / ((performance.now() - t0) / 1000);

  const loop = (cpl: 0 | 3, n: number) =>
    median(
      Array.from({ length: runs }, () => bench(cpl, COST_CODE.empty, n) / n),
    );
  const userLoop = loop(3, 100_000);
  const kernelLoop = loop(0, 200);
  const per = (cpl: 0 | 3, body: number, iters: number, set = {}) =>
    median(
      Array.from(
        { length: runs },
        () =>
          bench(cpl, body, iters, set) / iters -
          (cpl === 3 ? userLoop : kernelLoop),
      ),
    );
  const cost = (cycles: number, cpl: 0 | 3, events: number): Cost => ({
    cycles: tenths(cycles),
    ns: tenths(cycles / tscHz * 1e9),
    cpl,
    events,
    runs,
  });

  const load = per(3, COST_CODE.load, 100_000, { rsi: BigInt(ALIAS_4K) });
  const pf = per(3, COST_CODE.load, 200, { rsi: BigInt(FAULT_PAGE + 0x1000) });
  const cr3 = per(0, COST_CODE.cr3, 200, {
    rsi: BigInt(cpu.harnessRoot),
    rdi: BigInt(root),
  });
  // Back-to-back writes to one entry (an absent PTE; bit 9 toggles).
  const burst = per(3, COST_CODE.ptWrite, 1000, {
    rsi: BigInt(targetPte(0)),
    rdi: 0x200n,
    r15: 0x200n,
  });
  // First write after the MMU walked the table: a fresh table per sample.
  const first: number[] = [];
  for (let k = 1; k < N_TARGETS; k++) {
    const va = WRITE_TARGETS + k * 0x200000;
    bench(3, COST_CODE.load, 1, { rsi: BigInt(va) }); // walk (shadow) it
    first.push(
      bench(3, COST_CODE.ptWrite, 1, {
        rsi: BigInt(targetPte(k)),
        rdi: 0x200n,
        r15: 0x200n,
      }) - userLoop,
    );
  }
  const chase = (pages: number, packed: boolean) => {
    const order = new Random(pages).shuffle(
      Array.from({ length: pages }, (_, i) => i),
    );
    const at = (k: number) => {
      const p = order[k % pages];
      return packed ? p * 64 : p * 0x1000 + (p % 64) * 64;
    };
    for (let k = 0; k < pages; k++) {
      dv.setBigUint64(LAYOUT.data + at(k), BigInt(at(k + 1)), true);
    }
    const iters = Math.max(100_000, pages * 4);
    const set = { r12: BigInt(ALIAS_4K), r13: BigInt(at(0)) };
    bench(3, COST_CODE.walk, iters, set); // warm up
    return tenths(per(3, COST_CODE.walk, iters, set));
  };
  const workingSets: WorkingSetCost[] = sets.map((pages) => ({
    pages,
    spread: chase(pages, false),
    packed: chase(pages, true),
  }));
  const largest = workingSets[workingSets.length - 1];
  return {
    schema: "memvirt-cost-profile/1",
    machine: {
      cpu: cpuModelName(),
      kvmModule: kvmModuleName(),
      tscHz: Math.round(tscHz),
      measuredAt: new Date().toISOString(),
    },
    unit: "tsc-cycles",
    costs: {
      userLoop: cost(userLoop, 3, 100_000),
      kernelLoop: cost(kernelLoop, 0, 200),
      load: cost(load, 3, 100_000),
      guestPageFault: cost(pf, 3, 200),
      guestPageTableWriteFirst: cost(median(first), 3, 1),
      guestPageTableWrite: cost(burst, 3, 1000),
      cr3Switch: cost(cr3, 0, 200),
      tlbMiss: cost(
        Math.max(0, largest.spread - largest.packed),
        3,
        Math.max(100_000, largest.pages * 4),
      ),
    },
    workingSets,
    notes: [
      "cycles are TSC ticks per event, the measuring loop's own cost (same CPL) subtracted; medians of `runs` runs",
      "guestPageFault: CPL-3 load of a not-present page → #PF delivered to the guest kernel's IDT handler → iretq past the load (no table fix-up)",
      "guestPageTableWrite*: a CPL-3 store (through a user alias) to a PTE of a table the shadow MMU tracks: the first write traps; later back-to-back writes may not (KVM unprotects a flooded table)",
      "cr3Switch: measured at CPL 0, the only place MOV to CR3 can run; where the hypervisor emulates guest kernel code (kernelLoop ≫ userLoop) it includes that emulation",
      "workingSets: dependent loads (each address depends on the previous load), one per page with a 4,160-byte stride, so each access pays its full latency",
      "workingSets: a pointer chase (each load's address is the previous load's value) over `pages` cache lines in random order, spread one per 4 KiB page or packed 64 per page: same lines, different page counts",
      "tlbMiss: spread minus packed at the largest working set: what an access that misses the TLB adds (a hardware walk of the shadow tables here). Guest 2 MiB pages are no baseline under a shadow MMU whose host memory is in 4 KiB pages: they get 4 KiB shadow entries",
      "measured inside a KVM guest: every number includes this machine's hypervisor (with kvm_pvm on a machine that is itself a VM without SVM/VMX, the CPU's own walk of the shadow tables is in turn translated by the outer hypervisor's nested paging, which is why a TLB miss is so dear)",
    ],
  };
}

function bigJ(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}

if (import.meta.main) {
  console.log(JSON.stringify(measureCosts(), null, 2));
}
