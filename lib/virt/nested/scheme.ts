/**
 * Nested paging (Intel EPT / AMD NPT) as an {@linkcode MmuScheme}.
 *
 * The guest owns its page tables and CR3 outright: MOV to CR3 and INVLPG
 * cause no exits. The hypervisor owns only the second-stage tables, in
 * machine memory, built lazily as KVM's `tdp_mmu_map` does: an access
 * whose gpa has no EPT/NPT entry exits with an EPT violation (#NPF); the
 * handler asks the domain's P2M or memslots for the frame (`mfnForAccess`,
 * which faults the page into the VMM under KVM), installs a leaf and
 * resumes the guest, which retries the access. A gpa with no memory behind
 * it becomes an `"mmio"` exit, as in the reference scheme. P2M changes —
 * ballooning, and KVM memslot add / remove / move — zap the affected
 * leaves (KVM `kvm_unmap_gfn_range`) and INVEPT; the next access faults
 * them back from the new memslot.
 *
 * Leaves are 4 KiB by default. With `hostPages: "2m"` the handler installs
 * a 2 MiB leaf for the faulting gfn's 2 MiB-aligned region R when the
 * whole of R is inside the gfn space and resident now, on machine frames
 * `mfn0 + i` with `mfn0` 2 MiB-aligned, all equally writable, and none of R
 * is being dirty-logged — as KVM does for THP/hugetlbfs-backed memslots
 * (`kvm_mmu_max_mapping_level`; no huge pages on a slot with
 * `KVM_MEM_LOG_DIRTY_PAGES`) and Xen HAP for superpage-populated guests.
 * Only the faulting gfn goes through `mfnForAccess`; the rest of R is
 * checked with the side-effect-free `lookup`, so nothing is faulted in to
 * make a region eligible (under KVM a region becomes eligible once the VMM
 * has touched all of it; contiguous Xen domains are populated at once on
 * 2 MiB-aligned runs, see `Host`). Otherwise the leaf is 4 KiB. A 4 KiB
 * table already under an eligible region is replaced by the 2 MiB leaf
 * and its frame freed, as `kvm_tdp_mmu_map` replaces a non-leaf entry at
 * the goal level (then INVEPT, since the host PSC may hold it). A P2M
 * change of any gfn in R drops the whole 2 MiB leaf; starting dirty
 * logging splits the 2 MiB leaves overlapping the range into 512 4 KiB
 * leaves with the same frames and rights (KVM's eager page split), so
 * logged gfns are tracked per 4 KiB page.
 *
 * Optional, all off by default:
 * - walk caches in both dimensions and a nested TLB (`caches`, Bhargava et
 *   al. 2008);
 * - the physical CPU's VPID/ASID-tagged TLB (`tlb`, `vpid`), shared by the
 *   schemes of every VM on that CPU: combined (gla → hpa) mappings are
 *   used before walking, so a VM switch needs no flush; guest CR3 loads
 *   and INVLPG drop the current VPID's mappings (every EPTP) as SDM
 *   §28.4.3.1 says; second-stage changes INVEPT single-context; VPID 0
 *   flushes on every VM entry and exit. A cached entry is used only when
 *   its rights allow the access, and W is cached only once both leaves are
 *   dirty, so guest-visible outcomes stay exact (a TLB hit legitimately
 *   skips A updates of another address space's tables for global pages);
 * - dirty logging for live migration ({@linkcode NestedScheme.startDirtyLog}):
 *   write-protect mode, or PML with a 512-entry page-modification log and
 *   its "log full" exit, and a KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG
 *   bitmap.
 *
 * Not modelled: the guest-physical (EPTP-tagged) mappings of the tagged TLB
 * (the walker's nested TLB plays that part), PCIDs (the guest uses PCID 0),
 * the invalidation of an address's combined mappings on an EPT violation
 * (entries never hold rights the access lacked, so it changes nothing
 * visible), and the exact instant of a PML-full exit: the model takes it
 * right after the access whose D update overflowed the log, and logs that
 * gpa into the emptied log, the state the retried access would leave.
 * With 2 MiB second-stage leaves, not modelled: 2 MiB entries in the
 * tagged TLB (combined gla → hpa entries stay 4 KiB) and in the walker's
 * nested TLB (per 4 KiB gpa page; its host PSC caches only the entries
 * above the leaf, so a 2 MiB leaf is never cached as a table); the A/D
 * bits a split copies from the 2 MiB leaf (split leaves start clean,
 * except the D that PML presets); and the huge-page recovery KVM runs
 * when dirty logging stops (`kvm_mmu_zap_collapsible_sptes`, in newer
 * kernels `kvm_mmu_recover_huge_pages`): here a region collapses back into
 * a 2 MiB leaf only on its next second-stage fault.
 *
 * @module
 */

import {
  EPT_4LEVEL,
  EPT_5LEVEL,
  eptMap,
  type EptMode,
  eptMode,
  EptScratch,
  eptWalkInto,
  nptMode,
} from "../../paging/ept.ts";
import { PageTable } from "../../paging/builder.ts";
import type { PagingMode } from "../../paging/mode.ts";
import type { PhysicalMemory } from "../../memory/memory.ts";
import {
  ACCESS_USER,
  ACCESS_WRITE,
  checkRights,
  PFEC_W,
  RIGHT_W,
  RIGHT_X,
  WALK_OK,
  walkInto,
  WalkScratch,
} from "../../paging/walker.ts";
import { EPT_FETCH, EPT_READ, EPT_WRITE } from "../../paging/ept.ts";
import { hex64 } from "../../address/address.ts";
import { gpaProblem } from "../guest_memory.ts";
import type { TaggedTlb } from "../../tlb/tagged.ts";
import type { HypervisorFrameSource } from "../host.ts";
import {
  BaseScheme,
  GUEST_GP,
  GUEST_PF,
  GUEST_UNBACKED,
  type GuestAccessState,
  type SchemeContext,
  type SchemeOptions,
} from "../scheme.ts";
import {
  EXITQ_WRITE,
  NESTED_EPT_MISCONFIG,
  NESTED_EPT_VIOLATION,
  NESTED_GUEST_GP,
  NESTED_GUEST_PF,
  NESTED_NPF,
  NESTED_OK,
  NestedWalker,
  type NestedWalkerOptions,
} from "./walk.ts";

/** Options for {@linkcode NestedScheme}. */
export interface NestedOptions extends SchemeOptions {
  /** "ept" (Intel, default) or "npt" (AMD). */
  stage?: "ept" | "npt";
  /** Second-stage levels: 4 (default) or 5. */
  levels?: 4 | 5;
  /** EPT accessed/dirty flags (EPTP bit 6). Default false. */
  ad?: boolean;
  /**
   * Walk caches (guest PSC, nested TLB, host PSC; Bhargava et al. 2008),
   * all off by default. Guest INVLPG and CR3 loads drop the guest PSC;
   * second-stage changes (P2M zaps) drop the nested TLB and host PSC as
   * INVEPT single-context does.
   */
  caches?: NestedWalkerOptions;
  /**
   * The physical CPU's VPID/ASID-tagged TLB, shared by the schemes of every
   * VM that runs on it (default: none, every access walks). Combined
   * (gla → hpa) mappings are looked up before walking and filled after a
   * successful walk.
   */
  tlb?: TaggedTlb;
  /**
   * This vCPU's VPID (EPT) or ASID (NPT), the TLB tag: 1..65535 (default
   * 1). VPID 0 means "enable VPID" is off: every VM entry and exit then
   * flushes VPID 0's mappings (SDM §28.4.3.1). ASID 0 is the host's (APM
   * §15.16: VMRUN with ASID 0 fails), so NPT needs 1..65535.
   */
  vpid?: number;
  /**
   * Second-stage page size: "4k" (default) installs a 4 KiB leaf per
   * fault; "2m" installs a 2 MiB leaf when the whole 2 MiB-aligned gfn
   * region around the faulting gfn is resident on one 2 MiB-aligned run
   * of machine frames with the same rights and none of it is being
   * dirty-logged (KVM on THP/hugetlbfs memslots, Xen HAP with superpage
   * populated guests), else a 4 KiB leaf.
   */
  hostPages?: "4k" | "2m";
}

/**
 * Dirty-logging mode (KVM `KVM_MEM_LOG_DIRTY_PAGES`): "write-protect"
 * clears W in the second-stage leaves and logs a page on its write fault
 * (restoring W); "pml" clears the EPT dirty flags and lets the CPU log the
 * gpa of each leaf whose D it sets into a 512-entry page-modification log
 * (SDM §28.3.6), with a "log full" exit when it runs out.
 */
export type DirtyLogMode = "write-protect" | "pml";

/** Options for {@linkcode NestedScheme.startDirtyLog}. */
export interface DirtyLogOptions {
  /** Default "pml" with EPT A/D, else "write-protect". PML needs EPT with `ad: true`. */
  mode?: DirtyLogMode;
  /** First gfn logged (default 0). */
  firstGfn?: number;
  /** Gfns logged (default: up to the end of the domain's gfn space). */
  count?: number;
  /**
   * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: {@linkcode NestedScheme.getDirtyLog}
   * only reads the bitmap and {@linkcode NestedScheme.clearDirtyLog}
   * clears and re-arms (default false: KVM_GET_DIRTY_LOG clears and
   * re-arms what it returns).
   */
  manualProtect?: boolean;
}

/** The dirty bitmap as KVM_GET_DIRTY_LOG returns it, plus a list. */
export interface DirtyLog {
  /** The logging mode. */
  readonly mode: DirtyLogMode;
  /** First gfn of the logged range. */
  readonly firstGfn: number;
  /** Gfns in the range. */
  readonly count: number;
  /** Bit `i % 8` of byte `i >> 3` set = gfn `firstGfn + i` dirty (a copy). */
  readonly bitmap: Uint8Array;
  /** The dirty gfns, ascending. */
  readonly dirty: readonly number[];
}

/** Entries of the page-modification log (SDM §28.3.6). */
export const PML_ENTRIES = 512;

const PAGE = 4096;
/** 4 KiB pages per 2 MiB page. */
const LARGE = 512;
/** Zapping more gfns than this drops the whole second stage instead. */
const ZAP_ALL = 4096;

/**
 * Hardware-assisted paging: guest tables walked by the "hardware" through
 * EPT or NPT tables the hypervisor builds on demand, of 4 KiB leaves or,
 * with `hostPages: "2m"`, of 2 MiB leaves where the domain's memory allows
 * (see the module doc).
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { NestedScheme } from "./scheme.ts";
 * import { PageTable } from "../../paging/builder.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "kvm" });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const hap = new NestedScheme({ ad: true });
 * hap.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x5000, { user: true });
 * hap.loadCr3(pt.root);
 * const r = hap.access(0x1008, { kind: "write", value: 7 });
 * assert.equal(r.outcome.kind, "ok");
 * assert.equal(r.exits, 5);                       // 4 guest tables + the data page
 * assert.equal(hap.access(0x1008).exits, 0);     // now mapped
 * assert.equal(pt.lookup(0x1000).steps[3].flags.dirty, true);
 * assert.equal(hap.counters.exitsByReason["ept-violation"], 5);
 * ```
 */
export class NestedScheme extends BaseScheme {
  /** "nested". */
  readonly name = "nested";
  /** "ept" or "npt". */
  readonly stage: "ept" | "npt";
  /** Second-stage levels. */
  readonly levels: 4 | 5;
  /** EPT A/D enabled. */
  readonly ad: boolean;
  /** Second-stage leaf size the violation handler installs: "4k" or "2m" where eligible. */
  readonly hostPages: "4k" | "2m";
  #root = 0;
  #hostRoot = 0;
  #frames: HypervisorFrameSource | undefined = undefined;
  #ept: EptMode | undefined = undefined;
  #npt: PagingMode | undefined = undefined;
  #npTable: PageTable<PhysicalMemory, HypervisorFrameSource> | undefined =
    undefined;
  #walker: NestedWalker | undefined = undefined;
  #es = new EptScratch();
  #ns = new WalkScratch();
  #walks = 0;
  #refs = 0;
  #tableViolations = 0;
  #finalViolations = 0;
  #mapped = 0;
  #largeMapped = 0;
  #largeSplit = 0;
  #collapsed = 0;
  #zapped = 0;
  #mmioExits = 0;
  #caches: NestedWalkerOptions;
  #tlb: TaggedTlb | undefined;
  #vpid: number;
  #tlbHits = 0;
  #tlbMisses = 0;
  #entries = 0;
  // dirty logging
  #logMode: DirtyLogMode | undefined = undefined;
  #logFirst = 0;
  #logCount = 0;
  #logManual = false;
  #bitmap: Uint8Array = new Uint8Array(0);
  #pml: Float64Array = new Float64Array(PML_ENTRIES);
  #pmlIndex = PML_ENTRIES - 1;
  #pmlPending: Float64Array = new Float64Array(16);
  #pmlPendingCount = 0;
  #dirtyFaults = 0;
  #pmlLogged = 0;
  #pmlFullExits = 0;

  /** Create an unattached nested-paging scheme. Validates loudly. */
  constructor(options: NestedOptions = {}) {
    super(options);
    const stage = options.stage ?? "ept";
    if (stage !== "ept" && stage !== "npt") {
      throw new RangeError(
        `stage "${String(stage)}" is invalid: expected "ept" or "npt"`,
      );
    }
    const levels = options.levels ?? 4;
    if (levels !== 4 && levels !== 5) {
      throw new RangeError(
        `levels ${String(levels)} is invalid: expected 4 or 5`,
      );
    }
    if (stage === "npt" && options.ad) {
      throw new RangeError(
        "ad applies to EPT only: NPT entries always have A/D bits",
      );
    }
    this.stage = stage;
    this.levels = levels;
    this.ad = options.ad ?? false;
    const hostPages = options.hostPages ?? "4k";
    if (hostPages !== "4k" && hostPages !== "2m") {
      throw new RangeError(
        `hostPages "${String(hostPages)}" is invalid: expected "4k" or "2m"`,
      );
    }
    this.hostPages = hostPages;
    this.#caches = options.caches ?? {};
    const vpid = options.vpid ?? 1;
    if (!Number.isInteger(vpid) || vpid < 0 || vpid > 0xffff) {
      throw new RangeError(
        `vpid ${String(vpid)} is invalid: expected an integer in [0, 65535]`,
      );
    }
    if (stage === "npt" && vpid === 0) {
      throw new RangeError(
        "ASID 0 is invalid for a guest: it is the host's (VMRUN fails, APM §15.16); expected 1..65535",
      );
    }
    this.#tlb = options.tlb;
    this.#vpid = vpid;
  }

  /** The shared tagged TLB, if any. */
  get tlb(): TaggedTlb | undefined {
    return this.#tlb;
  }

  /** This vCPU's VPID (EPT) or ASID (NPT). */
  get vpid(): number {
    return this.#vpid;
  }

  /**
   * A VM entry of this vCPU, e.g. when the physical CPU switches to this
   * VM. With a nonzero VPID the tagged TLB keeps every VM's entries (no
   * flush on a VM switch); with VPID 0 it drops VPID 0's mappings.
   * Returns the TLB entries dropped.
   *
   * @example
   * ```ts
   * import { Host } from "../host.ts";
   * import { NestedScheme } from "./scheme.ts";
   * import { TaggedTlb } from "../../tlb/tagged.ts";
   * import { pagingMode } from "../../paging/mode.ts";
   * import { X86_64_4LEVEL } from "../../paging/format.ts";
   * import assert from "node:assert/strict";
   * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "kvm" });
   * const tlb = new TaggedTlb();
   * const mode = pagingMode(X86_64_4LEVEL);
   * const a = new NestedScheme({ tlb, vpid: 1 }), b = new NestedScheme({ tlb, vpid: 2 });
   * for (const s of [a, b]) {
   *   const vm = host.createDomain({ memory: 2 ** 20 });
   *   s.attach({ host, domain: vm, memory: vm.memory, mode });
   * }
   * assert.equal(a.enter() + b.enter(), 0);
   * assert.equal(a.counters.extra.vmEntries, 1);
   * ```
   */
  enter(): number {
    this.#entries++;
    return this.#tlb?.vmTransition(this.#vpid) ?? 0;
  }

  /** The guest's current root (gpa). */
  get root(): number {
    return this.#root;
  }

  /** The second-stage root table (hpa). */
  get hostRoot(): number {
    return this.#hostRoot;
  }

  /** The 2-D walker (its record describes the last walk). */
  get walker(): NestedWalker {
    if (this.#walker === undefined) {
      throw new RangeError(
        "nested scheme is not attached: call attach() first",
      );
    }
    return this.#walker;
  }

  /**
   * The page shift of the second-stage leaf that maps `gpa` now: 21 for a
   * 2 MiB leaf, 12 for a 4 KiB leaf or when nothing maps it. A walk that
   * sets no A/D bits and counts nothing. A TLB that caches the combined
   * translation may use min(guest page, this) as the entry's size.
   * Throws `RangeError` for a gpa that is not an integer in
   * [0, 2^48) (2^57 with 5 levels), or when the scheme is not attached.
   *
   * @example A contiguous Xen domain gets 2 MiB leaves with `hostPages: "2m"`.
   * ```ts
   * import { Host } from "../host.ts";
   * import { NestedScheme } from "./scheme.ts";
   * import { PageTable } from "../../paging/builder.ts";
   * import { pagingMode } from "../../paging/mode.ts";
   * import { X86_64_4LEVEL } from "../../paging/format.ts";
   * import assert from "node:assert/strict";
   * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "xen" });
   * const vm = host.createDomain({ memory: 4 * 2 ** 20, placement: "contiguous" });
   * const mode = pagingMode(X86_64_4LEVEL);
   * const hap = new NestedScheme({ hostPages: "2m" });
   * hap.attach({ host, domain: vm, memory: vm.memory, mode });
   * const pt = new PageTable(vm.memory.unwatched, { mode });
   * pt.map(0x1000, 0x5000, { user: true });
   * hap.loadCr3(pt.root);
   * assert.equal(hap.secondStagePageShift(0x5000), 12);  // nothing mapped yet
   * const r = hap.access(0x1000);
   * assert.equal(r.exits, 1);          // tables and data page: one 2 MiB region
   * assert.equal(hap.counters.extra.largeLeavesMapped, 1);
   * assert.equal(hap.secondStagePageShift(0x5000), 21);
   * assert.equal(hap.secondStagePageShift(0x200000), 12); // the next region
   * ```
   */
  secondStagePageShift(gpa: number): number {
    this.walker; // throws when not attached
    const bits = this.levels === 5 ? 57 : 48;
    if (!Number.isInteger(gpa) || gpa < 0 || gpa >= 2 ** bits) {
      throw new RangeError(
        `gpa ${String(gpa)} is invalid: expected an integer in [0, 2^${bits})`,
      );
    }
    const shift = this.#probe(gpa);
    return shift === 0 ? 12 : shift;
  }

  /** Allocate the second-stage root and the walker. */
  protected override onAttach(context: SchemeContext): void {
    const host = context.host;
    this.#frames = host.frameSource(
      this.stage === "ept" ? "EPT tables" : "NPT tables",
    );
    if (this.stage === "ept") {
      this.#ept = eptMode(this.levels === 4 ? EPT_4LEVEL : EPT_5LEVEL, {
        ad: this.ad,
      });
      this.#hostRoot = this.#frames.alloc();
      this.#walker = new NestedWalker(
        context.mode,
        { kind: "ept", mode: this.#ept },
        host.memory,
        this.#hostRoot,
        this.#caches,
      );
    } else {
      this.#npt = nptMode({ levels: this.levels });
      this.#npTable = new PageTable(host.memory, {
        mode: this.#npt,
        allocator: this.#frames,
      });
      this.#hostRoot = this.#npTable.root;
      this.#walker = new NestedWalker(
        context.mode,
        { kind: "npt", mode: this.#npt },
        host.memory,
        this.#hostRoot,
        this.#caches,
      );
    }
  }

  /**
   * No exit: the guest's CR3 is its own. Drops the guest-dimension caches
   * and this VPID's non-global combined mappings for every EPTP (SDM
   * §4.10.4.1, §28.4.3.1); other VMs' entries stay.
   */
  protected override onLoadCr3(root: number): void {
    this.#root = root;
    this.#walker?.invalidateGuest();
    this.#tlb?.guestCr3Load(this.#vpid);
  }

  /**
   * No exit: guest INVLPG drops the guest PSC of this context and this
   * VPID's combined mappings of the page, globals included, for every
   * EPTP (SDM §4.10.4.1, §28.4.3.1).
   */
  protected override onInvlpg(vaHi: number, vaLo: number): void {
    this.#walker?.invalidateGuest();
    this.#tlb?.guestInvlpg(this.#vpid, vaHi, vaLo);
  }

  /**
   * Zap the second-stage leaves of changed gfns (KVM `kvm_unmap_gfn_range`);
   * a 2 MiB leaf goes whole when any of its gfns changes.
   */
  protected override onP2mChanged(firstGfn: number, count: number): void {
    if (this.#walker === undefined) return;
    // KVM flushes the remote TLBs after a zap: INVEPT single-context
    this.#walker.invept("single");
    this.#tlb?.invept("single-context", this.#hostRoot);
    if (count > ZAP_ALL) {
      this.#resetSecondStage();
      return;
    }
    for (let gfn = firstGfn; gfn < firstGfn + count; gfn++) {
      // a 2 MiB leaf goes whole: the next faults in its region map 4 KiB
      // or 2 MiB leaves as eligibility says then
      const shift = this.#probe(gfn * PAGE);
      if (shift !== 0) {
        this.#clearLeaf(gfn * PAGE, shift);
        this.#zapped++;
      }
    }
  }

  /**
   * Walk the second stage for `gpa` without setting A/D bits or counting
   * anything; returns the leaf's page shift (12 or 21), or 0 when no leaf
   * maps it. The path stays in the scheme's scratch (#es or #ns).
   */
  #probe(gpa: number): number {
    const mem = this.context.host.memory;
    if (this.#ept !== undefined) {
      const s = this.#es;
      return eptWalkInto(s, this.#ept, mem, this.#hostRoot, gpa, 0, false) ===
          0
        ? s.pageShift
        : 0;
    }
    const s = this.#ns;
    return walkInto(
        s,
        this.#npt!,
        mem,
        this.#hostRoot,
        Math.floor(gpa / 2 ** 32),
        gpa >>> 0,
        ACCESS_USER,
        0,
        0,
        0,
        7,
        false,
      ) === WALK_OK
      ? s.pageShift
      : 0;
  }

  /** After {@linkcode #probe}: the level-2 entry's address and raw low dword, and the table it points to (-1 if none). */
  #probeLevel2(): { ea: number; lo: number; table: number } {
    const ept = this.#ept;
    const steps = ept !== undefined ? this.#es.steps : this.#ns.steps;
    const level = ept !== undefined ? this.#es.level : this.#ns.level;
    const ea = ept !== undefined ? this.#es.entryAddr : this.#ns.entryAddr;
    const lo = ept !== undefined ? this.#es.lo : this.#ns.lo;
    const hi = ept !== undefined ? this.#es.hi : this.#ns.hi;
    for (let i = 0; i < steps; i++) {
      if (level[i] !== 2) continue;
      const present = ept !== undefined ? (lo[i] & 7) !== 0 : (lo[i] & 1) !== 0;
      if (!present || (lo[i] & 0x80) !== 0) {
        return { ea: ea[i], lo: lo[i], table: -1 };
      }
      const aLo = ept !== undefined ? ept.addrLo : this.#npt!.tables.addrLo;
      const aHi = ept !== undefined ? ept.addrHi : this.#npt!.tables.addrHi;
      return {
        ea: ea[i],
        lo: lo[i],
        table: (hi[i] & aHi) * 4294967296 + ((lo[i] & aLo) >>> 0),
      };
    }
    return { ea: -1, lo: 0, table: -1 };
  }

  /** Remove the leaf of page shift `shift` (from {@linkcode #probe}) that maps `gpa`. */
  #clearLeaf(gpa: number, shift: number): void {
    if (this.#ept !== undefined) {
      const mem = this.context.host.memory;
      const s = this.#es;
      const ea = s.entryAddr[s.steps - 1];
      mem.write32(ea, 0);
      mem.write32(ea + 4, 0);
    } else {
      const size = 2 ** shift;
      this.#npTable!.unmap(gpa - (gpa % size));
    }
  }

  #resetSecondStage(): void {
    this.#frames!.freeAll();
    if (this.#ept !== undefined) {
      this.#hostRoot = this.#frames!.alloc();
    } else {
      this.#npTable = new PageTable(this.context.host.memory, {
        mode: this.#npt!,
        allocator: this.#frames!,
      });
      this.#hostRoot = this.#npTable.root;
    }
    this.#walker!.hostRoot = this.#hostRoot;
    this.#zapped++;
  }

  /** The 2-D walk; second-stage faults are handled and the access retried. */
  protected performAccess(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const r = this.#translateAndAccess(state, vaHi, vaLo, flags, size, value);
    if (this.#pmlPendingCount > 0) this.#pmlFull(state, vaHi, vaLo);
    return r;
  }

  #translateAndAccess(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const w = this.#walker!;
    const tlb = this.#tlb;
    if (tlb !== undefined) {
      const slot = tlb.lookupCombined(
        this.#vpid,
        0,
        this.#hostRoot,
        vaHi,
        vaLo,
      );
      // a hit is used only if its rights allow this access (the guest
      // walker's own verdict); otherwise the access walks again, as it
      // must to set a D bit or to fault
      if (
        slot >= 0 &&
        checkRights(
            this.context.mode,
            tlb.rightsCombined(slot),
            0,
            flags,
            0,
          ) === 0
      ) {
        this.#tlbHits++;
        state.gpa = tlb.gpaCombined(slot, vaLo);
        return this.dataAccessHpa(
          state,
          tlb.translateCombined(slot, vaLo),
          flags,
          size,
          value,
        );
      }
      this.#tlbMisses++;
    }
    // each retry maps one more gpa; n guest levels + the data page at most
    for (let tries = 0; tries < 16; tries++) {
      const r = w.walk(this.#root, vaHi, vaLo, flags);
      this.#walks++;
      this.#refs += w.made;
      if (r === NESTED_OK) {
        state.gpa = w.gpa;
        if (tlb !== undefined) this.#fillTlb(tlb, w, vaHi, vaLo);
        return this.dataAccessHpa(state, w.hpa, flags, size, value);
      }
      if (r === NESTED_GUEST_PF) {
        state.errorCode = w.guest.errorCode;
        state.reason = w.guest.reason;
        state.level = w.guest.leafLevel;
        return GUEST_PF;
      }
      if (r === NESTED_GUEST_GP) {
        state.reason = w.guest.reason;
        return GUEST_GP;
      }
      if (r === NESTED_EPT_MISCONFIG) {
        throw new Error(
          `internal: EPT misconfiguration at gpa ${
            hex64(0, w.gpa)
          } (the scheme never builds one)`,
        );
      }
      if (r !== NESTED_EPT_VIOLATION && r !== NESTED_NPF) {
        throw new Error(`internal: nested outcome ${r}`);
      }
      const reason = r === NESTED_NPF ? "npf" : "ept-violation";
      this.vmExit(
        state,
        reason,
        hex64(vaHi, vaLo),
        w.gpa,
        w.onTableWalk ? `guest L${w.faultGuestLevel} table` : "final gpa",
      );
      if (w.onTableWalk) this.#tableViolations++;
      else this.#finalViolations++;
      if (!this.#fix(state, w.gpa, w.onTableWalk, flags, vaHi, vaLo)) {
        return GUEST_UNBACKED;
      }
    }
    throw new Error("internal: nested access did not converge");
  }

  /**
   * Cache the walk's combined translation (always a 4 KiB entry, whatever
   * the guest and second-stage page sizes): the guest rights AND the second
   * stage's; W only once both leaves are dirty (a write through a clean
   * entry walks again to set D, SDM §4.8 and §28.3.5). Not with protection
   * keys (the key is not cached here), nor for an unreadable (execute-only)
   * second-stage page.
   */
  #fillTlb(tlb: TaggedTlb, w: NestedWalker, vaHi: number, vaLo: number): void {
    const hr = w.finalHostRights;
    if ((hr & EPT_READ) === 0 || this.context.mode.pke) return;
    const g = w.guest;
    let rights = g.finalRights & 7;
    if (!g.dirty || (hr & EPT_WRITE) === 0) rights &= ~RIGHT_W;
    if ((hr & EPT_FETCH) === 0) rights &= ~RIGHT_X;
    tlb.fillCombined(
      this.#vpid,
      0,
      this.#hostRoot,
      vaHi,
      vaLo,
      w.hpa,
      rights,
      g.global,
      w.gpa,
    );
  }

  /** The violation handler (KVM `kvm_tdp_mmu_map`): install the gfn's frame. */
  #fix(
    state: GuestAccessState,
    gpa: number,
    table: boolean,
    flags: number,
    vaHi: number,
    vaLo: number,
  ): boolean {
    const d = this.context.domain;
    const gfn = Math.floor(gpa / PAGE);
    // table walks write A/D, so they need the page writable too
    const write = (flags & ACCESS_WRITE) !== 0 && !table;
    const mfn = d.mfnForAccess(gfn, write);
    const ro = mfn >= 0 && d.mfnForAccess(gfn, true) < 0;
    if (mfn < 0 || (ro && (table || write))) {
      state.gpa = gpa;
      state.problem = gpaProblem(mfn < 0 ? mfn : d.mfnForAccess(gfn, true));
      state.inWalk = table;
      this.#mmioExits++;
      this.vmExit(
        state,
        "mmio",
        hex64(vaHi, vaLo),
        gpa,
        table ? "guest page walk" : undefined,
      );
      return false;
    }
    const gpaPage = gfn * PAGE, hpa = mfn * PAGE;
    // Dirty logging: a write fault on a logged gfn marks it dirty and
    // restores W (KVM `fast_page_fault`); under write-protect logging any
    // other fault maps a logged gfn without W, so its first write faults
    const wantWrite = this.#ept !== undefined
      ? (this.walker.exitQualification & EXITQ_WRITE) !== 0
      : (this.walker.npfErrorCode & PFEC_W) !== 0;
    const logged = this.#logMode !== undefined && gfn >= this.#logFirst &&
      gfn < this.#logFirst + this.#logCount;
    let writable = !ro;
    if (logged && this.#logMode === "write-protect") {
      if (wantWrite) {
        this.#markDirty(gfn);
        this.#dirtyFaults++;
      } else writable = false;
    }
    if (
      this.hostPages === "2m" && !logged && this.#largeEligible(gfn, mfn, !ro)
    ) {
      const r = gfn - (gfn % LARGE);
      this.#mapLarge(r * PAGE, (mfn - (gfn - r)) * PAGE, !ro);
      return true;
    }
    // whatever maps the page now goes (a 2 MiB leaf whole: its other pages
    // fault back in)
    const old = this.#probe(gpaPage);
    if (old !== 0) this.#clearLeaf(gpaPage, old);
    this.#installLeaf(gpaPage, hpa, 12, writable, !logged);
    return true;
  }

  /**
   * Install one second-stage leaf of `2^shift` bytes (nothing maps `gpa`
   * yet); with PML, `presetD` sets its dirty flag so that the CPU does not
   * log it. Counts it.
   */
  #installLeaf(
    gpa: number,
    hpa: number,
    shift: 12 | 21,
    writable: boolean,
    presetD: boolean,
  ): void {
    if (this.#ept !== undefined) {
      eptMap(
        this.#ept,
        this.context.host.memory,
        () => this.#frames!.alloc(),
        this.#hostRoot,
        gpa,
        hpa,
        { pageShift: shift, write: writable },
      );
      if (this.#logMode === "pml" && presetD) this.#presetDirty(gpa);
    } else {
      this.#npTable!.map(gpa, hpa, {
        size: 2 ** shift,
        user: true,
        writable,
        executable: true,
      });
    }
    this.#mapped++;
    if (shift === 21) this.#largeMapped++;
  }

  /**
   * KVM presets D on the EPT leaves of gfns not being logged, so that PML
   * records only logged ones.
   */
  #presetDirty(gpa: number): void {
    const mem = this.context.host.memory, s = this.#es;
    eptWalkInto(s, this.#ept!, mem, this.#hostRoot, gpa, 0, false);
    const ea = s.entryAddr[s.steps - 1];
    mem.write32(ea, (mem.read32(ea) | 0x200) >>> 0);
  }

  /**
   * Whether the 2 MiB region of `gfn` (which the caller found at `mfn`,
   * writable or not) can be one 2 MiB leaf: every gfn of the region inside
   * the gfn space and resident now, at `mfn0 + i` with `mfn0` 2 MiB-aligned,
   * all with the same writability, none being dirty-logged (KVM disables
   * huge pages on a slot with KVM_MEM_LOG_DIRTY_PAGES). Nothing is faulted
   * in: the other gfns are checked with `lookup`, which has no side
   * effects, and only once resident is `mfnForAccess(g, true)` asked about
   * writability — for a Xen domain a P2M read; for a KVM domain the
   * memslot's read-only flag, then the resident page (it may memoize it;
   * it cannot fault one in).
   */
  #largeEligible(gfn: number, mfn: number, writable: boolean): boolean {
    const d = this.context.domain;
    const r = gfn - (gfn % LARGE);
    if (r + LARGE > d.gfnCount) return false;
    const mfn0 = mfn - (gfn - r);
    if (mfn0 < 0 || mfn0 % LARGE !== 0) return false;
    if (
      this.#logMode !== undefined && r < this.#logFirst + this.#logCount &&
      this.#logFirst < r + LARGE
    ) return false;
    for (let g = r; g < r + LARGE; g++) {
      if (g === gfn) continue;
      const m = mfn0 + (g - r);
      if (d.lookup(g) !== m || d.mfnForAccess(g, false) !== m) return false;
      if ((d.mfnForAccess(g, true) >= 0) !== writable) return false;
    }
    return true;
  }

  /**
   * Install a 2 MiB leaf for the region at `gpa` → `hpa`. A 4 KiB table
   * already under the region's level-2 entry (from earlier, ineligible
   * faults) is replaced and its frame freed, as KVM's `kvm_tdp_mmu_map`
   * replaces a non-leaf SPTE at the goal level; the walk caches are then
   * flushed (INVEPT single-context), since the host PSC may hold the
   * freed table.
   */
  #mapLarge(gpa: number, hpa: number, writable: boolean): void {
    const mem = this.context.host.memory;
    const shift = this.#probe(gpa);
    if (shift === 21) this.#clearLeaf(gpa, 21);
    else {
      const { ea, table } = this.#probeLevel2();
      if (table >= 0) {
        if (this.#ept !== undefined) {
          mem.write32(ea, 0);
          mem.write32(ea + 4, 0);
          this.#frames!.free(table);
        } else {
          // unmap the table's leaves; the builder frees the empty table
          // when the large page replaces it
          for (let i = 0; i < LARGE; i++) {
            if ((mem.read32(table + i * 8) & 1) !== 0) {
              this.#npTable!.unmap(gpa + i * PAGE);
            }
          }
        }
        this.#collapsed++;
        this.#walker!.invept("single");
        this.#tlb?.invept("single-context", this.#hostRoot);
      }
    }
    // not logged (eligibility), so PML must not record it
    this.#installLeaf(gpa, hpa, 21, writable, true);
  }

  /**
   * Split the 2 MiB leaves overlapping gfns `[first, first + count)` into
   * 4 KiB leaves with the same frames and rights (KVM's eager page split
   * when dirty logging starts), so that logged gfns get 4 KiB leaves.
   * The new leaves start with A/D clear, except that PML presets D on the
   * gfns not logged.
   */
  #splitLarge(first: number, count: number): void {
    const mem = this.context.host.memory;
    const r0 = first - (first % LARGE);
    for (let r = r0; r < first + count; r += LARGE) {
      const gpa = r * PAGE;
      if (this.#probe(gpa) !== 21) continue;
      let hpa: number, writable: boolean;
      if (this.#ept !== undefined) {
        const s = this.#es, last = s.steps - 1;
        hpa = (s.hi[last] & this.#ept.addrHi) * 4294967296 +
          ((s.lo[last] & this.#ept.addrLo) >>> 0);
        writable = (s.lo[last] & 2) !== 0;
      } else {
        hpa = this.#ns.pa - (this.#ns.pa % 2 ** 21);
        writable = (this.#ns.finalRights & RIGHT_W) !== 0;
      }
      hpa -= hpa % 2 ** 21;
      this.#clearLeaf(gpa, 21);
      for (let i = 0; i < LARGE; i++) {
        const g = r + i;
        if (this.#ept !== undefined) {
          eptMap(
            this.#ept,
            mem,
            () => this.#frames!.alloc(),
            this.#hostRoot,
            g * PAGE,
            hpa + i * PAGE,
            { write: writable },
          );
          const logged = g >= this.#logFirst &&
            g < this.#logFirst + this.#logCount;
          if (this.#logMode === "pml" && !logged) this.#presetDirty(g * PAGE);
        } else {
          this.#npTable!.map(g * PAGE, hpa + i * PAGE, {
            user: true,
            writable,
            executable: true,
          });
        }
      }
      this.#largeSplit++;
    }
  }

  // ---- dirty logging (KVM_MEM_LOG_DIRTY_PAGES) ---------------------------

  /**
   * Start dirty logging on a gfn range, as KVM does for live migration
   * when a memslot gets `KVM_MEM_LOG_DIRTY_PAGES`: the bitmap starts
   * clean and every present leaf in the range is armed (write-protect:
   * W cleared; PML: D cleared), then the TLBs are flushed (INVEPT). 2 MiB
   * leaves overlapping the range are split into 4 KiB leaves first.
   * Throws `RangeError` for a bad range or mode, or PML without EPT A/D.
   *
   * @example Write-protect logging: the first write to a page exits once and is logged.
   * ```ts
   * import { Host } from "../host.ts";
   * import { NestedScheme } from "./scheme.ts";
   * import { PageTable } from "../../paging/builder.ts";
   * import { pagingMode } from "../../paging/mode.ts";
   * import { X86_64_4LEVEL } from "../../paging/format.ts";
   * import assert from "node:assert/strict";
   * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "kvm" });
   * const vm = host.createDomain({ memory: 2 ** 20 });
   * const mode = pagingMode(X86_64_4LEVEL);
   * const hap = new NestedScheme();
   * hap.attach({ host, domain: vm, memory: vm.memory, mode });
   * const pt = new PageTable(vm.memory.unwatched, { mode });
   * pt.map(0x1000, 0x5000, { user: true, writable: true });
   * hap.loadCr3(pt.root);
   * hap.access(0x1000, { kind: "write", value: 1 });   // faults everything in
   * hap.startDirtyLog({ mode: "write-protect" });
   * const r = hap.access(0x1000, { kind: "write", value: 2 });
   * assert.equal(r.exits, 1);                           // the write-protect fault
   * assert.deepEqual(hap.getDirtyLog().dirty, [5]);     // gfn 5, then cleared
   * assert.deepEqual(hap.getDirtyLog().dirty, []);
   * ```
   */
  startDirtyLog(options: DirtyLogOptions = {}): void {
    const d = this.context.domain;
    const mode = options.mode ?? (this.ad ? "pml" : "write-protect");
    if (mode !== "write-protect" && mode !== "pml") {
      throw new RangeError(
        `dirty-log mode "${
          String(mode)
        }" is invalid: expected "write-protect" or "pml"`,
      );
    }
    if (mode === "pml" && (this.#ept === undefined || !this.ad)) {
      throw new RangeError(
        `dirty-log mode "pml" needs EPT with A/D flags (ad: true); this scheme is ${this.stage}${
          this.ad ? "" : " without A/D"
        }: use "write-protect"`,
      );
    }
    const first = options.firstGfn ?? 0;
    const count = options.count ?? d.gfnCount - first;
    if (
      !Number.isInteger(first) || first < 0 || !Number.isInteger(count) ||
      count < 1 || first + count > d.gfnCount
    ) {
      throw new RangeError(
        `dirty-log range [${String(first)}, +${
          String(count)
        }) is invalid: expected gfns within [0, ${d.gfnCount})`,
      );
    }
    this.#logMode = mode;
    this.#logFirst = first;
    this.#logCount = count;
    this.#logManual = options.manualProtect ?? false;
    this.#bitmap = new Uint8Array(Math.ceil(count / 8));
    this.#pmlIndex = PML_ENTRIES - 1;
    this.#pmlPendingCount = 0;
    this.walker.onDirty = mode === "pml"
      ? (gpa: number) => this.#pmlLog(gpa)
      : undefined;
    this.#splitLarge(first, count);
    this.#arm(first, count, undefined);
  }

  /** Stop dirty logging (leaves stay as they are; a write-protected one regains W on its next write fault). */
  stopDirtyLog(): void {
    if (this.#logMode === "pml") this.#drainPml();
    this.#logMode = undefined;
    this.walker.onDirty = undefined;
  }

  /** The dirty-logging mode, or undefined when off. */
  get dirtyLogMode(): DirtyLogMode | undefined {
    return this.#logMode;
  }

  /**
   * KVM_GET_DIRTY_LOG: the bitmap of gfns written since logging started or
   * since the last get/clear (PML entries are drained into it first).
   * Without `manualProtect` the bits returned are cleared and their pages
   * re-armed (W or D cleared again, TLBs flushed); with it, nothing
   * changes until {@linkcode NestedScheme.clearDirtyLog}.
   */
  getDirtyLog(): DirtyLog {
    const log = this.#requireLog("getDirtyLog");
    if (log === "pml") this.#drainPml();
    const bitmap = this.#bitmap.slice();
    const dirty: number[] = [];
    for (let i = 0; i < this.#logCount; i++) {
      if ((bitmap[i >> 3] & (1 << (i & 7))) !== 0) {
        dirty.push(this.#logFirst + i);
      }
    }
    if (!this.#logManual && dirty.length > 0) {
      this.#bitmap.fill(0);
      this.#arm(this.#logFirst, this.#logCount, bitmap);
    }
    return {
      mode: log,
      firstGfn: this.#logFirst,
      count: this.#logCount,
      bitmap,
      dirty,
    };
  }

  /**
   * KVM_CLEAR_DIRTY_LOG (manual-protect mode only): clear the dirty bits
   * of `[firstGfn, firstGfn + count)` and re-arm those pages. Returns how
   * many bits were set.
   */
  clearDirtyLog(firstGfn: number, count: number): number {
    this.#requireLog("clearDirtyLog");
    if (!this.#logManual) {
      throw new RangeError(
        "clearDirtyLog needs manualProtect: true (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2); without it getDirtyLog clears",
      );
    }
    const lo = this.#logFirst, hi = lo + this.#logCount;
    if (
      !Number.isInteger(firstGfn) || !Number.isInteger(count) || count < 1 ||
      firstGfn < lo || firstGfn + count > hi
    ) {
      throw new RangeError(
        `clear range [${String(firstGfn)}, +${
          String(count)
        }) is invalid: expected gfns within the logged range [${lo}, ${hi})`,
      );
    }
    if (this.#logMode === "pml") this.#drainPml();
    const mask = new Uint8Array(this.#bitmap.length);
    let n = 0;
    for (let g = firstGfn; g < firstGfn + count; g++) {
      const i = g - lo, bit = 1 << (i & 7);
      if ((this.#bitmap[i >> 3] & bit) !== 0) {
        this.#bitmap[i >> 3] &= ~bit;
        mask[i >> 3] |= bit;
        n++;
      }
    }
    if (n > 0) this.#arm(lo, this.#logCount, mask);
    return n;
  }

  /** The page-modification log: gpas logged so far (oldest first) and the CPU's PML index (511 = empty). */
  get pmlBuffer(): { readonly index: number; readonly gpas: number[] } {
    const gpas: number[] = [];
    for (let i = PML_ENTRIES - 1; i > this.#pmlIndex; i--) {
      gpas.push(this.#pml[i]);
    }
    return { index: this.#pmlIndex, gpas };
  }

  #requireLog(what: string): DirtyLogMode {
    if (this.#logMode === undefined) {
      throw new RangeError(
        `${what}: dirty logging is off (call startDirtyLog first)`,
      );
    }
    return this.#logMode;
  }

  #markDirty(gfn: number): void {
    const i = gfn - this.#logFirst;
    if (i >= 0 && i < this.#logCount) this.#bitmap[i >> 3] |= 1 << (i & 7);
  }

  /** The CPU's PML write (SDM §28.3.6): entry `index`, then index − 1. */
  #pmlLog(gpa: number): void {
    this.#pmlLogged++;
    if (this.#pmlIndex >= 0) {
      this.#pml[this.#pmlIndex--] = gpa;
      return;
    }
    // the log is full: the CPU would exit before this D update; the model
    // takes that exit right after the access (#pmlFull) and logs this gpa
    // into the emptied buffer, the state the retried access would leave
    if (this.#pmlPendingCount < this.#pmlPending.length) {
      this.#pmlPending[this.#pmlPendingCount] = gpa;
    }
    this.#pmlPendingCount++;
  }

  /** The "page-modification log full" exit (basic reason 62): KVM drains the buffer into the bitmap. */
  #pmlFull(state: GuestAccessState, vaHi: number, vaLo: number): void {
    this.#pmlFullExits++;
    this.vmExit(state, "pml-full", hex64(vaHi, vaLo));
    this.#drainPml();
    const n = Math.min(this.#pmlPendingCount, this.#pmlPending.length);
    this.#pmlPendingCount = 0;
    for (let i = 0; i < n; i++) {
      this.#pml[this.#pmlIndex--] = this.#pmlPending[i];
    }
  }

  #drainPml(): void {
    for (let i = PML_ENTRIES - 1; i > this.#pmlIndex; i--) {
      this.#markDirty(Math.floor(this.#pml[i] / PAGE));
    }
    this.#pmlIndex = PML_ENTRIES - 1;
  }

  /**
   * Arm the present leaves of `[first, first + count)` (those whose bit is
   * set in `only`, if given): clear W (write-protect) or D (PML); then
   * flush what cached them (INVEPT single-context).
   */
  #arm(first: number, count: number, only: Uint8Array | undefined): void {
    const mem = this.context.host.memory;
    const clear = this.#logMode === "pml" ? 0x200 : 0x2;
    for (let i = 0; i < count; i++) {
      if (only !== undefined && (only[i >> 3] & (1 << (i & 7))) === 0) continue;
      const gpa = (first + i) * PAGE;
      if (this.#probe(gpa) === 0) continue;
      const sc = this.#ept !== undefined ? this.#es : this.#ns;
      const ea = sc.entryAddr[sc.steps - 1];
      const lo = mem.read32(ea);
      if ((lo & clear) !== 0) mem.write32(ea, (lo & ~clear) >>> 0);
    }
    this.#walker!.invept("single");
    this.#tlb?.invept("single-context", this.#hostRoot);
  }

  /**
   * A VM exit (and the VM entry that resumes the guest): with VPID 0 both
   * flush VPID 0's TLB mappings (SDM §28.4.3.1); with a VPID, nothing.
   */
  protected override vmExit(
    state: GuestAccessState | undefined,
    reason: string,
    va?: string,
    gpa?: number,
    detail?: string,
  ): void {
    super.vmExit(state, reason, va, gpa, detail);
    this.#tlb?.vmTransition(this.#vpid);
  }

  /**
   * Walks, references, violations by cause, leaves installed (4 KiB and
   * 2 MiB) and zapped; with `hostPages: "2m"` also the 2 MiB leaves
   * installed, split (dirty logging) and the 4 KiB tables collapsed into
   * one.
   */
  protected override extraCounters(): Record<string, number> {
    return {
      nestedWalks: this.#walks,
      references: this.#refs,
      violationsOnTableWalk: this.#tableViolations,
      violationsOnFinalAccess: this.#finalViolations,
      leavesMapped: this.#mapped,
      ...(this.hostPages === "2m"
        ? {
          largeLeavesMapped: this.#largeMapped,
          largeLeavesSplit: this.#largeSplit,
          tablesCollapsed: this.#collapsed,
        }
        : {}),
      leavesZapped: this.#zapped,
      mmioExits: this.#mmioExits,
      secondStageFrames: this.#frames?.allocatedCount ?? 0,
      vmEntries: this.#entries,
      dirtyLogFaults: this.#dirtyFaults,
      pmlLogged: this.#pmlLogged,
      pmlFullExits: this.#pmlFullExits,
      ...(this.#tlb === undefined
        ? {}
        : { tlbHits: this.#tlbHits, tlbMisses: this.#tlbMisses }),
    };
  }

  /** Zero them (the second-stage tables stay). */
  protected override resetExtraCounters(): void {
    this.#walks = this.#refs = this.#tableViolations = 0;
    this.#finalViolations =
      this.#mapped =
      this.#largeMapped =
      this.#largeSplit =
      this.#collapsed =
      this.#zapped =
      this.#mmioExits =
        0;
    this.#tlbHits = this.#tlbMisses = this.#entries = 0;
    this.#dirtyFaults = this.#pmlLogged = this.#pmlFullExits = 0;
  }
}
