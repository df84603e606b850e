/**
 * Differential property test: shadow paging (with and without each option)
 * against the reference scheme, on seeded random guest activity from the
 * shared generator. Every operation's guest-visible record must be equal:
 * values, gpas, faults with error code and CR2, and (through the
 * generator's `inspect` operations) every guest page-table entry with its
 * A/D bits. On a mismatch the op list is shrunk and printed.
 */
import { type ShadowOptions, ShadowScheme } from "../lib/virt/shadow/mod.ts";
import { registerDiffTests } from "./_diff_harness.ts";

const CONFIGS: { name: string; options: ShadowOptions }[] = [
  { name: "plain", options: {} },
  { name: "out-of-sync", options: { outOfSync: 3 } },
  { name: "write-flooding", options: { writeFlooding: 3 } },
  { name: "prefetch", options: { prefetch: 8 } },
  { name: "cache-limit", options: { maxShadowPages: 12 } },
  {
    name: "all",
    options: {
      outOfSync: 2,
      writeFlooding: 2,
      prefetch: 8,
      maxShadowPages: 16,
    },
  },
];

/** Scale the seed counts (e.g. 10 for a long soak). */
const SCALE = Number(Deno.env.get("SHADOW_DIFF_SCALE") ?? 1);

registerDiffTests(
  "shadow",
  CONFIGS,
  (options) => new ShadowScheme({ ...options, eventLog: 0 }),
  7919,
  SCALE,
);
