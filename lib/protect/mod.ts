/**
 * Memory protection (book chapter 3): segment descriptors and selectors,
 * descriptor tables, the segmentation unit with privilege checks, gates
 * and TSS stack switches, one access through segmentation then paging,
 * and how Xen protects itself on 32-bit x86 (segment limits, ring 1) and
 * on x86-64 (separate guest kernel and user page tables).
 *
 * @example A ring-1 guest kernel cannot read Xen: the segment limit stops it.
 * ```ts
 * import { xen32Layout } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const xen = xen32Layout();
 * xen.enter("guest-kernel");
 * const r = xen.access(0xfc40_0000);
 * assert.equal(r.outcome.kind === "fault" && r.outcome.exception, "#GP");
 * assert.equal(r.stoppedBy?.stage, "segmentation");
 * ```
 *
 * @module
 */

export * from "./descriptor.ts";
export * from "./table.ts";
export * from "./record.ts";
export * from "./segment.ts";
export * from "./access.ts";
export * from "./xen.ts";
