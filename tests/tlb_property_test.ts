/**
 * Differential property: while nothing changes in the page tables, every
 * access through a {@linkcode Cpu} (TLB + paging-structure caches + PAE
 * PDPTE registers) has exactly the outcome of a fresh walk of the same
 * address in the current mode (`walk()` with `setAD: false`), across random
 * mappings (all page sizes, rights, global pages, protection keys), two
 * address spaces switched by MOV to CR3 (with PCIDs and the no-flush bit
 * where the format allows), random TLB and PSC geometries and replacement
 * policies, access kinds, CPL, EFLAGS.AC, implicit accesses, and mode
 * changes that need no flush (CR0.WP, CR4.SMAP/SMEP/PGE, PKRU) — for
 * 4-level, 5-level, PAE and 32-bit paging.
 *
 * A/D effects are compared sensibly: after every successful access, the
 * tables in memory must show A = 1 on every entry of the path and, for a
 * write, D = 1 on the leaf — whether the access walked or hit the TLB
 * (except for hits on global entries, which may come from the other
 * address space's tables).
 *
 * Global pages are mapped identically in both address spaces (as operating
 * systems do for the kernel); a global page that differed between address
 * spaces would legitimately give a different answer from the TLB.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { type AccessResult, Cpu, CR0, CR4 } from "../lib/cpu/cpu.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { PhysicalMemory } from "../lib/memory/memory.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import {
  PAE,
  type PagingFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import { type Walk, walk } from "../lib/paging/record.ts";
import { LinearAddress } from "../lib/address/address.ts";

const SEED = 20_240_613;

interface FormatCase {
  format: PagingFormat;
  regions: bigint[];
  /** Page sizes by class: base, large, huge (0 = absent). */
  sizes: [number, number, number];
  x64: boolean;
}

const FORMATS: Record<string, FormatCase> = {
  "4-level": {
    format: X86_64_4LEVEL,
    regions: [
      0x4000_0000n,
      0x7f80_0000_0000n,
      0xffff_8880_0000_0000n,
      0xffff_fffe_0000_0000n,
    ],
    sizes: [2 ** 12, 2 ** 21, 2 ** 30],
    x64: true,
  },
  "5-level": {
    format: X86_64_5LEVEL,
    regions: [
      0x4000_0000n,
      0x00ff_0000_0000_0000n,
      0xff11_0000_0000_0000n,
      0xffff_fffe_0000_0000n,
    ],
    sizes: [2 ** 12, 2 ** 21, 2 ** 30],
    x64: true,
  },
  "PAE": {
    format: PAE,
    regions: [0x0040_0000n, 0x4000_0000n, 0x8000_0000n, 0xc000_0000n],
    sizes: [2 ** 12, 2 ** 21, 0],
    x64: false,
  },
  "32-bit": {
    format: X86_32,
    regions: [0x0040_0000n, 0x4000_0000n, 0x8000_0000n, 0xc000_0000n],
    sizes: [2 ** 12, 2 ** 22, 0],
    x64: false,
  },
};

const pageArb = fc.record({
  region: fc.nat(3),
  index: fc.nat(7),
  size: fc.constantFrom(0, 0, 0, 1, 1, 2),
  user: fc.constantFrom(true, true, false),
  writable: fc.constantFrom(true, true, false),
  executable: fc.constantFrom(true, true, false),
  global: fc.constantFrom(false, false, false, true),
  pkey: fc.constantFrom(0, 0, 1, 5),
  space: fc.nat(1),
});

const opArb = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      op: fc.constant("access" as const),
      // mostly a small hot set, so that the TLB and the PSCs hit
      page: fc.oneof(fc.nat(3), fc.nat(3), fc.nat(40)),
      offset: fc.nat(0x3fff_ffff),
      kind: fc.constantFrom(
        "read" as const,
        "read" as const,
        "write" as const,
        "fetch" as const,
      ),
      user: fc.option(fc.boolean(), { freq: 2 }),
      implicit: fc.constantFrom(false, false, false, true),
      ac: fc.option(fc.boolean()),
      stray: fc.constantFrom(false, false, false, true),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("switch" as const),
      noFlush: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("invlpg" as const),
      page: fc.nat(40),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("invpcid" as const),
      type: fc.nat(3),
      page: fc.nat(40),
      pcid: fc.nat(2),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("mode" as const),
      what: fc.constantFrom("wp", "smap", "smep", "pge", "pkru", "cpl", "ac"),
      value: fc.nat(0xffff_ffff),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "noncanonical" as const }) },
);

const scenarioArb = fc.record({
  format: fc.constantFrom(...Object.keys(FORMATS)),
  log2Entries: fc.integer({ min: 0, max: 5 }),
  log2WaysBelow: fc.nat(5),
  replacement: fc.constantFrom(
    "lru" as const,
    "fifo" as const,
    "random" as const,
  ),
  split: fc.boolean(),
  seed: fc.nat(1000),
  psc: fc.record({
    pde: fc.nat(4),
    pdpte: fc.nat(2),
    pml4e: fc.nat(2),
    pml5e: fc.nat(2),
  }),
  wp: fc.boolean(),
  smep: fc.boolean(),
  smap: fc.boolean(),
  pke: fc.boolean(),
  pcide: fc.boolean(),
  pages: fc.array(pageArb, { minLength: 1, maxLength: 24, size: "max" }),
  ops: fc.array(opArb, { minLength: 10, maxLength: 80, size: "max" }),
});

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

interface Mapped {
  va: bigint;
  size: number;
}

function build(sc: Scenario) {
  const fcase = FORMATS[sc.format];
  const memory = new PhysicalMemory({ size: 2 ** 40 });
  const mode = pagingMode(fcase.format);
  const a = new PageTable(memory, { mode });
  const b = new PageTable(memory, { mode, allocator: a.allocator });
  const spaces = [a, b];
  const mapped: Mapped[][] = [[], []];
  // frames: a bump pointer above the table frames (never read)
  let nextPa = 0x4000_0000;
  const pages = [...sc.pages].sort((x, y) =>
    Number(y.global) - Number(x.global)
  );
  for (const p of pages) {
    const size = fcase.sizes[p.size] || fcase.sizes[0];
    const va = fcase.regions[p.region] + BigInt(p.index) * BigInt(size);
    const pa = Math.ceil(nextPa / size) * size;
    // global pages go into both spaces, in the same order before any
    // other page, so they succeed or fail in both alike
    const targets = p.global ? [0, 1] : [p.space];
    for (const [k, t] of targets.entries()) {
      try {
        spaces[t].map(va, pa, {
          size,
          user: p.user,
          writable: p.writable,
          executable: fcase.format.bits.noExec >= 0 ? p.executable : true,
          global: p.global,
          pkey: fcase.x64 ? p.pkey : 0,
        });
        mapped[t].push({ va, size });
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        assert.equal(k, 0, "a global page maps into both spaces or neither");
        break;
      }
    }
    nextPa = pa + size;
  }
  const entries = 2 ** sc.log2Entries;
  const ways = 2 **
    Math.max(0, sc.log2Entries - (sc.log2WaysBelow % (sc.log2Entries + 1)));
  const pcide = fcase.x64 && sc.pcide;
  const cpu = new Cpu(memory, {
    mode,
    cr3: a.root | (pcide ? 1 : 0),
    pcide,
    wp: sc.wp,
    smep: sc.smep,
    smap: sc.smap,
    pke: fcase.x64 && sc.pke,
    tlb: sc.split
      ? {
        split: {
          base: { entries, ways },
          large: { entries: 2, ways: 1 },
          huge: { entries: 2, ways: 2 },
        },
        replacement: sc.replacement,
        seed: sc.seed,
      }
      : { entries, ways, replacement: sc.replacement, seed: sc.seed },
    psc: sc.psc,
  });
  return { fcase, spaces, mapped, cpu, memory, pcide };
}

function compare(r: AccessResult, fresh: Walk, what: string): void {
  const o = r.outcome, f = fresh.outcome;
  assert.equal(o.kind, f.kind, `${what}: outcome kind (TLB ${r.tlb})`);
  if (o.kind === "ok" && f.kind === "ok") {
    assert.deepEqual(
      [o.pa, o.pageSize, o.level, o.rights, o.pkey, o.global],
      [f.pa, f.pageSize, f.level, f.rights, f.pkey, f.global],
      `${what}: translation (TLB ${r.tlb})`,
    );
  } else if (o.kind === "page-fault" && f.kind === "page-fault") {
    assert.deepEqual(
      [o.errorCode.value, o.reason, o.level, o.message, o.cr2.toHex()],
      [f.errorCode.value, f.reason, f.level, f.message, f.cr2.toHex()],
      `${what}: page fault (TLB ${r.tlb})`,
    );
  } else if (o.kind === "gp" && f.kind === "gp") {
    assert.equal(o.reason, f.reason, what);
  }
}

function checkAD(after: Walk, write: boolean, what: string): void {
  for (const s of after.steps) {
    assert.notEqual(
      s.flags.accessed,
      false,
      `${what}: A = 1 on ${s.entryName}`,
    );
  }
  if (write) {
    const leaf = after.steps[after.steps.length - 1];
    assert.equal(leaf.flags.dirty, true, `${what}: D = 1 on the leaf`);
  }
}

function run(sc: Scenario): Cpu {
  const { fcase, spaces, mapped, cpu, pcide } = build(sc);
  let space = 0;
  const pickVa = (page: number, offset: number, stray: boolean): bigint => {
    const list = mapped[space].length > 0
      ? mapped[space]
      : mapped[0].length > 0
      ? mapped[0]
      : mapped[1];
    if (list.length === 0 || stray) {
      // near a region start: mostly unmapped, sometimes inside a mapping
      const region = fcase.regions[page % fcase.regions.length];
      return region + BigInt((offset % 64) * 0x1000 + (offset & 0xfff));
    }
    const m = list[page % list.length];
    return m.va + BigInt(offset % m.size);
  };
  for (const [i, op] of sc.ops.entries()) {
    const what = `op ${i} ${JSON.stringify(op)}`;
    switch (op.op) {
      case "access": {
        const va = pickVa(op.page, op.offset, op.stray);
        const user = op.user ?? cpu.cpl === 3;
        const ac = op.ac ?? cpu.ac;
        const opts = { kind: op.kind, user, implicit: op.implicit, ac };
        const fresh = walk(
          { memory: cpu.memory, mode: cpu.mode!, root: cpu.root },
          va,
          { ...opts, pkru: cpu.pkru, setAD: false },
        );
        const r = cpu.access(va, {
          kind: op.kind,
          ...(op.user === null ? {} : { user: op.user }),
          implicit: op.implicit,
          ...(op.ac === null ? {} : { ac: op.ac }),
        });
        compare(r, fresh, `${what} at ${LinearAddress.from(va).toHex()}`);
        // A global TLB entry filled while the other address space was
        // current serves this one without walking its tables, so their A/D
        // bits legitimately stay as they are (§4.10.2.4).
        if (
          r.outcome.kind === "ok" && !(r.tlb === "hit" && r.outcome.global)
        ) {
          const after = walk(
            { memory: cpu.memory, mode: cpu.mode!, root: cpu.root },
            va,
            { setAD: false },
          );
          checkAD(after, op.kind === "write", what);
        }
        break;
      }
      case "switch": {
        space = 1 - space;
        const pt = spaces[space];
        const r = pcide
          ? cpu.movCr3(pt.root | (space + 1), { noFlush: op.noFlush })
          : cpu.movCr3(pt.root);
        assert.equal(r.kind, "ok", what);
        break;
      }
      case "invlpg": {
        assert.equal(cpu.invlpg(pickVa(op.page, 0, false)).kind, "ok");
        break;
      }
      case "invpcid": {
        const pcid = pcide ? op.pcid : 0;
        const r = cpu.invpcid(op.type, {
          pcid,
          va: pickVa(op.page, 0, false),
        });
        assert.equal(r.kind, "ok", what);
        break;
      }
      case "mode": {
        const r = (() => {
          switch (op.what) {
            case "wp":
              return cpu.writeCr0(cpu.cr0 ^ CR0.WP);
            case "smap":
              return cpu.writeCr4(cpu.cr4 ^ CR4.SMAP);
            case "smep":
              return cpu.writeCr4(cpu.cr4 ^ CR4.SMEP);
            case "pge":
              return cpu.writeCr4(cpu.cr4 ^ CR4.PGE);
            case "pkru":
              cpu.pkru = op.value & 0x3c3c; // keys 1 and 5 … and 2, 6
              return { kind: "ok" };
            case "cpl":
              cpu.cpl = op.value & 1 ? 3 : 0;
              return { kind: "ok" };
            default:
              cpu.ac = (op.value & 1) === 1;
              return { kind: "ok" };
          }
        })();
        assert.equal(r.kind, "ok", what);
        break;
      }
      case "noncanonical": {
        if (!fcase.x64) break;
        const va = fcase.format.vaBits === 57
          ? 0x0100_0000_0000_0000n
          : 0x0000_8000_0000_0000n;
        const r = cpu.access(va);
        assert.equal(r.outcome.kind, "gp", what);
        break;
      }
    }
  }
  return cpu;
}

Deno.test("property: TLB + PSC accesses equal fresh walks while the tables are unchanged", () => {
  fc.assert(fc.property(scenarioArb, (sc) => void run(sc)), {
    seed: SEED,
    numRuns: 500,
  });
});

Deno.test("property: each format is exercised with TLB hits, PSC resumes and faults", () => {
  // Guard against a vacuous property: per format, make sure the random
  // scenarios really reach the interesting paths.
  for (const name of Object.keys(FORMATS)) {
    let hits = 0, resumes = 0, faults = 0, pdpte = 0;
    fc.assert(
      fc.property(scenarioArb, (sc0) => {
        const sc = { ...sc0, format: name };
        const c = run(sc).counters;
        hits += c.tlbHits;
        resumes += c.pscResumes;
        pdpte += c.pdpteResumes;
        faults += c.pageFaults;
      }),
      { seed: SEED + 1, numRuns: 40 },
    );
    assert.ok(hits > 0, `${name}: TLB hits`);
    assert.ok(faults > 0, `${name}: faults`);
    if (name === "PAE") assert.ok(pdpte > 0, "PAE: PDPTE-register starts");
    if (name !== "32-bit") assert.ok(resumes > 0, `${name}: PSC resumes`);
  }
});
