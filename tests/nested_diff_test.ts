/**
 * Differential property test: nested paging (EPT with and without A/D,
 * 4- and 5-level; AMD NPT) against the reference scheme, on seeded random
 * guest activity from the shared generator. Every operation's
 * guest-visible record must be equal: values, gpas, faults with error code
 * and CR2, and (through the generator's `inspect` operations) every guest
 * page-table entry with its A/D bits. Only exits and costs differ. On a
 * mismatch the op list is shrunk and printed.
 */
import assert from "node:assert/strict";
import { randomGuestActivity } from "../lib/virt/guest/activity.ts";
import { type NestedOptions, NestedScheme } from "../lib/virt/nested/scheme.ts";
import { GUEST_MEMORY, registerDiffTests, runGuest } from "./_diff_harness.ts";

const CONFIGS: { name: string; options: NestedOptions }[] = [
  { name: "EPT 4-level", options: {} },
  { name: "EPT 4-level A/D", options: { ad: true } },
  { name: "EPT 5-level A/D", options: { levels: 5, ad: true } },
  { name: "NPT 4-level", options: { stage: "npt" } },
];

const SCALE = Number(Deno.env.get("NESTED_DIFF_SCALE") ?? 1);

registerDiffTests(
  "nested",
  CONFIGS,
  (options) => new NestedScheme({ ...options, eventLog: 0 }),
  104729,
  SCALE,
);

Deno.test("nested: exits only on first touch; loadCr3 and invlpg cause none", () => {
  const ops = randomGuestActivity(5, 200, {
    memory: GUEST_MEMORY,
    kernelHeapPages: 4,
  });
  const s = new NestedScheme({ eventLog: 0 });
  runGuest(ops, s, "kvm");
  const c = s.counters;
  assert.ok(c.cr3Loads > 0);
  assert.equal(
    c.vmExits,
    (c.exitsByReason["ept-violation"] ?? 0) + (c.exitsByReason["mmio"] ?? 0),
  );
  assert.equal(
    c.exitsByReason["ept-violation"],
    c.extra.violationsOnTableWalk + c.extra.violationsOnFinalAccess,
  );
  assert.ok(c.extra.leavesMapped <= GUEST_MEMORY / 4096);
});
