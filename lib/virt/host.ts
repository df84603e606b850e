/**
 * The host: a hypervisor that owns machine memory and hands it to domains.
 *
 * Machine memory is a {@linkcode PhysicalMemory} ("ma"/hpa space). Every
 * machine frame has one owner — free, the hypervisor itself (Xen's own
 * memory, or the host Linux kernel under KVM: its page tables, shadow page
 * pools), or one domain — kept in a compact per-frame table, together with
 * the global M2P (mfn → gfn, Xen's `machine_to_phys_mapping`, book ch. 4.2).
 *
 * Two hypervisors, chosen per host (a machine runs one of them):
 *
 * - `"xen"`: {@linkcode XenDomain}s own machine frames directly; each has a
 *   P2M (gfn → mfn) kept consistent with the M2P; ballooning gives frames
 *   back or takes more.
 * - `"kvm"`: {@linkcode KvmDomain}s are VMM processes whose guest memory is
 *   ordinary anonymous memory (the KVM paper, §3-2): memslots map gpa
 *   ranges to hva ranges, and the host's page table for the VMM (hva → hpa)
 *   is faulted in on first touch.
 *
 * Frame placement is seeded: `"scatter"` picks free frames at random (what
 * a long-running hypervisor's allocator looks like), `"contiguous"` takes
 * the lowest free frames.
 *
 * @module
 */

import { hexPhys } from "../address/address.ts";
import { type FrameSource, PhysicalMemory } from "../memory/memory.ts";
import { sizeName } from "../paging/record.ts";
import { Random } from "../util/random.ts";
import {
  FRAME_SIZE,
  FrameTable,
  INVALID_FRAME,
  OWNER_FREE,
  OWNER_HYPERVISOR,
} from "./frames.ts";
import {
  type Domain,
  type DomainOptions,
  KvmDomain,
  XenDomain,
} from "./domain.ts";
import { Rich } from "../view/display.ts";
import { hostToHtml, hostToText } from "../view/virt_html.ts";
import {
  type MachineBin,
  type P2mStripOptions,
  p2mStripSvg,
} from "../view/virt_svg.ts";

/**
 * Largest machine memory a host models (1 TiB).
 *
 * @example
 * ```ts
 * import { Host, MAX_HOST_MEMORY } from "./host.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => new Host({ memory: 2 * MAX_HOST_MEMORY }), /\[64 KiB, 1 TiB\]/);
 * ```
 */
export const MAX_HOST_MEMORY: number = 2 ** 40;
/**
 * Largest domain id.
 *
 * @example
 * ```ts
 * import { Host, MAX_DOMAIN_ID } from "./host.ts";
 * import assert from "node:assert/strict";
 * const d = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 4096 });
 * assert.ok(d.id >= 1 && d.id <= MAX_DOMAIN_ID);
 * ```
 */
export const MAX_DOMAIN_ID = 0x7ff0;

/**
 * Which hypervisor a host runs.
 *
 * @example
 * ```ts
 * import { Host, type HypervisorKind } from "./host.ts";
 * import assert from "node:assert/strict";
 * const kind: HypervisorKind = "kvm";
 * assert.equal(new Host({ hypervisor: kind, memory: 2 ** 20 }).hypervisor, "kvm");
 * ```
 */
export type HypervisorKind = "xen" | "kvm";

/**
 * Where new frames go: random free frames, or the lowest free ones.
 *
 * @example
 * ```ts
 * import { Host, type Placement } from "./host.ts";
 * import assert from "node:assert/strict";
 * const placement: Placement = "contiguous";
 * const vm = new Host({ memory: 8 * 2 ** 20 }).createDomain({ memory: 2 ** 20, placement });
 * assert.equal(vm.p2mRuns().length, 1);
 * ```
 */
export type Placement = "scatter" | "contiguous";

/**
 * Options for {@linkcode Host}.
 *
 * @example
 * ```ts
 * import { Host, type HostOptions } from "./host.ts";
 * import assert from "node:assert/strict";
 * const options: HostOptions<"xen"> = { memory: 2 ** 24, reserved: 2 ** 20, seed: 3, name: "box" };
 * const host = new Host(options);
 * assert.equal(host.frameCount, 4096);
 * assert.equal(host.freeFrames, 4096 - 256);
 * ```
 */
export interface HostOptions<K extends HypervisorKind = HypervisorKind> {
  /** Machine memory in bytes: a multiple of 4 KiB up to 1 TiB. Default 256 MiB. */
  memory?: number;
  /** The hypervisor: "xen" (default) or "kvm". */
  hypervisor?: K;
  /**
   * Bytes at the bottom of machine memory that the hypervisor keeps for
   * itself (Xen's heap and text; the host kernel under KVM). Default 1 MiB,
   * or 1/16 of memory if smaller.
   */
  reserved?: number;
  /** Seed of the frame placement. Default 1. */
  seed?: number;
  /** Name shown in displays. Default "host". */
  name?: string;
}

/**
 * Who owns a machine frame.
 *
 * @example
 * ```ts
 * import { type FrameOwner, Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const vm = host.createDomain({ memory: 4096 });
 * const owner: FrameOwner = host.ownerOf(vm.p2m(0)!);
 * assert.equal(owner.kind === "domain" && owner.domain, vm);
 * assert.deepEqual(host.ownerOf(0), { kind: "hypervisor", purpose: "Xen" });
 * ```
 */
export type FrameOwner =
  | { readonly kind: "free" }
  | { readonly kind: "hypervisor"; readonly purpose: string }
  | { readonly kind: "domain"; readonly domain: Domain };

/**
 * The domain class a host of kind `K` creates.
 *
 * @example
 * ```ts
 * import { type DomainOf, Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const vm: DomainOf<"kvm"> = new Host({ memory: 8 * 2 ** 20, hypervisor: "kvm" }).createDomain({ memory: 2 ** 20 });
 * assert.equal(vm.hostFaults, 0); // a KvmDomain: memslots, host faults
 * ```
 */
export type DomainOf<K extends HypervisorKind> = K extends "kvm" ? KvmDomain
  : K extends "xen" ? XenDomain
  : Domain;

/**
 * Options for {@linkcode Host.allocHypervisorFrame}.
 *
 * @example
 * ```ts
 * import { Host, type HypervisorFrameOptions } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const options: HypervisorFrameOptions = { purpose: "EPT", placement: "scatter" };
 * const mfn = host.allocHypervisorFrame(options);
 * assert.deepEqual(host.ownerOf(mfn), { kind: "hypervisor", purpose: "EPT" });
 * ```
 */
export interface HypervisorFrameOptions {
  /** What the frame is for, counted in displays (e.g. "shadow pages"). Default "hypervisor". */
  purpose?: string;
  /** Placement. Default "contiguous" (the hypervisor's own heap). */
  placement?: Placement;
}

/**
 * Counters of a {@linkcode Host}.
 *
 * @example
 * ```ts
 * import { Host, type HostCounters } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * host.createDomain({ memory: 2 ** 20 });
 * const c: HostCounters = host.counters;
 * assert.deepEqual(c, { framesAllocated: 256, framesFreed: 0, domainsCreated: 1 });
 * ```
 */
export interface HostCounters {
  /** Frames allocated since creation. */
  readonly framesAllocated: number;
  /** Frames freed since creation. */
  readonly framesFreed: number;
  /** Domains created. */
  readonly domainsCreated: number;
}

/**
 * One domain in a {@linkcode HostSnapshot}.
 *
 * @example
 * ```ts
 * import { Host, type HostDomainSummary } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * host.createDomain({ name: "a", memory: 2 ** 20, placement: "contiguous" });
 * const d: HostDomainSummary = host.snapshot().domains[0];
 * assert.deepEqual([d.name, d.backedFrames, d.runs], ["a", 256, 1]);
 * ```
 */
export interface HostDomainSummary {
  /** Domain id. */
  readonly id: number;
  /** Name. */
  readonly name: string;
  /** "xen" or "kvm". */
  readonly backing: HypervisorKind;
  /** Guest frames that have memory behind them (populated gfns; gfns in memslots). */
  readonly backedFrames: number;
  /** Machine frames the domain holds now. */
  readonly machineFrames: number;
  /** Maximal gfn → mfn runs (1 = perfectly contiguous). */
  readonly runs: number;
}

/**
 * Plain-data picture of a host for the views.
 *
 * @example
 * ```ts
 * import { Host, type HostSnapshot } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 8 * 2 ** 20 });
 * const s: HostSnapshot = host.snapshot(16);
 * assert.equal(s.bins.length, 16);
 * assert.equal(s.freeFrames, host.freeFrames);
 * ```
 */
export interface HostSnapshot {
  /** Name. */
  readonly name: string;
  /** Hypervisor kind. */
  readonly hypervisor: HypervisorKind;
  /** Machine frames in all. */
  readonly frames: number;
  /** Free frames. */
  readonly freeFrames: number;
  /** Frames the hypervisor keeps, by purpose. */
  readonly hypervisorFrames: Readonly<Record<string, number>>;
  /** Domains. */
  readonly domains: readonly HostDomainSummary[];
  /** Machine memory in bins for the strip picture. */
  readonly bins: readonly MachineBin[];
  /** Counters. */
  readonly counters: HostCounters;
}

/**
 * The privileged frame operations a host gives its domains (and only
 * them): allocate a frame for a domain, free it, and keep the M2P.
 * Obtained by domains from {@linkcode Host.createDomain}.
 *
 * @example
 * ```ts
 * import type { HostFrameAccess } from "./host.ts";
 * import assert from "node:assert/strict";
 * // handed to domains by Host.createDomain; nothing else can obtain it
 * const ops: (keyof HostFrameAccess)[] = ["alloc", "allocRun", "free", "setM2p"];
 * assert.equal(ops.length, 4);
 * ```
 */
export interface HostFrameAccess {
  /** Allocate a zeroed frame for `domainId`; -1 when machine memory is exhausted. */
  alloc(domainId: number, placement: Placement): number;
  /**
   * Allocate `count` consecutive zeroed frames for `domainId` (the first
   * free run long enough); returns the first mfn, or -1 if there is none.
   */
  allocRun(domainId: number, count: number): number;
  /** Free a frame `domainId` owns (throws if it does not own it). */
  free(mfn: number, domainId: number): void;
  /** Set the M2P entry of a frame `domainId` owns (INVALID_FRAME clears it). */
  setM2p(mfn: number, gfn: number, domainId: number): void;
  /** Allocate a zeroed frame for the hypervisor; -1 when exhausted. */
  allocHypervisor(purpose: string, placement: Placement): number;
  /** Free a hypervisor frame. */
  freeHypervisor(mfn: number): void;
}

/**
 * A machine with a hypervisor: machine memory, frame ownership, the M2P,
 * and the domains.
 *
 * @example A Xen host with two domains scattered over machine memory.
 * ```ts
 * import { Host } from "./host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 64 * 2 ** 20, seed: 7 });
 * const b = host.createDomain({ name: "db", memory: 4 * 2 ** 20, placement: "contiguous" });
 * const a = host.createDomain({ name: "web", memory: 8 * 2 ** 20 }); // scattered
 * assert.equal(a.backedFrames, 2048);
 * const mfn = a.p2m(100)!;                       // gfn 100 of "web"
 * assert.equal(host.m2p(mfn), 100);              // M2P agrees
 * assert.equal(host.ownerOf(mfn).kind, "domain");
 * assert.equal(b.p2mRuns().length, 1);           // contiguous: one run
 * assert.ok(a.p2mRuns().length > 1000);          // scattered: runs of a frame or two
 * assert.deepEqual(host.checkConsistency(), []);
 * assert.throws(() => host.createDomain({ memory: 1 << 30 }), /out of machine memory/);
 * ```
 */
export class Host<K extends HypervisorKind = "xen"> {
  /** Machine memory (host-physical addresses). */
  readonly memory: PhysicalMemory;
  /** The hypervisor. */
  readonly hypervisor: K;
  /** Name shown in displays. */
  readonly name: string;
  /** Machine frames in all. */
  readonly frameCount: number;
  /** Frames reserved for the hypervisor at the bottom of memory. */
  readonly reservedFrames: number;
  #owners: FrameTable;
  #m2p: FrameTable;
  #purpose = new Map<number, string>();
  #purposeCount = new Map<string, number>();
  #free: number;
  #lowHint: number;
  #rng: Random;
  #domains: Domain[] = [];
  #nextId = 1;
  #allocated = 0;
  #freed = 0;
  #created = 0;
  #access: HostFrameAccess;

  /** Create a host with empty machine memory (apart from the reserved part). */
  constructor(options: HostOptions<K> = {}) {
    const size = options.memory ?? 256 * 2 ** 20;
    if (
      !Number.isInteger(size) || size < 16 * FRAME_SIZE ||
      size > MAX_HOST_MEMORY || size % FRAME_SIZE !== 0
    ) {
      throw new RangeError(
        `host memory ${
          String(size)
        } is invalid: expected a multiple of 4096 bytes in [64 KiB, 1 TiB]`,
      );
    }
    const kind = (options.hypervisor ?? "xen") as K;
    if (kind !== "xen" && kind !== "kvm") {
      throw new RangeError(
        `hypervisor "${String(kind)}" is invalid: expected "xen" or "kvm"`,
      );
    }
    const reserved = options.reserved ?? Math.min(2 ** 20, size / 16);
    if (
      !Number.isInteger(reserved) || reserved < 0 ||
      reserved % FRAME_SIZE !== 0 || reserved >= size
    ) {
      throw new RangeError(
        `reserved ${
          String(reserved)
        } is invalid: expected a multiple of 4096 below the memory size ${
          hexPhys(size)
        }`,
      );
    }
    this.name = options.name ?? "host";
    this.hypervisor = kind;
    this.memory = new PhysicalMemory({ size, name: `${this.name} machine` });
    this.frameCount = size / FRAME_SIZE;
    this.reservedFrames = reserved / FRAME_SIZE;
    this.#owners = new FrameTable(this.frameCount, "frame owners", OWNER_FREE);
    this.#m2p = new FrameTable(this.frameCount, "M2P");
    this.#rng = new Random(options.seed ?? 1);
    this.#free = this.frameCount;
    this.#lowHint = 0;
    const label = kind === "xen" ? "Xen" : "host kernel";
    for (let i = 0; i < this.reservedFrames; i++) {
      this.#take(i, OWNER_HYPERVISOR);
      this.#setPurpose(i, label);
    }
    this.#allocated = 0;
    this.#access = {
      alloc: (id, placement) => this.#alloc(id, placement),
      allocRun: (id, count) => this.#allocRun(id, count),
      free: (mfn, id) => this.#release(mfn, id),
      setM2p: (mfn, gfn, id) => {
        this.#checkMfn(mfn);
        if (this.#owners.get(mfn) !== id) {
          throw new RangeError(
            `M2P update of mfn ${
              hexPhys(mfn)
            } refused: the frame is not owned by domain ${id}`,
          );
        }
        this.#m2p.set(mfn, gfn);
      },
      allocHypervisor: (purpose, placement) => {
        const mfn = this.#alloc(OWNER_HYPERVISOR, placement);
        if (mfn >= 0) this.#setPurpose(mfn, purpose);
        return mfn;
      },
      freeHypervisor: (mfn) => this.#release(mfn, OWNER_HYPERVISOR),
    };
  }

  /** Free machine frames. */
  get freeFrames(): number {
    return this.#free;
  }

  /** Live domains, in creation order. */
  get domains(): readonly Domain[] {
    return [...this.#domains];
  }

  /** Counters since creation. */
  get counters(): HostCounters {
    return {
      framesAllocated: this.#allocated,
      framesFreed: this.#freed,
      domainsCreated: this.#created,
    };
  }

  /** The domain with id `id`, if it is alive. */
  domain(id: number): Domain | undefined {
    return this.#domains.find((d) => d.id === id);
  }

  #setPurpose(mfn: number, purpose: string): void {
    this.#purpose.set(mfn, purpose);
    this.#purposeCount.set(
      purpose,
      (this.#purposeCount.get(purpose) ?? 0) + 1,
    );
  }

  #take(mfn: number, owner: number): void {
    this.#owners.set(mfn, owner);
    this.#free--;
    this.#allocated++;
  }

  #checkMfn(mfn: number): void {
    if (!Number.isInteger(mfn) || mfn < 0 || mfn >= this.frameCount) {
      throw new RangeError(
        `machine frame ${
          String(mfn)
        } is invalid: expected an integer in [0, ${this.frameCount}) (${
          sizeName(this.memory.size)
        } of machine memory)`,
      );
    }
  }

  #alloc(owner: number, placement: Placement): number {
    if (this.#free === 0) return -1;
    const o = this.#owners;
    let mfn: number;
    if (placement === "contiguous") {
      mfn = o.find(OWNER_FREE, this.#lowHint, this.frameCount);
      if (mfn < 0) mfn = o.find(OWNER_FREE, 0, this.#lowHint);
      this.#lowHint = mfn + 1;
    } else if (placement === "scatter") {
      const start = this.#rng.int(this.frameCount);
      mfn = o.find(OWNER_FREE, start, this.frameCount);
      if (mfn < 0) mfn = o.find(OWNER_FREE, 0, start);
    } else {
      throw new RangeError(
        `placement "${
          String(placement)
        }" is invalid: expected "scatter" or "contiguous"`,
      );
    }
    this.#take(mfn, owner);
    this.memory.zero(mfn * FRAME_SIZE, FRAME_SIZE); // Xen scrubs; Linux zeroes anonymous pages
    return mfn;
  }

  /**
   * A run of `count` free frames for `owner`, or -1. Like a buddy
   * allocator handing out 2 MiB extents (Xen populates HVM guests with
   * them), a run of 512 frames or more starts on a 512-frame boundary if
   * such a run is free, so that second-stage 2 MiB leaves can map it;
   * otherwise (and for shorter runs) the first free run that fits.
   */
  #allocRun(owner: number, count: number): number {
    if (!Number.isInteger(count) || count < 1 || count > this.#free) return -1;
    let m = count >= 512 ? this.#findRun(count, 512) : -1;
    if (m < 0) m = this.#findRun(count, 1);
    if (m < 0) return -1;
    for (let i = m; i < m + count; i++) {
      this.#take(i, owner);
      this.memory.zero(i * FRAME_SIZE, FRAME_SIZE);
    }
    return m;
  }

  /** The first start, a multiple of `align`, of `count` free frames, or -1. */
  #findRun(count: number, align: number): number {
    const o = this.#owners, n = this.frameCount;
    for (let m = o.find(OWNER_FREE, 0, n); m >= 0;) {
      // m starts a maximal free stretch; try its first aligned start
      const a = Math.ceil(m / align) * align;
      let k = m;
      while (k < n && k - a < count && o.get(k) === OWNER_FREE) k++;
      if (k - a >= count) return a;
      m = o.find(OWNER_FREE, k, n);
    }
    return -1;
  }

  #release(mfn: number, owner: number): void {
    this.#checkMfn(mfn);
    const o = this.#owners.get(mfn);
    if (o !== owner) {
      throw new RangeError(
        `cannot free machine frame ${hexPhys(mfn)}: it is ${
          this.#ownerText(o)
        }, not ${this.#ownerText(owner)}`,
      );
    }
    if (owner === OWNER_HYPERVISOR) {
      const p = this.#purpose.get(mfn);
      if (p !== undefined) {
        this.#purpose.delete(mfn);
        const n = (this.#purposeCount.get(p) ?? 1) - 1;
        if (n === 0) this.#purposeCount.delete(p);
        else this.#purposeCount.set(p, n);
      }
    }
    this.#owners.set(mfn, OWNER_FREE);
    this.#m2p.set(mfn, INVALID_FRAME);
    this.#free++;
    this.#freed++;
    if (mfn < this.#lowHint) this.#lowHint = mfn;
  }

  #ownerText(code: number): string {
    if (code === OWNER_FREE) return "free";
    if (code === OWNER_HYPERVISOR) return "owned by the hypervisor";
    const d = this.domain(code);
    return `owned by domain ${code}${d ? ` "${d.name}"` : ""}`;
  }

  /**
   * Owner code of machine frame `mfn` (hot path): {@linkcode OWNER_FREE},
   * {@linkcode OWNER_HYPERVISOR}, or a domain id.
   */
  ownerIdOf(mfn: number): number {
    return this.#owners.get(mfn);
  }

  /** Who owns machine frame `mfn`. Throws `RangeError` outside machine memory. */
  ownerOf(mfn: number): FrameOwner {
    this.#checkMfn(mfn);
    const o = this.#owners.get(mfn);
    if (o === OWNER_FREE) return { kind: "free" };
    if (o === OWNER_HYPERVISOR) {
      return {
        kind: "hypervisor",
        purpose: this.#purpose.get(mfn) ?? "hypervisor",
      };
    }
    const d = this.domain(o);
    if (d === undefined) {
      throw new Error(
        `internal: machine frame ${hexPhys(mfn)} owned by dead domain ${o}`,
      );
    }
    return { kind: "domain", domain: d };
  }

  /**
   * The M2P entry of `mfn`: the gfn the owning domain maps it at, or
   * `undefined` (free, hypervisor frame, or a KVM frame no memslot maps).
   * For Xen domains this is the global `machine_to_phys_mapping`; for KVM
   * domains it is derived from the VMM's hva and the memslots (Linux keeps
   * the reverse map, KVM the memslots).
   */
  m2p(mfn: number): number | undefined {
    this.#checkMfn(mfn);
    const o = this.#owners.get(mfn);
    if (o === OWNER_FREE || o === OWNER_HYPERVISOR) return undefined;
    const g = this.#m2p.get(mfn);
    if (g !== INVALID_FRAME) return g;
    return this.domain(o)?.reverseLookup(mfn);
  }

  /**
   * Create a domain with `memory` bytes of RAM: a {@linkcode XenDomain} on
   * a Xen host, a {@linkcode KvmDomain} on a KVM host. Throws `RangeError`
   * for bad sizes or when machine memory runs out (a Xen domain's memory is
   * allocated now; a KVM domain's lazily, on first touch).
   */
  createDomain(options: DomainOptions): DomainOf<K> {
    if (this.#nextId > MAX_DOMAIN_ID) {
      throw new RangeError(
        `cannot create a domain: all ${MAX_DOMAIN_ID} domain ids are used`,
      );
    }
    const id = this.#nextId;
    const d = this.hypervisor === "kvm"
      ? new KvmDomain(this as Host<HypervisorKind>, id, options, this.#access)
      : new XenDomain(this as Host<HypervisorKind>, id, options, this.#access);
    this.#nextId++;
    this.#domains.push(d);
    this.#created++;
    return d as DomainOf<K>;
  }

  /**
   * Destroy `domain`: its machine frames (and, under KVM, its VMM's host
   * page table) go back to the free pool.
   */
  destroyDomain(domain: Domain): void {
    const i = this.#domains.indexOf(domain);
    if (i < 0) {
      throw new RangeError(
        `domain ${String(domain?.id)} is not a live domain of ${this.name}`,
      );
    }
    domain.teardown();
    this.#domains.splice(i, 1);
  }

  /**
   * Allocate a zeroed machine frame that the hypervisor keeps (shadow page
   * tables, a host page table, its own data). Returns the mfn; throws
   * `RangeError` when machine memory is exhausted.
   */
  allocHypervisorFrame(options: HypervisorFrameOptions = {}): number {
    const mfn = this.#access.allocHypervisor(
      options.purpose ?? "hypervisor",
      options.placement ?? "contiguous",
    );
    if (mfn < 0) {
      throw new RangeError(
        `${this.name}: out of machine memory (all ${this.frameCount} frames are in use)`,
      );
    }
    return mfn;
  }

  /** Return a frame from {@linkcode Host.allocHypervisorFrame}. */
  freeHypervisorFrame(mfn: number): void {
    this.#access.freeHypervisor(mfn);
  }

  /**
   * A frame allocator over machine memory whose frames the hypervisor
   * owns, counted under `purpose`: what a `PageTable` in machine memory
   * needs (a VMM's host page table, shadow page tables, EPT tables).
   * Addresses are hpas.
   *
   * @example Shadow-like tables in machine memory.
   * ```ts
   * import { Host } from "./host.ts";
   * import { PageTable } from "../paging/builder.ts";
   * import assert from "node:assert/strict";
   * const host = new Host({ memory: 16 * 2 ** 20 });
   * const frames = host.frameSource("shadow pages");
   * const spt = new PageTable(host.memory, { allocator: frames });
   * spt.map(0x40_0000, 0x80_0000);
   * assert.equal(frames.allocatedCount, 4);
   * assert.equal(host.hypervisorFrames()["shadow pages"], 4);
   * frames.freeAll();
   * assert.equal(host.hypervisorFrames()["shadow pages"], undefined);
   * ```
   */
  frameSource(
    purpose: string,
    placement: Placement = "contiguous",
  ): HypervisorFrameSource {
    return new HypervisorFrameSource(
      this.memory,
      this.#access,
      purpose,
      placement,
    );
  }

  /** Hypervisor frames by purpose. */
  hypervisorFrames(): Record<string, number> {
    return Object.fromEntries(
      [...this.#purposeCount].sort((a, b) => a[0] < b[0] ? -1 : 1),
    );
  }

  /**
   * Check the invariants: every P2M entry names a frame its domain owns
   * whose M2P entry points back; every domain frame is reached by its
   * domain; free counts add up. Returns the violations (empty when all
   * hold).
   */
  checkConsistency(): string[] {
    const bad: string[] = [];
    const seen = new Map<number, number>(); // mfn -> domain id
    for (const d of this.#domains) {
      for (const [mfn, gfn] of d.frameMappings()) {
        const o = this.#owners.get(mfn);
        if (o !== d.id) {
          bad.push(
            `domain ${d.id} maps gfn ${hexPhys(gfn)} to mfn ${
              hexPhys(mfn)
            }, which is ${this.#ownerText(o)}`,
          );
        }
        if (seen.has(mfn)) {
          bad.push(
            `mfn ${hexPhys(mfn)} is reached by domain ${
              seen.get(mfn)
            } and ${d.id}`,
          );
        }
        seen.set(mfn, d.id);
        if (d.backing === "xen" && this.#m2p.get(mfn) !== gfn) {
          bad.push(
            `M2P of mfn ${hexPhys(mfn)} is ${
              this.#m2p.get(mfn) === INVALID_FRAME
                ? "invalid"
                : hexPhys(this.#m2p.get(mfn))
            } but domain ${d.id}'s P2M maps gfn ${hexPhys(gfn)} to it`,
          );
        }
      }
    }
    let free = 0;
    for (let mfn = 0; mfn < this.frameCount;) {
      // skip untouched chunks quickly: they are all free
      const next = this.#owners.find(OWNER_FREE, mfn, this.frameCount);
      const used = next < 0 ? this.frameCount - mfn : next - mfn;
      for (let m = mfn; m < mfn + used; m++) {
        const o = this.#owners.get(m);
        if (o !== OWNER_HYPERVISOR && !seen.has(m)) {
          bad.push(
            `mfn ${hexPhys(m)} is ${
              this.#ownerText(o)
            } but no mapping of it reaches it`,
          );
        }
        if (
          o !== OWNER_HYPERVISOR && o !== OWNER_FREE &&
          this.#m2p.get(m) !== INVALID_FRAME
        ) {
          const d = this.domain(o);
          if (d?.backing === "xen" && d.lookup(this.#m2p.get(m)) !== m) {
            bad.push(
              `M2P of mfn ${hexPhys(m)} says gfn ${
                hexPhys(this.#m2p.get(m))
              } but domain ${o}'s P2M disagrees`,
            );
          }
        }
      }
      if (next < 0) break;
      // count the run of free frames starting at next
      let m = next;
      while (m < this.frameCount && this.#owners.get(m) === OWNER_FREE) {
        if (this.#m2p.get(m) !== INVALID_FRAME) {
          bad.push(`free mfn ${hexPhys(m)} still has an M2P entry`);
        }
        m++;
        free++;
      }
      mfn = m;
    }
    if (free !== this.#free) {
      bad.push(`free count ${this.#free} but ${free} frames are free`);
    }
    return bad;
  }

  /**
   * Machine memory in at most `maxBins` equal bins (for the strip
   * picture): per bin, frames by owner code.
   */
  machineBins(maxBins = 256): MachineBin[] {
    if (!Number.isInteger(maxBins) || maxBins < 1) {
      throw new RangeError(
        `maxBins ${String(maxBins)} is invalid: expected a positive integer`,
      );
    }
    const per = Math.ceil(this.frameCount / maxBins);
    const bins: MachineBin[] = [];
    for (let start = 0; start < this.frameCount; start += per) {
      const count = Math.min(per, this.frameCount - start);
      const owners: Record<string, number> = {};
      let free = 0;
      for (let m = start; m < start + count;) {
        const next = this.#owners.find(OWNER_FREE, m, start + count);
        const end = next < 0 ? start + count : next;
        for (let k = m; k < end; k++) {
          const o = this.#owners.get(k);
          const key = o === OWNER_HYPERVISOR ? "hypervisor" : String(o);
          owners[key] = (owners[key] ?? 0) + 1;
        }
        if (next < 0) break;
        let k = next;
        while (k < start + count && this.#owners.get(k) === OWNER_FREE) k++;
        free += k - next;
        m = k;
      }
      bins.push({ firstMfn: start, frames: count, free, owners });
    }
    return bins;
  }

  /** Plain-data picture for the views. */
  snapshot(maxBins = 256): HostSnapshot {
    return {
      name: this.name,
      hypervisor: this.hypervisor,
      frames: this.frameCount,
      freeFrames: this.#free,
      hypervisorFrames: this.hypervisorFrames(),
      domains: this.#domains.map((d) => ({
        id: d.id,
        name: d.name,
        backing: d.backing,
        backedFrames: d.backedFrames,
        machineFrames: d.machineFrameCount,
        runs: d.p2mRuns().length,
      })),
      bins: this.machineBins(maxBins),
      counters: this.counters,
    };
  }

  /**
   * The P2M strip: machine memory coloured by owner, with each domain's
   * guest-physical space above it and lines from gfn runs to where they
   * live in machine memory. Bounded whatever the sizes.
   */
  p2mStrip(options: P2mStripOptions = {}): string {
    return p2mStripSvg(
      this.snapshot(options.maxBins ?? 256),
      this.#domains.map((d) => d.stripRow(options.maxLines ?? 200)),
      options,
    );
  }

  /**
   * The P2M strip as a displayable value (SVG plus a text summary): the
   * last expression of a notebook cell shows it.
   *
   * @example
   * ```ts
   * import { Host } from "./host.ts";
   * import assert from "node:assert/strict";
   * const host = new Host({ memory: 16 * 2 ** 20 });
   * host.createDomain({ name: "a", memory: 2 ** 20 });
   * const r = host.showP2m();
   * assert.deepEqual(r.mimeTypes, ["text/plain", "image/svg+xml"]);
   * assert.match(r.text, /a \(xen\): 256 gfns backed in \d+ run/);
   * ```
   */
  showP2m(options: P2mStripOptions = {}): Rich {
    const text = [
      `P2M strip of ${this.name}: ${this.frameCount} machine frames, ${this.#free} free`,
      ...this.#domains.map((d) =>
        `  ${d.name} (${d.backing}): ${d.backedFrames} gfns backed in ${d.p2mRuns().length} run(s)`
      ),
    ].join("\n");
    return Rich.svg(this.p2mStrip(options), text);
  }

  /** One-line summary. */
  toString(): string {
    return `${this.name} (${this.hypervisor}): ${
      sizeName(this.memory.size)
    } machine memory, ${this.#free} of ${this.frameCount} frames free, ${this.#domains.length} domain(s)`;
  }

  /** Jupyter rich display: the domains table and the P2M strip. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const s = this.snapshot();
    const rows = this.#domains.map((d) => d.stripRow(200));
    return {
      "text/plain": hostToText(s),
      "text/html": hostToHtml(s, rows),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return hostToText(this.snapshot());
  }
}

/**
 * Machine frames for the hypervisor's own tables, as a `FrameSource` (see
 * {@linkcode Host.frameSource}).
 */
export class HypervisorFrameSource implements FrameSource {
  /** Machine memory. */
  readonly memory: PhysicalMemory;
  /** 4096. */
  readonly frameSize: number = FRAME_SIZE;
  /** What the frames are counted as. */
  readonly purpose: string;
  #access: HostFrameAccess;
  #placement: Placement;
  #set = new Set<number>();

  /** Made by {@linkcode Host.frameSource}. */
  constructor(
    memory: PhysicalMemory,
    access: HostFrameAccess,
    purpose: string,
    placement: Placement,
  ) {
    this.memory = memory;
    this.#access = access;
    this.purpose = purpose;
    this.#placement = placement;
  }

  /** Frames held. */
  get allocatedCount(): number {
    return this.#set.size;
  }

  /** A zeroed machine frame (its hpa); `RangeError` when machine memory is exhausted. */
  alloc(): number {
    const mfn = this.#access.allocHypervisor(this.purpose, this.#placement);
    if (mfn < 0) {
      throw new RangeError(
        `${this.memory.name}: out of machine memory for a ${this.purpose} frame`,
      );
    }
    this.#set.add(mfn * FRAME_SIZE);
    return mfn * FRAME_SIZE;
  }

  /** Give back the frame at `hpa`. */
  free(hpa: number): void {
    if (!this.#set.delete(hpa)) {
      throw new RangeError(
        `${this.purpose} frame ${hexPhys(hpa)} is not allocated here`,
      );
    }
    this.#access.freeHypervisor(hpa / FRAME_SIZE);
  }

  /** Whether the frame at `hpa` is held. */
  isAllocated(hpa: number): boolean {
    return this.#set.has(hpa);
  }

  /** Give back every frame. */
  freeAll(): void {
    for (const a of [...this.#set]) this.free(a);
  }
}
