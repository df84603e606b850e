/**
 * Xen PV direct paging for one domain: the hypervisor side. The guest's
 * page tables hold **machine** frame numbers and the MMU walks them
 * directly; the guest may not write them itself. It asks by hypercall:
 *
 * - `mmu_update` ({@linkcode PvMmu.mmuUpdate}): a batch of `{ptr, val}`
 *   requests, `*ptr = val` with `ptr` the machine address of an entry.
 *   Each request is validated by the entry's level (`mod_l1_entry` …
 *   `mod_l4_entry`); the batch stops at the first failure and reports how
 *   many succeeded (Xen's `pdone`).
 * - `mmuext_op` ({@linkcode PvMmu.mmuextOp}): `PIN_L1..L4_TABLE` (validate
 *   a whole tree once, recursively, and hold it), `UNPIN_TABLE`,
 *   `NEW_BASEPTR` (load CR3), `INVLPG_LOCAL`, `TLB_FLUSH_LOCAL`.
 * - `multicall` ({@linkcode PvMmu.multicall}): one hypercall, one entry
 *   into Xen, that carries several `mmu_update` / `mmuext_op` calls; Xen
 *   runs every call (a failed one does not stop the rest) and stores each
 *   call's result (`do_multicall`). PV Linux queues its page-table work in
 *   such batches (`xen_mc_batch` … `xen_mc_issue`).
 * - writable page tables ({@linkcode PvMmu.ptwrUpdate}): a guest store to an
 *   L1 it maps read-only traps; the hypervisor validates the new entry and
 *   emulates the store (`ptwr_emulated_update`).
 *
 * The rules (Xen `xen/arch/x86/mm.c`): an L1 entry may map only frames the
 * domain owns (not another domain's, not the hypervisor's: `EPERM`);
 * mapping writable takes the `writable` type (refused with `EBUSY` for a
 * page-table frame); an L2/L3/L4 entry takes a type reference of the next
 * level down, validating that table if it had none; Xen's L4 slots 256–271
 * cannot be written (`EPERM`; validation clears them); superpage (PSE)
 * entries are refused (`EINVAL`, PV guests get no superpages);
 * **linear page tables** are modelled as Xen allows them: an L2/L3/L4 entry
 * may point at a validated table *of its own level* (or at its own frame)
 * only without R/W, so what it maps is read-only; with R/W it is refused
 * (`EINVAL`). An update that keeps the frame and changes only "safe" flags
 * (A, D, U/S, G, NX, available bits: Xen's `FASTPATH_FLAG_WHITELIST`) takes
 * the fast path without new references; R/W and PSE are never safe.
 *
 * The two historical bugs of that fast path can be switched back on
 * (`bugs`) to show what the invariant checker ({@linkcode PvMmu.audit})
 * catches: XSA-148 (a PSE flag set on an existing L2 entry went unchecked,
 * mapping an L1 table and its neighbours writable as a 2 MiB page) and
 * XSA-182 (an L3/L4 fast path compared only frame and present bit, so R/W
 * could be added to a read-only linear mapping).
 *
 * Error codes are Xen-style names (`EINVAL`, `EPERM`, `EBUSY`, `EFAULT`);
 * where Xen's exact errno differs between versions we chose the one that
 * names the cause (type conflict `EBUSY`, ownership `EPERM`).
 *
 * Simplified (not modelled): 64-bit guests only, one vCPU, no grant
 * tables, no DOMID_IO / foreign (`pg_owner`) updates, no
 * `MMU_MACHPHYS_UPDATE` or `MMU_PT_UPDATE_PRESERVE_AD` (`EINVAL`), no
 * `update_va_mapping` (a multicall carries only `mmu_update` and
 * `mmuext_op`; the guest names the PTE by machine address), no preemption, no superpages, no separate user L4 (the
 * guest kernel runs at CPL 0 here, not ring 3), Xen's own entries in L4
 * slots 256–271 (the slots stay empty), no TLB (the MMU walks on every
 * access, so INVLPG and flushes are counted only).
 *
 * @module
 */

import { hexPhys } from "../../address/address.ts";
import type { Memory } from "../../memory/memory.ts";
import type { Domain } from "../domain.ts";
import { FRAME_SIZE } from "../frames.ts";
import type { Host, HypervisorKind } from "../host.ts";
import { PageInfoTable, PGT_WRITABLE } from "./page_info.ts";
import {
  pvBatchToHtml,
  pvBatchToText,
  pvMulticallToHtml,
  pvMulticallToText,
} from "../../view/pv_html.ts";

/**
 * A refusal code (Xen-style errno names).
 *
 * @example
 * ```ts
 * import type { PvErrno } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const codes: PvErrno[] = ["EINVAL", "EPERM", "EBUSY", "EFAULT"];
 * assert.equal(codes.length, 4);
 * ```
 */
export type PvErrno = "EINVAL" | "EPERM" | "EBUSY" | "EFAULT";

/**
 * First of Xen's reserved L4 slots (x86-64: 256–271).
 *
 * @example
 * ```ts
 * import { XEN_L4_FIRST, XEN_L4_LAST } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * assert.equal(XEN_L4_LAST - XEN_L4_FIRST + 1, 16);
 * ```
 */
export const XEN_L4_FIRST = 256;
/**
 * Last of Xen's reserved L4 slots.
 *
 * @example
 * ```ts
 * import { XEN_L4_LAST } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * assert.equal(XEN_L4_LAST, 271);
 * ```
 */
export const XEN_L4_LAST = 271;

/**
 * One `mmu_update` request: write the entry `hi:lo` at machine address
 * `ptr` (8-byte aligned; the low 2 bits are the command, 0 =
 * `MMU_NORMAL_PT_UPDATE`).
 *
 * @example
 * ```ts
 * import { pvUpdate, type PvUpdate } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const u: PvUpdate = pvUpdate(0x5008, 0x8000000000007007n);
 * assert.deepEqual(u, { ptr: 0x5008, lo: 0x7007, hi: 0x80000000 });
 * ```
 */
export interface PvUpdate {
  /** Machine address of the entry (low 2 bits: command). */
  readonly ptr: number;
  /** Low half of the new entry. */
  readonly lo: number;
  /** High half of the new entry. */
  readonly hi: number;
}

/**
 * A request from a 64-bit value.
 *
 * @example
 * ```ts
 * import { pvUpdate } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * assert.equal(pvUpdate(0x1000, 0x3003n).lo, 0x3003);
 * assert.throws(() => pvUpdate(0x1000, -1n), /val -1 is invalid/);
 * ```
 */
export function pvUpdate(ptr: number, val: bigint): PvUpdate {
  if (typeof val !== "bigint" || val < 0n || val >= 1n << 64n) {
    throw new RangeError(
      `val ${String(val)} is invalid: expected a 64-bit unsigned bigint`,
    );
  }
  return {
    ptr,
    lo: Number(val & 0xffffffffn),
    hi: Number(val >> 32n),
  };
}

/**
 * One `mmuext_op`. `mfn` for pins, unpin and `new-baseptr`; `va` (a
 * number) for `invlpg-local`.
 *
 * @example
 * ```ts
 * import type { PvMmuextOp } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const ops: PvMmuextOp[] = [{ cmd: "pin-l4", mfn: 9 }, { cmd: "new-baseptr", mfn: 9 }, { cmd: "tlb-flush-local" }];
 * assert.equal(ops.length, 3);
 * ```
 */
export type PvMmuextOp =
  | {
    readonly cmd: "pin-l1" | "pin-l2" | "pin-l3" | "pin-l4";
    readonly mfn: number;
  }
  | { readonly cmd: "unpin"; readonly mfn: number }
  | { readonly cmd: "new-baseptr"; readonly mfn: number }
  | { readonly cmd: "invlpg-local"; readonly va: number }
  | { readonly cmd: "tlb-flush-local" };

/**
 * The outcome of one request of a batch.
 *
 * @example
 * ```ts
 * import type { PvRequestResult } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const r: PvRequestResult = { index: 0, what: "L1[3] = 0x7007", code: "ok", reason: "" };
 * assert.equal(r.code, "ok");
 * ```
 */
export interface PvRequestResult {
  /** Position in the batch. */
  readonly index: number;
  /** The request in words. */
  readonly what: string;
  /** ok, the refusal code, or not-run (after the first failure). */
  readonly code: "ok" | PvErrno | "not-run";
  /** Why it was refused (empty when ok). */
  readonly reason: string;
}

/**
 * The outcome of a hypercall: how many requests were done (Xen's `pdone`),
 * the return code (0 or the first failure's), and each request's result.
 * Has a rich display.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { PvMmu, pvUpdate } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 4 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 16 * 4096 });
 * const mmu = new PvMmu(host, vm);
 * const l1 = vm.p2m(1)!;
 * const r = mmu.mmuUpdate([pvUpdate(l1 * 4096, BigInt(vm.p2m(2)! * 4096 + 3)), pvUpdate(l1 * 4096 + 8, 0x3n)]);
 * assert.equal(r.done, 2);                 // frame 1 is no page table: plain writes
 * assert.match(r.toString(), /2 of 2 done/);
 * ```
 */
export class PvBatchResult {
  /** Hypercall name. */
  readonly hypercall: "mmu_update" | "mmuext_op";
  /** Requests completed. */
  readonly done: number;
  /** 0, or the refusal code of the first failed request. */
  readonly rc: 0 | PvErrno;
  /** Per-request results. */
  readonly results: readonly PvRequestResult[];

  /** Made by {@linkcode PvMmu}. */
  constructor(
    hypercall: "mmu_update" | "mmuext_op",
    results: readonly PvRequestResult[],
  ) {
    this.hypercall = hypercall;
    this.results = results;
    this.done = results.filter((r) => r.code === "ok").length;
    const bad = results.find((r) => r.code !== "ok" && r.code !== "not-run");
    this.rc = bad === undefined ? 0 : (bad.code as PvErrno);
  }

  /** Whether every request succeeded. */
  get ok(): boolean {
    return this.rc === 0;
  }

  /** One line per request. */
  toString(): string {
    return pvBatchToText(this);
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": pvBatchToText(this),
      "text/html": pvBatchToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return pvBatchToText(this);
  }
}

/**
 * One call carried by a multicall: an `mmu_update` batch or an
 * `mmuext_op` batch.
 *
 * @example
 * ```ts
 * import { pvUpdate, type PvMulticallEntry } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const calls: PvMulticallEntry[] = [
 *   { op: "mmu_update", requests: [pvUpdate(0x5008, 0x7005n)] },
 *   { op: "mmuext_op", ops: [{ cmd: "pin-l1", mfn: 7 }] },
 * ];
 * assert.equal(calls.length, 2);
 * ```
 */
export type PvMulticallEntry =
  | { readonly op: "mmu_update"; readonly requests: readonly PvUpdate[] }
  | { readonly op: "mmuext_op"; readonly ops: readonly PvMmuextOp[] };

/**
 * The outcome of a multicall: one {@linkcode PvBatchResult} per carried
 * call (every call ran). Has a rich display.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { PvMmu, pvUpdate } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 4 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 16 * 4096 });
 * const mmu = new PvMmu(host, vm);
 * const [t, d] = [vm.p2m(1)!, vm.p2m(2)!];
 * const r = mmu.multicall([
 *   { op: "mmu_update", requests: [pvUpdate(t * 4096, BigInt(d * 4096 + 1))] },
 *   { op: "mmuext_op", ops: [{ cmd: "unpin", mfn: t }] },       // not pinned: refused
 *   { op: "mmuext_op", ops: [{ cmd: "pin-l1", mfn: t }] },      // still runs
 * ]);
 * assert.deepEqual(r.calls.map((c) => c.rc), [0, "EINVAL", 0]);
 * assert.equal(r.ok, false);
 * assert.equal(mmu.counters.hypercalls, 1);                    // one entry into Xen
 * assert.match(r.toString(), /multicall: 3 calls, 3 operations, 1 refused/);
 * ```
 */
export class PvMulticallResult {
  /** Per-call results, in order. */
  readonly calls: readonly PvBatchResult[];

  /** Made by {@linkcode PvMmu.multicall}. */
  constructor(calls: readonly PvBatchResult[]) {
    this.calls = calls;
  }

  /** Whether every call succeeded. */
  get ok(): boolean {
    return this.calls.every((c) => c.ok);
  }

  /** Operations carried (requests and mmuext ops of all calls). */
  get operations(): number {
    return this.calls.reduce((n, c) => n + c.results.length, 0);
  }

  /** A summary line, then each call. */
  toString(): string {
    return pvMulticallToText(this);
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": pvMulticallToText(this),
      "text/html": pvMulticallToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return pvMulticallToText(this);
  }
}

/**
 * Counters of the PV hypervisor.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { PvMmu, type PvCounters } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 4 * 2 ** 20 });
 * const mmu = new PvMmu(host, host.createDomain({ memory: 8 * 4096 }));
 * const c: PvCounters = mmu.counters;
 * assert.equal(c.hypercalls, 0);
 * ```
 */
export interface PvCounters {
  /** Hypercalls, i.e. entries into Xen: direct mmu_update and mmuext_op calls plus multicalls (a multicall counts once, however many calls it carries). */
  readonly hypercalls: number;
  /** mmu_update calls (direct, or carried in a multicall). */
  readonly mmuUpdateCalls: number;
  /** mmuext_op calls (direct, or carried in a multicall). */
  readonly mmuextCalls: number;
  /** multicall hypercalls. */
  readonly multicalls: number;
  /** Calls carried by multicalls (each also counted in mmuUpdateCalls / mmuextCalls). */
  readonly multicalledCalls: number;
  /** mmuext operations done or refused (all calls). */
  readonly mmuextOps: number;
  /** Entry updates done by mmu_update (all batches). */
  readonly updates: number;
  /** Updates that took the fast path (same frame, safe flags only). */
  readonly fastPathUpdates: number;
  /** Plain writes (mmu_update to a frame that is no page table). */
  readonly plainWrites: number;
  /** Page-table validations (`alloc_lN_table`). */
  readonly validations: number;
  /** Devalidations (type count back to 0). */
  readonly devalidations: number;
  /** Writable-page-table traps emulated (`ptwr_emulated_update`). */
  readonly ptwrEmulations: number;
  /** Pins and unpins. */
  readonly pins: number;
  /** Unpins. */
  readonly unpins: number;
  /** NEW_BASEPTR operations. */
  readonly baseptrLoads: number;
  /** INVLPG_LOCAL and TLB_FLUSH_LOCAL operations. */
  readonly flushes: number;
  /** Refused requests by code. */
  readonly refused: Readonly<Record<PvErrno, number>>;
}

/**
 * Options for {@linkcode PvMmu}.
 *
 * @example
 * ```ts
 * import type { PvMmuOptions } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const o: PvMmuOptions = { bugs: { xsa182: true } };
 * assert.equal(o.bugs?.xsa182, true);
 * ```
 */
export interface PvMmuOptions {
  /** Re-introduce historical bugs (for demonstrations and checker tests). */
  bugs?: {
    /** XSA-148: an L2 fast-path update may set PSE unchecked. */
    xsa148?: boolean;
    /** XSA-182: an L3/L4 fast-path update may add R/W. */
    xsa182?: boolean;
  };
}

const P = 1, RW = 2, PS = 0x80, G = 0x100;
const TWO32 = 4294967296;
/** Flags an update may change on the fast path (Xen's FASTPATH_FLAG_WHITELIST): U/S, A, D, G, avail; NX and avail-high in the high half. */
const FAST_LO = 0x4 | 0x20 | 0x40 | 0x100 | 0xe00;
const FAST_HI = 0x80000000 | 0x7ff00000;
const LEVEL_NAME = ["", "L1", "L2", "L3", "L4"];

class Refusal {
  constructor(readonly code: PvErrno, readonly reason: string) {}
}

function mfnOf(lo: number, hi: number): number {
  return (hi & 0xfffff) * 1048576 + (lo >>> 12);
}

function hexEntry(lo: number, hi: number): string {
  return "0x" + ((hi >>> 0) * TWO32 + (lo >>> 0)).toString(16);
}

/**
 * The PV hypervisor's memory-management side for one domain: the page-type
 * table over all machine frames, the hypercalls, the current base pointer,
 * and an independent invariant checker.
 *
 * @example Pin a tree, refuse a writable mapping of one of its tables.
 * ```ts
 * import { Host } from "../host.ts";
 * import { PvMmu, pvUpdate } from "./mmu.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 4 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 16 * 4096 });
 * const mmu = new PvMmu(host, vm);
 * const [l4, l3, l2, l1, data] = [0, 1, 2, 3, 4].map((g) => vm.p2m(g)!);
 * const mem = host.memory;   // the domain builder writes the first tables
 * mem.write32(l4 * 4096, l3 * 4096 + 7);
 * mem.write32(l3 * 4096, l2 * 4096 + 7);
 * mem.write32(l2 * 4096, l1 * 4096 + 7);
 * mem.write32(l1 * 4096, data * 4096 + 7);
 * assert.equal(mmu.mmuextOp([{ cmd: "pin-l4", mfn: l4 }]).ok, true);
 * assert.equal(mmu.info(l1).type, "l1");
 * const r = mmu.mmuUpdate([pvUpdate(l1 * 4096 + 8, BigInt(l2 * 4096 + 7))]);
 * assert.equal(r.rc, "EBUSY");       // the L2 frame cannot be mapped writable
 * assert.deepEqual(mmu.audit(), []);
 * ```
 */
export class PvMmu {
  /** The host. */
  readonly host: Host<HypervisorKind>;
  /** The domain. */
  readonly domain: Domain;
  #mem: Memory;
  #info: PageInfoTable;
  #dom: number;
  #frames: number;
  #base = -1;
  #bug148: boolean;
  #bug182: boolean;
  #c = {
    mmuUpdateCalls: 0,
    mmuextCalls: 0,
    multicalls: 0,
    multicalledCalls: 0,
    mmuextOps: 0,
    updates: 0,
    fastPathUpdates: 0,
    plainWrites: 0,
    validations: 0,
    devalidations: 0,
    ptwrEmulations: 0,
    pins: 0,
    unpins: 0,
    baseptrLoads: 0,
    flushes: 0,
  };
  #refused: Record<PvErrno, number> = {
    EINVAL: 0,
    EPERM: 0,
    EBUSY: 0,
    EFAULT: 0,
  };
  #validate = (mfn: number): boolean => this.#allocTable(mfn);
  #devalidate = (mfn: number): void => this.#freeTable(mfn);

  /** The hypervisor side for `domain` (a Xen domain of `host`). */
  constructor(
    host: Host<HypervisorKind>,
    domain: Domain,
    options: PvMmuOptions = {},
  ) {
    if (domain === null || typeof domain !== "object" || domain.host !== host) {
      throw new TypeError(
        `domain ${String(domain)} is invalid: expected a domain of this host`,
      );
    }
    if (domain.backing !== "xen") {
      throw new RangeError(
        `domain "${domain.name}" is backed by ${domain.backing}: PV direct paging needs a Xen domain (a P2M the guest can read)`,
      );
    }
    this.host = host;
    this.domain = domain;
    this.#mem = host.memory;
    this.#dom = domain.id;
    this.#frames = Math.floor(host.memory.size / FRAME_SIZE);
    this.#info = new PageInfoTable(this.#frames);
    this.#bug148 = options.bugs?.xsa148 === true;
    this.#bug182 = options.bugs?.xsa182 === true;
  }

  /** The current base pointer (CR3) as a machine address, or -1 before the first NEW_BASEPTR. */
  get baseAddress(): number {
    return this.#base < 0 ? -1 : this.#base * FRAME_SIZE;
  }

  /** The page-type record of `mfn`. */
  info(mfn: number): ReturnType<PageInfoTable["info"]> {
    return this.#info.info(mfn);
  }

  /** Records of every frame with a type or a reference. */
  inUse(): ReturnType<PageInfoTable["inUse"]> {
    return this.#info.inUse();
  }

  /** Whether `mfn` is a validated page table (hot path: no checks). */
  isPageTable(mfn: number): boolean {
    return this.#info.isValidated(mfn);
  }

  /** Type code of `mfn` (hot path). */
  typeOf(mfn: number): number {
    return this.#info.typeOf(mfn);
  }

  /** Counters. */
  get counters(): PvCounters {
    return {
      hypercalls: this.#c.mmuUpdateCalls + this.#c.mmuextCalls -
        this.#c.multicalledCalls + this.#c.multicalls,
      ...this.#c,
      refused: { ...this.#refused },
    };
  }

  /** Zero the counters. */
  resetCounters(): void {
    const c = this.#c as Record<string, number>;
    for (const k of Object.keys(c)) c[k] = 0;
    for (const k of Object.keys(this.#refused) as PvErrno[]) {
      this.#refused[k] = 0;
    }
  }

  // ---- ownership -----------------------------------------------------------

  #ownerCheck(mfn: number, what: string): void {
    if (!(mfn >= 0 && mfn < this.#frames)) {
      throw new Refusal(
        "EINVAL",
        `${what} mfn ${hexPhys(mfn)}, which lies beyond machine memory`,
      );
    }
    const o = this.host.ownerIdOf(mfn);
    if (o !== this.#dom) {
      const who = o === 0
        ? "free"
        : o < 0 || o > 0x7ff0
        ? "the hypervisor's"
        : `domain ${o}'s`;
      throw new Refusal(
        "EPERM",
        `${what} mfn ${
          hexPhys(mfn)
        }, which is ${who} frame, not domain ${this.#dom}'s`,
      );
    }
  }

  // ---- entries -------------------------------------------------------------

  /** get_page_from_l1e: references for a new L1 entry. */
  #getL1e(lo: number, hi: number): void {
    if ((lo & P) === 0) return;
    const mfn = mfnOf(lo, hi);
    this.#ownerCheck(mfn, "L1 entry maps");
    this.#info.getPage(mfn);
    if ((lo & RW) !== 0 && !this.#info.getPageType(mfn, PGT_WRITABLE)) {
      this.#info.putPage(mfn);
      throw new Refusal(
        "EBUSY",
        `cannot map mfn ${hexPhys(mfn)} writable: it is a ${
          this.#info.info(mfn).type
        } page (type count ${this.#info.typeCount(mfn)})`,
      );
    }
  }

  #putL1e(lo: number, hi: number): void {
    if ((lo & P) === 0) return;
    const mfn = mfnOf(lo, hi);
    if ((lo & RW) !== 0) this.#info.putPageType(mfn, this.#devalidate);
    this.#info.putPage(mfn);
  }

  /** get_page_from_lNe (N = 2..4) for an entry of table `self`. */
  #getLne(level: number, lo: number, hi: number, self: number): void {
    if ((lo & P) === 0) return;
    if ((lo & PS) !== 0) {
      throw new Refusal(
        "EINVAL",
        `${
          LEVEL_NAME[level]
        } entry with PSE: superpages are not allowed for PV guests`,
      );
    }
    if ((lo & G) !== 0) {
      throw new Refusal(
        "EINVAL",
        `${
          LEVEL_NAME[level]
        } entry with G (bit 8): reserved in a non-leaf entry`,
      );
    }
    const mfn = mfnOf(lo, hi);
    this.#ownerCheck(mfn, `${LEVEL_NAME[level]} entry points at`);
    if (mfn === self) {
      // a linear (recursive) mapping of the table itself: no references
      if ((lo & RW) !== 0) throw this.#linearRw(level, mfn);
      return;
    }
    this.#info.getPage(mfn);
    if (this.#info.getPageType(mfn, level - 1, this.#validate)) return;
    // the target is no valid L(N-1): a same-level linear mapping?
    if (this.#info.typeOf(mfn) === level && this.#info.isValidated(mfn)) {
      if ((lo & RW) !== 0) {
        this.#info.putPage(mfn);
        throw this.#linearRw(level, mfn);
      }
      if (this.#info.getValidatedType(mfn, level)) return;
    }
    const t = this.#info.info(mfn);
    this.#info.putPage(mfn);
    throw new Refusal(
      t.typeCount > 0 ? "EBUSY" : "EINVAL",
      t.typeCount > 0
        ? `${LEVEL_NAME[level]} entry points at mfn ${
          hexPhys(mfn)
        }, a ${t.type} page (type count ${t.typeCount}), not an ${
          LEVEL_NAME[level - 1]
        } table`
        : `${LEVEL_NAME[level]} entry points at mfn ${
          hexPhys(mfn)
        }, which does not validate as an ${LEVEL_NAME[level - 1]} table`,
    );
  }

  #linearRw(level: number, mfn: number): Refusal {
    return new Refusal(
      "EINVAL",
      `${LEVEL_NAME[level]} entry maps ${LEVEL_NAME[level]} table mfn ${
        hexPhys(mfn)
      } linearly with R/W: linear page tables must be read-only`,
    );
  }

  #putLne(_level: number, lo: number, hi: number, self: number): void {
    if ((lo & P) === 0) return;
    const mfn = mfnOf(lo, hi);
    if (mfn === self) return;
    this.#info.putPageType(mfn, this.#devalidate);
    this.#info.putPage(mfn);
  }

  #getEntry(level: number, lo: number, hi: number, self: number): void {
    if (level === 1) this.#getL1e(lo, hi);
    else this.#getLne(level, lo, hi, self);
  }

  #putEntry(level: number, lo: number, hi: number, self: number): void {
    if (level === 1) this.#putL1e(lo, hi);
    else this.#putLne(level, lo, hi, self);
  }

  static #guestSlot(level: number, i: number): boolean {
    return level !== 4 || i < XEN_L4_FIRST || i > XEN_L4_LAST;
  }

  /** alloc_lN_table: validate every entry of `mfn` (its type says the level). */
  #allocTable(mfn: number): boolean {
    const level = this.#info.typeOf(mfn);
    const m = this.#mem;
    const base = mfn * FRAME_SIZE;
    this.#c.validations++;
    let i = 0;
    try {
      for (; i < 512; i++) {
        const ea = base + 8 * i;
        if (!PvMmu.#guestSlot(level, i)) {
          // Xen writes its own entries here (not modelled: cleared)
          m.write32(ea, 0);
          m.write32(ea + 4, 0);
          continue;
        }
        const lo = m.read32(ea);
        if ((lo & P) === 0) continue;
        this.#getEntry(level, lo, m.read32(ea + 4), mfn);
      }
      return true;
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      this.#lastRefusal = e;
      for (let j = 0; j < i; j++) {
        if (!PvMmu.#guestSlot(level, j)) continue;
        const ea = base + 8 * j;
        this.#putEntry(level, m.read32(ea), m.read32(ea + 4), mfn);
      }
      return false;
    }
  }

  #lastRefusal: Refusal | undefined = undefined;

  /** free_lN_table: drop the references of every entry (type count reached 0). */
  #freeTable(mfn: number): void {
    // the type is still set while devalidating
    const level = this.#info.typeOf(mfn);
    const m = this.#mem;
    const base = mfn * FRAME_SIZE;
    this.#c.devalidations++;
    for (let i = 0; i < 512; i++) {
      if (!PvMmu.#guestSlot(level, i)) continue;
      const ea = base + 8 * i;
      this.#putEntry(level, m.read32(ea), m.read32(ea + 4), mfn);
    }
  }

  /** get_page_and_type with validation; a Refusal that names the failure. */
  #getTyped(mfn: number, level: number, what: string): void {
    this.#ownerCheck(mfn, what);
    this.#info.getPage(mfn);
    this.#lastRefusal = undefined;
    if (this.#info.getPageType(mfn, level, this.#validate)) return;
    this.#info.putPage(mfn);
    const inner = this.#lastRefusal as Refusal | undefined;
    const t = this.#info.info(mfn);
    if (inner !== undefined) {
      throw new Refusal(
        inner.code,
        `${what} mfn ${hexPhys(mfn)} does not validate as ${
          LEVEL_NAME[level]
        }: ${inner.reason}`,
      );
    }
    throw new Refusal(
      "EBUSY",
      `${what} mfn ${
        hexPhys(mfn)
      } is a ${t.type} page (type count ${t.typeCount}), not an ${
        LEVEL_NAME[level]
      } table`,
    );
  }

  // ---- mmu_update ----------------------------------------------------------

  /** One update (mod_lN_entry, or a plain write to an untyped frame). */
  #update(ptr: number, lo: number, hi: number): void {
    if (!Number.isInteger(ptr) || ptr < 0) {
      throw new Refusal("EFAULT", `ptr ${String(ptr)} is not an address`);
    }
    const cmd = ptr % 4;
    if (cmd !== 0) {
      throw new Refusal(
        "EINVAL",
        `command ${cmd} (${
          cmd === 1
            ? "MMU_MACHPHYS_UPDATE"
            : cmd === 2
            ? "MMU_PT_UPDATE_PRESERVE_AD"
            : "unknown"
        }) is not modelled`,
      );
    }
    if (ptr % 8 !== 0) {
      throw new Refusal("EINVAL", `ptr ${hexPhys(ptr)} is not 8-byte aligned`);
    }
    if (ptr >= this.#frames * FRAME_SIZE) {
      throw new Refusal(
        "EFAULT",
        `ptr ${hexPhys(ptr)} lies beyond machine memory`,
      );
    }
    const mfn = Math.floor(ptr / FRAME_SIZE);
    this.#ownerCheck(mfn, "update target");
    const level = this.#info.typeOf(mfn);
    if (level >= 1 && level <= 4 && this.#info.isValidated(mfn)) {
      this.#modEntry(level, mfn, ptr, lo >>> 0, hi >>> 0);
      return;
    }
    if (level === 5) {
      throw new Refusal(
        "EINVAL",
        `mfn ${hexPhys(mfn)} is a descriptor-table page`,
      );
    }
    // not a page table: an ordinary write (Xen takes the writable type for it)
    if (!this.#info.getPageType(mfn, PGT_WRITABLE)) {
      throw new Refusal("EBUSY", `mfn ${hexPhys(mfn)} cannot be written`);
    }
    this.#mem.write32(ptr, lo);
    this.#mem.write32(ptr + 4, hi);
    this.#info.putPageType(mfn);
    this.#c.plainWrites++;
  }

  /** mod_lN_entry. */
  #modEntry(
    level: number,
    mfn: number,
    ptr: number,
    lo: number,
    hi: number,
  ): void {
    const slot = (ptr % FRAME_SIZE) / 8;
    if (!PvMmu.#guestSlot(level, slot)) {
      throw new Refusal(
        "EPERM",
        `L4 slot ${slot} is reserved for Xen (slots ${XEN_L4_FIRST}–${XEN_L4_LAST})`,
      );
    }
    const m = this.#mem;
    const olo = m.read32(ptr), ohi = m.read32(ptr + 4);
    if (
      (lo & P) !== 0 && (olo & P) !== 0 && mfnOf(lo, hi) === mfnOf(olo, ohi)
    ) {
      // the fast path: same frame, only safe flags changed
      let safeLo = FAST_LO, safeHi = FAST_HI;
      if (this.#bug182 && (level === 3 || level === 4)) {
        safeLo = ~P; // pre-XSA-182: only frame and present bit compared
        safeHi = ~0xfffff;
      }
      if (this.#bug148 && level === 2) {
        safeLo = ~P; // pre-XSA-148: PSE (and R/W) changes unchecked
        safeHi = ~0xfffff;
      }
      if (((lo ^ olo) & ~safeLo) === 0 && ((hi ^ ohi) & ~safeHi) === 0) {
        if (level > 1 && (lo & G) !== 0 && !this.#bug182 && !this.#bug148) {
          throw new Refusal(
            "EINVAL",
            `${
              LEVEL_NAME[level]
            } entry with G (bit 8): reserved in a non-leaf entry`,
          );
        }
        m.write32(ptr, lo);
        m.write32(ptr + 4, hi);
        this.#c.fastPathUpdates++;
        return;
      }
    }
    this.#getEntry(level, lo, hi, mfn);
    // the old entry may have been changed meanwhile? (one vCPU: no)
    m.write32(ptr, lo);
    m.write32(ptr + 4, hi);
    this.#putEntry(level, olo, ohi, mfn);
  }

  #refuse(e: unknown): Refusal {
    if (!(e instanceof Refusal)) throw e;
    this.#refused[e.code]++;
    return e;
  }

  #describe(ptr: number, lo: number, hi: number): string {
    const mfn = Math.floor(ptr / FRAME_SIZE);
    const t = mfn >= 0 && mfn < this.#frames
      ? LEVEL_NAME[this.#info.typeOf(mfn)] || "frame"
      : "frame";
    return `${t} ${hexPhys(mfn)}[${(ptr % FRAME_SIZE) / 8 | 0}] = ${
      hexEntry(lo, hi)
    }`;
  }

  /**
   * `HYPERVISOR_mmu_update`: apply `requests` in order, stopping at the
   * first refusal (the rest are `not-run`).
   */
  mmuUpdate(requests: readonly PvUpdate[]): PvBatchResult {
    PvMmu.#checkRequests(requests);
    return this.#mmuUpdate(requests);
  }

  static #checkRequests(requests: readonly PvUpdate[]): void {
    if (!Array.isArray(requests)) {
      throw new TypeError(
        `requests ${
          String(requests)
        } are invalid: expected an array of { ptr, lo, hi }`,
      );
    }
  }

  #mmuUpdate(requests: readonly PvUpdate[]): PvBatchResult {
    this.#c.mmuUpdateCalls++;
    const out: PvRequestResult[] = [];
    let failed = false;
    requests.forEach((r, index) => {
      const what = this.#describe(r.ptr, r.lo, r.hi);
      if (failed) {
        out.push({ index, what, code: "not-run", reason: "" });
        return;
      }
      try {
        this.#update(r.ptr, r.lo, r.hi);
        this.#c.updates++;
        out.push({ index, what, code: "ok", reason: "" });
      } catch (e) {
        const f = this.#refuse(e);
        failed = true;
        out.push({ index, what, code: f.code, reason: f.reason });
      }
    });
    return new PvBatchResult("mmu_update", out);
  }

  /**
   * The writable-page-table path: a trapped guest store of `size` bytes
   * (4 or 8) of `value`/`valueHi` at machine address `ma` inside a
   * page-table frame. The store is merged into its 8-byte entry,
   * validated as an update of that entry, and done; a refusal returns its
   * code (the guest then gets the #PF).
   */
  ptwrUpdate(ma: number, size: 4 | 8, value: number, valueHi = 0): 0 | PvErrno {
    const ptr = ma - (ma % 8);
    const m = this.#mem;
    let lo = m.read32(ptr), hi = m.read32(ptr + 4);
    if (size === 8) [lo, hi] = [value >>> 0, valueHi >>> 0];
    else if (ma % 8 === 0) lo = value >>> 0;
    else hi = value >>> 0;
    try {
      this.#update(ptr, lo, hi);
      this.#c.ptwrEmulations++;
      return 0;
    } catch (e) {
      return this.#refuse(e).code;
    }
  }

  // ---- mmuext_op -----------------------------------------------------------

  #ext(op: PvMmuextOp): void {
    switch (op.cmd) {
      case "pin-l1":
      case "pin-l2":
      case "pin-l3":
      case "pin-l4": {
        const level = Number(op.cmd[5]);
        this.#ownerCheck(op.mfn, "pinned");
        if (this.#info.isPinned(op.mfn)) {
          throw new Refusal(
            "EINVAL",
            `mfn ${hexPhys(op.mfn)} is already pinned`,
          );
        }
        this.#getTyped(op.mfn, level, "pinned");
        this.#info.setPinned(op.mfn, true);
        this.#c.pins++;
        return;
      }
      case "unpin": {
        this.#ownerCheck(op.mfn, "unpinned");
        if (!this.#info.isPinned(op.mfn)) {
          throw new Refusal("EINVAL", `mfn ${hexPhys(op.mfn)} is not pinned`);
        }
        this.#info.setPinned(op.mfn, false);
        this.#info.putPageType(op.mfn, this.#devalidate);
        this.#info.putPage(op.mfn);
        this.#c.unpins++;
        return;
      }
      case "new-baseptr": {
        this.#getTyped(op.mfn, 4, "new base pointer");
        const old = this.#base;
        this.#base = op.mfn;
        if (old >= 0) {
          this.#info.putPageType(old, this.#devalidate);
          this.#info.putPage(old);
        }
        this.#c.baseptrLoads++;
        return;
      }
      case "invlpg-local":
      case "tlb-flush-local":
        this.#c.flushes++;
        return;
      default:
        throw new Refusal(
          "EINVAL",
          `mmuext command ${
            JSON.stringify((op as { cmd: unknown }).cmd)
          } is unknown`,
        );
    }
  }

  /** `HYPERVISOR_mmuext_op`: apply `ops` in order, stopping at the first refusal. */
  mmuextOp(ops: readonly PvMmuextOp[]): PvBatchResult {
    PvMmu.#checkOps(ops);
    return this.#mmuextOp(ops);
  }

  static #checkOps(ops: readonly PvMmuextOp[]): void {
    if (!Array.isArray(ops)) {
      throw new TypeError(
        `ops ${
          String(ops)
        } are invalid: expected an array of { cmd, mfn?, va? }`,
      );
    }
  }

  #mmuextOp(ops: readonly PvMmuextOp[]): PvBatchResult {
    this.#c.mmuextCalls++;
    const out: PvRequestResult[] = [];
    let failed = false;
    ops.forEach((op, index) => {
      const what = `${op?.cmd ?? "?"}${
        "mfn" in op
          ? " " + hexPhys(op.mfn)
          : "va" in op
          ? " " + hexPhys(op.va)
          : ""
      }`;
      if (failed) {
        out.push({ index, what, code: "not-run", reason: "" });
        return;
      }
      this.#c.mmuextOps++;
      try {
        this.#ext(op);
        out.push({ index, what, code: "ok", reason: "" });
      } catch (e) {
        const f = this.#refuse(e);
        failed = true;
        out.push({ index, what, code: f.code, reason: f.reason });
      }
    });
    return new PvBatchResult("mmuext_op", out);
  }

  /**
   * `HYPERVISOR_multicall`: one entry into Xen that runs every call of
   * `calls` in order. A refused call does not stop the others (Xen's
   * `do_multicall` stores each call's result and goes on); the result
   * holds one {@linkcode PvBatchResult} per call. Malformed entries are a
   * `TypeError` before anything runs.
   */
  multicall(calls: readonly PvMulticallEntry[]): PvMulticallResult {
    if (!Array.isArray(calls)) {
      throw new TypeError(
        `calls ${
          String(calls)
        } are invalid: expected an array of { op: "mmu_update", requests } or { op: "mmuext_op", ops }`,
      );
    }
    calls.forEach((c, i) => {
      if (c?.op === "mmu_update") PvMmu.#checkRequests(c.requests);
      else if (c?.op === "mmuext_op") PvMmu.#checkOps(c.ops);
      else {
        throw new TypeError(
          `multicall entry ${i} op ${
            JSON.stringify((c as { op?: unknown })?.op)
          } is invalid: expected "mmu_update" or "mmuext_op"`,
        );
      }
    });
    this.#c.multicalls++;
    this.#c.multicalledCalls += calls.length;
    return new PvMulticallResult(
      calls.map((c) =>
        c.op === "mmu_update"
          ? this.#mmuUpdate(c.requests)
          : this.#mmuextOp(c.ops)
      ),
    );
  }

  // ---- the invariant checker --------------------------------------------------

  /**
   * Recompute every count from the tables themselves and check the
   * safety invariants (independently of the bookkeeping): every present
   * entry of a validated table maps a frame this domain owns; no leaf maps
   * a page-table frame writable (L1 entries with R/W, or any superpage);
   * an upper entry points at a table one level down, or read-only at one
   * of its own level (linear); Xen's L4 slots are empty; type and general
   * counts equal the references found (entries, pins, the base pointer).
   * Returns the violations (empty when all hold).
   */
  audit(): string[] {
    const bad: string[] = [];
    const info = this.#info;
    const m = this.#mem;
    const n = this.#frames;
    const refs = new Uint32Array(n);
    const typeRefs = new Uint32Array(n);
    const writable = new Uint32Array(n);
    const tables: number[] = [];
    for (let f = 0; f < n; f++) {
      const t = info.typeOf(f);
      if (t >= 1 && t <= 4 && info.typeCount(f) > 0) {
        if (!info.isValidated(f)) {
          bad.push(`mfn ${hexPhys(f)}: typed L${t} but not validated`);
        }
        tables.push(f);
      }
      if (info.isPinned(f)) {
        refs[f]++;
        typeRefs[f]++;
      }
    }
    if (this.#base >= 0) {
      refs[this.#base]++;
      typeRefs[this.#base]++;
      if (info.typeOf(this.#base) !== 4) {
        bad.push(`base pointer ${hexPhys(this.#base)} is no L4`);
      }
    }
    for (const f of tables) {
      const level = info.typeOf(f);
      const base = f * FRAME_SIZE;
      if (this.host.ownerIdOf(f) !== this.#dom) {
        bad.push(`table ${hexPhys(f)} is not owned by domain ${this.#dom}`);
      }
      for (let i = 0; i < 512; i++) {
        const lo = m.read32(base + 8 * i);
        if (lo === 0 && m.read32(base + 8 * i + 4) === 0) continue;
        const where = `L${level} ${hexPhys(f)}[${i}]`;
        if (!PvMmu.#guestSlot(level, i)) {
          bad.push(`${where}: Xen's reserved slot holds a guest entry`);
          continue;
        }
        if ((lo & P) === 0) continue;
        const hi = m.read32(base + 8 * i + 4);
        const t = mfnOf(lo, hi);
        if (!(t < n) || this.host.ownerIdOf(t) !== this.#dom) {
          bad.push(
            `${where} maps mfn ${
              hexPhys(t)
            }, which domain ${this.#dom} does not own`,
          );
          continue;
        }
        if (level === 1) {
          refs[t]++;
          if (lo & RW) writable[t]++;
          continue;
        }
        if (lo & PS) {
          bad.push(
            `${where} is a superpage: it maps mfns ${
              hexPhys(t)
            }.. without L1 type checks${lo & RW ? " (writable)" : ""}`,
          );
          if (lo & RW) {
            const span = level === 2 ? 512 : 512 * 512;
            for (let k = t; k < Math.min(n, t + span); k++) {
              const kt = info.typeOf(k);
              if (kt >= 1 && kt <= 4 && info.typeCount(k) > 0) {
                bad.push(
                  `${where}: page-table frame ${
                    hexPhys(k)
                  } is mapped writable by a superpage`,
                );
                break;
              }
            }
          }
          continue;
        }
        if (t === f) {
          if (lo & RW) bad.push(`${where}: linear self-mapping with R/W`);
          continue;
        }
        refs[t]++;
        typeRefs[t]++;
        const tt = info.typeOf(t);
        if (tt === level) {
          if (lo & RW) {
            bad.push(
              `${where}: linear mapping of L${level} ${hexPhys(t)} with R/W`,
            );
          }
        } else if (tt !== level - 1) {
          bad.push(
            `${where} points at mfn ${hexPhys(t)} of type ${
              info.info(t).type
            }, expected L${level - 1}`,
          );
        }
      }
    }
    for (let f = 0; f < n; f++) {
      const t = info.typeOf(f);
      const tc = info.typeCount(f);
      if (t >= 1 && t <= 4 && tc > 0 && writable[f] > 0) {
        bad.push(
          `page-table frame ${hexPhys(f)} (L${t}) has ${
            writable[f]
          } writable mapping(s)`,
        );
      }
      const expectType = t === PGT_WRITABLE
        ? writable[f]
        : t >= 1 && t <= 4
        ? typeRefs[f]
        : 0;
      if (t === PGT_NONE_CODE && (writable[f] > 0 || typeRefs[f] > 0)) {
        bad.push(
          `mfn ${hexPhys(f)} is untyped but has ${
            writable[f] + typeRefs[f]
          } typed reference(s)`,
        );
      } else if (tc !== expectType) {
        bad.push(
          `mfn ${hexPhys(f)} (${
            info.info(f).type
          }): type count ${tc}, recomputed ${expectType}`,
        );
      }
      if (info.refCount(f) !== refs[f]) {
        bad.push(
          `mfn ${hexPhys(f)}: reference count ${info.refCount(f)}, recomputed ${
            refs[f]
          }`,
        );
      }
    }
    return bad;
  }
}

const PGT_NONE_CODE = 0;
