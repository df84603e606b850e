/**
 * A logical processor's address translation: control registers, a TLB,
 * paging-structure caches and the one walker, tied together the way Intel
 * SDM Vol. 3 §4.10 describes.
 *
 * The paging mode (format plus CR0.WP, CR4.PSE/PGE/SMEP/SMAP/PKE, EFER.NXE
 * and CPU features) is derived from the registers once and recomputed only
 * when a register write changes it (design example 9, KVM's
 * `kvm_calc_cpu_role`): §4.1.1 selects 32-bit paging (CR4.PAE = 0), PAE
 * (CR4.PAE = 1, EFER.LME = 0), 4-level or 5-level (EFER.LME = 1, CR4.LA57).
 *
 * An access:
 *
 * 1. paging disabled (CR0.PG = 0): the linear address is the physical one;
 * 2. non-canonical (x86-64, §3.3.7.1): #GP;
 * 3. TLB lookup under the current PCID (global entries match any PCID).
 *    On a hit the cached rights are re-checked against the *current* mode
 *    with the walker's `checkRights` (the TLB caches rights, not verdicts).
 *    A fault found this way invalidates the cached entries for the page and
 *    is reported from the cached — possibly stale — rights (§4.10.4.1). A
 *    write hitting an entry whose cached D is 0 is handled like a miss, so
 *    that the walk sets D in memory (§4.8: D is set on the first write
 *    through a translation; a TLB entry with D = 0 cannot say the page is
 *    dirty);
 * 4. on a miss, the paging-structure caches are probed (PDE cache first)
 *    and the walk resumes below the root on a hit (§4.10.3.2); with PAE
 *    paging, the walk starts from the PDPTE registers loaded at MOV to CR3
 *    (§4.4.1). A successful walk fills the TLB and the PSCs (§4.10.2.1,
 *    §4.10.3.1); a faulting one invalidates the PSC entries for the address
 *    (§4.10.4.1).
 *
 * Invalidation follows §4.10.4.1 exactly — the minimum an operating system
 * may rely on — so stale translations stay visible until software
 * invalidates them: INVLPG, INVPCID types 0–3, MOV to CR3 (with the PCID
 * no-flush bit 63), MOV to CR0 (PG 1 → 0), MOV to CR4 (PGE, PCIDE 1 → 0;
 * PAE, SMEP 0 → 1).
 *
 * {@linkcode Cpu.accessFast} is the allocation-free hot path (numbers in,
 * an outcome code out, details in `last*` fields); {@linkcode Cpu.access}
 * wraps it and returns a rich record with the walk, if one happened.
 *
 * @module
 */

import {
  type AddressLike,
  hex64,
  hexPhys,
  LinearAddress,
  splitAddress,
} from "../address/address.ts";
import type { PagingFormat } from "../paging/format.ts";
import { PAE, X86_32, X86_64_4LEVEL, X86_64_5LEVEL } from "../paging/format.ts";
import { type PagingMode, pagingMode } from "../paging/mode.ts";
import {
  accessFlags,
  type AccessOptions,
  checkPkru,
  checkRoot,
  checkVa,
  decodeRights,
  type Translation,
  Walk,
  type WalkOutcome,
  type WalkResume,
} from "../paging/record.ts";
import {
  ACCESS_FETCH,
  ACCESS_IMPLICIT,
  ACCESS_USER,
  ACCESS_WRITE,
  checkRights,
  type EntryMemory,
  PFEC_ID,
  PFEC_P,
  PFEC_U,
  PFEC_W,
  Reason,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../paging/walker.ts";
import {
  checkPcid,
  Tlb,
  type TlbOptions,
  type TlbSnapshot,
} from "../tlb/tlb.ts";
import {
  PagingStructureCache,
  type PscOptions,
  type PscSnapshot,
} from "../tlb/psc.ts";
import { cpuToHtml, cpuToText } from "../view/tlb_html.ts";

/**
 * CR0 bits (SDM §2.5).
 *
 * @example
 * ```ts
 * import { CR0 } from "./cpu.ts";
 * import assert from "node:assert/strict";
 * assert.equal(CR0.PG, 0x8000_0000);
 * assert.equal(CR0.WP, 1 << 16);
 * ```
 */
export const CR0: Readonly<{
  PE: number;
  WP: number;
  NW: number;
  CD: number;
  PG: number;
}> = Object.freeze({
  /** Protection enable. */
  PE: 1,
  /** Write protect: supervisor writes honour R/W. */
  WP: 1 << 16,
  /** Not write-through. */
  NW: 1 << 29,
  /** Cache disable. */
  CD: 1 << 30,
  /** Paging. */
  PG: 0x80000000,
});

/**
 * CR4 bits (SDM §2.5).
 *
 * @example
 * ```ts
 * import { CR4 } from "./cpu.ts";
 * import assert from "node:assert/strict";
 * assert.equal(CR4.PAE, 0x20);
 * assert.equal(CR4.PCIDE, 1 << 17);
 * ```
 */
export const CR4: Readonly<{
  PSE: number;
  PAE: number;
  PGE: number;
  LA57: number;
  PCIDE: number;
  SMEP: number;
  SMAP: number;
  PKE: number;
}> = Object.freeze({
  /** 4 MiB pages with 32-bit paging. */
  PSE: 1 << 4,
  /** Physical address extension (PAE and IA-32e paging). */
  PAE: 1 << 5,
  /** Global pages. */
  PGE: 1 << 7,
  /** 57-bit linear addresses (5-level paging). */
  LA57: 1 << 12,
  /** Process-context identifiers. */
  PCIDE: 1 << 17,
  /** Supervisor-mode execution prevention. */
  SMEP: 1 << 20,
  /** Supervisor-mode access prevention. */
  SMAP: 1 << 21,
  /** Protection keys for user pages. */
  PKE: 1 << 22,
});

/**
 * IA32_EFER bits (SDM §2.2.1).
 *
 * @example
 * ```ts
 * import { EFER } from "./cpu.ts";
 * import assert from "node:assert/strict";
 * assert.equal(EFER.NXE, 0x800);
 * ```
 */
export const EFER: Readonly<{
  SCE: number;
  LME: number;
  LMA: number;
  NXE: number;
}> = Object.freeze({
  /** SYSCALL enable. */
  SCE: 1,
  /** IA-32e mode enable. */
  LME: 1 << 8,
  /** IA-32e mode active (read-only: LME and CR0.PG). */
  LMA: 1 << 10,
  /** Execute-disable enable. */
  NXE: 1 << 11,
});

// CR4 bits defined by the architecture (VME … PKS, without bit 15); others are reserved.
const CR4_DEFINED = 0x01ff7fff;
// EFER bits we accept: SCE, LME, LMA, NXE, SVME, LMSLE, FFXSR, TCE.
const EFER_DEFINED = 0x0000fd01;

/** Options for {@linkcode Cpu}. Registers win over the conveniences. */
export interface CpuOptions {
  /**
   * Convenience: the paging format to run. For x86 formats this sets the
   * registers that select it (CR0.PG, CR4.PAE, CR4.LA57, EFER.LME/LMA);
   * a radix (teaching) format is used as is, with CR0.PG switching it.
   * Default: 4-level, unless registers say otherwise.
   */
  format?: PagingFormat;
  /** Convenience: take the format and modifiers from a mode (e.g. a PageTable's). */
  mode?: PagingMode;
  /** CR0. Default PE | PG | WP (WP unless `wp: false`). */
  cr0?: number;
  /** CR3: root table address, plus the PCID in bits 11:0 with CR4.PCIDE. Default 0. */
  cr3?: AddressLike;
  /** CR4. Default from the format and the flags below. */
  cr4?: number;
  /** IA32_EFER. Default LME | LMA for 4/5-level, NXE unless `nxe: false`. */
  efer?: number;
  /** CR0.WP (default true). */
  wp?: boolean;
  /** EFER.NXE (default true). */
  nxe?: boolean;
  /** CR4.PSE (default true). */
  pse?: boolean;
  /** CR4.PGE (default true). */
  pge?: boolean;
  /** CR4.SMEP (default false). */
  smep?: boolean;
  /** CR4.SMAP (default false). */
  smap?: boolean;
  /** CR4.PKE (default false). */
  pke?: boolean;
  /** CR4.PCIDE (default false; 4/5-level only). */
  pcide?: boolean;
  /** Current privilege level 0..3 (default 0). */
  cpl?: number;
  /** EFLAGS.AC (default false). */
  ac?: boolean;
  /** PKRU (default 0: every key allows everything). */
  pkru?: number;
  /** MAXPHYADDR (default 52, or the mode's). */
  maxPhyAddr?: number;
  /** 1 GiB page support (default true, or the mode's). */
  gbPages?: boolean;
  /** Vendor reserved-bit rules (default "intel", or the mode's). */
  vendor?: "intel" | "amd";
  /** The TLB, or options for a new one. */
  tlb?: Tlb | TlbOptions;
  /** The paging-structure caches, or options for new ones. */
  psc?: PagingStructureCache | PscOptions;
}

/** Why an instruction raised #GP(0). */
export type CpuGpReason =
  | "pdpte-reserved"
  | "cr0-invalid"
  | "cr3-reserved"
  | "cr4-reserved"
  | "cr4-invalid"
  | "efer-reserved"
  | "efer-invalid"
  | "invpcid-type"
  | "invpcid-descriptor";

/** An instruction (MOV to CRn, WRMSR EFER, INVPCID) that raised #GP(0) and changed nothing. */
export interface InstructionFault {
  /** Discriminant. */
  readonly kind: "gp";
  /** Why. */
  readonly reason: CpuGpReason;
  /** One-line explanation. */
  readonly message: string;
}

/** An instruction that completed, with what it invalidated. */
export interface InstructionDone {
  /** Discriminant. */
  readonly kind: "ok";
  /** TLB entries it dropped. */
  readonly tlbDropped: number;
  /** Paging-structure-cache entries it dropped. */
  readonly pscDropped: number;
  /** Whether it (re)loaded the PAE PDPTE registers. */
  readonly pdptesLoaded: boolean;
}

/** Result of a control-register write or invalidation instruction. */
export type InstructionResult = InstructionDone | InstructionFault;

/** Options for {@linkcode Cpu.movCr3}. */
export interface MovCr3Options {
  /** Set bit 63 of the source: with CR4.PCIDE = 1, do not invalidate (§4.10.4.1). */
  noFlush?: boolean;
}

/** Operands of {@linkcode Cpu.invpcid}. */
export interface InvpcidDescriptor {
  /** PCID (types 0 and 1). Default 0. */
  pcid?: number;
  /** Linear address (type 0). Default 0. */
  va?: AddressLike | LinearAddress;
}

/** How an access was served. */
export type TlbUse = "hit" | "miss" | "bypass";

/** Result of {@linkcode Cpu.access}. */
export interface AccessResult {
  /** The linear address. */
  readonly va: LinearAddress;
  /** Outcome: the same closed union a walk has. */
  readonly outcome: WalkOutcome;
  /** TLB hit, miss (a walk happened or a PDPTE register faulted), or bypass (paging disabled, #GP). */
  readonly tlb: TlbUse;
  /** The walk, when one happened (`resumed` set when it skipped levels). */
  readonly walk?: Walk;
  /** TLB slot that hit or was filled, else -1. */
  readonly slot: number;
  /** PCID the access ran under. */
  readonly pcid: number;
  /** A write hit a clean TLB entry and was re-walked to set D. */
  readonly dirtyRewalk: boolean;
  /** Table reads the access made. */
  readonly tableReads: number;
}

/** Counters of a {@linkcode Cpu}. */
export interface CpuCounters {
  /** Accesses. */
  readonly accesses: number;
  /** Served from the TLB. */
  readonly tlbHits: number;
  /** Not served from the TLB (includes dirty re-walks). */
  readonly tlbMisses: number;
  /** Walks made. */
  readonly walks: number;
  /** Paging-structure entries read by walks. */
  readonly tableReads: number;
  /** Walks resumed from a paging-structure cache. */
  readonly pscResumes: number;
  /** Walks started from a PAE PDPTE register. */
  readonly pdpteResumes: number;
  /** Writes that hit a TLB entry with D = 0 and were re-walked. */
  readonly dirtyRewalks: number;
  /** Page faults. */
  readonly pageFaults: number;
  /** General-protection faults of accesses (non-canonical). */
  readonly generalProtection: number;
}

/** Plain-data picture of a CPU for the views. */
export interface CpuSnapshot {
  /** Whether CR0.PG = 1. */
  readonly paging: boolean;
  /** Format name of the current mode, or "" with paging disabled. */
  readonly modeName: string;
  /** Register values (CR3 as hex). */
  readonly registers: {
    readonly cr0: number;
    readonly cr3: string;
    readonly cr4: number;
    readonly efer: number;
  };
  /** Set flags, e.g. "CR0.PG", "CR4.PCIDE". */
  readonly flags: readonly string[];
  /** Root table address. */
  readonly root: number;
  /** Current PCID. */
  readonly pcid: number;
  /** CPL. */
  readonly cpl: number;
  /** EFLAGS.AC. */
  readonly ac: boolean;
  /** PKRU. */
  readonly pkru: number;
  /** PAE PDPTE registers (hex), when loaded. */
  readonly pdptes?: readonly string[];
  /** Counters. */
  readonly counters: CpuCounters;
  /** TLB picture. */
  readonly tlb: TlbSnapshot;
  /** PSC picture. */
  readonly psc: PscSnapshot;
}

/**
 * Check a 32-bit register value and return it unsigned. Values built with
 * JavaScript's bitwise operators are signed (`CR0.PE | CR0.PG` is
 * negative), so [-2^31, 2^32) is accepted.
 */
function reg32(what: string, x: number): number {
  if (typeof x !== "number") {
    throw new TypeError(
      `${what} has type ${typeof x}: expected a number (a 32-bit register value)`,
    );
  }
  if (!Number.isInteger(x) || x < -0x80000000 || x > 0xffffffff) {
    throw new RangeError(
      `${what} ${
        String(x)
      } is invalid: expected a 32-bit integer (signed or unsigned)`,
    );
  }
  return x >>> 0;
}

function gp(reason: CpuGpReason, message: string): InstructionFault {
  return { kind: "gp", reason, message: `#GP(0): ${message}` };
}

/** Whether a 64-bit address with high half `hi` is canonical for `bits`-bit linear addresses. */
function isCanonicalBits(hi: number, bits: number): boolean {
  const s = bits - 1 - 32;
  const top = hi >>> s;
  return top === 0 || top === 2 ** (32 - s) - 1;
}

const FLAG_NAMES: readonly [string, number, number][] = [
  ["CR0.PE", 0, CR0.PE],
  ["CR0.WP", 0, CR0.WP],
  ["CR0.PG", 0, CR0.PG],
  ["CR4.PSE", 1, CR4.PSE],
  ["CR4.PAE", 1, CR4.PAE],
  ["CR4.PGE", 1, CR4.PGE],
  ["CR4.LA57", 1, CR4.LA57],
  ["CR4.PCIDE", 1, CR4.PCIDE],
  ["CR4.SMEP", 1, CR4.SMEP],
  ["CR4.SMAP", 1, CR4.SMAP],
  ["CR4.PKE", 1, CR4.PKE],
  ["EFER.LME", 2, EFER.LME],
  ["EFER.LMA", 2, EFER.LMA],
  ["EFER.NXE", 2, EFER.NXE],
];

/**
 * A logical processor: registers, TLB, paging-structure caches, walker.
 *
 * @example The stale-TLB teaching point: a write succeeds through the TLB
 * after the page was made read-only, until INVLPG.
 * ```ts
 * import { Cpu } from "./cpu.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { PhysicalMemory } from "../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
 * pt.map(0x40_0000, 0x9000, { user: true });
 * const cpu = new Cpu(pt.memory, { mode: pt.mode, cr3: pt.root, cpl: 3 });
 * assert.equal(cpu.access(0x40_0010, { kind: "write" }).tlb, "miss"); // walk, fill
 * pt.protect(0x40_0000, { writable: false });                        // no INVLPG
 * const stale = cpu.access(0x40_0010, { kind: "write" });
 * assert.equal(stale.tlb, "hit");
 * assert.equal(stale.outcome.kind, "ok");                            // stale entry
 * cpu.invlpg(0x40_0000);
 * assert.equal(cpu.access(0x40_0010, { kind: "write" }).outcome.kind, "page-fault");
 * ```
 */
export class Cpu {
  /** Memory holding the paging structures. */
  readonly memory: EntryMemory;
  /** The TLB. */
  readonly tlb: Tlb;
  /** The paging-structure caches. */
  readonly psc: PagingStructureCache;
  #custom: PagingFormat | undefined;
  #cr0 = 0;
  #cr3Hi = 0;
  #cr3Lo = 0;
  #cr4 = 0;
  #efer = 0;
  #cpl = 0;
  #ac = false;
  #pkru = 0;
  #maxPhyAddr: number;
  #gbPages: boolean;
  #vendor: "intel" | "amd";
  // derived
  #mode: PagingMode | undefined = undefined;
  #modes = new Map<string, PagingMode>();
  #root = 0;
  #pcid = 0;
  #vaKind = -1; // -1 not computed yet, 0 any, 1 sign-extended, 2 hi >>> shift === 0, 3 hi === 0 && lo >>> shift === 0
  #vaShift = 0;
  #vaTop = 0;
  // checkRights memoised for the mode: [rights << 5 | access] (PKE off)
  #verdict = new Int32Array(8 * 32);
  #pke = false;
  #pdpteActive = false;
  #pdpteLo = new Uint32Array(4);
  #pdpteHi = new Uint32Array(4);
  #pdpteBase = new Float64Array(4);
  #pdptePresent = new Uint8Array(4);
  #scratch = new WalkScratch();
  // last access
  #pa = 0;
  #shift = 0;
  #level = 0;
  #err = 0;
  #reason = 0;
  #hit = false;
  // the last access was an allowed TLB hit: the hot path stores only
  // #pa/#shift/#level/#slot and this flag; the getters derive the rest
  #clean = false;
  #walked = false;
  #slot = -1;
  #reads = 0;
  #resume = 0; // level the walk started at when resumed, else 0
  #resumeSrc = 0; // 1 PSC, 2 PDPTE register
  #dirtyRewalk = false;
  // counters
  #cAccesses = 0;
  #cHits = 0;
  #cMisses = 0;
  #cWalks = 0;
  #cReads = 0;
  #cPsc = 0;
  #cPdpte = 0;
  #cDirty = 0;
  #cPf = 0;
  #cGp = 0;

  /**
   * Create a processor over `memory`. Throws `RangeError` for inconsistent
   * registers (e.g. CR0.PG without CR0.PE, a format the registers do not
   * select, reserved bits in CR3 or in a PAE PDPTE).
   */
  constructor(memory: EntryMemory, options: CpuOptions = {}) {
    if (
      memory === null || typeof memory !== "object" ||
      typeof (memory as EntryMemory).read32 !== "function"
    ) {
      throw new TypeError(
        `memory ${
          String(memory)
        } is invalid: expected an object with read8/16/32 and write8/16/32 (e.g. a PhysicalMemory)`,
      );
    }
    this.memory = memory;
    const m = options.mode;
    const format = options.format ?? m?.format;
    if (options.format && m && options.format !== m.format) {
      throw new RangeError(
        `format "${options.format.name}" and mode format "${m.format.name}" disagree: pass one of them`,
      );
    }
    this.#maxPhyAddr = options.maxPhyAddr ?? m?.maxPhyAddr ?? 52;
    if (
      !Number.isInteger(this.#maxPhyAddr) || this.#maxPhyAddr < 32 ||
      this.#maxPhyAddr > 52
    ) {
      throw new RangeError(
        `MAXPHYADDR ${
          String(this.#maxPhyAddr)
        } is invalid: expected an integer in [32, 52]`,
      );
    }
    this.#gbPages = options.gbPages ?? m?.gbPages ?? true;
    this.#vendor = options.vendor ?? m?.vendor ?? "intel";
    if (this.#vendor !== "intel" && this.#vendor !== "amd") {
      throw new RangeError(
        `vendor "${
          String(this.#vendor)
        }" is invalid: expected "intel" or "amd"`,
      );
    }
    const fmt = format ??
      (options.cr0 === undefined && options.cr4 === undefined &&
          options.efer === undefined
        ? X86_64_4LEVEL
        : undefined);
    this.#custom = fmt?.kind === "radix" ? fmt : undefined;
    const wp = options.wp ?? m?.wp ?? true;
    const nxe = options.nxe ?? (m ? m.nxe : true);
    const pse = options.pse ?? m?.pse ?? true;
    const pge = options.pge ?? m?.pge ?? true;
    const smep = options.smep ?? m?.smep ?? false;
    const smap = options.smap ?? m?.smap ?? false;
    const pke = options.pke ?? m?.pke ?? false;
    const pcide = options.pcide ?? false;
    // registers: explicit values win; otherwise derived from the format
    let cr0 = options.cr0 ?? (CR0.PE | CR0.PG | (wp ? CR0.WP : 0)) >>> 0;
    let cr4 = 0;
    let efer = 0;
    if (fmt && fmt.kind !== "radix") {
      if (fmt.kind === "x86-32") cr4 |= pse ? CR4.PSE : 0;
      else {
        cr4 |= CR4.PAE | (pse ? CR4.PSE : 0);
        if (nxe) efer |= EFER.NXE;
      }
      if (fmt.kind === "x86-64") {
        efer |= EFER.LME;
        if (fmt.vaBits === 57) cr4 |= CR4.LA57;
      }
    } else if (!fmt) {
      cr4 |= pse ? CR4.PSE : 0;
      if (nxe) efer |= EFER.NXE;
    }
    if (pge) cr4 |= CR4.PGE;
    if (smep) cr4 |= CR4.SMEP;
    if (smap) cr4 |= CR4.SMAP;
    if (pke) cr4 |= CR4.PKE;
    if (pcide) cr4 |= CR4.PCIDE;
    cr4 = options.cr4 ?? cr4 >>> 0;
    efer = options.efer ?? efer;
    cr0 = reg32("CR0", cr0);
    cr4 = reg32("CR4", cr4);
    efer = reg32("EFER", efer);
    if ((efer & ~EFER_DEFINED) !== 0) {
      throw new RangeError(
        `EFER ${
          hexPhys(efer)
        } sets reserved bits: expected only SCE, LME, LMA, NXE (and SVME, LMSLE, FFXSR, TCE)`,
      );
    }
    if ((cr4 & ~CR4_DEFINED) !== 0) {
      throw new RangeError(
        `CR4 ${hexPhys(cr4)} sets reserved bits (${
          hexPhys((cr4 & ~CR4_DEFINED) >>> 0)
        })`,
      );
    }
    if ((cr0 & CR0.PG) && !(cr0 & CR0.PE)) {
      throw new RangeError(
        `CR0 ${hexPhys(cr0)} is invalid: PG = 1 requires PE = 1`,
      );
    }
    if (
      !this.#custom && (cr0 & CR0.PG) && (efer & EFER.LME) && !(cr4 & CR4.PAE)
    ) {
      throw new RangeError(
        `CR0.PG = 1 with EFER.LME = 1 requires CR4.PAE = 1 (CR4 ${
          hexPhys(cr4)
        })`,
      );
    }
    this.#cr0 = cr0;
    this.#cr4 = cr4;
    this.#efer = this.#withLma(efer, cr0);
    if (this.#custom === undefined && fmt) {
      const selected = this.#selectFormat(this.#cr4, this.#efer);
      if (selected !== fmt && (cr0 & CR0.PG)) {
        throw new RangeError(
          `the registers select ${selected.name} but the format is ${fmt.name}: drop the format or fix CR0/CR4/EFER`,
        );
      }
    }
    if ((cr4 & CR4.PCIDE) && !(this.#efer & EFER.LMA)) {
      throw new RangeError(
        "CR4.PCIDE = 1 requires IA-32e mode (EFER.LMA = 1: 4- or 5-level paging)",
      );
    }
    this.cpl = options.cpl ?? 0;
    this.ac = options.ac ?? false;
    this.pkru = options.pkru ?? 0;
    this.tlb = options.tlb instanceof Tlb ? options.tlb : new Tlb(options.tlb);
    this.psc = options.psc instanceof PagingStructureCache
      ? options.psc
      : new PagingStructureCache(options.psc);
    this.#refreshMode();
    const [hi, lo] = splitAddress(options.cr3 ?? 0);
    const bad = this.#cr3Problem(hi, lo);
    if (bad) throw new RangeError(`CR3 ${hex64(hi, lo)}: ${bad}`);
    this.#cr3Hi = hi;
    this.#cr3Lo = lo;
    this.#refreshCr3();
    if (this.#pdpteWanted()) {
      const p = this.#readPdptes(this.#root);
      if (typeof p === "string") {
        throw new RangeError(`cannot load the PAE PDPTE registers: ${p}`);
      }
    }
  }

  // ---- derived state ------------------------------------------------------

  #withLma(efer: number, cr0: number): number {
    if (this.#custom) return efer & ~EFER.LMA;
    const lma = (efer & EFER.LME) !== 0 && (cr0 & CR0.PG) !== 0;
    return ((efer & ~EFER.LMA) | (lma ? EFER.LMA : 0)) >>> 0;
  }

  #selectFormat(cr4: number, efer: number): PagingFormat {
    if (this.#custom) return this.#custom;
    if (!(cr4 & CR4.PAE)) return X86_32;
    if (efer & EFER.LME) return cr4 & CR4.LA57 ? X86_64_5LEVEL : X86_64_4LEVEL;
    return PAE;
  }

  #modeFor(cr0: number, cr4: number, efer: number): PagingMode | undefined {
    if (!(cr0 & CR0.PG)) return undefined;
    const f = this.#selectFormat(cr4, efer);
    const key = `${f.name}|${cr0 & CR0.WP}|${efer & EFER.NXE}|${
      cr4 & (CR4.PSE | CR4.PGE | CR4.SMEP | CR4.SMAP | CR4.PKE)
    }`;
    let m = this.#modes.get(key);
    if (m === undefined) {
      m = pagingMode(f, {
        wp: (cr0 & CR0.WP) !== 0,
        nxe: (efer & EFER.NXE) !== 0,
        pse: (cr4 & CR4.PSE) !== 0,
        pge: (cr4 & CR4.PGE) !== 0,
        smep: (cr4 & CR4.SMEP) !== 0,
        smap: (cr4 & CR4.SMAP) !== 0,
        pke: (cr4 & CR4.PKE) !== 0,
        maxPhyAddr: this.#maxPhyAddr,
        gbPages: this.#gbPages,
        vendor: this.#vendor,
      });
      this.#modes.set(key, m);
    }
    return m;
  }

  /** Recompute the mode when the role bits changed (design example 9). */
  #refreshMode(): void {
    // #modeFor returns the same frozen object for the same role
    const m = this.#modeFor(this.#cr0, this.#cr4, this.#efer);
    if (m === this.#mode && this.#vaKind !== -1) return;
    this.#mode = m;
    if (m !== undefined) {
      // checkRights is pure: tabulate it once per mode so that a TLB hit is
      // one typed-array load. Protection keys depend on PKRU and the key,
      // so with CR4.PKE the hit path calls checkRights itself.
      for (let r = 0; r < 8; r++) {
        for (let a = 0; a < 32; a++) {
          this.#verdict[(r << 5) | a] = checkRights(m, r, 0, a, 0);
        }
      }
      this.#pke = m.pke;
    }
    if (m === undefined) {
      this.#vaKind = 3;
      this.#vaShift = 32; // unused: hi must be 0
      return;
    }
    const f = m.format;
    const vb = f.vaBits;
    if (f.canonical === "sign") {
      this.#vaKind = 1;
      this.#vaShift = vb - 1 - 32;
      this.#vaTop = 2 ** (32 - this.#vaShift) - 1;
    } else if (vb >= 64) {
      this.#vaKind = 0;
    } else if (vb >= 32) {
      this.#vaKind = 2;
      this.#vaShift = vb - 32;
    } else {
      this.#vaKind = 3;
      this.#vaShift = vb;
    }
  }

  /** Decode root and PCID from CR3 for the current registers. */
  #refreshCr3(): void {
    const hi = this.#cr3Hi, lo = this.#cr3Lo;
    if (this.#custom) {
      this.#root = hi * 4294967296 + lo;
      this.#pcid = 0;
      return;
    }
    if (this.#efer & EFER.LME) {
      const hiMask = 2 ** (this.#maxPhyAddr - 32) - 1;
      this.#root = (hi & hiMask) * 4294967296 + ((lo & 0xfffff000) >>> 0);
      this.#pcid = (this.#cr4 & CR4.PCIDE) ? lo & 0xfff : 0;
    } else if (this.#cr4 & CR4.PAE) {
      this.#root = (lo & 0xffffffe0) >>> 0;
      this.#pcid = 0;
    } else {
      this.#root = (lo & 0xfffff000) >>> 0;
      this.#pcid = 0;
    }
  }

  /** Why `hi:lo` cannot be loaded into CR3 now, or "" (bit 63 already stripped). */
  #cr3Problem(hi: number, lo: number): string {
    if (this.#custom) {
      const root = hi * 4294967296 + lo;
      const m = this.#mode ?? pagingMode(this.#custom);
      try {
        checkRoot(m, root);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    }
    if (this.#efer & EFER.LMA) {
      const M = this.#maxPhyAddr;
      if (M < 64 && (hi >>> (M - 32)) !== 0) {
        return `bits 63:${M} are reserved (MAXPHYADDR ${M})`;
      }
      return "";
    }
    if (hi !== 0) {
      return "outside IA-32e mode CR3 is 32 bits wide: expected a value below 2^32";
    }
    return "";
  }

  #pdpteWanted(): boolean {
    const m = this.#mode;
    return m !== undefined && m.format.pdpteRegisters;
  }

  /**
   * Read the four PDPTEs at `root` into the registers (§4.4.1), or return
   * why not (a present PDPTE with a reserved bit: the instruction #GPs and
   * the registers keep their values).
   */
  #readPdptes(root: number, mode = this.#mode!): string | true {
    const lo = new Uint32Array(4), hi = new Uint32Array(4);
    const t = mode.tables;
    for (let i = 0; i < 4; i++) {
      lo[i] = this.memory.read32(root + 8 * i);
      hi[i] = this.memory.read32(root + 8 * i + 4);
      if ((lo[i] & 1) === 0) continue;
      const k = 2 * 3 + ((lo[i] >>> 7) & 1);
      if ((lo[i] & t.rsvdLo[k]) !== 0 || (hi[i] & t.rsvdHi[k]) !== 0) {
        return `PDPTE ${i} at ${hexPhys(root + 8 * i)} = ${
          hex64(hi[i], lo[i])
        } has reserved bits set`;
      }
    }
    for (let i = 0; i < 4; i++) {
      this.#pdpteLo[i] = lo[i];
      this.#pdpteHi[i] = hi[i];
      this.#pdptePresent[i] = lo[i] & 1;
      this.#pdpteBase[i] = (hi[i] & t.addrHi) * 4294967296 +
        ((lo[i] & t.addrLo) >>> 0);
    }
    this.#pdpteActive = true;
    return true;
  }

  // ---- registers ----------------------------------------------------------

  /** The current paging mode, or undefined with paging disabled. */
  get mode(): PagingMode | undefined {
    return this.#mode;
  }

  /** Whether CR0.PG = 1. */
  get paging(): boolean {
    return (this.#cr0 & CR0.PG) !== 0;
  }

  /** CR0. */
  get cr0(): number {
    return this.#cr0;
  }

  /** CR3 as a 64-bit value. */
  get cr3(): bigint {
    return (BigInt(this.#cr3Hi) << 32n) | BigInt(this.#cr3Lo);
  }

  /** CR4. */
  get cr4(): number {
    return this.#cr4;
  }

  /** IA32_EFER (LMA reflects LME and CR0.PG). */
  get efer(): number {
    return this.#efer;
  }

  /** Root table address from CR3. */
  get root(): number {
    return this.#root;
  }

  /** Current PCID (CR3 bits 11:0 with CR4.PCIDE, else 0). */
  get pcid(): number {
    return this.#pcid;
  }

  /** The PAE PDPTE registers as 64-bit values, or undefined outside PAE paging. */
  get pdptes(): readonly bigint[] | undefined {
    if (!this.#pdpteWanted() || !this.#pdpteActive) return undefined;
    return Array.from(
      { length: 4 },
      (_, i) => (BigInt(this.#pdpteHi[i]) << 32n) | BigInt(this.#pdpteLo[i]),
    );
  }

  /** Current privilege level (0..3); 3 makes accesses user-mode. */
  get cpl(): number {
    return this.#cpl;
  }

  set cpl(value: number) {
    if (!Number.isInteger(value) || value < 0 || value > 3) {
      throw new RangeError(
        `CPL ${String(value)} is invalid: expected 0, 1, 2 or 3`,
      );
    }
    this.#cpl = value;
  }

  /** EFLAGS.AC (with SMAP: lets explicit supervisor accesses reach user pages). */
  get ac(): boolean {
    return this.#ac;
  }

  set ac(value: boolean) {
    if (typeof value !== "boolean") {
      throw new TypeError(
        `EFLAGS.AC ${String(value)} is invalid: expected a boolean`,
      );
    }
    this.#ac = value;
  }

  /** PKRU (WRPKRU needs no invalidation: keys are checked on every access, §4.6.2). */
  get pkru(): number {
    return this.#pkru;
  }

  set pkru(value: number) {
    this.#pkru = checkPkru(value);
  }

  /**
   * MOV to CR3 (§4.10.4.1). With CR4.PCIDE = 0: drop the TLB entries of
   * PCID 0 except global ones, and PCID 0's PSC entries. With PCIDE = 1:
   * the same for the PCID in bits 11:0 of `value` — unless bit 63 of
   * `value` (or `noFlush`) is set, which invalidates nothing; bit 63 is
   * not stored. With PAE paging the PDPTE registers are loaded from the
   * new root (§4.4.1); a present PDPTE with a reserved bit set, or a
   * reserved CR3 bit, gives a #GP result and changes nothing.
   *
   * @example Switching address spaces with PCIDs and the no-flush bit.
   * ```ts
   * import { Cpu } from "./cpu.ts";
   * import { PageTable } from "../paging/builder.ts";
   * import { PhysicalMemory } from "../memory/memory.ts";
   * import assert from "node:assert/strict";
   * const memory = new PhysicalMemory({ size: 2 ** 30 });
   * const a = new PageTable(memory);
   * const b = new PageTable(memory, { allocator: a.allocator });
   * a.map(0x40_0000, 0x10_0000);
   * b.map(0x40_0000, 0x20_0000);
   * const cpu = new Cpu(memory, { pcide: true, cr3: a.root | 1 }); // PCID 1
   * cpu.access(0x40_0000);
   * assert.equal(cpu.movCr3(b.root | 2, { noFlush: true }).kind, "ok"); // PCID 2
   * assert.equal(cpu.access(0x40_0000).outcome.kind === "ok" && cpu.lastPa, 0x20_0000);
   * const back = cpu.movCr3(a.root | 1, { noFlush: true });
   * assert.equal(back.kind === "ok" && back.tlbDropped, 0);
   * assert.equal(cpu.access(0x40_0000).tlb, "hit"); // PCID 1's entry survived
   * const flush = cpu.movCr3(a.root | 1); // bit 63 clear: PCID 1 is flushed
   * assert.equal(flush.kind === "ok" && flush.tlbDropped, 1);
   * ```
   */
  movCr3(
    value: AddressLike,
    options: MovCr3Options = {},
  ): InstructionResult {
    let [hi, lo] = splitAddress(value);
    if (options.noFlush) hi = (hi | 0x80000000) >>> 0;
    let noFlush = false;
    if (!this.#custom && (this.#cr4 & CR4.PCIDE)) {
      noFlush = (hi & 0x80000000) !== 0;
      hi = (hi & 0x7fffffff) >>> 0;
    }
    const bad = this.#cr3Problem(hi, lo);
    if (bad) {
      if (this.#efer & EFER.LMA) {
        return gp("cr3-reserved", `MOV to CR3 ${hex64(hi, lo)}: ${bad}`);
      }
      throw new RangeError(`CR3 value ${hex64(hi, lo)}: ${bad}`);
    }
    const oldHi = this.#cr3Hi, oldLo = this.#cr3Lo;
    this.#cr3Hi = hi;
    this.#cr3Lo = lo;
    this.#refreshCr3();
    let loaded = false;
    if (this.#pdpteWanted()) {
      const r = this.#readPdptes(this.#root);
      if (r !== true) {
        this.#cr3Hi = oldHi;
        this.#cr3Lo = oldLo;
        this.#refreshCr3();
        return gp("pdpte-reserved", `MOV to CR3 ${hex64(hi, lo)}: ${r}`);
      }
      loaded = true;
    }
    let t = 0, p = 0;
    if (!noFlush) {
      t = this.tlb.flushPcid(this.#pcid, { keepGlobal: true });
      p = this.psc.flushPcid(this.#pcid);
    }
    return { kind: "ok", tlbDropped: t, pscDropped: p, pdptesLoaded: loaded };
  }

  /**
   * MOV to CR0. #GP (nothing changes) for PG without PE, NW without CD,
   * or enabling paging with EFER.LME = 1 and CR4.PAE = 0 (§4.1.2).
   * Clearing PG invalidates every TLB entry, global ones included, and
   * every PSC entry (§4.10.4.1). EFER.LMA follows LME ∧ PG. With PAE
   * paging afterwards, a change of PG, CD or NW reloads the PDPTE
   * registers (§4.4.1).
   */
  writeCr0(value: number): InstructionResult {
    value = reg32("CR0", value);
    const old = this.#cr0;
    if ((value & CR0.PG) && !(value & CR0.PE)) {
      return gp(
        "cr0-invalid",
        `MOV to CR0 ${hexPhys(value)}: PG = 1 requires PE = 1`,
      );
    }
    if ((value & CR0.NW) && !(value & CR0.CD)) {
      return gp(
        "cr0-invalid",
        `MOV to CR0 ${hexPhys(value)}: NW = 1 requires CD = 1`,
      );
    }
    if (
      !this.#custom && (value & CR0.PG) && !(old & CR0.PG) &&
      (this.#efer & EFER.LME) && !(this.#cr4 & CR4.PAE)
    ) {
      return gp(
        "cr0-invalid",
        `MOV to CR0 ${
          hexPhys(value)
        }: enabling paging with EFER.LME = 1 requires CR4.PAE = 1`,
      );
    }
    const efer = this.#withLma(this.#efer, value);
    const changed = (old ^ value) >>> 0;
    return this.#commit(
      value,
      this.#cr4,
      efer,
      (changed & (CR0.PG | CR0.CD | CR0.NW)) !== 0,
      () => {
        if ((old & CR0.PG) && !(value & CR0.PG)) {
          return [this.tlb.flushAll(), this.psc.flushAll()];
        }
        return [0, 0];
      },
      "CR0",
    );
  }

  /**
   * MOV to CR4. #GP (nothing changes) for reserved bits, clearing PAE or
   * changing LA57 in IA-32e mode, setting PCIDE outside IA-32e mode or with
   * CR3[11:0] ≠ 0. Invalidation (§4.10.4.1): a change of PGE, or PCIDE
   * 1 → 0, drops every TLB entry (global too) and every PSC entry; a change
   * of PAE, or SMEP 0 → 1, drops the current PCID's TLB and PSC entries.
   * Other bits (SMAP, PKE, PSE) need no invalidation here: rights are
   * re-checked on every TLB hit. With PAE paging afterwards, a change of
   * PAE, PGE, PSE or SMEP reloads the PDPTE registers (§4.4.1).
   *
   * @example Toggling CR4.PGE flushes global entries too.
   * ```ts
   * import { Cpu, CR4 } from "./cpu.ts";
   * import { PageTable } from "../paging/builder.ts";
   * import { PhysicalMemory } from "../memory/memory.ts";
   * import assert from "node:assert/strict";
   * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
   * pt.map(0x40_0000, 0x9000, { global: true });
   * const cpu = new Cpu(pt.memory, { cr3: pt.root });
   * cpu.access(0x40_0000);
   * assert.equal(cpu.movCr3(pt.root).kind, "ok");   // keeps the global entry
   * assert.equal(cpu.access(0x40_0000).tlb, "hit");
   * const r = cpu.writeCr4(cpu.cr4 & ~CR4.PGE);
   * assert.equal(r.kind === "ok" && r.tlbDropped, 1);
   * assert.equal(cpu.writeCr4(cpu.cr4 & ~CR4.PAE).kind, "gp"); // IA-32e mode
   * ```
   */
  writeCr4(value: number): InstructionResult {
    value = reg32("CR4", value);
    const old = this.#cr4;
    const changed = (old ^ value) >>> 0;
    const lma = (this.#efer & EFER.LMA) !== 0;
    if ((value & ~CR4_DEFINED) !== 0) {
      return gp(
        "cr4-reserved",
        `MOV to CR4 ${hexPhys(value)}: reserved bits ${
          hexPhys((value & ~CR4_DEFINED) >>> 0)
        } set`,
      );
    }
    if (lma && !(value & CR4.PAE)) {
      return gp(
        "cr4-invalid",
        `MOV to CR4 ${
          hexPhys(value)
        }: CR4.PAE cannot be cleared in IA-32e mode`,
      );
    }
    if (lma && (changed & CR4.LA57)) {
      return gp(
        "cr4-invalid",
        `MOV to CR4 ${hexPhys(value)}: CR4.LA57 cannot change in IA-32e mode`,
      );
    }
    if ((value & CR4.PCIDE) && !(old & CR4.PCIDE)) {
      if (!lma) {
        return gp(
          "cr4-invalid",
          `MOV to CR4 ${
            hexPhys(value)
          }: CR4.PCIDE can be set only in IA-32e mode`,
        );
      }
      if ((this.#cr3Lo & 0xfff) !== 0) {
        return gp(
          "cr4-invalid",
          `MOV to CR4 ${
            hexPhys(value)
          }: setting CR4.PCIDE requires CR3[11:0] = 0 (CR3 ${
            hex64(this.#cr3Hi, this.#cr3Lo)
          })`,
        );
      }
    }
    const pcidBefore = this.#pcid;
    return this.#commit(
      this.#cr0,
      value,
      this.#efer,
      (changed & (CR4.PAE | CR4.PGE | CR4.PSE | CR4.SMEP)) !== 0,
      () => {
        if (
          (changed & CR4.PGE) ||
          ((old & CR4.PCIDE) && !(value & CR4.PCIDE))
        ) {
          return [this.tlb.flushAll(), this.psc.flushAll()];
        }
        if ((changed & CR4.PAE) || ((value & CR4.SMEP) && !(old & CR4.SMEP))) {
          return [
            this.tlb.flushPcid(pcidBefore),
            this.psc.flushPcid(pcidBefore),
          ];
        }
        return [0, 0];
      },
      "CR4",
    );
  }

  /**
   * WRMSR IA32_EFER. #GP for reserved bits or a change of LME while
   * paging is enabled (§4.1.2). LMA is read-only (LME ∧ CR0.PG). No
   * invalidation: the SDM lists none for EFER.NXE, so TLB entries keep the
   * rights they were filled with until software flushes them.
   */
  writeEfer(value: number): InstructionResult {
    value = reg32("EFER", value);
    if ((value & ~EFER_DEFINED) !== 0) {
      return gp(
        "efer-reserved",
        `WRMSR EFER ${hexPhys(value)}: reserved bits set`,
      );
    }
    if ((this.#cr0 & CR0.PG) && ((value ^ this.#efer) & EFER.LME)) {
      return gp(
        "efer-invalid",
        `WRMSR EFER ${hexPhys(value)}: EFER.LME cannot change while CR0.PG = 1`,
      );
    }
    return this.#commit(
      this.#cr0,
      this.#cr4,
      this.#withLma(value, this.#cr0),
      false,
      () => [0, 0],
      "EFER",
    );
  }

  #commit(
    cr0: number,
    cr4: number,
    efer: number,
    pdpteTrigger: boolean,
    flush: () => [number, number],
    what: string,
  ): InstructionResult {
    const newMode = this.#modeFor(cr0, cr4, efer);
    let loaded = false;
    if (newMode && newMode.format.pdpteRegisters && pdpteTrigger) {
      // the PDPTEs come from CR3 as the new mode reads it (bits 31:5)
      const root = (this.#cr3Lo & 0xffffffe0) >>> 0;
      const r = this.#readPdptes(root, newMode);
      if (r !== true) return gp("pdpte-reserved", `MOV to ${what}: ${r}`);
      loaded = true;
    }
    this.#cr0 = cr0 >>> 0;
    this.#cr4 = cr4 >>> 0;
    this.#efer = efer >>> 0;
    this.#refreshMode();
    this.#refreshCr3();
    if (!this.#pdpteWanted()) this.#pdpteActive = false;
    const [t, p] = flush();
    return { kind: "ok", tlbDropped: t, pscDropped: p, pdptesLoaded: loaded };
  }

  /**
   * INVLPG (§4.10.4.1): drop the TLB entries for the page of `va` (every
   * page size) of the current PCID and global ones of any PCID, and every
   * PSC entry of the current PCID whatever its address. A non-canonical
   * address makes it a no-op (as in 64-bit mode).
   */
  invlpg(va: AddressLike | LinearAddress): InstructionResult {
    const a = LinearAddress.from(va);
    if (!(this.#efer & EFER.LMA) && a.hi !== 0 && !this.#custom) {
      throw new RangeError(
        `INVLPG ${a.toHex()}: outside IA-32e mode linear addresses are 32 bits`,
      );
    }
    if (
      (this.#efer & EFER.LMA) &&
      !isCanonicalBits(a.hi, this.#cr4 & CR4.LA57 ? 57 : 48)
    ) {
      return { kind: "ok", tlbDropped: 0, pscDropped: 0, pdptesLoaded: false };
    }
    const t = this.tlb.invlpg(a.hi, a.lo, this.#pcid);
    const p = this.psc.invlpg(this.#pcid);
    return { kind: "ok", tlbDropped: t, pscDropped: p, pdptesLoaded: false };
  }

  /**
   * INVPCID (§4.10.4.1, Vol. 2 INVPCID). Type 0: the TLB entries of `pcid`
   * for the page of `va`, except global ones, and `pcid`'s PSC entries that
   * would translate `va`. Type 1: every entry of `pcid` except global ones,
   * and its PSC entries. Type 2: everything, global entries included.
   * Type 3: everything except global entries. #GP for a type above 3, a
   * PCID above 4095, a non-canonical `va` (type 0), or a non-zero PCID with
   * CR4.PCIDE = 0 (types 0 and 1).
   *
   * @example Type 3 keeps global translations, type 2 drops them.
   * ```ts
   * import { Cpu } from "./cpu.ts";
   * import { PageTable } from "../paging/builder.ts";
   * import { PhysicalMemory } from "../memory/memory.ts";
   * import assert from "node:assert/strict";
   * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
   * pt.map(0x40_0000, 0x9000);
   * pt.map("0xffff888000000000", 0xa000, { global: true });
   * const cpu = new Cpu(pt.memory, { cr3: pt.root });
   * cpu.access(0x40_0000);
   * cpu.access("0xffff888000000000");
   * const t3 = cpu.invpcid(3);
   * assert.equal(t3.kind === "ok" && t3.tlbDropped, 1);
   * const t2 = cpu.invpcid(2);
   * assert.equal(t2.kind === "ok" && t2.tlbDropped, 1);
   * assert.equal(cpu.invpcid(4).kind, "gp");
   * ```
   */
  invpcid(type: number, descriptor: InvpcidDescriptor = {}): InstructionResult {
    if (!Number.isInteger(type) || type < 0) {
      throw new RangeError(
        `INVPCID type ${
          String(type)
        } is invalid: expected a non-negative integer (0..3 are defined)`,
      );
    }
    if (type > 3) {
      return gp("invpcid-type", `INVPCID type ${type} is not defined (0..3)`);
    }
    const pcid = descriptor.pcid ?? 0;
    if (!Number.isInteger(pcid) || pcid < 0) {
      throw new RangeError(
        `INVPCID PCID ${
          String(pcid)
        } is invalid: expected a non-negative integer`,
      );
    }
    if (pcid > 4095) {
      return gp(
        "invpcid-descriptor",
        `INVPCID descriptor bits 63:12 must be 0 (PCID ${pcid})`,
      );
    }
    if (type <= 1 && pcid !== 0 && !(this.#cr4 & CR4.PCIDE)) {
      return gp(
        "invpcid-descriptor",
        `INVPCID type ${type} with PCID ${pcid} requires CR4.PCIDE = 1`,
      );
    }
    let t = 0, p = 0;
    if (type === 0) {
      const a = LinearAddress.from(descriptor.va ?? 0);
      if (!isCanonicalBits(a.hi, this.#cr4 & CR4.LA57 ? 57 : 48)) {
        return gp(
          "invpcid-descriptor",
          `INVPCID type 0: linear address ${a.toHex()} is not canonical`,
        );
      }
      t = this.tlb.invlpg(a.hi, a.lo, pcid, { keepGlobal: true });
      p = this.psc.invalidateAddress(a.hi, a.lo, pcid);
    } else if (type === 1) {
      t = this.tlb.flushPcid(checkPcid(pcid), { keepGlobal: true });
      p = this.psc.flushPcid(pcid);
    } else if (type === 2) {
      t = this.tlb.flushAll();
      p = this.psc.flushAll();
    } else {
      t = this.tlb.flushAll({ keepGlobal: true });
      p = this.psc.flushAll();
    }
    return { kind: "ok", tlbDropped: t, pscDropped: p, pdptesLoaded: false };
  }

  // ---- accesses -----------------------------------------------------------

  /** Physical address of the last successful access. */
  get lastPa(): number {
    return this.#pa;
  }

  /** log2 of the page size of the last successful access. */
  get lastPageShift(): number {
    return this.#shift;
  }

  /** Leaf level of the last successful access, or the faulting level. */
  get lastLevel(): number {
    return this.#level;
  }

  /** #PF error code of the last access (0 unless it faulted). */
  get lastErrorCode(): number {
    return this.#clean ? 0 : this.#err;
  }

  /** Fault reason of the last access (`Reason.*`, 0 if none). */
  get lastReason(): number {
    return this.#clean ? 0 : this.#reason;
  }

  /** Whether the last access was served by the TLB. */
  get lastTlbHit(): boolean {
    return this.#clean || this.#hit;
  }

  /** TLB slot the last access hit or filled, else -1. */
  get lastSlot(): number {
    return this.#slot;
  }

  /** Table reads of the last access. */
  get lastTableReads(): number {
    return this.#clean ? 0 : this.#reads;
  }

  /**
   * Translate `vaHi:vaLo` for an access described by `ACCESS_*` flags
   * (`accessFlags` of record.ts): the allocation-free hot path. Returns
   * `WALK_OK`, `WALK_PF` or `WALK_GP`; details are in the `last*` getters.
   * Arguments are not validated (unsigned 32-bit halves expected); with
   * paging disabled or a 32-bit format, an address at or above 2^32 gives
   * `WALK_GP`.
   *
   * @example
   * ```ts
   * import { Cpu } from "./cpu.ts";
   * import { PageTable } from "../paging/builder.ts";
   * import { PhysicalMemory } from "../memory/memory.ts";
   * import { ACCESS_USER, ACCESS_WRITE, WALK_OK, WALK_PF } from "../paging/walker.ts";
   * import assert from "node:assert/strict";
   * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
   * pt.map(0x40_0000, 0x9000, { user: true, writable: false });
   * const cpu = new Cpu(pt.memory, { cr3: pt.root });
   * assert.equal(cpu.accessFast(0, 0x40_0abc, ACCESS_USER), WALK_OK);
   * assert.equal(cpu.lastPa, 0x9abc);
   * assert.equal(cpu.lastTlbHit, false);
   * assert.equal(cpu.accessFast(0, 0x40_0abc, ACCESS_USER), WALK_OK);
   * assert.equal(cpu.lastTlbHit, true);
   * assert.equal(cpu.accessFast(0, 0x40_0abc, ACCESS_USER | ACCESS_WRITE), WALK_PF);
   * assert.equal(cpu.lastErrorCode, 0b111); // P | W | U
   * ```
   */
  accessFast(vaHi: number, vaLo: number, access: number): number {
    this.#cAccesses++;
    const mode = this.#mode;
    // linear-address width: canonical form (§3.3.7.1) or zero upper bits
    const k = this.#vaKind;
    if (k === 1) {
      const top = vaHi >>> this.#vaShift;
      if (top !== 0 && top !== this.#vaTop) return this.#gpAccess();
    } else if (k === 2) {
      if ((vaHi >>> this.#vaShift) !== 0) return this.#gpAccess();
    } else if (k === 3) {
      if (
        vaHi !== 0 || (this.#vaShift < 32 && (vaLo >>> this.#vaShift) !== 0)
      ) {
        return this.#gpAccess();
      }
    }
    if (mode === undefined) {
      // paging disabled: linear = physical (§4.1.1)
      this.#slow();
      this.#slot = -1;
      this.#pa = vaLo;
      this.#shift = 12;
      this.#level = 0;
      return WALK_OK;
    }
    const tlb = this.tlb;
    const slot = tlb.lookup(vaHi, vaLo, this.#pcid);
    if (slot >= 0) {
      const chk = this.#pke
        ? checkRights(
          mode,
          tlb.rightsOf(slot),
          tlb.pkeyOf(slot),
          access,
          this.#pkru,
        )
        : this.#verdict[(tlb.rightsOf(slot) << 5) | (access & 31)];
      if (chk !== 0) return this.#hitFault(slot, vaHi, vaLo, access, chk);
      if ((access & ACCESS_WRITE) === 0 || tlb.dirtyOf(slot)) {
        this.#cHits++;
        this.#clean = true;
        this.#slot = slot;
        this.#pa = tlb.translate(slot, vaHi, vaLo);
        this.#shift = tlb.shiftOf(slot);
        this.#level = tlb.levelOf(slot);
        return WALK_OK;
      }
      // §4.8: a write through a translation whose cached D is 0 walks so
      // that the processor can set D in the leaf.
      this.#slow();
      this.#dirtyRewalk = true;
      this.#cDirty++;
      return this.#miss(mode, vaHi, vaLo, access, slot);
    }
    this.#slow();
    return this.#miss(mode, vaHi, vaLo, access, -1);
  }

  /** Reset the last-access details before a path other than a clean hit. */
  #slow(): void {
    this.#clean = false;
    this.#hit = false;
    this.#walked = false;
    this.#dirtyRewalk = false;
    this.#reads = 0;
    this.#err = 0;
    this.#reason = 0;
  }

  #gpAccess(): number {
    this.#slow();
    this.#cGp++;
    this.#slot = -1;
    this.#level = 0;
    this.#reason = Reason.NonCanonical;
    return WALK_GP;
  }

  #pfCode(access: number, mode: PagingMode): number {
    let ec = 0;
    if (access & ACCESS_WRITE) ec |= PFEC_W;
    if ((access & ACCESS_USER) && !(access & ACCESS_IMPLICIT)) ec |= PFEC_U;
    if ((access & ACCESS_FETCH) && mode.reportsFetch) ec |= PFEC_ID;
    return ec;
  }

  /** A rights violation found on a TLB hit: reported from the cached rights. */
  #hitFault(
    slot: number,
    vaHi: number,
    vaLo: number,
    access: number,
    chk: number,
  ): number {
    const mode = this.#mode!;
    this.#slow();
    this.#cHits++;
    this.#cPf++;
    this.#hit = true;
    this.#slot = slot;
    this.#level = this.tlb.levelOf(slot);
    this.#reason = chk & 0xff;
    this.#err = PFEC_P | (chk >>> 8) | this.#pfCode(access, mode);
    // §4.10.4.1: the fault invalidates the TLB entries for the page and the
    // PSC entries for the address, so a fault due to stale entries is seen once.
    this.tlb.invalidatePage(vaHi, vaLo, this.#pcid);
    this.psc.invalidateAddress(vaHi, vaLo, this.#pcid);
    return WALK_PF;
  }

  #miss(
    mode: PagingMode,
    vaHi: number,
    vaLo: number,
    access: number,
    dirtySlot: number,
  ): number {
    this.#cMisses++;
    this.#hit = false;
    const pcid = this.#pcid;
    const psc = this.psc;
    let startLevel = 0, startBase = 0, startRights = 7, src = 0;
    const hitLevel = psc.lookup(vaHi, vaLo, pcid, mode);
    if (hitLevel > 0) {
      startLevel = hitLevel - 1;
      startBase = psc.lastTable;
      startRights = psc.lastRights;
      src = 1;
      this.#cPsc++;
    } else if (this.#pdpteActive) {
      // PAE: the walk starts from the PDPTE register (§4.4.1); a
      // not-present PDPTE faults without reading memory.
      const i = (vaLo >>> 30) & 3;
      if (this.#pdptePresent[i] === 0) {
        this.#cPf++;
        this.#slot = -1;
        this.#level = 3;
        this.#reason = Reason.NotPresent;
        this.#err = this.#pfCode(access, mode);
        this.#resume = 0;
        this.#resumeSrc = 2;
        if (dirtySlot >= 0) this.tlb.invalidatePage(vaHi, vaLo, pcid);
        return WALK_PF;
      }
      startLevel = 2;
      startBase = this.#pdpteBase[i];
      src = 2;
      this.#cPdpte++;
    }
    const s = this.#scratch;
    const r = walkInto(
      s,
      mode,
      this.memory,
      this.#root,
      vaHi,
      vaLo,
      access,
      this.#pkru,
      startLevel,
      startBase,
      startRights,
      true,
    );
    this.#walked = true;
    this.#resume = startLevel;
    this.#resumeSrc = src;
    this.#reads = s.steps;
    this.#cWalks++;
    this.#cReads += s.steps;
    if (r === WALK_OK) {
      this.#slot = this.tlb.fill(s, vaHi, vaLo, pcid);
      psc.fill(s, vaHi, vaLo, pcid, mode);
      this.#pa = s.pa;
      this.#shift = s.pageShift;
      this.#level = s.leafLevel;
      return WALK_OK;
    }
    this.#slot = -1;
    this.#level = s.leafLevel;
    this.#reason = s.reason;
    this.#err = s.errorCode;
    if (r === WALK_PF) {
      this.#cPf++;
      // §4.10.4.1: a #PF drops the PSC entries for the address (and the
      // TLB entries for the page: there is one only on a dirty re-walk).
      psc.invalidateAddress(vaHi, vaLo, pcid);
      if (dirtySlot >= 0) this.tlb.invalidatePage(vaHi, vaLo, pcid);
    } else {
      this.#cGp++;
    }
    return r;
  }

  /**
   * Access `va` as the processor would, through the TLB and the
   * paging-structure caches. `user` defaults to CPL = 3, `ac` to EFLAGS.AC.
   * Returns the outcome (the same union a walk has), whether the TLB hit,
   * and the walk record when a walk happened. Throws `RangeError` for an
   * address wider than the current format (or than 32 bits with paging
   * disabled) and for a bad access description.
   */
  access(
    va: AddressLike | LinearAddress,
    options: AccessOptions = {},
  ): AccessResult {
    const a = LinearAddress.from(va);
    const mode = this.#mode;
    if (mode) checkVa(mode, a);
    else if (a.hi !== 0) {
      throw new RangeError(
        `linear address ${a.toHex()} is invalid with paging disabled: expected a 32-bit address (linear = physical)`,
      );
    }
    const flags = accessFlags({
      ...options,
      user: options.user ?? this.#cpl === 3,
      ac: options.ac ?? this.#ac,
    });
    const code = this.accessFast(a.hi, a.lo, flags);
    const clean = this.#clean;
    const base = {
      va: a,
      slot: this.#slot,
      pcid: this.#pcid,
      dirtyRewalk: !clean && this.#dirtyRewalk,
      tableReads: this.lastTableReads,
    };
    if (!clean && this.#walked) {
      const resumed: WalkResume | undefined = this.#resumeSrc === 0
        ? undefined
        : {
          level: this.#resume,
          source: this.#resumeSrc === 1
            ? "paging-structure-cache"
            : "pdpte-register",
        };
      const walk = Walk.fromScratch(
        this.#scratch,
        mode!,
        this.#root,
        a,
        flags,
        resumed,
        this.pkru,
      );
      return { ...base, outcome: walk.outcome, tlb: "miss", walk };
    }
    if (code === WALK_OK) {
      if (!clean) {
        const t: Translation = {
          kind: "ok",
          pa: this.#pa,
          pageSize: 2 ** this.#shift,
          level: 0,
          rights: decodeRights(7),
          pkey: 0,
          global: false,
          accessedSet: [],
          dirtySet: false,
        };
        return { ...base, outcome: t, tlb: "bypass" };
      }
      const slot = this.#slot;
      const t: Translation = {
        kind: "ok",
        pa: this.#pa,
        pageSize: 2 ** this.#shift,
        level: this.#level,
        rights: decodeRights(this.tlb.rightsOf(slot)),
        pkey: this.tlb.pkeyOf(slot),
        global: this.tlb.globalOf(slot),
        accessedSet: [],
        dirtySet: false,
      };
      return { ...base, outcome: t, tlb: "hit" };
    }
    // a fault without a walk: build the outcome through the record code so
    // that messages match a walk's exactly
    const s = new WalkScratch();
    s.outcome = code;
    s.errorCode = this.#err;
    s.reason = this.#reason;
    s.leafLevel = this.#level;
    const outcome = Walk.fromScratch(
      s,
      mode ?? pagingMode(X86_32),
      this.#root,
      a,
      flags,
    ).outcome;
    return {
      ...base,
      outcome,
      tlb: this.#hit ? "hit" : code === WALK_GP ? "bypass" : "miss",
    };
  }

  // ---- counters and display ----------------------------------------------

  /** Counters since creation or the last {@linkcode Cpu.resetCounters}. */
  get counters(): CpuCounters {
    return {
      accesses: this.#cAccesses,
      tlbHits: this.#cHits,
      tlbMisses: this.#cMisses,
      walks: this.#cWalks,
      tableReads: this.#cReads,
      pscResumes: this.#cPsc,
      pdpteResumes: this.#cPdpte,
      dirtyRewalks: this.#cDirty,
      pageFaults: this.#cPf,
      generalProtection: this.#cGp,
    };
  }

  /** Zero the counters of the CPU, its TLB and its PSCs. */
  resetCounters(): void {
    this.#cAccesses =
      this.#cHits =
      this.#cMisses =
      this.#cWalks =
        0;
    this.#cReads =
      this.#cPsc =
      this.#cPdpte =
      this.#cDirty =
        0;
    this.#cPf = this.#cGp = 0;
    this.tlb.resetCounters();
    this.psc.resetCounters();
  }

  /** Plain-data picture for the views. */
  snapshot(): CpuSnapshot {
    const regs = [this.#cr0, this.#cr4, this.#efer];
    const flags = FLAG_NAMES.filter(([, r, b]) => (regs[r] & b) !== 0).map((
      [n],
    ) => n);
    const pd = this.pdptes;
    return {
      paging: this.paging,
      modeName: this.#mode?.format.name ?? "",
      registers: {
        cr0: this.#cr0,
        cr3: hex64(this.#cr3Hi, this.#cr3Lo),
        cr4: this.#cr4,
        efer: this.#efer,
      },
      flags,
      root: this.#root,
      pcid: this.#pcid,
      cpl: this.#cpl,
      ac: this.#ac,
      pkru: this.#pkru,
      ...(pd
        ? {
          pdptes: pd.map((v) =>
            hex64(Number(v >> 32n), Number(v & 0xffffffffn))
          ),
        }
        : {}),
      counters: this.counters,
      tlb: this.tlb.snapshot(),
      psc: this.psc.snapshot(),
    };
  }

  /** One-line summary. */
  toString(): string {
    return `CPU (${this.#mode?.format.name ?? "paging disabled"}, CR3 ${
      hex64(this.#cr3Hi, this.#cr3Lo)
    }, PCID ${this.#pcid}): ${this.tlb.toString()}`;
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const s = this.snapshot();
    return { "text/plain": cpuToText(s), "text/html": cpuToHtml(s) };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return cpuToText(this.snapshot());
  }
}
