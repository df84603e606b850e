/**
 * Nested paging (Intel EPT / AMD NPT) as an {@linkcode MmuScheme}.
 *
 * The guest owns its page tables and CR3 outright: MOV to CR3 and INVLPG
 * cause no exits (no TLB is modelled yet, so they have nothing to do). The
 * hypervisor owns only the second-stage tables, in machine memory, built
 * lazily as KVM's `tdp_mmu_map` does: an access whose gpa has no EPT/NPT
 * entry exits with an EPT violation (#NPF); the handler asks the domain's
 * P2M or memslots for the frame (`mfnForAccess`, which faults the page into
 * the VMM under KVM), installs a 4 KiB leaf and resumes the guest, which
 * retries the access. A gpa with no memory behind it becomes an `"mmio"`
 * exit, as in the reference scheme. P2M changes zap the affected leaves.
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
  WALK_OK,
  walkInto,
  WalkScratch,
} from "../../paging/walker.ts";
import { hex64 } from "../../address/address.ts";
import { gpaProblem } from "../guest_memory.ts";
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
}

const PAGE = 4096;
/** Zapping more gfns than this drops the whole second stage instead. */
const ZAP_ALL = 4096;

/**
 * Hardware-assisted paging: guest tables walked by the "hardware" through
 * EPT or NPT tables the hypervisor builds on demand.
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
  #zapped = 0;
  #mmioExits = 0;
  #caches: NestedWalkerOptions;

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
    this.#caches = options.caches ?? {};
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

  /** No exit: the guest's CR3 is its own; drops the guest-dimension caches (SDM §4.10.4.1). */
  protected override onLoadCr3(root: number): void {
    this.#root = root;
    this.#walker?.invalidateGuest();
  }

  /** No exit: guest INVLPG drops the guest PSC of this context (SDM §4.10.4.1). */
  protected override onInvlpg(_vaHi: number, _vaLo: number): void {
    this.#walker?.invalidateGuest();
  }

  /** Zap the second-stage leaves of changed gfns (KVM `kvm_unmap_gfn_range`). */
  protected override onP2mChanged(firstGfn: number, count: number): void {
    if (this.#walker === undefined) return;
    // KVM flushes the remote TLBs after a zap: INVEPT single-context
    this.#walker.invept("single");
    if (count > ZAP_ALL) {
      this.#resetSecondStage();
      return;
    }
    const mem = this.context.host.memory;
    for (let gfn = firstGfn; gfn < firstGfn + count; gfn++) {
      const gpa = gfn * PAGE;
      if (this.#ept !== undefined) {
        const s = this.#es;
        if (
          eptWalkInto(s, this.#ept, mem, this.#hostRoot, gpa, 0, false) === 0
        ) {
          const ea = s.entryAddr[s.steps - 1];
          mem.write32(ea, 0);
          mem.write32(ea + 4, 0);
          this.#zapped++;
        }
      } else {
        const s = this.#ns;
        const r = walkInto(
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
        );
        if (r === WALK_OK) {
          this.#npTable!.unmap(gpa);
          this.#zapped++;
        }
      }
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
    const w = this.#walker!;
    // each retry maps one more gpa; n guest levels + the data page at most
    for (let tries = 0; tries < 16; tries++) {
      const r = w.walk(this.#root, vaHi, vaLo, flags);
      this.#walks++;
      this.#refs += w.made;
      if (r === NESTED_OK) {
        state.gpa = w.gpa;
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
    const mem = this.context.host.memory;
    const gpaPage = gfn * PAGE, hpa = mfn * PAGE;
    if (this.#ept !== undefined) {
      const s = this.#es;
      if (
        eptWalkInto(s, this.#ept, mem, this.#hostRoot, gpaPage, 0, false) === 0
      ) {
        const ea = s.entryAddr[s.steps - 1];
        mem.write32(ea, 0);
        mem.write32(ea + 4, 0);
      }
      eptMap(
        this.#ept,
        mem,
        () => this.#frames!.alloc(),
        this.#hostRoot,
        gpaPage,
        hpa,
        { write: !ro },
      );
    } else {
      const pt = this.#npTable!;
      try {
        pt.unmap(gpaPage);
      } catch {
        // not mapped
      }
      pt.map(gpaPage, hpa, { user: true, writable: !ro, executable: true });
    }
    this.#mapped++;
    return true;
  }

  /** Walks, references, violations by cause, leaves installed and zapped. */
  protected override extraCounters(): Record<string, number> {
    return {
      nestedWalks: this.#walks,
      references: this.#refs,
      violationsOnTableWalk: this.#tableViolations,
      violationsOnFinalAccess: this.#finalViolations,
      leavesMapped: this.#mapped,
      leavesZapped: this.#zapped,
      mmioExits: this.#mmioExits,
      secondStageFrames: this.#frames?.allocatedCount ?? 0,
    };
  }

  /** Zero them (the second-stage tables stay). */
  protected override resetExtraCounters(): void {
    this.#walks = this.#refs = this.#tableViolations = 0;
    this.#finalViolations =
      this.#mapped =
      this.#zapped =
      this.#mmioExits =
        0;
  }
}
