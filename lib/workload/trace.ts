/**
 * Real memory traces: a streaming reader and a writer for the trace format
 * of Valgrind's Lackey tool (`valgrind --tool=lackey --trace-mem=yes
 * --log-file=F prog`).
 *
 * Lackey writes one line per memory access (Valgrind's
 * `lackey/lk_main.c`, `printf("I  %08lx,%lu\n", addr, size)` and the
 * `" L "`, `" S "`, `" M "` variants): `I` an instruction fetch, `L` a data
 * load, `S` a data store, `M` a modify (a load and a store of the same
 * bytes by one instruction). Addresses are hexadecimal without `0x`
 * (at least 8 digits, up to 16), sizes are decimal bytes. Lines starting
 * with `==pid==` (Valgrind's own messages) or `--pid--` are skipped, as are
 * empty lines.
 *
 * The reader is built for multi-gigabyte traces:
 *
 * - it streams: {@linkcode lackeyBatches} reads a `ReadableStream` chunk by
 *   chunk and yields fixed-size {@linkcode AccessBatch}es whose typed arrays
 *   are reused, so memory stays bounded whatever the trace length (a line
 *   split across chunks is carried over in a small buffer);
 * - gzip is decoded on the fly with the built-in
 *   `DecompressionStream("gzip")` when the path ends in `.gz` or the bytes
 *   start with the gzip magic `1f 8b`;
 * - it parses bytes directly: no string per line, no BigInt — a 64-bit
 *   address becomes two unsigned 32-bit halves;
 * - malformed input raises `SyntaxError` (or `RangeError` for a value out
 *   of range) naming the 1-based line number, the offending text
 *   (truncated) and what was expected.
 *
 * @module
 */

/** Access kind: instruction fetch (`I`). */
export const KIND_FETCH = 0;
/** Access kind: data load (`L`). */
export const KIND_LOAD = 1;
/** Access kind: data store (`S`). */
export const KIND_STORE = 2;
/** Access kind: modify (`M`): a load and a store of the same bytes. */
export const KIND_MODIFY = 3;
/** Lackey letters by access kind. */
export const KIND_LETTERS: readonly ["I", "L", "S", "M"] = Object.freeze(
  ["I", "L", "S", "M"] as const,
);

/**
 * A batch of accesses in parallel typed arrays. Entries `0 .. count-1` are
 * valid. Batches yielded by {@linkcode lackeyBatches} reuse their buffers:
 * consume (or copy) a batch before asking for the next one.
 *
 * @example
 * ```ts
 * import { type AccessBatch, parseLackey } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const b: AccessBatch = parseLackey(" L 7ff0001000,8\n");
 * assert.equal(b.count, 1);
 * assert.equal(b.kind[0], 1);
 * assert.equal(b.hi[0], 0x7f);
 * assert.equal(b.lo[0], 0xf0001000);
 * ```
 */
export interface AccessBatch {
  /** Number of valid entries. */
  count: number;
  /** 0 = fetch (I), 1 = load (L), 2 = store (S), 3 = modify (M). */
  kind: Uint8Array;
  /** Address bits 63..32. */
  hi: Uint32Array;
  /** Address bits 31..0. */
  lo: Uint32Array;
  /** Size in bytes (1..255, as Lackey reports them). */
  size: Uint8Array;
  /** 1-based source line number of each access. */
  line: Float64Array;
}

/** What {@linkcode lackeyBatches} reads: a path, a file URL, bytes or a byte stream. */
export type TraceSource =
  | string
  | URL
  | Uint8Array
  | ReadableStream<Uint8Array>;

/** Options for {@linkcode lackeyBatches}. */
export interface LackeyOptions {
  /** Accesses per batch (1..2^24). Default 8192. */
  batchSize?: number;
  /** Stop reading (the generator throws the signal's reason) when aborted. */
  signal?: AbortSignal;
  /** Called with the number of source bytes read so far (compressed bytes for gzip), once per chunk. */
  onBytes?: (bytesRead: number) => void;
}

/**
 * Make an empty batch with room for `capacity` accesses.
 *
 * @example
 * ```ts
 * import { accessBatch } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const b = accessBatch(16);
 * assert.equal(b.count, 0);
 * assert.equal(b.lo.length, 16);
 * assert.throws(() => accessBatch(0), /capacity 0/);
 * ```
 */
export function accessBatch(capacity: number): AccessBatch {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 2 ** 24) {
    throw new RangeError(
      `batch capacity ${
        String(capacity)
      } is invalid: expected an integer in [1, 2^24]`,
    );
  }
  return {
    count: 0,
    kind: new Uint8Array(capacity),
    hi: new Uint32Array(capacity),
    lo: new Uint32Array(capacity),
    size: new Uint8Array(capacity),
    line: new Float64Array(capacity),
  };
}

// ---- the byte-level line parser --------------------------------------------

const NL = 10, CR = 13, SP = 32, TAB = 9, COMMA = 44;
/** Longest line kept across chunks (Valgrind header lines can be long). */
const MAX_LINE = 1 << 20;
/** Characters of an offending line quoted in an error message. */
const QUOTE = 60;

/** Hex digit value by byte, -1 if not a hex digit. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;
/** Kind by byte (I L S M), -1 otherwise. */
const KIND = new Int8Array(256).fill(-1);
KIND[73] = KIND_FETCH;
KIND[76] = KIND_LOAD;
KIND[83] = KIND_STORE;
KIND[77] = KIND_MODIFY;

const EXPECTED =
  'expected a Lackey line "I  addr,size", " L addr,size", " S addr,size" or " M addr,size" (hex address, decimal size), or a "==pid==" comment';

function quote(buf: Uint8Array, s: number, e: number): string {
  const cut = e - s > QUOTE;
  const text = new TextDecoder().decode(
    buf.subarray(s, cut ? s + QUOTE : e),
  );
  return JSON.stringify(text) + (cut ? "…" : "");
}

/**
 * Incremental Lackey decoder: feed it chunks, it fills a batch. Lines split
 * across chunks are carried in a growable buffer (bounded by the longest
 * line). Internal: {@linkcode lackeyBatches} and {@linkcode parseLackey}
 * drive it.
 */
class LackeyDecoder {
  batch: AccessBatch;
  /** Lines completed so far (including comments). */
  lines = 0;
  /** Comment / header / empty lines so far. */
  comments = 0;
  #grow: boolean;
  #carry = new Uint8Array(256);
  #carryLen = 0;

  constructor(capacity: number, grow: boolean) {
    this.batch = accessBatch(capacity);
    this.#grow = grow;
  }

  get full(): boolean {
    return this.batch.count === this.batch.lo.length;
  }

  /**
   * Parse complete lines of `buf` from `pos` until the batch is full or no
   * complete line is left (the rest is carried). Returns the new position.
   */
  feed(buf: Uint8Array, pos: number): number {
    const end = buf.length;
    if (this.#carryLen > 0) {
      const nl = buf.indexOf(NL, pos);
      const stop = nl < 0 ? end : nl;
      this.#append(buf, pos, stop);
      if (nl < 0) return end;
      this.#line(this.#carry, 0, this.#carryLen);
      this.#carryLen = 0;
      pos = nl + 1;
    }
    while (pos < end) {
      if (this.batch.count === this.batch.lo.length) {
        if (!this.#grow) return pos;
        this.#enlarge();
      }
      const nl = buf.indexOf(NL, pos);
      if (nl < 0) {
        this.#append(buf, pos, end);
        return end;
      }
      this.#line(buf, pos, nl);
      pos = nl + 1;
    }
    return pos;
  }

  /** End of input: parse a last line without a newline. */
  finish(): void {
    if (this.#carryLen > 0) {
      if (this.full && this.#grow) this.#enlarge();
      this.#line(this.#carry, 0, this.#carryLen);
      this.#carryLen = 0;
    }
  }

  /** Whether a final unterminated line is pending (and the batch is full). */
  get pending(): boolean {
    return this.#carryLen > 0;
  }

  #append(buf: Uint8Array, s: number, e: number): void {
    const n = e - s;
    if (n === 0) return;
    const need = this.#carryLen + n;
    if (need > this.#carry.length) {
      if (need > MAX_LINE) {
        throw new RangeError(
          `line ${this.lines + 1}: longer than ${MAX_LINE} bytes (${
            quote(this.#carry, 0, this.#carryLen)
          }): ${EXPECTED}`,
        );
      }
      const c = new Uint8Array(Math.min(MAX_LINE, Math.max(need, 2 * need)));
      c.set(this.#carry.subarray(0, this.#carryLen));
      this.#carry = c;
    }
    this.#carry.set(buf.subarray(s, e), this.#carryLen);
    this.#carryLen = need;
  }

  #enlarge(): void {
    const b = this.batch, n = b.lo.length * 2;
    const g = accessBatch(Math.min(n, 2 ** 24));
    if (g.lo.length === b.lo.length) {
      throw new RangeError(
        `trace too long for parseLackey (over 2^24 accesses): use lackeyBatches`,
      );
    }
    g.kind.set(b.kind);
    g.hi.set(b.hi);
    g.lo.set(b.lo);
    g.size.set(b.size);
    g.line.set(b.line);
    g.count = b.count;
    this.batch = g;
  }

  /** Parse one line `buf[s, e)` (without its newline). */
  #line(buf: Uint8Array, s: number, e: number): void {
    const ln = ++this.lines;
    if (e > s && buf[e - 1] === CR) e--;
    let p = s;
    while (p < e && (buf[p] === SP || buf[p] === TAB)) p++;
    if (p === e) {
      this.comments++;
      return;
    }
    const c0 = buf[p];
    // "==pid== ..." and "--pid-- ..." are Valgrind's own messages
    if ((c0 === 61 || c0 === 45) && p + 1 < e && buf[p + 1] === c0) {
      this.comments++;
      return;
    }
    const kind = KIND[c0];
    if (kind < 0 || p + 1 >= e || (buf[p + 1] !== SP && buf[p + 1] !== TAB)) {
      throw new SyntaxError(
        `line ${ln}: ${quote(buf, s, e)} is not an access: ${EXPECTED}`,
      );
    }
    p++;
    while (p < e && (buf[p] === SP || buf[p] === TAB)) p++;
    // hex address → hi:lo, no BigInt
    let hi = 0, lo = 0, digits = 0;
    for (; p < e; p++) {
      const d = HEX[buf[p]];
      if (d < 0) break;
      if ((hi >>> 28) !== 0) {
        throw new RangeError(
          `line ${ln}: address in ${
            quote(buf, s, e)
          } does not fit in 64 bits: expected at most 16 significant hex digits`,
        );
      }
      hi = ((hi << 4) | (lo >>> 28)) >>> 0;
      lo = ((lo << 4) | d) >>> 0;
      digits++;
    }
    if (digits === 0 || p >= e || buf[p] !== COMMA) {
      throw new SyntaxError(
        `line ${ln}: ${quote(buf, s, e)} has no "address,size": ${EXPECTED}`,
      );
    }
    p++;
    let size = 0, sd = 0;
    for (; p < e; p++) {
      const c = buf[p] - 48;
      if (c < 0 || c > 9) break;
      size = size * 10 + c;
      if (++sd > 9) break;
    }
    let q = p;
    while (q < e && (buf[q] === SP || buf[q] === TAB)) q++;
    if (sd === 0 || q !== e) {
      throw new SyntaxError(
        `line ${ln}: ${
          quote(buf, s, e)
        } has a bad size (a decimal byte count must end the line): ${EXPECTED}`,
      );
    }
    if (size < 1 || size > 255) {
      throw new RangeError(
        `line ${ln}: size ${size} in ${
          quote(buf, s, e)
        } is out of range: expected 1..255 bytes`,
      );
    }
    const b = this.batch, i = b.count;
    b.kind[i] = kind;
    b.hi[i] = hi;
    b.lo[i] = lo;
    b.size[i] = size;
    b.line[i] = ln;
    b.count = i + 1;
  }
}

/**
 * Parse a whole Lackey trace held in memory (for small inputs and tests;
 * use {@linkcode lackeyBatches} for files). Returns one batch sized to fit
 * (`count` accesses). Not for gzip bytes.
 *
 * @example
 * ```ts
 * import { parseLackey } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const t = parseLackey("==1== Lackey\nI  0401ab70,3\n S 1fff000778,8\n M ffffffffff600000,4\n");
 * assert.equal(t.count, 3);
 * assert.deepEqual([...t.kind], [0, 2, 3]);
 * assert.equal(t.hi[1], 0x1f);
 * assert.equal(t.hi[2], 0xffffffff);
 * assert.deepEqual([...t.line], [2, 3, 4]);
 * assert.throws(() => parseLackey("I  0401ab70;3\n"), /line 1: .*address,size/);
 * ```
 */
export function parseLackey(text: string | Uint8Array): AccessBatch {
  if (typeof text !== "string" && !(text instanceof Uint8Array)) {
    throw new TypeError(
      `parseLackey: ${typeof text} is invalid: expected a string or a Uint8Array`,
    );
  }
  const bytes = typeof text === "string"
    ? new TextEncoder().encode(text)
    : text;
  const d = new LackeyDecoder(
    Math.max(16, Math.min(2 ** 24, bytes.length >>> 4)),
    true,
  );
  d.feed(bytes, 0);
  d.finish();
  const b = d.batch, n = b.count;
  return {
    count: n,
    kind: b.kind.slice(0, n),
    hi: b.hi.slice(0, n),
    lo: b.lo.slice(0, n),
    size: b.size.slice(0, n),
    line: b.line.slice(0, n),
  };
}

// ---- sources ------------------------------------------------------------------

function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

function fromReader(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  first: Uint8Array[],
): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i < first.length) {
        c.enqueue(first[i++]);
        return;
      }
      const r = await reader.read();
      if (r.done) c.close();
      else c.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * The byte chunks of `source`, gunzipped when it is gzip (by name or
 * magic). `onRaw` sees the count of raw bytes read.
 */
async function* chunksOf(
  source: TraceSource,
  signal: AbortSignal | undefined,
  onRaw: ((n: number) => void) | undefined,
): AsyncGenerator<Uint8Array> {
  let stream: ReadableStream<Uint8Array>;
  let gzName = false;
  let file: Deno.FsFile | undefined;
  if (typeof source === "string" || source instanceof URL) {
    gzName = (typeof source === "string" ? source : source.pathname)
      .endsWith(".gz");
    try {
      file = await Deno.open(source);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(
          `trace file ${
            String(source)
          } not found: expected a Lackey trace (.gz or plain text)`,
        );
      }
      throw e;
    }
    stream = file.readable;
  } else if (source instanceof Uint8Array) {
    if (!isGzip(source)) {
      signal?.throwIfAborted();
      onRaw?.(source.length);
      yield source;
      return;
    }
    stream = new Blob([source as Uint8Array<ArrayBuffer>]).stream();
  } else if (source instanceof ReadableStream) {
    stream = source;
  } else {
    throw new TypeError(
      `trace source ${
        String(source)
      } is invalid: expected a path, a file URL, a Uint8Array or a ReadableStream<Uint8Array>`,
    );
  }
  const reader = stream.getReader();
  let raw = 0;
  try {
    // peek at least two bytes for the gzip magic
    const first: Uint8Array[] = [];
    let have = 0;
    while (have < 2) {
      const r = await reader.read();
      if (r.done) break;
      first.push(r.value);
      have += r.value.length;
    }
    let head = first.length === 1 ? first[0] : new Uint8Array(have);
    if (first.length > 1) {
      let o = 0;
      for (const c of first) {
        head.set(c, o);
        o += c.length;
      }
      first.length = 0;
      first.push(head);
    }
    if (first.length === 0) head = new Uint8Array(0);
    if (gzName || isGzip(head)) {
      const counted = fromReader(reader, first).pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, c) {
            raw += chunk.length;
            onRaw?.(raw);
            c.enqueue(chunk);
          },
        }),
      );
      const out = counted.pipeThrough(
        new DecompressionStream("gzip") as unknown as ReadableWritablePair<
          Uint8Array,
          Uint8Array
        >,
      )
        .getReader();
      try {
        while (true) {
          signal?.throwIfAborted();
          const r = await out.read();
          if (r.done) break;
          yield r.value;
        }
      } finally {
        await out.cancel().catch(() => {});
      }
      return;
    }
    for (const c of first) {
      signal?.throwIfAborted();
      raw += c.length;
      onRaw?.(raw);
      yield c;
    }
    while (true) {
      signal?.throwIfAborted();
      const r = await reader.read();
      if (r.done) break;
      raw += r.value.length;
      onRaw?.(raw);
      yield r.value;
    }
  } finally {
    await reader.cancel().catch(() => {});
    try {
      file?.close();
    } catch {
      // already closed by the stream's end
    }
  }
}

function checkBatchSize(n: number | undefined): number {
  const v = n ?? 8192;
  if (!Number.isInteger(v) || v < 1 || v > 2 ** 24) {
    throw new RangeError(
      `batchSize ${String(v)} is invalid: expected an integer in [1, 2^24]`,
    );
  }
  return v;
}

/**
 * Stream a Lackey trace as batches of at most `batchSize` accesses. The
 * batch object and its arrays are reused: consume each batch before
 * pulling the next. Memory is bounded by the batch, the stream's chunks
 * and the longest line, whatever the trace length. Gzip is detected by a
 * `.gz` name or the `1f 8b` magic bytes.
 *
 * @example
 * ```ts
 * import { lackeyBatches } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const text = "==7== Lackey\n" + "I  00400000,4\n L 00601000,8\n".repeat(5);
 * const sizes: number[] = [];
 * for await (const b of lackeyBatches(new TextEncoder().encode(text), { batchSize: 4 })) {
 *   sizes.push(b.count);
 * }
 * assert.deepEqual(sizes, [4, 4, 2]);
 * ```
 */
export async function* lackeyBatches(
  source: TraceSource,
  options: LackeyOptions = {},
): AsyncGenerator<AccessBatch> {
  yield* lackeyBatchesWithLines(source, options);
}

/** Line counts returned at the end of {@linkcode lackeyBatchesWithLines}. */
export interface LineCounts {
  /** Lines read (including comments and empty lines). */
  lines: number;
  /** Comment (`==pid==`, `--pid--`) and empty lines. */
  comments: number;
}

/**
 * {@linkcode lackeyBatches} that also returns the line counts when it
 * finishes (the generator's return value).
 *
 * @example
 * ```ts
 * import { lackeyBatchesWithLines } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const gen = lackeyBatchesWithLines(new TextEncoder().encode("==1==\n\nI  1000,4\n"));
 * let r = await gen.next();
 * assert.equal(r.done, false);
 * r = await gen.next();
 * assert.deepEqual(r.value, { lines: 3, comments: 2 });
 * ```
 */
export async function* lackeyBatchesWithLines(
  source: TraceSource,
  options: LackeyOptions = {},
): AsyncGenerator<AccessBatch, LineCounts> {
  const size = checkBatchSize(options.batchSize);
  const dec = new LackeyDecoder(size, false);
  const batch = dec.batch;
  for await (const chunk of chunksOf(source, options.signal, options.onBytes)) {
    let pos = 0;
    while (pos < chunk.length) {
      pos = dec.feed(chunk, pos);
      if (dec.full) {
        yield batch;
        batch.count = 0;
      }
    }
  }
  dec.finish();
  if (batch.count > 0) {
    yield batch;
    batch.count = 0;
  }
  return { lines: dec.lines, comments: dec.comments };
}

// ---- a set of page numbers (typed arrays, no per-insert allocation) ------------

/**
 * A set of page numbers (64-bit address >> shift), kept in open-addressing
 * typed arrays that double when 1/2 full: no allocation per insert except
 * on growth, no BigInt.
 *
 * @example
 * ```ts
 * import { PageSet } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const s = new PageSet(12);
 * assert.equal(s.add(0, 0x1000), true);
 * assert.equal(s.add(0, 0x1fff), false); // same 4 KiB page
 * assert.equal(s.add(0x7f, 0x1000), true);
 * assert.equal(s.size, 2);
 * assert.equal(s.has(0, 0x1abc), true);
 * ```
 */
export class PageSet {
  /** log2 of the page size. */
  readonly shift: number;
  #hi: Uint32Array;
  #lo: Uint32Array;
  #used: Uint8Array;
  #mask: number;
  #size = 0;

  /** A set of pages of `2^shift` bytes (shift 1..63). */
  constructor(shift: number, capacity = 1024) {
    if (!Number.isInteger(shift) || shift < 1 || shift > 63) {
      throw new RangeError(
        `page shift ${
          String(shift)
        } is invalid: expected an integer in [1, 63]`,
      );
    }
    this.shift = shift;
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.#hi = new Uint32Array(n);
    this.#lo = new Uint32Array(n);
    this.#used = new Uint8Array(n);
    this.#mask = n - 1;
  }

  /** Distinct pages added. */
  get size(): number {
    return this.#size;
  }

  #find(pHi: number, pLo: number): number {
    let i = (Math.imul(pLo ^ Math.imul(pHi, 0x9e3779b1), 0x85ebca6b) ^
      (pLo >>> 15)) & this.#mask;
    const used = this.#used, his = this.#hi, los = this.#lo;
    while (used[i] === 1 && (los[i] !== pLo || his[i] !== pHi)) {
      i = (i + 1) & this.#mask;
    }
    return i;
  }

  #page(hi: number, lo: number): void {
    const s = this.shift;
    if (s < 32) {
      this.#pLo = ((lo >>> s) | (hi << (32 - s))) >>> 0;
      this.#pHi = hi >>> s;
    } else {
      this.#pLo = hi >>> (s - 32);
      this.#pHi = 0;
    }
  }
  #pHi = 0;
  #pLo = 0;

  /** Whether the page holding address `hi:lo` is in the set. */
  has(hi: number, lo: number): boolean {
    this.#page(hi, lo);
    return this.#used[this.#find(this.#pHi, this.#pLo)] === 1;
  }

  /** Add the page holding `hi:lo`; true if it was new. */
  add(hi: number, lo: number): boolean {
    this.#page(hi, lo);
    const pHi = this.#pHi, pLo = this.#pLo;
    const i = this.#find(pHi, pLo);
    if (this.#used[i] === 1) return false;
    this.#used[i] = 1;
    this.#hi[i] = pHi;
    this.#lo[i] = pLo;
    if (++this.#size * 2 > this.#mask) this.#rehash();
    return true;
  }

  #rehash(): void {
    const oh = this.#hi, ol = this.#lo, ou = this.#used;
    const n = ou.length * 2;
    this.#hi = new Uint32Array(n);
    this.#lo = new Uint32Array(n);
    this.#used = new Uint8Array(n);
    this.#mask = n - 1;
    for (let j = 0; j < ou.length; j++) {
      if (ou[j] === 1) {
        const i = this.#find(oh[j], ol[j]);
        this.#used[i] = 1;
        this.#hi[i] = oh[j];
        this.#lo[i] = ol[j];
      }
    }
  }
}

// ---- summary ---------------------------------------------------------------------

/** Counts of a trace, from {@linkcode summarizeTrace}. */
export interface TraceSummary {
  /** Accesses (I + L + S + M lines). */
  accesses: number;
  /** Instruction fetches (I). */
  fetches: number;
  /** Loads (L). */
  loads: number;
  /** Stores (S). */
  stores: number;
  /** Modifies (M). */
  modifies: number;
  /** Lines read, including comments and empty lines. */
  lines: number;
  /** Comment (`==pid==`, `--pid--`) and empty lines. */
  commentLines: number;
  /** Bytes accessed (sum of sizes). */
  bytes: number;
  /** Distinct 4 KiB pages touched (by the first byte of each access). */
  distinctPages: number;
  /** Distinct 2 MiB pages touched. */
  distinctLargePages: number;
  /** Accesses whose bytes span two 4 KiB pages. */
  pageCrossings: number;
  /** Lowest address, hex (`0x…`), or "" for an empty trace. */
  minAddress: string;
  /** Highest address, hex (`0x…`), or "" for an empty trace. */
  maxAddress: string;
  /** Wall time of the summary in milliseconds. */
  elapsedMs: number;
}

/** Options for {@linkcode summarizeTrace}. */
export interface SummarizeOptions extends LackeyOptions {
  /** Stop after this many accesses (default: all). */
  limit?: number;
}

function hexOf(hi: number, lo: number): string {
  return "0x" +
    (hi === 0
      ? lo.toString(16)
      : hi.toString(16) + lo.toString(16).padStart(8, "0"));
}

/**
 * Stream a Lackey trace and count it: accesses by kind, lines, bytes,
 * distinct 4 KiB and 2 MiB pages, page-crossing accesses, address range.
 * Memory grows only with the number of distinct pages.
 *
 * @example
 * ```ts
 * import { summarizeTrace } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const text = "==1== hi\nI  00400ffe,4\n L 00401000,8\n S 7ff000000000,8\n";
 * const s = await summarizeTrace(new TextEncoder().encode(text));
 * assert.equal(s.accesses, 3);
 * assert.equal(s.lines, 4);
 * assert.equal(s.distinctPages, 3);
 * assert.equal(s.pageCrossings, 1); // 0x400ffe..0x401001
 * assert.equal(s.maxAddress, "0x7ff000000000");
 * ```
 */
export async function summarizeTrace(
  source: TraceSource,
  options: SummarizeOptions = {},
): Promise<TraceSummary> {
  const t0 = performance.now();
  const limit = options.limit ?? Infinity;
  if (!(limit >= 0)) {
    throw new RangeError(
      `limit ${String(limit)} is invalid: expected a non-negative number`,
    );
  }
  const small = new PageSet(12), large = new PageSet(21);
  const byKind = [0, 0, 0, 0];
  let n = 0, bytes = 0, cross = 0;
  let minHi = 0xffffffff, minLo = 0xffffffff, maxHi = 0, maxLo = 0;
  const gen = lackeyBatchesWithLines(source, options);
  let lines = 0, comments = 0;
  outer: while (true) {
    const r = await gen.next();
    if (r.done) {
      lines = r.value.lines;
      comments = r.value.comments;
      break;
    }
    const b = r.value;
    for (let i = 0; i < b.count; i++) {
      if (n >= limit) {
        await gen.return({ lines: 0, comments: 0 });
        break outer;
      }
      const hi = b.hi[i], lo = b.lo[i], sz = b.size[i];
      n++;
      byKind[b.kind[i]]++;
      bytes += sz;
      if ((lo & 0xfff) + sz > 0x1000) cross++;
      small.add(hi, lo);
      large.add(hi, lo);
      if (hi < minHi || (hi === minHi && lo < minLo)) {
        minHi = hi;
        minLo = lo;
      }
      if (hi > maxHi || (hi === maxHi && lo >= maxLo)) {
        maxHi = hi;
        maxLo = lo;
      }
      lines = b.line[i];
    }
  }
  return {
    accesses: n,
    fetches: byKind[0],
    loads: byKind[1],
    stores: byKind[2],
    modifies: byKind[3],
    lines,
    commentLines: n >= limit ? lines - n : comments,
    bytes,
    distinctPages: small.size,
    distinctLargePages: large.size,
    pageCrossings: cross,
    minAddress: n === 0 ? "" : hexOf(minHi, minLo),
    maxAddress: n === 0 ? "" : hexOf(maxHi, maxLo),
    elapsedMs: performance.now() - t0,
  };
}

// ---- writer ---------------------------------------------------------------------

/**
 * One Lackey line (with its newline) for an access, formatted as Lackey
 * prints it: `I  %08lx,%lu` for fetches, ` L `, ` S `, ` M ` for data.
 *
 * @example
 * ```ts
 * import { lackeyLine } from "./trace.ts";
 * import assert from "node:assert/strict";
 * assert.equal(lackeyLine(0, 0, 0x401000, 3), "I  00401000,3\n");
 * assert.equal(lackeyLine(2, 0x1f, 0xff000778, 8), " S 1fff000778,8\n");
 * assert.throws(() => lackeyLine(4, 0, 0, 1), /kind 4/);
 * ```
 */
export function lackeyLine(
  kind: number,
  hi: number,
  lo: number,
  size: number,
): string {
  if (!(kind === 0 || kind === 1 || kind === 2 || kind === 3)) {
    throw new RangeError(
      `access kind ${
        String(kind)
      } is invalid: expected 0 (I), 1 (L), 2 (S) or 3 (M)`,
    );
  }
  for (const [name, v] of [["high half", hi], ["low half", lo]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new RangeError(
        `address ${name} ${
          String(v)
        } is invalid: expected an unsigned 32-bit integer`,
      );
    }
  }
  if (!Number.isInteger(size) || size < 1 || size > 255) {
    throw new RangeError(
      `size ${String(size)} is invalid: expected an integer in 1..255`,
    );
  }
  const addr = hi === 0
    ? lo.toString(16).padStart(8, "0")
    : hi.toString(16) + lo.toString(16).padStart(8, "0");
  return (kind === 0 ? "I  " : " " + KIND_LETTERS[kind] + " ") + addr + "," +
    size + "\n";
}

/**
 * Lackey text for the first `count` accesses of a batch (the inverse of
 * {@linkcode parseLackey}, which gives back the same accesses).
 *
 * @example
 * ```ts
 * import { formatLackey, parseLackey } from "./trace.ts";
 * import assert from "node:assert/strict";
 * const text = "I  0401ab70,3\n L 1fff000778,8\n";
 * assert.equal(formatLackey(parseLackey(text)), text);
 * ```
 */
export function formatLackey(batch: AccessBatch): string {
  const parts: string[] = [];
  for (let i = 0; i < batch.count; i++) {
    parts.push(
      lackeyLine(batch.kind[i], batch.hi[i], batch.lo[i], batch.size[i]),
    );
  }
  return parts.join("");
}
