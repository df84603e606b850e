/**
 * `deno task kvm-diff [--count N] [--seed S] [--show K]`: the full
 * differential test of memvirt's walker against the real CPU (default
 * 10,000 seeded random cases). Prints the CPU, the features the model was
 * configured with, outcome counts, the number of cases that agreed, and a
 * reproducer for each mismatch (exit code 1). Where KVM is unavailable it
 * says why and exits 0 (nothing to compare against).
 *
 * @module
 */

import { reproducer, runDifferential } from "./diff.ts";
import { cpuModelName, kvmModuleName } from "./host.ts";
import { RealCpu } from "./real.ts";
import { kvmStatus } from "./vm.ts";

/** Parsed command-line options. */
export interface CliOptions {
  /** Random cases. */
  count: number;
  /** Seed. */
  seed: number;
  /** Reproducers to print at most. */
  show: number;
}

/**
 * Parse `--count N --seed S --show K` (also `--count=N`).
 *
 * @example
 * ```ts
 * import { parseArgs } from "./cli.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseArgs(["--count", "500", "--seed=9"]), { count: 500, seed: 9, show: 20 });
 * assert.throws(() => parseArgs(["--cont", "5"]), /unknown option "--cont"/);
 * ```
 */
export function parseArgs(args: readonly string[]): CliOptions {
  const o: CliOptions = { count: 10_000, seed: 1, show: 20 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const key = flag.replace(/^--/, "");
    if (!(key in o) || !flag.startsWith("--")) {
      throw new RangeError(
        `unknown option "${flag}": expected --count N, --seed S or --show K`,
      );
    }
    const raw = inline ?? args[++i];
    const v = Number(raw);
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(
        `option ${flag} needs a non-negative integer, got "${String(raw)}"`,
      );
    }
    o[key as keyof CliOptions] = v;
  }
  return o;
}

/**
 * Run the differential test; returns the exit code (0 all agreed or KVM
 * unavailable, 1 mismatches, 2 bad arguments).
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * import assert from "node:assert/strict";
 * const log = console.log;
 * console.log = () => {};
 * try {
 *   assert.equal(main(["--count", "5", "--seed", "4"]), 0);
 *   assert.equal(main(["--bogus"]), 2);
 * } finally {
 *   console.log = log;
 * }
 * ```
 */
export function main(args: readonly string[]): number {
  let o: CliOptions;
  try {
    o = parseArgs(args);
  } catch (e) {
    console.log((e as Error).message);
    return 2;
  }
  const st = kvmStatus();
  if (!st.available) {
    console.log(`KVM unavailable: ${st.reason} — nothing to compare against`);
    return 0;
  }
  using cpu = RealCpu.create();
  const f = cpu.features;
  console.log(
    `CPU: ${cpuModelName()} (KVM module: ${kvmModuleName()}; guest CPUID: ${f.vendorString}, MAXPHYADDR ${f.maxPhyAddr}, 1 GiB pages ${
      f.gbPages ? "yes" : "no"
    }, NX ${f.nx ? "yes" : "no"}, SMEP ${f.smep ? "yes" : "no"}, SMAP ${
      f.smap ? "yes" : "no"
    }, PKU ${f.pku ? "yes" : "no"}, LA57 ${f.la57 ? "yes" : "no"})`,
  );
  console.log(
    `model: pagingMode(X86_64_4LEVEL, { maxPhyAddr: ${f.maxPhyAddr}, gbPages: ${f.gbPages}, vendor: "${f.vendor}", pke: false, … per case })`,
  );
  console.log(`running ${o.count} cases, seed ${o.seed}`);
  let shown = 0;
  const step = Math.max(1000, Math.ceil(o.count / 10));
  const s = runDifferential(cpu, {
    count: o.count,
    seed: o.seed,
    onCase: (cmp, i) => {
      if (!cmp.agree && shown < o.show) {
        shown++;
        console.log(`\ncase #${i}\n${reproducer(cmp)}\n`);
      }
      if ((i + 1) % step === 0 && i + 1 < o.count) {
        console.log(`  … ${i + 1} cases`);
      }
    },
  });
  console.log("\noutcomes (by the model's verdict):");
  for (
    const [k, n] of Object.entries(s.byOutcome).sort((a, b) => b[1] - a[1])
  ) {
    console.log(`  ${k.padEnd(22)} ${n}`);
  }
  console.log(
    `\n${s.agreed} of ${s.cases} cases agreed (seed ${s.seed}) in ${
      (s.ms / 1000).toFixed(1)
    } s` + (s.resets ? `; ${s.resets} VM re-creations` : ""),
  );
  return s.agreed === s.cases ? 0 : 1;
}

if (import.meta.main) Deno.exit(main(Deno.args));
