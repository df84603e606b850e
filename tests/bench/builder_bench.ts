/**
 * Page-table builder throughput: `deno bench -A tests/bench/builder_bench.ts`.
 *
 * Each bench iteration builds into a fresh table (set-up excluded from
 * the timing with `b.start()`/`b.end()`): {@linkcode N} first-touch maps of
 * 4 KiB pages at dense (consecutive) or sparse (random, all over the
 * user half, so most maps also create tables) addresses, {@linkcode N}
 * maps of 2 MiB pages, or {@linkcode N} unmaps of dense 4 KiB pages; each
 * with and without an `onEntryWrite` listener. µs per map = time per
 * iteration / N. The trace-replay synthetic case (200 k accesses, mostly
 * first touches, see trace_bench.ts) is repeated for reference.
 *
 * Set `MEMVIRT_BENCH_SELFCHECK=1` to also print µs per map measured with a
 * plain timing loop (handy when comparing before/after an optimisation).
 *
 * @module
 */

import { FrameAllocator, PhysicalMemory } from "../../lib/memory/memory.ts";
import { X86_64_4LEVEL } from "../../lib/paging/format.ts";
import { pagingMode } from "../../lib/paging/mode.ts";
import { type EntryChange, PageTable } from "../../lib/paging/builder.ts";
import { LinearAddress } from "../../lib/address/address.ts";
import { Random } from "../../lib/util/random.ts";
import { type ReplayOptions, replayTrace } from "../../lib/workload/replay.ts";
import { synthetic } from "./_synthetic.ts";

/** Operations per bench iteration. */
const N = 4096;

const MODE = pagingMode(X86_64_4LEVEL);
const OPTS = { user: true, writable: true, executable: true } as const;
const OPTS_2M = { ...OPTS, size: 2 ** 21 } as const;

/** Dense: N consecutive 4 KiB pages from 4 MiB. */
const DENSE = Array.from(
  { length: N },
  (_, i) => new LinearAddress(0, 0x40_0000 + i * 4096),
);
/** Sparse: N distinct random 4 KiB pages in the 47-bit user half. */
const SPARSE = (() => {
  const rnd = new Random(7);
  const seen = new Set<string>();
  const out: LinearAddress[] = [];
  while (out.length < N) {
    const a = new LinearAddress(rnd.int(0x8000), rnd.int(2 ** 20) * 4096);
    const k = `${a.hi}:${a.lo}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(a);
  }
  return out;
})();
/** N consecutive 2 MiB pages from 1 GiB. */
const LARGE = Array.from(
  { length: N },
  (_, i) => new LinearAddress(Math.floor(i / 2048), (i % 2048) * 2 ** 21),
);

function fresh(listen: boolean): PageTable {
  const mem = new PhysicalMemory({ size: 2 ** 46, name: "machine" });
  const pt = new PageTable(mem, {
    mode: MODE,
    allocator: new FrameAllocator(mem, { end: 2 ** 32 }),
  });
  if (listen) {
    let n = 0;
    pt.onEntryWrite((c: EntryChange) => {
      if (c.needsFlush) n++;
    });
    if (n < 0) throw new Error("unreachable");
  }
  return pt;
}

function mapAll(pt: PageTable, vas: LinearAddress[], large: boolean): void {
  let pa = 2 ** 33;
  const o = large ? OPTS_2M : OPTS;
  const step = large ? 2 ** 21 : 4096;
  for (const va of vas) {
    pt.map(va, pa, o);
    pa += step;
  }
}

const CASES: [string, (pt: PageTable) => void, boolean][] = [
  ["map 4 KiB dense", (pt) => mapAll(pt, DENSE, false), false],
  ["map 4 KiB sparse", (pt) => mapAll(pt, SPARSE, false), false],
  ["map 2 MiB", (pt) => mapAll(pt, LARGE, true), false],
  ["unmap 4 KiB dense", (pt) => {
    for (const va of DENSE) pt.unmap(va);
  }, true],
];

for (const [name, run, premap] of CASES) {
  for (const listen of [false, true]) {
    Deno.bench({
      name: `${name}${listen ? " + listener" : ""} (${N} per iteration)`,
      group: name,
      baseline: !listen,
      fn(b) {
        const pt = fresh(listen);
        if (premap) mapAll(pt, DENSE, false);
        b.start();
        run(pt);
        b.end();
      },
    });
  }
}

if (Deno.env.get("MEMVIRT_BENCH_SELFCHECK") === "1") {
  for (const [name, run, premap] of CASES) {
    for (const listen of [false, true]) {
      let best = Infinity;
      for (let rep = 0; rep < 8; rep++) {
        const pt = fresh(listen);
        if (premap) mapAll(pt, DENSE, false);
        const t0 = performance.now();
        run(pt);
        best = Math.min(best, performance.now() - t0);
      }
      console.log(
        `${name}${listen ? " + listener" : ""}: ${
          (best * 1000 / N).toFixed(2)
        } µs per op (best of 8)`,
      );
    }
  }
}

const SYN = 200_000;
const syn = synthetic(SYN);
const MACHINES: [string, ReplayOptions][] = [
  ["native 4 KiB", {}],
  ["nested EPT 4×4 cached", { machine: "nested" }],
  ["nested NPT 4×4 cached", { machine: "nested", stage: "npt" }],
];
for (const [name, o] of MACHINES) {
  Deno.bench({
    name: `trace synthetic: ${name} (${SYN} accesses per iteration)`,
    group: "trace synthetic",
    baseline: name === "native 4 KiB",
    async fn() {
      await replayTrace(syn, o);
    },
  });
}
