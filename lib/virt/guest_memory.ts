/**
 * A domain's guest-physical memory: one {@linkcode Memory} per domain,
 * addressed by gpa, that translates every access through the domain's P2M
 * (Xen) or memslots and the VMM's host page table (KVM) into machine
 * memory. A guest OS builds its page tables in it with the ordinary
 * `PageTable`, and the walker reads guest entries from it.
 *
 * Isolation: the domain's translation only ever yields frames the domain
 * owns (the host checks ownership on every translation), so no gpa reaches
 * another domain's frame. A gpa beyond the guest-physical space, or with
 * nothing behind it (a ballooned-out gfn; a gap between memslots; a write
 * to a read-only memslot), gives a {@linkcode GuestMemoryError} (a
 * `RangeError`) naming the gpa and the domain — never a crash and never a
 * silent zero.
 *
 * Write watch: a virtualization scheme may watch guest frames (shadow
 * paging write-protects guest page tables; Xen PV types them). Writes
 * through this memory to a watched frame are reported, after they land, to
 * the watcher — the model of a write-protection trap. The
 * {@linkcode GuestPhysicalMemory.unwatched} view reads and writes the same
 * bytes without reporting: guest page tables are built through it, because
 * their entry writes are reported with their meaning through the
 * `PageTable.onEntryWrite` choke point instead, and the hypervisor uses it
 * for its own writes (A/D emulation).
 *
 * @module
 */

import { hexPhys } from "../address/address.ts";
import type { Memory } from "../memory/memory.ts";
import { FRAME_SIZE, FrameTable } from "./frames.ts";
import type { Domain } from "./domain.ts";

/**
 * Translation result code: the gpa is at or beyond the guest-physical space.
 *
 * @example
 * ```ts
 * import { GPA_OUT_OF_RANGE } from "./guest_memory.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20 });
 * assert.equal(vm.mfnForAccess(vm.gfnCount, false), GPA_OUT_OF_RANGE);
 * ```
 */
export const GPA_OUT_OF_RANGE: number = -1;
/**
 * Translation result code: nothing backs the gfn (not populated / ballooned out; no memslot).
 *
 * @example
 * ```ts
 * import { GPA_UNBACKED } from "./guest_memory.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20 });
 * vm.balloonOut([7]);
 * assert.equal(vm.mfnForAccess(7, false), GPA_UNBACKED);
 * ```
 */
export const GPA_UNBACKED: number = -2;
/**
 * Translation result code: a write to a read-only memslot (KVM_MEM_READONLY).
 *
 * @example
 * ```ts
 * import { GPA_READ_ONLY } from "./guest_memory.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" })
 *   .createDomain({ memory: 2 ** 20, memslots: [{ gpa: 0, size: 2 ** 20, readonly: true }] });
 * assert.equal(vm.mfnForAccess(0, true), GPA_READ_ONLY);
 * assert.ok(vm.mfnForAccess(0, false) >= 0);
 * ```
 */
export const GPA_READ_ONLY: number = -3;
/**
 * Translation result code: the memslot's hva is not mapped in the VMM process.
 *
 * @example
 * ```ts
 * import { GPA_HVA_UNMAPPED, gpaProblem } from "./guest_memory.ts";
 * import assert from "node:assert/strict";
 * // memslots are checked against the VMM's mappings when added, so this
 * // needs a VMM that unmaps guest RAM behind KVM's back (not modelled)
 * assert.equal(gpaProblem(GPA_HVA_UNMAPPED), "hva-unmapped");
 * ```
 */
export const GPA_HVA_UNMAPPED: number = -4;
/**
 * Translation result code: the domain was destroyed.
 *
 * @example
 * ```ts
 * import { GPA_DESTROYED } from "./guest_memory.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * host.destroyDomain(vm);
 * assert.equal(vm.mfnForAccess(0, false), GPA_DESTROYED);
 * ```
 */
export const GPA_DESTROYED: number = -5;
/**
 * Translation result code: the host ran out of machine memory faulting the page in.
 *
 * @example
 * ```ts
 * import { GuestMemoryError } from "./guest_memory.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 64 * 1024, hypervisor: "kvm" }); // 16 frames
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * assert.throws(() => {
 *   for (let gfn = 0; gfn < 256; gfn++) vm.memory.write8(gfn * 4096, 1);
 * }, (e) => e instanceof GuestMemoryError && e.problem === "host-oom");
 * ```
 */
export const GPA_HOST_OOM: number = -6;
/**
 * Translation result code: the translation named a frame the domain does not own (an internal invariant broke).
 *
 * @example
 * ```ts
 * import { GPA_NOT_OWNED, gpaProblem } from "./guest_memory.ts";
 * import assert from "node:assert/strict";
 * // what the ownership check would report if a P2M ever named a foreign frame
 * assert.equal(gpaProblem(GPA_NOT_OWNED), "not-owned");
 * ```
 */
export const GPA_NOT_OWNED: number = -7;

/**
 * Why a gpa could not be translated.
 *
 * @example
 * ```ts
 * import { GPA_UNBACKED, type GpaProblem, gpaProblem } from "./guest_memory.ts";
 * import assert from "node:assert/strict";
 * const p: GpaProblem = gpaProblem(GPA_UNBACKED);
 * assert.equal(p, "unbacked");
 * ```
 */
export type GpaProblem =
  | "out-of-range"
  | "unbacked"
  | "read-only"
  | "hva-unmapped"
  | "destroyed"
  | "host-oom"
  | "not-owned";

const PROBLEMS: readonly GpaProblem[] = [
  "out-of-range",
  "unbacked",
  "read-only",
  "hva-unmapped",
  "destroyed",
  "host-oom",
  "not-owned",
];

/**
 * The problem named by a negative translation code (`GPA_*`).
 *
 * @example
 * ```ts
 * import { GPA_UNBACKED, gpaProblem } from "./guest_memory.ts";
 * import assert from "node:assert/strict";
 * assert.equal(gpaProblem(GPA_UNBACKED), "unbacked");
 * assert.throws(() => gpaProblem(5), /translation code 5/);
 * ```
 */
export function gpaProblem(code: number): GpaProblem {
  const p = PROBLEMS[-code - 1];
  if (p === undefined) {
    throw new RangeError(
      `translation code ${
        String(code)
      } is invalid: expected one of the negative GPA_* codes`,
    );
  }
  return p;
}

/**
 * A gpa that could not be used, with the domain and the reason.
 *
 * @example
 * ```ts
 * import { GuestMemoryError } from "./guest_memory.ts";
 * import assert from "node:assert/strict";
 * const e = new GuestMemoryError("vm1", 0x5000, "unbacked", "gfn 0x5 is ballooned out");
 * assert.ok(e instanceof RangeError);
 * assert.equal(e.gpa, 0x5000);
 * assert.match(e.message, /domain "vm1": guest-physical address 0x5000 .*ballooned/);
 * ```
 */
export class GuestMemoryError extends RangeError {
  /** The domain's name. */
  readonly domain: string;
  /** The guest-physical address. */
  readonly gpa: number;
  /** Why. */
  readonly problem: GpaProblem;

  /** Build the error; `detail` completes the message. */
  constructor(
    domain: string,
    gpa: number,
    problem: GpaProblem,
    detail: string,
  ) {
    super(
      `domain "${domain}": guest-physical address ${
        Number.isInteger(gpa) && gpa >= 0 ? hexPhys(gpa) : String(gpa)
      } ${detail}`,
    );
    this.name = "GuestMemoryError";
    this.domain = domain;
    this.gpa = gpa;
    this.problem = problem;
  }
}

/**
 * Called after a write to a watched frame lands: its gpa and length (within one frame).
 *
 * @example
 * ```ts
 * import type { WriteWatcher } from "./guest_memory.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20 });
 * const seen: [number, number][] = [];
 * const w: WriteWatcher = (gpa, n) => seen.push([gpa, n]);
 * vm.memory.setWriteWatcher(w);
 * vm.memory.watch(3);
 * vm.memory.write32(0x3010, 1);           // reported
 * vm.memory.write32(0x4010, 1);           // frame 4 is not watched
 * vm.memory.unwatched.write32(0x3020, 1); // the hypervisor's own write
 * assert.deepEqual(seen, [[0x3010, 4]]);
 * ```
 */
export type WriteWatcher = (gpa: number, length: number) => void;

/**
 * A domain's guest-physical memory (see the module notes). Created by the
 * domain: use `domain.memory`.
 *
 * @example
 * ```ts
 * import { Host } from "./host.ts";
 * import { GuestMemoryError } from "./guest_memory.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 32 * 2 ** 20 });
 * const vm = host.createDomain({ name: "vm1", memory: 2 ** 20 });
 * vm.memory.write32(0x1234, 0xcafe);
 * assert.equal(vm.memory.read32(0x1234), 0xcafe);
 * const hpa = vm.gpaToHpa(0x1234);
 * assert.equal(host.memory.read32(hpa), 0xcafe);  // the same byte in machine memory
 * assert.throws(() => vm.memory.read8(2 ** 20), GuestMemoryError);
 * assert.throws(() => vm.memory.read8(2 ** 20), /domain "vm1": guest-physical address 0x100000 .*beyond/);
 * ```
 */
export class GuestPhysicalMemory implements Memory {
  /** The domain. */
  readonly domain: Domain;
  /** Size of the guest-physical space in bytes. */
  readonly size: number;
  /** Name used in messages. */
  readonly name: string;
  /** The same memory without write-watch reports (see the module notes). */
  readonly unwatched: Memory;
  #watched: FrameTable;
  #watcher: WriteWatcher | undefined = undefined;

  /** Create the view of `domain` (done by the domain). */
  constructor(domain: Domain) {
    this.domain = domain;
    this.size = domain.addressSpace;
    this.name = `domain "${domain.name}" guest-physical memory`;
    this.#watched = new FrameTable(
      this.size / FRAME_SIZE,
      `write watch of domain "${domain.name}"`,
      0,
    );
    this.unwatched = {
      size: this.size,
      name: `${this.name} (unwatched)`,
      read8: (a) => this.read8(a),
      read16: (a) => this.read16(a),
      read32: (a) => this.read32(a),
      write8: (a, v) => this.#write(a, v, 1, false),
      write16: (a, v) => this.#write(a, v, 2, false),
      write32: (a, v) => this.#write(a, v, 4, false),
      readBytes: (a, n) => this.readBytes(a, n),
      writeBytes: (a, d) => this.#writeBytes(a, d, false),
      zero: (a, n) => this.#zero(a, n, false),
    };
  }

  /** Frames currently watched. */
  get watchedCount(): number {
    return this.#watched.count;
  }

  /** Report writes to `gfn` to the watcher from now on. */
  watch(gfn: number): void {
    this.#watched.set(this.#gfn(gfn), 1);
  }

  /** Stop reporting writes to `gfn`. */
  unwatch(gfn: number): void {
    this.#watched.set(this.#gfn(gfn), 0);
  }

  /** Whether writes to `gfn` are reported. */
  isWatched(gfn: number): boolean {
    return this.#watched.get(this.#gfn(gfn)) === 1;
  }

  /**
   * Install the watcher (one per domain: the scheme virtualizing its MMU),
   * or remove it with `undefined`. Throws if another watcher is installed.
   */
  setWriteWatcher(watcher: WriteWatcher | undefined): void {
    if (watcher !== undefined && this.#watcher !== undefined) {
      throw new RangeError(
        `${this.name} already has a write watcher: remove it first`,
      );
    }
    this.#watcher = watcher;
  }

  #gfn(gfn: number): number {
    if (!Number.isInteger(gfn) || gfn < 0 || gfn * FRAME_SIZE >= this.size) {
      throw new RangeError(
        `gfn ${String(gfn)} is invalid for domain "${this.domain.name}": ` +
          `expected an integer in [0, ${this.size / FRAME_SIZE})`,
      );
    }
    return gfn;
  }

  /** Throw the error for a failed translation of `gpa`. */
  #fail(gpa: number, code: number): never {
    const d = this.domain;
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const problem = gpaProblem(code);
    const detail: Record<GpaProblem, string> = {
      "out-of-range": `is beyond the end of its guest-physical memory (size ${
        hexPhys(this.size)
      })`,
      "unbacked": d.backing === "xen"
        ? `has no memory behind it: gfn ${
          hexPhys(gfn)
        } has no P2M entry (never populated, or ballooned out)`
        : `has no memory behind it: no memslot covers gfn ${hexPhys(gfn)}`,
      "read-only": `is in a read-only memslot: the write would exit to the VMM`,
      "hva-unmapped":
        `is in a memslot whose host-virtual address is not mapped in the VMM process`,
      "destroyed": `belongs to a destroyed domain`,
      "host-oom": `could not be faulted in: the host is out of machine memory`,
      "not-owned":
        `translated to a machine frame the domain does not own (internal error: ownership check refused it)`,
    };
    throw new GuestMemoryError(d.name, gpa, problem, detail[problem]);
  }

  #checkRange(addr: number, bytes: number): void {
    if (
      !(addr >= 0 && addr + bytes <= this.size) || !Number.isInteger(addr)
    ) {
      if (!Number.isInteger(addr) || addr < 0) {
        throw new RangeError(
          `${this.name}: address ${
            String(addr)
          } is invalid: expected a non-negative integer`,
        );
      }
      this.#fail(addr, GPA_OUT_OF_RANGE);
    }
  }

  /** Machine address of `gpa` for an access (KVM: may fault the page in). */
  #hpa(gpa: number, write: boolean): number {
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const mfn = this.domain.mfnForAccess(gfn, write);
    if (mfn < 0) this.#fail(gpa, mfn);
    return mfn * FRAME_SIZE + (gpa - gfn * FRAME_SIZE);
  }

  /**
   * The machine address of `gpa` (for a write if `write`). Throws
   * {@linkcode GuestMemoryError} when nothing backs it. Under KVM the first
   * touch of a page faults it into the host page table.
   */
  translate(gpa: number, write = false): number {
    this.#checkRange(gpa, 1);
    return this.#hpa(gpa, write);
  }

  /** Read one byte. */
  read8(addr: number): number {
    this.#checkRange(addr, 1);
    return this.domain.host.memory.read8(this.#hpa(addr, false));
  }

  /** Read a little-endian 16-bit value. */
  read16(addr: number): number {
    this.#checkRange(addr, 2);
    if (addr - Math.floor(addr / FRAME_SIZE) * FRAME_SIZE > FRAME_SIZE - 2) {
      return this.read8(addr) | (this.read8(addr + 1) << 8);
    }
    return this.domain.host.memory.read16(this.#hpa(addr, false));
  }

  /** Read a little-endian unsigned 32-bit value. */
  read32(addr: number): number {
    // (addr % FRAME_SIZE via subtraction: addresses above 2^31 are doubles)
    if (addr >= 0 && addr + 4 <= this.size && Number.isInteger(addr)) {
      const gfn = Math.floor(addr / FRAME_SIZE);
      const off = addr - gfn * FRAME_SIZE;
      if (off <= FRAME_SIZE - 4) {
        const mfn = this.domain.mfnForAccess(gfn, false);
        if (mfn >= 0) {
          return this.domain.host.memory.read32(mfn * FRAME_SIZE + off);
        }
        this.#fail(addr, mfn);
      }
      return (this.read16(addr) | (this.read16(addr + 2) << 16)) >>> 0;
    }
    this.#checkRange(addr, 4);
    return 0; // unreachable
  }

  #write(addr: number, value: number, bytes: number, notify: boolean): void {
    this.#checkRange(addr, bytes);
    const off = addr - Math.floor(addr / FRAME_SIZE) * FRAME_SIZE;
    if (off + bytes > FRAME_SIZE) {
      // crosses a frame: byte by byte (each frame translated on its own)
      for (let i = 0; i < bytes; i++) {
        this.#write(addr + i, (value >>> (8 * i)) & 0xff, 1, notify);
      }
      return;
    }
    const m = this.domain.host.memory;
    const hpa = this.#hpa(addr, true);
    if (bytes === 1) m.write8(hpa, value);
    else if (bytes === 2) m.write16(hpa, value);
    else m.write32(hpa, value);
    if (notify) this.#report(addr, bytes);
  }

  #report(gpa: number, length: number): void {
    const w = this.#watcher;
    if (
      w !== undefined && this.#watched.get(Math.floor(gpa / FRAME_SIZE)) === 1
    ) {
      w(gpa, length);
    }
  }

  /** Write one byte (reported if the frame is watched). */
  write8(addr: number, value: number): void {
    this.#write(addr, value, 1, true);
  }

  /** Write a little-endian 16-bit value (reported if the frame is watched). */
  write16(addr: number, value: number): void {
    this.#write(addr, value, 2, true);
  }

  /** Write a little-endian 32-bit value (reported if the frame is watched). */
  write32(addr: number, value: number): void {
    this.#write(addr, value, 4, true);
  }

  /** Copy `length` bytes out, starting at `addr`. */
  readBytes(addr: number, length: number): Uint8Array {
    this.#checkRange(addr, length);
    const out = new Uint8Array(length);
    for (let i = 0; i < length;) {
      const a = addr + i;
      const off = a % FRAME_SIZE;
      const n = Math.min(FRAME_SIZE - off, length - i);
      out.set(this.domain.host.memory.readBytes(this.#hpa(a, false), n), i);
      i += n;
    }
    return out;
  }

  #writeBytes(addr: number, data: Uint8Array, notify: boolean): void {
    this.#checkRange(addr, data.length);
    for (let i = 0; i < data.length;) {
      const a = addr + i;
      const off = a % FRAME_SIZE;
      const n = Math.min(FRAME_SIZE - off, data.length - i);
      this.domain.host.memory.writeBytes(
        this.#hpa(a, true),
        data.subarray(i, i + n),
      );
      if (notify) this.#report(a, n);
      i += n;
    }
  }

  /** Copy `data` in, starting at `addr` (reported per watched frame). */
  writeBytes(addr: number, data: Uint8Array): void {
    this.#writeBytes(addr, data, true);
  }

  #zero(addr: number, length: number, notify: boolean): void {
    this.#checkRange(addr, length);
    for (let i = 0; i < length;) {
      const a = addr + i;
      const off = a % FRAME_SIZE;
      const n = Math.min(FRAME_SIZE - off, length - i);
      this.domain.host.memory.zero(this.#hpa(a, true), n);
      if (notify) this.#report(a, n);
      i += n;
    }
  }

  /** Zero `length` bytes at `addr` (reported per watched frame). */
  zero(addr: number, length: number): void {
    this.#zero(addr, length, true);
  }
}
