/**
 * The real CPU as a paging oracle: a long-mode guest, set up entirely by
 * this module, that performs one access per case under page tables built
 * by memvirt and reports what happened — success (with the physical address
 * reached), or the exception vector, error code and CR2 — plus the entries
 * on the path as the CPU left them (A/D bits).
 *
 * Per case the host computes which qwords of the case tables must change
 * and hands the guest a write list; the guest performs those writes itself
 * (so that a shadow MMU, which write-protects guest page tables, sees them),
 * loads CR3 with the case root and performs the access at CPL 0 directly
 * or at CPL 3 through `iretq`. The exception handlers report through
 * `out 0xe0`, which exits to the host.
 *
 * @module
 */

import type { CpuidEntry } from "./ffi.ts";
import {
  DONE_VECTOR,
  fillPattern,
  harnessImage,
  LAYOUT,
  patternAddress,
  patternAt,
  SEL,
  STUB_FETCH_DONE,
  STUB_READ_DONE,
  STUB_WRITE_DONE,
} from "./guest.ts";
import {
  buildCaseTables,
  caseEntryAddress,
  type CpuFeatures,
  cpuidFeatures,
  type PagingCase,
} from "./case.ts";
import { type KvmExit, KvmVm } from "./vm.ts";
import type { KvmRegs, KvmSegment, KvmSregs } from "./ffi.ts";

/** What the real CPU did with one case. */
export type RealOutcome =
  | {
    readonly kind: "ok";
    /** Physical address reached (read: the pattern read; write: where the value landed; fetch: EAX set by the code fetched). */
    readonly pa: number | undefined;
  }
  | {
    readonly kind: "page-fault";
    /** #PF error code. */
    readonly errorCode: number;
    /** CR2. */
    readonly cr2: bigint;
  }
  | {
    readonly kind: "gp";
    /** #GP error code. */
    readonly errorCode: number;
  }
  | {
    readonly kind: "exception";
    /** Another vector (e.g. #UD, #DF). */
    readonly vector: number;
    /** Its error code (0 when the vector has none). */
    readonly errorCode: number;
    /** RIP pushed. */
    readonly rip: bigint;
  }
  | {
    readonly kind: "harness-error";
    /** What went wrong in the harness (unexpected exit, lost write, …). */
    readonly message: string;
  };

/** The result of {@linkcode RealCpu.run}. */
export interface RealResult {
  /** Outcome. */
  readonly outcome: RealOutcome;
  /** The path entries after the access, as the CPU left them (root first). */
  readonly entriesAfter: readonly bigint[];
  /** Entry writes the guest performed to install the case. */
  readonly entryWrites: number;
  /** What the exception handler reported (absent after a harness error). */
  readonly report?: HandlerReport;
}

/** The registers the guest's exception handler reports. */
export interface HandlerReport {
  /** Vector (6, #UD from `ud2`, is how success is reported). */
  readonly vector: number;
  /** Error code (0 for vectors without one). */
  readonly errorCode: number;
  /** CR2. */
  readonly cr2: bigint;
  /** RIP pushed by the exception. */
  readonly rip: bigint;
  /** CS pushed by the exception (its RPL is the CPL at the time). */
  readonly cs: number;
  /** RAX (a read's value, or EAX set by a fetched pattern). */
  readonly rax: bigint;
}

/** Options for {@linkcode RealCpu.create}. */
export interface RealCpuOptions {
  /** Guest memory in bytes (a multiple of 2 MiB, ≥ 8 MiB). Default `LAYOUT.memoryBytes`. */
  memoryBytes?: number;
  /**
   * Offer SMEP and SMAP in the guest CPUID (leaf 7 EBX bits 7 and 20)
   * even where `KVM_GET_SUPPORTED_CPUID` leaves them out (as `kvm_pvm`
   * does while enforcing them). Dropped again if KVM then refuses
   * CR4.SMEP/SMAP. Default true.
   */
  offerSmepSmap?: boolean;
}

const CR0_PE = 1n, CR0_ET = 1n << 4n, CR0_NE = 1n << 5n, CR0_WP = 1n << 16n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n, CR4_SMEP = 1n << 20n, CR4_SMAP = 1n << 21n;
const EFER_LME = 1n << 8n, EFER_LMA = 1n << 10n, EFER_NXE = 1n << 11n;
const RFLAGS_AC = 1n << 18n;
const KIND_CODE = { read: 0n, write: 1n, fetch: 2n } as const;
const WRITE_TAG = 0x57524954; // "TIRW": high dword of the values written

/**
 * A real CPU (through `/dev/kvm`) that runs {@linkcode PagingCase}s.
 * `RealCpu.create()` throws {@linkcode KvmUnavailableError} where KVM
 * cannot be used.
 *
 * @example
 * ```ts
 * import { RealCpu } from "./real.ts";
 * import { kvmAvailable } from "./vm.ts";
 * import { modelCase } from "./case.ts";
 * import assert from "node:assert/strict";
 * if (kvmAvailable()) {
 *   using cpu = RealCpu.create();
 *   const c = {
 *     va: 0x0000_0080_0000_0010n, kind: "read", cpl: 3, ac: false,
 *     wp: true, nxe: true, smep: true, smap: true,
 *     entries: [0x31007n, 0x32007n, 0x33007n, 0x200007n], // PML4E, PDPTE, PDE, PTE
 *   } as const;
 *   const real = cpu.run(c);
 *   assert.deepEqual(real.outcome, { kind: "ok", pa: 0x200010 });
 *   const model = modelCase(c, cpu.features);
 *   assert.equal(model.walk.pa, 0x200010);
 *   assert.deepEqual(real.entriesAfter, model.entriesAfter); // A bits, set by the CPU
 * }
 * ```
 */
export class RealCpu {
  /** Paging features of the guest CPU (from the CPUID given to it). */
  readonly features: CpuFeatures;
  /** Guest memory size. */
  readonly memoryBytes: number;
  #vm: KvmVm;
  #offer: boolean;
  #harnessRoot: number;
  #sregs: KvmSregs;
  #writes = 0;
  #resets = 0;

  private constructor(
    vm: KvmVm,
    memoryBytes: number,
    offer: boolean,
    features: CpuFeatures,
  ) {
    this.#vm = vm;
    this.memoryBytes = memoryBytes;
    this.#offer = offer;
    this.features = features;
    const init = RealCpu.#initGuest(vm, memoryBytes);
    this.#harnessRoot = init.root;
    this.#sregs = init.sregs;
  }

  /** Create the VM and load the harness. */
  static create(options: RealCpuOptions = {}): RealCpu {
    const memoryBytes = options.memoryBytes ?? LAYOUT.memoryBytes;
    if (
      !Number.isInteger(memoryBytes) || memoryBytes % 0x200000 !== 0 ||
      memoryBytes < 8 * 2 ** 20 || memoryBytes > 2 ** 32
    ) {
      throw new RangeError(
        `guest memory ${
          String(memoryBytes)
        } is invalid: expected a multiple of 2 MiB in [8 MiB, 4 GiB]`,
      );
    }
    let offer = options.offerSmepSmap ?? true;
    for (;;) {
      const vm = RealCpu.#newVm(memoryBytes, offer);
      const features = cpuidFeatures(vm.cpuid);
      let cpu: RealCpu;
      try {
        cpu = new RealCpu(vm, memoryBytes, offer, features);
      } catch (e) {
        vm.close();
        if (offer && /KVM_SET_SREGS/.test((e as Error).message)) {
          offer = false; // KVM refuses CR4.SMEP/SMAP after all
          continue;
        }
        throw e;
      }
      cpu.#selfTest();
      return cpu;
    }
  }

  static #newVm(memoryBytes: number, offer: boolean): KvmVm {
    return KvmVm.create({
      memoryBytes,
      cpuid: (entries: CpuidEntry[]) =>
        offer
          ? entries.map((e) =>
            e.function === 7 && e.index === 0
              ? { ...e, ebx: (e.ebx | (1 << 7) | (1 << 20)) >>> 0 }
              : e
          )
          : entries,
    });
  }

  static #initGuest(vm: KvmVm, memoryBytes: number): {
    root: number;
    sregs: KvmSregs;
  } {
    const m = vm.memory;
    const harness = harnessImage(memoryBytes);
    m.set(harness.bytes, 0);
    fillPattern(m, LAYOUT.data, memoryBytes);
    // Segments for 64-bit CPL 0 (the hidden parts KVM loads directly).
    const s = vm.getSregs();
    const seg = (selector: number, code: boolean): KvmSegment => ({
      base: 0n,
      limit: 0xffffffff,
      selector,
      type: code ? 11 : 3,
      present: 1,
      dpl: 0,
      db: code ? 0 : 1,
      s: 1,
      l: code ? 1 : 0,
      g: 1,
      avl: 0,
      unusable: 0,
    });
    s.cs = seg(SEL.kernelCode, true);
    s.ds =
      s.es =
      s.fs =
      s.gs =
      s.ss =
        seg(SEL.kernelData, false);
    s.tr = {
      base: BigInt(LAYOUT.tss),
      limit: 0x67,
      selector: SEL.tss,
      type: 11,
      present: 1,
      dpl: 0,
      db: 0,
      s: 0,
      l: 0,
      g: 0,
      avl: 0,
      unusable: 0,
    };
    s.ldt = {
      base: 0n,
      limit: 0xffff,
      selector: 0,
      type: 2,
      present: 1,
      dpl: 0,
      db: 0,
      s: 0,
      l: 0,
      g: 0,
      avl: 0,
      unusable: 0,
    };
    s.gdt = { base: BigInt(LAYOUT.gdt), limit: 0x37 };
    s.idt = { base: BigInt(LAYOUT.idt), limit: 32 * 16 - 1 };
    s.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.cr3 = BigInt(harness.root);
    s.cr4 = CR4_PAE;
    s.efer = EFER_LME | EFER_LMA | EFER_NXE;
    vm.setSregs(s);
    // Probe the strictest control bits once, so that a KVM refusing them
    // fails here (and create() retries without offering SMEP/SMAP).
    const strict = { ...s, cr4: s.cr4 | CR4_SMEP | CR4_SMAP };
    const f = cpuidFeatures(vm.cpuid);
    if (f.smep && f.smap) vm.setSregs(strict);
    return { root: harness.root, sregs: s };
  }

  #selfTest(): void {
    // A CPL-0 read of the first data qword through the harness mapping.
    const regs = this.#regsFor(
      BigInt(LAYOUT.data),
      "read",
      0,
      false,
      this.#harnessRoot,
    );
    this.#writeList([]);
    this.#vm.setSregs(this.#sregs);
    this.#vm.setRegs(regs);
    const r = this.#runToReport();
    if (typeof r === "string") {
      throw new Error(`KVM: the guest harness does not work: ${r}`);
    }
    if (
      r.r8 !== BigInt(DONE_VECTOR) ||
      r.r11 !== BigInt(LAYOUT.kernelAccess + STUB_READ_DONE) ||
      r.rax !== patternAt(LAYOUT.data)
    ) {
      throw new Error(
        `KVM: the guest harness self-test failed: vector ${r.r8}, error code 0x${
          r.r9.toString(16)
        }, RIP 0x${r.r11.toString(16)}, RAX 0x${r.rax.toString(16)}`,
      );
    }
  }

  /** Times the VM was recreated after a harness error. */
  get resets(): number {
    return this.#resets;
  }

  /** The underlying VM (for cost measurements and experiments). */
  get vm(): KvmVm {
    return this.#vm;
  }

  /** The harness root table (guest-physical), CR3 while the harness runs. */
  get harnessRoot(): number {
    return this.#harnessRoot;
  }

  /** The segment and control state a case starts from (a copy). */
  baseSregs(): KvmSregs {
    return structuredClone(this.#sregs);
  }

  #regsFor(
    va: bigint,
    kind: PagingCase["kind"],
    cpl: 0 | 3,
    ac: boolean,
    cr3: number,
  ): KvmRegs {
    const r = this.#vm.getRegs();
    r.rbx = BigInt(LAYOUT.writeList);
    r.r15 = BigInt(cr3);
    r.r14 = cpl === 3 ? 1n : 0n;
    r.r13 = KIND_CODE[kind];
    r.r12 = 2n | (ac ? RFLAGS_AC : 0n);
    r.rdi = va;
    r.rsi = (BigInt(WRITE_TAG) << 32n) | BigInt(++this.#writes >>> 0);
    r.rax = 0n;
    r.rbp = BigInt(cpl === 3 ? LAYOUT.userAccess : LAYOUT.kernelAccess) +
      BigInt(STUB_FETCH_DONE);
    r.rsp = BigInt(LAYOUT.kernelStackTop);
    r.rip = BigInt(LAYOUT.dispatch);
    r.rflags = 2n | (ac ? RFLAGS_AC : 0n);
    return r;
  }

  #writeList(writes: readonly [number, bigint][]): void {
    const cap = (0x1000 - 8) / 16;
    if (writes.length > cap) {
      throw new RangeError(
        `${writes.length} entry writes do not fit the write list (${cap})`,
      );
    }
    const dv = new DataView(
      this.#vm.memory.buffer,
      this.#vm.memory.byteOffset + LAYOUT.writeList,
      0x1000,
    );
    dv.setBigUint64(0, BigInt(writes.length), true);
    writes.forEach(([a, v], i) => {
      dv.setBigUint64(8 + 16 * i, BigInt(a), true);
      dv.setBigUint64(16 + 16 * i, v, true);
    });
  }

  /** Run until the handler reports; then let it halt (a clean vCPU state). */
  #runToReport(): KvmRegs | string {
    let exit: KvmExit = this.#vm.run();
    if (exit.kind !== "io" || exit.port !== LAYOUT.reportPort) {
      return `unexpected exit ${JSON.stringify(exit, bigintJson)}`;
    }
    const regs = this.#vm.getRegs();
    exit = this.#vm.run();
    if (exit.kind !== "hlt") {
      return `expected hlt after the report, got ${
        JSON.stringify(exit, bigintJson)
      }`;
    }
    return regs;
  }

  #read64(pa: number): bigint {
    const m = this.#vm.memory;
    return new DataView(m.buffer, m.byteOffset + pa, 8).getBigUint64(0, true);
  }

  /**
   * Run one case: install its tables (guest-side writes), set CR0.WP,
   * CR4.SMEP/SMAP, EFER.NXE and EFLAGS.AC, perform the access at the case's
   * CPL, and collect the outcome and the path entries afterwards.
   * `expectedPa` (e.g. the model's) is only a hint where to look first for
   * the value a write stored.
   */
  run(c: PagingCase, expectedPa?: number): RealResult {
    if (c.smep && !this.features.smep || c.smap && !this.features.smap) {
      throw new RangeError(
        "this CPU has no SMEP/SMAP for the guest; generate cases with its features",
      );
    }
    if (c.nxe && !this.features.nx) {
      throw new RangeError("this CPU has no NX for the guest");
    }
    // Install: the qwords of the case tables that differ from what the
    // guest holds now (A/D bits the CPU set last time included).
    const want = buildCaseTables(c, this.memoryBytes).memory
      .readBytes(
        LAYOUT.caseTables,
        LAYOUT.caseTablesEnd - LAYOUT.caseTables,
      );
    const m = this.#vm.memory;
    const have = new BigUint64Array(
      m.buffer,
      m.byteOffset + LAYOUT.caseTables,
      want.length / 8,
    );
    const wantQ = new BigUint64Array(want.buffer, want.byteOffset, have.length);
    const writes: [number, bigint][] = [];
    for (let i = 0; i < have.length; i++) {
      if (have[i] !== wantQ[i]) {
        writes.push([LAYOUT.caseTables + 8 * i, wantQ[i]]);
      }
    }
    this.#writeList(writes);
    const s = this.#sregs;
    this.#vm.setSregs({
      ...s,
      cr0: (s.cr0 & ~CR0_WP) | (c.wp ? CR0_WP : 0n),
      cr4: s.cr4 | (c.smep ? CR4_SMEP : 0n) | (c.smap ? CR4_SMAP : 0n),
      efer: (s.efer & ~EFER_NXE) | (c.nxe ? EFER_NXE : 0n),
    });
    const regs = this.#regsFor(c.va, c.kind, c.cpl, c.ac, LAYOUT.caseTables);
    const marker = regs.rsi;
    this.#vm.setRegs(regs);
    const r = this.#runToReport();
    const entriesAfter = c.entries.map((_, i) =>
      this.#read64(caseEntryAddress(c.va, 4 - i))
    );
    let outcome: RealOutcome;
    if (typeof r === "string") {
      outcome = { kind: "harness-error", message: r };
    } else {
      outcome = this.#decode(c, r, marker, expectedPa);
    }
    if (outcome.kind === "harness-error") this.#reset();
    const report = typeof r === "string" ? undefined : {
      vector: Number(r.r8),
      errorCode: Number(r.r9),
      cr2: r.r10,
      rip: r.r11,
      cs: Number(r.r12 & 0xffffn),
      rax: r.rax,
    };
    return { outcome, entriesAfter, entryWrites: writes.length, report };
  }

  #decode(
    c: PagingCase,
    r: KvmRegs,
    marker: bigint,
    expectedPa: number | undefined,
  ): RealOutcome {
    const vector = Number(r.r8);
    const errorCode = Number(r.r9);
    const rip = r.r11;
    const cpl = Number(r.r12 & 3n);
    if (vector === 14) return { kind: "page-fault", errorCode, cr2: r.r10 };
    if (vector === 13) return { kind: "gp", errorCode };
    if (vector === DONE_VECTOR) {
      const stub = BigInt(
        c.cpl === 3 ? LAYOUT.userAccess : LAYOUT.kernelAccess,
      );
      if (cpl !== c.cpl) {
        return {
          kind: "harness-error",
          message: `ud2 reached at CPL ${cpl}, expected CPL ${c.cpl}`,
        };
      }
      if (c.kind === "read" && rip === stub + BigInt(STUB_READ_DONE)) {
        return { kind: "ok", pa: patternAddress(r.rax) };
      }
      if (c.kind === "write" && rip === stub + BigInt(STUB_WRITE_DONE)) {
        const pa = this.#findWrite(marker, expectedPa);
        if (pa === undefined) {
          return {
            kind: "harness-error",
            message:
              "the write succeeded but its value is nowhere in data memory",
          };
        }
        return { kind: "ok", pa };
      }
      if (c.kind === "fetch" && rip === stub + BigInt(STUB_FETCH_DONE)) {
        return { kind: "ok", pa: Number(r.rax & 0xffffffffn) * 8 };
      }
    }
    return { kind: "exception", vector, errorCode, rip };
  }

  /** Where the marker landed (then restore the pattern there). */
  #findWrite(marker: bigint, hint: number | undefined): number | undefined {
    const m = this.#vm.memory;
    const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
    const restore = (pa: number) => {
      dv.setBigUint64(pa, patternAt(pa), true);
      return pa;
    };
    if (
      hint !== undefined && hint % 8 === 0 && hint >= LAYOUT.data &&
      hint + 8 <= this.memoryBytes && dv.getBigUint64(hint, true) === marker
    ) return restore(hint);
    const lo = Number(marker & 0xffffffffn), hi = Number(marker >> 32n);
    const w = new Uint32Array(m.buffer, m.byteOffset, this.memoryBytes / 4);
    for (let i = LAYOUT.data / 4; i < w.length; i += 2) {
      if (w[i] === lo && w[i + 1] === hi) return restore(i * 4);
    }
    return undefined;
  }

  #reset(): void {
    this.#vm.close();
    this.#resets++;
    this.#vm = RealCpu.#newVm(this.memoryBytes, this.#offer);
    const init = RealCpu.#initGuest(this.#vm, this.memoryBytes);
    this.#harnessRoot = init.root;
    this.#sregs = init.sregs;
  }

  /** Release the VM. */
  close(): void {
    this.#vm.close();
  }

  /** `using cpu = RealCpu.create()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}
