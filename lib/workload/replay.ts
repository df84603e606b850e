/**
 * Trace replay: drive a stream of memory accesses (a Lackey trace, or any
 * {@linkcode AccessBatch}) through the model end to end and count what the
 * translation hardware did.
 *
 * Two machines:
 *
 * - **native** ({@linkcode NativeReplay}): a {@linkcode Cpu} (TLB,
 *   paging-structure caches, the one walker) over x86-64 4- or 5-level
 *   tables in a {@linkcode PhysicalMemory};
 * - **nested** ({@linkcode NestedReplay}): a TLB caching gva → hpa in front
 *   of a {@linkcode NestedWalker} (2-D walk through EPT or NPT, with the
 *   guest paging-structure cache, nested TLB and host paging-structure
 *   cache of Bhargava et al. when enabled), guest tables in guest-physical
 *   memory backed by host memory.
 *
 * Tables are filled on first touch (demand paging): an access to an
 * unmapped page takes a #PF (native, guest) or an EPT violation / #NPF
 * (host dimension); the model's "OS" or "hypervisor" maps the page to a
 * fresh frame and the access restarts, as after a real fault, so the
 * faulting attempt's TLB miss and walk are counted too. Every page is
 * mapped user, writable and executable, so nothing else faults.
 *
 * How a Lackey record becomes translations: `I` is a user instruction
 * fetch, `L` a user read, `S` a user write, `M` (modify) one user write —
 * a read-modify-write instruction translates once with write intent (SDM
 * Vol. 3 §4.8 sets D on it) and the load then uses the same translation.
 * An access whose bytes span two pages translates both pages (counted in
 * `pageCrossings`).
 *
 * Not modelled: the cost of first-touch faults and VM exits is counted, not
 * simulated (no handler code, no exit/entry latency, no frame zeroing);
 * data caches and the data access itself; the frame a page gets (frames
 * are handed out in order; the host backs guest-physical memory at a
 * constant offset, like one KVM memslot); one address space (PCID/VPID 0,
 * no context switches, no invalidations); in nested replay the front TLB
 * entry's page size is the smaller of the guest and host page sizes and
 * its dirty flag is the guest leaf's (a host 2 MiB page is written only
 * through the guest pages in it).
 *
 * Hot path: the per-access loop allocates nothing and uses no BigInt;
 * allocation happens only on first touch (mapping) and per batch.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { Cpu } from "../cpu/cpu.ts";
import {
  FrameAllocator,
  type Memory,
  PhysicalMemory,
} from "../memory/memory.ts";
import { PageTable } from "../paging/builder.ts";
import {
  EPT_4LEVEL,
  EPT_5LEVEL,
  eptMap,
  eptMode,
  nptMode,
} from "../paging/ept.ts";
import { X86_64_4LEVEL, X86_64_5LEVEL } from "../paging/format.ts";
import { pagingMode } from "../paging/mode.ts";
import {
  ACCESS_FETCH,
  ACCESS_USER,
  ACCESS_WRITE,
  Reason,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  WalkScratch,
} from "../paging/walker.ts";
import type { PscOptions } from "../tlb/psc.ts";
import { Tlb, type TlbOptions } from "../tlb/tlb.ts";
import {
  NESTED_EPT_VIOLATION,
  NESTED_GUEST_GP,
  NESTED_GUEST_PF,
  NESTED_NPF,
  NESTED_OK,
  NestedWalker,
  type NestedWalkerOptions,
  SKIP_GUEST_PSC,
  SKIP_HOST_PSC,
  SKIP_NTLB,
} from "../virt/nested/walk.ts";
import {
  type AccessBatch,
  lackeyBatchesWithLines,
  type TraceSource,
} from "./trace.ts";
import {
  type ProgressReporter,
  progressReporter,
  type ProgressUpdate,
} from "./progress.ts";

/** Page sizes a replay supports: 4 KiB or 2 MiB. */
export type ReplayPageSize = 4096 | 2097152;

/** Access flags by Lackey kind: I, L, S, M. */
const FLAGS = new Int32Array([
  ACCESS_FETCH | ACCESS_USER,
  ACCESS_USER,
  ACCESS_WRITE | ACCESS_USER,
  ACCESS_WRITE | ACCESS_USER,
]);

/** Where tables live: below 2^36. Data frames start at 2^40. */
const TABLE_END = 2 ** 36;
const DATA_BASE = 2 ** 40;
/** Nested: host backs gpa at hpa = gpa + GUEST_OFFSET. */
const GUEST_OFFSET = 2 ** 40;
/** Nested: guest tables in gpa [0, 2^32), guest data frames from 2^32. */
const GUEST_TABLE_END = 2 ** 32;
const GUEST_DATA_BASE = 2 ** 32;
const GUEST_SIZE = 2 ** 40;

/** Options common to both machines. */
export interface ReplayCommonOptions {
  /** Paging levels (of the guest, when nested): 4 or 5. Default 4. */
  levels?: 4 | 5;
  /** The (front) TLB. Default 64 entries, 4 ways, LRU, unified. */
  tlb?: TlbOptions;
}

/** Options for {@linkcode NativeReplay}. */
export interface NativeReplayOptions extends ReplayCommonOptions {
  /** Page size mapped on first touch. Default 4096. */
  pageSize?: ReplayPageSize;
  /** Paging-structure caches (sizes per level), or false for none. Default the Cpu's (PDE 32, PDPTE 4, PML4E 2, PML5E 2). */
  psc?: PscOptions | false;
}

/** Options for {@linkcode NestedReplay}. */
export interface NestedReplayOptions extends ReplayCommonOptions {
  /** Second stage: Intel EPT or AMD NPT. Default "ept". */
  stage?: "ept" | "npt";
  /** Second-stage levels: 4 or 5. Default 4. */
  hostLevels?: 4 | 5;
  /** Guest page size (guest tables). Default 4096. */
  guestPageSize?: ReplayPageSize;
  /** Host page size (EPT/NPT leaves). Default 4096. */
  hostPageSize?: ReplayPageSize;
  /**
   * Walk caches, or false for none. Default: guest PSC 32 entries, nested
   * TLB 64 entries, host PSC 32 entries (4 ways each).
   */
  caches?: NestedWalkerOptions | false;
}

/** Default walk caches of nested replay. */
const DEFAULT_CACHES: NestedWalkerOptions = {
  guestPsc: { entries: 32 },
  nestedTlb: { entries: 64 },
  hostPsc: { entries: 32 },
};

/** Counts of a replay. Plain data. */
export interface ReplayResult {
  /** "native" or "nested". */
  machine: "native" | "nested";
  /** Configuration in words, e.g. "4-level, 4 KiB pages, TLB 64×4". */
  config: string;
  /** Trace records replayed (I + L + S + M). */
  accesses: number;
  /** Instruction fetches. */
  fetches: number;
  /** Loads. */
  loads: number;
  /** Stores. */
  stores: number;
  /** Modifies (one write translation each). */
  modifies: number;
  /** Records whose bytes span two pages (each translates twice). */
  pageCrossings: number;
  /** Translations requested, including page-crossing halves and restarts after faults. */
  translations: number;
  /** Translations served by the (front) TLB. */
  tlbHits: number;
  /** Translations not served by the TLB (includes dirty re-walks). */
  tlbMisses: number;
  /** Writes that hit a clean TLB entry and re-walked to set D. */
  dirtyRewalks: number;
  /** Page walks (native walks or 2-D walks), including faulting ones. */
  walks: number;
  /** Memory references made by walks to read paging structures (2-D: guest entries plus second-stage entries). */
  walkRefs: number;
  /** Nested: guest paging-structure entries read (0 natively). */
  guestRefs: number;
  /** Nested: second-stage entries read (0 natively). */
  hostRefs: number;
  /** Nested: guest A/D-bit writes recorded by walks (natively not counted as references). */
  adWrites: number;
  /** walkRefs / walks (0 without walks). */
  refsPerWalk: number;
  /** Cache hits: native `psc`; nested `guestPsc`, `nestedTlb`, `hostPsc` (lookups that hit). */
  cacheHits: Record<string, number>;
  /** Nested: references skipped by each cache. */
  skippedRefs: Record<string, number>;
  /** First-touch faults serviced (native #PF; nested guest #PF). */
  firstTouchFaults: number;
  /** Nested: second-stage faults serviced (EPT violations or #NPF) (0 natively). */
  hostFaults: number;
  /** Distinct pages mapped (= first-touch faults), at the (guest) page size. */
  pagesTouched: number;
  /** Accesses skipped with #GP (non-canonical addresses). */
  generalProtection: number;
  /** Wall time in milliseconds (parse + translate when replaying a trace). */
  elapsedMs: number;
  /** accesses / elapsed seconds. */
  accessesPerSecond: number;
  /** What the replay does not model. */
  notModelled: string[];
}

const NOT_MODELLED_COMMON = [
  "first-touch fault cost: counted, not simulated (no handler, no frame zeroing)",
  "data caches and the data access itself",
  "one address space: no context switches, no invalidations",
];

function checkPageSize(name: string, v: number | undefined): number {
  const s = v ?? 4096;
  if (s !== 4096 && s !== 2097152) {
    throw new RangeError(
      `${name} ${
        String(s)
      } is invalid: expected 4096 (4 KiB) or 2097152 (2 MiB)`,
    );
  }
  return s;
}

function checkLevels(name: string, v: number | undefined): 4 | 5 {
  const l = v ?? 4;
  if (l !== 4 && l !== 5) {
    throw new RangeError(`${name} ${String(l)} is invalid: expected 4 or 5`);
  }
  return l;
}

function tlbText(t: Tlb): string {
  return t.arrays.map((a) => `${a.entries}×${a.ways}`).join("+");
}

function checkBatch(b: AccessBatch): void {
  if (
    b === null || typeof b !== "object" || !(b.hi instanceof Uint32Array) ||
    !(b.lo instanceof Uint32Array) || !(b.kind instanceof Uint8Array) ||
    !(b.size instanceof Uint8Array) || !Number.isInteger(b.count) ||
    b.count < 0 || b.count > b.lo.length
  ) {
    throw new TypeError(
      "batch is invalid: expected an AccessBatch (count plus kind/hi/lo/size typed arrays)",
    );
  }
}

/**
 * What both replayers share: the per-access loop (kinds, page crossings)
 * and the counters common to {@linkcode ReplayResult}s. Subclasses supply
 * the translation of one access.
 *
 * @example
 * ```ts
 * import { NativeReplay, ReplayBase } from "./replay.ts";
 * import { parseLackey } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const r: ReplayBase = new NativeReplay();
 * r.run(parseLackey("I  1000,4\n L 2ffc,8\n"));
 * assert.equal(r.accesses, 2);
 * assert.equal(r.result().pageCrossings, 1);
 * ```
 */
export abstract class ReplayBase {
  /** Accesses replayed, by Lackey kind (I, L, S, M). */
  protected kinds: Float64Array = new Float64Array(4);
  /** Accesses that spanned two pages. */
  protected crossings = 0;
  /** Accesses skipped with #GP. */
  protected gp = 0;
  /** Wall time added by the drivers. */
  protected ms = 0;
  /** Accesses replayed so far. */
  get accesses(): number {
    return this.kinds[0] + this.kinds[1] + this.kinds[2] + this.kinds[3];
  }
  /** Add wall time to the result's elapsed time (drivers call it). */
  addTime(ms: number): void {
    this.ms += ms;
  }
  /** Translate one access (ACCESS_* flags); returns the log2 page size used, or -1 (#GP). */
  protected abstract translate(hi: number, lo: number, flags: number): number;

  /**
   * Replay accesses `from .. to-1` of a batch (default all). Hot path:
   * allocation-free; faults on first touch map pages.
   */
  run(batch: AccessBatch, from = 0, to: number = batch.count): void {
    checkBatch(batch);
    if (!(from >= 0 && to <= batch.count && from <= to)) {
      throw new RangeError(
        `range [${from}, ${to}) is invalid: expected 0 ≤ from ≤ to ≤ count (${batch.count})`,
      );
    }
    const kind = batch.kind, his = batch.hi, los = batch.lo, sizes = batch.size;
    const kinds = this.kinds;
    for (let i = from; i < to; i++) {
      const k = kind[i] & 3, hi = his[i], lo = los[i];
      kinds[k]++;
      const sh = this.translate(hi, lo, FLAGS[k]);
      if (sh < 0) continue;
      // bytes beyond the page: translate the page of the last byte too
      const last = sizes[i] - 1;
      if (
        last > 0 &&
        (sh >= 32 ? false : ((lo & ((1 << sh) - 1)) >>> 0) + last >= 2 ** sh)
      ) {
        this.crossings++;
        const lo2 = (lo + last) >>> 0;
        const hi2 = lo2 < lo ? (hi + 1) >>> 0 : hi;
        this.translate(hi2, lo2, FLAGS[k]);
      }
    }
  }

  /** The counters common to both machines. */
  protected common(): Pick<
    ReplayResult,
    | "accesses"
    | "fetches"
    | "loads"
    | "stores"
    | "modifies"
    | "pageCrossings"
    | "generalProtection"
    | "elapsedMs"
    | "accessesPerSecond"
  > {
    const n = this.accesses;
    return {
      accesses: n,
      fetches: this.kinds[0],
      loads: this.kinds[1],
      stores: this.kinds[2],
      modifies: this.kinds[3],
      pageCrossings: this.crossings,
      generalProtection: this.gp,
      elapsedMs: this.ms,
      accessesPerSecond: this.ms > 0 ? n / (this.ms / 1000) : 0,
    };
  }

  /** The counts so far. */
  abstract result(): ReplayResult;
}

/**
 * Native replay: a {@linkcode Cpu} over demand-filled x86-64 tables.
 *
 * @example Three accesses to two pages: two first-touch faults.
 * ```ts
 * import { NativeReplay } from "./replay.ts";
 * import { parseLackey } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const r = new NativeReplay({ tlb: { entries: 4, ways: 4 } });
 * r.run(parseLackey("I  00401000,4\n L 00401008,8\n S 7ff000010,8\n"));
 * const res = r.result();
 * assert.equal(res.accesses, 3);
 * assert.equal(res.firstTouchFaults, 2);
 * assert.equal(res.pagesTouched, 2);
 * assert.equal(res.tlbHits, 1);                      // the load after the fetch
 * assert.equal(res.translations, 5);                 // 3 + 2 restarts
 * assert.equal(res.walks, 4);
 * // empty PML4E (1 read), full walk (4), PML4E cache hit then empty PDPTE (1), full walk (4)
 * assert.equal(res.walkRefs, 1 + 4 + 1 + 4);
 * ```
 */
export class NativeReplay extends ReplayBase {
  /** The processor (its TLB and PSCs are `cpu.tlb`, `cpu.psc`). */
  readonly cpu: Cpu;
  /** The page table filled on first touch. */
  readonly table: PageTable;
  /** Page size mapped on first touch. */
  readonly pageSize: ReplayPageSize;
  #faults = 0;
  #next = DATA_BASE;
  #mask: number;
  #config: string;

  /** A fresh machine: empty tables, empty TLB and caches. */
  constructor(options: NativeReplayOptions = {}) {
    super();
    this.pageSize = checkPageSize(
      "pageSize",
      options.pageSize,
    ) as ReplayPageSize;
    const levels = checkLevels("levels", options.levels);
    const mode = pagingMode(levels === 4 ? X86_64_4LEVEL : X86_64_5LEVEL);
    const mem = new PhysicalMemory({ size: 2 ** 46, name: "machine" });
    const frames = new FrameAllocator(mem, { end: TABLE_END });
    this.table = new PageTable(mem, { mode, allocator: frames });
    const psc = options.psc === false
      ? { pde: 0, pdpte: 0, pml4e: 0, pml5e: 0 }
      : options.psc;
    this.cpu = new Cpu(mem, {
      mode,
      cr3: this.table.root,
      tlb: options.tlb ?? { entries: 64, ways: 4 },
      ...(psc ? { psc } : {}),
    });
    this.#mask = this.pageSize - 1;
    this.#config = `native ${levels}-level, ${
      this.pageSize === 4096 ? "4 KiB" : "2 MiB"
    } pages, TLB ${tlbText(this.cpu.tlb)}, PSC ${
      options.psc === false ? "off" : "on"
    }`;
  }

  /** Translate one access through the CPU, mapping the page on first touch. */
  protected translate(hi: number, lo: number, flags: number): number {
    const cpu = this.cpu;
    let r = cpu.accessFast(hi, lo, flags);
    if (r === WALK_OK) return cpu.lastPageShift;
    if (r === WALK_PF && cpu.lastReason === Reason.NotPresent) {
      this.#demand(hi, lo);
      r = cpu.accessFast(hi, lo, flags);
      if (r === WALK_OK) return cpu.lastPageShift;
    }
    if (r === WALK_GP) {
      this.gp++;
      return -1;
    }
    throw new Error(
      `internal: access ${
        new LinearAddress(hi, lo).toHex()
      } faulted after demand mapping (reason ${cpu.lastReason})`,
    );
  }

  /** First touch: map the page to the next frame. */
  #demand(hi: number, lo: number): void {
    const va = new LinearAddress(hi, (lo & ~this.#mask) >>> 0);
    this.table.map(va, this.#next, {
      user: true,
      writable: true,
      executable: true,
      size: this.pageSize,
    });
    this.#next += this.pageSize;
    this.#faults++;
  }

  /** The counts so far. */
  result(): ReplayResult {
    const c = this.cpu.counters;
    return {
      machine: "native",
      config: this.#config,
      ...this.common(),
      translations: c.accesses,
      tlbHits: c.tlbHits,
      tlbMisses: c.tlbMisses,
      dirtyRewalks: c.dirtyRewalks,
      walks: c.walks,
      walkRefs: c.tableReads,
      guestRefs: 0,
      hostRefs: 0,
      adWrites: 0,
      refsPerWalk: c.walks > 0 ? c.tableReads / c.walks : 0,
      cacheHits: { psc: c.pscResumes },
      skippedRefs: {},
      firstTouchFaults: this.#faults,
      hostFaults: 0,
      pagesTouched: this.#faults,
      notModelled: [...NOT_MODELLED_COMMON],
    };
  }
}

/**
 * Guest-physical memory backed by host memory at a constant offset (one
 * memslot): what the guest's page-table builder writes through.
 */
class OffsetMemory implements Memory {
  readonly size: number;
  readonly name = "guest-physical";
  readonly #host: PhysicalMemory;
  readonly #off: number;
  constructor(host: PhysicalMemory, offset: number, size: number) {
    this.#host = host;
    this.#off = offset;
    this.size = size;
  }
  read8(a: number): number {
    return this.#host.read8(a + this.#off);
  }
  read16(a: number): number {
    return this.#host.read16(a + this.#off);
  }
  read32(a: number): number {
    return this.#host.read32(a + this.#off);
  }
  write8(a: number, v: number): void {
    this.#host.write8(a + this.#off, v);
  }
  write16(a: number, v: number): void {
    this.#host.write16(a + this.#off, v);
  }
  write32(a: number, v: number): void {
    this.#host.write32(a + this.#off, v);
  }
  readBytes(a: number, n: number): Uint8Array {
    return this.#host.readBytes(a + this.#off, n);
  }
  writeBytes(a: number, d: Uint8Array): void {
    this.#host.writeBytes(a + this.#off, d);
  }
  zero(a: number, n: number): void {
    this.#host.zero(a + this.#off, n);
  }
}

/**
 * Nested replay: a TLB (gva → hpa) in front of a {@linkcode NestedWalker},
 * guest and second-stage tables filled on first touch.
 *
 * @example One access: a guest fault, EPT violations, then a 24-reference walk.
 * ```ts
 * import { NestedReplay } from "./replay.ts";
 * import { parseLackey } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const r = new NestedReplay({ caches: false });
 * r.run(parseLackey(" L 00401000,8\n L 00401010,8\n"));
 * const res = r.result();
 * assert.equal(res.firstTouchFaults, 1);
 * assert.ok(res.hostFaults >= 1);
 * assert.equal(res.tlbHits, 1);
 * // the successful walk read 4 guest entries and 4 × 5 second-stage entries
 * assert.equal(r.walker.tableReads, 24);
 * ```
 */
export class NestedReplay extends ReplayBase {
  /** The 2-D walker (its caches: `guestPsc`, `nestedTlb`, `hostPsc`). */
  readonly walker: NestedWalker;
  /** The front TLB (gva → hpa). */
  readonly tlb: Tlb;
  /** The guest page table (in guest-physical memory). */
  readonly guestTable: PageTable<Memory, FrameAllocator<Memory>>;
  /** Guest page size. */
  readonly guestPageSize: ReplayPageSize;
  /** Host page size. */
  readonly hostPageSize: ReplayPageSize;
  #host: PhysicalMemory;
  #hostFrames: FrameAllocator;
  #npt: PageTable | undefined;
  #ept: ReturnType<typeof eptMode> | undefined;
  #root: number;
  #fill = new WalkScratch();
  #gMask: number;
  #hShift: number;
  #nextData = GUEST_DATA_BASE;
  #guestFaults = 0;
  #hostFaults = 0;
  #hits = 0;
  #misses = 0;
  #dirty = 0;
  #walks = 0;
  #gRefs = 0;
  #hRefs = 0;
  #ad = 0;
  #skipped = new Float64Array(4);
  #translations = 0;
  #config: string;

  /** A fresh machine: empty guest and host tables, empty TLB and caches. */
  constructor(options: NestedReplayOptions = {}) {
    super();
    const levels = checkLevels("levels", options.levels);
    const hostLevels = checkLevels("hostLevels", options.hostLevels);
    this.guestPageSize = checkPageSize(
      "guestPageSize",
      options.guestPageSize,
    ) as ReplayPageSize;
    this.hostPageSize = checkPageSize(
      "hostPageSize",
      options.hostPageSize,
    ) as ReplayPageSize;
    const stage = options.stage ?? "ept";
    if (stage !== "ept" && stage !== "npt") {
      throw new RangeError(
        `stage "${String(stage)}" is invalid: expected "ept" or "npt"`,
      );
    }
    const gmode = pagingMode(levels === 4 ? X86_64_4LEVEL : X86_64_5LEVEL);
    this.#host = new PhysicalMemory({ size: 2 ** 47, name: "host" });
    this.#hostFrames = new FrameAllocator(this.#host, { end: TABLE_END });
    const guest = new OffsetMemory(this.#host, GUEST_OFFSET, GUEST_SIZE);
    this.guestTable = new PageTable<Memory, FrameAllocator<Memory>>(guest, {
      mode: gmode,
      allocator: new FrameAllocator<Memory>(guest, { end: GUEST_TABLE_END }),
    });
    let root: number;
    let walker: NestedWalker;
    const caches = options.caches === false
      ? {}
      : (options.caches ?? DEFAULT_CACHES);
    if (stage === "ept") {
      this.#ept = eptMode(hostLevels === 4 ? EPT_4LEVEL : EPT_5LEVEL);
      root = this.#hostFrames.alloc();
      walker = new NestedWalker(
        gmode,
        { kind: "ept", mode: this.#ept },
        this.#host,
        root,
        caches,
      );
    } else {
      const mode = nptMode({ levels: hostLevels });
      this.#npt = new PageTable(this.#host, {
        mode,
        allocator: this.#hostFrames,
      });
      root = this.#npt.root;
      walker = new NestedWalker(
        gmode,
        { kind: "npt", mode },
        this.#host,
        root,
        caches,
      );
    }
    this.#root = root;
    this.walker = walker;
    this.tlb = new Tlb(options.tlb ?? { entries: 64, ways: 4 });
    this.#gMask = this.guestPageSize - 1;
    this.#hShift = this.hostPageSize === 4096 ? 12 : 21;
    const sz = (s: number) => s === 4096 ? "4 KiB" : "2 MiB";
    this.#config = `nested ${stage.toUpperCase()} ${levels}×${hostLevels}, ${
      sz(this.guestPageSize)
    } guest / ${sz(this.hostPageSize)} host pages, TLB ${
      tlbText(this.tlb)
    }, walk caches ${options.caches === false ? "off" : "on"}`;
  }

  /** Translate one access through the front TLB, else a 2-D walk, mapping on first touch. */
  protected translate(hi: number, lo: number, flags: number): number {
    this.#translations++;
    const tlb = this.tlb;
    const slot = tlb.lookup(hi, lo, 0);
    if (slot >= 0) {
      if ((flags & ACCESS_WRITE) === 0 || tlb.dirtyOf(slot)) {
        this.#hits++;
        return tlb.shiftOf(slot);
      }
      this.#dirty++; // §4.8: a write through a clean entry walks to set D
    }
    this.#misses++;
    const w = this.walker;
    for (let tries = 0; tries < 16; tries++) {
      const r = w.walk(this.guestTable.root, hi, lo, flags);
      this.#count(w);
      if (r === NESTED_OK) {
        const g = w.guest, f = this.#fill;
        const sh = g.pageShift < this.#hShift ? g.pageShift : this.#hShift;
        f.outcome = WALK_OK;
        f.pageShift = sh;
        f.leafLevel = sh === 12 ? 1 : 2;
        f.pa = w.hpa;
        f.finalRights = g.finalRights;
        f.pkey = 0;
        f.global = false;
        f.dirty = g.dirty;
        tlb.fill(f, hi, lo, 0);
        return sh;
      }
      if (r === NESTED_GUEST_PF && w.guest.reason === Reason.NotPresent) {
        this.#guestDemand(hi, lo);
      } else if (r === NESTED_EPT_VIOLATION || r === NESTED_NPF) {
        this.#hostDemand(w.gpa);
      } else if (r === NESTED_GUEST_GP) {
        this.gp++;
        return -1;
      } else {
        break;
      }
      // the access restarts (after the guest's handler or VM entry) and
      // misses the TLB again, as natively
      this.#translations++;
      this.#misses++;
    }
    throw new Error(
      `internal: nested access ${
        new LinearAddress(hi, lo).toHex()
      } did not complete after demand mapping (outcome ${w.outcome})`,
    );
  }

  #count(w: NestedWalker): void {
    this.#walks++;
    const n = w.refs, skip = w.refSkip, gl = w.refGuest, hl = w.refHost;
    const wr = w.refWrite;
    for (let i = 0; i < n; i++) {
      const s = skip[i];
      if (s !== 0) this.#skipped[s]++;
      else if (wr[i] === 1) {
        if (gl[i] !== 0) this.#ad++;
      } else if (hl[i] !== 0) this.#hRefs++;
      else if (gl[i] !== 0) this.#gRefs++;
    }
  }

  #guestDemand(hi: number, lo: number): void {
    const va = new LinearAddress(hi, (lo & ~this.#gMask) >>> 0);
    this.guestTable.map(va, this.#nextData, {
      user: true,
      writable: true,
      executable: true,
      size: this.guestPageSize,
    });
    this.#nextData += this.guestPageSize;
    this.#guestFaults++;
  }

  #hostDemand(gpa: number): void {
    const size = this.hostPageSize;
    const base = gpa - (gpa % size);
    if (this.#ept !== undefined) {
      eptMap(
        this.#ept,
        this.#host,
        () => this.#hostFrames.alloc(),
        this.#root,
        base,
        base + GUEST_OFFSET,
        { pageShift: this.#hShift },
      );
    } else {
      this.#npt!.map(base, base + GUEST_OFFSET, {
        user: true,
        writable: true,
        executable: true,
        size,
      });
    }
    this.#hostFaults++;
  }

  /** The counts so far. */
  result(): ReplayResult {
    const w = this.walker;
    const hits: Record<string, number> = {};
    if (w.guestPsc) hits.guestPsc = w.guestPsc.counters.hits;
    if (w.nestedTlb) hits.nestedTlb = w.nestedTlb.counters.hits;
    if (w.hostPsc) hits.hostPsc = w.hostPsc.counters.hits;
    const refs = this.#gRefs + this.#hRefs;
    return {
      machine: "nested",
      config: this.#config,
      ...this.common(),
      translations: this.#translations,
      tlbHits: this.#hits,
      tlbMisses: this.#misses,
      dirtyRewalks: this.#dirty,
      walks: this.#walks,
      walkRefs: refs,
      guestRefs: this.#gRefs,
      hostRefs: this.#hRefs,
      adWrites: this.#ad,
      refsPerWalk: this.#walks > 0 ? refs / this.#walks : 0,
      cacheHits: hits,
      skippedRefs: {
        guestPsc: this.#skipped[SKIP_GUEST_PSC],
        nestedTlb: this.#skipped[SKIP_NTLB],
        hostPsc: this.#skipped[SKIP_HOST_PSC],
      },
      firstTouchFaults: this.#guestFaults,
      hostFaults: this.#hostFaults,
      pagesTouched: this.#guestFaults,
      notModelled: [
        ...NOT_MODELLED_COMMON,
        "VM exits on EPT violations / #NPF: counted, not simulated",
        "front TLB entries: page size = min(guest, host), dirty flag = the guest leaf's",
      ],
    };
  }
}

/** Progress as {@linkcode replayTrace} reports it. */
export interface ReplayProgress extends ProgressUpdate {
  /** Source bytes read so far (compressed bytes for gzip). */
  bytesRead: number;
  /** Source size in bytes, when known (a file or bytes). */
  totalBytes?: number;
}

/** Options for {@linkcode replayTrace} and {@linkcode replayAccesses}. */
export interface ReplayOptions
  extends NativeReplayOptions, NestedReplayOptions {
  /** The machine: "native" (default) or "nested". */
  machine?: "native" | "nested";
  /** Stop after this many accesses (default all). */
  limit?: number;
  /** Accesses per parsed batch (default 8192). */
  batchSize?: number;
  /** Abort the replay (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Called with progress at most every `progressEvery` accesses, and once at the end. */
  onProgress?: (p: ReplayProgress) => void;
  /** Show progress: true for the environment's reporter (Jupyter display, terminal line, or nothing), or a reporter. */
  progress?: boolean | ProgressReporter;
  /** Accesses between progress calls (default 2^20). */
  progressEvery?: number;
}

/**
 * Make the replayer for `options.machine` (native by default).
 *
 * @example
 * ```ts
 * import { makeReplay, NestedReplay } from "./replay.ts";
 * import assert from "node:assert/strict";
 * assert.ok(makeReplay({ machine: "nested", stage: "npt" }) instanceof NestedReplay);
 * assert.throws(() => makeReplay({ machine: "virtual" as "native" }), /machine "virtual"/);
 * ```
 */
export function makeReplay(
  options: ReplayOptions = {},
): NativeReplay | NestedReplay {
  const m = options.machine ?? "native";
  if (m === "native") return new NativeReplay(options);
  if (m === "nested") return new NestedReplay(options);
  throw new RangeError(
    `machine "${String(m)}" is invalid: expected "native" or "nested"`,
  );
}

function checkLimit(v: number | undefined): number {
  const l = v ?? Infinity;
  if (!(l >= 0)) {
    throw new RangeError(
      `limit ${String(v)} is invalid: expected a non-negative number`,
    );
  }
  return l;
}

function checkEvery(v: number | undefined): number {
  const e = v ?? 2 ** 20;
  if (!Number.isInteger(e) || e < 1) {
    throw new RangeError(
      `progressEvery ${String(v)} is invalid: expected a positive integer`,
    );
  }
  return e;
}

function reporterOf(
  p: boolean | ProgressReporter | undefined,
): ProgressReporter | undefined {
  if (p === undefined || p === false) return undefined;
  if (p === true) return progressReporter({ label: "replay" });
  if (typeof p.update !== "function" || typeof p.finish !== "function") {
    throw new TypeError(
      "progress is invalid: expected a boolean or a ProgressReporter (update and finish methods)",
    );
  }
  return p;
}

/**
 * Replay a Lackey trace (path, URL, bytes or stream; gzip or text) end to
 * end — parse and translate — through a native or nested machine filled
 * on first touch. Memory stays bounded by the batch size and the pages
 * touched.
 *
 * @example
 * ```ts
 * import { replayTrace } from "./replay.ts";
 * import assert from "node:assert/strict";
 * const text = "==1== Lackey\n" + "I  00401000,4\n L 00601008,8\n S 00601010,8\n".repeat(100);
 * const seen: number[] = [];
 * const r = await replayTrace(new TextEncoder().encode(text), {
 *   progressEvery: 100,
 *   batchSize: 64,
 *   onProgress: (p) => seen.push(p.done),
 * });
 * assert.equal(r.accesses, 300);
 * assert.equal(r.pagesTouched, 2);
 * assert.equal(r.tlbMisses, 2 + 2 + 1);  // two first touches, their restarts, one dirty re-walk
 * assert.equal(r.dirtyRewalks, 1);
 * assert.deepEqual(seen.slice(0, 2), [128, 256]);
 * assert.equal(seen.at(-1), 300);
 * const n = await replayTrace(new TextEncoder().encode(text), { machine: "nested" });
 * assert.equal(n.pagesTouched, 2);
 * assert.equal(n.tlbHits, r.tlbHits);
 * ```
 */
export async function replayTrace(
  source: TraceSource,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const limit = checkLimit(options.limit);
  const every = checkEvery(options.progressEvery);
  const reporter = reporterOf(options.progress);
  const r = makeReplay(options);
  let totalBytes: number | undefined;
  if (source instanceof Uint8Array) totalBytes = source.length;
  else if (typeof source === "string" || source instanceof URL) {
    try {
      totalBytes = (await Deno.stat(source)).size;
    } catch {
      totalBytes = undefined; // lackeyBatches reports a missing file
    }
  }
  let bytesRead = 0;
  const t0 = performance.now();
  let next = every;
  const report = (final: boolean) => {
    if (!options.onProgress && !reporter) return;
    const p: ReplayProgress = {
      done: r.accesses,
      elapsedMs: performance.now() - t0,
      bytesRead,
      ...(totalBytes !== undefined ? { totalBytes } : {}),
      ...(totalBytes ? { fraction: Math.min(1, bytesRead / totalBytes) } : {}),
      ...(limit !== Infinity ? { total: limit } : {}),
    };
    options.onProgress?.(p);
    if (final) reporter?.finish(p);
    else reporter?.update(p);
  };
  let done = 0;
  try {
    for await (
      const b of lackeyBatchesWithLines(source, {
        batchSize: options.batchSize,
        signal: options.signal,
        onBytes: (n) => bytesRead = n,
      })
    ) {
      const take = Math.min(b.count, limit - done);
      r.run(b, 0, take);
      done += take;
      if (done >= next) {
        report(false);
        next = (Math.floor(done / every) + 1) * every;
      }
      if (done >= limit) break;
    }
  } finally {
    r.addTime(performance.now() - t0);
  }
  report(true);
  return r.result();
}

/**
 * Replay accesses already in memory (a parsed or generated batch)
 * synchronously, with the same options as {@linkcode replayTrace} (except
 * the source ones). Progress is reported every `progressEvery` accesses.
 *
 * @example A tiny TLB on a known pattern: 5 pages in turn, 4-entry LRU TLB.
 * ```ts
 * import { replayAccesses } from "./replay.ts";
 * import { accessBatch } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const b = accessBatch(50);
 * for (let i = 0; i < 50; i++) { b.kind[i] = 1; b.lo[i] = 0x1000_0000 + (i % 5) * 4096; b.size[i] = 8; }
 * b.count = 50;
 * const r = replayAccesses(b, { tlb: { entries: 4, ways: 4 } });
 * assert.equal(r.tlbHits, 0);                 // LRU thrashes on a cycle longer than the TLB
 * assert.equal(r.tlbMisses, 50 + 5);          // plus the 5 first-touch restarts
 * ```
 */
export function replayAccesses(
  batch: AccessBatch,
  options: ReplayOptions = {},
): ReplayResult {
  checkBatch(batch);
  const limit = checkLimit(options.limit);
  const every = checkEvery(options.progressEvery);
  const reporter = reporterOf(options.progress);
  const r = makeReplay(options);
  const n = Math.min(batch.count, limit);
  const t0 = performance.now();
  const report = (final: boolean) => {
    if (!options.onProgress && !reporter) return;
    const p: ReplayProgress = {
      done: r.accesses,
      total: n,
      elapsedMs: performance.now() - t0,
      bytesRead: 0,
    };
    options.onProgress?.(p);
    if (final) reporter?.finish(p);
    else reporter?.update(p);
  };
  for (let from = 0; from < n; from += every) {
    options.signal?.throwIfAborted();
    r.run(batch, from, Math.min(n, from + every));
    if (from + every < n) report(false);
  }
  r.addTime(performance.now() - t0);
  report(true);
  return r.result();
}
