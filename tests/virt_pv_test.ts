/**
 * Xen PV direct paging, one rule at a time: page types and counts, the
 * refusals of mmu_update with their codes, pinning, unpinning, batches
 * that stop at the first failure, writable page tables, NEW_BASEPTR.
 */
import assert from "node:assert/strict";
import { Host } from "../lib/virt/host.ts";
import { GuestOs } from "../lib/virt/guest/os.ts";
import {
  PageInfoTable,
  PGT_WRITABLE,
  PvMmu,
  PvScheme,
  pvUpdate,
} from "../lib/virt/pv/mod.ts";
import type { XenDomain } from "../lib/virt/domain.ts";
import {
  pageTypesToHtml,
  pageTypesToText,
  pvBatchToHtml,
  pvMulticallToHtml,
} from "../lib/view/pv_html.ts";

const P = 1n, RW = 2n, US = 4n, PS = 0x80n;

/** A domain with a pinned 4-level tree: L4 → L3 → L2 → L1 → one data page. */
function setup(options: ConstructorParameters<typeof PvMmu>[2] = {}) {
  const host = new Host({ memory: 4 * 2 ** 20 });
  const vm = host.createDomain({ memory: 32 * 4096 }) as XenDomain;
  const other = host.createDomain({ memory: 4 * 4096 }) as XenDomain;
  const mmu = new PvMmu(host, vm, options);
  const mfn = (g: number) => vm.p2m(g)!;
  const [l4, l3, l2, l1, data, spare] = [0, 1, 2, 3, 4, 5].map(mfn);
  const e = (m: number, flags: bigint) => BigInt(m) * 4096n + flags;
  // untyped frames: mmu_update writes them as plain memory
  const r = mmu.mmuUpdate([
    pvUpdate(l4 * 4096, e(l3, P | RW | US)),
    pvUpdate(l3 * 4096, e(l2, P | RW | US)),
    pvUpdate(l2 * 4096, e(l1, P | RW | US)),
    pvUpdate(l1 * 4096, e(data, P | RW | US)),
  ]);
  assert.equal(r.done, 4);
  assert.equal(mmu.counters.plainWrites, 4);
  const pin = mmu.mmuextOp([{ cmd: "pin-l4", mfn: l4 }]);
  assert.ok(pin.ok, pin.toString());
  return { host, vm, other, mmu, l4, l3, l2, l1, data, spare, e, mfn };
}

Deno.test("page_info: a writable frame cannot become a table, nor a table be mapped writable", () => {
  const t = new PageInfoTable(8);
  assert.ok(t.getPageType(1, PGT_WRITABLE));
  assert.equal(t.getPageType(1, 1, () => true), false);
  assert.ok(t.getPageType(2, 2, () => true));
  assert.equal(t.getPageType(2, PGT_WRITABLE), false);
  assert.equal(t.info(2).validated, true);
  let devalidated = 0;
  t.putPageType(2, () => devalidated++);
  assert.equal(devalidated, 1);
  assert.equal(t.info(2).type, "none");
  assert.throws(() => t.putPageType(2), /type count 0/);
  assert.throws(() => t.putPage(3), /count 0/);
  assert.throws(() => new PageInfoTable(0), /frame count 0 is invalid/);
  // failed validation leaves nothing behind
  assert.equal(t.getPageType(4, 1, () => false), false);
  assert.deepEqual(t.info(4), {
    mfn: 4,
    type: "none",
    typeCount: 0,
    refCount: 0,
    pinned: false,
    validated: false,
  });
});

Deno.test("pin validates the whole tree once, with the right types and counts", () => {
  const { mmu, l4, l3, l2, l1, data } = setup();
  assert.deepEqual(
    [l4, l3, l2, l1, data].map((m) => mmu.info(m).type),
    ["l4", "l3", "l2", "l1", "writable"],
  );
  assert.equal(mmu.info(l4).pinned, true);
  assert.equal(mmu.info(l4).typeCount, 1); // the pin
  assert.equal(mmu.info(l3).typeCount, 1); // the L4 entry
  assert.equal(mmu.info(data).refCount, 1);
  assert.equal(mmu.counters.validations, 4);
  assert.deepEqual(mmu.audit(), []);
  assert.equal(mmu.mmuextOp([{ cmd: "pin-l4", mfn: l4 }]).rc, "EINVAL"); // already pinned
});

Deno.test("unpin drops the counts down the tree", () => {
  const { mmu, l4, l3, l1, data } = setup();
  assert.ok(mmu.mmuextOp([{ cmd: "unpin", mfn: l4 }]).ok);
  for (const m of [l4, l3, l1, data]) {
    assert.equal(mmu.info(m).typeCount, 0);
    assert.equal(mmu.info(m).refCount, 0);
  }
  assert.equal(mmu.counters.devalidations, 4);
  assert.equal(mmu.mmuextOp([{ cmd: "unpin", mfn: l4 }]).rc, "EINVAL");
  assert.deepEqual(mmu.audit(), []);
});

Deno.test("mmu_update refusals, one rule per row, each with its code", () => {
  const cases: {
    name: string;
    req: (s: ReturnType<typeof setup>) => ReturnType<typeof pvUpdate>;
    rc: string;
    reason: RegExp;
  }[] = [
    {
      name: "map a page-table frame writable",
      req: (s) => pvUpdate(s.l1 * 4096 + 8, s.e(s.l2, P | RW)),
      rc: "EBUSY",
      reason: /cannot map mfn .* writable: it is a l2 page/,
    },
    {
      name: "map a foreign domain's frame",
      req: (s) => pvUpdate(s.l1 * 4096 + 8, s.e(s.other.p2m(0)!, P)),
      rc: "EPERM",
      reason:
        /^L1 entry maps mfn 0x[0-9a-f]+, which is domain 2's frame, not domain 1's$/,
    },
    {
      name: "map a hypervisor frame",
      req: (s) => pvUpdate(s.l1 * 4096 + 8, s.e(0, P)),
      rc: "EPERM",
      reason: /hypervisor's frame/,
    },
    {
      name: "touch a reserved Xen L4 slot (256)",
      req: (s) => pvUpdate(s.l4 * 4096 + 256 * 8, s.e(s.l3, P)),
      rc: "EPERM",
      reason: /slot 256 is reserved for Xen/,
    },
    {
      name: "touch a reserved Xen L4 slot (271), even with zero",
      req: (s) => pvUpdate(s.l4 * 4096 + 271 * 8, 0n),
      rc: "EPERM",
      reason: /slot 271 is reserved/,
    },
    {
      name: "a superpage (PSE) L2 entry",
      req: (s) => pvUpdate(s.l2 * 4096 + 8, s.e(s.data, P | PS)),
      rc: "EINVAL",
      reason: /superpages are not allowed/,
    },
    {
      name: "an L2 entry at a frame that is no L1 (an L3)",
      req: (s) => pvUpdate(s.l2 * 4096 + 8, s.e(s.l3, P)),
      rc: "EBUSY",
      reason: /a l3 page .* not an L1 table/,
    },
    {
      name: "a writable linear L4 self-mapping",
      req: (s) => pvUpdate(s.l4 * 4096 + 8, s.e(s.l4, P | RW)),
      rc: "EINVAL",
      reason: /linear page tables must be read-only/,
    },
    {
      name: "an unaligned ptr",
      req: (s) => pvUpdate(s.l1 * 4096 + 4, s.e(s.data, P)),
      rc: "EINVAL",
      reason: /not 8-byte aligned/,
    },
    {
      name: "MMU_MACHPHYS_UPDATE (not modelled)",
      req: (s) => pvUpdate(s.l1 * 4096 + 1, 0n),
      rc: "EINVAL",
      reason: /MMU_MACHPHYS_UPDATE/,
    },
    {
      name: "a ptr beyond machine memory",
      req: () => pvUpdate(2 ** 40, 0n),
      rc: "EFAULT",
      reason: /beyond machine memory/,
    },
    {
      name: "update a foreign domain's table frame",
      req: (s) => pvUpdate(s.other.p2m(1)! * 4096, 0n),
      rc: "EPERM",
      reason: /update target/,
    },
  ];
  for (const c of cases) {
    const s = setup();
    const before = s.mmu.inUse();
    const r = s.mmu.mmuUpdate([c.req(s)]);
    assert.equal(r.rc, c.rc, c.name);
    assert.equal(r.done, 0, c.name);
    assert.match(r.results[0].reason, c.reason, c.name);
    assert.equal(s.mmu.counters.refused[c.rc as "EINVAL"], 1, c.name);
    assert.deepEqual(s.mmu.inUse(), before, `${c.name}: nothing changed`);
    assert.deepEqual(s.mmu.audit(), [], c.name);
  }
});

Deno.test("a read-only linear L4 mapping is allowed and takes no references", () => {
  const s = setup();
  const r = s.mmu.mmuUpdate([pvUpdate(s.l4 * 4096 + 8, s.e(s.l4, P))]);
  assert.ok(r.ok, r.toString());
  assert.equal(s.mmu.info(s.l4).typeCount, 1);
  assert.deepEqual(s.mmu.audit(), []);
});

Deno.test("a batch stops at the first failure and reports how many succeeded", () => {
  const s = setup();
  const r = s.mmu.mmuUpdate([
    pvUpdate(s.l1 * 4096 + 8, s.e(s.spare, P | RW)),
    pvUpdate(s.l1 * 4096 + 16, s.e(s.l1, P | RW)), // refused
    pvUpdate(s.l1 * 4096 + 24, s.e(s.spare, P)),
  ]);
  assert.equal(r.done, 1);
  assert.equal(r.rc, "EBUSY");
  assert.deepEqual(r.results.map((x) => x.code), ["ok", "EBUSY", "not-run"]);
  assert.equal(s.mmu.info(s.spare).refCount, 1); // the first one happened
  assert.equal(s.host.memory.read32(s.l1 * 4096 + 24), 0); // the third did not
  assert.match(pvBatchToHtml(r), /not-run/);
  assert.deepEqual(s.mmu.audit(), []);
});

Deno.test("remap and clear drop the old references; the fast path takes none", () => {
  const s = setup();
  const ptr = s.l1 * 4096;
  assert.ok(
    s.mmu.mmuUpdate([pvUpdate(ptr, s.e(s.data, P | RW | US | 0x60n))]).ok,
  );
  assert.equal(s.mmu.counters.fastPathUpdates, 1); // A/D only
  assert.ok(s.mmu.mmuUpdate([pvUpdate(ptr, s.e(s.data, P | US))]).ok); // drop RW: slow
  assert.equal(s.mmu.info(s.data).typeCount, 0);
  assert.equal(s.mmu.info(s.data).refCount, 1);
  assert.ok(s.mmu.mmuUpdate([pvUpdate(ptr, 0n)]).ok);
  assert.equal(s.mmu.info(s.data).refCount, 0);
  // a frame no longer mapped writable can become a table
  assert.ok(s.mmu.mmuextOp([{ cmd: "pin-l1", mfn: s.data }]).ok);
  assert.deepEqual(s.mmu.audit(), []);
});

Deno.test("NEW_BASEPTR takes an L4 reference and drops the old one; refuses a non-L4", () => {
  const s = setup();
  assert.ok(s.mmu.mmuextOp([{ cmd: "new-baseptr", mfn: s.l4 }]).ok);
  assert.equal(s.mmu.info(s.l4).typeCount, 2);
  assert.equal(s.mmu.baseAddress, s.l4 * 4096);
  const r = s.mmu.mmuextOp([{ cmd: "new-baseptr", mfn: s.l1 }]);
  assert.equal(r.rc, "EBUSY");
  assert.equal(s.mmu.baseAddress, s.l4 * 4096);
  assert.deepEqual(s.mmu.audit(), []);
});

Deno.test("writable page tables: a trapped store is validated and emulated", () => {
  const s = setup();
  const ma = s.l1 * 4096 + 16;
  assert.equal(s.mmu.ptwrUpdate(ma, 4, s.spare * 4096 + 7), 0);
  assert.equal(s.mmu.counters.ptwrEmulations, 1);
  assert.equal(s.mmu.info(s.spare).type, "writable");
  assert.equal(s.mmu.ptwrUpdate(ma + 8, 4, s.l2 * 4096 + 3), "EBUSY");
  assert.equal(s.host.memory.read32(ma + 8), 0);
  assert.deepEqual(s.mmu.audit(), []);
});

Deno.test("PV guest: a kernel store through the direct map to an L1 traps and is emulated", () => {
  const host = new Host({ memory: 32 * 2 ** 20 });
  const pv = new PvScheme();
  const os = new GuestOs(host.createDomain({ memory: 2 ** 21 }), {
    scheme: pv,
    kernel: "pv",
  });
  const p = os.spawn();
  os.switchTo(p.pid);
  const a = os.mmap({ length: 2 * 4096 });
  os.access(a, { kind: "write", value: 1 });
  // find the PTE page of `a` and the PTE of the next page (empty)
  const m = os.frames.memory;
  let t = p.root;
  for (const shift of [39, 30, 21]) {
    const i = Math.floor(a / 2 ** shift) % 512;
    t = m.read32(t + 8 * i) & ~0xfff;
  }
  const dataGpa = os.access(a).gpa!;
  const pte = t + 8 * ((a / 4096 + 1) % 512);
  const va = 0xffff888000000000n + BigInt(pte);
  // the PTE page is read-only in the direct map: a store traps and Xen
  // emulates it after validation: map the same data frame read-only
  const mfn = os.domain.lookup(dataGpa / 4096)!;
  const r = os.access(va, {
    kind: "write",
    user: false,
    value: mfn * 4096 + 5,
  });
  assert.equal(r.result, "ok");
  assert.equal(pv.mmu.counters.ptwrEmulations, 1);
  assert.equal(pv.counters.exitsByReason["ptwr"], 1);
  assert.equal(os.access(a + 4096).gpa, dataGpa);
  // a store that would map a page-table frame writable is refused: the guest gets the #PF
  const bounces = pv.counters.exitsByReason["pf-bounce"] ?? 0;
  const bad = os.access(va, {
    kind: "write",
    user: false,
    value: os.domain.lookup(t / 4096)! * 4096 + 7,
  });
  assert.notEqual(bad.result, "ok");
  assert.equal(pv.mmu.counters.refused.EBUSY, 1);
  // the refused store is one entry into Xen: the #PF bounced to the guest
  assert.equal(pv.counters.exitsByReason["ptwr"], 1);
  assert.equal(
    pv.counters.exitsByReason["pf-bounce"] - bounces,
    bad.faults.length,
  );
  assert.match(
    pv.events.filter((e) => e.kind === "pf-bounce").at(-1)?.detail ?? "",
    /ptwr refused EBUSY/,
  );
  assert.deepEqual(pv.mmu.audit(), []);
});

Deno.test("PV guest: refuses non-PV schemes and KVM domains; displays", () => {
  const xen = new Host({ memory: 32 * 2 ** 20 });
  assert.throws(
    () =>
      new GuestOs(xen.createDomain({ memory: 2 ** 20 }), { kernel: "pv" })
        .balloonInflate(1),
    /ballooning a PV guest is not modelled/,
  );
  const kvm = new Host({ memory: 32 * 2 ** 20, hypervisor: "kvm" });
  assert.throws(
    () => new GuestOs(kvm.createDomain({ memory: 2 ** 20 }), { kernel: "pv" }),
    /needs a Xen domain/,
  );
  const pv = new PvScheme();
  const os = new GuestOs(xen.createDomain({ memory: 2 ** 20 }), {
    scheme: pv,
    kernel: "pv",
  });
  assert.equal(os.paravirtual, true);
  const rows = pv.pageTypeRows();
  assert.ok(rows.some((r) => r.type === "l4" && r.pinned));
  assert.match(
    pageTypesToText(rows.filter((r) => r.type === "l4")),
    /l4 .* pinned/,
  );
  assert.match(pageTypesToHtml(rows), /<table/);
  const bundle =
    (pv.showPageTypes() as Record<symbol, () => Record<string, string>>)[
      Symbol.for("Jupyter.display")
    ]();
  assert.ok(bundle["text/plain"] && bundle["text/html"]);
});

Deno.test("multicall: one entry into Xen, every call runs, per-call results", () => {
  const s = setup();
  const before = s.mmu.counters;
  const r = s.mmu.multicall([
    { op: "mmuext_op", ops: [{ cmd: "invlpg-local", va: 0x1000 }] },
    {
      op: "mmu_update",
      requests: [pvUpdate(s.l1 * 4096 + 8, s.e(s.l2, P | RW))],
    }, // EBUSY
    {
      op: "mmu_update",
      requests: [pvUpdate(s.l1 * 4096 + 16, s.e(s.spare, P))],
    }, // still runs
    {
      op: "mmuext_op",
      ops: [{ cmd: "unpin", mfn: s.l1 }, { cmd: "tlb-flush-local" }],
    }, // EINVAL, then not-run
  ]);
  assert.deepEqual(r.calls.map((c) => c.rc), [0, "EBUSY", 0, "EINVAL"]);
  assert.deepEqual(r.calls[3].results.map((x) => x.code), [
    "EINVAL",
    "not-run",
  ]);
  assert.equal(r.ok, false);
  assert.equal(r.operations, 5);
  const c = s.mmu.counters;
  assert.equal(c.hypercalls - before.hypercalls, 1);
  assert.equal(c.multicalls - before.multicalls, 1);
  assert.equal(c.multicalledCalls - before.multicalledCalls, 4);
  assert.equal(c.mmuUpdateCalls - before.mmuUpdateCalls, 2);
  assert.equal(c.mmuextCalls - before.mmuextCalls, 2);
  assert.equal(c.updates - before.updates, 1);
  assert.equal(s.mmu.info(s.spare).refCount, 1); // the third call's mapping is there
  assert.deepEqual(s.mmu.audit(), []);
  assert.match(r.toString(), /^multicall: 4 calls, 5 operations, 2 refused/);
  assert.match(pvMulticallToHtml(r), /one entry into Xen/);
  // malformed: TypeError, nothing runs, nothing counted
  const mid = s.mmu.counters;
  assert.throws(
    () =>
      s.mmu.multicall([
        { op: "mmuext_op", ops: [{ cmd: "unpin", mfn: s.l4 }] },
        { op: "grant_table_op" } as never,
      ]),
    /multicall entry 1 op "grant_table_op" is invalid/,
  );
  assert.deepEqual(s.mmu.counters, mid);
  assert.equal(s.mmu.info(s.l4).pinned, true);
});

/** The user tables of `root` (gpa, level), read through the PV kernel's view. */
function userTables(os: GuestOs, root: number): { t: number; level: number }[] {
  const m = os.frames.memory;
  const out: { t: number; level: number }[] = [{ t: root, level: 4 }];
  const visit = (t: number, level: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const lo = m.read32(t + 8 * i);
      if ((lo & 1) === 0) continue;
      const c = (m.read32(t + 8 * i + 4) & 0xfffff) * 2 ** 32 +
        ((lo & 0xfffff000) >>> 0);
      out.push({ t: c, level: level - 1 });
      if (level > 2) visit(c, level - 1, 512);
    }
  };
  visit(root, 4, 256);
  return out;
}

function pvGuest(memory = 2 ** 22) {
  const host = new Host({ memory: 64 * 2 ** 20 });
  const pv = new PvScheme({ eventLog: 0 });
  const os = new GuestOs(host.createDomain({ memory }), {
    scheme: pv,
    kernel: "pv",
  });
  return { host, pv, os };
}

Deno.test("PV guest: a fork's child is built unpinned, then pinned as a whole in one multicall", () => {
  const { pv, os } = pvGuest();
  const p = os.spawn();
  os.switchTo(p.pid);
  const a = os.mmap({ length: 8 * 4096 });
  for (let i = 0; i < 8; i++) {
    os.access(a + i * 4096, { kind: "write", value: i });
  }
  const before = pv.mmu.counters;
  const child = os.fork();
  const c = pv.mmu.counters;
  const tables = userTables(os, child.root);
  assert.equal(tables.length, 4); // L4, L3, L2, L1
  // one multicall: 4 read-only remaps, the L1 pin, the L4 pin
  assert.equal(c.multicalls - before.multicalls, 1);
  assert.equal(c.pins - before.pins, 2);
  assert.equal(c.validations - before.validations, 4);
  // in all: that multicall, one mmu_update batch (the child's PTEs and the
  // parent's write-protect), and one INVLPG per write-protected parent page
  assert.equal(c.hypercalls - before.hypercalls, 1 + 1 + 8);
  assert.equal(c.updates - before.updates, 4 + 8 + 8);
  for (const { t, level } of tables) {
    const info = pv.mmu.info(os.domain.lookup(t / 4096)!);
    assert.equal(info.type, `l${level}`);
    assert.equal(info.validated, true);
    assert.equal(info.pinned, level === 4 || level === 1, `L${level}`);
  }
  assert.deepEqual(pv.mmu.audit(), []);
  // exit: the whole tree unpinned in one multicall, then plain stores
  const e0 = pv.mmu.counters;
  os.exit(child.pid);
  const e1 = pv.mmu.counters;
  assert.equal(e1.hypercalls - e0.hypercalls, 1);
  assert.equal(e1.unpins - e0.unpins, 2);
  assert.equal(e1.devalidations - e0.devalidations, 4);
  assert.equal(e1.updates - e0.updates, 4); // the 4 direct-map PTEs made writable again
  for (const { t } of tables) {
    // no page-table type left: a free frame, writable in the direct map
    assert.equal(pv.mmu.info(os.domain.lookup(t / 4096)!).type, "writable");
  }
  assert.deepEqual(pv.mmu.audit(), []);
  assert.deepEqual(os.checkConsistency(), []);
});

Deno.test("PV guest: pinning a big tree splits the multicall at 32 entries (MC_BATCH)", () => {
  const { pv, os } = pvGuest();
  const p = os.spawn();
  os.switchTo(p.pid);
  // 20 pages, each in its own 2 MiB region: 20 L1 tables
  const base = 0x10000000;
  for (let i = 0; i < 20; i++) {
    const va = base + i * 2 ** 21;
    assert.equal(os.mmap({ addr: va, length: 4096 }), va);
    os.access(va, { kind: "write", value: i });
  }
  const before = pv.mmu.counters;
  const child = os.fork();
  const c = pv.mmu.counters;
  const tables = userTables(os, child.root);
  const l1s = tables.filter((x) => x.level === 1).length;
  assert.equal(l1s, 20);
  // entries: one remap per table, one pin per L1, the L4 pin
  const entries = tables.length + l1s + 1;
  assert.equal(c.multicalls - before.multicalls, Math.ceil(entries / 32));
  assert.deepEqual(pv.mmu.audit(), []);
  os.exit(child.pid);
  assert.deepEqual(pv.mmu.audit(), []);
});

Deno.test("PV scheme: every guest #PF is one pf-bounce exit; exits add up", () => {
  const { pv, os } = pvGuest();
  const p = os.spawn();
  os.switchTo(p.pid);
  const a = os.mmap({ length: 4 * 4096 });
  for (let i = 0; i < 4; i++) {
    os.access(a + i * 4096, { kind: "write", value: i });
  }
  os.fork();
  os.access(a, { kind: "write", value: 9 }); // copy-on-write
  assert.equal(os.access(0x1000).result, "segv");
  const c = pv.counters;
  assert.equal(c.exitsByReason["pf-bounce"], os.counters.pageFaults);
  assert.equal(c.extra.pfBounces, os.counters.pageFaults);
  assert.equal(c.guestPageFaults, os.counters.pageFaults);
  assert.equal(
    c.vmExits,
    c.exitsByReason["hypercall"] + c.exitsByReason["pf-bounce"] +
      (c.exitsByReason["ptwr"] ?? 0),
  );
  assert.equal(c.exitsByReason["hypercall"], pv.mmu.counters.hypercalls);
});

Deno.test("PV page-type rows name the owner; ownership refusals read as sentences", () => {
  const { pv, os } = pvGuest();
  os.switchTo(os.spawn().pid);
  const rows = pv.pageTypeRows();
  assert.ok(rows.length > 0);
  assert.deepEqual([...new Set(rows.map((r) => r.owner))], [
    `dom${os.domain.id}`,
  ]);
  const host = new Host({ memory: 4 * 2 ** 20 });
  const vm = host.createDomain({ memory: 16 * 4096 });
  const vm2 = host.createDomain({ memory: 4 * 4096 });
  const bare = new PvMmu(host, vm);
  const t = vm.p2m(0)!;
  assert.ok(bare.mmuextOp([{ cmd: "pin-l1", mfn: t }]).ok);
  const r = bare.mmuUpdate([
    pvUpdate(t * 4096 + 8, BigInt(vm2.p2m(0)! * 4096 + 1)),
  ]);
  assert.match(
    r.results[0].reason,
    new RegExp(`which is domain ${vm2.id}'s frame, not domain ${vm.id}'s`),
  );
  const x = bare.mmuUpdate([pvUpdate(t * 4096 + 8, 1n)]); // mfn 0: the hypervisor's
  assert.match(x.results[0].reason, /mfn 0x0, which is the hypervisor's frame/);
});

Deno.test("PV scheme: the MMU's table reads are counted per walk (4 per 4 KiB walk)", () => {
  const { pv, os } = pvGuest();
  const p = os.spawn();
  os.switchTo(p.pid);
  const a = os.mmap({ length: 4096 });
  os.access(a, { kind: "write", value: 1 }); // demand fault, then the retry
  pv.resetCounters();
  for (let i = 0; i < 5; i++) os.access(a + 8 * i);
  assert.equal(pv.counters.extra.guestWalks, 5);
  assert.equal(pv.counters.extra.guestTableReads, 20);
  pv.resetCounters();
  assert.equal(pv.counters.extra.guestTableReads, 0);
});
