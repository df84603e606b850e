/**
 * The guest kernel's page-frame allocator: the domain's backed gfns, with a
 * reference count per frame (copy-on-write shares a frame between
 * processes; the last unmapping frees it) and a role per frame (page
 * table, data, kernel) for displays.
 *
 * Frames are handed out lowest gfn first at boot, then last-freed first
 * (like Linux's per-CPU hot-page lists), so a freed page-table frame is
 * soon reused for data — the case shadow paging must notice.
 *
 * @module
 */

import { hexPhys } from "../../address/address.ts";
import type { FrameSource, Memory } from "../../memory/memory.ts";
import { FRAME_SIZE, FrameTable } from "../frames.ts";
import type { GuestPhysicalMemory } from "../guest_memory.ts";

/**
 * What a guest frame is used for.
 *
 * @example
 * ```ts
 * import type { GuestFrameRole } from "./frames.ts";
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20 }));
 * const p = os.spawn("sh");
 * os.switchTo(p.pid);
 * os.access(os.mmap({ length: 4096 }), { kind: "write", value: 1 });
 * const roles: GuestFrameRole[] = ["table", "data", "kernel"];
 * const n = os.frames.countByRole();
 * assert.deepEqual(roles.map((r) => n[r] > 0), [true, true, true]);
 * assert.equal(os.frames.roleOf(p.root), "table");
 * ```
 */
export type GuestFrameRole = "table" | "data" | "kernel";

const ROLE_CODE: Record<GuestFrameRole, number> = {
  table: 1,
  data: 2,
  kernel: 3,
};
const ROLES: readonly GuestFrameRole[] = ["table", "data", "kernel"];

/**
 * Allocator of guest frames by gpa, with reference counts.
 * `alloc()` (what a `PageTable` calls for a new table) gives a page-table
 * frame; {@linkcode GuestFrameAllocator.allocData} a data frame.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { GuestFrameAllocator } from "./frames.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 64 * 4096 });
 * const frames = new GuestFrameAllocator(vm.memory, [[0, 64]]);
 * const a = frames.allocData();
 * assert.equal(a, 0);                 // lowest gfn first
 * frames.ref(a);                      // shared by a fork
 * assert.equal(frames.unref(a), 1);
 * assert.equal(frames.unref(a), 0);   // freed
 * assert.throws(() => frames.unref(a), /not allocated/);
 * assert.equal(frames.freeCount, 64);
 * ```
 */
export class GuestFrameAllocator implements FrameSource {
  /** The memory page tables are built through (the unwatched view). */
  readonly memory: Memory;
  /** 4096. */
  readonly frameSize: number = FRAME_SIZE;
  #loud: GuestPhysicalMemory;
  #free: number[] = []; // gfns, next to hand out at the end
  #refs: FrameTable;
  #roles: FrameTable;
  #managed: FrameTable;
  #used = 0;
  #total = 0;
  #onTable: ((gpa: number) => void) | undefined;

  /**
   * Manage the gfns of `ranges` (`[firstGfn, count]`) of `memory`.
   * `onTableAlloc` is told of every page-table frame handed out.
   * `tableMemory` replaces the unwatched view as {@linkcode
   * GuestFrameAllocator.memory} (a PV guest reads its machine-frame entries
   * through a view that translates them back through the M2P).
   */
  constructor(
    memory: GuestPhysicalMemory,
    ranges: readonly (readonly [number, number])[],
    onTableAlloc?: (gpa: number) => void,
    tableMemory?: Memory,
  ) {
    this.memory = tableMemory ?? memory.unwatched;
    this.#loud = memory;
    const n = memory.size / FRAME_SIZE;
    this.#refs = new FrameTable(n, "guest frame reference counts", 0);
    this.#roles = new FrameTable(n, "guest frame roles", 0);
    this.#managed = new FrameTable(n, "guest frames managed", 0);
    this.#onTable = onTableAlloc;
    const gfns: number[] = [];
    for (const [first, count] of ranges) {
      for (let g = first; g < first + count; g++) gfns.push(g);
    }
    this.give(gfns);
  }

  /** Frames in use (reference count > 0). */
  get allocatedCount(): number {
    return this.#used;
  }

  /** Free frames. */
  get freeCount(): number {
    return this.#free.length;
  }

  /** Frames managed (free + in use). */
  get totalCount(): number {
    return this.#total;
  }

  /** Frames in use by role. */
  countByRole(): Record<GuestFrameRole, number> {
    const out: Record<GuestFrameRole, number> = {
      table: 0,
      data: 0,
      kernel: 0,
    };
    for (const [, r] of this.#roles.entries()) out[ROLES[r - 1]]++;
    return out;
  }

  #gfnOf(gpa: number): number {
    if (
      !Number.isInteger(gpa) || gpa < 0 || gpa % FRAME_SIZE !== 0 ||
      gpa >= this.memory.size
    ) {
      throw new RangeError(
        `guest frame ${
          String(gpa)
        } is invalid: expected a 4 KiB-aligned gpa below ${
          hexPhys(this.memory.size)
        }`,
      );
    }
    return gpa / FRAME_SIZE;
  }

  #take(role: GuestFrameRole, high = false): number {
    const gfn = high ? this.#free.shift() : this.#free.pop();
    if (gfn === undefined) {
      throw new RangeError(
        `${this.#loud.name}: guest out of memory (all ${this.#total} frames in use)`,
      );
    }
    this.#refs.set(gfn, 1);
    this.#roles.set(gfn, ROLE_CODE[role]);
    this.#used++;
    const gpa = gfn * FRAME_SIZE;
    try {
      // a guest store (a write-protected frame's watcher sees it)
      this.#loud.zero(gpa, FRAME_SIZE);
    } catch (e) {
      this.#refs.set(gfn, 0);
      this.#roles.set(gfn, 0);
      this.#used--;
      if (high) this.#free.unshift(gfn);
      else this.#free.push(gfn);
      throw e;
    }
    return gpa;
  }

  /** A zeroed page-table frame (the `FrameSource` call of `PageTable`). */
  alloc(): number {
    const gpa = this.#take("table");
    this.#onTable?.(gpa);
    return gpa;
  }

  /**
   * A zeroed page-table frame from the other end of the free list (the
   * frame that would be handed out last), so that the frames handed out
   * afterwards are the same as without this call. A PV kernel takes the
   * direct map's extra L1 tables this way.
   */
  allocHigh(): number {
    const gpa = this.#take("table", true);
    this.#onTable?.(gpa);
    return gpa;
  }

  /** A zeroed data frame (reference count 1). */
  allocData(role: "data" | "kernel" = "data"): number {
    return this.#take(role);
  }

  /** The reference count of the frame at `gpa` (0: free). */
  refcount(gpa: number): number {
    return this.#refs.get(this.#gfnOf(gpa));
  }

  /** The role of the frame at `gpa`, or `undefined` when free. */
  roleOf(gpa: number): GuestFrameRole | undefined {
    const r = this.#roles.get(this.#gfnOf(gpa));
    return r === 0 ? undefined : ROLES[r - 1];
  }

  /** One more reference to an allocated frame (a fork sharing it). */
  ref(gpa: number): void {
    const g = this.#gfnOf(gpa);
    const n = this.#refs.get(g);
    if (n === 0) {
      throw new RangeError(
        `guest frame ${hexPhys(gpa)} is not allocated: cannot take a reference`,
      );
    }
    this.#refs.set(g, n + 1);
  }

  /** Drop a reference; the frame is freed at 0. Returns the references left. */
  unref(gpa: number): number {
    const g = this.#gfnOf(gpa);
    const n = this.#refs.get(g);
    if (n === 0) {
      throw new RangeError(
        `guest frame ${hexPhys(gpa)} is not allocated (double free?)`,
      );
    }
    this.#refs.set(g, n - 1);
    if (n === 1) {
      this.#roles.set(g, 0);
      this.#used--;
      this.#free.push(g);
    }
    return n - 1;
  }

  /** Free a frame held once (`FrameSource.free`, for page-table frames). */
  free(gpa: number): void {
    const n = this.refcount(gpa);
    if (n !== 1) {
      throw new RangeError(
        `guest frame ${
          hexPhys(gpa)
        } has ${n} references: expected exactly 1 to free it`,
      );
    }
    this.unref(gpa);
  }

  /** Whether the frame at `gpa` is in use. */
  isAllocated(gpa: number): boolean {
    return this.refcount(gpa) > 0;
  }

  /**
   * Remove up to `count` free frames from the pool (for the balloon
   * driver) and return their gfns.
   */
  take(count: number): number[] {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(
        `count ${String(count)} is invalid: expected a non-negative integer`,
      );
    }
    const out: number[] = [];
    // from the bottom of the stack: the frames least recently freed
    while (out.length < count && this.#free.length > 0) {
      const g = this.#free.shift()!;
      this.#managed.set(g, 0);
      this.#total--;
      out.push(g);
    }
    return out;
  }

  /** Add free frames to the pool (boot, or the balloon deflating). */
  give(gfns: readonly number[]): void {
    const n = this.memory.size / FRAME_SIZE;
    for (const g of gfns) {
      if (!Number.isInteger(g) || g < 0 || g >= n) {
        throw new RangeError(
          `gfn ${String(g)} is invalid: expected an integer in [0, ${n})`,
        );
      }
      if (this.#managed.get(g) === 1) {
        throw new RangeError(`gfn ${hexPhys(g)} is already managed`);
      }
    }
    // pushed highest first, so that the lowest gfn is handed out first
    for (const g of [...gfns].sort((a, b) => b - a)) {
      this.#managed.set(g, 1);
      this.#total++;
      this.#free.push(g);
    }
  }
}
