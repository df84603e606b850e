/**
 * Real memory traces (issue 7): the Lackey reader (every line kind,
 * chunk splits at every byte offset, gzip, 64-bit addresses, malformed
 * lines, bounded batches), the writer (round trip), trace replay on the
 * native and nested machines (counts checked against independent
 * computations), progress, the shipped trace (checked against a direct
 * count of its lines) and trace recording with valgrind.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type AccessBatch,
  accessBatch,
  formatLackey,
  lackeyBatches,
  lackeyBatchesWithLines,
  lackeyLine,
  PageSet,
  parseLackey,
  summarizeTrace,
} from "../lib/workload/trace.ts";
import {
  makeReplay,
  NativeReplay,
  NestedReplay,
  replayAccesses,
  type ReplayOptions,
  type ReplayProgress,
  replayTrace,
} from "../lib/workload/replay.ts";
import { progressReporter, progressText } from "../lib/workload/progress.ts";
import { recordTrace, valgrindVersion } from "../lib/workload/record.ts";

const SHIPPED = new URL("./data/ls-root.lackey.gz", import.meta.url);
const enc = new TextEncoder();

/** Plain arrays of a batch's first `count` accesses. */
function rows(b: AccessBatch): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < b.count; i++) {
    out.push([b.kind[i], b.hi[i], b.lo[i], b.size[i], b.line[i]]);
  }
  return out;
}

/** Collect all accesses of a streamed source (copying each batch). */
async function collect(
  source: Parameters<typeof lackeyBatches>[0],
  batchSize = 8192,
): Promise<number[][]> {
  const out: number[][] = [];
  for await (const b of lackeyBatches(source, { batchSize })) {
    out.push(...rows(b));
  }
  return out;
}

function streamOf(parts: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < parts.length) c.enqueue(parts[i++]);
      else c.close();
    },
  });
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

// ---- parser -------------------------------------------------------------------

Deno.test("lackey: every line kind, 64-bit addresses, spacing and CRLF", () => {
  const cases: [string, number, number, number, number][] = [
    ["I  0401ab70,3", 0, 0, 0x0401ab70, 3],
    [" L 1fff000778,8", 1, 0x1f, 0xff000778, 8],
    [" S 04a3f080,16", 2, 0, 0x04a3f080, 16],
    [" M 7ff0001234,4", 3, 0x7f, 0xf0001234, 4],
    [" L ffffffffffffffff,1", 1, 0xffffffff, 0xffffffff, 1],
    [" S FFFF800000001000,8", 2, 0xffff8000, 0x00001000, 8],
    [" L 0000000000000000000000001000,2", 1, 0, 0x1000, 2], // leading zeros
    ["I 0,255", 0, 0, 0, 255],
    ["\tM\t123456789,7  ", 3, 0x1, 0x23456789, 7],
    [" L 1000,4\r", 1, 0, 0x1000, 4],
  ];
  for (const [line, kind, hi, lo, size] of cases) {
    const b = parseLackey(line + "\n");
    assert.equal(b.count, 1, line);
    assert.deepEqual(rows(b)[0], [kind, hi, lo, size, 1], line);
    // without the final newline too
    assert.deepEqual(rows(parseLackey(line))[0], [kind, hi, lo, size, 1]);
  }
});

Deno.test("lackey: comments and empty lines are skipped but counted", async () => {
  const text = "==4242== Lackey, an example Valgrind tool\n" +
    "--4242-- WARNING: something\n\n   \nI  00001000,4\n==4242== \n";
  const b = parseLackey(text);
  assert.deepEqual(rows(b), [[0, 0, 0x1000, 4, 5]]);
  const gen = lackeyBatchesWithLines(enc.encode(text));
  let r = await gen.next();
  assert.equal(r.done, false);
  r = await gen.next();
  assert.deepEqual(r.value, { lines: 6, comments: 5 });
  const s = await summarizeTrace(enc.encode(text));
  assert.equal(s.lines, 6);
  assert.equal(s.commentLines, 5);
  assert.equal(s.accesses, 1);
});

Deno.test("lackey: malformed lines name the line number, the text and what was expected", () => {
  const good = "==1== header\nI  00001000,4\n L 00002000,8\n";
  const cases: [string, typeof SyntaxError | typeof RangeError, RegExp][] = [
    ["X 1000,4", SyntaxError, /not an access/],
    ["I1000,4", SyntaxError, /not an access/],
    ["I  1000", SyntaxError, /address,size/],
    ["I  ,4", SyntaxError, /address,size/],
    ["I  zz00,4", SyntaxError, /address,size/],
    ["I  1000;4", SyntaxError, /address,size/],
    ["I  1000,", SyntaxError, /bad size/],
    ["I  1000,abc", SyntaxError, /bad size/],
    [" L 1000,4 junk", SyntaxError, /bad size/],
    ["I  1000,0", RangeError, /size 0 .*1\.\.255/],
    ["I  1000,256", RangeError, /size 256 .*1\.\.255/],
    ["I  10000000000000000,4", RangeError, /64 bits/],
  ];
  for (const [bad, type, what] of cases) {
    const text = good + bad + "\nI  00003000,4\n";
    assert.throws(
      () => parseLackey(text),
      (e: unknown) => {
        assert.ok(e instanceof type, `${bad}: ${String(e)}`);
        const m = (e as Error).message;
        assert.match(m, /^line 4: /, bad);
        assert.ok(m.includes(JSON.stringify(bad)), `${bad}: ${m}`);
        assert.match(m, what, bad);
        return true;
      },
    );
  }
  // long offending text is truncated
  assert.throws(
    () => parseLackey("Q" + "x".repeat(500) + "\n"),
    (e: unknown) =>
      (e as Error).message.length < 400 &&
      /line 1: "Qxxx.*…/.test((e as Error).message),
  );
  assert.throws(() => parseLackey(42 as unknown as string), TypeError);
});

Deno.test("lackey: malformed line in a stream rejects with its line number", async () => {
  const text = "I  1000,4\n".repeat(10) + " L 12g4,8\n";
  await assert.rejects(
    collect(
      streamOf([
        enc.encode(text).subarray(0, 53),
        enc.encode(text).subarray(53),
      ]),
      3,
    ),
    /line 11: " L 12g4,8"/,
  );
});

const SAMPLE = "==77== Lackey\r\n==77== Command: x\n" +
  "I  0401ab70,3\n L 1fff000778,8\r\n S 04a3f080,16\n M ffffffffff600000,4\n\n" +
  "I  00000000000001,1\n L deadbeefcafe,255";

Deno.test("lackey: splitting the input at every byte offset gives the same accesses", async () => {
  const bytes = enc.encode(SAMPLE);
  const want = rows(parseLackey(SAMPLE));
  assert.equal(want.length, 6);
  for (let k = 0; k <= bytes.length; k++) {
    const parts = [bytes.subarray(0, k), bytes.subarray(k)];
    for (const bs of [1, 2, 8192]) {
      assert.deepEqual(await collect(streamOf(parts), bs), want, `split ${k}`);
    }
  }
  // three-way splits and one byte per chunk
  for (let k = 0; k < bytes.length; k += 3) {
    for (let j = k; j <= bytes.length; j += 5) {
      const parts = [
        bytes.subarray(0, k),
        bytes.subarray(k, j),
        bytes.subarray(j),
      ];
      assert.deepEqual(await collect(streamOf(parts), 4), want);
    }
  }
  const single = [...bytes].map((b) => new Uint8Array([b]));
  assert.deepEqual(await collect(streamOf(single), 5), want);
});

Deno.test("lackey: gzip by magic bytes (any split), by .gz name, and plain files", async () => {
  const bytes = enc.encode(SAMPLE);
  const gz = await gzip(bytes);
  const want = rows(parseLackey(SAMPLE));
  assert.deepEqual(await collect(gz), want);
  for (let k = 0; k <= gz.length; k++) {
    const parts = [gz.subarray(0, k), gz.subarray(k)];
    assert.deepEqual(await collect(streamOf(parts), 2), want, `gz split ${k}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "memvirt-trace-" });
  try {
    await Deno.writeFile(`${dir}/t.lackey.gz`, gz);
    await Deno.writeFile(`${dir}/t-gz-no-suffix`, gz);
    await Deno.writeFile(`${dir}/t.lackey`, bytes);
    for (const f of ["t.lackey.gz", "t-gz-no-suffix", "t.lackey"]) {
      assert.deepEqual(await collect(`${dir}/${f}`), want, f);
      assert.deepEqual(
        await collect(new URL(`file://${dir}/${f}`)),
        want,
        f,
      );
    }
    await assert.rejects(collect(`${dir}/missing.lackey`), /not found/);
    // a corrupt gzip member is an error, not silence
    await Deno.writeFile(`${dir}/bad.gz`, gz.subarray(0, gz.length - 12));
    await assert.rejects(collect(`${dir}/bad.gz`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lackey: batches are bounded and reused; abort stops the stream", async () => {
  const n = 10_007;
  const text = "I  00400000,4\n".repeat(n);
  for (const size of [1, 7, 4096, 20_000]) {
    let total = 0,
      first: AccessBatch | undefined,
      firstLo: Uint32Array | undefined;
    for await (
      const b of lackeyBatches(enc.encode(text), { batchSize: size })
    ) {
      assert.ok(b.count >= 1 && b.count <= size);
      first ??= b;
      firstLo ??= b.lo;
      assert.equal(b, first); // the same object every time
      assert.equal(b.lo, firstLo); // and the same buffers
      assert.equal(b.line[b.count - 1], total + b.count);
      total += b.count;
    }
    assert.equal(total, n);
  }
  await assert.rejects(
    collect(enc.encode(text), 0),
    /batchSize 0 is invalid/,
  );
  const ac = new AbortController();
  ac.abort(new Error("stop here"));
  const gen = lackeyBatches(streamOf([enc.encode(text)]), {
    signal: ac.signal,
  });
  await assert.rejects(gen.next(), /stop here/);
});

Deno.test("lackey: writer and reader round-trip (property, seeded)", async () => {
  const access = fc.record({
    kind: fc.integer({ min: 0, max: 3 }),
    hi: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff })),
    lo: fc.integer({ min: 0, max: 0xffffffff }),
    size: fc.integer({ min: 1, max: 255 }),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(access, { maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 6 }),
      async (accesses, cuts) => {
        const b = accessBatch(Math.max(1, accesses.length));
        accesses.forEach((a, i) => {
          b.kind[i] = a.kind;
          b.hi[i] = a.hi;
          b.lo[i] = a.lo;
          b.size[i] = a.size;
          b.line[i] = i + 1;
        });
        b.count = accesses.length;
        const text = formatLackey(b);
        assert.deepEqual(rows(parseLackey(text)), rows(b));
        // the same through the stream reader with arbitrary chunk cuts
        const bytes = enc.encode(text);
        const parts: Uint8Array[] = [];
        let at = 0;
        for (const c of cuts) {
          parts.push(bytes.subarray(at, Math.min(bytes.length, at + c)));
          at = Math.min(bytes.length, at + c);
        }
        parts.push(bytes.subarray(at));
        assert.deepEqual(await collect(streamOf(parts), 3), rows(b));
      },
    ),
    { seed: 7, numRuns: 150 },
  );
  assert.equal(lackeyLine(3, 0, 0x10, 4), " M 00000010,4\n");
  assert.throws(() => lackeyLine(1, 2 ** 32, 0, 4), /high half/);
  assert.throws(() => lackeyLine(1, 0, 0, 0), /size 0/);
});

Deno.test("PageSet agrees with a Set on random pages (growth included)", () => {
  const rnd = fc.sample(
    fc.tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 0xffffffff }),
    ),
    { seed: 3, numRuns: 20_000 },
  );
  for (const shift of [12, 21, 32, 40]) {
    const s = new PageSet(shift, 4);
    const ref = new Set<string>();
    for (const [hi, lo] of rnd) {
      const page = ((BigInt(hi) << 32n) | BigInt(lo)) >> BigInt(shift);
      const fresh = !ref.has(String(page));
      ref.add(String(page));
      assert.equal(s.add(hi, lo), fresh);
    }
    assert.equal(s.size, ref.size);
  }
  assert.throws(() => new PageSet(0), /page shift 0/);
});

// ---- the shipped trace --------------------------------------------------------------

/** Count the shipped trace's lines directly: decompress, split, regex. */
async function directCount() {
  const gz = await Deno.readFile(SHIPPED);
  const text = await new Response(
    new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip")),
  ).text();
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const c = { I: 0, L: 0, S: 0, M: 0, comments: 0, bytes: 0 };
  const pages = new Set<bigint>();
  const re = /^(?:I |\s[LSM]) ([0-9a-f]+),(\d+)$/;
  for (const l of lines) {
    if (l.startsWith("==")) {
      c.comments++;
      continue;
    }
    const m = re.exec(l);
    if (!m) throw new Error(`unexpected line ${l}`);
    c[l.trim()[0] as "I" | "L" | "S" | "M"]++;
    c.bytes += Number(m[2]);
    pages.add(BigInt("0x" + m[1]) >> 12n);
  }
  return { c, lines: lines.length, pages: pages.size, text };
}

Deno.test("shipped trace: summary equals a direct count of its lines", async () => {
  const { c, lines, pages } = await directCount();
  const s = await summarizeTrace(SHIPPED);
  assert.equal(s.lines, lines);
  assert.equal(s.commentLines, c.comments);
  assert.equal(s.fetches, c.I);
  assert.equal(s.loads, c.L);
  assert.equal(s.stores, c.S);
  assert.equal(s.modifies, c.M);
  assert.equal(s.accesses, c.I + c.L + c.S + c.M);
  assert.equal(s.bytes, c.bytes);
  assert.equal(s.distinctPages, pages);
  assert.ok(s.accesses > 500_000, "a real program's trace");
  // a limit stops early
  const l = await summarizeTrace(SHIPPED, { limit: 1000 });
  assert.equal(l.accesses, 1000);
  assert.ok(l.lines >= 1000 && l.lines < 1100);
});

// ---- replay -----------------------------------------------------------------------------

/** Pages (page number strings) touched by the first and last byte of each access. */
function touched(b: AccessBatch, shift: bigint): number {
  const s = new Set<bigint>();
  for (let i = 0; i < b.count; i++) {
    const a = (BigInt(b.hi[i]) << 32n) | BigInt(b.lo[i]);
    s.add(a >> shift);
    s.add((a + BigInt(b.size[i] - 1)) >> shift);
  }
  return s.size;
}

Deno.test("replay: first-touch faults equal the distinct pages touched (both machines, both page sizes)", async () => {
  const { text } = await directCount();
  // the first ~100k accesses (cut at a line end)
  const b = parseLackey(text.slice(0, text.lastIndexOf("\n", 1_500_000) + 1));
  const p4 = touched(b, 12n), p2m = touched(b, 21n);
  const table: [ReplayOptions, number][] = [
    [{}, p4],
    [{ pageSize: 2097152 }, p2m],
    [{ levels: 5 }, p4],
    [{ machine: "nested" }, p4],
    [{ machine: "nested", stage: "npt" }, p4],
    [{ machine: "nested", guestPageSize: 2097152 }, p2m],
    [{ machine: "nested", hostPageSize: 2097152, caches: false }, p4],
  ];
  for (const [o, want] of table) {
    const r = replayAccesses(b, o);
    assert.equal(r.firstTouchFaults, want, JSON.stringify(o));
    assert.equal(r.pagesTouched, want);
    assert.equal(r.accesses, b.count);
    assert.equal(r.generalProtection, 0);
    // every translation is a hit or a miss; misses walk
    assert.equal(r.tlbHits + r.tlbMisses, r.translations);
    assert.equal(r.walks, r.tlbMisses);
    assert.equal(
      r.translations,
      r.accesses + r.pageCrossings + r.firstTouchFaults + r.hostFaults,
    );
  }
});

Deno.test("replay: native and nested see the same TLB hits; nested misses more by its host-fault restarts", async () => {
  const lim = 200_000;
  for (const pageSize of [4096, 2097152] as const) {
    const n = await replayTrace(SHIPPED, { limit: lim, pageSize });
    const v = await replayTrace(SHIPPED, {
      limit: lim,
      machine: "nested",
      guestPageSize: pageSize,
      hostPageSize: pageSize,
    });
    assert.equal(n.accesses, lim);
    assert.equal(v.accesses, lim);
    assert.equal(v.tlbHits, n.tlbHits);
    assert.equal(v.dirtyRewalks, n.dirtyRewalks);
    assert.equal(v.tlbMisses - n.tlbMisses, v.hostFaults);
    assert.ok(v.hostFaults > 0);
  }
});

/** An independent fully associative LRU TLB: misses of a page sequence. */
function lruMisses(pages: number[], entries: number): number {
  const lru: number[] = [];
  let misses = 0;
  for (const p of pages) {
    const i = lru.indexOf(p);
    if (i >= 0) lru.splice(i, 1);
    else {
      misses++;
      if (lru.length === entries) lru.shift();
    }
    lru.push(p);
  }
  return misses;
}

Deno.test("replay: TLB misses of a tiny LRU TLB match an independent LRU simulation", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 11 }), {
        minLength: 1,
        maxLength: 300,
      }),
      fc.constantFrom(1, 2, 4, 8),
      fc.constantFrom<ReplayOptions["machine"]>("native", "nested"),
      (seq, entries, machine) => {
        const b = accessBatch(seq.length);
        seq.forEach((p, i) => {
          b.kind[i] = 1; // loads: no dirty re-walks
          // pages spread over several page tables and PML4 slots
          b.hi[i] = p % 3;
          b.lo[i] = p * 0x20_1000 + 8 * i; // below 2^25: no overflow
          b.size[i] = 8;
        });
        b.count = seq.length;
        const pages = seq.map((p) => p); // distinct p → distinct 4 KiB page
        const r = replayAccesses(b, {
          machine,
          tlb: { entries, ways: entries },
        });
        const distinct = new Set(seq).size;
        assert.equal(r.firstTouchFaults, distinct);
        assert.equal(
          r.tlbMisses - r.firstTouchFaults - r.hostFaults,
          lruMisses(pages, entries),
        );
      },
    ),
    { seed: 11, numRuns: 120 },
  );
});

Deno.test("replay: steady-state references per walk are (n+1)(m+1)−1 nested, n native", () => {
  // 24 pages in turn, 16-entry TLB: in steady state every access walks
  const b = accessBatch(24 * 20);
  for (let i = 0; i < b.lo.length; i++) {
    b.kind[i] = 1;
    b.lo[i] = 0x4000_0000 + (i % 24) * 0x40_0000; // a 4 MiB stride: distinct 2 MiB pages too
    b.size[i] = 8;
  }
  b.count = b.lo.length;
  const table: [ReplayOptions, number][] = [
    [{ psc: false }, 4],
    [{ psc: false, levels: 5 }, 5],
    [{ psc: false, pageSize: 2097152 }, 3],
    [{ machine: "nested", caches: false }, 24],
    [{ machine: "nested", caches: false, stage: "npt" }, 24],
    [{ machine: "nested", caches: false, levels: 5, hostLevels: 5 }, 35],
    [{ machine: "nested", caches: false, guestPageSize: 2097152 }, 19],
    [{ machine: "nested", caches: false, hostPageSize: 2097152 }, 19],
    [{
      machine: "nested",
      caches: false,
      guestPageSize: 2097152,
      hostPageSize: 2097152,
    }, 15],
  ];
  for (const [o, refs] of table) {
    const r = makeReplay({ ...o, tlb: { entries: 16, ways: 16 } });
    r.run(b); // warm: first touches
    const before = r.result();
    r.run(b);
    const after = r.result();
    const walks = after.walks - before.walks;
    assert.equal(walks, b.count, JSON.stringify(o));
    assert.equal(
      after.walkRefs - before.walkRefs,
      refs * walks,
      JSON.stringify(o),
    );
    assert.equal(after.firstTouchFaults, before.firstTouchFaults);
  }
  // with the walk caches on, the same steady state makes fewer references
  const c = new NestedReplay({ tlb: { entries: 16, ways: 16 } });
  c.run(b);
  const before = c.result();
  c.run(b);
  const after = c.result();
  assert.ok(after.walkRefs - before.walkRefs < 24 * b.count / 2);
  assert.ok(after.cacheHits.nestedTlb > before.cacheHits.nestedTlb);
});

Deno.test("replay: stores set D once; a store after a load re-walks; page crossings translate twice", () => {
  const b = parseLackey(
    " L 00401000,8\n S 00401008,8\n S 00401010,8\n M 00402000,4\n L 00402ffc,8\n",
  );
  for (const machine of ["native", "nested"] as const) {
    const r = replayAccesses(b, { machine });
    assert.equal(r.dirtyRewalks, 1);
    assert.equal(r.modifies, 1);
    assert.equal(r.pageCrossings, 1);
    assert.equal(r.firstTouchFaults, 3); // 0x401000, 0x402000, 0x403000
    assert.equal(r.translations, 6 + 3 + r.hostFaults);
  }
});

Deno.test("replay: non-canonical addresses are counted as #GP and skipped", () => {
  const b = parseLackey(" L 0000800000000000,8\n L 00001000,8\n");
  for (const machine of ["native", "nested"] as const) {
    const r = replayAccesses(b, { machine });
    assert.equal(r.generalProtection, 1);
    assert.equal(r.firstTouchFaults, 1);
  }
});

Deno.test("replay: bad options are rejected with clear messages", async () => {
  assert.throws(
    () => new NativeReplay({ pageSize: 8192 as 4096 }),
    /pageSize 8192 .*4096/,
  );
  assert.throws(() => new NestedReplay({ hostLevels: 3 as 4 }), /hostLevels 3/);
  assert.throws(
    () => new NestedReplay({ stage: "svm" as "ept" }),
    /stage "svm"/,
  );
  assert.throws(() => replayAccesses({} as AccessBatch), /AccessBatch/);
  assert.throws(
    () => replayAccesses(accessBatch(1), { progressEvery: 0 }),
    /progressEvery 0/,
  );
  await assert.rejects(replayTrace(enc.encode(""), { limit: -1 }), /limit -1/);
  const r = new NativeReplay();
  assert.throws(() => r.run(accessBatch(4), 0, 5), /range \[0, 5\)/);
});

Deno.test("replay: progress is reported every N accesses and at the end", async () => {
  const text = "I  00401000,4\n L 00601008,8\n".repeat(5000);
  const seen: ReplayProgress[] = [];
  const r = await replayTrace(enc.encode(text), {
    batchSize: 1000,
    progressEvery: 2500,
    onProgress: (p) => seen.push(p),
  });
  assert.equal(r.accesses, 10_000);
  assert.deepEqual(seen.map((p) => p.done), [3000, 5000, 8000, 10_000, 10_000]);
  assert.equal(seen.at(-1)!.bytesRead, text.length);
  assert.equal(seen.at(-1)!.fraction, 1);
  // synchronous replay: same cadence on the accesses
  const done: number[] = [];
  replayAccesses(parseLackey(text), {
    progressEvery: 4000,
    onProgress: (p) => done.push(p.done),
  });
  assert.deepEqual(done, [4000, 8000, 10_000]);
  // a forced terminal reporter writes one \r-rewritten line, then a newline
  let out = "";
  const rep = progressReporter({
    target: "terminal",
    label: "replay",
    minIntervalMs: 0,
    write: (t) => out += t,
  });
  await replayTrace(enc.encode(text), { progress: rep, progressEvery: 5000 });
  assert.equal(out.split("\r").length - 1, 3);
  assert.ok(out.endsWith("\n") && !out.slice(0, -1).includes("\n"));
  assert.match(out, /replay: 10,000 accesses/);
  // in tests (not a TTY, no kernel) the default reporter is silent
  assert.equal(progressReporter().target, "silent");
  assert.throws(
    () => progressReporter({ target: "jupyter" }),
    /Jupyter kernel/,
  );
  assert.match(
    progressText({ done: 5, fraction: 0.5, elapsedMs: 0 }),
    /5 accesses \(50\.0%\), 0\.00 M\/s/,
  );
});

Deno.test("replay: the shipped trace end to end, native and nested", async () => {
  const s = await summarizeTrace(SHIPPED);
  const n = await replayTrace(SHIPPED);
  assert.equal(n.accesses, s.accesses);
  assert.equal(n.fetches, s.fetches);
  assert.equal(n.pageCrossings, s.pageCrossings);
  assert.ok(n.firstTouchFaults >= s.distinctPages);
  assert.ok(n.tlbHits / n.translations > 0.95, "a real program has locality");
  const v = await replayTrace(SHIPPED, { machine: "nested" });
  assert.equal(v.accesses, s.accesses);
  assert.equal(v.firstTouchFaults, n.firstTouchFaults);
  assert.ok(v.refsPerWalk > 0 && v.refsPerWalk < 24);
  assert.ok(v.accessesPerSecond > 0);
});

// ---- recording ------------------------------------------------------------------------------

const VALGRIND = await valgrindVersion();
if (VALGRIND === undefined) {
  console.log(
    "trace_test: valgrind not found on the PATH: recording tests skipped (apt-get install valgrind)",
  );
}

Deno.test({
  name: "recordTrace: records /bin/true with valgrind lackey (gzip and plain)",
  ignore: VALGRIND === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memvirt-rec-" });
    try {
      for (const name of ["true.lackey.gz", "true.lackey"]) {
        const path = await recordTrace(["/bin/true"], {
          output: `${dir}/${name}`,
        });
        assert.equal(path, `${dir}/${name}`);
        const head = await Deno.readFile(path);
        assert.equal(
          head[0] === 0x1f && head[1] === 0x8b,
          name.endsWith(".gz"),
        );
        const s = await summarizeTrace(path);
        assert.ok(s.accesses > 10_000, `${s.accesses} accesses`);
        assert.ok(s.fetches > 0 && s.loads > 0 && s.stores > 0);
        assert.ok(s.commentLines >= 5); // the ==pid== header
      }
      await assert.rejects(
        recordTrace(["/bin/false"], { output: `${dir}/f.lackey` }),
        /exit status 1/,
      );
      const p = await recordTrace(["/bin/false"], {
        output: `${dir}/f.lackey`,
        allowFailure: true,
      });
      assert.ok((await summarizeTrace(p)).accesses > 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("recordTrace: a missing valgrind is named with its apt package", async () => {
  await assert.rejects(
    recordTrace(["/bin/true"], { valgrind: "/nonexistent/valgrind" }),
    /valgrind is not installed.*apt-get install valgrind/,
  );
  await assert.rejects(recordTrace(["", "x"]), TypeError);
});
