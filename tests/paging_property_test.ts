/**
 * Property tests (fast-check, fixed seeds): map → walk round trips for every
 * format including randomly generated radix geometries; random
 * map/unmap/protect sequences against a simple Map-based model of the
 * address space; and garbage fed to the public API, which must only ever
 * throw RangeError or TypeError (and, for the builder, leave the table as
 * it was).
 *
 * Reproduce a failure with the seed and path fast-check prints.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameAllocator, PhysicalMemory } from "../lib/memory/memory.ts";
import {
  gpa,
  hpa,
  LinearAddress,
  splitAddress,
} from "../lib/address/address.ts";
import {
  OSTEP_15BIT,
  PAE,
  type PagingFormat,
  radixFormat,
  type RadixOptions,
  validateFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import { pagingMode } from "../lib/paging/mode.ts";
import {
  accessFlags,
  checkPkru,
  checkRoot,
  decodeEntry,
  walk,
} from "../lib/paging/record.ts";
import { PageTable } from "../lib/paging/builder.ts";
import { walkInto, WalkScratch } from "../lib/paging/walker.ts";
import { Random } from "../lib/util/random.ts";

const KiB = 1024, MiB = 2 ** 20, GiB = 2 ** 30;
const U64 = (1n << 64n) - 1n;

function params(seed: number, numRuns: number) {
  return { seed, numRuns, endOnFailure: true };
}

// ---------------------------------------------------------------------------
// Round trips on the x86 formats.

interface X86Spec {
  format: PagingFormat;
  sizes: number[];
}

const X86: X86Spec[] = [
  { format: X86_32, sizes: [4 * KiB, 4 * MiB] },
  { format: PAE, sizes: [4 * KiB, 2 * MiB] },
  { format: X86_64_4LEVEL, sizes: [4 * KiB, 2 * MiB, GiB] },
  { format: X86_64_5LEVEL, sizes: [4 * KiB, 2 * MiB, GiB] },
];

/** A linear address from 64 random bits: in range (sign-extended) and aligned. */
function shapeVa(f: PagingFormat, bits: bigint, size: number): bigint {
  let v = bits & ((1n << BigInt(f.vaBits)) - 1n);
  v &= ~(BigInt(size) - 1n);
  if (f.canonical === "sign" && (v >> BigInt(f.vaBits - 1)) & 1n) {
    v |= U64 & ~((1n << BigInt(f.vaBits)) - 1n);
  }
  return v;
}

Deno.test("property: map → walk round trip, every x86 format and page size", () => {
  const page = fc.record({
    sizeIdx: fc.nat(),
    vaBits: fc.bigInt({ min: 0n, max: U64 }),
    paBits: fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }),
    off: fc.nat(),
    writable: fc.boolean(),
    user: fc.boolean(),
    executable: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: X86.length - 1 }),
      fc.integer({ min: 32, max: 52 }),
      fc.array(page, { minLength: 1, maxLength: 10 }),
      (fi, M, pages) => {
        const spec = X86[fi];
        const f = spec.format;
        const maxPhyAddr = f.kind === "x86-32" ? M : Math.max(M, 36);
        const mode = pagingMode(f, { maxPhyAddr });
        const pt = new PageTable(new PhysicalMemory(), { mode });
        const mapped: {
          va: bigint;
          pa: number;
          size: number;
          off: number;
          writable: boolean;
          user: boolean;
          executable: boolean;
        }[] = [];
        for (const p of pages) {
          const size = spec.sizes[p.sizeIdx % spec.sizes.length];
          const va = shapeVa(f, p.vaBits, size);
          const limit = f.kind === "x86-32"
            ? (size > 4096 ? 2 ** Math.min(maxPhyAddr, 40) : 2 ** 32)
            : mode.physLimit;
          const pa = Number(p.paBits % BigInt(limit)) -
            Number(p.paBits % BigInt(limit)) % size;
          const executable = f.bits.noExec >= 0 ? p.executable : true;
          try {
            pt.map(va, pa, {
              size,
              writable: p.writable,
              user: p.user,
              executable,
            });
          } catch (e) {
            // the only acceptable refusal: the slot is already taken
            assert.ok(e instanceof RangeError);
            assert.match(e.message, /already|inside|smaller mapping/);
            assert.ok(mapped.some((m) => overlaps(m.va, m.size, va, size)));
            continue;
          }
          mapped.push({
            va,
            pa,
            size,
            off: p.off % size,
            writable: p.writable,
            user: p.user,
            executable,
          });
        }
        assert.equal([...pt.mappings()].length, mapped.length);
        for (const m of mapped) {
          const va = m.va + BigInt(m.off);
          const r = pt.walk(va);
          assert.equal(r.pa, m.pa + m.off, `${r}`);
          const uw = pt.walk(va, { kind: "write", user: true });
          assert.equal(uw.ok, m.writable && m.user, `${uw}`);
          const uf = pt.walk(va, { kind: "fetch", user: true });
          assert.equal(uf.ok, m.user && m.executable, `${uf}`);
          const sw = pt.walk(va, { kind: "write" });
          assert.equal(sw.ok, m.writable, `${sw}`); // CR0.WP = 1
        }
      },
    ),
    params(0x5eed_0001, 150),
  );
});

function overlaps(a: bigint, as: number, b: bigint, bs: number): boolean {
  return a < b + BigInt(bs) && b < a + BigInt(as);
}

// ---------------------------------------------------------------------------
// Round trips on random radix geometries.

interface RadixGeo {
  options: RadixOptions;
  format: PagingFormat;
}

/** Build a radix geometry that validates, from a few random choices. */
function radixGeometry(
  eb: number,
  pageShiftIn: number,
  nLevels: number,
  seed: number,
): RadixGeo {
  const rnd = new Random(seed);
  const logEb = Math.log2(eb);
  const pageShift = Math.max(pageShiftIn, logEb + 1);
  const maxBits = Math.min(pageShift - logEb, 12);
  const levelBits = Array.from({ length: nLevels }, () => 1 + rnd.int(maxBits));
  const width = eb * 8;
  const frameWidth = Math.min(width - 1, 7 + rnd.int(Math.min(width - 7, 24)));
  const frameLow = rnd.int(width - frameWidth + 1);
  const free: number[] = [];
  for (let b = 0; b < width; b++) {
    if (b < frameLow || b >= frameLow + frameWidth) free.push(b);
  }
  const take = () => free.splice(rnd.int(free.length), 1)[0];
  const options: RadixOptions = {
    pageShift,
    levelBits,
    entryBytes: eb,
    validBit: take(),
    frameLow,
    frameWidth,
  };
  if (free.length > 0 && rnd.chance(0.5)) options.writableBit = take();
  if (free.length > 0 && rnd.chance(0.5)) options.userBit = take();
  if (free.length > 0 && rnd.chance(0.5)) options.accessedBit = take();
  if (free.length > 0 && rnd.chance(0.5)) options.dirtyBit = take();
  return { options, format: radixFormat(options) };
}

Deno.test("property: map → walk round trip on random radix geometries", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 4, 8),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer(),
      fc.array(
        fc.record({
          va: fc.bigInt({ min: 0n, max: U64 }),
          pa: fc.bigInt({ min: 0n, max: U64 }),
          off: fc.nat(),
          writable: fc.boolean(),
          user: fc.boolean(),
        }),
        { minLength: 1, maxLength: 8 },
      ),
      (eb, ps, nLevels, seed, pages) => {
        const { options, format: f } = radixGeometry(eb, ps, nLevels, seed);
        // validation is idempotent and the result frozen
        assert.ok(Object.isFrozen(f) && Object.isFrozen(f.levels[0]));
        assert.equal(
          f.vaBits,
          options.pageShift + options.levelBits.reduce((a, b) => a + b, 0),
        );
        const mode = pagingMode(f);
        const physBits = Math.min(52, f.pageShift + f.frameWidth);
        assert.equal(mode.physLimit, 2 ** physBits);
        const mem = new PhysicalMemory({ size: 2 ** physBits });
        // tables from the lower half, pages in the upper half
        const allocator = new FrameAllocator(mem, {
          frameSize: 2 ** f.pageShift,
          end: 2 ** (physBits - 1),
        });
        const pt = new PageTable(mem, { mode, allocator });
        const pageBytes = 2 ** f.pageShift;
        const done = new Map<
          bigint,
          { pa: number; off: number; writable: boolean; user: boolean }
        >();
        for (const p of pages) {
          const va = (p.va % (1n << BigInt(f.vaBits))) & ~BigInt(pageBytes - 1);
          const frames = 2n ** BigInt(physBits - 1 - f.pageShift);
          const pa = 2 ** (physBits - 1) + Number(p.pa % frames) * pageBytes;
          if (done.has(va)) {
            assert.throws(() => pt.map(va, pa), /already mapped/);
            continue;
          }
          pt.map(va, pa, { writable: p.writable, user: p.user });
          done.set(va, {
            pa,
            off: p.off % pageBytes,
            writable: p.writable,
            user: p.user,
          });
        }
        const listed = [...pt.mappings()];
        assert.equal(listed.length, done.size);
        for (const m of listed) {
          assert.equal(done.get(m.va.toBigInt())?.pa, m.pa);
        }
        const s = new WalkScratch();
        for (const [va, m] of done) {
          const w = pt.walk(va + BigInt(m.off));
          assert.equal(
            w.pa,
            m.pa + m.off,
            `${f.name} ${JSON.stringify(options)}: ${w}`,
          );
          assert.equal(w.steps.length, f.levels.length);
          const canWrite = options.writableBit === undefined || m.writable;
          assert.equal(pt.walk(va, { kind: "write" }).ok, canWrite);
          const canUser = options.userBit === undefined || m.user;
          assert.equal(pt.walk(va, { user: true }).ok, canUser);
          if (options.accessedBit !== undefined) {
            // the walks above set A on every level: the steady state writes nothing
            const lo = Number(va & 0xffffffffn), hi = Number(va >> 32n);
            walkInto(s, mode, mem, pt.root, hi, lo, 0);
            assert.equal(s.aSet, 0);
          }
        }
      },
    ),
    params(0x5eed_0002, 300),
  );
});

// ---------------------------------------------------------------------------
// Random map/unmap/protect sequences against a Map-based model.

interface ModelPage {
  pa: number;
  size: number;
  writable: boolean;
  user: boolean;
  executable: boolean;
}

interface SeqSpec {
  format: PagingFormat;
  sizes: number[];
  /** Base of group g (0 or 1) of slots. */
  group: (g: number) => bigint;
  /** Granularity of the middle index (the second-largest page size). */
  mid: number;
}

const SEQ: SeqSpec[] = [
  {
    format: X86_32,
    sizes: [4 * KiB, 4 * MiB],
    group: (g) => BigInt(g) * 0xc000_0000n,
    mid: 4 * MiB,
  },
  {
    format: PAE,
    sizes: [4 * KiB, 2 * MiB],
    group: (g) => BigInt(g) * 0xc000_0000n,
    mid: 2 * MiB,
  },
  {
    format: X86_64_4LEVEL,
    sizes: [4 * KiB, 2 * MiB, GiB],
    group: (g) => g ? 0xffff_fff0_0000_0000n : 0x7f_c000_0000n,
    mid: 2 * MiB,
  },
  {
    format: X86_64_5LEVEL,
    sizes: [4 * KiB, 2 * MiB, GiB],
    group: (g) => g ? 0xff11_0000_4000_0000n : 0x00ff_fff0_0000_0000n,
    mid: 2 * MiB,
  },
];

const op = fc.record({
  kind: fc.constantFrom("map", "map", "map", "unmap", "protect"),
  sizeIdx: fc.nat(),
  g: fc.integer({ min: 0, max: 1 }),
  big: fc.integer({ min: 0, max: 1 }),
  m: fc.integer({ min: 0, max: 3 }),
  k: fc.integer({ min: 0, max: 7 }),
  misalign: fc.boolean(),
  oddPa: fc.integer({ min: 0, max: 15 }),
  frame: fc.integer({ min: 0, max: 63 }),
  writable: fc.option(fc.boolean()),
  user: fc.option(fc.boolean()),
  executable: fc.option(fc.boolean()),
});

Deno.test("property: map/unmap/protect sequences agree with a Map-based model", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: SEQ.length - 1 }),
      fc.array(op, { minLength: 10, maxLength: 40 }),
      (si, ops) => {
        const spec = SEQ[si];
        const f = spec.format;
        const hasXd = f.bits.noExec >= 0;
        const pt = new PageTable(new PhysicalMemory({ size: 2 ** 40 }), {
          format: f,
        });
        const model = new Map<bigint, ModelPage>();
        const covering = (va: bigint) => {
          for (const [start, p] of model) {
            if (va >= start && va < start + BigInt(p.size)) return start;
          }
          return undefined;
        };
        for (const o of ops) {
          const size = spec.sizes[o.sizeIdx % spec.sizes.length];
          // slots: group base + one of two "big" units + 4 mid units + 8 pages
          const bigUnit = BigInt(spec.sizes[spec.sizes.length - 1]);
          let va = spec.group(o.g) + BigInt(o.big) * bigUnit * 4n +
            BigInt(o.m) * BigInt(spec.mid) + BigInt(o.k) * 4096n;
          // unmap/protect: mostly aim at a page that exists (its start, or
          // for protect a byte inside it); otherwise at the raw slot
          if (o.kind !== "map" && o.oddPa >= 4 && model.size > 0) {
            const starts = [...model.keys()];
            va = starts[o.sizeIdx % starts.length];
            if (o.kind === "protect") {
              va += BigInt((o.frame * 4096 + o.k) % model.get(va)!.size);
            }
          }
          const before = fingerprint(pt);
          const attrs = {
            writable: o.writable ?? undefined,
            user: o.user ?? undefined,
            executable: o.executable ?? undefined,
          };
          let expectOk: boolean;
          let apply: () => void;
          if (o.kind === "map") {
            va &= ~(BigInt(size) - 1n);
            const misaligned = o.misalign && o.oddPa === 0;
            const pa = o.frame * size + (misaligned ? 0x800 : 0);
            expectOk = !misaligned &&
              ![...model].some(([s, p]) => overlaps(s, p.size, va, size));
            apply = () => {
              pt.map(va, pa, { size, ...attrs });
              model.set(va, {
                pa,
                size,
                writable: attrs.writable ?? true,
                user: attrs.user ?? false,
                executable: hasXd ? attrs.executable ?? true : true,
              });
            };
          } else if (o.kind === "unmap") {
            const start = covering(va);
            expectOk = start === va;
            apply = () => {
              pt.unmap(va);
              model.delete(va);
            };
          } else {
            const start = covering(va);
            expectOk = start !== undefined;
            apply = () => {
              pt.protect(va, attrs);
              const p = model.get(start!)!;
              model.set(start!, {
                ...p,
                writable: attrs.writable ?? p.writable,
                user: attrs.user ?? p.user,
                executable: hasXd ? attrs.executable ?? p.executable : true,
              });
            };
          }
          if (expectOk) {
            apply();
          } else {
            assert.throws(apply, RangeError, `${o.kind} ${va.toString(16)}`);
            assert.equal(
              fingerprint(pt),
              before,
              "a refused call changed the table",
            );
          }
          // the table lists exactly the model's pages
          const listed = [...pt.mappings()].map((m) => ({
            va: m.va.toBigInt(),
            pa: m.pa,
            size: m.size,
            writable: m.rights.writable,
            user: m.rights.user,
            executable: m.rights.executable,
          }));
          const expected = [...model].sort((a, b) => a[0] < b[0] ? -1 : 1)
            .map(([va, p]) => ({ va, ...p }));
          assert.deepEqual(listed, expected);
        }
        // translations agree with the model everywhere we touched
        for (const o of ops) {
          for (const size of spec.sizes) {
            const va = (spec.group(o.g) +
                  BigInt(o.big) * BigInt(spec.sizes[spec.sizes.length - 1]) *
                    4n +
                  BigInt(o.m) * BigInt(spec.mid) + BigInt(o.k) * 4096n +
                  0x123n) &
                ~(BigInt(size) - 1n) | 0x123n;
            const start = covering(va);
            const w = pt.lookup(va);
            if (start === undefined) assert.equal(w.ok, false);
            else assert.equal(w.pa, model.get(start)!.pa + Number(va - start));
          }
        }
      },
    ),
    params(0x5eed_0003, 100),
  );
});

/**
 * Every entry write goes through `writeEntry` (counted) and every table
 * frame through the allocator: together a cheap "did anything change".
 */
function fingerprint(pt: PageTable): string {
  return `${pt.entryWrites}/${pt.allocator.allocatedCount}/${pt.memory.chunksTouched}`;
}

// ---------------------------------------------------------------------------
// Garbage in: only RangeError or TypeError out.

const garbage: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -0,
    -1,
    0.5,
    4096.5,
    2 ** 32,
    2 ** 52,
    2 ** 53,
    2 ** 64,
    -(2 ** 63),
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    null,
    undefined,
    "",
    "0x",
    "-0x1",
    "0x1000",
    "4096",
    "0xffffffffffffffffff",
    "12abc",
    " 0x10 ",
    "1_000",
    "exec",
    true,
    false,
    [],
    {},
    [1, 2],
    2n ** 64n,
    -(2n ** 63n) - 1n,
    U64,
    -1n,
    0n,
    4096n,
  ),
  fc.integer(),
  fc.integer({ min: -1, max: 64 }),
  fc.double(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.string({ maxLength: 12 }),
  fc.stringMatching(/^-?0x[0-9a-fA-F_]{0,20}$/),
  fc.constant(Symbol("s")),
  fc.object({ maxDepth: 1 }),
);

function onlyRangeOrType(f: () => unknown): "ok" | "threw" {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) return "threw";
    throw new Error(`unexpected ${(e as Error)?.constructor?.name}: ${e}`, {
      cause: e,
    });
  }
}

// deno-lint-ignore no-explicit-any
type Any = any;

Deno.test("fuzz: addresses (splitAddress, LinearAddress, hpa, gpa)", () => {
  fc.assert(
    fc.property(garbage, garbage, (a, b) => {
      onlyRangeOrType(() => {
        const [hi, lo] = splitAddress(a as Any);
        assert.ok(Number.isInteger(hi) && hi >= 0 && hi < 2 ** 32);
        assert.ok(Number.isInteger(lo) && lo >= 0 && lo < 2 ** 32);
        if (typeof a === "bigint") {
          const want = ((a % (U64 + 1n)) + U64 + 1n) % (U64 + 1n);
          assert.equal(LinearAddress.from(a).toBigInt(), want);
        }
      });
      onlyRangeOrType(() => new LinearAddress(a as Any, b as Any));
      onlyRangeOrType(() => LinearAddress.from(a as Any).toHex());
      onlyRangeOrType(() => hpa(a as Any));
      onlyRangeOrType(() => gpa(a as Any));
    }),
    params(0x5eed_0004, 2000),
  );
});

Deno.test("fuzz: PhysicalMemory and FrameAllocator", () => {
  const mem = new PhysicalMemory({ size: 1 << 20 });
  fc.assert(
    fc.property(garbage, garbage, garbage, (a, b, c) => {
      onlyRangeOrType(() =>
        new PhysicalMemory({ size: a as Any, name: b as Any })
      );
      onlyRangeOrType(() => new PhysicalMemory(a as Any));
      for (const m of ["read8", "read16", "read32"] as const) {
        onlyRangeOrType(() => mem[m](a as Any));
      }
      for (const m of ["write8", "write16", "write32"] as const) {
        onlyRangeOrType(() => mem[m](a as Any, b as Any));
      }
      onlyRangeOrType(() => mem.readBytes(a as Any, b as Any));
      onlyRangeOrType(() => mem.writeBytes(a as Any, b as Any));
      onlyRangeOrType(() => mem.zero(a as Any, b as Any));
      onlyRangeOrType(() => {
        const al = new FrameAllocator(mem, {
          frameSize: a as Any,
          start: b as Any,
          end: c as Any,
        });
        al.alloc();
        al.free(a as Any);
      });
      onlyRangeOrType(() => new FrameAllocator(a as Any, b as Any));
      assert.ok(mem.chunksTouched <= 256);
    }),
    params(0x5eed_0005, 1500),
  );
});

Deno.test("fuzz: formats and modes (radixFormat, validateFormat, pagingMode)", () => {
  const keys = [
    "pageShift",
    "entryBytes",
    "vaBits",
    "frameLow",
    "frameWidth",
    "levels",
    "bits",
    "rootBytes",
    "name",
  ];
  fc.assert(
    fc.property(
      garbage,
      garbage,
      garbage,
      garbage,
      fc.nat(),
      (a, b, c, d, k) => {
        onlyRangeOrType(() =>
          radixFormat({
            pageShift: a as Any,
            levelBits: b as Any,
            entryBytes: c as Any,
            validBit: d as Any,
          })
        );
        onlyRangeOrType(() =>
          radixFormat({
            pageShift: 5,
            levelBits: [5, a as Any],
            frameWidth: b as Any,
            frameLow: c as Any,
          })
        );
        onlyRangeOrType(() =>
          radixFormat({
            pageShift: 5,
            levelBits: [5, 5],
            writableBit: a as Any,
            dirtyBit: b as Any,
          })
        );
        onlyRangeOrType(() =>
          validateFormat(
            {
              ...structuredClone(X86_64_4LEVEL),
              [keys[k % keys.length]]: a,
            } as Any,
          )
        );
        onlyRangeOrType(() =>
          validateFormat(
            {
              ...structuredClone(X86_32),
              bits: { ...X86_32.bits, global: a },
            } as Any,
          )
        );
        onlyRangeOrType(() => validateFormat(a as Any));
        for (const f of [X86_32, PAE, X86_64_4LEVEL, OSTEP_15BIT]) {
          onlyRangeOrType(() =>
            pagingMode(f, {
              maxPhyAddr: a as Any,
              vendor: b as Any,
              nxe: c as Any,
            })
          );
          onlyRangeOrType(() => decodeEntry(f, a as Any, b as Any, c as Any));
        }
        onlyRangeOrType(() => pagingMode(a as Any, b as Any));
      },
    ),
    params(0x5eed_0006, 1000),
  );
});

Deno.test("fuzz: walk, walkInto and their argument checks", () => {
  const pt = new PageTable(new PhysicalMemory({ size: 1 << 24 }));
  pt.map(0x1000, 0x10_0000, { user: true });
  pt.map("0xffff800000000000", 0x20_0000, { size: 2 * MiB });
  const p32 = new PageTable(new PhysicalMemory({ size: 1 << 24 }), {
    format: X86_32,
  });
  p32.map(0x40_0000, 0, { size: 4 * MiB });
  const s = new WalkScratch();
  fc.assert(
    fc.property(garbage, garbage, garbage, garbage, (a, b, c, d) => {
      for (const t of [pt, p32]) {
        onlyRangeOrType(() =>
          walk({ memory: t.memory, mode: t.mode, root: a as Any }, b as Any)
        );
        onlyRangeOrType(() =>
          walk(t, a as Any, { kind: b as Any, user: c as Any, pkru: d as Any })
        );
        onlyRangeOrType(() => walk(t, 0x1000, a as Any));
        onlyRangeOrType(() =>
          t.walk(a as Any, {
            setAD: b as Any,
            implicit: c as Any,
            ac: d as Any,
          })
        );
        onlyRangeOrType(() =>
          walkInto(s, t.mode, t.memory, a as Any, b as Any, c as Any, d as Any)
        );
        onlyRangeOrType(() =>
          walkInto(
            s,
            t.mode,
            t.memory,
            t.root,
            a as Any,
            b as Any,
            c as Any,
            d as Any,
          )
        );
      }
      onlyRangeOrType(() => checkRoot(pt.mode, a as Any));
      onlyRangeOrType(() => checkPkru(a as Any));
      onlyRangeOrType(() => accessFlags(a as Any));
      onlyRangeOrType(() => accessFlags({ kind: a as Any }));
    }),
    params(0x5eed_0007, 1000),
  );
  // the fuzzing walked but never changed the mappings
  assert.equal([...pt.mappings()].length, 2);
});

Deno.test("fuzz: PageTable map/unmap/protect/mapRegions refuse garbage and stay unchanged", () => {
  const tables = [
    new PageTable(new PhysicalMemory({ size: 2 ** 36 })),
    new PageTable(new PhysicalMemory({ size: 2 ** 36 }), { format: X86_32 }),
    new PageTable(new PhysicalMemory({ size: 2 ** 36 }), { format: PAE }),
    new PageTable(new PhysicalMemory({ size: 4096 }), { format: OSTEP_15BIT }),
  ];
  tables[0].map(0x20_0000, 0x40_0000, { size: 2 * MiB });
  tables[0].map(0x1000, 0x5000);
  tables[1].map(0x1000, 0x5000);
  tables[2].map(0x1000, 0x5000);
  tables[3].map(0x20, 0x40);
  const smallLen = fc.oneof(
    garbage,
    fc.integer({ min: 1, max: 16 }).map((n) => n * 4096),
  );
  let accepted = 0;
  fc.assert(
    fc.property(
      garbage,
      garbage,
      garbage,
      garbage,
      smallLen,
      (a, b, c, d, len) => {
        for (const pt of tables) {
          const print = () => fingerprint(pt);
          const guarded = (f: () => unknown) => {
            const before = print();
            if (onlyRangeOrType(f) === "threw") {
              assert.equal(print(), before, "a refused call changed the table");
            } else accepted++;
          };
          guarded(() => pt.map(a as Any, b as Any));
          guarded(() =>
            pt.map(0x30_0000, 0x30_0000, {
              size: a as Any,
              pkey: b as Any,
              user: c as Any,
            })
          );
          guarded(() => pt.map(0x7000, 0x7000, a as Any));
          guarded(() => pt.unmap(a as Any));
          guarded(() => pt.protect(a as Any, { writable: b as Any }));
          guarded(() =>
            pt.protect(0x1000, { pkey: a as Any, executable: b as Any })
          );
          guarded(() => pt.protect(0x1000, a as Any));
          guarded(() => pt.mapRegions(a as Any));
          guarded(() => pt.mapRegions([a as Any]));
          guarded(() =>
            pt.mapRegions([{
              va: a as Any,
              pa: b as Any,
              length: len as Any,
              pageSize: c as Any,
            }])
          );
          guarded(() =>
            pt.mapRegions([{ va: 0x80_0000, pa: 0x80_0000, length: 8192 }, {
              va: a as Any,
              pa: d as Any,
              length: len as Any,
              pkey: c as Any,
            }])
          );
          guarded(() =>
            new PageTable(pt.memory, { root: a as Any, format: pt.format })
          );
          guarded(() => new PageTable(pt.memory, { mode: a as Any }));
          // undo whatever a successful garbage call mapped, to keep the table small
          for (const m of [...pt.mappings()]) {
            const keep = ["0x200000", "0x1000", "0x20"].includes(m.va.toHex());
            if (!keep) pt.unmap(m.va);
          }
        }
      },
    ),
    params(0x5eed_0008, 400),
  );
  assert.ok(accepted > 0, "some garbage is valid input (e.g. numeric strings)");
});
