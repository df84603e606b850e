/**
 * Walker throughput: `deno bench -A tests/bench/walk_bench.ts`.
 *
 * Each bench iteration walks a batch of {@linkcode BATCH} addresses through
 * a populated table whose A bits are already set, so the steady state reads
 * entries and writes nothing. Walks per second = BATCH / (time per
 * iteration). The floor is 4 M full 4-level walks/s on one core, i.e. at
 * most 256 µs per iteration of 1024 walks.
 *
 * Set `MEMVIRT_BENCH_SELFCHECK=1` to also print walks/s measured with a
 * plain timing loop (handy when comparing before/after an optimisation).
 *
 * @module
 */

import { PhysicalMemory } from "../../lib/memory/memory.ts";
import {
  type PagingFormat,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../../lib/paging/format.ts";
import { PageTable } from "../../lib/paging/builder.ts";
import { walk } from "../../lib/paging/record.ts";
import {
  ACCESS_USER,
  ACCESS_WRITE,
  WALK_OK,
  walkInto,
  WalkScratch,
} from "../../lib/paging/walker.ts";
import { LinearAddress } from "../../lib/address/address.ts";
import { Random } from "../../lib/util/random.ts";

/** Walks per bench iteration. */
const BATCH = 1024;

interface Fixture {
  pt: PageTable;
  his: Uint32Array;
  los: Uint32Array;
  vas: LinearAddress[];
}

/**
 * A table with 4096 user-writable 4 KiB pages spread over 16 PML4 slots
 * (user and kernel halves), 8 PDPT slots each and 4 page tables each, plus
 * BATCH random addresses inside those pages. Every page is walked once
 * with a write so that A and D are set everywhere on the paths.
 */
function fixture(format: PagingFormat, seed: number): Fixture {
  const memory = new PhysicalMemory({ size: 2 ** 34 });
  const pt = new PageTable(memory, { format });
  const top = format.levels[0];
  const pages: LinearAddress[] = [];
  let frame = 0x1_0000_0000;
  for (let s = 0; s < 16; s++) {
    // root slots 0..7 and the top 8 (kernel half, sign-extended)
    const slot = s < 8 ? s : 2 ** top.bits - 16 + s;
    const rootBase = BigInt(slot) << BigInt(top.shift);
    for (let p = 0; p < 8; p++) {
      for (let d = 0; d < 4; d++) {
        for (let t = 0; t < 8; t++) {
          let v = rootBase + (BigInt(p) << 30n) + (BigInt(d) << 21n) +
            (BigInt(t * 37) << 12n);
          if (slot >= 2 ** (top.bits - 1)) {
            v |= ~((1n << BigInt(format.vaBits)) - 1n) & 0xffff_ffff_ffff_ffffn;
          }
          const va = LinearAddress.from(v);
          pt.map(va, frame, { user: true, writable: true });
          pages.push(va);
          frame += 4096;
        }
      }
    }
  }
  const rnd = new Random(seed);
  const his = new Uint32Array(BATCH);
  const los = new Uint32Array(BATCH);
  const vas: LinearAddress[] = [];
  for (let i = 0; i < BATCH; i++) {
    const page = pages[rnd.int(pages.length)];
    const off = rnd.int(4096);
    his[i] = page.hi;
    los[i] = (page.lo + off) >>> 0;
    vas.push(new LinearAddress(his[i], los[i]));
  }
  const s = new WalkScratch();
  for (const va of pages) {
    const r = walkInto(
      s,
      pt.mode,
      memory,
      pt.root,
      va.hi,
      va.lo,
      ACCESS_WRITE | ACCESS_USER,
    );
    if (r !== WALK_OK) throw new Error(`fixture walk failed at ${va}`);
  }
  return { pt, his, los, vas };
}

const f4 = fixture(X86_64_4LEVEL, 4);
const f5 = fixture(X86_64_5LEVEL, 5);
const scratch = new WalkScratch();

function walkBatch(fx: Fixture): number {
  const { pt, his, los } = fx;
  const mode = pt.mode, mem = pt.memory, root = pt.root;
  let sum = 0;
  for (let i = 0; i < BATCH; i++) {
    walkInto(scratch, mode, mem, root, his[i], los[i], ACCESS_USER);
    sum += scratch.pa;
  }
  return sum;
}

// The steady state must write nothing: check once before benchmarking.
for (const fx of [f4, f5]) {
  const before = fx.pt.memory.chunksTouched;
  const { pt, his, los } = fx;
  for (let i = 0; i < BATCH; i++) {
    walkInto(scratch, pt.mode, pt.memory, pt.root, his[i], los[i], 4);
    if (scratch.outcome !== WALK_OK || scratch.aSet !== 0 || scratch.dSet) {
      throw new Error("bench fixture is not in the steady state");
    }
  }
  if (pt.memory.chunksTouched !== before) throw new Error("walk wrote memory");
}

let sink = 0;

Deno.bench({
  name: `4-level walkInto ×${BATCH} (A set, no writes)`,
  group: "walkInto",
  baseline: true,
  fn() {
    sink += walkBatch(f4);
  },
});

Deno.bench({
  name: `5-level walkInto ×${BATCH} (A set, no writes)`,
  group: "walkInto",
  fn() {
    sink += walkBatch(f5);
  },
});

Deno.bench({
  name: `4-level walk() record ×${BATCH}`,
  group: "record",
  baseline: true,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      sink += walk(f4.pt, f4.vas[i], { user: true }).pa ?? 0;
    }
  },
});

Deno.bench({
  name: `5-level walk() record ×${BATCH}`,
  group: "record",
  fn() {
    for (let i = 0; i < BATCH; i++) {
      sink += walk(f5.pt, f5.vas[i], { user: true }).pa ?? 0;
    }
  },
});

if (Deno.env.get("MEMVIRT_BENCH_SELFCHECK") === "1") {
  for (const [name, fx] of [["4-level", f4], ["5-level", f5]] as const) {
    for (let i = 0; i < 200; i++) sink += walkBatch(fx); // warm up
    const rounds = 2000;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) sink += walkBatch(fx);
    const ms = performance.now() - t0;
    console.log(
      `${name}: ${((rounds * BATCH) / ms / 1000).toFixed(2)} M walks/s`,
    );
  }
  console.log(`(sink ${sink > 0})`);
}
