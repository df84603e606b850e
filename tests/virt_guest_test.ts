/**
 * The guest OS model under the reference scheme: mmap and demand paging,
 * munmap, mprotect (PROT_NONE keeps data), fork with copy-on-write, exec,
 * exit, kernel accesses, TLB flushes as a kernel does them, out of
 * memory, ballooning — on Xen and KVM domains alike.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type AccessReport,
  DIRECT_MAP,
  GuestOs,
  Host,
  type HypervisorKind,
  KERNEL_HEAP,
  KERNEL_TEXT,
  ReferenceScheme,
  type SchemeEvent,
} from "../lib/virt/mod.ts";
import { PFEC_P, PFEC_U, PFEC_W } from "../lib/paging/walker.ts";

const MiB = 2 ** 20;

function boot(
  kind: HypervisorKind = "xen",
  memory = 4 * MiB,
): { host: Host<HypervisorKind>; os: GuestOs; ref: ReferenceScheme } {
  const host = new Host<HypervisorKind>({
    memory: 64 * MiB,
    hypervisor: kind,
    seed: 1,
  });
  const ref = new ReferenceScheme({ eventLog: 4096 });
  const os = new GuestOs(host.createDomain({ name: "g", memory }), {
    scheme: ref,
  });
  return { host, os, ref };
}

function resolutions(r: AccessReport): string[] {
  return r.faults.map((f) => f.resolution);
}

/** The guest PTE of user `va` in the running process (via a side-effect-free walk). */
function pte(os: GuestOs, va: number) {
  const w = os.current!.pageTable.lookup(va);
  return w.steps[w.steps.length - 1];
}

/**
 * The guest's bookkeeping matches its tables: every frame a PTE names has
 * exactly as many references as PTEs naming it; table frames in use equal
 * the tables reachable from every root; nothing else is allocated.
 */
function checkFrames(os: GuestOs): void {
  const m = os.frames.memory;
  const refs = new Map<number, number>();
  const tables = new Set<number>();
  const walk = (t: number, level: number, lo: number, hi: number) => {
    tables.add(t);
    for (let i = lo; i <= hi; i++) {
      const elo = m.read32(t + 8 * i), ehi = m.read32(t + 8 * i + 4);
      if ((elo | ehi) === 0) continue;
      const addr = (ehi & 0xfffff) * 2 ** 32 + ((elo & 0xfffff000) >>> 0);
      if (level === 1) refs.set(addr, (refs.get(addr) ?? 0) + 1);
      else if ((elo & 1) && !(elo & 0x80)) walk(addr, level - 1, 0, 511);
    }
  };
  for (const p of os.processes) walk(p.root, 4, 0, 255);
  for (const [gpa, n] of refs) {
    assert.equal(os.frames.refcount(gpa), n, `refcount of ${gpa.toString(16)}`);
    assert.equal(os.frames.roleOf(gpa), "data");
  }
  const roles = os.frames.countByRole();
  assert.equal(roles.data, refs.size, "data frames in use");
  // kernel tables: the kernel root and what hangs below its upper half
  const ktables = new Set<number>();
  const kwalk = (t: number, level: number, lo: number) => {
    ktables.add(t);
    for (let i = lo; i <= 511; i++) {
      const elo = m.read32(t + 8 * i), ehi = m.read32(t + 8 * i + 4);
      if ((elo & 1) && !(elo & 0x80) && level > 1) {
        kwalk(
          (ehi & 0xfffff) * 2 ** 32 + ((elo & 0xfffff000) >>> 0),
          level - 1,
          0,
        );
      }
    }
  };
  kwalk(os.kernelTable.root, 4, 256);
  assert.equal(roles.table, tables.size + ktables.size, "table frames in use");
  assert.equal(roles.kernel, os.kernelHeapPages + os.kernelTextPages);
  assert.equal(
    os.frames.allocatedCount,
    roles.table + roles.data + roles.kernel,
  );
}

for (const kind of ["xen", "kvm"] as const) {
  Deno.test(`${kind}: mmap is lazy; the first touch is a demand-zero fault`, () => {
    const { os, ref } = boot(kind);
    const p = os.spawn("init");
    os.switchTo(p.pid);
    const used = os.frames.allocatedCount;
    const a = os.mmap({ length: 3 * 4096, prot: "rw" });
    assert.equal(a, 0x7eff_ffff_d000);
    assert.equal(os.frames.allocatedCount, used); // nothing yet
    const r = os.access(a + 8);
    assert.deepEqual(r, {
      result: "ok",
      value: 0,
      gpa: r.gpa,
      faults: [{
        cr2: "0x7effffffd008",
        errorCode: PFEC_U,
        resolution: "demand-zero",
      }],
    });
    // read: A set, D clear; then a write sets D
    assert.equal(pte(os, a).flags.accessed, true);
    assert.equal(pte(os, a).flags.dirty, false);
    const w = os.access(a + 8, { kind: "write", value: 0xdeadbeef });
    assert.deepEqual(resolutions(w), []);
    assert.equal(pte(os, a).flags.dirty, true);
    assert.equal(os.access(a + 8).value, 0xdeadbeef);
    assert.equal(os.access(a + 9, { size: 1 }).value, 0xbe);
    // the data is where the P2M says
    assert.equal(os.domain.memory.read32(w.gpa!), 0xdeadbeef);
    // a fetch from a non-executable page: SIGSEGV with I/D in the error code
    const f = os.access(a, { kind: "fetch" });
    assert.equal(f.result, "segv");
    assert.equal(f.errorCode, PFEC_P | PFEC_U | 16);
    assert.equal(ref.counters.guestPageFaults, 2);
    checkFrames(os);
  });

  Deno.test(`${kind}: munmap frees pages and tables, with INVLPG or a CR3 reload`, () => {
    const { os, ref } = boot(kind);
    const p = os.spawn();
    os.switchTo(p.pid);
    const before = os.frames.allocatedCount;
    const a = os.mmap({ addr: 0x40_0000, length: 40 * 4096 });
    for (let i = 0; i < 40; i++) {
      os.access(a + i * 4096, { kind: "write", value: i });
    }
    assert.ok(os.frames.allocatedCount >= before + 40 + 3);
    ref.clearEvents();
    os.munmap(a, 4 * 4096); // 4 pages: 4 INVLPGs
    assert.deepEqual(
      ref.events.filter((e) => e.kind === "invlpg").map((e) => e.va),
      ["0x400000", "0x401000", "0x402000", "0x403000"],
    );
    assert.equal(os.access(a).result, "segv");
    assert.equal(os.access(a + 5 * 4096).value, 5);
    ref.clearEvents();
    os.munmap(a, 40 * 4096); // the rest, and the now empty tables: one CR3 load
    const kinds = ref.events.map((e) => e.kind).filter((k) =>
      k !== "guest-fault"
    );
    assert.deepEqual(kinds, ["cr3-load"]);
    assert.equal(os.frames.allocatedCount, before);
    assert.equal(os.counters.tablesFreed, 3); // PT, PD, PDPT
    checkFrames(os);
    os.munmap(0x1000_0000, 4096); // nothing there: fine
    assert.throws(
      () => os.munmap(0x40_0800, 4096),
      /address 4196352 is invalid/,
    );
    assert.throws(
      () => os.munmap(0x7fff_ffff_f000, 8192),
      /expected user addresses/,
    );
  });

  Deno.test(`${kind}: mprotect; PROT_NONE keeps the data; holes are ENOMEM`, () => {
    const { os, ref } = boot(kind);
    const p = os.spawn();
    os.switchTo(p.pid);
    const a = os.mmap({ addr: 0x50_0000, length: 2 * 4096, prot: "rw" });
    os.access(a, { kind: "write", value: 42 });
    os.mprotect(a, 4096, "r");
    const w = os.access(a, { kind: "write", value: 1 });
    assert.equal(w.result, "segv");
    assert.equal(w.errorCode, PFEC_P | PFEC_W | PFEC_U);
    assert.equal(os.access(a).value, 42);
    ref.clearEvents();
    os.mprotect(a, 4096, "none");
    assert.deepEqual(ref.events.map((e) => e.kind), ["invlpg"]);
    const n = os.access(a);
    assert.equal(n.result, "segv");
    assert.equal(n.errorCode, PFEC_U); // P = 0: not present
    assert.equal(pte(os, a).flags.present, false);
    os.mprotect(a, 8192, "rwx");
    assert.equal(os.access(a).value, 42); // the page survived PROT_NONE
    assert.equal(os.access(a, { kind: "fetch" }).result, "ok");
    assert.equal(os.current!.vmas.length, 2); // split by the first mprotect, not merged back
    assert.throws(
      () => os.mprotect(a, 3 * 4096, "r"),
      /mprotect \[0x500000, 0x503000\) of pid 1: 0x502000 is not mapped \(ENOMEM\)/,
    );
    assert.equal(os.access(a, { kind: "fetch" }).result, "ok"); // unchanged
    // a process that does not run: its PTEs change without INVLPG
    const q = os.fork();
    ref.clearEvents();
    os.mprotect(a, 4096, "r", { pid: q.pid });
    assert.deepEqual(ref.events.filter((e) => e.kind === "invlpg"), []);
    assert.throws(
      () => os.mprotect(a, 4096, "rz"),
      /protection "rz" is invalid/,
    );
    checkFrames(os);
  });

  Deno.test(`${kind}: fork shares pages copy-on-write`, () => {
    const { os } = boot(kind);
    const parent = os.spawn("sh");
    os.switchTo(parent.pid);
    const a = os.mmap({ addr: 0x60_0000, length: 3 * 4096 });
    const ro = os.mmap({ addr: 0x70_0000, length: 4096, prot: "r" });
    os.access(a, { kind: "write", value: 1 });
    os.access(a + 4096, { kind: "write", value: 2 });
    os.access(ro);
    const gpa0 = os.access(a).gpa!;
    const child = os.fork();
    assert.equal(child.parent, parent.pid);
    assert.deepEqual(child.vmas, parent.vmas);
    assert.equal(os.frames.refcount(gpa0), 2);
    assert.equal(pte(os, a).flags.writable, false); // the parent's PTE is read-only now
    os.switchTo(child.pid);
    assert.equal(pte(os, a).flags.accessed, false); // the child's PTE starts old
    assert.equal(pte(os, a).flags.dirty, true);
    assert.equal(os.access(a).value, 1);
    assert.equal(os.access(a).gpa, gpa0); // shared
    const c = os.access(a, { kind: "write", value: 10 });
    assert.deepEqual(resolutions(c), ["cow-copy"]);
    assert.notEqual(c.gpa, gpa0);
    assert.equal(os.access(a + 4096).value, 2);
    assert.equal(os.access(a + 2 * 4096).value, 0); // never touched: demand-zero in the child
    // the read-only mapping stays shared and read-only
    assert.equal(os.access(ro, { kind: "write", value: 1 }).result, "segv");
    os.switchTo(parent.pid);
    assert.equal(os.access(a).value, 1);
    assert.equal(os.frames.refcount(gpa0), 1);
    const r = os.access(a, { kind: "write", value: 11 }); // the last user: reuse
    assert.deepEqual(resolutions(r), ["cow-reuse"]);
    assert.equal(r.gpa, gpa0);
    // a kernel write to a copy-on-write page copies too (CR0.WP = 1)
    const k = os.access(a + 4096, { kind: "write", value: 3, user: false });
    assert.deepEqual(resolutions(k), ["cow-copy"]);
    assert.equal(os.counters.resolutions["cow-copy"], 2);
    checkFrames(os);
    // a chain of forks
    const g = os.fork(child.pid);
    os.switchTo(g.pid);
    assert.equal(os.access(a).value, 10);
    checkFrames(os);
  });

  Deno.test(`${kind}: exec and exit free everything; exit of the running process idles`, () => {
    const { os, ref } = boot(kind);
    const idle = os.frames.allocatedCount;
    const p = os.spawn();
    os.switchTo(p.pid);
    const a = os.mmap({ addr: 0x40_0000, length: 16 * 4096 });
    for (let i = 0; i < 16; i++) {
      os.access(a + i * 4096, { kind: "write", value: i });
    }
    const q = os.fork();
    os.exec(q.pid);
    assert.deepEqual(q.vmas, []);
    assert.equal(os.frames.refcount(os.access(a).gpa!), 1);
    os.exit(q.pid);
    os.exit(p.pid); // the running one
    assert.equal(os.current, undefined);
    assert.equal(ref.root, os.kernelTable.root);
    assert.equal(os.frames.allocatedCount, idle);
    assert.deepEqual(os.processes, []);
    assert.throws(() => os.exit(p.pid), /no process with pid 1 \(live: none\)/);
    assert.throws(() => os.mmap({ length: 4096 }), /no process is running/);
    // a user access with no process: SIGSEGV; the kernel heap still works
    assert.equal(os.access(0x40_0000).result, "segv");
    assert.equal(
      os.access(KERNEL_HEAP, { kind: "write", value: 9, user: false }).result,
      "ok",
    );
    checkFrames(os);
  });

  Deno.test(`${kind}: kernel accesses and faults on kernel addresses`, () => {
    const { os } = boot(kind);
    const p = os.spawn();
    os.switchTo(p.pid);
    const a = os.mmap({ addr: 0x40_0000, length: 4096, prot: "r" });
    // the kernel reads a user page (copy_from_user): demand paging works
    assert.equal(os.access(a, { user: false }).result, "ok");
    // a kernel write to a read-only user page: -EFAULT (CR0.WP = 1)
    assert.equal(
      os.access(a, { kind: "write", value: 1, user: false }).result,
      "efault",
    );
    assert.equal(os.access(0x1000, { user: false }).result, "efault");
    // kernel heap, text
    const h = KERNEL_HEAP.toBigInt() + 0x1004n;
    assert.equal(
      os.access(h, { kind: "write", value: 5, user: false }).result,
      "ok",
    );
    assert.equal(os.access(h, { user: false }).value, 5);
    assert.equal(os.access(h, { kind: "fetch", user: false }).result, "oops"); // NX heap
    assert.equal(
      os.access(KERNEL_TEXT, { kind: "fetch", user: false, size: 1 }).value,
      0,
    );
    assert.equal(
      os.access(KERNEL_TEXT.toBigInt() + 1n, {
        kind: "fetch",
        user: false,
        size: 1,
      }).value,
      0x90,
    );
    assert.equal(
      os.access(KERNEL_TEXT, { kind: "write", value: 1, user: false }).result,
      "oops",
    );
    // user mode may not touch the kernel: U/S fault, P = 1
    const u = os.access(h);
    assert.equal(u.result, "segv");
    assert.equal(u.errorCode, PFEC_P | PFEC_U);
    // non-canonical: #GP, no fault delivered
    assert.deepEqual(os.access("0x0000800000000000"), {
      result: "gp",
      faults: [],
    });
    // the direct map shows the guest's own page tables, A/D bits included
    const leaf = pte(os, a);
    const e = os.access(DIRECT_MAP.toBigInt() + BigInt(leaf.entryAddress), {
      user: false,
    });
    assert.equal(e.value, Number(leaf.entry & 0xffffffffn));
    assert.equal((e.value! & 0x20) !== 0, true); // A
    assert.throws(
      () => os.access(a + 2, { size: 4 }),
      /misaligned for 4 bytes/,
    );
    assert.throws(
      () => os.access(a, { size: 3 as 4 }),
      /access size 3 is invalid/,
    );
    assert.throws(
      () => os.access(a, { kind: "write", value: 256, size: 1 }),
      /value 256 is invalid/,
    );
  });

  Deno.test(`${kind}: running out of guest memory`, () => {
    const { os, host } = boot(kind, 256 * 1024); // 64 frames
    const p = os.spawn();
    os.switchTo(p.pid);
    const a = os.mmap({ addr: 0x40_0000, length: 64 * 4096 });
    let ok = 0;
    let last: AccessReport | undefined;
    for (let i = 0; i < 64; i++) {
      last = os.access(a + i * 4096, { kind: "write", value: i + 1 });
      if (last.result !== "ok") break;
      ok++;
    }
    assert.equal(last!.result, "oom");
    assert.ok(ok > 10, `${ok} pages before OOM`);
    assert.throws(
      () => os.fork(),
      /fork of pid 1: guest out of memory \(ENOMEM\)/,
    );
    assert.deepEqual(os.processes.map((x) => x.pid), [1]);
    checkFrames(os);
    os.munmap(a, 8 * 4096);
    assert.equal(
      os.access(a + ok * 4096, { kind: "write", value: 1 }).result,
      "ok",
    );
    const child = os.fork(); // pid 3: the failed fork used pid 2
    assert.equal(child.pid, 3);
    checkFrames(os);
    assert.deepEqual(host.checkConsistency(), []);
  });

  Deno.test(`${kind}: the guest's balloon driver gives frames back`, () => {
    const { os, host } = boot(kind);
    const d = os.domain;
    const free = os.frames.freeCount;
    const hostFree = host.freeFrames;
    assert.equal(os.balloonInflate(10), 10);
    assert.equal(os.frames.freeCount, free - 10);
    const g = os.ballooned[0];
    if (kind === "xen") {
      assert.equal(d.backedFrames, 1024 - 10);
      assert.equal(host.freeFrames, hostFree + 10);
      const r = os.access(DIRECT_MAP.toBigInt() + BigInt(g * 4096), {
        user: false,
      });
      assert.deepEqual(r, {
        result: "unbacked",
        gpa: g * 4096,
        problem: "unbacked",
        faults: [],
      });
    } else {
      // KVM: the gfn stays in its memslot; reading it faults in a zeroed page
      const r = os.access(DIRECT_MAP.toBigInt() + BigInt(g * 4096), {
        user: false,
      });
      assert.equal(r.result, "ok");
      assert.equal(r.value, 0);
    }
    assert.equal(os.balloonDeflate(4), 4);
    assert.equal(os.ballooned.length, 6);
    assert.equal(os.frames.freeCount, free - 6);
    assert.deepEqual(host.checkConsistency(), []);
    checkFrames(os);
  });
}

Deno.test("TLB flushes follow the kernel's rules: INVLPG up to 32 pages, then a CR3 reload", () => {
  const { os, ref } = boot("xen", 8 * MiB);
  const p = os.spawn();
  os.switchTo(p.pid);
  const a = os.mmap({ addr: 0x40_0000, length: 64 * 4096 });
  for (let i = 0; i < 64; i++) {
    os.access(a + i * 4096, { kind: "write", value: i });
  }
  const flushes = (f: () => void): string[] => {
    ref.clearEvents();
    f();
    return ref.events.map((e: SchemeEvent) => e.kind);
  };
  assert.deepEqual(
    flushes(() => os.mprotect(a, 32 * 4096, "r")),
    Array(32).fill("invlpg"),
  );
  assert.deepEqual(
    flushes(() => os.mprotect(a, 64 * 4096, "r")),
    Array(32).fill("invlpg"),
  ); // half unchanged
  assert.deepEqual(flushes(() => os.mprotect(a, 64 * 4096, "rw")), [
    "cr3-load",
  ]);
  assert.deepEqual(flushes(() => os.mprotect(a, 64 * 4096, "rw")), []); // no change, no flush
  // fork write-protects 64 present writable PTEs of the running parent
  assert.deepEqual(flushes(() => os.fork()), ["cr3-load"]);
  // switching to the running process does nothing; to another loads CR3
  assert.deepEqual(flushes(() => os.switchTo(p.pid)), []);
  assert.deepEqual(flushes(() => os.switchTo(2)), ["cr3-load"]);
  assert.equal(os.counters.switches, 2);
});

Deno.test("Xen and KVM guests see exactly the same things", () => {
  const run = (kind: HypervisorKind) => {
    const { os } = boot(kind, 2 * MiB);
    const out: unknown[] = [];
    const p = os.spawn();
    os.switchTo(p.pid);
    const a = os.mmap({ addr: 0x40_0000, length: 8 * 4096 });
    for (let i = 0; i < 8; i++) {
      out.push(os.access(a + i * 4096, { kind: "write", value: i }));
    }
    const c = os.fork();
    os.switchTo(c.pid);
    for (let i = 0; i < 8; i += 2) {
      out.push(os.access(a + i * 4096, { kind: "write", value: 100 + i }));
    }
    for (let g = 0; g < 512; g += 5) {
      out.push(
        os.access(DIRECT_MAP.toBigInt() + BigInt(g * 4096), { user: false }),
      );
    }
    return out;
  };
  assert.deepEqual(run("xen"), run("kvm"));
});

Deno.test("bad guest OS arguments are rejected", () => {
  const host = new Host({ memory: 32 * MiB });
  const d = host.createDomain({ memory: MiB });
  assert.throws(() => new GuestOs(null as never), /domain null is invalid/);
  assert.throws(
    () => new GuestOs(d, { kernelHeapPages: 0 }),
    /kernelHeapPages 0 is invalid/,
  );
  const os = new GuestOs(d);
  assert.throws(
    () => new GuestOs(d),
    /already attached|already has a write watcher/,
  );
  const p = os.spawn();
  assert.throws(
    () => os.mmap({ length: 0, pid: p.pid }),
    /mmap length 0 is invalid/,
  );
  assert.throws(
    () => os.mmap({ length: 4096, pid: p.pid, addr: 0x1000 }),
    /expected user addresses/,
  );
  assert.throws(
    () => os.mmap({ length: 4096, pid: p.pid, prot: 9 }),
    /protection 9 is invalid/,
  );
  assert.throws(() => os.switchTo(42), /no process with pid 42 \(live: 1\)/);
  assert.match(
    String(os),
    /guest OS "vm1" \(reference scheme\): 1 process\(es\), idle/,
  );
});
