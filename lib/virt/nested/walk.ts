/**
 * The 2-D (nested) page walk by composition (DESIGN.md example 7): the one
 * guest walker (`walkInto`) reads guest entries through a memory interface;
 * here that interface is the {@linkcode NestedWalker} itself, which turns
 * each guest table address (a gpa) into a host address with a second-stage
 * walk (EPT, SDM Vol. 3 §28.3; or AMD NPT, APM Vol. 2 §15.25) before
 * reading it. The final gpa takes one more second-stage walk. Every memory
 * reference is recorded in order with its tags (guest level or data; host
 * level or guest entry), so counts come out of the record:
 * n·(m+1) + m = (n+1)(m+1) − 1 reads for n guest and m host levels — 24
 * for 4×4 — not counting the data access itself (FIGURES.md convention).
 *
 * Outcomes are kept apart: a guest #PF (no exit: delivered to the guest),
 * an EPT violation (exit, with its qualification), an EPT
 * misconfiguration, or an AMD #NPF (exit, EXITINFO1 error code).
 *
 * Modelling choices (documented simplifications):
 * - The guest walk writes its A/D bits (guest-physical memory) after the
 *   walk succeeds, as the guest walker does natively; each A/D write is
 *   recorded as one reference (tag "write"); its second-stage translation
 *   is checked for write permission by an unrecorded host walk (the
 *   hardware reuses the translation it made for the read).
 * - With EPT A/D enabled, every guest paging-structure access is treated
 *   as a write (SDM §28.3.5 and §28.3.3.2), so it needs EPT write
 *   permission and sets the EPT dirty flag, and an EPT violation on it
 *   reports both read and write in the qualification.
 * - NPT: guest table reads are user reads, guest A/D updates user writes
 *   (APM §15.25.5).
 *
 * @module
 */

import {
  EPT_FETCH,
  EPT_MISCONFIG,
  EPT_OK,
  EPT_READ,
  EPT_REASONS,
  EPT_WRITE,
  type EptMode,
  EptScratch,
  eptWalkInto,
} from "../../paging/ept.ts";
import type { PagingMode } from "../../paging/mode.ts";
import {
  ACCESS_FETCH,
  ACCESS_USER,
  ACCESS_WRITE,
  type EntryMemory,
  FAULT_REASONS,
  PFEC_ID,
  PFEC_P,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../../paging/walker.ts";

/** Nested walk outcome: translated; `hpa` is the data's host address. */
export const NESTED_OK = 0;
/** Nested walk outcome: guest #PF (delivered to the guest, no VM exit). */
export const NESTED_GUEST_PF = 1;
/** Nested walk outcome: guest #GP (non-canonical address). */
export const NESTED_GUEST_GP = 2;
/** Nested walk outcome: EPT violation (VM exit, basic reason 48). */
export const NESTED_EPT_VIOLATION = 3;
/** Nested walk outcome: EPT misconfiguration (VM exit, basic reason 49). */
export const NESTED_EPT_MISCONFIG = 4;
/** Nested walk outcome: AMD nested page fault (#VMEXIT code 0x400). */
export const NESTED_NPF = 5;

/** EPT-violation exit qualification bits (SDM Table 28-7). */
export const EXITQ_READ = 1,
  EXITQ_WRITE = 2,
  EXITQ_FETCH = 4,
  EXITQ_READABLE = 8,
  EXITQ_WRITABLE = 16,
  EXITQ_EXECUTABLE = 32,
  EXITQ_GLA_VALID = 128,
  EXITQ_FINAL = 256;

/** The second stage: Intel EPT or AMD NPT, with its mode. */
export type SecondStage =
  | { readonly kind: "ept"; readonly mode: EptMode }
  | { readonly kind: "npt"; readonly mode: PagingMode };

/** Most references one nested walk can record (5×5, A/D writes, data). */
export const MAX_REFS = 64;

/**
 * A reusable, allocation-free 2-D walker. Also the guest walker's
 * {@linkcode EntryMemory}: its reads and writes are guest-physical and go
 * through the second stage.
 *
 * @example A 4×4 walk: 24 references, then the data.
 * ```ts
 * import { NestedWalker, NESTED_OK } from "./walk.ts";
 * import { EPT_4LEVEL, eptMap, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { ACCESS_USER } from "../../paging/walker.ts";
 * import { PageTable } from "../../paging/builder.ts";
 * import { FrameAllocator, PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const gmode = pagingMode(X86_64_4LEVEL);
 * const guest = new PhysicalMemory({ size: 1 << 20 });          // guest-physical
 * const pt = new PageTable(guest, { mode: gmode });
 * pt.map(0x40_0000, 0x8000, { user: true, accessed: true });
 * const host = new PhysicalMemory({ size: 4 << 20 });
 * const frames = new FrameAllocator(host, { end: 1 << 20 });
 * const emode = eptMode(EPT_4LEVEL);
 * const root = frames.alloc();
 * for (let gfn = 0; gfn < 256; gfn++) {                            // identity + 1 MiB
 *   eptMap(emode, host, () => frames.alloc(), root, gfn * 4096, gfn * 4096 + (1 << 20) * 2);
 *   host.writeBytes(gfn * 4096 + (1 << 20) * 2, guest.readBytes(gfn * 4096, 4096));
 * }
 * const w = new NestedWalker(gmode, { kind: "ept", mode: emode }, host, root);
 * assert.equal(w.walk(pt.root, 0, 0x40_0010, ACCESS_USER), NESTED_OK);
 * assert.equal(w.hpa, 0x8010 + (1 << 20) * 2);
 * assert.equal(w.tableReads, 24);
 * ```
 */
export class NestedWalker implements EntryMemory {
  /** Guest paging mode. */
  readonly guestMode: PagingMode;
  /** The second stage. */
  readonly stage: SecondStage;
  /** Machine memory (host tables and guest frames). */
  readonly memory: EntryMemory;
  /** Second-stage root (hpa). */
  hostRoot: number;
  /** The guest walk's scratch (the guest-level record). */
  readonly guest: WalkScratch = new WalkScratch();
  /** Per reference: guest level (1..n), or 0 for the final gpa / data. */
  readonly refGuest: Uint8Array = new Uint8Array(MAX_REFS);
  /** Per reference: host level (1..m), or 0 for the guest entry / data access. */
  readonly refHost: Uint8Array = new Uint8Array(MAX_REFS);
  /** Per reference: host-physical address. */
  readonly refAddr: Float64Array = new Float64Array(MAX_REFS);
  /** Per reference: 1 for a write (guest A/D update), else 0. */
  readonly refWrite: Uint8Array = new Uint8Array(MAX_REFS);
  /** References recorded. */
  refs = 0;
  /** Outcome (NESTED_*). */
  outcome: number = NESTED_OK;
  /** The data's gpa (ok), or the gpa whose second-stage walk faulted. */
  gpa = 0;
  /** The data's hpa (ok). */
  hpa = 0;
  /** Second-stage fault on a guest table access (else on the final access). */
  onTableWalk = false;
  /** Guest level whose entry access faulted in the second stage (0: final). */
  faultGuestLevel = 0;
  /** Second-stage level that stopped the walk. */
  hostLevel = 0;
  /** EPT reason (EptReason) or NPT walker Reason of the second-stage stop. */
  hostReason = 0;
  /** EPT-violation exit qualification (EXITQ_* bits). */
  exitQualification = 0;
  /** #NPF EXITINFO1 low 32 bits (a #PF error code). */
  npfErrorCode = 0;
  #e = new EptScratch();
  #n = new WalkScratch();
  #faulted = false;
  #entryGpa = -1;
  #entryHpa = 0;
  #guestLevel = 0;
  #access = 0;

  /** Guest mode (4- or 5-level x86-64), second stage, machine memory, root. */
  constructor(
    guestMode: PagingMode,
    stage: SecondStage,
    memory: EntryMemory,
    hostRoot: number,
  ) {
    if (guestMode.format.kind !== "x86-64") {
      throw new RangeError(
        `guest format "${guestMode.format.name}" is not supported: expected 4- or 5-level x86-64`,
      );
    }
    if (stage.kind !== "ept" && stage.kind !== "npt") {
      throw new RangeError(
        `second stage "${
          String((stage as { kind: unknown }).kind)
        }": expected "ept" or "npt"`,
      );
    }
    this.guestMode = guestMode;
    this.stage = stage;
    this.memory = memory;
    this.hostRoot = hostRoot;
  }

  /** Second-stage levels. */
  get hostLevels(): number {
    return this.stage.mode.format.levels.length;
  }

  /** Guest-table and second-stage reads of the last walk (not the data access, not A/D writes). */
  get tableReads(): number {
    let n = 0;
    for (let i = 0; i < this.refs; i++) {
      if (
        this.refWrite[i] === 0 &&
        !(this.refGuest[i] === 0 && this.refHost[i] === 0)
      ) n++;
    }
    return n;
  }

  /**
   * Walk guest tables at gpa `guestRoot` for `vaHi:vaLo` and the guest
   * access `flags` (ACCESS_*), every guest reference through the second
   * stage, then the final gpa. Records the data reference on success
   * (the caller performs it at {@linkcode NestedWalker.hpa}). Returns
   * NESTED_*. Allocation-free.
   */
  walk(guestRoot: number, vaHi: number, vaLo: number, flags: number): number {
    this.refs = 0;
    this.#faulted = false;
    this.#entryGpa = -1;
    this.#guestLevel = this.guestMode.format.levels.length + 1;
    this.#access = flags;
    this.onTableWalk = false;
    this.faultGuestLevel = 0;
    this.hostLevel = this.hostReason = 0;
    this.exitQualification = this.npfErrorCode = 0;
    this.gpa = this.hpa = 0;
    const g = this.guest;
    const r = walkInto(g, this.guestMode, this, guestRoot, vaHi, vaLo, flags);
    if (this.#faulted) return this.outcome;
    if (r === WALK_PF) return this.outcome = NESTED_GUEST_PF;
    if (r === WALK_GP) return this.outcome = NESTED_GUEST_GP;
    if (r !== WALK_OK) throw new Error(`internal: walk outcome ${r}`);
    const gpa = g.pa;
    const a = (flags & ACCESS_WRITE) !== 0
      ? EPT_WRITE
      : (flags & ACCESS_FETCH) !== 0
      ? EPT_FETCH
      : EPT_READ;
    if (!this.#hostWalk(gpa, 0, a, false, true)) return this.outcome;
    this.gpa = gpa;
    this.#ref(0, 0, this.hpa, (flags & ACCESS_WRITE) !== 0 ? 1 : 0);
    return this.outcome = NESTED_OK;
  }

  #ref(guest: number, host: number, addr: number, write: number): void {
    const i = this.refs;
    if (i >= MAX_REFS) return;
    this.refGuest[i] = guest;
    this.refHost[i] = host;
    this.refAddr[i] = addr;
    this.refWrite[i] = write;
    this.refs = i + 1;
  }

  /**
   * One second-stage walk of `gpa` for guest level `gl` (0 = final) with
   * EPT access `a`; records its references if `record`. On success sets
   * `hpa`; on a fault fills the exit fields and returns false.
   */
  #hostWalk(
    gpa: number,
    gl: number,
    a: number,
    table: boolean,
    record: boolean,
  ): boolean {
    const mem = this.memory;
    if (this.stage.kind === "ept") {
      const s = this.#e;
      const r = eptWalkInto(s, this.stage.mode, mem, this.hostRoot, gpa, a);
      if (record) {
        for (let i = 0; i < s.steps; i++) {
          this.#ref(gl, s.level[i], s.entryAddr[i], 0);
        }
      }
      if (r === EPT_OK) {
        this.hpa = s.hpa;
        return true;
      }
      this.#fault(gpa, gl, table, s.leafLevel, s.reason);
      if (r === EPT_MISCONFIG) {
        this.outcome = NESTED_EPT_MISCONFIG;
      } else {
        this.outcome = NESTED_EPT_VIOLATION;
        let q = a | EXITQ_GLA_VALID | (table ? 0 : EXITQ_FINAL);
        q |= (s.finalRights & 7) << 3;
        this.exitQualification = q;
      }
      return false;
    }
    const s = this.#n;
    const hi = Math.floor(gpa / 4294967296), lo = gpa >>> 0;
    const acc = ACCESS_USER | ((a & EPT_WRITE) !== 0 ? ACCESS_WRITE : 0) |
      ((a & EPT_FETCH) !== 0 ? ACCESS_FETCH : 0);
    const r = walkInto(s, this.stage.mode, mem, this.hostRoot, hi, lo, acc);
    if (record) {
      for (let i = 0; i < s.steps; i++) {
        this.#ref(gl, s.level[i], s.entryAddr[i], 0);
      }
    }
    if (r === WALK_OK) {
      this.hpa = s.pa;
      return true;
    }
    this.#fault(gpa, gl, table, s.leafLevel, s.reason);
    this.outcome = NESTED_NPF;
    // a gpa beyond the nested tables' reach (#GP natively) reports RSVD
    this.npfErrorCode = r === WALK_GP
      ? PFEC_P | PFEC_RSVD | PFEC_U
      : s.errorCode | PFEC_U;
    return false;
  }

  #fault(
    gpa: number,
    gl: number,
    table: boolean,
    level: number,
    reason: number,
  ): void {
    this.#faulted = true;
    this.gpa = gpa;
    this.onTableWalk = table;
    this.faultGuestLevel = gl;
    this.hostLevel = level;
    this.hostReason = reason;
  }

  /** The host address of guest entry `addr` (a gpa), walking the second stage once per entry. */
  #entry(addr: number, write: boolean): number {
    const start = addr - (addr % 8);
    if (addr !== start && start === this.#entryGpa) {
      return this.#entryHpa + (addr - start); // the entry's other half
    }
    if (write) {
      if (start !== this.#entryGpa) {
        // the walker writes A/D in step order; find the entry's level
        const g = this.guest;
        for (let i = 0; i < g.steps; i++) {
          if (g.entryAddr[i] === start) this.#guestLevel = g.level[i];
        }
      }
      const gl = this.#guestLevel;
      const ept = this.stage.kind === "ept";
      if (
        !this.#hostWalk(
          start,
          gl,
          ept ? EPT_READ | EPT_WRITE : EPT_WRITE,
          true,
          false,
        )
      ) {
        return -1;
      }
      this.#entryGpa = start;
      this.#entryHpa = this.hpa;
      this.#ref(gl, 0, this.hpa + (addr - start), 1);
      return this.hpa + (addr - start);
    }
    const gl = --this.#guestLevel;
    // SDM §28.3.3.2: with EPT A/D, guest paging-structure accesses are writes
    const a = this.stage.kind === "ept" && this.stage.mode.ad
      ? EPT_READ | EPT_WRITE
      : EPT_READ;
    if (!this.#hostWalk(start, gl, a, true, true)) return -1;
    this.#entryGpa = start;
    this.#entryHpa = this.hpa;
    this.#ref(gl, 0, this.hpa, 0);
    return this.hpa + (addr - start);
  }

  /** EntryMemory: a guest entry read (gpa). Returns 0 (not present) once the second stage faulted. */
  read32(addr: number): number {
    if (this.#faulted) return 0;
    const h = this.#entry(addr, false);
    return h < 0 ? 0 : this.memory.read32(h);
  }

  /** EntryMemory: 16-bit read (unused by 8-byte formats). */
  read16(addr: number): number {
    if (this.#faulted) return 0;
    const h = this.#entry(addr, false);
    return h < 0 ? 0 : this.memory.read16(h);
  }

  /** EntryMemory: 8-bit read (unused by 8-byte formats). */
  read8(addr: number): number {
    if (this.#faulted) return 0;
    const h = this.#entry(addr, false);
    return h < 0 ? 0 : this.memory.read8(h);
  }

  /** EntryMemory: a guest A/D write (dropped once the second stage faulted). */
  write32(addr: number, value: number): void {
    if (this.#faulted) return;
    const h = this.#entry(addr, true);
    if (h >= 0) this.memory.write32(h, value);
  }

  /** EntryMemory: 16-bit write. */
  write16(addr: number, value: number): void {
    if (this.#faulted) return;
    const h = this.#entry(addr, true);
    if (h >= 0) this.memory.write16(h, value);
  }

  /** EntryMemory: 8-bit write. */
  write8(addr: number, value: number): void {
    if (this.#faulted) return;
    const h = this.#entry(addr, true);
    if (h >= 0) this.memory.write8(h, value);
  }

  /** Whether the last walk's access was a write / fetch (for exits). */
  get accessFlags(): number {
    return this.#access;
  }
}

/** One memory reference of a nested walk, tagged. */
export interface NestedRef {
  /** 1-based order. */
  readonly n: number;
  /** Guest level of the entry this reference serves, or "data" (final gpa / data). */
  readonly guest: number | "data";
  /** Host (second-stage) level, or "guest entry" / "data" for the reference itself. */
  readonly host: number | "guest entry" | "data";
  /** Read or write (guest A/D update; the data write). */
  readonly op: "read" | "write";
  /** Host-physical address referenced. */
  readonly hpa: number;
}

/** Decoded EPT-violation exit qualification (SDM Table 28-7). */
export interface EptQualification {
  /** The raw bits. */
  readonly raw: number;
  /** Bit 0: data read. */
  readonly read: boolean;
  /** Bit 1: data write (also set for guest-table accesses with EPT A/D). */
  readonly write: boolean;
  /** Bit 2: instruction fetch. */
  readonly fetch: boolean;
  /** Bits 3..5: the AND of R/W/X over the EPT entries used. */
  readonly readable: boolean;
  /** Bit 4. */
  readonly writable: boolean;
  /** Bit 5. */
  readonly executable: boolean;
  /** Bit 7: the guest linear-address field is valid. */
  readonly linearValid: boolean;
  /** Bit 8 (with bit 7): 1 = the final translation, 0 = a guest paging-structure access. */
  readonly finalTranslation: boolean;
}

/** Decoded #NPF EXITINFO1 (APM §15.25.6). */
export interface NpfErrorCode {
  /** The low 32 bits (a #PF error code). */
  readonly low: number;
  /** Bit 0: the nested entry was present. */
  readonly present: boolean;
  /** Bit 1: write. */
  readonly write: boolean;
  /** Bit 2: user (always, for nested walks). */
  readonly user: boolean;
  /** Bit 3: reserved bit set. */
  readonly reserved: boolean;
  /** Bit 4: instruction fetch. */
  readonly fetch: boolean;
  /** Bit 32: fault on the final gpa translation. */
  readonly finalGpa: boolean;
  /** Bit 33: fault on a guest page-table access. */
  readonly guestTable: boolean;
}

/** The outcome of a nested walk: a closed tagged union. */
export type NestedOutcome =
  | { readonly kind: "ok"; readonly gpa: number; readonly hpa: number }
  | {
    readonly kind: "page-fault";
    readonly errorCode: number;
    readonly reason: string;
    readonly level: number;
  }
  | { readonly kind: "gp"; readonly reason: string }
  | {
    readonly kind: "ept-violation";
    readonly gpa: number;
    readonly onTableWalk: boolean;
    readonly guestLevel: number;
    readonly hostLevel: number;
    readonly reason: string;
    readonly qualification: EptQualification;
  }
  | {
    readonly kind: "ept-misconfig";
    readonly gpa: number;
    readonly guestLevel: number;
    readonly hostLevel: number;
    readonly reason: string;
  }
  | {
    readonly kind: "npf";
    readonly gpa: number;
    readonly guestLevel: number;
    readonly hostLevel: number;
    readonly reason: string;
    readonly errorCode: NpfErrorCode;
  };

/**
 * Decode an EPT-violation exit qualification.
 *
 * @example
 * ```ts
 * import { decodeQualification } from "./walk.ts";
 * import assert from "node:assert/strict";
 * const q = decodeQualification(0x183);
 * assert.equal(q.read && q.write && q.finalTranslation, true);
 * assert.equal(q.readable, false);
 * ```
 */
export function decodeQualification(raw: number): EptQualification {
  return {
    raw,
    read: (raw & EXITQ_READ) !== 0,
    write: (raw & EXITQ_WRITE) !== 0,
    fetch: (raw & EXITQ_FETCH) !== 0,
    readable: (raw & EXITQ_READABLE) !== 0,
    writable: (raw & EXITQ_WRITABLE) !== 0,
    executable: (raw & EXITQ_EXECUTABLE) !== 0,
    linearValid: (raw & EXITQ_GLA_VALID) !== 0,
    finalTranslation: (raw & EXITQ_FINAL) !== 0,
  };
}

/**
 * The outcome of the walker's last walk as plain data.
 *
 * @example
 * ```ts
 * import { NestedWalker, nestedOutcome } from "./walk.ts";
 * import { EPT_4LEVEL, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const host = new PhysicalMemory({ size: 1 << 16 });
 * const w = new NestedWalker(pagingMode(X86_64_4LEVEL), { kind: "ept", mode: eptMode(EPT_4LEVEL) }, host, 0x1000);
 * w.walk(0x2000, 0, 0x1000, 0);               // empty EPT: the guest root's gpa faults
 * const o = nestedOutcome(w);
 * assert.equal(o.kind === "ept-violation" && o.onTableWalk && o.guestLevel, 4);
 * assert.equal(o.kind === "ept-violation" && o.gpa, 0x2000);
 * ```
 */
export function nestedOutcome(w: NestedWalker): NestedOutcome {
  switch (w.outcome) {
    case NESTED_OK:
      return { kind: "ok", gpa: w.gpa, hpa: w.hpa };
    case NESTED_GUEST_PF:
      return {
        kind: "page-fault",
        errorCode: w.guest.errorCode,
        reason: FAULT_REASONS[w.guest.reason] ?? "unknown",
        level: w.guest.leafLevel,
      };
    case NESTED_GUEST_GP:
      return { kind: "gp", reason: FAULT_REASONS[w.guest.reason] ?? "unknown" };
    case NESTED_EPT_VIOLATION:
      return {
        kind: "ept-violation",
        gpa: w.gpa,
        onTableWalk: w.onTableWalk,
        guestLevel: w.faultGuestLevel,
        hostLevel: w.hostLevel,
        reason: EPT_REASONS[w.hostReason] ?? "unknown",
        qualification: decodeQualification(w.exitQualification),
      };
    case NESTED_EPT_MISCONFIG:
      return {
        kind: "ept-misconfig",
        gpa: w.gpa,
        guestLevel: w.faultGuestLevel,
        hostLevel: w.hostLevel,
        reason: EPT_REASONS[w.hostReason] ?? "unknown",
      };
    default: {
      const e = w.npfErrorCode;
      return {
        kind: "npf",
        gpa: w.gpa,
        guestLevel: w.faultGuestLevel,
        hostLevel: w.hostLevel,
        reason: FAULT_REASONS[w.hostReason] ?? "unknown",
        errorCode: {
          low: e,
          present: (e & PFEC_P) !== 0,
          write: (e & PFEC_W) !== 0,
          user: (e & PFEC_U) !== 0,
          reserved: (e & PFEC_RSVD) !== 0,
          fetch: (e & PFEC_ID) !== 0,
          finalGpa: !w.onTableWalk,
          guestTable: w.onTableWalk,
        },
      };
    }
  }
}

/**
 * The references of the walker's last walk as plain tagged data.
 *
 * @example
 * ```ts
 * import { NestedWalker, nestedRefs } from "./walk.ts";
 * import { EPT_4LEVEL, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const host = new PhysicalMemory({ size: 1 << 16 });
 * const w = new NestedWalker(pagingMode(X86_64_4LEVEL), { kind: "ept", mode: eptMode(EPT_4LEVEL) }, host, 0x1000);
 * w.walk(0x2000, 0, 0x1000, 0);
 * assert.deepEqual(nestedRefs(w)[0], { n: 1, guest: 4, host: 4, op: "read", hpa: 0x1000 });
 * ```
 */
export function nestedRefs(w: NestedWalker): NestedRef[] {
  const out: NestedRef[] = [];
  for (let i = 0; i < w.refs; i++) {
    const g = w.refGuest[i], h = w.refHost[i];
    out.push({
      n: i + 1,
      guest: g === 0 ? "data" : g,
      host: h !== 0 ? h : g === 0 ? "data" : "guest entry",
      op: w.refWrite[i] === 1 ? "write" : "read",
      hpa: w.refAddr[i],
    });
  }
  return out;
}
