/**
 * Seeded random guest activity and a runner that records every
 * guest-visible outcome: the workload of the differential tests (every
 * scheme must produce the records of the reference scheme, op for op).
 *
 * {@linkcode randomGuestActivity} produces a replayable list of plain-data
 * operations — spawn, fork, exec, exit, context switch, mmap (fixed
 * addresses), munmap, mprotect, reads / writes / fetches as user or
 * kernel, INVLPG, full flushes, ballooning, and `inspect` (a dump of every
 * guest page-table entry, A/D bits included). It keeps a small model of
 * the processes and VMAs so that most operations are meaningful, and some
 * deliberately are not (accesses to unmapped or kernel addresses,
 * non-canonical addresses, mprotect over holes). Process ids are
 * predicted: the OS hands them out in order, even to a fork that fails.
 *
 * {@linkcode runActivity} replays a list on a {@linkcode GuestOs} and
 * returns one JSON-friendly record per operation. Expected failures
 * (`RangeError`s such as ENOMEM or a dead pid) are recorded, not thrown.
 *
 * @module
 */

import { hex64, type LinearAddress } from "../../address/address.ts";
import type { AccessKind } from "../../paging/record.ts";
import { Random } from "../../util/random.ts";
import { FRAME_SIZE } from "../frames.ts";
import type { Domain } from "../domain.ts";
import { Host, type HypervisorKind, type Placement } from "../host.ts";
import { PvScheme } from "../pv/scheme.ts";
import { ReferenceScheme } from "../reference.ts";
import type { MmuScheme } from "../scheme.ts";
import {
  DIRECT_MAP,
  GuestOs,
  KERNEL_HEAP,
  KERNEL_TEXT,
  parseProt,
  protText,
} from "./os.ts";

/**
 * Protections the generator uses.
 *
 * @example
 * ```ts
 * import { type ActivityProt, randomGuestActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const prots = new Set<ActivityProt>();
 * for (const o of randomGuestActivity(2, 400)) if (o.op === "mmap") prots.add(o.prot);
 * assert.ok(prots.has("rw") && prots.has("none"));
 * ```
 */
export type ActivityProt = "none" | "r" | "rw" | "rx" | "rwx";

/**
 * One guest operation (plain data: JSON round-trips it).
 *
 * @example
 * ```ts
 * import { createActivityGuest, type GuestOp, runActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const ops: GuestOp[] = [
 *   { op: "spawn" },
 *   { op: "switch", pid: 1 },
 *   { op: "mmap", pid: 1, addr: 0x400000, pages: 2, prot: "rw" },
 *   { op: "access", va: "0x400010", kind: "write", user: true, size: 4, value: 7 },
 *   { op: "access", va: "0x400010", kind: "read", user: true, size: 4 },
 * ];
 * const r = runActivity(createActivityGuest().os, ops);
 * assert.equal(r[4].result.value, 7);
 * ```
 */
export type GuestOp =
  | { readonly op: "spawn" }
  | { readonly op: "fork"; readonly pid: number }
  | { readonly op: "exec"; readonly pid: number }
  | { readonly op: "exit"; readonly pid: number }
  | { readonly op: "switch"; readonly pid: number }
  | {
    readonly op: "mmap";
    readonly pid: number;
    readonly addr: number;
    readonly pages: number;
    readonly prot: ActivityProt;
  }
  | {
    readonly op: "munmap";
    readonly pid: number;
    readonly addr: number;
    readonly pages: number;
  }
  | {
    readonly op: "mprotect";
    readonly pid: number;
    readonly addr: number;
    readonly pages: number;
    readonly prot: ActivityProt;
  }
  | {
    readonly op: "access";
    readonly va: string;
    readonly kind: AccessKind;
    readonly user: boolean;
    readonly size: 1 | 2 | 4;
    readonly value?: number;
  }
  | { readonly op: "invlpg"; readonly va: string }
  | { readonly op: "flush" }
  | { readonly op: "balloon"; readonly pages: number }
  | { readonly op: "inspect" };

/**
 * The record of one operation.
 *
 * @example
 * ```ts
 * import { type ActivityRecord, createActivityGuest, runActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const [rec]: ActivityRecord[] = runActivity(createActivityGuest().os, [{ op: "exit", pid: 9 }]);
 * assert.equal(rec.i, 0);
 * assert.match(String(rec.result.error), /no process with pid 9/);
 * ```
 */
export interface ActivityRecord {
  /** Index of the operation. */
  readonly i: number;
  /** The operation. */
  readonly op: GuestOp;
  /** What the guest saw (plain data). */
  readonly result: Readonly<Record<string, unknown>>;
}

/**
 * User-address arenas the generator maps in: windows of 64 pages placed
 * to cross table boundaries (a 1 GiB boundary at 0x40000000) and to use
 * different PML4 slots.
 *
 * @example
 * ```ts
 * import { ACTIVITY_ARENAS } from "./activity.ts";
 * import assert from "node:assert/strict";
 * assert.ok(ACTIVITY_ARENAS.every((a) => a % 4096 === 0));
 * ```
 */
export const ACTIVITY_ARENAS: readonly number[] = [
  0x0000_0000_0040_0000,
  0x0000_0000_3ffe_0000,
  0x0000_5555_5555_0000,
  0x0000_7fff_ffbf_0000,
];
const ARENA_PAGES = 64;

/**
 * Options for {@linkcode randomGuestActivity}.
 *
 * @example
 * ```ts
 * import { type ActivityOptions, randomGuestActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const options: ActivityOptions = { maxProcesses: 1, balloon: true, weights: { fork: 0 } };
 * const ops = randomGuestActivity(9, 300, options);
 * assert.ok(!ops.some((o) => o.op === "fork"));
 * assert.ok(ops.some((o) => o.op === "balloon"));
 * ```
 */
export interface ActivityOptions {
  /** The guest's memory in bytes (direct-map reads stay below it). Default 8 MiB. */
  memory?: number;
  /** Most processes alive at once. Default 4. */
  maxProcesses?: number;
  /** The OS's kernel heap pages. Default 8. */
  kernelHeapPages?: number;
  /** The OS's kernel text pages. Default 2. */
  kernelTextPages?: number;
  /** Include balloon operations. Default false. */
  balloon?: boolean;
  /** Relative weights by operation (defaults favour accesses). */
  weights?: Partial<Record<GuestOp["op"], number>>;
}

const DEFAULT_WEIGHTS: Record<GuestOp["op"], number> = {
  access: 60,
  mmap: 8,
  munmap: 4,
  mprotect: 6,
  fork: 3,
  exec: 1,
  exit: 2,
  spawn: 1,
  switch: 6,
  invlpg: 3,
  flush: 1,
  balloon: 2,
  inspect: 1,
};

interface ModelVma {
  start: number;
  end: number;
  prot: number;
}

const PROTS: readonly ActivityProt[] = ["rw", "rw", "r", "rx", "rwx", "none"];

/**
 * A seeded, replayable list of `n` guest operations (see the module
 * notes); the last one is an `inspect`.
 *
 * @example
 * ```ts
 * import { randomGuestActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const a = randomGuestActivity(42, 200);
 * assert.deepEqual(a, randomGuestActivity(42, 200));   // replayable
 * assert.equal(a.length, 200);
 * assert.equal(a[0].op, "spawn");
 * assert.equal(a[199].op, "inspect");
 * assert.deepEqual(JSON.parse(JSON.stringify(a)), a);  // plain data
 * ```
 */
export function randomGuestActivity(
  seed: number,
  n: number,
  options: ActivityOptions = {},
): GuestOp[] {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(
      `operation count ${String(n)} is invalid: expected a positive integer`,
    );
  }
  const rng = new Random(seed);
  const memory = options.memory ?? 8 * 2 ** 20;
  if (!Number.isInteger(memory) || memory < FRAME_SIZE) {
    throw new RangeError(
      `memory ${String(memory)} is invalid: expected at least 4096 bytes`,
    );
  }
  const maxProcs = options.maxProcesses ?? 4;
  if (!Number.isInteger(maxProcs) || maxProcs < 1) {
    throw new RangeError(
      `maxProcesses ${
        String(maxProcs)
      } is invalid: expected a positive integer`,
    );
  }
  const heapPages = options.kernelHeapPages ?? 8;
  const textPages = options.kernelTextPages ?? 2;
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
  if (!options.balloon) weights.balloon = 0;
  for (const [k, w] of Object.entries(weights)) {
    if (!Number.isFinite(w) || w < 0) {
      throw new RangeError(
        `weight of "${k}" ${
          String(w)
        } is invalid: expected a non-negative number`,
      );
    }
  }
  const procs = new Map<number, ModelVma[]>();
  let current: number | undefined = undefined;
  let nextPid = 1;
  let ballooned = 0;
  const ops: GuestOp[] = [];

  const pickProc = (): number => {
    const pids = [...procs.keys()];
    return current !== undefined && rng.chance(0.7) ? current : rng.pick(pids);
  };
  const carve = (vmas: ModelVma[], s: number, e: number): ModelVma[] => {
    const out: ModelVma[] = [];
    for (const v of vmas) {
      if (v.end <= s || v.start >= e) out.push(v);
      else {
        if (v.start < s) out.push({ ...v, end: s });
        if (v.end > e) out.push({ ...v, start: e });
      }
    }
    return out.sort((a, b) => a.start - b.start);
  };
  const covered = (vmas: ModelVma[], s: number, e: number): boolean => {
    let at = s;
    for (const v of vmas) {
      if (v.end <= at) continue;
      if (v.start > at) return false;
      at = v.end;
      if (at >= e) return true;
    }
    return at >= e;
  };
  const range = (): [number, number] => {
    const base = rng.pick(ACTIVITY_ARENAS);
    const first = rng.int(ARENA_PAGES - 1);
    const pages = 1 + rng.int(Math.min(16, ARENA_PAGES - first));
    return [base + first * FRAME_SIZE, pages];
  };
  const accessOp = (): GuestOp => {
    let kind: AccessKind = rng.chance(0.45)
      ? "read"
      : rng.chance(0.75)
      ? "write"
      : "fetch";
    const size = rng.pick([4, 4, 4, 2, 1] as const);
    let va: string;
    let user = rng.chance(0.85);
    const vmas = current === undefined ? [] : procs.get(current)!;
    const t = rng.next();
    const offset = rng.int(FRAME_SIZE / size) * size;
    if (t < 0.62 && vmas.length > 0) {
      const v = rng.pick(vmas);
      const page = v.start +
        rng.int((v.end - v.start) / FRAME_SIZE) * FRAME_SIZE;
      va = "0x" + (page + offset).toString(16);
      if (v.prot !== 0 && rng.chance(0.75)) {
        // mostly what the mapping allows (x86 pages are always readable)
        const ok: AccessKind[] = ["read"];
        if (v.prot & 2) ok.push("write", "write");
        if (v.prot & 4) ok.push("fetch");
        kind = rng.pick(ok);
      }
    } else if (t < 0.74) {
      const [a] = range();
      va = "0x" + (a + offset).toString(16);
    } else if (t < 0.82) {
      user = rng.chance(0.1);
      va = hex(KERNEL_HEAP, rng.int(heapPages) * FRAME_SIZE + offset);
    } else if (t < 0.9) {
      user = rng.chance(0.1);
      // half of them near the top of memory, where ballooned frames go
      const frames = Math.floor(memory / FRAME_SIZE);
      const page = rng.chance(0.5)
        ? rng.int(frames)
        : frames - 1 - rng.int(Math.min(frames, 64));
      va = hex(DIRECT_MAP, page * FRAME_SIZE + offset);
      // a kernel store through the direct map could scribble over page
      // tables: the kernel only reads there
      if (!user && kind === "write") kind = "read";
    } else if (t < 0.94) {
      user = rng.chance(0.1);
      va = hex(KERNEL_TEXT, rng.int(textPages) * FRAME_SIZE + offset);
    } else if (t < 0.96) {
      va = "0x" + (0x0000_8000_0000_0000 + offset).toString(16); // non-canonical
    } else {
      const page = rng.int(2 ** 32) * 8 + rng.int(8); // anywhere in user space
      va = "0x" + (page * FRAME_SIZE + offset).toString(16);
    }
    return kind === "write"
      ? {
        op: "access",
        va,
        kind,
        user,
        size,
        value: rng.nextU32() % 2 ** (8 * size),
      }
      : { op: "access", va, kind, user, size };
  };

  while (ops.length < n - 1) {
    let op: GuestOp["op"];
    if (procs.size === 0) op = "spawn";
    else if (current === undefined) op = rng.chance(0.2) ? "spawn" : "switch";
    else {
      const w = { ...weights };
      if (procs.size >= maxProcs) w.fork = w.spawn = 0;
      const total = Object.values(w).reduce((a, b) => a + b, 0);
      let x = rng.next() * total;
      op = "access";
      for (const [k, v] of Object.entries(w) as [GuestOp["op"], number][]) {
        if (x < v) {
          op = k;
          break;
        }
        x -= v;
      }
    }
    if ((op === "spawn" || op === "fork") && procs.size >= maxProcs) {
      op = "switch";
    }
    switch (op) {
      case "spawn":
        procs.set(nextPid++, []);
        ops.push({ op: "spawn" });
        break;
      case "fork": {
        const pid = pickProc();
        procs.set(nextPid++, procs.get(pid)!.map((v) => ({ ...v })));
        ops.push({ op: "fork", pid });
        break;
      }
      case "exec": {
        const pid = pickProc();
        procs.set(pid, []);
        ops.push({ op: "exec", pid });
        break;
      }
      case "exit": {
        const pid = pickProc();
        procs.delete(pid);
        if (pid === current) current = undefined;
        ops.push({ op: "exit", pid });
        break;
      }
      case "switch": {
        const pid = rng.pick([...procs.keys()]);
        current = pid;
        ops.push({ op: "switch", pid });
        break;
      }
      case "mmap": {
        const pid = pickProc();
        const [addr, pages] = range();
        const prot = rng.pick(PROTS);
        const end = addr + pages * FRAME_SIZE;
        const vmas = carve(procs.get(pid)!, addr, end);
        vmas.push({ start: addr, end, prot: parseProt(prot) });
        procs.set(pid, vmas.sort((a, b) => a.start - b.start));
        ops.push({ op: "mmap", pid, addr, pages, prot });
        break;
      }
      case "munmap": {
        const pid = pickProc();
        const [addr, pages] = range();
        procs.set(pid, carve(procs.get(pid)!, addr, addr + pages * FRAME_SIZE));
        ops.push({ op: "munmap", pid, addr, pages });
        break;
      }
      case "mprotect": {
        const pid = pickProc();
        const vmas = procs.get(pid)!;
        let addr: number, pages: number;
        if (vmas.length > 0 && rng.chance(0.85)) {
          const v = rng.pick(vmas);
          const total = (v.end - v.start) / FRAME_SIZE;
          const first = rng.int(total);
          addr = v.start + first * FRAME_SIZE;
          pages = 1 + rng.int(total - first);
        } else [addr, pages] = range();
        const prot = rng.pick(PROTS);
        const end = addr + pages * FRAME_SIZE;
        if (covered(vmas, addr, end)) {
          const pieces = vmas.filter((v) => v.end > addr && v.start < end)
            .map((v) => ({
              start: Math.max(v.start, addr),
              end: Math.min(v.end, end),
              prot: parseProt(prot),
            }));
          const rest = carve(vmas, addr, end);
          procs.set(
            pid,
            [...rest, ...pieces].sort((a, b) => a.start - b.start),
          );
        }
        ops.push({ op: "mprotect", pid, addr, pages, prot });
        break;
      }
      case "access":
        ops.push(accessOp());
        break;
      case "invlpg": {
        const vmas = current === undefined ? [] : procs.get(current)!;
        const page = vmas.length > 0 && rng.chance(0.8)
          ? rng.pick(vmas).start
          : range()[0];
        ops.push({ op: "invlpg", va: "0x" + page.toString(16) });
        break;
      }
      case "flush":
        ops.push({ op: "flush" });
        break;
      case "balloon": {
        const inflate = ballooned === 0 || rng.chance(0.5);
        const pages = 1 + rng.int(8);
        if (inflate) {
          ballooned += pages;
          ops.push({ op: "balloon", pages });
        } else {
          ballooned = Math.max(0, ballooned - pages);
          ops.push({ op: "balloon", pages: -pages });
        }
        break;
      }
      case "inspect":
        ops.push({ op: "inspect" });
        break;
    }
  }
  ops.push({ op: "inspect" });
  return ops;
}

function hex(base: LinearAddress, offset: number): string {
  const v = base.toBigInt() + BigInt(offset);
  return hex64(Number(v >> 32n), Number(v & 0xffffffffn));
}

/**
 * Every guest page-table entry that is not zero, as text lines: the
 * kernel's table in full, then each process's user half (and its own
 * kernel-half PML4 entries, whose A bits are its own). A/D bits included:
 * this is what a guest could read of its tables. Gpas only, so the dump is
 * the same under every scheme.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import { guestVisibleState } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }));
 * const p = os.spawn();
 * os.switchTo(p.pid);
 * os.access(os.mmap({ length: 4096 }), { kind: "write", value: 1 });
 * const dump = guestVisibleState(os);
 * assert.ok(dump.some((l) => /^pid 1 /.test(l)));
 * // the page went top-down below MMAP_TOP: PTE 511, XD | P RW US A D
 * assert.ok(dump.some((l) => /PTE\[511\] = 0x8000000000[0-9a-f]{3}067$/.test(l)));
 * ```
 */
export function guestVisibleState(os: GuestOs): string[] {
  const m = os.frames.memory;
  const out: string[] = [];
  const names = ["", "PTE", "PDE", "PDPTE", "PML4E"];
  const dump = (
    t: number,
    level: number,
    from: number,
    to: number,
    depth: number,
    descend: boolean,
  ) => {
    for (let i = from; i <= to; i++) {
      const lo = m.read32(t + 8 * i), hi = m.read32(t + 8 * i + 4);
      if ((lo | hi) === 0) continue;
      out.push(
        `${"  ".repeat(depth)}${names[level]}[${i}] = ${hex64(hi, lo)}`,
      );
      const present = (lo & 1) !== 0;
      const leaf = level === 1 || (level <= 3 && (lo & 0x80) !== 0);
      if (descend && present && !leaf) {
        const next = (hi & 0xfffff) * 4294967296 + ((lo & 0xfffff000) >>> 0);
        dump(next, level - 1, 0, 511, depth + 1, true);
      }
    }
  };
  out.push(`kernel root ${"0x" + os.kernelTable.root.toString(16)}`);
  dump(os.kernelTable.root, 4, 256, 511, 1, true);
  for (const p of os.processes) {
    out.push(
      `pid ${p.pid} root 0x${p.root.toString(16)}${
        p === os.current ? " (running)" : ""
      } vmas ${
        p.vmas.map((v) =>
          `${v.start.toString(16)}-${v.end.toString(16)}:${protText(v.prot)}`
        ).join(" ")
      }`,
    );
    dump(p.root, 4, 0, 255, 1, true);
    dump(p.root, 4, 256, 511, 1, false);
  }
  return out;
}

/**
 * Options for {@linkcode createActivityGuest}.
 *
 * @example
 * ```ts
 * import { type ActivityGuestOptions, createActivityGuest } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const options: ActivityGuestOptions = { hypervisor: "kvm", memory: 4 * 2 ** 20, seed: 2 };
 * const { domain, os } = createActivityGuest(options);
 * assert.equal(domain.backing, "kvm");
 * assert.equal(os.scheme.name, "reference");
 * ```
 */
export interface ActivityGuestOptions {
  /** Hypervisor of the host (default "xen"). */
  hypervisor?: HypervisorKind;
  /** The scheme (default a new reference scheme). */
  scheme?: MmuScheme;
  /** Guest memory in bytes (default 8 MiB, the generator's default). */
  memory?: number;
  /** Machine memory in bytes (default 64 MiB). */
  hostMemory?: number;
  /** Seed of machine-frame placement (default 1). */
  seed?: number;
  /** The guest kernel: "hvm" or "pv" (Xen PV: needs a `PvScheme`, or a `TlbFront` around one, and a Xen host). Default: "pv" for a paravirtual scheme, else "hvm". */
  kernel?: "hvm" | "pv";
  /** Placement of the domain's frames (default the host's: "scatter"); "contiguous" lets nested paging use 2 MiB host pages. */
  placement?: Placement;
}

/**
 * A fresh host, domain and guest OS set up as {@linkcode randomGuestActivity}
 * expects by default (8 MiB of guest memory, 8 kernel heap pages, 2 kernel
 * text pages): what a differential test runs each scheme on.
 *
 * @example
 * ```ts
 * import { createActivityGuest, randomGuestActivity, runActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const { os, host } = createActivityGuest({ hypervisor: "kvm" });
 * runActivity(os, randomGuestActivity(1, 50));
 * assert.deepEqual(host.checkConsistency(), []);
 * ```
 */
export function createActivityGuest(
  options: ActivityGuestOptions = {},
): { host: Host<HypervisorKind>; domain: Domain; os: GuestOs } {
  const host = new Host<HypervisorKind>({
    memory: options.hostMemory ?? 64 * 2 ** 20,
    hypervisor: options.hypervisor ?? "xen",
    seed: options.seed ?? 1,
  });
  const domain = host.createDomain({
    name: "guest",
    memory: options.memory ?? 8 * 2 ** 20,
    ...(options.placement !== undefined
      ? { placement: options.placement }
      : {}),
  });
  const os = new GuestOs(domain, {
    scheme: options.scheme ??
      (options.kernel === "pv" ? new PvScheme() : new ReferenceScheme()),
    ...(options.kernel !== undefined ? { kernel: options.kernel } : {}),
  });
  return { host, domain, os };
}

/**
 * Replay `ops` on `os` and record what the guest saw, op by op. Expected
 * failures (`RangeError`, `TypeError`) are recorded as `{ error }`; other
 * errors are bugs and are thrown.
 *
 * @example
 * ```ts
 * import { Host } from "../host.ts";
 * import { GuestOs } from "./os.ts";
 * import { randomGuestActivity, runActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const ops = randomGuestActivity(7, 120, { memory: 4 * 2 ** 20 });
 * const run = () => {
 *   const host = new Host({ memory: 64 * 2 ** 20 });
 *   return runActivity(new GuestOs(host.createDomain({ memory: 4 * 2 ** 20 })), ops);
 * };
 * const a = run();
 * assert.equal(a.length, 120);
 * assert.deepEqual(a, run());   // deterministic
 * ```
 */
export function runActivity(
  os: GuestOs,
  ops: readonly GuestOp[],
): ActivityRecord[] {
  const out: ActivityRecord[] = [];
  ops.forEach((op, i) => {
    let result: Record<string, unknown>;
    try {
      result = runOp(os, op);
    } catch (e) {
      if (!(e instanceof RangeError) && !(e instanceof TypeError)) throw e;
      result = { error: e.message };
    }
    out.push({ i, op, result });
  });
  return out;
}

/** Run one operation. */
function runOp(os: GuestOs, op: GuestOp): Record<string, unknown> {
  switch (op.op) {
    case "spawn":
      return { pid: os.spawn().pid };
    case "fork":
      return { pid: os.fork(op.pid).pid };
    case "exec":
      os.exec(op.pid);
      return {};
    case "exit":
      os.exit(op.pid);
      return {};
    case "switch":
      os.switchTo(op.pid);
      return {};
    case "mmap":
      return {
        addr: os.mmap({
          pid: op.pid,
          addr: op.addr,
          length: op.pages * FRAME_SIZE,
          prot: op.prot,
        }),
      };
    case "munmap":
      os.munmap(op.addr, op.pages * FRAME_SIZE, { pid: op.pid });
      return {};
    case "mprotect":
      os.mprotect(op.addr, op.pages * FRAME_SIZE, op.prot, { pid: op.pid });
      return {};
    case "access": {
      const r = os.access(op.va, {
        kind: op.kind,
        user: op.user,
        size: op.size,
        value: op.value,
      });
      return { ...r, faults: r.faults.map((f) => ({ ...f })) };
    }
    case "invlpg":
      os.invlpg(op.va);
      return {};
    case "flush":
      os.flushTlb();
      return {};
    case "balloon":
      return op.pages >= 0
        ? { inflated: os.balloonInflate(op.pages) }
        : { deflated: os.balloonDeflate(-op.pages) };
    case "inspect":
      return { state: guestVisibleState(os) };
  }
}

/**
 * The first operation whose records differ (see {@linkcode diffActivity}).
 *
 * @example
 * ```ts
 * import { type ActivityDifference, createActivityGuest, diffActivity, randomGuestActivity, runActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const ops = randomGuestActivity(4, 60);
 * const a = runActivity(createActivityGuest().os, ops);
 * const b = runActivity(createActivityGuest().os, ops.slice(0, 59));
 * const d: ActivityDifference | undefined = diffActivity(a, b);
 * assert.equal(d?.i, 59);
 * assert.equal(d?.actual, undefined);
 * ```
 */
export interface ActivityDifference {
  /** Index of the operation. */
  readonly i: number;
  /** The operation. */
  readonly op: GuestOp;
  /** The expected result (the reference's). */
  readonly expected: unknown;
  /** The result seen. */
  readonly actual: unknown;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (
    typeof a !== "object" || typeof b !== "object" || a === null || b === null
  ) {
    return false;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) =>
    (a as Record<string, unknown>)[k] !== undefined
  );
  const kb = Object.keys(b).filter((k) =>
    (b as Record<string, unknown>)[k] !== undefined
  );
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

/**
 * The first operation whose result differs between two runs of the same
 * operations (`expected` from the reference scheme), or `undefined` when
 * they agree throughout.
 *
 * @example
 * ```ts
 * import { diffActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const a = [{ i: 0, op: { op: "flush" as const }, result: { x: 1 } }];
 * const b = [{ i: 0, op: { op: "flush" as const }, result: { x: 2 } }];
 * assert.equal(diffActivity(a, a), undefined);
 * assert.deepEqual(diffActivity(a, b), { i: 0, op: { op: "flush" }, expected: { x: 1 }, actual: { x: 2 } });
 * ```
 */
export function diffActivity(
  expected: readonly ActivityRecord[],
  actual: readonly ActivityRecord[],
): ActivityDifference | undefined {
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i], a = actual[i];
    if (e === undefined || a === undefined || !same(e.result, a.result)) {
      return {
        i,
        op: (e ?? a).op,
        expected: e?.result,
        actual: a?.result,
      };
    }
  }
  return undefined;
}

/**
 * A shorter list that still fails: greedy removal of chunks (halves, then
 * quarters, … then single operations) while `fails(list)` stays true —
 * the minimal reproducer a differential test prints. Keeps the final
 * `inspect` if there is one.
 *
 * @example
 * ```ts
 * import { minimizeActivity, type GuestOp } from "./activity.ts";
 * import assert from "node:assert/strict";
 * const ops: GuestOp[] = [{ op: "spawn" }, { op: "flush" }, { op: "switch", pid: 1 }, { op: "flush" }];
 * const small = minimizeActivity(ops, (l) => l.some((o) => o.op === "switch"));
 * assert.deepEqual(small, [{ op: "switch", pid: 1 }]);
 * ```
 */
export function minimizeActivity(
  ops: readonly GuestOp[],
  fails: (ops: readonly GuestOp[]) => boolean,
): GuestOp[] {
  let cur = [...ops];
  if (!fails(cur)) {
    throw new RangeError(
      "the activity does not fail to begin with: nothing to minimize",
    );
  }
  for (let chunk = Math.max(1, Math.floor(cur.length / 2)); chunk >= 1;) {
    let removed = false;
    for (let i = 0; i < cur.length;) {
      const next = [...cur.slice(0, i), ...cur.slice(i + chunk)];
      if (next.length > 0 && fails(next)) {
        cur = next;
        removed = true;
      } else i += chunk;
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return cur;
}

/**
 * The operations as one JSON line each (for a reproducer).
 *
 * @example
 * ```ts
 * import { formatActivity } from "./activity.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatActivity([{ op: "flush" }]), '{"op":"flush"}');
 * ```
 */
export function formatActivity(ops: readonly GuestOp[]): string {
  return ops.map((o) => JSON.stringify(o)).join("\n");
}
