/**
 * Hostile-guest fuzz of Xen PV direct paging: a malicious guest issues
 * random mmu_update batches, mmuext ops and trapped direct stores
 * (writable page tables) aimed at its own frames, a foreign domain's and
 * the hypervisor's, with random flags (PSE, R/W, linear mappings, Xen's L4
 * slots). After every step the independent checker (`PvMmu.audit`) must
 * find no writable mapping of a page-table frame, no mapping of a foreign
 * or hypervisor frame, and counts equal to those recomputed from the
 * tables; every refusal must carry a code and a reason. Plus the named
 * cases of XSA-148 and XSA-182, and proof that the checker catches both
 * bugs when they are switched back on.
 */
import assert from "node:assert/strict";
import { Host } from "../lib/virt/host.ts";
import type { XenDomain } from "../lib/virt/domain.ts";
import { PvMmu, type PvMmuextOp, pvUpdate } from "../lib/virt/pv/mod.ts";
import { Random } from "../lib/util/random.ts";

const CODES = new Set(["EINVAL", "EPERM", "EBUSY", "EFAULT"]);
const FLAGS = [0x1, 0x2, 0x4, 0x20, 0x40, 0x80, 0x100];
const SLOTS = [0, 1, 2, 5, 255, 256, 271, 272, 511];

function world(bugs = {}) {
  const host = new Host({ memory: 2 ** 20 });
  const vm = host.createDomain({ memory: 16 * 4096 }) as XenDomain;
  const other = host.createDomain({ memory: 2 * 4096 }) as XenDomain;
  const mmu = new PvMmu(host, vm, { bugs });
  const own = [...Array(16).keys()].map((g) => vm.p2m(g)!);
  const foreign = [other.p2m(0)!, other.p2m(1)!, 0];
  return { host, vm, mmu, own, foreign };
}

function fuzz(seed: number, steps: number): Record<string, number> {
  const rng = new Random(seed);
  const { mmu, own, foreign } = world();
  const frame = () => rng.chance(0.85) ? rng.pick(own) : rng.pick(foreign);
  const entry = () => {
    let lo = frame() * 4096;
    for (const f of FLAGS) if (rng.chance(f === 1 ? 0.8 : 0.3)) lo += f;
    return { lo, hi: rng.chance(0.2) ? 0x80000000 : 0 };
  };
  const slot = () => rng.chance(0.7) ? rng.pick(SLOTS) : rng.int(512);
  const seen: Record<string, number> = { ok: 0 };
  for (let i = 0; i < steps; i++) {
    const t = rng.next();
    let results;
    if (t < 0.55) {
      const n = 1 + rng.int(4);
      const reqs = [];
      for (let k = 0; k < n; k++) {
        const { lo, hi } = entry();
        let ptr = frame() * 4096 + 8 * slot();
        if (rng.chance(0.02)) ptr += rng.pick([1, 2, 4]);
        reqs.push({ ptr, lo: lo >>> 0, hi: hi >>> 0 });
      }
      results = mmu.mmuUpdate(reqs).results;
    } else if (t < 0.85) {
      const cmds: PvMmuextOp["cmd"][] = [
        "pin-l1",
        "pin-l2",
        "pin-l3",
        "pin-l4",
        "pin-l4",
        "unpin",
        "unpin",
        "new-baseptr",
      ];
      const cmd = rng.pick(cmds);
      results = mmu.mmuextOp([
        { cmd, mfn: frame() } as PvMmuextOp,
      ]).results;
    } else {
      // a trapped direct store (writable page tables) of one half of an entry
      const { lo, hi } = entry();
      const ma = frame() * 4096 + 8 * slot() + (rng.chance(0.2) ? 4 : 0);
      const rc = mmu.ptwrUpdate(ma, 4, ma % 8 === 0 ? lo : hi);
      results = [{ code: rc === 0 ? "ok" : rc, reason: rc === 0 ? "" : "x" }];
    }
    for (const r of results) {
      if (r.code === "ok" || r.code === "not-run") {
        seen[r.code] = (seen[r.code] ?? 0) + 1;
        continue;
      }
      assert.ok(CODES.has(r.code), `step ${i}: unknown code ${r.code}`);
      assert.ok(r.reason.length > 0, `step ${i}: refusal without a reason`);
      seen[r.code] = (seen[r.code] ?? 0) + 1;
    }
    const bad = mmu.audit();
    if (bad.length > 0) {
      assert.fail(`seed ${seed} step ${i}: ${bad.slice(0, 5).join("; ")}`);
    }
  }
  seen.validations = mmu.counters.validations;
  return seen;
}

const SEEDS = [1, 2, 3, 4];
const STEPS = Number(Deno.env.get("PV_FUZZ_STEPS") ?? 25_000);

for (const seed of SEEDS) {
  Deno.test(`hostile guest fuzz: seed ${seed}, ${STEPS} steps, invariants after every step`, () => {
    const seen = fuzz(seed, STEPS);
    // the fuzz reaches the interesting states: successes, validations, every refusal kind
    assert.ok(seen.ok > STEPS / 20, JSON.stringify(seen));
    assert.ok(seen.validations > 100, JSON.stringify(seen));
    for (const c of ["EINVAL", "EPERM", "EBUSY"]) {
      assert.ok((seen[c] ?? 0) > 0, `${c} never seen: ${JSON.stringify(seen)}`);
    }
  });
}

/** L4 → L3 → L2 → L1 pinned; returns the frames. */
function tree(bugs = {}) {
  const w = world(bugs);
  const [l4, l3, l2, l1, data] = w.own;
  const e = (m: number, f: number) => BigInt(m * 4096 + f);
  assert.ok(
    w.mmu.mmuUpdate([
      pvUpdate(l4 * 4096, e(l3, 7)),
      pvUpdate(l3 * 4096, e(l2, 7)),
      pvUpdate(l2 * 4096, e(l1, 7)),
      pvUpdate(l1 * 4096, e(data, 7)),
    ]).ok,
  );
  assert.ok(w.mmu.mmuextOp([{ cmd: "pin-l4", mfn: l4 }]).ok);
  return { ...w, l4, l3, l2, l1, data, e };
}

Deno.test("XSA-148: setting PSE on an existing L2 entry (same frame) is refused", () => {
  const t = tree();
  // same mfn, P kept: a fast-path candidate; PSE|RW would map the L1 and its
  // neighbours as one writable 2 MiB page, bypassing the L1 type checks
  const r = t.mmu.mmuUpdate([pvUpdate(t.l2 * 4096, t.e(t.l1, 0x87))]);
  assert.equal(r.rc, "EINVAL");
  assert.match(r.results[0].reason, /PSE/);
  assert.deepEqual(t.mmu.audit(), []);
});

Deno.test("XSA-148 re-introduced: the checker catches the writable superpage over an L1", () => {
  const t = tree({ xsa148: true });
  assert.ok(t.mmu.mmuUpdate([pvUpdate(t.l2 * 4096, t.e(t.l1, 0x87))]).ok);
  const bad = t.mmu.audit();
  assert.ok(bad.some((b) => /superpage/.test(b)), bad.join("\n"));
});

Deno.test("XSA-182: adding R/W to a read-only linear L4 mapping through the fast path is refused", () => {
  const t = tree();
  assert.ok(t.mmu.mmuUpdate([pvUpdate(t.l4 * 4096 + 8, t.e(t.l4, 0x5))]).ok); // RO self-map
  const r = t.mmu.mmuUpdate([pvUpdate(t.l4 * 4096 + 8, t.e(t.l4, 0x7))]); // + RW
  assert.equal(r.rc, "EINVAL");
  assert.match(r.results[0].reason, /linear page tables must be read-only/);
  // also for a linear mapping of another L4 and at L3
  assert.ok(t.mmu.mmuextOp([{ cmd: "pin-l4", mfn: t.own[6] }]).ok);
  assert.ok(
    t.mmu.mmuUpdate([pvUpdate(t.l4 * 4096 + 16, t.e(t.own[6], 0x5))]).ok,
  );
  assert.equal(
    t.mmu.mmuUpdate([pvUpdate(t.l4 * 4096 + 16, t.e(t.own[6], 0x7))]).rc,
    "EINVAL",
  );
  assert.deepEqual(t.mmu.audit(), []);
});

Deno.test("XSA-182 re-introduced: the checker catches the writable linear mapping", () => {
  const t = tree({ xsa182: true });
  assert.ok(t.mmu.mmuUpdate([pvUpdate(t.l4 * 4096 + 8, t.e(t.l4, 0x5))]).ok);
  assert.ok(t.mmu.mmuUpdate([pvUpdate(t.l4 * 4096 + 8, t.e(t.l4, 0x7))]).ok);
  const bad = t.mmu.audit();
  assert.ok(
    bad.some((b) => /linear self-mapping with R\/W/.test(b)),
    bad.join("\n"),
  );
});
