/**
 * Exact 64-bit addresses without BigInt on the hot path.
 *
 * Physical addresses (at most 52 bits, Intel SDM Vol. 3 §4.1.4) fit exactly
 * in a JavaScript number (< 2^53), so they are plain numbers, branded per
 * address space so that a guest-physical address cannot be passed where a
 * host-physical one is meant.
 *
 * Linear addresses are 64 bits wide on x86-64 (kernel-half addresses such as
 * 0xffff888000000000 and 57-bit LA57 addresses exceed 2^53), so the hot path
 * carries them as two unsigned 32-bit halves `hi:lo`. At the API boundary
 * users may pass a `bigint`, a hex/decimal string, or a safe-integer
 * `number`; a negative number is read as a two's-complement 64-bit value
 * (so `-0x778000000000` is `0xffff888000000000`).
 *
 * @module
 */

/** A host-physical (machine) address: an integer in [0, 2^52). */
export type Hpa = number & { readonly __brand: "hpa" };
/** A guest-physical address: an integer in [0, 2^52). */
export type Gpa = number & { readonly __brand: "gpa" };
/** A machine frame number (hpa >> 12). */
export type Mfn = number & { readonly __brand: "mfn" };
/** A guest frame number (gpa >> 12). */
export type Gfn = number & { readonly __brand: "gfn" };

/** Anything the API accepts as a 64-bit address. */
export type AddressLike = bigint | number | string;

const TWO32 = 4294967296;

/** Largest physical address width the architecture allows (SDM §4.1.4). */
export const MAX_PHYS_BITS = 52;

/**
 * Brand a number as a host-physical address after checking it.
 *
 * @example
 * ```ts
 * import { hpa } from "./address.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hpa(0x1000), 0x1000);
 * assert.throws(() => hpa(-1), RangeError);
 * ```
 */
export function hpa(value: number): Hpa {
  return checkPhys(value, "host-physical address") as Hpa;
}

/**
 * Brand a number as a guest-physical address after checking it.
 *
 * @example
 * ```ts
 * import { gpa } from "./address.ts";
 * import assert from "node:assert/strict";
 * assert.equal(gpa(0x2000), 0x2000);
 * assert.throws(() => gpa(2 ** 52), /guest-physical address/);
 * ```
 */
export function gpa(value: number): Gpa {
  return checkPhys(value, "guest-physical address") as Gpa;
}

function checkPhys(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** MAX_PHYS_BITS) {
    throw new RangeError(
      `${what} ${String(value)} is invalid: expected an integer in [0, 2^52)`,
    );
  }
  return value;
}

/**
 * A 64-bit linear address as two unsigned 32-bit halves. Immutable value
 * used at API boundaries and in records; the hot path passes `hi`, `lo`
 * as separate numbers instead.
 *
 * @example
 * ```ts
 * import { LinearAddress } from "./address.ts";
 * import assert from "node:assert/strict";
 * const a = LinearAddress.from("0xffff888000000000");
 * assert.equal(a.hi, 0xffff8880);
 * assert.equal(a.lo, 0);
 * assert.equal(a.toHex(), "0xffff888000000000");
 * assert.equal(LinearAddress.from(-0x778000000000).toBigInt(), 0xffff888000000000n);
 * ```
 */
export class LinearAddress {
  /** Bits 63..32, unsigned. */
  readonly hi: number;
  /** Bits 31..0, unsigned. */
  readonly lo: number;

  /** Build from halves; both must be integers in [0, 2^32). */
  constructor(hi: number, lo: number) {
    if (!isU32(hi) || !isU32(lo)) {
      throw new RangeError(
        `linear address halves ${String(hi)}:${
          String(lo)
        } are invalid: expected two integers in [0, 2^32)`,
      );
    }
    this.hi = hi;
    this.lo = lo;
  }

  /**
   * Parse anything address-like: bigint in [-2^63, 2^64), safe-integer
   * number (negative = two's complement), or a string in hex (`0x…`,
   * underscores allowed) or decimal.
   */
  static from(value: AddressLike | LinearAddress): LinearAddress {
    if (value instanceof LinearAddress) return value;
    const [hi, lo] = splitAddress(value);
    return new LinearAddress(hi, lo);
  }

  /** The address as a bigint in [0, 2^64). */
  toBigInt(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /**
   * The address as a number when exactly representable (< 2^53), else
   * `undefined`.
   */
  toNumber(): number | undefined {
    return this.hi < 0x200000 ? this.hi * TWO32 + this.lo : undefined;
  }

  /** Lower-case hex with `0x` prefix and no padding. */
  toHex(): string {
    return hex64(this.hi, this.lo);
  }

  /** Same as {@linkcode LinearAddress.toHex}. */
  toString(): string {
    return this.toHex();
  }
}

function isU32(x: number): boolean {
  return Number.isInteger(x) && x >= 0 && x < TWO32;
}

/**
 * Split an address-like value into unsigned 32-bit halves `[hi, lo]`.
 * Throws a `RangeError` naming the value when it is not an integer in
 * [-2^63, 2^64) or is an unsafe number.
 *
 * @example
 * ```ts
 * import { splitAddress } from "./address.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(splitAddress(0x1_2345_6789), [1, 0x23456789]);
 * assert.deepEqual(splitAddress(-1), [0xffffffff, 0xffffffff]);
 * assert.deepEqual(splitAddress("0xffff_8880_0000_0000"), [0xffff8880, 0]);
 * assert.throws(() => splitAddress(1.5), /1\.5/);
 * ```
 */
export function splitAddress(value: AddressLike): [number, number] {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(
        `address ${String(value)} is invalid: expected a safe integer ` +
          `(|x| < 2^53; negative means two's complement), or pass a bigint or hex string`,
      );
    }
    if (value >= 0) return [Math.floor(value / TWO32), value >>> 0];
    // two's complement of a negative safe integer
    const mag = -value;
    let hi = Math.floor(mag / TWO32);
    let lo = mag >>> 0;
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    return [hi, lo];
  }
  let big: bigint;
  if (typeof value === "bigint") {
    big = value;
  } else if (typeof value === "string") {
    const s = value.trim().replaceAll("_", "");
    if (!/^-?(0x[0-9a-f]+|[0-9]+)$/i.test(s)) {
      throw new RangeError(
        `address "${value}" is invalid: expected hex (0x…) or decimal digits`,
      );
    }
    big = s.startsWith("-") ? -BigInt(s.slice(1)) : BigInt(s);
  } else {
    throw new TypeError(
      `address ${
        String(value)
      } has type ${typeof value}: expected bigint, number or string`,
    );
  }
  if (big < -(1n << 63n) || big >= 1n << 64n) {
    throw new RangeError(
      `address ${
        String(value)
      } is out of range: expected a value in [-2^63, 2^64)`,
    );
  }
  if (big < 0n) big += 1n << 64n;
  return [Number(big >> 32n), Number(big & 0xffffffffn)];
}

/**
 * Format a 64-bit value given as halves as `0x…` hex.
 *
 * @example
 * ```ts
 * import { hex64 } from "./address.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hex64(0, 0x1000), "0x1000");
 * assert.equal(hex64(0x8000_0000, 1), "0x8000000000000001");
 * ```
 */
export function hex64(hi: number, lo: number): string {
  if (hi === 0) return "0x" + (lo >>> 0).toString(16);
  return "0x" + (hi >>> 0).toString(16) +
    (lo >>> 0).toString(16).padStart(8, "0");
}

/**
 * Format a physical address or other non-negative safe integer as hex.
 *
 * @example
 * ```ts
 * import { hexPhys } from "./address.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hexPhys(0xfffff_ffff_f000), "0xffffffffff000");
 * ```
 */
export function hexPhys(value: number): string {
  return "0x" + value.toString(16);
}

/**
 * Extract `width` bits starting at bit `shift` of the 64-bit value `hi:lo`
 * (width ≤ 31). Allocation-free; used by the walker for table indices.
 *
 * @example
 * ```ts
 * import { bitsOf } from "./address.ts";
 * import assert from "node:assert/strict";
 * // bits 38..30 of 0x0000_007f_c000_0000 are all ones
 * assert.equal(bitsOf(0x7f, 0xc0000000, 30, 9), 0x1ff);
 * ```
 */
export function bitsOf(
  hi: number,
  lo: number,
  shift: number,
  width: number,
): number {
  const mask = width >= 32 ? 0xffffffff : (1 << width) - 1;
  if (shift >= 32) return (hi >>> (shift - 32)) & mask;
  if (shift + width <= 32) return (lo >>> shift) & mask;
  return ((lo >>> shift) | (hi << (32 - shift))) & mask;
}
