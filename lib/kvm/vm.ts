/**
 * A KVM virtual machine with one vCPU, driven from Deno through `ioctl`
 * (Linux x86-64, `--allow-ffi`): `/dev/kvm` → `KVM_CREATE_VM` → guest
 * memory (`KVM_SET_USER_MEMORY_REGION`, backed by an `ArrayBuffer` of this
 * process) → `KVM_CREATE_VCPU` → the `kvm_run` area (`mmap`) → CPUID, REGS,
 * SREGS → `KVM_RUN`.
 *
 * Where `/dev/kvm` is absent or not permitted, {@linkcode kvmStatus} says
 * why and {@linkcode KvmVm.create} throws a {@linkcode KvmUnavailableError}
 * whose message starts with "KVM unavailable:".
 *
 * @module
 */

import {
  type CpuidEntry,
  cString,
  decodeCpuid,
  decodeRegs,
  decodeSregs,
  encodeCpuid,
  encodeRegs,
  encodeSregs,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_EXIT,
  KVM_GET_API_VERSION,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_GET_SUPPORTED_CPUID,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_RUN,
  KVM_SET_CPUID2,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  KVM_SET_USER_MEMORY_REGION,
  type KvmRegs,
  type KvmSregs,
  lastError,
  type Libc,
  loadLibc,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  REGS_BYTES,
  RUN,
  SREGS_BYTES,
} from "./ffi.ts";

/** The error every KVM entry point throws where KVM cannot be used. */
export class KvmUnavailableError extends Error {
  /** Why, without the "KVM unavailable: " prefix. */
  readonly reason: string;

  /**
   * An error whose message is "KVM unavailable: " + `reason`.
   *
   * @example
   * ```ts
   * import { KvmUnavailableError } from "./vm.ts";
   * import assert from "node:assert/strict";
   * const e = new KvmUnavailableError("/dev/kvm: ENOENT");
   * assert.equal(e.message, "KVM unavailable: /dev/kvm: ENOENT");
   * ```
   */
  constructor(reason: string) {
    super(`KVM unavailable: ${reason}`);
    this.name = "KvmUnavailableError";
    this.reason = reason;
  }
}

/** Whether KVM can be used here, and if not, why. */
export interface KvmStatus {
  /** True when a VM can be created. */
  readonly available: boolean;
  /** "ok", or the reason it cannot (no `/dev/kvm`, EACCES, no FFI, …). */
  readonly reason: string;
  /** `KVM_GET_API_VERSION` (12) when available. */
  readonly apiVersion?: number;
}

let status: KvmStatus | undefined;

/**
 * Probe KVM once: Linux x86-64, FFI permitted, libc loadable, `/dev/kvm`
 * openable read-write, API version 12. Never throws.
 *
 * @example
 * ```ts
 * import { kvmStatus } from "./vm.ts";
 * import assert from "node:assert/strict";
 * const s = kvmStatus();
 * assert.equal(typeof s.available, "boolean");
 * if (!s.available) assert.notEqual(s.reason, "ok");
 * else assert.equal(s.apiVersion, 12);
 * ```
 */
export function kvmStatus(): KvmStatus {
  if (status === undefined) status = probe();
  return status;
}

/**
 * Whether KVM can be used here (see {@linkcode kvmStatus} for why not).
 *
 * @example
 * ```ts
 * import { kvmAvailable, KvmVm } from "./vm.ts";
 * import assert from "node:assert/strict";
 * assert.equal(typeof kvmAvailable(), "boolean");
 * if (!kvmAvailable()) assert.throws(() => KvmVm.create(), /KVM unavailable: /);
 * ```
 */
export function kvmAvailable(): boolean {
  return kvmStatus().available;
}

function probe(): KvmStatus {
  const no = (reason: string): KvmStatus => ({ available: false, reason });
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return no(
      `needs Linux on x86-64 (this is ${Deno.build.os}/${Deno.build.arch})`,
    );
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return no("FFI is not permitted (run Deno with --allow-ffi)");
    }
  } catch (e) {
    return no(`cannot query the FFI permission: ${(e as Error).message}`);
  }
  let c: Libc;
  try {
    c = loadLibc();
  } catch (e) {
    return no(`cannot load libc.so.6: ${(e as Error).message}`);
  }
  const fd = c.open(cString("/dev/kvm"), O_RDWR | O_CLOEXEC);
  if (fd < 0) return no(`cannot open /dev/kvm: ${lastError()}`);
  try {
    const v = c.ioctlInt(fd, BigInt(KVM_GET_API_VERSION), 0n);
    if (v !== 12) {
      return no(`KVM_GET_API_VERSION returned ${v}, expected 12`);
    }
    return { available: true, reason: "ok", apiVersion: v };
  } finally {
    c.close(fd);
  }
}

/** Why `KVM_RUN` returned. */
export type KvmExit =
  | {
    readonly kind: "io";
    /** I/O port. */
    readonly port: number;
    /** "out" (guest wrote) or "in". */
    readonly direction: "in" | "out";
    /** Access size in bytes. */
    readonly size: number;
    /** The first data item (for "out"). */
    readonly value: number;
  }
  | { readonly kind: "hlt" }
  | { readonly kind: "shutdown" }
  | {
    readonly kind: "mmio";
    /** Guest-physical address outside every memory slot. */
    readonly physAddr: number;
  }
  | {
    readonly kind: "fail-entry" | "internal-error" | "other";
    /** `exit_reason`. */
    readonly code: number;
    /** The first u64 of the exit union (hardware reason or suberror). */
    readonly detail: bigint;
  };

/** Options for {@linkcode KvmVm.create}. */
export interface KvmVmOptions {
  /** Guest memory in bytes, a multiple of 4096, at guest-physical 0. Default 32 MiB. */
  memoryBytes?: number;
  /**
   * Edit the CPUID the guest sees; default: exactly what
   * `KVM_GET_SUPPORTED_CPUID` offers (so SMEP/SMAP appear where supported).
   */
  cpuid?: (supported: CpuidEntry[]) => CpuidEntry[];
}

/**
 * A VM with one vCPU and one memory slot at guest-physical 0. Guest memory
 * is an `ArrayBuffer` of this process (`memory`); writes to it are seen by
 * the guest, except that a shadow MMU may have cached translations derived
 * from guest page-table pages written this way (reset those from inside the
 * guest, or use a fresh VM).
 *
 * @example A guest that executes `out 0x42, al` with AL = 7, then `hlt`.
 * ```ts
 * import { kvmAvailable, KvmVm } from "./vm.ts";
 * import assert from "node:assert/strict";
 * if (kvmAvailable()) {
 *   const vm = KvmVm.create({ memoryBytes: 1 << 16 });
 *   try {
 *     vm.memory.set([0xb0, 0x07, 0xe6, 0x42, 0xf4], 0x1000); // mov al,7; out 0x42,al; hlt
 *     const s = vm.getSregs();
 *     s.cs.base = 0n;
 *     s.cs.selector = 0;
 *     vm.setSregs(s);
 *     vm.setRegs({ ...vm.getRegs(), rip: 0x1000n, rflags: 2n });
 *     const exit = vm.run();
 *     assert.equal(exit.kind, "io");
 *     if (exit.kind === "io") assert.deepEqual([exit.port, exit.value], [0x42, 7]);
 *     assert.equal(vm.run().kind, "hlt");
 *   } finally {
 *     vm.close();
 *   }
 * }
 * ```
 */
export class KvmVm {
  /** Guest-physical memory (index = guest-physical address). */
  readonly memory: Uint8Array;
  /** The CPUID given to the vCPU. */
  readonly cpuid: readonly CpuidEntry[];
  #c: Libc;
  #kvm: number;
  #vm: number;
  #vcpu: number;
  #run: Deno.PointerObject;
  #runView: DataView;
  #runBytes: number;
  #backing: Uint8Array;
  #regs = new Uint8Array(REGS_BYTES);
  #sregs = new Uint8Array(SREGS_BYTES);
  #closed = false;

  private constructor(init: {
    c: Libc;
    kvm: number;
    vm: number;
    vcpu: number;
    run: Deno.PointerObject;
    runBytes: number;
    backing: Uint8Array;
    memory: Uint8Array;
    cpuid: CpuidEntry[];
  }) {
    this.#c = init.c;
    this.#kvm = init.kvm;
    this.#vm = init.vm;
    this.#vcpu = init.vcpu;
    this.#run = init.run;
    this.#runBytes = init.runBytes;
    this.#runView = new DataView(
      new Deno.UnsafePointerView(init.run).getArrayBuffer(init.runBytes),
    );
    this.#backing = init.backing;
    this.memory = init.memory;
    this.cpuid = Object.freeze(init.cpuid.map((e) => Object.freeze(e)));
  }

  /**
   * Create the VM, its memory and its vCPU. Throws
   * {@linkcode KvmUnavailableError} where KVM cannot be used, and `Error`
   * naming the failing ioctl otherwise.
   */
  static create(options: KvmVmOptions = {}): KvmVm {
    const st = kvmStatus();
    if (!st.available) throw new KvmUnavailableError(st.reason);
    const size = options.memoryBytes ?? 32 * 2 ** 20;
    if (!Number.isInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new RangeError(
        `guest memory size ${
          String(size)
        } is invalid: expected a positive multiple of 4096`,
      );
    }
    const c = loadLibc();
    const fds: number[] = [];
    let runArea: Deno.PointerObject | null = null;
    let runAreaBytes = 0;
    const fail = (what: string): never => {
      const err = lastError();
      if (runArea !== null) c.munmap(runArea, BigInt(runAreaBytes));
      for (const fd of fds.reverse()) c.close(fd);
      throw new Error(`KVM: ${what} failed: ${err}`);
    };
    const kvm = c.open(cString("/dev/kvm"), O_RDWR | O_CLOEXEC);
    if (kvm < 0) throw new KvmUnavailableError(`/dev/kvm: ${lastError()}`);
    fds.push(kvm);
    const vm = c.ioctlInt(kvm, BigInt(KVM_CREATE_VM), 0n);
    if (vm < 0) fail("KVM_CREATE_VM");
    fds.push(vm);
    // Guest memory: a page-aligned window into an ArrayBuffer of ours. V8
    // never moves an ArrayBuffer's backing store, and this object keeps it
    // alive for as long as the VM exists.
    const backing = new Uint8Array(size + 4096);
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(backing));
    const skip = Number((4096n - (BigInt(base) % 4096n)) % 4096n);
    const memory = backing.subarray(skip, skip + size);
    const region = new DataView(new ArrayBuffer(32));
    region.setUint32(0, 0, true); // slot
    region.setUint32(4, 0, true); // flags
    region.setBigUint64(8, 0n, true); // guest_phys_addr
    region.setBigUint64(16, BigInt(size), true); // memory_size
    region.setBigUint64(24, BigInt(base) + BigInt(skip), true); // userspace_addr
    if (
      c.ioctl(
        vm,
        BigInt(KVM_SET_USER_MEMORY_REGION),
        new Uint8Array(region.buffer),
      ) < 0
    ) fail("KVM_SET_USER_MEMORY_REGION");
    const vcpu = c.ioctlInt(vm, BigInt(KVM_CREATE_VCPU), 0n);
    if (vcpu < 0) fail("KVM_CREATE_VCPU");
    fds.push(vcpu);
    const runBytes = c.ioctlInt(kvm, BigInt(KVM_GET_VCPU_MMAP_SIZE), 0n);
    if (runBytes <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");
    const run = c.mmap(
      null,
      BigInt(runBytes),
      PROT_READ | PROT_WRITE,
      MAP_SHARED,
      vcpu,
      0n,
    );
    if (
      run === null || Deno.UnsafePointer.value(run) === 0xffffffffffffffffn
    ) fail("mmap of the kvm_run area");
    runArea = run;
    runAreaBytes = runBytes;
    // CPUID: what KVM supports (NX, MAXPHYADDR, …; `options.cpuid` may add
    // what a KVM enforces without listing it, as kvm_pvm does SMEP/SMAP).
    let cpuid: CpuidEntry[] = [];
    for (let n = 64; n <= 4096; n *= 2) {
      const buf = new Uint8Array(8 + n * 40);
      new DataView(buf.buffer).setUint32(0, n, true);
      if (c.ioctl(kvm, BigInt(KVM_GET_SUPPORTED_CPUID), buf) >= 0) {
        cpuid = decodeCpuid(buf);
        break;
      }
      // E2BIG: the buffer is too small; try a bigger one
      if (!/E2BIG/.test(lastError())) fail("KVM_GET_SUPPORTED_CPUID");
    }
    if (cpuid.length === 0) fail("KVM_GET_SUPPORTED_CPUID");
    if (options.cpuid) cpuid = options.cpuid(cpuid);
    if (c.ioctl(vcpu, BigInt(KVM_SET_CPUID2), encodeCpuid(cpuid)) < 0) {
      fail("KVM_SET_CPUID2");
    }
    return new KvmVm({
      c,
      kvm,
      vm,
      vcpu,
      run: run!,
      runBytes,
      backing,
      memory,
      cpuid,
    });
  }

  #live(): void {
    if (this.#closed) throw new Error("KVM: the VM has been closed");
  }

  #ioctl(req: number, buf: Uint8Array, what: string): void {
    this.#live();
    if (this.#c.ioctl(this.#vcpu, BigInt(req), buf) < 0) {
      throw new Error(`KVM: ${what} failed: ${lastError()}`);
    }
  }

  /** `KVM_GET_REGS`. */
  getRegs(): KvmRegs {
    this.#ioctl(KVM_GET_REGS, this.#regs, "KVM_GET_REGS");
    return decodeRegs(this.#regs);
  }

  /** `KVM_SET_REGS`. */
  setRegs(regs: KvmRegs): void {
    encodeRegs(regs, this.#regs);
    this.#ioctl(KVM_SET_REGS, this.#regs, "KVM_SET_REGS");
  }

  /** `KVM_GET_SREGS`. */
  getSregs(): KvmSregs {
    this.#ioctl(KVM_GET_SREGS, this.#sregs, "KVM_GET_SREGS");
    return decodeSregs(this.#sregs);
  }

  /** `KVM_SET_SREGS` (the interrupt bitmap is kept from the last get). */
  setSregs(sregs: KvmSregs): void {
    encodeSregs(sregs, this.#sregs);
    this.#ioctl(KVM_SET_SREGS, this.#sregs, "KVM_SET_SREGS");
  }

  /** `KVM_CHECK_EXTENSION` on the VM. */
  checkExtension(cap: number): number {
    this.#live();
    return this.#c.ioctlInt(this.#vm, BigInt(KVM_CHECK_EXTENSION), BigInt(cap));
  }

  /** `KVM_RUN` until the guest exits to us; decodes the exit. */
  run(): KvmExit {
    this.#live();
    for (;;) {
      const r = this.#c.ioctlInt(this.#vcpu, BigInt(KVM_RUN), 0n);
      if (r >= 0) break;
      const err = lastError();
      if (/EINTR|EAGAIN/.test(err)) continue;
      throw new Error(`KVM: KVM_RUN failed: ${err}`);
    }
    const v = this.#runView;
    const code = v.getUint32(RUN.exitReason, true);
    switch (code) {
      case KVM_EXIT.IO: {
        const size = v.getUint8(RUN.ioSize);
        const off = Number(v.getBigUint64(RUN.ioDataOffset, true));
        const value = size === 1
          ? v.getUint8(off)
          : size === 2
          ? v.getUint16(off, true)
          : v.getUint32(off, true);
        return {
          kind: "io",
          port: v.getUint16(RUN.ioPort, true),
          direction: v.getUint8(RUN.ioDirection) === 1 ? "out" : "in",
          size,
          value,
        };
      }
      case KVM_EXIT.HLT:
        return { kind: "hlt" };
      case KVM_EXIT.SHUTDOWN:
        return { kind: "shutdown" };
      case KVM_EXIT.MMIO:
        return {
          kind: "mmio",
          physAddr: Number(v.getBigUint64(RUN.mmioPhysAddr, true)),
        };
      default:
        return {
          kind: code === KVM_EXIT.FAIL_ENTRY
            ? "fail-entry"
            : code === KVM_EXIT.INTERNAL_ERROR
            ? "internal-error"
            : "other",
          code,
          detail: v.getBigUint64(RUN.detail, true),
        };
    }
  }

  /** Whether {@linkcode KvmVm.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Release the vCPU, the VM and `/dev/kvm` (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#c.munmap(this.#run, BigInt(this.#runBytes));
    this.#c.close(this.#vcpu);
    this.#c.close(this.#vm);
    this.#c.close(this.#kvm);
    // the guest memory stays a plain ArrayBuffer, freed by the GC
    this.#backing = new Uint8Array(0);
  }

  /** `using vm = KvmVm.create()` closes the VM at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }
}
