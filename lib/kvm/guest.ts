/**
 * The guest that memvirt runs on the real CPU: its physical layout, its
 * descriptor tables (GDT, IDT, TSS), its hand-assembled code, the harness
 * page tables that map it (built with memvirt's own {@linkcode PageTable}),
 * and the pattern that fills its data memory so that every read or fetch
 * names the physical address it reached.
 *
 * Guest-physical layout (identity-mapped by the harness tables through PML4
 * slot 0; every page supervisor-only unless marked user):
 *
 * | address | what |
 * | --- | --- |
 * | 0x1000 | GDT: null, kernel code 0x08, kernel data 0x10, user data 0x1b, user code 0x23, TSS 0x28 |
 * | 0x2000 | IDT: 32 interrupt gates |
 * | 0x3000 | TSS (RSP0 = kernel stack top) |
 * | 0x4000 | kernel code: dispatcher, exception stubs, common handler, access stub |
 * | 0x5000 | user access stub (user page, read-only) |
 * | 0x6000 | write list: entry writes the guest performs before the access |
 * | 0x7000 | cost-measurement code (`costs.ts`) |
 * | 0x8000–0xffff | kernel stack |
 * | 0x10000 | user stack (user page) |
 * | 0x20000 | harness page tables |
 * | 0x30000–0x33fff | the page tables under test (PML4, PDPT, PD, PT) |
 * | 0x40000–0x1fffff | scratch for `costs.ts` |
 * | 0x200000–end | data: 4 KiB frames below 4 MiB, 2 MiB frames above; every qword holds {@linkcode patternAt} |
 *
 * @module
 */

import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
import { X86_64_4LEVEL } from "../paging/format.ts";
import { pagingMode } from "../paging/mode.ts";
import { PageTable } from "../paging/builder.ts";

/** Guest-physical addresses of the guest's parts (identity-mapped, so also linear). */
export interface GuestLayout {
  /** GDT. */
  readonly gdt: number;
  /** IDT (32 gates). */
  readonly idt: number;
  /** 64-bit TSS. */
  readonly tss: number;
  /** Dispatcher: performs the write list, loads CR3, enters the access. */
  readonly dispatch: number;
  /** Exception stub for vector v at `stubs + 16 * v`. */
  readonly stubs: number;
  /** Common exception handler: reports through `out 0xe0, al`. */
  readonly handler: number;
  /** Supervisor copy of the access stub. */
  readonly kernelAccess: number;
  /** User copy of the access stub (a user page). */
  readonly userAccess: number;
  /** Write list: u64 count, then (address, value) u64 pairs. */
  readonly writeList: number;
  /** Code page for cost measurements (`costs.ts`). */
  readonly costCode: number;
  /** Top of the kernel stack (TSS.RSP0); the stack is the page below. */
  readonly kernelStackTop: number;
  /** User stack page. */
  readonly userStack: number;
  /** Top of the user stack. */
  readonly userStackTop: number;
  /** Harness page tables (16 frames). */
  readonly harnessTables: number;
  /** End of the harness page tables. */
  readonly harnessTablesEnd: number;
  /** Tables under test: the root (PML4) here, then PDPT, PD, PT. */
  readonly caseTables: number;
  /** End of the tables under test. */
  readonly caseTablesEnd: number;
  /** Scratch memory (tables for cost measurements). */
  readonly scratch: number;
  /** End of scratch memory. */
  readonly scratchEnd: number;
  /** First data byte; 4 KiB data frames below `data2m`. */
  readonly data: number;
  /** First 2 MiB data frame. */
  readonly data2m: number;
  /** Default guest memory size. */
  readonly memoryBytes: number;
  /** Port the exception handler reports on. */
  readonly reportPort: number;
}

/**
 * The guest layout (see the module documentation for the map).
 *
 * @example
 * ```ts
 * import { LAYOUT } from "./guest.ts";
 * import assert from "node:assert/strict";
 * assert.ok(LAYOUT.caseTablesEnd <= LAYOUT.scratch && LAYOUT.scratchEnd <= LAYOUT.data);
 * assert.equal(LAYOUT.data2m % 0x200000, 0);
 * ```
 */
export const LAYOUT: GuestLayout = Object.freeze({
  gdt: 0x1000,
  idt: 0x2000,
  tss: 0x3000,
  dispatch: 0x4000,
  stubs: 0x4100,
  handler: 0x4300,
  kernelAccess: 0x4400,
  userAccess: 0x5000,
  writeList: 0x6000,
  costCode: 0x7000,
  kernelStackTop: 0x10000,
  userStack: 0x10000,
  userStackTop: 0x11000,
  harnessTables: 0x20000,
  harnessTablesEnd: 0x30000,
  caseTables: 0x30000,
  caseTablesEnd: 0x34000,
  scratch: 0x40000,
  scratchEnd: 0x200000,
  data: 0x200000,
  data2m: 0x400000,
  memoryBytes: 32 * 2 ** 20,
  reportPort: 0xe0,
});

/** GDT selectors (with their RPL). */
export interface Selectors {
  /** 64-bit kernel code, DPL 0. */
  readonly kernelCode: number;
  /** Kernel data, DPL 0. */
  readonly kernelData: number;
  /** User data, DPL 3 (RPL 3). */
  readonly userData: number;
  /** 64-bit user code, DPL 3 (RPL 3). */
  readonly userCode: number;
  /** The TSS (a 16-byte system descriptor). */
  readonly tss: number;
}

/**
 * GDT selectors.
 *
 * @example
 * ```ts
 * import { SEL } from "./guest.ts";
 * import assert from "node:assert/strict";
 * assert.equal(SEL.userCode & 3, 3); // RPL 3
 * assert.equal(SEL.kernelCode & 3, 0);
 * ```
 */
export const SEL: Selectors = Object.freeze({
  kernelCode: 0x08,
  kernelData: 0x10,
  userData: 0x1b,
  userCode: 0x23,
  tss: 0x28,
});

/** Vectors that push an error code (SDM Vol. 3 Table 6-1). */
const HAS_ERROR_CODE = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

/**
 * The pattern qword at data address `pa` (8-byte aligned): the bytes
 * `B8 a0 a1 a2 a3 FF E5 56` with `a = pa >>> 3`, i.e. the instructions
 * `mov eax, pa>>>3; jmp rbp` followed by "V". A read returns it (and so
 * names `pa`); a fetch executes it (EAX names `pa`, then the jump returns
 * to the access stub's `ud2`, which reports success); read as a page-table
 * entry its bit 0 (P) is clear.
 *
 * Two `kvm_pvm` quirks shaped this: an `int3` at CPL 0 stops the VM with
 * an emulation failure (and `int n` at CPL 3 raises #UD), hence `ud2`; and
 * a `ud2` executed at CPL 0 *in a user page* while CR4.SMAP = 1 and
 * EFLAGS.AC = 0 is reported as a #PF (P, plus I/D with NXE) at the `ud2`,
 * although the fetch itself succeeds — the hypervisor reads the instruction
 * to emulate #UD and that read is subject to SMAP — hence the jump back to
 * the stub's `ud2`, which lies in a page of the stub's own privilege.
 *
 * @example
 * ```ts
 * import { patternAt, patternAddress } from "./guest.ts";
 * import assert from "node:assert/strict";
 * assert.equal(patternAt(0x200008), 0x56e5ff00040001b8n);
 * assert.equal(patternAddress(patternAt(0x1234568)), 0x1234568);
 * assert.equal(patternAddress(0x1234n), undefined);
 * ```
 */
export function patternAt(pa: number): bigint {
  const [lo, hi] = patternWords(pa);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * The pattern at `pa` as little-endian dwords `[lo, hi]`.
 *
 * @example
 * ```ts
 * import { patternAt, patternWords } from "./guest.ts";
 * import assert from "node:assert/strict";
 * const [lo, hi] = patternWords(0x400000);
 * assert.equal((BigInt(hi) << 32n) | BigInt(lo), patternAt(0x400000));
 * assert.equal(lo & 1, 0); // P = 0 if read as an entry
 * ```
 */
export function patternWords(pa: number): [number, number] {
  const a = Math.floor(pa / 8);
  const lo = (0xb8 | ((a & 0xffffff) << 8)) >>> 0;
  const hi = (((a / 2 ** 24) & 0xff) | 0x56e5ff00) >>> 0;
  return [lo, hi];
}

/**
 * The data address a pattern qword names, or undefined if `value` is not a
 * pattern.
 *
 * @example
 * ```ts
 * import { patternAddress, patternAt } from "./guest.ts";
 * import assert from "node:assert/strict";
 * assert.equal(patternAddress(patternAt(0x3ff8)), 0x3ff8);
 * assert.equal(patternAddress(0x5752495400000001n), undefined); // a written marker
 * ```
 */
export function patternAddress(value: bigint): number | undefined {
  if ((value & 0xff_ff_ff_00_00_00_00_ffn) !== 0x56_e5_ff_00_00_00_00_b8n) {
    return undefined;
  }
  return Number((value >> 8n) & 0xffffffffn) * 8;
}

/**
 * Fill `memory[from, to)` (guest-physical, 8-byte aligned) with the data
 * pattern.
 *
 * @example
 * ```ts
 * import { fillPattern, patternAt } from "./guest.ts";
 * import assert from "node:assert/strict";
 * const m = new Uint8Array(64);
 * fillPattern(m, 16, 32);
 * assert.equal(new DataView(m.buffer).getBigUint64(24, true), patternAt(24));
 * assert.equal(m[8], 0);
 * ```
 */
export function fillPattern(
  memory: Uint8Array,
  from: number,
  to: number,
): void {
  const w = new Uint32Array(memory.buffer, memory.byteOffset, to >>> 2);
  for (let pa = from; pa < to; pa += 8) {
    const a = pa / 8;
    w[pa >>> 2] = 0xb8 | ((a & 0xffffff) << 8);
    w[(pa >>> 2) + 1] = ((a / 2 ** 24) & 0xff) | 0x56e5ff00;
  }
}

/**
 * The access stub, at a fixed place in a supervisor page and in a user
 * page. In: r13d = kind (0 read, 1 write, 2 fetch), rdi = linear address,
 * rsi = value to write, rbp = this stub + 0x18. Success ends in `ud2`
 * (#UD), which the handler reports; a fetch jumps to the pattern, which
 * sets EAX and jumps back to the `ud2` at 0x18.
 *
 * ```
 * 00  41 83 fd 01   cmp  r13d, 1
 * 04  74 0b         je   11 (write)
 * 06  41 83 fd 02   cmp  r13d, 2
 * 0a  74 0a         je   16 (fetch)
 * 0c  48 8b 07      mov  rax, [rdi]      ; read
 * 0f  0f 0b         ud2                   ; → #UD, RIP = stub + 0x0f
 * 11  48 89 37      mov  [rdi], rsi      ; write
 * 14  0f 0b         ud2                   ; → #UD, RIP = stub + 0x14
 * 16  ff e7         jmp  rdi             ; fetch → pattern → jmp rbp
 * 18  0f 0b         ud2                   ; → #UD, RIP = stub + 0x18
 * ```
 */
export const ACCESS_STUB: Uint8Array = Uint8Array.from([
  0x41,
  0x83,
  0xfd,
  0x01,
  0x74,
  0x0b,
  0x41,
  0x83,
  0xfd,
  0x02,
  0x74,
  0x0a,
  0x48,
  0x8b,
  0x07,
  0x0f,
  0x0b,
  0x48,
  0x89,
  0x37,
  0x0f,
  0x0b,
  0xff,
  0xe7,
  0x0f,
  0x0b,
]);

/** Offset of the `ud2` (the RIP #UD reports) after a successful read in the access stub. */
export const STUB_READ_DONE = 0x0f;
/** Offset of the `ud2` after a successful write in the access stub. */
export const STUB_WRITE_DONE = 0x14;
/** Offset of the `ud2` a successful fetch returns to (through `jmp rbp`). */
export const STUB_FETCH_DONE = 0x18;
/** The vector that reports success (#UD from `ud2`). */
export const DONE_VECTOR = 6;

/**
 * The dispatcher (CPL 0, entered with CR3 = the harness root). In: rbx =
 * write list, r15 = CR3 to load, r14 = 1 for a CPL-3 access, r12 = user
 * RFLAGS, plus the access stub's r13/rdi/rsi. The guest itself performs the
 * entry writes (so that a shadow MMU sees them), loads CR3, then enters the
 * access stub: directly at CPL 0, through `iretq` at CPL 3.
 *
 * ```
 * 00  48 8b 0b            mov  rcx, [rbx]         ; count
 * 03  48 83 c3 08         add  rbx, 8
 * 07  48 85 c9      loop: test rcx, rcx
 * 0a  74 13               jz   1f
 * 0c  48 8b 13            mov  rdx, [rbx]         ; address
 * 0f  48 8b 43 08         mov  rax, [rbx+8]       ; value
 * 13  48 89 02            mov  [rdx], rax
 * 16  48 83 c3 10         add  rbx, 16
 * 1a  48 ff c9            dec  rcx
 * 1d  eb e8               jmp  loop
 * 1f  41 0f 22 df         mov  cr3, r15
 * 23  4d 85 f6            test r14, r14
 * 26  75 07               jnz  2f
 * 28  b8 00 44 00 00      mov  eax, 0x4400        ; kernel access stub
 * 2d  ff e0               jmp  rax
 * 2f  6a 1b               push 0x1b               ; SS = user data
 * 31  68 00 10 01 00      push 0x11000            ; RSP = user stack top
 * 36  41 54               push r12                ; RFLAGS
 * 38  6a 23               push 0x23               ; CS = user code
 * 3a  68 00 50 00 00      push 0x5000             ; RIP = user access stub
 * 3f  48 cf               iretq
 * ```
 */
export const DISPATCH_CODE: Uint8Array = Uint8Array.from([
  0x48,
  0x8b,
  0x0b,
  0x48,
  0x83,
  0xc3,
  0x08,
  0x48,
  0x85,
  0xc9,
  0x74,
  0x13,
  0x48,
  0x8b,
  0x13,
  0x48,
  0x8b,
  0x43,
  0x08,
  0x48,
  0x89,
  0x02,
  0x48,
  0x83,
  0xc3,
  0x10,
  0x48,
  0xff,
  0xc9,
  0xeb,
  0xe8,
  0x41,
  0x0f,
  0x22,
  0xdf,
  0x4d,
  0x85,
  0xf6,
  0x75,
  0x07,
  0xb8,
  ...le32(LAYOUT.kernelAccess),
  0xff,
  0xe0,
  0x6a,
  SEL.userData,
  0x68,
  ...le32(LAYOUT.userStackTop),
  0x41,
  0x54,
  0x6a,
  SEL.userCode,
  0x68,
  ...le32(LAYOUT.userAccess),
  0x48,
  0xcf,
]);

/**
 * The common exception handler (reached from a stub that pushed the vector
 * and, for vectors without one, a zero error code). It reports through
 * registers and one `out`, then halts:
 *
 * ```
 * 00  41 58               pop  r8                 ; vector
 * 02  41 59               pop  r9                 ; error code
 * 04  41 0f 20 d2         mov  r10, cr2
 * 08  4c 8b 1c 24         mov  r11, [rsp]         ; faulting / next RIP
 * 0c  4c 8b 64 24 08      mov  r12, [rsp+8]       ; CS (its RPL = the CPL)
 * 11  e6 e0               out  0xe0, al           ; → KVM_EXIT_IO
 * 13  f4            h:    hlt
 * 14  eb fd               jmp  h
 * ```
 */
export const HANDLER_CODE: Uint8Array = Uint8Array.from([
  0x41,
  0x58,
  0x41,
  0x59,
  0x41,
  0x0f,
  0x20,
  0xd2,
  0x4c,
  0x8b,
  0x1c,
  0x24,
  0x4c,
  0x8b,
  0x64,
  0x24,
  0x08,
  0xe6,
  LAYOUT.reportPort,
  0xf4,
  0xeb,
  0xfd,
]);

/**
 * The 16-byte exception stub for `vector`: `push 0` (6a 00) when the CPU
 * pushes no error code, `push vector` (6a vv), `jmp rel32` (e9) to the
 * common handler, padded with `int3`.
 *
 * @example
 * ```ts
 * import { exceptionStub, LAYOUT } from "./guest.ts";
 * import assert from "node:assert/strict";
 * const s = exceptionStub(14); // #PF pushes its own error code
 * assert.deepEqual([...s.subarray(0, 3)], [0x6a, 14, 0xe9]);
 * const rel = new DataView(s.buffer).getInt32(3, true);
 * assert.equal(LAYOUT.stubs + 16 * 14 + 7 + rel, LAYOUT.handler);
 * ```
 */
export function exceptionStub(vector: number): Uint8Array {
  const out = new Uint8Array(16).fill(0xcc);
  let i = 0;
  if (!HAS_ERROR_CODE.has(vector)) {
    out[i++] = 0x6a;
    out[i++] = 0x00;
  }
  out[i++] = 0x6a;
  out[i++] = vector;
  out[i++] = 0xe9;
  const next = LAYOUT.stubs + 16 * vector + i + 4;
  new DataView(out.buffer).setInt32(i, LAYOUT.handler - next, true);
  return out;
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function put64(m: DataView, at: number, lo: number, hi: number): void {
  m.setUint32(at, lo >>> 0, true);
  m.setUint32(at + 4, hi >>> 0, true);
}

/**
 * Write the GDT, IDT, TSS and code into guest memory `m` (guest-physical
 * indexing).
 *
 * Descriptors (SDM Vol. 3 §3.4.5, §7.2.3, §6.14.1): 64-bit code
 * 0x00af9a000000ffff (DPL 0) and 0x00affa000000ffff (DPL 3), data
 * 0x00cf92000000ffff and 0x00cff2000000ffff, a busy 64-bit TSS (type 0xb)
 * with limit 0x67; interrupt gates 0x8e (DPL 0).
 *
 * @example
 * ```ts
 * import { LAYOUT, SEL, writeDescriptors } from "./guest.ts";
 * import assert from "node:assert/strict";
 * const m = new Uint8Array(0x10000);
 * writeDescriptors(m);
 * const dv = new DataView(m.buffer);
 * assert.equal(dv.getBigUint64(LAYOUT.gdt + SEL.kernelCode, true), 0x00af9a000000ffffn);
 * assert.equal(dv.getBigUint64(LAYOUT.tss + 4, true), BigInt(LAYOUT.kernelStackTop));
 * assert.equal(m[LAYOUT.idt + 16 * 14 + 5], 0x8e); // #PF: interrupt gate, DPL 0
 * ```
 */
export function writeDescriptors(m: Uint8Array): void {
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const g = LAYOUT.gdt;
  put64(dv, g + 0x00, 0, 0);
  put64(dv, g + SEL.kernelCode, 0x0000ffff, 0x00af9a00);
  put64(dv, g + SEL.kernelData, 0x0000ffff, 0x00cf9200);
  put64(dv, g + (SEL.userData & ~3), 0x0000ffff, 0x00cff200);
  put64(dv, g + (SEL.userCode & ~3), 0x0000ffff, 0x00affa00);
  const t = LAYOUT.tss;
  put64(
    dv,
    g + SEL.tss,
    ((t & 0xffff) << 16 | 0x67) >>> 0,
    (((t >>> 16) & 0xff) | 0x8b00 | ((t >>> 24) << 24)) >>> 0,
  );
  put64(dv, g + SEL.tss + 8, 0, 0);
  // TSS: RSP0 at 4; I/O map base 0x68 (beyond the limit: no bitmap).
  m.fill(0, t, t + 0x68);
  put64(dv, t + 4, LAYOUT.kernelStackTop, 0);
  dv.setUint16(t + 0x66, 0x68, true);
  for (let v = 0; v < 32; v++) {
    const off = LAYOUT.stubs + 16 * v;
    const e = LAYOUT.idt + 16 * v;
    const type = 0x8e;
    put64(
      dv,
      e,
      ((SEL.kernelCode << 16) | (off & 0xffff)) >>> 0,
      ((off & 0xffff0000) | (type << 8)) >>> 0,
    );
    put64(dv, e + 8, 0, 0);
    m.set(exceptionStub(v), off);
  }
  m.set(DISPATCH_CODE, LAYOUT.dispatch);
  m.set(HANDLER_CODE, LAYOUT.handler);
  m.set(ACCESS_STUB, LAYOUT.kernelAccess);
  m.set(ACCESS_STUB, LAYOUT.userAccess);
}

/**
 * Build the harness page tables with memvirt's {@linkcode PageTable}: PML4
 * slot 0 identity-maps the first 2 MiB with 4 KiB pages (supervisor, except
 * the user access stub and user stack) and the rest of guest memory with
 * 2 MiB supervisor pages. Nothing is execute-disabled (so it works with
 * EFER.NXE = 0) and every entry has A (and leaves D) already set, so the CPU
 * never writes them. Returns the table with its root.
 *
 * @example
 * ```ts
 * import { buildHarnessTables, LAYOUT } from "./guest.ts";
 * import assert from "node:assert/strict";
 * const pt = buildHarnessTables(LAYOUT.memoryBytes);
 * assert.equal(pt.root, LAYOUT.harnessTables);
 * assert.equal(pt.walk(LAYOUT.userAccess, { kind: "fetch", user: true }).pa, LAYOUT.userAccess);
 * assert.equal(pt.walk(LAYOUT.dispatch, { user: true }).outcome.kind, "page-fault");
 * assert.equal(pt.walk(0x1f_0008).pa, 0x1f_0008);
 * ```
 */
export function buildHarnessTables(memoryBytes: number): PageTable {
  const mem = new PhysicalMemory({ size: memoryBytes, name: "guest" });
  const allocator = new FrameAllocator(mem, {
    start: LAYOUT.harnessTables,
    end: LAYOUT.harnessTablesEnd,
  });
  const pt = new PageTable(mem, {
    mode: pagingMode(X86_64_4LEVEL, { nxe: false }),
    allocator,
  });
  const ad = { accessed: true, dirty: true };
  for (let pa = 0x1000; pa < 0x200000; pa += 0x1000) {
    const user = pa === LAYOUT.userAccess || pa === LAYOUT.userStack;
    pt.map(pa, pa, { ...ad, user, writable: pa !== LAYOUT.userAccess });
  }
  for (let pa = 0x200000; pa < memoryBytes; pa += 0x200000) {
    pt.map(pa, pa, { ...ad, size: 0x200000 });
  }
  // A on the non-leaf entries too (encodeTable leaves it clear).
  for (const t of pt.tables()) {
    if (t.level === 1) continue;
    for (let i = 0; i < 512; i++) {
      const ea = t.address + 8 * i;
      const lo = mem.read32(ea);
      if ((lo & 1) !== 0 && (lo & 0x80) === 0) mem.write32(ea, lo | 0x20);
    }
  }
  return pt;
}

/** The harness part of guest memory (below `LAYOUT.data`), as loaded. */
export interface HarnessImage {
  /** Bytes of guest-physical [0, `LAYOUT.data`): descriptors, code, harness tables. */
  readonly bytes: Uint8Array;
  /** Harness root table (guest-physical). */
  readonly root: number;
  /** The harness PML4 slot-0 entry, low dword (copied into every case root). */
  readonly linkLo: number;
  /** The harness PML4 slot-0 entry, high dword. */
  readonly linkHi: number;
}

const images = new Map<number, HarnessImage>();

/**
 * The initial content of guest memory below `LAYOUT.data` for a guest of
 * `memoryBytes` (cached; do not modify): what the real guest holds there,
 * and what the model reads if a case's walk wanders into it.
 *
 * @example
 * ```ts
 * import { harnessImage, LAYOUT, SEL } from "./guest.ts";
 * import assert from "node:assert/strict";
 * const img = harnessImage(LAYOUT.memoryBytes);
 * assert.equal(img.bytes.length, LAYOUT.data);
 * assert.equal(img.root, LAYOUT.harnessTables);
 * assert.equal(img.bytes[LAYOUT.gdt + SEL.kernelCode + 5], 0x9a);
 * assert.equal(img.linkLo & 0xfff, 0x027); // P, R/W, U/S, A
 * ```
 */
export function harnessImage(memoryBytes: number): HarnessImage {
  let img = images.get(memoryBytes);
  if (img === undefined) {
    const bytes = new Uint8Array(LAYOUT.data);
    writeDescriptors(bytes);
    const pt = buildHarnessTables(memoryBytes);
    bytes.set(
      pt.memory.readBytes(
        LAYOUT.harnessTables,
        LAYOUT.harnessTablesEnd - LAYOUT.harnessTables,
      ),
      LAYOUT.harnessTables,
    );
    img = Object.freeze({
      bytes,
      root: pt.root,
      linkLo: pt.memory.read32(pt.root),
      linkHi: pt.memory.read32(pt.root + 4),
    });
    images.set(memoryBytes, img);
  }
  return img;
}
