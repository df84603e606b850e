/**
 * Sparse physical memory and the frame allocator.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  FrameAllocator,
  MEMORY_CHUNK_BYTES,
  PhysicalMemory,
} from "../lib/memory/memory.ts";

const GiB = 2 ** 30;

Deno.test("a 64 GiB machine costs memory in proportion to the chunks touched", () => {
  const m = new PhysicalMemory({ size: 64 * GiB, name: "machine" });
  assert.equal(m.size, 64 * GiB);
  assert.equal(m.chunksTouched, 0);
  assert.equal(m.bytesStored, 0);
  // 1000 writes spread over the whole 64 GiB: one chunk each
  const step = Math.floor((64 * GiB) / 1000 / MEMORY_CHUNK_BYTES) *
    MEMORY_CHUNK_BYTES;
  for (let i = 0; i < 1000; i++) m.write32(i * step + 8, i + 1);
  assert.equal(m.chunksTouched, 1000);
  assert.equal(m.bytesStored, 1000 * MEMORY_CHUNK_BYTES);
  // more writes into the same chunks cost nothing more
  for (let i = 0; i < 1000; i++) m.write8(i * step + 100, 0xff);
  assert.equal(m.chunksTouched, 1000);
  for (let i = 0; i < 1000; i++) assert.equal(m.read32(i * step + 8), i + 1);
  // the last byte of the machine
  m.write8(64 * GiB - 1, 0x5a);
  assert.equal(m.read8(64 * GiB - 1), 0x5a);
  assert.equal(m.chunksTouched, 1001);
});

Deno.test("untouched memory reads as zero, and writing zeros stores nothing", () => {
  const m = new PhysicalMemory({ size: 16 * GiB });
  assert.equal(m.read8(12345), 0);
  assert.equal(m.read16(7 * GiB + 1), 0);
  assert.equal(m.read32(16 * GiB - 4), 0);
  assert.deepEqual(m.readBytes(GiB - 3, 10), new Uint8Array(10));
  m.write8(0x1000, 0);
  m.write16(0x2000, 0);
  m.write32(0x3000, 0);
  m.writeBytes(0x4000, new Uint8Array(9000));
  m.zero(0x10000, 3 * MEMORY_CHUNK_BYTES);
  assert.equal(m.chunksTouched, 0);
  // default size: the whole architectural 2^52 space
  const big = new PhysicalMemory();
  assert.equal(big.size, 2 ** 52);
  assert.equal(big.read32(2 ** 52 - 4), 0);
  big.write32(2 ** 52 - 4, 0x01020304);
  assert.equal(big.read32(2 ** 52 - 4), 0x01020304);
});

Deno.test("little-endian values and reads/writes that cross a chunk boundary", () => {
  const m = new PhysicalMemory({ size: 1 << 20 });
  const edge = 3 * MEMORY_CHUNK_BYTES;
  m.write32(edge - 2, 0xa1b2c3d4);
  assert.equal(m.chunksTouched, 2);
  assert.equal(m.read8(edge - 2), 0xd4);
  assert.equal(m.read8(edge - 1), 0xc3);
  assert.equal(m.read8(edge), 0xb2);
  assert.equal(m.read8(edge + 1), 0xa1);
  assert.equal(m.read32(edge - 2), 0xa1b2c3d4);
  assert.equal(m.read16(edge - 1), 0xb2c3);
  for (let k = 1; k <= 3; k++) {
    m.write32(edge - k, 0xffffffff);
    assert.equal(m.read32(edge - k), 0xffffffff, `offset -${k}`);
    m.write32(edge - k, 0x80000001);
    assert.equal(m.read32(edge - k), 0x80000001, `offset -${k}`);
  }
  m.write16(edge - 1, 0xbeef);
  assert.equal(m.read16(edge - 1), 0xbeef);
  // read32 is unsigned
  m.write32(0x100, -1);
  assert.equal(m.read32(0x100), 0xffffffff);
  // bulk copies spanning three chunks
  const data = new Uint8Array(2 * MEMORY_CHUNK_BYTES + 100);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 1) & 0xff;
  m.writeBytes(5 * MEMORY_CHUNK_BYTES - 50, data);
  assert.deepEqual(m.readBytes(5 * MEMORY_CHUNK_BYTES - 50, data.length), data);
  assert.equal(m.read8(5 * MEMORY_CHUNK_BYTES - 50), 1);
  // zero across chunks, partially
  m.zero(5 * MEMORY_CHUNK_BYTES - 10, 20);
  assert.deepEqual(
    m.readBytes(5 * MEMORY_CHUNK_BYTES - 10, 20),
    new Uint8Array(20),
  );
  assert.equal(m.read8(5 * MEMORY_CHUNK_BYTES - 11), data[39]);
  assert.equal(m.read8(5 * MEMORY_CHUNK_BYTES + 10), data[60]);
  // zeroing a whole chunk drops it
  const before = m.chunksTouched;
  m.zero(5 * MEMORY_CHUNK_BYTES, MEMORY_CHUNK_BYTES);
  assert.equal(m.chunksTouched, before - 1);
  assert.equal(m.read8(5 * MEMORY_CHUNK_BYTES + 10), 0);
});

Deno.test("the chunk cache: slot collisions, untouched chunks becoming touched, unaligned reads", () => {
  const m = new PhysicalMemory({ size: 2 ** 36 });
  const C = MEMORY_CHUNK_BYTES;
  // an untouched chunk is read (and remembered as untouched) ...
  assert.equal(m.read32(7 * C), 0);
  // ... then written: the next read must see the write
  m.write32(7 * C, 0x11223344);
  assert.equal(m.read32(7 * C), 0x11223344);
  // chunks whose indices collide in any power-of-two cache up to 2^16 slots
  const a = 5 * C, b = (5 + 65536) * C, c = (5 + 2 * 65536) * C;
  m.write32(a, 1);
  m.write32(b, 2);
  assert.equal(m.read32(c), 0);
  for (let i = 0; i < 3; i++) {
    assert.equal(m.read32(a), 1);
    assert.equal(m.read32(b), 2);
    assert.equal(m.read32(c), 0);
  }
  m.write32(c + 8, 3);
  assert.equal(m.read32(c + 8), 3);
  assert.equal(m.read32(a), 1);
  m.zero(b, C);
  assert.equal(m.read32(b), 0);
  m.write8(b + 1, 9);
  assert.equal(m.read32(b), 0x900);
  // unaligned reads inside a cached chunk
  m.write32(a + 0x101, 0xa1b2c3d4);
  assert.equal(m.read32(a + 0x101), 0xa1b2c3d4);
  assert.equal(m.read32(a + 0x100), 0xb2c3d400);
  assert.equal(m.read16(a + 0x102), 0xb2c3);
  // a memory whose size is not a multiple of the chunk size
  const odd = new PhysicalMemory({ size: C + 6 });
  odd.write32(C, 0xfeedf00d);
  assert.equal(odd.read32(C), 0xfeedf00d);
  assert.equal(odd.read16(C + 4), 0);
  assert.throws(() => odd.read32(C + 4), /beyond the end/);
  assert.throws(() => odd.read32(-C), /address -4096/);
  assert.throws(() => odd.read32(C + 0.5), /address 4096\.5/);
});

Deno.test("the chunk cache never serves a stale or dropped chunk", () => {
  const m = new PhysicalMemory({ size: 1 << 20 });
  const a = 0x1000, b = 0x5000;
  m.write32(a, 1);
  m.write32(b, 2);
  assert.equal(m.read32(a), 1);
  assert.equal(m.read32(b), 2);
  m.zero(b, MEMORY_CHUNK_BYTES); // drops the cached chunk
  assert.equal(m.read32(b), 0);
  m.write32(b + 4, 3); // recreated
  assert.equal(m.read32(b), 0);
  assert.equal(m.read32(b + 4), 3);
  m.zero(a & ~(MEMORY_CHUNK_BYTES - 1), MEMORY_CHUNK_BYTES);
  assert.equal(m.read32(a), 0);
  assert.equal(m.read32(b + 4), 3);
});

Deno.test("bounds errors are RangeErrors that name the address and the memory", () => {
  const m = new PhysicalMemory({ size: 1 << 16, name: "guest 1" });
  const cases: [() => unknown, RegExp][] = [
    [
      () => m.read8(0x10000),
      /guest 1: address 0x10000 \(1 bytes\) is beyond the end/,
    ],
    [() => m.read32(0xfffe), /address 0xfffe \(4 bytes\)/],
    [() => m.read16(0xffff), /address 0x10000|address 0xffff/],
    [() => m.write32(0x12345678, 1), /address 0x12345678/],
    [() => m.write8(-1, 1), /address -1/],
    [() => m.read8(1.5), /address 1\.5/],
    [() => m.read8(NaN), /address NaN/],
    [() => m.readBytes(0xff00, 0x101), /address 0xff00 \(257 bytes\)/],
    [() => m.writeBytes(0xffff, new Uint8Array(2)), /address 0xffff/],
    [() => m.zero(0x8000, 0x8001), /address 0x8000/],
  ];
  for (const [f, re] of cases) {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, re);
      assert.match(e.message, /size 0x10000/);
      return true;
    });
  }
  assert.equal(m.chunksTouched, 0, "failed writes store nothing");
  assert.throws(() => new PhysicalMemory({ size: 0 }), RangeError);
  assert.throws(() => new PhysicalMemory({ size: 2 ** 52 + 1 }), RangeError);
  assert.throws(() => new PhysicalMemory({ size: 4096.5 }), RangeError);
  assert.throws(() => new PhysicalMemory({ size: NaN }), /memory size NaN/);
});

Deno.test("FrameAllocator: zeroed frames, reuse, exhaustion, double free", () => {
  const mem = new PhysicalMemory({ size: 64 * GiB });
  const alloc = new FrameAllocator(mem, {
    start: 32 * GiB,
    end: 32 * GiB + 4 * 4096,
  });
  assert.equal(alloc.frameSize, 4096);
  const frames = [alloc.alloc(), alloc.alloc(), alloc.alloc(), alloc.alloc()];
  assert.deepEqual(frames, [0, 1, 2, 3].map((i) => 32 * GiB + i * 4096));
  assert.equal(alloc.allocatedCount, 4);
  assert.ok(frames.every((f) => alloc.isAllocated(f)));
  assert.throws(() => alloc.alloc(), (e: unknown) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /out of frames/);
    assert.match(e.message, /4 allocated/);
    return true;
  });
  // dirty a frame, free it, get it back zeroed
  mem.write32(frames[2] + 0x10, 0xdeadbeef);
  mem.write8(frames[2] + 4095, 1);
  alloc.free(frames[2]);
  assert.equal(alloc.isAllocated(frames[2]), false);
  assert.equal(alloc.allocatedCount, 3);
  assert.throws(
    () => alloc.free(frames[2]),
    /not allocated by this allocator \(double free/,
  );
  assert.throws(
    () => alloc.free(frames[0] + 8),
    /frame 0x800000008 is not allocated/,
  );
  assert.throws(() => alloc.free(0x1000), RangeError);
  const again = alloc.alloc();
  assert.equal(again, frames[2], "freed frames are reused");
  assert.equal(mem.read32(frames[2] + 0x10), 0);
  assert.equal(mem.read8(frames[2] + 4095), 0);
  assert.equal(mem.chunksTouched, 0, "a zeroed frame is not stored at all");
  assert.throws(() => alloc.alloc(), /out of frames/);
});

Deno.test("FrameAllocator: small frames (OSTEP 32-byte pages) and bad options", () => {
  const mem = new PhysicalMemory({ size: 4096 });
  const alloc = new FrameAllocator(mem, { frameSize: 32, start: 32 });
  const a = alloc.alloc();
  assert.equal(a, 32);
  mem.write8(a + 31, 0x99);
  mem.write8(a + 32, 0x77); // the next frame, not yet allocated
  alloc.free(a);
  assert.equal(alloc.alloc(), 32);
  assert.equal(mem.read8(a + 31), 0);
  assert.equal(mem.read8(a + 32), 0x77, "zeroing stays inside the frame");
  let n = 1;
  while (true) {
    try {
      alloc.alloc();
      n++;
    } catch (e) {
      assert.ok(e instanceof RangeError);
      break;
    }
  }
  assert.equal(n, 127, "4096 bytes = 128 frames of 32, minus frame 0");
  assert.throws(
    () => new FrameAllocator(mem, { frameSize: 48 }),
    /frame size 48 is invalid/,
  );
  assert.throws(() => new FrameAllocator(mem, { frameSize: 0 }), RangeError);
  // (exposed a bug: the power-of-two check used 32-bit bitwise operators)
  const huge = new PhysicalMemory();
  assert.throws(
    () => new FrameAllocator(huge, { frameSize: 3 * 2 ** 31 }),
    /frame size 6442450944 is invalid/,
  );
  assert.equal(
    new FrameAllocator(huge, { frameSize: 2 ** 40 }).frameSize,
    2 ** 40,
  );
  assert.throws(
    () => new FrameAllocator(mem, { start: 100 }),
    /allocator range/,
  );
  assert.throws(() => new FrameAllocator(mem, { start: -4096 }), RangeError);
  assert.throws(() => new FrameAllocator(mem, { end: 8192 }), RangeError);
  assert.throws(
    () => new FrameAllocator(mem, { start: 2048, end: 1024 }),
    RangeError,
  );
  assert.throws(() => new FrameAllocator(mem, { start: NaN }), RangeError);
});
