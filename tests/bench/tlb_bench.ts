/**
 * TLB benchmarks (`deno bench -A tests/bench/tlb_bench.ts`).
 *
 * Each bench iteration makes {@link N} translations, so translations per
 * second = N / (time per iteration). The floor for TLB hits through
 * `Cpu.accessFast` is 20 M/s on one core (≤ 50 ns per translation, i.e.
 * ≤ 51 µs per iteration here).
 *
 * Cases:
 * - TLB hits, 4-level, 16-page working set in a 64-entry 4-way LRU TLB;
 * - the same with a split TLB and a 2 MiB page in the working set;
 * - TLB hits, PAE;
 * - TLB hits with CR4.PKE (the rights check cannot use the per-mode
 *   verdict table: protection keys depend on PKRU);
 * - TLB hits in a 64-entry fully associative TLB (64 tag compares);
 * - TLB misses resumed from the PDE cache: a 4-entry TLB cycling through
 *   64 pages of one page table, so every access misses and the walk reads
 *   one PTE;
 * - TLB misses with the paging-structure caches disabled (4 table reads).
 *
 * @module
 */

import { Cpu } from "../../lib/cpu/cpu.ts";
import { PageTable } from "../../lib/paging/builder.ts";
import { pagingMode } from "../../lib/paging/mode.ts";
import { PAE } from "../../lib/paging/format.ts";
import { PhysicalMemory } from "../../lib/memory/memory.ts";
import type { TlbOptions } from "../../lib/tlb/tlb.ts";
import { ACCESS_USER, ACCESS_WRITE, WALK_OK } from "../../lib/paging/walker.ts";

/** Translations per bench iteration. */
const N = 1024;

function setup(
  pages: number,
  tlb: TlbOptions,
  psc = true,
  pae = false,
  pke = false,
) {
  const memory = new PhysicalMemory({ size: 2 ** 32 });
  const pt = new PageTable(memory, pae ? { mode: pagingMode(PAE) } : {});
  const va: number[] = [];
  for (let i = 0; i < pages; i++) {
    const a = 0x40_0000 + i * 0x1000;
    pt.map(a, 0x100_0000 + i * 0x1000, { user: true });
    va.push(a);
  }
  const cpu = new Cpu(memory, {
    mode: pt.mode,
    cr3: pt.root,
    cpl: 3,
    tlb,
    psc: psc ? {} : { pde: 0, pdpte: 0, pml4e: 0, pml5e: 0 },
    pke,
  });
  // warm: set D bits too so that writes hit
  for (const a of va) cpu.accessFast(0, a, ACCESS_WRITE | ACCESS_USER);
  return { cpu, va: Int32Array.from(va) };
}

function run(cpu: Cpu, va: Int32Array, access: number): number {
  let sum = 0;
  const mask = va.length - 1;
  for (let i = 0; i < N; i++) {
    const a = va[i & mask] + ((i * 8) & 0xfff);
    if (cpu.accessFast(0, a, access) === WALK_OK) sum += cpu.lastPa;
  }
  return sum;
}

const hit4 = setup(16, { entries: 64, ways: 4 });
Deno.bench(`TLB hit, 4-level, 16 pages, 64×4-way LRU (${N} reads)`, {
  group: "hit",
  baseline: true,
}, () => {
  run(hit4.cpu, hit4.va, ACCESS_USER);
});

Deno.bench(`TLB hit, 4-level, writes (${N})`, { group: "hit" }, () => {
  run(hit4.cpu, hit4.va, ACCESS_USER | ACCESS_WRITE);
});

const hitSplit = setup(16, { split: true });
Deno.bench(`TLB hit, split 64/32/4 (${N} reads)`, { group: "hit" }, () => {
  run(hitSplit.cpu, hitSplit.va, ACCESS_USER);
});

const hitPae = setup(16, { entries: 64, ways: 4 }, true, true);
Deno.bench(`TLB hit, PAE (${N} reads)`, { group: "hit" }, () => {
  run(hitPae.cpu, hitPae.va, ACCESS_USER);
});

const hitPke = setup(16, { entries: 64, ways: 4 }, true, false, true);
Deno.bench(`TLB hit, CR4.PKE (${N} reads)`, { group: "hit" }, () => {
  run(hitPke.cpu, hitPke.va, ACCESS_USER);
});

const hitFull = setup(16, { entries: 64, ways: 64 });
Deno.bench(`TLB hit, 64-entry fully associative (${N} reads)`, {
  group: "hit",
}, () => {
  run(hitFull.cpu, hitFull.va, ACCESS_USER);
});

const missPsc = setup(64, { entries: 4, ways: 4 });
Deno.bench(
  `TLB miss, PDE-cache resume (1 table read) (${N} reads)`,
  { group: "miss", baseline: true },
  () => {
    run(missPsc.cpu, missPsc.va, ACCESS_USER);
  },
);

const missNoPsc = setup(64, { entries: 4, ways: 4 }, false);
Deno.bench(
  `TLB miss, no PSC (4 table reads) (${N} reads)`,
  { group: "miss" },
  () => {
    run(missNoPsc.cpu, missNoPsc.va, ACCESS_USER);
  },
);
