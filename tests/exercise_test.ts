/**
 * Tests for lib/exercise: generated answers against an independent
 * reference walker written here from the SDM (not the model's walker), the
 * checker's input forms and explanations, reveal without side effects,
 * determinism, every format, and clear errors for bad input.
 */

import assert from "node:assert/strict";
import {
  OSTEP_15BIT,
  PAE,
  type PagingFormat,
  radixFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "../lib/paging/format.ts";
import { walk } from "../lib/paging/record.ts";
import {
  type Exercise,
  type ExerciseQuestion,
  FAULT_SCENARIOS,
  faultExercise,
  type FaultScenario,
  parseAnswer,
  translationExercise,
} from "../lib/exercise/mod.ts";

const X86: [string, PagingFormat][] = [
  ["X86_32", X86_32],
  ["PAE", PAE],
  ["X86_64_4LEVEL", X86_64_4LEVEL],
  ["X86_64_5LEVEL", X86_64_5LEVEL],
];
const RADIX3 = radixFormat({
  name: "radix 3-level, 256-byte pages, 2-byte entries",
  pageShift: 8,
  levelBits: [4, 4, 4],
  entryBytes: 2,
});
const RADIX_RIGHTS = radixFormat({
  name: "radix with rights",
  pageShift: 6,
  levelBits: [3, 3],
  entryBytes: 2,
  validBit: 15,
  writableBit: 14,
  userBit: 13,
  noExecBit: 12,
  frameWidth: 10,
});
const ALL: [string, PagingFormat][] = [
  ["OSTEP_15BIT", OSTEP_15BIT],
  ...X86,
  ["radix3", RADIX3],
  ["radixRights", RADIX_RIGHTS],
];

// ---------------------------------------------------------------------------
// An independent reference walker (Intel SDM Vol. 3 §4.3–§4.7), bigint-based
// and deliberately simple: no scratch, no precomputed masks.

type Outcome =
  | { kind: "ok"; pa: number; pageSize: number }
  | { kind: "gp" }
  | { kind: "page-fault"; level: number; errorCode: number; reason: string };

function entryAt(ex: Exercise, ea: number): bigint {
  let v = 0n;
  for (let b = ex.format.entryBytes - 1; b >= 0; b--) {
    v = (v << 8n) | BigInt(ex.memory.read8(ea + b));
  }
  return v;
}

function bit(v: bigint, b: number): boolean {
  return b >= 0 && ((v >> BigInt(b)) & 1n) === 1n;
}

function bitsMask(from: number, to: number): bigint {
  let m = 0n;
  for (let b = from; b <= to; b++) m |= 1n << BigInt(b);
  return m;
}

function reference(ex: Exercise, q: ExerciseQuestion): Outcome {
  const f = ex.format;
  const m = q.mode;
  const x86 = f.kind !== "radix";
  const va = q.va.toBigInt();
  const user = q.access.user && !q.access.implicit;
  const write = q.access.kind === "write";
  const fetch = q.access.kind === "fetch";
  const reportsFetch = m.smep ||
    (m.nxe && (f.kind === "pae" || f.kind === "x86-64")) ||
    (!x86 && f.bits.noExec >= 0);
  const ec = (p: boolean, extra = 0) =>
    (p ? 1 : 0) | (write ? 2 : 0) | (user ? 4 : 0) |
    (fetch && reportsFetch ? 16 : 0) | extra;
  if (f.canonical === "sign") {
    const top = va >> BigInt(f.vaBits - 1);
    if (top !== 0n && top !== (1n << BigInt(65 - f.vaBits)) - 1n) {
      return { kind: "gp" };
    }
  }
  const M = f.kind === "x86-32" ? 32 : m.maxPhyAddr;
  let base = BigInt(ex.root);
  let W = true, U = true, X = true;
  const n = f.levels.length;
  for (let level = n; level >= 1; level--) {
    const spec = f.levels[n - level];
    const idx = (va >> BigInt(spec.shift)) & ((1n << BigInt(spec.bits)) - 1n);
    const e = entryAt(ex, Number(base + idx * BigInt(f.entryBytes)));
    if (!bit(e, f.bits.present)) {
      return {
        kind: "page-fault",
        level,
        errorCode: ec(false),
        reason: "not-present",
      };
    }
    const ps = x86 && level > 1 && bit(e, 7);
    const canLeaf = spec.canMapPage &&
      (f.kind !== "x86-32" || m.pse) &&
      !(f.kind === "x86-64" && level === 3 && !m.gbPages);
    // Reserved bits.
    let rsvd = 0n;
    if (f.kind === "x86-64" || f.kind === "pae") {
      rsvd |= bitsMask(M, f.kind === "pae" ? 62 : 51);
      if (!m.nxe) rsvd |= 1n << 63n;
      if (f.kind === "pae" && level === 3) {
        rsvd |= bitsMask(1, 2) | bitsMask(5, 8) | bitsMask(M, 63);
      }
      if (ps && !canLeaf) rsvd |= 1n << 7n;
      if (ps && canLeaf) rsvd |= bitsMask(13, spec.shift - 1);
    }
    if (f.kind === "x86-32" && ps && canLeaf) {
      rsvd |= 1n << 21n;
      const m32 = Math.min(M, 40);
      if (m32 < 40) rsvd |= bitsMask(13 + (m32 - 32), 20);
    }
    if ((e & rsvd) !== 0n) {
      if (f.kind === "pae" && level === 3) return { kind: "gp" };
      return {
        kind: "page-fault",
        level,
        errorCode: ec(true, 8),
        reason: "reserved-bit",
      };
    }
    if (!(f.kind === "pae" && level === 3)) {
      if (f.bits.writable >= 0 && !bit(e, f.bits.writable)) W = false;
      if (f.bits.user >= 0 && !bit(e, f.bits.user)) U = false;
      if (f.bits.noExec >= 0 && m.nxe && bit(e, f.bits.noExec)) X = false;
    }
    const leaf = level === 1 || (ps && canLeaf);
    let addr: bigint;
    if (!x86) {
      addr =
        ((e >> BigInt(f.frameLow)) & ((1n << BigInt(f.frameWidth)) - 1n)) <<
        BigInt(f.pageShift);
    } else if (f.kind === "x86-32" && leaf && level === 2) {
      addr = (e & 0xffc00000n) | (((e >> 13n) & 0xffn) << 32n);
    } else {
      addr = e & bitsMask(leaf ? spec.shift : 12, M - 1);
    }
    if (!leaf) {
      base = addr;
      continue;
    }
    const off = va & ((1n << BigInt(spec.shift)) - 1n);
    // Rights (SDM §4.6).
    let reason = "";
    if (user) {
      if (!U) reason = "user-supervisor";
      else if (write && !W) reason = "write-protect";
      else if (fetch && !X) reason = "no-execute";
    } else if (fetch) {
      if (U && m.smep) reason = "smep";
      else if (!X) reason = "no-execute";
    } else if (U && m.smap && (q.access.implicit || !q.access.ac)) {
      reason = "smap";
    } else if (write && m.wp && !W) reason = "write-protect";
    let pk = 0;
    if (m.pke && U && !fetch) {
      const key = Number((e >> 59n) & 15n);
      const ad = (q.pkru >>> (2 * key)) & 1;
      const wd = (q.pkru >>> (2 * key + 1)) & 1;
      if (ad || (wd && write && (user || m.wp))) {
        pk = 32;
        if (reason === "") reason = "pkey";
      }
    }
    if (reason !== "") {
      return {
        kind: "page-fault",
        level,
        errorCode: ec(true, pk),
        reason,
      };
    }
    return { kind: "ok", pa: Number(addr + off), pageSize: 2 ** spec.shift };
  }
  throw new Error("unreachable");
}

type Bundle = Record<string, string>;

function display(o: unknown): Bundle {
  const f = (o as Record<symbol, () => Bundle>)[Symbol.for("Jupyter.display")];
  return f.call(o);
}

function inspect(o: unknown): string {
  const f =
    (o as Record<symbol, () => string>)[Symbol.for("Deno.customInspect")];
  return f.call(o);
}

function memoryHash(ex: Exercise): string {
  // FNV-1a over every page the exercise built (tables, decoys, dumped data).
  let h = 0x811c9dc5;
  const page = 2 ** ex.format.pageShift;
  for (const p of ex.pages) {
    for (const b of ex.memory.readBytes(p, page)) {
      h ^= b;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return `${h.toString(16)}:${ex.memory.chunksTouched}`;
}

function agree(ex: Exercise, label: string): void {
  for (const q of ex.questions) {
    const ref = reference(ex, q);
    const exp = ex.expected(q.number);
    const w = ex.reveal(q.number);
    const where = `${label} seed ${ex.seed} question ${q.number} ${q.text}`;
    assert.equal(exp.kind, ref.kind, where);
    assert.equal(w.outcome.kind, ref.kind, where);
    if (ref.kind === "ok") {
      assert.equal(exp.pa, ref.pa, where);
      assert.equal(exp.pageSize, ref.pageSize, where);
      if (ex.askValue) assert.equal(exp.value, ex.memory.read8(ref.pa), where);
    } else if (ref.kind === "page-fault") {
      assert.equal(exp.errorCode, ref.errorCode, where);
      const o = w.outcome;
      assert.ok(o.kind === "page-fault");
      assert.equal(o.reason, ref.reason, where);
      assert.equal(o.level, ref.level, where);
      assert.ok(exp.levels!.includes(ref.level), where);
      assert.ok(exp.levels!.includes(exp.level!), where);
    }
  }
}

// ---------------------------------------------------------------------------

Deno.test("translation answers agree with an independent walk, every format", () => {
  const seen = new Map<string, Set<string>>();
  for (const [name, format] of ALL) {
    const kinds = new Set<string>();
    for (let seed = 0; seed < 25; seed++) {
      const ex = translationExercise({ format, seed });
      agree(ex, name);
      for (const q of ex.questions) {
        const r = reference(ex, q);
        kinds.add(r.kind === "page-fault" ? r.reason : r.kind);
        if (r.kind === "ok" && r.pageSize > 2 ** format.pageShift) {
          kinds.add("large-page");
        }
      }
    }
    seen.set(name, kinds);
  }
  // The mix that makes the exercise worth doing.
  for (const [name] of ALL) {
    const k = seen.get(name)!;
    assert.ok(k.has("ok") && k.has("not-present"), `${name}: ${[...k]}`);
  }
  for (const [name] of X86) {
    const k = seen.get(name)!;
    assert.ok(k.has("large-page"), `${name} never asks about a large page`);
    assert.ok(
      k.has("user-supervisor") && k.has("write-protect"),
      `${name}: ${[...k]}`,
    );
  }
  for (const name of ["PAE", "X86_64_4LEVEL", "X86_64_5LEVEL"]) {
    assert.ok(seen.get(name)!.has("no-execute"), name);
  }
  for (const name of ["X86_64_4LEVEL", "X86_64_5LEVEL"]) {
    assert.ok(seen.get(name)!.has("gp"), `${name}: no non-canonical question`);
  }
});

Deno.test("translation: options (page sizes, access kinds, mode bits) take effect", () => {
  const ex = translationExercise({
    format: X86_64_4LEVEL,
    seed: 3,
    questions: 20,
    mappedFraction: 1,
    pageSizes: [2 ** 30],
    accessKinds: ["write"],
    userFraction: 1,
    mode: { smap: true, wp: false },
  });
  agree(ex, "1 GiB pages");
  for (const q of ex.questions) {
    assert.equal(q.access.kind, "write");
    assert.equal(q.access.user, true);
    assert.equal(q.mode.smap, true);
    const r = reference(ex, q);
    assert.ok(r.kind !== "page-fault" || r.reason !== "not-present");
    if (r.kind === "ok") assert.equal(r.pageSize, 2 ** 30);
  }
  assert.match(ex.toString(), /CR0\.WP=0 .*CR4\.SMAP=1/);
  const none = translationExercise({ seed: 2, mappedFraction: 0 });
  for (const q of none.questions) {
    assert.equal(none.expected(q.number).kind, "page-fault");
  }
  // OSTEP: 64 pages mapped by default, as the homework's -a 64.
  const ostep = translationExercise({ seed: 5 });
  let leaves = 0;
  for (const t of ostep.pages) void t;
  for (const _ of walkAll(ostep)) leaves++;
  assert.equal(leaves, 64);
});

function* walkAll(ex: Exercise): Generator<number> {
  // count valid PTEs reachable from the PDBR (OSTEP geometry)
  const f = ex.format;
  for (let i = 0; i < 32; i++) {
    const pde = ex.memory.read8(ex.root + i);
    if (!(pde & 0x80)) continue;
    const pt = (pde & 0x7f) * 32;
    for (let j = 0; j < 32; j++) {
      if (ex.memory.read8(pt + j) & 0x80) yield j;
    }
  }
  void f;
}

Deno.test("fault answers agree with an independent walk; every scenario gives its rule", () => {
  const allowed: Record<FaultScenario, string[]> = {
    "not-present": ["not-present"],
    "reserved-bit": ["reserved-bit", "gp"],
    "user-supervisor": ["user-supervisor"],
    "write-protect": ["write-protect", "ok"],
    "no-execute": ["no-execute", "reserved-bit"],
    "smep": ["smep", "ok"],
    "smap": ["smap", "ok"],
    "pkey": ["pkey", "ok"],
  };
  for (const [name, format] of X86) {
    for (let seed = 0; seed < 20; seed++) {
      agree(faultExercise({ format, seed }), name);
    }
    for (const sc of FAULT_SCENARIOS) {
      if (sc === "pkey" && format.bits.pkey < 0) continue;
      if (sc === "no-execute" && format.bits.noExec < 0) continue;
      const outcomes = new Set<string>();
      for (let seed = 0; seed < 6; seed++) {
        const ex = faultExercise({
          format,
          seed,
          scenarios: [sc],
          questions: 5,
          pageSizes: format === X86_64_4LEVEL
            ? [4096, 2 ** 21, 2 ** 30]
            : undefined,
        });
        agree(ex, `${name} ${sc}`);
        for (const q of ex.questions) {
          const r = reference(ex, q);
          const k = r.kind === "page-fault" ? r.reason : r.kind;
          assert.ok(
            allowed[sc].includes(k),
            `${name} ${sc} seed ${seed} q${q.number}: got ${k} (${q.scenario})`,
          );
          outcomes.add(k);
        }
      }
      if (sc !== "reserved-bit" || format.kind === "pae") {
        // both the rule and its trap (or variant) show up
        assert.ok(
          outcomes.size === allowed[sc].length ||
            sc === "not-present" || sc === "user-supervisor",
          `${name} ${sc}: only ${[...outcomes]}`,
        );
      }
    }
  }
});

Deno.test("fault: rights faults accept the culprit entry and the leaf", () => {
  let checked = 0;
  for (let seed = 0; seed < 15; seed++) {
    const ex = faultExercise({
      seed,
      scenarios: ["user-supervisor", "write-protect", "no-execute"],
      questions: 6,
    });
    for (const q of ex.questions) {
      const e = ex.expected(q.number);
      const o = ex.reveal(q.number).outcome;
      if (e.kind !== "page-fault" || o.kind !== "page-fault") continue;
      if (o.reason === "reserved-bit") continue;
      for (const level of e.levels!) {
        const v = ex.check({
          [q.number]: { fault: "page-fault", level, errorCode: e.errorCode },
        }).verdicts[q.number - 1];
        assert.equal(v.status, "correct", `${q.scenario} level ${level}`);
      }
      if (e.level !== o.level) checked++;
    }
  }
  assert.ok(checked > 3, "no upper-level culprit was generated");
});

Deno.test("checker accepts every input form of a right answer", () => {
  for (const [name, format] of ALL) {
    for (let seed = 0; seed < 4; seed++) {
      const ex = translationExercise({ format, seed, questions: 8 });
      const forms: unknown[][] = ex.questions.map((q) => {
        const e = ex.expected(q.number);
        const x86 = format.kind !== "radix";
        if (e.kind === "ok") {
          const pa = e.pa!;
          const list: unknown[] = [
            pa,
            BigInt(pa),
            `0x${pa.toString(16)}`,
            `0X${pa.toString(16).toUpperCase()}`,
            String(pa),
            `pa 0x${pa.toString(16)}`,
            `-> 0x${pa.toString(16)}`,
            { pa },
            { pa: `0x${pa.toString(16)}` },
          ];
          if (e.value !== undefined) {
            list.push(`0x${pa.toString(16)} value 0x${e.value.toString(16)}`);
            list.push({ pa, value: e.value });
          }
          return list;
        }
        if (e.kind === "gp") {
          return ["#GP", "gp", "#GP(0)", { fault: "gp" }, { fault: "#GP" }];
        }
        const code = e.errorCode!;
        const entry = name === "OSTEP_15BIT" && e.level === 2
          ? "PDE"
          : format.levels[format.levels.length - e.level!].entry;
        const flags = ["P", "W", "U", "RSVD", "I/D", "PK"].filter((_, i) =>
          code & (1 << i)
        );
        const list: unknown[] = [
          e.answer,
          `#PF 0x${code.toString(16)} at ${entry}`,
          `#PF(0x${code.toString(16)}) at level ${e.level}`,
          `page fault, error code 0b${code.toString(2)}, L${e.level}`,
          { fault: "page-fault", level: e.level, errorCode: code },
          {
            fault: "#PF",
            level: entry,
            errorCode: `0x${code.toString(16)}`,
          },
          { fault: true, level: `level ${e.level}`, errorCode: flags },
        ];
        if (flags.length > 0) {
          list.push(`#PF ${flags.join("|")} at ${entry.toLowerCase()}`);
          list.push({
            fault: "pf",
            level: e.level,
            errorCode: flags.join("+"),
          });
        }
        if (!x86) {
          list.push(`fault at ${entry}`, `${entry} not valid`);
          if (name === "OSTEP_15BIT") {
            list.push(
              e.level === 2
                ? "Fault (page directory entry not valid)"
                : "Fault (PTE not valid)",
            );
          }
        }
        return list;
      });
      const rounds = Math.max(...forms.map((f) => f.length));
      for (let r = 0; r < rounds; r++) {
        const answers = forms.map((f) => f[r % f.length]);
        const res = ex.check(answers as never);
        for (const v of res.verdicts) {
          assert.equal(
            v.status,
            "correct",
            `${name} seed ${seed} q${v.question}: ${
              JSON.stringify(answers[v.question - 1], (_k, x) =>
                typeof x === "bigint" ? `${x}n` : x)
            } → ${v.message}`,
          );
        }
      }
      // an object keyed by question number, partial
      const part = ex.check({ 2: ex.answers().strings[1] });
      assert.equal(part.correct, 1);
      assert.equal(part.unanswered, ex.questions.length - 1);
    }
  }
});

Deno.test("checker explains wrong answers: offset, frame, page size, addresses", () => {
  // Find ok questions in x86-64 exercises, one on a large page.
  let large = false;
  for (let seed = 0; seed < 30; seed++) {
    const ex = translationExercise({
      format: X86_64_4LEVEL,
      seed,
      questions: 10,
      mappedFraction: 1,
    });
    for (const q of ex.questions) {
      const e = ex.expected(q.number);
      if (e.kind !== "ok") continue;
      const pa = e.pa!;
      const size = e.pageSize!;
      const v = (a: unknown) =>
        ex.check({ [q.number]: a as never }).verdicts[q.number - 1];
      const off = pa % size;
      const wrongOff = pa - off + ((off + 8) % size);
      let r = v(wrongOff);
      assert.equal(r.status, "wrong");
      assert.deepEqual(r.mistakes, ["wrong-offset"]);
      assert.match(r.message, /frame is right, but the offset is wrong/);
      r = v(pa + size * 4);
      assert.deepEqual(r.mistakes, ["wrong-frame"]);
      assert.match(r.message, /offset is right, but the page frame is wrong/);
      r = v(pa + size * 4 + ((off + 8) % size) - off);
      assert.deepEqual(r.mistakes, ["wrong-frame", "wrong-offset"]);
      r = v(Math.floor(pa / 4096));
      assert.deepEqual(r.mistakes, ["gave-frame-number"]);
      const w = ex.reveal(q.number);
      r = v(w.steps[w.steps.length - 1].entryAddress);
      assert.deepEqual(r.mistakes, ["gave-entry-address"]);
      assert.match(r.message, /address of the (PTE|PDE|PDPTE)/);
      r = v("#PF 0x0 at PTE");
      assert.equal(r.status, "wrong");
      assert.deepEqual(r.mistakes, ["spurious-fault"]);
      assert.match(r.message, /does not fault/);
      if (size > 4096) {
        large = true;
        r = v(pa - off + (pa % 4096));
        if (pa % 4096 !== off) {
          assert.deepEqual(r.mistakes, ["wrong-page-size"]);
          assert.match(r.message, /2 MiB page: the offset is the low 21 bits/);
        }
      }
    }
  }
  assert.ok(large);
});

Deno.test("checker explains wrong faults: level, error-code bits, missed and invented faults", () => {
  let rights = 0, notPresent = 0, gp = 0;
  for (let seed = 0; seed < 12; seed++) {
    const ex = faultExercise({ seed });
    for (const q of ex.questions) {
      const e = ex.expected(q.number);
      const o = ex.reveal(q.number).outcome;
      const v = (a: unknown) =>
        ex.check({ [q.number]: a as never }).verdicts[q.number - 1];
      if (e.kind === "gp") {
        gp++;
        assert.deepEqual(v("0x1000").mistakes, ["missed-fault"]);
        assert.deepEqual(v("#PF 0x1 at PDPTE").mistakes, ["wrong-fault-kind"]);
        continue;
      }
      if (e.kind !== "page-fault" || o.kind !== "page-fault") continue;
      const code = e.errorCode!;
      // flip each error-code bit: the explanation names that bit
      for (
        const [b, re] of [
          [1, /^.*P should be/],
          [2, /W\/R should be/],
          [4, /U\/S should be/],
          [8, /RSVD should be/],
          [16, /I\/D should be/],
          [32, /PK should be/],
        ] as [number, RegExp][]
      ) {
        const r = v({
          fault: "page-fault",
          level: e.level,
          errorCode: code ^ b,
        });
        assert.equal(r.status, "partial");
        assert.deepEqual(r.mistakes, ["wrong-error-code"]);
        assert.match(r.message, re);
      }
      // a level that is not the culprit
      const wrongLevel = [1, 2, 3, 4].find((l) => !e.levels!.includes(l))!;
      let r = v({ fault: "page-fault", level: wrongLevel, errorCode: code });
      assert.deepEqual(r.mistakes, ["wrong-level"]);
      assert.match(r.message, /never reaches|not the entry that stops/);
      r = v(`#PF 0x${code.toString(16)}`);
      assert.equal(r.status, "partial");
      assert.deepEqual(r.mistakes, ["missing-level"]);
      r = v("fault");
      assert.deepEqual(r.mistakes, ["missing-level", "missing-error-code"]);
      r = v("#GP");
      assert.deepEqual(r.mistakes, ["wrong-fault-kind"]);
      const w = ex.reveal(q.number);
      const last = w.steps[w.steps.length - 1];
      if (o.reason === "not-present") {
        notPresent++;
        assert.deepEqual(v(0x1234).mistakes, ["missed-fault"]);
      } else if (last.leaf && o.reason !== "reserved-bit") {
        rights++;
        const size = 2 ** X86_64_4LEVEL.levels[4 - last.level].shift;
        const wouldBe = last.flags.address +
          Number(q.va.toBigInt() % BigInt(size));
        r = v(wouldBe);
        assert.deepEqual(r.mistakes, ["ignored-rights"]);
        assert.match(
          r.message,
          /translation is right, but the access is not allowed/,
        );
      }
    }
  }
  assert.ok(rights > 5 && notPresent > 3, `${rights} ${notPresent} ${gp}`);
});

Deno.test("checker: OSTEP invalid entries, values, non-canonical addresses", () => {
  let followed = 0, values = 0;
  for (let seed = 0; seed < 10; seed++) {
    const ex = translationExercise({ seed });
    for (const q of ex.questions) {
      const e = ex.expected(q.number);
      const v = (a: unknown) =>
        ex.check({ [q.number]: a as never }).verdicts[q.number - 1];
      if (e.kind === "ok") {
        values++;
        const r = v({ pa: e.pa, value: (e.value! + 1) & 0xff });
        assert.equal(r.status, "partial");
        assert.deepEqual(r.mistakes, ["wrong-value"]);
        assert.match(r.message, /byte stored at/);
        assert.equal(v(`0x${e.pa!.toString(16)}`).status, "correct"); // value optional
        continue;
      }
      // Follow the invalid entry (0x7f → frame 127) as a careless student.
      const w = ex.reveal(q.number);
      const bad = w.steps[w.steps.length - 1];
      assert.equal(bad.entry, 0x7fn);
      let pa: number | undefined;
      if (bad.level === 1) pa = 127 * 32 + Number(q.va.toBigInt() & 31n);
      else {
        const pte = ex.memory.read8(
          127 * 32 + Number((q.va.toBigInt() >> 5n) & 31n),
        );
        pa = (pte & 0x7f) * 32 + Number(q.va.toBigInt() & 31n);
      }
      const r = v(pa);
      assert.deepEqual(r.mistakes, ["followed-invalid-entry"]);
      assert.match(r.message, /valid bit is clear/);
      followed++;
      // Radix formats need no error code.
      assert.equal(
        v(`fault at ${bad.level === 2 ? "PDE" : "PTE"}`).status,
        "correct",
      );
    }
  }
  assert.ok(followed > 10 && values > 10);
  // Non-canonical addresses give #GP.
  let gp = 0;
  for (let seed = 0; seed < 30 && gp < 2; seed++) {
    const ex = translationExercise({
      format: X86_64_4LEVEL,
      seed,
      questions: 10,
    });
    for (const q of ex.questions) {
      if (ex.expected(q.number).kind !== "gp") continue;
      gp++;
      const v = (a: unknown) =>
        ex.check({ [q.number]: a as never }).verdicts[q.number - 1];
      assert.equal(v("#GP").status, "correct");
      const r = v("#PF 0x0 at PML4E");
      assert.deepEqual(r.mistakes, ["wrong-fault-kind"]);
      assert.match(r.message, /not canonical/);
    }
  }
  assert.ok(gp > 0);
});

Deno.test("reveal, answers and check never modify the exercise's memory", () => {
  for (const [name, format] of ALL) {
    const exs = [translationExercise({ format, seed: 11 })];
    if (format.kind !== "radix") exs.push(faultExercise({ format, seed: 11 }));
    for (const ex of exs) {
      const before = memoryHash(ex);
      for (let i = 1; i <= ex.questions.length; i++) {
        const w = ex.reveal(i);
        assert.ok(w.steps.every((s) => !s.accessedSet && !s.dirtySet), name);
        display(w);
      }
      const key = ex.answers();
      display(key);
      display(ex.check(key.strings));
      display(ex);
      assert.equal(memoryHash(ex), before, `${name} ${ex.kind}`);
    }
  }
  // The hash does see A/D writes: a walk with setAD writes A bits.
  const ex = translationExercise({
    format: X86_32,
    seed: 11,
    mappedFraction: 1,
  });
  const before = memoryHash(ex);
  const q = ex.questions.find((x) => ex.expected(x.number).kind === "ok")!;
  const w = walk({ memory: ex.memory, mode: q.mode, root: ex.root }, q.va, {
    kind: "write",
    user: false,
  });
  if (w.steps.some((s) => s.accessedSet || s.dirtySet)) {
    assert.notEqual(memoryHash(ex), before);
  }
});

Deno.test("determinism: same seed, byte-identical sheets; different seeds differ", () => {
  for (const [name, format] of ALL) {
    const gens = [
      (seed: number) => translationExercise({ format, seed }),
      ...(format.kind !== "radix"
        ? [(seed: number) => faultExercise({ format, seed })]
        : []),
    ];
    for (const gen of gens) {
      const a = gen(42), b = gen(42);
      assert.equal(a.toString(), b.toString(), name);
      assert.deepEqual(
        display(a),
        display(b),
      );
      assert.equal(a.answers().toString(), b.answers().toString());
      assert.equal(memoryHash(a), memoryHash(b));
      const texts = new Set<string>();
      for (let s = 0; s < 6; s++) texts.add(gen(s).toString());
      assert.equal(texts.size, 6, `${name}: two seeds gave the same sheet`);
    }
  }
  // The seed is always stated, default 0.
  assert.match(translationExercise().toString(), /seed +0\n/);
  assert.match(faultExercise().toString(), /seed +0\n/);
  assert.match(
    translationExercise({ seed: 99 }).toString(),
    /Reproduce: translationExercise\(\{ seed: 99 \}\)/,
  );
});

Deno.test("sheets: OSTEP layout, bounded x86 dumps, displays", () => {
  const ostep = translationExercise({ seed: 0 });
  const text = ostep.toString();
  assert.match(text, /PDBR +page \d+ \(physical address 0x[0-9a-f]+\)/);
  assert.equal(text.match(/^page +\d+: /gm)!.length, 128);
  assert.match(text, /^page +\d+: (?:[0-9a-f]{2} ){31}[0-9a-f]{2}$/m);
  assert.match(text, /^ +1\. VA 0x[0-9a-f]{4}$/m);
  for (const [name, format] of ALL) {
    const exs = [translationExercise({ format, seed: 1 })];
    if (format.kind !== "radix") exs.push(faultExercise({ format, seed: 1 }));
    for (const ex of exs) {
      const d = display(ex);
      assert.deepEqual(Object.keys(d).sort(), ["text/html", "text/plain"]);
      assert.equal(inspect(ex), d["text/plain"]);
      assert.ok(
        d["text/plain"].length < 40_000,
        `${name}: ${d["text/plain"].length}`,
      );
      assert.ok(
        d["text/html"].length < 80_000,
        `${name}: ${d["text/html"].length}`,
      );
      const key = display(ex.answers());
      const chk = display(ex.check([]));
      for (
        const s of [
          ...Object.values(d),
          ...Object.values(key),
          ...Object.values(chk),
        ]
      ) {
        assert.ok(!s.includes("\x1b"), "ANSI escape in output");
      }
      assert.match(d["text/html"], /<table[\s\S]*<pre[\s\S]*<ol>/);
      assert.match(key["text/html"], /<svg/);
      assert.match(chk["text/plain"], /0 of \d+ correct/);
      assert.match(d["text/plain"], new RegExp(`seed +1\\n`));
      if (format.kind !== "radix" || !ex.askValue) {
        // sparse dumps list entries, never whole 4 KiB pages
        assert.ok(!/^page +\d+: /m.test(d["text/plain"]));
      }
    }
  }
  // Labels are user input: a format name is escaped in HTML.
  const evil = radixFormat({
    name: `<script>alert("x")</script> & co`,
    pageShift: 5,
    levelBits: [5, 5],
  });
  const ex = translationExercise({ format: evil, seed: 1 });
  const html = display(ex)["text/html"];
  assert.ok(!html.includes("<script>"));
  assert.match(
    html,
    /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt; &amp; co/,
  );
  const chk = display(ex.check(["<b>"].slice(0, 0)));
  assert.ok(!chk["text/html"].includes("<script>"));
});

Deno.test("fault sheets state each question's control registers", () => {
  const ex = faultExercise({ seed: 2 });
  for (const q of ex.questions) {
    assert.ok(q.cpu !== undefined);
    const names = q.cpu!.map((c) => c.name);
    assert.deepEqual(
      names.filter((n) => n !== "PKRU"),
      ["CR0.WP", "EFER.NXE", "CR4.SMEP", "CR4.SMAP", "CR4.PKE", "EFLAGS.AC"],
    );
    const get = (n: string) => q.cpu!.find((c) => c.name === n)?.value;
    assert.equal(get("CR0.WP"), q.mode.wp ? "1" : "0");
    assert.equal(get("CR4.SMAP"), q.mode.smap ? "1" : "0");
    assert.equal(get("EFLAGS.AC"), q.access.ac ? "1" : "0");
    if (q.mode.pke) {
      assert.equal(get("PKRU"), `0x${q.pkru.toString(16).padStart(8, "0")}`);
    }
  }
  const text = ex.toString();
  assert.match(text, /CR0\.WP=[01] {2}EFER\.NXE=[01]/);
  // 32-bit paging has no XD and no protection keys
  const ex32 = faultExercise({ format: X86_32, seed: 2 });
  assert.ok(
    !/EFER\.NXE|PKRU|CR4\.PKE/.test(ex32.toString().split("Questions")[1]),
  );
});

Deno.test("bad options give clear errors", () => {
  const cases: [() => unknown, RegExp][] = [
    [
      () => translationExercise({ seeds: 1 } as never),
      /unknown option "seeds"/,
    ],
    [() => translationExercise({ seed: 1.5 }), /seed 1\.5 is invalid/],
    [() => translationExercise({ questions: 0 }), /questions 0 is invalid/],
    [() => translationExercise({ questions: 51 }), /questions 51 is invalid/],
    [() => translationExercise({ mappedFraction: 2 }), /mappedFraction 2/],
    [() => translationExercise({ userFraction: -1 }), /userFraction -1/],
    [
      () => translationExercise({ format: PAE, pageSizes: [2 ** 30] }),
      /page size 1073741824 is not supported by PAE.*2 MiB/,
    ],
    [() => translationExercise({ pageSizes: [] }), /pageSizes/],
    [
      () =>
        translationExercise({ format: X86_32, accessKinds: ["exec" as never] }),
      /access kind "exec" is invalid/,
    ],
    [
      () => translationExercise({ mode: { smep: true } }),
      /mode options apply to x86 formats only/,
    ],
    [
      () =>
        translationExercise({
          format: X86_64_4LEVEL,
          mode: { maxPhyAddr: 60 },
        }),
      /MAXPHYADDR 60/,
    ],
    [
      () => translationExercise({ format: "PAE" as never }),
      /format PAE is invalid/,
    ],
    [
      () => translationExercise({ mappedPages: 200 }),
      /mappedPages 200 is invalid/,
    ],
    [
      () =>
        translationExercise({
          format: radixFormat({ pageShift: 5, levelBits: [7, 5] }),
        }),
      /level-2 table \(128 bytes\) does not fit/,
    ],
    [() => faultExercise({ format: OSTEP_15BIT }), /needs an x86 format/],
    [
      () => faultExercise({ format: PAE, scenarios: ["pkey"] }),
      /"pkey" is impossible with PAE/,
    ],
    [
      () => faultExercise({ scenarios: ["tlb" as never] }),
      /scenario "tlb" is unknown/,
    ],
    [
      () =>
        faultExercise({
          format: X86_32,
          pageSizes: [4096],
          scenarios: ["reserved-bit"],
        }),
      /without 4 MiB pages/,
    ],
    [() => faultExercise({ maxPhyAddr: 20 }), /maxPhyAddr 20 is invalid/],
    [() => faultExercise({ decoys: 99 }), /decoys 99 is invalid/],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
});

Deno.test("bad answers give errors naming the question and the value", () => {
  const ex = translationExercise({ format: X86_64_4LEVEL, seed: 1 });
  const n = ex.questions.length;
  const cases: [unknown, RegExp][] = [
    [["0x1", "1abc"], /question 2: answer "1abc" .*write 0x1abc/],
    [
      [undefined, undefined, "#PF 10 at PTE"],
      /question 3: .*"10", which is ambiguous/,
    ],
    [["fault at PML5E"], /question 1: .*PML5E.*x86-64 4-level does not have/],
    [["fault at level 7"], /question 1: .*level 7/],
    [[{ pa: 1, fault: "gp" }], /question 1: .*has the key "fault"/],
    [[{ fault: "segfault" }], /question 1: .*has fault "segfault"/],
    [[{ fault: "pf", errorCode: "Q|W" }], /question 1: .*errorCode "Q\|W"/],
    [[{ fault: "pf", errorCode: ["P", "X"] }], /question 1: .*flag "X"/],
    [
      [{ fault: "pf", level: "PQE" }],
      /question 1: .*"PQE", which is not an entry name/,
    ],
    [
      [{ foo: 1 }],
      /question 1: answer \{"foo":1\} is an object without pa or fault/,
    ],
    [[-5], /question 1: answer -5 has pa -5: expected a non-negative integer/],
    [[1.5], /question 1: answer 1\.5/],
    [[[1, 2]], /question 1: answer \[1,2\] has type array/],
    [["hello"], /question 1: answer "hello" is not understood/],
    [["#PF 0x6 #GP"], /question 1: .*both #GP and #PF/],
    [["0x1 0x2 0x3"], /question 1: .*more than two numbers/],
    [[`#PF 0x6 at PTE and PDE`], /question 1: .*two entries/],
    [[true], /question 1: answer true has type boolean/],
  ];
  for (const [answers, re] of cases) {
    assert.throws(() => ex.check(answers as never), re);
  }
  assert.throws(
    () => ex.check(new Array(n + 1).fill("0x0")),
    new RegExp(`has ${n + 1} entries but the exercise has ${n} questions`),
  );
  assert.throws(
    () => ex.check({ 0: "0x1" }),
    /key "0": questions are numbered 1\.\./,
  );
  assert.throws(() => ex.check("0x1" as never), /answers 0x1 is invalid/);
  assert.throws(
    () => ex.reveal(0),
    /question 0 does not exist: questions are numbered 1\.\.6/,
  );
  assert.throws(() => ex.reveal(7), /question 7 does not exist/);
  assert.throws(() => ex.reveal(1.5), /question 1\.5 does not exist/);
  // Unanswered is not an error.
  assert.equal(ex.check([null, "", "?", undefined]).unanswered, n);
  // parseAnswer on its own
  assert.deepEqual(parseAnswer("PDE not valid", OSTEP_15BIT, 1), {
    kind: "page-fault",
    level: 2,
    errorCode: undefined,
  });
});
