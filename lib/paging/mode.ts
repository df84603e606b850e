/**
 * The paging mode ("role", after KVM's `kvm_calc_cpu_role`): a format plus
 * the control-register bits and CPU features that change how entries are
 * read. Derived once, frozen, with the reserved-bit masks and address masks
 * precomputed per level so that the walker does no mode logic per access.
 *
 * Reserved bits follow Intel SDM Vol. 3 §4.3–§4.5 (Tables 4-4 to 4-20):
 * bits MAXPHYADDR..51 (..62 for PAE), bit 63 when EFER.NXE = 0, PS where a
 * level cannot map a page (PML5E, PML4E; PDPTE without 1-GiB support), the
 * low frame bits of large pages (13..20 for 2 MiB, 13..29 for 1 GiB), and
 * for 32-bit 4 MiB pages bit 21 and the PSE-36 bits above MAXPHYADDR.
 * With `vendor: "amd"`, bit 8 of PML4Es and PML5Es is reserved too (AMD APM
 * Vol. 2 §5.3.3; KVM's `nonleaf_bit8_rsvd`).
 *
 * @module
 */

import type { PagingFormat } from "./format.ts";

/** Control-register bits and CPU features that shape a walk. */
export interface PagingModeOptions {
  /** CR0.WP: supervisor writes honour R/W. Default true. */
  wp?: boolean;
  /** EFER.NXE: bit 63 is XD (else reserved). Default true where the format has XD. */
  nxe?: boolean;
  /** CR4.SMEP. Default false. */
  smep?: boolean;
  /** CR4.SMAP. Default false. */
  smap?: boolean;
  /** CR4.PKE: protection keys for user pages (4/5-level only). Default false. */
  pke?: boolean;
  /** CR4.PSE: 4 MiB pages in 32-bit paging. Default true. */
  pse?: boolean;
  /** CR4.PGE: global pages. Default true. */
  pge?: boolean;
  /** MAXPHYADDR in bits (32..52). Default 52 (40 effective for 32-bit paging). */
  maxPhyAddr?: number;
  /** CPU supports 1 GiB pages (CPUID Page1GB). Default true. */
  gbPages?: boolean;
  /** Vendor-specific reserved bits. Default "intel". */
  vendor?: "intel" | "amd";
}

/** A resolved, frozen paging mode. Build with {@linkcode pagingMode}. */
export interface PagingMode {
  /** The entry format. */
  readonly format: PagingFormat;
  /** CR0.WP. */
  readonly wp: boolean;
  /** EFER.NXE (false for formats without XD). */
  readonly nxe: boolean;
  /** CR4.SMEP. */
  readonly smep: boolean;
  /** CR4.SMAP. */
  readonly smap: boolean;
  /** CR4.PKE, effective (false unless 4/5-level). */
  readonly pke: boolean;
  /** CR4.PSE (32-bit paging). */
  readonly pse: boolean;
  /** CR4.PGE. */
  readonly pge: boolean;
  /** MAXPHYADDR as given. */
  readonly maxPhyAddr: number;
  /** 1 GiB page support. */
  readonly gbPages: boolean;
  /** Vendor. */
  readonly vendor: "intel" | "amd";
  /** Whether #PF error codes report I/D (SMEP, or NXE with PAE/64-bit). */
  readonly reportsFetch: boolean;
  /** Largest physical address a table or page may have, exclusive. */
  readonly physLimit: number;
  /**
   * Per-level tables for the walker, indexed `level` (1..n) or
   * `2 * level + (ps ? 1 : 0)` for reserved masks. Internal but public so
   * views can explain them.
   */
  readonly tables: ModeTables;
}

/** Precomputed per-level data (internal layout, documented for views). */
export interface ModeTables {
  /** Reserved-bit mask, low dword, at `2*level + ps`. */
  readonly rsvdLo: Uint32Array;
  /** Reserved-bit mask, high dword, at `2*level + ps`. */
  readonly rsvdHi: Uint32Array;
  /** 1 where a set PS bit makes the entry a leaf at `level`. */
  readonly psLeaf: Uint8Array;
  /** 1 where entries at `level` carry R/W, U/S and XD (not PAE PDPTEs). */
  readonly hasRights: Uint8Array;
  /** Shift of the linear-address bits indexed at `level`. */
  readonly shift: Uint8Array;
  /** Index width at `level`. */
  readonly bits: Uint8Array;
  /** Address mask for a table pointer or 4 KiB leaf, low dword (x86). */
  readonly addrLo: number;
  /** Address mask for a table pointer or 4 KiB leaf, high dword (x86). */
  readonly addrHi: number;
}

function bitsMask(from: number, to: number): [number, number] {
  // inclusive bit range of a 64-bit value, as [lo, hi] dword masks
  let lo = 0, hi = 0;
  for (let b = from; b <= to; b++) {
    if (b < 32) lo |= 1 << b;
    else hi |= 1 << (b - 32);
  }
  return [lo >>> 0, hi >>> 0];
}

/**
 * Resolve a paging mode for `format` with the given control bits.
 * Throws `RangeError` for a MAXPHYADDR outside 32..52 or features the
 * format cannot have.
 *
 * @example
 * ```ts
 * import { pagingMode } from "./mode.ts";
 * import { X86_64_4LEVEL } from "./format.ts";
 * import assert from "node:assert/strict";
 * const m = pagingMode(X86_64_4LEVEL, { maxPhyAddr: 46, nxe: false });
 * // bit 63 and bits 46..51 are reserved in a PTE (level 1, PS = 0)
 * assert.equal(m.tables.rsvdHi[2] >>> 0, 0x800fc000);
 * assert.throws(() => pagingMode(X86_64_4LEVEL, { maxPhyAddr: 60 }), /MAXPHYADDR 60/);
 * ```
 */
export function pagingMode(
  format: PagingFormat,
  options: PagingModeOptions = {},
): PagingMode {
  const M = options.maxPhyAddr ?? 52;
  if (!Number.isInteger(M) || M < 32 || M > 52) {
    throw new RangeError(
      `MAXPHYADDR ${M} is invalid: expected an integer in [32, 52]`,
    );
  }
  const x86 = format.kind !== "radix";
  const hasXd = format.bits.noExec >= 0;
  const nxe = hasXd && (options.nxe ?? true);
  const wp = options.wp ?? true;
  const smep = options.smep ?? false;
  const smap = options.smap ?? false;
  const pke = format.kind === "x86-64" && format.bits.pkey >= 0 &&
    (options.pke ?? false);
  const pse = options.pse ?? true;
  const pge = options.pge ?? true;
  const gbPages = options.gbPages ?? true;
  const vendor = options.vendor ?? "intel";
  const n = format.levels.length;
  const rsvdLo = new Uint32Array(2 * (n + 1));
  const rsvdHi = new Uint32Array(2 * (n + 1));
  const psLeaf = new Uint8Array(n + 1);
  const hasRights = new Uint8Array(n + 1);
  const shift = new Uint8Array(n + 1);
  const bits = new Uint8Array(n + 1);
  for (const l of format.levels) {
    shift[l.level] = l.shift;
    bits[l.level] = l.bits;
    hasRights[l.level] = 1;
    psLeaf[l.level] = l.canMapPage && l.level > 1 &&
        (format.kind !== "x86-32" || pse)
      ? 1
      : 0;
  }
  const set = (level: number, ps: 0 | 1, m: [number, number]) => {
    rsvdLo[2 * level + ps] |= m[0];
    rsvdHi[2 * level + ps] |= m[1];
  };
  let physLimit = 2 ** 52;
  let addrLo = 0, addrHi = 0;
  if (format.kind === "x86-64" || format.kind === "pae") {
    const top = format.kind === "pae" ? 62 : 51;
    const high = M <= top ? bitsMask(M, top) : [0, 0] as [number, number];
    if (!nxe) high[1] = (high[1] | 0x80000000) >>> 0;
    for (let level = 1; level <= n; level++) {
      set(level, 0, high);
      set(level, 1, high);
    }
    physLimit = 2 ** M;
    [addrLo, addrHi] = bitsMask(12, M - 1);
    // large-page frame bits below the page boundary (bit 12 is PAT)
    set(2, 1, bitsMask(13, 20));
    if (format.kind === "x86-64") {
      set(3, 1, bitsMask(13, 29));
      if (!gbPages) set(3, 1, bitsMask(7, 7));
      for (let level = 4; level <= n; level++) {
        set(level, 0, bitsMask(7, 7));
        set(level, 1, bitsMask(7, 7));
        if (vendor === "amd") {
          set(level, 0, bitsMask(8, 8));
          set(level, 1, bitsMask(8, 8));
        }
      }
    } else {
      // PAE PDPTEs (SDM Table 4-8): bits 2:1, 8:5 and 63:M reserved; no rights.
      const pdpte: [number, number][] = [
        bitsMask(1, 2),
        bitsMask(5, 8),
        bitsMask(M, 63),
      ];
      for (const m of pdpte) {
        set(3, 0, m);
        set(3, 1, m);
      }
      hasRights[3] = 0;
    }
  } else if (format.kind === "x86-32") {
    const m32 = Math.min(M, 40);
    physLimit = 2 ** 32;
    addrLo = 0xfffff000;
    // 4 MiB PDE (SDM Table 4-4): bit 21 and bits 20:(M-19) reserved.
    set(2, 1, bitsMask(21, 21));
    if (m32 < 40) set(2, 1, bitsMask(13 + (m32 - 32), 20));
  } else {
    physLimit = 2 ** Math.min(52, format.pageShift + format.frameWidth);
  }
  const mode: PagingMode = {
    format,
    wp,
    nxe,
    smep,
    smap,
    pke,
    pse,
    pge,
    maxPhyAddr: M,
    gbPages,
    vendor,
    reportsFetch: smep ||
      (nxe && (format.kind === "pae" || format.kind === "x86-64")) ||
      (!x86 && hasXd),
    physLimit,
    tables: {
      rsvdLo,
      rsvdHi,
      psLeaf,
      hasRights,
      shift,
      bits,
      addrLo,
      addrHi,
    },
  };
  Object.freeze(mode.tables);
  return Object.freeze(mode);
}

/**
 * The large-page physical limit for 32-bit PSE-36 pages (2^min(M,40)).
 *
 * @example
 * ```ts
 * import { pse36Limit, pagingMode } from "./mode.ts";
 * import { X86_32 } from "./format.ts";
 * import assert from "node:assert/strict";
 * assert.equal(pse36Limit(pagingMode(X86_32, { maxPhyAddr: 36 })), 2 ** 36);
 * ```
 */
export function pse36Limit(mode: PagingMode): number {
  return 2 ** Math.min(mode.maxPhyAddr, 40);
}
