/**
 * Trace replay throughput, end to end (parse + translate):
 * `deno bench -A tests/bench/trace_bench.ts`.
 *
 * Each bench iteration replays a whole in-memory trace through a fresh
 * machine (tables filled on first touch): the shipped `ls /` trace
 * (real, high locality) and a synthetic program-like trace (sequential
 * code with jumps, a hot stack, and loads/stores spread over a 256 MiB
 * heap, so about one access in six misses a 64-entry TLB). Accesses per
 * second = accesses / (time per iteration). The floors (issue 7 §5) are
 * 2 M accesses/s native and 1 M/s nested with walk caches, on one core.
 *
 * The plain big-trace check (not a `deno bench`): writes a 10 M-line
 * synthetic trace to /tmp (once), replays it from the file, and prints
 * accesses/s and the process RSS before and after (bounded memory):
 *
 * ```sh
 * deno run -A tests/bench/trace_bench.ts --big [--lines=10000000] [--only=native]
 * ```
 *
 * @module
 */

import { synthetic, syntheticLines } from "./_synthetic.ts";
import { type ReplayOptions, replayTrace } from "../../lib/workload/replay.ts";

const MACHINES: [string, ReplayOptions][] = [
  ["native 4 KiB", {}],
  ["native 2 MiB", { pageSize: 2097152 }],
  ["nested EPT 4×4 cached", { machine: "nested" }],
  ["nested NPT 4×4 cached", { machine: "nested", stage: "npt" }],
  ["nested EPT 4×4 uncached", { machine: "nested", caches: false }],
];

async function bigCheck(): Promise<void> {
  const arg = (name: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  const lines = Number(arg("lines") ?? 10_000_000);
  const only = arg("only") ?? "";
  const path = `/tmp/memvirt-synthetic-${lines}.lackey`;
  try {
    await Deno.stat(path);
  } catch {
    const t0 = performance.now();
    const f = await Deno.open(path, {
      write: true,
      create: true,
      truncate: true,
    });
    const enc = new TextEncoder();
    for (const chunk of syntheticLines(lines)) await f.write(enc.encode(chunk));
    f.close();
    console.log(
      `wrote ${path} (${
        ((await Deno.stat(path)).size / 2 ** 20).toFixed(0)
      } MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  for (const [name, o] of MACHINES) {
    if (!name.includes(only)) continue;
    const rss0 = Deno.memoryUsage().rss;
    const r = await replayTrace(path, o);
    const rss1 = Deno.memoryUsage().rss;
    console.log(
      `${name}: ${(r.accessesPerSecond / 1e6).toFixed(2)} M accesses/s (${
        (r.accesses / 1e6).toFixed(1)
      } M in ${(r.elapsedMs / 1000).toFixed(2)} s; TLB miss ${
        (100 * r.tlbMisses / r.translations).toFixed(1)
      } %, ${
        r.refsPerWalk.toFixed(1)
      } refs/walk, ${r.pagesTouched} pages); RSS ${
        (rss0 / 2 ** 20).toFixed(0)
      } → ${(rss1 / 2 ** 20).toFixed(0)} MiB`,
    );
  }
}

if (Deno.args.includes("--big")) {
  await bigCheck();
} else {
  const ls = await Deno.readFile(
    new URL("../data/ls-root.lackey.gz", import.meta.url),
  );
  const SYN = 200_000;
  const syn = synthetic(SYN);
  const lsAccesses = (await replayTrace(ls, { machine: "native" })).accesses;
  for (
    const [trace, bytes, n] of [
      ["ls / (gzip)", ls, lsAccesses],
      ["synthetic", syn, SYN],
    ] as const
  ) {
    for (const [name, o] of MACHINES) {
      Deno.bench({
        name: `${trace}: ${name} (${n} accesses per iteration)`,
        group: trace,
        baseline: name === "native 4 KiB",
        async fn() {
          await replayTrace(bytes, o);
        },
      });
    }
  }
}
