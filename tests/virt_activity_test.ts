/**
 * The seeded guest-activity generator and runner: replayable, plain data,
 * deterministic outcomes independent of where machine frames lie and of
 * the backing; invariants hold after every operation; and a scheme with a
 * bug (a TLB that forgets INVLPG) is caught and minimized — the shape of
 * the differential tests the other schemes will run.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type ActivityRecord,
  diffActivity,
  formatActivity,
  GUEST_OK,
  type GuestAccessState,
  type GuestOp,
  GuestOs,
  Host,
  type HypervisorKind,
  minimizeActivity,
  type MmuScheme,
  randomGuestActivity,
  ReferenceScheme,
  runActivity,
} from "../lib/virt/mod.ts";

const MiB = 2 ** 20;

function run(
  ops: readonly GuestOp[],
  options: {
    kind?: HypervisorKind;
    seed?: number;
    scheme?: MmuScheme;
    memory?: number;
  } = {},
): { records: ActivityRecord[]; os: GuestOs; host: Host<HypervisorKind> } {
  const host = new Host<HypervisorKind>({
    memory: 64 * MiB,
    hypervisor: options.kind ?? "xen",
    seed: options.seed ?? 1,
  });
  const os = new GuestOs(
    host.createDomain({ memory: options.memory ?? 8 * MiB }),
    { scheme: options.scheme ?? new ReferenceScheme() },
  );
  return { records: runActivity(os, ops), os, host };
}

Deno.test("the generator is seeded, plain data, and keeps its pids in step with the OS", () => {
  const a = randomGuestActivity(5, 500, { balloon: true });
  assert.deepEqual(a, randomGuestActivity(5, 500, { balloon: true }));
  assert.notDeepEqual(a, randomGuestActivity(6, 500, { balloon: true }));
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
  assert.deepEqual(
    JSON.parse(`[${formatActivity(a).split("\n").join(",")}]`),
    a,
  );
  const kinds = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) {
    for (const o of randomGuestActivity(seed, 300, { balloon: true })) {
      kinds.add(o.op);
    }
  }
  assert.deepEqual([...kinds].sort(), [
    "access",
    "balloon",
    "exec",
    "exit",
    "flush",
    "fork",
    "inspect",
    "invlpg",
    "mmap",
    "mprotect",
    "munmap",
    "spawn",
    "switch",
  ]);
  // every fork and spawn gets the pid the generator predicted
  const { records } = run(a);
  let next = 1;
  for (const r of records) {
    if (r.op.op === "spawn" || r.op.op === "fork") {
      assert.equal(r.result.pid ?? next, next, JSON.stringify(r));
      next++;
    }
    if ("pid" in r.op && r.op.op !== "fork") {
      assert.ok(
        !("error" in r.result) || !/no process/.test(String(r.result.error)),
        JSON.stringify(r),
      );
    }
  }
  assert.throws(
    () => randomGuestActivity(1, 0),
    /operation count 0 is invalid/,
  );
  assert.throws(() => randomGuestActivity(1.5, 10), /seed 1.5 is invalid/);
  assert.throws(
    () => randomGuestActivity(1, 10, { weights: { access: -1 } }),
    /weight of "access" -1/,
  );
});

Deno.test("outcomes cover every kind of result", () => {
  const results = new Set<string>();
  const resolutions = new Set<string>();
  for (let seed = 1; seed <= 12; seed++) {
    const { records } = run(randomGuestActivity(seed, 400, { balloon: true }));
    for (const r of records) {
      if (r.op.op !== "access") continue;
      results.add(String(r.result.result));
      for (const f of r.result.faults as { resolution: string }[]) {
        resolutions.add(f.resolution);
      }
    }
  }
  for (const k of ["ok", "segv", "efault", "oops", "gp", "unbacked"]) {
    assert.ok(results.has(k), `no "${k}" result`);
  }
  for (const k of ["demand-zero", "cow-copy", "cow-reuse", "segv"]) {
    assert.ok(resolutions.has(k), `no "${k}" fault`);
  }
});

Deno.test("guest-visible results do not depend on machine placement or on Xen vs KVM", () => {
  for (let seed = 1; seed <= 10; seed++) {
    const ops = randomGuestActivity(seed, 250);
    const base = run(ops).records;
    assert.equal(
      diffActivity(base, run(ops, { seed: seed + 100 }).records),
      undefined,
    );
    assert.equal(
      diffActivity(base, run(ops, { kind: "kvm", seed }).records),
      undefined,
    );
  }
});

Deno.test("host and guest invariants hold after every operation", () => {
  for (let seed = 1; seed <= 16; seed++) {
    const kind = seed % 2 === 0 ? "kvm" : "xen";
    const ops = randomGuestActivity(seed, 200, {
      balloon: true,
      memory: 4 * MiB,
    });
    const host = new Host<HypervisorKind>({
      memory: 32 * MiB,
      hypervisor: kind,
      seed,
    });
    const os = new GuestOs(host.createDomain({ memory: 4 * MiB }));
    ops.forEach((op, i) => {
      runActivity(os, [op]);
      const bad = os.checkConsistency();
      assert.deepEqual(bad, [], `seed ${seed} op ${i} ${JSON.stringify(op)}`);
    });
    assert.deepEqual(host.checkConsistency(), []);
    // the last op dumps every guest entry
    const last = runActivity(os, [{ op: "inspect" }])[0];
    assert.ok((last.result.state as string[]).length > 5);
  }
});

Deno.test("a tight guest runs out of memory the same way every time", () => {
  const ops = randomGuestActivity(3, 400, { memory: 160 * 1024 });
  const a = run(ops, { memory: 160 * 1024 }); // 40 frames
  assert.ok(
    a.records.some((r) =>
      r.result.result === "oom" || /out of memory/.test(String(r.result.error))
    ),
    "expected the small guest to run out of memory",
  );
  assert.equal(
    diffActivity(
      a.records,
      run(ops, { memory: 160 * 1024, kind: "kvm" }).records,
    ),
    undefined,
  );
  assert.deepEqual(a.os.checkConsistency(), []);
});

/** A broken scheme: a TLB that is flushed by CR3 loads but ignores INVLPG. */
class ForgetfulTlb extends ReferenceScheme {
  #tlb = new Map<string, number>();
  protected override onLoadCr3(root: number): void {
    this.#tlb.clear();
    super.onLoadCr3(root);
  }
  protected override performAccess(
    s: GuestAccessState,
    hi: number,
    lo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const key = `${hi}:${lo >>> 12}:${flags}`;
    const page = this.#tlb.get(key);
    if (page !== undefined) {
      return this.dataAccess(s, page + (lo & 0xfff), flags, size, value);
    }
    const r = super.performAccess(s, hi, lo, flags, size, value);
    if (r === GUEST_OK) this.#tlb.set(key, s.gpa - (s.gpa % 4096));
    return r;
  }
}

Deno.test("a scheme that ignores INVLPG is caught, and the reproducer minimized", () => {
  let found: { seed: number; ops: GuestOp[] } | undefined;
  for (let seed = 1; seed <= 40 && !found; seed++) {
    const ops = randomGuestActivity(seed, 300);
    const ref = run(ops).records;
    const bad = run(ops, { scheme: new ForgetfulTlb() }).records;
    if (diffActivity(ref, bad)) found = { seed, ops };
  }
  assert.ok(found, "no seed exposed the forgetful TLB");
  const fails = (l: readonly GuestOp[]) =>
    diffActivity(
      run(l).records,
      run(l, { scheme: new ForgetfulTlb() }).records,
    ) !== undefined;
  const small = minimizeActivity(found.ops, fails);
  assert.ok(fails(small));
  assert.ok(
    small.length <= 12,
    `reproducer of ${small.length} ops:\n${formatActivity(small)}`,
  );
  const d = diffActivity(
    run(small).records,
    run(small, { scheme: new ForgetfulTlb() }).records,
  )!;
  assert.ok(d.i < small.length);
  assert.throws(
    () => minimizeActivity([{ op: "flush" }], () => false),
    /does not fail/,
  );
});
