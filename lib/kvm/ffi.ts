/**
 * The thin layer between memvirt and Linux KVM: libc through Deno FFI, the
 * `ioctl` numbers and the byte layouts of the KVM structures it passes.
 *
 * Everything here was checked against `<linux/kvm.h>` and
 * `<asm/kvm.h>` (x86-64): `struct kvm_regs` is 0x90 bytes, `struct
 * kvm_sregs` 0x138 bytes (eight 0x18-byte `kvm_segment`s, then the GDT and
 * IDT `kvm_dtable`s at 0xc0 and 0xd0, CR0 at 0xe0, EFER at 0x108), and the
 * `kvm_run` area has `exit_reason` at 8 and the exit union at 0x20. The
 * ioctl numbers are the kernel's `_IO`/`_IOR`/`_IOW`/`_IOWR` values for the
 * KVM magic 0xAE.
 *
 * Nothing here keeps state but the lazily opened libc handle; the VM and
 * vCPU objects live in `vm.ts`.
 *
 * @module
 */

/** `KVM_GET_API_VERSION` (`_IO(0xAE, 0x00)`); the answer is always 12. */
export const KVM_GET_API_VERSION = 0xae00;
/** `KVM_CREATE_VM` (`_IO(0xAE, 0x01)`). */
export const KVM_CREATE_VM = 0xae01;
/** `KVM_CHECK_EXTENSION` (`_IO(0xAE, 0x03)`). */
export const KVM_CHECK_EXTENSION = 0xae03;
/** `KVM_GET_VCPU_MMAP_SIZE` (`_IO(0xAE, 0x04)`). */
export const KVM_GET_VCPU_MMAP_SIZE = 0xae04;
/** `KVM_GET_SUPPORTED_CPUID` (`_IOWR(0xAE, 0x05, struct kvm_cpuid2)`). */
export const KVM_GET_SUPPORTED_CPUID = 0xc008ae05;
/** `KVM_CREATE_VCPU` (`_IO(0xAE, 0x41)`). */
export const KVM_CREATE_VCPU = 0xae41;
/** `KVM_SET_USER_MEMORY_REGION` (`_IOW(0xAE, 0x46, 32 bytes)`). */
export const KVM_SET_USER_MEMORY_REGION = 0x4020ae46;
/** `KVM_RUN` (`_IO(0xAE, 0x80)`). */
export const KVM_RUN = 0xae80;
/** `KVM_GET_REGS` (`_IOR(0xAE, 0x81, struct kvm_regs)`). */
export const KVM_GET_REGS = 0x8090ae81;
/** `KVM_SET_REGS` (`_IOW(0xAE, 0x82, struct kvm_regs)`). */
export const KVM_SET_REGS = 0x4090ae82;
/** `KVM_GET_SREGS` (`_IOR(0xAE, 0x83, struct kvm_sregs)`). */
export const KVM_GET_SREGS = 0x8138ae83;
/** `KVM_SET_SREGS` (`_IOW(0xAE, 0x84, struct kvm_sregs)`). */
export const KVM_SET_SREGS = 0x4138ae84;
/** `KVM_SET_CPUID2` (`_IOW(0xAE, 0x90, struct kvm_cpuid2)`). */
export const KVM_SET_CPUID2 = 0x4008ae90;

/** `kvm_run.exit_reason` values used here. */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HLT: 5,
  MMIO: 6,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTERNAL_ERROR: 17,
} as const;

/** Byte offsets in the `kvm_run` area. */
export const RUN = {
  exitReason: 0x08,
  /** `io.direction` (u8: 0 in, 1 out). */
  ioDirection: 0x20,
  /** `io.size` (u8). */
  ioSize: 0x21,
  /** `io.port` (u16). */
  ioPort: 0x22,
  /** `io.count` (u32). */
  ioCount: 0x24,
  /** `io.data_offset` (u64, from the start of `kvm_run`). */
  ioDataOffset: 0x28,
  /** `mmio.phys_addr` (u64). */
  mmioPhysAddr: 0x20,
  /** `internal.suberror` / `fail_entry.hardware_entry_failure_reason`. */
  detail: 0x20,
} as const;

/** Size of `struct kvm_regs`. */
export const REGS_BYTES = 0x90;
/** Size of `struct kvm_sregs`. */
export const SREGS_BYTES = 0x138;
/** Size of `struct kvm_segment`. */
export const SEGMENT_BYTES = 0x18;
/** Size of `struct kvm_cpuid_entry2`. */
export const CPUID_ENTRY_BYTES = 0x28;

/** One general-purpose register name (or RIP, RFLAGS). */
export type GprName =
  | "rax"
  | "rbx"
  | "rcx"
  | "rdx"
  | "rsi"
  | "rdi"
  | "rsp"
  | "rbp"
  | "r8"
  | "r9"
  | "r10"
  | "r11"
  | "r12"
  | "r13"
  | "r14"
  | "r15"
  | "rip"
  | "rflags";

/** General-purpose registers, in `struct kvm_regs` order. */
export const GPR_NAMES: readonly GprName[] = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
];

/** `struct kvm_regs` as bigints. */
export type KvmRegs = Record<GprName, bigint>;

/**
 * Decode `struct kvm_regs` from its bytes.
 *
 * @example
 * ```ts
 * import { decodeRegs, encodeRegs, REGS_BYTES } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const bytes = new Uint8Array(REGS_BYTES);
 * const r = decodeRegs(bytes);
 * r.rip = 0x4000n;
 * r.rflags = 2n;
 * encodeRegs(r, bytes);
 * assert.equal(new DataView(bytes.buffer).getBigUint64(0x80, true), 0x4000n);
 * assert.equal(decodeRegs(bytes).rflags, 2n);
 * ```
 */
export function decodeRegs(bytes: Uint8Array): KvmRegs {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, REGS_BYTES);
  const out = {} as KvmRegs;
  GPR_NAMES.forEach((n, i) => out[n] = dv.getBigUint64(8 * i, true));
  return out;
}

/**
 * Encode `struct kvm_regs` into `bytes`.
 *
 * @example
 * ```ts
 * import { decodeRegs, encodeRegs, REGS_BYTES } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const b = new Uint8Array(REGS_BYTES);
 * encodeRegs({ ...decodeRegs(b), rsp: 0x10000n }, b);
 * assert.equal(new DataView(b.buffer).getBigUint64(6 * 8, true), 0x10000n);
 * ```
 */
export function encodeRegs(regs: KvmRegs, bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, REGS_BYTES);
  GPR_NAMES.forEach((n, i) =>
    dv.setBigUint64(8 * i, BigInt.asUintN(64, regs[n]), true)
  );
}

/** `struct kvm_segment`: a segment register's hidden part. */
export interface KvmSegment {
  /** Base address. */
  base: bigint;
  /** Limit (bytes − 1, after granularity scaling). */
  limit: number;
  /** Selector. */
  selector: number;
  /** Descriptor type (4 bits). */
  type: number;
  /** P. */
  present: number;
  /** DPL. */
  dpl: number;
  /** D/B. */
  db: number;
  /** S (1 = code/data, 0 = system). */
  s: number;
  /** L (64-bit code). */
  l: number;
  /** G. */
  g: number;
  /** AVL. */
  avl: number;
  /** Unusable (a null selector's cache). */
  unusable: number;
}

/** `struct kvm_sregs` (without the interrupt bitmap, kept as read). */
export interface KvmSregs {
  /** Segment registers. */
  cs: KvmSegment;
  /** DS. */
  ds: KvmSegment;
  /** ES. */
  es: KvmSegment;
  /** FS. */
  fs: KvmSegment;
  /** GS. */
  gs: KvmSegment;
  /** SS. */
  ss: KvmSegment;
  /** TR. */
  tr: KvmSegment;
  /** LDTR. */
  ldt: KvmSegment;
  /** GDTR. */
  gdt: { base: bigint; limit: number };
  /** IDTR. */
  idt: { base: bigint; limit: number };
  /** CR0. */
  cr0: bigint;
  /** CR2. */
  cr2: bigint;
  /** CR3. */
  cr3: bigint;
  /** CR4. */
  cr4: bigint;
  /** CR8. */
  cr8: bigint;
  /** EFER. */
  efer: bigint;
  /** IA32_APIC_BASE. */
  apicBase: bigint;
}

const SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

function getSeg(dv: DataView, o: number): KvmSegment {
  return {
    base: dv.getBigUint64(o, true),
    limit: dv.getUint32(o + 8, true),
    selector: dv.getUint16(o + 12, true),
    type: dv.getUint8(o + 14),
    present: dv.getUint8(o + 15),
    dpl: dv.getUint8(o + 16),
    db: dv.getUint8(o + 17),
    s: dv.getUint8(o + 18),
    l: dv.getUint8(o + 19),
    g: dv.getUint8(o + 20),
    avl: dv.getUint8(o + 21),
    unusable: dv.getUint8(o + 22),
  };
}

function setSeg(dv: DataView, o: number, s: KvmSegment): void {
  dv.setBigUint64(o, s.base, true);
  dv.setUint32(o + 8, s.limit >>> 0, true);
  dv.setUint16(o + 12, s.selector, true);
  dv.setUint8(o + 14, s.type);
  dv.setUint8(o + 15, s.present);
  dv.setUint8(o + 16, s.dpl);
  dv.setUint8(o + 17, s.db);
  dv.setUint8(o + 18, s.s);
  dv.setUint8(o + 19, s.l);
  dv.setUint8(o + 20, s.g);
  dv.setUint8(o + 21, s.avl);
  dv.setUint8(o + 22, s.unusable);
  dv.setUint8(o + 23, 0);
}

/**
 * Decode `struct kvm_sregs` from its bytes.
 *
 * @example
 * ```ts
 * import { decodeSregs, encodeSregs, SREGS_BYTES } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const bytes = new Uint8Array(SREGS_BYTES);
 * const s = decodeSregs(bytes);
 * s.efer = 0xd01n;
 * s.cs.l = 1;
 * s.gdt.limit = 0x37;
 * encodeSregs(s, bytes);
 * const dv = new DataView(bytes.buffer);
 * assert.equal(dv.getBigUint64(0x108, true), 0xd01n); // efer
 * assert.equal(bytes[19], 1);                          // cs.l
 * assert.equal(dv.getUint16(0xc8, true), 0x37);        // gdt.limit
 * ```
 */
export function decodeSregs(bytes: Uint8Array): KvmSregs {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, SREGS_BYTES);
  const segs = {} as Record<(typeof SEGMENTS)[number], KvmSegment>;
  SEGMENTS.forEach((n, i) => segs[n] = getSeg(dv, i * SEGMENT_BYTES));
  return {
    ...segs,
    gdt: { base: dv.getBigUint64(0xc0, true), limit: dv.getUint16(0xc8, true) },
    idt: { base: dv.getBigUint64(0xd0, true), limit: dv.getUint16(0xd8, true) },
    cr0: dv.getBigUint64(0xe0, true),
    cr2: dv.getBigUint64(0xe8, true),
    cr3: dv.getBigUint64(0xf0, true),
    cr4: dv.getBigUint64(0xf8, true),
    cr8: dv.getBigUint64(0x100, true),
    efer: dv.getBigUint64(0x108, true),
    apicBase: dv.getBigUint64(0x110, true),
  };
}

/**
 * Encode `struct kvm_sregs` into `bytes`, leaving the interrupt bitmap
 * (0x118..0x137) as it is.
 *
 * @example
 * ```ts
 * import { decodeSregs, encodeSregs, SREGS_BYTES } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const b = new Uint8Array(SREGS_BYTES).fill(7, 0x118);
 * encodeSregs({ ...decodeSregs(b), cr3: 0x20000n }, b);
 * assert.equal(new DataView(b.buffer).getBigUint64(0xf0, true), 0x20000n);
 * assert.equal(b[0x118], 7);
 * ```
 */
export function encodeSregs(s: KvmSregs, bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, SREGS_BYTES);
  SEGMENTS.forEach((n, i) => setSeg(dv, i * SEGMENT_BYTES, s[n]));
  dv.setBigUint64(0xc0, s.gdt.base, true);
  dv.setUint16(0xc8, s.gdt.limit, true);
  dv.setBigUint64(0xd0, s.idt.base, true);
  dv.setUint16(0xd8, s.idt.limit, true);
  dv.setBigUint64(0xe0, s.cr0, true);
  dv.setBigUint64(0xe8, s.cr2, true);
  dv.setBigUint64(0xf0, s.cr3, true);
  dv.setBigUint64(0xf8, s.cr4, true);
  dv.setBigUint64(0x100, s.cr8, true);
  dv.setBigUint64(0x108, s.efer, true);
  dv.setBigUint64(0x110, s.apicBase, true);
}

/** One CPUID leaf as KVM reports it (`struct kvm_cpuid_entry2`). */
export interface CpuidEntry {
  /** EAX input. */
  function: number;
  /** ECX input (sub-leaf). */
  index: number;
  /** KVM_CPUID_FLAG_* bits. */
  flags: number;
  /** Output EAX. */
  eax: number;
  /** Output EBX. */
  ebx: number;
  /** Output ECX. */
  ecx: number;
  /** Output EDX. */
  edx: number;
}

/**
 * Decode the entries of a `struct kvm_cpuid2` buffer (u32 nent, u32 pad,
 * then 40-byte entries).
 *
 * @example
 * ```ts
 * import { decodeCpuid, encodeCpuid } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const e = { function: 7, index: 0, flags: 1, eax: 0, ebx: 1 << 20, ecx: 0, edx: 0 };
 * const buf = encodeCpuid([e]);
 * assert.equal(buf.length, 8 + 40);
 * assert.deepEqual(decodeCpuid(buf), [e]);
 * ```
 */
export function decodeCpuid(buf: Uint8Array): CpuidEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + i * CPUID_ENTRY_BYTES;
    out.push({
      function: dv.getUint32(o, true),
      index: dv.getUint32(o + 4, true),
      flags: dv.getUint32(o + 8, true),
      eax: dv.getUint32(o + 12, true),
      ebx: dv.getUint32(o + 16, true),
      ecx: dv.getUint32(o + 20, true),
      edx: dv.getUint32(o + 24, true),
    });
  }
  return out;
}

/**
 * Encode CPUID entries as a `struct kvm_cpuid2`.
 *
 * @example
 * ```ts
 * import { encodeCpuid } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const b = encodeCpuid([{ function: 0x80000008, index: 0, flags: 0, eax: 0x3030, ebx: 0, ecx: 0, edx: 0 }]);
 * const dv = new DataView(b.buffer);
 * assert.equal(dv.getUint32(0, true), 1);            // nent
 * assert.equal(dv.getUint32(8, true), 0x80000008);   // entries[0].function
 * assert.equal(dv.getUint32(8 + 12, true), 0x3030);  // entries[0].eax
 * ```
 */
export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const buf = new Uint8Array(8 + entries.length * CPUID_ENTRY_BYTES);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = 8 + i * CPUID_ENTRY_BYTES;
    dv.setUint32(o, e.function >>> 0, true);
    dv.setUint32(o + 4, e.index >>> 0, true);
    dv.setUint32(o + 8, e.flags >>> 0, true);
    dv.setUint32(o + 12, e.eax >>> 0, true);
    dv.setUint32(o + 16, e.ebx >>> 0, true);
    dv.setUint32(o + 20, e.ecx >>> 0, true);
    dv.setUint32(o + 24, e.edx >>> 0, true);
  });
  return buf;
}

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // ioctl is variadic; every argument here is an integer or a pointer, which
  // the x86-64 SysV ABI passes the same way for variadic and fixed calls.
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctlInt: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** The libc functions memvirt's KVM backend calls. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let libc: Libc | undefined;

/**
 * Open libc through Deno FFI (once). Throws the error `Deno.dlopen` throws
 * (no `--allow-ffi`, not Linux, no `libc.so.6`).
 *
 * @example
 * ```ts
 * import { loadLibc } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * try {
 *   assert.equal(typeof loadLibc().ioctl, "function");
 *   assert.equal(loadLibc(), loadLibc()); // opened once
 * } catch (e) {
 *   assert.ok(e instanceof Error); // no FFI permission or not Linux
 * }
 * ```
 */
export function loadLibc(): Libc {
  if (libc === undefined) {
    libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  }
  return libc;
}

/**
 * The calling thread's `errno` and its text, read right after a failed
 * libc call.
 *
 * @example
 * ```ts
 * import { lastError, loadLibc } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * try {
 *   const c = loadLibc();
 *   const fd = c.open(new TextEncoder().encode("/nonexistent/memvirt\0"), 0);
 *   assert.equal(fd, -1);
 *   assert.match(lastError(), /ENOENT|No such file/);
 * } catch (e) {
 *   assert.ok(e instanceof Error); // no FFI here
 * }
 * ```
 */
export function lastError(): string {
  const c = loadLibc();
  const p = c.__errno_location();
  const errno = p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  const s = c.strerror(errno);
  const text = s === null
    ? "unknown error"
    : new Deno.UnsafePointerView(s).getCString();
  const name = ERRNO_NAMES[errno];
  return `${name ?? "errno " + errno}: ${text}`;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  7: "E2BIG",
  9: "EBADF",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  25: "ENOTTY",
  38: "ENOSYS",
};

/**
 * A NUL-terminated C string.
 *
 * @example
 * ```ts
 * import { cString } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([...cString("kvm")], [0x6b, 0x76, 0x6d, 0]);
 * ```
 */
export function cString(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/** `open` flags. */
export const O_RDWR = 2;
/** `O_CLOEXEC`. */
export const O_CLOEXEC = 0x80000;
/** `mmap` protections and flags. */
export const PROT_READ = 1,
  PROT_WRITE = 2,
  MAP_SHARED = 1,
  MAP_PRIVATE = 2,
  MAP_ANONYMOUS = 0x20,
  MAP_NORESERVE = 0x4000;
