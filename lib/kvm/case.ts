/**
 * One differential case — a path of page-table entries, the control bits,
 * and one access — and everything done with it that needs no KVM: seeded
 * random generation, building its tables with memvirt's
 * {@linkcode PageTable}, walking it with the model, and reading the CPU
 * features that configure the model like the real CPU (from CPUID).
 *
 * A case is self-contained: its entries are the raw 64-bit values of the
 * PML4E, PDPTE, PDE and PTE on the path (root first, down to the level the
 * case was built for), placed at the slots the linear address selects in
 * fixed tables: the PML4 at `LAYOUT.caseTables`, then the PDPT, PD and PT in
 * the next three frames. PML4 slot 0 always holds the harness mapping.
 *
 * @module
 */

import { hex64, LinearAddress } from "../address/address.ts";
import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
import { X86_64_4LEVEL } from "../paging/format.ts";
import { type PagingMode, pagingMode } from "../paging/mode.ts";
import { PageTable } from "../paging/builder.ts";
import { type AccessKind, type Walk, walk } from "../paging/record.ts";
import type { EntryMemory } from "../paging/walker.ts";
import type { Random } from "../util/random.ts";
import type { CpuidEntry } from "./ffi.ts";
import { harnessImage, LAYOUT, patternWords } from "./guest.ts";

/** The CPU features that shape paging, as CPUID reports them. */
export interface CpuFeatures {
  /** CPUID.0 vendor string, e.g. "AuthenticAMD". */
  readonly vendorString: string;
  /** Vendor family for reserved-bit rules. */
  readonly vendor: "intel" | "amd";
  /** MAXPHYADDR (CPUID.80000008H:EAX[7:0]). */
  readonly maxPhyAddr: number;
  /** Linear-address width (CPUID.80000008H:EAX[15:8]). */
  readonly linearBits: number;
  /** 1 GiB pages (CPUID.80000001H:EDX[26]). */
  readonly gbPages: boolean;
  /** Execute disable (CPUID.80000001H:EDX[20]). */
  readonly nx: boolean;
  /** SMEP (CPUID.(EAX=7,ECX=0):EBX[7]). */
  readonly smep: boolean;
  /** SMAP (CPUID.(EAX=7,ECX=0):EBX[20]). */
  readonly smap: boolean;
  /** Protection keys (CPUID.(EAX=7,ECX=0):ECX[3]). */
  readonly pku: boolean;
  /** 5-level paging (CPUID.(EAX=7,ECX=0):ECX[16]). */
  readonly la57: boolean;
}

/**
 * Read the paging features from CPUID entries (as `KVM_GET_SUPPORTED_CPUID`
 * returns them, or as given to the guest).
 *
 * @example
 * ```ts
 * import { cpuidFeatures } from "./case.ts";
 * import assert from "node:assert/strict";
 * const f = cpuidFeatures([
 *   { function: 0, index: 0, flags: 0, eax: 0xd, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 },
 *   { function: 7, index: 0, flags: 1, eax: 0, ebx: (1 << 7) | (1 << 20), ecx: 0, edx: 0 },
 *   { function: 0x80000001, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 1 << 20 },
 *   { function: 0x80000008, index: 0, flags: 0, eax: 0x3030, ebx: 0, ecx: 0, edx: 0 },
 * ]);
 * assert.equal(f.vendorString, "AuthenticAMD");
 * assert.equal(f.vendor, "amd");
 * assert.equal(f.maxPhyAddr, 48);
 * assert.deepEqual([f.nx, f.gbPages, f.smep, f.smap, f.pku], [true, false, true, true, false]);
 * ```
 */
export function cpuidFeatures(entries: readonly CpuidEntry[]): CpuFeatures {
  const leaf = (fn: number, index = 0) =>
    entries.find((e) => e.function === fn && e.index === index) ??
      entries.find((e) => e.function === fn);
  const l0 = leaf(0);
  const str = (v: number) =>
    String.fromCharCode(
      v & 0xff,
      (v >>> 8) & 0xff,
      (v >>> 16) & 0xff,
      v >>> 24,
    );
  const vendorString = l0 ? str(l0.ebx) + str(l0.edx) + str(l0.ecx) : "";
  const l7 = leaf(7, 0);
  const e1 = leaf(0x80000001);
  const e8 = leaf(0x80000008);
  return {
    vendorString,
    vendor: /AMD|Hygon/i.test(vendorString) ? "amd" : "intel",
    maxPhyAddr: e8 ? e8.eax & 0xff : 36,
    linearBits: e8 ? (e8.eax >>> 8) & 0xff : 48,
    gbPages: e1 ? ((e1.edx >>> 26) & 1) === 1 : false,
    nx: e1 ? ((e1.edx >>> 20) & 1) === 1 : false,
    smep: l7 ? ((l7.ebx >>> 7) & 1) === 1 : false,
    smap: l7 ? ((l7.ebx >>> 20) & 1) === 1 : false,
    pku: l7 ? ((l7.ecx >>> 3) & 1) === 1 : false,
    la57: l7 ? ((l7.ecx >>> 16) & 1) === 1 : false,
  };
}

/**
 * The features of the machine these notes were checked on (`kvm_pvm` on an
 * AMD EPYC): what the differential test configures the model with when no
 * VM is at hand (e.g. to replay a reproducer).
 *
 * @example
 * ```ts
 * import { PVM_EPYC_FEATURES } from "./case.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PVM_EPYC_FEATURES.maxPhyAddr, 48);
 * assert.equal(PVM_EPYC_FEATURES.gbPages, false); // 1 GiB leaves fault as reserved
 * ```
 */
export const PVM_EPYC_FEATURES: CpuFeatures = Object.freeze({
  vendorString: "AuthenticAMD",
  vendor: "amd",
  maxPhyAddr: 48,
  linearBits: 48,
  gbPages: false,
  nx: true,
  smep: true,
  smap: true,
  pku: false,
  la57: false,
});

/** One differential case. */
export interface PagingCase {
  /** The linear address accessed (its bits 47:12 select the entries). */
  readonly va: bigint;
  /** Access kind. */
  readonly kind: AccessKind;
  /** Current privilege level. */
  readonly cpl: 0 | 3;
  /** EFLAGS.AC. */
  readonly ac: boolean;
  /** CR0.WP. */
  readonly wp: boolean;
  /** EFER.NXE. */
  readonly nxe: boolean;
  /** CR4.SMEP. */
  readonly smep: boolean;
  /** CR4.SMAP. */
  readonly smap: boolean;
  /** Raw entries on the path, root first: PML4E, PDPTE[, PDE[, PTE]]. */
  readonly entries: readonly bigint[];
}

/**
 * Table frame holding the level-`level` table of a case (4 = root).
 *
 * @example
 * ```ts
 * import { caseTableAddress } from "./case.ts";
 * import { LAYOUT } from "./guest.ts";
 * import assert from "node:assert/strict";
 * assert.equal(caseTableAddress(4), LAYOUT.caseTables);
 * assert.equal(caseTableAddress(1), LAYOUT.caseTables + 0x3000);
 * ```
 */
export function caseTableAddress(level: number): number {
  return LAYOUT.caseTables + 0x1000 * (4 - level);
}

/**
 * The physical address of the entry at `level` (4 = PML4E) on the path of
 * `va` in the case tables.
 *
 * @example
 * ```ts
 * import { caseEntryAddress } from "./case.ts";
 * import { LAYOUT } from "./guest.ts";
 * import assert from "node:assert/strict";
 * assert.equal(caseEntryAddress(0xffff_8080_4020_1000n, 4), LAYOUT.caseTables + 8 * 257);
 * assert.equal(caseEntryAddress(0xffff_8080_4020_1000n, 1), LAYOUT.caseTables + 0x3000 + 8 * 1);
 * ```
 */
export function caseEntryAddress(va: bigint, level: number): number {
  const idx = Number((va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
  return caseTableAddress(level) + 8 * idx;
}

/**
 * The model's paging mode for a case on a CPU with `features`: 4-level,
 * the case's control bits, and the CPU's MAXPHYADDR, 1 GiB support and
 * vendor (reserved-bit rules); no PKE, no PGE.
 *
 * @example
 * ```ts
 * import { caseMode, PVM_EPYC_FEATURES } from "./case.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x8000000000n, kind: "read", cpl: 0, ac: false, wp: false,
 *   nxe: true, smep: true, smap: false, entries: [],
 * } as const;
 * const m = caseMode(c, PVM_EPYC_FEATURES);
 * assert.deepEqual([m.wp, m.nxe, m.smep, m.smap, m.gbPages, m.vendor], [false, true, true, false, false, "amd"]);
 * assert.equal(m.maxPhyAddr, 48);
 * ```
 */
export function caseMode(c: PagingCase, features: CpuFeatures): PagingMode {
  return pagingMode(X86_64_4LEVEL, {
    wp: c.wp,
    nxe: c.nxe,
    smep: c.smep,
    smap: c.smap,
    pke: false,
    pge: false,
    maxPhyAddr: features.maxPhyAddr,
    gbPages: features.gbPages,
    vendor: features.vendor,
  });
}

/**
 * Build a case's tables with memvirt's {@linkcode PageTable}: a fresh
 * memory, the root at `LAYOUT.caseTables`, and every entry written through
 * the builder's one choke point ({@linkcode PageTable.writeEntry}). PML4
 * slot 0 links the harness (see `harnessImage`).
 *
 * @example
 * ```ts
 * import { buildCaseTables, caseEntryAddress } from "./case.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x0000_0080_0000_0008n, kind: "read", cpl: 0, ac: false,
 *   wp: true, nxe: true, smep: false, smap: false,
 *   entries: [0x31007n, 0x32007n, 0x33007n, 0x200003n],
 * } as const;
 * const pt = buildCaseTables(c);
 * assert.equal(pt.memory.read32(caseEntryAddress(c.va, 1)), 0x200003);
 * assert.equal(pt.walk(c.va).pa, 0x200008);
 * ```
 */
export function buildCaseTables(
  c: PagingCase,
  memoryBytes: number = LAYOUT.memoryBytes,
): PageTable {
  const img = harnessImage(memoryBytes);
  const memory = new PhysicalMemory({ size: memoryBytes, name: "case" });
  const pt = new PageTable(memory, {
    mode: pagingMode(X86_64_4LEVEL, { gbPages: true, nxe: true }),
    root: LAYOUT.caseTables,
    allocator: new FrameAllocator(memory, {
      start: LAYOUT.caseTables + 0x1000,
      end: LAYOUT.caseTablesEnd,
    }),
  });
  pt.writeEntry(
    4,
    LAYOUT.caseTables,
    img.linkLo,
    img.linkHi,
    LinearAddress.from(0),
  );
  const va = LinearAddress.from(c.va);
  c.entries.forEach((e, i) => {
    const level = 4 - i;
    pt.writeEntry(
      level,
      caseEntryAddress(c.va, level),
      Number(e & 0xffffffffn),
      Number(e >> 32n),
      va,
    );
  });
  return pt;
}

/**
 * The guest's memory as the model sees it for one case, exactly what the
 * real guest holds: the case tables; the harness (descriptors, code,
 * harness tables: `harnessImage`) elsewhere below `LAYOUT.data`; the data
 * pattern (see `patternAt`) from there to the end of memory; and zeros
 * beyond it (KVM's walker treats a table outside guest memory as a
 * not-present entry). A walk leaves the case tables only when a large leaf
 * loses its PS bit and its frame (plus PAT and reserved bits) is read as a
 * page table. Writes outside the case tables are errors.
 */
export class CaseMemory implements EntryMemory {
  /** The case tables. */
  readonly tables: PhysicalMemory;
  #image: Uint8Array;
  #size: number;

  /**
   * The memory of one case, whose tables are `tables` (a memory of the
   * guest's size).
   *
   * @example
   * ```ts
   * import { CaseMemory } from "./case.ts";
   * import { LAYOUT, patternAt } from "./guest.ts";
   * import { PhysicalMemory } from "../memory/memory.ts";
   * import assert from "node:assert/strict";
   * const m = new CaseMemory(new PhysicalMemory({ size: LAYOUT.memoryBytes }));
   * assert.equal(m.read32(0x400010), Number(patternAt(0x400010) & 0xffffffffn));
   * assert.equal(m.read32(LAYOUT.gdt + 0x0c), 0x00af9a00); // the harness GDT
   * assert.equal(m.read32(LAYOUT.memoryBytes + 0x1000), 0); // no memory there
   * assert.throws(() => m.write32(0x400010, 1), /outside the case tables/);
   * ```
   */
  constructor(tables: PhysicalMemory) {
    this.tables = tables;
    this.#size = tables.size;
    this.#image = harnessImage(tables.size).bytes;
  }

  #inTables(addr: number): boolean {
    return addr >= LAYOUT.caseTables && addr < LAYOUT.caseTablesEnd;
  }

  /** Read one byte. */
  read8(addr: number): number {
    if (this.#inTables(addr)) return this.tables.read8(addr);
    if (addr < LAYOUT.data) return this.#image[addr];
    if (addr >= this.#size) return 0;
    const q = addr - (addr % 8);
    const [lo, hi] = patternWords(q);
    const k = addr - q;
    return ((k < 4 ? lo >>> (8 * k) : hi >>> (8 * (k - 4))) & 0xff) >>> 0;
  }

  /** Read a little-endian 16-bit value. */
  read16(addr: number): number {
    return this.read8(addr) | (this.read8(addr + 1) << 8);
  }

  /** Read a little-endian 32-bit value. */
  read32(addr: number): number {
    if (this.#inTables(addr)) return this.tables.read32(addr);
    if (addr % 4 === 0 && addr >= LAYOUT.data && addr < this.#size) {
      const [lo, hi] = patternWords(addr - (addr % 8));
      return addr % 8 === 0 ? lo : hi;
    }
    return (this.read16(addr) | (this.read16(addr + 2) << 16)) >>> 0;
  }

  #write(addr: number): void {
    if (!this.#inTables(addr)) {
      throw new RangeError(
        `model wrote ${
          hex64(0, addr)
        }, outside the case tables: a case should only change A/D bits in its own entries`,
      );
    }
  }

  /** Write one byte (case tables only). */
  write8(addr: number, value: number): void {
    this.#write(addr);
    this.tables.write8(addr, value);
  }

  /** Write a 16-bit value (case tables only). */
  write16(addr: number, value: number): void {
    this.#write(addr);
    this.tables.write16(addr, value);
  }

  /** Write a 32-bit value (case tables only). */
  write32(addr: number, value: number): void {
    this.#write(addr);
    this.tables.write32(addr, value);
  }
}

/** The model's verdict on a case. */
export interface ModelResult {
  /** The complete walk record (A/D already applied). */
  readonly walk: Walk;
  /** The path entries after the access, root first (same slots as `entries`). */
  readonly entriesAfter: readonly bigint[];
}

/**
 * Run a case on the model: build its tables, walk them in the mode the
 * case and `features` describe, and read the path entries back.
 *
 * @example
 * ```ts
 * import { modelCase, PVM_EPYC_FEATURES } from "./case.ts";
 * import assert from "node:assert/strict";
 * const c = {
 *   va: 0x0000_0080_0000_0008n, kind: "write", cpl: 3, ac: false,
 *   wp: true, nxe: true, smep: true, smap: true,
 *   entries: [0x31007n, 0x32007n, 0x33007n, 0x200007n],
 * } as const;
 * const m = modelCase(c, PVM_EPYC_FEATURES);
 * assert.equal(m.walk.pa, 0x200008);
 * assert.deepEqual(m.entriesAfter, [0x31027n, 0x32027n, 0x33027n, 0x200067n]);
 * ```
 */
export function modelCase(
  c: PagingCase,
  features: CpuFeatures,
  memoryBytes: number = LAYOUT.memoryBytes,
): ModelResult {
  const pt = buildCaseTables(c, memoryBytes);
  const memory = new CaseMemory(pt.memory);
  const w = walk(
    { memory, mode: caseMode(c, features), root: LAYOUT.caseTables },
    c.va,
    { kind: c.kind, user: c.cpl === 3, ac: c.ac },
  );
  const entriesAfter = c.entries.map((_, i) => {
    const ea = caseEntryAddress(c.va, 4 - i);
    return (BigInt(pt.memory.read32(ea + 4)) << 32n) |
      BigInt(pt.memory.read32(ea));
  });
  return { walk: w, entriesAfter };
}

/** Options for {@linkcode randomCase}. */
export interface RandomCaseOptions {
  /** Features of the CPU the case is for (SMEP/SMAP only if present). */
  features?: CpuFeatures;
  /** Guest memory size (bounds the data frames); default `LAYOUT.memoryBytes`. */
  memoryBytes?: number;
  /** Probability of a non-canonical address; default 0.02. */
  nonCanonical?: number;
  /**
   * PML4 slots never used for CPL-3 cases. Default `[256]`: on `kvm_pvm`
   * every CPL-3 access in 0xffff800000000000–0xffff807fffffffff faults
   * whatever the tables say (the hypervisor reserves the range; the error
   * code is U plus not-present at most addresses, P|RSVD at some). CPL-0
   * accesses there follow the tables, so CPL-0 cases use the slot.
   */
  userExcludedSlots?: readonly number[];
}

const KINDS: readonly AccessKind[] = ["read", "write", "fetch"];

function setBit(e: bigint, bit: number, on: boolean): bigint {
  const m = 1n << BigInt(bit);
  return on ? e | m : e & ~m;
}

/**
 * A seeded random case: control bits, CPL, access kind, page size
 * (4 KiB / 2 MiB / 1 GiB), a path built with {@linkcode PageTable.map},
 * then random changes to every entry on it through
 * {@linkcode PageTable.writeEntry}: P, R/W, U/S, PWT, PCD, A, D, PS, G,
 * XD, ignored bits (9–11, 52–62), and reserved bits (MAXPHYADDR..51, the
 * AMD PML4E bit 8, PS where no page can be mapped, large-page frame bits
 * below the page boundary, XD without EFER.NXE).
 *
 * @example
 * ```ts
 * import { randomCase, modelCase, PVM_EPYC_FEATURES } from "./case.ts";
 * import { Random } from "../util/random.ts";
 * import assert from "node:assert/strict";
 * const a = randomCase(new Random(7)), b = randomCase(new Random(7));
 * assert.deepEqual(a, b);
 * assert.ok(a.entries.length >= 2 && a.entries.length <= 4);
 * assert.ok(["ok", "page-fault", "gp"].includes(modelCase(a, PVM_EPYC_FEATURES).walk.outcome.kind));
 * ```
 */
export function randomCase(
  rng: Random,
  options: RandomCaseOptions = {},
): PagingCase {
  const features = options.features ?? PVM_EPYC_FEATURES;
  const memoryBytes = options.memoryBytes ?? LAYOUT.memoryBytes;
  const excluded = new Set(options.userExcludedSlots ?? [256]);
  const cpl: 0 | 3 = rng.chance(0.5) ? 3 : 0;
  const kind = rng.pick(KINDS);
  const nxe = features.nx && rng.chance(0.5);
  const c0 = {
    cpl,
    kind,
    ac: rng.chance(0.5),
    wp: rng.chance(0.5),
    nxe,
    smep: features.smep && rng.chance(0.5),
    smap: features.smap && rng.chance(0.5),
  };
  const r = rng.next();
  const leafLevel = r < 0.5 ? 1 : r < 0.88 ? 2 : 3;
  const size = 2 ** (12 + 9 * (leafLevel - 1));
  let slot: number;
  do slot = 1 + rng.int(511); while (cpl === 3 && excluded.has(slot));
  let va = BigInt(slot) << 39n;
  for (let level = 3; level > leafLevel; level--) {
    va |= BigInt(rng.int(512)) << BigInt(12 + 9 * (level - 1));
  }
  if (slot >= 256) va |= 0xffff_0000_0000_0000n;
  const pageVa = LinearAddress.from(va);
  va |= BigInt(8 * rng.int(size / 8));
  let pa: number;
  if (leafLevel === 1) {
    pa = LAYOUT.data + 0x1000 * rng.int((LAYOUT.data2m - LAYOUT.data) / 0x1000);
  } else if (leafLevel === 2) {
    pa = LAYOUT.data2m +
      0x200000 * rng.int((memoryBytes - LAYOUT.data2m) / 0x200000);
  } else pa = 0;
  // Build the path with the builder (a fresh memory; the same fixed frames
  // as buildCaseTables), then change each entry through the choke point.
  const memory = new PhysicalMemory({ size: memoryBytes, name: "case" });
  const pt = new PageTable(memory, {
    mode: pagingMode(X86_64_4LEVEL, {
      gbPages: true,
      nxe,
      maxPhyAddr: features.maxPhyAddr,
    }),
    root: LAYOUT.caseTables,
    allocator: new FrameAllocator(memory, {
      start: LAYOUT.caseTables + 0x1000,
      end: LAYOUT.caseTablesEnd,
    }),
  });
  pt.map(pageVa, pa, {
    size,
    writable: rng.chance(0.6),
    user: rng.chance(0.7),
    executable: nxe ? rng.chance(0.7) : true,
    accessed: rng.chance(0.5),
    dirty: rng.chance(0.5),
    global: rng.chance(0.2),
    pwt: rng.chance(0.15),
    pcd: rng.chance(0.15),
  });
  const steps = pt.lookup(LinearAddress.from(va)).steps;
  const entries: bigint[] = [];
  for (const s of steps) {
    const level = s.level;
    const leaf = level === leafLevel;
    let e = s.entry;
    if (rng.chance(0.03)) e = setBit(e, 0, false); // P
    if (!leaf) {
      if (rng.chance(0.15)) e = setBit(e, 1, false); // R/W
      if (rng.chance(0.12)) e = setBit(e, 2, false); // U/S
      if (rng.chance(0.5)) e = setBit(e, 5, true); // A
      if (rng.chance(0.3)) e = setBit(e, 6, true); // D: ignored here
      if (rng.chance(0.04)) e = setBit(e, 8, true); // G: AMD PML4E MBZ
      if (rng.chance(nxe ? 0.12 : 0.03)) e = setBit(e, 63, true); // XD
    } else if (!nxe && rng.chance(0.03)) e = setBit(e, 63, true);
    if (rng.chance(0.15)) e = setBit(e, 3, !((e >> 3n) & 1n)); // PWT
    if (rng.chance(0.15)) e = setBit(e, 4, !((e >> 4n) & 1n)); // PCD
    // PS: on a table pointer it turns it into a (misaligned, so reserved)
    // large leaf; on a large leaf it turns the frame into a table; on a
    // PTE it is PAT.
    if (rng.chance(level === 1 ? 0.15 : 0.03)) {
      e = setBit(e, 7, !((e >> 7n) & 1n));
    }
    if (rng.chance(0.3)) e |= BigInt(rng.int(8)) << 9n; // ignored 11:9
    if (leaf && level > 1) {
      if (rng.chance(0.15)) e = setBit(e, 12, true); // PAT
      if (rng.chance(0.05)) {
        e = setBit(e, 13 + rng.int(level === 2 ? 8 : 17), true); // reserved
      }
    }
    if (rng.chance(0.03)) {
      const m = features.maxPhyAddr;
      if (m < 52) e = setBit(e, m + rng.int(52 - m), true); // above MAXPHYADDR
    }
    if (rng.chance(0.3)) e |= BigInt(rng.int(128)) << 52n; // ignored 58:52
    if (rng.chance(0.2)) e |= BigInt(rng.int(16)) << 59n; // PKEY / ignored
    pt.writeEntry(
      level,
      s.entryAddress,
      Number(e & 0xffffffffn),
      Number(e >> 32n),
      LinearAddress.from(va),
    );
    entries.push(e);
  }
  if (rng.chance(options.nonCanonical ?? 0.02)) {
    va ^= BigInt(1 + rng.int(0xffff)) << 48n;
  }
  return { ...c0, va, entries };
}

/**
 * A one-paragraph description of a case, enough to rebuild it: the control
 * bits, the access, and every entry on the path with its physical address.
 *
 * @example
 * ```ts
 * import { describeCase } from "./case.ts";
 * import assert from "node:assert/strict";
 * const t = describeCase({
 *   va: 0x8000000008n, kind: "read", cpl: 3, ac: false, wp: true,
 *   nxe: true, smep: true, smap: false, entries: [0x31007n, 0x32007n],
 * });
 * assert.match(t, /CPL 3 read of 0x8000000008/);
 * assert.match(t, /PML4E\[1\] @0x30008 = 0x31007/);
 * ```
 */
export function describeCase(c: PagingCase): string {
  const names = ["PTE", "PDE", "PDPTE", "PML4E"];
  const lines = [
    `CPL ${c.cpl} ${c.kind} of ${
      hex64(Number(c.va >> 32n), Number(c.va & 0xffffffffn))
    }` +
    ` with CR0.WP=${+c.wp} EFER.NXE=${+c.nxe} CR4.SMEP=${+c.smep} CR4.SMAP=${+c
      .smap} EFLAGS.AC=${+c.ac}`,
  ];
  c.entries.forEach((e, i) => {
    const level = 4 - i;
    const ea = caseEntryAddress(c.va, level);
    const idx = (ea - caseTableAddress(level)) / 8;
    lines.push(
      `  ${names[level - 1]}[${idx}] @0x${ea.toString(16)} = 0x${
        e.toString(16)
      }`,
    );
  });
  return lines.join("\n");
}

/**
 * A case as TypeScript source (bigints written as literals), to paste into
 * a regression test.
 *
 * @example
 * ```ts
 * import { caseSource } from "./case.ts";
 * import assert from "node:assert/strict";
 * const s = caseSource({
 *   va: 0x8000000008n, kind: "fetch", cpl: 0, ac: true, wp: false,
 *   nxe: false, smep: false, smap: true, entries: [0x31007n],
 * });
 * assert.match(s, /va: 0x8000000008n/);
 * assert.match(s, /entries: \[0x31007n\]/);
 * ```
 */
export function caseSource(c: PagingCase): string {
  const h = (v: bigint) => `0x${v.toString(16)}n`;
  return `{ va: ${
    h(c.va)
  }, kind: "${c.kind}", cpl: ${c.cpl}, ac: ${c.ac}, wp: ${c.wp}, nxe: ${c.nxe}, smep: ${c.smep}, smap: ${c.smap}, entries: [${
    c.entries.map(h).join(", ")
  }] }`;
}
