/**
 * Xen PV direct paging as an {@linkcode MmuScheme}: the MMU walks the
 * guest's own tables, which hold machine frame numbers, from a CR3 that is
 * a machine address; the guest changes them only through the hypervisor
 * ({@linkcode PvMmu}). Every entry into Xen counts as a VM exit, so event
 * counts compare with shadow and nested paging:
 *
 * - `hypercall`: each `mmu_update`, `mmuext_op` or `multicall` (a
 *   multicall is one entry, however many calls it carries);
 * - `ptwr`: a writable-page-table trap that Xen emulated;
 * - `pf-bounce`: every #PF the guest receives. A PV guest has no IDT of
 *   its own: Xen owns it, takes the fault, and bounces it to the guest
 *   kernel's handler (on 32- and 64-bit PV alike; the Xen paper: "each
 *   page fault under Xen costs two transitions into Xen", the fault and
 *   the update hypercall). A trapped store that Xen refuses to emulate is
 *   one such bounce. Counted also as the extra counter `pfBounces`.
 *
 * What the guest kernel does through it (see `GuestOs` with `kernel:
 * "pv"`): `loadCr3(gpa)` is `xen_write_cr3`, i.e. the pfn is turned into
 * an mfn through the P2M and `MMUEXT_NEW_BASEPTR` issued; `invlpg` is
 * `MMUEXT_INVLPG_LOCAL`; entry writes are {@linkcode PvScheme.mmuUpdate}
 * batches. A PV guest never writes its tables directly, so
 * `entryWritten` (an HVM guest's direct write) is an error here.
 *
 * A supervisor store that faults on a read-only mapping of one of the
 * domain's validated L1 tables is a writable-page-table trap: the store
 * (4 bytes, aligned) is validated and emulated (`ptwr_emulated_update`)
 * and the access completes; if it is refused the guest gets the #PF.
 *
 * No TLB of its own (every access walks, as the reference does): put a
 * `TlbFront` in front of it, as `runExperiment` does. The front learns of
 * the flushing hypercalls through {@linkcode PvScheme.onTlbInvalidate},
 * probes machine tables through {@linkcode PvScheme.probeTranslation},
 * and sends stores to validated page tables here
 * ({@linkcode PvScheme.writeTrapped}); a `GuestOs` PV kernel reaches the
 * hypercalls through the front's `paravirt`. The accessed gpa reported is
 * the M2P's gfn of the machine frame.
 *
 * @module
 */

import { hex64 } from "../../address/address.ts";
import type { EntryChange } from "../../paging/builder.ts";
import type { PagingMode } from "../../paging/mode.ts";
import {
  ACCESS_USER,
  ACCESS_WRITE,
  PFEC_P,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../../paging/walker.ts";
import type { Memory } from "../../memory/memory.ts";
import { FRAME_SIZE, OWNER_FREE, OWNER_HYPERVISOR } from "../frames.ts";
import type { Host, HypervisorKind } from "../host.ts";
import {
  BaseScheme,
  GUEST_GP,
  GUEST_OK,
  GUEST_PF,
  GUEST_UNBACKED,
  type GuestAccessState,
  type PvHypercalls,
  type SchemeContext,
  type SchemeOptions,
  type TlbInvalidateListener,
} from "../scheme.ts";
import {
  type PvBatchResult,
  type PvErrno,
  PvMmu,
  type PvMmuextOp,
  type PvMmuOptions,
  type PvMulticallEntry,
  type PvMulticallResult,
  type PvUpdate,
} from "./mmu.ts";
import {
  type PageTypeRow,
  pageTypesToHtml,
  pageTypesToText,
} from "../../view/pv_html.ts";

/**
 * Options for {@linkcode PvScheme}.
 *
 * @example
 * ```ts
 * import { PvScheme, type PvSchemeOptions } from "./scheme.ts";
 * import assert from "node:assert/strict";
 * const o: PvSchemeOptions = { eventLog: 0, bugs: { xsa148: true } };
 * assert.equal(new PvScheme(o).name, "pv");
 * ```
 */
export interface PvSchemeOptions extends SchemeOptions, PvMmuOptions {}

const TWO32 = 4294967296;

/** What the writable-page-table path made of a faulting store. */
type PtwrOutcome = "emulated" | "not-ptwr" | PvErrno;

/**
 * PV direct paging: walk machine-frame tables, hypercalls for updates.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { GuestOs } from "../guest/os.ts";
 * import { PvScheme } from "./scheme.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 32 * 2 ** 20 });
 * const pv = new PvScheme();
 * const os = new GuestOs(host.createDomain({ memory: 2 ** 21 }), { scheme: pv, kernel: "pv" });
 * const p = os.spawn();
 * os.switchTo(p.pid);
 * const a = os.mmap({ length: 4096 });
 * assert.equal(os.access(a, { kind: "write", value: 5 }).result, "ok");
 * assert.equal(os.access(a).value, 5);
 * assert.ok(pv.mmu.counters.hypercalls > 0);
 * assert.deepEqual(pv.mmu.audit(), []);
 * ```
 */
export class PvScheme extends BaseScheme implements PvHypercalls {
  /** "pv". */
  readonly name = "pv";
  #opts: PvMmuOptions;
  #mmu: PvMmu | undefined = undefined;
  #host: Host<HypervisorKind> | undefined = undefined;
  #mode: PagingMode | undefined = undefined;
  #mem: Memory | undefined = undefined;
  #s = new WalkScratch();
  #walks = 0;
  #reads = 0;
  #bounces = 0;
  #tlbListeners: TlbInvalidateListener[] = [];

  /** Create an unattached PV scheme. */
  constructor(options: PvSchemeOptions = {}) {
    super(options);
    this.#opts = { bugs: options.bugs };
  }

  /** The hypervisor side (throws before attach). */
  get mmu(): PvMmu {
    if (this.#mmu === undefined) {
      throw new RangeError(
        `scheme "pv" is not attached to a domain: call attach() first`,
      );
    }
    return this.#mmu;
  }

  /** Create the hypervisor side for the domain. */
  protected override onAttach(context: SchemeContext): void {
    this.#mmu = new PvMmu(context.host, context.domain, this.#opts);
    this.#host = context.host;
    this.#mode = context.mode;
    this.#mem = context.host.memory;
  }

  /** `xen_write_cr3`: pfn → mfn through the P2M, then MMUEXT_NEW_BASEPTR. */
  protected override onLoadCr3(root: number): void {
    const d = this.context.domain;
    const mfn = d.lookup(Math.floor(root / FRAME_SIZE));
    if (mfn === undefined) {
      throw new RangeError(
        `CR3 gpa 0x${root.toString(16)} has no machine frame`,
      );
    }
    const r = this.mmuextOp([{ cmd: "new-baseptr", mfn }]);
    if (!r.ok) {
      throw new Error(
        `MMUEXT_NEW_BASEPTR of mfn 0x${
          mfn.toString(16)
        } refused: ${r.toString()}`,
      );
    }
  }

  /** MMUEXT_INVLPG_LOCAL. */
  protected override onInvlpg(vaHi: number, vaLo: number): void {
    this.mmuextOp([{ cmd: "invlpg-local", va: vaHi * TWO32 + vaLo }]);
  }

  /** A PV guest cannot write its page tables directly. */
  protected override onEntryWritten(change: EntryChange): void {
    throw new Error(
      `a PV guest wrote a page-table entry directly (at 0x${
        change.entryAddress.toString(16)
      }): its tables are read-only; use GuestOs { kernel: "pv" }, which updates them by hypercall`,
    );
  }

  /** The hypercalls (this scheme itself): what a PV `GuestOs` kernel calls. */
  get paravirt(): PvHypercalls {
    return this;
  }

  /**
   * Subscribe to the TLB invalidations the guest's hypercalls make:
   * `MMUEXT_NEW_BASEPTR` and `MMUEXT_TLB_FLUSH_LOCAL` flush non-global
   * entries (Xen writes CR3), `MMUEXT_INVLPG_LOCAL` one page; reported for
   * every such op that succeeded, in multicalls too. Returns the
   * unsubscribe.
   *
   * @example
   * ```ts
   * import { Host } from "../host.ts";
   * import { GuestOs } from "../guest/os.ts";
   * import { PvScheme } from "./scheme.ts";
   * import assert from "node:assert/strict";
   * const pv = new PvScheme();
   * const os = new GuestOs(new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }), { scheme: pv, kernel: "pv" });
   * const seen: string[] = [];
   * pv.onTlbInvalidate((kind) => seen.push(kind));
   * os.switchTo(os.spawn().pid);                      // xen_write_cr3: NEW_BASEPTR
   * assert.ok(seen.includes("non-global"));
   * ```
   */
  onTlbInvalidate(listener: TlbInvalidateListener): () => void {
    if (typeof listener !== "function") {
      throw new TypeError(
        `listener ${String(listener)} is invalid: expected a function`,
      );
    }
    this.#tlbListeners.push(listener);
    return () => {
      this.#tlbListeners = this.#tlbListeners.filter((l) => l !== listener);
    };
  }

  /** Tell the listeners what the successful flushing ops of a batch did. */
  #tlbEffects(ops: readonly PvMmuextOp[], r: PvBatchResult): void {
    const ls = this.#tlbListeners;
    if (ls.length === 0) return;
    for (let i = 0; i < ops.length; i++) {
      if (r.results[i]?.code !== "ok") continue;
      const op = ops[i];
      if (op.cmd === "new-baseptr" || op.cmd === "tlb-flush-local") {
        for (const l of ls) l("non-global", 0, 0);
      } else if (op.cmd === "invlpg-local") {
        const hi = Math.floor(op.va / TWO32) >>> 0, lo = op.va >>> 0;
        for (const l of ls) l("page", hi, lo);
      }
    }
  }

  /**
   * The walk the MMU makes — the machine tables from the base pointer —
   * without setting A/D bits or counting (for a TLB in front).
   */
  probeTranslation(
    scratch: WalkScratch,
    vaHi: number,
    vaLo: number,
    flags: number,
  ): number {
    return walkInto(
      scratch,
      this.#mode!,
      this.#mem!,
      this.mmu.baseAddress,
      vaHi,
      vaLo,
      flags,
      0,
      0,
      0,
      7,
      false,
    );
  }

  /**
   * Whether `mfn` is one of Xen's validated page tables: a store to it
   * must reach Xen (ptwr) even through a writable TLB entry, which Xen
   * flushed when the frame became a page table (`_get_page_type`).
   */
  writeTrapped(mfn: number): boolean {
    return this.#mmu !== undefined && this.#mmu.isPageTable(mfn);
  }

  /** Count one hypercall (one entry into Xen), logged with its result's first line. */
  #hypercall<R extends { toString(): string }>(r: R): R {
    this.vmExit(
      undefined,
      "hypercall",
      undefined,
      undefined,
      r.toString().split("\n")[0],
    );
    return r;
  }

  /** `HYPERVISOR_mmu_update` (one VM exit). */
  mmuUpdate(requests: readonly PvUpdate[]): PvBatchResult {
    const r = this.mmu.mmuUpdate(requests);
    return this.#hypercall(r);
  }

  /** `HYPERVISOR_multicall` (one VM exit for all the calls it carries). */
  multicall(calls: readonly PvMulticallEntry[]): PvMulticallResult {
    const r = this.mmu.multicall(calls);
    calls.forEach((c, i) => {
      if (c.op === "mmuext_op") this.#tlbEffects(c.ops, r.calls[i]);
    });
    return this.#hypercall(r);
  }

  /** `HYPERVISOR_mmuext_op` (one VM exit). */
  mmuextOp(ops: readonly PvMmuextOp[]): PvBatchResult {
    const r = this.mmu.mmuextOp(ops);
    this.#tlbEffects(ops, r);
    return this.#hypercall(r);
  }

  /** Walk the machine tables from the base pointer; writable-page-table traps are emulated. */
  protected performAccess(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const s = this.#s;
    const mmu = this.#mmu!;
    const base = mmu.baseAddress;
    this.#walks++;
    const r = walkInto(s, this.#mode!, this.#mem!, base, vaHi, vaLo, flags);
    this.#reads += s.steps;
    if (r === WALK_PF) {
      let ptwr: PtwrOutcome = "not-ptwr";
      if (
        (flags & ACCESS_WRITE) !== 0 && (flags & ACCESS_USER) === 0 &&
        (s.errorCode & PFEC_P) !== 0 && (size === 4)
      ) {
        ptwr = this.#ptwr(state, base, vaHi, vaLo, value);
        if (ptwr === "emulated") return GUEST_OK;
      }
      state.errorCode = s.errorCode;
      state.reason = s.reason;
      state.level = s.leafLevel;
      // Xen owns the IDT: the #PF enters Xen and is bounced to the guest
      this.#bounces++;
      this.vmExit(
        state,
        "pf-bounce",
        hex64(vaHi, vaLo),
        undefined,
        ptwr === "not-ptwr"
          ? "#PF bounced to the guest"
          : `ptwr refused ${ptwr}: #PF bounced to the guest`,
      );
      return GUEST_PF;
    }
    if (r === WALK_GP) {
      state.reason = s.reason;
      return GUEST_GP;
    }
    if (r !== WALK_OK) throw new Error(`internal: walk outcome ${r}`);
    const hpa = s.pa;
    const mfn = Math.floor(hpa / FRAME_SIZE);
    const gfn = this.#host!.m2p(mfn);
    if (gfn === undefined) {
      state.gpa = hpa;
      state.problem = "not-owned";
      return GUEST_UNBACKED;
    }
    state.gpa = gfn * FRAME_SIZE + (hpa - mfn * FRAME_SIZE);
    return this.dataAccessHpa(state, hpa, flags, size, value);
  }

  /**
   * The writable-page-table trap: find the leaf without setting A/D; if it
   * maps one of the domain's validated L1 tables, validate and emulate
   * (one `ptwr` exit). A refusal is reported, and the caller bounces the
   * #PF (that same entry into Xen, counted as `pf-bounce`).
   */
  #ptwr(
    state: GuestAccessState,
    base: number,
    vaHi: number,
    vaLo: number,
    value: number,
  ): PtwrOutcome {
    const m = this.#mem!;
    const mmu = this.#mmu!;
    let table = base;
    let lo = 0, hi = 0;
    for (let level = 4; level >= 1; level--) {
      const shift = 12 + 9 * (level - 1);
      // index bits of the 48-bit address
      const idx = level === 4
        ? ((vaHi >>> 7) & 511)
        : level === 3
        ? (((vaHi & 0x7f) << 2) | (vaLo >>> 30)) & 511
        : (vaLo >>> shift) & 511;
      const ea = table + 8 * idx;
      lo = m.read32(ea);
      hi = m.read32(ea + 4);
      if ((lo & 1) === 0 || (level > 1 && (lo & 0x80) !== 0)) return "not-ptwr";
      table = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
    }
    const mfn = table / FRAME_SIZE;
    if (mmu.typeOf(mfn) !== 1 || !mmu.isPageTable(mfn)) return "not-ptwr";
    if (mmu.host.ownerIdOf(mfn) !== this.context.domain.id) return "not-ptwr";
    const ma = table + (vaLo & 0xfff);
    const rc = mmu.ptwrUpdate(ma, 4, value);
    if (rc !== 0) return rc;
    this.vmExit(state, "ptwr", hex64(vaHi, vaLo), undefined, "emulated");
    state.hpa = ma;
    const gfn = mmu.host.m2p(mfn) ?? 0;
    state.gpa = gfn * FRAME_SIZE + (vaLo & 0xfff);
    state.value = value >>> 0;
    return "emulated";
  }

  /** Walks plus the hypervisor's counters. */
  protected override extraCounters(): Record<string, number> {
    const out: Record<string, number> = {
      guestWalks: this.#walks,
      guestTableReads: this.#reads,
      pfBounces: this.#bounces,
    };
    if (this.#mmu === undefined) return out;
    const c = this.#mmu.counters;
    for (const [k, v] of Object.entries(c)) {
      if (typeof v === "number") out[k] = v;
    }
    for (const [k, v] of Object.entries(c.refused)) out[`refused${k}`] = v;
    return out;
  }

  /** Zero them. */
  protected override resetExtraCounters(): void {
    this.#walks = this.#reads = 0;
    this.#bounces = 0;
    this.#mmu?.resetCounters();
  }

  /** The page-type table rows of frames in use (for the views); owners as in {@linkcode PageTypeRow}: "dom1", "Xen", "free". */
  pageTypeRows(): PageTypeRow[] {
    const mmu = this.mmu;
    return mmu.inUse().map((i) => {
      const o = mmu.host.ownerIdOf(i.mfn);
      return {
        ...i,
        gfn: mmu.host.m2p(i.mfn),
        owner: o === OWNER_FREE
          ? "free"
          : o === OWNER_HYPERVISOR
          ? "Xen"
          : `dom${o}`,
      };
    });
  }

  /** The page-type table as a displayable object. */
  showPageTypes(): Record<string | symbol, unknown> {
    const rows = this.pageTypeRows();
    return {
      [Symbol.for("Jupyter.display")]: () => ({
        "text/plain": pageTypesToText(rows),
        "text/html": pageTypesToHtml(rows),
      }),
      [Symbol.for("Deno.customInspect")]: () => pageTypesToText(rows),
      toString: () => pageTypesToText(rows),
    };
  }
}
