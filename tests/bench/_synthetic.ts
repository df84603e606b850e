/**
 * The synthetic Lackey trace shared by the trace and builder benchmarks
 * (a module of its own so that importing it registers no benchmarks).
 *
 * @module
 */

import { lackeyLine } from "../../lib/workload/trace.ts";
import { Random } from "../../lib/util/random.ts";

/**
 * A program-like synthetic Lackey trace of `lines` accesses (seeded):
 * about 70 % instruction fetches walking a 256 KiB code region with a
 * jump every ~8 instructions, 30 % data: 60 % on a 16 KiB stack, 40 %
 * anywhere in a 256 MiB heap; loads, stores and modifies 6 : 3 : 1.
 */
export function* syntheticLines(
  lines: number,
  seed = 1,
): Generator<string> {
  const rnd = new Random(seed);
  const CODE = 0x0040_0000, STACK_HI = 0x7f, STACK_LO = 0xfff0_0000;
  const HEAP = 0x1000_0000;
  let pc = CODE;
  let out: string[] = [];
  for (let i = 0; i < lines; i++) {
    if (rnd.int(10) < 7) {
      const size = 1 + rnd.int(7);
      out.push(lackeyLine(0, 0, pc, size));
      pc += size;
      if (rnd.int(8) === 0 || pc >= CODE + (256 << 10)) {
        pc = CODE + rnd.int(256 << 10);
      }
    } else {
      const k = rnd.int(10);
      const kind = k < 6 ? 1 : k < 9 ? 2 : 3;
      if (rnd.int(10) < 6) {
        out.push(lackeyLine(kind, STACK_HI, STACK_LO + rnd.int(2048) * 8, 8));
      } else {
        out.push(lackeyLine(kind, 0, HEAP + rnd.int(32 << 20) * 8, 8));
      }
    }
    if (out.length === 4096) {
      yield out.join("");
      out = [];
    }
  }
  if (out.length > 0) yield out.join("");
}

/** The whole synthetic trace as bytes. */
export function synthetic(lines: number, seed = 1): Uint8Array {
  return new TextEncoder().encode([...syntheticLines(lines, seed)].join(""));
}
