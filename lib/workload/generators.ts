/**
 * Seeded workload generators for experiments: each returns a
 * {@linkcode Workload} — plain-data guest operations (the `GuestOp` list of
 * `lib/virt/guest/activity.ts`) that any scheme replays identically on a
 * {@linkcode GuestOs}: a `setup` part (processes, mappings, first touches;
 * not measured) and the measured `ops`.
 *
 * | generator | what it does | defaults |
 * | --- | --- | --- |
 * | {@linkcode sequentialScan} | passes over a mapped region, `stride` bytes apart | 64 pages, 2 passes, stride 256 |
 * | {@linkcode randomAccess} | GUPS-like: random read-modify-write words over a working set; `pageSize: "2m"` reads through the guest's 2 MiB direct map instead | 256 pages, 2,048 updates |
 * | {@linkcode pointerChase} | follows a random cycle through one node per page (each node stores the next node's index) | 128 nodes, 4 laps |
 * | {@linkcode forkExecChurn} | fork, copy-on-write in the child, exec, exit, parent writes again | 8 rounds, 16 pages |
 * | {@linkcode mmapChurn} | mmap, touch, munmap at random places | 32 rounds × 8 pages |
 * | {@linkcode contextSwitchHeavy} | several processes, a few accesses per time slice | 4 processes, 64 switches |
 * | {@linkcode traceWorkload} | a valgrind lackey trace (batches from `trace.ts`) | 100,000 accesses |
 *
 * Accesses are 4-byte, naturally aligned, user mode (kernel mode for the
 * direct-map variant). The user data lives at `WORKLOAD_BASE` in process
 * 1 (pid 1, spawned first). Parameters are small by default so that a
 * whole experiment runs in seconds; each generator validates them.
 *
 * Guest 2 MiB pages: the guest OS model maps user memory with 4 KiB pages
 * only; its kernel direct map uses 2 MiB pages. So the large-page variant
 * of {@linkcode randomAccess} reads guest-physical memory through the
 * direct map (kernel reads, no writes: writing arbitrary guest-physical
 * memory would overwrite page tables).
 *
 * @module
 */

import type { GuestOp } from "../virt/guest/activity.ts";
import { DIRECT_MAP, MMAP_MIN, USER_END } from "../virt/guest/os.ts";
import { Random } from "../util/random.ts";

/**
 * A workload: guest operations, replayable under any scheme.
 *
 * @example
 * ```ts
 * import { sequentialScan, type Workload } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w: Workload = sequentialScan({ pages: 2, passes: 1, stride: 1024 });
 * assert.equal(w.ops.length, 2 * 4);
 * assert.deepEqual(JSON.parse(JSON.stringify(w)), w);   // plain data
 * ```
 */
export interface Workload {
  /** Short name (with its key parameters). */
  readonly name: string;
  /** One sentence. */
  readonly description: string;
  /** The parameters used (defaults filled in). */
  readonly params: Readonly<Record<string, number | string | boolean>>;
  /** Operations that set the stage (not measured). */
  readonly setup: readonly GuestOp[];
  /** Operations measured. */
  readonly ops: readonly GuestOp[];
  /** Guest memory (bytes) the workload needs. */
  readonly guestMemory: number;
}

/**
 * Where workloads put their data in process 1 (256 MiB: PML4 slot 0).
 *
 * @example
 * ```ts
 * import { WORKLOAD_BASE } from "./generators.ts";
 * import assert from "node:assert/strict";
 * assert.equal(WORKLOAD_BASE, 0x1000_0000);
 * ```
 */
export const WORKLOAD_BASE = 0x1000_0000;

const PAGE = 4096;
const MIB = 2 ** 20;
/** Guest memory the workloads default to (what createActivityGuest uses). */
const DEFAULT_MEMORY = 8 * MIB;

function int(
  what: string,
  v: number | undefined,
  dflt: number,
  min: number,
  max: number,
): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min || x > max) {
    throw new RangeError(
      `${what} ${
        String(x)
      } is invalid: expected an integer in [${min}, ${max}]`,
    );
  }
  return x;
}

function seedOf(v: number | undefined): number {
  const s = v ?? 1;
  if (!Number.isSafeInteger(s)) {
    throw new RangeError(
      `seed ${String(s)} is invalid: expected a safe integer`,
    );
  }
  return s;
}

const hex = (va: number): string => "0x" + va.toString(16);

function read(va: number): GuestOp {
  return { op: "access", va: hex(va), kind: "read", user: true, size: 4 };
}

function write(va: number, value: number): GuestOp {
  return {
    op: "access",
    va: hex(va),
    kind: "write",
    user: true,
    size: 4,
    value: value >>> 0,
  };
}

/** Memory for `pages` user pages plus page tables and the kernel (rounded up to 2 MiB, at least 8 MiB). */
function memoryFor(pages: number): number {
  const need = pages * PAGE * 1.25 + 2 * MIB;
  return Math.max(DEFAULT_MEMORY, Math.ceil(need / (2 * MIB)) * 2 * MIB);
}

/** spawn pid 1, switch to it, map `pages` rw pages at `base`, write each once. */
function stage(base: number, pages: number, rng?: Random): GuestOp[] {
  const ops: GuestOp[] = [
    { op: "spawn" },
    { op: "switch", pid: 1 },
    { op: "mmap", pid: 1, addr: base, pages, prot: "rw" },
  ];
  for (let p = 0; p < pages; p++) {
    ops.push(write(base + p * PAGE, rng ? rng.nextU32() : p));
  }
  return ops;
}

/** Options of {@linkcode sequentialScan}. */
export interface SequentialScanOptions {
  /** Pages scanned (1..65536). Default 64. */
  pages?: number;
  /** Passes over them (1..1000). Default 2. */
  passes?: number;
  /** Bytes between accesses: a power of two in [4, 4096]. Default 256 (16 accesses per page). */
  stride?: number;
  /** Write instead of read. Default false. */
  write?: boolean;
  /** Seed (of the written values). Default 1. */
  seed?: number;
}

/**
 * Sequential scan: `passes` passes over `pages` pages, one access every
 * `stride` bytes. With a TLB of fewer entries than pages, every pass
 * misses once per page.
 *
 * @example
 * ```ts
 * import { sequentialScan, WORKLOAD_BASE } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w = sequentialScan({ pages: 4, passes: 2, stride: 2048 });
 * assert.equal(w.ops.length, 4 * 2 * 2);
 * assert.equal(w.ops[1].op === "access" && w.ops[1].va, "0x" + (WORKLOAD_BASE + 2048).toString(16));
 * assert.throws(() => sequentialScan({ stride: 100 }), /stride 100 is invalid/);
 * ```
 */
export function sequentialScan(options: SequentialScanOptions = {}): Workload {
  const pages = int("pages", options.pages, 64, 1, 65536);
  const passes = int("passes", options.passes, 2, 1, 1000);
  const stride = int("stride", options.stride, 256, 4, PAGE);
  if ((stride & (stride - 1)) !== 0) {
    throw new RangeError(
      `stride ${stride} is invalid: expected a power of two in [4, 4096]`,
    );
  }
  const w = options.write ?? false;
  const seed = seedOf(options.seed);
  const rng = new Random(seed);
  const ops: GuestOp[] = [];
  for (let k = 0; k < passes; k++) {
    for (let p = 0; p < pages; p++) {
      for (let off = 0; off < PAGE; off += stride) {
        const va = WORKLOAD_BASE + p * PAGE + off;
        ops.push(w ? write(va, rng.nextU32()) : read(va));
      }
    }
  }
  return {
    name: `scan ${pages}p×${passes}`,
    description: `${passes} sequential ${
      w ? "write" : "read"
    } passes over ${pages} pages, every ${stride} bytes`,
    params: { pages, passes, stride, write: w, seed },
    setup: stage(WORKLOAD_BASE, pages),
    ops,
    guestMemory: memoryFor(pages),
  };
}

/** Options of {@linkcode randomAccess}. */
export interface RandomAccessOptions {
  /** Working set in 4 KiB pages (1..65536). Default 256 (1 MiB). */
  pages?: number;
  /** Updates (1..1,000,000). Default 2,048. */
  updates?: number;
  /** "4k": user pages (default); "2m": kernel reads through the guest's 2 MiB direct map. */
  pageSize?: "4k" | "2m";
  /** Read-modify-write (two accesses per update) or read only. Default true for "4k"; "2m" allows only false. */
  write?: boolean;
  /** Seed. Default 1. */
  seed?: number;
}

/**
 * Uniform random access over a working set (GUPS-like: HPC Challenge
 * RandomAccess updates random table words). With `pageSize: "4k"` the
 * table is `pages` user pages of process 1; with `"2m"` it is the first
 * `pages` pages of guest-physical memory read through the kernel's direct
 * map, whose guest pages are 2 MiB. The setup touches every page once.
 *
 * @example
 * ```ts
 * import { randomAccess } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w = randomAccess({ pages: 16, updates: 100, seed: 3 });
 * assert.equal(w.ops.length, 200);                       // read + write per update
 * assert.deepEqual(w, randomAccess({ pages: 16, updates: 100, seed: 3 }));
 * const big = randomAccess({ pages: 16, updates: 10, pageSize: "2m" });
 * assert.ok(big.ops.every((o) => o.op === "access" && !o.user && o.va.startsWith("0xffff888")));
 * assert.throws(() => randomAccess({ pageSize: "2m", write: true }), /write/);
 * ```
 */
export function randomAccess(options: RandomAccessOptions = {}): Workload {
  const pages = int("pages", options.pages, 256, 1, 65536);
  const updates = int("updates", options.updates, 2048, 1, 1_000_000);
  const size = options.pageSize ?? "4k";
  if (size !== "4k" && size !== "2m") {
    throw new RangeError(
      `pageSize "${String(size)}" is invalid: expected "4k" or "2m"`,
    );
  }
  const w = options.write ?? size === "4k";
  if (size === "2m" && w) {
    throw new RangeError(
      'write true is invalid with pageSize "2m": the direct map is read only here (writes would overwrite guest page tables)',
    );
  }
  const seed = seedOf(options.seed);
  const rng = new Random(seed);
  const words = pages * (PAGE / 4);
  const setup: GuestOp[] = [];
  const ops: GuestOp[] = [];
  let memory: number;
  if (size === "4k") {
    setup.push(...stage(WORKLOAD_BASE, pages));
    for (let i = 0; i < updates; i++) {
      const va = WORKLOAD_BASE + rng.int(words) * 4;
      ops.push(read(va));
      if (w) ops.push(write(va, rng.nextU32()));
    }
    memory = memoryFor(pages);
  } else {
    // direct-map addresses do not fit in a number: build them as hex strings
    const base = DIRECT_MAP.toBigInt();
    const kread = (off: number): GuestOp => ({
      op: "access",
      va: "0x" + (base + BigInt(off)).toString(16),
      kind: "read",
      user: false,
      size: 4,
    });
    setup.push({ op: "spawn" }, { op: "switch", pid: 1 });
    for (let p = 0; p < pages; p++) setup.push(kread(p * PAGE));
    for (let i = 0; i < updates; i++) ops.push(kread(rng.int(words) * 4));
    memory = Math.max(
      DEFAULT_MEMORY,
      Math.ceil((pages * PAGE) / (2 * MIB)) * 2 * MIB,
    );
  }
  return {
    name: `gups ${pages}p ${size}`,
    description: `${updates} random ${
      w ? "read-modify-write updates" : "reads"
    } over ${pages} pages (${pages * 4} KiB) through guest ${
      size === "4k" ? "4 KiB user" : "2 MiB direct-map"
    } pages`,
    params: { pages, updates, pageSize: size, write: w, seed },
    setup,
    ops,
    guestMemory: memory,
  };
}

/** Options of {@linkcode pointerChase}. */
export interface PointerChaseOptions {
  /** Nodes, one per page (2..65536). Default 128. */
  nodes?: number;
  /** Laps around the cycle (1..1000). Default 4. */
  laps?: number;
  /** Seed of the cycle. Default 1. */
  seed?: number;
}

/**
 * Pointer chasing: the nodes form one random cycle (Sattolo's algorithm),
 * node `i` at `WORKLOAD_BASE + i·4096 + (i mod 64)·64` (one per page, on
 * different cache lines, as `lib/kvm/costs.ts` measures it) holding the
 * index of the next node (written in the setup). The measured ops read
 * `laps` times around the cycle from node 0: each node once per lap, and
 * each read returns the index of the next node read.
 *
 * @example
 * ```ts
 * import { pointerChase } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w = pointerChase({ nodes: 8, laps: 2, seed: 5 });
 * assert.equal(w.ops.length, 16);
 * assert.equal(new Set(w.ops.slice(0, 8).map((o) => o.op === "access" && o.va)).size, 8);
 * assert.deepEqual(w.ops.slice(0, 8), w.ops.slice(8));
 * ```
 */
export function pointerChase(options: PointerChaseOptions = {}): Workload {
  const nodes = int("nodes", options.nodes, 128, 2, 65536);
  const laps = int("laps", options.laps, 4, 1, 1000);
  const seed = seedOf(options.seed);
  const rng = new Random(seed);
  // Sattolo: a uniformly random single cycle
  const next = Array.from({ length: nodes }, (_, i) => i);
  for (let i = nodes - 1; i > 0; i--) {
    const j = rng.int(i);
    [next[i], next[j]] = [next[j], next[i]];
  }
  const at = (i: number) => WORKLOAD_BASE + i * PAGE + (i % 64) * 64;
  const setup: GuestOp[] = [
    { op: "spawn" },
    { op: "switch", pid: 1 },
    { op: "mmap", pid: 1, addr: WORKLOAD_BASE, pages: nodes, prot: "rw" },
  ];
  for (let i = 0; i < nodes; i++) setup.push(write(at(i), next[i]));
  const ops: GuestOp[] = [];
  for (let lap = 0; lap < laps; lap++) {
    let i = 0;
    for (let k = 0; k < nodes; k++) {
      ops.push(read(at(i)));
      i = next[i];
    }
  }
  return {
    name: `chase ${nodes}n×${laps}`,
    description:
      `${laps} laps of a random cycle through ${nodes} nodes, one per page`,
    params: { nodes, laps, seed },
    setup,
    ops,
    guestMemory: memoryFor(nodes),
  };
}

/** Options of {@linkcode forkExecChurn}. */
export interface ForkExecChurnOptions {
  /** Fork rounds (1..500). Default 8. */
  rounds?: number;
  /** Pages resident in the parent (1..4096). Default 16. */
  pages?: number;
  /** Pages the child and then the parent write per round (0..pages). Default 4. */
  writes?: number;
  /** Whether the child execs (and then maps and touches 2 fresh pages). Default true. */
  exec?: boolean;
  /** Seed. Default 1. */
  seed?: number;
}

/**
 * fork/exec churn: process 1 has `pages` resident pages; each round it
 * forks (child pid 2, 3, … in order), the child writes `writes` random
 * pages (copy-on-write copies), execs and touches two new pages, the
 * parent runs again, reaps the child (exit) and writes `writes` pages
 * (copy-on-write reuse: the child is gone).
 *
 * @example
 * ```ts
 * import { forkExecChurn } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w = forkExecChurn({ rounds: 3, pages: 4, writes: 1 });
 * assert.deepEqual(w.ops.filter((o) => o.op === "fork").length, 3);
 * assert.deepEqual(w.ops.filter((o) => o.op === "exit").map((o) => o.op === "exit" && o.pid), [2, 3, 4]);
 * ```
 */
export function forkExecChurn(options: ForkExecChurnOptions = {}): Workload {
  const rounds = int("rounds", options.rounds, 8, 1, 500);
  const pages = int("pages", options.pages, 16, 1, 4096);
  const writes = int("writes", options.writes, 4, 0, pages);
  const exec = options.exec ?? true;
  const seed = seedOf(options.seed);
  const rng = new Random(seed);
  const ops: GuestOp[] = [];
  const fresh = WORKLOAD_BASE + 0x1000_0000;
  for (let r = 0; r < rounds; r++) {
    const child = 2 + r;
    ops.push({ op: "fork", pid: 1 }, { op: "switch", pid: child });
    for (let k = 0; k < writes; k++) {
      ops.push(write(WORKLOAD_BASE + rng.int(pages) * PAGE, rng.nextU32()));
    }
    if (exec) {
      ops.push(
        { op: "exec", pid: child },
        { op: "mmap", pid: child, addr: fresh, pages: 2, prot: "rw" },
        write(fresh, r),
        write(fresh + PAGE, r),
      );
    }
    ops.push({ op: "switch", pid: 1 }, { op: "exit", pid: child });
    for (let k = 0; k < writes; k++) {
      ops.push(write(WORKLOAD_BASE + rng.int(pages) * PAGE, rng.nextU32()));
    }
  }
  return {
    name: `fork ${rounds}×${pages}p`,
    description: `${rounds} rounds of fork, ${writes} copy-on-write stores${
      exec ? ", exec" : ""
    } and exit, from a parent with ${pages} resident pages`,
    params: { rounds, pages, writes, exec, seed },
    setup: stage(WORKLOAD_BASE, pages),
    ops,
    guestMemory: memoryFor(pages * 3),
  };
}

/** Options of {@linkcode mmapChurn}. */
export interface MmapChurnOptions {
  /** mmap/munmap rounds (1..10000). Default 32. */
  rounds?: number;
  /** Pages per mapping (1..512). Default 8. */
  pages?: number;
  /** Distinct places mappings go (1..64). Default 8. */
  slots?: number;
  /** Seed. Default 1. */
  seed?: number;
}

/**
 * mmap/munmap churn: each round maps `pages` pages at one of `slots`
 * random places, writes each page, reads one back, and unmaps them (the
 * guest flushes with INVLPGs, or a CR3 reload above its flush ceiling).
 *
 * @example
 * ```ts
 * import { mmapChurn } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w = mmapChurn({ rounds: 2, pages: 3 });
 * assert.deepEqual(w.ops.map((o) => o.op), ["mmap", "access", "access", "access", "access", "munmap", "mmap", "access", "access", "access", "access", "munmap"]);
 * ```
 */
export function mmapChurn(options: MmapChurnOptions = {}): Workload {
  const rounds = int("rounds", options.rounds, 32, 1, 10000);
  const pages = int("pages", options.pages, 8, 1, 512);
  const slots = int("slots", options.slots, 8, 1, 64);
  const seed = seedOf(options.seed);
  const rng = new Random(seed);
  const ops: GuestOp[] = [];
  const span = Math.ceil(pages / 512) * 512 * PAGE; // a page table per slot
  for (let r = 0; r < rounds; r++) {
    const addr = WORKLOAD_BASE + rng.int(slots) * span;
    ops.push({ op: "mmap", pid: 1, addr, pages, prot: "rw" });
    for (let p = 0; p < pages; p++) ops.push(write(addr + p * PAGE, r));
    ops.push(read(addr + rng.int(pages) * PAGE));
    ops.push({ op: "munmap", pid: 1, addr, pages });
  }
  return {
    name: `mmap ${rounds}×${pages}p`,
    description:
      `${rounds} rounds of mmap ${pages} pages, write each, read one, munmap`,
    params: { rounds, pages, slots, seed },
    setup: [{ op: "spawn" }, { op: "switch", pid: 1 }],
    ops,
    guestMemory: memoryFor(pages * 2),
  };
}

/** Options of {@linkcode contextSwitchHeavy}. */
export interface ContextSwitchOptions {
  /** Processes (2..64). Default 4. */
  processes?: number;
  /** Context switches (1..100000). Default 64. */
  switches?: number;
  /** Resident pages per process (1..512). Default 4. */
  pages?: number;
  /** Accesses per time slice (1..10000). Default 8. */
  slice?: number;
  /** Seed. Default 1. */
  seed?: number;
}

/**
 * Context-switch heavy: `processes` processes with `pages` resident pages
 * each; `switches` times, switch to another random process and make
 * `slice` random accesses (reads, one in four a write) in its pages.
 *
 * @example
 * ```ts
 * import { contextSwitchHeavy } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const w = contextSwitchHeavy({ processes: 3, switches: 10, slice: 2 });
 * const sw = w.ops.filter((o) => o.op === "switch").map((o) => o.op === "switch" ? o.pid : 0);
 * assert.equal(sw.length, 10);
 * assert.ok(sw.every((p, i) => p >= 1 && p <= 3 && (i === 0 || p !== sw[i - 1])));
 * ```
 */
export function contextSwitchHeavy(
  options: ContextSwitchOptions = {},
): Workload {
  const n = int("processes", options.processes, 4, 2, 64);
  const switches = int("switches", options.switches, 64, 1, 100000);
  const pages = int("pages", options.pages, 4, 1, 512);
  const slice = int("slice", options.slice, 8, 1, 10000);
  const seed = seedOf(options.seed);
  const rng = new Random(seed);
  const setup: GuestOp[] = [];
  for (let p = 1; p <= n; p++) setup.push({ op: "spawn" });
  for (let p = 1; p <= n; p++) {
    setup.push(
      { op: "switch", pid: p },
      { op: "mmap", pid: p, addr: WORKLOAD_BASE, pages, prot: "rw" },
    );
    for (let k = 0; k < pages; k++) {
      setup.push(write(WORKLOAD_BASE + k * PAGE, p));
    }
  }
  const ops: GuestOp[] = [];
  let cur = n;
  for (let s = 0; s < switches; s++) {
    let next = 1 + rng.int(n - 1);
    if (next >= cur) next++;
    cur = next;
    ops.push({ op: "switch", pid: cur });
    for (let k = 0; k < slice; k++) {
      const va = WORKLOAD_BASE + rng.int(pages * (PAGE / 4)) * 4;
      ops.push(rng.int(4) === 0 ? write(va, rng.nextU32()) : read(va));
    }
  }
  return {
    name: `switch ${n}×${switches}`,
    description:
      `${switches} context switches among ${n} processes, ${slice} accesses per slice over ${pages} pages each`,
    params: { processes: n, switches, pages, slice, seed },
    setup,
    ops,
    guestMemory: memoryFor(n * pages),
  };
}

/**
 * A batch of trace accesses (the `AccessBatch` of `lib/workload/trace.ts`:
 * kind 0 fetch, 1 load, 2 store, 3 modify; addresses as 32-bit halves).
 *
 * @example
 * ```ts
 * import type { TraceBatch } from "./generators.ts";
 * import assert from "node:assert/strict";
 * const b: TraceBatch = { count: 1, kind: Uint8Array.of(1), hi: Uint32Array.of(0), lo: Uint32Array.of(0x400000), size: Uint8Array.of(8) };
 * assert.equal(b.count, 1);
 * ```
 */
export interface TraceBatch {
  /** Valid entries. */
  readonly count: number;
  /** 0 fetch, 1 load, 2 store, 3 modify. */
  readonly kind: Uint8Array;
  /** Address high halves. */
  readonly hi: Uint32Array;
  /** Address low halves. */
  readonly lo: Uint32Array;
  /** Access sizes in bytes. */
  readonly size: Uint8Array;
}

/** Options of {@linkcode traceWorkload}. */
export interface TraceWorkloadOptions {
  /** Most accesses taken from the trace (1..10,000,000). Default 100,000. */
  maxAccesses?: number;
  /** Name. Default "trace". */
  name?: string;
}

/**
 * A workload from a memory trace (e.g. `lackeyBatches` of
 * `lib/workload/trace.ts`): every page the trace touches is mapped rwx in
 * process 1 (contiguous runs as one mmap each) and touched once in the
 * setup; each trace access becomes one aligned 4-byte access at its
 * address rounded down to 4 (fetch → fetch, load → read, store and modify
 * → write of 0). Addresses outside user space (below 64 KiB or above
 * 2^47 − 4 KiB) are dropped and counted in `params.dropped`.
 *
 * Not modelled: access sizes (and accesses that cross a line or a page),
 * the trace's process structure (threads, fork).
 *
 * @example
 * ```ts
 * import { traceWorkload, type TraceBatch } from "./generators.ts";
 * import assert from "node:assert/strict";
 * async function* batches(): AsyncGenerator<TraceBatch> {
 *   yield { count: 3, kind: Uint8Array.of(0, 1, 2), hi: Uint32Array.of(0, 0, 0),
 *           lo: Uint32Array.of(0x400000, 0x401ffe, 0x10), size: Uint8Array.of(4, 8, 4) };
 * }
 * const w = await traceWorkload(batches());
 * assert.deepEqual(w.ops.map((o) => o.op === "access" && [o.kind, o.va]), [["fetch", "0x400000"], ["read", "0x401ffc"]]);
 * assert.equal(w.params.dropped, 1);   // 0x10 is below user space
 * assert.deepEqual(w.setup.filter((o) => o.op === "mmap"), [{ op: "mmap", pid: 1, addr: 0x400000, pages: 2, prot: "rwx" }]);
 * ```
 */
export async function traceWorkload(
  batches: AsyncIterable<TraceBatch> | Iterable<TraceBatch>,
  options: TraceWorkloadOptions = {},
): Promise<Workload> {
  const max = int("maxAccesses", options.maxAccesses, 100_000, 1, 10_000_000);
  const name = options.name ?? "trace";
  const ops: GuestOp[] = [];
  const pages = new Set<number>();
  let dropped = 0, seen = 0;
  const KINDS = ["fetch", "read", "write", "write"] as const;
  outer: for await (const b of batches) {
    for (let i = 0; i < b.count; i++) {
      if (ops.length >= max) break outer;
      seen++;
      const va = b.hi[i] * 4294967296 + b.lo[i];
      if (va < MMAP_MIN || va >= USER_END) {
        dropped++;
        continue;
      }
      const k = b.kind[i];
      if (k > 3) {
        throw new RangeError(
          `trace access kind ${k} is invalid: expected 0 (fetch), 1 (load), 2 (store) or 3 (modify)`,
        );
      }
      const a = va - (va % 4);
      pages.add(Math.floor(a / PAGE));
      const kind = KINDS[k];
      ops.push(
        kind === "write"
          ? { op: "access", va: hex(a), kind, user: true, size: 4, value: 0 }
          : { op: "access", va: hex(a), kind, user: true, size: 4 },
      );
    }
  }
  const sorted = [...pages].sort((x, y) => x - y);
  const setup: GuestOp[] = [{ op: "spawn" }, { op: "switch", pid: 1 }];
  for (let i = 0; i < sorted.length;) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[j - 1] + 1) j++;
    setup.push({
      op: "mmap",
      pid: 1,
      addr: sorted[i] * PAGE,
      pages: j - i,
      prot: "rwx",
    });
    i = j;
  }
  for (const p of sorted) setup.push(read(p * PAGE));
  return {
    name,
    description:
      `${ops.length} accesses of a memory trace over ${sorted.length} pages`,
    params: { accesses: ops.length, pages: sorted.length, dropped, seen },
    setup,
    ops,
    guestMemory: memoryFor(sorted.length),
  };
}

/**
 * The generators by name (for menus and the experiment runner).
 *
 * @example
 * ```ts
 * import { WORKLOADS } from "./generators.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(WORKLOADS), ["scan", "gups", "gups-2m", "chase", "fork", "mmap", "switch"]);
 * assert.equal(WORKLOADS["gups-2m"]({ pages: 8, updates: 4 }).params.pageSize, "2m");
 * ```
 */
export const WORKLOADS: Readonly<
  Record<string, (options?: Record<string, unknown>) => Workload>
> = Object.freeze({
  scan: (o = {}) => sequentialScan(o as SequentialScanOptions),
  gups: (o = {}) => randomAccess(o as RandomAccessOptions),
  "gups-2m": (o = {}) =>
    randomAccess({ ...(o as RandomAccessOptions), pageSize: "2m" }),
  chase: (o = {}) => pointerChase(o as PointerChaseOptions),
  fork: (o = {}) => forkExecChurn(o as ForkExecChurnOptions),
  mmap: (o = {}) => mmapChurn(o as MmapChurnOptions),
  switch: (o = {}) => contextSwitchHeavy(o as ContextSwitchOptions),
});
