/**
 * Domains (virtual machines) and the two ways to back their memory.
 *
 * - {@linkcode XenDomain} (book ch. 4): the hypervisor gives the domain
 *   machine frames, possibly scattered; the domain's **P2M** maps each gfn
 *   to its mfn and the host's global **M2P** maps each mfn back, and the
 *   two are updated together. Ballooning (`XENMEM_decrease_reservation` /
 *   `XENMEM_populate_physmap`) returns frames to the hypervisor or takes
 *   more, P2M and M2P updated.
 * - {@linkcode KvmDomain} (the KVM paper, §3-2): the guest's memory is
 *   ordinary anonymous memory of the VMM process (QEMU `malloc`/`mmap`s it).
 *   **Memslots** map gpa ranges to hva ranges of the VMM; the host's own
 *   page table for the VMM (a `PageTable` in machine memory, hva → hpa) is
 *   filled lazily: the first touch of a page is a host page fault that
 *   allocates a machine frame (counted in `hostFaults`).
 *
 * Both implement one hot-path translation, {@linkcode Domain.mfnForAccess}
 * (gfn → mfn, or a negative `GPA_*` code), used by the domain's
 * {@linkcode GuestPhysicalMemory} and by the MMU virtualization schemes.
 * Whatever changes a gfn's translation (ballooning, memslot changes) is
 * announced to {@linkcode Domain.onP2mChange} listeners, so that a scheme
 * can drop what it cached (shadow entries, EPT entries) — KVM's
 * `kvm_arch_flush_shadow_memslot` and MMU notifiers.
 *
 * @module
 */

import { hexPhys } from "../address/address.ts";
import type { FrameSource, PhysicalMemory } from "../memory/memory.ts";
import { PageTable } from "../paging/builder.ts";
import { X86_64_4LEVEL } from "../paging/format.ts";
import { type PagingMode, pagingMode } from "../paging/mode.ts";
import { sizeName } from "../paging/record.ts";
import {
  ACCESS_USER,
  WALK_OK,
  walkInto,
  WalkScratch,
} from "../paging/walker.ts";
import {
  FRAME_SIZE,
  type FrameRun,
  FrameTable,
  INVALID_FRAME,
  runsOf,
} from "./frames.ts";
import {
  GPA_DESTROYED,
  GPA_HOST_OOM,
  GPA_HVA_UNMAPPED,
  GPA_NOT_OWNED,
  GPA_OUT_OF_RANGE,
  GPA_READ_ONLY,
  GPA_UNBACKED,
  GuestPhysicalMemory,
} from "./guest_memory.ts";
import type {
  Host,
  HostFrameAccess,
  HypervisorFrameSource,
  HypervisorKind,
  Placement,
} from "./host.ts";
import { domainToHtml, domainToText } from "../view/virt_html.ts";
import type { P2mStripRow } from "../view/virt_svg.ts";

/**
 * Largest guest-physical space a domain models (1 TiB).
 *
 * @example
 * ```ts
 * import { MAX_GUEST_MEMORY } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" });
 * assert.throws(() => host.createDomain({ memory: 2 * MAX_GUEST_MEMORY }), /up to 1 TiB/);
 * ```
 */
export const MAX_GUEST_MEMORY: number = 2 ** 40;
/**
 * Number of KVM memslot ids (KVM's `KVM_USER_MEM_SLOTS` is 509 or more; 512 here).
 *
 * @example
 * ```ts
 * import { MEMSLOT_IDS } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" }).createDomain({ memory: 2 ** 20, addressSpace: 2 ** 21 });
 * assert.throws(() => vm.addMemslot({ id: MEMSLOT_IDS, gpa: 2 ** 20, size: 4096 }), /memslot id 512/);
 * ```
 */
export const MEMSLOT_IDS = 512;
/**
 * Where the VMM's first guest-RAM mapping goes (a typical `mmap` address of a 64-bit process).
 *
 * @example
 * ```ts
 * import { VMM_RAM_BASE } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" }).createDomain({ memory: 2 ** 20 });
 * assert.equal(vm.memslots[0].hva, VMM_RAM_BASE);
 * ```
 */
export const VMM_RAM_BASE = 0x7f00_0000_0000;

/**
 * A memslot as given to {@linkcode KvmDomain.addMemslot}.
 *
 * @example
 * ```ts
 * import type { MemslotSpec } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" }).createDomain({ memory: 2 ** 20, addressSpace: 2 ** 21 });
 * const spec: MemslotSpec = { gpa: 2 ** 20, size: 0x10000, readonly: true };
 * assert.equal(vm.addMemslot(spec).id, 1);
 * ```
 */
export interface MemslotSpec {
  /** Slot id in [0, 512); default the lowest free id. */
  id?: number;
  /** First guest-physical address (4 KiB aligned). */
  gpa: number;
  /** Length in bytes (a positive multiple of 4 KiB). */
  size: number;
  /** First host-virtual address in the VMM (4 KiB aligned); default a new VMM mapping of `size` bytes. */
  hva?: number;
  /** KVM_MEM_READONLY: guest writes exit to the VMM (ROM). Default false. */
  readonly?: boolean;
}

/**
 * A memslot: gpa range → hva range of the VMM process.
 *
 * @example
 * ```ts
 * import type { Memslot } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" }).createDomain({ memory: 2 ** 20 });
 * const s: Memslot = vm.memslots[0];
 * assert.deepEqual([s.id, s.gpa, s.size, s.readonly], [0, 0, 2 ** 20, false]);
 * ```
 */
export interface Memslot {
  /** Slot id. */
  readonly id: number;
  /** First guest-physical address. */
  readonly gpa: number;
  /** Length in bytes. */
  readonly size: number;
  /** First host-virtual address. */
  readonly hva: number;
  /** Read-only slot. */
  readonly readonly: boolean;
}

/**
 * A mapping of the VMM process (anonymous memory for guest RAM).
 *
 * @example
 * ```ts
 * import type { VmmRegion } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" }).createDomain({ memory: 2 ** 20 });
 * const r: VmmRegion = vm.vmmRegions[0];
 * assert.equal(r.label, "guest RAM");
 * assert.equal(r.size, 2 ** 20);
 * ```
 */
export interface VmmRegion {
  /** First host-virtual address. */
  readonly hva: number;
  /** Length in bytes. */
  readonly size: number;
  /** What it holds. */
  readonly label: string;
}

/**
 * Options for {@linkcode Host.createDomain}.
 *
 * @example
 * ```ts
 * import type { DomainOptions } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const options: DomainOptions = { name: "db", memory: 2 ** 20, addressSpace: 2 ** 22, placement: "contiguous" };
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain(options);
 * assert.equal(vm.gfnCount, 1024);
 * assert.equal(vm.backedFrames, 256);
 * ```
 */
export interface DomainOptions {
  /** Name shown in displays and messages. Default "vm<id>". */
  name?: string;
  /** RAM in bytes (a positive multiple of 4 KiB). */
  memory: number;
  /**
   * Size of the guest-physical address space in bytes (gpas at or above it
   * are out of range). Default `memory`. A Xen domain can balloon up to it
   * (Xen's `maxmem`); a KVM domain's memslots must lie below it.
   */
  addressSpace?: number;
  /** Placement of the domain's machine frames. Default "scatter". */
  placement?: Placement;
  /** KVM only: the initial memslots. Default one slot mapping [0, memory) to a new VMM mapping. */
  memslots?: readonly MemslotSpec[];
}

/**
 * Called with a range of gfns whose translation changed.
 *
 * @example
 * ```ts
 * import type { P2mListener } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20 });
 * const changed: number[] = [];
 * const listener: P2mListener = (gfn, count) => changed.push(gfn, count);
 * const stop = vm.onP2mChange(listener);
 * vm.balloonOut([4]);
 * stop();
 * vm.balloonOut([5]);
 * assert.deepEqual(changed, [4, 1]);
 * ```
 */
export type P2mListener = (firstGfn: number, count: number) => void;

/**
 * Plain-data picture of a domain for the views.
 *
 * @example
 * ```ts
 * import type { DomainSnapshot } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20, placement: "contiguous" });
 * const s: DomainSnapshot = vm.snapshot();
 * assert.equal(s.runCount, 1);
 * assert.equal(s.runs[0].count, 256);
 * ```
 */
export interface DomainSnapshot {
  /** Id. */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** "xen" or "kvm". */
  readonly backing: HypervisorKind;
  /** Guest-physical space in bytes. */
  readonly addressSpace: number;
  /** Gfns with memory behind them. */
  readonly backedFrames: number;
  /** Machine frames held. */
  readonly machineFrames: number;
  /** Placement policy. */
  readonly placement: Placement;
  /** The first gfn → mfn runs (at most the requested number). */
  readonly runs: readonly FrameRun[];
  /** Number of runs in all. */
  readonly runCount: number;
  /** KVM: memslots with the pages of each that are resident. */
  readonly memslots?: readonly (Memslot & { readonly resident: number })[];
  /** KVM: the VMM's mappings. */
  readonly vmmRegions?: readonly VmmRegion[];
  /** KVM: host page faults taken on first touch. */
  readonly hostFaults?: number;
  /** KVM: frames of the VMM's host page table. */
  readonly hostTableFrames?: number;
}

/**
 * A domain: guest-physical memory backed by machine frames it owns. Create
 * with {@linkcode Host.createDomain}; the subclasses say how memory is
 * backed.
 *
 * @example
 * ```ts
 * import { Domain } from "./domain.ts";
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * for (const hypervisor of ["xen", "kvm"] as const) {
 *   const d: Domain = new Host({ memory: 8 * 2 ** 20, hypervisor }).createDomain({ memory: 2 ** 20 });
 *   assert.ok(d instanceof Domain);
 *   d.memory.write32(0x2000, 5);
 *   const mfn = d.mfnForAccess(2, false);
 *   assert.equal(d.host.memory.read32(mfn * 4096), 5);
 *   assert.equal(d.host.m2p(mfn), 2);
 * }
 * ```
 */
export abstract class Domain {
  /** The host. */
  readonly host: Host<HypervisorKind>;
  /** Domain id (1, 2, …). */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** Size of the guest-physical space in bytes. */
  readonly addressSpace: number;
  /** Number of gfns in the guest-physical space. */
  readonly gfnCount: number;
  /** Placement of machine frames. */
  readonly placement: Placement;
  /** The guest-physical memory view. */
  readonly memory: GuestPhysicalMemory;
  /** How memory is backed. */
  abstract readonly backing: HypervisorKind;
  /** Privileged frame operations from the host. */
  protected readonly frames: HostFrameAccess;
  #listeners: P2mListener[] = [];
  #destroyed = false;

  /** Validate the common options (called by the subclasses). */
  constructor(
    host: Host<HypervisorKind>,
    id: number,
    options: DomainOptions,
    frames: HostFrameAccess,
  ) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `domain options ${
          String(options)
        } are invalid: expected an object with a memory size`,
      );
    }
    const mem = options.memory;
    const what = options.name ? `domain "${options.name}"` : `domain ${id}`;
    if (
      !Number.isInteger(mem) || mem <= 0 || mem % FRAME_SIZE !== 0 ||
      mem > MAX_GUEST_MEMORY
    ) {
      throw new RangeError(
        `${what}: memory ${
          String(mem)
        } is invalid: expected a positive multiple of 4096 bytes up to 1 TiB`,
      );
    }
    const space = options.addressSpace ?? mem;
    if (
      !Number.isInteger(space) || space < mem || space % FRAME_SIZE !== 0 ||
      space > MAX_GUEST_MEMORY
    ) {
      throw new RangeError(
        `${what}: addressSpace ${
          String(space)
        } is invalid: expected a multiple of 4096 bytes, at least the memory size ${
          hexPhys(mem)
        } and at most 1 TiB`,
      );
    }
    const placement = options.placement ?? "scatter";
    if (placement !== "scatter" && placement !== "contiguous") {
      throw new RangeError(
        `${what}: placement "${
          String(placement)
        }" is invalid: expected "scatter" or "contiguous"`,
      );
    }
    this.host = host;
    this.id = id;
    this.name = options.name ?? `vm${id}`;
    this.addressSpace = space;
    this.gfnCount = space / FRAME_SIZE;
    this.placement = placement;
    this.frames = frames;
    this.memory = new GuestPhysicalMemory(this);
  }

  /** Whether the domain was destroyed. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Hot path: the mfn of `gfn` for an access (a write if `write`), or a
   * negative `GPA_*` code. Never an mfn the domain does not own. Under KVM
   * the first touch faults the page into the host page table.
   */
  abstract mfnForAccess(gfn: number, write: boolean): number;

  /** The mfn of `gfn` if it is resident now, else `undefined`; no side effects. */
  abstract lookup(gfn: number): number | undefined;

  /** Whether `gfn` has memory behind it (populated; in a memslot). */
  abstract isBacked(gfn: number): boolean;

  /** Gfns with memory behind them. */
  abstract get backedFrames(): number;

  /** Machine frames the domain holds now. */
  abstract get machineFrameCount(): number;

  /**
   * Every machine frame the domain holds, as `[mfn, gfn]` (gfn
   * {@linkcode INVALID_FRAME} for a KVM frame no memslot maps now).
   */
  abstract frameMappings(): Generator<[number, number]>;

  /** The gfn `mfn` is mapped at, if any. */
  abstract reverseLookup(mfn: number): number | undefined;

  /** Resident `[gfn, mfn]` pairs in gfn order. */
  abstract p2mPairs(): Iterable<[number, number]>;

  /** The ranges of gfns with memory behind them, as `[firstGfn, count]`. */
  abstract backedRanges(): [number, number][];

  /**
   * Give the frames behind `gfns` back to the host (balloon inflation). A
   * Xen domain's gfns become unbacked (P2M and M2P entries removed); a KVM
   * domain's stay in their memslots but lose their host page
   * (`MADV_DONTNEED`: the next touch faults in a zeroed page).
   */
  abstract balloonOut(gfns: readonly number[]): void;

  /**
   * Take memory for `gfns` again (balloon deflation). Xen populates them
   * with new (zeroed) frames; under KVM it is a no-op, since the pages come
   * back on first touch.
   */
  abstract balloonIn(gfns: readonly number[]): void;

  /** Free everything (called by `Host.destroyDomain`). */
  teardown(): void {
    this.#destroyed = true;
  }

  /**
   * Subscribe to translation changes (the gfn range whose gfn → mfn
   * mapping changed or vanished). Returns an unsubscribe function.
   */
  onP2mChange(listener: P2mListener): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** Tell listeners that `[firstGfn, firstGfn + count)` changed. */
  protected notify(firstGfn: number, count: number): void {
    for (const l of this.#listeners) l(firstGfn, count);
  }

  /** The gfn → mfn runs of the resident frames. */
  p2mRuns(): FrameRun[] {
    return runsOf(this.p2mPairs());
  }

  /**
   * The machine address of `gpa` (for a write if `write`), faulting the
   * page in under KVM. Throws {@linkcode GuestMemoryError} when nothing
   * backs it.
   */
  gpaToHpa(gpa: number, write = false): number {
    return this.memory.translate(gpa, write);
  }

  /** Check a gfn argument (RangeError naming it). */
  protected checkGfn(gfn: number, what = "gfn"): number {
    if (!Number.isInteger(gfn) || gfn < 0 || gfn >= this.gfnCount) {
      throw new RangeError(
        `domain "${this.name}": ${what} ${
          String(gfn)
        } is invalid: expected an integer in [0, ${this.gfnCount})`,
      );
    }
    return gfn;
  }

  /** Check a list of distinct gfns. */
  protected checkGfns(gfns: readonly number[]): number[] {
    if (!Array.isArray(gfns)) {
      throw new TypeError(
        `domain "${this.name}": gfns ${
          String(gfns)
        } is invalid: expected an array of gfns`,
      );
    }
    const seen = new Set<number>();
    for (const g of gfns) {
      this.checkGfn(g);
      if (seen.has(g)) {
        throw new RangeError(
          `domain "${this.name}": gfn ${hexPhys(g)} is listed twice`,
        );
      }
      seen.add(g);
    }
    return [...gfns];
  }

  /** Throw if destroyed. */
  protected checkAlive(): void {
    if (this.#destroyed) {
      throw new RangeError(`domain "${this.name}" (${this.id}) was destroyed`);
    }
  }

  /** Row data for the P2M strip picture (at most `maxLines` lines). */
  stripRow(maxLines = 200): P2mStripRow {
    const runs = this.p2mRuns();
    let shown: FrameRun[] = runs;
    let aggregated = false;
    if (runs.length > maxLines) {
      // one line per gfn bin: from the bin to the machine frame of its
      // first resident gfn, with the bin's resident count
      aggregated = true;
      const per = Math.ceil(this.gfnCount / Math.max(1, maxLines));
      const bins = new Map<
        number,
        { gfn: number; mfn: number; count: number }
      >();
      for (const r of runs) {
        for (let g = r.gfn; g < r.gfn + r.count;) {
          const b = Math.floor(g / per);
          const end = Math.min(r.gfn + r.count, (b + 1) * per);
          const cur = bins.get(b);
          if (cur === undefined) {
            bins.set(b, { gfn: g, mfn: r.mfn + (g - r.gfn), count: end - g });
          } else cur.count += end - g;
          g = end;
        }
      }
      shown = [...bins.values()];
    }
    return {
      id: this.id,
      name: this.name,
      backing: this.backing,
      gfnCount: this.gfnCount,
      backedRanges: this.backedRanges(),
      runs: shown,
      totalRuns: runs.length,
      aggregated,
    };
  }

  /** Plain-data picture for the views (at most `maxRuns` runs listed). */
  snapshot(maxRuns = 32): DomainSnapshot {
    const runs = this.p2mRuns();
    return {
      id: this.id,
      name: this.name,
      backing: this.backing,
      addressSpace: this.addressSpace,
      backedFrames: this.backedFrames,
      machineFrames: this.machineFrameCount,
      placement: this.placement,
      runs: runs.slice(0, maxRuns),
      runCount: runs.length,
      ...this.extraSnapshot(),
    };
  }

  /** Backing-specific snapshot fields. */
  protected extraSnapshot(): Partial<DomainSnapshot> {
    return {};
  }

  /** One-line summary. */
  toString(): string {
    return `domain ${this.id} "${this.name}" (${this.backing}): ${this.backedFrames} of ${this.gfnCount} gfns backed, ${this.machineFrameCount} machine frames${
      this.#destroyed ? " (destroyed)" : ""
    }`;
  }

  /** Jupyter rich display: the P2M summary and this domain's strip. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const s = this.snapshot();
    return {
      "text/plain": domainToText(s),
      "text/html": domainToHtml(s, this.host.snapshot(), this.stripRow()),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return domainToText(this.snapshot());
  }
}

/**
 * A Xen domain: machine frames allocated by the hypervisor, a P2M, and
 * ballooning.
 *
 * @example Ballooning keeps P2M and M2P consistent.
 * ```ts
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 2 ** 20, addressSpace: 2 ** 21 });
 * const free = host.freeFrames;
 * const mfn = vm.p2m(10)!;
 * vm.balloonOut([10, 11]);                  // the guest gives two frames back
 * assert.equal(vm.p2m(10), undefined);
 * assert.equal(host.m2p(mfn), undefined);
 * assert.equal(host.freeFrames, free + 2);
 * assert.throws(() => vm.memory.read8(10 * 4096), /no P2M entry/);
 * vm.balloonIn([10, 300]);                  // and takes two (300 was never populated)
 * assert.equal(host.m2p(vm.p2m(300)!), 300);
 * assert.deepEqual(host.checkConsistency(), []);
 * ```
 */
export class XenDomain extends Domain {
  /** "xen". */
  readonly backing = "xen" as const;
  #p2m: FrameTable;

  /** Created by {@linkcode Host.createDomain}: allocates the initial memory now. */
  constructor(
    host: Host<HypervisorKind>,
    id: number,
    options: DomainOptions,
    frames: HostFrameAccess,
  ) {
    super(host, id, options, frames);
    if (options.memslots !== undefined) {
      throw new RangeError(
        `domain "${this.name}": memslots are a KVM notion; a Xen domain has a P2M (drop the memslots option)`,
      );
    }
    this.#p2m = new FrameTable(this.gfnCount, `P2M of domain "${this.name}"`);
    const n = options.memory / FRAME_SIZE;
    if (n > host.freeFrames) {
      throw new RangeError(
        `cannot create domain "${this.name}" with ${
          sizeName(options.memory)
        }: out of machine memory (${host.freeFrames} frames free, ${n} needed)`,
      );
    }
    // contiguous placement: one run if machine memory has one (Xen's
    // allocator hands out large aligned extents when it can)
    const first = this.placement === "contiguous" ? frames.allocRun(id, n) : -1;
    for (let gfn = 0; gfn < n; gfn++) {
      if (first < 0) this.#populate(gfn);
      else {
        this.#p2m.set(gfn, first + gfn);
        this.frames.setM2p(first + gfn, gfn, this.id);
      }
    }
  }

  #populate(gfn: number): void {
    const mfn = this.frames.alloc(this.id, this.placement);
    if (mfn < 0) {
      throw new RangeError(
        `domain "${this.name}": out of machine memory populating gfn ${
          hexPhys(gfn)
        }`,
      );
    }
    this.#p2m.set(gfn, mfn);
    this.frames.setM2p(mfn, gfn, this.id);
  }

  /** The P2M entry of `gfn`: its mfn, or `undefined` if not populated. */
  p2m(gfn: number): number | undefined {
    this.checkGfn(gfn);
    const m = this.#p2m.get(gfn);
    return m === INVALID_FRAME ? undefined : m;
  }

  /** Hot path (see {@linkcode Domain.mfnForAccess}). */
  mfnForAccess(gfn: number, _write: boolean): number {
    if (!(gfn >= 0 && gfn < this.gfnCount)) return GPA_OUT_OF_RANGE;
    const mfn = this.#p2m.get(gfn);
    if (mfn === INVALID_FRAME) {
      return this.destroyed ? GPA_DESTROYED : GPA_UNBACKED;
    }
    // isolation: the P2M only names frames the domain owns; check anyway
    if (this.host.ownerIdOf(mfn) !== this.id) return GPA_NOT_OWNED;
    return mfn;
  }

  /** See {@linkcode Domain.lookup}. */
  lookup(gfn: number): number | undefined {
    if (!(Number.isInteger(gfn) && gfn >= 0 && gfn < this.gfnCount)) {
      return undefined;
    }
    const m = this.#p2m.get(gfn);
    return m === INVALID_FRAME ? undefined : m;
  }

  /** See {@linkcode Domain.isBacked}. */
  isBacked(gfn: number): boolean {
    return this.lookup(gfn) !== undefined;
  }

  /** Populated gfns (the current reservation). */
  get backedFrames(): number {
    return this.#p2m.count;
  }

  /** Machine frames held (= populated gfns). */
  get machineFrameCount(): number {
    return this.#p2m.count;
  }

  /** See {@linkcode Domain.frameMappings}. */
  *frameMappings(): Generator<[number, number]> {
    for (const [gfn, mfn] of this.#p2m.entries()) yield [mfn, gfn];
  }

  /** See {@linkcode Domain.reverseLookup}. */
  reverseLookup(mfn: number): number | undefined {
    for (const [gfn, m] of this.#p2m.entries()) if (m === mfn) return gfn;
    return undefined;
  }

  /** See {@linkcode Domain.p2mPairs}. */
  p2mPairs(): Iterable<[number, number]> {
    return this.#p2m.entries();
  }

  /** See {@linkcode Domain.backedRanges}. */
  backedRanges(): [number, number][] {
    return runsOf(
      [...this.#p2m.entries()].map(([g]) => [g, g] as [number, number]),
    ).map((r) => [r.gfn, r.count]);
  }

  /** `XENMEM_decrease_reservation`: see {@linkcode Domain.balloonOut}. */
  balloonOut(gfns: readonly number[]): void {
    this.checkAlive();
    const list = this.checkGfns(gfns);
    for (const g of list) {
      if (this.#p2m.get(g) === INVALID_FRAME) {
        throw new RangeError(
          `domain "${this.name}": cannot balloon out gfn ${
            hexPhys(g)
          }: it is not populated`,
        );
      }
    }
    for (const g of list) {
      const mfn = this.#p2m.get(g);
      this.#p2m.set(g, INVALID_FRAME);
      this.frames.free(mfn, this.id); // clears the M2P entry
      this.notify(g, 1);
    }
  }

  /** `XENMEM_populate_physmap`: see {@linkcode Domain.balloonIn}. */
  balloonIn(gfns: readonly number[]): void {
    this.checkAlive();
    const list = this.checkGfns(gfns);
    for (const g of list) {
      if (this.#p2m.get(g) !== INVALID_FRAME) {
        throw new RangeError(
          `domain "${this.name}": cannot populate gfn ${
            hexPhys(g)
          }: it is already populated`,
        );
      }
    }
    if (list.length > this.host.freeFrames) {
      throw new RangeError(
        `domain "${this.name}": cannot populate ${list.length} gfns: out of machine memory (${this.host.freeFrames} frames free)`,
      );
    }
    for (const g of list) {
      this.#populate(g);
      this.notify(g, 1);
    }
  }

  /**
   * Balloon to `frames` populated gfns: give back the highest populated
   * gfns, or populate the lowest unpopulated ones.
   */
  balloonTo(frames: number): void {
    if (!Number.isInteger(frames) || frames < 0 || frames > this.gfnCount) {
      throw new RangeError(
        `domain "${this.name}": balloon target ${
          String(frames)
        } is invalid: expected an integer in [0, ${this.gfnCount}]`,
      );
    }
    const have = this.#p2m.count;
    if (frames < have) {
      const gfns = [...this.#p2m.entries()].map(([g]) => g).slice(frames);
      this.balloonOut(gfns);
    } else if (frames > have) {
      const gfns: number[] = [];
      for (let g = 0; g < this.gfnCount && gfns.length < frames - have; g++) {
        if (this.#p2m.get(g) === INVALID_FRAME) gfns.push(g);
      }
      this.balloonIn(gfns);
    }
  }

  /** Free every frame (domain destruction). */
  override teardown(): void {
    for (const [gfn, mfn] of [...this.#p2m.entries()]) {
      this.#p2m.set(gfn, INVALID_FRAME);
      this.frames.free(mfn, this.id);
    }
    super.teardown();
    this.notify(0, this.gfnCount);
  }
}

interface Slot extends Memslot {
  readonly gfn: number;
  readonly count: number;
}

/**
 * A KVM domain: guest RAM is anonymous memory of the VMM process, mapped
 * into the guest by memslots, and faulted into the host's page table for
 * the VMM on first touch.
 *
 * @example Memslots, lazy host faults, and a moved slot keeping its data.
 * ```ts
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 32 * 2 ** 20, hypervisor: "kvm" });
 * const vm = host.createDomain({ memory: 2 ** 20, addressSpace: 2 ** 22 });
 * assert.equal(vm.machineFrameCount, 0);         // nothing touched yet
 * vm.memory.write32(0x3000, 42);                 // first touch: a host fault
 * vm.memory.read32(0x3004);                      // same page: no fault
 * assert.equal(vm.hostFaults, 1);
 * assert.equal(vm.hvaOf(0x3000), 0x7f00_0000_3000);
 * const rom = vm.addMemslot({ gpa: 0x200000, size: 0x10000, readonly: true });
 * assert.throws(() => vm.memory.write8(0x200000, 1), /read-only memslot/);
 * assert.throws(() => vm.addMemslot({ gpa: 0x208000, size: 0x1000 }), /overlaps memslot 1/);
 * vm.moveMemslot(0, 0x300000);                   // RAM now at 3 MiB
 * assert.equal(vm.memory.read32(0x303000), 42);  // same hva, same data
 * assert.throws(() => vm.memory.read8(0x3000), /no memslot covers/);
 * vm.removeMemslot(rom.id);
 * assert.deepEqual(host.checkConsistency(), []);
 * ```
 */
export class KvmDomain extends Domain {
  /** "kvm". */
  readonly backing = "kvm" as const;
  /** The host's page table for the VMM process (hva → hpa), in machine memory. */
  readonly vmmPageTable: PageTable<PhysicalMemory, FrameSource>;
  #tableFrames: HypervisorFrameSource;
  #slots: Slot[] = [];
  #lastSlot = -1;
  #regions: VmmRegion[] = [];
  #cache: FrameTable; // gfn -> mfn of resident pages seen (KVM's EPT/spte role)
  #rmap = new Map<number, number>(); // mfn -> hva
  #hostFaults = 0;
  #scratch = new WalkScratch();
  #mode: PagingMode;

  /** Created by {@linkcode Host.createDomain}. */
  constructor(
    host: Host<HypervisorKind>,
    id: number,
    options: DomainOptions,
    frames: HostFrameAccess,
  ) {
    super(host, id, options, frames);
    this.#mode = pagingMode(X86_64_4LEVEL);
    this.#tableFrames = host.frameSource("host page tables", "scatter");
    this.vmmPageTable = new PageTable<PhysicalMemory, FrameSource>(
      host.memory,
      { mode: this.#mode, allocator: this.#tableFrames },
    );
    this.#cache = new FrameTable(
      this.gfnCount,
      `gfn cache of domain "${this.name}"`,
    );
    const specs = options.memslots ??
      [{ id: 0, gpa: 0, size: options.memory }];
    for (const s of specs) this.addMemslot(s);
  }

  /** Host page faults taken (first touches of guest pages). */
  get hostFaults(): number {
    return this.#hostFaults;
  }

  /** The memslots, in gpa order. */
  get memslots(): readonly Memslot[] {
    return this.#slots.map(({ id, gpa, size, hva, readonly }) => ({
      id,
      gpa,
      size,
      hva,
      readonly,
    }));
  }

  /** The VMM's mappings for guest memory. */
  get vmmRegions(): readonly VmmRegion[] {
    return [...this.#regions];
  }

  /**
   * Map `size` bytes of anonymous memory into the VMM process (QEMU
   * allocating a RAM block); returns its hva. Nothing is allocated until
   * touched.
   */
  vmmMmap(size: number, label = "guest RAM"): number {
    if (!Number.isInteger(size) || size <= 0 || size % FRAME_SIZE !== 0) {
      throw new RangeError(
        `domain "${this.name}": VMM mapping size ${
          String(size)
        } is invalid: expected a positive multiple of 4096`,
      );
    }
    const last = this.#regions[this.#regions.length - 1];
    const align = 2 ** 21;
    const hva = last === undefined
      ? VMM_RAM_BASE
      : Math.ceil((last.hva + last.size + align) / align) * align;
    if (hva + size > 2 ** 47) {
      throw new RangeError(
        `domain "${this.name}": the VMM's address space is full`,
      );
    }
    this.#regions.push({ hva, size, label });
    return hva;
  }

  #checkSlotRange(spec: { gpa: number; size: number }, what: string): void {
    const { gpa, size } = spec;
    if (!Number.isInteger(gpa) || gpa < 0 || gpa % FRAME_SIZE !== 0) {
      throw new RangeError(
        `domain "${this.name}": ${what} gpa ${
          String(gpa)
        } is invalid: expected a non-negative multiple of 4096`,
      );
    }
    if (!Number.isInteger(size) || size <= 0 || size % FRAME_SIZE !== 0) {
      throw new RangeError(
        `domain "${this.name}": ${what} size ${
          String(size)
        } is invalid: expected a positive multiple of 4096`,
      );
    }
    if (gpa + size > this.addressSpace) {
      throw new RangeError(
        `domain "${this.name}": ${what} [${hexPhys(gpa)}, ${
          hexPhys(gpa + size)
        }) runs past the guest-physical space (size ${
          hexPhys(this.addressSpace)
        })`,
      );
    }
  }

  #overlap(gpa: number, size: number, except: number): Slot | undefined {
    return this.#slots.find((s) =>
      s.id !== except && gpa < s.gpa + s.size && s.gpa < gpa + size
    );
  }

  /**
   * `KVM_SET_USER_MEMORY_REGION` (create): map `[gpa, gpa + size)` to
   * `[hva, hva + size)` of the VMM. Throws `RangeError` for misalignment, a
   * used slot id, an hva range the VMM has not mapped, or overlap with
   * another slot (KVM's -EEXIST).
   */
  addMemslot(spec: MemslotSpec): Memslot {
    this.checkAlive();
    if (spec === null || typeof spec !== "object") {
      throw new TypeError(
        `domain "${this.name}": memslot ${
          String(spec)
        } is invalid: expected { gpa, size, hva?, id?, readonly? }`,
      );
    }
    this.#checkSlotRange(spec, "memslot");
    let id = spec.id;
    if (id === undefined) {
      id = 0;
      while (this.#slots.some((s) => s.id === id)) id++;
    }
    if (!Number.isInteger(id) || id < 0 || id >= MEMSLOT_IDS) {
      throw new RangeError(
        `domain "${this.name}": memslot id ${
          String(id)
        } is invalid: expected an integer in [0, ${MEMSLOT_IDS})`,
      );
    }
    if (this.#slots.some((s) => s.id === id)) {
      throw new RangeError(
        `domain "${this.name}": memslot ${id} already exists (remove or move it)`,
      );
    }
    const o = this.#overlap(spec.gpa, spec.size, -1);
    if (o !== undefined) {
      throw new RangeError(
        `domain "${this.name}": memslot [${hexPhys(spec.gpa)}, ${
          hexPhys(spec.gpa + spec.size)
        }) overlaps memslot ${o.id} [${hexPhys(o.gpa)}, ${
          hexPhys(o.gpa + o.size)
        })`,
      );
    }
    let hva = spec.hva;
    if (hva === undefined) hva = this.vmmMmap(spec.size);
    else if (
      !Number.isInteger(hva) || hva < 0 || hva % FRAME_SIZE !== 0 ||
      !this.#regions.some((r) =>
        r.hva <= hva! && hva! + spec.size <= r.hva + r.size
      )
    ) {
      throw new RangeError(
        `domain "${this.name}": memslot hva ${
          Number.isInteger(hva) ? hexPhys(hva) : String(hva)
        } is invalid: expected a 4 KiB-aligned range of ${
          hexPhys(spec.size)
        } bytes inside one VMM mapping (see vmmMmap)`,
      );
    }
    const slot: Slot = {
      id,
      gpa: spec.gpa,
      size: spec.size,
      hva,
      readonly: spec.readonly ?? false,
      gfn: spec.gpa / FRAME_SIZE,
      count: spec.size / FRAME_SIZE,
    };
    this.#slots.push(slot);
    this.#slots.sort((a, b) => a.gpa - b.gpa);
    this.#lastSlot = -1;
    this.#dropCache(slot.gfn, slot.count);
    this.notify(slot.gfn, slot.count);
    return this.memslots.find((s) => s.id === id)!;
  }

  #slotById(id: number): Slot {
    const s = this.#slots.find((x) => x.id === id);
    if (s === undefined) {
      throw new RangeError(
        `domain "${this.name}": memslot ${String(id)} does not exist (slots: ${
          this.#slots.map((x) => x.id).join(", ") || "none"
        })`,
      );
    }
    return s;
  }

  /**
   * `KVM_SET_USER_MEMORY_REGION` with size 0: delete slot `id`. Its gpas
   * become unbacked; the VMM keeps its memory (and any data in it).
   */
  removeMemslot(id: number): void {
    this.checkAlive();
    const s = this.#slotById(id);
    this.#slots = this.#slots.filter((x) => x !== s);
    this.#lastSlot = -1;
    this.#dropCache(s.gfn, s.count);
    this.notify(s.gfn, s.count);
  }

  /**
   * `KVM_MR_MOVE`: give slot `id` a new base gpa, same size and hva (so
   * the guest sees the same data at the new place).
   */
  moveMemslot(id: number, gpa: number): Memslot {
    this.checkAlive();
    const s = this.#slotById(id);
    this.#checkSlotRange({ gpa, size: s.size }, `memslot ${id} move target`);
    const o = this.#overlap(gpa, s.size, id);
    if (o !== undefined) {
      throw new RangeError(
        `domain "${this.name}": cannot move memslot ${id} to ${
          hexPhys(gpa)
        }: it would overlap memslot ${o.id} [${hexPhys(o.gpa)}, ${
          hexPhys(o.gpa + o.size)
        })`,
      );
    }
    const moved: Slot = { ...s, gpa, gfn: gpa / FRAME_SIZE };
    this.#slots = this.#slots.map((x) => x === s ? moved : x);
    this.#slots.sort((a, b) => a.gpa - b.gpa);
    this.#lastSlot = -1;
    this.#dropCache(s.gfn, s.count);
    this.#dropCache(moved.gfn, moved.count);
    this.notify(s.gfn, s.count);
    this.notify(moved.gfn, moved.count);
    return this.memslots.find((x) => x.id === id)!;
  }

  #dropCache(gfn: number, count: number): void {
    for (const [g] of [...this.#cache.entries(gfn, gfn + count)]) {
      this.#cache.set(g, INVALID_FRAME);
    }
  }

  #slotFor(gfn: number): Slot | undefined {
    const slots = this.#slots;
    const last = this.#lastSlot;
    if (last >= 0) {
      const s = slots[last];
      if (gfn >= s.gfn && gfn < s.gfn + s.count) return s;
    }
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i];
      if (gfn >= s.gfn && gfn < s.gfn + s.count) {
        this.#lastSlot = i;
        return s;
      }
    }
    return undefined;
  }

  /** The VMM hva behind `gpa`, or `undefined` if no memslot covers it. */
  hvaOf(gpa: number): number | undefined {
    if (!Number.isInteger(gpa) || gpa < 0 || gpa >= this.addressSpace) {
      throw new RangeError(
        `domain "${this.name}": gpa ${
          String(gpa)
        } is invalid: expected an integer in [0, ${
          hexPhys(this.addressSpace)
        })`,
      );
    }
    const gfn = Math.floor(gpa / FRAME_SIZE);
    const s = this.#slotFor(gfn);
    return s === undefined ? undefined : s.hva + (gpa - s.gpa);
  }

  /** The host mapping of the page at `hva`: its mfn, or -1. */
  #hostLookup(hva: number): number {
    const hi = Math.floor(hva / 4294967296), lo = hva >>> 0;
    const r = walkInto(
      this.#scratch,
      this.#mode,
      this.host.memory,
      this.vmmPageTable.root,
      hi,
      lo,
      ACCESS_USER,
      0,
      0,
      0,
      7,
      false,
    );
    return r === WALK_OK ? Math.floor(this.#scratch.pa / FRAME_SIZE) : -1;
  }

  /** Hot path (see {@linkcode Domain.mfnForAccess}). */
  mfnForAccess(gfn: number, write: boolean): number {
    if (!(gfn >= 0 && gfn < this.gfnCount)) return GPA_OUT_OF_RANGE;
    const s = this.#slotFor(gfn);
    if (s === undefined) return this.destroyed ? GPA_DESTROYED : GPA_UNBACKED;
    if (write && s.readonly) return GPA_READ_ONLY;
    let mfn = this.#cache.get(gfn);
    if (mfn === INVALID_FRAME) {
      const hva = s.hva + (gfn - s.gfn) * FRAME_SIZE;
      mfn = this.#hostLookup(hva);
      if (mfn < 0) mfn = this.#hostFault(hva);
      if (mfn < 0) return mfn;
      this.#cache.set(gfn, mfn);
    }
    if (this.host.ownerIdOf(mfn) !== this.id) return GPA_NOT_OWNED;
    return mfn;
  }

  /** Linux's anonymous-page fault for the VMM: allocate, zero, map. */
  #hostFault(hva: number): number {
    if (!this.#regions.some((r) => r.hva <= hva && hva < r.hva + r.size)) {
      return GPA_HVA_UNMAPPED;
    }
    const mfn = this.frames.alloc(this.id, this.placement);
    if (mfn < 0) return GPA_HOST_OOM;
    try {
      this.vmmPageTable.map(hva, mfn * FRAME_SIZE, {
        user: true,
        writable: true,
        executable: false,
      });
    } catch (e) {
      this.frames.free(mfn, this.id);
      if (e instanceof RangeError && /out of machine memory/.test(e.message)) {
        return GPA_HOST_OOM;
      }
      throw e;
    }
    this.#rmap.set(mfn, hva);
    this.#hostFaults++;
    return mfn;
  }

  /** See {@linkcode Domain.lookup} (a resident page only: never faults). */
  lookup(gfn: number): number | undefined {
    if (!(Number.isInteger(gfn) && gfn >= 0 && gfn < this.gfnCount)) {
      return undefined;
    }
    const s = this.#slotFor(gfn);
    if (s === undefined) return undefined;
    const c = this.#cache.get(gfn);
    if (c !== INVALID_FRAME) return c;
    const m = this.#hostLookup(s.hva + (gfn - s.gfn) * FRAME_SIZE);
    return m < 0 ? undefined : m;
  }

  /** See {@linkcode Domain.isBacked}. */
  isBacked(gfn: number): boolean {
    return Number.isInteger(gfn) && gfn >= 0 && gfn < this.gfnCount &&
      this.#slotFor(gfn) !== undefined;
  }

  /** Gfns covered by memslots. */
  get backedFrames(): number {
    return this.#slots.reduce((n, s) => n + s.count, 0);
  }

  /** Guest pages resident in machine memory (faulted in, not released). */
  get machineFrameCount(): number {
    return this.#rmap.size;
  }

  #gfnOfHva(hva: number): number {
    for (const s of this.#slots) {
      if (hva >= s.hva && hva < s.hva + s.size) {
        return s.gfn + Math.floor((hva - s.hva) / FRAME_SIZE);
      }
    }
    return INVALID_FRAME;
  }

  /** See {@linkcode Domain.frameMappings}. */
  *frameMappings(): Generator<[number, number]> {
    for (const [mfn, hva] of [...this.#rmap]) {
      yield [mfn, this.#gfnOfHva(hva)];
    }
  }

  /** See {@linkcode Domain.reverseLookup}. */
  reverseLookup(mfn: number): number | undefined {
    const hva = this.#rmap.get(mfn);
    if (hva === undefined) return undefined;
    const g = this.#gfnOfHva(hva);
    return g === INVALID_FRAME ? undefined : g;
  }

  /** See {@linkcode Domain.p2mPairs}. */
  p2mPairs(): Iterable<[number, number]> {
    const out: [number, number][] = [];
    for (const [mfn, gfn] of this.frameMappings()) {
      if (gfn !== INVALID_FRAME) out.push([gfn, mfn]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  /** See {@linkcode Domain.backedRanges}. */
  backedRanges(): [number, number][] {
    return this.#slots.map((s) => [s.gfn, s.count]);
  }

  /**
   * virtio-balloon inflation: `MADV_DONTNEED` on the hvas behind `gfns`.
   * Resident pages are unmapped from the host page table and freed; the
   * gfns stay in their memslots (next touch: a new zeroed page).
   */
  balloonOut(gfns: readonly number[]): void {
    this.checkAlive();
    const list = this.checkGfns(gfns);
    for (const g of list) {
      if (this.#slotFor(g) === undefined) {
        throw new RangeError(
          `domain "${this.name}": cannot balloon out gfn ${
            hexPhys(g)
          }: no memslot covers it`,
        );
      }
    }
    for (const g of list) {
      const s = this.#slotFor(g)!;
      const hva = s.hva + (g - s.gfn) * FRAME_SIZE;
      const mfn = this.#hostLookup(hva);
      this.#cache.set(g, INVALID_FRAME);
      if (mfn >= 0) {
        this.vmmPageTable.unmap(hva);
        this.#rmap.delete(mfn);
        this.frames.free(mfn, this.id);
        // another gfn may alias the same hva through a second slot
        for (const [gx, m] of [...this.#cache.entries()]) {
          if (m === mfn) this.#cache.set(gx, INVALID_FRAME);
        }
      }
      this.notify(g, 1);
    }
  }

  /** virtio-balloon deflation: nothing to do until the pages are touched. */
  balloonIn(gfns: readonly number[]): void {
    this.checkAlive();
    this.checkGfns(gfns);
  }

  /** Free every frame and the host page table (the VMM exits). */
  override teardown(): void {
    for (const mfn of [...this.#rmap.keys()]) {
      this.#rmap.delete(mfn);
      this.frames.free(mfn, this.id);
    }
    this.#tableFrames.freeAll();
    this.#slots = [];
    this.#lastSlot = -1;
    for (const [g] of [...this.#cache.entries()]) {
      this.#cache.set(g, INVALID_FRAME);
    }
    super.teardown();
    this.notify(0, this.gfnCount);
  }

  /** KVM fields of the snapshot. */
  protected override extraSnapshot(): Partial<DomainSnapshot> {
    const resident = new Map<number, number>();
    for (const [, gfn] of this.frameMappings()) {
      const s = this.#slotFor(gfn);
      if (s) resident.set(s.id, (resident.get(s.id) ?? 0) + 1);
    }
    return {
      memslots: this.memslots.map((s) => ({
        ...s,
        resident: resident.get(s.id) ?? 0,
      })),
      vmmRegions: this.vmmRegions,
      hostFaults: this.#hostFaults,
      hostTableFrames: this.#tableFrames.allocatedCount,
    };
  }
}
