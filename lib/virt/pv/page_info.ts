/**
 * The page-type table of Xen PV direct paging: one record per machine frame
 * (Xen's `struct page_info`) with a **type** (none, L1..L4 page table,
 * segment descriptor, writable), a **type count**, a general **reference
 * count**, and the **pinned** and **validated** flags. The owner of a frame
 * is the host's frame-ownership table (`Host.ownerIdOf`), read, not copied.
 *
 * The rules (Xen `xen/arch/x86/mm.c`, "A description of the x86 page table
 * API"): a frame can be put to one of several mutually exclusive uses; its
 * type may change only while its type count is 0. So a frame that some
 * L1 entry maps writable (type `writable`, count > 0) cannot become a page
 * table, and a page-table frame cannot be mapped writable. A page-table
 * type taken from count 0 must first be **validated**: every entry of the
 * frame is checked and takes its own references (done by the caller,
 * {@linkcode PvMmu}, through the `validate` callback); when the count falls
 * back to 0 the frame is **devalidated** (its entries' references dropped).
 *
 * Simplified: the count of a frame does not include Xen's `PGC_allocated`
 * reference (frames are owned by the host's table instead); a type whose
 * count reached 0 is reset to "none" (Xen keeps the stale type bits with
 * count 0, which obeys the same rules since any type may be taken then);
 * no type-count overflow, no preemption (`-ERESTART`), no TLB-flush
 * timestamps.
 *
 * @module
 */

import { hexPhys } from "../../address/address.ts";

/**
 * Page types, as Xen's `PGT_*`: `none` (free to take any type), `l1`..`l4`
 * (page tables), `seg-desc` (GDT/LDT page), `writable` (mapped writable).
 *
 * @example
 * ```ts
 * import { PAGE_TYPES, type PageType } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * const t: PageType = "l1";
 * assert.equal(PAGE_TYPES.indexOf(t), 1);
 * ```
 */
export type PageType =
  | "none"
  | "l1"
  | "l2"
  | "l3"
  | "l4"
  | "seg-desc"
  | "writable";

/**
 * The page types by code (code = index; `l1`..`l4` have codes 1..4).
 *
 * @example
 * ```ts
 * import { PAGE_TYPES } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PAGE_TYPES[4], "l4");
 * ```
 */
export const PAGE_TYPES: readonly PageType[] = [
  "none",
  "l1",
  "l2",
  "l3",
  "l4",
  "seg-desc",
  "writable",
];

/**
 * Type code of "none".
 *
 * @example
 * ```ts
 * import { PGT_NONE, PAGE_TYPES } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PAGE_TYPES[PGT_NONE], "none");
 * ```
 */
export const PGT_NONE = 0;
/**
 * Type code of a segment-descriptor page (modelled as a type only).
 *
 * @example
 * ```ts
 * import { PGT_SEG_DESC, PAGE_TYPES } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PAGE_TYPES[PGT_SEG_DESC], "seg-desc");
 * ```
 */
export const PGT_SEG_DESC = 5;
/**
 * Type code of a frame mapped writable.
 *
 * @example
 * ```ts
 * import { PGT_WRITABLE, PAGE_TYPES } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * assert.equal(PAGE_TYPES[PGT_WRITABLE], "writable");
 * ```
 */
export const PGT_WRITABLE = 6;

/**
 * One frame's record, as plain data (for displays and tests).
 *
 * @example
 * ```ts
 * import { PageInfoTable, type PageInfo } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * const t = new PageInfoTable(16);
 * const i: PageInfo = t.info(3);
 * assert.deepEqual(i, { mfn: 3, type: "none", typeCount: 0, refCount: 0, pinned: false, validated: false });
 * ```
 */
export interface PageInfo {
  /** Machine frame number. */
  readonly mfn: number;
  /** Current type. */
  readonly type: PageType;
  /** Type count. */
  readonly typeCount: number;
  /** General reference count. */
  readonly refCount: number;
  /** Pinned (`MMUEXT_PIN_L*_TABLE`). */
  readonly pinned: boolean;
  /** Validated as a page table of its type. */
  readonly validated: boolean;
}

const F_PINNED = 1, F_VALIDATED = 2;

/**
 * Per-frame page types and counts, with Xen's get/put rules. Counts never
 * go negative (a `put` below 0 throws: a bug of the caller, never a guest
 * error).
 *
 * @example
 * ```ts
 * import { PageInfoTable, PGT_WRITABLE } from "./page_info.ts";
 * import assert from "node:assert/strict";
 * const t = new PageInfoTable(8);
 * assert.equal(t.getPageType(5, PGT_WRITABLE), true);   // mapped writable
 * assert.equal(t.getPageType(5, 1, () => true), false);  // cannot become an L1
 * t.putPageType(5);
 * assert.equal(t.getPageType(5, 1, () => true), true);   // now it can
 * assert.equal(t.info(5).validated, true);
 * ```
 */
export class PageInfoTable {
  /** Number of frames. */
  readonly frames: number;
  #type: Uint8Array;
  #typeCount: Uint32Array;
  #ref: Uint32Array;
  #flags: Uint8Array;

  /** A table for `frames` machine frames, all untyped with zero counts. */
  constructor(frames: number) {
    if (!Number.isInteger(frames) || frames < 1 || frames > 2 ** 28) {
      throw new RangeError(
        `frame count ${
          String(frames)
        } is invalid: expected an integer in [1, 2^28]`,
      );
    }
    this.frames = frames;
    this.#type = new Uint8Array(frames);
    this.#typeCount = new Uint32Array(frames);
    this.#ref = new Uint32Array(frames);
    this.#flags = new Uint8Array(frames);
  }

  #check(mfn: number): void {
    if (!Number.isInteger(mfn) || mfn < 0 || mfn >= this.frames) {
      throw new RangeError(
        `mfn ${String(mfn)} is invalid: expected an integer in [0, ${
          hexPhys(this.frames)
        })`,
      );
    }
  }

  /** Type code of `mfn` (0 none, 1..4 L1..L4, 5 seg-desc, 6 writable). */
  typeOf(mfn: number): number {
    return this.#type[mfn];
  }

  /** Type count of `mfn`. */
  typeCount(mfn: number): number {
    return this.#typeCount[mfn];
  }

  /** General reference count of `mfn`. */
  refCount(mfn: number): number {
    return this.#ref[mfn];
  }

  /** Whether `mfn` is pinned. */
  isPinned(mfn: number): boolean {
    return (this.#flags[mfn] & F_PINNED) !== 0;
  }

  /** Whether `mfn` is a validated page table. */
  isValidated(mfn: number): boolean {
    return (this.#flags[mfn] & F_VALIDATED) !== 0;
  }

  /** The record of `mfn` as plain data. */
  info(mfn: number): PageInfo {
    this.#check(mfn);
    return {
      mfn,
      type: PAGE_TYPES[this.#type[mfn]],
      typeCount: this.#typeCount[mfn],
      refCount: this.#ref[mfn],
      pinned: this.isPinned(mfn),
      validated: this.isValidated(mfn),
    };
  }

  /** Records of every frame with a type or a reference, in mfn order. */
  inUse(): PageInfo[] {
    const out: PageInfo[] = [];
    for (let m = 0; m < this.frames; m++) {
      if (this.#ref[m] !== 0 || this.#typeCount[m] !== 0) {
        out.push(this.info(m));
      }
    }
    return out;
  }

  /** `get_page`: one more general reference (ownership is the caller's check). */
  getPage(mfn: number): void {
    this.#check(mfn);
    this.#ref[mfn]++;
  }

  /** `put_page`: drop a general reference. */
  putPage(mfn: number): void {
    this.#check(mfn);
    if (this.#ref[mfn] === 0) {
      throw new Error(`internal: put_page of mfn ${hexPhys(mfn)} with count 0`);
    }
    this.#ref[mfn]--;
  }

  /**
   * `get_page_type`: take a type reference of `type` (code). With count 0
   * the frame takes the type; a page-table type (1..4) is validated by
   * `validate` first (which takes the references of the frame's entries,
   * or returns false having taken none). Fails (false, nothing changed) if
   * the frame has another type with count > 0, or validation fails.
   */
  getPageType(
    mfn: number,
    type: number,
    validate?: (mfn: number) => boolean,
  ): boolean {
    this.#check(mfn);
    if (!Number.isInteger(type) || type < 1 || type > PGT_WRITABLE) {
      throw new RangeError(
        `page type ${String(type)} is invalid: expected a code in [1, 6]`,
      );
    }
    const n = this.#typeCount[mfn];
    if (n > 0) {
      if (this.#type[mfn] !== type) return false;
      if (type <= 4 && !this.isValidated(mfn)) return false; // being validated
      this.#typeCount[mfn] = n + 1;
      return true;
    }
    this.#type[mfn] = type;
    this.#typeCount[mfn] = 1;
    if (type <= 4) {
      // while validating, the frame has its type and count 1 but is not
      // validated: a second reference of the same type fails (no cycles)
      const ok = validate === undefined ? false : validate(mfn);
      if (!ok) {
        this.#type[mfn] = PGT_NONE;
        this.#typeCount[mfn] = 0;
        return false;
      }
      this.#flags[mfn] |= F_VALIDATED;
    }
    return true;
  }

  /**
   * One more type reference to a validated page table of `type` without
   * validation (Xen's linear-page-table case): false unless the frame is
   * validated with exactly that type.
   */
  getValidatedType(mfn: number, type: number): boolean {
    this.#check(mfn);
    if (
      this.#typeCount[mfn] === 0 || this.#type[mfn] !== type ||
      !this.isValidated(mfn)
    ) return false;
    this.#typeCount[mfn]++;
    return true;
  }

  /**
   * `put_page_type`: drop a type reference. At 0 a page-table frame is
   * devalidated through `devalidate` (which drops its entries'
   * references) and the type is reset.
   */
  putPageType(mfn: number, devalidate?: (mfn: number) => void): void {
    this.#check(mfn);
    const n = this.#typeCount[mfn];
    if (n === 0) {
      throw new Error(
        `internal: put_page_type of mfn ${hexPhys(mfn)} with type count 0`,
      );
    }
    if (n === 1 && this.isPinned(mfn)) {
      throw new Error(
        `internal: last type reference of pinned mfn ${hexPhys(mfn)}`,
      );
    }
    this.#typeCount[mfn] = n - 1;
    if (n === 1) {
      const t = this.#type[mfn];
      if (t >= 1 && t <= 4 && this.isValidated(mfn)) {
        this.#flags[mfn] &= ~F_VALIDATED;
        devalidate?.(mfn);
      }
      this.#type[mfn] = PGT_NONE;
    }
  }

  /** Set or clear the pinned flag (the caller holds the pin's references). */
  setPinned(mfn: number, pinned: boolean): void {
    this.#check(mfn);
    if (pinned) this.#flags[mfn] |= F_PINNED;
    else this.#flags[mfn] &= ~F_PINNED;
  }
}
