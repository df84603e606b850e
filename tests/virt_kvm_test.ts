/**
 * KVM-style domains: memslots (add / remove / move, overlap errors),
 * the VMM's host page table faulted in lazily, ballooning, and a random
 * memslot workload checked against a model of the VMM's memory.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  GuestMemoryError,
  Host,
  type KvmDomain,
  VMM_RAM_BASE,
} from "../lib/virt/mod.ts";

const MiB = 2 ** 20;

function kvm(memory = MiB, addressSpace = 4 * MiB): {
  host: Host<"kvm">;
  vm: KvmDomain;
} {
  const host = new Host({ memory: 32 * MiB, hypervisor: "kvm", seed: 5 });
  const vm = host.createDomain({ name: "k", memory, addressSpace });
  return { host, vm };
}

Deno.test("memslot errors: alignment, range, ids, overlap, hva", () => {
  const { vm } = kvm();
  const cases: [() => unknown, RegExp][] = [
    [
      () => vm.addMemslot({ gpa: 0x1800, size: 0x1000 }),
      /memslot gpa 6144 is invalid/,
    ],
    [
      () => vm.addMemslot({ gpa: 0x200000, size: 0x1001 }),
      /memslot size 4097 is invalid/,
    ],
    [
      () => vm.addMemslot({ gpa: 0x200000, size: 0 }),
      /memslot size 0 is invalid/,
    ],
    [
      () => vm.addMemslot({ gpa: 0x3ff000, size: 0x2000 }),
      /runs past the guest-physical space \(size 0x400000\)/,
    ],
    [
      () => vm.addMemslot({ id: 0, gpa: 0x200000, size: 0x1000 }),
      /memslot 0 already exists/,
    ],
    [
      () => vm.addMemslot({ id: 512, gpa: 0x200000, size: 0x1000 }),
      /memslot id 512 is invalid/,
    ],
    [
      () => vm.addMemslot({ gpa: 0xff000, size: 0x2000 }),
      /memslot \[0xff000, 0x101000\) overlaps memslot 0 \[0x0, 0x100000\)/,
    ],
    [
      () => vm.addMemslot({ gpa: 0x200000, size: 0x1000, hva: 0x1000 }),
      /memslot hva 0x1000 is invalid: expected a 4 KiB-aligned range of 0x1000 bytes inside one VMM mapping/,
    ],
    [
      () =>
        vm.addMemslot({
          gpa: 0x200000,
          size: 0x2000,
          hva: VMM_RAM_BASE + MiB - 0x1000,
        }),
      /inside one VMM mapping/,
    ],
    [() => vm.removeMemslot(7), /memslot 7 does not exist \(slots: 0\)/],
    [
      () => vm.moveMemslot(0, 0x3c0000),
      /move target \[0x3c0000, 0x4c0000\) runs past/,
    ],
    [() => vm.addMemslot(undefined as never), /memslot undefined is invalid/],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
  const s = vm.addMemslot({ gpa: 0x200000, size: 0x10000 });
  assert.equal(s.id, 1);
  assert.throws(
    () => vm.moveMemslot(1, 0xf8000),
    /cannot move memslot 1 to 0xf8000: it would overlap memslot 0/,
  );
  // moving onto its own old range is fine
  vm.moveMemslot(1, 0x208000);
  assert.deepEqual(vm.memslots.map((x) => [x.id, x.gpa]), [[0, 0], [
    1,
    0x208000,
  ]]);
});

Deno.test("the host page table is faulted in lazily, one fault per page", () => {
  const { host, vm } = kvm(2 * MiB);
  assert.equal(vm.hostFaults, 0);
  assert.equal(vm.machineFrameCount, 0);
  const before = host.freeFrames;
  for (let i = 0; i < 100; i++) vm.memory.write32(i * 4096 + 8, i);
  assert.equal(vm.hostFaults, 100);
  for (let i = 0; i < 100; i++) assert.equal(vm.memory.read32(i * 4096 + 8), i);
  assert.equal(vm.hostFaults, 100);
  vm.memory.read8(150 * 4096); // a read faults too (no zero page here)
  assert.equal(vm.hostFaults, 101);
  assert.equal(vm.machineFrameCount, 101);
  const tables = host.hypervisorFrames()["host page tables"];
  assert.ok(tables >= 4, `host page tables: ${tables}`);
  assert.equal(host.freeFrames, before - 101 - (tables - 1)); // the root existed
  // the host page table maps hva -> hpa
  const w = vm.vmmPageTable.lookup(VMM_RAM_BASE + 5 * 4096);
  assert.equal(w.pa, vm.gpaToHpa(5 * 4096));
  assert.equal(w.outcome.kind === "ok" && w.outcome.rights.user, true);
  // every resident frame is the domain's, and M2P-like lookups agree
  for (const [mfn, gfn] of vm.frameMappings()) {
    assert.equal(host.m2p(mfn), gfn);
    const o = host.ownerOf(mfn);
    assert.equal(o.kind === "domain" && o.domain, vm);
  }
  assert.deepEqual(host.checkConsistency(), []);
  assert.match(
    String(vm),
    /domain 1 "k" \(kvm\): 512 of 1024 gfns backed, 101 machine frames/,
  );
});

Deno.test("two memslots over one hva share pages; a moved slot keeps its data", () => {
  const { host, vm } = kvm(MiB, 8 * MiB);
  const hva = vm.memslots[0].hva;
  const alias = vm.addMemslot({ gpa: 4 * MiB, size: MiB, hva });
  vm.memory.write32(0x5000, 0xabcd);
  assert.equal(vm.memory.read32(4 * MiB + 0x5000), 0xabcd);
  assert.equal(vm.hostFaults, 1);
  assert.equal(vm.gpaToHpa(0x5000), vm.gpaToHpa(4 * MiB + 0x5000));
  const changes: [number, number][] = [];
  vm.onP2mChange((g, n) => changes.push([g, n]));
  vm.moveMemslot(alias.id, 6 * MiB);
  assert.deepEqual(changes, [[1024, 256], [1536, 256]]);
  assert.equal(vm.memory.read32(6 * MiB + 0x5000), 0xabcd);
  assert.throws(
    () => vm.memory.read32(4 * MiB + 0x5000),
    /no memslot covers gfn 0x405/,
  );
  vm.removeMemslot(alias.id);
  assert.throws(() => vm.memory.read32(6 * MiB), GuestMemoryError);
  assert.equal(vm.memory.read32(0x5000), 0xabcd);
  assert.deepEqual(host.checkConsistency(), []);
});

Deno.test("read-only memslots refuse writes; unmapped gaps are unbacked", () => {
  const { vm } = kvm(MiB, 4 * MiB);
  vm.addMemslot({ gpa: 2 * MiB, size: 0x10000, readonly: true });
  assert.equal(vm.memory.read32(2 * MiB), 0);
  assert.throws(
    () => vm.memory.write32(2 * MiB + 8, 1),
    /guest-physical address 0x200008 is in a read-only memslot/,
  );
  assert.throws(() => vm.memory.read8(MiB + 4096), (x: unknown) => {
    assert.ok(x instanceof GuestMemoryError);
    assert.equal(x.problem, "unbacked");
    assert.equal(x.gpa, MiB + 4096);
    assert.equal(x.domain, "k");
    return true;
  });
  assert.equal(vm.mfnForAccess(300, false), -2); // between the slots
  assert.equal(vm.mfnForAccess(512, true), -3); // write to the ROM slot
  assert.equal(vm.mfnForAccess(1024, false), -1); // beyond the space
});

Deno.test("ballooning under KVM drops host pages; the next touch faults in a zeroed one", () => {
  const { host, vm } = kvm();
  vm.memory.write32(0x3000, 77);
  const mfn = vm.lookup(3)!;
  const free = host.freeFrames;
  const changes: number[] = [];
  vm.onP2mChange((g) => changes.push(g));
  vm.balloonOut([3, 4]); // 4 was never touched
  assert.deepEqual(changes, [3, 4]);
  assert.equal(host.freeFrames, free + 1);
  assert.equal(host.ownerOf(mfn).kind, "free");
  assert.equal(vm.lookup(3), undefined);
  assert.equal(vm.isBacked(3), true); // still in its memslot
  assert.equal(vm.memory.read32(0x3000), 0);
  assert.equal(vm.hostFaults, 2);
  vm.balloonIn([3]); // nothing to do
  assert.throws(() => vm.balloonOut([300]), /no memslot covers it/);
  assert.deepEqual(host.checkConsistency(), []);
  host.destroyDomain(vm);
  assert.deepEqual(host.hypervisorFrames(), { "host kernel": 256 });
  assert.equal(host.freeFrames, host.frameCount - 256);
});

type SlotOp =
  | { k: "add"; gpaPage: number; pages: number; alias: boolean }
  | { k: "remove"; pick: number }
  | { k: "move"; pick: number; gpaPage: number }
  | { k: "write"; page: number; value: number }
  | { k: "read"; page: number };

Deno.test("random memslot workloads agree with a model of the VMM's memory", () => {
  const SPACE = 64; // pages of guest-physical space
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({
            k: fc.constant("add" as const),
            gpaPage: fc.integer({ min: 0, max: SPACE - 1 }),
            pages: fc.integer({ min: 1, max: 16 }),
            alias: fc.boolean(),
          }),
          fc.record({ k: fc.constant("remove" as const), pick: fc.nat() }),
          fc.record({
            k: fc.constant("move" as const),
            pick: fc.nat(),
            gpaPage: fc.integer({ min: 0, max: SPACE - 1 }),
          }),
          fc.record({
            k: fc.constant("write" as const),
            page: fc.integer({ min: 0, max: SPACE - 1 }),
            value: fc.integer({ min: 1, max: 0xffffffff }),
          }),
          fc.record({
            k: fc.constant("read" as const),
            page: fc.integer({ min: 0, max: SPACE - 1 }),
          }),
        ),
        { maxLength: 60 },
      ),
      (ops) => {
        const host = new Host({ memory: 8 * MiB, hypervisor: "kvm" });
        const vm = host.createDomain({
          memory: 8 * 4096,
          addressSpace: SPACE * 4096,
        });
        // model: slots (gpa page -> hva page) and the VMM's memory by hva page
        const slots = new Map<
          number,
          { gfn: number; n: number; hvaPage: number }
        >();
        slots.set(0, { gfn: 0, n: 8, hvaPage: VMM_RAM_BASE / 4096 });
        const vmmMem = new Map<number, number>();
        const hvaOf = (gfn: number) => {
          for (const s of slots.values()) {
            if (gfn >= s.gfn && gfn < s.gfn + s.n) {
              return s.hvaPage + gfn - s.gfn;
            }
          }
          return undefined;
        };
        const overlaps = (gfn: number, n: number, except: number) =>
          [...slots].some(([id, s]) =>
            id !== except && gfn < s.gfn + s.n && s.gfn < gfn + n
          );
        for (const op of ops) {
          const ids = [...slots.keys()];
          if (op.k === "add") {
            const n = Math.min(op.pages, SPACE - op.gpaPage);
            const existing = [...slots.values()];
            const hva = op.alias && existing.length > 0
              ? existing[0].hvaPage * 4096
              : undefined;
            const size = hva !== undefined ? Math.min(n, existing[0].n) : n;
            if (overlaps(op.gpaPage, size, -1)) {
              assert.throws(
                () =>
                  vm.addMemslot({
                    gpa: op.gpaPage * 4096,
                    size: size * 4096,
                    hva,
                  }),
                /overlaps/,
              );
              continue;
            }
            const s = vm.addMemslot({
              gpa: op.gpaPage * 4096,
              size: size * 4096,
              hva,
            });
            slots.set(s.id, {
              gfn: op.gpaPage,
              n: size,
              hvaPage: s.hva / 4096,
            });
          } else if (op.k === "remove") {
            if (ids.length === 0) continue;
            const id = ids[op.pick % ids.length];
            vm.removeMemslot(id);
            slots.delete(id);
          } else if (op.k === "move") {
            if (ids.length === 0) continue;
            const id = ids[op.pick % ids.length];
            const s = slots.get(id)!;
            if (op.gpaPage + s.n > SPACE) {
              assert.throws(
                () => vm.moveMemslot(id, op.gpaPage * 4096),
                /runs past/,
              );
            } else if (overlaps(op.gpaPage, s.n, id)) {
              assert.throws(
                () => vm.moveMemslot(id, op.gpaPage * 4096),
                /would overlap/,
              );
            } else {
              vm.moveMemslot(id, op.gpaPage * 4096);
              s.gfn = op.gpaPage;
            }
          } else {
            const hv = hvaOf(op.page);
            if (hv === undefined) {
              assert.throws(
                () =>
                  op.k === "write"
                    ? vm.memory.write32(op.page * 4096, op.value)
                    : vm.memory.read32(op.page * 4096),
                /no memslot covers/,
              );
            } else if (op.k === "write") {
              vm.memory.write32(op.page * 4096, op.value);
              vmmMem.set(hv, op.value);
            } else {
              assert.equal(
                vm.memory.read32(op.page * 4096),
                vmmMem.get(hv) ?? 0,
              );
            }
          }
          assert.deepEqual(
            vm.memslots.map((s) => [s.id, s.gpa / 4096, s.size / 4096]),
            [...slots].map(([id, s]) => [id, s.gfn, s.n]).sort((a, b) =>
              a[1] - b[1]
            ),
          );
          assert.equal(vm.hostFaults, vm.machineFrameCount);
          assert.ok(
            vm.machineFrameCount >= vmmMem.size,
            "written pages stay resident",
          );
        }
        assert.deepEqual(host.checkConsistency(), []);
      },
    ),
    { seed: 777, numRuns: 120 },
  );
});
