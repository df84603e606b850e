/**
 * A small guest operating system that owns its page tables: processes with
 * x86-64 4-level tables built (with the ordinary `PageTable`) in the
 * domain's guest-physical memory, VMAs with mmap / munmap / mprotect,
 * demand paging and copy-on-write through its own #PF handler, fork, exec,
 * exit, context switches — and every memory access it makes on behalf of a
 * process going through a pluggable {@linkcode MmuScheme}.
 *
 * The kernel half (PML4 slots 256–511) is built once at boot and shared by
 * every process: a direct map of guest-physical memory at
 * `0xffff888000000000` (large pages, NX, global), a small kernel heap at
 * `0xffffc90000000000` and kernel text at `0xffffffff81000000` (global).
 * A new process's PML4 copies the kernel's PML4 entries, as Linux's
 * `pgd_alloc` does.
 *
 * TLB maintenance is what a kernel does without PCIDs (Linux's
 * `flush_tlb_mm_range`): after changing or removing present PTEs of the
 * running process, INVLPG per page up to 32 pages (Linux's
 * `tlb_single_page_flush_ceiling` is 33) and a CR3 reload beyond that or
 * when page-table pages were freed; nothing for a process that is not
 * running, since the CR3 load that switches to it flushes. Installing a
 * PTE where none was present needs no flush (not-present entries are never
 * cached, SDM §4.10.2.3). Freed frames (data and tables) go back to the
 * allocator only after the flush, as with Linux's `mmu_gather`.
 *
 * Simplifications (said here once):
 * - Only private anonymous mappings, 4 KiB user pages, one vCPU, no PCIDs,
 *   no swapping, no page aging (the guest never clears A/D bits itself).
 * - A first touch allocates a zeroed frame even for a read (Linux maps the
 *   shared zero page read-only until the first write).
 * - The kernel's own memory work (zeroing a new frame, copying a
 *   copy-on-write page, writing PTEs) touches guest-physical memory
 *   directly instead of going through its direct map, so it costs no guest
 *   TLB misses; the scheme still hears of every such write (see
 *   `scheme.ts`).
 * - mprotect fails with no change when the range has a hole (Linux
 *   changes the part before the hole, then fails with ENOMEM).
 * - PROT_NONE keeps the page with P = 0 and a software bit (bit 9),
 *   like Linux's `_PAGE_PROTNONE`.
 * - fork clears A in the child's PTEs (Linux's `pte_mkold`) and keeps D.
 *
 * @module
 */

import {
  type AddressLike,
  hex64,
  hexPhys,
  LinearAddress,
} from "../../address/address.ts";
import type { Memory } from "../../memory/memory.ts";
import { encodeTable, PageTable } from "../../paging/builder.ts";
import { X86_64_4LEVEL } from "../../paging/format.ts";
import {
  type PagingMode,
  pagingMode,
  type PagingModeOptions,
} from "../../paging/mode.ts";
import { sizeName } from "../../paging/record.ts";
import {
  ACCESS_FETCH,
  ACCESS_USER,
  ACCESS_WRITE,
  PFEC_RSVD,
} from "../../paging/walker.ts";
import type { Domain } from "../domain.ts";
import { FRAME_SIZE } from "../frames.ts";
import type { GpaProblem } from "../guest_memory.ts";
import { ReferenceScheme } from "../reference.ts";
import {
  GUEST_GP,
  GUEST_OK,
  GUEST_PF,
  type GuestAccessOptions,
  GuestAccessState,
  type MmuScheme,
  parseGuestAccess,
  type PvHypercalls,
} from "../scheme.ts";
import { GuestFrameAllocator, type GuestFrameRole } from "./frames.ts";
import { PvScheme } from "../pv/scheme.ts";
import type { PvMmuextOp, PvUpdate } from "../pv/mmu.ts";
import type { Host, HypervisorKind } from "../host.ts";
import { guestOsToHtml, guestOsToText } from "../../view/virt_html.ts";

/**
 * First address above user space (Linux's `TASK_SIZE` on 4-level x86-64).
 *
 * @example
 * ```ts
 * import { USER_END } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * assert.throws(() => os.mmap({ addr: USER_END, length: 4096 }), /expected user addresses/);
 * ```
 */
export const USER_END: number = 2 ** 47 - FRAME_SIZE;
/**
 * Lowest address mmap may use (Linux's default `mmap_min_addr`).
 *
 * @example
 * ```ts
 * import { MMAP_MIN } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * assert.equal(os.mmap({ addr: MMAP_MIN, length: 4096 }), 0x10000);
 * assert.throws(() => os.mmap({ addr: MMAP_MIN - 4096, length: 4096 }), RangeError);
 * ```
 */
export const MMAP_MIN = 0x10000;
/**
 * Where mmap without an address starts looking, downwards.
 *
 * @example
 * ```ts
 * import { MMAP_TOP } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * assert.equal(os.mmap({ length: 8192 }), MMAP_TOP - 8192);
 * ```
 */
export const MMAP_TOP = 0x7f00_0000_0000;
/**
 * Start of the kernel's direct map of guest-physical memory.
 *
 * @example
 * ```ts
 * import { DIRECT_MAP } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * os.domain.memory.write32(0x5000, 99);
 * const r = os.access(DIRECT_MAP.toBigInt() + 0x5000n, { user: false });
 * assert.equal(r.value, 99);
 * ```
 */
export const DIRECT_MAP: LinearAddress = LinearAddress.from(
  "0xffff888000000000",
);
/**
 * Start of the kernel heap (the vmalloc area).
 *
 * @example
 * ```ts
 * import { KERNEL_HEAP } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * assert.equal(os.access(KERNEL_HEAP, { kind: "write", value: 1, user: false }).result, "ok");
 * assert.equal(os.access(KERNEL_HEAP).result, "segv"); // supervisor-only
 * ```
 */
export const KERNEL_HEAP: LinearAddress = LinearAddress.from(
  "0xffffc90000000000",
);
/**
 * Start of the kernel text.
 *
 * @example
 * ```ts
 * import { KERNEL_TEXT } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * assert.equal(os.access(KERNEL_TEXT.toBigInt() + 4n, { kind: "fetch", user: false, size: 1 }).value, 0x90);
 * ```
 */
export const KERNEL_TEXT: LinearAddress = LinearAddress.from(
  "0xffffffff81000000",
);

/**
 * PROT_READ.
 *
 * @example
 * ```ts
 * import { parseProt, PROT_READ } from "./os.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseProt("r"), PROT_READ);
 * ```
 */
export const PROT_READ = 1;
/**
 * PROT_WRITE.
 *
 * @example
 * ```ts
 * import { parseProt, PROT_READ, PROT_WRITE } from "./os.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseProt("rw"), PROT_READ | PROT_WRITE);
 * ```
 */
export const PROT_WRITE = 2;
/**
 * PROT_EXEC.
 *
 * @example
 * ```ts
 * import { parseProt, PROT_EXEC, PROT_READ } from "./os.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseProt("r-x"), PROT_READ | PROT_EXEC);
 * ```
 */
export const PROT_EXEC = 4;

/**
 * Protection as letters ("r", "rw", "rx", "rwx", "none", …) or PROT_* bits.
 *
 * @example
 * ```ts
 * import { parseProt, type ProtLike } from "./os.ts";
 * import assert from "node:assert/strict";
 * const ps: ProtLike[] = ["rw", "none", 5];
 * assert.deepEqual(ps.map(parseProt), [3, 0, 5]);
 * ```
 */
export type ProtLike = string | number;

const PTE_P = 1, PTE_RW = 2, PTE_US = 4, PTE_A = 0x20, PTE_D = 0x40;
const PTE_PS = 0x80;
/** Software bit marking a PROT_NONE PTE (P = 0): bit 9, ignored by the MMU. */
const PTE_PROTNONE = 0x200;
const NX_HI = 0x80000000;
const TWO32 = 4294967296;
/** Linux's multicall buffer size (`MC_BATCH`, arch/x86/xen/multicalls.h). */
const MC_BATCH = 32;
/** One entry of the PV kernel's multicall buffer (mutable while queued). */
type McEntry =
  | { op: "mmu_update"; requests: PvUpdate[] }
  | { op: "mmuext_op"; ops: PvMmuextOp[] };
const LEVEL_SHIFT = [0, 12, 21, 30, 39];

/**
 * Parse a protection: letters from "rwx" (any order; "-" ignored), "none",
 * or a number of PROT_* bits.
 *
 * @example
 * ```ts
 * import { parseProt, PROT_READ, PROT_WRITE, protText } from "./os.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseProt("rw"), PROT_READ | PROT_WRITE);
 * assert.equal(parseProt("none"), 0);
 * assert.equal(protText(parseProt("r-x")), "r-x");
 * assert.throws(() => parseProt("rq"), /"rq"/);
 * ```
 */
export function parseProt(prot: ProtLike): number {
  if (typeof prot === "number") {
    if (!Number.isInteger(prot) || prot < 0 || prot > 7) {
      throw new RangeError(
        `protection ${String(prot)} is invalid: expected PROT_* bits (0..7)`,
      );
    }
    return prot;
  }
  if (typeof prot !== "string") {
    throw new TypeError(
      `protection ${
        String(prot)
      } has type ${typeof prot}: expected a string like "rw" or PROT_* bits`,
    );
  }
  if (prot === "none" || prot === "") return 0;
  let p = 0;
  for (const c of prot) {
    if (c === "r") p |= PROT_READ;
    else if (c === "w") p |= PROT_WRITE;
    else if (c === "x") p |= PROT_EXEC;
    else if (c !== "-") {
      throw new RangeError(
        `protection "${prot}" is invalid: expected letters from "rwx" or "none"`,
      );
    }
  }
  return p;
}

/**
 * PROT_* bits as "rwx" letters with dashes.
 *
 * @example
 * ```ts
 * import { protText } from "./os.ts";
 * import assert from "node:assert/strict";
 * assert.equal(protText(3), "rw-");
 * ```
 */
export function protText(prot: number): string {
  return (prot & PROT_READ ? "r" : "-") + (prot & PROT_WRITE ? "w" : "-") +
    (prot & PROT_EXEC ? "x" : "-");
}

/**
 * A virtual memory area: `[start, end)` of user space with one protection.
 *
 * @example
 * ```ts
 * import type { Vma } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * os.mmap({ addr: 0x400000, length: 8192, prot: "rx", label: "text" });
 * const v: Vma = p.vmas[0];
 * assert.deepEqual(v, { start: 0x400000, end: 0x402000, prot: 5, label: "text" });
 * ```
 */
export interface Vma {
  /** First address (page aligned). */
  readonly start: number;
  /** End (exclusive, page aligned). */
  readonly end: number;
  /** PROT_* bits. */
  readonly prot: number;
  /** Label shown in displays. */
  readonly label: string;
}

/**
 * What the guest's #PF handler did.
 *
 * @example
 * ```ts
 * import type { FaultResolution } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * const a = os.mmap({ length: 4096 });
 * const seen: FaultResolution[] = [a, 0x20000].flatMap((va) => os.access(va).faults.map((f) => f.resolution));
 * assert.deepEqual(seen, ["demand-zero", "segv"]);
 * ```
 */
export type FaultResolution =
  | "demand-zero"
  | "cow-copy"
  | "cow-reuse"
  | "fixup"
  | "spurious"
  | "segv"
  | "efault"
  | "oops"
  | "oom";

/**
 * One #PF delivered to the guest and what its handler did.
 *
 * @example
 * ```ts
 * import type { FaultRecord } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * const a = os.mmap({ length: 4096 });
 * const [f]: readonly FaultRecord[] = os.access(a + 4, { kind: "write", value: 1 }).faults;
 * assert.deepEqual(f, { cr2: "0x" + (a + 4).toString(16), errorCode: 0b110, resolution: "demand-zero" });
 * ```
 */
export interface FaultRecord {
  /** CR2 as delivered (hex). */
  readonly cr2: string;
  /** The error code as delivered. */
  readonly errorCode: number;
  /** What the handler did. */
  readonly resolution: FaultResolution;
}

/**
 * How a process's access ended.
 *
 * @example
 * ```ts
 * import type { AccessResultKind } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * const kinds: AccessResultKind[] = [0x20000, "0x0000800000000000"].map((va) => os.access(va).result);
 * assert.deepEqual(kinds, ["segv", "gp"]);
 * ```
 */
export type AccessResultKind =
  | "ok"
  | "segv"
  | "efault"
  | "oops"
  | "oom"
  | "gp"
  | "unbacked";

/**
 * The guest-visible result of an access: plain data, equal across correct
 * schemes (no machine addresses: those differ under KVM, whose pages are
 * faulted in as the scheme touches them).
 *
 * @example
 * ```ts
 * import type { AccessReport } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * const a = os.mmap({ length: 4096, prot: "r" });
 * const r: AccessReport = os.access(a, { kind: "write", value: 1 });
 * assert.equal(r.result, "segv");
 * assert.equal(r.errorCode, 0b110);   // not present, write, user: the VMA forbids it
 * assert.equal(r.faults.length, 1);
 * ```
 */
export interface AccessReport {
  /** ok, or how it failed: SIGSEGV (user), -EFAULT (kernel access to a bad user address), oops (bad kernel address), out of memory, #GP, or no memory behind the gpa. */
  readonly result: AccessResultKind;
  /** Value read (or written) when ok. */
  readonly value?: number;
  /** Guest-physical address when ok or unbacked. */
  readonly gpa?: number;
  /** Error code of the fatal #PF. */
  readonly errorCode?: number;
  /** Why there is no memory (unbacked). */
  readonly problem?: GpaProblem;
  /** The #PFs delivered to the guest on the way, in order. */
  readonly faults: readonly FaultRecord[];
}

/**
 * Per-process statistics.
 *
 * @example
 * ```ts
 * import type { ProcessStats } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * os.access(os.mmap({ length: 4096 }));
 * const s: ProcessStats = p.stats;
 * assert.deepEqual(s, { faults: 1, demandZero: 1, cowCopies: 0 });
 * ```
 */
export interface ProcessStats {
  /** #PFs delivered while it ran. */
  readonly faults: number;
  /** Demand-zero pages. */
  readonly demandZero: number;
  /** Copy-on-write copies. */
  readonly cowCopies: number;
}

/**
 * A process: pid, VMAs and a page table in guest-physical memory. Created
 * by {@linkcode GuestOs.spawn} and {@linkcode GuestOs.fork}.
 *
 * @example
 * ```ts
 * import { Process } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p: Process = os.spawn("init");
 * assert.ok(p instanceof Process);
 * assert.equal(p.pageTable.memory, os.frames.memory); // built in guest-physical memory
 * assert.match(String(p), /pid 1 "init": 0 VMA/);
 * ```
 */
export class Process {
  /** Process id. */
  readonly pid: number;
  /** Name. */
  readonly name: string;
  /** Parent pid (0 for none). */
  readonly parent: number;
  /** Its page table (in guest-physical memory). */
  readonly pageTable: PageTable<Memory, GuestFrameAllocator>;
  /** @internal VMAs, sorted (mutated by the OS). */
  vmaList: Vma[] = [];
  /** @internal counters. */
  stat = { faults: 0, demandZero: 0, cowCopies: 0 };

  /** Made by the OS. */
  constructor(
    pid: number,
    name: string,
    parent: number,
    pageTable: PageTable<Memory, GuestFrameAllocator>,
  ) {
    this.pid = pid;
    this.name = name;
    this.parent = parent;
    this.pageTable = pageTable;
  }

  /** Root table gpa (what CR3 holds while it runs). */
  get root(): number {
    return this.pageTable.root;
  }

  /** The VMAs in address order. */
  get vmas(): readonly Vma[] {
    return [...this.vmaList];
  }

  /** Statistics. */
  get stats(): ProcessStats {
    return { ...this.stat };
  }

  /** The VMA containing `va`, if any. */
  vmaAt(va: number): Vma | undefined {
    return this.vmaList.find((v) => v.start <= va && va < v.end);
  }

  /** One-line summary. */
  toString(): string {
    return `pid ${this.pid} "${this.name}": ${this.vmaList.length} VMA(s), root ${
      hexPhys(this.root)
    }`;
  }
}

/**
 * Options for {@linkcode GuestOs}.
 *
 * @example
 * ```ts
 * import type { GuestOsOptions } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import { ReferenceScheme } from "../reference.ts";
 * import assert from "node:assert/strict";
 * const options: GuestOsOptions = { scheme: new ReferenceScheme({ eventLog: 0 }), mode: { smap: true }, kernelHeapPages: 2 };
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }), options);
 * assert.equal(os.mode.smap, true);
 * assert.equal(os.frames.countByRole().kernel, 4);
 * ```
 */
export interface GuestOsOptions {
  /** The MMU scheme (default a new {@linkcode ReferenceScheme}). It is attached to the domain now. */
  scheme?: MmuScheme;
  /** Paging mode bits of the guest (4-level; default CR0.WP = 1, EFER.NXE = 1, no SMEP/SMAP). */
  mode?: PagingModeOptions;
  /** Kernel heap pages (default 8). */
  kernelHeapPages?: number;
  /** Kernel text pages (default 2). */
  kernelTextPages?: number;
  /** Pages changed above which a full flush replaces INVLPGs (default 32). */
  flushCeiling?: number;
  /** Name shown in displays (default the domain's name). */
  name?: string;
  /**
   * The kernel's paging: "hvm" (it writes its own tables, in
   * guest-physical terms) or "pv" (Xen PV direct paging: its tables hold
   * machine frames, written by hypercall; needs a {@linkcode PvScheme},
   * or a `TlbFront` around one, and a Xen domain; the default scheme is
   * then a new `PvScheme`). Default: "pv" when `scheme` is paravirtual
   * (has `paravirt` hypercalls), else "hvm".
   *
   * The PV kernel follows PV Linux (`arch/x86/xen/mmu_pv.c`): a new
   * address space (spawn, a fork's child) is built **unpinned**: its
   * tables are ordinary writable memory to Xen, upper entries are plain
   * stores and PTEs go by `mmu_update` (plain writes for Xen). When it is
   * complete the whole tree is **pinned** at once (`xen_pgd_pin`, from
   * `xen_dup_mmap` / `xen_activate_mm`, `xen_enter_mmap` in newer
   * kernels): one multicall that makes every table frame read-only in the
   * direct map (top level last), pins each L1 (split PTE locks) and then
   * pins the L4, which validates the tree. A table added to a pinned tree
   * is made read-only (and an L1 pinned) in one batch (`xen_alloc_ptpage`)
   * before the upper entry that links it is written by `mmu_update`; a
   * table freed from a pinned tree is unpinned and made writable again
   * (`xen_release_ptpage`). At exit the tree is unpinned as a whole in one
   * multicall (`xen_pgd_unpin` from `xen_exit_mmap`), after which the
   * teardown is plain memory writes. Batches follow Linux's multicall
   * buffer: up to 32 entries (`MC_BATCH`), a batch of one entry issued as
   * that hypercall directly; `update_va_mapping` of a direct-map PTE is
   * modelled as a one-request `mmu_update` entry of its own.
   * Simplified: exec keeps the process's L4 (Linux builds a new mm): it
   * switches CR3 to the kernel's table and unpins the tree in one
   * multicall, tears it down with plain writes, pins the emptied L4
   * (one multicall) and loads it (`NEW_BASEPTR`), three entries into Xen
   * as for Linux's pin-new, load, unpin-old.
   */
  kernel?: "hvm" | "pv";
}

/**
 * Options for {@linkcode GuestOs.mmap}.
 *
 * @example
 * ```ts
 * import type { MmapOptions } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn();
 * const o: MmapOptions = { pid: p.pid, addr: 0x600000, length: 5000, prot: "rw", label: "heap" };
 * assert.equal(os.mmap(o), 0x600000);
 * assert.equal(p.vmas[0].end, 0x602000); // rounded up to pages
 * ```
 */
export interface MmapOptions {
  /** Length in bytes (rounded up to pages). */
  length: number;
  /** Protection (default "rw"). */
  prot?: ProtLike;
  /** Address: with it, MAP_FIXED (replacing what was there); without, the OS picks. */
  addr?: number;
  /** Process (default the running one). */
  pid?: number;
  /** Label shown in displays (default "anon"). */
  label?: string;
}

/**
 * Counters of a {@linkcode GuestOs}.
 *
 * @example
 * ```ts
 * import type { GuestOsCounters } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * os.access(os.mmap({ length: 4096 }));
 * const c: GuestOsCounters = os.counters;
 * assert.equal(c.pageFaults, 1);
 * assert.equal(c.resolutions["demand-zero"], 1);
 * assert.deepEqual(c.syscalls, { mmap: 1, spawn: 1 });
 * ```
 */
export interface GuestOsCounters {
  /** #PFs delivered to the guest. */
  readonly pageFaults: number;
  /** Resolutions of the #PF handler. */
  readonly resolutions: Readonly<Record<FaultResolution, number>>;
  /** INVLPGs issued. */
  readonly invlpgs: number;
  /** CR3 loads (switches and full flushes). */
  readonly cr3Loads: number;
  /** Context switches. */
  readonly switches: number;
  /** Page-table pages freed. */
  readonly tablesFreed: number;
  /** System calls by name. */
  readonly syscalls: Readonly<Record<string, number>>;
}

/**
 * One process in a {@linkcode GuestOsSnapshot}.
 *
 * @example
 * ```ts
 * import type { ProcessSummary } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * os.access(os.mmap({ length: 8192 }));
 * const s: ProcessSummary = os.snapshot().processes[0];
 * assert.equal(s.current, true);
 * assert.equal(s.vmas[0].resident, 1);
 * assert.equal(s.tables, 4); // PML4, PDPT, PD, PT
 * ```
 */
export interface ProcessSummary {
  /** Pid. */
  readonly pid: number;
  /** Name. */
  readonly name: string;
  /** Parent pid. */
  readonly parent: number;
  /** Whether it is running. */
  readonly current: boolean;
  /** Root table gpa. */
  readonly root: number;
  /** VMAs with their resident pages. */
  readonly vmas: readonly (Vma & { readonly resident: number })[];
  /** Page-table pages of its user half (the root included). */
  readonly tables: number;
  /** Statistics. */
  readonly stats: ProcessStats;
}

/**
 * Plain-data picture of a guest OS for the views.
 *
 * @example
 * ```ts
 * import type { GuestOsSnapshot } from "./os.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const s: GuestOsSnapshot = os.snapshot();
 * assert.equal(s.current, undefined);
 * assert.equal(s.frames.total, 256);
 * assert.equal(s.scheme, "reference");
 * ```
 */
export interface GuestOsSnapshot {
  /** Name. */
  readonly name: string;
  /** Domain name. */
  readonly domain: string;
  /** Scheme name. */
  readonly scheme: string;
  /** Running pid, if any. */
  readonly current: number | undefined;
  /** Guest frames. */
  readonly frames: {
    readonly total: number;
    readonly free: number;
  } & Readonly<Record<GuestFrameRole, number>>;
  /** Gfns given to the balloon. */
  readonly ballooned: number;
  /** Processes. */
  readonly processes: readonly ProcessSummary[];
  /** Counters. */
  readonly counters: GuestOsCounters;
}

/**
 * How a PV kernel reads its page tables: guest-physical addresses, raw
 * bytes, except that once `translating`, a present 8-byte entry's frame
 * field is turned from an mfn back into a pfn through the M2P (PV Linux's
 * `pte_val` → `mfn_to_pfn`). Not-present entries are left alone, as in
 * Linux (PROT_NONE entries keep their pfn). Writes are raw: only the
 * domain builder writes through it, before the tables are pinned.
 */
class PvTableView implements Memory {
  readonly size: number;
  readonly name: string;
  translating = false;
  #raw: Memory;
  #host: Host<HypervisorKind>;
  #frames: number;
  constructor(raw: Memory, host: Host<HypervisorKind>) {
    this.#raw = raw;
    this.#host = host;
    this.size = raw.size;
    this.name = `${raw.name} (PV page-table view)`;
    this.#frames = Math.floor(host.memory.size / FRAME_SIZE);
  }
  read8(a: number): number {
    return this.#raw.read8(a);
  }
  read16(a: number): number {
    return this.#raw.read16(a);
  }
  read32(a: number): number {
    const raw = this.#raw;
    if (!this.translating || a % 4 !== 0) return raw.read32(a);
    const e = a - (a % 8);
    let lo = raw.read32(e), hi = raw.read32(e + 4);
    if ((lo & PTE_P) !== 0) {
      const mfn = (hi & 0xfffff) * 1048576 + (lo >>> 12);
      const gfn = mfn < this.#frames ? this.#host.m2p(mfn) : undefined;
      if (gfn !== undefined) {
        lo = ((lo & 0xfff) | ((gfn * FRAME_SIZE) >>> 0)) >>> 0;
        hi = ((hi & ~0xfffff) | Math.floor(gfn / 1048576)) >>> 0;
      }
    }
    return a === e ? lo : hi;
  }
  write8(a: number, v: number): void {
    this.#raw.write8(a, v);
  }
  write16(a: number, v: number): void {
    this.#raw.write16(a, v);
  }
  write32(a: number, v: number): void {
    this.#raw.write32(a, v);
  }
  readBytes(a: number, n: number): Uint8Array {
    return this.#raw.readBytes(a, n);
  }
  writeBytes(a: number, d: Uint8Array): void {
    this.#raw.writeBytes(a, d);
  }
  zero(a: number, n: number): void {
    this.#raw.zero(a, n);
  }
}

function splitGpa(gpa: number): [number, number] {
  return [gpa >>> 0, Math.floor(gpa / TWO32)];
}

function entryAddr(lo: number, hi: number): number {
  return (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
}

function vaOf(va: number): LinearAddress {
  return new LinearAddress(Math.floor(va / TWO32), va >>> 0);
}

function pageAlignCheck(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v % FRAME_SIZE !== 0) {
    throw new RangeError(
      `${what} ${String(v)} is invalid: expected a page-aligned address`,
    );
  }
}

/**
 * The guest OS (see the module notes).
 *
 * @example Demand paging, copy-on-write after fork, and a SIGSEGV.
 * ```ts
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 64 * 2 ** 20 });
 * const os = new GuestOs(host.createDomain({ memory: 4 * 2 ** 20 }));
 * const p = os.spawn("init");
 * os.switchTo(p.pid);
 * const a = os.mmap({ length: 8192, prot: "rw" });
 * const w = os.access(a, { kind: "write", value: 1234 });
 * assert.equal(w.result, "ok");
 * assert.deepEqual(w.faults.map((f) => f.resolution), ["demand-zero"]);
 * const child = os.fork();
 * os.switchTo(child.pid);
 * assert.equal(os.access(a).value, 1234);                   // shared, read-only
 * const c = os.access(a, { kind: "write", value: 5 });      // the child's copy
 * assert.deepEqual(c.faults.map((f) => f.resolution), ["cow-copy"]);
 * os.switchTo(p.pid);
 * assert.equal(os.access(a).value, 1234);                   // the parent still sees its value
 * assert.equal(os.access(0x1000).result, "segv");           // nothing mapped there
 * ```
 */
export class GuestOs {
  /** The domain it runs in. */
  readonly domain: Domain;
  /** The MMU scheme its accesses go through. */
  readonly scheme: MmuScheme;
  /** The guest's paging mode. */
  readonly mode: PagingMode;
  /** The guest frame allocator. */
  readonly frames: GuestFrameAllocator;
  /** The kernel's own page table (Linux's `swapper_pg_dir`): the kernel half, shared by every process. */
  readonly kernelTable: PageTable<Memory, GuestFrameAllocator>;
  /** Name. */
  readonly name: string;
  /** Kernel heap pages. */
  readonly kernelHeapPages: number;
  /** Kernel text pages. */
  readonly kernelTextPages: number;
  #procs = new Map<number, Process>();
  #current: Process | undefined = undefined;
  #nextPid = 1;
  #state = new GuestAccessState();
  #ballooned: number[] = [];
  #ceiling: number;
  #c = {
    pageFaults: 0,
    invlpgs: 0,
    cr3Loads: 0,
    switches: 0,
    tablesFreed: 0,
  };
  #res: Record<FaultResolution, number> = {
    "demand-zero": 0,
    "cow-copy": 0,
    "cow-reuse": 0,
    "fixup": 0,
    "spurious": 0,
    "segv": 0,
    "efault": 0,
    "oops": 0,
    "oom": 0,
  };
  #sys = new Map<string, number>();
  #pv: PvHypercalls | undefined = undefined;
  #pvView: PvTableView | undefined = undefined;
  #batch: PvUpdate[] | undefined = undefined;
  /** Table frames (gpa → level) that are pinned in Linux's sense (`PagePinned`): read-only, page tables in Xen's eyes. */
  #pvPinned = new Map<number, number>();
  /** Linux's multicall buffer. */
  #mc: McEntry[] = [];
  /** A whole-address-space teardown of an unpinned tree (Linux's fullmm): plain stores. */
  #fullmm = false;

  /**
   * Boot a guest OS in `domain`: attach the scheme, build the kernel half
   * of the address space, load CR3 with the kernel's table.
   */
  constructor(domain: Domain, options: GuestOsOptions = {}) {
    if (domain === null || typeof domain !== "object" || !domain.memory) {
      throw new TypeError(
        `domain ${
          String(domain)
        } is invalid: expected a Domain from Host.createDomain`,
      );
    }
    const heap = options.kernelHeapPages ?? 8;
    const text = options.kernelTextPages ?? 2;
    for (
      const [what, v] of [["kernelHeapPages", heap], [
        "kernelTextPages",
        text,
      ]] as const
    ) {
      if (!Number.isInteger(v) || v < 1 || v > 512) {
        throw new RangeError(
          `${what} ${String(v)} is invalid: expected an integer in [1, 512]`,
        );
      }
    }
    const ceiling = options.flushCeiling ?? 32;
    if (!Number.isInteger(ceiling) || ceiling < 0) {
      throw new RangeError(
        `flushCeiling ${
          String(ceiling)
        } is invalid: expected a non-negative integer`,
      );
    }
    this.domain = domain;
    this.name = options.name ?? domain.name;
    this.kernelHeapPages = heap;
    this.kernelTextPages = text;
    this.#ceiling = ceiling;
    this.mode = pagingMode(X86_64_4LEVEL, options.mode ?? {});
    // a paravirtual scheme (a PvScheme, or a TLB around one) runs a PV kernel
    const kernel = options.kernel ??
      (options.scheme?.paravirt !== undefined ? "pv" : "hvm");
    if (kernel !== "hvm" && kernel !== "pv") {
      throw new RangeError(
        `kernel "${String(kernel)}" is invalid: expected "hvm" or "pv"`,
      );
    }
    if (kernel === "pv") {
      const sch = options.scheme ?? new PvScheme();
      const hc = sch.paravirt;
      if (hc === undefined) {
        throw new TypeError(
          `scheme "${sch.name}" cannot run a PV kernel: expected a PvScheme (or a TlbFront around one)`,
        );
      }
      if (domain.backing !== "xen") {
        throw new RangeError(
          `domain "${domain.name}" is a ${domain.backing} domain: a PV kernel needs a Xen domain`,
        );
      }
      this.#pv = hc;
      this.scheme = sch;
    } else this.scheme = options.scheme ?? new ReferenceScheme();
    const scheme = this.scheme;
    scheme.attach({
      host: domain.host,
      domain,
      memory: domain.memory,
      mode: this.mode,
    });
    domain.memory.setWriteWatcher((gpa, n) => scheme.frameWritten(gpa, n));
    if (this.#pv !== undefined) {
      this.#pvView = new PvTableView(domain.memory.unwatched, domain.host);
    }
    this.frames = new GuestFrameAllocator(
      domain.memory,
      domain.backedRanges(),
      (gpa) => scheme.tableFrameAllocated?.(gpa),
      this.#pvView,
    );
    this.kernelTable = this.#newTable();
    this.#bootKernel();
    if (this.#pv !== undefined) this.#pvDomainBuilder();
    this.#loadCr3(this.kernelTable.root);
  }

  /** Whether the kernel is a Xen PV kernel (`kernel: "pv"`). */
  get paravirtual(): boolean {
    return this.#pv !== undefined;
  }

  // ---- PV kernel (Xen direct paging) ----------------------------------------

  /** Machine address of guest-physical `gpa` (`virt_to_machine`). */
  #ma(gpa: number): number {
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const mfn = this.domain.lookup(gfn);
    if (mfn === undefined) {
      throw new RangeError(`gpa ${hexPhys(gpa)} has no machine frame`);
    }
    return mfn * FRAME_SIZE + (gpa - gfn * FRAME_SIZE);
  }

  /** `pfn_pte`: a present entry's pfn becomes the mfn through the P2M. */
  #toMachine(lo: number, hi: number): [number, number] {
    if ((lo & PTE_P) === 0) return [lo >>> 0, hi >>> 0];
    const ma = this.#ma(entryAddr(lo, hi));
    return [
      ((lo & 0xfff) | (ma >>> 0)) >>> 0,
      ((hi & ~0xfffff) | Math.floor(ma / TWO32)) >>> 0,
    ];
  }

  #pvUpdates(reqs: PvUpdate[]): void {
    const r = this.#pv!.mmuUpdate(reqs);
    if (!r.ok) {
      throw new Error(`internal: Xen refused the PV kernel's update:\n${r}`);
    }
  }

  #pvExt(ops: PvMmuextOp[]): void {
    const r = this.#pv!.mmuextOp(ops);
    if (!r.ok) {
      throw new Error(`internal: Xen refused the PV kernel's mmuext_op:\n${r}`);
    }
  }

  /** Issue the queued PTE updates as one mmu_update (lazy MMU mode ends). */
  #pvFlushBatch(): void {
    const b = this.#batch;
    if (b === undefined || b.length === 0) return;
    this.#batch = [];
    this.#pvUpdates(b);
  }

  /** Run `fn` with PTE updates queued and issued in batches (Linux's lazy MMU mode). */
  #batched<T>(fn: () => T): T {
    if (this.#pv === undefined || this.#batch !== undefined) return fn();
    this.#batch = [];
    try {
      return fn();
    } finally {
      try {
        this.#pvFlushBatch();
      } finally {
        this.#batch = undefined;
      }
    }
  }

  /**
   * The one place the kernel writes an entry: HVM through the page table's
   * choke point; PV by `mmu_update` (PTEs queued while batching, upper
   * levels at once, after what is queued).
   */
  #setEntry(
    pt: PageTable<Memory, GuestFrameAllocator>,
    level: number,
    ea: number,
    lo: number,
    hi: number,
    va: LinearAddress,
  ): void {
    if (this.#pv === undefined) {
      pt.writeEntry(level, ea, lo, hi, va);
      return;
    }
    const [mlo, mhi] = this.#toMachine(lo, hi);
    if (
      !this.#pvPinned.has(ea - (ea % FRAME_SIZE)) &&
      (level > 1 || this.#fullmm)
    ) {
      // not (yet) a page table in Xen's eyes: a plain store (native_set_pmd)
      const raw = this.domain.memory.unwatched;
      raw.write32(ea, mlo);
      raw.write32(ea + 4, mhi);
      return;
    }
    const req = { ptr: this.#ma(ea), lo: mlo, hi: mhi };
    if (this.#batch !== undefined && level === 1) {
      this.#batch.push(req);
      return;
    }
    this.#pvFlushBatch();
    this.#pvUpdates([req]);
  }

  /** The gpa of the direct map's PTE for the frame at `gpa`. */
  #directPte(gpa: number): number {
    const va = DIRECT_MAP.toBigInt() + BigInt(gpa);
    const m = this.frames.memory;
    let t = this.kernelTable.root;
    for (let level = 4; level >= 2; level--) {
      const idx = Number((va >> BigInt(LEVEL_SHIFT[level])) & 511n);
      const ea = t + 8 * idx;
      const lo = m.read32(ea), hi = m.read32(ea + 4);
      if ((lo & PTE_P) === 0 || (lo & PTE_PS) !== 0) {
        throw new Error(`internal: no direct-map PTE for ${hexPhys(gpa)}`);
      }
      t = entryAddr(lo, hi);
    }
    return t + 8 * Number((va >> 12n) & 511n);
  }

  /** The request that makes the direct map's PTE for `gpa` read-only or writable (`__set_pfn_prot`). */
  #directPteReq(gpa: number, writable: boolean): PvUpdate {
    const slot = this.#directPte(gpa);
    const m = this.frames.memory;
    const lo = m.read32(slot), hi = m.read32(slot + 4);
    return {
      ptr: this.#ma(slot),
      ...this.#machinePair(
        (writable ? lo | PTE_RW : lo & ~PTE_RW) >>> 0,
        hi,
      ),
    };
  }

  #machinePair(lo: number, hi: number): { lo: number; hi: number } {
    const [a, b] = this.#toMachine(lo, hi);
    return { lo: a, hi: b };
  }

  #mfnOf(gpa: number): number {
    return this.#ma(gpa) / FRAME_SIZE;
  }

  /** A new multicall entry (`__xen_mc_entry`); a full buffer is issued first. */
  #mcEntry(e: McEntry): void {
    if (this.#mc.length === MC_BATCH) this.#mcIssue();
    this.#mc.push(e);
  }

  /** `MULTI_update_va_mapping` of a direct-map PTE, as an `mmu_update` entry of its own. */
  #mcDirectMap(gpa: number, writable: boolean): void {
    this.#mcEntry({
      op: "mmu_update",
      requests: [this.#directPteReq(gpa, writable)],
    });
  }

  /** `xen_extend_mmuext_op`: join the last entry if it is an mmuext_op. */
  #mcExt(op: PvMmuextOp): void {
    const last = this.#mc[this.#mc.length - 1];
    if (last !== undefined && last.op === "mmuext_op") last.ops.push(op);
    else this.#mcEntry({ op: "mmuext_op", ops: [op] });
  }

  /** `xen_mc_flush`: nothing, the one call directly, or one multicall. */
  #mcIssue(): void {
    const mc = this.#mc;
    if (mc.length === 0) return;
    this.#mc = [];
    if (mc.length === 1) {
      const e = mc[0];
      if (e.op === "mmu_update") this.#pvUpdates(e.requests);
      else this.#pvExt(e.ops);
      return;
    }
    const r = this.#pv!.multicall(mc);
    if (!r.ok) {
      throw new Error(
        `internal: Xen refused part of the PV kernel's multicall:\n${r}`,
      );
    }
  }

  /**
   * A table added to a pinned tree (Linux's `xen_alloc_ptpage`): its
   * direct-map PTE made read-only and, for an L1, the table pinned, in one
   * batch. Nothing for a tree that is not pinned yet.
   */
  #pvMakeTable(p: Process, gpa: number, level: number): void {
    if (!this.#pvPinned.has(p.root)) return;
    this.#pvFlushBatch();
    this.#pvPinned.set(gpa, level);
    this.#mcDirectMap(gpa, false);
    if (level === 1) this.#mcExt({ cmd: "pin-l1", mfn: this.#mfnOf(gpa) });
    this.#mcIssue();
  }

  /** The inverse (Linux's `xen_release_ptpage`): unpin an L1, direct map writable again; nothing if not pinned. */
  #pvReleaseTable(gpa: number): void {
    const level = this.#pvPinned.get(gpa);
    if (level === undefined) return;
    this.#pvPinned.delete(gpa);
    if (level === 1) this.#mcExt({ cmd: "unpin", mfn: this.#mfnOf(gpa) });
    this.#mcDirectMap(gpa, true);
    this.#mcIssue();
  }

  /** The tables of `root`'s user half in Linux's walk order (`__xen_pgd_walk`: each L3, its L2s, their L1s; the L4 last). */
  #pvTree(root: number): { t: number; level: number }[] {
    const m = this.frames.memory;
    const out: { t: number; level: number }[] = [];
    const visit = (t: number, level: number) => {
      out.push({ t, level });
      if (level === 1) return;
      for (let i = 0; i < 512; i++) {
        const lo = m.read32(t + 8 * i);
        if ((lo & PTE_P) === 0 || (lo & PTE_PS) !== 0) continue;
        visit(entryAddr(lo, m.read32(t + 8 * i + 4)), level - 1);
      }
    };
    for (let i = 0; i < 256; i++) {
      const lo = m.read32(root + 8 * i);
      if ((lo & PTE_P) === 0) continue;
      visit(entryAddr(lo, m.read32(root + 8 * i + 4)), 3);
    }
    out.push({ t: root, level: 4 });
    return out;
  }

  /**
   * Pin `p`'s whole tree (Linux's `xen_pgd_pin`): every table read-only in
   * the direct map (the L4 last), each L1 pinned after it, then
   * `PIN_L4_TABLE`, which validates the tree; one batch.
   */
  #pvPin(p: Process): void {
    this.#pvFlushBatch();
    for (const { t, level } of this.#pvTree(p.root)) {
      this.#pvPinned.set(t, level);
      this.#mcDirectMap(t, false);
      if (level === 1) this.#mcExt({ cmd: "pin-l1", mfn: this.#mfnOf(t) });
    }
    this.#mcExt({ cmd: "pin-l4", mfn: this.#mfnOf(p.root) });
    this.#mcIssue();
  }

  /**
   * Unpin `p`'s whole tree (Linux's `xen_pgd_unpin`): `UNPIN` the L4
   * (devalidating the tree), then every table writable again, each L1
   * unpinned first; one batch. With `leaveCr3`, CR3 is first moved to the
   * kernel's table in the same batch.
   */
  #pvUnpin(p: Process, leaveCr3: boolean): void {
    if (!this.#pvPinned.has(p.root)) return;
    this.#pvFlushBatch();
    if (leaveCr3) {
      this.#mcExt({
        cmd: "new-baseptr",
        mfn: this.#mfnOf(this.kernelTable.root),
      });
    }
    this.#mcExt({ cmd: "unpin", mfn: this.#mfnOf(p.root) });
    for (const { t, level } of this.#pvTree(p.root)) {
      this.#pvPinned.delete(t);
      if (level === 1) this.#mcExt({ cmd: "unpin", mfn: this.#mfnOf(t) });
      this.#mcDirectMap(t, true);
    }
    this.#mcIssue();
  }

  /**
   * PV boot, part 1: Xen gives PV guests no superpages, so the direct map's
   * 2 MiB leaves are split into L1 tables, taken from the top of memory so
   * that every later frame is the one an HVM kernel would get.
   */
  #pvSplitDirectMap(): void {
    const m = this.frames.memory;
    const va = DIRECT_MAP.toBigInt();
    const l4e = this.kernelTable.root +
      8 * Number((va >> 39n) & 511n);
    if ((m.read32(l4e) & PTE_P) === 0) return;
    const l3 = entryAddr(m.read32(l4e), m.read32(l4e + 4));
    for (let i = 0; i < 512; i++) {
      const lo3 = m.read32(l3 + 8 * i), hi3 = m.read32(l3 + 8 * i + 4);
      if ((lo3 & PTE_P) === 0) continue;
      if (lo3 & PTE_PS) {
        throw new RangeError(
          "a PV guest of 1 GiB or more is not modelled (its direct map would need 1 GiB pages split)",
        );
      }
      const l2 = entryAddr(lo3, hi3);
      for (let j = 0; j < 512; j++) {
        const lo = m.read32(l2 + 8 * j), hi = m.read32(l2 + 8 * j + 4);
        if ((lo & PTE_P) === 0 || (lo & PTE_PS) === 0) continue;
        const l1 = this.frames.allocHigh();
        const frame = entryAddr(lo, hi);
        const flags = lo &
          (PTE_P | PTE_RW | PTE_US | 0x18 | PTE_A | PTE_D | 0x100);
        for (let k = 0; k < 512; k++) {
          const [glo, ghi] = splitGpa(frame + k * FRAME_SIZE);
          m.write32(l1 + 8 * k, (glo | flags) >>> 0);
          m.write32(l1 + 8 * k + 4, (ghi | (hi & NX_HI)) >>> 0);
        }
        const [tlo, thi] = encodeTable(this.mode, 2, l1);
        m.write32(l2 + 8 * j, tlo);
        m.write32(l2 + 8 * j + 4, thi);
      }
    }
  }

  /**
   * PV boot, part 2 (the toolstack's domain builder): rewrite the kernel's
   * tables in machine terms, make every table frame read-only in the
   * direct map, and have Xen validate and pin the whole tree.
   */
  #pvDomainBuilder(): void {
    const view = this.#pvView!;
    const m = this.frames.memory;
    const tables: { t: number; level: number }[] = [];
    const visit = (t: number, level: number) => {
      tables.push({ t, level });
      if (level === 1) return;
      for (let i = 0; i < 512; i++) {
        const lo = m.read32(t + 8 * i);
        if ((lo & PTE_P) === 0 || (lo & PTE_PS) !== 0) continue;
        visit(entryAddr(lo, m.read32(t + 8 * i + 4)), level - 1);
      }
    };
    visit(this.kernelTable.root, 4);
    const ro = tables.map(({ t }) => this.#directPte(t));
    for (const slot of ro) m.write32(slot, (m.read32(slot) & ~PTE_RW) >>> 0);
    for (const { t } of tables) {
      for (let i = 0; i < 512; i++) {
        const lo = m.read32(t + 8 * i), hi = m.read32(t + 8 * i + 4);
        if ((lo & PTE_P) === 0) continue;
        const [mlo, mhi] = this.#toMachine(lo, hi);
        m.write32(t + 8 * i, mlo);
        m.write32(t + 8 * i + 4, mhi);
      }
    }
    view.translating = true;
    this.#pvExt([{
      cmd: "pin-l4",
      mfn: this.#ma(this.kernelTable.root) / FRAME_SIZE,
    }]);
    for (const { t, level } of tables) this.#pvPinned.set(t, level);
  }

  #newTable(): PageTable<Memory, GuestFrameAllocator> {
    const pt = new PageTable<Memory, GuestFrameAllocator>(
      this.frames.memory,
      { mode: this.mode, allocator: this.frames },
    );
    if (this.#pv === undefined) {
      pt.onEntryWrite((c) => this.scheme.entryWritten(c));
    }
    return pt;
  }

  #bootKernel(): void {
    const kt = this.kernelTable;
    const mem = this.domain.memory;
    const regions = this.domain.backedRanges().map(([g, n]) => ({
      va: DIRECT_MAP.toBigInt() + BigInt(g * FRAME_SIZE),
      pa: g * FRAME_SIZE,
      length: n * FRAME_SIZE,
      pageSize: "auto" as const,
      writable: true,
      executable: false,
      global: true,
      label: "direct map",
    }));
    kt.mapRegions(regions);
    if (this.#pv !== undefined) this.#pvSplitDirectMap();
    for (let i = 0; i < this.kernelTextPages; i++) {
      const gpa = this.frames.allocData("kernel");
      // deterministic "instructions": NOPs with the page number
      const bytes = new Uint8Array(FRAME_SIZE).fill(0x90);
      bytes[0] = i & 0xff;
      mem.writeBytes(gpa, bytes);
      kt.map(KERNEL_TEXT.toBigInt() + BigInt(i * FRAME_SIZE), gpa, {
        writable: false,
        executable: true,
        global: true,
      });
    }
    for (let i = 0; i < this.kernelHeapPages; i++) {
      const gpa = this.frames.allocData("kernel");
      kt.map(KERNEL_HEAP.toBigInt() + BigInt(i * FRAME_SIZE), gpa, {
        writable: true,
        executable: false,
        global: true,
      });
    }
  }

  // ---- processes ----------------------------------------------------------

  /** Live processes in pid order. */
  get processes(): readonly Process[] {
    return [...this.#procs.values()].sort((a, b) => a.pid - b.pid);
  }

  /** The running process, if any (none: the kernel's table is loaded). */
  get current(): Process | undefined {
    return this.#current;
  }

  /** The process with `pid` (throws `RangeError` if there is none). */
  process(pid: number): Process {
    const p = this.#procs.get(pid);
    if (p === undefined) {
      throw new RangeError(
        `no process with pid ${String(pid)} (live: ${
          this.processes.map((x) => x.pid).join(", ") || "none"
        })`,
      );
    }
    return p;
  }

  #proc(pid: number | undefined): Process {
    if (pid === undefined) {
      if (this.#current === undefined) {
        throw new RangeError(
          "no process is running: pass a pid or switch to a process first",
        );
      }
      return this.#current;
    }
    return this.process(pid);
  }

  #count(name: string): void {
    this.#sys.set(name, (this.#sys.get(name) ?? 0) + 1);
  }

  /** A new page table with the kernel half copied (Linux's `pgd_alloc`). */
  #newAddressSpace(): PageTable<Memory, GuestFrameAllocator> {
    const pt = this.#newTable();
    const m = this.frames.memory;
    const kroot = this.kernelTable.root;
    if (this.#pv !== undefined) {
      // pgd_alloc: a plain copy of the kernel's (machine) entries; the new
      // root stays ordinary memory until the whole tree is pinned
      const raw = this.domain.memory.unwatched;
      for (let i = 256; i < 512; i++) {
        raw.write32(pt.root + 8 * i, raw.read32(kroot + 8 * i));
        raw.write32(pt.root + 8 * i + 4, raw.read32(kroot + 8 * i + 4));
      }
      return pt;
    }
    for (let i = 256; i < 512; i++) {
      const lo = m.read32(kroot + 8 * i), hi = m.read32(kroot + 8 * i + 4);
      if ((lo | hi) === 0) continue;
      // kernel half: bits 47..63 set
      pt.writeEntry(
        4,
        pt.root + 8 * i,
        lo,
        hi,
        new LinearAddress((0xffff0000 | ((i * 2 ** 7) >>> 0)) >>> 0, 0),
      );
    }
    return pt;
  }

  /**
   * A new process with an empty user address space (what exec of a fresh
   * program leaves). It does not run until {@linkcode GuestOs.switchTo}.
   */
  spawn(name?: string): Process {
    this.#count("spawn");
    const pid = this.#nextPid++;
    const pt = this.#newAddressSpace();
    const p = new Process(pid, name ?? `p${pid}`, 0, pt);
    if (this.#pv !== undefined) this.#pvPin(p); // xen_activate_mm
    this.#procs.set(pid, p);
    return p;
  }

  /** Context switch: load CR3 with `pid`'s table (nothing if it already runs). */
  switchTo(pid: number): void {
    const p = this.process(pid);
    if (p === this.#current) return;
    this.#c.switches++;
    this.#current = p;
    this.#loadCr3(p.root);
  }

  #loadCr3(root: number): void {
    this.#c.cr3Loads++;
    this.scheme.loadCr3(root);
  }

  #invlpg(va: number): void {
    this.#c.invlpgs++;
    this.scheme.invlpg(Math.floor(va / TWO32), va >>> 0);
  }

  /** Guest INVLPG of `va` (what a kernel would do after changing its PTE). */
  invlpg(va: AddressLike | LinearAddress): void {
    const a = LinearAddress.from(va);
    this.#c.invlpgs++;
    this.scheme.invlpg(a.hi, a.lo);
  }

  /** Reload CR3 with the current table (a full flush of non-global entries). */
  flushTlb(): void {
    this.#loadCr3(this.#current?.root ?? this.kernelTable.root);
  }

  /** Flush after changing present PTEs of `p` (see the module notes). */
  #flush(p: Process, pages: readonly number[], full: boolean): void {
    this.#pvFlushBatch();
    if (p !== this.#current) return;
    if (full || pages.length > this.#ceiling) this.flushTlb();
    else for (const va of pages) this.#invlpg(va);
  }

  // ---- page-table helpers -------------------------------------------------

  /** The PTE slot of user address `va` in `p`, if its tables exist. */
  #pteSlot(p: Process, va: number): number | undefined {
    const m = this.frames.memory;
    let base = p.root;
    for (let level = 4; level >= 2; level--) {
      const idx = Math.floor(va / 2 ** LEVEL_SHIFT[level]) % 512;
      const ea = base + 8 * idx;
      const lo = m.read32(ea), hi = m.read32(ea + 4);
      if ((lo & PTE_P) === 0 || (lo & PTE_PS) !== 0) return undefined;
      base = entryAddr(lo, hi);
    }
    return base + 8 * (Math.floor(va / FRAME_SIZE) % 512);
  }

  /** The PTE slot of `va`, creating missing tables (may throw out of memory). */
  #ensureSlot(p: Process, va: number): number {
    const m = this.frames.memory;
    let base = p.root;
    for (let level = 4; level >= 2; level--) {
      const shift = LEVEL_SHIFT[level];
      const idx = Math.floor(va / 2 ** shift) % 512;
      const ea = base + 8 * idx;
      const lo = m.read32(ea), hi = m.read32(ea + 4);
      if ((lo & PTE_P) === 0) {
        const t = this.frames.alloc();
        if (this.#pv !== undefined) this.#pvMakeTable(p, t, level - 1);
        const [nlo, nhi] = encodeTable(this.mode, level, t);
        this.#setEntry(
          p.pageTable,
          level,
          ea,
          nlo,
          nhi,
          vaOf(Math.floor(va / 2 ** shift) * 2 ** shift),
        );
        base = t;
      } else {
        base = entryAddr(lo, hi);
      }
    }
    return base + 8 * (Math.floor(va / FRAME_SIZE) % 512);
  }

  /** The user PTE for a frame with `prot`; writable only if `writable`. */
  #userPte(
    gpa: number,
    prot: number,
    writable: boolean,
    keepAD: number,
  ): [number, number] {
    const [glo, ghi] = splitGpa(gpa);
    const ad = keepAD & (PTE_A | PTE_D);
    if (prot === 0) return [(glo | PTE_PROTNONE | ad) >>> 0, ghi];
    const lo = glo | PTE_P | PTE_US | (writable ? PTE_RW : 0) | ad;
    const hi = ghi | ((prot & PROT_EXEC) !== 0 ? 0 : NX_HI);
    return [lo >>> 0, hi >>> 0];
  }

  #writePte(p: Process, va: number, ea: number, lo: number, hi: number): void {
    this.#setEntry(p.pageTable, 1, ea, lo, hi, vaOf(va));
  }

  /**
   * Visit the user-half entries of `p` in `[start, end)`: every non-zero
   * PTE through `onPte`; with `freeEmpty`, table pages left empty are
   * unlinked (their entries cleared) and returned for freeing after the
   * flush.
   */
  #forRange(
    p: Process,
    start: number,
    end: number,
    onPte: (va: number, ea: number, lo: number, hi: number) => void,
    freeEmpty: boolean,
  ): number[] {
    const m = this.frames.memory;
    const freed: number[] = [];
    const visit = (table: number, level: number, base: number) => {
      const span = 2 ** LEVEL_SHIFT[level];
      const i0 = Math.max(0, Math.floor((start - base) / span));
      const i1 = Math.min(
        level === 4 ? 255 : 511,
        Math.floor((end - 1 - base) / span),
      );
      for (let i = i0; i <= i1; i++) {
        const ea = table + 8 * i;
        const lo = m.read32(ea), hi = m.read32(ea + 4);
        const va = base + i * span;
        if (level === 1) {
          if ((lo | hi) !== 0) onPte(va, ea, lo, hi);
          continue;
        }
        if ((lo & PTE_P) === 0 || (lo & PTE_PS) !== 0) continue;
        const child = entryAddr(lo, hi);
        visit(child, level - 1, va);
        if (freeEmpty && this.#isEmpty(child)) {
          this.#setEntry(p.pageTable, level, ea, 0, 0, vaOf(va));
          freed.push(child);
        }
      }
    };
    if (end > start) visit(p.root, 4, 0);
    return freed;
  }

  #isEmpty(table: number): boolean {
    this.#pvFlushBatch();
    const m = this.frames.memory;
    for (let off = 0; off < FRAME_SIZE; off += 4) {
      if (m.read32(table + off) !== 0) return false;
    }
    return true;
  }

  #freeTables(tables: readonly number[]): void {
    this.#pvFlushBatch();
    for (const t of tables) {
      if (this.#pv !== undefined) this.#pvReleaseTable(t);
      this.scheme.tableFrameFreed?.(t);
      this.frames.free(t);
      this.#c.tablesFreed++;
    }
  }

  // ---- VMAs ---------------------------------------------------------------

  #checkRange(addr: number, length: number): [number, number] {
    pageAlignCheck("address", addr);
    if (!Number.isInteger(length) || length <= 0) {
      throw new RangeError(
        `length ${String(length)} is invalid: expected a positive integer`,
      );
    }
    const end = addr + Math.ceil(length / FRAME_SIZE) * FRAME_SIZE;
    if (addr < MMAP_MIN || end > USER_END) {
      throw new RangeError(
        `range [${hexPhys(addr)}, ${
          hexPhys(end)
        }) is invalid: expected user addresses in [${hexPhys(MMAP_MIN)}, ${
          hexPhys(USER_END)
        })`,
      );
    }
    return [addr, end];
  }

  /** Cut `[start, end)` out of `p`'s VMAs (splitting at the edges). */
  #carve(p: Process, start: number, end: number): void {
    const out: Vma[] = [];
    for (const v of p.vmaList) {
      if (v.end <= start || v.start >= end) {
        out.push(v);
        continue;
      }
      if (v.start < start) out.push({ ...v, end: start });
      if (v.end > end) out.push({ ...v, start: end });
    }
    p.vmaList = out.sort((a, b) => a.start - b.start);
  }

  #findGap(p: Process, length: number): number {
    let cand = MMAP_TOP - length;
    const vmas = [...p.vmaList].sort((a, b) => b.start - a.start);
    for (const v of vmas) {
      if (v.start < cand + length && cand < v.end) cand = v.start - length;
    }
    if (cand < MMAP_MIN) {
      throw new RangeError(
        `pid ${p.pid}: no room for a mapping of ${sizeName(length)} (ENOMEM)`,
      );
    }
    return cand;
  }

  /**
   * Map anonymous private memory; returns its address. Nothing is
   * allocated until touched (demand paging). With `addr`, MAP_FIXED: what
   * was mapped there is unmapped first.
   */
  mmap(options: MmapOptions): number {
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `mmap options ${
          String(options)
        } are invalid: expected { length, prot?, addr?, pid? }`,
      );
    }
    this.#count("mmap");
    const p = this.#proc(options.pid);
    const prot = parseProt(options.prot ?? "rw");
    const length = options.length;
    if (!Number.isInteger(length) || length <= 0) {
      throw new RangeError(
        `mmap length ${String(length)} is invalid: expected a positive integer`,
      );
    }
    const pages = Math.ceil(length / FRAME_SIZE) * FRAME_SIZE;
    let addr: number;
    if (options.addr !== undefined) {
      const [a, end] = this.#checkRange(options.addr, pages);
      addr = a;
      this.#batched(() => this.#unmapRange(p, a, end));
    } else addr = this.#findGap(p, pages);
    p.vmaList.push({
      start: addr,
      end: addr + pages,
      prot,
      label: options.label ?? "anon",
    });
    p.vmaList.sort((a, b) => a.start - b.start);
    return addr;
  }

  /** Unmap `[addr, addr + length)` (unmapped parts are fine, as in Linux). */
  munmap(addr: number, length: number, options: { pid?: number } = {}): void {
    this.#count("munmap");
    const p = this.#proc(options.pid);
    const [a, end] = this.#checkRange(addr, length);
    this.#batched(() => this.#unmapRange(p, a, end));
  }

  #unmapRange(p: Process, start: number, end: number): void {
    this.#carve(p, start, end);
    const flushPages: number[] = [];
    const release: number[] = [];
    const freed = this.#forRange(p, start, end, (va, ea, lo, hi) => {
      if (lo & PTE_P) flushPages.push(va);
      release.push(entryAddr(lo, hi));
      this.#writePte(p, va, ea, 0, 0);
    }, true);
    this.#flush(p, flushPages, freed.length > 0);
    for (const gpa of release) this.frames.unref(gpa);
    this.#freeTables(freed);
  }

  /**
   * Change the protection of `[addr, addr + length)`, which must be
   * mapped throughout (else `RangeError`, ENOMEM, and nothing changes).
   * Copy-on-write pages stay read-only until written.
   */
  mprotect(
    addr: number,
    length: number,
    prot: ProtLike,
    options: { pid?: number } = {},
  ): void {
    this.#count("mprotect");
    const p = this.#proc(options.pid);
    const bits = parseProt(prot);
    const [start, end] = this.#checkRange(addr, length);
    // covered throughout?
    let at = start;
    for (const v of p.vmaList) {
      if (v.end <= at) continue;
      if (v.start > at) break;
      at = v.end;
      if (at >= end) break;
    }
    if (at < end) {
      throw new RangeError(
        `mprotect [${hexPhys(start)}, ${hexPhys(end)}) of pid ${p.pid}: ${
          hexPhys(at)
        } is not mapped (ENOMEM)`,
      );
    }
    const pieces: Vma[] = [];
    for (const v of p.vmaList) {
      if (v.end <= start || v.start >= end) continue;
      pieces.push({
        ...v,
        start: Math.max(v.start, start),
        end: Math.min(v.end, end),
        prot: bits,
      });
    }
    this.#carve(p, start, end);
    p.vmaList.push(...pieces);
    p.vmaList.sort((a, b) => a.start - b.start);
    const flushPages: number[] = [];
    this.#batched(() => {
      this.#forRange(p, start, end, (va, ea, lo, hi) => {
        const gpa = entryAddr(lo, hi);
        const writable = (bits & PROT_WRITE) !== 0 &&
          this.frames.refcount(gpa) === 1;
        const [nlo, nhi] = this.#userPte(gpa, bits, writable, lo);
        if (nlo === lo && nhi === hi) return;
        if (lo & PTE_P) flushPages.push(va);
        this.#writePte(p, va, ea, nlo, nhi);
      }, false);
      this.#flush(p, flushPages, false);
    });
  }

  // ---- fork, exec, exit -----------------------------------------------------

  /**
   * Fork `pid` (default the running process): the child gets a copy of
   * the VMAs and shares every page copy-on-write (writable PTEs of the
   * parent become read-only; frame reference counts go up). Returns the
   * child, which does not run until switched to. Out of guest memory: the
   * partial child is torn down and a `RangeError` thrown.
   */
  fork(pid?: number): Process {
    this.#count("fork");
    const parent = this.#proc(pid);
    const cpid = this.#nextPid++;
    let pt: PageTable<Memory, GuestFrameAllocator>;
    try {
      pt = this.#newAddressSpace();
    } catch (e) {
      throw this.#oom(e, `fork of pid ${parent.pid}`);
    }
    const child = new Process(cpid, parent.name, parent.pid, pt);
    child.vmaList = parent.vmaList.map((v) => ({ ...v }));
    const flushPages: number[] = [];
    try {
      this.#batched(() =>
        this.#forRange(parent, 0, USER_END, (va, ea, lo, hi) => {
          const gpa = entryAddr(lo, hi);
          let plo = lo;
          if ((lo & PTE_P) && (lo & PTE_RW)) {
            plo = (lo & ~PTE_RW) >>> 0;
            this.#writePte(parent, va, ea, plo, hi);
            flushPages.push(va);
          }
          const cea = this.#ensureSlot(child, va);
          this.frames.ref(gpa);
          this.#writePte(child, va, cea, (plo & ~PTE_A) >>> 0, hi);
        }, false)
      );
    } catch (e) {
      this.#flush(parent, flushPages, false);
      this.#teardown(child);
      throw this.#oom(e, `fork of pid ${parent.pid}`);
    }
    this.#flush(parent, flushPages, false);
    if (this.#pv !== undefined) this.#pvPin(child); // xen_dup_mmap
    this.#procs.set(cpid, child);
    return child;
  }

  #oom(e: unknown, what: string): unknown {
    if (e instanceof RangeError && /out of memory/.test(e.message)) {
      return new RangeError(`${what}: guest out of memory (ENOMEM)`);
    }
    return e;
  }

  /** Free every user page and table of `p`, and its root (not running). */
  #teardown(p: Process): void {
    if (this.#pv !== undefined) {
      this.#pvUnpin(p, false); // xen_exit_mmap
      this.#fullmm = true;
    }
    try {
      this.#teardownTables(p);
    } finally {
      this.#fullmm = false;
    }
  }

  #teardownTables(p: Process): void {
    this.#batched(() => {
      const release: number[] = [];
      const freed = this.#forRange(p, 0, USER_END, (va, ea, lo, hi) => {
        release.push(entryAddr(lo, hi));
        this.#writePte(p, va, ea, 0, 0);
      }, true);
      this.#pvFlushBatch();
      for (const gpa of release) this.frames.unref(gpa);
      this.#freeTables([...freed, p.root]);
    });
  }

  /**
   * Replace `pid`'s address space with an empty one (exec): every mapping
   * and user page table goes; the process keeps its pid.
   */
  exec(pid?: number): void {
    this.#count("exec");
    const p = this.#proc(pid);
    p.vmaList = [];
    const pv = this.#pv !== undefined;
    const running = p === this.#current;
    if (pv) {
      this.#pvUnpin(p, running);
      this.#fullmm = true;
    }
    try {
      this.#batched(() => {
        const release: number[] = [];
        const flushPages: number[] = [];
        const freed = this.#forRange(p, 0, USER_END, (va, ea, lo, hi) => {
          if (lo & PTE_P) flushPages.push(va);
          release.push(entryAddr(lo, hi));
          this.#writePte(p, va, ea, 0, 0);
        }, true);
        if (!pv) this.#flush(p, flushPages, freed.length > 0);
        for (const gpa of release) this.frames.unref(gpa);
        this.#freeTables(freed);
      });
    } finally {
      this.#fullmm = false;
    }
    if (pv) {
      this.#pvPin(p); // the emptied L4 (Linux: the new mm, xen_activate_mm)
      if (running) {
        this.#pvExt([{ cmd: "new-baseptr", mfn: this.#mfnOf(p.root) }]);
      }
    }
  }

  /**
   * End `pid` (default the running process). If it runs, the kernel's
   * table is loaded first (no process runs afterwards); then its pages,
   * tables and root are freed.
   */
  exit(pid?: number): void {
    this.#count("exit");
    const p = this.#proc(pid);
    if (p === this.#current) {
      this.#current = undefined;
      this.#c.switches++;
      this.#loadCr3(this.kernelTable.root);
    }
    this.#procs.delete(p.pid);
    this.#teardown(p);
  }

  // ---- accesses -------------------------------------------------------------

  /**
   * An access by the running process at `va` (user mode unless `user:
   * false`), through the scheme; #PFs go to the guest's handler, which
   * fixes what it can (demand paging, copy-on-write) and retries. Returns
   * the guest-visible result.
   */
  access(
    va: AddressLike | LinearAddress,
    options: GuestAccessOptions = {},
  ): AccessReport {
    const { a, flags, size, value } = parseGuestAccess(va, options);
    const s = this.#state;
    const faults: FaultRecord[] = [];
    for (;;) {
      const r = this.scheme.accessFast(s, a.hi, a.lo, flags, size, value);
      if (r === GUEST_OK) {
        return { result: "ok", value: s.value, gpa: s.gpa, faults };
      }
      if (r === GUEST_GP) return { result: "gp", faults };
      if (r !== GUEST_PF) {
        return {
          result: "unbacked",
          gpa: s.gpa,
          problem: s.problem === "" ? "unbacked" : s.problem,
          faults,
        };
      }
      this.#c.pageFaults++;
      if (this.#current) this.#current.stat.faults++;
      const ec = s.errorCode;
      const cr2 = new LinearAddress(s.cr2Hi >>> 0, s.cr2Lo >>> 0);
      const resolution = this.#pageFault(cr2, ec, flags);
      this.#res[resolution]++;
      faults.push({ cr2: cr2.toHex(), errorCode: ec, resolution });
      if (
        resolution === "segv" || resolution === "efault" ||
        resolution === "oops" || resolution === "oom"
      ) {
        return { result: resolution, errorCode: ec, faults };
      }
      if (faults.length > 4) {
        throw new Error(
          `internal: access at ${a.toHex()} faulted ${faults.length} times: ${
            JSON.stringify(faults)
          }`,
        );
      }
    }
  }

  /**
   * The guest's #PF handler (Linux's `do_user_addr_fault` and
   * `handle_mm_fault`, condensed). Returns what it did.
   */
  #pageFault(cr2: LinearAddress, ec: number, flags: number): FaultResolution {
    const user = (flags & ACCESS_USER) !== 0;
    const bad: FaultResolution = user ? "segv" : "efault";
    if (cr2.hi >= 0x8000 || (ec & PFEC_RSVD) !== 0) {
      return user ? "segv" : "oops"; // kernel address, or corrupt tables
    }
    const p = this.#current;
    if (p === undefined) return user ? "segv" : "oops";
    const va = cr2.hi * TWO32 + cr2.lo;
    const page = va - (va % FRAME_SIZE);
    const vma = p.vmaAt(va);
    if (vma === undefined) return bad;
    const write = (flags & ACCESS_WRITE) !== 0;
    const fetch = (flags & ACCESS_FETCH) !== 0;
    if (
      vma.prot === 0 || (write && !(vma.prot & PROT_WRITE)) ||
      (fetch && !(vma.prot & PROT_EXEC))
    ) return bad;
    let ea: number;
    try {
      ea = this.#ensureSlot(p, page);
    } catch (e) {
      if (e instanceof RangeError && /out of memory/.test(e.message)) {
        return "oom";
      }
      throw e;
    }
    const m = this.frames.memory;
    const lo = m.read32(ea), hi = m.read32(ea + 4);
    if ((lo | hi) === 0) {
      let gpa: number;
      try {
        gpa = this.frames.allocData();
      } catch (e) {
        if (e instanceof RangeError && /out of memory/.test(e.message)) {
          return "oom";
        }
        throw e;
      }
      const [nlo, nhi] = this.#userPte(
        gpa,
        vma.prot,
        (vma.prot & PROT_WRITE) !== 0,
        0,
      );
      this.#writePte(p, page, ea, nlo, nhi);
      p.stat.demandZero++;
      return "demand-zero";
    }
    const gpa = entryAddr(lo, hi);
    const shared = this.frames.refcount(gpa) > 1;
    if (write && shared) {
      let copy: number;
      try {
        copy = this.frames.allocData();
      } catch (e) {
        if (e instanceof RangeError && /out of memory/.test(e.message)) {
          return "oom";
        }
        throw e;
      }
      const mem = this.domain.memory;
      mem.writeBytes(copy, mem.readBytes(gpa, FRAME_SIZE));
      const [nlo, nhi] = this.#userPte(copy, vma.prot, true, 0);
      this.#writePte(p, page, ea, nlo, nhi);
      if (lo & PTE_P) this.#invlpg(page);
      this.frames.unref(gpa);
      p.stat.cowCopies++;
      return "cow-copy";
    }
    const [nlo, nhi] = this.#userPte(
      gpa,
      vma.prot,
      (vma.prot & PROT_WRITE) !== 0 && !shared,
      lo,
    );
    if (nlo === lo && nhi === hi) {
      // the entry already allows the access (a stale translation)
      this.#invlpg(page);
      return "spurious";
    }
    this.#writePte(p, page, ea, nlo, nhi);
    if (lo & PTE_P) this.#invlpg(page);
    return write && (lo & PTE_P) && !(lo & PTE_RW) ? "cow-reuse" : "fixup";
  }

  // ---- balloon ----------------------------------------------------------------

  /** Gfns currently given to the balloon. */
  get ballooned(): readonly number[] {
    return [...this.#ballooned];
  }

  /**
   * The balloon driver: give `pages` free frames back to the host (fewer
   * if fewer are free). Returns how many were given.
   */
  balloonInflate(pages: number): number {
    if (this.#pv !== undefined) {
      throw new RangeError(
        "ballooning a PV guest is not modelled (its direct map would have to be unmapped first)",
      );
    }
    const gfns = this.frames.take(pages);
    try {
      this.domain.balloonOut(gfns);
    } catch (e) {
      this.frames.give(gfns);
      throw e;
    }
    this.#ballooned.push(...gfns);
    return gfns.length;
  }

  /**
   * Take up to `pages` frames back from the host (the most recently
   * ballooned first). Returns how many came back.
   */
  balloonDeflate(pages: number): number {
    if (!Number.isInteger(pages) || pages < 0) {
      throw new RangeError(
        `pages ${String(pages)} is invalid: expected a non-negative integer`,
      );
    }
    const n = Math.min(pages, this.#ballooned.length);
    const gfns = this.#ballooned.slice(this.#ballooned.length - n);
    this.domain.balloonIn(gfns);
    this.#ballooned.length -= n;
    this.frames.give(gfns);
    return n;
  }

  // ---- invariants -------------------------------------------------------------

  /**
   * Check the guest's bookkeeping against its tables: every user PTE lies
   * in a VMA and encodes its protection (present iff not PROT_NONE; user;
   * XD iff not executable; writable only if the VMA is and the frame is
   * not shared); every data frame has as many references as PTEs naming
   * it; the page-table frames in use are exactly those reachable from the
   * roots. Returns the violations (empty when all hold).
   *
   * @example
   * ```ts
   * import { Host } from "../host.ts";
   * import { GuestOs } from "./os.ts";
   * import assert from "node:assert/strict";
   * const os = new GuestOs(new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }));
   * const p = os.spawn();
   * os.switchTo(p.pid);
   * os.access(os.mmap({ length: 4096 }), { kind: "write", value: 1 });
   * os.fork();
   * assert.deepEqual(os.checkConsistency(), []);
   * ```
   */
  checkConsistency(): string[] {
    const bad: string[] = [];
    const m = this.frames.memory;
    const tables = new Set<number>();
    const refs = new Map<number, number>();
    const ptes: { p: Process; va: number; lo: number; hi: number }[] = [];
    const visit = (
      t: number,
      level: number,
      lo: number,
      hi: number,
      base: number,
      p: Process | undefined,
    ) => {
      tables.add(t);
      for (let i = lo; i <= hi; i++) {
        const elo = m.read32(t + 8 * i), ehi = m.read32(t + 8 * i + 4);
        if ((elo | ehi) === 0) continue;
        const va = base + i * 2 ** LEVEL_SHIFT[level];
        if (level === 1) {
          if (p === undefined) continue;
          const gpa = entryAddr(elo, ehi);
          refs.set(gpa, (refs.get(gpa) ?? 0) + 1);
          ptes.push({ p, va, lo: elo, hi: ehi });
        } else if ((elo & PTE_P) && !(elo & PTE_PS)) {
          visit(entryAddr(elo, ehi), level - 1, 0, 511, va, p);
        }
      }
    };
    visit(this.kernelTable.root, 4, 256, 511, 0, undefined);
    for (const p of this.#procs.values()) {
      visit(p.root, 4, 0, 255, 0, p);
      for (let i = 256; i < 512; i++) {
        const a = m.read32(p.root + 8 * i),
          b = m.read32(this.kernelTable.root + 8 * i);
        if (
          ((a ^ b) & ~PTE_A) !== 0 ||
          m.read32(p.root + 8 * i + 4) !==
            m.read32(this.kernelTable.root + 8 * i + 4)
        ) {
          bad.push(
            `pid ${p.pid}: kernel PML4 entry ${i} differs from the kernel's`,
          );
        }
      }
    }
    for (const { p, va, lo, hi } of ptes) {
      const where = `pid ${p.pid} PTE of ${hexPhys(va)}`;
      const v = p.vmaAt(va);
      if (v === undefined) {
        bad.push(`${where} lies in no VMA`);
        continue;
      }
      const gpa = entryAddr(lo, hi);
      if (v.prot === 0) {
        if ((lo & PTE_P) || !(lo & PTE_PROTNONE)) {
          bad.push(
            `${where}: a PROT_NONE VMA needs a not-present PROT_NONE entry`,
          );
        }
        continue;
      }
      if (!(lo & PTE_P) || !(lo & PTE_US)) {
        bad.push(`${where}: expected present and user`);
      }
      if (((hi & NX_HI) !== 0) !== ((v.prot & PROT_EXEC) === 0)) {
        bad.push(`${where}: XD disagrees with the VMA's ${protText(v.prot)}`);
      }
      if (
        (lo & PTE_RW) &&
        (!(v.prot & PROT_WRITE) || (refs.get(gpa) ?? 0) > 1)
      ) {
        bad.push(
          `${where}: writable but the VMA is ${
            protText(v.prot)
          } or the frame is shared`,
        );
      }
    }
    for (const [gpa, n] of refs) {
      if (this.frames.refcount(gpa) !== n) {
        bad.push(
          `frame ${hexPhys(gpa)}: ${n} PTE(s) but reference count ${
            this.frames.refcount(gpa)
          }`,
        );
      }
      if (this.frames.roleOf(gpa) !== "data") {
        bad.push(
          `frame ${hexPhys(gpa)} is mapped by a PTE but is a ${
            this.frames.roleOf(gpa) ?? "free"
          } frame`,
        );
      }
    }
    for (const t of tables) {
      if (this.frames.roleOf(t) !== "table") {
        bad.push(
          `table ${hexPhys(t)} is a ${this.frames.roleOf(t) ?? "free"} frame`,
        );
      }
    }
    const roles = this.frames.countByRole();
    if (roles.table !== tables.size) {
      bad.push(
        `${roles.table} table frames in use but ${tables.size} reachable`,
      );
    }
    if (roles.data !== refs.size) {
      bad.push(`${roles.data} data frames in use but ${refs.size} mapped`);
    }
    if (roles.kernel !== this.kernelHeapPages + this.kernelTextPages) {
      bad.push(`${roles.kernel} kernel frames in use`);
    }
    return bad;
  }

  // ---- views ----------------------------------------------------------------

  /** Counters since boot. */
  get counters(): GuestOsCounters {
    return {
      ...this.#c,
      resolutions: { ...this.#res },
      syscalls: Object.fromEntries(
        [...this.#sys].sort((a, b) => a[0] < b[0] ? -1 : 1),
      ),
    };
  }

  /** Resident pages of `p` in `[start, end)` and its user table pages. */
  #resident(p: Process, start: number, end: number): number {
    let n = 0;
    this.#forRange(p, start, end, () => n++, false);
    return n;
  }

  #userTables(p: Process): number {
    const m = this.frames.memory;
    let n = 1;
    const visit = (t: number, level: number, top: number) => {
      for (let i = 0; i <= top; i++) {
        const lo = m.read32(t + 8 * i), hi = m.read32(t + 8 * i + 4);
        if ((lo & PTE_P) === 0 || (lo & PTE_PS) !== 0) continue;
        n++;
        if (level > 2) visit(entryAddr(lo, hi), level - 1, 511);
      }
    };
    visit(p.root, 4, 255);
    return n;
  }

  /** Plain-data picture for the views. */
  snapshot(): GuestOsSnapshot {
    return {
      name: this.name,
      domain: this.domain.name,
      scheme: this.scheme.name,
      current: this.#current?.pid,
      frames: {
        total: this.frames.totalCount,
        free: this.frames.freeCount,
        ...this.frames.countByRole(),
      },
      ballooned: this.#ballooned.length,
      processes: this.processes.map((p) => ({
        pid: p.pid,
        name: p.name,
        parent: p.parent,
        current: p === this.#current,
        root: p.root,
        vmas: p.vmaList.map((v) => ({
          ...v,
          resident: this.#resident(p, v.start, v.end),
        })),
        tables: this.#userTables(p),
        stats: p.stats,
      })),
      counters: this.counters,
    };
  }

  /** One-line summary. */
  toString(): string {
    return `guest OS "${this.name}" (${this.scheme.name} scheme): ${this.#procs.size} process(es), ${
      this.#current ? `pid ${this.#current.pid} running` : "idle"
    }, ${this.frames.freeCount} of ${this.frames.totalCount} frames free`;
  }

  /** Jupyter rich display: processes and VMAs. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const s = this.snapshot();
    return { "text/plain": guestOsToText(s), "text/html": guestOsToHtml(s) };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return guestOsToText(this.snapshot());
  }
}

/** Hex of a 64-bit entry given as halves (for dumps). */
export function entryHex(lo: number, hi: number): string {
  return hex64(hi >>> 0, lo >>> 0);
}
