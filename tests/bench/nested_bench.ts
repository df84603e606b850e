/**
 * 2-D walk throughput: `deno bench -A tests/bench/nested_bench.ts`.
 *
 * Each bench iteration makes {@linkcode BATCH} nested walks of random
 * addresses in 4096 mapped guest pages, through guest tables in
 * guest-physical memory and a second stage (EPT or NPT) mapping every gfn
 * with 4 KiB pages, so every walk makes the full (n+1)(m+1)−1 references
 * when uncached. Guest and host A bits are set beforehand, so the steady
 * state reads and writes nothing else. Walks per second = BATCH / (time
 * per iteration). The floor (issue 6 §5) is 1 M uncached 4×4 2-D walks/s
 * on one core: at most 1024 µs per iteration.
 *
 * With caches on (guest PSC, nested TLB, host PSC) the addresses are the
 * same; the caches warm up in the first iteration.
 *
 * Set `MEMVIRT_BENCH_SELFCHECK=1` to also print walks/s measured with a
 * plain timing loop (best of 15 rounds), and `MEMVIRT_BENCH_ONLY=text` to
 * build only the fixtures whose name contains `text`.
 *
 * @module
 */

import { FrameAllocator, PhysicalMemory } from "../../lib/memory/memory.ts";
import { X86_64_4LEVEL, X86_64_5LEVEL } from "../../lib/paging/format.ts";
import { PageTable } from "../../lib/paging/builder.ts";
import { pagingMode } from "../../lib/paging/mode.ts";
import {
  EPT_4LEVEL,
  EPT_5LEVEL,
  eptMap,
  eptMode,
  nptMode,
} from "../../lib/paging/ept.ts";
import {
  ACCESS_USER,
  ACCESS_WRITE,
  WALK_OK,
  walkInto,
  WalkScratch,
} from "../../lib/paging/walker.ts";
import {
  NESTED_OK,
  NestedWalker,
  type NestedWalkerOptions,
} from "../../lib/virt/nested/walk.ts";
import { Random } from "../../lib/util/random.ts";

/** Walks per bench iteration. */
const BATCH = 1024;
/** Guest-physical memory: data frames below 16 MiB, guest tables above. */
const GUEST_MEMORY = 32 << 20;
/** hpa = gpa + OFFSET. */
const OFFSET = 2 ** 30;

interface Fixture {
  w: NestedWalker;
  root: number;
  his: Uint32Array;
  los: Uint32Array;
  refs: number;
}

function fixture(
  stage: "ept" | "npt",
  guestLevels: 4 | 5,
  hostLevels: 4 | 5,
  seed: number,
  options: NestedWalkerOptions = {},
): Fixture {
  const gmode = pagingMode(guestLevels === 4 ? X86_64_4LEVEL : X86_64_5LEVEL);
  const guest = new PhysicalMemory({ size: GUEST_MEMORY });
  const gframes = new FrameAllocator(guest, { start: 16 << 20 });
  const pt = new PageTable(guest, { mode: gmode, allocator: gframes });
  const rnd = new Random(seed);
  const pages: number[] = [];
  let frame = 0;
  // 4096 pages: 8 top-level slots × 8 × 8 × 8 page tables, 8 pages each
  for (let s = 0; s < 8; s++) {
    for (let p = 0; p < 8; p++) {
      for (let d = 0; d < 8; d++) {
        for (let t = 0; t < 8; t++) {
          const top = guestLevels === 4 ? 2 ** 39 : 2 ** 48;
          const va = s * top + p * 2 ** 30 + d * 2 ** 21 + t * 37 * 4096;
          pt.map(va, frame, { user: true, writable: true });
          pages.push(va);
          frame += 4096;
        }
      }
    }
  }
  // set the guest A/D bits (natively: same tables, same gpas)
  const s = new WalkScratch();
  for (const va of pages) {
    const r = walkInto(
      s,
      gmode,
      guest,
      pt.root,
      Math.floor(va / 2 ** 32),
      va >>> 0,
      ACCESS_WRITE | ACCESS_USER,
    );
    if (r !== WALK_OK) throw new Error("fixture walk failed");
  }
  const host = new PhysicalMemory({ size: 8 * 2 ** 30 });
  host.writeBytes(OFFSET + (16 << 20), guest.readBytes(16 << 20, 16 << 20));
  const hframes = new FrameAllocator(host, { start: 4 * 2 ** 30 + (3 << 20) });
  let w: NestedWalker;
  if (stage === "ept") {
    const mode = eptMode(hostLevels === 4 ? EPT_4LEVEL : EPT_5LEVEL);
    const root = hframes.alloc();
    for (let gpa = 0; gpa < GUEST_MEMORY; gpa += 4096) {
      eptMap(mode, host, () => hframes.alloc(), root, gpa, gpa + OFFSET);
    }
    w = new NestedWalker(gmode, { kind: "ept", mode }, host, root, options);
  } else {
    const mode = nptMode({ levels: hostLevels });
    const npt = new PageTable(host, { mode, allocator: hframes });
    for (let gpa = 0; gpa < GUEST_MEMORY; gpa += 4096) {
      npt.map(gpa, gpa + OFFSET, {
        user: true,
        writable: true,
        executable: true,
      });
    }
    w = new NestedWalker(gmode, { kind: "npt", mode }, host, npt.root, options);
  }
  const his = new Uint32Array(BATCH), los = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const va = pages[rnd.int(pages.length)] + rnd.int(4096);
    his[i] = Math.floor(va / 2 ** 32);
    los[i] = va >>> 0;
  }
  // NPT entries have A bits: one pass sets them (then nothing is written)
  for (const va of pages) {
    w.walk(pt.root, Math.floor(va / 2 ** 32), va >>> 0, ACCESS_USER);
    if (w.outcome !== NESTED_OK) throw new Error("fixture 2-D walk failed");
  }
  const before = host.chunksTouched;
  let refs = 0;
  for (let i = 0; i < BATCH; i++) {
    w.walk(pt.root, his[i], los[i], ACCESS_USER);
    if (w.outcome !== NESTED_OK) throw new Error("fixture 2-D walk failed");
    refs += w.tableReads;
  }
  if (host.chunksTouched !== before) throw new Error("steady state wrote");
  return { w, root: pt.root, his, los, refs: refs / BATCH };
}

function walkBatch(fx: Fixture): number {
  const { w, root, his, los } = fx;
  let sum = 0;
  for (let i = 0; i < BATCH; i++) {
    w.walk(root, his[i], los[i], ACCESS_USER);
    sum += w.hpa;
  }
  return sum;
}

const CACHES: NestedWalkerOptions = {
  guestPsc: { entries: 32 },
  nestedTlb: { entries: 64 },
  hostPsc: { entries: 32 },
};

/** `MEMVIRT_BENCH_ONLY=uncached` (or any substring) limits the fixtures. */
const ONLY = Deno.env.get("MEMVIRT_BENCH_ONLY") ?? "";
const FIXTURES: [string, Fixture][] = ([
  ["EPT 4×4 uncached", () => fixture("ept", 4, 4, 1)],
  ["NPT 4×4 uncached", () => fixture("npt", 4, 4, 2)],
  ["EPT 5×5 uncached", () => fixture("ept", 5, 5, 3)],
  ["NPT 5×5 uncached", () => fixture("npt", 5, 5, 4)],
  ["EPT 4×4 cached", () => fixture("ept", 4, 4, 1, CACHES)],
  ["NPT 4×4 cached", () => fixture("npt", 4, 4, 2, CACHES)],
  ["EPT 5×5 cached", () => fixture("ept", 5, 5, 3, CACHES)],
] as [string, () => Fixture][])
  .filter(([name]) => name.includes(ONLY))
  .map(([name, make]) => [name, make()]);

let sink = 0;
for (const [name, fx] of FIXTURES) {
  Deno.bench({
    name: `${name} ×${BATCH} (${fx.refs.toFixed(1)} refs/walk)`,
    group: name.includes("5×5") ? "5×5" : "4×4",
    baseline: name === "EPT 4×4 uncached" || name === "EPT 5×5 uncached",
    fn() {
      sink += walkBatch(fx);
    },
  });
}

if (Deno.env.get("MEMVIRT_BENCH_SELFCHECK") === "1") {
  for (const [name, fx] of FIXTURES) {
    for (let i = 0; i < 200; i++) sink += walkBatch(fx); // warm up
    // best of 15 rounds: the machines are shared and noisy
    let best = Infinity;
    for (let round = 0; round < 15; round++) {
      const t0 = performance.now();
      for (let i = 0; i < 60; i++) sink += walkBatch(fx);
      best = Math.min(best, performance.now() - t0);
    }
    console.log(
      `${name}: ${((60 * BATCH) / best / 1000).toFixed(2)} M 2-D walks/s (${
        fx.refs.toFixed(1)
      } refs/walk, best of 15)`,
    );
  }
  console.log(`(sink ${sink > 0})`);
}
