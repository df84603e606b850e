/**
 * Fixed walks and page tables for the view tests and golden files. Every
 * fixture builds fresh memory, so walks (which set A/D bits) never leak
 * into each other.
 *
 * @module
 */

import { PhysicalMemory } from "../../lib/memory/memory.ts";
import { PageTable } from "../../lib/paging/builder.ts";
import {
  OSTEP_15BIT,
  PAE,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../../lib/paging/format.ts";
import { pagingMode } from "../../lib/paging/mode.ts";
import { accessFlags, Walk, type WalkResume } from "../../lib/paging/record.ts";
import { walkInto, WalkScratch } from "../../lib/paging/walker.ts";
import { LinearAddress } from "../../lib/address/address.ts";

/** A small 4-level address space: user text, user data, a kernel 2 MiB page. */
export function table4(): PageTable {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 32 }));
  pt.map(0x40_0000, 0x10_0000, { user: true, writable: false });
  pt.map(0x40_1000, 0x10_1000, { user: true, writable: false });
  pt.map(0x60_0000, 0x20_0000, { user: true, executable: false });
  pt.map(0x7fff_ffff_f000, 0x30_0000, { user: true, executable: false });
  pt.map("0xffff888000000000", 0x4000_0000, { size: 2 ** 21, global: true });
  return pt;
}

/** A 32-bit table with a 4 MiB kernel page and two 4 KiB user pages. */
export function table32(): PageTable {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 28 }), {
    format: X86_32,
  });
  pt.map(0xc000_0000, 0x0040_0000, { size: 4 * 2 ** 20, global: true });
  pt.map(0x0804_8000, 0x0100_0000, { user: true, writable: false });
  pt.map(0x0804_9000, 0x0100_1000, { user: true });
  return pt;
}

/** A PAE table (root PDPT at 0). */
export function tablePae(): PageTable {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 28 }), {
    format: PAE,
  });
  pt.map(0xc000_1000, 0x0030_0000, { user: false });
  pt.map(0x0040_0000, 0x0080_0000, { size: 2 ** 21, user: true });
  return pt;
}

/** OSTEP's 15-bit radix geometry. */
export function tableOstep(): PageTable {
  const pt = new PageTable(new PhysicalMemory({ size: 4096 }), {
    format: OSTEP_15BIT,
  });
  pt.map(0x1220, 0xc00);
  pt.map(0x1240, 0xc20);
  pt.map(0x6000, 0x400);
  return pt;
}

/** A 5-level table with one user page in the upper half of the 56-bit user space. */
export function table5(): PageTable {
  const pt = new PageTable(new PhysicalMemory({ size: 2 ** 32 }), {
    format: X86_64_5LEVEL,
  });
  pt.map("0x00ff123456789000", 0x1000_0000, { user: true });
  return pt;
}

/** Resume a walk below the root, as a paging-structure cache or PAE's PDPTE registers do. */
export function resumed(
  pt: PageTable,
  va: bigint | number | string,
  level: number,
  base: number,
  source: WalkResume["source"],
): Walk {
  const a = LinearAddress.from(va);
  const s = new WalkScratch();
  const flags = accessFlags({});
  walkInto(s, pt.mode, pt.memory, pt.root, a.hi, a.lo, flags, 0, level, base);
  return Walk.fromScratch(s, pt.mode, pt.root, a, flags, { level, source });
}

/** Named walks for the golden files and tests. */
export const WALKS: Record<string, () => Walk> = {
  "walk-4level-ok": () =>
    table4().walk(0x60_0abc, { kind: "write", user: true }),
  "walk-4level-fault": () =>
    table4().walk(0x40_1008, { kind: "write", user: true }),
  "walk-4level-2mib": () => table4().walk("0xffff888000012345"),
  "walk-4level-not-present": () => table4().walk(0x80_0000, { user: true }),
  "walk-4level-reserved": () => {
    const pt = table4();
    const pml4e = pt.root; // entry 0 of the root
    pt.memory.write32(pml4e, pt.memory.read32(pml4e) | 0x80); // PS in a PML4E
    return pt.walk(0x40_0000, { kind: "fetch", user: true });
  },
  "walk-4level-psc": () => {
    const pt = table4();
    const pd = pt.lookup(0x60_0000).steps[2].tableBase;
    return resumed(pt, 0x60_0010, 2, pd, "paging-structure-cache");
  },
  "walk-4level-gp": () => table4().walk("0x0000800000000000"),
  "walk-pae": () => tablePae().walk(0xc000_1234, { kind: "write" }),
  "walk-pae-pdpte-register": () => {
    const pt = tablePae();
    const pd = pt.lookup(0xc000_1000).steps[1].tableBase;
    return resumed(pt, 0xc000_1234, 2, pd, "pdpte-register");
  },
  "walk-x86-32-4mib": () => table32().walk(0xc012_3456, { kind: "write" }),
  "walk-ostep": () => tableOstep().walk(0x1234),
  "walk-ostep-fault": () => tableOstep().walk(0x4321),
  "walk-4level-smap": () => {
    const pt = new PageTable(new PhysicalMemory({ size: 2 ** 24 }), {
      mode: pagingMode(X86_64_4LEVEL, { smap: true, smep: true, pke: true }),
    });
    pt.map(0x40_0000, 0x10_0000, { user: true });
    return pt.walk(0x40_0010, { kind: "write" });
  },
  "walk-4level-pkey": () => {
    const pt = new PageTable(new PhysicalMemory({ size: 2 ** 24 }), {
      mode: pagingMode(X86_64_4LEVEL, { pke: true }),
    });
    pt.map(0x40_0000, 0x10_0000, { user: true, pkey: 3 });
    return pt.walk(0x40_0010, { kind: "write", user: true, pkru: 0b10 << 6 });
  },
  "walk-5level": () =>
    table5().walk("0x00ff123456789abc", { kind: "fetch", user: true }),
};

/** The walks with golden files. */
export const GOLDEN_WALKS: readonly string[] = [
  "walk-4level-ok",
  "walk-4level-fault",
  "walk-4level-psc",
  "walk-pae",
  "walk-pae-pdpte-register",
  "walk-x86-32-4mib",
  "walk-ostep",
  "walk-5level",
];
