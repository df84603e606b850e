/**
 * Workload generators (deterministic per seed, doing what they claim), the
 * TLB in front of a scheme (no guest-visible change: differential against
 * the plain reference on random activity; flush rules), and the experiment
 * runner (native has no exits and overhead 1, shadow exits more than
 * nested on fork churn, 24 references per miss for a 4×4 nested walk
 * without caches and fewer with them, 19 with guest 2 MiB pages).
 */

import assert from "node:assert/strict";
import {
  contextSwitchHeavy,
  forkExecChurn,
  mmapChurn,
  pointerChase,
  randomAccess,
  sequentialScan,
  type TraceBatch,
  traceWorkload,
  type Workload,
  WORKLOAD_BASE,
  WORKLOADS,
} from "../lib/workload/generators.ts";
import {
  defaultConfigs,
  type ExperimentProgress,
  nestedConfig,
  runExperiment,
} from "../lib/workload/experiment.ts";
import {
  createActivityGuest,
  diffActivity,
  formatActivity,
  type GuestOp,
  minimizeActivity,
  randomGuestActivity,
  runActivity,
} from "../lib/virt/guest/activity.ts";
import { TlbFront } from "../lib/virt/tlb_front.ts";
import { ReferenceScheme } from "../lib/virt/reference.ts";
import { ShadowScheme } from "../lib/virt/shadow/shadow.ts";
import { NestedScheme } from "../lib/virt/nested/scheme.ts";
import type { MmuScheme } from "../lib/virt/scheme.ts";
import { Tlb } from "../lib/tlb/tlb.ts";

const SMALL = {
  scan: () => sequentialScan({ pages: 8, passes: 2, stride: 1024, seed: 3 }),
  gups: () => randomAccess({ pages: 32, updates: 200, seed: 3 }),
  "gups-2m": () =>
    randomAccess({ pages: 32, updates: 200, pageSize: "2m", seed: 3 }),
  chase: () => pointerChase({ nodes: 16, laps: 2, seed: 3 }),
  fork: () => forkExecChurn({ rounds: 3, pages: 6, writes: 2, seed: 3 }),
  mmap: () => mmapChurn({ rounds: 5, pages: 3, seed: 3 }),
  switch: () =>
    contextSwitchHeavy({
      processes: 3,
      switches: 12,
      pages: 2,
      slice: 3,
      seed: 3,
    }),
} as const;

function run(w: Workload, scheme?: MmuScheme) {
  const { os } = createActivityGuest({
    memory: w.guestMemory,
    hostMemory: 2 * w.guestMemory + 32 * 2 ** 20,
    ...(scheme ? { scheme } : {}),
  });
  const setup = runActivity(os, w.setup);
  const ops = runActivity(os, w.ops);
  return { os, setup, ops };
}

function display(x: object): Record<string, string> {
  return (x as Record<symbol, () => Record<string, string>>)[
    Symbol.for("Jupyter.display")
  ]();
}

const accessVas = (ops: readonly GuestOp[]) =>
  ops.flatMap((o) => (o.op === "access" ? [o.va] : []));

Deno.test("every generator is deterministic per seed, plain data, and runs without errors", () => {
  for (const [name, make] of Object.entries(SMALL)) {
    const a = make(), b = make();
    assert.deepEqual(a, b, name);
    assert.deepEqual(JSON.parse(JSON.stringify(a)), a, name);
    const { setup, ops } = run(a);
    assert.deepEqual(
      setup.filter((r) => "error" in r.result),
      [],
      `${name} setup`,
    );
    assert.deepEqual(ops.filter((r) => "error" in r.result), [], `${name} ops`);
    assert.ok(
      ops.every((r) => r.op.op !== "access" || r.result.result === "ok"),
      `${name}: every access ok`,
    );
  }
  // seeds matter where there is randomness
  for (
    const make of [
      (seed: number) => randomAccess({ pages: 32, updates: 50, seed }),
      (seed: number) => pointerChase({ nodes: 16, laps: 1, seed }),
      (seed: number) => mmapChurn({ rounds: 6, seed }),
      (seed: number) => contextSwitchHeavy({ switches: 8, seed }),
      (seed: number) => forkExecChurn({ rounds: 3, seed }),
    ]
  ) {
    assert.notDeepEqual(make(1).ops, make(2).ops);
  }
  assert.deepEqual(Object.keys(WORKLOADS), Object.keys(SMALL));
});

Deno.test("parameters are validated with messages naming the value", () => {
  const cases: [() => unknown, RegExp][] = [
    [
      () => sequentialScan({ pages: 0 }),
      /pages 0 is invalid: expected an integer in \[1, 65536\]/,
    ],
    [
      () => sequentialScan({ stride: 96 }),
      /stride 96 is invalid: expected a power of two/,
    ],
    [() => randomAccess({ updates: 1.5 }), /updates 1.5 is invalid/],
    [
      () => randomAccess({ pageSize: "1g" as never }),
      /pageSize "1g" is invalid/,
    ],
    [
      () => randomAccess({ pageSize: "2m", write: true }),
      /write true is invalid with pageSize "2m"/,
    ],
    [() => pointerChase({ nodes: 1 }), /nodes 1 is invalid/],
    [
      () => forkExecChurn({ pages: 4, writes: 5 }),
      /writes 5 is invalid: expected an integer in \[0, 4\]/,
    ],
    [() => mmapChurn({ slots: 65 }), /slots 65 is invalid/],
    [() => contextSwitchHeavy({ processes: 1 }), /processes 1 is invalid/],
    [() => sequentialScan({ seed: 0.5 }), /seed 0.5 is invalid/],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
});

Deno.test("sequential scan visits addresses in order, every pass the same", () => {
  const w = sequentialScan({ pages: 5, passes: 3, stride: 512 });
  const vas = accessVas(w.ops).map(Number);
  const pass = 5 * 8;
  assert.equal(vas.length, 3 * pass);
  for (let i = 1; i < pass; i++) assert.equal(vas[i] - vas[i - 1], 512);
  assert.deepEqual(vas.slice(0, pass), vas.slice(pass, 2 * pass));
  assert.equal(vas[0], WORKLOAD_BASE);
});

Deno.test("GUPS touches about the whole working set, inside it", () => {
  for (const seed of [1, 2, 3]) {
    const w = randomAccess({ pages: 64, updates: 1024, seed });
    const pages = new Set(
      accessVas(w.ops).map((v) =>
        Math.floor((Number(v) - WORKLOAD_BASE) / 4096)
      ),
    );
    assert.ok([...pages].every((p) => p >= 0 && p < 64));
    assert.ok(pages.size >= 0.95 * 64, `seed ${seed}: ${pages.size} pages`);
    // read then write of the same word
    const acc = w.ops.filter((o) => o.op === "access");
    for (let i = 0; i < acc.length; i += 2) {
      assert.equal(acc[i].op === "access" && acc[i].kind, "read");
      assert.equal(acc[i + 1].op === "access" && acc[i + 1].kind, "write");
      assert.equal(
        acc[i].op === "access" && acc[i].va,
        acc[i + 1].op === "access" && acc[i + 1].va,
      );
    }
  }
  const big = randomAccess({ pages: 600, updates: 4000, pageSize: "2m" });
  const spans = new Set(
    accessVas(big.ops).map((v) => (BigInt(v) - 0xffff888000000000n) >> 21n),
  );
  assert.deepEqual([...spans].sort(), [0n, 1n]); // 600 pages: two 2 MiB pages
  assert.ok(big.guestMemory >= 600 * 4096);
});

Deno.test("pointer chase: each node once per lap, each read returns the next node's index", () => {
  const nodes = 24, laps = 3;
  const w = pointerChase({ nodes, laps, seed: 11 });
  const { ops } = run(w);
  const nodeOf = (va: string) =>
    Math.floor((Number(va) - WORKLOAD_BASE) / 4096);
  const seq = ops.map((r) => nodeOf((r.op as { va: string }).va));
  for (let lap = 0; lap < laps; lap++) {
    assert.equal(
      new Set(seq.slice(lap * nodes, (lap + 1) * nodes)).size,
      nodes,
    );
  }
  for (let i = 0; i + 1 < seq.length; i++) {
    assert.equal(ops[i].result.value, seq[i + 1]);
  }
  assert.equal(seq[0], 0);
});

Deno.test("fork churn forks, copies on write, execs and reaps; mmap churn maps and unmaps", () => {
  const w = forkExecChurn({ rounds: 4, pages: 8, writes: 3, seed: 2 });
  const { os, ops } = run(w);
  assert.deepEqual(
    ops.filter((r) => r.op.op === "fork").map((r) => r.result.pid),
    [2, 3, 4, 5],
  );
  assert.ok(os.counters.resolutions["cow-copy"] > 0);
  assert.deepEqual(os.processes.map((p) => p.pid), [1]);
  const m = run(mmapChurn({ rounds: 6, pages: 4, seed: 2 }));
  assert.equal(m.os.counters.syscalls.munmap, 6);
  assert.equal(m.os.processes[0].vmas.length, 0);
  const s = run(
    contextSwitchHeavy({ processes: 3, switches: 10, pages: 2, slice: 2 }),
  );
  assert.ok(s.os.counters.switches >= 10);
});

async function* batches(): AsyncGenerator<TraceBatch> {
  // reused buffers, as trace.ts does
  const kind = new Uint8Array(4),
    hi = new Uint32Array(4),
    lo = new Uint32Array(4),
    size = new Uint8Array(4);
  const rows: [number, number, number][] = [
    [0, 0x0040_1000, 4],
    [1, 0x0040_2ff8, 8],
    [2, 0x0040_3004, 4],
    [3, 0x0060_0001, 1],
    [1, 0x8, 4],
    [1, 0x1ffefff00, 8],
    [0, 0x0040_1004, 2],
  ];
  for (let i = 0; i < rows.length; i += 4) {
    const part = rows.slice(i, i + 4);
    part.forEach(([k, a, s], j) => {
      kind[j] = k;
      hi[j] = Math.floor(a / 2 ** 32);
      lo[j] = a >>> 0;
      size[j] = s;
    });
    yield { count: part.length, kind, hi, lo, size };
  }
}

Deno.test("trace workload: pages mapped, accesses kept in order, kernel/low addresses dropped", async () => {
  const w = await traceWorkload(batches());
  assert.deepEqual(
    w.ops.map((o) => o.op === "access" && `${o.kind} ${o.va}`),
    [
      "fetch 0x401000",
      "read 0x402ff8",
      "write 0x403004",
      "write 0x600000",
      "read 0x1ffefff00",
      "fetch 0x401004",
    ],
  );
  assert.equal(w.params.dropped, 1);
  assert.deepEqual(
    w.setup.filter((o) => o.op === "mmap").map((o) =>
      o.op === "mmap" && [o.addr, o.pages]
    ),
    [[0x401000, 3], [0x600000, 1], [0x1ffeff000, 1]],
  );
  const { ops } = run(w);
  assert.ok(ops.every((r) => r.result.result === "ok"));
  const capped = await traceWorkload(batches(), { maxAccesses: 2 });
  assert.equal(capped.ops.length, 2);
  await assert.rejects(
    () =>
      traceWorkload([{
        count: 1,
        kind: Uint8Array.of(7),
        hi: Uint32Array.of(0),
        lo: Uint32Array.of(0x400000),
        size: Uint8Array.of(4),
      }]),
    /trace access kind 7 is invalid/,
  );
});

// ------------------------------------------------------------ the TLB front

const FRONTS: [string, () => MmuScheme][] = [
  [
    "reference",
    () =>
      new TlbFront(new ReferenceScheme({ eventLog: 0 }), {
        tlb: { entries: 16, ways: 4 },
      }),
  ],
  [
    "reference+psc",
    () =>
      new TlbFront(new ReferenceScheme({ eventLog: 0 }), {
        tlb: { entries: 8, ways: 2 },
        psc: true,
      }),
  ],
  [
    "shadow",
    () =>
      new TlbFront(new ShadowScheme({ eventLog: 0 }), {
        tlb: { entries: 16, ways: 4 },
      }),
  ],
  [
    "shadow-oos",
    () =>
      new TlbFront(new ShadowScheme({ eventLog: 0, outOfSync: 3 }), {
        tlb: { entries: 32, ways: 32 },
      }),
  ],
  [
    "nested",
    () =>
      new TlbFront(new NestedScheme({ eventLog: 0 }), {
        tlb: { entries: 16, ways: 4 },
      }),
  ],
  [
    "nested+caches",
    () =>
      new TlbFront(
        new NestedScheme({
          eventLog: 0,
          caches: { guestPsc: {}, nestedTlb: {}, hostPsc: {} },
        }),
        { tlb: { entries: 16, ways: 4 } },
      ),
  ],
];

Deno.test("differential: a TLB in front changes no guest-visible outcome (random activity)", () => {
  let hits = 0;
  for (const hypervisor of ["xen", "kvm"] as const) {
    for (let seed = 1; seed <= 10; seed++) {
      const ops = randomGuestActivity(seed, 300, { balloon: true });
      const expected = runActivity(createActivityGuest({ hypervisor }).os, ops);
      for (const [name, make] of FRONTS) {
        const scheme = make() as TlbFront;
        const actual = runActivity(
          createActivityGuest({ hypervisor, scheme }).os,
          ops,
        );
        const d = diffActivity(expected, actual);
        if (d !== undefined) {
          const small = minimizeActivity(ops, (l) =>
            diffActivity(
              runActivity(createActivityGuest({ hypervisor }).os, l),
              runActivity(
                createActivityGuest({
                  hypervisor,
                  scheme: FRONTS.find((f) => f[0] === name)![1](),
                }).os,
                l,
              ),
            ) !== undefined);
          assert.fail(
            `${name} on ${hypervisor}, seed ${seed}: op ${d.i} differs\n${
              formatActivity(small)
            }`,
          );
        }
        hits += scheme.tlbCounters.hits;
      }
    }
  }
  assert.ok(hits > 1000, `the TLBs were used (${hits} hits)`);
});

Deno.test("TLB front: hits skip the walk; CR3 loads and INVLPG flush; writes to clean pages re-walk", () => {
  const front = new TlbFront(new ReferenceScheme(), {
    tlb: new Tlb({ entries: 8, ways: 8 }),
  });
  const { os } = createActivityGuest({ scheme: front });
  os.switchTo(os.spawn().pid);
  const a = os.mmap({ length: 2 * 4096 });
  os.access(a + 4096, { kind: "write", value: 1 });
  os.access(a, { kind: "read" }); // demand-zero read: clean PTE
  front.resetCounters();
  assert.equal(os.access(a).value, 0);
  assert.equal(front.tlbCounters.hits, 1);
  os.access(a, { kind: "write", value: 3 }); // clean entry: re-walk sets D
  assert.equal(front.tlbCounters.rewalks, 1);
  assert.equal(front.inner.counters.extra.guestWalks, 1);
  os.access(a, { kind: "write", value: 4 }); // now dirty: a hit
  assert.equal(front.tlbCounters.hits, 2);
  os.invlpg(a);
  os.access(a);
  assert.equal(front.tlbCounters.misses, 1);
  os.access(a + 4096);
  assert.equal(front.tlbCounters.hits, 3);
  os.flushTlb();
  os.access(a + 4096);
  assert.equal(front.tlbCounters.misses, 2);
  const c = front.counters;
  assert.equal(c.accesses, 6);
  assert.equal(c.extra.schemeAccesses, 3);
  assert.equal(front.name, "reference+tlb");
  assert.match(String(front), /reference\+tlb: 6 accesses, 3 TLB hits/);
  const bundle = display(front);
  assert.ok("text/plain" in bundle && "text/html" in bundle);
  assert.throws(() => new TlbFront(null as never), /scheme null is invalid/);
  assert.throws(
    () => new TlbFront(new ReferenceScheme(), { maxPageShift: 11 }),
    /maxPageShift 11 is invalid/,
  );
  assert.throws(
    () => new TlbFront(new ReferenceScheme()).access(0x1000),
    /not attached/,
  );
});

Deno.test("TLB front: native keeps 2 MiB entries, shadow and nested splinter them to 4 KiB", () => {
  const w = randomAccess({
    pages: 1024,
    updates: 400,
    pageSize: "2m",
    seed: 5,
  });
  const sizes = (scheme: TlbFront) => {
    const { os } = createActivityGuest({ scheme, memory: w.guestMemory });
    runActivity(os, [...w.setup, ...w.ops]);
    return new Set(scheme.tlb.entries().map((e) => e.pageSize));
  };
  assert.deepEqual(
    sizes(new TlbFront(new ReferenceScheme())),
    new Set([2 ** 21]),
  );
  assert.deepEqual(sizes(new TlbFront(new ShadowScheme())), new Set([4096]));
  assert.deepEqual(sizes(new TlbFront(new NestedScheme())), new Set([4096]));
});

// ------------------------------------------------------------- the runner

Deno.test("runner: native has no exits and overhead 1; every configuration sees the same results", () => {
  for (const w of [SMALL.gups(), SMALL.switch(), SMALL.chase()]) {
    const r = runExperiment(w);
    const n = r.row("native");
    assert.equal(n.vmExits, 0);
    assert.equal(n.overhead, 1);
    assert.equal(new Set(r.rows.map((x) => x.checksum)).size, 1, w.name);
    assert.ok(r.rows.every((x) => x.accesses === n.accesses && x.errors === 0));
    assert.deepEqual(
      r.rows.map((x) => x.config),
      defaultConfigs().map((c) => c.name),
    );
    // tidy companions
    assert.equal(r.cycleRows.length, r.rows.length * 6);
    for (const row of r.rows) {
      const sum = r.cycleRows.filter((c) => c.config === row.config).reduce(
        (a, c) => a + c.cycles,
        0,
      );
      assert.ok(Math.abs(sum - row.cycles) < 1e-3);
      const exits = r.exitRows.filter((e) => e.config === row.config).reduce(
        (a, e) => a + e.exits,
        0,
      );
      assert.equal(exits, row.vmExits);
    }
  }
});

Deno.test("runner: shadow exits at least as often as nested on fork churn", () => {
  const r = runExperiment(forkExecChurn({ rounds: 4, pages: 12, seed: 9 }));
  assert.ok(r.row("shadow").vmExits >= r.row("nested").vmExits);
  assert.ok(r.row("shadow").vmExits > 10 * r.row("nested").vmExits);
  assert.ok(r.row("shadow-oos").vmExits < r.row("shadow").vmExits);
  assert.ok(r.row("shadow").overhead > r.row("nested").overhead);
});

Deno.test("runner: 2-D walk references per TLB miss (24 for 4×4, 19 with guest 2 MiB pages, fewer with caches)", () => {
  const r4 = runExperiment(randomAccess({ pages: 256, updates: 600, seed: 4 }));
  assert.equal(r4.row("nested").refsPerMiss, 24);
  assert.ok(r4.row("nested+caches").refsPerMiss < 24);
  assert.ok(r4.row("nested").tlbMisses > 100);
  const r2 = runExperiment(
    randomAccess({ pages: 1024, updates: 600, pageSize: "2m", seed: 4 }),
  );
  assert.equal(r2.row("nested").refsPerMiss, 19);
  // native: 2 MiB TLB entries cover the set; the others see 4 KiB entries
  assert.ok(r2.row("native").tlbHitRate > 0.99);
  assert.ok(r2.row("nested").tlbHitRate < 0.5);
  assert.ok(r2.row("shadow").refsPerMiss <= 4);
});

Deno.test("runner: 2 MiB host pages shorten the 2-D walk and, with 2 MiB guest pages, give native's TLB reach", () => {
  const r4 = runExperiment(randomAccess({ pages: 256, updates: 600, seed: 4 }));
  assert.equal(r4.row("nested").refsPerMiss, 24);
  assert.equal(r4.row("nested-h2m").refsPerMiss, 19); // 4 guest tables + data: 3 host refs each
  assert.equal(r4.row("nested-h2m").tlbHitRate, r4.row("nested").tlbHitRate);
  assert.ok(r4.row("nested-h2m").overhead < r4.row("nested").overhead);
  assert.equal(new Set(r4.rows.map((x) => x.checksum)).size, 1);
  const r2 = runExperiment(
    randomAccess({ pages: 1024, updates: 600, pageSize: "2m", seed: 4 }),
    {
      configs: [
        defaultConfigs()[0],
        nestedConfig(),
        nestedConfig({ hostPages: "2m" }),
      ],
    },
  );
  const [n, h4, h2] = ["native", "nested", "nested-h2m"].map((c) => r2.row(c));
  // 2 MiB on both sides: 2 MiB TLB entries, as native; 4 KiB host pages cap them at 4 KiB
  assert.equal(h2.tlbHitRate, n.tlbHitRate);
  assert.ok(h4.tlbHitRate < 0.5);
  assert.ok(
    h2.overhead < 1.5 && h4.overhead > 10,
    `${h2.overhead} ${h4.overhead}`,
  );
  assert.equal(h2.checksum, n.checksum);
  // EPT violations: one 2 MiB leaf maps a whole region
  const f = runExperiment(mmapChurn({ rounds: 8 }), {
    configs: [nestedConfig(), nestedConfig({ hostPages: "2m", stage: "npt" })],
  });
  assert.equal(f.rows[1].config, "nested-h2m-npt");
  assert.ok(f.rows[1].vmExits < f.rows[0].vmExits);
  assert.equal(f.rows[0].checksum, f.rows[1].checksum);
  assert.throws(
    () => nestedConfig({ stage: "vmx" as never }),
    /stage "vmx" is invalid/,
  );
});

Deno.test("runner: plugged-in schemes, progress, options and errors", () => {
  const seen: ExperimentProgress[] = [];
  const r = runExperiment(SMALL.scan(), {
    configs: defaultConfigs().slice(0, 1),
    schemes: {
      "shadow-prefetch": () => new ShadowScheme({ eventLog: 0, prefetch: 8 }),
    },
    onProgress: (p) => seen.push(p),
    progressEvery: 10,
  });
  assert.deepEqual(r.rows.map((x) => [x.config, x.scheme]), [[
    "native",
    "reference",
  ], ["shadow-prefetch", "shadow"]]);
  assert.ok(seen.length > 2);
  assert.deepEqual(seen.at(-1), {
    config: "shadow-prefetch",
    index: 1,
    configs: 2,
    done: 8 * 2 * 4,
    total: 8 * 2 * 4,
  });
  const noBase = runExperiment(SMALL.scan(), {
    configs: defaultConfigs().slice(3, 4),
  });
  assert.ok(Number.isNaN(noBase.rows[0].overhead));
  assert.throws(
    () =>
      runExperiment(SMALL.scan(), {
        configs: [...defaultConfigs(), defaultConfigs()[0]],
      }),
    /used twice/,
  );
  assert.throws(
    () => runExperiment(SMALL.scan(), { baseline: "bare" }),
    /baseline "bare" is not a configuration/,
  );
  assert.throws(
    () => runExperiment({} as never),
    /workload \[object Object\] is invalid/,
  );
  assert.throws(
    () => runExperiment(SMALL.scan(), { schemes: { pv: 3 as never } }),
    /schemes\.pv is invalid/,
  );
  assert.throws(
    () => r.row("pv"),
    /configuration "pv" is not in this experiment/,
  );
  const bundle = display(r);
  assert.match(bundle["text/html"], /shadow-prefetch/);
  assert.match(bundle["text/plain"], /^native\s/m);
});
