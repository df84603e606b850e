/**
 * Translation exercises in the spirit of OSTEP's
 * `paging-multilevel-translate.py`: a seeded memory with a page table, a
 * memory dump, and virtual addresses to translate. With the default format
 * (OSTEP's 15-bit geometry) the sheet matches the homework: 32-byte pages,
 * 4 KiB of physical memory dumped page by page, a PDBR, data pages filled
 * with random bytes and invalid entries shown as 0x7f. The same generator
 * works for x86 32-bit, PAE, 4-level and 5-level paging, with large pages
 * and a mix of user/supervisor reads, writes and fetches (so some answers
 * are protection faults); then only the table pages on the paths and a few
 * decoy pages are dumped, as lists of their non-zero entries.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { PhysicalMemory } from "../memory/memory.ts";
import { PageTable } from "../paging/builder.ts";
import { levelSpec, OSTEP_15BIT, type PagingFormat } from "../paging/format.ts";
import { pagingMode, type PagingModeOptions } from "../paging/mode.ts";
import { type AccessKind, sizeName } from "../paging/record.ts";
import { Random } from "../util/random.ts";
import { entryNameOf } from "./answer.ts";
import {
  addDecoys,
  bitOff,
  bitOn,
  type Built,
  dressUp,
  entryAddressFor,
  type Setup,
} from "./dress.ts";
import {
  checkFormat,
  checkKeys,
  defaultMaxPhyAddr,
  entryFormatLines,
  fractionOption,
  FramePool,
  intOption,
  PoolAllocator,
  randomBigBelow,
  randomBits,
  reachableTables,
  readEntry,
  supportedPageSizes,
  toLinear,
} from "./build.ts";
import {
  addressLayout,
  controlBits,
  memoryWords,
  reproduceCall,
} from "./describe.ts";
import {
  accessWords,
  Exercise,
  type ExerciseQuestion,
  type QuestionAccess,
} from "./exercise.ts";
import {
  type DumpPage,
  dumpPage,
  type ExerciseSheet,
  formatVa,
  type SheetParameter,
} from "./sheet.ts";

/** Options for {@linkcode translationExercise}. */
export interface TranslationExerciseOptions {
  /** Paging format; default {@linkcode OSTEP_15BIT}. */
  format?: PagingFormat;
  /** Seed for every random choice; default 0 (always stated on the sheet). */
  seed?: number;
  /** Number of questions (1..50); default 10 (OSTEP) or 6 (x86). */
  questions?: number;
  /** Fraction of questions whose address is mapped; default 0.5. */
  mappedFraction?: number;
  /** Number of mapped pages; default 64 for OSTEP's geometry (its `-a`), 8 for x86. */
  mappedPages?: number;
  /** Page sizes to map, in bytes; default the base page plus, on x86, the smallest large page. */
  pageSizes?: readonly number[];
  /** Access kinds to ask about; default read/write/fetch where the format has the bits that tell them apart. */
  accessKinds?: readonly AccessKind[];
  /** Fraction of user-mode (CPL 3) accesses; default 0.5 where the format has a U/S bit, else 0. */
  userFraction?: number;
  /** x86 control bits (CR0.WP, EFER.NXE, CR4.SMEP/SMAP/PKE/PSE, MAXPHYADDR, …). */
  mode?: PagingModeOptions;
  /** Decoy pages in the dump (pages that look like tables but are not reachable); default 2 (0 for full dumps). */
  decoys?: number;
}

const KNOWN = [
  "format",
  "seed",
  "questions",
  "mappedFraction",
  "mappedPages",
  "pageSizes",
  "accessKinds",
  "userFraction",
  "mode",
  "decoys",
];

/**
 * Most questions an exercise may have (keeps sheets bounded).
 *
 * @example
 * ```ts
 * import { MAX_QUESTIONS, translationExercise } from "./translate.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => translationExercise({ questions: MAX_QUESTIONS + 1 }), /questions 51/);
 * ```
 */
export const MAX_QUESTIONS = 50;

function setup(format: PagingFormat, modeOptions?: PagingModeOptions): Setup {
  const x86 = format.kind !== "radix";
  const pageBytes = 2 ** format.pageShift;
  for (const l of format.levels) {
    const bytes = 2 ** l.bits * format.entryBytes;
    if (bytes > pageBytes && !(format.kind === "pae" && l.level === 3)) {
      throw new RangeError(
        `format "${format.name}": a level-${l.level} table (${bytes} bytes) does not fit in one ${pageBytes}-byte page; exercises need every table to fit in a page`,
      );
    }
  }
  if (!x86) {
    if (modeOptions !== undefined) {
      throw new RangeError(
        `mode options apply to x86 formats only, not to "${format.name}"`,
      );
    }
    const mode = pagingMode(format);
    const memSize = Math.min(mode.physLimit, 2 ** 32);
    const frames = memSize / pageBytes;
    return {
      format,
      mode,
      x86,
      memSize,
      tableBelow: memSize,
      full: frames <= 256 && pageBytes <= 64,
      pageBytes,
    };
  }
  const M = modeOptions?.maxPhyAddr ?? defaultMaxPhyAddr(format);
  const mode = pagingMode(format, { ...modeOptions, maxPhyAddr: M });
  const memSize = format.kind === "x86-32" ? 2 ** 32 : 2 ** M;
  return {
    format,
    mode,
    x86,
    memSize,
    tableBelow: Math.min(memSize, 2 ** 32),
    full: false,
    pageBytes,
  };
}

function pageSizesOption(
  s: Setup,
  v: readonly number[] | undefined,
): number[] {
  const supported = supportedPageSizes(s.mode).map(([size]) => size);
  if (v === undefined) {
    return s.x86 && supported.length > 1
      ? [supported[0], supported[1]]
      : [supported[0]];
  }
  if (!Array.isArray(v) || v.length === 0) {
    throw new RangeError(
      `pageSizes ${
        String(v)
      } is invalid: expected a non-empty list of sizes in bytes`,
    );
  }
  for (const size of v) {
    if (!supported.includes(size)) {
      throw new RangeError(
        `page size ${
          String(size)
        } is not supported by ${s.format.name} in this mode: expected some of ${
          supported.map((x) => `${x} (${sizeName(x)})`).join(", ")
        }`,
      );
    }
  }
  return [...new Set(v)].sort((a, b) => a - b);
}

function accessKindsOption(
  s: Setup,
  v: readonly AccessKind[] | undefined,
): AccessKind[] {
  if (v === undefined) {
    const b = s.format.bits;
    const kinds: AccessKind[] = ["read"];
    if (s.x86 || b.writable >= 0) kinds.push("write");
    if (s.x86 || b.noExec >= 0 || b.exec >= 0) kinds.push("fetch");
    return kinds;
  }
  if (!Array.isArray(v) || v.length === 0) {
    throw new RangeError(
      `accessKinds ${
        String(v)
      } is invalid: expected a non-empty list of "read", "write", "fetch"`,
    );
  }
  for (const k of v) {
    if (k !== "read" && k !== "write" && k !== "fetch") {
      throw new RangeError(
        `access kind ${
          JSON.stringify(k)
        } is invalid: expected "read", "write" or "fetch"`,
      );
    }
  }
  return [...v];
}

function buildRadix(
  s: Setup,
  rng: Random,
  mappedPages: number,
): Built {
  const f = s.format;
  const memory = new PhysicalMemory({
    size: s.memSize,
    name: "exercise memory",
  });
  const pool = new FramePool(rng, s.memSize);
  const alloc = new PoolAllocator(memory, pool, s.pageBytes);
  const pt = new PageTable(memory, { mode: s.mode, allocator: alloc });
  const vpnBits = f.vaBits - f.pageShift;
  const used = new Set<bigint>();
  const dataFrames: number[] = [];
  const b = f.bits;
  for (let k = 0; k < mappedPages; k++) {
    let vpn = randomBits(rng, vpnBits);
    while (used.has(vpn)) vpn = randomBits(rng, vpnBits);
    used.add(vpn);
    let frame: number;
    try {
      frame = pool.take(s.pageBytes);
      pt.map(vpn << BigInt(f.pageShift), frame, {
        writable: b.writable >= 0 ? rng.chance(0.6) : true,
        user: b.user >= 0 ? rng.chance(0.7) : true,
        executable: b.noExec >= 0 || b.exec >= 0 ? rng.chance(0.5) : true,
      });
    } catch (e) {
      if (e instanceof RangeError && /out of free frames/.test(e.message)) {
        throw new RangeError(
          `mappedPages ${mappedPages} is too many for ${
            s.memSize / s.pageBytes
          } physical pages: the pages and their tables do not fit (ran out after ${k} pages)`,
        );
      }
      throw e;
    }
    dataFrames.push(frame);
  }
  return { memory, pt, alloc, pool, dataFrames, garbage: new Map() };
}

interface Cluster {
  readonly start: bigint;
  readonly end: bigint;
}

function buildX86(
  s: Setup,
  rng: Random,
  mappedPages: number,
  sizes: number[],
): Built {
  const f = s.format;
  const memory = new PhysicalMemory({
    size: s.memSize,
    name: "exercise memory",
  });
  const pool = new FramePool(rng, s.memSize);
  const alloc = new PoolAllocator(memory, pool, 4096, s.tableBelow);
  let root: number | undefined;
  if (f.kind === "pae") {
    // A PAE PDPT is 32 bytes, 32-byte aligned, below 4 GiB (CR3 is 32 bits).
    root = alloc.alloc() + 32 * rng.int(4096 / 32);
  }
  const pt = new PageTable(memory, { mode: s.mode, allocator: alloc, root });
  const nClusters = Math.max(sizes.length, Math.min(3, mappedPages));
  if (nClusters > mappedPages) {
    throw new RangeError(
      `mappedPages ${mappedPages} is less than the ${sizes.length} page sizes asked for: map at least one page of each size`,
    );
  }
  const vaBits = BigInt(f.vaBits);
  const half = 1n << (vaBits - 1n);
  const split = f.canonical === "sign" ? half : 0xc0000000n;
  const userRange: [bigint, bigint] = [0x400000n, split];
  const kernelRange: [bigint, bigint] = [split, 1n << vaBits];
  const clusters: Cluster[] = [];
  const b = f.bits;
  for (let c = 0; c < nClusters; c++) {
    const size = sizes[c % sizes.length];
    const count = Math.floor(mappedPages / nClusters) +
      (c < mappedPages % nClusters ? 1 : 0);
    const user = c % 2 === 0;
    const [lo, hi] = user ? userRange : kernelRange;
    const big = BigInt(size);
    const span = BigInt(count * 2) * big;
    let start = 0n;
    for (let tries = 0;; tries++) {
      const room = hi - lo - span;
      if (room <= 0n || tries > 100) {
        throw new RangeError(
          `cannot place ${count} pages of ${
            sizeName(size)
          } in ${f.name}: the address space half is too small`,
        );
      }
      start = lo + randomBigBelow(rng, room);
      start -= start % big;
      if (start < lo) start += big;
      const end = start + span;
      if (clusters.every((k) => end <= k.start || start >= k.end)) break;
    }
    clusters.push({ start, end: start + span });
    let va = start;
    const restrict = rng.chance(0.3);
    for (let k = 0; k < count; k++) {
      const frame = pool.take(size);
      const writable = rng.chance(0.6);
      const accessed = rng.chance(0.7);
      pt.map(toLinear(f, va), frame, {
        size,
        user: user ? rng.chance(0.85) : rng.chance(0.1),
        writable,
        executable: s.mode.nxe ? rng.chance(0.5) : true,
        global: !user && rng.chance(0.5),
        accessed,
        dirty: accessed && writable && rng.chance(0.5),
        pkey: b.pkey >= 0 && s.mode.pke && user ? rng.int(4) : 0,
      });
      va += big * (rng.chance(0.3) ? 2n : 1n);
    }
    if (restrict) {
      // Rights accumulate by AND (SDM §4.6): a restrictive upper entry
      // overrides a permissive leaf. Operating systems rarely do this;
      // exercises should.
      const leafLevel = supportedPageSizes(s.mode).find(([x]) =>
        x === size
      )![1];
      const levels: number[] = [];
      for (let l = leafLevel + 1; l <= f.levels.length; l++) {
        if (s.mode.tables.hasRights[l] === 1) levels.push(l);
      }
      if (levels.length > 0) {
        const level = rng.pick(levels);
        const at = toLinear(f, start);
        const ea = entryAddressFor(pt, at, level);
        if (ea !== undefined) {
          const w = readEntry(memory, f, ea);
          const kinds: number[] = [b.writable, b.user];
          if (s.mode.nxe) kinds.push(-2);
          const which = rng.pick(kinds);
          if (which === -2) bitOn(w, b.noExec);
          else bitOff(w, which);
          pt.writeEntry(level, ea, w[0], w[1], at);
        }
      }
    }
  }
  return { memory, pt, alloc, pool, dataFrames: [], garbage: new Map() };
}

function pickAccess(
  rng: Random,
  kinds: AccessKind[],
  userFraction: number,
): QuestionAccess {
  // Reads and writes twice as often as fetches: most questions should
  // exercise translation and R/W, U/S; some, XD.
  const weighted = kinds.flatMap((k) => k === "fetch" ? [k] : [k, k]);
  return {
    kind: kinds.length === 1 ? kinds[0] : rng.pick(weighted),
    user: userFraction > 0 && rng.chance(userFraction),
    implicit: false,
    ac: false,
  };
}

/**
 * Build a seeded translation exercise: memory, page table, problem sheet,
 * questions, checker and reveal. Throws `RangeError`/`TypeError` with the
 * option's name for invalid options.
 *
 * @example OSTEP's homework, seed 0: translate, check, reveal.
 * ```ts
 * import { translationExercise } from "./translate.ts";
 * import assert from "node:assert/strict";
 * const ex = translationExercise({ seed: 0 });
 * assert.match(ex.toString(), /seed +0/);
 * assert.match(ex.toString(), /page 127:/); // the whole 4 KiB is dumped
 * const key = ex.answers();
 * assert.equal(ex.check(key.strings).correct, 10);
 * const w = ex.reveal(1); // a Walk record; in Jupyter, the walk diagram
 * assert.equal(w.va.toBigInt(), ex.questions[0].va.toBigInt());
 * ```
 *
 * @example x86-64 with 2 MiB pages and user/supervisor accesses.
 * ```ts
 * import { translationExercise } from "./translate.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const ex = translationExercise({ format: X86_64_4LEVEL, seed: 7, questions: 8 });
 * assert.equal(ex.questions.length, 8);
 * const r = ex.check(ex.answers().strings);
 * assert.equal(r.correct, 8);
 * assert.equal(translationExercise({ format: X86_64_4LEVEL, seed: 7, questions: 8 }).toString(), ex.toString());
 * ```
 */
export function translationExercise(
  options: TranslationExerciseOptions = {},
): Exercise {
  checkKeys(options, KNOWN, "translationExercise");
  const format = options.format ?? OSTEP_15BIT;
  checkFormat(format);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(
      `seed ${String(seed)} is invalid: expected a safe integer`,
    );
  }
  const s = setup(format, options.mode);
  const questions = intOption(
    options.questions,
    s.x86 ? 6 : 10,
    1,
    MAX_QUESTIONS,
    "questions",
  );
  const mappedFraction = fractionOption(
    options.mappedFraction,
    0.5,
    "mappedFraction",
  );
  const vaPages = 2 ** Math.min(format.vaBits - format.pageShift, 52);
  const frames = s.memSize / s.pageBytes;
  const mappedPages = intOption(
    options.mappedPages,
    s.x86 ? 8 : Math.max(
      1,
      Math.min(64, Math.floor(frames / 2), Math.floor(vaPages / 2)),
    ),
    1,
    s.x86 ? 64 : Math.min(vaPages, frames, 4096),
    "mappedPages",
  );
  const sizes = pageSizesOption(s, options.pageSizes);
  const kinds = accessKindsOption(s, options.accessKinds);
  const userFraction = fractionOption(
    options.userFraction,
    s.x86 || format.bits.user >= 0 ? 0.5 : 0,
    "userFraction",
  );
  const decoys = intOption(options.decoys, s.full ? 0 : 2, 0, 8, "decoys");
  const rng = new Random(seed);

  const built = s.x86
    ? buildX86(s, rng, mappedPages, sizes)
    : buildRadix(s, rng, mappedPages);
  dressUp(s, rng, built);
  addDecoys(s, rng, built, decoys);

  const qs = makeQuestions(
    s,
    rng,
    built,
    questions,
    mappedFraction,
    kinds,
    userFraction,
  );
  const sheet = makeSheet(s, built, qs, {
    seed,
    mappedPages,
    sizes,
    options,
  });
  const pages = s.full
    ? Array.from({ length: frames }, (_, i) => i * s.pageBytes)
    : [...built.alloc.frames].sort((a, b) => a - b);
  return new Exercise({
    kind: "translation",
    seed,
    format,
    mode: s.mode,
    memory: built.memory,
    root: built.pt.root,
    questions: qs,
    sheet,
    pages,
    askValue: s.full,
  });
}

function makeQuestions(
  s: Setup,
  rng: Random,
  b: Built,
  n: number,
  mappedFraction: number,
  kinds: AccessKind[],
  userFraction: number,
): ExerciseQuestion[] {
  const f = s.format;
  const mappings = [...b.pt.mappings()];
  const tables = reachableTables(b.memory, s.mode, b.pt.root).filter((t) =>
    t.notPresent.length > 0
  );
  const faultLevels = [...new Set(tables.map((t) => t.level))].sort((x, y) =>
    y - x
  );
  const nMapped = mappings.length === 0
    ? 0
    : faultLevels.length === 0
    ? n
    : Math.round(n * mappedFraction);
  const plan = rng.shuffle(
    Array.from({ length: n }, (_, i) => i < nMapped),
  );
  const seen = new Set<string>();
  const out: ExerciseQuestion[] = [];
  const showAccess = s.x86 || f.bits.writable >= 0 || f.bits.user >= 0 ||
    f.bits.noExec >= 0 || kinds.length > 1 || kinds[0] !== "read" ||
    userFraction > 0;
  let gpLeft = f.canonical === "sign" ? 1 : 0;
  for (let i = 0; i < n; i++) {
    let va: LinearAddress | undefined;
    for (let tries = 0; tries < 100 && va === undefined; tries++) {
      let cand: LinearAddress;
      if (plan[i]) {
        const m = rng.pick(mappings);
        cand = toLinear(
          f,
          m.va.toBigInt() + randomBits(rng, Math.log2(m.size)),
        );
      } else if (gpLeft > 0 && rng.chance(0.15)) {
        // Non-canonical: bit vaBits-1 set, bits above it clear.
        cand = LinearAddress.from(
          (1n << BigInt(f.vaBits - 1)) | randomBits(rng, f.vaBits - 1),
        );
        gpLeft--;
      } else {
        const level = rng.pick(faultLevels);
        const t = rng.pick(tables.filter((x) => x.level === level));
        const garbage = b.garbage.get(t.address) ?? [];
        const idx = garbage.length > 0 && rng.chance(0.5)
          ? rng.pick(garbage)
          : rng.pick(t.notPresent);
        const shift = levelSpec(f, level).shift;
        cand = toLinear(
          f,
          t.prefix | (BigInt(idx) << BigInt(shift)) | randomBits(rng, shift),
        );
      }
      const key = cand.toHex();
      if (!seen.has(key)) {
        seen.add(key);
        va = cand;
      }
    }
    if (va === undefined) {
      throw new RangeError(
        `cannot find ${n} distinct addresses to ask about in this address space: ask fewer questions`,
      );
    }
    const access = pickAccess(rng, kinds, userFraction);
    const text = showAccess
      ? `VA ${formatVa(f, va)} (${accessWords(access)})`
      : `VA ${formatVa(f, va)}`;
    out.push({
      number: i + 1,
      va,
      access,
      mode: s.mode,
      pkru: 0,
      text,
    });
  }
  return out;
}

function makeSheet(
  s: Setup,
  b: Built,
  qs: ExerciseQuestion[],
  o: {
    seed: number;
    mappedPages: number;
    sizes: number[];
    options: TranslationExerciseOptions;
  },
): ExerciseSheet {
  const f = s.format;
  const root = b.pt.root;
  const params: SheetParameter[] = [
    { name: "seed", value: String(o.seed) },
    { name: "format", value: f.name },
    { name: "virtual address", value: addressLayout(f) },
    {
      name: "page size",
      value: o.sizes.length === 1
        ? sizeName(o.sizes[0]).replace(/ B$/, " bytes")
        : `${sizeName(o.sizes[0])}; also ${
          o.sizes.slice(1).map((x) => sizeName(x)).join(", ")
        } pages (PS = 1)`,
    },
    { name: "physical memory", value: memoryWords(f, s.memSize) },
  ];
  if (s.x86) {
    params.push({
      name: f.kind === "pae" ? "CR3 (PDPT base)" : "CR3 (root table)",
      value: `0x${root.toString(16)}`,
    });
    params.push({
      name: "control bits",
      value: controlBits(s.mode).map((c) => `${c.name}=${c.value}`).join(" "),
    });
  } else {
    params.push({
      name: "PDBR",
      value: `page ${root / s.pageBytes} (physical address 0x${
        root.toString(16)
      }): the root table (${entryNameOf(f, f.levels.length)}s) is in this page`,
    });
  }
  params.push({ name: "mapped pages", value: String(o.mappedPages) });
  params.push({ name: "questions", value: String(qs.length) });

  const dump: DumpPage[] = [];
  const notes: string[] = [];
  if (s.full) {
    const frames = s.memSize / s.pageBytes;
    const w = String(frames - 1).length;
    for (let p = 0; p < frames; p++) {
      dump.push(
        dumpPage(
          b.memory,
          f,
          p * s.pageBytes,
          `page ${String(p).padStart(w, " ")}`,
        ),
      );
    }
    notes.push(
      `all of physical memory, one page per line: page N starts at physical address N × ${s.pageBytes}; bytes in hex`,
    );
  } else {
    const pages = [...b.alloc.frames].sort((x, y) => x - y);
    for (const a of pages) {
      const label = s.x86
        ? `page 0x${a.toString(16)}`
        : `page ${a / s.pageBytes} (0x${a.toString(16)})`;
      dump.push(dumpPage(b.memory, f, a, label));
    }
    notes.push(
      "only the pages that hold page tables are shown, and a few other pages that look like tables but are not reachable from the root",
    );
    if (dump.some((p) => p.entries !== undefined)) {
      notes.push(
        "each line is one entry: [index] +byte offset, then the entry's value (a little-endian number); entries not listed are zero",
      );
    }
  }
  const x86 = s.x86;
  return {
    title: `Translation exercise: ${f.name}, seed ${o.seed}`,
    intro: [
      x86
        ? "Translate each access with the page tables in memory, starting from CR3. Give the physical address, or, if the access faults, the entry where it faults and the #PF error code (or #GP for a non-canonical address)."
        : "Translate each virtual address with the page tables in memory, starting from the PDBR. Give the physical address (and the byte stored there), or, if the translation faults, the entry that is not valid.",
      ...(x86
        ? [
          "Accesses are by the supervisor (CPL 0) or the user (CPL 3); no TLB, nothing cached.",
        ]
        : []),
    ],
    parameters: params,
    entryFormat: entryFormatLines(s.mode),
    dumpNotes: notes,
    dump,
    ask: x86
      ? "Questions: physical address, or which entry faults and with which #PF error code?"
      : "Questions: physical address (and value), or fault?",
    questions: qs.map((q) => ({ number: q.number, text: q.text })),
    footer: [
      `Reproduce: ${
        reproduceCall("translationExercise", { ...o.options, seed: o.seed })
      }`,
      "Check: exercise.check([...answers]) · one worked walk: exercise.reveal(n) · all answers: exercise.answers()",
    ],
  };
}
