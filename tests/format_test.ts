/**
 * Format descriptors: validated once, loudly (RangeError naming the
 * problem), and the built-ins are deeply frozen.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  levelSpec,
  OSTEP_15BIT,
  PAE,
  pageSizeAt,
  type PagingFormat,
  radixFormat,
  validateFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";

const BUILTINS: PagingFormat[] = [
  X86_32,
  PAE,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
  OSTEP_15BIT,
];

/** A mutable deep copy of a descriptor, to break in one place. */
function copy(f: PagingFormat): PagingFormat {
  return structuredClone(f) as PagingFormat;
}

function withBits(
  f: PagingFormat,
  bits: Partial<PagingFormat["bits"]>,
): PagingFormat {
  return { ...copy(f), bits: { ...f.bits, ...bits } };
}

/** [what, bad descriptor, message pattern] */
const BAD: [string, () => PagingFormat, RegExp][] = [
  // overlapping masks
  [
    "R/W on the P bit",
    () => withBits(X86_64_4LEVEL, { writable: 0 }),
    /writable bit 0 overlaps present/,
  ],
  [
    "A and D on one bit",
    () => withBits(X86_32, { dirty: 5 }),
    /overlaps accessed/,
  ],
  [
    "pkey over XD",
    () => withBits(X86_64_4LEVEL, { pkey: 60 }),
    /pkey bit 63 overlaps noExec|noExec bit 63 overlaps pkey/,
  ],
  [
    "frame field over a flag",
    () => ({ ...copy(X86_64_4LEVEL), frameLow: 8, frameWidth: 44 }),
    /frame field bit 8 overlaps global/,
  ],
  [
    "radix frame over valid bit",
    () => ({ ...copy(OSTEP_15BIT), frameWidth: 8 }),
    /exceed the 8-bit entry|frame field bit 7 overlaps present/,
  ],
  // both senses of execute
  [
    "exec and noExec",
    () => withBits(X86_64_4LEVEL, { exec: 58 }),
    /both exec \(bit 58\) and noExec \(bit 63\)/,
  ],
  // bits beyond the entry width
  [
    "XD in a 4-byte entry",
    () => withBits(X86_32, { noExec: 63 }),
    /noExec bit 63 lies outside a 32-bit entry/,
  ],
  [
    "pkey running past bit 63",
    () => withBits(X86_64_4LEVEL, { pkey: 61, noExec: -1 }),
    /pkey bit 64 lies outside a 64-bit entry/,
  ],
  [
    "negative bit other than -1",
    () => withBits(X86_64_4LEVEL, { global: -2 }),
    /global bit -2 lies outside/,
  ],
  [
    "fractional bit",
    () => withBits(X86_64_4LEVEL, { global: 8.5 }),
    /global bit 8.5/,
  ],
  [
    "frame field past the entry",
    () => ({ ...copy(X86_32), frameWidth: 21 }),
    /frame field bits 12..32 exceed the 32-bit entry/,
  ],
  [
    "frame field below bit 0",
    () => ({ ...copy(OSTEP_15BIT), frameLow: -2, frameWidth: 5 }),
    /frame field/,
  ],
  [
    "empty frame field",
    () => ({ ...copy(OSTEP_15BIT), frameWidth: 0 }),
    /frame field/,
  ],
  [
    "entry of 3 bytes",
    () => ({ ...copy(X86_32), entryBytes: 3 }),
    /entryBytes 3 is invalid/,
  ],
  // inconsistent shifts and level numbering
  ["PD shift off by one", () => {
    const f = copy(X86_64_4LEVEL);
    (f.levels as unknown as { shift: number }[])[2].shift = 22;
    return f;
  }, /level 2 shift 22: expected 21/],
  [
    "vaBits not the sum of the levels",
    () => ({ ...copy(X86_64_4LEVEL), vaBits: 47 }),
    /levels cover 48 address bits but vaBits is 47/,
  ],
  ["levels leaf first", () => {
    const f = copy(PAE);
    return { ...f, levels: [...f.levels].reverse() };
  }, /numbered 3: expected 1/],
  [
    "pageShift 0",
    () => ({ ...copy(X86_32), pageShift: 0 }),
    /pageShift 0 is invalid/,
  ],
  [
    "pageShift 12.5",
    () => ({ ...copy(X86_32), pageShift: 12.5 }),
    /pageShift 12.5 is invalid/,
  ],
  ["level with 0 index bits", () => {
    const f = copy(OSTEP_15BIT);
    (f.levels as unknown as { bits: number }[])[0].bits = 0;
    return { ...f, vaBits: 10 };
  }, /0 index bits/],
  [
    "level with 21 index bits",
    () => radixFormatRaw([21, 1], 12, 8),
    /21 index bits/,
  ],
  // too many / too few levels
  [
    "9 levels",
    () => radixFormatRaw([1, 1, 1, 1, 1, 1, 1, 1, 1], 5, 1),
    /9 levels: expected 1 to 8/,
  ],
  [
    "0 levels",
    () => ({ ...copy(OSTEP_15BIT), levels: [], vaBits: 5 }),
    /0 levels: expected 1 to 8/,
  ],
  [
    "more than 64 address bits",
    () => radixFormatRaw([20, 20, 15], 12, 8),
    /(vaBits 67 exceeds 64|does not fit)/,
  ],
  // tables that do not fit a page
  [
    "leaf table of 64 bytes in 32-byte pages",
    () => radixFormatRaw([5, 6], 5, 1),
    /level-1 table \(64 bytes\) does not fit in one 32-byte page/,
  ],
  [
    "middle table too large",
    () => radixFormatRaw([5, 8, 3], 5, 1),
    /level-2 table \(256 bytes\) does not fit/,
  ],
  [
    "root table too large",
    () => radixFormatRaw([8, 5], 5, 1),
    /level-2 table \(256 bytes\) does not fit/,
  ],
  ["x86 PT of 1024 8-byte entries", () => {
    const f = copy(X86_32);
    return { ...f, entryBytes: 8 };
  }, /table \(8192 bytes\) does not fit in one 4096-byte page/],
  // the irregular parts need their bits
  [
    "no present bit",
    () => withBits(OSTEP_15BIT, { present: -1 }),
    /present bit is required/,
  ],
  [
    "large pages without PS",
    () => withBits(X86_64_4LEVEL, { pageSize: -1 }),
    /need a pageSize bit/,
  ],
];

/** A raw radix-shaped descriptor (bypassing radixFormat's defaults). */
function radixFormatRaw(
  levelBits: number[],
  pageShift: number,
  entryBytes: number,
): PagingFormat {
  const n = levelBits.length;
  let shift = pageShift;
  const levels = levelBits.map((b, i) => ({ b, level: n - i })).reverse().map(
    ({ b, level }) => {
      const l = {
        level,
        table: `L${level}`,
        entry: `L${level}E`,
        shift,
        bits: b,
        canMapPage: false,
        hasAccessed: false,
      };
      shift += b;
      return l;
    },
  ).reverse();
  return {
    ...copy(OSTEP_15BIT),
    name: `raw ${levelBits.join("/")}`,
    vaBits: shift,
    pageShift,
    entryBytes,
    levels,
    frameWidth: Math.min(7, entryBytes * 8 - 1),
    bits: { ...OSTEP_15BIT.bits, present: entryBytes * 8 - 1 },
  };
}

for (const [what, make, pattern] of BAD) {
  Deno.test(`validateFormat rejects: ${what}`, () => {
    const f = make();
    assert.throws(() => validateFormat(f), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${what}: ${e}`);
      assert.match(e.message, pattern);
      assert.match(e.message, /^paging format "/);
      return true;
    });
    assert.equal(
      Object.isFrozen(f),
      false,
      "a rejected descriptor is not frozen",
    );
  });
}

Deno.test("validateFormat accepts copies of the built-ins and freezes them", () => {
  for (const f of BUILTINS) {
    const c = validateFormat(copy(f));
    assert.deepEqual(c, f);
    assert.ok(
      Object.isFrozen(c) && Object.isFrozen(c.levels) &&
        Object.isFrozen(c.bits),
    );
  }
});

Deno.test("built-in formats are deeply frozen", () => {
  for (const f of BUILTINS) {
    assert.ok(Object.isFrozen(f), f.name);
    assert.ok(Object.isFrozen(f.bits), f.name);
    assert.ok(Object.isFrozen(f.levels), f.name);
    for (const l of f.levels) {
      assert.ok(Object.isFrozen(l), `${f.name} ${l.table}`);
    }
    assert.throws(() => {
      (f as { vaBits: number }).vaBits = 99;
    }, TypeError);
    assert.throws(() => {
      (f.bits as { present: number }).present = 3;
    }, TypeError);
    assert.throws(() => {
      (f.levels as LevelLike[]).push(f.levels[0]);
    }, TypeError);
    assert.throws(() => {
      (f.levels[0] as { shift: number }).shift = 1;
    }, TypeError);
  }
  assert.equal(X86_64_4LEVEL.vaBits, 48);
});

type LevelLike = PagingFormat["levels"][number];

Deno.test("built-in geometry (SDM §4.3–§4.5)", () => {
  const geo = (f: PagingFormat) =>
    f.levels.map((l) =>
      `${l.entry}@${l.shift}/${l.bits}${l.canMapPage ? "+PS" : ""}`
    ).join(" ");
  assert.equal(geo(X86_32), "PDE@22/10+PS PTE@12/10");
  assert.equal(geo(PAE), "PDPTE@30/2 PDE@21/9+PS PTE@12/9");
  assert.equal(
    geo(X86_64_4LEVEL),
    "PML4E@39/9 PDPTE@30/9+PS PDE@21/9+PS PTE@12/9",
  );
  assert.equal(
    geo(X86_64_5LEVEL),
    "PML5E@48/9 PML4E@39/9 PDPTE@30/9+PS PDE@21/9+PS PTE@12/9",
  );
  assert.deepEqual(BUILTINS.map((f) => f.vaBits), [32, 32, 48, 57, 15]);
  assert.deepEqual(BUILTINS.map((f) => f.entryBytes), [4, 8, 8, 8, 1]);
  assert.deepEqual(BUILTINS.map((f) => f.rootBytes), [
    4096,
    32,
    4096,
    4096,
    32,
  ]);
  assert.equal(PAE.levels[0].hasAccessed, false);
  assert.equal(PAE.pdpteRegisters, true);
  assert.equal(X86_32.bits.noExec, -1);
  assert.equal(PAE.bits.pkey, -1);
  assert.equal(X86_64_4LEVEL.bits.noExec, 63);
  assert.equal(X86_64_4LEVEL.bits.pkey, 59);
  assert.equal(X86_64_5LEVEL.canonical, "sign");
  assert.equal(PAE.canonical, "zero");
  assert.equal(pageSizeAt(X86_32, 2), 4 << 20);
  assert.equal(pageSizeAt(PAE, 2), 2 << 20);
  assert.equal(pageSizeAt(X86_64_5LEVEL, 5), 2 ** 48);
  assert.equal(levelSpec(X86_64_5LEVEL, 5).table, "PML5");
  assert.throws(() => pageSizeAt(X86_32, 3), RangeError);
  assert.throws(() => levelSpec(X86_32, 0), /level 0 is invalid/);
});

Deno.test("radixFormat builds teaching geometries and rejects bad ones", () => {
  const f = radixFormat({ pageShift: 4, levelBits: [2, 3, 4], entryBytes: 1 });
  assert.equal(f.vaBits, 13);
  assert.deepEqual(f.levels.map((l) => l.shift), [11, 8, 4]);
  assert.equal(f.kind, "radix");
  assert.ok(Object.isFrozen(f));
  const wide = radixFormat({
    pageShift: 12,
    levelBits: [9, 9],
    entryBytes: 8,
    validBit: 0,
    frameLow: 12,
    frameWidth: 40,
    writableBit: 1,
    userBit: 2,
    noExecBit: 63,
    accessedBit: 5,
    dirtyBit: 6,
  });
  assert.equal(wide.bits.noExec, 63);
  assert.equal(wide.levels.every((l) => l.hasAccessed), true);
  assert.throws(
    () => radixFormat({ pageShift: 5, levelBits: [5, 5], validBit: 8 }),
    /valid|present bit 8 lies outside/,
  );
  assert.throws(
    () => radixFormat({ pageShift: 5, levelBits: [5, 5], writableBit: 7 }),
    /overlaps present/,
  );
  assert.throws(
    () => radixFormat({ pageShift: 5, levelBits: [5, 5], accessedBit: 3 }),
    /overlaps accessed|accessed bit 3/,
  );
  assert.throws(
    () => radixFormat({ pageShift: 5, levelBits: [6, 5] }),
    RangeError,
  );
  assert.throws(() => radixFormat({ pageShift: 5, levelBits: [] }), RangeError);
  assert.throws(
    () => radixFormat({ pageShift: 0, levelBits: [1] }),
    RangeError,
  );
  // a single-level (linear) table may be bigger than a page
  assert.equal(radixFormat({ pageShift: 5, levelBits: [10] }).rootBytes, 1024);
});
