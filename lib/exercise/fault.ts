/**
 * Fault exercises (x86 only): "which entry faults, and with which #PF error
 * code?" Each question is one access with its own control-register
 * settings, built so that it meets a chosen rule of Intel SDM Vol. 3 §4.6
 * and §4.7 at a chosen level: a not-present entry, a reserved bit (address
 * bits above MAXPHYADDR, PS in a PML4E, a large page's low address bits, XD
 * while EFER.NXE = 0, PSE-36 bits, PAE PDPTE bits → #GP), U/S, R/W with and
 * without CR0.WP, XD with EFER.NXE, SMEP, SMAP with and without EFLAGS.AC
 * (and implicit accesses), and protection keys. Some questions are traps
 * whose answer is "no fault" (a supervisor write to a read-only page with
 * CR0.WP = 0, SMAP with AC = 1, a fetch from a page whose key denies data
 * access). The other control bits are set at random and every question is
 * verified against the walker, so irrelevant settings never change the
 * intended outcome.
 *
 * @module
 */

import type { LinearAddress } from "../address/address.ts";
import { PhysicalMemory } from "../memory/memory.ts";
import { type LeafOptions, PageTable } from "../paging/builder.ts";
import {
  levelSpec,
  type PagingFormat,
  X86_64_4LEVEL,
} from "../paging/format.ts";
import { type PagingMode, pagingMode } from "../paging/mode.ts";
import { type AccessKind, sizeName, walk } from "../paging/record.ts";
import type { FaultReason } from "../paging/walker.ts";
import { Random } from "../util/random.ts";
import { entryNameOf } from "./answer.ts";
import {
  checkFormat,
  checkKeys,
  defaultMaxPhyAddr,
  entryFormatLines,
  FramePool,
  intOption,
  PoolAllocator,
  randomBits,
  readEntry,
  supportedPageSizes,
  toLinear,
} from "./build.ts";
import { addressLayout, memoryWords, reproduceCall } from "./describe.ts";
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
import { MAX_QUESTIONS } from "./translate.ts";

/** The rules a fault question can be built around. */
export type FaultScenario =
  | "not-present"
  | "reserved-bit"
  | "user-supervisor"
  | "write-protect"
  | "no-execute"
  | "smep"
  | "smap"
  | "pkey";

/**
 * Every scenario, in a fixed order.
 *
 * @example
 * ```ts
 * import { FAULT_SCENARIOS } from "./fault.ts";
 * import assert from "node:assert/strict";
 * assert.equal(FAULT_SCENARIOS.length, 8);
 * assert.ok(FAULT_SCENARIOS.includes("smap"));
 * ```
 */
export const FAULT_SCENARIOS: readonly FaultScenario[] = Object.freeze([
  "not-present",
  "reserved-bit",
  "user-supervisor",
  "write-protect",
  "no-execute",
  "smep",
  "smap",
  "pkey",
]);

/** Options for {@linkcode faultExercise}. */
export interface FaultExerciseOptions {
  /** An x86 format; default {@linkcode X86_64_4LEVEL}. */
  format?: PagingFormat;
  /** Seed for every random choice; default 0 (always stated on the sheet). */
  seed?: number;
  /** Number of questions (1..50); default one per scenario. */
  questions?: number;
  /** Scenarios to draw from; default every one the format supports. */
  scenarios?: readonly FaultScenario[];
  /** Page sizes; default the base page plus the smallest large page. */
  pageSizes?: readonly number[];
  /** MAXPHYADDR; default 32 (32-bit), 36 (PAE), 40 (64-bit). */
  maxPhyAddr?: number;
  /** Decoy pages in the dump; default 1. */
  decoys?: number;
}

const KNOWN = [
  "format",
  "seed",
  "questions",
  "scenarios",
  "pageSizes",
  "maxPhyAddr",
  "decoys",
];

/** Control state of one question. */
interface Cpu {
  wp?: boolean;
  nxe?: boolean;
  smep?: boolean;
  smap?: boolean;
  pke?: boolean;
  pkru?: number;
  ac?: boolean;
}

type Expect =
  | { kind: "ok" }
  | { kind: "gp"; reason: FaultReason }
  | { kind: "page-fault"; reason: FaultReason; level: number };

interface Plan {
  scenario: FaultScenario;
  culprit: number;
  leaf: number;
  userPage: boolean;
  leaf_: LeafOptions;
  /** Change the entry at `culprit` after mapping (raw [lo, hi] in place). */
  modify?: (w: [number, number]) => void;
  access: QuestionAccess;
  cpu: Cpu;
  expect: Expect;
  note: string;
  va?: LinearAddress;
  entries?: Set<string>;
  privateEntries?: Set<string>;
}

function supportedScenarios(
  format: PagingFormat,
  leafLevels: number[],
): FaultScenario[] {
  const out: FaultScenario[] = [];
  for (const s of FAULT_SCENARIOS) {
    if (s === "no-execute" && format.bits.noExec < 0) continue;
    if (s === "pkey" && format.bits.pkey < 0) continue;
    if (
      s === "reserved-bit" && format.kind === "x86-32" &&
      !leafLevels.includes(2)
    ) continue;
    out.push(s);
  }
  return out;
}

function kindOf(rng: Random, kinds: AccessKind[]): AccessKind {
  return rng.pick(kinds.flatMap((k) => (k === "fetch" ? [k] : [k, k])));
}

function acc(
  kind: AccessKind,
  user: boolean,
  extra: Partial<QuestionAccess> = {},
): QuestionAccess {
  return { kind, user, implicit: false, ac: false, ...extra };
}

function name(f: PagingFormat, level: number): string {
  return entryNameOf(f, level);
}

/** Plan one question for `scenario`. */
function plan(
  rng: Random,
  s: Setup,
  scenario: FaultScenario,
  leafLevels: number[],
  M: number,
): Plan {
  const f = s.format;
  const n = f.levels.length;
  const all = Array.from({ length: n }, (_, i) => i + 1);
  const rights = all.filter((l) => s.mode.tables.hasRights[l] === 1);
  const leafAtMost = (l: number) => rng.pick(leafLevels.filter((x) => x <= l));
  const base = {
    scenario,
    leaf_: {
      writable: true,
      executable: true,
      accessed: rng.chance(0.7),
    } as LeafOptions,
    cpu: {} as Cpu,
  };
  switch (scenario) {
    case "not-present": {
      const culprit = rng.pick(all);
      const leaf = leafAtMost(culprit);
      const user = rng.chance(0.5);
      const stale = rng.chance(0.7);
      return {
        ...base,
        culprit,
        leaf,
        userPage: user,
        leaf_: { ...base.leaf_, user },
        modify: (w) => {
          if (stale) bitOff(w, f.bits.present);
          else w[0] = w[1] = 0;
        },
        access: acc(kindOf(rng, ["read", "write", "fetch"]), user),
        expect: { kind: "page-fault", reason: "not-present", level: culprit },
        note: stale
          ? `P = 0 in the ${
            name(f, culprit)
          }; the rest of the entry still looks valid`
          : `the ${name(f, culprit)} is zero`,
      };
    }
    case "reserved-bit": {
      type V = { v: string; levels: number[] };
      const vs: V[] = [];
      const nonPdpt = all.filter((l) => !(f.kind === "pae" && l === 3));
      const top = f.kind === "pae" ? 62 : 51;
      if (f.kind === "x86-64" || f.kind === "pae") {
        if (M <= top) vs.push({ v: "high", levels: nonPdpt });
        vs.push({ v: "xd-nxe0", levels: nonPdpt });
        const large = leafLevels.filter((l) => l > 1);
        if (large.length > 0) vs.push({ v: "large-low", levels: large });
      }
      if (f.kind === "x86-64") {
        vs.push({
          v: "ps",
          levels: [4, 5].filter((l) => l <= n),
        });
      }
      if (f.kind === "pae") vs.push({ v: "pdpte", levels: [3] });
      if (f.kind === "x86-32") vs.push({ v: "pse36", levels: [2] });
      const { v, levels } = rng.pick(vs);
      const culprit = rng.pick(levels);
      const leaf = v === "large-low" || v === "pse36"
        ? culprit
        : leafAtMost(culprit);
      const user = rng.chance(0.5);
      const cpu: Cpu = {};
      let note = "";
      let modify: (w: [number, number]) => void;
      const ename = name(f, culprit);
      if (v === "high") {
        const bit = M + rng.int(top - M + 1);
        modify = (w) => bitOn(w, bit);
        note = `bit ${bit} of the ${ename} is set, above MAXPHYADDR ${M}`;
      } else if (v === "xd-nxe0") {
        modify = (w) => bitOn(w, 63);
        cpu.nxe = false;
        note =
          `XD (bit 63) is set in the ${ename} while EFER.NXE = 0, so bit 63 is reserved`;
      } else if (v === "large-low") {
        const shift = levelSpec(f, culprit).shift;
        const bit = 13 + rng.int(shift - 13);
        modify = (w) => bitOn(w, bit);
        note = `bit ${bit} is set in a ${
          sizeName(2 ** shift)
        } ${ename}: below the page boundary, only bit 12 (PAT) may be set`;
      } else if (v === "ps") {
        modify = (w) => bitOn(w, 7);
        note = `PS is set in the ${ename}: no ${ename} maps a page`;
      } else if (v === "pdpte") {
        const bit = rng.pick([1, 2, 5, 6, 7, 8]);
        modify = (w) => bitOn(w, bit);
        note =
          `bit ${bit} of a PAE PDPTE is reserved: the CPU checks the PDPTEs when CR3 is loaded and raises #GP(0)`;
      } else {
        // PSE-36: PDE bits 20..13 hold physical-address bits 39..32; those
        // at or above MAXPHYADDR are reserved, and so is bit 21 (SDM Table 4-4).
        const low = 13 + (Math.min(M, 40) - 32);
        const choices = [21];
        for (let k = low; k <= 20; k++) choices.push(k);
        const bit = rng.pick(choices);
        modify = (w) => bitOn(w, bit);
        note = bit === 21
          ? "bit 21 of a 4 MiB PDE is reserved"
          : `bit ${bit} of a 4 MiB PDE holds physical-address bit ${
            bit + 19
          } (PSE-36), above MAXPHYADDR ${M}: reserved`;
      }
      return {
        ...base,
        culprit,
        leaf,
        userPage: user,
        leaf_: { ...base.leaf_, user },
        modify,
        access: acc(kindOf(rng, ["read", "write", "fetch"]), user),
        cpu,
        expect: v === "pdpte"
          ? { kind: "gp", reason: "pdpte-reserved" }
          : { kind: "page-fault", reason: "reserved-bit", level: culprit },
        note,
      };
    }
    case "user-supervisor": {
      const culprit = rng.pick(rights);
      const leaf = leafAtMost(culprit);
      return {
        ...base,
        culprit,
        leaf,
        userPage: false,
        leaf_: { ...base.leaf_, user: culprit !== leaf },
        modify: culprit !== leaf ? (w) => bitOff(w, f.bits.user) : undefined,
        access: acc(kindOf(rng, ["read", "write", "fetch"]), true),
        expect: { kind: "page-fault", reason: "user-supervisor", level: leaf },
        note: `U/S = 0 in the ${name(f, culprit)}: a supervisor-only page`,
      };
    }
    case "write-protect": {
      const culprit = rng.pick(rights);
      const leaf = leafAtMost(culprit);
      const r = rng.next();
      const variant = r < 0.35 ? "user" : r < 0.75 ? "wp1" : "wp0";
      const userPage = variant === "user" ? true : rng.chance(0.3);
      const cpu: Cpu = variant === "user" ? {} : { wp: variant === "wp1" };
      return {
        ...base,
        culprit,
        leaf,
        userPage,
        leaf_: {
          ...base.leaf_,
          user: userPage,
          writable: culprit !== leaf,
        },
        modify: culprit !== leaf
          ? (w) => bitOff(w, f.bits.writable)
          : undefined,
        access: acc("write", variant === "user"),
        cpu,
        expect: variant === "wp0"
          ? { kind: "ok" }
          : { kind: "page-fault", reason: "write-protect", level: leaf },
        note: `R/W = 0 in the ${name(f, culprit)}${
          variant === "wp0"
            ? "; a supervisor write with CR0.WP = 0 ignores R/W: no fault"
            : variant === "wp1"
            ? "; supervisor writes honour R/W because CR0.WP = 1"
            : ""
        }`,
      };
    }
    case "no-execute": {
      const culprit = rng.pick(rights);
      const leaf = leafAtMost(culprit);
      const r = rng.next();
      const variant = r < 0.4 ? "user" : r < 0.75 ? "sup" : "nxe0";
      const user = variant === "user"
        ? true
        : variant === "sup"
        ? false
        : rng.chance(0.5);
      return {
        ...base,
        culprit,
        leaf,
        userPage: user,
        leaf_: {
          ...base.leaf_,
          user,
          executable: culprit !== leaf,
        },
        modify: culprit !== leaf ? (w) => bitOn(w, f.bits.noExec) : undefined,
        access: acc("fetch", user),
        cpu: variant === "nxe0" ? { nxe: false, smep: false } : { nxe: true },
        expect: variant === "nxe0"
          ? { kind: "page-fault", reason: "reserved-bit", level: culprit }
          : { kind: "page-fault", reason: "no-execute", level: leaf },
        note: variant === "nxe0"
          ? `XD = 1 in the ${
            name(f, culprit)
          }, but EFER.NXE = 0: bit 63 is reserved (a reserved-bit fault, not an XD fault)`
          : `XD = 1 in the ${name(f, culprit)} with EFER.NXE = 1`,
      };
    }
    case "smep": {
      const leaf = rng.pick(leafLevels);
      const on = rng.chance(0.75);
      return {
        ...base,
        culprit: leaf,
        leaf,
        userPage: true,
        leaf_: { ...base.leaf_, user: true },
        access: acc("fetch", false),
        cpu: { smep: on },
        expect: on
          ? { kind: "page-fault", reason: "smep", level: leaf }
          : { kind: "ok" },
        note: on
          ? "a supervisor fetch from a user page (U/S = 1 at every level) with CR4.SMEP = 1"
          : "a supervisor fetch from a user page is allowed while CR4.SMEP = 0",
      };
    }
    case "smap": {
      const leaf = rng.pick(leafLevels);
      const r = rng.next();
      const variant = r < 0.5 ? "ac0" : r < 0.75 ? "ac1" : "implicit";
      const kind: AccessKind = variant === "implicit"
        ? "read"
        : rng.pick(["read", "write"]);
      return {
        ...base,
        culprit: leaf,
        leaf,
        userPage: true,
        leaf_: { ...base.leaf_, user: true },
        access: acc(kind, false, {
          implicit: variant === "implicit",
          ac: variant !== "ac0",
        }),
        cpu: { smap: true, ac: variant !== "ac0", wp: true },
        expect: variant === "ac1"
          ? { kind: "ok" }
          : { kind: "page-fault", reason: "smap", level: leaf },
        note: variant === "ac0"
          ? "a supervisor data access to a user page with CR4.SMAP = 1 and EFLAGS.AC = 0"
          : variant === "ac1"
          ? "EFLAGS.AC = 1 lets explicit supervisor accesses reach user pages under SMAP: no fault"
          : "an implicit supervisor access (e.g. reading the GDT) to a user page faults under SMAP whatever EFLAGS.AC says",
      };
    }
    case "pkey": {
      const leaf = rng.pick(leafLevels);
      const key = 1 + rng.int(15);
      const variants = [
        "ad-read",
        "wd-write",
        "wd-read",
        "wd-sup-write",
        "ad-fetch",
      ];
      const variant = rng.pick(variants);
      const ad = variant.startsWith("ad");
      let pkru = 0;
      for (let k = 1; k < 16; k++) {
        if (k !== key) pkru |= rng.int(4) << (2 * k);
      }
      pkru |= (ad ? 1 : 2) << (2 * key);
      pkru >>>= 0;
      const kind: AccessKind = variant.endsWith("fetch")
        ? "fetch"
        : variant.endsWith("write")
        ? "write"
        : "read";
      const user = variant !== "wd-sup-write";
      const ok = variant === "wd-read" || variant === "ad-fetch";
      return {
        ...base,
        culprit: leaf,
        leaf,
        userPage: true,
        leaf_: { ...base.leaf_, user: true, pkey: key },
        access: acc(kind, user),
        cpu: {
          pke: true,
          pkru,
          wp: true,
          smap: user ? undefined : false,
          smep: kind === "fetch" ? false : undefined,
        },
        expect: ok
          ? { kind: "ok" }
          : { kind: "page-fault", reason: "pkey", level: leaf },
        note: `the leaf's protection key is ${key}; PKRU bits ${
          2 * key
        } (AD) and ${2 * key + 1} (WD) are ${ad ? "1 and 0" : "0 and 1"}${
          variant === "wd-read"
            ? ": write-disable does not stop a read"
            : variant === "ad-fetch"
            ? ": protection keys do not apply to instruction fetches"
            : variant === "wd-sup-write"
            ? ": with CR0.WP = 1, WD stops supervisor writes to user pages too"
            : ""
        }`,
      };
    }
  }
}

/** Entry identities `level:prefix` a path uses from the root down to `bottom`. */
function pathEntries(
  f: PagingFormat,
  va: bigint,
  bottom: number,
): Map<number, string> {
  const out = new Map<number, string>();
  for (let l = f.levels.length; l >= bottom; l--) {
    const shift = levelSpec(f, l).shift;
    out.set(l, `${l}:${(va >> BigInt(shift)).toString(16)}`);
  }
  return out;
}

interface RootPools {
  user: number[];
  kernel: number[];
  userRange: [number, number];
  kernelRange: [number, number];
}

function place(
  rng: Random,
  s: Setup,
  p: Plan,
  placed: Plan[],
  pools: Map<number, number[]>,
  rootPools: RootPools,
): boolean {
  const f = s.format;
  const n = f.levels.length;
  const T = Math.max(p.culprit, p.leaf);
  for (let tries = 0; tries < 200; tries++) {
    let va = 0n;
    for (let l = n; l >= p.leaf; l--) {
      const spec = levelSpec(f, l);
      let idx: number;
      if (l === n) {
        // After 100 tries, give up on putting user pages in the lower half.
        const half = tries >= 100
          ? [0, rootPools.kernelRange[1]]
          : p.userPage
          ? rootPools.userRange
          : rootPools.kernelRange;
        idx = tries >= 100 || (T === n && (tries >= 50 || rng.chance(0.5)))
          ? half[0] + rng.int(half[1] - half[0])
          : rng.pick(p.userPage ? rootPools.user : rootPools.kernel);
      } else if (l > T || (l === T && tries < 100 && rng.chance(0.5))) {
        idx = rng.pick(pools.get(l)!);
      } else {
        idx = rng.int(2 ** spec.bits);
      }
      va |= BigInt(idx) << BigInt(spec.shift);
    }
    va |= randomBits(rng, levelSpec(f, p.leaf).shift);
    const mine = pathEntries(f, va, p.leaf);
    const minePrivate = new Set<string>();
    for (let l = T; l >= p.leaf; l--) minePrivate.add(mine.get(l)!);
    const mineAll = new Set(mine.values());
    let ok = true;
    for (const q of placed) {
      for (const e of minePrivate) if (q.entries!.has(e)) ok = false;
      for (const e of q.privateEntries!) if (mineAll.has(e)) ok = false;
      if (!ok) break;
    }
    if (!ok) continue;
    p.va = toLinear(f, va);
    p.entries = mineAll;
    p.privateEntries = minePrivate;
    return true;
  }
  return false;
}

function cpuWords(
  format: PagingFormat,
  mode: PagingMode,
  pkru: number,
  ac: boolean,
): SheetParameter[] {
  const b = (x: boolean) => (x ? "1" : "0");
  const out: SheetParameter[] = [{ name: "CR0.WP", value: b(mode.wp) }];
  if (format.bits.noExec >= 0) {
    out.push({ name: "EFER.NXE", value: b(mode.nxe) });
  }
  out.push({ name: "CR4.SMEP", value: b(mode.smep) });
  out.push({ name: "CR4.SMAP", value: b(mode.smap) });
  if (format.bits.pkey >= 0) {
    out.push({ name: "CR4.PKE", value: b(mode.pke) });
    if (mode.pke) {
      out.push({
        name: "PKRU",
        value: `0x${pkru.toString(16).padStart(8, "0")}`,
      });
    }
  }
  out.push({ name: "EFLAGS.AC", value: b(ac) });
  return out;
}

function matches(
  e: Expect,
  q: ExerciseQuestion,
  memory: PhysicalMemory,
  root: number,
): boolean {
  const w = walk({ memory, mode: q.mode, root }, q.va, {
    kind: q.access.kind,
    user: q.access.user,
    implicit: q.access.implicit,
    ac: q.access.ac,
    pkru: q.pkru,
    setAD: false,
  });
  const o = w.outcome;
  if (o.kind !== e.kind) return false;
  if (o.kind === "page-fault" && e.kind === "page-fault") {
    return o.reason === e.reason && o.level === e.level;
  }
  if (o.kind === "gp" && e.kind === "gp") return o.reason === e.reason;
  return true;
}

/**
 * Build a seeded fault exercise for an x86 format. Throws `RangeError` or
 * `TypeError` naming the option for invalid options (a radix format, an
 * unknown scenario, a scenario the format cannot have).
 *
 * @example
 * ```ts
 * import { faultExercise } from "./fault.ts";
 * import assert from "node:assert/strict";
 * const ex = faultExercise({ seed: 4 });
 * assert.equal(ex.questions.length, 8); // one per scenario on 4-level paging
 * assert.match(ex.toString(), /CR4\.SMAP=/);
 * assert.equal(ex.check(ex.answers().strings).correct, 8);
 * const w = ex.reveal(1);
 * assert.equal(w.mode, ex.questions[0].mode); // the question's own control bits
 * ```
 *
 * @example Only SMAP and protection-key questions, 32-bit paging refused.
 * ```ts
 * import { faultExercise } from "./fault.ts";
 * import { X86_32 } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const ex = faultExercise({ seed: 1, scenarios: ["smap", "pkey"], questions: 4 });
 * assert.equal(ex.questions.length, 4);
 * assert.throws(() => faultExercise({ format: X86_32, scenarios: ["pkey"] }), /pkey.*x86 32-bit/);
 * ```
 */
export function faultExercise(options: FaultExerciseOptions = {}): Exercise {
  checkKeys(options, KNOWN, "faultExercise");
  const format = options.format ?? X86_64_4LEVEL;
  checkFormat(format);
  if (format.kind === "radix") {
    throw new RangeError(
      `faultExercise needs an x86 format (X86_32, PAE, X86_64_4LEVEL, X86_64_5LEVEL), not "${format.name}": use translationExercise for teaching formats`,
    );
  }
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(
      `seed ${String(seed)} is invalid: expected a safe integer`,
    );
  }
  const M = options.maxPhyAddr ?? defaultMaxPhyAddr(format);
  if (!Number.isInteger(M) || M < 32 || M > 52) {
    throw new RangeError(
      `maxPhyAddr ${String(M)} is invalid: expected an integer in [32, 52]`,
    );
  }
  const hasXd = format.bits.noExec >= 0;
  const buildMode = pagingMode(format, { maxPhyAddr: M, nxe: hasXd, wp: true });
  const supported = supportedPageSizes(buildMode);
  let sizes: number[];
  if (options.pageSizes === undefined) {
    sizes = supported.slice(0, 2).map(([x]) => x);
  } else {
    if (!Array.isArray(options.pageSizes) || options.pageSizes.length === 0) {
      throw new RangeError(
        `pageSizes ${
          String(options.pageSizes)
        } is invalid: expected a non-empty list of sizes in bytes`,
      );
    }
    for (const x of options.pageSizes) {
      if (!supported.some(([y]) => y === x)) {
        throw new RangeError(
          `page size ${
            String(x)
          } is not supported by ${format.name}: expected some of ${
            supported.map(([y]) => `${y} (${sizeName(y)})`).join(", ")
          }`,
        );
      }
    }
    sizes = [...new Set(options.pageSizes)].sort((a, b) => a - b);
  }
  const leafLevels = supported.filter(([x]) => sizes.includes(x)).map(([, l]) =>
    l
  );
  const possible = supportedScenarios(format, leafLevels);
  let scenarios: FaultScenario[];
  if (options.scenarios === undefined) scenarios = possible;
  else {
    if (!Array.isArray(options.scenarios) || options.scenarios.length === 0) {
      throw new RangeError(
        `scenarios ${
          String(options.scenarios)
        } is invalid: expected a non-empty list of ${
          FAULT_SCENARIOS.join(", ")
        }`,
      );
    }
    for (const sc of options.scenarios) {
      if (!FAULT_SCENARIOS.includes(sc)) {
        throw new RangeError(
          `scenario ${JSON.stringify(sc)} is unknown: expected one of ${
            FAULT_SCENARIOS.join(", ")
          }`,
        );
      }
      if (!possible.includes(sc)) {
        throw new RangeError(
          `scenario "${sc}" is impossible with ${format.name}${
            sc === "reserved-bit" ? " without 4 MiB pages" : ""
          }: it supports ${possible.join(", ")}`,
        );
      }
    }
    scenarios = [...new Set(options.scenarios)];
  }
  const questions = intOption(
    options.questions,
    scenarios.length,
    1,
    MAX_QUESTIONS,
    "questions",
  );
  const decoys = intOption(options.decoys, 1, 0, 8, "decoys");
  const rng = new Random(seed);

  const memSize = format.kind === "x86-32" ? 2 ** 32 : 2 ** M;
  const s: Setup = {
    format,
    mode: buildMode,
    x86: true,
    memSize,
    tableBelow: Math.min(memSize, 2 ** 32),
    full: false,
    pageBytes: 4096,
  };

  // 1. Plans.
  let order: FaultScenario[] = [];
  while (order.length < questions) order.push(...rng.shuffle(scenarios));
  order = order.slice(0, questions);
  const plans = order.map((sc) => plan(rng, s, sc, leafLevels, M));

  // 2. Addresses: each question's entries from its culprit (or leaf) down
  // are its own, so no modification disturbs another question.
  const n = format.levels.length;
  const rootBits = levelSpec(format, n).bits;
  const rootCount = 2 ** rootBits;
  const userLimit = format.canonical === "sign"
    ? rootCount / 2
    : format.kind === "pae"
    ? 3
    : 768;
  const rootPools = {
    user: rng.shuffle(Array.from({ length: userLimit }, (_, i) => i)).slice(
      0,
      Math.min(userLimit, format.kind === "pae" ? 3 : 2),
    ),
    kernel: rng.shuffle(
      Array.from({ length: rootCount - userLimit }, (_, i) => userLimit + i),
    ).slice(0, 2),
    userRange: [0, userLimit] as [number, number],
    kernelRange: [userLimit, rootCount] as [number, number],
  };
  const pools = new Map<number, number[]>();
  for (let l = n - 1; l >= 1; l--) {
    const count = 2 ** levelSpec(format, l).bits;
    pools.set(l, Array.from({ length: 3 }, () => rng.int(count)));
  }
  const placed: Plan[] = [];
  for (let i = 0; i < plans.length; i++) {
    let p = plans[i];
    let ok = place(rng, s, p, placed, pools, rootPools);
    for (let retry = 0; !ok && retry < 20; retry++) {
      p = plan(rng, s, p.scenario, leafLevels, M);
      ok = place(rng, s, p, placed, pools, rootPools);
    }
    if (!ok) {
      throw new RangeError(
        `cannot give question ${
          i + 1
        } (${p.scenario}) entries of its own in ${format.name}: ask fewer questions`,
      );
    }
    plans[i] = p;
    placed.push(p);
  }

  // 3. Build.
  const memory = new PhysicalMemory({ size: memSize, name: "exercise memory" });
  const pool = new FramePool(rng, memSize);
  const alloc = new PoolAllocator(memory, pool, 4096, s.tableBelow);
  let root: number | undefined;
  if (format.kind === "pae") root = alloc.alloc() + 32 * rng.int(128);
  const pt = new PageTable(memory, { mode: buildMode, allocator: alloc, root });
  for (const p of plans) {
    const size = 2 ** levelSpec(format, p.leaf).shift;
    const frame = pool.take(size, format.kind === "x86-32" ? 2 ** 32 : memSize);
    const page = toLinear(
      format,
      p.va!.toBigInt() & ~BigInt(size - 1),
    );
    pt.map(page, frame, { size, ...p.leaf_ });
  }
  for (const p of plans) {
    if (p.modify === undefined) continue;
    const ea = entryAddressFor(pt, p.va!, p.culprit)!;
    const w = readEntry(memory, format, ea);
    p.modify(w);
    const shift = BigInt(levelSpec(format, p.culprit).shift);
    const at = toLinear(format, (p.va!.toBigInt() >> shift) << shift);
    pt.writeEntry(p.culprit, ea, w[0] >>> 0, w[1] >>> 0, at);
  }
  const built: Built = {
    memory,
    pt,
    alloc,
    pool,
    dataFrames: [],
    garbage: new Map(),
  };
  dressUp(s, rng, built);
  addDecoys(s, rng, built, decoys);

  // 4. Control bits: the plan's, the rest at random as long as the outcome
  // stays the one intended (checked by walking).
  const qs: ExerciseQuestion[] = [];
  plans.forEach((p, i) => {
    const make = (noise: boolean): ExerciseQuestion => {
      const c: Required<Omit<Cpu, "ac" | "pkru">> & { pkru: number } = {
        wp: p.cpu.wp ?? (noise ? rng.chance(0.8) : true),
        nxe: hasXd ? p.cpu.nxe ?? true : false,
        smep: p.cpu.smep ?? (noise ? rng.chance(0.4) : false),
        smap: p.cpu.smap ?? (noise ? rng.chance(0.4) : false),
        pke: format.bits.pkey >= 0
          ? p.cpu.pke ?? (noise ? rng.chance(0.3) : false)
          : false,
        pkru: p.cpu.pkru ?? 0,
      };
      if (c.pke && p.cpu.pkru === undefined && noise) {
        c.pkru = (rng.nextU32() & 0xfffffffc) >>> 0;
      }
      const ac = p.access.ac ||
        (p.cpu.ac === undefined && noise && !p.access.user && rng.chance(0.3));
      const access: QuestionAccess = { ...p.access, ac };
      const mode = pagingMode(format, {
        maxPhyAddr: M,
        wp: c.wp,
        nxe: c.nxe,
        smep: c.smep,
        smap: c.smap,
        pke: c.pke,
      });
      const who = access.implicit
        ? "implicit supervisor"
        : access.user
        ? "user"
        : "supervisor";
      return {
        number: i + 1,
        va: p.va!,
        access,
        mode,
        pkru: c.pkru,
        text: `VA ${formatVa(format, p.va!)} (${who} ${access.kind})`,
        cpu: cpuWords(format, mode, c.pkru, ac),
        scenario: p.note,
      };
    };
    let q: ExerciseQuestion | undefined;
    for (let k = 0; k < 10 && q === undefined; k++) {
      const c = make(true);
      if (matches(p.expect, c, memory, pt.root)) q = c;
    }
    if (q === undefined) {
      q = make(false);
      if (!matches(p.expect, q, memory, pt.root)) {
        throw new Error(
          `internal error: question ${
            i + 1
          } (${p.scenario}: ${p.note}) does not give the intended outcome`,
        );
      }
    }
    qs.push(q);
  });

  const sheet = makeSheet(s, built, qs, M, sizes, seed, options);
  return new Exercise({
    kind: "fault",
    seed,
    format,
    mode: buildMode,
    memory,
    root: pt.root,
    questions: qs,
    sheet,
    pages: [...alloc.frames].sort((a, b) => a - b),
    askValue: false,
  });
}

function makeSheet(
  s: Setup,
  b: Built,
  qs: ExerciseQuestion[],
  M: number,
  sizes: number[],
  seed: number,
  options: FaultExerciseOptions,
): ExerciseSheet {
  const f = s.format;
  const root = b.pt.root;
  const params: SheetParameter[] = [
    { name: "seed", value: String(seed) },
    { name: "format", value: f.name },
    { name: "virtual address", value: addressLayout(f) },
    {
      name: "page size",
      value: sizes.length === 1
        ? sizeName(sizes[0])
        : `${sizeName(sizes[0])}; also ${
          sizes.slice(1).map((x) => sizeName(x)).join(", ")
        } pages (PS = 1)`,
    },
    {
      name: "physical memory",
      value: `${memoryWords(f, s.memSize)}${
        f.kind === "x86-32" ? "" : `, MAXPHYADDR ${M}`
      }`,
    },
    {
      name: f.kind === "pae" ? "CR3 (PDPT base)" : "CR3 (root table)",
      value: `0x${root.toString(16)}`,
    },
    { name: "questions", value: String(qs.length) },
  ];
  const dump: DumpPage[] = [...b.alloc.frames].sort((x, y) => x - y).map((a) =>
    dumpPage(b.memory, f, a, `page 0x${a.toString(16)}`)
  );
  const entryFormat = entryFormatLines(s.mode);
  if (f.bits.noExec >= 0) {
    entryFormat.push("with EFER.NXE = 0, bit 63 is reserved in every entry");
  }
  if (f.bits.pkey >= 0) {
    entryFormat.push(
      "PKRU: bit 2k is AD (access-disable) and bit 2k+1 is WD (write-disable) for protection key k; keys apply to data accesses to user pages (U/S = 1 at every level) when CR4.PKE = 1",
    );
  }
  return {
    title: `Fault exercise: ${f.name}, seed ${seed}`,
    intro: [
      "Each question is one access with its own control-register settings (listed under it). Walk the tables from CR3, as the CPU would, with no TLB.",
      "Name the entry that causes the fault (the entry whose bits deny the access; for SMEP, SMAP and protection keys, the leaf) and the #PF error code. A PAE PDPTE with a reserved bit gives #GP. If the access succeeds, give the physical address.",
    ],
    parameters: params,
    entryFormat,
    dumpNotes: [
      "the pages that hold page tables, and a few that look like tables but are not reachable from CR3",
      "each line is one entry: [index] +byte offset, then the entry's value (a little-endian number); entries not listed are zero",
    ],
    dump,
    ask:
      "Questions: which entry faults, and with which #PF error code? (or #GP, or the physical address)",
    questions: qs.map((q) => ({ number: q.number, text: q.text, cpu: q.cpu })),
    footer: [
      `Reproduce: ${reproduceCall("faultExercise", { ...options, seed })}`,
      "Check: exercise.check([...answers]) · one worked walk: exercise.reveal(n) · all answers: exercise.answers()",
    ],
  };
}
