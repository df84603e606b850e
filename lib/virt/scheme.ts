/**
 * The MMU virtualization interface: what a guest vCPU's memory accesses
 * and paging events go through. The reference scheme (`reference.ts`)
 * defines correct guest-visible behaviour; shadow paging, Xen PV direct
 * paging and nested paging implement the same interface, so that a
 * differential test can run one guest under each and compare.
 *
 * What a scheme is told (by the guest OS model, which plays the vCPU):
 *
 * | event | architectural meaning | who traps it |
 * | --- | --- | --- |
 * | {@linkcode MmuScheme.loadCr3} | MOV to CR3: new root; drops non-global TLB entries (SDM §4.10.4.1) | shadow: CR-access exit; PV: `MMUEXT_NEW_BASEPTR` hypercall; nested: nothing |
 * | {@linkcode MmuScheme.invlpg} | INVLPG: drop the page's TLB entries and all paging-structure caches | shadow: INVLPG exit; PV: `MMUEXT_INVLPG` hypercall; nested: nothing |
 * | {@linkcode MmuScheme.entryWritten} | the guest wrote one of its page-table entries (the `PageTable.onEntryWrite` choke point) | shadow: a write to a write-protected page, emulated; PV: `mmu_update` hypercall |
 * | {@linkcode MmuScheme.frameWritten} | any other guest write to a frame the scheme watches (zeroing, copying) | shadow: write-protection fault, emulated |
 * | {@linkcode MmuScheme.p2mChanged} | the host changed gfn → mfn (balloon, memslots) | the hypervisor itself |
 * | {@linkcode MmuScheme.accessFast} | one load, store or instruction fetch | hidden faults, EPT violations… |
 *
 * Every guest write to guest-physical memory reaches a scheme exactly
 * once: page-table entry writes made through a guest `PageTable` as
 * `entryWritten` (the page table is built through the memory's
 * `unwatched` view, so the raw bytes are not reported again), every other
 * write to a watched frame as `frameWritten`, and the guest's own loads
 * and stores through `accessFast`, which the scheme performs itself.
 *
 * Fidelity rule for schemes that model trapping hardware (shadow paging):
 * real hardware sees a guest store only if it traps, i.e. if the frame is
 * write-protected. Such a scheme should act on `entryWritten` and count an
 * emulated write only for frames it watches (`context.memory.isWatched`);
 * a write to an unwatched frame (an out-of-sync L1 shadow, an unshadowed
 * page) must leave it none the wiser until it next looks at the guest's
 * tables (resync on INVLPG or CR3 load). Paravirtual schemes see every
 * entry write: there, entry writes are hypercalls.
 *
 * Guest-visible behaviour (values read, #PF with error code and CR2, #GP,
 * A/D bits in guest entries) must be defined by the guest's tables alone:
 * a scheme may cache translations only as a TLB may (until INVLPG or a CR3
 * load), and must set guest A/D bits exactly when the architectural walk
 * would (the reference walks on every access; the guest OS model flushes
 * as a real kernel does, so a TLB-like cache gives the same results).
 *
 * {@linkcode BaseScheme} implements the bookkeeping (counters by VM exit
 * reason, a bounded event log, the rich `access`, the final data access);
 * a scheme extends it and overrides the `on…` hooks and `performAccess`.
 *
 * @module
 */

import { type AddressLike, hex64, LinearAddress } from "../address/address.ts";
import type { EntryChange } from "../paging/builder.ts";
import type { PagingMode } from "../paging/mode.ts";
import {
  accessFlags,
  type AccessKind,
  type GeneralProtection,
  type PageFault,
  Walk,
} from "../paging/record.ts";
import {
  ACCESS_WRITE,
  WALK_GP,
  WALK_PF,
  WalkScratch,
} from "../paging/walker.ts";
import type { Memory } from "../memory/memory.ts";
import type { Domain } from "./domain.ts";
import { FRAME_SIZE } from "./frames.ts";
import {
  type GpaProblem,
  gpaProblem,
  type GuestPhysicalMemory,
} from "./guest_memory.ts";
import type { Host, HypervisorKind } from "./host.ts";
import type {
  PvBatchResult,
  PvMmuextOp,
  PvMulticallEntry,
  PvMulticallResult,
  PvUpdate,
} from "./pv/mmu.ts";
import { schemeToHtml, schemeToText } from "../view/virt_html.ts";

/**
 * Access outcome code: the access completed.
 *
 * @example
 * ```ts
 * import { GUEST_OK, GuestAccessState } from "./scheme.ts";
 * import { ACCESS_USER } from "../paging/walker.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const s = new GuestAccessState();
 * assert.equal(ref.accessFast(s, 0, 0x1008, ACCESS_USER, 4, 0), GUEST_OK);
 * assert.equal(s.gpa, 0x8008);
 * ```
 */
export const GUEST_OK = 0;
/**
 * Access outcome code: #PF delivered to the guest (error code and CR2 in the state).
 *
 * @example
 * ```ts
 * import { GUEST_PF, GuestAccessState } from "./scheme.ts";
 * import { ACCESS_USER } from "../paging/walker.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const s = new GuestAccessState();
 * assert.equal(ref.accessFast(s, 0, 0x2000, ACCESS_USER, 4, 0), GUEST_PF);
 * assert.equal(s.errorCode, 0b100); // not present, user read
 * assert.equal(s.cr2Lo, 0x2000);
 * ```
 */
export const GUEST_PF = 1;
/**
 * Access outcome code: #GP(0) (a non-canonical address).
 *
 * @example
 * ```ts
 * import { GUEST_GP, GuestAccessState } from "./scheme.ts";
 * import { ACCESS_USER } from "../paging/walker.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const s = new GuestAccessState();
 * assert.equal(ref.accessFast(s, 0x8000, 0, ACCESS_USER, 4, 0), GUEST_GP); // non-canonical
 * ```
 */
export const GUEST_GP = 2;
/**
 * Access outcome code: no memory behind the gpa (an exit to the device model; see `problem`).
 *
 * @example
 * ```ts
 * import { GUEST_UNBACKED, GuestAccessState } from "./scheme.ts";
 * import { ACCESS_USER } from "../paging/walker.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const s = new GuestAccessState();
 * pt.map(0x3000, 0x200000, { user: true });  // beyond the guest's 1 MiB
 * assert.equal(ref.accessFast(s, 0, 0x3000, ACCESS_USER, 4, 0), GUEST_UNBACKED);
 * assert.equal(s.problem, "out-of-range");
 * ```
 */
export const GUEST_UNBACKED = 3;

/**
 * Reusable state of one guest access, filled by
 * {@linkcode MmuScheme.accessFast} (allocation-free hot path).
 *
 * @example
 * ```ts
 * import { GuestAccessState } from "./scheme.ts";
 * import assert from "node:assert/strict";
 * const s = new GuestAccessState();
 * s.errorCode = 7;
 * s.reset();
 * assert.equal(s.errorCode, 0);
 * ```
 */
export class GuestAccessState {
  /** GUEST_OK, GUEST_PF, GUEST_GP or GUEST_UNBACKED. */
  outcome: number = GUEST_OK;
  /** Guest-physical address of the data (ok), or the gpa with no memory (unbacked). */
  gpa = 0;
  /** Machine address of the data (ok). */
  hpa = 0;
  /** Value read or written (ok). */
  value = 0;
  /** #PF error code (SDM §4.7). */
  errorCode = 0;
  /** CR2 high half (#PF). */
  cr2Hi = 0;
  /** CR2 low half (#PF). */
  cr2Lo = 0;
  /** Fault reason (`Reason.*` of walker.ts) for #PF and #GP. */
  reason = 0;
  /** Level of the guest entry that stopped the walk (#PF), if known. */
  level = 0;
  /** Why there is no memory (unbacked). */
  problem: GpaProblem | "" = "";
  /** Whether the unbacked gpa was a guest page-table page (the walk itself failed). */
  inWalk = false;
  /** VM exits this access caused. */
  exits = 0;

  /** Clear every field. */
  reset(): void {
    this.outcome = GUEST_OK;
    this.gpa = this.hpa = this.value = 0;
    this.errorCode =
      this.cr2Hi =
      this.cr2Lo =
      this.reason =
      this.level =
        0;
    this.problem = "";
    this.inWalk = false;
    this.exits = 0;
  }
}

/**
 * What a scheme is attached to: one vCPU of one domain.
 *
 * @example
 * ```ts
 * import type { SchemeContext } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const domain = host.createDomain({ memory: 2 ** 20 });
 * const ctx: SchemeContext = { host, domain, memory: domain.memory, mode: pagingMode(X86_64_4LEVEL) };
 * const ref = new ReferenceScheme();
 * ref.attach(ctx);
 * assert.equal(ref.context, ctx);
 * assert.throws(() => ref.attach(ctx), /already attached/);
 * ```
 */
export interface SchemeContext {
  /** The host. */
  readonly host: Host<HypervisorKind>;
  /** The domain. */
  readonly domain: Domain;
  /** The domain's guest-physical memory (`unwatched` for the hypervisor's own writes). */
  readonly memory: GuestPhysicalMemory;
  /** The guest's paging mode (format, CR0.WP, EFER.NXE, CR4 bits): fixed while attached. */
  readonly mode: PagingMode;
}

/**
 * An access as users describe it.
 *
 * @example
 * ```ts
 * import type { GuestAccessOptions } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const o: GuestAccessOptions = { kind: "write", size: 1, value: 0xab, user: false };
 * assert.equal(ref.access(0x1003, o).outcome.kind, "ok");
 * assert.equal(vm.memory.read8(0x8003), 0xab);
 * ```
 */
export interface GuestAccessOptions {
  /** read (default), write or fetch. */
  kind?: AccessKind;
  /** CPL 3 (default true). */
  user?: boolean;
  /** Bytes: 1, 2 or 4 (default 4); the address must be a multiple of it. */
  size?: 1 | 2 | 4;
  /** Value to write (writes; default 0). */
  value?: number;
}

/**
 * A completed access.
 *
 * @example
 * ```ts
 * import type { GuestAccessOk } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * vm.memory.write32(0x8010, 77);
 * const o = ref.access(0x1010).outcome as GuestAccessOk;
 * assert.deepEqual([o.kind, o.gpa, o.value], ["ok", 0x8010, 77]);
 * assert.equal(o.hpa, vm.gpaToHpa(0x8010));
 * ```
 */
export interface GuestAccessOk {
  /** Discriminant. */
  readonly kind: "ok";
  /** Guest-physical address. */
  readonly gpa: number;
  /** Machine address. */
  readonly hpa: number;
  /** Value read (or written). */
  readonly value: number;
}

/**
 * An access whose gpa has no memory behind it (an exit to the device model, KVM_EXIT_MMIO; or a walk through such a gpa).
 *
 * @example
 * ```ts
 * import type { GuestAccessUnbacked } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * vm.balloonOut([8]);
 * const o = ref.access(0x1000).outcome as GuestAccessUnbacked;
 * assert.deepEqual([o.kind, o.gpa, o.problem, o.inWalk], ["unbacked", 0x8000, "unbacked", false]);
 * ```
 */
export interface GuestAccessUnbacked {
  /** Discriminant. */
  readonly kind: "unbacked";
  /** The gpa. */
  readonly gpa: number;
  /** Why. */
  readonly problem: GpaProblem;
  /** The gpa was read by the guest page walk (its page tables point there). */
  readonly inWalk: boolean;
  /** One-line explanation. */
  readonly message: string;
}

/**
 * The guest-visible outcome of an access.
 *
 * @example
 * ```ts
 * import type { GuestAccessOutcome } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const kinds = [0x1000, 0x5000, "0x0000800000000000"].map((va) => {
 *   const o: GuestAccessOutcome = ref.access(va).outcome;
 *   return o.kind;
 * });
 * assert.deepEqual(kinds, ["ok", "page-fault", "gp"]);
 * ```
 */
export type GuestAccessOutcome =
  | GuestAccessOk
  | PageFault
  | GeneralProtection
  | GuestAccessUnbacked;

/** A guest access as validated by {@linkcode parseGuestAccess}. */
export interface ParsedGuestAccess {
  /** The linear address. */
  readonly a: LinearAddress;
  /** read, write or fetch. */
  readonly kind: AccessKind;
  /** CPL 3. */
  readonly user: boolean;
  /** ACCESS_* flags for the walker. */
  readonly flags: number;
  /** Bytes: 1, 2 or 4. */
  readonly size: 1 | 2 | 4;
  /** Value to write (0 for reads and fetches). */
  readonly value: number;
}

/**
 * Validate a guest access as users describe it (shared by every scheme's
 * `access` and the guest OS): size 1, 2 or 4, naturally aligned (so that it
 * stays within one page), and a write value that fits the size.
 *
 * @example
 * ```ts
 * import { parseGuestAccess } from "./scheme.ts";
 * import assert from "node:assert/strict";
 * const p = parseGuestAccess(0x1002, { kind: "write", size: 2, value: 0xffff });
 * assert.equal(p.size, 2);
 * assert.throws(() => parseGuestAccess(0x1001, { size: 2 }), /misaligned/);
 * assert.throws(() => parseGuestAccess(0x1000, { kind: "write", size: 1, value: 256 }), /1-byte write/);
 * ```
 */
export function parseGuestAccess(
  va: AddressLike | LinearAddress,
  options: GuestAccessOptions = {},
): ParsedGuestAccess {
  const a = LinearAddress.from(va);
  const kind = options.kind ?? "read";
  const user = options.user ?? true;
  const flags = accessFlags({ kind, user });
  const size = options.size ?? 4;
  if (size !== 1 && size !== 2 && size !== 4) {
    throw new RangeError(
      `access size ${String(size)} is invalid: expected 1, 2 or 4 bytes`,
    );
  }
  if (a.lo % size !== 0) {
    throw new RangeError(
      `access at ${a.toHex()} is misaligned for ${size} bytes: expected a multiple of ${size} (so that it stays within one page)`,
    );
  }
  const value = options.value ?? 0;
  if (
    kind === "write" &&
    (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * size))
  ) {
    throw new RangeError(
      `value ${
        String(value)
      } is invalid for a ${size}-byte write: expected an integer in [0, 2^${
        8 * size
      })`,
    );
  }
  return { a, kind, user, flags, size, value };
}

/**
 * Result of {@linkcode MmuScheme.access}.
 *
 * @example
 * ```ts
 * import type { GuestAccessResult } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * const r: GuestAccessResult = ref.access(0x1004, { kind: "fetch", size: 2 });
 * assert.deepEqual([r.kind, r.user, r.size, r.exits], ["fetch", true, 2, 0]);
 * assert.equal(r.va.toHex(), "0x1004");
 * ```
 */
export interface GuestAccessResult {
  /** The linear address. */
  readonly va: LinearAddress;
  /** Kind. */
  readonly kind: AccessKind;
  /** CPL 3. */
  readonly user: boolean;
  /** Bytes. */
  readonly size: number;
  /** Outcome. */
  readonly outcome: GuestAccessOutcome;
  /** VM exits the access caused. */
  readonly exits: number;
}

/**
 * Counters of a scheme.
 *
 * @example
 * ```ts
 * import type { SchemeCounters } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * ref.access(0x1000);
 * ref.access(0x9000);
 * const c: SchemeCounters = ref.counters;
 * assert.deepEqual([c.accesses, c.guestPageFaults, c.cr3Loads, c.vmExits], [2, 1, 1, 0]);
 * assert.equal(c.extra.guestWalks, 2);
 * ```
 */
export interface SchemeCounters {
  /** Guest accesses. */
  readonly accesses: number;
  /** #PF delivered to the guest (true faults). */
  readonly guestPageFaults: number;
  /** #GP delivered to the guest. */
  readonly generalProtection: number;
  /** Accesses with no memory behind them. */
  readonly unbacked: number;
  /** Guest CR3 loads. */
  readonly cr3Loads: number;
  /** Guest INVLPGs. */
  readonly invlpgs: number;
  /** Guest page-table entry writes seen. */
  readonly entryWrites: number;
  /** Other writes to watched frames. */
  readonly frameWrites: number;
  /** P2M / memslot change notifications. */
  readonly p2mChanges: number;
  /** VM exits in all. */
  readonly vmExits: number;
  /** VM exits by reason (e.g. "page-fault", "cr-access", "invlpg", "ept-violation", "hypercall", "mmio"). */
  readonly exitsByReason: Readonly<Record<string, number>>;
  /** Scheme-specific counters (hidden faults, shadow pages, emulated writes, table reads…). */
  readonly extra: Readonly<Record<string, number>>;
}

/**
 * One logged event.
 *
 * @example
 * ```ts
 * import type { SchemeEvent } from "./scheme.ts";
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x8000, { user: true });
 * ref.loadCr3(pt.root);
 * ref.access(0x9000);
 * const e: SchemeEvent[] = [...ref.events];
 * assert.deepEqual(e.map((x) => x.kind), ["cr3-load", "guest-fault"]);
 * assert.equal(e[1].va, "0x9000");
 * ```
 */
export interface SchemeEvent {
  /** Sequence number since the scheme was created. */
  readonly seq: number;
  /** What happened: an exit reason, or "cr3-load", "invlpg", "entry-write", "guest-fault"… */
  readonly kind: string;
  /** Whether it was a VM exit. */
  readonly exit: boolean;
  /** The linear address involved, if any (hex). */
  readonly va?: string;
  /** The guest-physical address involved, if any. */
  readonly gpa?: number;
  /** Free text. */
  readonly detail?: string;
}

/**
 * The hypercalls a Xen PV guest kernel updates its page tables with
 * (`HYPERVISOR_mmu_update`, `HYPERVISOR_mmuext_op`,
 * `HYPERVISOR_multicall`): what {@linkcode MmuScheme.paravirt} exposes. A
 * `PvScheme` implements them; a `TlbFront` around one hands out the inner
 * scheme's.
 *
 * @example
 * ```ts
 * import type { PvHypercalls } from "./scheme.ts";
 * import { PvScheme } from "./pv/scheme.ts";
 * import assert from "node:assert/strict";
 * const hc: PvHypercalls | undefined = new PvScheme().paravirt;
 * assert.equal(typeof hc?.mmuUpdate, "function");
 * ```
 */
export interface PvHypercalls {
  /** `HYPERVISOR_mmu_update` (one entry into Xen). */
  mmuUpdate(requests: readonly PvUpdate[]): PvBatchResult;
  /** `HYPERVISOR_mmuext_op` (one entry into Xen). */
  mmuextOp(ops: readonly PvMmuextOp[]): PvBatchResult;
  /** `HYPERVISOR_multicall` (one entry into Xen for all the calls it carries). */
  multicall(calls: readonly PvMulticallEntry[]): PvMulticallResult;
}

/**
 * A TLB invalidation a scheme performs on the guest's behalf (a PV guest's
 * `MMUEXT_NEW_BASEPTR`, `MMUEXT_TLB_FLUSH_LOCAL`: `"non-global"`;
 * `MMUEXT_INVLPG_LOCAL`: `"page"` with the address). A TLB in front of the
 * scheme must apply it (see `TlbFront`).
 *
 * @example
 * ```ts
 * import type { TlbInvalidateListener } from "./scheme.ts";
 * import assert from "node:assert/strict";
 * const seen: string[] = [];
 * const l: TlbInvalidateListener = (kind, hi, lo) => seen.push(`${kind} ${hi}:${lo}`);
 * l("page", 0, 0x1000);
 * assert.deepEqual(seen, ["page 0:4096"]);
 * ```
 */
export type TlbInvalidateListener = (
  kind: "non-global" | "page",
  vaHi: number,
  vaLo: number,
) => void;

/**
 * An MMU virtualization scheme (see the module notes for the contract).
 *
 * @example The reference scheme behind a hand-built guest table.
 * ```ts
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import type { MmuScheme } from "./scheme.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const scheme: MmuScheme = new ReferenceScheme();
 * scheme.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });  // guest table in guest memory
 * pt.onEntryWrite((c) => scheme.entryWritten(c));
 * pt.map(0x40_0000, 0x9000, { user: true });
 * scheme.loadCr3(pt.root);
 * const w = scheme.access(0x40_0010, { kind: "write", value: 99 });
 * assert.equal(w.outcome.kind === "ok" && w.outcome.gpa, 0x9010);
 * assert.equal(vm.memory.read32(0x9010), 99);
 * const f = scheme.access(0x50_0000);
 * assert.equal(f.outcome.kind === "page-fault" && f.outcome.errorCode.value, 0b100);
 * ```
 */
export interface MmuScheme {
  /** Short name ("reference", "shadow", "pv", "nested"). */
  readonly name: string;
  /**
   * Bind to one vCPU of a domain. Called once, before anything else; the
   * scheme may subscribe to `context.domain.onP2mChange` and watch frames
   * of `context.memory`.
   */
  attach(context: SchemeContext): void;
  /** Guest MOV to CR3 with the root table at gpa `root` (no PCIDs: non-global translations are flushed). */
  loadCr3(root: number): void;
  /** Guest INVLPG of the page containing `vaHi:vaLo`. */
  invlpg(vaHi: number, vaLo: number): void;
  /** A guest page-table entry write through the choke point, after it landed in guest memory. */
  entryWritten(change: EntryChange): void;
  /** Any other guest write of `length` bytes at `gpa` (within one frame) to a watched frame, after it landed. */
  frameWritten(gpa: number, length: number): void;
  /** The host changed the translation of gfns `[firstGfn, firstGfn + count)`. */
  p2mChanged(firstGfn: number, count: number): void;
  /**
   * Paravirtual hint: the guest allocated (zeroed) a frame at `gpa` to be a
   * page table. An HVM guest gives no such hint, so HVM schemes must not
   * depend on it (Xen PV pins tables with `MMUEXT_PIN_L*_TABLE`).
   */
  tableFrameAllocated?(gpa: number): void;
  /** Paravirtual hint: the guest stopped using the page-table frame at `gpa` (after unlinking and flushing). */
  tableFrameFreed?(gpa: number): void;
  /**
   * Paravirtual: the hypercalls of a Xen PV scheme (what a `GuestOs` with
   * `kernel: "pv"` updates its tables with); absent for HVM schemes.
   */
  readonly paravirt?: PvHypercalls;
  /**
   * Subscribe to the TLB invalidations the scheme performs for the guest
   * (a PV scheme's flushing hypercalls); returns the unsubscribe. HVM
   * schemes have none: their guests flush with MOV to CR3 and INVLPG.
   */
  onTlbInvalidate?(listener: TlbInvalidateListener): () => void;
  /**
   * Walk the tables the hardware walks for `vaHi:vaLo` into `scratch`
   * without setting A/D bits and without counting anything; returns the
   * walk outcome (`WALK_OK`…). For a TLB in front of the scheme, to learn
   * the rights, D and G of a translation it just made. Schemes whose
   * hardware walks the guest's own tables from the guest CR3 (reference,
   * nested) need not implement it; a PV scheme walks machine tables.
   */
  probeTranslation?(
    scratch: WalkScratch,
    vaHi: number,
    vaLo: number,
    flags: number,
  ): number;
  /**
   * Whether a write to machine frame `mfn` must go to the scheme even
   * through a writable TLB entry (a frame Xen holds as a page table: Xen
   * flushes stale writable mappings when a frame's type changes).
   */
  writeTrapped?(mfn: number): boolean;
  /**
   * The page shift (12, 21, 30) of the second-stage mapping of guest-physical
   * `gpa`, for schemes with one (nested paging): a TLB entry is no larger
   * than min(guest page, host page).
   */
  secondStagePageShift?(gpa: number): number;
  /**
   * One guest access at `vaHi:vaLo` (ACCESS_* `flags` of walker.ts;
   * `size` 1, 2 or 4 bytes, naturally aligned; `value` for writes). Fills
   * `state`; returns its outcome code. Hot path: no validation, no
   * allocation.
   */
  accessFast(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number;
  /** {@linkcode MmuScheme.accessFast} with validation and a rich result. */
  access(
    va: AddressLike | LinearAddress,
    options?: GuestAccessOptions,
  ): GuestAccessResult;
  /** Counters since creation or {@linkcode MmuScheme.resetCounters}. */
  readonly counters: SchemeCounters;
  /** Zero the counters. */
  resetCounters(): void;
  /** The most recent events (bounded), oldest first. */
  readonly events: readonly SchemeEvent[];
  /** Forget the logged events. */
  clearEvents(): void;
}

/**
 * Options for {@linkcode BaseScheme}.
 *
 * @example
 * ```ts
 * import type { SchemeOptions } from "./scheme.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const quiet: SchemeOptions = { eventLog: 0 };
 * assert.deepEqual(new ReferenceScheme(quiet).events, []);
 * assert.throws(() => new ReferenceScheme({ eventLog: -1 }), /eventLog -1 is invalid/);
 * ```
 */
export interface SchemeOptions {
  /** Events kept in the log (the most recent ones). Default 256; 0 turns the log off. */
  eventLog?: number;
}

/**
 * The final data access of a guest access at machine address `hpa`: store
 * `value` (1, 2 or 4 bytes) or load, and put what the guest saw in
 * `state.value`. Shared by every scheme and by the TLB in front of them
 * (not re-exported from `mod.ts`: an internal building block).
 *
 * @example
 * ```ts
 * import { GuestAccessState, machineDataAccess } from "./scheme.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const m = new PhysicalMemory({ size: 2 ** 20 });
 * const s = new GuestAccessState();
 * machineDataAccess(m, s, 0x1000, true, 2, 0x12345);
 * assert.equal(s.value, 0x2345);
 * machineDataAccess(m, s, 0x1000, false, 4, 0);
 * assert.equal(s.value, 0x2345);
 * ```
 */
export function machineDataAccess(
  m: Memory,
  state: GuestAccessState,
  hpa: number,
  write: boolean,
  size: number,
  value: number,
): void {
  if (write) {
    if (size === 4) m.write32(hpa, value);
    else if (size === 2) m.write16(hpa, value);
    else m.write8(hpa, value);
    state.value = size === 4
      ? value >>> 0
      : value & (size === 2 ? 0xffff : 0xff);
  } else {
    state.value = size === 4
      ? m.read32(hpa)
      : size === 2
      ? m.read16(hpa)
      : m.read8(hpa);
  }
}

/**
 * The common part of every scheme: counters, the event log, the rich
 * `access`, and the final data access. Subclasses implement
 * {@linkcode BaseScheme.performAccess} and override the `on…` hooks.
 *
 * @example A scheme that maps nothing: every access faults.
 * ```ts
 * import { BaseScheme, GUEST_PF, type GuestAccessState } from "./scheme.ts";
 * import assert from "node:assert/strict";
 * class Nothing extends BaseScheme {
 *   readonly name = "nothing";
 *   protected performAccess(s: GuestAccessState): number {
 *     s.errorCode = 0;
 *     return GUEST_PF;
 *   }
 * }
 * const n = new Nothing();
 * assert.throws(() => n.access(0x1000), /not attached/);
 * ```
 */
export abstract class BaseScheme implements MmuScheme {
  /** Short name. */
  abstract readonly name: string;
  #ctx: SchemeContext | undefined = undefined;
  #logCap: number;
  #log: SchemeEvent[] = [];
  #logHead = 0;
  #seq = 0;
  #state = new GuestAccessState();
  #accesses = 0;
  #pf = 0;
  #gp = 0;
  #unbacked = 0;
  #cr3 = 0;
  #invlpg = 0;
  #entry = 0;
  #frame = 0;
  #p2m = 0;
  #exits = 0;
  #byReason = new Map<string, number>();
  #unsubscribe: (() => void) | undefined = undefined;

  /** Create an unattached scheme. */
  constructor(options: SchemeOptions = {}) {
    const cap = options.eventLog ?? 256;
    if (!Number.isInteger(cap) || cap < 0) {
      throw new RangeError(
        `eventLog ${String(cap)} is invalid: expected a non-negative integer`,
      );
    }
    this.#logCap = cap;
  }

  /** The attachment (throws before {@linkcode BaseScheme.attach}). */
  get context(): SchemeContext {
    if (this.#ctx === undefined) {
      throw new RangeError(
        `scheme "${this.name}" is not attached to a domain: call attach() first`,
      );
    }
    return this.#ctx;
  }

  #attachedOrThrow(): SchemeContext {
    return this.context;
  }

  /** Whether attached. */
  get attached(): boolean {
    return this.#ctx !== undefined;
  }

  /** See {@linkcode MmuScheme.attach}. Subscribes to P2M changes. */
  attach(context: SchemeContext): void {
    if (this.#ctx !== undefined) {
      throw new RangeError(
        `scheme "${this.name}" is already attached to domain "${this.#ctx.domain.name}"`,
      );
    }
    if (
      context === null || typeof context !== "object" ||
      context.domain === undefined || context.mode === undefined
    ) {
      throw new TypeError(
        `scheme context ${
          String(context)
        } is invalid: expected { host, domain, memory, mode }`,
      );
    }
    this.#ctx = context;
    this.#unsubscribe = context.domain.onP2mChange((g, c) =>
      this.p2mChanged(g, c)
    );
    this.onAttach(context);
  }

  /** Stop listening to the domain (the scheme cannot be used afterwards). */
  detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** See {@linkcode MmuScheme.loadCr3}. */
  loadCr3(root: number): void {
    this.#attachedOrThrow();
    this.#cr3++;
    this.logEvent("cr3-load", false, undefined, root);
    this.onLoadCr3(root);
  }

  /** See {@linkcode MmuScheme.invlpg}. */
  invlpg(vaHi: number, vaLo: number): void {
    this.#attachedOrThrow();
    this.#invlpg++;
    this.logEvent("invlpg", false, hex64(vaHi, vaLo));
    this.onInvlpg(vaHi, vaLo);
  }

  /** See {@linkcode MmuScheme.entryWritten}. */
  entryWritten(change: EntryChange): void {
    this.#entry++;
    this.onEntryWritten(change);
  }

  /** See {@linkcode MmuScheme.frameWritten}. */
  frameWritten(gpa: number, length: number): void {
    this.#frame++;
    this.onFrameWritten(gpa, length);
  }

  /** See {@linkcode MmuScheme.p2mChanged}. */
  p2mChanged(firstGfn: number, count: number): void {
    this.#p2m++;
    this.onP2mChanged(firstGfn, count);
  }

  /** See {@linkcode MmuScheme.accessFast}. */
  accessFast(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    this.#accesses++;
    state.reset();
    state.cr2Hi = vaHi;
    state.cr2Lo = vaLo;
    const r = this.performAccess(state, vaHi, vaLo, flags, size, value);
    state.outcome = r;
    if (r === GUEST_PF) {
      this.#pf++;
      if (this.#logCap > 0) {
        this.logEvent(
          "guest-fault",
          false,
          hex64(state.cr2Hi, state.cr2Lo),
          undefined,
          `#PF error code 0x${state.errorCode.toString(16)}`,
        );
      }
    } else if (r === GUEST_GP) this.#gp++;
    else if (r === GUEST_UNBACKED) this.#unbacked++;
    return r;
  }

  /** See {@linkcode MmuScheme.access}. */
  access(
    va: AddressLike | LinearAddress,
    options: GuestAccessOptions = {},
  ): GuestAccessResult {
    const ctx = this.context;
    const { a, kind, user, flags, size, value } = parseGuestAccess(va, options);
    const s = this.#state;
    const r = this.accessFast(s, a.hi, a.lo, flags, size, value);
    return {
      va: a,
      kind,
      user,
      size,
      outcome: outcomeOf(s, r, ctx.mode, flags),
      exits: s.exits,
    };
  }

  /** See {@linkcode MmuScheme.counters}. */
  get counters(): SchemeCounters {
    return {
      accesses: this.#accesses,
      guestPageFaults: this.#pf,
      generalProtection: this.#gp,
      unbacked: this.#unbacked,
      cr3Loads: this.#cr3,
      invlpgs: this.#invlpg,
      entryWrites: this.#entry,
      frameWrites: this.#frame,
      p2mChanges: this.#p2m,
      vmExits: this.#exits,
      exitsByReason: Object.fromEntries(
        [...this.#byReason].sort((a, b) => a[0] < b[0] ? -1 : 1),
      ),
      extra: this.extraCounters(),
    };
  }

  /** See {@linkcode MmuScheme.resetCounters}. */
  resetCounters(): void {
    this.#accesses =
      this.#pf =
      this.#gp =
      this.#unbacked =
        0;
    this.#cr3 =
      this.#invlpg =
      this.#entry =
      this.#frame =
      this.#p2m =
        0;
    this.#exits = 0;
    this.#byReason.clear();
    this.resetExtraCounters();
  }

  /** See {@linkcode MmuScheme.events}. */
  get events(): readonly SchemeEvent[] {
    if (this.#log.length < this.#logCap) return [...this.#log];
    return [
      ...this.#log.slice(this.#logHead),
      ...this.#log.slice(0, this.#logHead),
    ];
  }

  /** See {@linkcode MmuScheme.clearEvents}. */
  clearEvents(): void {
    this.#log = [];
    this.#logHead = 0;
  }

  // ---- for subclasses ----------------------------------------------------

  /**
   * Perform one access (see {@linkcode MmuScheme.accessFast}): fill
   * `state` and return the outcome code. `state` was reset and CR2 preset
   * to the access's address.
   */
  protected abstract performAccess(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number;

  /** Hook: attached. */
  protected onAttach(_context: SchemeContext): void {}
  /** Hook: guest CR3 load. */
  protected onLoadCr3(_root: number): void {}
  /** Hook: guest INVLPG. */
  protected onInvlpg(_vaHi: number, _vaLo: number): void {}
  /** Hook: guest page-table entry write. */
  protected onEntryWritten(_change: EntryChange): void {}
  /** Hook: write to a watched frame. */
  protected onFrameWritten(_gpa: number, _length: number): void {}
  /** Hook: P2M change. */
  protected onP2mChanged(_firstGfn: number, _count: number): void {}
  /** Scheme-specific counters for {@linkcode BaseScheme.counters}. */
  protected extraCounters(): Record<string, number> {
    return {};
  }
  /** Zero the scheme-specific counters. */
  protected resetExtraCounters(): void {}

  /**
   * Count a VM exit for `reason` (and one in `state.exits` if given), and
   * log it.
   */
  protected vmExit(
    state: GuestAccessState | undefined,
    reason: string,
    va?: string,
    gpa?: number,
    detail?: string,
  ): void {
    this.#exits++;
    this.#byReason.set(reason, (this.#byReason.get(reason) ?? 0) + 1);
    if (state !== undefined) state.exits++;
    this.logEvent(reason, true, va, gpa, detail);
  }

  /** Log an event (kept if the log is on). */
  protected logEvent(
    kind: string,
    exit: boolean,
    va?: string,
    gpa?: number,
    detail?: string,
  ): void {
    const cap = this.#logCap;
    if (cap === 0) return;
    const e: SchemeEvent = {
      seq: this.#seq++,
      kind,
      exit,
      ...(va !== undefined ? { va } : {}),
      ...(gpa !== undefined ? { gpa } : {}),
      ...(detail !== undefined ? { detail } : {}),
    };
    if (this.#log.length < cap) this.#log.push(e);
    else {
      this.#log[this.#logHead] = e;
      this.#logHead = (this.#logHead + 1) % cap;
    }
  }

  /**
   * The data part of an access once the guest walk gave `gpa`: translate
   * through the domain (P2M or memslots), then read or write machine
   * memory. Returns GUEST_OK, or GUEST_UNBACKED with `state.problem` set.
   */
  protected dataAccess(
    state: GuestAccessState,
    gpa: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const ctx = this.#ctx!;
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const mfn = ctx.domain.mfnForAccess(gfn, (flags & ACCESS_WRITE) !== 0);
    state.gpa = gpa;
    if (mfn < 0) {
      state.problem = gpaProblem(mfn);
      return GUEST_UNBACKED;
    }
    return this.dataAccessHpa(
      state,
      mfn * FRAME_SIZE + (gpa - gfn * FRAME_SIZE),
      flags,
      size,
      value,
    );
  }

  /** Read or write `size` bytes of machine memory at `hpa` for the access. */
  protected dataAccessHpa(
    state: GuestAccessState,
    hpa: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    state.hpa = hpa;
    machineDataAccess(
      this.#ctx!.host.memory,
      state,
      hpa,
      (flags & ACCESS_WRITE) !== 0,
      size,
      value,
    );
    return GUEST_OK;
  }

  /** One-line summary. */
  toString(): string {
    const c = this.counters;
    return `${this.name} scheme: ${c.accesses} accesses, ${c.guestPageFaults} guest #PF, ${c.vmExits} VM exits`;
  }

  /** Jupyter rich display: counters and recent events. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": schemeToText(this.name, this.counters, this.events),
      "text/html": schemeToHtml(this.name, this.counters, this.events),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return schemeToText(this.name, this.counters, this.events);
  }
}

/**
 * The rich outcome of a filled state (for `access` and displays): #PF and
 * #GP records are built by the paging record code, so messages match a
 * native walk's exactly.
 *
 * @example
 * ```ts
 * import { GUEST_PF, GuestAccessState, outcomeOf } from "./scheme.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import { ACCESS_USER } from "../paging/walker.ts";
 * import assert from "node:assert/strict";
 * const s = new GuestAccessState();
 * s.cr2Lo = 0x1000; s.errorCode = 4; s.reason = 1;
 * const o = outcomeOf(s, GUEST_PF, pagingMode(X86_64_4LEVEL), ACCESS_USER);
 * assert.equal(o.kind === "page-fault" && o.cr2.toHex(), "0x1000");
 * ```
 */
export function outcomeOf(
  s: GuestAccessState,
  code: number,
  mode: PagingMode,
  flags: number,
): GuestAccessOutcome {
  if (code === GUEST_OK) {
    return { kind: "ok", gpa: s.gpa, hpa: s.hpa, value: s.value };
  }
  if (code === GUEST_UNBACKED) {
    const p = s.problem === "" ? "unbacked" : s.problem;
    return {
      kind: "unbacked",
      gpa: s.gpa,
      problem: p,
      inWalk: s.inWalk,
      message: `no memory behind gpa 0x${s.gpa.toString(16)} (${p})${
        s.inWalk ? " during the guest page walk" : ""
      }`,
    };
  }
  const w = new WalkScratch();
  w.outcome = code === GUEST_GP ? WALK_GP : WALK_PF;
  w.errorCode = s.errorCode;
  w.reason = s.reason;
  w.leafLevel = s.level;
  const va = new LinearAddress(s.cr2Hi >>> 0, s.cr2Lo >>> 0);
  const o = Walk.fromScratch(w, mode, 0, va, flags).outcome;
  if (o.kind === "ok") throw new Error("internal: a fault outcome built as ok");
  return o;
}
